"""Event items: what happened in a room during one tick, one frozen type per ``kind``.

An ``event`` message (:class:`~.messages.Event`) carries a list of *items*;
on the wire each item is a msgpack map whose ``"kind"`` key names its type
and whose other keys are its fields. On the Python side each kind is a
frozen, slotted dataclass with a ``KIND`` class constant, ``to_wire()`` and
``from_wire(m, path)``. The README's protocol section lists every kind and
field; ``tests/test_readme.py`` keeps that table and this module in step.

How it works:

- **Building.** The dream engine and the room state build these types; mypy
  checks their fields. No other module writes an item as a dict: ``to_wire``
  is the only place the wire map of a kind is spelled out.
- **Reading.** :func:`item_from_wire` dispatches on ``kind`` through
  :data:`EVENT_TYPES`; ``from_wire`` checks every field (type, range,
  length, pattern) with the :mod:`.wire` helpers and raises
  :class:`~.errors.InvalidMessage` naming the field, for example
  ``event.items[3].intensity`` or ``event.items[0].dreamers[2].valence``.
  Keys a kind does not know are ignored, and so are trailing columns of a
  ``mood`` row, so a newer server can add fields without breaking a client.
- **Unknown kinds** become :class:`UnknownEvent` (the map kept as it came),
  so an older client shows a newer server's items instead of failing, and
  ``to_wire`` gives the same map back.
- **Readers** of a received :class:`~.messages.Event` call :func:`items_of`,
  which never raises: an item that fails validation also becomes an
  :class:`UnknownEvent`, whose ``problem`` says what was wrong, so a
  malformed item is shown generically and never crashes a client. A reader
  that needs one kind only calls :func:`items_of_type`, which reads just
  that kind and skips malformed items.

Field names that are Python keywords get a Python name and keep their wire
key (``from`` is ``source``); :func:`wire_keys` gives a type's wire keys.
A ``mood`` row is a :class:`MoodRow` (a named tuple: one is built per
dreamer per tick, so it must be cheap) and travels as the compact array
``[name, valence, arousal, glitch, seq, fragility]``; ``fragility`` is a
trailing column a reader may find missing (older servers) and ignores
columns after it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import TYPE_CHECKING, ClassVar, NamedTuple, Self, TypeAlias, TypeVar

from .errors import InvalidMessage
from .narrative import MAX_SCENE_TEXT, MAX_TITLE, SCENE_ID_RE
from .wire import (
    MAX_TEXT,
    NAME_RE,
    WireMap,
    WireValue,
    get_bool,
    get_float,
    get_int,
    get_map,
    get_str,
    optional,
)

if TYPE_CHECKING:
    from .messages import Event

__all__ = [
    "EVENT_TYPES",
    "CircleClosed",
    "CircleLifted",
    "CircleOpened",
    "CircleTurn",
    "DreamerWentOffline",
    "EventItem",
    "GlitchFaded",
    "GlitchSpread",
    "GlitchStarted",
    "InputRefused",
    "KnownEvent",
    "MemberJoined",
    "MemberLeft",
    "Mood",
    "MoodRow",
    "NarrativeChanged",
    "NightmareReleased",
    "PhaseChanged",
    "PhaseFigures",
    "PodCameOnline",
    "PodWentOffline",
    "RecoveryActions",
    "Said",
    "SceneChanged",
    "TemplateRejected",
    "TrapCaught",
    "UnknownEvent",
    "item_from_wire",
    "items_of",
    "items_of_type",
    "wire_keys",
]

#: Longest ``kind``, phase, role, glitch kind or other short label.
MAX_LABEL = 32
#: Longest free-text reason (a template rejection quotes the validator).
MAX_REASON = 1000
#: Largest count, id or sequence number.
MAX_COUNT = 2**62
#: Longest duration in seconds.
MAX_SECONDS = 1e9
#: Most entries in one list field (dreamers, circle order, loop scenes).
MAX_ENTRIES = 1024
#: Longest session id (as in ``welcome``).
MAX_SESSION = 64


# ---------------------------------------------------------------- field readers


def _name(m: Mapping[str, object], key: str, path: str) -> str:
    """A dreamer, member or pod name (the ``hello`` name rule)."""
    return get_str(m, key, path, min_len=1, max_len=32, pattern=NAME_RE)


def _scene(m: Mapping[str, object], key: str, path: str) -> str:
    return get_str(m, key, path, min_len=1, max_len=32, pattern=SCENE_ID_RE)


def _label(m: Mapping[str, object], key: str, path: str) -> str:
    return get_str(m, key, path, min_len=1, max_len=MAX_LABEL)


def _reason(m: Mapping[str, object], key: str, path: str) -> str:
    return get_str(m, key, path, max_len=MAX_REASON)


def _unit(m: Mapping[str, object], key: str, path: str) -> float:
    return get_float(m, key, path, lo=0.0, hi=1.0)


def _seconds(m: Mapping[str, object], key: str, path: str) -> float:
    return get_float(m, key, path, lo=0.0, hi=MAX_SECONDS)


def _count(m: Mapping[str, object], key: str, path: str, *, lo: int = 0) -> int:
    return get_int(m, key, path, lo=lo, hi=MAX_COUNT)


def _array(m: Mapping[str, object], key: str, path: str) -> list[object]:
    if key not in m:
        raise InvalidMessage(f"{path}.{key}", "missing")
    value = m[key]
    if not isinstance(value, list):
        raise InvalidMessage(f"{path}.{key}", "expected an array")
    if len(value) > MAX_ENTRIES:
        raise InvalidMessage(f"{path}.{key}", f"at most {MAX_ENTRIES} entries")
    return value


def _strings(
    m: Mapping[str, object], key: str, path: str, pattern: re.Pattern[str]
) -> tuple[str, ...]:
    """An array of strings that each match ``pattern`` (names or scene ids)."""
    out: list[str] = []
    for i, value in enumerate(_array(m, key, path)):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidMessage(
                f"{path}.{key}[{i}]", f"expected a string matching {pattern.pattern}"
            )
        out.append(value)
    return tuple(out)


def _wire_map(m: Mapping[str, object]) -> WireMap:
    """A decoded map is a WireMap: the codec only produces wire values."""
    out: WireMap = {}
    for key, value in m.items():
        out[key] = value  # type: ignore[assignment]
    return out


def wire_keys(record: type) -> tuple[str, ...]:
    """The wire keys of an item or record type, in field order (``kind`` excluded)."""
    if is_dataclass(record):
        return tuple(f.metadata.get("wire", f.name) for f in fields(record))
    return tuple(getattr(record, "_fields", ()))


#: Field metadata of a field whose wire key (``from``) is a Python keyword.
_FROM = {"wire": "from"}


class _Item:
    """What every known item type shares: its ``kind``."""

    __slots__ = ()
    KIND: ClassVar[str]

    @property
    def kind(self) -> str:
        return self.KIND

    if TYPE_CHECKING:

        @classmethod
        def from_wire(cls, m: Mapping[str, object], path: str) -> Self: ...


T = TypeVar("T", bound=_Item)


# ---------------------------------------------------------------- room members


@dataclass(frozen=True, slots=True)
class MemberJoined(_Item):
    """A member's first session joined (``role`` dreamer or observer), or a pod's first sample."""

    KIND: ClassVar[str] = "joined"
    name: str
    role: str

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "name": self.name, "role": self.role}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> MemberJoined:
        return cls(name=_name(m, "name", path), role=_label(m, "role", path))


@dataclass(frozen=True, slots=True)
class MemberLeft(_Item):
    """A member's last session left the room."""

    KIND: ClassVar[str] = "left"
    name: str
    role: str

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "name": self.name, "role": self.role}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> MemberLeft:
        return cls(name=_name(m, "name", path), role=_label(m, "role", path))


