"""Load-test bookkeeping: schedule, latency histograms, reflection, report.

Pure (no I/O, no asyncio). How latency is measured: pods publish on a fixed
schedule (an open model), and every sample's latency is taken from its
*intended* publish time (:meth:`Schedule.intended`) to the moment a frame that
reflects it reaches an observer. That is the coordinated-omission correction
of wrk2 and HdrHistogram's authors: a stalled publisher, broker, server or
observer cannot hide its stall by delaying the measurements themselves, since
every sample it delayed is recorded with the full delay.

A room event's ``mood`` item carries, per dreamer, the seq of the last
telemetry sample applied; a frame reflects every sample of that pod whose seq
is above the last seq the observer saw and at most the new one.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = [
    "LatencyHistogram",
    "LoadReport",
    "Reflection",
    "Schedule",
    "WorkerTotals",
]

#: Latencies are kept in microseconds, from 1 µs to 10 minutes, 3 significant digits.
LOWEST_US = 1
HIGHEST_US = 600_000_000
DIGITS = 3


@dataclass(frozen=True, slots=True)
class Schedule:
    """When pod ``i`` of ``pods`` should publish its sample ``seq``.

    Pods start one after another over ``ramp`` seconds, and their samples are
    spread evenly over one period, so the broker sees a steady rate, not
    bursts. Every pod publishes until ``end``.
    """

    start: float
    rate: float
    pods: int
    ramp: float = 0.0
    duration: float = 0.0

    def offset(self, pod_index: int) -> float:
        share = pod_index / max(1, self.pods)
        return self.ramp * share + share / self.rate

    def intended(self, pod_index: int, seq: int) -> float:
        return self.start + self.offset(pod_index) + seq / self.rate

    @property
    def end(self) -> float:
        return self.start + self.ramp + self.duration

    def samples(self, pod_index: int) -> int:
        """How many samples pod ``pod_index`` publishes in the whole run."""
        span = self.end - self.start - self.offset(pod_index)
        return max(0, math.ceil(span * self.rate - 1e-9))


class LatencyHistogram:
    """An HdrHistogram of latencies in seconds, mergeable across processes."""

    def __init__(self) -> None:
        self._h = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)

    def record(self, seconds: float) -> None:
        micros = min(HIGHEST_US, max(LOWEST_US, round(seconds * 1e6)))
        self._h.record_value(micros)

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile_ms(self, p: float) -> float:
        if not self.count:
            return math.nan
        return float(self._h.get_value_at_percentile(p)) / 1000

    def max_ms(self) -> float:
        return float(self._h.get_max_value()) / 1000 if self.count else math.nan

    def encode(self) -> str:
        return base64.b64encode(self._h.encode()).decode()

    def merge(self, other: LatencyHistogram | str) -> None:
        if isinstance(other, LatencyHistogram):
            self._h.add(other._h)
        else:
            self._h.decode_and_add(base64.b64decode(other))

    def summary(self) -> dict[str, float]:
        return {
            "p50_ms": self.percentile_ms(50),
            "p90_ms": self.percentile_ms(90),
            "p99_ms": self.percentile_ms(99),
            "p999_ms": self.percentile_ms(99.9),
            "max_ms": self.max_ms(),
        }


@dataclass
class Reflection:
    """Which samples of which pods an observer (or a room) has seen reflected."""

    #: pod -> last seq seen reflected by this observer
    last: dict[str, int] = field(default_factory=dict)

    def reflect(self, pod: str, seq: int) -> range:
        """Seqs newly reflected by a frame saying the pod's last applied seq is ``seq``.

        A pod's first sample is seq 0, so before any frame ``last`` is -1.
        A seq that goes backwards reflects nothing (and is not an error: a
        restarted pod starts again at 0 under a new boot id).
        """
        before = self.last.get(pod, -1)
        if seq <= before:
            return range(0)
        self.last[pod] = seq
        return range(before + 1, seq + 1)


@dataclass
class WorkerTotals:
    """What one worker process counted; summed by the coordinator."""

    scheduled: int = 0
    published: int = 0
    publish_errors: int = 0
    acked: int = 0
    late_publishes: int = 0
    frames: int = 0
    deliveries: int = 0
    expected_deliveries: int = 0
    samples_reflected: int = 0
    samples_published_observed: int = 0
    duplicates: int = 0
    seq_gaps: int = 0
    resyncs: int = 0
    connection_failures: int = 0
    reconnects: int = 0

    def add(self, other: WorkerTotals) -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerTotals:
        return cls(**{k: int(v) for k, v in data.items()})


@dataclass
class LoadReport:
    """The final (or interrupted) report of one load run."""

    target_rate: float
    duration: float
    elapsed: float
    totals: WorkerTotals
    latency: LatencyHistogram
    server_before: dict[str, float] = field(default_factory=dict)
    server_after: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def achieved_rate(self) -> float:
        return self.totals.published / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def scheduled_rate(self) -> float:
        """What the schedule asked for over the run (below target during a ramp)."""
        return self.totals.scheduled / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def lost_samples(self) -> int:
        """Samples published in observed rooms that no observer saw reflected."""
        return self.totals.samples_published_observed - self.totals.samples_reflected

    @property
    def lost_deliveries(self) -> int:
        return self.totals.expected_deliveries - self.totals.deliveries

    def server_delta(self, name: str) -> float:
        return self.server_after.get(name, math.nan) - self.server_before.get(name, math.nan)

    def to_json(self) -> dict[str, Any]:
        cpu = self.server_delta("process_cpu_seconds_total")
        return {
            "interrupted": self.interrupted,
            "target_rate": self.target_rate,
            "scheduled_rate": self.scheduled_rate,
            "achieved_rate": self.achieved_rate,
            "scheduled": self.totals.scheduled,
            "duration_s": self.duration,
            "elapsed_s": self.elapsed,
            "published": self.totals.published,
            "acked": self.totals.acked,
            "publish_errors": self.totals.publish_errors,
            "late_publishes": self.totals.late_publishes,
            "samples_reflected": self.totals.samples_reflected,
            "samples_lost": self.lost_samples,
            "deliveries": self.totals.deliveries,
            "deliveries_lost": self.lost_deliveries,
            "duplicates": self.totals.duplicates,
            "seq_gaps": self.totals.seq_gaps,
            "resyncs": self.totals.resyncs,
            "connection_failures": self.totals.connection_failures,
            "reconnects": self.totals.reconnects,
            "frames": self.totals.frames,
            "frames_per_s": self.totals.frames / self.elapsed if self.elapsed > 0 else 0.0,
            "latency": self.latency.summary(),
            "latency_samples": self.latency.count,
            "server": {
                "cpu_seconds": cpu,
                "cpu_share": cpu / self.elapsed if self.elapsed > 0 else math.nan,
                "rss_bytes": self.server_after.get("process_resident_memory_bytes", math.nan),
                "counters": {
                    name: self.server_delta(name)
                    for name in sorted(self.server_after)
                    if name.startswith("sleepsync_")
                },
            },
        }

    def rows(self) -> list[tuple[str, str]]:
        """The report as (what, value) rows for a table."""
        j = self.to_json()
        lat = j["latency"]
        rows = [
            (
                "publish rate (target / scheduled / achieved)",
                f"{self.target_rate:,.0f} / {j['scheduled_rate']:,.0f} / "
                f"{j['achieved_rate']:,.0f} msg/s",
            ),
            (
                "samples published / reflected / lost",
                f"{j['published']:,} / {j['samples_reflected']:,} / {j['samples_lost']:,}",
            ),
            ("observer deliveries (got / lost)", f"{j['deliveries']:,} / {j['deliveries_lost']:,}"),
            (
                "duplicates, seq gaps, resyncs",
                f"{j['duplicates']}, {j['seq_gaps']}, {j['resyncs']}",
            ),
            ("connection failures, reconnects", f"{j['connection_failures']}, {j['reconnects']}"),
            (
                "latency p50 / p90 / p99",
                f"{lat['p50_ms']:.1f} / {lat['p90_ms']:.1f} / {lat['p99_ms']:.1f} ms",
            ),
            ("latency p99.9 / max", f"{lat['p999_ms']:.1f} / {lat['max_ms']:.1f} ms"),
            ("frames received", f"{j['frames']:,} ({j['frames_per_s']:,.0f}/s)"),
        ]
        server = j["server"]
        if not math.isnan(server["cpu_seconds"]):
            rows.append(
                (
                    "server CPU",
                    f"{server['cpu_seconds']:.1f} s ({server['cpu_share']:.0%} of a core)",
                )
            )
        if not math.isnan(server["rss_bytes"]):
            rows.append(("server RSS", f"{server['rss_bytes'] / 2**20:.0f} MiB"))
        for name in (
            "sleepsync_telemetry_ingested_total",
            "sleepsync_telemetry_duplicates_total",
            "sleepsync_telemetry_gaps_total",
            "sleepsync_slow_consumers_total",
            "sleepsync_ticks_skipped_total",
        ):
            if name in server["counters"]:
                rows.append((f"server {name[10:]}", f"{server['counters'][name]:,.0f}"))
        return rows


def parse_metrics(text: str, names: Iterable[str] | None = None) -> dict[str, float]:
    """Sum Prometheus text samples by metric name (labels folded together)."""
    wanted = set(names) if names is not None else None
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        if wanted is not None and name not in wanted:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        out[name] = out.get(name, 0.0) + number
    return out
