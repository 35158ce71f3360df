"""``--retention-hours`` against a real Redis: an idle room's keys expire, all of them."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from sleepsync.client.connection import RoomClient
from sleepsync.client.forget import forget_room
from sleepsync.protocol.messages import Snapshot
from sleepsync.server.backend.redis import RedisBackend

from nodes import Recorder, running_node, wait_for
from redis_server import RedisServer

KEEP_S = 2.0


async def room_keys(redis: Redis, room: str) -> dict[str, int]:
    """Every key of ``room`` -> its remaining time to live in ms (-1: none)."""
    return {
        key.decode(): int(await redis.pttl(key))
        async for key in redis.scan_iter(match=f"{{room:{room}}}:*")
    }


async def test_an_idle_room_keys_live_for_the_retention_time_then_go(
    shared_redis: RedisServer,
) -> None:
    shared_redis.command("FLUSHALL")
    redis = Redis.from_url(shared_redis.url)
    settings = {
        "room_idle_seconds": 0.3,
        "retention_hours": KEEP_S / 3600,
        "lease_ttl_ms": 600,
        "snapshot_every": 1000,  # the room keeps a replay tail in its stream
    }
    try:
        async with running_node(backend=RedisBackend(shared_redis.url), **settings) as node:
            client = RoomClient(node.url, "dusk", "lila")
            async with Recorder(client) as rec:
                await client.say("a line to remember")
                await wait_for(lambda: bool(rec.items("said")), what="the line")
            live = await room_keys(redis, "dusk")
            assert {"{room:dusk}:events", "{room:dusk}:snapshot"} <= set(live)
            assert all(ttl == -1 for key, ttl in live.items() if not key.endswith(":owner"))
            # Empty: the owner lets go after the idle time; every key gets the retention TTL.
            await wait_for(lambda: node.rooms.owned == {}, 10, "the room to go idle")
            idle = await room_keys(redis, "dusk")
            assert {"{room:dusk}:epoch", "{room:dusk}:events", "{room:dusk}:snapshot"} <= set(idle)
            assert "{room:dusk}:owner" not in idle
            assert all(0 < ttl <= KEEP_S * 1000 for ttl in idle.values()), idle
            assert await redis.smembers("sleepsync:rooms") == set()
            assert await redis.zrange("sleepsync:retired", 0, -1) == [b"dusk"]
            await asyncio.sleep(KEEP_S + 0.5)
            assert await room_keys(redis, "dusk") == {}, "every key of the room expired"
    finally:
        await redis.aclose()


async def test_joining_an_idle_room_again_keeps_it_with_its_story(
    shared_redis: RedisServer,
) -> None:
    shared_redis.command("FLUSHALL")
    redis = Redis.from_url(shared_redis.url)
    settings = {"room_idle_seconds": 0.3, "retention_hours": 1.0, "lease_ttl_ms": 600}
    try:
        async with running_node(backend=RedisBackend(shared_redis.url), **settings) as node:
            client = RoomClient(node.url, "dusk", "lila")
            async with Recorder(client) as rec:
                await client.say("a line to remember")
                await wait_for(lambda: bool(rec.items("said")), what="the line")
            await wait_for(lambda: node.rooms.owned == {}, 10, "the room to go idle")
            assert all(ttl > 0 for ttl in (await room_keys(redis, "dusk")).values())
            async with Recorder(RoomClient(node.url, "dusk", "rico")) as back:
                await wait_for(lambda: bool(back.of_type(Snapshot)), what="the snapshot")
                [snapshot] = back.of_type(Snapshot)
                story = snapshot.state["story"]
                assert [line["text"] for line in story] == ["a line to remember"]
                keys = await room_keys(redis, "dusk")
                assert all(ttl == -1 for key, ttl in keys.items() if not key.endswith(":owner"))
                assert await redis.smembers("sleepsync:rooms") == {b"dusk"}
                assert await redis.zcard("sleepsync:retired") == 0
    finally:
        await redis.aclose()


async def test_forgetting_a_retired_room_erases_what_is_kept_of_it(
    shared_redis: RedisServer,
) -> None:
    """A retired room has no owner to carry out ``forget``: the node that got the
    request erases its retained keys (and it leaves the retired set) at once."""
    shared_redis.command("FLUSHALL")
    redis = Redis.from_url(shared_redis.url)
    settings = {"room_idle_seconds": 0.3, "retention_hours": 1.0, "lease_ttl_ms": 600}
    try:
        backend = RedisBackend(shared_redis.url)
        async with running_node(backend=backend, **settings) as node:
            client = RoomClient(node.url, "dusk", "lila")
            async with Recorder(client) as rec:
                await client.say("a line to forget")
                await wait_for(lambda: bool(rec.items("said")), what="the line")
            await wait_for(lambda: node.rooms.owned == {}, 10, "the room to go idle")
            assert await backend.room_status("dusk") == "retired"
            assert await redis.zrange("sleepsync:retired", 0, -1) == [b"dusk"]
            # Open mode on loopback: anyone here is an operator.
            await forget_room(node.url, "dusk", "anna", None, timeout=10)
            assert set(await room_keys(redis, "dusk")) == {"{room:dusk}:forgotten"}
            assert await redis.zcard("sleepsync:retired") == 0
            assert await backend.room_status("dusk") == "forgotten"
            assert node.metrics.value("sleepsync_rooms_removed_total", reason="forgotten") == 1
            assert node.rooms.owned == {}, "not brought back to be erased"
    finally:
        await redis.aclose()
