"""Pod telemetry, pod status and server-to-pod cues.

A pod publishes one msgpack map per sample::

    {"pod": "lila", "boot": "b-7f3a", "seq": 42, "ts": 1764115200.25,
     "hr": 58.0, "hrv": 62.0, "eda": 2.1, "resp": 13.5,
     "valence": 0.62, "arousal": 0.31}

``boot`` changes whenever the pod restarts, so ``(pod, boot, seq)`` names a
sample uniquely: the server deduplicates on it (QoS 1 redelivers) and counts
gaps in ``seq``. Raw vital signs are personal data: they stop at the engine and
never reach another client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import msgpack

from .errors import InvalidMessage, LimitExceeded, TelemetryInvalid
from .wire import NAME_RE, WireMap, get_float, get_int, get_str

__all__ = [
    "CUE_KINDS",
    "INVALID_REASONS",
    "MAX_TELEMETRY_BYTES",
    "Cue",
    "PodStatus",
    "TelemetrySample",
    "VitalSigns",
    "decode_cue",
    "decode_status",
    "decode_telemetry",
    "encode_cue",
    "encode_status",
    "encode_telemetry",
]

MAX_TELEMETRY_BYTES = 1024
BOOT_RE = NAME_RE
CueKind = Literal["calm", "breathe", "wake"]
CUE_KINDS: tuple[CueKind, ...] = ("calm", "breathe", "wake")
#: Every ``TelemetryInvalid.reason`` a pod payload or topic can earn
#: (``wrong_topic`` comes from :func:`~.topics.parse_topic`).
INVALID_REASONS = (
    "oversize",
    "bad_msgpack",
    "not_a_map",
    "bad_field",
    "out_of_range",
    "pod_mismatch",
    "wrong_topic",
)


@dataclass(frozen=True, slots=True)
class VitalSigns:
    """Vital signs of one sample, with physiological ranges."""

    heart_rate: float  # beats per minute, 20..250
    hrv: float  # RMSSD in milliseconds, 0..500
    skin_conductance: float  # microsiemens, 0..100
    respiration: float  # breaths per minute, 2..80


@dataclass(frozen=True, slots=True)
class TelemetrySample:
    """One telemetry sample from a pod; valence and arousal are in [0, 1]."""

    pod: str
    boot: str
    seq: int
    ts: float
    vitals: VitalSigns
    valence: float
    arousal: float

    def to_wire(self) -> WireMap:
        return {
            "pod": self.pod,
            "boot": self.boot,
            "seq": self.seq,
            "ts": self.ts,
            "hr": self.vitals.heart_rate,
            "hrv": self.vitals.hrv,
            "eda": self.vitals.skin_conductance,
            "resp": self.vitals.respiration,
            "valence": self.valence,
            "arousal": self.arousal,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> TelemetrySample:
        path = "telemetry"
        unknown = set(m) - _TELEMETRY_KEYS
        if unknown:
            raise InvalidMessage(f"{path}.{sorted(unknown)[0]}", "unknown field")
        return cls(
            pod=get_str(m, "pod", path, max_len=32, pattern=NAME_RE),
            boot=get_str(m, "boot", path, max_len=32, pattern=BOOT_RE),
            seq=get_int(m, "seq", path, lo=0, hi=2**53),
            ts=get_float(m, "ts", path, lo=0.0, hi=1e11),
            vitals=VitalSigns(
                heart_rate=get_float(m, "hr", path, lo=20.0, hi=250.0),
                hrv=get_float(m, "hrv", path, lo=0.0, hi=500.0),
                skin_conductance=get_float(m, "eda", path, lo=0.0, hi=100.0),
                respiration=get_float(m, "resp", path, lo=2.0, hi=80.0),
            ),
            valence=get_float(m, "valence", path, lo=0.0, hi=1.0),
            arousal=get_float(m, "arousal", path, lo=0.0, hi=1.0),
        )


_VITAL_KEYS = frozenset({"hr", "hrv", "eda", "resp"})
_TELEMETRY_KEYS = frozenset({"pod", "boot", "seq", "ts", "valence", "arousal"}) | _VITAL_KEYS


@dataclass(frozen=True, slots=True)
class PodStatus:
    """A pod's retained status: ``online`` on connect, ``offline`` as Last Will."""

    pod: str
    state: Literal["online", "offline"]


