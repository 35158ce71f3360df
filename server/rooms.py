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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sleepsync.protocol.codec import encode
from sleepsync.protocol.errors import DecodeError, TooManyRooms
from sleepsync.protocol.messages import Event, Snapshot
from sleepsync.protocol.telemetry import Cue

from .backend.base import Backend, BackendError, Lease, RoomSnapshot, StoredEvent
from .config import Settings
from .inputs import ExternalInput, RoomInput, decode_input, decode_tick, encode_tick
from .metrics import Metrics
from .room_state import EngineHooks, RoomState
from .tasks import spawn

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


CueSink = Callable[[str, list[Cue]], None]
#: Called with (room, owned) when this node starts or stops owning a room.
OwnershipSink = Callable[[str, bool], None]


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
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.node_id = node_id
        self.metrics = metrics
        self.hooks = hooks
        self.owned: dict[str, OwnedRoom] = {}
        self._on_cues = on_cues
        self._on_ownership = on_ownership
        self._taking: dict[str, asyncio.Task[bool]] = {}
        self.ticks_run = 0

    # ------------------------------------------------------------ ownership
    async def open_room(self, room: str) -> None:
        """Make sure ``room`` exists and has an owner (this node if no one else).

        Raises TooManyRooms when the deployment is at ``max_rooms``.
        """
        self.metrics.backend_ops.labels("create_room").inc()
        if not await self.backend.create_room(room, self.settings.max_rooms):
            raise TooManyRooms(f"the server holds its maximum of {self.settings.max_rooms} rooms")
        if room not in self.owned and await self.backend.owner(room) is None:
            await self.take(room)

    async def take(self, room: str) -> bool:
        """Try to become the room's owner; one attempt at a time per room."""
        task = self._taking.get(room)
        if task is None:
            task = asyncio.ensure_future(self._take(room))
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
        loop = asyncio.get_running_loop()
        period = self.settings.tick_seconds
        deadline = loop.time()
        while True:
            deadline += period
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.metrics.tick_lag.set(-delay)
                if -delay > period:
                    missed = int(-delay / period)
                    deadline += missed * period
                    self.metrics.ticks_skipped.inc(missed)
            try:
                with self.metrics.tick_seconds.time():
                    await self.tick_once()
            except BackendError as exc:
                self.metrics.backend_failures.labels("tick").inc()
                log.warning("tick failed on the backend: %s", exc)

    async def tick_once(self) -> None:
        """Tick every owned room once; batch the backend work."""
        if not self.owned:
            return
        rooms = list(self.owned)
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
        self.ticks_run += 1
        self.metrics.ticks.inc(len(rooms))
        if batches:
            self.metrics.backend_ops.labels("append").inc()
            results = await self.backend.append_many(batches)
            for room, ok in results.items():
                if not ok:
                    self.metrics.fenced.inc()
                    self.step_down(room, "append refused: a newer owner holds the room")
        for room in to_snapshot:
            owned = self.owned.get(room)
            if owned is not None:
                await self._save_snapshot(room, owned)

    def _tick_room(
        self, room: str, owned: OwnedRoom, raw_inputs: Sequence[bytes]
    ) -> StoredEvent | None:
        inputs: list[RoomInput] = []
        for raw in raw_inputs:
            try:
                inputs.append(decode_input(raw))
            except DecodeError:
                self.metrics.inputs_invalid.inc()
        external, owned.external = owned.external, []
        state = owned.state
        try:
            out = state.apply(inputs, external)
            if out.rejected:
                out.items.extend(
                    {"kind": "template_rejected", "name": name, "reason": reason}
                    for name, reason in out.rejected
                )
                if not out.seq:
                    state.seq += 1
                    out.seq = state.seq
            if not out.items:
                return None
            epoch = owned.lease.epoch
            frame = encode(Event(room, epoch, out.seq, state.tick, out.items))
        except Exception:
            # A bug or a poisoned input: keep the node and the other rooms going,
            # and rebuild this room from its last good snapshot.
            log.exception("room %s failed at tick %d; reloading it", room, state.tick)
            self.metrics.room_failures.inc()
            self.step_down(room, "tick failed")
            spawn(self._reload(owned.lease), f"reload {room}")
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

    async def _save_snapshot(self, room: str, owned: OwnedRoom) -> None:
        state = owned.state
        view = encode(Snapshot(room, owned.last_epoch, state.seq, state.view()))
        snapshot = RoomSnapshot(owned.last_epoch, state.seq, state.snapshot(), view)
        self.metrics.backend_ops.labels("save_snapshot").inc()
        try:
            await self.backend.save_snapshot(room, snapshot, owned.lease.epoch)
        except BackendError as exc:
            self.metrics.fenced.inc()
            self.step_down(room, f"snapshot refused: {exc.message}")

    # ------------------------------------------------------------ leases, idle rooms
    async def _lease_loop(self) -> None:
        interval = self.settings.lease_ttl_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                await self.maintain()
            except BackendError as exc:
                self.metrics.backend_failures.labels("lease").inc()
                log.warning("lease maintenance failed: %s", exc)

    async def maintain(self) -> None:
        """Renew leases, remove rooms empty for too long, adopt orphaned rooms."""
        loop = asyncio.get_running_loop()
        if self.owned:
            leases = [o.lease for o in self.owned.values()]
            self.metrics.backend_ops.labels("renew").inc()
            results = await self.backend.renew_leases(leases, self.settings.lease_ttl_ms)
            for lease, ok in zip(leases, results, strict=True):
                if not ok:
                    self.step_down(lease.room, "lease lost")
        now = loop.time()
        for room, owned in list(self.owned.items()):
            busy = owned.state.session_count or owned.state.online_pods
            if busy or await self.backend.presence(room):
                owned.empty_since = None
                continue
            if owned.empty_since is None:
                owned.empty_since = now
            elif now - owned.empty_since >= self.settings.room_idle_seconds:
                if await self.backend.delete_room(room, owned.lease.epoch):
                    log.info("room %s removed after being empty", room)
                self.step_down(room, "removed while empty")
        for room in await self.backend.list_rooms():
            if room not in self.owned and await self.backend.owner(room) is None:
                await self.take(room)
