"""The backend interface: everything a node shares with other nodes.

A room has exactly one *owner*, the node holding its lease. The owner appends
the room's events, saves its snapshots and drains its inbox; every node reads
the events of the rooms it has clients in. The interface is shaped after
DESIGN.md §4 so the in-memory backend (one node) and the Redis backend (many
nodes) are interchangeable and pass the same conformance suite
(``tests/support/backend_conformance.py``).

Fencing: ``acquire_lease`` returns a new *epoch* on every takeover, and
``append_events`` refuses (raises :class:`Fenced`) any append whose epoch is
not the room's current one, so a paused former owner can never write.

Consume on commit: the inbox carries inputs from any node to the owner.
Reading it (``read_inputs``) removes nothing; an input leaves the inbox only
in the same atomic, fenced operation that stores the event applying it
(``append_many`` with a :class:`Commit` naming the last consumed entry). An
owner whose append is refused (a newer owner took the room while it was
paused) therefore leaves every input it read for the new owner. A push into
a room the store does not know, or into a full inbox, is refused with an
:class:`InputRefused` the sender is told about: no input vanishes unseen.

Templates: a tick record names each template upload by the sha256 of its
text (``inputs``); the text is stored once per room, by digest, in the same
fenced operation as the events naming it (``Commit.templates``), and only
until a snapshot covers those events: saving a snapshot forgets the room's
templates. An owner snapshots only its whole state, after every event it
stored, so no event after a saved snapshot names a forgotten template, and
a room holds at most the templates of the ticks since its last snapshot
(the owner snapshots right after a tick that applied one). The current
narrative lives on in the snapshot itself.

Incarnations: a room's first epoch is derived from the wall clock in
microseconds when the room is created (then +1 per takeover), so a room that
is deleted and created again, or re-created after the store lost its data,
never reuses an (epoch, seq) pair a client may still hold: resuming from such
a pair finds no matching event and gets a resync instead of wrong events.

Retention: an owner retires a room that stayed empty for a while
(:meth:`Backend.retire_room`): its stored events, snapshot and inbox then
live for a retention time, and creating the room again within it resumes
the room where it stopped. ``list_rooms``, leases, inputs and the fair
share see live rooms only. A room that was never used (only joined) is not
worth keeping: its owner retires it with no retention time, which removes
it at once.

Forgetting: an operator's ``forget`` is carried out by the room's owner
(``forget_room``): every key of the room goes at once, fenced by the lease
epoch, whoever is still in it, and a *tombstone* stays for
:data:`FORGOTTEN_TTL_MS` so that the nodes whose clients were in the room
tell them (``room_status`` is ``"forgotten"``) instead of opening the room
again for them. The tombstone holds the room id and nothing else. A retired
room has no owner: its retained keys are erased the same way, without an
epoch, as long as it is still retired (``room_status`` is ``"retired"``).

Nodes send heartbeats; the owner of a room removes the presence of sessions
whose node stopped beating, and nodes take rooms up to a fair share of the
rooms among the live nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

from sleepsync.protocol.errors import SleepSyncError

__all__ = [
    "FORGOTTEN_TTL_MS",
    "Backend",
    "BackendError",
    "Commit",
    "Fenced",
    "InboxEntry",
    "InboxFull",
    "InputRefused",
    "Lease",
    "Member",
    "RoomMissing",
    "RoomSnapshot",
    "RoomStatus",
    "StoredEvent",
]

#: How long a forgotten room's tombstone lasts (ms): longer than any node
#: needs to notice that the room's history vanished and tell its clients.
FORGOTTEN_TTL_MS = 60_000

#: Whether a room is live (``exists``), retired (idle, its state kept for the
#: retention time), or not: never or no longer (``missing``), or erased by an
#: operator within FORGOTTEN_TTL_MS (``forgotten``).
RoomStatus: TypeAlias = Literal["exists", "retired", "missing", "forgotten"]


class BackendError(SleepSyncError):
    """The backend could not do what was asked (connection lost, for example)."""

    code = "backend"


class Fenced(BackendError):
    """An append came from an owner whose lease epoch is no longer current."""

    code = "fenced"


class InputRefused(SleepSyncError, peer=False):
    """An input was not queued for the room's owner; its sender must be told (the
    subclasses say why)."""

    code = "input_refused"


class RoomMissing(InputRefused):
    """The store does not know the room (deleted, or the store lost its data)."""

    code = "room_missing"


class InboxFull(InputRefused):
    """The room's inbox is full: its owner is not keeping up (or there is none yet)."""

    code = "room_busy"


