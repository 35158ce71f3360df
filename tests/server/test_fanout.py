"""Fan-out in one process: resume and resync, a store that lost its data, a room
re-created under a node's feet, and a store that fails a read. Never a silent gap."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sleepsync.client.connection import RoomClient
from sleepsync.protocol.messages import Error, Event, ResumePoint, Resync, Snapshot
from sleepsync.server.backend.base import BackendError, StoredEvent
from sleepsync.server.backend.memory import MemoryBackend

from nodes import Recorder, running_node, wait_for


def contiguous_after_snapshots(r: Recorder) -> None:
    """Every event follows the previous one or the last snapshot."""
    position: int | None = None
    for msg in r.messages:
        if isinstance(msg, Snapshot):
            position = msg.seq
        elif isinstance(msg, Event):
            assert position is not None and msg.seq == position + 1, (position, msg.seq)
            position = msg.seq


async def test_resume_replays_within_retention_and_resyncs_beyond() -> None:
    async with (
        running_node(event_retention=30) as node,
        Recorder(RoomClient(node.url, "r", "anchor")) as anchor,
    ):
        await wait_for(lambda: len(anchor.events()) >= 3, what="events")
        roamer = RoomClient(node.url, "r", "roamer", role="observer")
        async with Recorder(roamer) as first:
            await wait_for(lambda: bool(first.events()), what="roamer events")
        left_at = roamer.position
        assert left_at is not None
        await wait_for(lambda: anchor.events()[-1].seq >= left_at.seq + 5)
        async with Recorder(roamer) as back:  # resumes from (epoch, seq)
            await wait_for(lambda: len(back.events()) >= 10, what="replay and live")
            assert not back.of_type(Resync) and not back.of_type(Snapshot)
            seqs = [e.seq for e in back.events()]
            assert seqs == list(range(left_at.seq + 1, left_at.seq + 1 + len(seqs)))
        # A resume point the store cannot serve: a resync and a snapshot, never a gap.
        for point in (
            ResumePoint(left_at.epoch, 1),  # trimmed long ago
            ResumePoint(left_at.epoch + 7, left_at.seq),  # another owner's history
            ResumePoint(left_at.epoch, 10**9),  # ahead of the store: it was reset
            ResumePoint(left_at.epoch, 0),  # from the start, which is gone
        ):
            await wait_for(lambda: anchor.events()[-1].seq > 40, what="trimming")
            roamer.session.rooms[roamer.room].position = point
            async with Recorder(roamer) as resynced:
                await wait_for(lambda: bool(resynced.events()), what="events after resync")
                assert resynced.of_type(Resync) and resynced.of_type(Snapshot), point
                contiguous_after_snapshots(resynced)


async def test_a_store_that_lost_its_data_resyncs_clients_and_no_line_vanishes() -> None:
    backend = MemoryBackend()
    async with running_node(backend=backend, lease_ttl_ms=300) as node:
        teller = RoomClient(node.url, "r", "teller")
        async with (
            Recorder(teller) as told,
            Recorder(RoomClient(node.url, "r", "watcher", role="observer")) as watcher,
        ):
            await wait_for(lambda: bool(told.events() and watcher.events()), what="events")
            await teller.say("before")
            await wait_for(lambda: bool(watcher.items("said")), what="the first line")
            backend._rooms.clear()  # a Redis restarted empty
            sent = ["before"]
            for n in range(20):
                await teller.say(f"line {n}")
                sent.append(f"line {n}")
                await asyncio.sleep(0.05)
            await wait_for(lambda: bool(watcher.of_type(Resync)), timeout=10, what="a resync")

            def answered() -> int:
                said = {i["text"] for i in told.items("said")} | {
                    i["text"] for i in watcher.items("said")
                }
                refused = [i for i in told.items("input_refused")]
                errors = [e for e in told.of_type(Error) if e.ref == "say"]
                return len([s for s in sent if s in said]) + len(refused) + len(errors)

            await wait_for(lambda: answered() >= len(sent), timeout=10, what="every line")
            assert any(e.code == "room_missing" for e in told.of_type(Error)), (
                "lines into the lost room were refused to their sender"
            )
            await teller.say("after")
            await wait_for(
                lambda: any(i["text"] == "after" for i in watcher.items("said")), timeout=10
            )
            for r in (told, watcher):
                contiguous_after_snapshots(r)
                assert r.error is None
        assert node.metrics.value("sleepsync_room_resets_total") >= 1


async def test_a_room_recreated_under_a_node_resyncs_its_clients() -> None:
    backend = MemoryBackend()
    async with running_node(backend=backend) as node:
        async with Recorder(RoomClient(node.url, "r", "watcher")) as watcher:
            await wait_for(lambda: len(watcher.events()) >= 3, what="events")
            owned = node.rooms.owned["r"]
            node.rooms.step_down("r", "the test takes the room")
            last = watcher.events()[-1]
            # Another incarnation's event continues the seqs with another epoch.
            lease = await backend.owner("r")
            assert lease is not None and owned is not None
            room = backend._rooms["r"]
            room.events.clear()
            room.epoch += 5
            stranger = StoredEvent(room.epoch, last.seq + 1, last.tick + 1, b"", b"")
            await backend.append_events("r", room.epoch, [stranger])
            await wait_for(lambda: bool(watcher.of_type(Resync)), timeout=10, what="a resync")
        assert node.metrics.value("sleepsync_room_resets_total") >= 1


class FailingReads(MemoryBackend):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = 0

    async def wait_events(
        self, positions: Mapping[str, int], timeout: float, limit: int
    ) -> dict[str, list[StoredEvent]]:
        if self.failures:
            self.failures -= 1
            raise BackendError("the store did not answer")
        return await super().wait_events(positions, timeout, limit)


async def test_a_failed_read_is_retried_and_nothing_is_missed() -> None:
    backend = FailingReads()
    async with running_node(backend=backend) as node:
        async with Recorder(RoomClient(node.url, "r", "watcher")) as watcher:
            await wait_for(lambda: bool(watcher.events()), what="events")
            backend.failures = 3
            seen = watcher.events()[-1].seq
            await wait_for(lambda: watcher.events()[-1].seq > seen + 10, what="more events")
            contiguous_after_snapshots(watcher)
        assert node.metrics.value("sleepsync_backend_failures_total", op="read") == 3
