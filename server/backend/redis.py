"""The Redis backend: rooms shared by many nodes through Redis (or Redis Cluster).

How it works. Every key of a room carries the hash tag ``{room:ID}``, so all
of a room's keys live in one Cluster slot and each Lua script below touches
the keys of one room only:

- ``{room:ID}:epoch``    fencing epoch (string integer). Created with the
  room (wall-clock microseconds, see ``base``), INCR on every takeover.
  Its existence is the room's existence for leases.
- ``{room:ID}:owner``    lease: ``"<epoch>|<node>"``, SET NX PX, renewed.
- ``{room:ID}:events``   stream; entry id ``<seq>-0``, fields ``e`` epoch,
  ``t`` tick, ``f`` frame, ``i`` tick inputs. XADD MAXLEN ~ retention, only
  through the APPEND script, which refuses a stale epoch (fencing).
- ``{room:ID}:snapshot`` hash: epoch, seq, state, view (fenced like appends).
- ``{room:ID}:inbox``    stream of encoded inputs for the owner. PUSH refuses
  a room without an epoch key (unknown to the store) and a full inbox; only
  the APPEND script removes entries, through the last one the owner consumed
  (XTRIM MINID), after it checked the epoch: consume on commit.
- ``{room:ID}:presence`` hash: session -> msgpack [name, role, node].
- ``{room:ID}:forgotten`` a tombstone (``1``, PX ``FORGOTTEN_TTL_MS``) left by
  the FORGET script, which deletes every other key of the room at once,
  fenced by the epoch like an append.

Two global keys: ``sleepsync:rooms`` (set, the registry) and
``sleepsync:nodes`` (sorted set, node -> heartbeat expiry in Redis time ms).

Work over many rooms (appends, inbox reads, renewals, snapshots, reads of
positions) goes out as one non-transactional pipeline of per-room script
calls: one round trip per batch, and Cluster-safe because each call stays in
one slot. Scripts are loaded at start and called by SHA; a Redis that lost
its script cache (a restart) gets them loaded again and the call retried.

Stream entry ids are the event seqs, so "events after seq s" is ``XRANGE
(s+1)-0 +`` and the blocking fan-out read is one ``XREAD BLOCK`` over all the
rooms a node has clients in, each from ``s-0``. That read is one command
against one connection: on Redis Cluster the reader would need one XREAD per
shard (not done here; the key layout and scripts are ready for it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgpack
from redis import exceptions as rexc
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .base import (
    BackendError,
    Commit,
    Fenced,
    InboxEntry,
    InboxFull,
    Lease,
    Member,
    RoomMissing,
    RoomSnapshot,
    RoomStatus,
    StoredEvent,
)

__all__ = ["RedisBackend", "room_key"]

REGISTRY = "sleepsync:rooms"
NODES = "sleepsync:nodes"
#: Node heartbeats that expired longer ago than this are forgotten (ms).
NODE_FORGET_MS = 600_000

ROOM_PARTS = ("epoch", "owner", "events", "snapshot", "inbox", "presence")


def room_key(room: str, part: str) -> str:
    return f"{{room:{room}}}:{part}"


_SCRIPTS = {
    # KEYS: registry. ARGV: room, max rooms. -> 1 when the room exists afterwards.
    "create": """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
""",
    # KEYS: epoch, owner, events, snapshot, inbox, presence. ARGV: epoch.
    # Only an empty room goes: someone joining (presence first) or an input keeps it.
    "delete": """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('XLEN', KEYS[5]) > 0 or redis.call('HLEN', KEYS[6]) > 0 then return 0 end
redis.call('DEL', unpack(KEYS))
return 1
""",
    # KEYS: epoch, owner, events, snapshot, inbox, presence, tombstone. ARGV: epoch, tombstone
    # ms. Erases the room whoever is in it, if the epoch is current; leaves the tombstone.
    "forget": """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', unpack(KEYS, 1, #KEYS - 1))
