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

The kinds live in three modules by subject — :mod:`.members` (who is in the
room), :mod:`.dream` (mood, glitches, phases, scenes, nightmares) and
:mod:`.circle` — over :mod:`.fields` (the field readers and the shared base);
this package is the one import path: the registry and the readers.

Field names that are Python keywords get a Python name and keep their wire
key (``from`` is ``source``); :func:`wire_keys` gives a type's wire keys.
A ``mood`` row is a :class:`MoodRow` (a named tuple: one is built per
dreamer per tick, so it must be cheap) and travels as the compact array
``[name, valence, arousal, glitch, seq, fragility]``; ``fragility`` is a
trailing column a reader may find missing (older servers) and ignores
columns after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from ..errors import InvalidMessage
from ..wire import WireMap, get_str

if TYPE_CHECKING:
    from ..messages import Event

from .circle import CircleClosed, CircleLifted, CircleOpened, CircleTurn
from .dream import (
    DreamerWentOffline,
    GlitchFaded,
    GlitchSpread,
    GlitchStarted,
    Mood,
    MoodRow,
    NarrativeChanged,
    NightmareReleased,
    PhaseChanged,
    PhaseFigures,
    RecoveryActions,
    SceneChanged,
    TrapCaught,
)
from .fields import (
    MAX_COUNT,
    MAX_ENTRIES,
    MAX_LABEL,
    MAX_REASON,
    MAX_SECONDS,
    MAX_SESSION,
    T,
    _wire_map,
    wire_keys,
)
from .members import (
    InputRefused,
    MemberJoined,
    MemberLeft,
    PodCameOnline,
    PodWentOffline,
    Said,
    TemplateRejected,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_COUNT",
    "MAX_ENTRIES",
    "MAX_LABEL",
    "MAX_REASON",
    "MAX_SECONDS",
    "MAX_SESSION",
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
