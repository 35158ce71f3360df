"""Room managers of two nodes on one memory backend, driven by hand with one clock.

Each test plays a failure (an owner that dies, pauses, loses touch, or whose
tick or backend fails) by calling ``tick_once`` and ``maintain`` itself and
moving the clock past lease and node TTLs: deterministic, and no test sleeps
through a real lease time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from sleepsync.protocol.codec import decode
from sleepsync.protocol.errors import TooManyRooms
from sleepsync.protocol.messages import Event
from sleepsync.protocol.wire import Limits
from sleepsync.server.backend.base import (
    BackendError,
    Commit,
    InboxFull,
    Member,
    RoomMissing,
    StoredEvent,
)
from sleepsync.server.backend.memory import MemoryBackend
from sleepsync.server.config import Settings
from sleepsync.server.dream import engine_hooks
from sleepsync.server.engine.api import PodOffline
from sleepsync.server.inputs import (
    MemberJoin,
    MemberLeave,
    StoryInput,
    TemplateInput,
    template_digest,
)
from sleepsync.server.metrics import Metrics
from sleepsync.server.outbox import NodeLapsed
from sleepsync.server.room_state import EngineHooks
from sleepsync.server.rooms import EXTERNAL_QUEUE, RoomManager
from sleepsync.server.supervisor import Supervisor

from nodes import ManualClock

LIMITS = Limits(max_frame=1 << 22, max_str=1 << 20, max_array=1 << 16)
LEASE = 0.4
NODE_TTL = 0.8
SETTINGS = Settings(
    tick_hz=10.0,
    lease_ttl_ms=int(LEASE * 1000),
    node_ttl_ms=int(NODE_TTL * 1000),
    snapshot_every=4,
    room_idle_seconds=5.0,
)


class FlakyBackend(MemoryBackend):
    """A memory backend whose next ``append_many`` fails, before or after it commits."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_append: str | None = None  # "before" or "after"

    async def append_many(self, commits: Mapping[str, Commit]) -> dict[str, bool]:
        when, self.fail_append = self.fail_append, None
        if when == "before":
            raise BackendError("connection lost before the append")
        results = await super().append_many(commits)
        if when == "after":
            raise BackendError("connection lost after the append")
        return results


class World:
    """One backend, one clock, and the room managers of the nodes sharing them."""

    def __init__(self, backend: MemoryBackend | None = None, settings: Settings = SETTINGS):
        self.clock = ManualClock()
        self.backend = backend or MemoryBackend(clock=self.clock)
        self.backend._clock = self.clock
        self.settings = settings
        self.managers: list[RoomManager] = []
        self.owned_log: list[tuple[str, str, bool]] = []
        self.cues: list[tuple[str, int]] = []

    def node(self, name: str, hooks: EngineHooks | None = None) -> RoomManager:
        manager = RoomManager(
            self.backend,
            self.settings,
            name,
            Metrics(),
            hooks,
            tasks=Supervisor(),
            clock=self.clock,
            on_ownership=lambda room, owned: self.owned_log.append((name, room, owned)),
            on_cues=lambda room, cues: self.cues.append((room, len(cues))),
        )
        self.managers.append(manager)
        return manager

    async def elapse(self, seconds: float, *alive: RoomManager) -> None:
        """Let time pass: the ``alive`` managers tick and keep up their rounds meanwhile
        (every lease TTL / 3, as their loops would); the others are paused or dead."""
        step = LEASE / 3
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            for manager in alive:
                await manager.tick_once()
                await manager.maintain()

    async def close(self) -> None:
        for manager in self.managers:
            await manager.tasks.stop()

    async def join(self, manager: RoomManager, room: str, session: str, name: str) -> None:
        """What the gateway does for a join: open, presence, then the input."""
        await manager.open_room(room)
        member = Member(session, name, "dreamer", manager.node_id)
        assert await self.backend.join_presence(room, member, self.settings.room_capacity)
        await manager.submit(room, MemberJoin(session, name, "dreamer", manager.node_id))

    async def leave(self, manager: RoomManager, room: str, session: str) -> None:
        await self.backend.leave_presence(room, session)
        await manager.submit(room, MemberLeave(session))

    async def events(self, room: str) -> list[Event]:
        out = []
        for stored in await self.backend.read_events(room, 0, 100_000):
            msg = decode(stored.frame, LIMITS)
            assert isinstance(msg, Event)
            out.append(msg)
        return out

    async def items(self, room: str, kind: str) -> list[dict[str, Any]]:
        return [i for e in await self.events(room) for i in e.items if i["kind"] == kind]

    async def members(self, room: str) -> list[str]:
        return sorted(m.name for m in await self.backend.presence(room))


