# ruff: noqa: RUF002  (the model is written in its own notation)
"""The storytelling circle: turns among the present dreamers that lift the room.

A circle is opened by recovery (when the room collapses) or by a member:
a story line whose text is ``/circle`` opens one (the opener speaks first).
Turns go round the present dreamers that can speak, in name order: people
who joined as dreamers, never pods (a pod streams telemetry and cannot tell
a line, so a turn handed to it would only run out). Recovery opens no circle
in a room with nobody to speak. Each turn lasts at most ``circle_turn_s``.
While a circle is open:

- a story line from the dreamer whose turn it is *lifts* the room (every
  dreamer: valence += lift·(1 − v), arousal −= lift/2·a), which raises
  balance and so counts toward recovery, and passes the turn on;
- ``/pass`` from the turn holder passes the turn without a lift;
- ``/circle close`` from any member closes it;
- a command that cannot apply (``/pass`` out of turn or with no circle,
  ``/circle`` while one is open, ``/circle close`` with none) is refused:
  the engine returns a :class:`~.api.Refusal` the room answers to its sender;
- other lines are ignored here (the room runtime already shows every line
  as ``said``; the engine never echoes story text).

It closes when a member closes it, when the room is stable again (circles
opened by recovery), after ``circle_max_s`` (member circles, and recovery
circles once the room is stable), or when nobody who can speak is left.
"""

from __future__ import annotations

from bisect import bisect_right

from sleepsync.protocol.events import CircleClosed, CircleOpened, CircleTurn, EventItem
from sleepsync.protocol.wire import WireMap

__all__ = ["Circle", "parse_command"]


def parse_command(text: str) -> str | None:
    """``"open"``, ``"close"``, ``"pass"`` for circle commands, else None."""
    words = text.strip().lower().split()
    if not words:
        return None
    if words[0] == "/circle":
        if len(words) == 1 or words[1] == "open":
            return "open"
        if words[1] in ("close", "end"):
            return "close"
        return None
    if words[0] == "/pass":
        return "pass"
    return None


class Circle:
    """An open circle; the engine holds ``None`` when no circle is open."""

    __slots__ = ("holder", "opened", "opened_by", "told", "turn_since")

    def __init__(self, opened_by: str, holder: str, tick: int) -> None:
        self.opened_by = opened_by  # "recovery" or a dreamer's name
        self.opened = tick
        self.holder = holder
        self.turn_since = tick
        self.told = 0

    @classmethod
    def open(
        cls,
        opened_by: str,
        members: list[str],
        tick: int,
        turn_s: float,
        events: list[EventItem],
    ) -> Circle:
        holder = opened_by if opened_by in members else members[0]
        circle = cls(opened_by, holder, tick)
        events.append(CircleOpened(opened_by, tuple(members), holder, turn_s))
        return circle

    def pass_turn(
        self, members: list[str], reason: str, tick: int, events: list[EventItem]
    ) -> None:
        """Give the turn to the next of ``members`` (sorted, not empty) after the holder."""
        k = bisect_right(members, self.holder)
        self.holder = members[k % len(members)]
        self.turn_since = tick
        events.append(CircleTurn(self.holder, reason))

    def close(self, reason: str, events: list[EventItem]) -> None:
        events.append(CircleClosed(reason, self.told))

    def view(self, tick: int, dt: float) -> WireMap:
        return {
            "by": self.opened_by,
            "turn": self.holder,
            "turn_for_s": round((tick - self.turn_since) * dt, 3),
            "told": self.told,
        }
