"""Per-connection rules of both sides, as plain objects: no sockets, no clock.

A session takes decoded messages (and, on the server, the time as a number)
and returns *actions*: what to send, deliver, forward or close. The pumps
around them — the server's gateway, the client's ``RoomClient`` — only move
bytes and carry those actions out, so every rule is tested without a socket.

- :mod:`.server`: :class:`ServerSession` — hello first and once, the hello
  timeout, the token and its expiry, the rate bucket, refused frames in a
  row, rooms and their limits (new rooms a minute, template uploads), roles
  (:data:`PERMISSIONS`, :data:`SEATS`), and which error code answers what.
- :mod:`.client`: :class:`ClientSession` — seq tracking and gaps, the resume
  point per room, resyncs, and what to do about each error code
  (:data:`ERROR_REACTIONS`).
"""

from __future__ import annotations

from .client import (
    ERROR_REACTIONS,
    ClientAction,
    ClientSession,
    Deliver,
    Gap,
    GiveUp,
    Reaction,
    Reconnect,
    reaction,
)
from .common import Send
from .server import (
    MAX_CLOSE_REASON,
    PERMISSIONS,
    RULES,
    SEATS,
    UNREAD_REF,
    ApplyTemplate,
    Close,
    EnterRoom,
    FetchHistory,
    FetchRooms,
    ForgetRoom,
    LeaveRoom,
    Request,
    Rule,
    ServerAction,
    ServerSession,
    SessionLimits,
    TellStory,
    close_reason,
)

__all__ = [
    "ERROR_REACTIONS",
    "MAX_CLOSE_REASON",
    "PERMISSIONS",
    "RULES",
    "SEATS",
    "UNREAD_REF",
    "ApplyTemplate",
    "ClientAction",
    "ClientSession",
    "Close",
    "Deliver",
    "EnterRoom",
    "FetchHistory",
    "FetchRooms",
    "ForgetRoom",
    "Gap",
    "GiveUp",
    "LeaveRoom",
    "Reaction",
    "Reconnect",
    "Request",
    "Rule",
    "Send",
    "ServerAction",
    "ServerSession",
    "SessionLimits",
    "TellStory",
    "close_reason",
    "reaction",
]