@pytest.fixture
async def world() -> Any:
    w = World()
    yield w
    await w.close()


def contiguous(events: Sequence[Event]) -> bool:
    return [e.seq for e in events] == list(range(1, len(events) + 1))


# ---------------------------------------------------------------- owning and ticking
async def test_a_joined_room_is_owned_and_ticks_lines_in_order(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    assert set(a.owned) == {"r"} and ("a", "r", True) in world.owned_log
    for n in range(3):
        await a.submit("r", StoryInput("s1", "lila", f"line {n}"))
    await a.tick_once()
    said = [i["text"] for i in await world.items("r", "said")]
    assert said == ["line 0", "line 1", "line 2"]
    assert await world.backend.read_inputs(["r"], 10) == {}, "consumed with the append"
    snap = await world.backend.load_snapshot("r")
    assert snap is not None and snap.epoch == a.owned["r"].lease.epoch, "the real epoch"


async def test_a_new_room_first_snapshot_has_the_real_epoch(world: World) -> None:
    a = world.node("a")
    await a.open_room("fresh")
    snap = await world.backend.load_snapshot("fresh")
    lease = await world.backend.owner("fresh")
    assert snap is not None and lease is not None
    assert (snap.epoch, snap.seq) == (lease.epoch, 0) and snap.epoch > 0


async def test_max_rooms_is_refused(world: World) -> None:
    world.settings = Settings(**{**_fields(SETTINGS), "max_rooms": 1})
    a = world.node("a")
    await a.open_room("one")
    with pytest.raises(TooManyRooms):
        await a.open_room("two")


def _fields(settings: Settings) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}


async def test_telemetry_queue_is_bounded_and_only_for_owned_rooms(world: World) -> None:
    a = world.node("a")
    await a.open_room("r")
    assert not a.add_external("elsewhere", PodOffline("p"))
    for _ in range(EXTERNAL_QUEUE):
        assert a.add_external("r", PodOffline("p"))
    assert not a.add_external("r", PodOffline("p"))
    assert a.owned["r"].external_dropped == 1
    await a.tick_once()
    assert a.owned["r"].external == []


# ---------------------------------------------------------------- failover
async def test_takeover_after_the_owner_died_continues_exactly() -> None:
    world = World()
    hooks = engine_hooks(SETTINGS)
    a, b = world.node("a", hooks), world.node("b", hooks)
    try:
        await a.maintain()
        await b.maintain()
        await world.join(a, "r", "s1", "lila")
        await world.join(b, "r", "s2", "rico")
        for n in range(10):  # past a snapshot (every 4 ticks) and a tail after it
            await b.submit("r", StoryInput("s2", "rico", f"before {n}"))
            await a.tick_once()
        before = a.owned["r"].state.snapshot()
        old_epoch = a.owned["r"].lease.epoch
        # Node a dies: no tick, no renewal, no heartbeat. Node b goes on.
        await world.elapse(LEASE * 0.5, b)
        await b.submit("r", StoryInput("s2", "rico", "while nobody owns it"))
        world.clock.advance(LEASE * 0.6)
        await b.maintain()
        assert set(b.owned) == {"r"}, "b adopted the orphan"
        assert b.owned["r"].state.snapshot() == before, "snapshot + replayed tail"
        assert b.owned["r"].lease.epoch == old_epoch + 1
        await world.elapse(NODE_TTL, b)  # a's heartbeat expires: its member leaves
        events = await world.events("r")
        assert contiguous(events)
        assert events[-1].epoch == old_epoch + 1
        said = [i["text"] for e in events for i in e.items if i["kind"] == "said"]
        assert said == [f"before {n}" for n in range(10)] + ["while nobody owns it"]
        assert [i["name"] for i in await world.items("r", "left")] == ["lila"]
        assert await world.members("r") == ["rico"]
        assert b.metrics.value("sleepsync_lease_takeovers_total") == 1
    finally:
        await world.close()


