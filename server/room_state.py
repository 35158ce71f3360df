"""The state of one room as its owner keeps it: pure, no I/O.

How it works: once per tick the owner calls :meth:`RoomState.apply` with the
inputs that arrived since the last tick (joins, leaves, story lines, template
uploads from any node; telemetry from the owner's MQTT ingest). The room
turns membership changes and story lines into event items (``joined``,
``left``, ``said``, ``pod_online``, ``pod_offline``), hands the dream engine
its share of the inputs, and returns every item of the tick plus the
engine's cues for pods: first the room's own items in input order, then the
engine's, then an ``input_refused`` item for each story line or template
from a session the room does not know (it left, or its node was declared
dead: never dropped silently) and a ``template_rejected`` item for each
template upload the room could not apply, then an ``input_refused`` item,
addressed to the sender's session, for each circle command the engine could
not apply (``/pass`` out of turn). Circle commands (``/circle``, ``/pass``)
go to the engine but are not story: they get no ``said`` item and no place
in the story tail. A websocket member can never be a pod: a join under the
name of a pod in the room is refused (an ``input_refused`` item for
``join``: the session never becomes a member), and no member's leave ever
removes a pod's dreamer from the engine. A room is *used* once it held a
story line, a template or a pod: the janitor keeps an empty room that was
never used for a much shorter time (a join alone does not make a room worth
keeping). Items are the typed values of
:mod:`sleepsync.protocol.events`; a tick with any item gets the next seq,
and the runtime encodes the items as that seq's event frame. ``snapshot``/``restore`` carry
the whole state, engine included, to a new owner.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from sleepsync.protocol.errors import TemplateInvalid
from sleepsync.protocol.events import (
    EventItem,
    InputRefused,
    MemberJoined,
    MemberLeft,
    PodCameOnline,
    PodWentOffline,
    Said,
    TemplateRejected,
)
from sleepsync.protocol.messages import Role
from sleepsync.protocol.telemetry import Cue
from sleepsync.protocol.wire import WireMap, WireValue

from .engine.api import (
    DreamEngine,
    DreamerJoined,
    DreamerLeft,
    EngineInput,
    PodFault,
    PodOffline,
    StoryLine,
    Telemetry,
    TemplateUploaded,
)
from .engine.circle import parse_command
from .inputs import MemberJoin, MemberLeave, RoomInput, StoryInput, TemplateInput

__all__ = ["EngineHooks", "RoomState", "TickOutput"]

NOT_A_MEMBER = "the room does not know this session (it left, or its node was out of touch)"
POD_NAME = "that name is a pod's in this room; choose another"


@dataclass(frozen=True, slots=True)
class EngineHooks:
    """How a room makes, restores and feeds its dream engine."""

    create: Callable[[str], DreamEngine]
    restore: Callable[[bytes], DreamEngine]
    parse_template: Callable[[str, str], Any]


@dataclass(slots=True)
class TickOutput:
    #: The seq given to this tick's event; 0 when the tick produced no items.
    seq: int = 0
    items: list[EventItem] = field(default_factory=list)
    cues: list[Cue] = field(default_factory=list)
    #: Pods whose telemetry was refused because the room was full.
    refused_pods: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Session:
    name: str
    role: Role
    node: str


class RoomState:
    """Membership, story lines and the dream engine of one room."""

    def __init__(
        self,
        room: str,
        *,
        story_tail: int = 20,
        capacity: int = 50,
        hooks: EngineHooks | None = None,
    ) -> None:
        self.room = room
        self.capacity = capacity
        #: Pods that sent telemetry here, and whether they are online now.
        self._pods: dict[str, bool] = {}
        self.tick = 0
        self.seq = 0
        self._hooks = hooks
        self._sessions: dict[str, _Session] = {}
        self._counts: Counter[tuple[str, Role]] = Counter()
        self._story: deque[tuple[int, str, str]] = deque(maxlen=story_tail)
        self.engine: DreamEngine | None = hooks.create(room) if hooks else None
        #: Did the room ever hold a story line, a template or a pod?
        self.used = False

    # ------------------------------------------------------------------ queries
    @property
    def story_tail(self) -> int:
        """Story lines kept for snapshots."""
        return self._story.maxlen or 0

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def dreamers(self) -> list[str]:
        return sorted(name for (name, role), n in self._counts.items() if role == "dreamer" and n)

    def observers(self) -> list[str]:
        return sorted(name for (name, role), n in self._counts.items() if role == "observer" and n)

    def pods(self) -> dict[str, bool]:
        return dict(self._pods)

    @property
    def online_pods(self) -> int:
        return sum(self._pods.values())

    def nodes(self) -> set[str]:
        """The nodes the room's sessions are connected to."""
        return {info.node for info in self._sessions.values()}

    def sessions_on(self, node: str) -> list[str]:
        return sorted(s for s, info in self._sessions.items() if info.node == node)

    def phase(self) -> str:
        if self.engine is None:
            return "stable"
        return str(self.engine.view().get("phase", "stable"))

    # ------------------------------------------------------------------ tick
    def apply(
        self, inputs: Sequence[RoomInput], engine_inputs: Sequence[EngineInput] = ()
    ) -> TickOutput:
        """Apply one tick's inputs, in arrival order, and step the engine once."""
        out = TickOutput()
        feed: list[EngineInput] = []
        #: Items that close the tick, after the engine's: refused inputs, rejected templates.
        late: list[EventItem] = []
        #: (name, text) of this tick's lines -> the sessions that sent them.
        senders: dict[tuple[str, str], list[str]] = {}
        for external in engine_inputs:
            if self._admit(external, out):
                feed.append(external)
        for item in inputs:
            if isinstance(item, MemberJoin):
                self._join(item, out, late, feed)
            elif isinstance(item, MemberLeave):
                self._leave(item.session, out, feed)
            elif isinstance(item, StoryInput):
                self._say(item, out, late, feed, senders)
            elif isinstance(item, TemplateInput):
                self._template(item, late, feed)
            # A ForgetInput never reaches a tick: the owner erases the room instead.
        self.tick += 1
        if self.engine is not None:  # time passes for the dream even in a quiet tick
            result = self.engine.step(feed)
            out.items.extend(result.events)
            out.cues.extend(result.cues)
            refused = result.refused
        else:
            refused = []
        out.items.extend(late)
        for refusal in refused:
            sessions = senders.get((refusal.author, refusal.text))
            if sessions:
                out.items.append(InputRefused(sessions.pop(0), refusal.input, refusal.reason))
        if out.items:
            self.seq += 1
            out.seq = self.seq
        return out

    def _admit(self, item: EngineInput, out: TickOutput) -> bool:
        """Pods become members with their first sample, subject to capacity."""
        if isinstance(item, Telemetry):
            pod = item.sample.pod
            online = self._pods.get(pod)
            if online is None:
                if len(self._sessions) + len(self._pods) >= self.capacity:
                    out.refused_pods.append(pod)
                    return False
                self._pods[pod] = True
                self.used = True
                out.items.append(MemberJoined(pod, "pod"))
            elif not online:
                self._pods[pod] = True
                out.items.append(PodCameOnline(pod))
        elif isinstance(item, PodOffline):
            if not self._pods.get(item.dreamer):
                return False
            self._pods[item.dreamer] = False
            out.items.append(PodWentOffline(item.dreamer))
        elif isinstance(item, PodFault) and item.dreamer not in self._pods:
            return False
        return True

    def _join(
        self, item: MemberJoin, out: TickOutput, late: list[EventItem], feed: list[EngineInput]
    ) -> None:
        if item.session in self._sessions:
            return
        if item.name in self._pods:
            late.append(InputRefused(item.session, "join", POD_NAME))
            return
        self._sessions[item.session] = _Session(item.name, item.role, item.node)
        key = (item.name, item.role)
        self._counts[key] += 1
        if self._counts[key] == 1:
            out.items.append(MemberJoined(item.name, item.role))
            if item.role == "dreamer":
                feed.append(DreamerJoined(item.name))

    def _leave(self, session: str, out: TickOutput, feed: list[EngineInput]) -> None:
        info = self._sessions.pop(session, None)
        if info is None:
            return
        key = (info.name, info.role)
        self._counts[key] -= 1
        if self._counts[key] <= 0:
            del self._counts[key]
            out.items.append(MemberLeft(info.name, info.role))
            # A pod that came under a member's name since keeps its dreamer.
            if info.role == "dreamer" and info.name not in self._pods:
                feed.append(DreamerLeft(info.name))

    def _say(
        self,
        item: StoryInput,
        out: TickOutput,
        late: list[EventItem],
        feed: list[EngineInput],
        senders: dict[tuple[str, str], list[str]],
    ) -> None:
        if item.session not in self._sessions:  # it left, or its node was declared dead
            late.append(InputRefused(item.session, "say", NOT_A_MEMBER))
            return
        feed.append(StoryLine(item.name, item.text))
        senders.setdefault((item.name, item.text), []).append(item.session)
        if parse_command(item.text) is not None:
            return  # a circle command: the engine answers it; it is not story
        self._story.append((self.seq + 1, item.name, item.text))
        self.used = True
        out.items.append(Said(item.name, item.text))

    def _template(
        self, item: TemplateInput, late: list[EventItem], feed: list[EngineInput]
    ) -> None:
        if item.session and item.session not in self._sessions:
            late.append(InputRefused(item.session, "template", NOT_A_MEMBER))
            return
        if self._hooks is None:
            late.append(TemplateRejected(item.name, "this room runs no dream engine"))
            return
        try:
            template = self._hooks.parse_template(item.text, item.format)
        except TemplateInvalid as exc:  # checked at the gateway; re-checked for safety
            late.append(TemplateRejected(item.name, exc.message))
            return
        self.used = True
        feed.append(TemplateUploaded(item.name, template))

    def leave_node(self, node: str) -> list[MemberLeave]:
        """Leaves for every session of a node that went away."""
        return [MemberLeave(s) for s in self.sessions_on(node)]

    # ------------------------------------------------------------------ state
    def view(self) -> WireMap:
        """What a newcomer sees: members, the story so far, the dream."""
        members: list[WireValue] = [
            {"name": name, "role": role, "sessions": n}
            for (name, role), n in sorted(self._counts.items())
        ]
        members.extend(
            {"name": pod, "role": "pod", "online": online}
            for pod, online in sorted(self._pods.items())
        )
        story: list[WireValue] = [
            {"seq": seq, "name": name, "text": text} for seq, name, text in self._story
        ]
        return {
            "tick": self.tick,
            "members": members,
            "story": story,
            "dream": self.engine.view() if self.engine is not None else None,
        }

    def snapshot(self) -> bytes:
        state: dict[str, Any] = {
            "room": self.room,
            "tick": self.tick,
            "seq": self.seq,
            "sessions": {s: [i.name, i.role, i.node] for s, i in self._sessions.items()},
            "story": [list(entry) for entry in self._story],
            "story_tail": self._story.maxlen,
            "capacity": self.capacity,
            "pods": self._pods,
            "used": self.used,
            "engine": self.engine.snapshot() if self.engine is not None else None,
        }
        return msgpack.packb(state, use_bin_type=True)

    @classmethod
    def restore(cls, data: bytes, hooks: EngineHooks | None = None) -> RoomState:
        state = msgpack.unpackb(data, raw=False)
        room = cls(
            state["room"], story_tail=state["story_tail"], capacity=state["capacity"], hooks=None
        )
        room._pods = {str(pod): bool(online) for pod, online in state["pods"].items()}
        room._hooks = hooks
        room.tick = state["tick"]
        room.seq = state["seq"]
        room.used = bool(state.get("used", True))  # older snapshots: keep the room
        for session, (name, role, node) in state["sessions"].items():
            room._sessions[session] = _Session(name, role, node)
            room._counts[(name, role)] += 1
        for seq, name, text in state["story"]:
            room._story.append((seq, name, text))
        if hooks is not None:
            engine_state = state["engine"]
            room.engine = hooks.restore(engine_state) if engine_state else hooks.create(room.room)
        return room
