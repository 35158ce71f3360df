"""How many rooms each pod may enter: pure, no I/O, no clocks.

A pod is one broker login (its username is its pod id, and the ACL lets it
publish only under that id), so a hostile or broken pod can still name any
room in its topics. Its ``online`` status opens a room nobody runs (room
discovery), and its telemetry joins it to rooms that run. Without a limit,
one pod login fills the deployment's room table in seconds.

How it works: for each pod, the rooms it is in (at most ``per_period`` of
them, the least recently used forgotten first) and the times at which it
entered a room within the last ``period`` seconds. A message for a room the
pod is in passes; a message for another room passes, and enters it, only
while fewer than ``per_period`` rooms were entered within ``period``;
otherwise the ingest drops it and counts it (``room_limit``). A pod that
sleeps in one room all night enters it once, so the limit costs it nothing.

Memory is bounded: ``max_pods`` pods (least recently seen forgotten first),
each with at most ``per_period`` rooms and ``per_period`` entry times.
Every node keeps its own count; with room discovery every node sees every
status, so they agree on which rooms a pod entered first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

__all__ = ["PodRooms"]


@dataclass(slots=True)
class _Pod:
    rooms: OrderedDict[str, None] = field(default_factory=OrderedDict)
    entered: deque[float] = field(default_factory=deque)


class PodRooms:
    """The per-pod room limit: ``per_period`` new rooms per ``period`` seconds."""

    def __init__(self, *, per_period: int, period: float = 3600.0, max_pods: int = 100_000) -> None:
        if per_period < 1 or max_pods < 1 or period <= 0:
            raise ValueError("per_period and max_pods must be >= 1 and period > 0")
        self.per_period = per_period
        self.period = period
        self.max_pods = max_pods
        self._pods: OrderedDict[str, _Pod] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pods)

    def rooms(self, pod: str) -> list[str]:
        """The rooms ``pod`` is in, least recently used first."""
        entry = self._pods.get(pod)
        return [] if entry is None else list(entry.rooms)

    def admit(self, pod: str, room: str, now: float) -> bool:
        """May ``pod`` speak in ``room`` at ``now`` (seconds, any monotonic origin)?"""
        entry = self._pods.get(pod)
        if entry is None:
            entry = self._pods[pod] = _Pod()
            if len(self._pods) > self.max_pods:
                self._pods.popitem(last=False)
        else:
            self._pods.move_to_end(pod)
        if room in entry.rooms:
            entry.rooms.move_to_end(room)
            return True
        entered = entry.entered
        while entered and now - entered[0] >= self.period:
            entered.popleft()
        if len(entered) >= self.per_period:
            return False
        entered.append(now)
        entry.rooms[room] = None
        if len(entry.rooms) > self.per_period:
            entry.rooms.popitem(last=False)
        return True
