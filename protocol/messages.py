"""Websocket messages: one frozen dataclass per message type.

Every frame is one msgpack map whose ``"t"`` key names the type; the other
keys are the message's fields. Each class checks its values when it is built
(``__post_init__``), whether by ``from_wire`` on bytes from a peer or by local
code, so a message object that exists is valid; failures raise
:class:`~sleepsync.protocol.errors.InvalidMessage` naming the field.
:data:`ClientMessage` and :data:`ServerMessage` are the unions of the two
directions; :data:`Message` is both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeAlias

from .errors import InvalidMessage, SleepSyncError
from .wire import (
    MAX_FRAME,
    MAX_TEXT,
    NAME_RE,
    ROOM_RE,
    WireMap,
    WireValue,
    get_bool,
    get_float,
    get_int,
    get_map,
    get_str,
    optional,
    validate_text,
)

__all__ = [
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "ClientMessage",
    "Error",
    "Event",
    "Forget",
    "Forgotten",
    "Hello",
    "History",
    "Join",
    "Journal",
    "Leave",
    "Left",
    "ListRooms",
    "Message",
    "ResumePoint",
    "Resync",
    "Role",
    "RoomInfo",
    "Rooms",
    "Say",
    "ServerMessage",
    "Snapshot",
    "Status",
    "UploadTemplate",
    "Welcome",
]

PROTOCOL_VERSION = 1
MAX_SEQ = 2**62
#: Longest ``hello.token``: a signed token with these claims is about 300 characters.
MAX_TOKEN = 1024
#: Longest template text in an upload, in UTF-8 bytes: what fits in a frame of
#: the default size with room to spare for the frame's other keys.
MAX_TEMPLATE_TEXT = MAX_FRAME - 4 * 1024
#: Longest ``ref`` and ``code`` of an error, in characters.
MAX_REF = 32
MAX_CODE = 64
MAX_ERROR_MESSAGE = 1000
MAX_ROOMS_LISTED = 500
#: Most journal bytes in one ``journal`` frame: a frame of the default size
#: holds it with room to spare.
MAX_JOURNAL_CHUNK = MAX_FRAME - 4 * 1024
#: Most ``journal`` frames in one answer (the server refuses a bigger history).
MAX_JOURNAL_PARTS = 65536

Role = Literal["dreamer", "observer"]
TemplateFormat = Literal["json", "toml"]
StatusState = Literal["ok", "degraded", "shutting_down"]
ROLES: tuple[Role, ...] = ("dreamer", "observer")
FORMATS: tuple[TemplateFormat, ...] = ("json", "toml")
STATUS_STATES: tuple[StatusState, ...] = ("ok", "degraded", "shutting_down")


def _check_room(room: str, path: str) -> None:
    if not ROOM_RE.fullmatch(room):
        raise InvalidMessage(path, f"a room id must match {ROOM_RE.pattern}")


def _check_name(name: str, path: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise InvalidMessage(path, f"a name must match {NAME_RE.pattern}")


def _check_seq(value: int, path: str) -> None:
    if not 0 <= value <= MAX_SEQ:
        raise InvalidMessage(path, f"must be in 0..{MAX_SEQ}")


def _one_of(value: str, allowed: tuple[str, ...], path: str) -> None:
    if value not in allowed:
        raise InvalidMessage(path, f"must be one of {', '.join(allowed)}")


# ---------------------------------------------------------------- client -> server


@dataclass(frozen=True, slots=True)
class Hello:
    """First message of a session: who the user is and which protocol it speaks.

    ``token`` proves the name (see :mod:`.identity`); it never shows in a repr,
    so a log line that prints a hello never carries it."""

    TYPE: ClassVar[str] = "hello"
    name: str
    version: int = PROTOCOL_VERSION
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name, "hello.name")
        if not 0 <= self.version < 2**31:
            raise InvalidMessage("hello.version", "must be a small non-negative integer")
        if self.token is not None and len(self.token) > MAX_TOKEN:
            raise InvalidMessage("hello.token", f"at most {MAX_TOKEN} characters")

    def to_wire(self) -> WireMap:
        out: WireMap = {"t": self.TYPE, "version": self.version, "name": self.name}
        if self.token is not None:
            out["token"] = self.token
        return out

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Hello:
        p = cls.TYPE
        return cls(
            name=get_str(m, "name", p, max_len=32),
            version=get_int(m, "version", p, lo=0, hi=2**31 - 1),
            token=get_str(m, "token", p, max_len=MAX_TOKEN) if optional(m, "token") else None,
        )


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """The last (epoch, seq) a client saw in a room."""

    epoch: int
    seq: int

    def __post_init__(self) -> None:
        _check_seq(self.epoch, "resume.epoch")
        _check_seq(self.seq, "resume.seq")

    def to_wire(self) -> WireMap:
        return {"epoch": self.epoch, "seq": self.seq}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> ResumePoint:
        return cls(
            epoch=get_int(m, "epoch", path, lo=0, hi=MAX_SEQ),
            seq=get_int(m, "seq", path, lo=0, hi=MAX_SEQ),
        )


@dataclass(frozen=True, slots=True)
class Join:
    """Enter a room as a dreamer or an observer, optionally resuming."""

    TYPE: ClassVar[str] = "join"
    room: str
    role: Role = "dreamer"
    resume: ResumePoint | None = None

    def __post_init__(self) -> None:
        _check_room(self.room, "join.room")
        _one_of(self.role, ROLES, "join.role")

    def to_wire(self) -> WireMap:
        out: WireMap = {"t": self.TYPE, "room": self.room, "role": self.role}
        if self.resume is not None:
            out["resume"] = self.resume.to_wire()
        return out

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Join:
        p = cls.TYPE
        role = get_str(m, "role", p, max_len=16)
        _one_of(role, ROLES, "join.role")
        resume = (
            ResumePoint.from_wire(get_map(m, "resume", p), "join.resume")
            if optional(m, "resume")
            else None
        )
        return cls(
            room=get_str(m, "room", p, max_len=48),
            role="dreamer" if role == "dreamer" else "observer",
            resume=resume,
        )


@dataclass(frozen=True, slots=True)
class Leave:
    TYPE: ClassVar[str] = "leave"
    room: str

    def __post_init__(self) -> None:
        _check_room(self.room, "leave.room")

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE, "room": self.room}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Leave:
        return cls(room=get_str(m, "room", cls.TYPE, max_len=48))


@dataclass(frozen=True, slots=True)
class Say:
    """Tell a story line into a room (members see it in the next tick)."""

    TYPE: ClassVar[str] = "say"
    room: str
    text: str

    def __post_init__(self) -> None:
        _check_room(self.room, "say.room")
        if validate_text(self.text, "say.text") != self.text:
            raise InvalidMessage("say.text", "must not start or end with white space")

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE, "room": self.room, "text": self.text}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Say:
        p = cls.TYPE
        text = validate_text(get_str(m, "text", p, max_len=4 * MAX_TEXT), "say.text")
        return cls(room=get_str(m, "room", p, max_len=48), text=text)


@dataclass(frozen=True, slots=True)
class ListRooms:
    TYPE: ClassVar[str] = "list_rooms"

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> ListRooms:
        return cls()


@dataclass(frozen=True, slots=True)
class UploadTemplate:
    """Upload a narrative template (JSON or TOML text) to a room."""

    TYPE: ClassVar[str] = "upload_template"
    room: str
    format: TemplateFormat
    text: str

    def __post_init__(self) -> None:
        _check_room(self.room, "upload_template.room")
        _one_of(self.format, FORMATS, "upload_template.format")
        if len(self.text.encode()) > MAX_TEMPLATE_TEXT:
            raise InvalidMessage("upload_template.text", f"at most {MAX_TEMPLATE_TEXT} bytes")

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE, "room": self.room, "format": self.format, "text": self.text}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> UploadTemplate:
        p = cls.TYPE
        fmt = get_str(m, "format", p, max_len=8)
        _one_of(fmt, FORMATS, "upload_template.format")
        return cls(
            room=get_str(m, "room", p, max_len=48),
            format="json" if fmt == "json" else "toml",
            text=get_str(m, "text", p, max_len=MAX_TEMPLATE_TEXT),
        )


@dataclass(frozen=True, slots=True)
class History:
    """Ask for a room's retained history as a dream journal (answered by ``journal`` frames)."""

    TYPE: ClassVar[str] = "history"
    room: str

    def __post_init__(self) -> None:
        _check_room(self.room, "history.room")

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE, "room": self.room}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> History:
        return cls(room=get_str(m, "room", cls.TYPE, max_len=48))


