"""``serve --journal-dir``: rooms recorded as they run, across rotation, failover and restarts.

Two room managers share one memory backend and one manual clock (as in
``test_rooms.py``), each with its own :class:`JournalKeeper`; the tests play
a takeover and check that every segment replays bit-exact and that a new
owner's segment starts from a state the old one passed through.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns
from sleepsync.server.backend.base import Member
from sleepsync.server.backend.memory import MemoryBackend
from sleepsync.server.config import Settings
from sleepsync.server.dream import engine_hooks
from sleepsync.server.engine.api import Telemetry
from sleepsync.server.inputs import ForgetInput, MemberJoin, StoryInput
from sleepsync.server.journal.files import JournalReader
from sleepsync.server.journal.recorder import JournalKeeper
from sleepsync.server.journal.replay import replay
from sleepsync.server.metrics import Metrics
from sleepsync.server.rooms import RoomManager
from sleepsync.server.supervisor import Supervisor

from nodes import ManualClock

LEASE = 0.4
SETTINGS = Settings(
    tick_hz=10.0, lease_ttl_ms=400, node_ttl_ms=800, snapshot_every=4, room_idle_seconds=60.0
)
VITALS = VitalSigns(heart_rate=77.7, hrv=44.4, skin_conductance=3.3, respiration=15.5)


class Night:
    """One backend and clock; managers with journals; pods and a dreamer in room ``r``."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.clock = ManualClock()
        self.backend = MemoryBackend(clock=self.clock)
        self.hooks = engine_hooks(SETTINGS)
        self.rnd = random.Random(5)
        self.seq = 0
        self.managers: list[RoomManager] = []

    def node(self, name: str, **keeper: Any) -> RoomManager:
        journal = JournalKeeper(
            self.tmp / name,
            node=name,
            segment_bytes=keeper.get("segment_bytes", 10**9),
            max_bytes=keeper.get("max_bytes", 10**9),
            hash_every=2,
            flush_s=0.0,
        )
        manager = RoomManager(
            self.backend,
            SETTINGS,
            name,
            Metrics(),
            journal.hooks(self.hooks),
            tasks=Supervisor(),
            clock=self.clock,
            journal=journal,
        )
        self.managers.append(manager)
        return manager

    async def join(self, manager: RoomManager) -> None:
        await manager.open_room("r")
        member = Member("s1", "lila", "dreamer", manager.node_id)
        assert await self.backend.join_presence("r", member, 50)
        await manager.submit("r", MemberJoin("s1", "lila", "dreamer", manager.node_id))

    async def ticks(self, manager: RoomManager, n: int, *, say: bool = True) -> None:
        """``n`` ticks of the owner: pods sample every tick, lila speaks now and then."""
        for k in range(n):
            self.seq += 1
            for pod in ("pod-1", "pod-2", "pod-3"):
                v = round(self.rnd.uniform(0.2, 0.8), 3)
                a = round(self.rnd.uniform(0.2, 0.8), 3)
                sample = TelemetrySample(pod, "b1", self.seq, 1000.0 + self.seq / 10, VITALS, v, a)
                manager.add_external("r", Telemetry(sample))
            if say and k % 7 == 3:
                await manager.submit("r", StoryInput("s1", "lila", f"line {self.seq}"))
            self.clock.advance(0.1)
            await manager.tick_once()
            await manager.maintain()

    async def close(self) -> None:
        for manager in self.managers:
            await manager.tasks.stop()


@pytest.fixture
async def night(tmp_path: Path) -> Any:
    n = Night(tmp_path)
    yield n
    await n.close()


