"""Load-test bookkeeping: schedule, histograms, coordinated omission, report."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sleepsync.client.load import LoadOptions, LoadSetupError, plan_workers, validate
from sleepsync.client.loadstats import (
    LatencyHistogram,
    LoadReport,
    Reflection,
    Schedule,
    WorkerTotals,
    parse_metrics,
)


class TestSchedule:
    def test_pods_are_spread_over_one_period(self) -> None:
        s = Schedule(start=100.0, rate=2.0, pods=4)
        assert [s.intended(i, 0) for i in range(4)] == [100.0, 100.125, 100.25, 100.375]
        assert s.intended(1, 3) == pytest.approx(100.125 + 1.5)

    @given(
        st.floats(0.1, 50),
        st.integers(1, 500),
        st.floats(0, 10),
        st.floats(0.5, 30),
        st.data(),
    )
    def test_samples_are_exactly_those_due_before_the_end(
        self, rate: float, pods: int, ramp: float, duration: float, data: st.DataObject
    ) -> None:
        s = Schedule(0.0, rate, pods, ramp, duration)
        i = data.draw(st.integers(0, pods - 1))
        n = s.samples(i)
        if n:
            assert s.intended(i, n - 1) < s.end + 1e-6
        assert s.intended(i, n) >= s.end - 1e-6


class TestHistogram:
    def test_percentiles_and_max(self) -> None:
        h = LatencyHistogram()
        for ms in range(1, 101):
            h.record(ms / 1000)
        assert h.count == 100
        assert h.percentile_ms(50) == pytest.approx(50, rel=0.01)
        assert h.percentile_ms(99) == pytest.approx(99, rel=0.01)
        assert h.max_ms() == pytest.approx(100, rel=0.01)

    def test_merging_across_processes_equals_one_histogram(self) -> None:
        whole, a, b = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
        for n in range(1000):
            value = (n % 97) / 1000 + n / 1e5
            whole.record(value)
            (a if n % 3 else b).record(value)
        merged = LatencyHistogram()
        merged.merge(a.encode())  # as it comes from a worker process
        merged.merge(b)
        assert merged.count == whole.count == 1000
        for p in (50, 90, 99, 99.9):
            assert merged.percentile_ms(p) == whole.percentile_ms(p)

    def test_empty_histogram_reports_nan(self) -> None:
        assert math.isnan(LatencyHistogram().percentile_ms(99))


class TestCoordinatedOmission:
    def test_a_stall_is_recorded_for_every_sample_it_delayed(self) -> None:
        """Samples every 100 ms; the system stalls for 1 s, then one frame reflects
        all ten. Measured from each sample's intended time, the histogram holds ten
        values from 1.0 s down to 0.1 s, not one value: the stall is not hidden."""
        schedule = Schedule(start=0.0, rate=10.0, pods=1)
        reflection = Reflection()
        h = LatencyHistogram()
        arrival = 1.0
        for seq in reflection.reflect("pod-001", 9):
            h.record(arrival - schedule.intended(0, seq))
        assert h.count == 10
        assert h.max_ms() == pytest.approx(1000, rel=0.01)
        assert h.percentile_ms(50) == pytest.approx(500, rel=0.02)
        # A closed-loop tool timing only the frame it waited for would see one value.
        naive = LatencyHistogram()
        naive.record(arrival - schedule.intended(0, 9))
        assert naive.percentile_ms(50) == pytest.approx(100, rel=0.02)

    def test_reflection_counts_each_sample_once(self) -> None:
        r = Reflection()
        assert list(r.reflect("p", 2)) == [0, 1, 2]
        assert list(r.reflect("p", 2)) == []
        assert list(r.reflect("p", 1)) == []
        assert list(r.reflect("p", 4)) == [3, 4]


class TestReport:
    def test_counts_add_up(self) -> None:
        totals = WorkerTotals(
            published=100,
            samples_published_observed=100,
            samples_reflected=97,
            expected_deliveries=200,
            deliveries=190,
            frames=50,
        )
        report = LoadReport(50.0, 2.0, 2.0, totals, LatencyHistogram())
        j = report.to_json()
        assert j["samples_lost"] == 3
        assert j["samples_reflected"] + j["samples_lost"] == j["published"]
        assert j["deliveries_lost"] == 10
        assert j["achieved_rate"] == 50.0
        assert dict(report.rows())["samples published / reflected / lost"] == "100 / 97 / 3"

    def test_worker_totals_merge(self) -> None:
        a = WorkerTotals(published=3, seq_gaps=1)
        a.add(WorkerTotals.from_dict({"published": 4, "resyncs": 2}))
        assert (a.published, a.seq_gaps, a.resyncs) == (7, 1, 2)

    def test_parse_metrics_sums_labels(self) -> None:
        text = (
            "# HELP x\n"
            'sleepsync_errors_total{code="a"} 2.0\n'
            'sleepsync_errors_total{code="b"} 3.0\n'
            "process_cpu_seconds_total 1.5\n"
            "garbage line\n"
        )
        assert parse_metrics(text) == {
            "sleepsync_errors_total": 5.0,
            "process_cpu_seconds_total": 1.5,
        }


class TestOptions:
    @pytest.mark.parametrize(
        ("change", "needle"),
        [
            ({"rate": 0}, "--rate"),
            ({"rate": 1000}, "--rate"),
            ({"rooms": 0}, "--rooms"),
            ({"duration": 0}, "--duration"),
            ({"workers": 0}, "--workers"),
            ({"rooms": 1000, "pods_per_room": 1000, "rate": 50}, "at most"),
        ],
    )
    def test_impossible_settings_are_refused(self, change: dict[str, float], needle: str) -> None:
        opts = LoadOptions(servers=("ws://x",), mqtt="mqtt://x", **change)  # type: ignore[arg-type]
        with pytest.raises(LoadSetupError, match=needle):
            validate(opts)

    def test_plans_split_whole_rooms_and_cover_every_pod_once(self) -> None:
        opts = LoadOptions(
            servers=("ws://x",), mqtt="mqtt://x", rooms=7, pods_per_room=3, workers=3
        )
        plans = plan_workers(opts, 0.0)
        assert len(plans) == 3
        indexes = sorted(i for p in plans for room in p.pod_indexes for i in room)
        assert indexes == list(range(21))
        pods = [pod for p in plans for room in p.pods for pod in room]
        assert len(set(pods)) == 21 and pods[0].startswith("pod-")
        rooms = [room for p in plans for room in p.rooms]
        assert len(set(rooms)) == 7


def test_pod_ids_come_from_the_credentials_file() -> None:
    from sleepsync.client.load import pod_names

    creds = (*((f"pod-{i:04d}", "pw") for i in range(1, 31)), ("sleepsync-server", "pw"))
    opts = LoadOptions(
        servers=("ws://x",), mqtt="mqtt://x", rooms=2, pods_per_room=10, credentials=creds
    )
    assert pod_names(opts)[:2] == ["pod-0001", "pod-0002"] and len(pod_names(opts)) == 20
    short = LoadOptions(
        servers=("ws://x",), mqtt="mqtt://x", rooms=4, pods_per_room=10, credentials=creds
    )
    with pytest.raises(LoadSetupError, match="has 30 pods"):
        validate(short)


class TestObserverTokens:
    SECRET = b"a-shared-secret-of-at-least-32-bytes"

    def test_with_the_secret_each_observer_gets_a_token_for_its_own_room(self) -> None:
        from sleepsync.protocol.identity import Keys, verify

        opts = LoadOptions(
            servers=("ws://x",),
            mqtt="mqtt://x",
            rooms=3,
            observers_per_room=2,
            workers=2,
            auth_secret=self.SECRET,
        )
        validate(opts)
        keys = Keys.load(secret=self.SECRET)
        for plan in plan_workers(opts, 0.0):
            assert len(plan.observers) == len(plan.rooms)
            for room, observers in zip(plan.rooms, plan.observers, strict=True):
                assert [name for name, _ in observers] == [
                    f"load-w{plan.worker}-o0",
                    f"load-w{plan.worker}-o1",
                ]
                for name, token in observers:
                    assert token is not None
                    claims = verify(token, keys, time.time())
                    assert (claims.subject, claims.rooms, claims.role) == (name, room, "observer")
        assert "auth_secret" not in repr(opts) or self.SECRET.decode() not in repr(opts)

    def test_one_token_for_all_takes_its_name(self) -> None:
        from sleepsync.protocol.identity import Keys, mint

        token = mint(
            Keys.load(secret=self.SECRET),
            subject="loadbot",
            rooms="*",
            role="observer",
            now=time.time(),
            ttl=60,
        )
        opts = LoadOptions(servers=("ws://x",), mqtt="mqtt://x", rooms=2, token=token)
        [plan] = plan_workers(opts, 0.0)
        assert plan.observers == ((("loadbot", token),), (("loadbot", token),))
        assert token not in repr(opts) and token not in repr(plan)

    def test_without_auth_observers_carry_no_token(self) -> None:
        [plan] = plan_workers(LoadOptions(servers=("ws://x",), mqtt="mqtt://x"), 0.0)
        assert plan.observers == ()

    @pytest.mark.parametrize(
        ("change", "needle"),
        [
            ({"token": "junk"}, "not a readable token"),
            ({"auth_secret": b"short"}, "at least 32 bytes"),
            ({"token": "a.b.c", "auth_secret": SECRET}, "not both"),
        ],
    )
    def test_bad_auth_settings_are_refused(self, change: dict[str, object], needle: str) -> None:
        opts = LoadOptions(servers=("ws://x",), mqtt="mqtt://x", **change)  # type: ignore[arg-type]
        with pytest.raises(LoadSetupError, match=needle):
            validate(opts)