@dataclass(frozen=True, slots=True)
class Forget:
    """Erase everything stored about a room (operators only); answered with ``forgotten``."""

    TYPE: ClassVar[str] = "forget"
    room: str

    def __post_init__(self) -> None:
        _check_room(self.room, "forget.room")

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE, "room": self.room}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Forget:
        return cls(room=get_str(m, "room", cls.TYPE, max_len=48))


# ---------------------------------------------------------------- server -> client


@dataclass(frozen=True, slots=True)
class Welcome:
    """Answer to hello: the session is open."""

    TYPE: ClassVar[str] = "welcome"
    version: int
    node: str
    session: str
    max_frame: int
    max_rate: int

    def to_wire(self) -> WireMap:
        return {
            "t": self.TYPE,
            "version": self.version,
            "node": self.node,
            "session": self.session,
            "max_frame": self.max_frame,
            "max_rate": self.max_rate,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Welcome:
        p = cls.TYPE
        return cls(
            version=get_int(m, "version", p, lo=0, hi=2**31 - 1),
            node=get_str(m, "node", p, max_len=64),
            session=get_str(m, "session", p, max_len=64),
            max_frame=get_int(m, "max_frame", p, lo=0, hi=2**31),
            max_rate=get_int(m, "max_rate", p, lo=0, hi=2**31),
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole visible state of a room at (epoch, seq); events continue at seq + 1."""

    TYPE: ClassVar[str] = "snapshot"
    room: str
    epoch: int
    seq: int
    state: WireMap

    def __post_init__(self) -> None:
        _check_room(self.room, "snapshot.room")
        _check_seq(self.epoch, "snapshot.epoch")
        _check_seq(self.seq, "snapshot.seq")

    def to_wire(self) -> WireMap:
        return {
            "t": self.TYPE,
            "room": self.room,
            "epoch": self.epoch,
            "seq": self.seq,
            "state": self.state,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Snapshot:
        p = cls.TYPE
        return cls(
            room=get_str(m, "room", p, max_len=48),
            epoch=get_int(m, "epoch", p, lo=0, hi=MAX_SEQ),
            seq=get_int(m, "seq", p, lo=0, hi=MAX_SEQ),
            state=_wire_map(get_map(m, "state", p)),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """What changed in a room during one tick; ``seq`` is contiguous per room."""

    TYPE: ClassVar[str] = "event"
    room: str
    epoch: int
    seq: int
    tick: int
    items: list[WireMap]
    #: Server wall-clock time (Unix seconds) when the tick ran; 0.0 when unknown.
    ts: float = 0.0

    def __post_init__(self) -> None:
        _check_room(self.room, "event.room")
        _check_seq(self.epoch, "event.epoch")
        _check_seq(self.seq, "event.seq")
        _check_seq(self.tick, "event.tick")
        for i, item in enumerate(self.items):
            kind = item.get("kind")
            if not isinstance(kind, str):
                raise InvalidMessage(f"event.items[{i}].kind", "expected a string")

    def to_wire(self) -> WireMap:
        return {
            "t": self.TYPE,
            "room": self.room,
            "epoch": self.epoch,
            "seq": self.seq,
            "tick": self.tick,
            "items": list[WireValue](self.items),
            "ts": self.ts,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Event:
        p = cls.TYPE
        raw = m.get("items")
        if not isinstance(raw, list):
            raise InvalidMessage("event.items", "expected an array")
        items: list[WireMap] = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise InvalidMessage(f"event.items[{i}]", "expected a map")
            items.append(_wire_map(item))
        return cls(
            room=get_str(m, "room", p, max_len=48),
            epoch=get_int(m, "epoch", p, lo=0, hi=MAX_SEQ),
            seq=get_int(m, "seq", p, lo=0, hi=MAX_SEQ),
            tick=get_int(m, "tick", p, lo=0, hi=MAX_SEQ),
            items=items,
            ts=get_float(m, "ts", p, lo=0.0, hi=1e11) if optional(m, "ts") else 0.0,
        )


@dataclass(frozen=True, slots=True)
class Resync:
    """The client's history has a gap it cannot fill: a fresh snapshot follows."""

    TYPE: ClassVar[str] = "resync"
    room: str
    reason: str

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE, "room": self.room, "reason": self.reason}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Resync:
        p = cls.TYPE
        return cls(
            room=get_str(m, "room", p, max_len=48), reason=get_str(m, "reason", p, max_len=200)
        )


@dataclass(frozen=True, slots=True)
class Error:
    """A request failed. ``fatal`` means the server closes the connection next."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    fatal: bool = False
    #: The type of the message this error answers; ``"?"`` for a frame whose
    #: type could not be read; None when it answers no message.
    ref: str | None = None

    @classmethod
    def about(cls, error: SleepSyncError, ref: str | None, *, fatal: bool = False) -> Error:
        """The error message telling a peer about ``error``; fatal when the
        error has a close code, or when ``fatal`` says the connection closes next."""
        return cls(
            code=error.code[:MAX_CODE],
            message=error.message[:MAX_ERROR_MESSAGE],
            fatal=fatal or error.close_code is not None,
            ref=None if ref is None else ref[:MAX_REF],
        )

    def to_wire(self) -> WireMap:
        out: WireMap = {
            "t": self.TYPE,
            "code": self.code,
            "message": self.message,
            "fatal": self.fatal,
        }
        if self.ref is not None:
            out["ref"] = self.ref
        return out

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Error:
        p = cls.TYPE
        return cls(
            code=get_str(m, "code", p, max_len=MAX_CODE),
            message=get_str(m, "message", p, max_len=MAX_ERROR_MESSAGE),
            fatal=get_bool(m, "fatal", p),
            ref=get_str(m, "ref", p, max_len=MAX_REF) if optional(m, "ref") else None,
        )


@dataclass(frozen=True, slots=True)
class RoomInfo:
    room: str
    dreamers: int
    observers: int
    phase: str

    def to_wire(self) -> WireMap:
        return {
            "room": self.room,
            "dreamers": self.dreamers,
            "observers": self.observers,
            "phase": self.phase,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> RoomInfo:
        return cls(
            room=get_str(m, "room", path, max_len=48),
            dreamers=get_int(m, "dreamers", path, lo=0, hi=2**31),
            observers=get_int(m, "observers", path, lo=0, hi=2**31),
            phase=get_str(m, "phase", path, max_len=32),
        )


@dataclass(frozen=True, slots=True)
class Rooms:
    TYPE: ClassVar[str] = "rooms"
    rooms: list[RoomInfo]

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE, "rooms": [r.to_wire() for r in self.rooms]}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Rooms:
        raw = m.get("rooms")
        if not isinstance(raw, list):
            raise InvalidMessage("rooms.rooms", "expected an array")
        rooms: list[RoomInfo] = []
        for i, item in enumerate(raw[:MAX_ROOMS_LISTED]):
            if not isinstance(item, dict):
                raise InvalidMessage(f"rooms.rooms[{i}]", "expected a map")
            rooms.append(RoomInfo.from_wire(item, f"rooms.rooms[{i}]"))
        return cls(rooms=rooms)


@dataclass(frozen=True, slots=True)
class Left:
    """Acknowledges a leave: no more events from that room."""

    TYPE: ClassVar[str] = "left"
    room: str

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE, "room": self.room}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Left:
        return cls(room=get_str(m, "room", cls.TYPE, max_len=48))


@dataclass(frozen=True, slots=True)
class Forgotten:
    """Answers ``forget``: nothing of the room is stored any more."""

    TYPE: ClassVar[str] = "forgotten"
    room: str

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE, "room": self.room}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Forgotten:
        return cls(room=get_str(m, "room", cls.TYPE, max_len=48))


@dataclass(frozen=True, slots=True)
class Status:
    """The node's state changed: degraded (backend trouble) or shutting down."""

    TYPE: ClassVar[str] = "status"
    state: StatusState
    message: str

    def __post_init__(self) -> None:
        _one_of(self.state, STATUS_STATES, "status.state")

    def to_wire(self) -> WireMap:
        return {"t": self.TYPE, "state": self.state, "message": self.message}

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Status:
        p = cls.TYPE
        state = get_str(m, "state", p, max_len=16)
        _one_of(state, STATUS_STATES, "status.state")
        return cls(
            state="ok" if state == "ok" else "degraded" if state == "degraded" else "shutting_down",
            message=get_str(m, "message", p, max_len=500),
        )


@dataclass(frozen=True, slots=True)
class Journal:
    """One part of a room's history as a dream journal file; ``last`` ends it.

    The parts' ``data``, concatenated in ``part`` order (0, 1, …), are the
    journal's bytes (the format is documented in the README).
    """

    TYPE: ClassVar[str] = "journal"
    room: str
    part: int
    last: bool
    data: bytes

    def __post_init__(self) -> None:
        _check_room(self.room, "journal.room")
        if not 0 <= self.part < MAX_JOURNAL_PARTS:
            raise InvalidMessage("journal.part", f"must be in 0..{MAX_JOURNAL_PARTS - 1}")
        if len(self.data) > MAX_JOURNAL_CHUNK:
            raise InvalidMessage("journal.data", f"at most {MAX_JOURNAL_CHUNK} bytes")

    def to_wire(self) -> WireMap:
        return {
            "t": self.TYPE,
            "room": self.room,
            "part": self.part,
            "last": self.last,
            "data": self.data,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> Journal:
        p = cls.TYPE
        data = m.get("data")
        if not isinstance(data, bytes):
            raise InvalidMessage("journal.data", "expected binary data")
        return cls(
            room=get_str(m, "room", p, max_len=48),
            part=get_int(m, "part", p, lo=0, hi=MAX_JOURNAL_PARTS - 1),
            last=get_bool(m, "last", p),
            data=data,
        )


def _wire_map(m: dict[str, object]) -> WireMap:
    """A decoded map is a WireMap: the codec only produces wire values."""
    out: WireMap = {}
    for key, value in m.items():
        out[key] = value  # type: ignore[assignment]
    return out


ClientMessage: TypeAlias = (
    Hello | Join | Leave | Say | ListRooms | UploadTemplate | Forget | History
)
ServerMessage: TypeAlias = (
    Welcome | Snapshot | Event | Resync | Error | Rooms | Left | Forgotten | Status | Journal
)
Message: TypeAlias = ClientMessage | ServerMessage

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Join,
        Leave,
        Say,
        ListRooms,
        UploadTemplate,
        Forget,
        History,
        Welcome,
        Snapshot,
        Event,
        Resync,
        Error,
        Rooms,
        Left,
        Forgotten,
        Status,
        Journal,
    )
}
CLIENT_TYPES = frozenset(
    c.TYPE for c in (Hello, Join, Leave, Say, ListRooms, UploadTemplate, Forget, History)
)
