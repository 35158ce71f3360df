"""Inputs of this node's clients on their way to the rooms' owners.

How it works. Every input a local client sends (join, leave, story line,
template) goes through :meth:`Outbox.submit`, which either queues it in the
room's inbox or raises an ``InputRefused`` the gateway turns into an error
for the sender: an input is applied or answered, never dropped unseen.

- **Out of touch.** While this node's heartbeat may have expired (see
  :meth:`.ownership.Ownership.lapsed`), other nodes may have counted it dead
  and removed its members from their rooms; inputs forwarded now would come
  from sessions the rooms no longer know. ``submit`` waits (a lease TTL at
  most) until the node is in touch again and has registered its members
  again, else refuses with :class:`NodeLapsed`.
- **Registering again.** The outbox remembers the join of every local
  session. Each maintenance round, :meth:`Outbox.register` reads the
  presence of those rooms: a member presence lost is joined again (presence
  and a ``MemberJoin``) at once after a lapse, otherwise when it is missing
  on two rounds in a row (a single miss may be a leave on its way).
- **Leaves.** A leave never raises: one that cannot be sent now (the store
  is down, the inbox full) waits in a bounded queue and is sent again each
  round, so a member who left does not linger in the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .backend.base import Backend, BackendError, InputRefused, Member, RoomMissing
from .config import Settings
from .inputs import MemberJoin, MemberLeave, RoomInput, encode_input
from .metrics import Metrics
from .ownership import Ownership

__all__ = ["NodeLapsed", "Outbox"]

log = logging.getLogger("sleepsync.outbox")

#: Bound on leaves waiting to be sent again after a failure.
UNSENT_LEAVES = 10_000
#: What sending an input may raise that the sender (or a retry) has to handle.
SendErrors = (InputRefused, BackendError)


class NodeLapsed(InputRefused):
    """This node lost touch with the others for longer than its heartbeat lives."""

    code = "node_lapsed"


class Outbox:
    """Sends a node's inputs to room owners; keeps its members registered."""

    def __init__(
        self, backend: Backend, settings: Settings, metrics: Metrics, ownership: Ownership
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.metrics = metrics
        self.ownership = ownership
        #: The joins of this node's sessions, per room; presence misses seen last round.
        self._members: dict[str, dict[str, MemberJoin]] = {}
        self._missing: set[tuple[str, str]] = set()
        self._unsent_leaves: dict[tuple[str, str], MemberLeave] = {}
        #: Set (and replaced) after each round that confirmed the node's registration.
        self._registered = asyncio.Event()

    async def submit(self, room: str, item: RoomInput) -> None:
        """Queue ``item`` for the room's owner.

        Raises an ``InputRefused`` (room unknown, inbox full, node out of
        touch) or ``BackendError`` for the sender to be told. A leave never
        raises: one that cannot be sent now is sent again later.
        """
        if isinstance(item, MemberJoin):
            self._members.setdefault(room, {})[item.session] = item
        elif isinstance(item, MemberLeave):
            self._forget(room, item.session)
            try:
                await self._push(room, item)
            except SendErrors:
                self._keep(room, item)
            return
        await self._push(room, item)

    async def _push(self, room: str, item: RoomInput) -> None:
        if self.ownership.lapsed():
            await self._until_registered()
        self.metrics.backend_ops.labels("push_input").inc()
        try:
            await self.backend.push_input(room, encode_input(item))
        except RoomMissing:
            if not isinstance(item, MemberLeave):
                raise  # (a leave from a room that is gone has nothing left to do)

    async def _until_registered(self) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + self.settings.lease_ttl_ms / 1000
        while self.ownership.lapsed():
            remaining = end - loop.time()
            if remaining <= 0:
                raise NodeLapsed(
                    "this server lost touch with the others for a moment; send it again"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._registered.wait(), remaining)

    def _forget(self, room: str, session: str) -> None:
        members = self._members.get(room)
        if members is not None:
            members.pop(session, None)
            if not members:
                del self._members[room]

    def _keep(self, room: str, leave: MemberLeave) -> None:
        if len(self._unsent_leaves) >= UNSENT_LEAVES:
            log.error("too many leaves waiting to be sent; %s stays in %s", leave.session, room)
            return
        self._unsent_leaves[(room, leave.session)] = leave

    # ------------------------------------------------------------ each round
    async def register(self, rooms: set[str], *, force: bool) -> None:
        """Join this node's members of ``rooms`` (the existing ones) again where
        presence lost them: at once when ``force`` (after a lapse), else when
        missing on two rounds in a row."""
        local = [room for room in self._members if room in rooms]
        presences = await self.backend.presences(local) if local else {}
        missing: set[tuple[str, str]] = set()
        for room in local:
            present = {m.session for m in presences.get(room, ())}
            missing.update((room, s) for s in self._members.get(room, {}) if s not in present)
        again = missing if force else missing & self._missing
        self._missing = missing - again
        for room, session in sorted(again):
            join = self._members.get(room, {}).get(session)
            if join is not None:
                await self._join_again(room, join)

    async def _join_again(self, room: str, join: MemberJoin) -> None:
        log.info("registering %s in room %s again (this node was out of touch)", join.session, room)
        member = Member(join.session, join.name, join.role, join.node)
        if not await self.backend.join_presence(room, member, self.settings.room_capacity):
            log.warning("room %s is full now: %s could not come back", room, join.session)
            return
        self.metrics.backend_ops.labels("push_input").inc()
        try:
            await self.backend.push_input(room, encode_input(join))
        except InputRefused as exc:  # the next round tries again
            log.warning("could not register %s in room %s again: %s", join.session, room, exc)
            await self.backend.leave_presence(room, join.session)

    def registered(self) -> None:
        """The node's members are registered after a heartbeat: wake waiting inputs."""
        self._registered.set()
        self._registered = asyncio.Event()

    async def send_leaves(self) -> None:
        """Send again the leaves that could not be sent; stop at the first failure."""
        for key, leave in list(self._unsent_leaves.items()):
            try:
                await self._push(key[0], leave)
            except SendErrors as exc:
                log.debug("a leave from %s still waits: %s", key[0], exc)
                return
            del self._unsent_leaves[key]
