"""A room as a client sees it: folded from a snapshot and the typed events after it.

Pure, no I/O: the Textual app, ``--plain`` and ``sleepsync watch`` all keep
one :class:`RoomView` per room and call :meth:`RoomView.apply` with every
server message; they render from its fields and never parse wire maps
themselves.

How it works: a ``snapshot`` (or the one after a ``resync``) resets the
view from the room's state (members, story tail, the engine's view: balance,
phase, scene and its text, narrative, circle, dreamers, glitches). Each
``event`` then updates it item by item. The balance history keeps one point
per :data:`SAMPLE_S` seconds of server time (``mood`` comes every tick) over
:data:`HISTORY_S` seconds, with marks where the phase changed and where a
glitch started, for the plot. Times are the server's (``event.ts``), so the
view is deterministic for a given stream of messages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    PhaseChanged,
    PodCameOnline,
    PodWentOffline,
    Said,
    SceneChanged,
    items_of,
)
from sleepsync.protocol.messages import Event, ServerMessage, Snapshot, Welcome
from sleepsync.protocol.wire import WireValue

__all__ = [
    "HISTORY_S",
    "PHASES",
    "SAMPLE_S",
    "CircleView",
    "DreamerMood",
    "GlitchView",
    "Mark",
    "Member",
    "RoomView",
    "StoryEntry",
    "scene_label",
]

#: Seconds of balance history kept for the plot.
HISTORY_S = 300.0
#: One balance point per this many seconds of server time.
SAMPLE_S = 0.5
#: Story lines kept.
MAX_STORY = 500
#: The recovery phases, in the order a room goes through them.
PHASES = ("stable", "strained", "collapsed", "recovering")

Role = Literal["dreamer", "observer", "pod"]


def scene_label(scene_id: str) -> str:
    """A scene id as words: ``tide-pools`` -> ``the tide pools``."""
    return "the " + scene_id.replace("-", " ").replace("_", " ")


@dataclass(slots=True)
class Member:
    """Someone in the room: a person (dreamer or observer) or a pod."""

    name: str
    role: str
    online: bool = True


@dataclass(slots=True)
class DreamerMood:
    """A dreamer's emotional state as the engine last reported it."""

    valence: float
    arousal: float
    glitch: float = 0.0
    online: bool = True
    pod: bool = False
    #: Cut off from contagion by recovery (a glitch carrier at the collapse).
    isolated: bool = False
    #: seq of the last telemetry sample applied (None without a pod).
    seq: int | None = None


@dataclass(slots=True)
class CircleView:
    """The open storytelling circle."""

    by: str
    turn: str
    told: int = 0
    #: Seconds a turn lasts (unknown after a snapshot).
    turn_s: float | None = None
    #: Server time the current turn began (None when unknown).
    turn_since: float | None = None


@dataclass(slots=True)
class GlitchView:
    """An active glitch: where it started and who carries it now."""

    id: int
    kind: str
    origin: str
    carriers: set[str] = field(default_factory=set)
    reach: int = 1


@dataclass(frozen=True, slots=True)
class Mark:
    """Something to mark on the balance plot at server time ``ts``."""

    ts: float
    kind: Literal["phase", "glitch"]
    label: str


@dataclass(frozen=True, slots=True)
class StoryEntry:
    name: str
    text: str