@dataclass(frozen=True, slots=True)
class Said(_Item):
    """A story line told into the room."""

    KIND: ClassVar[str] = "said"
    name: str
    text: str

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "name": self.name, "text": self.text}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> Said:
        return cls(
            name=_name(m, "name", path),
            text=get_str(m, "text", path, min_len=1, max_len=MAX_TEXT),
        )


@dataclass(frozen=True, slots=True)
class PodCameOnline(_Item):
    """A pod that had gone offline sent telemetry again."""

    KIND: ClassVar[str] = "pod_online"
    name: str

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "name": self.name}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> PodCameOnline:
        return cls(name=_name(m, "name", path))


@dataclass(frozen=True, slots=True)
class PodWentOffline(_Item):
    """A pod's status (or its Last Will) says it went offline."""

    KIND: ClassVar[str] = "pod_offline"
    name: str

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "name": self.name}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> PodWentOffline:
        return cls(name=_name(m, "name", path))


@dataclass(frozen=True, slots=True)
class TemplateRejected(_Item):
    """The room refused ``name``'s template upload at run time."""

    KIND: ClassVar[str] = "template_rejected"
    name: str
    reason: str

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "name": self.name, "reason": self.reason}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> TemplateRejected:
        return cls(name=_name(m, "name", path), reason=_reason(m, "reason", path))


