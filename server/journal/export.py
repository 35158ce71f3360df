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

from sleepsync.protocol.errors import SleepSyncError

from ..backend.base import Backend
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
    tap_hooks = tapped_hooks(hooks, hash_every)
    if snapshot is not None:
        kept = RoomState.restore(snapshot.state, None)
        story_tail, capacity = kept.story_tail, kept.capacity
    if first == 1:  # the stream holds everything since the room began
        runner = RoomRunner.open(
            room, None, epoch=0, hooks=tap_hooks, story_tail=story_tail, capacity=capacity
        )
    elif snapshot is not None:
        runner = RoomRunner.open(
            room, snapshot, epoch=0, hooks=tap_hooks, story_tail=story_tail, capacity=capacity
        )
    else:
        raise NoHistory(f"room {room} has neither a snapshot nor its first events")
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
                runner.replay(stored)
            await asyncio.sleep(0)  # a long history must not stall the node
    except SleepSyncError as exc:
        raise NoHistory(f"room {room}'s history cannot be replayed: {exc.message}") from exc
    out = io.BytesIO()
    segment = Segment(node=node, epoch=runner.last_epoch, reason="export", created=time.time())
    writer = JournalWriter(out, tap, room=room, segment=segment)
    writer.write(tap.take())
    writer.finish("export")
    data = out.getvalue()
    if len(data) > MAX_EXPORT_BYTES:
        raise NoHistory(f"room {room}'s history is over {MAX_EXPORT_BYTES} bytes as a journal")
    return data
