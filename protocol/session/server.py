"""The server's side of one connection, as a plain object: no socket, no clock.

How it works: a :class:`ServerSession` holds everything the server knows
about one connection. The gateway decodes each frame and calls
:meth:`ServerSession.receive` with the message (or the
:class:`~sleepsync.protocol.errors.RemoteError` the codec raised) and the
current time; the session answers with a list of *actions*: a message to
:class:`~.common.Send`, a :class:`Close`, or a domain request (:class:`EnterRoom`,
:class:`LeaveRoom`, :class:`TellStory`, :class:`ApplyTemplate`,
:class:`FetchRooms`, :class:`ForgetRoom`, :class:`FetchHistory`) for the
gateway to carry out. The outcome of a request comes back as a method call
(``joined``, ``join_failed``, ``left``, ``listed``, ``forgot``, ``room_gone``,
``history``, ``request_failed``) that returns actions too. Timers are
:meth:`ServerSession.poll`; :meth:`ServerSession.deadline` says when::

    greeting ──hello, right version, valid token──▶ open
        │                                            │
        └──── any fatal error ───────────────────────┴──▶ closed (after Close: no more sends)

Identity: with :class:`~..identity.Keys` (auth on) hello must carry a token
for its name (:func:`~..identity.verify`); the token's claims decide which
rooms the connection may name and what it may do there. Without keys (open
mode, loopback only) every name gets :meth:`~..identity.Claims.open`: any
room, operator role. Names in the pods' namespace are never taken.

Every frame meets these rules, in this order:

1. the timers: still greeting ``hello_timeout`` seconds after the
   connection opened → ``hello_timeout``; the token expired (plus
   :data:`~..identity.LEEWAY`) → ``unauthorized``; both close 1008, before
   the frame is looked at;
2. the rate bucket: every frame, valid or not, spends a token (``max_rate``
   a second, bursts of ``burst``); none left → ``rate_limited``, close 1008;
3. a frame the codec refused is refused with the codec's error;
4. :data:`RULES`, one row per client message type: hello first and only
   once, the room joined (or not yet), a room the token covers, the action
   the token's role allows (:data:`PERMISSIONS`) and the seat it needs;
   a server message type is ``unknown_type``;
5. the message's own rule: the protocol version and the token at hello;
   at join the seats the token's role may take (:data:`SEATS`), the
   connection's room limit and its budget of new rooms a minute; at upload
   the pause between two templates.

A refused frame is answered with an ``error`` whose ``ref`` is the frame's
type (:data:`UNREAD_REF` when the type could not be read) and counts as bad;
``max_bad_frames`` bad frames in a row → ``too_many_bad_frames``, close 1008.
An accepted frame resets the count. Errors that answer no frame (the hello
timer, a lost room) have no ``ref``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal, TypeAlias

from ..errors import (
    CLOSE_POLICY,
    AlreadyJoined,
    Forbidden,
    HelloRepeated,
    HelloRequired,
    HelloTimeout,
    LocalError,
    NameTaken,
    NotJoined,
    RateLimited,
    RemoteError,
    SleepSyncError,
    SlowConsumer,
    TooManyBadFrames,
    TooManyRooms,
    Unauthorized,
    UnknownMessage,
    UploadTooSoon,
    VersionMismatch,
)
from ..identity import LEEWAY, POD_NAMESPACE, Claims, Keys, TokenRole, is_pod_name, verify
from ..messages import (
    MAX_JOURNAL_CHUNK,
    PROTOCOL_VERSION,
    ClientMessage,
    Error,
    Forget,
    Forgotten,
    Hello,
    History,
    Join,
    Journal,
    Leave,
    Left,
    ListRooms,
    Message,
    ResumePoint,
    Role,
    Rooms,
    Say,
    TemplateFormat,
    UploadTemplate,
    Welcome,
)
from ..wire import MAX_FRAME
from .common import Send

__all__ = [
    "MAX_CLOSE_REASON",
    "PERMISSIONS",
    "RULES",
    "SEATS",
    "UNREAD_REF",
    "ApplyTemplate",
    "Close",
    "EnterRoom",
    "FetchHistory",
    "FetchRooms",
    "ForgetRoom",
    "LeaveRoom",
    "Request",
    "Rule",
    "ServerAction",
    "ServerSession",
    "SessionLimits",
    "TellStory",
    "close_reason",
]

#: The ``ref`` of an error answering a frame whose type could not be read.
UNREAD_REF = "?"
#: Longest close reason a websocket close frame carries, in UTF-8 bytes.
MAX_CLOSE_REASON = 123


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection with this websocket close code; nothing follows."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class EnterRoom:
    """Make the connection a member of ``room``: presence, the room's owner, the
    event flow from ``resume`` on (or a snapshot). Answer: ``joined`` or ``join_failed``."""

    REF: ClassVar[str] = Join.TYPE
    room: str
    name: str
    role: Role
    resume: ResumePoint | None
    #: May this join create the room? False once the connection spent its
    #: budget of new rooms: a room that does not exist is then ``too_many_new_rooms``.
    create: bool = True


@dataclass(frozen=True, slots=True)
class LeaveRoom:
    """Take the connection out of ``room``. Answer: ``left`` or ``request_failed``."""

    REF: ClassVar[str] = Leave.TYPE
    room: str


@dataclass(frozen=True, slots=True)
class TellStory:
    """Push a story line to ``room``. Answer on failure: ``request_failed``."""

    REF: ClassVar[str] = Say.TYPE
    room: str
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class ApplyTemplate:
    """Validate a narrative template and push it to ``room``.

    Answer on failure (``template_invalid``, for one): ``request_failed``."""

    REF: ClassVar[str] = UploadTemplate.TYPE
    room: str
    name: str
    format: TemplateFormat
    text: str


@dataclass(frozen=True, slots=True)
class FetchRooms:
    """Gather the room list. Answer: ``listed`` or ``request_failed``."""

    REF: ClassVar[str] = ListRooms.TYPE


@dataclass(frozen=True, slots=True)
class ForgetRoom:
    """Erase everything stored about ``room`` (through its owner), then answer
    ``forgot``; failure: ``request_failed``."""

    REF: ClassVar[str] = Forget.TYPE
    room: str
    name: str


@dataclass(frozen=True, slots=True)
class FetchHistory:
    """Build ``room``'s retained history as a dream journal. Answer: ``history``
    (the journal's bytes) or ``request_failed``."""

    REF: ClassVar[str] = History.TYPE
    room: str


Request: TypeAlias = (
    EnterRoom | LeaveRoom | TellStory | ApplyTemplate | FetchRooms | ForgetRoom | FetchHistory
)
ServerAction: TypeAlias = Send | Close | Request


def close_reason(error: SleepSyncError) -> str:
    """``code: message``, cut to what a close frame carries."""
    reason = f"{error.code}: {error.message}"
    data = reason.encode()
    if len(data) <= MAX_CLOSE_REASON:
        return reason
    return data[:MAX_CLOSE_REASON].decode(errors="ignore")


# ---------------------------------------------------------------- server rules

Phase = Literal["greeting", "open", "closed"]
#: What a room-bound message needs of its room: to be joined, or not yet.
Membership = Literal["member", "outsider"]


@dataclass(frozen=True, slots=True)
class Rule:
    """When a client message is acceptable."""

    #: The phase the session must be in.
    phase: Phase
    #: For messages naming a room: must the connection be in it (or not yet)?
    #: None: it need not be (the room must still be one the token covers).
    membership: Membership | None = None
    #: What the token's role must allow (see PERMISSIONS).
    permission: str | None = None
    #: The seat the member must hold in the room (see SEATS).
    seat: Role | None = None


#: One row per client message type. Every message naming a room also needs
#: a token that covers the room.
RULES: Mapping[str, Rule] = {
    Hello.TYPE: Rule("greeting"),
    Join.TYPE: Rule("open", "outsider"),
    Leave.TYPE: Rule("open", "member"),
    Say.TYPE: Rule("open", "member", Say.TYPE, seat="dreamer"),
    UploadTemplate.TYPE: Rule("open", "member", UploadTemplate.TYPE),
    ListRooms.TYPE: Rule("open"),
    Forget.TYPE: Rule("open", None, Forget.TYPE),
    # A room's history needs no membership: a token that covers the room and
    # may read (observer and up) is enough.
    History.TYPE: Rule("open", None, History.TYPE),
}

#: What each token role may do: observers read (a room's history too),
#: dreamers read and say, operators do everything, including the operator
#: actions. Joining, leaving and listing need no permission. Open mode (no
#: auth) is ``operator``.
PERMISSIONS: Mapping[TokenRole, frozenset[str]] = {
    "observer": frozenset({History.TYPE}),
    "dreamer": frozenset({Say.TYPE, History.TYPE}),
    "operator": frozenset({Say.TYPE, UploadTemplate.TYPE, Forget.TYPE, History.TYPE}),
}

#: The seats (``join.role``) each token role may take: the token's role is a
#: ceiling. Saying needs the dreamer seat, whatever the token allows.
SEATS: Mapping[TokenRole, frozenset[Role]] = {
    "observer": frozenset({"observer"}),
    "dreamer": frozenset({"dreamer", "observer"}),
    "operator": frozenset({"dreamer", "observer"}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionLimits:
    """Per-connection limits; the server's settings of the same names."""

    #: Frames per second, valid or not.
    max_rate: float = 50.0
    #: Frames in one burst (the bucket's size).
    burst: int = 100
    #: Refused frames in a row before the connection is closed.
    max_bad_frames: int = 20
    #: Rooms one connection may be in (or entering) at once.
    max_rooms: int = 8
    #: Seconds a connection has to complete hello.
    hello_timeout: float = 10.0
    #: Largest inbound frame, told to the client in ``welcome``.
    max_frame: int = MAX_FRAME
    #: Rooms one connection may create (join while they do not exist) in 60 s.
    room_creations_per_minute: int = 5
    #: Seconds between two template uploads of one connection.
    template_upload_interval: float = 5.0

    def __post_init__(self) -> None:
        if self.max_rate <= 0 or self.burst < 1 or self.max_bad_frames < 1:
            raise LocalError("rate, burst and max_bad_frames must be positive")
        if self.max_rooms < 1 or self.hello_timeout <= 0:
            raise LocalError("max_rooms and hello_timeout must be positive")
        if self.room_creations_per_minute < 1 or self.template_upload_interval < 0:
            raise LocalError("room creations must be positive, the upload interval not negative")


#: The window of ``room_creations_per_minute``, in seconds.
CREATION_WINDOW = 60.0


class ServerSession:
    """The server's side of one connection (see the module docstring)."""

    def __init__(
        self,
        id: str,
        node: str,
        now: float,
        *,
        limits: SessionLimits | None = None,
        keys: Keys | None = None,
        unix_offset: float = 0.0,
    ) -> None:
        """``now`` is the gateway's clock (monotonic seconds); ``unix_offset``
        turns it into Unix time, the clock of a token's ``exp``. ``keys``: the
        keys hello's token must verify with; None runs open (loopback only)."""
        self.id = id
        self.node = node
        self.limits = limits or SessionLimits()
        self.keys = keys
        self.unix_offset = unix_offset
        self.phase: Phase = "greeting"
        self.opened_at = now
        #: The name said in hello (None until then).
        self.name: str | None = None
        #: What the token (or open mode) allows; None until hello.
        self.claims: Claims | None = None
        #: Rooms this connection is in, with its role in each.
        self.rooms: dict[str, Role] = {}
        #: Rooms being entered (an EnterRoom not yet answered).
        self.entering: dict[str, Role] = {}
        self.tokens = float(self.limits.burst)
        self.refilled = now
        self.bad_in_row = 0
        #: The latest time the session was given (requests' outcomes come untimed).
        self.now = now
        #: When this connection's recent joins created rooms (the last minute's).
        self.created: deque[float] = deque()
        self.uploaded_at = -math.inf

    @property
    def closed(self) -> bool:
        return self.phase == "closed"

    def deadline(self) -> float | None:
        """When :meth:`poll` must run next (None: no timer is pending)."""
        if self.phase == "greeting":
            return self.opened_at + self.limits.hello_timeout
        if self.phase == "open" and self.claims is not None and self.claims.expires < math.inf:
            return self.claims.expires + LEEWAY - self.unix_offset
        return None

    def poll(self, now: float) -> list[ServerAction]:
        """Run the timers: close a connection that did not say hello in time,
        or whose token expired."""
        self.now = max(self.now, now)
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        if self.phase == "greeting":
            seconds = f"{self.limits.hello_timeout:g}"
            return self._close(HelloTimeout(f"no hello within {seconds} seconds"), None)
        return self._close(Unauthorized("expired", "your token expired; get a new one"), None)

    def receive(self, frame: Message | RemoteError, now: float) -> list[ServerAction]:
        """One frame from the peer: a decoded message, or the codec's error."""
        if self.closed:
            return []
        expired = self.poll(now)
        if expired:
            return expired
        self.now = max(self.now, now)
        ref = frame.TYPE if not isinstance(frame, RemoteError) else frame.ref or UNREAD_REF
        if not self._spend(now):
            return self._close(RateLimited("too many frames per second"), ref)
        if isinstance(frame, RemoteError):
            return self._refuse(frame, ref)
        try:
            actions = self._accept(self._client_message(frame))
        except RemoteError as exc:
            return self._refuse(exc, ref)
        self.bad_in_row = 0
        return actions

    # -------------------------------------------------------- request outcomes
    def joined(self, room: str, *, created: bool = False) -> list[ServerAction]:
        """The EnterRoom for ``room`` succeeded (the snapshot is on its way);
        ``created``: the join made the room (it spends the connection's budget)."""
        if created:
            self.created.append(self.now)
        role = self.entering.pop(room, None)
        if role is not None:
            self.rooms[room] = role
        return []

    def join_failed(self, room: str, error: SleepSyncError) -> list[ServerAction]:
        """The EnterRoom for ``room`` failed and was undone."""
        self.entering.pop(room, None)
        return self.request_failed(error, Join.TYPE)

    def left(self, room: str) -> list[ServerAction]:
        """The LeaveRoom for ``room`` is done."""
        return [] if self.closed else [Send(Left(room))]

    def listed(self, rooms: Rooms) -> list[ServerAction]:
        """The answer to FetchRooms: the rooms the token covers."""
        if self.closed:
            return []
        claims = self.claims
        if claims is not None and claims.rooms != "*":
            rooms = Rooms([info for info in rooms.rooms if claims.covers(info.room)])
        return [Send(rooms)]

    def forgot(self, room: str) -> list[ServerAction]:
        """The ForgetRoom for ``room`` is done: nothing of it is stored."""
        return [] if self.closed else [Send(Forgotten(room))]

    def room_gone(self, room: str, error: SleepSyncError) -> list[ServerAction]:
        """``room`` went away under this member (an operator forgot it): tell the
        peer why, then leave it (the peer gets ``left``)."""
        if self.closed or room not in self.rooms:
            return []
        del self.rooms[room]
        return [Send(Error.about(error, None)), LeaveRoom(room)]

    def history(self, room: str, journal: bytes) -> list[ServerAction]:
        """The answer to FetchHistory: the journal in ``journal`` frames, in order."""
        if self.closed:
            return []
        step = MAX_JOURNAL_CHUNK
        parts = [journal[k : k + step] for k in range(0, len(journal), step)] or [b""]
        return [Send(Journal(room, k, k == len(parts) - 1, part)) for k, part in enumerate(parts)]

    def request_failed(self, error: SleepSyncError, ref: str) -> list[ServerAction]:
        """A request of type ``ref`` failed: tell the peer (and close if fatal)."""
        if self.closed:
            return []
        if error.close_code is not None:
            return self._close(error, ref)
        return [Send(Error.about(error, ref))]

    # -------------------------------------------------------- server events
    def slow(self, room: str) -> list[ServerAction]:
        """The peer did not read the events of ``room``: close, without a word
        (it would not read it); the close reason names the code."""
        if self.closed:
            return []
        self.phase = "closed"
        error = SlowConsumer(f"you did not read the events of {room} fast enough")
        return [Close(_close_code(error), close_reason(error))]

    def fail(self, error: SleepSyncError) -> list[ServerAction]:
        """The server ends this connection: tell the peer why, then close."""
        if self.closed:
            return []
        return self._close(error, None)

    def connection_lost(self) -> list[ServerAction]:
        """The connection is gone: leave every room it was in or entering."""
        self.phase = "closed"
        rooms = [*self.rooms, *self.entering]
        self.rooms.clear()
        self.entering.clear()
        return [LeaveRoom(room) for room in rooms]

    # -------------------------------------------------------- rules
    def _spend(self, now: float) -> bool:
        """Token bucket: refill for the time passed, then take one token."""
        elapsed = max(0.0, now - self.refilled)
        self.tokens = min(float(self.limits.burst), self.tokens + elapsed * self.limits.max_rate)
        self.refilled = max(self.refilled, now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def _client_message(self, msg: Message) -> ClientMessage:
        if isinstance(
            msg, Hello | Join | Leave | Say | ListRooms | UploadTemplate | Forget | History
        ):
            return msg
        raise UnknownMessage(f"{msg.TYPE} is a server message; a client may not send it")

    def _accept(self, msg: ClientMessage) -> list[ServerAction]:
        rule = RULES[msg.TYPE]
        if rule.phase != self.phase:
            if isinstance(msg, Hello):
                raise HelloRepeated("hello was already said on this connection")
            raise HelloRequired("say hello first")
        if not isinstance(msg, Hello | ListRooms):
            self._check_room(rule, msg.room, msg.TYPE)
        return self._act(msg)

    def _check_room(self, rule: Rule, room: str, kind: str) -> None:
        claims = self.claims
        assert claims is not None, "RULES admit only hello before hello"
        if rule.membership == "outsider" and (room in self.rooms or room in self.entering):
            raise AlreadyJoined(f"you are already in room {room}")
        seat = self.rooms.get(room)
        if rule.membership == "member" and seat is None:
            raise NotJoined(f"you are not in room {room}")
        if not claims.covers(room):
            raise Forbidden(f"your token does not cover room {room}")
        if rule.permission is not None and rule.permission not in PERMISSIONS[claims.role]:
            raise Forbidden(f"with {_a(claims.role)} token you may not {kind}")
        if rule.seat is not None and seat != rule.seat:
            raise Forbidden(f"as {_a(seat or 'outsider')} in room {room} you may not {kind}")

    def _act(self, msg: ClientMessage) -> list[ServerAction]:
        """The message passed the table's rules: its own rule, then its request."""
        if isinstance(msg, Hello):
            if msg.version != PROTOCOL_VERSION:
                raise VersionMismatch(
                    f"this server speaks protocol {PROTOCOL_VERSION}, not {msg.version}"
                )
            self.claims = self._identify(msg)
            self.name = msg.name
            self.phase = "open"
            return [Send(self._welcome())]
        name, claims = self.name, self.claims
        assert name is not None and claims is not None, "RULES admit only hello before hello"
        if isinstance(msg, Join):
            if msg.role not in SEATS[claims.role]:
                raise Forbidden(f"with {_a(claims.role)} token you may not join as {msg.role}")
            if len(self.rooms) + len(self.entering) >= self.limits.max_rooms:
                raise TooManyRooms(
                    f"one connection may be in at most {self.limits.max_rooms} rooms; leave one"
                )
            self.entering[msg.room] = msg.role
            return [EnterRoom(msg.room, name, msg.role, msg.resume, create=self._may_create())]
        if isinstance(msg, Leave):
            del self.rooms[msg.room]
            return [LeaveRoom(msg.room)]
        if isinstance(msg, Say):
            return [TellStory(msg.room, name, msg.text)]
        if isinstance(msg, UploadTemplate):
            wait = self.uploaded_at + self.limits.template_upload_interval - self.now
            if wait > 0:
                raise UploadTooSoon(
                    f"one template per {self.limits.template_upload_interval:g} s; "
                    f"send it again in {math.ceil(wait)} s"
                )
            self.uploaded_at = self.now
            return [ApplyTemplate(msg.room, name, msg.format, msg.text)]
        if isinstance(msg, Forget):
            return [ForgetRoom(msg.room, name)]
        if isinstance(msg, History):
            return [FetchHistory(msg.room)]
        return [FetchRooms()]

    def _identify(self, hello: Hello) -> Claims:
        """Who said hello: the token's claims, or open mode's."""
        if is_pod_name(hello.name):
            raise NameTaken(f"names matching {POD_NAMESPACE} are pods'; choose another name")
        if self.keys is None:
            return Claims.open(hello.name)
        if hello.token is None:
            raise Unauthorized("missing", "this server needs a token in hello (sleepsync token)")
        claims = verify(hello.token, self.keys, self.now + self.unix_offset)
        if claims.subject != hello.name:
            raise Unauthorized("name", f"the token is for another name than {hello.name}")
        return claims

    def _may_create(self) -> bool:
        """May the next join create a room? (rooms created in the last minute)"""
        while self.created and self.created[0] <= self.now - CREATION_WINDOW:
            self.created.popleft()
        return len(self.created) < self.limits.room_creations_per_minute

    def _welcome(self) -> Welcome:
        return Welcome(
            version=PROTOCOL_VERSION,
            node=self.node,
            session=self.id,
            max_frame=self.limits.max_frame,
            max_rate=int(self.limits.max_rate),
        )

    def _refuse(self, error: RemoteError, ref: str) -> list[ServerAction]:
        self.bad_in_row += 1
        if self.bad_in_row >= self.limits.max_bad_frames:
            error = TooManyBadFrames(f"{self.bad_in_row} refused frames in a row")
        if error.close_code is not None:
            return self._close(error, ref)
        return [Send(Error.about(error, ref))]

    def _close(self, error: SleepSyncError, ref: str | None) -> list[ServerAction]:
        self.phase = "closed"
        return [
            Send(Error.about(error, ref, fatal=True)),
            Close(_close_code(error), close_reason(error)),
        ]


def _close_code(error: SleepSyncError) -> int:
    return error.close_code or CLOSE_POLICY


def _a(role: str) -> str:
    return f"an {role}" if role[:1] in "aeiou" else f"a {role}"
