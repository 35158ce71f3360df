"""A scripted night in room "demo": server messages built from typed items.

Unit tests of the view model and the sentences, and the screen snapshots,
feed these instead of a live server, so what they see is the same every run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from sleepsync.protocol.events import (
    CircleLifted,
    CircleOpened,
    CircleTurn,
    EventItem,
    GlitchSpread,
    GlitchStarted,
    MemberJoined,
    Mood,
    MoodRow,
    PhaseChanged,
    PhaseFigures,
    RecoveryActions,
    Said,
    SceneChanged,
)
from sleepsync.protocol.messages import Event, ServerMessage, Snapshot, Welcome
from sleepsync.protocol.wire import WireValue

ROOM = "demo"
T0 = 1_764_115_200.0
PODS = [f"pod-00{i}" for i in range(1, 7)]
DRIFT = "The pods hum. One by one the dreamers sink into a warm, dim sea of light."
POOLS = "Shallow pools hold small, bright memories. Someone laughs somewhere nearby."
HEARTH = "A fire in a quiet room. The dreamers sit in a circle and take turns telling the story."


def welcome(session: str = "s-you") -> Welcome:
    return Welcome(1, "node-1", session, 65536, 50)


def snapshot(seq: int = 10, room: str = ROOM) -> Snapshot:
    dreamers: list[WireValue] = [
        {
            "name": pod,
            "valence": 0.5 + 0.04 * i,
            "arousal": 0.4 + 0.03 * i,
            "glitch": 0.0,
            "online": True,
            "pod": True,
        }
        for i, pod in enumerate(PODS)
    ]
    dreamers.append(
        {
            "name": "lila",
            "valence": 0.6,
            "arousal": 0.4,
            "glitch": 0.0,
            "online": True,
            "pod": False,
        }
    )
    members: list[WireValue] = [
        {"name": "lila", "role": "dreamer", "sessions": 1},
        {"name": "mira", "role": "observer", "sessions": 1},
    ]
    members += [{"name": pod, "role": "pod", "online": True} for pod in PODS]
    return Snapshot(
        room,
        1,
        seq,
        {
            "tick": seq,
            "members": members,
            "story": [{"seq": 3, "name": "lila", "text": "We float above a quiet sea."}],
            "dream": {
                "tick": seq,
                "balance": 0.52,
                "phase": "stable",
                "scene": {"id": "drift", "text": DRIFT},
                "narrative": "The Shared Night",
                "narrative_by": None,
                "circle": None,
                "dreamers": dreamers,
                "glitches": [],
            },
        },
    )


def event(seq: int, items: list[EventItem], ts: float, room: str = ROOM) -> Event:
    return Event(room, 1, seq, seq, [item.to_wire() for item in items], ts)


def mood(balance: float, phase: str, names: list[str], k: int, glitched: set[str]) -> Mood:
    rows = tuple(
        MoodRow(
            name,
            round(min(1.0, max(0.0, balance + 0.15 * math.sin(k / 9 + i))), 3),
            round(min(1.0, max(0.0, 0.45 + 0.2 * math.cos(k / 7 + i))), 3),
            0.6 if name in glitched else 0.0,
            k if name.startswith("pod") else None,
        )
        for i, name in enumerate(names)
    )
    return Mood(balance, phase, rows)


def night(until: str = "collapse", room: str = ROOM) -> Iterator[ServerMessage]:
    """Welcome, snapshot, then a minute and a half of events (2 per second).

    ``until``: ``"calm"`` stops before the trouble; ``"strained"`` stops
    once the room is strained; ``"collapse"`` goes on through glitches and a
    collapse into a storytelling circle.
    """
    yield welcome()
    yield snapshot(10, room)
    names = [*PODS, "lila"]
    seq, k = 10, 0
    glitched: set[str] = set()
    phase = "stable"

    def tick(items: list[EventItem], balance: float) -> Event:
        nonlocal seq, k
        seq += 1
        k += 1
        row = mood(balance, phase, names, k, glitched)
        return event(seq, [*items, row], T0 + k * 0.5, room)

    yield tick([MemberJoined("ana", "dreamer")], 0.52)
    names.append("ana")
    for i in range(40):
        extra: list[EventItem] = []
        if i == 10:
            extra = [SceneChanged("drift", "tide-pools", "transition", POOLS)]
        if i == 20:
            extra = [Said("lila", "The pools are full of little lights.")]
        if i == 28:
            extra = [Said("ana", "I pick one up; it hums like the pods.")]
        yield tick(extra, 0.52 + 0.03 * math.sin(i / 6))
    if until == "calm":
        return
    balance = 0.5
    for i in range(60):
        extra = []
        if i == 5:
            glitched.add("pod-003")
            extra = [GlitchStarted(1, "sensor", "pod-003", 0.7)]
        if i == 12:
            glitched.add("lila")
            extra = [GlitchSpread(1, "pod-003", "lila", 0.45)]
        if i == 18:
            glitched.add("pod-005")
            extra = [GlitchSpread(1, "pod-003", "pod-005", 0.4)]
        if i == 22:
            phase = "strained"
            extra = [
                PhaseChanged("stable", "strained", "balance low", PhaseFigures(0.38, 0.4, 1.0))
            ]
        if i == 30 and until == "strained":
            return
        if i == 40:
            phase = "collapsed"
            actions = RecoveryActions(0.4, ("pod-003", "pod-005"), "hearth", True, 6)
            extra = [  # in the engine's order: the phase item first
                PhaseChanged(
                    "strained",
                    "collapsed",
                    "balance collapsed",
                    PhaseFigures(0.28, 0.3, 3.0),
                    actions,
                ),
                CircleOpened("recovery", ("ana", "lila"), "lila", 20.0),
                SceneChanged("tide-pools", "hearth", "recovery", HEARTH),
            ]
        if i == 50:
            extra = [
                Said("lila", "We sit by the fire and the static fades."),
                CircleLifted("lila", 0.05),
                CircleTurn("ana", "told"),
            ]
        balance = max(0.26, balance - 0.006) if i < 45 else balance + 0.004
        yield tick(extra, round(balance, 3))
