"""The in-memory backend: one node, no Redis, same semantics.

Leases and node heartbeats expire by a clock (the event loop's, unless one
is injected: tests run several room managers on one backend and move time
forward instead of sleeping through lease times). Events live in a bounded
deque per room, and ``wait_events`` sleeps on an :class:`asyncio.Event` that
every append sets. The inbox is a deque of numbered entries that only a
fenced commit trims. A retired room keeps its state with an expiry time
(the same clock); it is purged when looked at after that time, or when more
than ``max_retained`` rooms are retired. The backend exists so that the
embedded default needs no services, and it passes the same conformance
suite as the Redis backend.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .base import (
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

__all__ = ["MemoryBackend", "first_epoch"]


def _entry_number(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def first_epoch() -> int:
    """A new room's epoch base: wall-clock microseconds (see ``base``, incarnations)."""
    return time.time_ns() // 1000


@dataclass
class _Room:
    epoch: int = 0
    owner: str | None = None
    lease_until: float = 0.0
    events: deque[StoredEvent] = field(default_factory=deque)
    snapshot: RoomSnapshot | None = None
    #: digest -> text of templates named by events since the snapshot.
    templates: dict[str, bytes] = field(default_factory=dict)
    inbox: deque[tuple[int, bytes]] = field(default_factory=deque)
    #: Number of the last entry queued in ``inbox``.
    inbox_last: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    #: Clock time a retired room is purged at; None while the room is live.
    expires: float | None = None


