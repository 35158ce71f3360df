"""A room's retained history as a journal: what a ``history`` request gets.

How it works: the store keeps a room's latest snapshot and its last events
(``--event-retention``), each event with its tick's inputs. When the stream
still starts at the room's first event, the journal starts where the room
started (a new engine, as its owner made it); otherwise it starts at the
snapshot, and holds the events after it. A :class:`~..runner.RoomRunner`
with tapped hooks (:mod:`.tap`) replays those events exactly as a new owner
would; the tap records what the engine saw, and the journal is written from
it, ending with the state hash after the last event. Raw vitals stay in the
store: the journal keeps the engine's derived inputs only.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Mapping

from sleepsync.protocol.errors import SleepSyncError

from ..backend.base import Backend, RoomSnapshot
from ..room_state import EngineHooks, RoomState
from ..runner import RoomRunner
from .schema import Segment
from .tap import EngineTap, JournalWriter, tapped_hooks

__all__ = ["MAX_EXPORT_BYTES", "NoHistory", "export_journal"]

#: Largest journal a ``history`` request is answered with.
MAX_EXPORT_BYTES = 256 * 1024 * 1024
#: Events read from the store at once.
BATCH = 512


class NoHistory(SleepSyncError):
    """The room has no history to export: unknown, or nothing stored yet."""

    code = "no_history"


async def export_journal(
    backend: Backend,
    room: str,
    hooks: EngineHooks,
    *,
    node: str,
    hash_every: int = 10,
    story_tail: int = 20,
    capacity: int = 50,
) -> bytes:
    """The journal of ``room``'s retained history (raises :class:`NoHistory`)."""
    snapshot = await backend.load_snapshot(room)
    first = await backend.first_seq(room)
    _epoch, last = await backend.last_position(room)
    if snapshot is None and first is None:
        raise NoHistory(f"room {room} has no stored history")
    if snapshot is not None:
        kept = RoomState.restore(snapshot.state, None)
        story_tail, capacity = kept.story_tail, kept.capacity
    # Tick records name template uploads by digest; the store keeps the texts
    # of the ticks since the last snapshot only (``backend.base``, templates).
    templates = await backend.read_templates(room)
    runner: RoomRunner | None = None
    if first == 1:  # the stream holds everything since the room began
        try:
            runner = await _replay(
                backend,
                room,
                None,
                templates,
                last,
                tapped_hooks(hooks, hash_every),
                story_tail,
                capacity,
            )
        except NoHistory:
            if snapshot is None:
                raise
            # an upload before the snapshot: its text is gone; start at the snapshot
    if runner is None:
        if snapshot is None:
            raise NoHistory(f"room {room} has neither a snapshot nor its first events")
        runner = await _replay(
            backend,
            room,
            snapshot,
            templates,
            last,
            tapped_hooks(hooks, hash_every),
            story_tail,
            capacity,
        )
    tap = runner.state.engine
    assert isinstance(tap, EngineTap), "checked by _replay"
    out = io.BytesIO()
    segment = Segment(node=node, epoch=runner.last_epoch, reason="export", created=time.time())
    writer = JournalWriter(out, tap, room=room, segment=segment)
    writer.write(tap.take())
    writer.finish("export")
    data = out.getvalue()
    if len(data) > MAX_EXPORT_BYTES:
        raise NoHistory(f"room {room}'s history is over {MAX_EXPORT_BYTES} bytes as a journal")
    return data


async def _replay(
    backend: Backend,
    room: str,
    snapshot: RoomSnapshot | None,
    templates: Mapping[str, bytes],
    last: int,
    hooks: EngineHooks,
    story_tail: int,
    capacity: int,
) -> RoomRunner:
    """A tapped runner that replayed the stored events after ``snapshot`` (or
    all of them) up to ``last``; raises :class:`NoHistory`."""
    runner = RoomRunner.open(
        room, snapshot, epoch=0, hooks=hooks, story_tail=story_tail, capacity=capacity
    )
    tap = runner.state.engine
    if not isinstance(tap, EngineTap):
        raise NoHistory(f"room {room} runs no dream engine")
    tap.mark_start()
    try:
        while runner.state.seq < last:
            batch = await backend.read_events(room, runner.state.seq, BATCH)
            if not batch:
                break
            for stored in batch:
                if stored.seq > last:
                    break
                runner.replay(stored, templates)
            await asyncio.sleep(0)  # a long history must not stall the node
    except SleepSyncError as exc:
        raise NoHistory(f"room {room}'s history cannot be replayed: {exc.message}") from exc
    return runner
