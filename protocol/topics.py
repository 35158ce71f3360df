"""MQTT topic names of pods and their parser.

Every pod topic has the shape ``sleepsync/v1/rooms/{room}/pods/{pod}/{kind}``
where ``kind`` is ``telemetry`` (pod -> server, QoS 1, not retained),
``status`` (pod -> server, retained, Last Will ``offline``) or ``cmd``
(server -> pod cues). Room ids follow :data:`~.wire.ROOM_RE` and pod ids
:data:`~.wire.NAME_RE`, so neither can hold ``/``, ``+`` or ``#``, and a pod id
doubles as the pod's broker username (the Mosquitto ACL pattern ``%u``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from .errors import TelemetryInvalid
from .wire import NAME_RE, ROOM_RE

__all__ = [
    "ALL_STATUS",
    "MAX_TOPIC_LEN",
    "TOPIC_PREFIX",
    "BrokerUrl",
    "PodTopic",
    "TopicKind",
    "cmd_topic",
    "parse_topic",
    "pod_ids",
    "room_filters",
    "status_topic",
    "telemetry_topic",
]

TOPIC_PREFIX = "sleepsync/v1/rooms"
TopicKind = Literal["telemetry", "status", "cmd"]
_KINDS: tuple[TopicKind, ...] = ("telemetry", "status", "cmd")
#: Longer topics are refused before any other check.
MAX_TOPIC_LEN = 256
#: Every pod's status in every room: how a node discovers rooms pods are in.
ALL_STATUS = f"{TOPIC_PREFIX}/+/pods/+/status"


@dataclass(frozen=True, slots=True)
class PodTopic:
    """A parsed pod topic."""

    room: str
    pod: str
    kind: TopicKind

    def __str__(self) -> str:
        return f"{TOPIC_PREFIX}/{self.room}/pods/{self.pod}/{self.kind}"


def telemetry_topic(room: str, pod: str) -> str:
    return str(PodTopic(room, pod, "telemetry"))


def status_topic(room: str, pod: str) -> str:
    return str(PodTopic(room, pod, "status"))


def cmd_topic(room: str, pod: str) -> str:
    return str(PodTopic(room, pod, "cmd"))


def room_filters(room: str) -> tuple[str, str]:
    """The subscriptions of a room's owner: every pod's telemetry and status."""
    base = f"{TOPIC_PREFIX}/{room}/pods/+"
    return (f"{base}/telemetry", f"{base}/status")


def pod_ids(count: int, prefix: str = "pod") -> list[str]:
    """``pod-001``, ``pod-002``...: the ids the simulator and the password generator share."""
    width = max(3, len(str(count)))
    ids = [f"{prefix}-{i:0{width}d}" for i in range(1, count + 1)]
    if ids and not NAME_RE.fullmatch(ids[-1]):
        raise ValueError(f"pod ids must match {NAME_RE.pattern}, got {ids[-1]!r}")
    return ids


def parse_topic(topic: str) -> PodTopic:
    """Split a pod topic into (room, pod, kind); anything else is ``wrong_topic``."""
    if len(topic) > MAX_TOPIC_LEN:
        raise TelemetryInvalid("wrong_topic", f"topic longer than {MAX_TOPIC_LEN} characters")
    parts = topic.split("/")
    if len(parts) != 7 or "/".join(parts[:3]) != TOPIC_PREFIX or parts[4] != "pods":
        raise TelemetryInvalid("wrong_topic", f"expected {TOPIC_PREFIX}/ROOM/pods/POD/KIND")
    room, pod, kind = parts[3], parts[5], parts[6]
    if not ROOM_RE.fullmatch(room):
        raise TelemetryInvalid("wrong_topic", f"room id must match {ROOM_RE.pattern}")
    if not NAME_RE.fullmatch(pod):
        raise TelemetryInvalid("wrong_topic", f"pod id must match {NAME_RE.pattern}")
    for known in _KINDS:
        if kind == known:
            return PodTopic(room, pod, known)
    raise TelemetryInvalid("wrong_topic", f"kind must be one of {', '.join(_KINDS)}")


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """Where an MQTT broker is: ``mqtt://user:pass@host:1883`` (user, pass optional)."""

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """Parse a broker URL; raise ValueError with a sentence for a person."""
        try:
            parts = urlsplit(url)
            port = parts.port or 1883
        except ValueError as exc:
            raise ValueError(f"bad MQTT URL {_redact(url)!r}: {exc}") from None
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError(
                f"MQTT URL must look like mqtt://user:pass@host:1883, got {_redact(url)!r}"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"MQTT URL takes no path or query, got {_redact(url)!r}")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port, username, password)

    def with_user(self, username: str | None, password: str | None) -> BrokerUrl:
        return BrokerUrl(self.host, self.port, username, password)

    def __str__(self) -> str:
        """The URL without its password (safe to log)."""
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        return f"{scheme}://{creds.partition(':')[0]}:***@{host}"
    return url
