"""Running a narrative template in a room.

The room is in one scene at a time (scenes are room-level). Every tick the
engine pulls dreamers toward the scene's mood target (in :mod:`.contagion`)
and then calls :meth:`NarrativeRuntime.advance`: the first transition, in
template order, whose condition holds moves the room (seconds in the scene,
room balance, room mean arousal). While the room is collapsed or recovering
the narrative is held at the safe scene.

**Run-time traps.** Validation guarantees a path to the safe scene, but not
that its conditions are ever met. A room that stays in a scene (other than
the safe scene) longer than the scene's ``max_dwell`` (default: the
config's ``max_scene_dwell_s``) is moved to the safe scene with a ``trap``
event. The safe scene never traps: it is where a room may rest.

The runtime keeps the room's recent scene entries (bounded), which nightmare
loop detection reads.
"""

from __future__ import annotations

from sleepsync.protocol.events import EventItem, NarrativeChanged, SceneChanged, TrapCaught
from sleepsync.protocol.narrative import NarrativeTemplate, Scene

__all__ = ["MAX_HISTORY", "NarrativeRuntime"]

#: Scene entries remembered for nightmare-loop detection.
MAX_HISTORY = 64


class NarrativeRuntime:
    """The current template, its author, the current scene and its history."""

    __slots__ = ("author", "history", "scene", "since", "template")

    def __init__(self, template: NarrativeTemplate, author: str | None = None) -> None:
        self.template = template
        self.author = author
        self.scene: Scene = template.scene(template.entry)
        self.since = 0  # tick the current scene was entered
        self.history: list[tuple[int, str]] = [(0, self.scene.id)]

    def move(self, to: str, reason: str, tick: int, events: list[EventItem]) -> Scene:
        """Enter scene ``to`` and emit a ``scene`` event."""
        old = self.scene.id
        self.scene = self.template.scene(to)
        self.since = tick
        self.history.append((tick, to))
        if len(self.history) > MAX_HISTORY:
            del self.history[0]
        events.append(SceneChanged(old, to, reason, self.scene.text))
        return self.scene

    def replace(
        self,
        template: NarrativeTemplate,
        author: str,
        tick: int,
        events: list[EventItem],
        *,
        to_safe: bool,
    ) -> Scene:
        """Switch to an uploaded template, entering its entry (or safe) scene."""
        self.template = template
        self.author = author
        events.append(NarrativeChanged(template.title, author, template.entry))
        old = self.scene.id
        target = template.safe if to_safe else template.entry
        self.scene = template.scene(target)
        self.since = tick
        self.history.append((tick, target))
        if len(self.history) > MAX_HISTORY:
            del self.history[0]
        events.append(SceneChanged(old, target, "narrative", self.scene.text))
        return self.scene

    def advance(
        self,
        tick: int,
        dt: float,
        balance: float,
        arousal: float,
        *,
        hold: bool,
        default_dwell_s: float,
        events: list[EventItem],
    ) -> Scene | None:
        """Fire a transition or catch a trap; return the scene entered, if any."""
        scene = self.scene
        safe = self.template.safe
        if hold:
            if scene.id != safe:
                return self.move(safe, "recovery", tick, events)
            return None
        seconds = (tick + 1 - self.since) * dt
        for transition in scene.transitions:
            if transition.when.holds(seconds, balance, arousal):
                return self.move(transition.to, "transition", tick, events)
        limit = scene.max_dwell if scene.max_dwell is not None else default_dwell_s
        if scene.id != safe and seconds >= limit - 1e-9:
            reason = "no transition fired within the maximum dwell time"
            events.append(TrapCaught(scene.id, round(seconds, 3), reason))
            return self.move(safe, "trap", tick, events)
        return None

    def loop(self, tick: int, window: int, min_revisits: int) -> list[str] | None:
        """Scenes of a loop in the last ``window`` ticks, or None.

        A loop is at least ``min_revisits`` re-entries of scenes already
        entered within the window; the scene the room was in when the window
        opened counts as entered.
        """
        start = tick - window
        entries: list[str] = []
        for at, scene_id in self.history:
            if at <= start:
                entries = [scene_id]  # the scene current when the window opened
            else:
                entries.append(scene_id)
        distinct = list(dict.fromkeys(entries))
        if len(entries) - len(distinct) >= min_revisits:
            return distinct
        return None