async def test_a_paused_owner_is_fenced_and_leaves_every_input_to_the_new_owner(
    world: World,
) -> None:
    a, b = world.node("a"), world.node("b")
    await a.maintain()
    await b.maintain()
    await world.join(a, "r", "s1", "lila")
    await world.join(b, "r", "s2", "rico")
    await a.tick_once()
    # a pauses for 3x the TTLs; b's dreamer keeps talking and a newcomer joins at b.
    await b.submit("r", StoryInput("s2", "rico", "one"))
    await world.elapse(3 * NODE_TTL, b)
    assert "r" in b.owned
    await world.join(b, "r", "s3", "mira")
    await b.submit("r", StoryInput("s2", "rico", "two"))
    # a resumes: its tick runs first, reads the inbox, and its append is refused.
    await a.tick_once()
    assert "r" not in a.owned and a.metrics.value("sleepsync_fenced_appends_total") == 1
    assert len((await world.backend.read_inputs(["r"], 10))["r"]) == 2, "nothing consumed"
    await b.tick_once()
    assert [i["text"] for i in await world.items("r", "said")] == ["one", "two"]
    assert "mira" in [i["name"] for i in await world.items("r", "joined")]
    # a's member left with a's heartbeat; a registers it again when a beats again.
    assert "lila" in [i["name"] for i in await world.items("r", "left")]
    await a.maintain()
    await b.tick_once()
    assert await world.members("r") == ["lila", "mira", "rico"]
    assert sorted(b.owned["r"].state.dreamers()) == ["lila", "mira", "rico"]
    assert contiguous(await world.events("r"))
    assert await world.backend.read_inputs(["r"], 10) == {}


async def test_a_node_that_lost_touch_registers_its_members_before_forwarding(
    world: World,
) -> None:
    a, b = world.node("a"), world.node("b")
    await a.maintain()
    await b.maintain()
    await world.join(a, "r", "s1", "lila")
    await world.join(b, "r", "s2", "rico")
    await a.tick_once()
    # b is paused past its node TTL: a counts it dead and its member leaves.
    await world.elapse(NODE_TTL * 1.5, a)
    assert [i["name"] for i in await world.items("r", "left")] == ["rico"]
    assert await world.members("r") == ["lila"]
    # b resumes; a line its client sent waits until b is registered again.
    line = asyncio.create_task(b.submit("r", StoryInput("s2", "rico", "I am back")))
    await asyncio.sleep(0.01)
    assert not line.done()
    await b.maintain()
    await line
    await a.tick_once()
    assert await world.members("r") == ["lila", "rico"]
    said = await world.items("r", "said")
    assert [i["text"] for i in said] == ["I am back"], "applied, after rico joined again"
    assert not await world.items("r", "input_refused")
    assert a.owned["r"].state.dreamers() == ["lila", "rico"]


