"""What the ingest remembers about each pod: pure, no I/O, no clocks.

How it works: QoS 1 delivers at least once, so the same sample can arrive
twice. For each pod the tracker keeps, per boot id (the last
``boots_per_pod`` of them), the highest ``seq`` seen and the set of seqs seen
within ``window`` of it. A sample whose seq is in the set is a duplicate; a
sample that moves ahead leaves a gap of the seqs it skipped (counted as
missing); a late sample that fills a gap is accepted and counted as
reordered. A new boot id starts a fresh window (a pod restarted).

Nothing one sample says can silence a pod. The rules, in the order they
apply ("current" means not older than the pod's newest accepted ``ts`` less
``max_skew``):

====================================  =======================================
a sample ...                          verdict
====================================  =======================================
with ``ts`` more than ``max_skew``    refused ``future_ts`` (a bogus future
seconds ahead of the server's clock   ``ts`` would make later boots stale)
of a boot retired from this pod       refused ``retired_boot``: cycling boot
(pushed out by newer boots)           ids cannot replay old samples
of a new boot, not current            refused ``stale_boot``: a restart never
                                      starts in the past
whose seq is in ``seen`` or held       duplicate (a QoS 1 redelivery)
right after a held candidate, and     confirms it: the boot re-anchors here
following it (``cand < seq < cand +   (``high = seq``) and the candidate is
window``), both current               released, delivered before this one
out of the boot's window, i.e. not    held as the boot's candidate, and a
``high - window < seq <= high +       previous candidate is discarded
window``                              (counted as ``seq_jump``)
otherwise                             accepted (new, gap, or reordered); a
                                      previous candidate is discarded
====================================  =======================================

So a single sample at seq 2^53 is held, then discarded by the next real
sample. Even a bogus first sample, which anchors its boot, is undone by the
next two real samples: they confirm each other and both are delivered. A
genuine jump (a pod that skipped far ahead) costs one sample of delay.

Invalid payloads are counted per pod and per reason. A pod with
``fault_threshold`` invalid payloads within ``fault_window`` seconds is
reported once as a sensor fault (and its count starts again), so a pod that
keeps sending garbage becomes a glitch source in the engine at a bounded rate.
Logging of invalid payloads is rate limited per pod: the tracker says when to
log and how many drops were suppressed since.

Memory is bounded: at most ``max_pods`` pods are remembered (the least
recently seen is forgotten first, and with it its retired boots), each keeps
at most ``boots_per_pod`` boots of at most ``window`` seqs and one held
sample each, and at most ``retired_boots`` retired boot ids. Callers pass
``now`` (seconds; wall-clock for :meth:`PodTracker.accept`, any monotonic
origin for :meth:`PodTracker.invalid`) so tests need no clock.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from sleepsync.protocol.telemetry import TelemetrySample

__all__ = ["REFUSE_REASONS", "Accepted", "InvalidOutcome", "PodStats", "PodTracker"]

#: The pod key under which payloads with no usable pod id are counted.
UNKNOWN_POD = "?"
#: Why a valid sample can be refused (``Accepted.refused``); ``seq_jump`` is a
#: held sample that the next one did not confirm (``Accepted.discarded``).
REFUSE_REASONS = ("future_ts", "retired_boot", "stale_boot", "seq_jump")


@dataclass(frozen=True, slots=True)
class Accepted:
    """The verdict on one valid sample: deliver it or not, and what to count."""

    duplicate: bool = False
    #: Seqs skipped by this sample (0 unless it moved ahead within the window).
    missing: int = 0
    #: True when the sample filled an earlier gap (it arrived late).
    reordered: bool = False
    #: True when the sample started a boot id not seen before.
    new_boot: bool = False
    #: One of ``REFUSE_REASONS`` when the sample is refused outright.
    refused: str | None = None
    #: True when the sample jumped out of its boot's window and waits for the next.
    held: bool = False
    #: The held sample this one confirmed: deliver it first (the boot re-anchored).
    released: TelemetrySample | None = None
    #: True when this sample did not confirm the held one, which is now dropped.
    discarded: bool = False

    @property
    def delivered(self) -> bool:
        """Whether this sample goes to the room (``released`` goes before it)."""
        return not (self.duplicate or self.held or self.refused)


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
    #: A sample out of the window, waiting for the next sample to confirm it.
    candidate: TelemetrySample | None = None


@dataclass(slots=True)
class PodStats:
    """Counters of one pod (what tests and operators read)."""

    accepted: int = 0
    duplicates: int = 0
    missing: int = 0
    reordered: int = 0
    #: Boots re-anchored by a confirmed seq jump.
    resyncs: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    boots: OrderedDict[str, _Boot] = field(default_factory=OrderedDict)
    #: Boot ids pushed out by newer ones (oldest first); their samples are refused.
    retired: OrderedDict[str, None] = field(default_factory=OrderedDict)
    #: The newest ``ts`` of an accepted sample (pod time).
    newest_ts: float | None = None
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
        max_skew: float = 60.0,
        retired_boots: int = 64,
    ) -> None:
        if min(window, boots_per_pod, fault_threshold, max_pods, retired_boots) < 1:
            raise ValueError(
                "window, boots_per_pod, fault_threshold, max_pods and retired_boots must be >= 1"
            )
        if max_skew < 0:
            raise ValueError("max_skew must be >= 0")
        self.window = window
        self.boots_per_pod = boots_per_pod
        self.max_skew = max_skew
        self.retired_boots = retired_boots
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
    def accept(self, sample: TelemetrySample, *, now: float) -> Accepted:
        """Judge a valid sample; ``now`` is the server's wall clock (Unix seconds)."""
        stats = self._pod(sample.pod)
        if sample.ts > now + self.max_skew:
            return self._refuse(stats, "future_ts")
        boot = stats.boots.get(sample.boot)
        if boot is None:
            return self._new_boot(stats, sample)
        stats.boots.move_to_end(sample.boot)
        seq = sample.seq
        if seq in boot.seen or (boot.candidate is not None and boot.candidate.seq == seq):
            stats.duplicates += 1
            return Accepted(duplicate=True)
        held, boot.candidate = boot.candidate, None
        if held is not None and self._confirms(stats, held, sample):
            return self._resync(stats, boot, held, sample)
        if not boot.high - self.window < seq <= boot.high + self.window:
            boot.candidate = sample
            if held is not None:
                stats.refused["seq_jump"] += 1
            return Accepted(held=True, discarded=held is not None)
        discarded = held is not None
        if discarded:
            stats.refused["seq_jump"] += 1
        self._accepted(stats, sample)
        self._remember(boot, seq)
        if seq > boot.high:
            skipped = seq - boot.high - 1
            boot.high = seq
            stats.missing += skipped
            return Accepted(missing=skipped, discarded=discarded)
        # A late sample inside the window fills a gap counted earlier.
        stats.reordered += 1
        stats.missing = max(0, stats.missing - 1)
        return Accepted(reordered=True, discarded=discarded)

    def _new_boot(self, stats: PodStats, sample: TelemetrySample) -> Accepted:
        if sample.boot in stats.retired:
            return self._refuse(stats, "retired_boot")
        if stats.newest_ts is not None and sample.ts < stats.newest_ts - self.max_skew:
            return self._refuse(stats, "stale_boot")
        boot = stats.boots[sample.boot] = _Boot(high=sample.seq)
        if len(stats.boots) > self.boots_per_pod:
            retired, _ = stats.boots.popitem(last=False)
            stats.retired[retired] = None
            if len(stats.retired) > self.retired_boots:
                stats.retired.popitem(last=False)
        self._remember(boot, sample.seq)
        self._accepted(stats, sample)
        return Accepted(new_boot=True)

    def _confirms(self, stats: PodStats, held: TelemetrySample, sample: TelemetrySample) -> bool:
        """Whether ``sample`` follows ``held`` closely enough, both current, to re-anchor."""
        follows = held.seq < sample.seq < held.seq + self.window
        floor = -math.inf if stats.newest_ts is None else stats.newest_ts - self.max_skew
        return follows and min(held.ts, sample.ts) >= floor

    def _resync(
        self, stats: PodStats, boot: _Boot, held: TelemetrySample, sample: TelemetrySample
    ) -> Accepted:
        # Seqs seen before stay remembered (their redeliveries are still duplicates)
        # until the window, now around the new high, leaves them behind.
        boot.high = sample.seq
        self._remember(boot, held.seq)
        self._remember(boot, sample.seq)
        stats.resyncs += 1
        self._accepted(stats, held)
        self._accepted(stats, sample)
        return Accepted(released=held)

    @staticmethod
    def _accepted(stats: PodStats, sample: TelemetrySample) -> None:
        stats.accepted += 1
        if stats.newest_ts is None or sample.ts > stats.newest_ts:
            stats.newest_ts = sample.ts

    @staticmethod
    def _refuse(stats: PodStats, reason: str) -> Accepted:
        stats.refused[reason] += 1
        return Accepted(refused=reason)

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
