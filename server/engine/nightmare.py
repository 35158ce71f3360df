"""Nightmare loops: detection and release.

Scenes are room-level, so "a dreamer revisiting the same scenes" means: the
*room's* scene history over the last ``nightmare_window_s`` contains at
least ``nightmare_min_revisits`` re-entries of scenes already entered in
that window (a loop), while *that dreamer* stayed distressed — valence
below ``nightmare_valence_below`` and arousal above
``nightmare_arousal_above`` — on every tick of the window (the per-dreamer
``distress`` counter, kept by :mod:`.contagion`).

Release: for ``nightmare_release_s`` the dreamer is pulled to the safe
scene's mood (its own scene target, at ``nightmare_release_pull``) and its
outgoing contagion is cut; its distress counter restarts, so it cannot be
released again before a full new window. A ``nightmare_released`` event
names the dreamer and the loop, and a pod gets a ``breathe`` cue.
"""

from __future__ import annotations

from sleepsync.protocol.events import EventItem, NightmareReleased
from sleepsync.protocol.telemetry import Cue

from .dreamer import DreamerTable

__all__ = ["release_nightmares"]


def release_nightmares(
    t: DreamerTable,
    loop: list[str],
    *,
    window: int,
    release_ticks: int,
    release_s: float,
    tick: int,
    events: list[EventItem],
    cues: list[Cue],
) -> None:
    """Release every dreamer distressed for a whole window while the room loops."""
    distress = t.distress
    for i in range(len(t)):
        if distress[i] < window or t.release[i] > tick:
            continue
        until = tick + release_ticks
        t.release[i] = until
        t.mute[i] = max(t.mute[i], until)
        distress[i] = 0
        name = t.names[i]
        events.append(
            NightmareReleased(name, tuple(loop), round(t.val[i], 3), round(t.aro[i], 3), release_s)
        )
        if t.pod[i]:
            cues.append(Cue(name, "breathe", round(t.aro[i], 3), "nightmare loop released"))