@dataclass(frozen=True, slots=True)
class Lease:
    """Ownership of a room by ``node`` at fencing ``epoch``."""

    room: str
    node: str
    epoch: int


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One room event as stored: its position, the encoded websocket frame, and
    the tick's inputs (``inputs``, for replay by a new owner; never sent to clients).
    """

    epoch: int
    seq: int
    tick: int
    frame: bytes
    inputs: bytes = b""


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One queued input. ``id`` is the backend's position of it, ordered per room."""

    id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    """What one tick of a room stores: its events, at the owner's lease ``epoch``,
    and the inbox entries they applied: every entry up to and including
    ``consumed`` (None: no input was consumed) leaves the inbox in the same
    atomic operation, and only when ``epoch`` is current.
    """

    epoch: int
    events: Sequence[StoredEvent] = ()
    consumed: str | None = None
    #: digest -> text of the templates the events name (stored once per room, see above).
    templates: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    """The owner's saved state of a room after event ``seq`` (epoch of that event).

    ``state`` restores the owner (room state and engine); ``view`` is the
    encoded client-facing snapshot frame at the same point. It covers every
    event up to ``seq``: saving it forgets the room's stored templates.
    """

    epoch: int
    seq: int
    state: bytes
    view: bytes


@dataclass(frozen=True, slots=True)
class Member:
    """One client session in a room, as presence sees it."""

    session: str
    name: str
    role: str
    node: str


