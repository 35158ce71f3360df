"""The Redis backend: rooms shared by many nodes through Redis (or Redis Cluster).

How it works. Every key of a room carries the hash tag ``{room:ID}``, so all
of a room's keys live in one Cluster slot and each Lua script below touches
the keys of one room only:

- ``{room:ID}:epoch``    fencing epoch (string integer). Created with the
  room (wall-clock microseconds, see ``base``), INCR on every takeover.
  Its existence is the room's existence for leases; a TTL on it, that
  the room is retired (see retention below).
- ``{room:ID}:owner``    lease: ``"<epoch>|<node>"``, SET NX PX, renewed.
- ``{room:ID}:events``   stream; entry id ``<seq>-0``, fields ``e`` epoch,
  ``t`` tick, ``f`` frame, ``i`` tick inputs. XADD MAXLEN ~ retention, only
  through the APPEND script, which refuses a stale epoch (fencing).
- ``{room:ID}:snapshot`` hash: epoch, seq, state, view (fenced like appends).
  The SNAPSHOT script also deletes ``templates``: the snapshot covers them.
- ``{room:ID}:templates`` hash: sha256 digest -> template text, for the tick
  records (``i``) that name a template by digest. Written (HSETNX, once per
  digest) by the APPEND script with the events naming it, deleted by the
  next snapshot (see ``base``, templates).
- ``{room:ID}:inbox``    stream of encoded inputs for the owner. PUSH refuses
  a room without a live epoch key (unknown to the store, or retired) and a
  full inbox; only
  the APPEND script removes entries, through the last one the owner consumed
  (XTRIM MINID), after it checked the epoch: consume on commit.
- ``{room:ID}:presence`` hash: session -> msgpack [name, role, node].
- ``{room:ID}:forgotten`` a tombstone (``1``, PX ``FORGOTTEN_TTL_MS``) left by
  the FORGET script, which deletes every other key of the room at once
  (``ROOM_PARTS``), fenced by the epoch like an append, or for a retired
  room (no owner, no epoch to fence with) only while its epoch key still
  has a time to live.

Three global keys: ``sleepsync:rooms`` (set, the registry of live rooms),
``sleepsync:retired`` (sorted set, retired room -> expiry in Redis time ms:
at most ``max_retained`` of them) and ``sleepsync:nodes`` (sorted set, node
-> heartbeat expiry in Redis time ms).

Retention. A room is live while its epoch key has no time to live. The
RETIRE script (fenced, empty rooms only) drops the lease and gives every key
of the room a TTL of the retention time; then the room leaves the registry
for the retired set, and the retired rooms beyond ``max_retained`` are
dropped (closest to expiring first). A retired room takes no lease (ACQUIRE)
and no input (PUSH); creating it again (REVIVE) PERSISTs its keys. The
registry and the room's keys live in different Cluster slots, so a room
created again while it was being retired can end up live but off the
registry; its owner puts it back within one round (``keep_registered``).

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
RETIRED = "sleepsync:retired"
NODES = "sleepsync:nodes"
#: Node heartbeats that expired longer ago than this are forgotten (ms).
NODE_FORGET_MS = 600_000

ROOM_PARTS = ("epoch", "owner", "events", "snapshot", "inbox", "presence", "templates")


def room_key(room: str, part: str) -> str:
    return f"{{room:{room}}}:{part}"


_SCRIPTS = {
    # KEYS: registry, retired. ARGV: room, max rooms. -> 1 when the room exists afterwards.
    "create": """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
  redis.call('SADD', KEYS[1], ARGV[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
""",
    # KEYS: every room key, epoch first. ARGV: epoch base of a new incarnation.
    # A new room gets its epoch key; a retired one that has not expired is kept again.
    "revive": """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
if redis.call('PTTL', KEYS[1]) >= 0 then
  for _, key in ipairs(KEYS) do redis.call('PERSIST', key) end
end
return 1
""",
    # KEYS: epoch, owner, events, snapshot, inbox, presence, templates. ARGV: epoch, keep ms.
    # Only an empty room retires: someone joining (presence first) or an input keeps it.
    # Its lease goes; its keys expire after keep ms (0: now).
    "retire": """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('XLEN', KEYS[5]) > 0 or redis.call('HLEN', KEYS[6]) > 0 then return 0 end
redis.call('DEL', KEYS[2])
if tonumber(ARGV[2]) <= 0 then
  redis.call('DEL', unpack(KEYS))
else
  for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[2]) end
end
return 1
""",
    # KEYS: registry, retired. ARGV: room, keep ms, most retired rooms. Takes a retired
    # room off the registry, remembers when it expires, forgets expired ones, and
    # returns the retired rooms beyond the limit (closest to expiring first) to drop.
    "retired": """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if tonumber(ARGV[2]) > 0 then redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1]) end
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over <= 0 then return {} end
local dropped = redis.call('ZRANGE', KEYS[2], 0, over - 1)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, over - 1)
return dropped
""",
    # KEYS: every room key, epoch first. Removes a retired room now (not one in use again).
    "drop": """
if redis.call('PTTL', KEYS[1]) == -1 then return 0 end
redis.call('DEL', unpack(KEYS))
return 1
""",
    # KEYS: registry, retired. ARGV: rooms their owner runs.
    "keep": """
redis.call('SADD', KEYS[1], unpack(ARGV))
redis.call('ZREM', KEYS[2], unpack(ARGV))
return 1
""",
    # KEYS: every room key, epoch first, then the tombstone. ARGV: epoch ('': the room must
    # be retired), tombstone ms. Erases the room whoever is in it, if the epoch is current
    # (or the room still retired: its epoch key expires); leaves the tombstone.
    "forget": """
