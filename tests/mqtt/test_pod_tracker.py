"""The pure pod tracker: dedup on (pod, boot, seq), gaps, invalid counts, faults."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns
from sleepsync.server.pod_tracker import PodTracker


def s(seq: int, pod: str = "lila", boot: str = "b1") -> TelemetrySample:
    return TelemetrySample(pod, boot, seq, 1.0, VitalSigns(60, 50, 2, 12), 0.5, 0.5)


class TestDedup:
    def test_redeliveries_are_duplicates(self) -> None:
        t = PodTracker()
        assert not t.accept(s(1)).duplicate
        assert t.accept(s(1)).duplicate
        assert not t.accept(s(2)).duplicate
        assert t.stats("lila").duplicates == 1

    def test_pods_and_boots_are_separate(self) -> None:
        t = PodTracker()
        assert not t.accept(s(1, pod="a")).duplicate
        assert not t.accept(s(1, pod="b")).duplicate
        verdict = t.accept(s(1, boot="b2", pod="a"))
        assert not verdict.duplicate and verdict.new_boot
        # The previous boot is still remembered: its late redelivery is a duplicate.
        assert t.accept(s(1, pod="a")).duplicate

    def test_older_than_the_window_is_a_duplicate(self) -> None:
        t = PodTracker(window=4)
        for seq in range(1, 11):
            t.accept(s(seq))
        assert t.accept(s(5)).duplicate
        assert len(t._pods["lila"].boots["b1"].seen) <= 4  # bounded memory


class TestGaps:
    def test_jumps_count_missing_samples(self) -> None:
        t = PodTracker()
        t.accept(s(1))
        assert t.accept(s(5)).missing == 3
        assert t.stats("lila").missing == 3

    def test_a_late_sample_fills_its_gap(self) -> None:
        t = PodTracker()
        t.accept(s(1))
        t.accept(s(3))
        verdict = t.accept(s(2))
        assert verdict.reordered and not verdict.duplicate
        assert t.stats("lila").missing == 0


class TestInvalid:
    def test_counted_per_pod_and_reason(self) -> None:
        t = PodTracker()
        t.invalid("lila", "bad_msgpack", 0.0)
        t.invalid("lila", "bad_msgpack", 0.1)
        t.invalid("lila", "oversize", 0.2)
        t.invalid(None, "wrong_topic", 0.3)
        assert dict(t.stats("lila").invalid) == {"bad_msgpack": 2, "oversize": 1}
        assert dict(t.stats("?").invalid) == {"wrong_topic": 1}

    def test_garbage_within_the_window_is_a_fault_once_per_threshold(self) -> None:
        t = PodTracker(fault_threshold=3, fault_window=10.0)
        outcomes = [t.invalid("lila", "bad_msgpack", float(i)) for i in range(7)]
        assert [o.fault for o in outcomes] == [None, None, 3, None, None, 3, None]

    def test_sparse_garbage_is_no_fault(self) -> None:
        t = PodTracker(fault_threshold=3, fault_window=10.0)
        outcomes = [t.invalid("lila", "bad_msgpack", i * 6.0) for i in range(10)]
        assert all(o.fault is None for o in outcomes)

    def test_no_fault_without_a_pod(self) -> None:
        t = PodTracker(fault_threshold=1)
        assert t.invalid(None, "wrong_topic", 0.0).fault is None

    def test_logging_is_rate_limited_per_pod(self) -> None:
        t = PodTracker(log_interval=10.0)
        logs = [t.invalid("lila", "bad_msgpack", float(i)).log for i in range(12)]
        assert logs == [True] + [False] * 9 + [True, False]
        assert t.invalid("other", "bad_msgpack", 5.0).log
        outcome = t.invalid("lila", "bad_msgpack", 30.0)
        assert outcome.log and outcome.suppressed == 1


def test_pods_are_bounded() -> None:
    t = PodTracker(max_pods=3)
    for pod in "abcd":
        t.accept(s(1, pod=pod))
    assert len(t) == 3 and "a" not in t


deliveries = st.lists(
    st.tuples(st.sampled_from(["p1", "p2"]), st.sampled_from(["b1", "b2"]), st.integers(0, 50)),
    max_size=200,
)


@given(deliveries)
def test_every_unique_sample_is_accepted_exactly_once(items: list[tuple[str, str, int]]) -> None:
    """With a window larger than the seq range, dedup is exact whatever the order."""
    t = PodTracker(window=64, boots_per_pod=2)
    accepted = [key for key in items if not t.accept(s(key[2], pod=key[0], boot=key[1])).duplicate]
    assert sorted(accepted) == sorted(set(items))
    for pod in ("p1", "p2"):
        stats = t.stats(pod)
        assert stats.accepted + stats.duplicates == sum(1 for k in items if k[0] == pod)
        assert stats.missing >= 0
