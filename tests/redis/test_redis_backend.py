"""The backend conformance suite against a real redis-server, plus Redis specifics."""

from __future__ import annotations

import asyncio

import pytest
from redis.crc import key_slot

from sleepsync.server.backend.base import (
    BackendError,
    Commit,
    Lease,
    Member,
    RoomSnapshot,
    StoredEvent,
)
from sleepsync.server.backend.redis import RedisBackend, room_key

from backend_conformance import BackendConformance, MakeBackend
from redis_server import RedisServer


class TestRedisBackend(BackendConformance):
    pass


async def test_keys_of_a_room_share_one_slot(
    make_backend: MakeBackend, shared_redis: RedisServer
) -> None:
    """Every key a room uses hashes to one Cluster slot (the scripts stay in one slot)."""
    b = await make_backend()
    await b.create_room("lounge", 10)
    lease = await b.acquire_lease("lounge", "n1", 5000)
    assert lease is not None
    await b.append_events("lounge", lease.epoch, [StoredEvent(lease.epoch, 1, 1, b"f", b"i")])
    await b.push_input("lounge", b"x")
    await b.join_presence("lounge", Member("s", "lila", "dreamer", "n1"), 5)
    await b.save_snapshot("lounge", RoomSnapshot(lease.epoch, 1, b"s", b"v"), lease.epoch)
    parts = ("epoch", "owner", "events", "snapshot", "inbox", "presence")
    for part in parts:
        assert shared_redis.command("EXISTS", room_key("lounge", part)) == b":1", part
    assert len({key_slot(room_key("lounge", part).encode()) for part in parts}) == 1
    assert key_slot(b"{room:lounge}:events") != key_slot(b"{room:other}:events")


async def test_stale_owner_cannot_write_after_takeover(make_backend: MakeBackend) -> None:
    """Fencing in the script: the old owner's append is refused whatever its lease says."""
    b = await make_backend()
    await b.create_room("r", 10)
    old = await b.acquire_lease("r", "n1", 200)
    assert old is not None
    await asyncio.sleep(0.3)
    new = await b.acquire_lease("r", "n2", 5000)
    assert new is not None and new.epoch == old.epoch + 1
    stale = Commit(old.epoch, [StoredEvent(old.epoch, 1, 1, b"x")])
    assert await b.append_many({"r": stale}) == {"r": False}
    assert await b.renew_leases([old, Lease("r", "n2", new.epoch)], 5000) == [False, True]


async def test_connection_loss_is_a_backend_error(redis_server: RedisServer) -> None:
    b = RedisBackend(redis_server.url, timeout=0.5)
    await b.start()
    try:
        await b.create_room("r", 10)
        redis_server.stop()
        with pytest.raises(BackendError):
            await b.list_rooms()
        with pytest.raises(BackendError):
            await b.wait_events({"r": 0}, 0.2, 10)
        redis_server.start()  # empty, and without our scripts: they are loaded again
        assert await b.list_rooms() == []
        assert await b.create_room("r", 10)
        assert await b.acquire_lease("r", "n1", 5000) is not None
    finally:
        await b.close()


async def test_unreachable_redis_fails_start_with_one_sentence() -> None:
    from nodes import free_port

    b = RedisBackend(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    with pytest.raises(BackendError, match=r"redis at 127\.0\.0\.1"):
        await b.start()
    await b.close()