class MemoryBackend:
    """Backend for a single node (or several in one process, in tests).

    ``retention`` bounds each room's event deque, ``inbox_limit`` its inbox,
    ``max_retained`` the retired rooms kept; ``clock`` (seconds, monotonic)
    times leases, heartbeats and retired rooms.
    """

    def __init__(
        self,
        *,
        retention: int = 2000,
        inbox_limit: int = 10000,
        max_retained: int = 1000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._retention = retention
        self._inbox_limit = inbox_limit
        self._max_retained = max_retained
        self._clock = clock
        self._rooms: dict[str, _Room] = {}
        #: Forgotten rooms -> when their tombstone expires (clock seconds).
        self._tombstones: dict[str, float] = {}
        self._nodes: dict[str, float] = {}
        self._changed = asyncio.Event()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._changed.set()

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return asyncio.get_running_loop().time()

    def _stored(self, room: str) -> _Room | None:
        """The room's state, live or retired; None once a retired room expired."""
        state = self._rooms.get(room)
        if state is not None and state.expires is not None and state.expires <= self._now():
            del self._rooms[room]
            return None
        return state

    def _live(self, room: str) -> _Room | None:
        state = self._stored(room)
        return state if state is not None and state.expires is None else None

    # -- rooms registry
    async def create_room(self, room: str, max_rooms: int) -> bool:
        state = self._stored(room)
        if state is not None and state.expires is None:
            return True
        if sum(1 for s in self._rooms.values() if s.expires is None) >= max_rooms:
            return False
        if state is None:
            self._rooms[room] = _Room(epoch=first_epoch(), events=deque(maxlen=self._retention))
        else:
            state.expires = None  # retired, not expired: back as it was
        return True

    async def retire_room(self, room: str, epoch: int, keep_ms: int) -> bool:
        state = self._live(room)
        if state is None or state.epoch != epoch or state.members or state.inbox:
            return False
        state.owner = None
        state.lease_until = 0.0
        if keep_ms <= 0:
            del self._rooms[room]
            return True
        state.expires = self._now() + keep_ms / 1000
        for name in list(self._rooms):
            self._stored(name)  # purges the expired ones
        retired = sorted(
            (s.expires, name) for name, s in self._rooms.items() if s.expires is not None
        )
        for _, name in retired[: max(0, len(retired) - self._max_retained)]:
            del self._rooms[name]
        return True

    async def keep_registered(self, rooms: Sequence[str]) -> None:
        return None  # one dict is the registry and the rooms: nothing to drift apart

    async def list_rooms(self) -> list[str]:
        return sorted(room for room in list(self._rooms) if self._live(room) is not None)

    async def room_status(self, room: str) -> RoomStatus:
        state = self._stored(room)
        if state is not None:
            return "exists" if state.expires is None else "retired"
        until = self._tombstones.get(room)
        if until is not None and until > self._now():
            return "forgotten"
        self._tombstones.pop(room, None)
        return "missing"

    async def forget_room(self, room: str, epoch: int | None, tombstone_ms: int) -> bool:
        state = self._stored(room)
        if state is None:
            return False
        if epoch is None and state.expires is None:
            return False  # live: only its owner erases it, fenced by its epoch
        if epoch is not None and state.epoch != epoch:
            return False
        del self._rooms[room]
        self._tombstones[room] = self._now() + tombstone_ms / 1000
        self._wake()
        return True

    # -- ownership
    def _held(self, state: _Room) -> bool:
        return state.owner is not None and state.lease_until > self._now()

    async def acquire_lease(self, room: str, node: str, ttl_ms: int) -> Lease | None:
        state = self._live(room)
        if state is None or self._held(state):
            return None
        state.epoch += 1
        state.owner = node
        state.lease_until = self._now() + ttl_ms / 1000
        return Lease(room, node, state.epoch)

    async def renew_leases(self, leases: Sequence[Lease], ttl_ms: int) -> list[bool]:
        results = []
        for lease in leases:
            state = self._live(lease.room)
            ok = (
                state is not None
                and state.epoch == lease.epoch
                and state.owner == lease.node
                and self._held(state)
            )
            if ok and state is not None:
                state.lease_until = self._now() + ttl_ms / 1000
            results.append(ok)
        return results

    async def release_lease(self, lease: Lease) -> None:
        state = self._stored(lease.room)
        if state is not None and state.epoch == lease.epoch and state.owner == lease.node:
            state.owner = None
            state.lease_until = 0.0

    async def owner(self, room: str) -> Lease | None:
        state = self._stored(room)
        if state is None or not self._held(state) or state.owner is None:
            return None
        return Lease(room, state.owner, state.epoch)

    async def owners(self, rooms: Sequence[str]) -> dict[str, Lease | None]:
        return {room: await self.owner(room) for room in rooms}

    # -- nodes
    async def heartbeat(self, node: str, ttl_ms: int) -> None:
        self._nodes[node] = self._now() + ttl_ms / 1000

    async def live_nodes(self) -> list[str]:
        now = self._now()
        return sorted(node for node, until in self._nodes.items() if until > now)

    # -- events
    async def append_events(self, room: str, epoch: int, events: Sequence[StoredEvent]) -> None:
        if not self._commit(room, Commit(epoch, events)):
            raise Fenced(f"append to {room} at stale epoch {epoch}")
        self._wake()

    async def append_many(self, commits: Mapping[str, Commit]) -> dict[str, bool]:
        results = {room: self._commit(room, commit) for room, commit in commits.items()}
        self._wake()
        return results

    def _commit(self, room: str, commit: Commit) -> bool:
        state = self._stored(room)
        if state is None or state.epoch != commit.epoch:
            return False
        for digest, text in commit.templates.items():
            state.templates.setdefault(digest, text)
        state.events.extend(commit.events)
        if commit.consumed is not None:
            through = _entry_number(commit.consumed)
            while state.inbox and state.inbox[0][0] <= through:
                state.inbox.popleft()
        return True

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _after(self, room: str, after_seq: int, limit: int) -> list[StoredEvent]:
        state = self._stored(room)
        if state is None or not state.events:
            return []
        events = state.events
        # Seqs are contiguous inside one room's stream, so index arithmetic finds the start.
        start = max(0, after_seq + 1 - events[0].seq)
        if start >= len(events):
            return []
        out = []
        for i in range(start, min(len(events), start + limit)):
            out.append(events[i])
        return out

    async def read_events(self, room: str, after_seq: int, limit: int) -> list[StoredEvent]:
        return self._after(room, after_seq, limit)

    async def wait_events(
        self, positions: Mapping[str, int], timeout: float, limit: int
    ) -> dict[str, list[StoredEvent]]:
        changed = self._changed
        found = self._collect(positions, limit)
        if found or timeout <= 0:
            return found
        try:
            async with asyncio.timeout(timeout):
                await changed.wait()
        except TimeoutError:
            return {}
        return self._collect(positions, limit)

    def _collect(self, positions: Mapping[str, int], limit: int) -> dict[str, list[StoredEvent]]:
        found: dict[str, list[StoredEvent]] = {}
        for room, seq in positions.items():
            events = self._after(room, seq, limit)
            if events:
                found[room] = events
        return found

    async def first_seq(self, room: str) -> int | None:
        state = self._stored(room)
        if state is None or not state.events:
            return None
        return state.events[0].seq

    async def last_position(self, room: str) -> tuple[int, int]:
        state = self._stored(room)
        if state is None or not state.events:
            return (0, 0)
        last = state.events[-1]
        return (last.epoch, last.seq)

    async def last_positions(self, rooms: Sequence[str]) -> dict[str, tuple[int, int]]:
        return {room: await self.last_position(room) for room in rooms}

    # -- snapshots
    async def save_snapshots(
        self, snapshots: Mapping[str, tuple[RoomSnapshot, int]]
    ) -> dict[str, bool]:
        results: dict[str, bool] = {}
        for room, (snapshot, lease_epoch) in snapshots.items():
            state = self._stored(room)
            results[room] = state is not None and state.epoch == lease_epoch
            if state is not None and results[room]:
                state.snapshot = snapshot
                state.templates.clear()
        return results

    async def save_snapshot(self, room: str, snapshot: RoomSnapshot, lease_epoch: int) -> None:
        state = self._stored(room)
        if state is None or state.epoch != lease_epoch:
            raise Fenced(f"snapshot of {room} at stale epoch {lease_epoch}")
        state.snapshot = snapshot
        state.templates.clear()

    async def load_snapshot(self, room: str) -> RoomSnapshot | None:
        state = self._stored(room)
        return None if state is None else state.snapshot

    async def read_templates(self, room: str) -> dict[str, bytes]:
        state = self._stored(room)
        return {} if state is None else dict(state.templates)

    # -- inbox
    async def push_input(self, room: str, data: bytes) -> None:
        state = self._live(room)
        if state is None:
            raise RoomMissing(f"room {room} does not exist (any more)")
        if len(state.inbox) >= self._inbox_limit:
            raise InboxFull(f"room {room} has {self._inbox_limit} inputs waiting; try again")
        state.inbox_last += 1
        state.inbox.append((state.inbox_last, data))

    async def read_inputs(self, rooms: Sequence[str], limit: int) -> dict[str, list[InboxEntry]]:
        out: dict[str, list[InboxEntry]] = {}
        for room in rooms:
            state = self._stored(room)
            if state is None or not state.inbox:
                continue
            out[room] = [
                InboxEntry(f"{number}-0", data)
                for number, data in itertools.islice(state.inbox, limit)
            ]
        return out

    # -- presence
    async def join_presence(self, room: str, member: Member, capacity: int) -> bool:
        state = self._stored(room)
        if state is None:
            return False
        if member.session not in state.members and len(state.members) >= capacity:
            return False
        state.members[member.session] = member
        return True

    async def leave_presence(self, room: str, session: str) -> None:
        state = self._stored(room)
        if state is not None:
            state.members.pop(session, None)

    async def presence(self, room: str) -> list[Member]:
        state = self._stored(room)
        return [] if state is None else sorted(state.members.values(), key=lambda m: m.session)

    async def presences(self, rooms: Sequence[str]) -> dict[str, list[Member]]:
        return {room: await self.presence(room) for room in rooms}
