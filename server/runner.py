"""The room runner: one room's state and dream engine; inputs in, one stored event out.

How it works. The runner is pure: no asyncio, no backend, no clock of its
own. The room's owner calls :meth:`RoomRunner.tick` once per tick with the
room inputs it read from the inbox (joins, leaves, story lines, templates)
and the external inputs its MQTT ingest queued (telemetry, pod state). The
runner applies them to the :class:`~.room_state.RoomState`, which steps the
engine; turns template rejections and inputs from sessions the room does not
know into event items (nothing is dropped without a trace); and returns at
most one :class:`~.backend.base.StoredEvent`: the frame clients receive, at
the owner's lease epoch and the room's next seq, plus the tick's inputs, so
a later owner can replay the tick exactly. A tick that applied room inputs
always stores an event, even one with no visible item: a membership change
is never missing from the replayed history. The record names template
uploads by digest; :attr:`TickResult.templates` carries their texts, for the
owner to store once beside the event (see ``backend.base``, templates).

A new owner opens its runner from the room's last snapshot (a new room: from
nothing), then :meth:`~RoomRunner.replay` s every event stored after it,
with the room's stored templates.
:meth:`~RoomRunner.snapshot` gives the state and the client-facing view at
the same point; the view carries the epoch of the newest event, or the
owner's own epoch while the room has no event yet, so a newcomer's resume
point is always a real one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sleepsync.protocol.codec import encode
from sleepsync.protocol.errors import DecodeError, SleepSyncError
from sleepsync.protocol.messages import Event, Snapshot
from sleepsync.protocol.telemetry import Cue

from .backend.base import RoomSnapshot, StoredEvent
from .inputs import ExternalInput, RoomInput, decode_tick, encode_tick, template_texts
from .room_state import EngineHooks, RoomState

__all__ = ["ReplayError", "RoomRunner", "TickResult"]


class ReplayError(SleepSyncError, peer=False):
    """A room's stored history cannot be replayed (a hole, or an unreadable record).

    Kept inside: the owner releases the room; a ``history`` request says
    ``no_history``."""

    code = "replay"


@dataclass(slots=True)
class TickResult:
    """What one tick gives its owner: the event to store (None: nothing to store)."""

    stored: StoredEvent | None = None
    #: digest -> text of the templates ``stored`` names: store them with it.
    templates: dict[str, bytes] = field(default_factory=dict)
    cues: list[Cue] = field(default_factory=list)
    #: Pods whose telemetry was refused because the room is full.
    refused_pods: int = 0


class RoomRunner:
    """One room, as its owner at lease ``epoch`` runs it."""

    def __init__(self, state: RoomState, *, epoch: int, last_epoch: int) -> None:
        self.state = state
        #: The owner's lease epoch: every event this runner makes carries it.
        self.epoch = epoch
        #: Epoch of the newest event (the owner that wrote it), for snapshots.
        self.last_epoch = last_epoch

    @classmethod
    def open(
        cls,
        room: str,
        snapshot: RoomSnapshot | None,
        *,
        epoch: int,
        hooks: EngineHooks | None,
        story_tail: int,
        capacity: int,
    ) -> RoomRunner:
        """The room as of ``snapshot``, or a new room when there is none."""
        if snapshot is None:
            state = RoomState(room, story_tail=story_tail, capacity=capacity, hooks=hooks)
            return cls(state, epoch=epoch, last_epoch=epoch)
        return cls(RoomState.restore(snapshot.state, hooks), epoch=epoch, last_epoch=snapshot.epoch)

    @property
    def room(self) -> str:
        return self.state.room

    def tick(
        self, inputs: Sequence[RoomInput], external: Sequence[ExternalInput], now: float
    ) -> TickResult:
        """Apply one tick's inputs in arrival order; ``now`` is the event's wall time.

        Raises whatever the engine raises (a bug, or a poisoned input): the
        state is then unusable and the owner rebuilds the room from the store.
        """
        state = self.state
        out = state.apply(inputs, external)
        result = TickResult(cues=out.cues, refused_pods=len(out.refused_pods))
        if not out.items and not inputs:
            return result
        if not out.seq:  # room inputs without a visible item (a join of a known name)
            state.seq += 1
            out.seq = state.seq
        items = [item.to_wire() for item in out.items]
        frame = encode(Event(state.room, self.epoch, out.seq, state.tick, items, now))
        self.last_epoch = self.epoch
        record = encode_tick(inputs, external)
        result.stored = StoredEvent(self.epoch, out.seq, state.tick, frame, record)
        result.templates = template_texts(inputs)
        return result

    def replay(self, stored: StoredEvent, templates: Mapping[str, bytes] | None = None) -> None:
        """Apply a stored event's inputs again: the tick that made it, exactly.

        ``templates`` holds the texts of the templates the record names
        (the room's stored templates, :meth:`Backend.read_templates`).
        """
        state = self.state
        if stored.seq != state.seq + 1:
            raise ReplayError(f"the stream of {state.room} jumps from {state.seq} to {stored.seq}")
        try:
            record = decode_tick(stored.inputs, templates)
        except DecodeError as exc:
            raise ReplayError(f"event {stored.seq} of {state.room}: {exc.message}") from exc
        while state.tick < stored.tick - 1:
            state.apply([])  # quiet ticks that stored no event
        state.apply(record.room, record.external)
        # Whatever the replay produced, the stored event is the truth clients saw.
        state.seq = stored.seq
        state.tick = stored.tick
        self.last_epoch = stored.epoch

    def snapshot(self) -> RoomSnapshot:
        """The owner's state and the client-facing view, both after the newest event."""
        state = self.state
        view = encode(Snapshot(state.room, self.last_epoch, state.seq, state.view()))
        return RoomSnapshot(self.last_epoch, state.seq, state.snapshot(), view)
