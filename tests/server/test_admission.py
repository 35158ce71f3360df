"""Who holds a socket: clients that said hello, and a bounded pool of greeting ones."""

from __future__ import annotations

from sleepsync.server.admission import Admission, Arrival


def test_greeting_connections_do_not_count_against_the_clients() -> None:
    admission: Admission[str] = Admission(max_clients=2, max_greeting=3)
    assert [admission.arrive(k) for k in "abc"] == [Arrival(True)] * 3
    assert admission.greeted("a") and admission.greeted("b")
    assert not admission.greeted("c"), "two clients already"
    assert admission.arrive("d") == Arrival(False), "the clients are at their limit"
    admission.gone("a")
    assert admission.arrive("d") == Arrival(True)


def test_a_full_greeting_pool_pushes_out_its_oldest() -> None:
    admission: Admission[str] = Admission(max_clients=10, max_greeting=2)
    admission.arrive("idle-1")
    admission.arrive("idle-2")
    assert admission.arrive("real") == Arrival(True, evicted="idle-1")
    assert admission.arrive("idle-3") == Arrival(True, evicted="idle-2")
    assert admission.greeted("real"), "a real client says hello before it is the oldest"
    assert admission.greeted("real"), "twice is once"
    assert list(admission.greeting) == ["idle-3"] and admission.clients == {"real"}


def test_any_number_of_idle_sockets_lock_no_client_out() -> None:
    admission: Admission[int] = Admission(max_clients=100, max_greeting=10)
    for attacker in range(2000):
        assert admission.arrive(attacker).admitted
    assert admission.arrive(-1).admitted and admission.greeted(-1)
    assert len(admission.greeting) == 9, "the pool stays bounded"
