"""Field readers and the base every event item type shares (see the package docstring)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from typing import TYPE_CHECKING, ClassVar, Self, TypeVar

from ..errors import InvalidMessage
from ..narrative import SCENE_ID_RE
from ..wire import (
    NAME_RE,
    WireMap,
    get_float,
    get_int,
    get_str,
)

if TYPE_CHECKING:
    pass

__all__ = ["wire_keys"]

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
