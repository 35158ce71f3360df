"""Leases, liveness, fair share and health, on a memory backend and a clock moved by hand."""

from __future__ import annotations

import dataclasses
import random

from sleepsync.server.backend.memory import MemoryBackend
from sleepsync.server.config import Settings
from sleepsync.server.metrics import Metrics
from sleepsync.server.ownership import Ownership

from nodes import ManualClock

SETTINGS = Settings(lease_ttl_ms=1000, node_ttl_ms=2000, tick_hz=10.0)


def ownership(
    backend: MemoryBackend, clock: ManualClock, node: str = "a", **kw: object
) -> tuple[Ownership, list[tuple[bool, str]]]:
    told: list[tuple[bool, str]] = []
    settings = dataclasses.replace(SETTINGS, **kw)  # type: ignore[arg-type]
    o = Ownership(
        backend,
        settings,
        node,
        Metrics(),
        clock=clock,
        on_health=lambda ok, why: told.append((ok, why)),
        rng=random.Random(1),
    )
    return o, told


async def test_leases_stay_sure_until_failing_renewals_outlive_a_lease() -> None:
    clock = ManualClock()
    backend = MemoryBackend(clock=clock)
    o, told = ownership(backend, clock)
    assert o.leases_sure(), "nothing renewed yet, nothing failing"
    await backend.create_room("r", 10)
    lease = await backend.acquire_lease("r", "a", 1000)
    assert lease is not None
    assert await o.renew([lease]) == []
    clock.advance(5.0)
    assert o.leases_sure(), "a renewal that did not run is no failure: fencing guards"
    assert await o.renew([lease]) == [lease], "but the lease is gone"
    o.renewal_failed("the store is unreachable")
    assert told == [(False, "the store is unreachable")] and not o.healthy
    assert o.leases_sure()
    clock.advance(0.85)
    assert o.leases_sure()
    clock.advance(0.1)
    assert not o.leases_sure(), "a lease TTL (minus a tick) since the last renewal"
    assert await o.renew([]) == []
    assert o.leases_sure() and o.healthy and told[-1] == (True, "")


async def test_lapsed_after_a_node_ttl_without_a_confirmed_heartbeat() -> None:
    clock = ManualClock()
    backend = MemoryBackend(clock=clock)
    o, _ = ownership(backend, clock)
    assert not o.lapsed(), "not beaten yet: nobody counts this node"
    beat_at = await o.beat()
    o.confirm(beat_at)
    assert await o.live_nodes() == {"a"}
    clock.advance(1.85)
    assert not o.lapsed()
    clock.advance(0.1)
    assert o.lapsed()
    assert await backend.live_nodes() == ["a"], "(others may count it dead a little later)"
    late = await o.beat()
    assert o.lapsed(), "beaten, but its members are not registered again yet"
    o.confirm(beat_at)
    assert o.lapsed(), "an older confirmation changes nothing"
    o.confirm(late)
    assert not o.lapsed()


async def test_fair_share_and_orphans() -> None:
    clock = ManualClock()
    backend = MemoryBackend(clock=clock)
    a, _ = ownership(backend, clock, "a")
    assert a.share(6, 2) == 3 and a.share(7, 2) == 4 and a.share(1, 0) == 1
    for room in ("r1", "r2", "r3", "r4"):
        await backend.create_room(room, 10)
    assert await a.under_share(100), "alone: always"
    await backend.heartbeat("a", 2000)
    await backend.heartbeat("b", 2000)
    assert await a.under_share(1) and not await a.under_share(2)
    held = await backend.acquire_lease("r2", "b", 1000)
    assert held is not None
    orphans = await a.orphans(await backend.list_rooms(), skip={"r1"})
    assert sorted(orphans) == ["r3", "r4"]


async def test_slack_raises_the_share() -> None:
    clock = ManualClock()
    a, _ = ownership(MemoryBackend(clock=clock), clock, room_share_slack=2)
    assert a.share(6, 2) == 5
