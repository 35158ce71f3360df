"""Event items about who is in a room: members, pods, refused inputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..wire import (
    MAX_TEXT,
    WireMap,
    get_str,
)

if TYPE_CHECKING:
    pass

from .fields import (
    MAX_SESSION,
    _Item,
    _label,
    _name,
    _reason,
)

__all__ = [
    "InputRefused",
    "MemberJoined",
    "MemberLeft",
    "PodCameOnline",
    "PodWentOffline",
    "Said",
    "TemplateRejected",
]


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