if ARGV[1] == '' then
  if redis.call('PTTL', KEYS[1]) < 0 then return 0 end
elseif redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', unpack(KEYS, 1, #KEYS - 1))
redis.call('SET', KEYS[#KEYS], '1', 'PX', ARGV[2])
return 1
""",
    # KEYS: owner, epoch. ARGV: node, ttl ms. -> the new epoch (string) or nil.
    # No lease on a room that does not exist or is retired (its epoch key expires).
    "acquire": """
if redis.call('PTTL', KEYS[2]) ~= -1 then return false end
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
    # KEYS: epoch, events, inbox, templates. ARGV: epoch, maxlen, last consumed inbox id
    # ('' for none), number of templates n, n pairs digest, text, then per event seq,
    # epoch, tick, frame, inputs. Refuses the whole commit when the epoch is not the
    # current one (fencing); else stores the templates the events name, appends, then
    # removes the consumed inputs: every inbox entry below the id right after the last
    # consumed one.
    "append": """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local first = 5 + 2 * tonumber(ARGV[4])
for i = 5, first - 1, 2 do
  redis.call('HSETNX', KEYS[4], ARGV[i], ARGV[i + 1])
end
for i = first, #ARGV, 5 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], ARGV[i] .. '-0',
             'e', ARGV[i + 1], 't', ARGV[i + 2], 'f', ARGV[i + 3], 'i', ARGV[i + 4])
end
if ARGV[3] ~= '' then
  local ms, n = string.match(ARGV[3], '^(%d+)-(%d+)$')
  redis.call('XTRIM', KEYS[3], 'MINID', ms .. '-' .. string.format('%d', tonumber(n) + 1))
end
return 1
""",
    # KEYS: epoch, snapshot, templates. ARGV: lease epoch, epoch, seq, state, view.
    # The snapshot covers every event so far: the templates they name can go.
    "snapshot": """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'seq', ARGV[3], 'state', ARGV[4], 'view', ARGV[5])
redis.call('DEL', KEYS[3])
return 1
""",
    # KEYS: epoch, inbox. ARGV: input, limit. -> 1 queued, 0 no such room (or retired),
    # -1 inbox full.
    "push": """
if redis.call('PTTL', KEYS[1]) ~= -1 then return 0 end
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
    ``max_retained`` the most retired rooms kept (see retention above),
    ``timeout`` bounds every command (s); ``password`` (from a file, see
    ``--redis-password-file``) is used when the URL carries none. Neither the
    URL nor the password ever appears in an error or a log line: errors name
    the host and port only.
    """

    def __init__(
        self,
        url: str,
        *,
        retention: int = 2000,
        inbox_limit: int = 10000,
        max_retained: int = 1000,
        timeout: float = 2.0,
        password: str | None = None,
    ) -> None:
        self.url = url
        self._retention = retention
        self._max_retained = max_retained
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
                password=password,
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
                password=password,
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
        if not await self._script("create", [REGISTRY, RETIRED], room, max_rooms):
            return False
        # The epoch key marks the room as existing for leases; keep it if present.
        base = time.time_ns() // 1000
        await self._script("revive", _keys(room, *ROOM_PARTS), base)
        return True

    async def retire_room(self, room: str, epoch: int, keep_ms: int) -> bool:
        if not await self._script("retire", _keys(room, *ROOM_PARTS), epoch, keep_ms):
            return False
        over = await self._script("retired", [REGISTRY, RETIRED], room, keep_ms, self._max_retained)
        for dropped in over:
            await self._script("drop", _keys(dropped.decode(), *ROOM_PARTS))
        return True

    async def keep_registered(self, rooms: Sequence[str]) -> None:
        if rooms:
            await self._script("keep", [REGISTRY, RETIRED], *rooms)

    async def list_rooms(self) -> list[str]:
        members = await self._guard(lambda: self._redis.smembers(REGISTRY))
        return sorted(m.decode() for m in members)

    async def room_status(self, room: str) -> RoomStatus:
        async def read() -> list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            pipe.sismember(REGISTRY, room)
            pipe.pttl(room_key(room, "epoch"))
            pipe.exists(room_key(room, "forgotten"))
            return list(await pipe.execute())

        registered, epoch_ttl, tombstone = await self._guard(read)
        # A live room has an epoch key without a time to live (even while it is
        # off the registry for a round, see keep_registered); a retired one, with.
        if registered or epoch_ttl == -1:
            return "exists"
        if epoch_ttl >= 0:
            return "retired"
        return "forgotten" if tombstone else "missing"

    async def forget_room(self, room: str, epoch: int | None, tombstone_ms: int) -> bool:
        keys = _keys(room, *ROOM_PARTS, "forgotten")
        fence = "" if epoch is None else epoch
        if not await self._script("forget", keys, fence, tombstone_ms):
            return False

        async def unlist() -> None:
            pipe = self._redis.pipeline(transaction=False)
            pipe.srem(REGISTRY, room)
            pipe.zrem(RETIRED, room)
            await pipe.execute()

        await self._guard(unlist)
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
        args.append(len(commit.templates))
        for digest, text in commit.templates.items():
            args.extend((digest, text))
        for e in commit.events:
            args.extend((e.seq, e.epoch, e.tick, e.frame, e.inputs))
        return ("append", _keys(room, "epoch", "events", "inbox", "templates"), args)

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
            _keys(room, "epoch", "snapshot", "templates"),
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

    async def read_templates(self, room: str) -> dict[str, bytes]:
        found = await self._guard(lambda: self._redis.hgetall(room_key(room, "templates")))
        return {digest.decode(): text for digest, text in found.items()}

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
