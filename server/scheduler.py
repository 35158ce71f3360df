"""When each owned room ticks: slots of the tick period, given a clock.

How it works. One tick period (``1 / tick_hz``) is split into up to
:data:`MAX_SLOTS` slots, each at least :data:`MIN_SLOT_S` long. A room ticks
in its own slot (a stable hash of its id), not all rooms at the same
instant: a node with many rooms then writes a steady stream of frames
instead of one burst per period, which keeps fan-out latency low.

:meth:`TickScheduler.next` says which slot is due next and how long to wait
for it. A late slot is due at once (the caller still yields to the event
loop, so an overloaded node keeps accepting and sending). After a stall
longer than a whole period (a paused process, a long GC), the slots missed
are skipped, counted, and every room ticks once at once; :meth:`caught_up`
then starts the next period one period after that tick, at slot 0, so no
room ticks twice in a period. The scheduler holds no task and never sleeps:
the clock is an argument, and tests move it by hand.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MAX_SLOTS", "MIN_SLOT_S", "Slot", "TickScheduler", "room_slot", "tick_slots"]

#: Shortest interval between two tick slots, in seconds.
MIN_SLOT_S = 0.005
#: Most slots a tick period is split into.
MAX_SLOTS = 16


def tick_slots(tick_hz: float) -> int:
    """How many slots one tick period is split into."""
    return max(1, min(MAX_SLOTS, int(1.0 / (tick_hz * MIN_SLOT_S))))


def room_slot(room: str, slots: int) -> int:
    """The slot of ``room``: stable on every node and every run."""
    return zlib.crc32(room.encode()) % slots


@dataclass(frozen=True, slots=True)
class Slot:
    """A due slot: ``index`` of ``of`` slots (``of == 1``: every room ticks)."""

    index: int
    of: int
    #: Seconds until the slot is due; negative when it is late by that much.
    wait: float
    #: Slots skipped because the process stalled for longer than a period.
    skipped: int = 0

    @property
    def every_room(self) -> bool:
        return self.of == 1

    def holds(self, room: str) -> bool:
        """Whether ``room`` ticks in this slot."""
        return self.of == 1 or room_slot(room, self.of) == self.index


class TickScheduler:
    """Slot arithmetic for ticking rooms at ``tick_hz`` by ``clock`` (seconds)."""

    def __init__(self, tick_hz: float, clock: Callable[[], float]) -> None:
        self.slots = tick_slots(tick_hz)
        self.step = 1.0 / tick_hz / self.slots
        self._clock = clock
        self._deadline = clock()
        self._slot = 0

    def next(self) -> Slot:
        """The next slot to tick and how long until it is due."""
        self._deadline += self.step
        self._slot = (self._slot + 1) % self.slots
        wait = self._deadline - self._clock()
        if wait >= -self.step * self.slots:
            return Slot(self._slot, self.slots, wait)
        missed = int(-wait / self.step)
        self._deadline += missed * self.step
        self._slot = (self._slot + missed) % self.slots
        return Slot(0, 1, wait, missed)

    def caught_up(self) -> None:
        """Every room just ticked (a :attr:`Slot.every_room` slot): the next
        period starts one period from now, at slot 0."""
        self._deadline = self._clock() + self.step * (self.slots - 1)
        self._slot = self.slots - 1
