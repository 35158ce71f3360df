"""Running a journal's inputs through the engine again.

How it works: :func:`replay` restores the engine from the journal's start
state and feeds it each recorded tick's inputs, stepping quiet ticks (no
input, no item) in between, exactly as the room's owner did. With
``check`` it compares every tick's event items and every recorded state
hash with the run, and the end record's hash after the last tick; the first
difference stops the run and is reported (:class:`Mismatch`). A *what-if*
(:class:`WhatIf`) changes the engine's settings and/or the narrative (the
start one and every upload) before the run, so the same telemetry and story
lines meet another night; it is not checked against the recording.
Observers see every tick of the run (``observers``) and of the recording
(``recorded``) as it goes, so one pass over a file feeds figures, pictures
and a live view alike.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import msgpack

from sleepsync.protocol.errors import LocalError
from sleepsync.protocol.events import EventItem
from sleepsync.protocol.narrative import NarrativeTemplate, template_to_wire

from ..engine import Engine, EngineConfig, EngineInput, TemplateUploaded
from .files import JournalReader
from .schema import JournalEnd, JournalError, JournalHeader

__all__ = [
    "Mismatch",
    "Observer",
    "ReplayResult",
    "WhatIf",
    "apply_settings",
    "read_night",
    "replay",
    "start_engine",
]

#: Called with (tick, inputs, items) for every tick of a run, quiet ones included.
Observer = Callable[[int, Sequence[EngineInput], Sequence[EventItem]], None]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The first tick where the run and the recording differ."""

    tick: int
    what: str
    detail: str


@dataclass(frozen=True, slots=True)
class WhatIf:
    """Another night from the same inputs: other settings, another narrative."""

    config: EngineConfig | None = None
    template: NarrativeTemplate | None = None


@dataclass(slots=True)
class ReplayResult:
    #: Engine ticks run (quiet ones included), and tick records read.
    ticks: int = 0
    records: int = 0
    #: Recorded state hashes compared with the run.
    hashes: int = 0
    mismatch: Mismatch | None = None
    end: JournalEnd | None = None
    seconds: float = 0.0
    #: The engine's tick count when the run started and when it stopped.
    start_tick: int = 0
    final_tick: int = 0

    @property
    def exact(self) -> bool:
        return self.mismatch is None


def apply_settings(config: EngineConfig, assignments: Sequence[str]) -> EngineConfig:
    """``config`` with ``engine.KEY=VALUE`` assignments applied (JournalError if bad).

    ``tick_hz`` cannot change: ticks are the journal's clock.
    """
    types = {f.name: f.type for f in fields(EngineConfig)}
    values = config.to_wire()
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        name = key.removeprefix("engine.")
        if not sep or name == key or name not in types:
            raise JournalError(f"--set {assignment}: expected engine.KEY=VALUE with a setting KEY")
        if name == "tick_hz":
            raise JournalError("--set engine.tick_hz: ticks are the journal's clock; it stays")
        try:
            values[name] = int(raw) if types[name] == "int" else float(raw)
        except ValueError:
            raise JournalError(f"--set {assignment}: {raw!r} is not a number") from None
    try:
        return EngineConfig(**values)  # type: ignore[arg-type]
    except ValueError as exc:
        raise JournalError(f"--set: {exc}") from exc


def start_engine(header: JournalHeader, whatif: WhatIf | None = None) -> Engine:
    """The engine at the journal's start, changed by ``whatif`` (JournalError if unreadable)."""
    state = header.start_state
    if hashlib.sha256(state).hexdigest() != header.start_hash:
        raise JournalError("the journal's start state does not match its hash")
    try:
        engine = Engine.restore(state)
    except LocalError as exc:
        raise JournalError(f"the journal's start state: {exc.message}") from exc
    if whatif is None or (whatif.config is None and whatif.template is None):
        return engine
    doc = msgpack.unpackb(state, raw=False)
    if whatif.config is not None:
        doc["config"] = whatif.config.to_wire()
    if whatif.template is not None:
        t = whatif.template
        doc.update(
            narrative=template_to_wire(t),
            author=None,
            scene=t.entry,
            since=engine.tick,
            history=[[engine.tick, t.entry]],
        )
    return Engine.restore(msgpack.packb(doc, use_bin_type=True))


