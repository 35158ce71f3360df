"""Event items of the storytelling circle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..wire import (
    NAME_RE,
    WireMap,
    WireValue,
)

if TYPE_CHECKING:
    pass

from .fields import (
    _count,
    _Item,
    _label,
    _name,
    _reason,
    _seconds,
    _strings,
    _unit,
)

__all__ = [
    "CircleClosed",
    "CircleLifted",
    "CircleOpened",
    "CircleTurn",
]


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
