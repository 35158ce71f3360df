"""MQTT topic names of pods and their parser.

Every pod topic has the shape ``sleepsync/v1/rooms/{room}/pods/{pod}/{kind}``
where ``kind`` is ``telemetry`` (pod -> server, QoS 1, not retained),
``status`` (pod -> server, retained, Last Will ``offline``) or ``cmd``
(server -> pod cues). Room ids follow :data:`~.wire.ROOM_RE` and pod ids
:data:`~.wire.NAME_RE`, so neither can hold ``/``, ``+`` or ``#``, and a pod id
doubles as the pod's broker username (the Mosquitto ACL pattern ``%u``).

:class:`BrokerUrl` is where a broker is (``mqtt://`` plain, ``mqtts://`` TLS)
and which TLS context to use; the MQTT clients of the server and the pod
tools all take it from here.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
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
    "explain_connect_error",
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


#: What each URL scheme means: (TLS, default port).
_SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883), "ssl": (True, 8883)}


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """Where an MQTT broker is: ``mqtt://user:pass@host:1883`` or ``mqtts://host:8883``.

    ``mqtts`` (or ``ssl``) means TLS, default port 8883. The password is kept
    out of ``str()`` and ``repr()``, so a URL can be logged as it is.
    """

    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """Parse a broker URL; raise ValueError with a sentence for a person."""
        try:
            parts = urlsplit(url)
            scheme = _SCHEMES.get(parts.scheme)
            port = parts.port or (scheme[1] if scheme else 1883)
        except ValueError as exc:
            raise ValueError(f"bad MQTT URL {_redact(url)!r}: {exc}") from None
        if scheme is None or not parts.hostname:
            raise ValueError(
                "MQTT URL must look like mqtt://user:pass@host:1883 or mqtts://host:8883, "
                f"got {_redact(url)!r}"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"MQTT URL takes no path or query, got {_redact(url)!r}")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, port, username, password, scheme[0])

    def with_user(self, username: str | None, password: str | None) -> BrokerUrl:
        return replace(self, username=username, password=password)

    def with_password(self, password: str) -> BrokerUrl:
        """This URL with a password read from elsewhere (a file); refuses a second one."""
        if self.password is not None:
            raise ValueError("the MQTT URL already carries a password: give it in one place only")
        return replace(self, password=password)

    def tls_context(self, ca_pem: str | None = None) -> ssl.SSLContext | None:
        """The TLS context of an ``mqtts://`` URL (None for plain ``mqtt://``).

        ``ca_pem`` is the text of a CA file (PEM) that signed the broker's
        certificate; without it the system's CAs are trusted. The broker's
        name is checked against its certificate. Raises ValueError with a
        sentence for a CA that is no PEM certificate, or for a CA given with
        a plain URL (it would silently do nothing).
        """
        if not self.tls:
            if ca_pem is not None:
                raise ValueError(f"a CA file needs an mqtts:// URL, got {self}")
            return None
        context = ssl.create_default_context()
        if ca_pem is not None:
            try:
                context.load_verify_locations(cadata=ca_pem)
            except (ssl.SSLError, ValueError) as exc:
                raise ValueError(f"the CA file holds no usable PEM certificate: {exc}") from None
        return context

    def __str__(self) -> str:
        """The URL without its password (safe to log)."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def explain_connect_error(error: object, broker: BrokerUrl) -> str:
    """One line for a person about a failed connection to ``broker``.

    TLS failures get a hint that names the likely fix; anything else is the
    error's own text. The line names no user (the caller's log line does, if
    it wants), so pods refused for one reason say the same; it never holds the
    URL's password.
    """
    text = str(error) or type(error).__name__
    if broker.password:
        text = text.replace(broker.password, "***")
    where = f"{broker.host}:{broker.port}"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        hint = "pass the CA file that signed it"
        return f"the TLS certificate of {where} is not trusted ({text}); {hint}"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return f"{where} does not speak TLS ({text}); use an mqtt:// URL"
    return text


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        return f"{scheme}://{creds.partition(':')[0]}:***@{host}"
    return url
