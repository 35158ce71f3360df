"""Typed event items and server messages as human sentences.

Pure, no I/O. The Textual app's event log, ``--plain`` and ``sleepsync
watch`` all speak through :func:`describe` (an event item) and
:func:`describe_message` (other server messages), so a room reads the same
everywhere: "The room collapsed: balance 0.28. Isolating pod-005, moving
everyone to the hearth, a storytelling circle opens." rather than
``phase from="strained" to="collapsed" figures={…}``.

Each sentence has a *tone* a screen may colour (``info``, ``good``,
``warn``, ``bad``, ``story``, ``you``); plain text ignores it. ``None`` means
"nothing worth a line": the per-tick ``mood``, a refusal addressed to
someone else, a ``dreamer_offline`` that repeats a ``pod_offline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sleepsync.protocol.events import (
    CircleClosed,
    CircleLifted,
    CircleOpened,
    CircleTurn,
    DreamerWentOffline,
    EventItem,
    GlitchFaded,
    GlitchSpread,
    GlitchStarted,
    InputRefused,
    MemberJoined,
    MemberLeft,
    Mood,
    NarrativeChanged,
    NightmareReleased,
    PhaseChanged,
    PodCameOnline,
    PodWentOffline,
    Said,
    SceneChanged,
    TemplateRejected,
    TrapCaught,
    UnknownEvent,
)
from sleepsync.protocol.messages import (
    Error,
    Left,
    Resync,
    Rooms,
    ServerMessage,
    Snapshot,
    Status,
    Welcome,
)

from .roomview import RoomView, scene_label

__all__ = ["Sentence", "Tone", "describe", "describe_message", "listing"]

Tone = Literal["info", "good", "warn", "bad", "story", "you"]


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    tone: Tone = "info"

    def __str__(self) -> str:
        return self.text


_GLITCH_CAUSES = {
    "fragment": "a corrupted story fragment",
    "sensor": "a faulty sensor",
    "stress": "a stress spike",
    "injected": "an operator",
}


def listing(names: list[str] | tuple[str, ...]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s >= 1 else f"{s:.1f} s"


def _scene(view: RoomView, scene_id: str, text: str | None) -> str:
    text = text if text is not None else view.scene_texts.get(scene_id)
    where = scene_label(scene_id)
    return f"{where}: {text}" if text else where


def _phase(item: PhaseChanged) -> Sentence:
    f = item.figures
    b = f"balance {f.balance:.2f}"
    if item.to == "collapsed":
        parts = []
        a = item.actions
        if a is not None:
            if a.isolated:
                parts.append(f"isolating {listing(a.isolated)}")
            parts.append(f"moving everyone to {scene_label(a.scene)}")
            if a.circle:
                parts.append("a storytelling circle opens")
            if a.cues:
                parts.append(f"calming {a.cues} pod{'s' if a.cues != 1 else ''}")
        said = ", ".join(parts)
        tail = f" {said[:1].upper()}{said[1:]}." if said else ""
        return Sentence(f"The room collapsed: {b}.{tail}", "bad")
    if item.to == "strained":
        return Sentence(
            f"The room is strained: {b}, under {f.threshold:.2f} for {_seconds(f.held_s)}.", "warn"
        )
    if item.to == "recovering":
        return Sentence(f"The room is recovering: {b}.", "good")
    if item.to == "stable":
        again = " again" if item.source in ("recovering", "collapsed") else ""
        return Sentence(f"The room is stable{again}: {b}.", "good")
    return Sentence(f"The room is {item.to}: {b}.")


def _circle(item: EventItem, view: RoomView) -> Sentence | None:
    me = view.me
    if isinstance(item, CircleOpened):
        who = "Recovery opened" if item.by == "recovery" else f"{item.by} opened"
        if item.by == me:
            who = "You opened"
        first = "you speak" if item.turn == me else f"{item.turn} speaks"
        return Sentence(
            f"{who} a storytelling circle: {listing(item.order)} in turn; {first} first"
            f" ({_seconds(item.turn_s)} a turn).",
            "you" if item.turn == me else "good",
        )
    if isinstance(item, CircleTurn):
        why = {
            "told": "",
            "passed": "The turn was passed. ",
            "timeout": "Time is up. ",
            "left": "The teller left. ",
        }.get(item.reason, "")
        if item.to == me:
            return Sentence(f"{why}Your turn: tell a line, or /pass.", "you")
        return Sentence(f"{why}It is {item.to}'s turn.")
    if isinstance(item, CircleLifted):
        return Sentence(f"{item.by}'s line lifted the room (+{item.lift:.2f}).", "good")
    if isinstance(item, CircleClosed):
        lines = f"{item.told} line{'s' if item.told != 1 else ''} told in turn"
        return Sentence(f"The circle closed ({item.reason}) after {lines}.")
    return None


def _glitch(item: EventItem) -> Sentence | None:
    if isinstance(item, GlitchStarted):
        cause = _GLITCH_CAUSES.get(item.glitch, item.glitch)
        return Sentence(
            f"A glitch started at {item.origin}, from {cause} (intensity {item.intensity:.2f}).",
            "warn",
        )
    if isinstance(item, GlitchSpread):
        return Sentence(f"A glitch spread from {item.source} to {item.to}.", "warn")
    if isinstance(item, GlitchFaded):
        reach = f"it reached {item.reach} dreamer{'s' if item.reach != 1 else ''}"
        return Sentence(
            f"The glitch from {item.origin} faded after {_seconds(item.lasted_s)}; {reach}."
        )
    return None


def describe(item: EventItem, view: RoomView) -> Sentence | None:
    """One event item as a sentence, or None when it is not worth a line.

    ``view`` gives the context: who "you" are, the scene texts, your session.
    """
    if isinstance(item, Mood):
        return None
    if isinstance(item, Said):
        return Sentence(f"{item.name}: {item.text}", "story")
    if isinstance(item, MemberJoined):
        if item.role == "pod":
            return Sentence(f"Pod {item.name} joined the room.")
        if item.role == "observer":
            return Sentence(f"{item.name} is watching.")
        return Sentence(f"{item.name} joined the dream.")
    if isinstance(item, MemberLeft):
        return Sentence(f"{item.name} left.")
    if isinstance(item, PodCameOnline):
        return Sentence(f"Pod {item.name} is back online.")
    if isinstance(item, PodWentOffline):
        return Sentence(f"Pod {item.name} went offline.", "warn")
    if isinstance(item, DreamerWentOffline):
        if item.reason == "status":
            return None  # its pod_offline said it already
        return Sentence(f"{item.dreamer} has gone quiet: no telemetry for a while.", "warn")
    if isinstance(item, TemplateRejected):
        return Sentence(f"{item.name}'s narrative was rejected: {item.reason}", "bad")
    if isinstance(item, InputRefused):
        if not view.refused_to_me(item):
            return None
        return Sentence(f"Not now: {item.reason}.", "you")
    if isinstance(item, PhaseChanged):
        return _phase(item)
    if isinstance(item, SceneChanged):
        where = _scene(view, item.to, item.text)
        if item.reason == "recovery":
            return Sentence(f"Recovery moves the dream to {where}")
        if item.reason == "trap":
            return Sentence(f"The dream was stuck; it moves to {where}", "warn")
        return Sentence(f"The dream moves to {where}")
    if isinstance(item, NarrativeChanged):
        return Sentence(f'{item.by}\'s narrative "{item.title}" begins.', "good")
    if isinstance(item, TrapCaught):
        return Sentence(
            f"The dream was stuck in {scene_label(item.scene)} for {_seconds(item.dwell_s)}.",
            "warn",
        )
    if isinstance(item, NightmareReleased):
        loop = " → ".join(scene_label(s).removeprefix("the ") for s in item.loop)
        return Sentence(
            f"{item.dreamer} was caught in a nightmare loop ({loop}) and is released for "
            f"{_seconds(item.for_s)}.",
            "warn",
        )
    if isinstance(item, UnknownEvent):
        what = f" ({item.problem})" if item.problem else ""
        return Sentence(f"Something this client does not know happened: {item.kind}{what}.")
    return _circle(item, view) or _glitch(item)


def describe_message(msg: ServerMessage, view: RoomView | None = None) -> list[Sentence]:
    """A server message other than an event, as sentences (a snapshot: where you are)."""
    if isinstance(msg, Welcome):
        return [Sentence(f"Connected to node {msg.node}.", "good")]
    if isinstance(msg, Snapshot):
        if view is None:
            return [Sentence(f"You are in room {msg.room}.")]
        present = [m.name for m in view.people()]
        pods = len(view.pods())
        if pods:
            present.append(f"{pods} pod{'s' if pods != 1 else ''}")
        who = listing(present) if present else "nobody yet"
        lines = [Sentence(f"You are in room {view.room} with {who}.")]
        if view.scene:
            title = f"{view.narrative}, " if view.narrative else ""
            lines.append(Sentence(f"{title}{_scene(view, view.scene, view.scene_text or None)}"))
        if view.balance is not None:
            lines.append(Sentence(f"The room is {view.phase}: balance {view.balance:.2f}."))
        return lines
    if isinstance(msg, Error):
        return [Sentence(f"The server says: {msg.message} ({msg.code}).", "bad")]
    if isinstance(msg, Resync):
        return [Sentence(f"Missed too much in {msg.room} ({msg.reason}); catching up.", "warn")]
    if isinstance(msg, Status):
        if msg.state == "ok":
            return [Sentence(f"The server is fine again: {msg.message}", "good")]
        state = msg.state.replace("_", " ")
        return [Sentence(f"The server is {state}: {msg.message}", "warn")]
    if isinstance(msg, Rooms):
        if not msg.rooms:
            return [Sentence("No rooms are open.")]
        return [
            Sentence(
                f"Room {r.room}: {r.dreamers} dreamer{'s' if r.dreamers != 1 else ''}, "
                f"{r.observers} watching, {r.phase}."
            )
            for r in msg.rooms
        ]
    if isinstance(msg, Left):
        return [Sentence(f"You left {msg.room}.")]
    return []
