"""The SleepSync error tree.

Every error the project raises on purpose derives from :class:`SleepSyncError`.
Each class knows the short ``code`` sent to a peer in an ``error`` message and
the websocket close code it maps to (``None`` means: report it and carry on)::

    SleepSyncError
    ├── RemoteError                  the peer sent something wrong
    │   ├── DecodeError              not msgpack, or not a map with a type key
    │   ├── FrameTooBig              frame over the size limit       -> 1009
    │   ├── LimitExceeded            string/array/map/nesting limit
    │   ├── UnknownMessage           unknown message type
    │   ├── InvalidMessage           a field is missing, mistyped or out of range
    │   ├── VersionMismatch          unsupported protocol version    -> 1002
    │   ├── OutOfOrder               e.g. join before hello, say outside a room
    │   ├── RateLimited              too many frames per second      -> 1008
    │   ├── TemplateInvalid          a narrative template failed validation
    │   └── TelemetryInvalid         a pod payload failed validation
    ├── CapacityError                the server cannot take more
    │   ├── RoomFull                 the room is at capacity
    │   ├── TooManyRooms             the node is at its room limit
    │   └── ServerFull               the node is at its client limit -> 1013
    ├── SlowConsumer                 the peer does not read fast enough -> 1013
    └── LocalError                   this program misused an API (a bug here)

Errors never carry internal details (paths, tracebacks) in their message: the
message is a human sentence written for the peer.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CLOSE_INTERNAL",
    "CLOSE_OVERLOADED",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL",
    "CLOSE_TOO_BIG",
    "CapacityError",
    "DecodeError",
    "FrameTooBig",
    "InvalidMessage",
    "LimitExceeded",
    "LocalError",
    "OutOfOrder",
    "RateLimited",
    "RemoteError",
    "RoomFull",
    "ServerFull",
    "SleepSyncError",
    "SlowConsumer",
    "TelemetryInvalid",
    "TemplateInvalid",
    "TooManyRooms",
    "UnknownMessage",
    "VersionMismatch",
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

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RemoteError(SleepSyncError):
    """The peer (client, pod, uploader) sent something wrong."""

    code = "bad_input"


class DecodeError(RemoteError):
    """The bytes are not a msgpack map with a known shape."""

    code = "bad_frame"


class FrameTooBig(RemoteError):
    """A frame is larger than the configured maximum."""

    code = "too_big"
    close_code = CLOSE_TOO_BIG


class LimitExceeded(RemoteError):
    """A string, array, map or nesting depth is over its limit."""

    code = "limit"


class UnknownMessage(RemoteError):
    """The message type is not one this protocol version knows."""

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


class OutOfOrder(RemoteError):
    """A valid message arrived in a state where it makes no sense."""

    code = "out_of_order"


class RateLimited(RemoteError):
    """The peer sent more frames per second than allowed."""

    code = "rate_limited"
    close_code = CLOSE_POLICY


class TemplateInvalid(RemoteError):
    """A narrative template failed validation; ``path`` locates the problem."""

    code = "template_invalid"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path or '$'}: {reason}")
        self.path = path or "$"
        self.reason = reason


class TelemetryInvalid(RemoteError):
    """A pod payload or topic failed validation; ``reason`` is a short label."""

    code = "telemetry_invalid"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class CapacityError(SleepSyncError):
    """The server cannot take more of something right now."""

    code = "capacity"


class RoomFull(CapacityError):
    code = "room_full"


class TooManyRooms(CapacityError):
    code = "too_many_rooms"


class ServerFull(CapacityError):
    code = "server_full"
    close_code = CLOSE_OVERLOADED


class SlowConsumer(SleepSyncError):
    """The peer does not read fast enough; its outbound queue overflowed."""

    code = "slow_consumer"
    close_code = CLOSE_OVERLOADED


class LocalError(SleepSyncError):
    """This program misused an API: building an invalid message, for example."""

    code = "internal"
    close_code = CLOSE_INTERNAL
