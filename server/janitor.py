"""The owner's clean-up rules: members of dead nodes leave, empty rooms retire
(or go, when they were never used).

How it works. Each maintenance round the room manager hands the janitor the
rooms it owns (their state), their presence, the live nodes and the time;
the janitor answers with a :class:`Sweep` that the manager carries out. It
is pure: no backend, no clock of its own.

- **Dead nodes.** A session whose node is not live (its heartbeats stopped
  for a node TTL) leaves: its presence entry goes, and a ``MemberLeave``
  joins the room's next tick. The sessions are found in the room's state,
  not only in presence, so a leave that was lost (the tick failed and the
  room was rebuilt from the store) is found and sent again next round.
- **Idle rooms.** A room with no session, no online pod, no live presence
  and no leave pending is empty; empty for ``idle_seconds`` it is idle: the
  owner retires it (``Backend.retire_room``): it lets go of the room, whose
  stored state is kept for the retention time, then expires.
- **Unused rooms.** A room that never held a story line, a template or a
  pod (``RoomState.used``) was only joined: empty for ``unused_seconds``
  (much shorter; never longer than ``idle_seconds``) it is removed, not
  retired: nothing of it is worth keeping, and cycling joins through new
  room names can fill neither the room table nor the retired rooms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .backend.base import Member
from .inputs import MemberLeave
from .room_state import RoomState

__all__ = ["Janitor", "Sweep"]


@dataclass(slots=True)
class Sweep:
    """What the owner does after one round."""

    #: room -> leaves for the sessions of dead nodes, for the room's next tick.
    leaves: dict[str, list[MemberLeave]] = field(default_factory=dict)
    #: room -> presence entries (sessions) of dead nodes to remove.
    gone: dict[str, list[str]] = field(default_factory=dict)
    #: rooms empty for long enough: retire them.
    idle: list[str] = field(default_factory=list)
    #: rooms never used, empty for long enough: remove them (not retired).
    unused: list[str] = field(default_factory=list)
    #: room -> the dead nodes whose members leave (for the log).
    dead: dict[str, list[str]] = field(default_factory=dict)


class Janitor:
    """Finds members of dead nodes, and rooms left empty for ``idle_seconds``
    (``unused_seconds`` when they were never used)."""

    def __init__(self, idle_seconds: float, unused_seconds: float | None = None) -> None:
        self.idle_seconds = idle_seconds
        #: None: a room never used goes idle like any other.
        self.unused_seconds = unused_seconds
        self._empty_since: dict[str, float] = {}

    def sweep(
        self,
        now: float,
        live: Sequence[str] | set[str],
        rooms: Mapping[str, RoomState],
        presences: Mapping[str, Sequence[Member]],
        pending: Mapping[str, int],
    ) -> Sweep:
        """One round over the owned ``rooms``; ``pending``: leaves queued per room."""
        alive_nodes = set(live)
        out = Sweep()
        for room, state in rooms.items():
            members = presences.get(room, ())
            dead = sorted((state.nodes() | {m.node for m in members}) - alive_nodes)
            leaves = [MemberLeave(s) for node in dead for s in state.sessions_on(node)]
            gone = [m.session for m in members if m.node in dead]
            if leaves:
                out.leaves[room] = leaves
            if gone:
                out.gone[room] = gone
            if leaves or gone:
                out.dead[room] = dead
            alive = any(m.node not in dead for m in members)
            busy = state.session_count or state.online_pods or alive or pending.get(room)
            if busy or leaves:
                self._empty_since.pop(room, None)
                continue
            since = self._empty_since.setdefault(room, now)
            if self.unused_seconds is not None and not state.used:
                if now - since >= min(self.unused_seconds, self.idle_seconds):
                    out.unused.append(room)
            elif now - since >= self.idle_seconds:
                out.idle.append(room)
        return out

    def forget(self, room: str) -> None:
        """The room is no longer owned here."""
        self._empty_since.pop(room, None)
