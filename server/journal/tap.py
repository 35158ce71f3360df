"""Recording an engine's steps for a journal, and writing them out.

How it works: :func:`tapped_hooks` wraps a node's engine hooks so that every
engine a room creates or restores is an :class:`EngineTap`: it steps the
real :class:`~..engine.Engine` and keeps, per step, the inputs in the order
the engine applied them, the event items, and the state hash every
``hash_every`` ticks (when the engine's tick count is a multiple of it). The
room runner and room state do not know: a tap is a ``DreamEngine`` like the
engine itself. Whoever owns the tap takes the steps (:meth:`EngineTap.take`)
once they are safe to keep — the owner after the tick's events are stored,
the export after the whole history is replayed — and hands them to a
:class:`JournalWriter`, which writes a header from where the tap started and
then the ticks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from sleepsync import __version__
from sleepsync.protocol.errors import LocalError
from sleepsync.protocol.narrative import NarrativeTemplate
from sleepsync.protocol.wire import WireMap

from ..engine import Engine, EngineInput, StepResult, canonical_order
from ..room_state import EngineHooks
from .codec import JournalEncoder
from .schema import JournalEnd, JournalHeader, JournalTick, Segment, template_hash

__all__ = ["EngineTap", "JournalWriter", "Sink", "tapped_hooks"]


class EngineTap:
    """A ``DreamEngine`` that records every step of the engine it wraps."""

    def __init__(self, engine: Engine, hash_every: int) -> None:
        if hash_every < 1:
            raise LocalError("hash_every must be at least 1")
        self.engine = engine
        self.hash_every = hash_every
        #: Where recording started: the engine's tick, snapshot and narrative then.
        self.start_tick = 0
        self.start_state = b""
        self.start_narrative: NarrativeTemplate | None = None
        self.steps: list[JournalTick] = []

    def mark_start(self) -> None:
        """Record from the engine's current state on (discarding earlier steps)."""
        e = self.engine
        self.start_tick = e.tick
        self.start_state = e.snapshot()
        self.start_narrative = e.narrative.template
        self.steps = []

    def step(self, inputs: Sequence[EngineInput]) -> StepResult:
        e = self.engine
        if self.start_narrative is None:
            self.mark_start()
        tick = e.tick
        ordered = canonical_order(inputs)
        result = e.step(ordered)
        digest = e.state_hash() if e.tick % self.hash_every == 0 else None
        if ordered or result.events or digest is not None:
            self.steps.append(JournalTick(tick, tuple(ordered), tuple(result.events), digest))
        return result

    def take(self) -> list[JournalTick]:
        """The steps recorded since the last call."""
        steps, self.steps = self.steps, []
        return steps

    def view(self) -> WireMap:
        return self.engine.view()

    def snapshot(self) -> bytes:
        return self.engine.snapshot()

    def state_hash(self) -> str:
        return self.engine.state_hash()


def tapped_hooks(hooks: EngineHooks, hash_every: int) -> EngineHooks:
    """``hooks`` whose engines are :class:`EngineTap` s."""

    def create(room: str) -> EngineTap:
        return EngineTap(_engine(hooks.create(room)), hash_every)

    def restore(data: bytes) -> EngineTap:
        return EngineTap(_engine(hooks.restore(data)), hash_every)

    return EngineHooks(create=create, restore=restore, parse_template=hooks.parse_template)


def _engine(engine: object) -> Engine:
    if isinstance(engine, EngineTap):
        return engine.engine
    if not isinstance(engine, Engine):
        raise LocalError("a journal records the dream engine; this room runs another")
    return engine


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class JournalWriter:
    """Writes one journal file: a header from where ``tap`` started, then ticks, then the end."""

    def __init__(self, sink: Sink, tap: EngineTap, *, room: str, segment: Segment) -> None:
        if tap.start_narrative is None:
            tap.mark_start()
        assert tap.start_narrative is not None
        self.sink = sink
        self.tap = tap
        self.header = JournalHeader(
            room=room,
            seed=tap.engine.seed,
            config=tap.engine.config,
            start_tick=tap.start_tick,
            start_state=tap.start_state,
            start_hash=hashlib.sha256(tap.start_state).hexdigest(),
            narrative=template_hash(tap.start_narrative),
            hash_every=tap.hash_every,
            segment=segment,
            sleepsync=__version__,
        )
        self._encoder = JournalEncoder()
        sink.write(self._encoder.header(self.header, tap.start_narrative))
        #: Ticks written, and the engine's tick count after the last one.
        self.ticks = 0
        self.last_tick = tap.start_tick

    def write(self, steps: Sequence[JournalTick]) -> None:
        encode = self._encoder.tick
        for step in steps:
            self.sink.write(encode(step))
        if steps:
            self.ticks += len(steps)
            self.last_tick = steps[-1].tick + 1

    def finish(self, reason: str, *, exact: bool = True) -> None:
        """The end record: the engine's tick count and state hash now (``exact``:
        every step the engine took is written), or no hash (``exact=False``)."""
        engine = self.tap.engine
        if exact:
            end = JournalEnd(engine.tick, engine.state_hash(), reason)
        else:
            end = JournalEnd(self.last_tick, None, reason)
        self.sink.write(self._encoder.end(end))