async def test_a_node_out_of_touch_refuses_input_it_cannot_deliver(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    world.clock.advance(NODE_TTL * 2)  # and no maintenance round gets through
    with pytest.raises(NodeLapsed):
        await a.submit("r", StoryInput("s1", "lila", "into nothing?"))
    await a.submit("r", MemberLeave("s1"))  # a leave never raises: it waits its turn
    await a.tick_once()
    await a.maintain()
    await a.tick_once()
    assert [i["name"] for i in await world.items("r", "left")] == ["lila"]


# ---------------------------------------------------------------- refusals
async def test_inputs_into_a_missing_room_or_a_full_inbox_are_refused() -> None:
    world = World(MemoryBackend(inbox_limit=10))
    a = world.node("a")
    try:
        with pytest.raises(RoomMissing):
            await a.submit("gone", StoryInput("s1", "lila", "hello?"))
        await a.submit("gone", MemberLeave("s1"))  # nothing to leave: fine
        await a.maintain()
        await world.backend.create_room("r", 10)  # nobody owns it: the inbox fills
        for n in range(10):
            await a.submit("r", StoryInput("s1", "lila", f"{n}"))
        with pytest.raises(InboxFull):
            await a.submit("r", StoryInput("s1", "lila", "one too many"))
        await a.submit("r", MemberLeave("s1"))  # kept, and sent once there is room
        assert len((await world.backend.read_inputs(["r"], 100))["r"]) == 10
        await a.take("r")
        await a.tick_once()
        await a.maintain()
        [entry] = (await world.backend.read_inputs(["r"], 100))["r"]
        assert entry.data and a.outbox._unsent_leaves == {}
    finally:
        await world.close()


# ---------------------------------------------------------------- failures of a tick
async def test_a_tick_that_raises_rebuilds_the_room_and_drops_its_inputs(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    await a.submit("r", StoryInput("s1", "lila", "fine"))
    await a.tick_once()
    state = a.owned["r"].state.snapshot()
    epoch = a.owned["r"].lease.epoch

    def boom(*args: object) -> None:
        raise RuntimeError("a bug in the engine")

    a.owned["r"].runner.tick = boom  # type: ignore[method-assign]
    await a.submit("r", StoryInput("s1", "lila", "poison"))
    await a.tick_once()
    assert "r" not in a.owned and a.metrics.value("sleepsync_room_failures_total") == 1
    await asyncio.sleep(0.05)  # the rebuild runs as a task of the node
    assert a.owned["r"].state.snapshot() == state and a.owned["r"].lease.epoch == epoch
    assert await world.backend.read_inputs(["r"], 10) == {}, "the poison is gone"
    await a.submit("r", StoryInput("s1", "lila", "after"))
    await a.tick_once()
    assert [i["text"] for i in await world.items("r", "said")] == ["fine", "after"]
    assert contiguous(await world.events("r"))


@pytest.mark.parametrize("when", ["before", "after"])
async def test_an_append_that_fails_on_the_backend_rebuilds_from_the_store(when: str) -> None:
    """Unknown whether the append went through: the room is rebuilt from the store,
    and every line is applied exactly once either way."""
    backend = FlakyBackend()
    world = World(backend)
    a = world.node("a")
    try:
        await a.maintain()
        await world.join(a, "r", "s1", "lila")
        await a.tick_once()
        await a.submit("r", StoryInput("s1", "lila", "in doubt"))
        backend.fail_append = when
        with pytest.raises(BackendError):
            await a.tick_once()
        await asyncio.sleep(0.05)
        assert "r" in a.owned, "rebuilt under the same lease"
        await a.tick_once()
        await a.submit("r", StoryInput("s1", "lila", "next"))
        await a.tick_once()
        assert [i["text"] for i in await world.items("r", "said")] == ["in doubt", "next"]
        assert contiguous(await world.events("r"))
    finally:
        await world.close()


TEMPLATE = """
title = "Tide"
entry = "a"
safe = "a"

[[scenes]]
id = "a"
text = "A long shore."
mood = { valence = 0.6, arousal = 0.3 }
"""


async def test_a_template_tick_is_snapshotted_and_its_text_forgotten(world: World) -> None:
    a = world.node("a", engine_hooks(SETTINGS))
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    await a.tick_once()
    snaps = 0
    save = world.backend.save_snapshots

    async def counting(snapshots: Any) -> dict[str, bool]:
        nonlocal snaps
        snaps += 1
        return await save(snapshots)

    world.backend.save_snapshots = counting  # type: ignore[method-assign]
    for _ in range(3):
        await a.submit("r", TemplateInput("lila", "toml", TEMPLATE, "s1"))
    await a.tick_once()
    assert snaps == 1, "a tick that stored templates is snapshotted at once"
    assert await world.backend.read_templates("r") == {}
    [record] = [e.inputs for e in await world.backend.read_events("r", 1, 10)]
    assert TEMPLATE.encode() not in record and record.count(template_digest(TEMPLATE).encode()) == 3


async def test_a_template_whose_snapshot_never_landed_is_replayed_from_its_stored_text() -> None:
    backend = FlakyBackend()
    world = World(backend)
    a = world.node("a", engine_hooks(SETTINGS))
    try:
        await a.maintain()
        await world.join(a, "r", "s1", "lila")
        await a.tick_once()
        await a.submit("r", TemplateInput("lila", "toml", TEMPLATE, "s1"))
        backend.fail_append = "after"  # stored, then the connection broke: no snapshot
        with pytest.raises(BackendError):
            await a.tick_once()
        assert await backend.read_templates("r") == {template_digest(TEMPLATE): TEMPLATE.encode()}
        await asyncio.sleep(0.05)
        assert "r" in a.owned, "rebuilt from the snapshot, the stored record and its template"
        engine = a.owned["r"].state.engine
        assert engine is not None and engine.view()["narrative"] == "Tide"
        assert await backend.read_templates("r") == {}, "the rebuild's snapshot covers it"
        assert [i["title"] for i in await world.items("r", "narrative")] == ["Tide"]
    finally:
        await world.close()


async def test_unsure_leases_stop_the_ticking(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await a.open_room("r")
    a.ownership.renewal_failed("the store is unreachable")
    world.clock.advance(LEASE)
    await a.tick_once()
    assert a.owned == {} and ("a", "r", False) in world.owned_log
    await a.maintain()  # the store answers again: the room is adopted again
    assert set(a.owned) == {"r"} and a.healthy


async def test_a_room_that_cannot_be_replayed_is_released(world: World) -> None:
    a = world.node("a")
    await world.backend.create_room("r", 10)
    lease = await world.backend.acquire_lease("r", "x", 1000)
    assert lease is not None
    bad = StoredEvent(lease.epoch, 5, 5, b"frame", b"")  # seq 5 with nothing before it
    await world.backend.append_events("r", lease.epoch, [bad])
    await world.backend.release_lease(lease)
    assert not await a.take("r")
    assert await world.backend.owner("r") is None
    assert a.metrics.value("sleepsync_room_failures_total") == 1


# ---------------------------------------------------------------- sharing and cleaning up
async def test_a_node_over_its_share_leaves_a_new_room_to_another(world: World) -> None:
    a, b = world.node("a"), world.node("b")
    await a.maintain()
    await b.maintain()
    await b.open_room("r1")
    opening = asyncio.create_task(b.open_room("r2"))  # b holds 1 of 2 rooms, 2 nodes
    await asyncio.sleep(0.1)
    assert not opening.done()
    await a.maintain()  # a adopts it
    await opening
    assert set(a.owned) == {"r2"} and set(b.owned) == {"r1"}


async def test_an_empty_room_is_removed_after_the_idle_time(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    await a.tick_once()
    await world.leave(a, "r", "s1")
    await a.tick_once()
    await a.maintain()
    await world.elapse(SETTINGS.room_idle_seconds + LEASE, a)
    assert a.owned == {} and await world.backend.list_rooms() == []


async def test_an_idle_room_is_kept_for_the_retention_time_then_gone() -> None:
    world = World(settings=dataclasses.replace(SETTINGS, retention_hours=0.01))  # 36 s
    a = world.node("a")
    try:
        await a.maintain()
        await world.join(a, "r", "s1", "lila")
        await a.submit("r", StoryInput("s1", "lila", "remember me"))
        await a.tick_once()
        await world.leave(a, "r", "s1")
        await world.elapse(SETTINGS.room_idle_seconds + LEASE, a)
        assert a.owned == {} and await world.backend.list_rooms() == []
        assert a.metrics.value("sleepsync_rooms_retired_total") == 1
        assert await world.backend.owner("r") is None
        assert await world.items("r", "said"), "stored for the retention time"
        assert not await a.take("r"), "nobody takes a retired room"
        await world.elapse(36.0, a)
        assert await world.events("r") == [] and await world.backend.load_snapshot("r") is None
    finally:
        await world.close()


async def test_joining_a_retired_room_resumes_it_where_it_stopped(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    await a.submit("r", StoryInput("s1", "lila", "before the night"))
    await a.tick_once()
    await world.leave(a, "r", "s1")
    await world.elapse(SETTINGS.room_idle_seconds + LEASE, a)
    assert a.owned == {}
    state = await world.backend.load_snapshot("r")
    assert state is not None
    await world.join(a, "r", "s2", "rico")
    await a.submit("r", StoryInput("s2", "rico", "after"))
    await a.tick_once()
    assert [i["text"] for i in await world.items("r", "said")] == ["before the night", "after"]
    events = await world.events("r")
    assert contiguous(events) and events[-1].epoch == state.epoch + 1
    story = a.owned["r"].state.view()["story"]
    assert [line["text"] for line in story] == ["before the night", "after"]  # type: ignore[index, union-attr]


async def test_a_retired_room_is_opened_again_not_created(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    await a.submit("r", StoryInput("s1", "lila", "kept"))
    await a.tick_once()
    await world.leave(a, "r", "s1")
    await world.elapse(SETTINGS.room_idle_seconds + LEASE, a)
    assert await world.backend.room_status("r") == "retired"
    created = a.metrics.value("sleepsync_rooms_created_total")
    # A join that may not create a room (its budget is spent) still brings it back.
    assert not await a.open_room("r", create=False)
    assert await world.backend.room_status("r") == "exists"
    assert a.metrics.value("sleepsync_rooms_created_total") == created


async def test_a_room_never_used_is_removed_not_retired(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    await a.tick_once()
    await world.leave(a, "r", "s1")
    await world.elapse(SETTINGS.unused_room_seconds + LEASE, a)
    assert a.owned == {} and await world.backend.room_status("r") == "missing"
    assert a.metrics.value("sleepsync_rooms_removed_total", reason="unused") == 1
    assert a.metrics.value("sleepsync_rooms_retired_total") == 0


async def test_release_all_hands_rooms_back_with_their_state(world: World) -> None:
    a, b = world.node("a"), world.node("b")
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    await a.tick_once()
    state = a.owned["r"].state.snapshot()
    await a.release_all()
    assert a.owned == {} and await world.backend.owner("r") is None
    assert await b.take("r")
    assert b.owned["r"].state.snapshot() == state


async def test_take_is_one_attempt_at_a_time(world: World) -> None:
    a = world.node("a")
    await world.backend.create_room("r", 10)
    results = await asyncio.gather(a.take("r"), a.take("r"))
    assert results == [True, True] and a.metrics.value("sleepsync_lease_takeovers_total") == 1
    assert await a.take("r")


# ---------------------------------------------------------------- the loops, and odd corners
class Outage(MemoryBackend):
    """A memory backend that can be switched off: every call then fails."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.down = False

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name.startswith("_") or name in ("down", "start", "close") or not callable(attr):
            return attr
        if super().__getattribute__("down"):

            async def fail(*args: object, **kwargs: object) -> Any:
                raise BackendError("the store is unreachable")

            return fail
        return attr


async def test_the_loops_degrade_in_an_outage_and_adopt_the_room_again() -> None:
    import time as real_time

    backend = Outage()
    world = World(backend)
    world.clock = real_time.monotonic  # type: ignore[assignment]
    backend._clock = None  # the loop's clock, like a real node
    health: list[bool] = []
    a = RoomManager(
        backend,
        SETTINGS,
        "a",
        Metrics(),
        tasks=Supervisor(),
        on_health=lambda ok, _why: health.append(ok),
    )
    world.managers.append(a)
    runner = asyncio.create_task(a.run())
    try:
        await world.join(a, "r", "s1", "lila")
        await asyncio.sleep(0.3)
        backend.down = True
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not a.owned:
                break
        assert health == [False] and a.owned == {}, "unsure of its lease: it stopped ticking"
        backend.down = False
        for _ in range(100):
            await asyncio.sleep(0.05)
            if a.owned:
                break
        assert health == [False, True] and set(a.owned) == {"r"}
        await a.submit("r", StoryInput("s1", "lila", "still here"))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if await world.items("r", "said"):
                break
        assert [i["text"] for i in await world.items("r", "said")] == ["still here"]
        assert a.metrics.value("sleepsync_backend_failures_total", op="lease") >= 1
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await world.close()


async def test_garbage_in_the_inbox_is_counted_and_consumed(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    await world.backend.push_input("r", b"\xc1 not an input")
    await a.submit("r", StoryInput("s1", "lila", "fine"))
    await a.tick_once()
    assert a.metrics.value("sleepsync_inputs_invalid_total") == 1
    assert [i["text"] for i in await world.items("r", "said")] == ["fine"]
    assert await world.backend.read_inputs(["r"], 10) == {}


async def test_an_install_that_lost_the_race_does_not_run_the_room(world: World) -> None:
    a = world.node("a")
    await world.backend.create_room("r", 10)
    lease = await world.backend.acquire_lease("r", "a", 400)
    assert lease is not None
    await world.backend.release_lease(lease)
    assert await world.backend.acquire_lease("r", "b", 400) is not None  # epoch moved on
    assert not await a._install(lease)
    assert a.owned == {} and a.metrics.value("sleepsync_fenced_appends_total") == 1


async def test_a_refused_snapshot_steps_down(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await world.join(a, "r", "s1", "lila")
    room = world.backend._rooms["r"]
    room.epoch += 1  # a newer owner, as the store sees it
    for _ in range(SETTINGS.snapshot_every):
        if "r" in a.owned:
            a.owned["r"].runner.epoch = room.epoch  # (its appends still pass)
            a.owned["r"].lease = dataclasses.replace(a.owned["r"].lease, epoch=room.epoch - 1)
        await a.tick_once()
    assert a.owned == {}


async def test_a_rebuild_retries_a_failing_store_then_gives_up_a_lost_lease(world: World) -> None:
    backend = Outage()
    world = World(backend)
    a = world.node("a")
    try:
        await a.maintain()
        await a.open_room("r")
        lease = a.owned["r"].lease
        backend.down = True
        a._reinstall(lease, "test")
        await asyncio.sleep(0.15)
        assert a.owned == {} and "r" in a._reinstalling
        backend.down = False
        await asyncio.sleep(0.2)
        assert set(a.owned) == {"r"} and not a._reinstalling
        # The lease is gone meanwhile: the rebuild stops, nobody runs the room here.
        await a.release_all()
        a._reinstall(lease, "test")
        await asyncio.sleep(0.1)
        assert a.owned == {} and not a._reinstalling
    finally:
        await world.close()


async def test_a_paused_owner_lets_its_tick_run_before_maintenance(world: World) -> None:
    a = world.node("a")
    await a.maintain()
    await a.open_room("r")
    epoch = a.owned["r"].lease.epoch
    world.clock.advance(LEASE * 2)  # stalled: no tick, no renewal
    maintaining = asyncio.create_task(a.maintain())
    await asyncio.sleep(0.01)
    assert not maintaining.done(), "it waits for the tick loop first"
    await a.tick_once()
    await maintaining
    assert a.owned["r"].lease.epoch == epoch + 1, "the lease was lost, then adopted again"


async def test_no_one_takes_a_room_left_for_others_so_the_opener_does(world: World) -> None:
    a, b = world.node("a"), world.node("b")
    await a.maintain()
    await b.maintain()
    await b.open_room("r1")
    await b.open_room("r2")  # b is over its share, and a never adopts
    assert set(b.owned) == {"r1", "r2"}


async def test_a_member_of_a_full_room_cannot_come_back(world: World) -> None:
    world.settings = dataclasses.replace(SETTINGS, room_capacity=1)
    a, b = world.node("a"), world.node("b")
    await a.maintain()
    await b.maintain()
    await world.join(a, "r", "s1", "lila")
    await world.backend.leave_presence("r", "s1")  # (the janitor of a dead node's owner)
    await world.backend.join_presence("r", Member("s2", "rico", "dreamer", "b"), 1)
    await a.maintain()
    await a.maintain()  # missing twice: registered again, but the room is full
    assert await world.members("r") == ["rico"]


async def test_leaves_wait_in_a_bounded_queue(world: World, monkeypatch: Any) -> None:
    import sleepsync.server.outbox as outbox_module

    monkeypatch.setattr(outbox_module, "UNSENT_LEAVES", 1)
    a = world.node("a")
    await world.backend.create_room("r", 10)
    world.backend._rooms["r"].inbox.extend((0, b"") for _ in range(10_000))  # full
    await a.submit("r", MemberLeave("s1"))
    await a.submit("r", MemberLeave("s2"))
    assert list(a.outbox._unsent_leaves) == [("r", "s1")]
