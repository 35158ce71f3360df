"""The SleepSync error tree.

Every error the project raises on purpose derives from :class:`SleepSyncError`.
Each class knows the short ``code`` sent to a peer in an ``error`` message and
the websocket close code it maps to (``None`` means: report it and carry on).
Each code names one condition; README's error table lists them all, with what
a client should do, and ``tests/test_readme.py`` keeps the two in step::

    SleepSyncError
    ├── RemoteError                  the peer sent something wrong
    │   ├── DecodeError              bad_frame: not msgpack, not a map, no type
    │   ├── FrameTooBig              too_big: frame over the size limit   -> 1009
    │   ├── LimitExceeded            limit: string/array/map/nesting limit
    │   ├── UnknownMessage           unknown_type: not a client message type
    │   ├── InvalidMessage           invalid: a field is missing, mistyped, out of range
    │   ├── VersionMismatch          version: unsupported protocol version -> 1002
    │   ├── OutOfOrder               a valid message in a state where it makes no sense
    │   │   ├── HelloRequired        hello_required: anything before hello
    │   │   ├── HelloRepeated        hello_repeated: a second hello
    │   │   ├── AlreadyJoined        already_joined: join of a room already joined
    │   │   └── NotJoined            not_joined: say/leave/upload outside the room
    │   ├── Unauthorized             unauthorized: no valid token in hello, or it expired -> 1008
    │   ├── Forbidden                forbidden: the token or the seat does not allow that
    │   ├── NameTaken                name_taken: the name is a pod's
    │   ├── TooManyRooms             too_many_rooms: the connection's room limit
    │   ├── TooManyNewRooms          too_many_new_rooms: rooms created per connection per minute
    │   ├── UploadTooSoon            upload_too_soon: template uploads per connection
    │   ├── RateLimited              rate_limited: too many frames a second -> 1008
    │   ├── TooManyBadFrames         too_many_bad_frames: refused frames in a row -> 1008
    │   ├── HelloTimeout             hello_timeout: no hello in time       -> 1008
    │   ├── TemplateInvalid          template_invalid: a narrative failed validation
    │   └── TelemetryInvalid         a pod payload failed validation (counted, never sent)
    ├── CapacityError                the server cannot take more
    │   ├── RoomFull                 room_full: the room is at capacity
    │   ├── RoomsExhausted           rooms_exhausted: the deployment holds its most rooms
    │   └── ServerFull               server_full: the node is at its client limit -> 1013
    ├── SlowConsumer                 slow_consumer: the peer reads too slowly -> 1013
    ├── RoomForgotten                room_forgotten: an operator erased the room
    └── LocalError                   internal: this program misused an API -> 1011

A class declared with ``peer=False`` (the bases, and errors this program keeps
to itself) never names an ``error`` sent to a peer; :func:`peer_errors` lists
the others. Errors never carry internal details (paths, tracebacks) in their
message: the message is a human sentence written for the peer.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "CLOSE_INTERNAL",
    "CLOSE_OVERLOADED",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL",
    "CLOSE_TOO_BIG",
    "AlreadyJoined",
    "CapacityError",
    "DecodeError",
    "Forbidden",
    "FrameTooBig",
    "HelloRepeated",
    "HelloRequired",
    "HelloTimeout",
    "InvalidMessage",
    "LimitExceeded",
    "LocalError",
    "NameTaken",
    "NotJoined",
    "OutOfOrder",
    "RateLimited",
    "RemoteError",
    "RoomForgotten",
    "RoomFull",
    "RoomsExhausted",
    "ServerFull",
    "SleepSyncError",
    "SlowConsumer",
    "TelemetryInvalid",
    "TemplateInvalid",
    "TooManyBadFrames",
    "TooManyNewRooms",
    "TooManyRooms",
    "Unauthorized",
    "UnknownMessage",
    "UploadTooSoon",
    "VersionMismatch",
    "peer_errors",
]

CLOSE_PROTOCOL = 1002
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_OVERLOADED = 1013


class SleepSyncError(Exception):
    """Base of every error SleepSync raises on purpose."""

    code: ClassVar[str] = "error"
    close_code: ClassVar[int | None] = None
    #: True when this class's ``code`` may reach a peer in an ``error`` message
    #: or a close reason. Set per class (``class X(Base, peer=False)``), never
    #: inherited, so a new error is documented unless it says otherwise.
    peer: ClassVar[bool] = False

    def __init_subclass__(cls, *, peer: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.peer = peer

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def peer_errors() -> list[type[SleepSyncError]]:
    """Every error class imported so far whose code can reach a peer."""
    found: list[type[SleepSyncError]] = []
    todo: list[type[SleepSyncError]] = [SleepSyncError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.peer and cls not in found:
            found.append(cls)
    return found


class RemoteError(SleepSyncError, peer=False):
    """The peer (client, pod, uploader) sent something wrong."""

    code = "bad_input"
    #: The type (``t``) of the message this error is about, once it is known:
    #: the codec sets it when the frame decoded far enough to name its type.
    ref: str | None = None


class DecodeError(RemoteError):
    """The bytes are not a msgpack map with a string type key."""

    code = "bad_frame"


class FrameTooBig(RemoteError):
    """A frame is larger than the configured maximum."""

    code = "too_big"
    close_code = CLOSE_TOO_BIG


class LimitExceeded(RemoteError):
    """A string, array, map or nesting depth is over its limit."""

    code = "limit"


class UnknownMessage(RemoteError):
    """The message type is not one a client may send in this protocol version."""

    code = "unknown_type"


class InvalidMessage(RemoteError):
    """A field is missing, has the wrong type, or is out of range.

    ``path`` names the field (``"join.room"``), so the sender can fix it.
    """

    code = "invalid"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class VersionMismatch(RemoteError):
    """The client speaks a protocol version this server does not."""

    code = "version"
    close_code = CLOSE_PROTOCOL


class OutOfOrder(RemoteError, peer=False):
    """A valid message arrived in a state where it makes no sense."""

    code = "out_of_order"


class HelloRequired(OutOfOrder):
    """A message other than ``hello`` came before ``hello``."""

    code = "hello_required"


class HelloRepeated(OutOfOrder):
    """A second ``hello`` on a connection that already said it."""

    code = "hello_repeated"


class AlreadyJoined(OutOfOrder):
    """A ``join`` of a room the connection is already in."""

    code = "already_joined"


class NotJoined(OutOfOrder):
    """A ``say``, ``leave`` or ``upload_template`` for a room the connection is not in."""

    code = "not_joined"


class Unauthorized(RemoteError):
    """No valid token: missing, unreadable, badly signed, expired, or for another name.

    ``reason`` is a short label (:data:`~sleepsync.protocol.identity.REFUSALS`);
    the message is a sentence for the peer and never quotes the token.
    """

    code = "unauthorized"
    close_code = CLOSE_POLICY

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Forbidden(RemoteError):
    """The token (its rooms, its role) or the seat taken in the room does not allow it."""

    code = "forbidden"


class NameTaken(RemoteError):
    """The name belongs to a pod: the reserved pod namespace, or a pod in the room."""

    code = "name_taken"


class TooManyRooms(RemoteError):
    """A ``join`` past the number of rooms one connection may be in."""

    code = "too_many_rooms"


class TooManyNewRooms(RemoteError):
    """A ``join`` that would create a room past the connection's rooms-per-minute."""

    code = "too_many_new_rooms"


