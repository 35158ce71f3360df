"""The seam between the room runtime and the dream engine.

The room runtime (``sleepsync.server.room_state``) owns membership, story lines and
sequence numbers; once per tick it hands the engine everything that happened
since the last tick as a list of :data:`EngineInput` values and gets back
:class:`StepResult`: events for the room's members and cues for the pods.

The engine is pure: no clocks, sockets or global randomness. Time advances
only through ``step`` (one tick of ``1 / tick_hz`` seconds), and randomness
comes from a seeded RNG inside its state, so the same seed and inputs give
the same events and :meth:`DreamEngine.state_hash` on every node, and
``restore(snapshot())`` continues identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol, TypeAlias

from sleepsync.protocol.events import EventItem
from sleepsync.protocol.telemetry import Cue, TelemetrySample, VitalSigns
from sleepsync.protocol.wire import WireMap

if TYPE_CHECKING:
    from sleepsync.protocol.narrative import NarrativeTemplate

__all__ = [
    "NO_VITALS",
    "DreamEngine",
    "DreamerJoined",
    "DreamerLeft",
    "EngineInput",
    "GlitchInjected",
    "PodFault",
    "PodOffline",
    "Refusal",
    "StepResult",
    "StoryLine",
    "Telemetry",
    "TemplateUploaded",
]


@dataclass(frozen=True, slots=True)
class DreamerJoined:
    """A dreamer entered the room: a websocket dreamer, or a pod's first sample."""

    dreamer: str


@dataclass(frozen=True, slots=True)
class DreamerLeft:
    dreamer: str


@dataclass(frozen=True, slots=True)
class StoryLine:
    """A story line told into the room (feeds the storytelling circle)."""

    author: str
    text: str


#: What a room keeps of a sample's vital signs: nothing (see :class:`Telemetry`).
NO_VITALS = VitalSigns(heart_rate=0.0, hrv=0.0, skin_conductance=0.0, respiration=0.0)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """A validated, deduplicated sample for dreamer ``sample.pod``.

    The dynamics work on the pod's derived state (valence, arousal): raw
    vital signs are personal data and never reach a room. The ingest hands
    rooms :meth:`derived` samples, whose vitals are :data:`NO_VITALS`, so no
    tick record, snapshot or event can hold them.
    """

    sample: TelemetrySample

    @classmethod
    def derived(cls, sample: TelemetrySample) -> Telemetry:
        """``sample`` with its vital signs dropped."""
        return cls(replace(sample, vitals=NO_VITALS))


@dataclass(frozen=True, slots=True)
class PodOffline:
    """The pod's status (or Last Will) says it went offline."""

    dreamer: str


@dataclass(frozen=True, slots=True)
class PodFault:
    """The pod keeps sending invalid payloads: a sensor-fault glitch source."""

    dreamer: str
    invalid_count: int


@dataclass(frozen=True, slots=True)
class TemplateUploaded:
    """A validated narrative template, uploaded by ``author``."""

    author: str
    template: NarrativeTemplate


@dataclass(frozen=True, slots=True)
class GlitchInjected:
    """An operator injects a glitch at ``dreamer`` (tests, drills)."""

    dreamer: str
    intensity: float


EngineInput: TypeAlias = (
    DreamerJoined
    | DreamerLeft
    | StoryLine
    | Telemetry
    | PodOffline
    | PodFault
    | TemplateUploaded
    | GlitchInjected
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A story-line command the engine could not apply (``/pass`` out of turn...).

    The room runtime knows which session sent the line and tells it why.
    """

    author: str
    #: The line as it came (the runtime matches it to the sender's input).
    text: str
    #: What was refused: ``"pass"`` or ``"circle"``.
    input: str
    reason: str


@dataclass(slots=True)
class StepResult:
    """What one tick produced.

    ``events`` are typed event items (:mod:`sleepsync.protocol.events`) in a
    deterministic order; they go into the room's event frame for this tick.
    ``cues`` go out to the pods on their ``cmd`` topics. ``refused`` are
    commands told out of turn, answered to their sender only.
    """

    events: list[EventItem] = field(default_factory=list)
    cues: list[Cue] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


class DreamEngine(Protocol):
    """What the room runtime needs from a dream engine."""

    def step(self, inputs: Sequence[EngineInput]) -> StepResult:
        """Apply ``inputs`` (in any order: the engine sorts them) and advance one tick."""
        ...

    def view(self) -> WireMap:
        """The derived state a newcomer sees in a snapshot (never raw vitals)."""
        ...

    def snapshot(self) -> bytes:
        """The whole state, RNG included, as msgpack bytes."""
        ...

    def state_hash(self) -> str:
        """A stable hex digest of the state: equal states give equal hashes."""
        ...