@dataclass(frozen=True, slots=True)
class InputRefused(_Item):
    """An input (``"say"``, ``"template"``…) the room could not apply, for the sender's session."""

    KIND: ClassVar[str] = "input_refused"
    session: str
    input: str
    reason: str

    def to_wire(self) -> WireMap:
        return {
            "kind": self.KIND,
            "session": self.session,
            "input": self.input,
            "reason": self.reason,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> InputRefused:
        return cls(
            session=get_str(m, "session", path, min_len=1, max_len=MAX_SESSION),
            input=_label(m, "input", path),
            reason=_reason(m, "reason", path),
        )


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
class CircleOpened(_Item):
    """A storytelling circle opened ``by`` a dreamer or ``"recovery"``."""

    KIND: ClassVar[str] = "circle_opened"
    by: str
    #: The present dreamers, in turn order.
    order: tuple[str, ...]
    #: Who speaks first.
    turn: str
    turn_s: float

    def to_wire(self) -> WireMap:
        return {
            "kind": self.KIND,
            "by": self.by,
            "order": list[WireValue](self.order),
            "turn": self.turn,
            "turn_s": self.turn_s,
        }

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> CircleOpened:
        return cls(
            by=_name(m, "by", path),
            order=_strings(m, "order", path, NAME_RE),
            turn=_name(m, "turn", path),
            turn_s=_seconds(m, "turn_s", path),
        )


@dataclass(frozen=True, slots=True)
class CircleTurn(_Item):
    """The turn passed ``to`` a dreamer (``told``, ``passed``, ``timeout`` or ``left``)."""

    KIND: ClassVar[str] = "circle_turn"
    to: str
    reason: str

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "to": self.to, "reason": self.reason}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> CircleTurn:
        return cls(to=_name(m, "to", path), reason=_label(m, "reason", path))


@dataclass(frozen=True, slots=True)
class CircleLifted(_Item):
    """A story line told in turn ``by`` a dreamer lifted the room by ``lift``."""

    KIND: ClassVar[str] = "circle_lifted"
    by: str
    lift: float

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "by": self.by, "lift": self.lift}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> CircleLifted:
        return cls(by=_name(m, "by", path), lift=_unit(m, "lift", path))


