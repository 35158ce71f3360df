"""Fan-out: deliver each room event, encoded once, to this node's clients.

How it works: for every room that has clients here, the node remembers the
last seq it delivered. One reader task waits on the backend for events past
those positions (many rooms in one call), and writes each event's stored frame
to all the room's local connections with ``websockets.broadcast`` — a write to
each transport, no per-client task or copy. After the write, a connection
whose unsent bytes exceed ``outbound_buffer_bytes`` is a slow consumer: it
leaves the room's list at once (so it can never delay the others or grow
without bound) and is closed with 1013.

A client joining, or resuming after a reconnect, first gets a snapshot (or
the events it missed) and is then attached to the live flow; the join
bookkeeping (``_Local.catching_up``) makes sure it sees every seq exactly once.

Never a silent gap: a stream that jumps past what this node delivered, a
stream shorter than what it delivered (checked every ``VERIFY_INTERVAL`` for
all local rooms in one backend call: the store lost its data), or a new epoch
whose predecessor event is not the one this node delivered (a room re-created
from scratch) gives every local client of the room a resync: the node joins
them to the room again (``rejoin``) and sends a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from websockets.asyncio.server import ServerConnection, broadcast

from sleepsync.protocol.codec import encode, event_time
from sleepsync.protocol.errors import CLOSE_OVERLOADED, SleepSyncError
from sleepsync.protocol.messages import ResumePoint, Resync

from .backend.base import Backend, BackendError, StoredEvent
from .metrics import Metrics
from .supervisor import Supervisor

__all__ = ["Fanout", "Subscriber"]

log = logging.getLogger("sleepsync.fanout")

READ_LIMIT = 256
WAIT_TIMEOUT = 0.5
#: Seconds between checks that the local rooms' streams were not reset.
VERIFY_INTERVAL = 1.0
#: Attempts to bring a resynced client back into its room before closing it.
REATTACH_ATTEMPTS = 8


class RoomNotReady(SleepSyncError):
    """The room has no snapshot yet (its owner is starting); try again shortly."""

    code = "room_starting"


class RoomUnavailable(SleepSyncError):
    """The room could not be rebuilt for this client; reconnect to try again."""

    code = "room_unavailable"
    close_code = CLOSE_OVERLOADED


class Subscriber(Protocol):
    """A client session as the fan-out sees it."""

    @property
    def conn(self) -> ServerConnection: ...

    async def send_frame(self, frame: bytes) -> None: ...

    def slow(self, room: str) -> None:
        """The fan-out dropped this session from ``room`` for not reading."""
        ...

    def lost(self, room: str) -> None:
        """The fan-out could not bring this session back into ``room`` after a resync."""
        ...


#: Re-enters a session into a room after a resync (presence, membership, owner);
#: False when the session no longer wants the room.
Rejoin = Callable[[str, Subscriber], Awaitable[bool]]


@dataclass(eq=False, slots=True)
class _Local:
    """A room as seen by this node: its local sessions and read position."""

    last_seq: int
    #: Epoch of the last event delivered (0: not known yet).
    epoch: int = 0
    sessions: dict[Subscriber, None] = field(default_factory=dict)
    #: Sessions that already hold events past ``last_seq``: skip until theirs.
    catching_up: dict[Subscriber, int] = field(default_factory=dict)
    recent: deque[StoredEvent] = field(default_factory=lambda: deque(maxlen=256))
    conns: list[ServerConnection] = field(default_factory=list)

    def rebuild(self) -> None:
        self.conns = [s.conn for s in self.sessions]


class Fanout:
    def __init__(
        self,
        backend: Backend,
        metrics: Metrics,
        *,
        outbound_buffer_bytes: int,
        tasks: Supervisor,
    ) -> None:
        self.backend = backend
        self.tasks = tasks
        self.metrics = metrics
        self.outbound_buffer_bytes = outbound_buffer_bytes
        self.rooms: dict[str, _Local] = {}
        self._interest = asyncio.Event()
        self.rejoin: Rejoin | None = None
        self._verified_at = 0.0

    # ------------------------------------------------------------ reader
    async def run(self) -> None:
        failing = False
        while True:
            if not self.rooms:
                self._interest.clear()
                await self._interest.wait()
                continue
            positions = {room: local.last_seq for room, local in self.rooms.items()}
            try:
                found = await self.backend.wait_events(positions, WAIT_TIMEOUT, READ_LIMIT)
            except BackendError as exc:
                self.metrics.backend_failures.labels("read").inc()
                (log.debug if failing else log.warning)("reading room events failed: %s", exc)
                failing = True
                await asyncio.sleep(0.2)
                continue
            failing = False
            try:
                for room, events in found.items():
                    if await self._continues(room, events):
                        self.deliver(room, events)
                await self._verify()
            except BackendError as exc:
                self.metrics.backend_failures.labels("read").inc()
                log.warning("checking room events failed: %s", exc)
            except Exception:  # a bug: keep delivering the other rooms, say so loudly
                log.exception("delivering room events failed")

    async def _continues(self, room: str, events: list[StoredEvent]) -> bool:
        """A new epoch must continue the history this node delivered, else resync."""
        local = self.rooms.get(room)
        if local is None or not local.epoch or not events:
            return True
        first = events[0]
        if first.epoch == local.epoch or first.seq != local.last_seq + 1:
            return True
        anchor = await self.backend.read_events(room, local.last_seq - 1, 1)
        if anchor and anchor[0].seq == local.last_seq and anchor[0].epoch == local.epoch:
            return True
        if self.rooms.get(room) is local:
            self._reset(room, local)
        return False

    async def _verify(self) -> None:
        """Every VERIFY_INTERVAL: a stream shorter than what we delivered was reset."""
        now = asyncio.get_running_loop().time()
        if now - self._verified_at < VERIFY_INTERVAL or not self.rooms:
            return
        self._verified_at = now
        try:
            positions = await self.backend.last_positions(list(self.rooms))
        except BackendError as exc:
            self.metrics.backend_failures.labels("verify").inc()
            log.warning("checking room streams failed: %s", exc)
            return
        for room, (_epoch, seq) in positions.items():
            local = self.rooms.get(room)
            if local is not None and seq < local.last_seq:
                self._reset(room, local)

    def _reset(self, room: str, local: _Local) -> None:
        log.warning("the history of room %s was lost; resyncing its clients", room)
        self.metrics.resets.inc()
        self._resync_all(room, local, "the room's history was lost; starting again from now")

    def deliver(self, room: str, events: list[StoredEvent]) -> None:
        local = self.rooms.get(room)
        if local is None:
            return
        for stored in events:
            if stored.seq <= local.last_seq:
                continue
            if stored.seq != local.last_seq + 1:
                # The stream moved on past what this node read (trimmed, or the
                # store lost data): every local client gets a resync, never a gap.
                self._resync_all(room, local, "events were lost between the server nodes")
                return
            local.last_seq = stored.seq
            local.epoch = stored.epoch
            local.recent.append(stored)
            if local.catching_up:
                self._deliver_catching_up(room, local, stored)
            if local.conns:
                broadcast(local.conns, stored.frame)
                self.metrics.frames_out.inc(len(local.conns))
                ticked = event_time(stored.frame)
                if ticked:
                    self.metrics.fanout_seconds.observe(max(0.0, time.time() - ticked))
                self._check_slow(room, local)

    def _deliver_catching_up(self, room: str, local: _Local, stored: StoredEvent) -> None:
        for session, until in list(local.catching_up.items()):
            if stored.seq <= until:
                continue
            del local.catching_up[session]
            local.sessions[session] = None
            local.rebuild()

    def _check_slow(self, room: str, local: _Local) -> None:
        limit = self.outbound_buffer_bytes
        slow = [
            s
            for s in local.sessions
            if s.conn.transport is not None and s.conn.transport.get_write_buffer_size() > limit
        ]
        for session in slow:
            self.detach(room, session)
            self.metrics.slow_consumers.inc()
            session.slow(room)

    def _resync_all(self, room: str, local: _Local, reason: str) -> None:
        sessions = [*local.sessions, *local.catching_up]
        del self.rooms[room]
        self.metrics.rooms_local.set(len(self.rooms))
        for session in sessions:
            self.tasks.spawn(self._reattach(room, session, reason), f"resync {room}")

    async def _reattach(self, room: str, session: Subscriber, reason: str) -> None:
        try:
            await session.send_frame(encode(Resync(room, reason)))
        except Exception as exc:  # the client went away meanwhile
            log.debug("resync of a client in %s failed: %s", room, exc)
            return
        self.metrics.resyncs.inc()
        delay = 0.1
        for _ in range(REATTACH_ATTEMPTS):
            try:
                if self.rejoin is not None and not await self.rejoin(room, session):
                    return
                await self.attach(room, session, None)
                return
            except (BackendError, RoomNotReady) as exc:
                log.info("client cannot re-enter %s yet: %s", room, exc)
            except SleepSyncError as exc:  # the room is full now, for example
                log.info("client cannot re-enter %s: %s", room, exc)
                break
            except Exception as exc:  # the client went away meanwhile
                log.debug("resync of a client in %s failed: %s", room, exc)
                return
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
        session.lost(room)

    # ------------------------------------------------------------ joining
    async def attach(self, room: str, session: Subscriber, resume: ResumePoint | None) -> bool:
        """Bring ``session`` up to date in ``room`` and add it to the live flow.

        Returns True when the client resumed by replay, False when it got a
        snapshot (a fresh join, or a resync because the replay was impossible).
        """
        position = None
        if resume is not None:
            position = await self._replay(room, session, resume)
            if position is None:
                await session.send_frame(
                    encode(Resync(room, "missed events are no longer available"))
                )
                self.metrics.resyncs.inc()
            else:
                self.metrics.resumes.inc()
        replayed = position is not None
        if position is None:
            position = await self._send_snapshot(room, session)
        while True:
            local = self.rooms.get(room)
            if local is None:
                self.rooms[room] = local = _Local(last_seq=position)
                self.metrics.rooms_local.set(len(self.rooms))
                self._interest.set()
            if position >= local.last_seq:
                if position > local.last_seq:
                    local.catching_up[session] = position
                else:
                    local.sessions[session] = None
                    local.rebuild()
                return replayed
            # The live flow is ahead of this client: send it the difference.
            missing = [e for e in local.recent if e.seq > position]
            if not missing or missing[0].seq != position + 1:
                missing = await self.backend.read_events(room, position, READ_LIMIT)
                if not missing or missing[0].seq != position + 1:
                    # Trimmed under our feet: start over from a snapshot.
                    position = await self._send_snapshot(room, session)
                    continue
            for stored in missing:
                await session.send_frame(stored.frame)
                position = stored.seq

    async def _send_snapshot(self, room: str, session: Subscriber) -> int:
        for _ in range(50):
            snapshot = await self.backend.load_snapshot(room)
            if snapshot is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise RoomNotReady(f"room {room} is starting; join again in a moment")
        await session.send_frame(snapshot.view)
        position = snapshot.seq
        while True:
            events = await self.backend.read_events(room, position, READ_LIMIT)
            if not events:
                return position
            for stored in events:
                await session.send_frame(stored.frame)
                position = stored.seq

    async def _replay(self, room: str, session: Subscriber, resume: ResumePoint) -> int | None:
        """Send the events after ``resume``; None when the history has a gap."""
        _epoch, seq = await self.backend.last_position(room)
        if resume.seq > seq:
            return None  # the client saw events this store never had: it was reset
        if resume.seq > 0:
            # The client's last event must still be there, from the same owner epoch.
            anchor = await self.backend.read_events(room, resume.seq - 1, 1)
            if not anchor or anchor[0].seq != resume.seq or anchor[0].epoch != resume.epoch:
                return None
        else:
            first = await self.backend.first_seq(room)
            if first is not None and first != 1:
                return None
        position = resume.seq
        while True:
            events = await self.backend.read_events(room, position, READ_LIMIT)
            if not events:
                return position
            if events[0].seq != position + 1:
                return None
            for stored in events:
                await session.send_frame(stored.frame)
                position = stored.seq

    def detach(self, room: str, session: Subscriber) -> None:
        local = self.rooms.get(room)
        if local is None:
            return
        local.catching_up.pop(session, None)
        if session in local.sessions:
            del local.sessions[session]
            local.rebuild()
        if not local.sessions and not local.catching_up:
            del self.rooms[room]
            self.metrics.rooms_local.set(len(self.rooms))