class UploadTooSoon(RemoteError):
    """An ``upload_template`` sooner after the connection's last one than allowed."""

    code = "upload_too_soon"


class RateLimited(RemoteError):
    """The peer sent more frames per second than allowed."""

    code = "rate_limited"
    close_code = CLOSE_POLICY


class TooManyBadFrames(RemoteError):
    """The peer sent too many refused frames in a row."""

    code = "too_many_bad_frames"
    close_code = CLOSE_POLICY


class HelloTimeout(RemoteError):
    """The peer did not complete ``hello`` in time."""

    code = "hello_timeout"
    close_code = CLOSE_POLICY


class TemplateInvalid(RemoteError):
    """A narrative template failed validation; ``path`` locates the problem."""

    code = "template_invalid"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or '$'}: {reason}")
        self.path = path or "$"
        self.reason = reason


class TelemetryInvalid(RemoteError, peer=False):
    """A pod payload or topic failed validation; ``reason`` is a short label.

    Pods get no answers: these are counted and logged, never sent.
    """

    code = "telemetry_invalid"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CapacityError(SleepSyncError, peer=False):
    """The server cannot take more of something right now."""

    code = "capacity"


class RoomFull(CapacityError):
    """The room holds its most dreamers and observers."""

    code = "room_full"


class RoomsExhausted(CapacityError):
    """The deployment holds its most rooms: a new room cannot be created now."""

    code = "rooms_exhausted"


class ServerFull(CapacityError):
    """The node holds its most connections."""

    code = "server_full"
    close_code = CLOSE_OVERLOADED


class SlowConsumer(SleepSyncError):
    """The peer does not read fast enough; its outbound queue overflowed."""

    code = "slow_consumer"
    close_code = CLOSE_OVERLOADED


class RoomForgotten(SleepSyncError):
    """An operator erased the room: the member is out of it, and nothing of it is kept."""

    code = "room_forgotten"


class LocalError(SleepSyncError):
    """This program misused an API: building an invalid message, for example."""

    code = "internal"
    close_code = CLOSE_INTERNAL
