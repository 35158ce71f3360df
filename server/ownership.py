"""What a node knows about its standing among the nodes: leases, liveness, share, health.

How it works. A node owns a room while it holds the room's lease (see
``backend.base``); the room manager renews all its leases in one call each
lease TTL / 3, together with the node's heartbeat. This module keeps the
bookkeeping around those calls, on a clock it is given:

- **Leases sure.** A renewal that fails leaves the node unsure of its leases;
  once the last good renewal is older than a lease TTL (minus a tick of
  margin), another node may hold them: :meth:`Ownership.leases_sure` turns
  False and the node stops ticking its rooms. A renewal that merely did not
  run (a paused process) is not a failure: the node ticks on and fencing
  refuses whatever it appends under a lost lease.
- **Lapsed.** The node's heartbeat says "alive for a node TTL". When the last
  confirmed heartbeat is older than that, other nodes may have counted this
  node dead and removed its members from its rooms: :meth:`Ownership.lapsed`
  is True until the node has beaten again *and* registered its members again
  (the room manager calls :meth:`Ownership.confirm` when both are done).
- **Fair share.** A node owns at most ``ceil(rooms / live nodes) + slack``
  rooms; it adopts orphans (rooms without a lease) up to that, in random
  order so nodes adopting at once rarely race for the same room.
- **Health.** A failing backend makes the node degraded (``on_health``);
  a successful renewal makes it healthy again.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Collection, Sequence

from .backend.base import Backend, Lease
from .config import Settings
from .metrics import Metrics

__all__ = ["HealthSink", "Ownership"]

log = logging.getLogger("sleepsync.ownership")

#: Called with (healthy, reason) when the backend fails or works again.
HealthSink = Callable[[bool, str], None]


class Ownership:
    """Leases, liveness, fair share and health of one node, timed by ``clock``."""

    def __init__(
        self,
        backend: Backend,
        settings: Settings,
        node_id: str,
        metrics: Metrics,
        *,
        clock: Callable[[], float],
        on_health: HealthSink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.node_id = node_id
        self.metrics = metrics
        self._clock = clock
        self._on_health = on_health
        self._rng = rng or random.Random()
        self.healthy = True
        #: Clock time at the start of the last successful renewal.
        self._renewed_at: float | None = None
        self._renew_failing = False
        #: Clock time at the start of the last heartbeat after which the node's
        #: members were known to be registered.
        self._confirmed_at: float | None = None

    # ------------------------------------------------------------ liveness
    async def beat(self) -> float:
        """Send the node's heartbeat; returns the clock time it was sent at."""
        started = self._clock()
        await self.backend.heartbeat(self.node_id, self.settings.node_ttl_ms)
        return started

    def lapsed(self) -> bool:
        """Whether other nodes may count this node dead (its heartbeat expired)."""
        if self._confirmed_at is None:
            return False
        margin = self.settings.tick_seconds
        return self._clock() > self._confirmed_at + self.settings.node_ttl_ms / 1000 - margin

    def confirm(self, beat_at: float) -> None:
        """The heartbeat sent at ``beat_at`` went through and the node's members
        are registered: the node is in touch again."""
        if self._confirmed_at is None or beat_at > self._confirmed_at:
            self._confirmed_at = beat_at

    async def live_nodes(self) -> set[str]:
        """The live nodes, this one included."""
        return {*await self.backend.live_nodes(), self.node_id}

    # ------------------------------------------------------------ leases
    async def renew(self, leases: Sequence[Lease]) -> list[Lease]:
        """Renew every lease; returns the ones that were lost."""
        started = self._clock()
        lost: list[Lease] = []
        if leases:
            self.metrics.backend_ops.labels("renew").inc()
            results = await self.backend.renew_leases(leases, self.settings.lease_ttl_ms)
            lost = [lease for lease, ok in zip(leases, results, strict=True) if not ok]
        self._renewed_at = started
        self._renew_failing = False
        self.set_health(True, "")
        return lost

    def renewal_failed(self, reason: str) -> None:
        """The leases were not confirmed this round."""
        self._renew_failing = True
        self.set_health(False, reason)

    def leases_sure(self) -> bool:
        """False once renewals have failed for longer than a lease lives."""
        if not self._renew_failing or self._renewed_at is None:
            return True
        margin = self.settings.tick_seconds
        return self._clock() < self._renewed_at + self.settings.lease_ttl_ms / 1000 - margin

    # ------------------------------------------------------------ fair share
    def share(self, rooms: int, live: int) -> int:
        """The most rooms one node should own."""
        return math.ceil(rooms / max(1, live)) + self.settings.room_share_slack

    async def under_share(self, owned: int) -> bool:
        """Whether this node, owning ``owned`` rooms, may take one more."""
        live = len(await self.live_nodes())
        if live <= 1:
            return True
        return owned < self.share(len(await self.backend.list_rooms()), live)

    async def orphans(self, rooms: Collection[str], skip: Collection[str]) -> list[str]:
        """Rooms of ``rooms`` (but not of ``skip``) that no node holds, shuffled."""
        candidates = [room for room in rooms if room not in skip]
        owners = await self.backend.owners(candidates)
        orphans = [room for room, lease in owners.items() if lease is None]
        self._rng.shuffle(orphans)
        return orphans

    # ------------------------------------------------------------ health
    def set_health(self, healthy: bool, reason: str) -> None:
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
