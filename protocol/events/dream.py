"""Event items of the dream: mood, glitches, phases, scenes, narratives, nightmares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from ..errors import InvalidMessage
from ..narrative import MAX_SCENE_TEXT, MAX_TITLE, SCENE_ID_RE
from ..wire import (
    NAME_RE,
    WireMap,
    WireValue,
    get_bool,
    get_map,
    get_str,
    optional,
)

if TYPE_CHECKING:
    pass

from .fields import (
    _FROM,
    _array,
    _count,
    _Item,
    _label,
    _name,
    _reason,
    _scene,
    _seconds,
    _strings,
    _unit,
)

__all__ = [
    "DreamerWentOffline",
    "GlitchFaded",
    "GlitchSpread",
    "GlitchStarted",
    "Mood",
    "MoodRow",
    "NarrativeChanged",
    "NightmareReleased",
    "PhaseChanged",
    "PhaseFigures",
    "RecoveryActions",
    "SceneChanged",
    "TrapCaught",
]


# ---------------------------------------------------------------- the dream


class MoodRow(NamedTuple):
    """One dreamer in a ``mood`` item; on the wire ``[name, valence, arousal, glitch, seq,
    fragility]``."""

    name: str
    valence: float
    arousal: float
    #: Glitch load carried, 0 when none.
    glitch: float
    #: Sequence number of the last telemetry sample applied, None without a pod.
    seq: int | None
    #: The dreamer's own fragility from its recent state (None from older servers).
    fragility: float | None = None

    @classmethod
    def from_wire(cls, value: object, path: str) -> MoodRow:
        if not isinstance(value, list) or len(value) < _MOOD_REQUIRED:
            raise InvalidMessage(path, f"expected an array of at least {_MOOD_REQUIRED} values")
        m = dict(zip(cls._fields, value, strict=False))
        return cls(
            name=_name(m, "name", path),
            valence=_unit(m, "valence", path),
            arousal=_unit(m, "arousal", path),
            glitch=_unit(m, "glitch", path),
            seq=_count(m, "seq", path) if optional(m, "seq") else None,
            fragility=_unit(m, "fragility", path) if optional(m, "fragility") else None,
        )


#: Columns every ``mood`` row has; later ones are optional and trailing.
_MOOD_REQUIRED = 5


@dataclass(frozen=True, slots=True)
class Mood(_Item):
    """Every tick that has dreamers: the room's balance and phase, and each dreamer's state."""

    KIND: ClassVar[str] = "mood"
    balance: float
    phase: str
    dreamers: tuple[MoodRow, ...]

    def to_wire(self) -> WireMap:
        return {
            "kind": self.KIND,
            "balance": self.balance,
            "phase": self.phase,
            "dreamers": [
                list[WireValue](row if row.fragility is not None else row[:_MOOD_REQUIRED])
                for row in self.dreamers
            ],
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> Mood:
        rows = _array(m, "dreamers", path)
        return cls(
            balance=_unit(m, "balance", path),
            phase=_label(m, "phase", path),
            dreamers=tuple(
                MoodRow.from_wire(row, f"{path}.dreamers[{i}]") for i, row in enumerate(rows)
            ),
        )


@dataclass(frozen=True, slots=True)
class DreamerWentOffline(_Item):
    """A dreamer's pod stopped sending contagion (``reason`` ``"timeout"`` or ``"status"``)."""

    KIND: ClassVar[str] = "dreamer_offline"
    dreamer: str
    reason: str

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "dreamer": self.dreamer, "reason": self.reason}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> DreamerWentOffline:
        return cls(dreamer=_name(m, "dreamer", path), reason=_label(m, "reason", path))


