"""Wire values, size limits and field validators shared by every message.

A *wire value* is what msgpack carries here: None, bool, int, float, str,
bytes, lists and string-keyed maps of them. Validators read one field out of a
decoded map and raise :class:`~sleepsync.protocol.errors.InvalidMessage` with
the field's path when it is missing, mistyped or out of range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from .errors import InvalidMessage, LimitExceeded

__all__ = [
    "DEFAULT_LIMITS",
    "MAX_FRAME",
    "MAX_TEXT",
    "NAME_RE",
    "ROOM_RE",
    "Limits",
    "WireMap",
    "WireValue",
    "check_depth",
    "get_bool",
    "get_float",
    "get_int",
    "get_map",
    "get_str",
    "optional",
    "validate_name",
    "validate_room",
    "validate_text",
]

WireValue: TypeAlias = (
    bool | int | float | str | bytes | list["WireValue"] | dict[str, "WireValue"] | None
)
WireMap = dict[str, WireValue]

#: Room ids are also MQTT topic segments and Redis key parts: no ``/+#{}``.
ROOM_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")
#: Dreamer names double as pod ids in topics and broker usernames.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

#: Longest story line, in characters.
MAX_TEXT = 500
#: Largest inbound frame by default, in bytes (the server's ``--max-frame-bytes``).
MAX_FRAME = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on one decoded frame: what the codec checks before any message.

    These bound the *shape* of a frame; the limits of single fields (a story
    line, a template's text, a name) belong to the message that carries them
    and are refused with ``invalid`` naming the field. So a string may be as
    long as a frame can hold: the field it lands in decides. The worst case
    memory of one decode is about ``max_frame`` times a small constant: every
    other bound caps a part of what fits in ``max_frame``.
    """

    #: Largest frame accepted, in bytes (bigger: ``too_big``, close 1009).
    max_frame: int = MAX_FRAME
    #: Longest string, in bytes (None: as long as the frame).
    max_str: int | None = None
    #: Longest binary field, in bytes (None: as long as the frame).
    max_bin: int | None = None
    #: Most items in one array.
    max_array: int = 1024
    #: Most keys in one map.
    max_map: int = 256
    #: Deepest nesting of arrays and maps.
    max_depth: int = 16

    @property
    def str_limit(self) -> int:
        return self.max_frame if self.max_str is None else min(self.max_str, self.max_frame)

    @property
    def bin_limit(self) -> int:
        return self.max_frame if self.max_bin is None else min(self.max_bin, self.max_frame)


DEFAULT_LIMITS = Limits()


def check_depth(value: object, max_depth: int) -> None:
    """Raise :class:`LimitExceeded` when ``value`` nests deeper than ``max_depth``.

    Recursive, but never deeper than ``max_depth`` calls: the walk stops at
    the first container past the limit, so a hostile frame cannot exhaust
    the Python stack.
    """
    if not _within(value, max_depth):
        raise LimitExceeded(f"nesting deeper than {max_depth} levels")


def _within(value: object, budget: int) -> bool:
    if type(value) is dict:
        children: Iterable[object] = value.values()
    elif type(value) is list:
        children = value
    else:
        return True
    if budget <= 0:
        return False
    budget -= 1
    for child in children:
        kind = type(child)
        if (kind is dict or kind is list) and not _within(child, budget):
            return False
    return True


def _field(m: Mapping[str, object], key: str, path: str) -> object:
    if key not in m:
        raise InvalidMessage(f"{path}.{key}", "missing")
    return m[key]


def optional(m: Mapping[str, object], key: str) -> bool:
    """True when ``key`` is present and not None."""
    return m.get(key) is not None


def get_str(
    m: Mapping[str, object],
    key: str,
    path: str,
    *,
    max_len: int = MAX_TEXT,
    min_len: int = 0,
    pattern: re.Pattern[str] | None = None,
) -> str:
    value = _field(m, key, path)
    if not isinstance(value, str):
        raise InvalidMessage(f"{path}.{key}", f"expected a string, got {_kind(value)}")
    if not min_len <= len(value) <= max_len:
        raise InvalidMessage(
            f"{path}.{key}", f"length must be {min_len}..{max_len}, got {len(value)}"
        )
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidMessage(f"{path}.{key}", f"must match {pattern.pattern}")
    return value


def get_int(m: Mapping[str, object], key: str, path: str, *, lo: int, hi: int) -> int:
    value = _field(m, key, path)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidMessage(f"{path}.{key}", f"expected an integer, got {_kind(value)}")
    if not lo <= value <= hi:
        raise InvalidMessage(f"{path}.{key}", f"must be in {lo}..{hi}, got {value}")
    return value


def get_float(m: Mapping[str, object], key: str, path: str, *, lo: float, hi: float) -> float:
    value = _field(m, key, path)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidMessage(f"{path}.{key}", f"expected a number, got {_kind(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidMessage(f"{path}.{key}", "must be finite")
    if not lo <= number <= hi:
        raise InvalidMessage(f"{path}.{key}", f"must be in [{lo}, {hi}], got {number:g}")
    return number


def get_bool(m: Mapping[str, object], key: str, path: str) -> bool:
    value = _field(m, key, path)
    if not isinstance(value, bool):
        raise InvalidMessage(f"{path}.{key}", f"expected true or false, got {_kind(value)}")
    return value


def get_map(m: Mapping[str, object], key: str, path: str) -> dict[str, object]:
    value = _field(m, key, path)
    if not isinstance(value, dict):
        raise InvalidMessage(f"{path}.{key}", f"expected a map, got {_kind(value)}")
    return value


def validate_room(room: str, path: str = "room") -> str:
    if not isinstance(room, str) or not ROOM_RE.fullmatch(room):
        raise InvalidMessage(path, f"a room id must match {ROOM_RE.pattern}")
    return room


def validate_name(name: str, path: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidMessage(path, f"a name must match {NAME_RE.pattern}")
    return name


def validate_text(text: str, path: str = "text", *, max_len: int = MAX_TEXT) -> str:
    """A story line: 1..max_len characters, no control characters."""
    if not isinstance(text, str):
        raise InvalidMessage(path, f"expected a string, got {_kind(text)}")
    stripped = text.strip()
    if not stripped:
        raise InvalidMessage(path, "must not be empty")
    if len(stripped) > max_len:
        raise InvalidMessage(path, f"at most {max_len} characters, got {len(stripped)}")
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in stripped):
        raise InvalidMessage(path, "must not contain control characters")
    return stripped


def _kind(value: object) -> str:
    if value is None:
        return "nil"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        bytes: "binary",
        list: "an array",
        dict: "a map",
    }.get(type(value), type(value).__name__)
