"""Room ownership and the tick loop of the rooms a node owns.

How it works: a node owns a room while it holds the room's lease (see
``backend.base``). Taking a room restores its last snapshot and replays the
events stored after it (each event keeps its tick's inputs), so the state
continues exactly where the previous owner left it. Once per tick period one
loop ticks every owned room: it drains the rooms' inboxes in one backend call,
applies each room's inputs, encodes each room's event frame once, and appends
all frames in one backend call. A room whose tick raises is reloaded from its
last snapshot; the node and the other rooms go on. An append refused for a
stale epoch, or a lease that could not be renewed, makes the node step down
from that room at once.

Many nodes: every node sends a heartbeat each lease TTL / 3 and adopts
unowned rooms (their owner died and the lease expired) up to its fair share,
``ceil(rooms / live nodes) + room_share_slack``; a room opened by a join is
taken by the joining node when it is under its share, else left to a node
that is (and taken anyway if no one has within one lease TTL). The owner
removes the members of nodes that stopped beating. When the backend fails,
the node reports itself degraded (``on_health``); once it can no longer be
sure of its leases (renewals failing for a lease TTL) it stops ticking its
rooms, and re-adopts them when the backend returns. A tick whose append
failed on the backend reloads its rooms from the store before ticking them
again, so nothing it computed but could not store is ever built upon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sleepsync.protocol.codec import encode
from sleepsync.protocol.errors import DecodeError, TooManyRooms
from sleepsync.protocol.messages import Event, Snapshot
from sleepsync.protocol.telemetry import Cue

from .backend.base import Backend, BackendError, Fenced, Lease, RoomSnapshot, StoredEvent
from .config import Settings
from .inputs import (
    ExternalInput,
    RoomInput,
    decode_input,
    decode_tick,
    encode_tick,
)
from .metrics import Metrics
from .room_state import EngineHooks, RoomState
from .supervisor import Supervisor

__all__ = ["OwnedRoom", "RoomManager"]

log = logging.getLogger("sleepsync.rooms")

INBOX_BATCH = 256
REPLAY_BATCH = 512
#: Bound on external inputs (telemetry) waiting for one room's next tick.
EXTERNAL_QUEUE = 4096


@dataclass(slots=True)
class OwnedRoom:
    state: RoomState
    lease: Lease
    #: Epoch of the newest event (the owner that wrote it), for snapshots.
    last_epoch: int = 0
    external: list[ExternalInput] = field(default_factory=list)
    external_dropped: int = 0
    empty_since: float | None = None
    #: Inputs the owner itself adds (leaves of members of dead nodes), next tick.
    pending: list[RoomInput] = field(default_factory=list)


#: Shortest interval between two tick slots, in seconds.
MIN_SLOT_S = 0.005
#: Most slots a tick period is split into.
MAX_SLOTS = 16


def tick_slots(tick_hz: float) -> int:
    """How many slots one tick period is split into.

    Rooms tick at a phase of their own (their slot), not all at the same
    instant: a node with many rooms then writes a steady stream of frames
    instead of one burst per period, which keeps fan-out latency low.
    """
    return max(1, min(MAX_SLOTS, int(1.0 / (tick_hz * MIN_SLOT_S))))


def room_slot(room: str, slots: int) -> int:
    """The slot of ``room``: stable on every node and every run."""
    return zlib.crc32(room.encode()) % slots


CueSink = Callable[[str, list[Cue]], None]
#: Called with (room, owned) when this node starts or stops owning a room.
OwnershipSink = Callable[[str, bool], None]
#: Called with (healthy, reason) when the backend fails or works again.
HealthSink = Callable[[bool, str], None]


class RoomManager:
    """Owns rooms on behalf of one node and ticks them."""

    def __init__(
        self,
        backend: Backend,
        settings: Settings,
        node_id: str,
        metrics: Metrics,
        hooks: EngineHooks | None = None,
        *,
        on_cues: CueSink | None = None,
        on_ownership: OwnershipSink | None = None,
        on_health: HealthSink | None = None,
        tasks: Supervisor,
    ) -> None:
        self.backend = backend
        self.tasks = tasks
        self.settings = settings
        self.node_id = node_id
        self.metrics = metrics
        self.hooks = hooks
        self.owned: dict[str, OwnedRoom] = {}
        self._on_cues = on_cues
        self._on_ownership = on_ownership
        self._on_health = on_health
        self._taking: dict[str, asyncio.Task[bool]] = {}
        self.healthy = True
        #: Loop time of the start of the last successful lease renewal.
        self._renewed_at: float | None = None
        #: Loop time of the last completed tick, and an event set after each tick.
        self._ticked_at = 0.0
        self._ticked = asyncio.Event()
        self._renew_failing = False
        self._recovering: set[str] = set()

    # ------------------------------------------------------------ ownership
    async def open_room(self, room: str) -> None:
        """Make sure ``room`` exists and has an owner (this node if no one else).

        Raises TooManyRooms when the deployment is at ``max_rooms``.
        """
        self.metrics.backend_ops.labels("create_room").inc()
        if not await self.backend.create_room(room, self.settings.max_rooms):
            raise TooManyRooms(f"the server holds its maximum of {self.settings.max_rooms} rooms")
        if room in self.owned or await self.backend.owner(room) is not None:
            return
        if await self._under_share():
            await self.take(room)
            return
        # Leave the room to a node under its share; take it if no one does in time.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.lease_ttl_ms / 1000
        while loop.time() < deadline:
            await asyncio.sleep(0.05)
            if room in self.owned or await self.backend.owner(room) is not None:
                return
        await self.take(room)

    async def _under_share(self) -> bool:
        live = len(await self.backend.live_nodes())
        if live <= 1:
            return True
        return len(self.owned) < self._share(len(await self.backend.list_rooms()), live)

    def _share(self, rooms: int, live: int) -> int:
        return math.ceil(rooms / max(1, live)) + self.settings.room_share_slack

    async def take(self, room: str) -> bool:
        """Try to become the room's owner; one attempt at a time per room."""
        task = self._taking.get(room)
        if task is None:
            task = self.tasks.spawn(self._take(room), f"take {room}")
            self._taking[room] = task
            task.add_done_callback(lambda _: self._taking.pop(room, None))
        return await asyncio.shield(task)

    async def _take(self, room: str) -> bool:
        if room in self.owned:
            return True
        lease = await self.backend.acquire_lease(room, self.node_id, self.settings.lease_ttl_ms)
        if lease is None:
            return False
        try:
            owned = await self._restore(room, lease)
        except Exception:
            log.exception("could not restore room %s; releasing it", room)
            self.metrics.room_failures.inc()
            await self.backend.release_lease(lease)
            return False
        self.owned[room] = owned
        self.metrics.lease_takeovers.inc()
        self.metrics.rooms_owned.set(len(self.owned))
        if self._on_ownership is not None:
            self._on_ownership(room, True)
        log.info("node %s owns room %s at epoch %d", self.node_id, room, lease.epoch)
        return True

    async def _restore(self, room: str, lease: Lease) -> OwnedRoom:
        snapshot = await self.backend.load_snapshot(room)
        if snapshot is None:
            state = RoomState(
                room,
                story_tail=self.settings.story_tail,
                capacity=self.settings.room_capacity,
                hooks=self.hooks,
            )
            last_epoch = 0
        else:
            state = RoomState.restore(snapshot.state, self.hooks)
            last_epoch = snapshot.epoch
        # Replay what the previous owner did after its last snapshot.
        while True:
            tail = await self.backend.read_events(room, state.seq, REPLAY_BATCH)
            if not tail:
                break
            for stored in tail:
                self._replay(state, stored)
                last_epoch = stored.epoch
        owned = OwnedRoom(state=state, lease=lease, last_epoch=last_epoch)
        await self._save_snapshot(room, owned)
        return owned

    def _replay(self, state: RoomState, stored: StoredEvent) -> None:
        if stored.seq != state.seq + 1:
            raise DecodeError(f"stream of {state.room} jumps from {state.seq} to {stored.seq}")
        record = decode_tick(stored.inputs)
        while state.tick < stored.tick - 1:
            state.apply([])
        state.apply(record.room, record.external)
        # Whatever the replay produced, the stored event is the truth clients saw.
        state.seq = stored.seq
        state.tick = stored.tick

    def step_down(self, room: str, reason: str) -> None:
        owned = self.owned.pop(room, None)
        if owned is not None:
            log.warning("node %s steps down from room %s: %s", self.node_id, room, reason)
            self.metrics.rooms_owned.set(len(self.owned))
            if self._on_ownership is not None:
                self._on_ownership(room, False)

    async def release_all(self) -> None:
        """On shutdown: save every room and hand its lease back."""
        for room, owned in list(self.owned.items()):
            try:
                await self._save_snapshot(room, owned)
                await self.backend.release_lease(owned.lease)
            except BackendError as exc:
                log.warning("could not release room %s: %s", room, exc)
            self.owned.pop(room, None)
            if self._on_ownership is not None:
                self._on_ownership(room, False)
        self.metrics.rooms_owned.set(0)

    # ------------------------------------------------------------ inputs
    def add_external(self, room: str, item: ExternalInput) -> bool:
        """Queue telemetry or pod state for the room's next tick (owner only)."""
        owned = self.owned.get(room)
        if owned is None:
            return False
        if len(owned.external) >= EXTERNAL_QUEUE:
            owned.external_dropped += 1
            return False
        owned.external.append(item)
        return True

    # ------------------------------------------------------------ ticking
    async def run(self) -> None:
        """Tick forever at ``tick_hz`` and keep leases fresh."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._tick_loop())
            tg.create_task(self._lease_loop())

    async def _tick_loop(self) -> None:
        """Tick the owned rooms, one slot of them at a time (see :func:`tick_slots`)."""
        loop = asyncio.get_running_loop()
        slots = tick_slots(self.settings.tick_hz)
        step = self.settings.tick_seconds / slots
        deadline = loop.time()
        slot = 0
        while True:
            deadline += step
            slot = (slot + 1) % slots
            every_slot = False
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                # Late: still let the gateway and the fan-out run between ticks,
                # or an overloaded node would stop accepting and sending.
                await asyncio.sleep(0)
                self.metrics.tick_lag.set(-delay)
                if -delay > step * slots:
                    missed = int(-delay / step)
                    deadline += missed * step
                    slot = (slot + missed) % slots
                    self.metrics.ticks_skipped.inc(missed)
                    every_slot = True  # after a stall, every room ticks at once
            try:
                with self.metrics.tick_seconds.time():
                    await self.tick_once(0, 1) if every_slot else await self.tick_once(slot, slots)
                self._ticked_at = loop.time()
                self._ticked.set()
                if every_slot:
                    # That was every room's tick of this period: the next period
                    # starts one period from now, at slot 0, so no room ticks twice.
                    deadline = self._ticked_at + step * (slots - 1)
                    slot = slots - 1
            except BackendError as exc:
                self.metrics.backend_failures.labels("tick").inc()
                # One line per outage, not one per tick.
                (log.warning if self.healthy else log.debug)("tick failed on the backend: %s", exc)
                self._set_health(False, "the shared store is unreachable")
            except Exception:  # a bug: keep the node alive, say so loudly
                log.exception("tick failed")

    async def tick_once(self, slot: int = 0, slots: int = 1) -> None:
        """Tick the owned rooms of one slot (all rooms when ``slots`` is 1) once;
        batch the backend work."""
        if not self.owned:
            return
        if not self._leases_sure():
            for room in list(self.owned):
                self.step_down(room, "the backend is unreachable: the lease may have expired")
            return
        rooms = [room for room in self.owned if slots == 1 or room_slot(room, slots) == slot]
        if not rooms:
            return
        self.metrics.backend_ops.labels("pop_inputs").inc()
        inboxes = await self.backend.pop_inputs(rooms, INBOX_BATCH)
        batches: dict[str, tuple[int, Sequence[StoredEvent]]] = {}
        to_snapshot: list[str] = []
        for room in rooms:
            owned = self.owned.get(room)
            if owned is None:
                continue
            stored = self._tick_room(room, owned, inboxes.get(room, ()))
            if stored is not None:
                batches[room] = (owned.lease.epoch, [stored])
            if owned.state.tick % self.settings.snapshot_every == 0:
                to_snapshot.append(room)
        self.metrics.ticks.inc(len(rooms))
        if batches:
            self.metrics.backend_ops.labels("append").inc()
            try:
                results = await self.backend.append_many(batches)
            except BackendError:
                # Unknown whether the events were stored: rebuild these rooms from
                # the store (same lease) before ticking them again.
                for room in batches:
                    self._recover(room)
                raise
            for room, ok in results.items():
                if not ok:
                    self.metrics.fenced.inc()
                    self.step_down(room, "append refused: a newer owner holds the room")
        snapshots = {
            room: (self._snapshot_of(room, owned), owned.lease.epoch)
            for room in to_snapshot
            if (owned := self.owned.get(room)) is not None
        }
        if snapshots:
            self.metrics.backend_ops.labels("save_snapshot").inc()
            saved = await self.backend.save_snapshots(snapshots)
            for room, ok in saved.items():
                if not ok:
                    self.metrics.fenced.inc()
                    self.step_down(room, "snapshot refused: a newer owner holds the room")

    def _tick_room(
        self, room: str, owned: OwnedRoom, raw_inputs: Sequence[bytes]
    ) -> StoredEvent | None:
        inputs: list[RoomInput] = owned.pending
        owned.pending = []
        for raw in raw_inputs:
            try:
                inputs.append(decode_input(raw))
            except DecodeError:
                self.metrics.inputs_invalid.inc()
        external, owned.external = owned.external, []
        state = owned.state
        try:
            out = state.apply(inputs, external)
            if not out.items:
                return None
            epoch = owned.lease.epoch
            items = [item.to_wire() for item in out.items]
            frame = encode(Event(room, epoch, out.seq, state.tick, items, time.time()))
        except Exception:
            # A bug or a poisoned input: keep the node and the other rooms going,
            # and rebuild this room from its last good snapshot.
            log.exception("room %s failed at tick %d; reloading it", room, state.tick)
            self.metrics.room_failures.inc()
            self.step_down(room, "tick failed")
            self.tasks.spawn(self._reload(owned.lease), f"reload {room}")
            return None
        owned.last_epoch = epoch
        if out.refused_pods:
            self.metrics.pods_refused.inc(len(out.refused_pods))
        if out.cues and self._on_cues is not None:
            self._on_cues(room, out.cues)
        return StoredEvent(epoch, out.seq, state.tick, frame, encode_tick(inputs, external))

    async def _reload(self, lease: Lease) -> None:
        try:
            self.owned[lease.room] = await self._restore(lease.room, lease)
            self.metrics.rooms_owned.set(len(self.owned))
            if self._on_ownership is not None:
                self._on_ownership(lease.room, True)
        except Exception:
            log.exception("room %s could not be reloaded; releasing it", lease.room)
            await self.backend.release_lease(lease)

    def _snapshot_of(self, room: str, owned: OwnedRoom) -> RoomSnapshot:
        state = owned.state
        view = encode(Snapshot(room, owned.last_epoch, state.seq, state.view()))
        return RoomSnapshot(owned.last_epoch, state.seq, state.snapshot(), view)

    async def _save_snapshot(self, room: str, owned: OwnedRoom) -> None:
        self.metrics.backend_ops.labels("save_snapshot").inc()
        try:
            await self.backend.save_snapshot(
                room, self._snapshot_of(room, owned), owned.lease.epoch
            )
        except Fenced as exc:
            self.metrics.fenced.inc()
            self.step_down(room, f"snapshot refused: {exc.message}")

    def _recover(self, room: str) -> None:
        """Stop ticking ``room`` and rebuild it from the store under the same lease."""
        owned = self.owned.get(room)
        if owned is None or room in self._recovering:
            return
        self.step_down(room, "the backend failed during the tick; reloading the room")
        self._recovering.add(room)
        self.tasks.spawn(self._recover_room(owned.lease), f"recover {room}")

    async def _recover_room(self, lease: Lease) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.lease_ttl_ms / 1000
        try:
            while loop.time() < deadline:
                try:
                    (held,) = await self.backend.renew_leases([lease], self.settings.lease_ttl_ms)
                    if not held:
                        return
                    owned = await self._restore(lease.room, lease)
                except BackendError:
                    await asyncio.sleep(0.1)
                    continue
                if lease.room in self.owned:
                    return
                self.owned[lease.room] = owned
                self.metrics.rooms_owned.set(len(self.owned))
                if self._on_ownership is not None:
                    self._on_ownership(lease.room, True)
                return
        finally:
            self._recovering.discard(lease.room)

    # ------------------------------------------------------------ health
    def _leases_sure(self) -> bool:
        """False once renewals have failed for longer than a lease lives."""
        if not self._renew_failing or self._renewed_at is None:
            return True
        loop = asyncio.get_running_loop()
        margin = self.settings.tick_seconds
        return loop.time() < self._renewed_at + self.settings.lease_ttl_ms / 1000 - margin

    def _set_health(self, healthy: bool, reason: str) -> None:
        if healthy == self.healthy:
            return
        self.healthy = healthy
        self.metrics.degraded.set(0 if healthy else 1)
        if healthy:
            log.info("node %s: the backend works again", self.node_id)
        else:
            log.warning("node %s degraded: %s", self.node_id, reason)
        if self._on_health is not None:
            self._on_health(healthy, reason)

    # ------------------------------------------------------------ leases, idle rooms
    async def _lease_loop(self) -> None:
        interval = self.settings.lease_ttl_ms / 3000
        while True:
            try:
                await self.maintain()
            except BackendError as exc:
                self.metrics.backend_failures.labels("lease").inc()
                (log.warning if self.healthy else log.debug)("lease maintenance failed: %s", exc)
                self._renew_failing = True  # the leases were not confirmed this round
                self._set_health(False, "the shared store is unreachable")
            except Exception:  # a bug: keep the node alive, say so loudly
                log.exception("lease maintenance failed")
                self._renew_failing = True
            await asyncio.sleep(interval)

    async def maintain(self) -> None:
        """Heartbeat, renew leases, clean up dead nodes' members, remove rooms empty
        for too long, adopt orphaned rooms up to the fair share."""
        loop = asyncio.get_running_loop()
        s = self.settings
        if self.owned and loop.time() - self._ticked_at > s.lease_ttl_ms / 1000:
            # The process was stalled (or the tick loop was): let the tick loop
            # run first. Whatever it appends under a lost lease is refused by
            # fencing, and counted; then the renewal below finds the lease gone.
            self._ticked.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ticked.wait(), s.lease_ttl_ms / 1000)
        self.metrics.dreamers.set(sum(len(o.state.dreamers()) for o in self.owned.values()))
        await self.backend.heartbeat(self.node_id, s.node_ttl_ms)
        if self.owned:
            leases = [o.lease for o in self.owned.values()]
            self.metrics.backend_ops.labels("renew").inc()
            started = loop.time()
            results = await self.backend.renew_leases(leases, s.lease_ttl_ms)
            self._renewed_at = started
            for lease, ok in zip(leases, results, strict=True):
                if not ok:
                    self.step_down(lease.room, "lease lost")
        else:
            self._renewed_at = loop.time()
        self._renew_failing = False
        self._set_health(True, "")
        live = set(await self.backend.live_nodes())
        live.add(self.node_id)
        await self._tend_owned(live, loop.time())
        rooms = await self.backend.list_rooms()
        candidates = [r for r in rooms if r not in self.owned and r not in self._recovering]
        owners = await self.backend.owners(candidates)
        orphans = [room for room, lease in owners.items() if lease is None]
        random.shuffle(orphans)  # nodes adopting at once rarely race for the same room
        share = self._share(len(rooms), len(live))
        for room in orphans:
            if len(self.owned) >= share:
                break
            await self.take(room)

    async def _tend_owned(self, live: set[str], now: float) -> None:
        """Members of dead nodes leave; rooms empty for ``room_idle_seconds`` go."""
        presences = await self.backend.presences(list(self.owned))
        for room, members in presences.items():
            owned = self.owned.get(room)
            if owned is None:
                continue
            dead = {m.node for m in members if m.node not in live}
            for member in members:
                if member.node in dead:
                    await self.backend.leave_presence(room, member.session)
            for node in sorted(dead):
                log.info("node %s is gone: its members leave room %s", node, room)
                owned.pending.extend(owned.state.leave_node(node))
            alive = [m for m in members if m.node not in dead]
            busy = owned.state.session_count or owned.state.online_pods
            if busy or alive or owned.pending:
                owned.empty_since = None
                continue
            if owned.empty_since is None:
                owned.empty_since = now
            elif now - owned.empty_since >= self.settings.room_idle_seconds:
                if await self.backend.delete_room(room, owned.lease.epoch):
                    log.info("room %s removed after being empty", room)
                self.step_down(room, "removed while empty")