@dataclass(frozen=True, slots=True)
class Cue:
    """A server-to-pod cue: recovery asks a pod to calm its dreamer down."""

    pod: str
    kind: CueKind
    intensity: float  # 0..1
    reason: str


def _unpack(payload: bytes, what: str) -> dict[str, object]:
    if len(payload) > MAX_TELEMETRY_BYTES:
        raise TelemetryInvalid("oversize", f"{what} of {len(payload)} bytes")
    try:
        value = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            max_str_len=256,
            max_bin_len=0,
            max_array_len=0,
            max_map_len=32,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many unrelated types
        raise TelemetryInvalid("bad_msgpack", f"{what} is not valid msgpack") from exc
    if not isinstance(value, dict):
        raise TelemetryInvalid("not_a_map", f"{what} must be a msgpack map")
    return value


def decode_telemetry(payload: bytes, *, topic_pod: str | None = None) -> TelemetrySample:
    """Decode and validate one telemetry payload.

    ``topic_pod`` is the pod id from the topic; a payload naming another pod is
    refused (a pod may speak only for itself).
    """
    fields = _unpack(payload, "telemetry")
    try:
        sample = TelemetrySample.from_wire(fields)
    except (InvalidMessage, LimitExceeded) as exc:
        reason = "out_of_range" if "must be in" in str(exc) else "bad_field"
        if getattr(exc, "path", "").rpartition(".")[2] in _VITAL_KEYS:
            # Counted and logged like any bad field, but a vital sign's name and
            # value stay out of the server's logs (raw biometrics are personal data).
            detail = "a vital sign is missing, malformed or out of range (not logged)"
            raise TelemetryInvalid(reason, detail) from None
        raise TelemetryInvalid(reason, str(exc)) from exc
    if topic_pod is not None and sample.pod != topic_pod:
        raise TelemetryInvalid("pod_mismatch", "pod id in payload differs from the topic")
    return sample


def encode_telemetry(sample: TelemetrySample) -> bytes:
    return msgpack.packb(sample.to_wire(), use_bin_type=True)


def encode_status(status: PodStatus) -> bytes:
    return msgpack.packb({"pod": status.pod, "state": status.state}, use_bin_type=True)


def decode_status(payload: bytes, *, topic_pod: str | None = None) -> PodStatus:
    """Decode a status payload; the bare strings ``online``/``offline`` also work."""
    if payload in (b"online", b"offline") and topic_pod is not None:
        return PodStatus(topic_pod, "online" if payload == b"online" else "offline")
    fields = _unpack(payload, "status")
    try:
        pod = get_str(fields, "pod", "status", max_len=32, pattern=NAME_RE)
        state = get_str(fields, "state", "status", max_len=8)
    except InvalidMessage as exc:
        raise TelemetryInvalid("bad_field", str(exc)) from exc
    if state not in ("online", "offline"):
        raise TelemetryInvalid("bad_field", "status.state must be online or offline")
    if topic_pod is not None and pod != topic_pod:
        raise TelemetryInvalid("pod_mismatch", "pod id in payload differs from the topic")
    return PodStatus(pod, "online" if state == "online" else "offline")


def encode_cue(cue: Cue) -> bytes:
    return msgpack.packb(
        {"pod": cue.pod, "cue": cue.kind, "intensity": cue.intensity, "reason": cue.reason},
        use_bin_type=True,
    )


def decode_cue(payload: bytes) -> Cue:
    fields = _unpack(payload, "cue")
    try:
        pod = get_str(fields, "pod", "cue", max_len=32, pattern=NAME_RE)
        kind = get_str(fields, "cue", "cue", max_len=16)
        intensity = get_float(fields, "intensity", "cue", lo=0.0, hi=1.0)
        reason = get_str(fields, "reason", "cue", max_len=200)
    except InvalidMessage as exc:
        raise TelemetryInvalid("bad_field", str(exc)) from exc
    for known in CUE_KINDS:
        if kind == known:
            return Cue(pod, known, intensity, reason)
    raise TelemetryInvalid("bad_field", f"cue.cue must be one of {', '.join(CUE_KINDS)}")
