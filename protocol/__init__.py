"""SleepSync wire protocol: messages, codec, telemetry, errors. Sans-I/O."""

from __future__ import annotations

from .codec import decode, encode
from .errors import RemoteError, SleepSyncError
from .messages import PROTOCOL_VERSION, ClientMessage, Message, ServerMessage

__all__ = [
    "PROTOCOL_VERSION",
    "ClientMessage",
    "Message",
    "RemoteError",
    "ServerMessage",
    "SleepSyncError",
    "decode",
    "encode",
]