@dataclass(frozen=True, slots=True)
class CircleClosed(_Item):
    """The circle closed; ``told`` lines were told in turn."""

    KIND: ClassVar[str] = "circle_closed"
    reason: str
    told: int

    def to_wire(self) -> WireMap:
        return {"kind": self.KIND, "reason": self.reason, "told": self.told}

    @classmethod
    def from_wire(cls, m: Mapping[str, object], path: str) -> CircleClosed:
        return cls(reason=_reason(m, "reason", path), told=_count(m, "told", path))


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


# ---------------------------------------------------------------- unknown kinds


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An item this version does not know, or one that failed validation.

    ``fields`` are the item's other keys as they came. ``problem`` is None for
    a kind this version does not know, and the validation error for a known
    kind whose fields are wrong (only :func:`items_of` builds those).
    """

    kind: str
    fields: WireMap
    problem: str | None = None

    def to_wire(self) -> WireMap:
        return {"kind": self.kind, **self.fields}


# ---------------------------------------------------------------- registry

KnownEvent: TypeAlias = (
    MemberJoined
    | MemberLeft
    | Said
    | PodCameOnline
    | PodWentOffline
    | TemplateRejected
    | InputRefused
    | Mood
    | DreamerWentOffline
    | GlitchStarted
    | GlitchSpread
    | GlitchFaded
    | PhaseChanged
    | SceneChanged
    | NarrativeChanged
    | TrapCaught
    | CircleOpened
    | CircleTurn
    | CircleLifted
    | CircleClosed
    | NightmareReleased
)
EventItem: TypeAlias = KnownEvent | UnknownEvent

#: Every known kind and its type, in the README's order.
EVENT_TYPES: dict[str, type[KnownEvent]] = {
    cls.KIND: cls
    for cls in (
        MemberJoined,
        MemberLeft,
        Said,
        PodCameOnline,
        PodWentOffline,
        TemplateRejected,
        InputRefused,
        Mood,
        DreamerWentOffline,
        GlitchStarted,
        GlitchSpread,
        GlitchFaded,
        PhaseChanged,
        SceneChanged,
        NarrativeChanged,
        TrapCaught,
        CircleOpened,
        CircleTurn,
        CircleLifted,
        CircleClosed,
        NightmareReleased,
    )
}


def item_from_wire(m: Mapping[str, object], path: str = "item") -> EventItem:
    """Read one item; an unknown kind is an :class:`UnknownEvent`, a bad field raises.

    Raises :class:`~.errors.InvalidMessage` naming the field, and nothing else.
    """
    if not isinstance(m, Mapping):
        raise InvalidMessage(path, "expected a map")
    kind = get_str(m, "kind", path, min_len=1, max_len=MAX_LABEL)
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        return UnknownEvent(kind, _rest(m))
    return cls.from_wire(m, path)


def items_of(event: Event) -> list[EventItem]:
    """The items of a received event, typed; never raises.

    An item that fails validation becomes an :class:`UnknownEvent` whose
    ``problem`` is the validation error: a reader shows it generically.
    """
    return [_lenient(m, f"event.items[{i}]") for i, m in enumerate(event.items)]


def items_of_type(event: Event, cls: type[T]) -> list[T]:
    """The valid items of one known type, in order; never raises.

    Items of other kinds are not read at all (a reader that wants one kind
    pays for that kind only); malformed items of this kind are skipped.
    """
    out: list[T] = []
    for i, m in enumerate(event.items):
        if m.get("kind") != cls.KIND:
            continue
        try:
            out.append(cls.from_wire(m, f"event.items[{i}]"))
        except InvalidMessage:
            continue
    return out


def _lenient(m: Mapping[str, object], path: str) -> EventItem:
    try:
        return item_from_wire(m, path)
    except InvalidMessage as exc:
        kind = m.get("kind") if isinstance(m, Mapping) else None
        rest = _rest(m) if isinstance(m, Mapping) else {}
        return UnknownEvent(kind if isinstance(kind, str) else "?", rest, exc.message)


def _rest(m: Mapping[str, object]) -> WireMap:
    return _wire_map({k: v for k, v in m.items() if k != "kind"})
