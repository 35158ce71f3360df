"""Turn server messages into ``--json`` output lines (sentences: :mod:`.sentences`).

Pure functions, no I/O. Every line is one object with a ``type``; each item
of a room event becomes its own line carrying the event's ``room``,
``epoch``, ``seq`` and ``tick`` (see the README for the format).

Event items are read as the typed values of :mod:`sleepsync.protocol.events`
(:func:`~sleepsync.protocol.events.items_of`). An item of a kind this client
does not know, or one whose fields are wrong, is shown generically (its
kind and fields; in text mode with what was wrong), never dropped and never
fatal: a newer or a buggy server cannot crash the client.
"""

from __future__ import annotations

import json

from sleepsync.protocol.events import (
    items_of,
)
from sleepsync.protocol.messages import (
    Event,
    ServerMessage,
)
from sleepsync.protocol.wire import WireValue

__all__ = ["JsonRenderer", "jsonable"]


def jsonable(value: WireValue) -> object:
    """Wire values as JSON values (bytes become hex strings)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def _dump(obj: dict[str, object]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class JsonRenderer:
    def render(self, msg: ServerMessage) -> list[str]:
        if isinstance(msg, Event):
            base = {
                "room": msg.room,
                "epoch": msg.epoch,
                "seq": msg.seq,
                "tick": msg.tick,
                "ts": msg.ts,
            }
            lines = []
            for item in items_of(msg):
                wire = item.to_wire()
                kind = wire.pop("kind")
                fields = {k: jsonable(v) for k, v in wire.items()}
                lines.append(_dump({"type": kind, **base, **fields}))
            return lines
        wire = msg.to_wire()
        kind = wire.pop("t")
        return [_dump({"type": kind, **{k: jsonable(v) for k, v in wire.items()}})]

    def note(self, kind: str, **fields: object) -> str:
        """A line about the client itself (connection state, gaps)."""
        return _dump({"type": kind, **fields})
