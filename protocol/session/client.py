"""The client's side of a connection, as a plain object: no socket, no clock.

How it works: a :class:`ClientSession` remembers the rooms a client wants, the
(epoch, seq) it last saw in each and what the server told it. It says what
to send on each new connection (hello, then joins that resume), checks that
each event follows the previous one (a :class:`Gap` is never silent), waits
for the snapshot after a ``resync``, and turns errors into a reaction from
:data:`ERROR_REACTIONS`: deliver it, :class:`Reconnect`, or :class:`GiveUp`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from ..errors import LocalError, RemoteError
from ..messages import (
    Error,
    Event,
    Forget,
    Forgotten,
    Hello,
    Join,
    Journal,
    Leave,
    Left,
    Message,
    ResumePoint,
    Resync,
    Role,
    Rooms,
    Say,
    ServerMessage,
    Snapshot,
    Status,
    Welcome,
)
from .common import Send

__all__ = [
    "ERROR_REACTIONS",
    "ClientAction",
    "ClientSession",
    "Deliver",
    "Gap",
    "GiveUp",
    "Reaction",
    "Reconnect",
    "reaction",
]

#: What a client does about an error code:
#:
#: - ``report``: show it; the connection goes on (the request failed);
#: - ``retry``: the request may work later: repeat it after a delay;
#: - ``reconnect``: the connection ends: reconnect with backoff and resume;
#: - ``give_up``: reconnecting cannot help.
#:
#: A refused ``hello`` or ``join`` leaves the client outside its room, so
#: there ``report`` becomes ``give_up`` and ``retry`` becomes ``reconnect``
#: (see :func:`reaction`). Unknown codes: ``reconnect`` when fatal, else
#: ``report``.
Reaction = Literal["report", "retry", "reconnect", "give_up"]

ERROR_REACTIONS: Mapping[str, Reaction] = {
    "bad_frame": "report",
    "too_big": "give_up",
    "limit": "report",
    "unknown_type": "report",
    "invalid": "report",
    "version": "give_up",
    "hello_required": "report",
    "hello_repeated": "report",
    "already_joined": "report",
    "not_joined": "report",
    "unauthorized": "give_up",
    "forbidden": "report",
    "name_taken": "report",
    "too_many_rooms": "report",
    "too_many_new_rooms": "report",
    "upload_too_soon": "retry",
    "rate_limited": "reconnect",
    "too_many_bad_frames": "give_up",
    "hello_timeout": "reconnect",
    "template_invalid": "report",
    "room_full": "report",
    "rooms_exhausted": "retry",
    "server_full": "reconnect",
    "slow_consumer": "reconnect",
    "room_forgotten": "give_up",
    "internal": "reconnect",
    "room_starting": "retry",
    "no_history": "report",
    "room_unavailable": "reconnect",
    "backend": "retry",
    "room_missing": "report",
    "room_busy": "retry",
    "node_lapsed": "retry",
}

#: Requests without which a client is not in its room.
_ENTRY_REFS = frozenset({Hello.TYPE, Join.TYPE})


def reaction(error: Error) -> Reaction:
    """What a client does about ``error`` (see :data:`ERROR_REACTIONS`)."""
    found = ERROR_REACTIONS.get(error.code)
    if found is None:
        found = "reconnect" if error.fatal else "report"
    if error.ref in _ENTRY_REFS:
        if found == "report":
            return "give_up"
        if found == "retry":
            return "reconnect"
    return found


@dataclass(frozen=True, slots=True)
class Deliver:
    """Hand this server message to the application."""

    message: ServerMessage


@dataclass(frozen=True, slots=True)
class Gap:
    """An event did not follow the last one seen in ``room``: the history on this
    connection is broken. Reconnect; the joins resume from the last good event."""

    room: str
    #: The seq that should have come (None: no snapshot yet to count from).
    expected: int | None
    got: int

    def __str__(self) -> str:
        if self.expected is None:
            return f"event {self.got} in {self.room} came before any snapshot"
        return f"event {self.got} in {self.room} where {self.expected} was due"


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Close this connection and connect again after a backoff delay."""

    reason: str


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The server refused the client for good."""

    reason: str


ClientAction: TypeAlias = Send | Deliver | Gap | Reconnect | GiveUp


@dataclass(slots=True)
class _Membership:
    role: Role
    #: The last event (or snapshot) seen: where a new connection resumes.
    position: ResumePoint | None = None
    #: Events are not trusted until the next snapshot (after a resync or a gap).
    waiting: bool = False
    #: False once left: the position stays readable, events are dropped.
    wanted: bool = True


@dataclass(slots=True)
class ClientSession:
    """The client's side: rooms wanted, their resume points, seq checks."""

    name: str
    #: The signed token said in hello (never shown in a repr or a log line).
    token: str | None = field(default=None, repr=False)
    rooms: dict[str, _Membership] = field(default_factory=dict)
    #: The welcome of the current connection (None until it came).
    welcome: Welcome | None = None
    connected: bool = False
    #: Events that did not follow the previous one, over all connections.
    gaps: int = 0
    #: Resyncs the server sent, over all connections.
    resyncs: int = 0

    def position(self, room: str) -> ResumePoint | None:
        """The last (epoch, seq) seen in ``room`` (kept after leaving it)."""
        membership = self.rooms.get(room)
        return None if membership is None else membership.position

    def resume_from(self, room: str, point: ResumePoint | None) -> None:
        """Resume ``room`` from ``point`` on the next connection (a remembered
        position from an earlier run, say); None joins afresh with a snapshot."""
        membership = self.rooms.get(room)
        if membership is None:
            raise LocalError(f"not in room {room}")
        membership.position = point

    def connect(self) -> list[ClientAction]:
        """A new connection is open: hello, then a join per room, resuming."""
        hello = Hello(self.name, token=self.token)
        self.connected = True
        self.welcome = None
        joins: list[ClientAction] = []
        for room, membership in self.rooms.items():
            membership.waiting = False
            if membership.wanted:
                joins.append(self._join(room))
        return [Send(hello), *joins]

    def hang_up(self) -> list[ClientAction]:
        """This connection is about to close on purpose: leave its rooms politely.

        The rooms stay wanted, with their positions: the next :meth:`connect`
        joins them again and resumes."""
        leaves: list[ClientAction] = [
            Send(Leave(room)) for room, m in self.rooms.items() if m.wanted and self.connected
        ]
        self.connected = False
        return leaves

    def disconnected(self) -> None:
        """The connection ended; positions stay for the next one."""
        self.connected = False

    def join(self, room: str, role: Role = "dreamer") -> list[ClientAction]:
        """Want ``room`` (joined now when connected, else on :meth:`connect`)."""
        Join(room, role)  # validates
        if self._wanted(room):
            raise LocalError(f"already in room {room}")
        self.rooms[room] = _Membership(role)
        return [self._join(room)] if self.connected else []

    def leave(self, room: str) -> list[ClientAction]:
        """Stop wanting ``room``; its events are dropped from now on."""
        if not self._wanted(room):
            return []
        self.rooms[room].wanted = False
        return [Send(Leave(room))] if self.connected else []

    def say(self, room: str, text: str) -> list[ClientAction]:
        """A story line for ``room`` (raises InvalidMessage for a bad line)."""
        if not self._wanted(room):
            raise LocalError(f"not in room {room}")
        return [Send(Say(room, text))]

    def forget(self, room: str) -> list[ClientAction]:
        """Ask the server to erase everything stored about ``room`` (operators only)."""
        return [Send(Forget(room))]

    def receive(self, frame: Message | RemoteError) -> list[ClientAction]:
        """One frame from the server, decoded (or the error decoding it raised)."""
        if isinstance(frame, RemoteError):
            return []  # a newer server may send what this client does not know
        if isinstance(frame, Event):
            return self._event(frame)
        if isinstance(frame, Snapshot | Resync):
            membership = self._tracked(frame.room)
            if membership is None:
                return []
            if isinstance(frame, Snapshot):
                membership.position = ResumePoint(frame.epoch, frame.seq)
                membership.waiting = False
            else:
                self.resyncs += 1
                membership.waiting = True
            return [Deliver(frame)]
        if isinstance(frame, Error):
            return self._error(frame)
        if isinstance(frame, Welcome):
            self.welcome = frame
            return [Deliver(frame)]
        if isinstance(frame, Left | Rooms | Status | Forgotten | Journal):
            return [Deliver(frame)]
        return []  # a client message: not for a client to act on

    def _wanted(self, room: str) -> bool:
        membership = self.rooms.get(room)
        return membership is not None and membership.wanted

    def _tracked(self, room: str) -> _Membership | None:
        membership = self.rooms.get(room)
        return membership if membership is not None and membership.wanted else None

    def _join(self, room: str) -> Send:
        membership = self.rooms[room]
        return Send(Join(room, membership.role, membership.position))

    def _event(self, event: Event) -> list[ClientAction]:
        membership = self._tracked(event.room)
        if membership is None or membership.waiting:
            return []
        position = membership.position
        if position is None or event.seq != position.seq + 1:
            self.gaps += 1
            membership.waiting = True
            expected = None if position is None else position.seq + 1
            return [Gap(event.room, expected, event.seq)]
        membership.position = ResumePoint(event.epoch, event.seq)
        return [Deliver(event)]

    def _error(self, error: Error) -> list[ClientAction]:
        what = reaction(error)
        reason = f"{error.code}: {error.message}"
        if what == "give_up":
            return [Deliver(error), GiveUp(reason)]
        if what == "reconnect":
            return [Deliver(error), Reconnect(reason)]
        return [Deliver(error)]