@dataclass(frozen=True, slots=True)
class GlitchStarted(_Item):
    """Glitch ``id`` of kind ``glitch`` started at dreamer ``origin``."""

    KIND: ClassVar[str] = "glitch_started"
    id: int
    glitch: str
    origin: str
    intensity: float

    def to_wire(self) -> WireMap:
        return {
            "kind": self.KIND,
            "id": self.id,
            "glitch": self.glitch,
            "origin": self.origin,
            "intensity": self.intensity,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> GlitchStarted:
        return cls(
            id=_count(m, "id", path, lo=1),
            glitch=_label(m, "glitch", path),
            origin=_name(m, "origin", path),
            intensity=_unit(m, "intensity", path),
        )


@dataclass(frozen=True, slots=True)
class GlitchSpread(_Item):
    """Glitch ``id`` spread from dreamer ``source`` (wire ``from``) to dreamer ``to``."""

    KIND: ClassVar[str] = "glitch_spread"
    id: int
    source: str = field(metadata=_FROM)
    to: str
    intensity: float

    def to_wire(self) -> WireMap:
        return {
            "kind": self.KIND,
            "id": self.id,
            "from": self.source,
            "to": self.to,
            "intensity": self.intensity,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> GlitchSpread:
        return cls(
            id=_count(m, "id", path, lo=1),
            source=_name(m, "from", path),
            to=_name(m, "to", path),
            intensity=_unit(m, "intensity", path),
        )


@dataclass(frozen=True, slots=True)
class GlitchFaded(_Item):
    """Nobody carries glitch ``id`` any more; ``reach`` counts the dreamers it reached."""

    KIND: ClassVar[str] = "glitch_faded"
    id: int
    glitch: str
    origin: str
    reach: int
    lasted_s: float

    def to_wire(self) -> WireMap:
        return {
            "kind": self.KIND,
            "id": self.id,
            "glitch": self.glitch,
            "origin": self.origin,
            "reach": self.reach,
            "lasted_s": self.lasted_s,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> GlitchFaded:
        return cls(
            id=_count(m, "id", path, lo=1),
            glitch=_label(m, "glitch", path),
            origin=_name(m, "origin", path),
            reach=_count(m, "reach", path),
            lasted_s=_seconds(m, "lasted_s", path),
        )


@dataclass(frozen=True, slots=True)
class PhaseFigures:
    """Why a phase changed: the balance, the threshold it crossed, and for how long."""

    balance: float
    threshold: float
    held_s: float

    def to_wire(self) -> WireMap:
        return {"balance": self.balance, "threshold": self.threshold, "held_s": self.held_s}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> PhaseFigures:
        return cls(
            balance=_unit(m, "balance", path),
            threshold=_unit(m, "threshold", path),
            held_s=_seconds(m, "held_s", path),
        )


@dataclass(frozen=True, slots=True)
class RecoveryActions:
    """What recovery did when the room collapsed."""

    #: Factor applied to the channel strength.
    damping: float
    #: Glitch carriers whose outgoing contagion was cut.
    isolated: tuple[str, ...]
    #: The safe scene the room moved to.
    scene: str
    #: Whether recovery opened a storytelling circle.
    circle: bool
    #: How many pods got a calm or breathe cue.
    cues: int

    def to_wire(self) -> WireMap:
        return {
            "damping": self.damping,
            "isolated": list[WireValue](self.isolated),
            "scene": self.scene,
            "circle": self.circle,
            "cues": self.cues,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> RecoveryActions:
        return cls(
            damping=_unit(m, "damping", path),
            isolated=_strings(m, "isolated", path, NAME_RE),
            scene=_scene(m, "scene", path),
            circle=get_bool(m, "circle", path),
            cues=_count(m, "cues", path),
        )


@dataclass(frozen=True, slots=True)
class PhaseChanged(_Item):
    """The recovery phase moved from ``source`` (wire ``from``) to ``to``."""

    KIND: ClassVar[str] = "phase"
    source: str = field(metadata=_FROM)
    to: str
    reason: str
    figures: PhaseFigures
    #: Present on a move to ``collapsed``.
    actions: RecoveryActions | None = None

    def to_wire(self) -> WireMap:
        out: WireMap = {
            "kind": self.KIND,
            "from": self.source,
            "to": self.to,
            "reason": self.reason,
            "figures": self.figures.to_wire(),
        }
        if self.actions is not None:
            out["actions"] = self.actions.to_wire()
        return out

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> PhaseChanged:
        actions = (
            RecoveryActions.from_wire(get_map(m, "actions", path), f"{path}.actions")
            if optional(m, "actions")
            else None
        )
        return cls(
            source=_label(m, "from", path),
            to=_label(m, "to", path),
            reason=_reason(m, "reason", path),
            figures=PhaseFigures.from_wire(get_map(m, "figures", path), f"{path}.figures"),
            actions=actions,
        )


@dataclass(frozen=True, slots=True)
class SceneChanged(_Item):
    """The room moved from scene ``source`` (wire ``from``) to scene ``to``."""

    KIND: ClassVar[str] = "scene"
    source: str = field(metadata=_FROM)
    to: str
    #: ``transition``, ``trap``, ``recovery`` or ``narrative``.
    reason: str
    #: The new scene's text, so a client can show it (absent from older servers).
    text: str | None = None

    def to_wire(self) -> WireMap:
        out: WireMap = {"kind": self.KIND, "from": self.source, "to": self.to}
        out["reason"] = self.reason
        if self.text is not None:
            out["text"] = self.text
        return out

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> SceneChanged:
        return cls(
            source=_scene(m, "from", path),
            to=_scene(m, "to", path),
            reason=_label(m, "reason", path),
            text=get_str(m, "text", path, max_len=MAX_SCENE_TEXT) if optional(m, "text") else None,
        )


@dataclass(frozen=True, slots=True)
class NarrativeChanged(_Item):
    """An uploaded template replaced the room's narrative."""

    KIND: ClassVar[str] = "narrative"
    title: str
    by: str
    entry: str

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "title": self.title, "by": self.by, "entry": self.entry}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> NarrativeChanged:
        return cls(
            title=get_str(m, "title", path, min_len=1, max_len=MAX_TITLE),
            by=_name(m, "by", path),
            entry=_scene(m, "entry", path),
        )


@dataclass(frozen=True, slots=True)
class TrapCaught(_Item):
    """The room stayed in ``scene`` past its maximum dwell; a ``scene`` item to safety follows."""

    KIND: ClassVar[str] = "trap"
    scene: str
    dwell_s: float
    reason: str

    def to_wire(self) -> WireMap:
        return {
            "kind": self.KIND,
            "scene": self.scene,
            "dwell_s": self.dwell_s,
            "reason": self.reason,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> TrapCaught:
        return cls(
            scene=_scene(m, "scene", path),
            dwell_s=_seconds(m, "dwell_s", path),
            reason=_reason(m, "reason", path),
        )


@dataclass(frozen=True, slots=True)
class NightmareReleased(_Item):
    """A dreamer caught in a scene loop is released for ``for_s`` seconds."""

    KIND: ClassVar[str] = "nightmare_released"
    dreamer: str
    #: The scenes of the loop.
    loop: tuple[str, ...]
    valence: float
    arousal: float
    for_s: float

    def to_wire(self) -> WireMap:
        return {
            "kind": self.KIND,
            "dreamer": self.dreamer,
            "loop": list[WireValue](self.loop),
            "valence": self.valence,
            "arousal": self.arousal,
            "for_s": self.for_s,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> NightmareReleased:
        return cls(
            dreamer=_name(m, "dreamer", path),
            loop=_strings(m, "loop", path, SCENE_ID_RE),
            valence=_unit(m, "valence", path),
            arousal=_unit(m, "arousal", path),
            for_s=_seconds(m, "for_s", path),
        )