def segments(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.ssj.gz"))


def checked(path: Path, hashes: dict[int, str] | None = None) -> Any:
    result = replay(JournalReader(path), hashes=hashes)
    assert result.exact, (path, result.mismatch)
    return result


async def test_a_room_is_recorded_and_its_segment_replays_bit_exact(night: Night) -> None:
    a = night.node("a")
    await a.maintain()
    await night.join(a)
    await night.ticks(a, 60)
    await a.release_all()  # shutdown: the segment ends with the exact hash
    (path,) = segments(night.tmp / "a")
    reader = JournalReader(path)
    assert reader.header.room == "r" and reader.header.segment.reason == "install"
    result = checked(path)
    assert result.end is not None and result.end.reason == "closed" and result.end.hash
    assert result.ticks >= 60
    assert b"77.7" not in path.read_bytes() and a.journal is not None
    assert a.journal.stats.ticks >= 60


async def test_a_new_owner_starts_a_linked_segment(night: Night) -> None:
    a, b = night.node("a"), night.node("b")
    await a.maintain()
    await b.maintain()
    await night.join(a)
    await night.ticks(a, 30)
    # a dies: it writes nothing more. Its segment has no end record.
    for _ in range(6):
        night.clock.advance(LEASE / 3)
        await b.maintain()
    assert set(b.owned) == {"r"}
    await night.ticks(b, 30)
    await b.release_all()
    (old,) = segments(night.tmp / "a")
    (new,) = segments(night.tmp / "b")
    seen: dict[int, str] = {}
    first = checked(old, seen)
    assert first.end is None  # cut: the node died
    header = JournalReader(new).header
    assert header.segment.epoch > JournalReader(old).header.segment.epoch
    # the new owner starts from the stored snapshot, a state the old segment passed through
    assert header.start_tick in seen and seen[header.start_tick] == header.start_hash
    second = checked(new)
    assert second.start_tick <= first.final_tick  # overlapping: nothing is missing
    assert second.end is not None and second.end.reason == "closed"


async def test_a_lost_lease_ends_the_segment_without_a_hash(night: Night) -> None:
    a = night.node("a")
    await a.maintain()
    await night.join(a)
    await night.ticks(a, 10)
    a.step_down("r", "test: lease lost")
    (path,) = segments(night.tmp / "a")
    result = checked(path)
    assert result.end is not None and result.end.reason == "lost" and result.end.hash is None


async def test_segments_rotate_and_the_directory_stays_in_its_budget(night: Night) -> None:
    a = night.node("a", segment_bytes=3_000, max_bytes=12_000)
    await a.maintain()
    await night.join(a)
    await night.ticks(a, 300)
    await a.release_all()
    assert a.journal is not None
    files = segments(night.tmp / "a")
    assert a.journal.stats.rotated >= 4 and a.journal.stats.deleted >= 1
    assert sum(p.stat().st_size for p in files) <= 12_000 + 4_000  # the open one may run over
    seen: dict[int, str] = {}
    for k, path in enumerate(files):
        header = JournalReader(path).header
        if k:
            assert header.segment.reason == "rotate"
            assert header.segment.previous == files[k - 1].name
            assert seen[header.start_tick] == header.start_hash  # seamless
        checked(path, seen)


async def test_a_disk_error_stops_recording_the_room_not_the_room(
    night: Night, tmp_path: Path
) -> None:
    blocker = tmp_path / "a"
    blocker.write_text("a file where the journal directory should be")
    a = night.node("a")
    await a.maintain()
    await night.join(a)
    await night.ticks(a, 5)
    assert a.journal is not None and a.journal.stats.errors >= 1
    assert a.journal.recording == [] and set(a.owned) == {"r"}


async def test_a_forgotten_room_s_segments_are_deleted(night: Night) -> None:
    a = night.node("a")
    await a.maintain()
    await night.join(a)
    await night.ticks(a, 10)
    assert segments(night.tmp / "a")
    await a.submit("r", ForgetInput("s1", "operator"))
    await night.ticks(a, 1, say=False)
    assert "r" not in a.owned and a.journal is not None
    assert segments(night.tmp / "a") == [] and a.journal.recording == []
    assert not (night.tmp / "a" / "r").exists()
    a.journal.forget("r")  # nothing left to delete: no error
    assert a.journal.stats.errors == 0