class Backend(Protocol):
    """What a node needs from the shared store. All methods may raise BackendError."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    # -- rooms registry
    async def create_room(self, room: str, max_rooms: int) -> bool:
        """Register ``room`` if the deployment holds fewer than ``max_rooms``.

        True when the room exists afterwards (created now or before). A retired
        room that has not expired yet is registered again, its keys kept for
        good again (see :meth:`retire_room`).
        """
        ...

    async def retire_room(self, room: str, epoch: int, keep_ms: int) -> bool:
        """The room went idle: retire it, if ``epoch`` is still current and the room
        is empty (no one in its presence, no input waiting in its inbox).

        Retiring hands the lease back, takes the room off the registry and gives
        every stored key of the room a time to live of ``keep_ms`` (0: they go
        now). A retired room takes no lease and no input; :meth:`create_room`
        brings it back as it was. The store keeps at most ``max_retained``
        retired rooms (a constructor setting): beyond that, those closest to
        expiring go at once.
        """
        ...

    async def list_rooms(self) -> list[str]: ...

    async def keep_registered(self, rooms: Sequence[str]) -> None:
        """Make sure the owner's live ``rooms`` are registered (not retired).

        Owners call it every round: a room created again while its owner was
        retiring it may have been taken off the registry after it came back.
        """
        ...

    async def room_status(self, room: str) -> RoomStatus:
        """Is ``room`` live, retired, missing, or forgotten (a tombstone is left)?"""
        ...

    async def forget_room(self, room: str, epoch: int | None, tombstone_ms: int) -> bool:
        """Erase every key of ``room``, whoever is in it and whatever waits in its
        inbox, take it off the registry and the retired rooms, and leave a
        tombstone for ``tombstone_ms``.

        With an ``epoch``, only while it is still current (the owner's request);
        with None, only while the room is retired (no one owns it). False
        otherwise: fenced, created again, or nothing to erase.
        """
        ...

    # -- ownership
    async def acquire_lease(self, room: str, node: str, ttl_ms: int) -> Lease | None:
        """Take the room when no one holds it; the epoch goes up by one."""
        ...

    async def renew_leases(self, leases: Sequence[Lease], ttl_ms: int) -> list[bool]:
        """Extend each lease still held at its epoch; False where it was lost."""
        ...

    async def release_lease(self, lease: Lease) -> None: ...

    async def owner(self, room: str) -> Lease | None: ...

    async def owners(self, rooms: Sequence[str]) -> dict[str, Lease | None]:
        """:meth:`owner` of many rooms in one round trip."""
        ...

    # -- nodes
    async def heartbeat(self, node: str, ttl_ms: int) -> None:
        """Say ``node`` is alive for the next ``ttl_ms``."""
        ...

    async def live_nodes(self) -> list[str]:
        """Nodes whose last heartbeat has not expired, sorted."""
        ...

    # -- events
    async def append_events(self, room: str, epoch: int, events: Sequence[StoredEvent]) -> None:
        """Append in order; raises Fenced when ``epoch`` is not current."""
        ...

    async def append_many(self, commits: Mapping[str, Commit]) -> dict[str, bool]:
        """Commit many rooms' ticks at once (one round trip); False where fenced.

        Per room, atomically: refuse a stale epoch; store the templates the
        events name (once per digest); append the events; remove the inbox
        entries through ``consumed``.
        """
        ...

    async def read_events(self, room: str, after_seq: int, limit: int) -> list[StoredEvent]:
        """Events with seq > ``after_seq``, oldest first, at most ``limit``."""
        ...

    async def wait_events(
        self, positions: Mapping[str, int], timeout: float, limit: int
    ) -> dict[str, list[StoredEvent]]:
        """Block up to ``timeout`` s until any room has events past its position."""
        ...

    async def first_seq(self, room: str) -> int | None:
        """Seq of the oldest retained event, None when the stream is empty."""
        ...

    async def last_position(self, room: str) -> tuple[int, int]:
        """(epoch, seq) of the newest event, (0, 0) when there is none."""
        ...

    async def last_positions(self, rooms: Sequence[str]) -> dict[str, tuple[int, int]]:
        """:meth:`last_position` of many rooms in one round trip.

        Readers compare it with what they delivered: a stream that is shorter
        than what a node already read was reset (the store lost its data).
        """
        ...

    # -- snapshots
    async def save_snapshot(self, room: str, snapshot: RoomSnapshot, lease_epoch: int) -> None:
        """Store the snapshot and forget the room's templates (it covers them);
        raises Fenced when ``lease_epoch`` is not current."""
        ...

    async def save_snapshots(
        self, snapshots: Mapping[str, tuple[RoomSnapshot, int]]
    ) -> dict[str, bool]:
        """Save (snapshot, lease epoch) for many rooms at once; False where fenced."""
        ...

    async def load_snapshot(self, room: str) -> RoomSnapshot | None: ...

    async def read_templates(self, room: str) -> dict[str, bytes]:
        """digest -> text of the templates the room's events since its last snapshot name."""
        ...

    # -- inbox: inputs for the owner from any node
    async def push_input(self, room: str, data: bytes) -> None:
        """Queue an input; raises RoomMissing (no such room) or InboxFull."""
        ...

    async def read_inputs(self, rooms: Sequence[str], limit: int) -> dict[str, list[InboxEntry]]:
        """The oldest ``limit`` queued inputs per room; nothing is removed (see Commit)."""
        ...

    # -- presence
    async def join_presence(self, room: str, member: Member, capacity: int) -> bool:
        """Add ``member`` if the room has fewer than ``capacity`` members."""
        ...

    async def leave_presence(self, room: str, session: str) -> None: ...

    async def presence(self, room: str) -> list[Member]: ...

    async def presences(self, rooms: Sequence[str]) -> dict[str, list[Member]]:
        """:meth:`presence` of many rooms in one round trip."""
        ...
