"""The rooms of one node: inputs to their owners, and the rooms this node owns.

How it works. :class:`RoomManager` composes small parts and does the I/O
between them and the backend:

- :mod:`.outbox` — local clients' inputs on their way to the owners.
- :mod:`.runner` — one owned room, pure: inputs in, one stored event out.
- :mod:`.scheduler` — which rooms tick when (slots of the tick period).
- :mod:`.ownership` — leases, the node's liveness, fair share, health.
- :mod:`.janitor` — members of dead nodes leave; empty rooms retire (or go
  quickly when they were never used).

Owning. :meth:`RoomManager.take` acquires a room's lease; ``_install`` is the
one way a room becomes owned, for a takeover and for a rebuild alike: it
restores the last snapshot, replays the events stored after it (each keeps
its tick's inputs), and stores a fresh snapshot, fenced, which proves the
lease epoch is still current. A tick that raised, or whose append failed on
the backend, steps the room down and installs it again under the same lease,
so nothing computed but not stored is ever built upon. An append refused for
a stale epoch, or a lease that could not be renewed, steps the node down
from the room at once.

Ticking. Once per slot (see :mod:`.scheduler`) the node reads the inboxes of
the slot's rooms in one backend call, runs each room's tick, and commits all
their events in one call; each commit also removes the inputs its tick
consumed, in the same atomic, fenced operation (consume on commit), so an
owner that lost its lease while paused leaves those inputs to the new owner.
A room is snapshotted every ``snapshot_every`` ticks, and right after a tick
that stored template uploads, so the store forgets their texts at once.

Forgetting. An operator's ``forget`` reaches the owner as a
:class:`~.inputs.ForgetInput` in the inbox. The owner does not tick a room
whose inbox holds one: after the slot's commits it erases the room in one
fenced backend operation (``forget_room``: every key, a tombstone left) and
steps down. Nodes with clients in the room find its history gone and tell
them (see ``Gateway.rejoin``). A retired room has no owner and no client:
the node that got the request erases its retained keys itself
(:meth:`RoomManager.forget_retired`, refused if the room came back).

Inputs. Every input of a local client goes through :meth:`RoomManager.submit`
(:mod:`.outbox`): it is queued for the owner, or refused with an error for
its sender; a node that lost touch registers its members again before it
forwards any more.

Journal (``--journal-dir``): the manager tells its
:class:`~.journal.recorder.JournalKeeper` when a room is installed, when a
tick's events are stored and when the node lets a room go; the keeper
records what the room's engine saw in between.

Many nodes: each maintenance round (every lease TTL / 3) the node beats,
renews its leases, lets the janitor clean up, and adopts unowned rooms up
to its fair share; a room opened by a join is taken by the joining node
when it is under its share, else left to a node that is (and taken anyway
if no one has within one lease TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sleepsync.protocol.errors import DecodeError, SleepSyncError, TooManyRooms
from sleepsync.protocol.telemetry import Cue

from .backend.base import (
    FORGOTTEN_TTL_MS,
    Backend,
    BackendError,
    Commit,
    InboxEntry,
    Lease,
)
from .config import Settings
from .inputs import ExternalInput, ForgetInput, MemberLeave, RoomInput, decode_input
from .janitor import Janitor
from .journal.recorder import JournalKeeper
from .metrics import Metrics
from .outbox import Outbox
from .ownership import HealthSink, Ownership
from .room_state import EngineHooks, RoomState
from .runner import RoomRunner
from .scheduler import Slot, TickScheduler
from .supervisor import Supervisor

__all__ = ["OwnedRoom", "RoomAbsent", "RoomManager"]

log = logging.getLogger("sleepsync.rooms")

INBOX_BATCH = 256
REPLAY_BATCH = 512
#: Bound on external inputs (telemetry) waiting for one room's next tick.
EXTERNAL_QUEUE = 4096
#: Seconds between two polls while waiting for another node to take a room.
POLL = 0.05


class RoomAbsent(SleepSyncError, peer=False):
    """The room does not exist and the caller may not create it."""

    code = "room_absent"


CueSink = Callable[[str, list[Cue]], None]
#: Called with (room, owned) when this node starts or stops owning a room.
OwnershipSink = Callable[[str, bool], None]


@dataclass(eq=False, slots=True)
class OwnedRoom:
    """A room this node owns: its runner, its lease, and what waits for its next tick."""

    runner: RoomRunner
    lease: Lease
    external: list[ExternalInput] = field(default_factory=list)
    external_dropped: int = 0
    #: Leaves the owner adds itself (members of dead nodes), next tick.
    pending: dict[str, MemberLeave] = field(default_factory=dict)

    @property
    def state(self) -> RoomState:
        return self.runner.state


class RoomManager:
    """Routes a node's inputs to room owners, and owns and ticks its rooms."""

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
        clock: Callable[[], float] = time.monotonic,
        journal: JournalKeeper | None = None,
    ) -> None:
        self.backend = backend
        self.journal = journal
        self.tasks = tasks
        self.settings = settings
        self.node_id = node_id
        self.metrics = metrics
        self.hooks = hooks
        self.owned: dict[str, OwnedRoom] = {}
        self.ownership = Ownership(
            backend, settings, node_id, metrics, clock=clock, on_health=on_health
        )
        self.outbox = Outbox(backend, settings, metrics, self.ownership)
        self.janitor = Janitor(settings.room_idle_seconds, settings.unused_room_seconds)
        self._clock = clock
        self._on_cues = on_cues
        self._on_ownership = on_ownership
        self._taking: dict[str, asyncio.Task[bool]] = {}
        self._reinstalling: set[str] = set()
        #: Clock time of the last completed tick, and an event set after each tick.
        self._ticked_at = clock()
        self._ticked = asyncio.Event()

    @property
    def healthy(self) -> bool:
        return self.ownership.healthy

    # ------------------------------------------------------------ inputs
    async def submit(self, room: str, item: RoomInput) -> None:
        """Queue a local client's input for the room's owner (see :mod:`.outbox`).

        Raises an ``InputRefused`` (room unknown, inbox full, node out of
        touch) or ``BackendError`` for the gateway to tell the sender.
        """
        await self.outbox.submit(room, item)

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

    # ------------------------------------------------------------ ownership
    async def open_room(self, room: str, *, create: bool = True) -> bool:
        """Make sure ``room`` exists and has an owner (this node if no one else).

        True when this call created the room; a retired room is not created but
        brought back as it was (see ``Backend.retire_room``). Raises TooManyRooms
        when the deployment is at ``max_rooms``, RoomAbsent when the room does
        not exist and ``create`` is False.
        """
        self.metrics.backend_ops.labels("room_status").inc()
        created = await self.backend.room_status(room) not in ("exists", "retired")
        if created and not create:
            raise RoomAbsent(f"room {room} does not exist")
        self.metrics.backend_ops.labels("create_room").inc()
        if not await self.backend.create_room(room, self.settings.max_rooms):
            raise TooManyRooms(f"the server holds its maximum of {self.settings.max_rooms} rooms")
        if created:
            self.metrics.rooms_created.inc()
        if room in self.owned or await self.backend.owner(room) is not None:
            return created
        if not await self.ownership.under_share(len(self.owned)):
            # Leave the room to a node under its share; take it if no one does in time.
            for _ in range(int(self.settings.lease_ttl_ms / 1000 / POLL)):
                await asyncio.sleep(POLL)
                if room in self.owned or await self.backend.owner(room) is not None:
                    return created
        await self.take(room)
        return created

    async def take(self, room: str) -> bool:
        """Try to become the room's owner; one attempt at a time per room."""
        task = self._taking.get(room)
        if task is None:
            task = self.tasks.spawn(self._take(room), f"take {room}")
            self._taking[room] = task
            task.add_done_callback(lambda _: self._taking.pop(room, None))
        return await asyncio.shield(task)

    async def _take(self, room: str) -> bool:
        if room in self.owned or room in self._reinstalling:
            return room in self.owned
        lease = await self.backend.acquire_lease(room, self.node_id, self.settings.lease_ttl_ms)
        if lease is None:
            return False
        try:
            installed = await self._install(lease)
        except Exception:
            log.exception("could not restore room %s; releasing it", room)
            self.metrics.room_failures.inc()
            await self.backend.release_lease(lease)
            return False
        if installed:
            self.metrics.lease_takeovers.inc()
        return installed

    async def _install(self, lease: Lease) -> bool:
        """Make this node the room's running owner under ``lease``: the only way.

        Restores the last snapshot, replays every event stored after it,
        stores a fresh snapshot (fenced: False when the epoch is no longer
        current) and starts ticking the room. Raises on backend trouble or a
        history that cannot be replayed.
        """
        room = lease.room
        snapshot = await self.backend.load_snapshot(room)
        runner = RoomRunner.open(
            room,
            snapshot,
            epoch=lease.epoch,
            hooks=self.hooks,
            story_tail=self.settings.story_tail,
            capacity=self.settings.room_capacity,
        )
        templates = await self.backend.read_templates(room)
        while tail := await self.backend.read_events(room, runner.state.seq, REPLAY_BATCH):
            for stored in tail:
                runner.replay(stored, templates)
        self.metrics.backend_ops.labels("save_snapshot").inc()
        saved = await self.backend.save_snapshots({room: (runner.snapshot(), lease.epoch)})
        if not saved.get(room):
            self.metrics.fenced.inc()
            log.info("room %s moved on past epoch %d before it was installed", room, lease.epoch)
            return False
        if room in self.owned:
            return True
        self.owned[room] = OwnedRoom(runner, lease)
        if self.journal is not None:
            self.journal.installed(room, runner, lease.epoch)
        self.metrics.rooms_owned.set(len(self.owned))
        if self._on_ownership is not None:
            self._on_ownership(room, True)
        log.info("node %s owns room %s at epoch %d", self.node_id, room, lease.epoch)
        return True

    def _reinstall(self, lease: Lease, reason: str) -> None:
        """Stop ticking the room and install it again from the store, same lease."""
        self.step_down(lease.room, f"{reason}; rebuilding the room from the store")
        if lease.room in self._reinstalling:
            return
        self._reinstalling.add(lease.room)
        self.tasks.spawn(self._reinstall_room(lease), f"reinstall {lease.room}")

    async def _reinstall_room(self, lease: Lease) -> None:
        try:
            for _ in range(max(1, int(self.settings.lease_ttl_ms / 100))):
                try:
                    (held,) = await self.backend.renew_leases([lease], self.settings.lease_ttl_ms)
                    if held:
                        await self._install(lease)
                    return
                except BackendError:
                    await asyncio.sleep(0.1)
        except Exception:
            log.exception("room %s could not be rebuilt; releasing it", lease.room)
            self.metrics.room_failures.inc()
            with contextlib.suppress(BackendError):
                await self.backend.release_lease(lease)
        finally:
            self._reinstalling.discard(lease.room)

    def step_down(self, room: str, reason: str) -> None:
        owned = self.owned.pop(room, None)
        self.janitor.forget(room)
        if self.journal is not None:
            self.journal.let_go(room, clean=False)
        if owned is not None:
            log.warning("node %s steps down from room %s: %s", self.node_id, room, reason)
            self.metrics.rooms_owned.set(len(self.owned))
            if self._on_ownership is not None:
                self._on_ownership(room, False)

    async def release_all(self) -> None:
        """On shutdown: save every room and hand its lease back."""
        owned, self.owned = self.owned, {}
        try:
            await self.backend.save_snapshots(
                {room: (o.runner.snapshot(), o.lease.epoch) for room, o in owned.items()}
            )
            for o in owned.values():
                await self.backend.release_lease(o.lease)
        except BackendError as exc:
            log.warning("could not hand rooms back: %s", exc)
        if self.journal is not None:
            for room in owned:
                self.journal.let_go(room, clean=True)
        for room in owned:
            if self._on_ownership is not None:
                self._on_ownership(room, False)
        self.metrics.rooms_owned.set(0)

    # ------------------------------------------------------------ ticking
    async def run(self) -> None:
        """Tick forever at ``tick_hz`` and keep leases fresh."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._tick_loop())
            tg.create_task(self._maintain_loop())

    async def _tick_loop(self) -> None:
        scheduler = TickScheduler(self.settings.tick_hz, self._clock)
        while True:
            slot = scheduler.next()
            if slot.wait > 0:
                await asyncio.sleep(slot.wait)
            else:
                # Late: still let the gateway and the fan-out run between ticks,
                # or an overloaded node would stop accepting and sending.
                await asyncio.sleep(0)
                self.metrics.tick_lag.set(-slot.wait)
            if slot.skipped:
                self.metrics.ticks_skipped.inc(slot.skipped)
            try:
                with self.metrics.tick_seconds.time():
                    await self.tick_once(slot)
                if slot.every_room:
                    scheduler.caught_up()
            except BackendError as exc:
                self.metrics.backend_failures.labels("tick").inc()
                # One line per outage, not one per tick.
                (log.warning if self.healthy else log.debug)("tick failed on the backend: %s", exc)
                self.ownership.set_health(False, "the shared store is unreachable")
            except Exception:  # a bug: keep the node alive, say so loudly
                log.exception("tick failed")

    async def tick_once(self, slot: Slot | None = None) -> None:
        """Tick the owned rooms of ``slot`` (all when None) once; batch the backend work."""
        if self.owned and not self.ownership.leases_sure():
            for room in list(self.owned):
                self.step_down(room, "the backend is unreachable: the lease may have expired")
        rooms = [room for room in self.owned if slot is None or slot.holds(room)]
        if rooms:
            await self._tick_rooms(rooms)
        self._ticked_at = self._clock()
        self._ticked.set()

    async def _tick_rooms(self, rooms: list[str]) -> None:
        self.metrics.backend_ops.labels("read_inputs").inc()
        inboxes = await self.backend.read_inputs(rooms, INBOX_BATCH)
        commits: dict[str, Commit] = {}
        forgotten: dict[str, ForgetInput] = {}
        to_snapshot: list[str] = []
        now = time.time()
        for room in rooms:
            owned = self.owned.get(room)
            if owned is None:
                continue
            commit = self._tick_room(owned, inboxes.get(room, ()), now)
            if isinstance(commit, ForgetInput):
                forgotten[room] = commit
                continue
            if commit is not None:
                commits[room] = commit
            # A snapshot right after a tick that stored templates lets the store
            # forget them: a room holds no upload longer than one tick.
            if owned.state.tick % self.settings.snapshot_every == 0 or (
                commit is not None and commit.templates
            ):
                to_snapshot.append(room)
        self.metrics.ticks.inc(len(rooms))
        if commits:
            self.metrics.backend_ops.labels("append").inc()
            try:
                results = await self.backend.append_many(commits)
            except BackendError:
                # Unknown whether the events were stored: rebuild these rooms from
                # the store (same lease) before ticking them again.
                for room in commits:
                    if (owned := self.owned.get(room)) is not None:
                        self._reinstall(owned.lease, "the backend failed during the tick")
                raise
            for room, ok in results.items():
                if not ok:
                    self.metrics.fenced.inc()
                    self.step_down(room, "append refused: a newer owner holds the room")
        if self.journal is not None:
            for room in rooms:
                if room in self.owned:  # its events are stored (or it had none)
                    self.journal.stored(room)
        await self._save_snapshots(to_snapshot)
        for room, request in forgotten.items():
            await self._forget(room, request)

    async def forget_retired(self, room: str, operator: str) -> bool:
        """Erase ``room`` now if it is retired: no owner runs it to do so.

        False when it is not retired (live, missing, or created again meanwhile):
        a live room is erased by its owner (a :class:`~.inputs.ForgetInput`).
        """
        self.metrics.backend_ops.labels("forget_room").inc()
        if not await self.backend.forget_room(room, None, FORGOTTEN_TTL_MS):
            return False
        log.warning("retired room %s erased at the request of operator %s", room, operator)
        self.metrics.rooms_removed.labels("forgotten").inc()
        if self.journal is not None:
            self.journal.forget(room)
        return True

    async def _forget(self, room: str, request: ForgetInput) -> None:
        """Erase the room at an operator's request (fenced), and let go of it."""
        owned = self.owned.get(room)
        if owned is None:
            return
        self.metrics.backend_ops.labels("forget_room").inc()
        if await self.backend.forget_room(room, owned.lease.epoch, FORGOTTEN_TTL_MS):
            log.warning("room %s erased at the request of operator %s", room, request.name)
            self.metrics.rooms_removed.labels("forgotten").inc()
            self.step_down(room, "forgotten")
            if self.journal is not None:
                self.journal.forget(room)  # its recorded nights go with it
        else:
            self.metrics.fenced.inc()
            self.step_down(room, "forget refused: a newer owner holds the room")

    def _tick_room(
        self, owned: OwnedRoom, entries: Sequence[InboxEntry], now: float
    ) -> Commit | ForgetInput | None:
        """One room's tick: the commit to store, or the request to erase the room
        instead (the inputs with it are erased with the room)."""
        inputs: list[RoomInput] = list(owned.pending.values())
        owned.pending = {}
        for entry in entries:
            try:
                item = decode_input(entry.data)
            except DecodeError:
                self.metrics.inputs_invalid.inc()
                continue
            if isinstance(item, ForgetInput):
                return item
            inputs.append(item)
        external, owned.external = owned.external, []
        consumed = entries[-1].id if entries else None
        epoch = owned.lease.epoch
        try:
            result = owned.runner.tick(inputs, external, now)
        except Exception:
            # A bug or a poisoned input: keep the node and the other rooms going,
            # and rebuild this room from the store. The inputs of this tick would
            # fail it again: they are consumed, and said so here.
            log.exception(
                "room %s failed at tick %d; dropping its %d inputs and rebuilding it",
                owned.runner.room,
                owned.state.tick,
                len(entries),
            )
            self.metrics.room_failures.inc()
            self._reinstall(owned.lease, "tick failed")
            return None if consumed is None else Commit(epoch, (), consumed)
        if result.refused_pods:
            self.metrics.pods_refused.inc(result.refused_pods)
        if result.cues and self._on_cues is not None:
            self._on_cues(owned.runner.room, result.cues)
        if result.stored is None and consumed is None:
            return None
        stored = [] if result.stored is None else [result.stored]
        return Commit(epoch, stored, consumed, result.templates)

    async def _save_snapshots(self, rooms: list[str]) -> None:
        snapshots = {
            room: (owned.runner.snapshot(), owned.lease.epoch)
            for room in rooms
            if (owned := self.owned.get(room)) is not None
        }
        if not snapshots:
            return
        self.metrics.backend_ops.labels("save_snapshot").inc()
        saved = await self.backend.save_snapshots(snapshots)
        for room, ok in saved.items():
            if not ok:
                self.metrics.fenced.inc()
                self.step_down(room, "snapshot refused: a newer owner holds the room")

    # ------------------------------------------------------------ maintenance
    async def _maintain_loop(self) -> None:
        interval = self.settings.lease_ttl_ms / 3000
        while True:
            try:
                await self.maintain()
            except BackendError as exc:
                self.metrics.backend_failures.labels("lease").inc()
                (log.warning if self.healthy else log.debug)("lease maintenance failed: %s", exc)
                self.ownership.renewal_failed("the shared store is unreachable")
            except Exception:  # a bug: keep the node alive, say so loudly
                log.exception("lease maintenance failed")
                self.ownership.renewal_failed("maintenance failed")
            await asyncio.sleep(interval)

    async def maintain(self) -> None:
        """One round: heartbeat, renew leases, register this node's members again
        where needed, clean up after dead nodes and empty rooms, adopt orphans."""
        s = self.settings
        if self.owned and self._clock() - self._ticked_at > s.lease_ttl_ms / 1000:
            # The process was stalled (or the tick loop was): let the tick loop
            # run first. Whatever it appends under a lost lease is refused by
            # fencing, and counted; then the renewal below finds the lease gone.
            self._ticked.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ticked.wait(), s.lease_ttl_ms / 1000)
        self.metrics.dreamers.set(sum(len(o.state.dreamers()) for o in self.owned.values()))
        lapsed = self.ownership.lapsed()
        beat_at = await self.ownership.beat()
        for lease in await self.ownership.renew([o.lease for o in self.owned.values()]):
            self.step_down(lease.room, "lease lost")
        await self.backend.keep_registered(list(self.owned))
        rooms = await self.backend.list_rooms()
        await self.outbox.register(set(rooms), force=lapsed)
        self.ownership.confirm(beat_at)
        self.outbox.registered()
        await self.outbox.send_leaves()
        live = await self.ownership.live_nodes()
        await self._sweep(live)
        share = self.ownership.share(len(rooms), len(live))
        skip = set(self.owned) | self._reinstalling
        for room in await self.ownership.orphans(rooms, skip):
            if len(self.owned) >= share:
                break
            await self.take(room)

    async def _sweep(self, live: set[str]) -> None:
        """Carry out the janitor's round over the owned rooms."""
        presences = await self.backend.presences(list(self.owned))
        states = {room: o.state for room, o in self.owned.items()}
        pending = {room: len(o.pending) for room, o in self.owned.items()}
        sweep = self.janitor.sweep(self._clock(), live, states, presences, pending)
        for room, leaves in sweep.leaves.items():
            owned = self.owned.get(room)
            if owned is not None:
                owned.pending.update((leave.session, leave) for leave in leaves)
        for room, nodes in sweep.dead.items():
            log.info("node(s) %s gone: their members leave room %s", ", ".join(nodes), room)
        for room, sessions in sweep.gone.items():
            for session in sessions:
                await self.backend.leave_presence(room, session)
        for room in sweep.unused:
            owned = self.owned.get(room)
            # Retired with no retention time: removed at once, nothing of it kept.
            if owned is not None and await self.backend.retire_room(room, owned.lease.epoch, 0):
                log.info("room %s removed: empty, and never held a line, template or pod", room)
                self.metrics.rooms_removed.labels("unused").inc()
                self.step_down(room, "removed while empty")
        keep_ms = self.settings.retention_ms
        for room in sweep.idle:
            owned = self.owned.get(room)
            if owned is None:
                continue
            # Its last state is stored; the snapshot right before lets a comeback
            # start from it instead of replaying the whole retained stream.
            await self._save_snapshots([room])
            if room in self.owned and await self.backend.retire_room(
                room, owned.lease.epoch, keep_ms
            ):
                self.metrics.rooms_retired.inc()
                log.info(
                    "room %s is idle: stored for %g h unless someone joins again",
                    room,
                    self.settings.retention_hours,
                )
                self.step_down(room, "idle")
