"""msgpack codec for websocket frames, with strict limits.

``decode`` turns bytes from a peer into a message or raises a
:class:`~sleepsync.protocol.errors.RemoteError` subclass — never anything
else. ``encode`` turns a message into bytes. Both are pure functions.
"""

from __future__ import annotations

from typing import cast

import msgpack

from .errors import (
    DecodeError,
    FrameTooBig,
    InvalidMessage,
    LimitExceeded,
    RemoteError,
    UnknownMessage,
)
from .messages import MESSAGE_TYPES, Message
from .wire import DEFAULT_LIMITS, Limits, WireMap, check_depth

__all__ = ["decode", "decode_map", "encode", "encode_map", "event_time"]


def encode(msg: Message) -> bytes:
    """Encode one message as a binary frame."""
    return encode_map(msg.to_wire())


def encode_map(fields: WireMap) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def decode_map(data: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, object]:
    """Decode a frame into a map with a string ``t``, checking every limit."""
    if len(data) > limits.max_frame:
        raise FrameTooBig(f"frame of {len(data)} bytes exceeds {limits.max_frame}")
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=limits.str_limit,
            max_bin_len=limits.bin_limit,
            max_array_len=limits.max_array,
            max_map_len=limits.max_map,
            max_ext_len=0,
        )
    except ValueError as exc:
        # msgpack reports size-limit breaches as ValueError with this wording.
        if "exceeds max" in str(exc):
            raise LimitExceeded("a string, array or map is over its size limit") from exc
        raise DecodeError("the frame is not valid msgpack") from exc
    except Exception as exc:  # ExtraData, FormatError, StackError, TypeError...
        raise DecodeError("the frame is not valid msgpack") from exc
    if not isinstance(value, dict):
        raise DecodeError("a frame must be a msgpack map")
    check_depth(value, limits.max_depth)
    kind = value.get("t")
    if not isinstance(kind, str):
        raise DecodeError("a frame must have a string 't' naming its type")
    return value


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Decode and validate one frame.

    An error raised once the frame's type is known carries it in ``ref``.
    """
    fields = decode_map(data, limits)
    kind = cast(str, fields["t"])
    cls = MESSAGE_TYPES.get(kind)
    try:
        if cls is None:
            raise UnknownMessage(f"unknown message type {kind[:32]!r}")
        try:
            return cls.from_wire(fields)
        except (TypeError, ValueError, AttributeError) as exc:  # defensive: never leak these
            raise InvalidMessage(kind, "malformed fields") from exc
    except RemoteError as exc:
        exc.ref = kind
        raise


def event_time(frame: bytes) -> float:
    """The ``ts`` of an encoded event frame this program produced (0.0 if absent)."""
    try:
        value = msgpack.unpackb(frame, raw=False).get("ts", 0.0)
    except Exception:  # not ours to judge here: the frame came from our own store
        return 0.0
    return float(value) if isinstance(value, int | float) else 0.0
