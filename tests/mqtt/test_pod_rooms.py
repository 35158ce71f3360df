"""The pure per-pod room limit: a few new rooms per hour, bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleepsync.server.pod_rooms import PodRooms


def test_a_pod_enters_at_most_n_rooms_per_period() -> None:
    limit = PodRooms(per_period=3, period=3600.0)
    admitted = [limit.admit("mallory", f"r{i}", float(i)) for i in range(1100)]
    assert admitted.count(True) == 3 and admitted[:3] == [True] * 3
    assert limit.rooms("mallory") == ["r0", "r1", "r2"]


def test_rooms_it_is_in_stay_open_all_night() -> None:
    limit = PodRooms(per_period=1, period=3600.0)
    assert limit.admit("lila", "lounge", 0.0)
    assert not limit.admit("lila", "elsewhere", 1.0)  # the hour's one room is taken
    assert all(limit.admit("lila", "lounge", hour * 3600.0) for hour in range(10))
    # Staying all night cost nothing: the next night it may move, once.
    assert limit.admit("lila", "elsewhere", 10 * 3600.0)
    assert not limit.admit("lila", "third", 10 * 3600.0 + 1)


def test_the_budget_comes_back_after_the_period() -> None:
    limit = PodRooms(per_period=2, period=100.0)
    assert limit.admit("p", "a", 0.0) and limit.admit("p", "b", 10.0)
    assert not limit.admit("p", "c", 99.0)
    assert limit.admit("p", "c", 100.0)  # "a" was entered 100 s ago
    assert limit.rooms("p") == ["b", "c"]  # and it is forgotten: re-entering costs again
    assert not limit.admit("p", "a", 100.0)


def test_pods_are_counted_apart() -> None:
    limit = PodRooms(per_period=1)
    assert limit.admit("a", "r1", 0.0) and limit.admit("b", "r2", 0.0)
    assert not limit.admit("a", "r2", 0.0)


def test_limits_must_be_positive() -> None:
    for bad in (
        {"per_period": 0},
        {"per_period": 1, "period": 0.0},
        {"per_period": 1, "max_pods": 0},
    ):
        with pytest.raises(ValueError):
            PodRooms(**bad)  # type: ignore[arg-type]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]),
            st.text("xyz", min_size=1, max_size=3),
            st.floats(0.0, 10_000.0),
        ),
        max_size=300,
    )
)
def test_memory_is_bounded_and_no_pod_passes_its_budget(
    items: list[tuple[str, str, float]],
) -> None:
    limit = PodRooms(per_period=2, period=3600.0, max_pods=3)
    entered: dict[str, list[float]] = {}
    for pod, room, now in sorted(items, key=lambda item: item[2]):
        before = set(limit.rooms(pod))
        if limit.admit(pod, room, now) and room not in before:
            entered.setdefault(pod, []).append(now)
        assert len(limit) <= 3
        assert all(len(limit.rooms(p)) <= 2 for p in "abcd")
    # Within any hour a pod entered at most 2 rooms (unless it was forgotten
    # in between: max_pods is a memory bound, the ACL bounds the pod ids).
    if len({pod for pod, _, _ in items}) <= 3:
        for times in entered.values():
            for i, start in enumerate(times):
                assert sum(1 for t in times[i:] if t - start < 3600.0) <= 2