redis.call('SET', KEYS[#KEYS], '1', 'PX', ARGV[2])
return 1
""",
    # KEYS: owner, epoch. ARGV: node, ttl ms. -> the new epoch (string) or nil.
    "acquire": """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
redis.call('INCR', KEYS[2])
local epoch = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[1], epoch .. '|' .. ARGV[1], 'PX', ARGV[2])
return epoch
""",
    # KEYS: owner, epoch. ARGV: owner value, epoch, ttl ms.
    "renew": """
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
""",
    # KEYS: owner. ARGV: owner value.
    "release": """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
""",
    # KEYS: epoch, events, inbox. ARGV: epoch, maxlen, last consumed inbox id ('' for none),
    # then per event seq, epoch, tick, frame, inputs. Refuses the whole commit when the
    # epoch is not the current one (fencing); else appends, then removes the consumed
    # inputs: every inbox entry below the id right after the last consumed one.
    "append": """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 4, #ARGV, 5 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], ARGV[i] .. '-0',
             'e', ARGV[i + 1], 't', ARGV[i + 2], 'f', ARGV[i + 3], 'i', ARGV[i + 4])
end
if ARGV[3] ~= '' then
  local ms, n = string.match(ARGV[3], '^(%d+)-(%d+)$')
  redis.call('XTRIM', KEYS[3], 'MINID', ms .. '-' .. string.format('%d', tonumber(n) + 1))
end
return 1
""",
    # KEYS: epoch, snapshot. ARGV: lease epoch, epoch, seq, state, view.
    "snapshot": """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'seq', ARGV[3], 'state', ARGV[4], 'view', ARGV[5])
return 1
""",
    # KEYS: epoch, inbox. ARGV: input, limit. -> 1 queued, 0 no such room, -1 inbox full.
    "push": """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[2]) then return -1 end
