"""What the ingest remembers about each pod: pure, no I/O, no clocks.

How it works: QoS 1 delivers at least once, so the same sample can arrive
twice. For each pod the tracker keeps, per boot id (the last
``boots_per_pod`` of them), the highest ``seq`` seen and the set of seqs seen
within ``window`` of it. A sample whose seq is in the set, or older than the
window, is a duplicate; a sample that jumps ahead leaves a gap of the seqs it
skipped (counted as missing); a late sample that fills a gap is accepted and
counted as reordered. A new boot id starts a fresh window (a pod restarted).

Invalid payloads are counted per pod and per reason. A pod with
``fault_threshold`` invalid payloads within ``fault_window`` seconds is
reported once as a sensor fault (and its count starts again), so a pod that
keeps sending garbage becomes a glitch source in the engine at a bounded rate.
Logging of invalid payloads is rate limited per pod: the tracker says when to
log and how many drops were suppressed since.

Memory is bounded: at most ``max_pods`` pods are remembered (the least
recently seen is forgotten first) and each boot keeps at most ``window`` seqs.
Callers pass ``now`` (seconds, any monotonic origin) so tests need no clock.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from sleepsync.protocol.telemetry import TelemetrySample

__all__ = ["Accepted", "InvalidOutcome", "PodStats", "PodTracker"]

#: The pod key under which payloads with no usable pod id are counted.
UNKNOWN_POD = "?"


@dataclass(frozen=True, slots=True)
class Accepted:
    """The verdict on one valid sample."""

    duplicate: bool
    #: Seqs skipped by this sample (0 unless it jumped ahead).
    missing: int = 0
    #: True when the sample filled an earlier gap (it arrived late).
    reordered: bool = False
    #: True when the sample started a boot id not seen before.
    new_boot: bool = False


@dataclass(frozen=True, slots=True)
class InvalidOutcome:
    """What to do about one invalid payload."""

    #: Invalid payloads in the current fault window, when this one made the pod
    #: a sensor fault; None otherwise.
    fault: int | None
    #: Whether to log this drop now (rate limited per pod).
    log: bool
    #: Drops of this pod not logged since its last logged one.
    suppressed: int


@dataclass(slots=True)
class _Boot:
    high: int
    seen: set[int] = field(default_factory=set)
    order: deque[int] = field(default_factory=deque)


@dataclass(slots=True)
class PodStats:
    """Counters of one pod (what tests and operators read)."""

    accepted: int = 0
    duplicates: int = 0
    missing: int = 0
    reordered: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    boots: OrderedDict[str, _Boot] = field(default_factory=OrderedDict)
    fault_times: deque[float] = field(default_factory=deque)
    faults: int = 0
    last_log: float | None = None
    suppressed: int = 0

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())


class PodTracker:
    """Deduplication, gap counting and invalid-payload bookkeeping for all pods."""

    def __init__(
        self,
        *,
        window: int = 1024,
        boots_per_pod: int = 2,
        fault_threshold: int = 10,
        fault_window: float = 10.0,
        log_interval: float = 10.0,
        max_pods: int = 100_000,
    ) -> None:
        if window < 1 or boots_per_pod < 1 or fault_threshold < 1 or max_pods < 1:
            raise ValueError("window, boots_per_pod, fault_threshold and max_pods must be >= 1")
        self.window = window
        self.boots_per_pod = boots_per_pod
        self.fault_threshold = fault_threshold
        self.fault_window = fault_window
        self.log_interval = log_interval
        self.max_pods = max_pods
        self._pods: OrderedDict[str, PodStats] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pods)

    def __contains__(self, pod: object) -> bool:
        return pod in self._pods

    def stats(self, pod: str) -> PodStats:
        """The counters of ``pod`` (zeros for a pod never seen)."""
        return self._pods.get(pod) or PodStats()

    def _pod(self, pod: str) -> PodStats:
        stats = self._pods.get(pod)
        if stats is None:
            stats = self._pods[pod] = PodStats()
            if len(self._pods) > self.max_pods:
                self._pods.popitem(last=False)
        else:
            self._pods.move_to_end(pod)
        return stats

    # ------------------------------------------------------------ valid samples
    def accept(self, sample: TelemetrySample) -> Accepted:
        """Record a valid sample; say whether it is new and what it skipped."""
        stats = self._pod(sample.pod)
        seq = sample.seq
        boot = stats.boots.get(sample.boot)
        if boot is None:
            boot = stats.boots[sample.boot] = _Boot(high=seq)
            if len(stats.boots) > self.boots_per_pod:
                stats.boots.popitem(last=False)
            self._remember(boot, seq)
            stats.accepted += 1
            return Accepted(duplicate=False, new_boot=True)
        stats.boots.move_to_end(sample.boot)
        if seq in boot.seen or seq <= boot.high - self.window:
            stats.duplicates += 1
            return Accepted(duplicate=True)
        stats.accepted += 1
        self._remember(boot, seq)
        if seq > boot.high:
            skipped = seq - boot.high - 1
            boot.high = seq
            stats.missing += skipped
            return Accepted(duplicate=False, missing=skipped)
        # A late sample inside the window fills a gap counted earlier.
        stats.reordered += 1
        stats.missing = max(0, stats.missing - 1)
        return Accepted(duplicate=False, reordered=True)

    def _remember(self, boot: _Boot, seq: int) -> None:
        boot.seen.add(seq)
        boot.order.append(seq)
        floor = boot.high - self.window
        while boot.order and (len(boot.order) > self.window or boot.order[0] <= floor):
            boot.seen.discard(boot.order.popleft())

    # ------------------------------------------------------------ invalid payloads
    def invalid(self, pod: str | None, reason: str, now: float) -> InvalidOutcome:
        """Count an invalid payload of ``pod`` (None: no usable pod id)."""
        stats = self._pod(UNKNOWN_POD if pod is None else pod)
        stats.invalid[reason] += 1
        fault: int | None = None
        if pod is not None:
            times = stats.fault_times
            times.append(now)
            while times and now - times[0] > self.fault_window:
                times.popleft()
            if len(times) >= self.fault_threshold:
                fault = len(times)
                stats.faults += 1
                times.clear()
        if stats.last_log is None or now - stats.last_log >= self.log_interval:
            suppressed, stats.suppressed = stats.suppressed, 0
            stats.last_log = now
            return InvalidOutcome(fault, True, suppressed)
        stats.suppressed += 1
        return InvalidOutcome(fault, False, stats.suppressed)
