"""Turn server messages into output lines: readable text, or JSON objects.

Pure functions, no I/O. In JSON mode every line is one object with a
``type``; each item of a room event becomes its own line carrying the event's
``room``, ``epoch``, ``seq`` and ``tick`` (see the README for the format). In
text mode the per-tick ``mood`` items are summarised: a line when the phase
changes or the balance moves by ``MOOD_STEP`` or more.

Event items are read as the typed values of :mod:`sleepsync.protocol.events`
(:func:`~sleepsync.protocol.events.items_of`). An item of a kind this client
does not know, or one whose fields are wrong, is shown generically (its
kind and fields; in text mode with what was wrong), never dropped and never
fatal: a newer or a buggy server cannot crash the client.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sleepsync.protocol.events import (
    EventItem,
    MemberJoined,
    MemberLeft,
    Mood,
    Said,
    UnknownEvent,
    items_of,
)
from sleepsync.protocol.messages import (
    Error,
    Event,
    Left,
    Resync,
    Rooms,
    ServerMessage,
    Snapshot,
    Status,
    Welcome,
)
from sleepsync.protocol.wire import WireValue

__all__ = ["JsonRenderer", "TextRenderer", "jsonable"]

MOOD_STEP = 0.05


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


@dataclass
class TextRenderer:
    balance: float | None = None
    phase: str | None = None

    def render(self, msg: ServerMessage) -> list[str]:
        if isinstance(msg, Event):
            return [
                line for item in items_of(msg) if (line := self._item(msg.seq, item)) is not None
            ]
        if isinstance(msg, Snapshot):
            return self._snapshot(msg)
        if isinstance(msg, Welcome):
            return [f"connected to {msg.node} (protocol {msg.version})"]
        if isinstance(msg, Error):
            return [f"! error {msg.code}: {msg.message}"]
        if isinstance(msg, Resync):
            return [f"! resync in {msg.room}: {msg.reason}"]
        if isinstance(msg, Status):
            return [f"! server {msg.state.replace('_', ' ')}: {msg.message}"]
        if isinstance(msg, Rooms):
            return [
                f"room {r.room}: {r.dreamers} dreamers, {r.observers} observers, {r.phase}"
                for r in msg.rooms
            ]
        if isinstance(msg, Left):
            return [f"left {msg.room}"]
        return []

    def note(self, kind: str, **fields: object) -> str:
        detail = ", ".join(f"{k} {v}" for k, v in fields.items())
        return f"~ {kind.replace('_', ' ')}" + (f": {detail}" if detail else "")

    def _snapshot(self, msg: Snapshot) -> list[str]:
        state = msg.state
        members = state.get("members")
        names = []
        if isinstance(members, list):
            for m in members:
                if isinstance(m, dict):
                    names.append(f"{_text(m.get('name'))} ({_text(m.get('role'))})")
        lines = [f"[seq {msg.seq}] in room {msg.room}: " + (", ".join(names) or "nobody yet")]
        story = state.get("story")
        if isinstance(story, list):
            for line in story:
                if isinstance(line, dict):
                    seq, name = _text(line.get("seq")), _text(line.get("name"))
                    lines.append(f"[seq {seq}] {name}: {_text(line.get('text'))}")
        dream = state.get("dream")
        if isinstance(dream, dict):
            balance = dream.get("balance")
            dreamers = dream.get("dreamers")
            count = len(dreamers) if isinstance(dreamers, list) else 0
            phase = _text(dream.get("phase"))
            if isinstance(balance, int | float):
                self._mood_changed(float(balance), phase)
            lines.append(f"[seq {msg.seq}] ~ {_dream_line(balance, phase, count)}")
        return lines

    def _item(self, seq: int, item: EventItem) -> str | None:
        prefix = f"[seq {seq}]"
        if isinstance(item, MemberJoined):
            return f"{prefix} * {item.name} joined as {item.role}"
        if isinstance(item, MemberLeft):
            return f"{prefix} * {item.name} left"
        if isinstance(item, Said):
            return f"{prefix} {item.name}: {item.text}"
        if isinstance(item, Mood):
            if not self._mood_changed(item.balance, item.phase):
                return None
            return f"{prefix} ~ {_dream_line(item.balance, item.phase, len(item.dreamers))}"
        wire = item.to_wire()
        kind = wire.pop("kind")
        details = " ".join(f"{k}={_short(v)}" for k, v in wire.items())
        line = f"{prefix} ~ {_text(kind)} {details}".rstrip()
        if isinstance(item, UnknownEvent) and item.problem is not None:
            line += f" (unreadable: {item.problem})"
        return line

    def _mood_changed(self, balance: float, phase: str) -> bool:
        changed = (
            self.balance is None or abs(balance - self.balance) >= MOOD_STEP or phase != self.phase
        )
        if changed:
            self.balance = balance
            self.phase = phase
        return changed


def _dream_line(balance: WireValue, phase: str, count: int) -> str:
    shown = f"{balance:.2f}" if isinstance(balance, int | float) else "?"
    return f"balance {shown}, {phase}, {count} dreamers"


def _short(value: WireValue) -> str:
    text = json.dumps(jsonable(value), ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: WireValue) -> str:
    """A wire value as display text (strings as they are)."""
    return value if isinstance(value, str) else _short(value)