redis.call('XADD', KEYS[2], '*', 'd', ARGV[1])
return 1
""",
    # KEYS: presence. ARGV: session, member, capacity.
    "join": """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1
   or redis.call('HLEN', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
""",
    # KEYS: nodes. ARGV: node, ttl ms, forget ms. Redis' clock, so nodes' clocks may differ.
    "heartbeat": """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
return 1
""",
    # KEYS: nodes. -> live nodes.
    "live": """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
""",
}


def _keys(room: str, *parts: str) -> list[str]:
    return [room_key(room, part) for part in parts]


def _event(entry_id: bytes, fields: Mapping[bytes, bytes]) -> StoredEvent:
    return StoredEvent(
        epoch=int(fields[b"e"]),
        seq=int(entry_id.split(b"-", 1)[0]),
        tick=int(fields[b"t"]),
        frame=fields[b"f"],
        inputs=fields.get(b"i", b""),
    )


def _lease(room: str, value: bytes | None) -> Lease | None:
    if value is None:
        return None
    epoch, node = value.decode().split("|", 1)
    return Lease(room, node, int(epoch))


def _member(raw: bytes, session: bytes) -> Member:
    name, role, node = msgpack.unpackb(raw, raw=False)
    return Member(session.decode(), name, role, node)


class RedisBackend:
    """Backend over one Redis server (redis-py asyncio with hiredis).

    ``retention`` is the MAXLEN ~ of each room's event stream (resume window),
    ``inbox_limit`` the most inputs one inbox holds (pushes beyond are refused),
    ``timeout`` bounds every command (s).
    """

    def __init__(
        self,
        url: str,
        *,
        retention: int = 2000,
        inbox_limit: int = 10000,
        timeout: float = 2.0,
    ) -> None:
        self.url = url
        self._retention = retention
        self._inbox_limit = inbox_limit
        self._timeout = timeout
        # One immediate retry (a pooled connection that died with a Redis restart),
        # never redis-py's default of ten with back-off: a stuck call would outlive
        # the lease it is renewing. The loops above retry on their own schedule.
        retry = Retry(NoBackoff(), 1)
        # Bounded pools that make a caller wait (up to ``timeout``) for a free
        # connection instead of failing at once when a burst of joins needs many.
        self._redis: Redis = Redis.from_pool(
            BlockingConnectionPool.from_url(
                url,
                max_connections=64,
                timeout=timeout,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=retry,
            )
        )
        # Blocking reads hold a connection while they wait; they get their own pool,
        # bounded by an explicit deadline rather than the socket timeout.
        self._reader: Redis = Redis.from_pool(
            BlockingConnectionPool.from_url(
                url,
                max_connections=8,
                timeout=timeout,
                socket_timeout=None,
                socket_connect_timeout=timeout,
                retry=retry,
            )
        )
        self._sha: dict[str, str] = {}

    # ------------------------------------------------------------ plumbing
    async def start(self) -> None:
        await self._guard(self._load_scripts)

    async def close(self) -> None:
        await self._redis.aclose()
        await self._reader.aclose()

    async def _load_scripts(self) -> None:
        for name, body in _SCRIPTS.items():
            self._sha[name] = await self._redis.script_load(body)

    async def _guard(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``call``; convert Redis' errors to BackendError, reload lost scripts once."""
        try:
            try:
                return await call()
            except rexc.NoScriptError:
                await self._load_scripts()  # Redis restarted and lost its script cache
                return await call()
        except (rexc.RedisError, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise BackendError(f"redis at {self._where()}: {detail}") from exc

    def _where(self) -> str:
        kwargs = self._redis.connection_pool.connection_kwargs
        return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"

    async def _script(self, name: str, keys: Sequence[str], *args: Any) -> Any:
        return await self._guard(
            lambda: self._redis.evalsha(self._sha[name], len(keys), *keys, *args)
        )

    async def _batch(self, calls: Sequence[tuple[str, Sequence[str], Sequence[Any]]]) -> list[Any]:
        """Many script calls in one non-transactional pipeline (one round trip)."""

        async def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for name, keys, args in calls:
                pipe.evalsha(self._sha[name], len(keys), *keys, *args)
            return list(await pipe.execute())

        if not calls:
            return []
        results: list[Any] = await self._guard(run)
        return results

    # ------------------------------------------------------------ rooms registry
    async def create_room(self, room: str, max_rooms: int) -> bool:
        if not await self._script("create", [REGISTRY], room, max_rooms):
            return False
        # The epoch key marks the room as existing for leases; keep it if present.
        base = time.time_ns() // 1000
        await self._guard(lambda: self._redis.set(room_key(room, "epoch"), base, nx=True))
        return True

    async def delete_room(self, room: str, epoch: int) -> bool:
        if not await self._script("delete", _keys(room, *ROOM_PARTS), epoch):
            return False
        await self._guard(lambda: self._redis.srem(REGISTRY, room))
        return True

    async def list_rooms(self) -> list[str]:
        members = await self._guard(lambda: self._redis.smembers(REGISTRY))
        return sorted(m.decode() for m in members)

    async def room_status(self, room: str) -> RoomStatus:
        async def both() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            pipe.sismember(REGISTRY, room)
            pipe.exists(room_key(room, "forgotten"))
            return list(await pipe.execute())

        registered, tombstone = await self._guard(both)
        if registered:
            return "exists"
        return "forgotten" if tombstone else "missing"

    async def forget_room(self, room: str, epoch: int, tombstone_ms: int) -> bool:
        keys = _keys(room, *ROOM_PARTS, "forgotten")
        if not await self._script("forget", keys, epoch, tombstone_ms):
            return False
        await self._guard(lambda: self._redis.srem(REGISTRY, room))
        return True

    # ------------------------------------------------------------ ownership
    async def acquire_lease(self, room: str, node: str, ttl_ms: int) -> Lease | None:
        epoch = await self._script("acquire", _keys(room, "owner", "epoch"), node, ttl_ms)
        return None if epoch is None else Lease(room, node, int(epoch))

    async def renew_leases(self, leases: Sequence[Lease], ttl_ms: int) -> list[bool]:
        results = await self._batch(
            [
                (
                    "renew",
                    _keys(lease.room, "owner", "epoch"),
                    (f"{lease.epoch}|{lease.node}", lease.epoch, ttl_ms),
                )
                for lease in leases
            ]
        )
        return [bool(r) for r in results]

    async def release_lease(self, lease: Lease) -> None:
        await self._script("release", _keys(lease.room, "owner"), f"{lease.epoch}|{lease.node}")

    async def owner(self, room: str) -> Lease | None:
        value = await self._guard(lambda: self._redis.get(room_key(room, "owner")))
        return _lease(room, value)

    async def owners(self, rooms: Sequence[str]) -> dict[str, Lease | None]:
        if not rooms:
            return {}
        values = await self._guard(
            lambda: self._pipelined([("get", room_key(r, "owner")) for r in rooms])
        )
        return {room: _lease(room, value) for room, value in zip(rooms, values, strict=True)}

    async def _pipelined(self, commands: Sequence[tuple[str, str]]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for command, key in commands:
            getattr(pipe, command)(key)
        return list(await pipe.execute())

    # ------------------------------------------------------------ nodes
    async def heartbeat(self, node: str, ttl_ms: int) -> None:
        await self._script("heartbeat", [NODES], node, ttl_ms, NODE_FORGET_MS)

    async def live_nodes(self) -> list[str]:
        nodes = await self._script("live", [NODES])
        return sorted(n.decode() for n in nodes)

    # ------------------------------------------------------------ events
    def _append_call(self, room: str, commit: Commit) -> tuple[str, list[str], list[Any]]:
        args: list[Any] = [commit.epoch, self._retention, commit.consumed or ""]
        for e in commit.events:
            args.extend((e.seq, e.epoch, e.tick, e.frame, e.inputs))
        return ("append", _keys(room, "epoch", "events", "inbox"), args)

    async def append_events(self, room: str, epoch: int, events: Sequence[StoredEvent]) -> None:
        (ok,) = await self._batch([self._append_call(room, Commit(epoch, events))])
        if not ok:
            raise Fenced(f"append to {room} at stale epoch {epoch}")

    async def append_many(self, commits: Mapping[str, Commit]) -> dict[str, bool]:
        rooms = list(commits)
        results = await self._batch([self._append_call(r, commits[r]) for r in rooms])
        return {room: bool(ok) for room, ok in zip(rooms, results, strict=True)}

    async def read_events(self, room: str, after_seq: int, limit: int) -> list[StoredEvent]:
        entries = await self._guard(
            lambda: self._redis.xrange(
                room_key(room, "events"), min=f"{after_seq + 1}-0", max="+", count=limit
            )
        )
        return [_event(entry_id, fields) for entry_id, fields in entries]

    async def wait_events(
        self, positions: Mapping[str, int], timeout: float, limit: int
    ) -> dict[str, list[StoredEvent]]:
        if not positions:
            return {}
        streams: dict[Any, Any] = {
            room_key(room, "events"): f"{seq}-0" for room, seq in positions.items()
        }
        block = None if timeout <= 0 else max(1, int(timeout * 1000))

        async def read() -> Any:
            async with asyncio.timeout(timeout + self._timeout):
                return await self._reader.xread(streams, count=limit, block=block)

        reply = await self._guard(read)
        found: dict[str, list[StoredEvent]] = {}
        for key, entries in reply or ():
            room = key.decode()[len("{room:") :].rsplit("}:", 1)[0]
            found[room] = [_event(entry_id, fields) for entry_id, fields in entries]
        return found

    async def first_seq(self, room: str) -> int | None:
        entries = await self._guard(lambda: self._redis.xrange(room_key(room, "events"), count=1))
        return None if not entries else int(entries[0][0].split(b"-", 1)[0])

    async def last_position(self, room: str) -> tuple[int, int]:
        return (await self.last_positions([room]))[room]

    async def last_positions(self, rooms: Sequence[str]) -> dict[str, tuple[int, int]]:
        async def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for room in rooms:
                pipe.xrevrange(room_key(room, "events"), count=1)
            return list(await pipe.execute())

        if not rooms:
            return {}
        replies = await self._guard(run)
        out: dict[str, tuple[int, int]] = {}
        for room, entries in zip(rooms, replies, strict=True):
            if entries:
                last = _event(*entries[0])
                out[room] = (last.epoch, last.seq)
            else:
                out[room] = (0, 0)
        return out

    # ------------------------------------------------------------ snapshots
    def _snapshot_call(
        self, room: str, snapshot: RoomSnapshot, lease_epoch: int
    ) -> tuple[str, list[str], list[Any]]:
        return (
            "snapshot",
            _keys(room, "epoch", "snapshot"),
            [lease_epoch, snapshot.epoch, snapshot.seq, snapshot.state, snapshot.view],
        )

    async def save_snapshot(self, room: str, snapshot: RoomSnapshot, lease_epoch: int) -> None:
        (ok,) = await self._batch([self._snapshot_call(room, snapshot, lease_epoch)])
        if not ok:
            raise Fenced(f"snapshot of {room} at stale epoch {lease_epoch}")

    async def save_snapshots(
        self, snapshots: Mapping[str, tuple[RoomSnapshot, int]]
    ) -> dict[str, bool]:
        rooms = list(snapshots)
        results = await self._batch([self._snapshot_call(r, *snapshots[r]) for r in rooms])
        return {room: bool(ok) for room, ok in zip(rooms, results, strict=True)}

    async def load_snapshot(self, room: str) -> RoomSnapshot | None:
        values = await self._guard(
            lambda: self._redis.hmget(room_key(room, "snapshot"), ["epoch", "seq", "state", "view"])
        )
        epoch, seq, state, view = values
        if epoch is None:
            return None
        return RoomSnapshot(int(epoch), int(seq), state, view)

    # ------------------------------------------------------------ inbox
    async def push_input(self, room: str, data: bytes) -> None:
        queued = await self._script("push", _keys(room, "epoch", "inbox"), data, self._inbox_limit)
        if queued == 0:
            raise RoomMissing(f"room {room} does not exist (any more)")
        if queued < 0:
            raise InboxFull(f"room {room} has {self._inbox_limit} inputs waiting; try again")

    async def read_inputs(self, rooms: Sequence[str], limit: int) -> dict[str, list[InboxEntry]]:
        async def run() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for room in rooms:
                pipe.xrange(room_key(room, "inbox"), count=limit)
            return list(await pipe.execute())

        if not rooms:
            return {}
        replies = await self._guard(run)
        return {
            room: [InboxEntry(entry_id.decode(), fields[b"d"]) for entry_id, fields in entries]
            for room, entries in zip(rooms, replies, strict=True)
            if entries
        }

    # ------------------------------------------------------------ presence
    async def join_presence(self, room: str, member: Member, capacity: int) -> bool:
        packed = msgpack.packb([member.name, member.role, member.node], use_bin_type=True)
        return bool(
            await self._script("join", _keys(room, "presence"), member.session, packed, capacity)
        )

    async def leave_presence(self, room: str, session: str) -> None:
        await self._guard(lambda: self._redis.hdel(room_key(room, "presence"), session))

    async def presence(self, room: str) -> list[Member]:
        return (await self.presences([room]))[room]

    async def presences(self, rooms: Sequence[str]) -> dict[str, list[Member]]:
        if not rooms:
            return {}
        replies = await self._guard(
            lambda: self._pipelined([("hgetall", room_key(r, "presence")) for r in rooms])
        )
        return {
            room: sorted(
                (_member(raw, session) for session, raw in reply.items()),
                key=lambda m: m.session,
            )
            for room, reply in zip(rooms, replies, strict=True)
        }