def _str(value: WireValue | None, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _float(value: WireValue | None, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def _maps(value: WireValue | None) -> list[Mapping[str, WireValue]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass(slots=True)
class RoomView:
    """Everything a screen shows about one room."""

    room: str
    #: This client's name (to say "your turn").
    me: str = ""
    node: str = ""
    #: This connection's session id (``input_refused`` items addressed to it are ours).
    session: str = ""
    narrative: str = ""
    narrative_by: str | None = None
    scene: str = ""
    scene_text: str = ""
    phase: str = "stable"
    balance: float | None = None
    #: Server time of the latest event (the view's "now").
    now: float | None = None
    tick: int = 0
    seq: int = 0
    members: dict[tuple[str, str], Member] = field(default_factory=dict)
    moods: dict[str, DreamerMood] = field(default_factory=dict)
    circle: CircleView | None = None
    glitches: dict[int, GlitchView] = field(default_factory=dict)
    story: deque[StoryEntry] = field(default_factory=lambda: deque(maxlen=MAX_STORY))
    #: (server time, balance), one point per SAMPLE_S.
    history: deque[tuple[float, float]] = field(default_factory=deque)
    marks: deque[Mark] = field(default_factory=deque)
    #: Scene texts seen so far, by id (older servers send scene changes without text).
    scene_texts: dict[str, str] = field(default_factory=dict)
    #: Has a snapshot been applied yet?
    ready: bool = False

    # ------------------------------------------------------------------ input
    def apply(self, msg: ServerMessage) -> list[EventItem]:
        """Fold one server message in; returns the event's items (none for others)."""
        if isinstance(msg, Welcome):
            self.node = msg.node
            self.session = msg.session
        elif isinstance(msg, Snapshot) and msg.room == self.room:
            self.load(msg)
        elif isinstance(msg, Event) and msg.room == self.room:
            items = items_of(msg)
            self.seq = msg.seq
            self.tick = msg.tick
            self.now = msg.ts
            for item in items:
                self.apply_item(item, msg.ts)
            return items
        return []

    def load(self, snap: Snapshot) -> None:
        """Reset from a snapshot (the first one, or the one after a resync)."""
        state = snap.state
        self.seq = snap.seq
        self.ready = True
        self.members.clear()
        for m in _maps(state.get("members")):
            name, role = _str(m.get("name")), _str(m.get("role"))
            if name and role:
                online = m.get("online")
                self.members[(name, role)] = Member(name, role, online is not False)
        self.story.clear()
        for line in _maps(state.get("story")):
            self.story.append(StoryEntry(_str(line.get("name")), _str(line.get("text"))))
        tick = state.get("tick")
        self.tick = tick if isinstance(tick, int) else self.tick
        dream = state.get("dream")
        if isinstance(dream, dict):
            self._load_dream(dream)

    def _load_dream(self, dream: Mapping[str, WireValue]) -> None:
        self.phase = _str(dream.get("phase"), "stable")
        balance = dream.get("balance")
        self.balance = _float(balance) if isinstance(balance, int | float) else None
        scene = dream.get("scene")
        if isinstance(scene, dict):
            self.scene = _str(scene.get("id"))
            self.scene_text = _str(scene.get("text"))
            if self.scene:
                self.scene_texts[self.scene] = self.scene_text
        self.narrative = _str(dream.get("narrative"))
        by = dream.get("narrative_by")
        self.narrative_by = by if isinstance(by, str) else None
        self.moods.clear()
        for d in _maps(dream.get("dreamers")):
            name = _str(d.get("name"))
            if name:
                self.moods[name] = DreamerMood(
                    _float(d.get("valence"), 0.5),
                    _float(d.get("arousal"), 0.5),
                    _float(d.get("glitch")),
                    d.get("online") is not False,
                    d.get("pod") is True,
                )
        circle = dream.get("circle")
        self.circle = None
        if isinstance(circle, dict):
            turn = _str(circle.get("turn"))
            if turn:
                told = circle.get("told")
                self.circle = CircleView(
                    _str(circle.get("by")), turn, told if isinstance(told, int) else 0
                )
        self.glitches.clear()
        for g in _maps(dream.get("glitches")):
            gid = g.get("id")
            if isinstance(gid, int):
                reach = g.get("reach")
                self.glitches[gid] = GlitchView(
                    gid,
                    _str(g.get("kind")),
                    _str(g.get("origin")),
                    reach=reach if isinstance(reach, int) else 1,
                )

    def apply_item(self, item: EventItem, ts: float) -> None:
        """Fold one event item in (``ts``: the event's server time)."""
        if isinstance(item, Mood):
            self._mood(item, ts)
        elif isinstance(item, MemberJoined):
            self.members[(item.name, item.role)] = Member(item.name, item.role)
        elif isinstance(item, MemberLeft):
            self.members.pop((item.name, item.role), None)
            if item.role == "dreamer":
                self.moods.pop(item.name, None)
        elif isinstance(item, PodCameOnline | PodWentOffline):
            online = isinstance(item, PodCameOnline)
            pod = self.members.get((item.name, "pod"))
            if pod is not None:
                pod.online = online
            if item.name in self.moods:
                self.moods[item.name].online = online
        elif isinstance(item, DreamerWentOffline):
            if item.dreamer in self.moods:
                self.moods[item.dreamer].online = False
        elif isinstance(item, Said):
            self.story.append(StoryEntry(item.name, item.text))
        elif isinstance(item, PhaseChanged):
            self._phase(item, ts)
        elif isinstance(item, SceneChanged):
            if item.text is not None:
                self.scene_texts[item.to] = item.text
            self.scene = item.to
            self.scene_text = self.scene_texts.get(item.to, "")
        elif isinstance(item, NarrativeChanged):
            self.narrative = item.title
            self.narrative_by = item.by
            self.scene_texts.clear()
        else:
            self._glitch_or_circle(item, ts)

    def _glitch_or_circle(self, item: EventItem, ts: float) -> None:
        if isinstance(item, GlitchStarted):
            self.glitches[item.id] = GlitchView(item.id, item.glitch, item.origin, {item.origin})
            self._mark(Mark(ts, "glitch", item.origin))
        elif isinstance(item, GlitchSpread):
            glitch = self.glitches.get(item.id)
            if glitch is not None:
                glitch.carriers.add(item.to)
                glitch.reach += 1
        elif isinstance(item, GlitchFaded):
            self.glitches.pop(item.id, None)
        elif isinstance(item, CircleOpened):
            self.circle = CircleView(item.by, item.turn, 0, item.turn_s, ts)
        elif isinstance(item, CircleTurn):
            if self.circle is not None:
                self.circle.turn = item.to
                self.circle.turn_since = ts
        elif isinstance(item, CircleLifted):
            if self.circle is not None:
                self.circle.told += 1
        elif isinstance(item, CircleClosed):
            self.circle = None

    def _mood(self, item: Mood, ts: float) -> None:
        self.balance = item.balance
        self.phase = item.phase
        present = set()
        for row in item.dreamers:
            present.add(row.name)
            mood = self.moods.get(row.name)
            if mood is None:
                pod = (row.name, "pod") in self.members or row.seq is not None
                mood = self.moods[row.name] = DreamerMood(row.valence, row.arousal, pod=pod)
            elif row.seq is not None and row.seq != mood.seq:
                mood.online = True
            mood.valence, mood.arousal, mood.glitch = row.valence, row.arousal, row.glitch
            mood.seq = row.seq
            if row.seq is not None:
                mood.pod = True
            if row.glitch <= 0.0:
                for glitch in self.glitches.values():
                    glitch.carriers.discard(row.name)
        for gone in [name for name in self.moods if name not in present]:
            del self.moods[gone]
        last = self.history[-1][0] if self.history else None
        if last is None or ts - last >= SAMPLE_S - 1e-9:
            self.history.append((ts, item.balance))
        while self.history and self.history[0][0] < ts - HISTORY_S:
            self.history.popleft()
        while self.marks and self.marks[0].ts < ts - HISTORY_S:
            self.marks.popleft()

    def _phase(self, item: PhaseChanged, ts: float) -> None:
        self.phase = item.to
        self._mark(Mark(ts, "phase", item.to))
        if item.to == "collapsed" and item.actions is not None:
            for name in item.actions.isolated:
                if name in self.moods:
                    self.moods[name].isolated = True
        elif item.to in ("recovering", "stable"):
            for mood in self.moods.values():
                mood.isolated = False

    def _mark(self, mark: Mark) -> None:
        self.marks.append(mark)

    # ------------------------------------------------------------------ queries
    def people(self) -> list[Member]:
        """Dreamers and observers, by name."""
        return sorted(
            (m for m in self.members.values() if m.role != "pod"), key=lambda m: (m.name, m.role)
        )

    def pods(self) -> list[Member]:
        return sorted((m for m in self.members.values() if m.role == "pod"), key=lambda m: m.name)

    def speakers(self) -> list[str]:
        """Who takes turns in a circle: people who joined as dreamers (never pods)."""
        return sorted(m.name for m in self.members.values() if m.role == "dreamer")

    def circle_order(self) -> list[str]:
        return self.speakers() if self.circle is not None else []

    def my_turn(self) -> bool:
        return self.circle is not None and self.circle.turn == self.me

    def turn_left_s(self) -> float | None:
        """Seconds left in the current turn, by server time (None when unknown)."""
        c = self.circle
        if c is None or c.turn_s is None or c.turn_since is None or self.now is None:
            return None
        return max(0.0, c.turn_s - (self.now - c.turn_since))

    def refused_to_me(self, item: EventItem) -> bool:
        """Is ``item`` an ``input_refused`` addressed to this connection?"""
        mine = isinstance(item, InputRefused) and item.session == self.session
        return mine and bool(self.session)

    def dreamer_count(self) -> int:
        return len(self.moods)