def replay(
    reader: JournalReader,
    *,
    check: bool = True,
    whatif: WhatIf | None = None,
    observers: Sequence[Observer] = (),
    recorded: Sequence[Observer] = (),
    hashes: dict[int, str] | None = None,
) -> ReplayResult:
    """Run the journal again; with ``check``, stop at the first difference.

    ``hashes``, when given, receives the recorded state hashes by the
    engine's tick count they belong to (the start's, each tick's, the end's).
    Raises :class:`JournalError` when the file is unreadable (or a what-if
    cannot start).
    """
    try:
        engine = start_engine(reader.header, whatif)
    except JournalError as exc:
        raise JournalError(f"{reader.name}: {exc.message}") from exc
    template = whatif.template if whatif is not None else None
    result = ReplayResult(start_tick=engine.tick)
    began = time.perf_counter()
    if hashes is not None:
        hashes[engine.tick] = reader.header.start_hash

    def run(tick: int, inputs: Sequence[EngineInput]) -> list[EventItem]:
        events = engine.step(inputs).events
        for observe in observers:
            observe(tick, inputs, events)
        return events

    for record in reader.ticks():
        result.records += 1
        while engine.tick < record.tick:
            quiet = engine.tick
            events = run(quiet, ())
            for observe in recorded:
                observe(quiet, (), ())
            if check and events:
                result.mismatch = Mismatch(quiet, "items", _first_difference((), events))
                break
        if result.mismatch is not None:
            break
        if engine.tick != record.tick:
            raise JournalError(f"{reader.name}: tick {record.tick} is before the engine's")
        inputs = record.inputs
        if template is not None:
            inputs = tuple(
                TemplateUploaded(i.author, template) if isinstance(i, TemplateUploaded) else i
                for i in inputs
            )
        for observe in recorded:
            observe(record.tick, record.inputs, record.items)
        if hashes is not None and record.hash is not None:
            hashes[record.tick + 1] = record.hash
        events = run(record.tick, inputs)
        if not check:
            continue
        if tuple(events) != record.items:
            detail = _first_difference(record.items, events)
            result.mismatch = Mismatch(record.tick, "items", detail)
            break
        if record.hash is not None:
            result.hashes += 1
            got = engine.state_hash()
            if got != record.hash:
                detail = f"journal {record.hash[:12]}…, replay {got[:12]}…"
                result.mismatch = Mismatch(record.tick, "state hash", detail)
                break
    else:
        end = reader.end
        result.end = end
        if end is not None:
            if hashes is not None and end.hash is not None:
                hashes[end.tick] = end.hash
            while engine.tick < end.tick:
                quiet = engine.tick
                run(quiet, ())
                for observe in recorded:
                    observe(quiet, (), ())
            if check and end.hash is not None:
                result.hashes += 1
                got = engine.state_hash()
                if got != end.hash:
                    detail = f"journal {end.hash[:12]}…, replay {got[:12]}…"
                    result.mismatch = Mismatch(end.tick - 1, "end state hash", detail)
    result.final_tick = engine.tick
    result.ticks = engine.tick - result.start_tick
    result.seconds = time.perf_counter() - began
    return result


def read_night(reader: JournalReader, observers: Sequence[Observer]) -> int:
    """Feed the recorded ticks to ``observers`` without running the engine; the
    number of tick records read."""
    n = 0
    for record in reader.ticks():
        n += 1
        for observe in observers:
            observe(record.tick, record.inputs, record.items)
    return n


def _first_difference(recorded: Sequence[EventItem], replayed: Sequence[EventItem]) -> str:
    for k in range(max(len(recorded), len(replayed))):
        a = recorded[k] if k < len(recorded) else None
        b = replayed[k] if k < len(replayed) else None
        if a != b:
            return f"item {k}: journal {_short(a)}, replay {_short(b)}"
    return "the items differ"  # pragma: no cover - only called when they do


def _short(item: EventItem | None) -> str:
    if item is None:
        return "nothing"
    text = repr(item.to_wire())
    return text if len(text) <= 120 else text[:117] + "..."
