"""Room inputs: what a node sends to a room's owner, and their inbox encoding.

Inputs from websocket clients may arrive at any node; they travel to the
owner through the backend inbox as small msgpack maps keyed by ``k``.
Telemetry never travels this way: only the owner subscribes to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias, cast

import msgpack

from sleepsync.protocol.errors import DecodeError
from sleepsync.protocol.messages import Role, TemplateFormat
from sleepsync.protocol.telemetry import TelemetrySample

from .engine.api import GlitchInjected, PodFault, PodOffline, Telemetry

__all__ = [
    "ForgetInput",
    "MemberJoin",
    "MemberLeave",
    "RoomInput",
    "StoryInput",
    "TemplateInput",
    "TickRecord",
    "decode_input",
    "decode_tick",
    "encode_input",
    "encode_tick",
]


@dataclass(frozen=True, slots=True)
class MemberJoin:
    session: str
    name: str
    role: Role
    node: str


@dataclass(frozen=True, slots=True)
class MemberLeave:
    session: str


@dataclass(frozen=True, slots=True)
class StoryInput:
    session: str
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class TemplateInput:
    """An already validated template upload (the receiving node checked it).

    ``session`` is the uploader's ("" in records stored before it was kept).
    """

    name: str
    format: TemplateFormat
    text: str
    session: str = ""


@dataclass(frozen=True, slots=True)
class ForgetInput:
    """An operator asked to erase the room (its node checked the operator's token).

    The owner never ticks it: it erases the room instead (see ``rooms``)."""

    session: str
    name: str


RoomInput: TypeAlias = MemberJoin | MemberLeave | StoryInput | TemplateInput | ForgetInput


def encode_input(item: RoomInput) -> bytes:
    if isinstance(item, MemberJoin):
        fields: dict[str, str] = {
            "k": "join",
            "s": item.session,
            "n": item.name,
            "r": item.role,
            "node": item.node,
        }
    elif isinstance(item, MemberLeave):
        fields = {"k": "leave", "s": item.session}
    elif isinstance(item, StoryInput):
        fields = {"k": "say", "s": item.session, "n": item.name, "x": item.text}
    elif isinstance(item, ForgetInput):
        fields = {"k": "forget", "s": item.session, "n": item.name}
    else:
        fields = {
            "k": "template",
            "n": item.name,
            "f": item.format,
            "x": item.text,
            "s": item.session,
        }
    return msgpack.packb(fields, use_bin_type=True)


def decode_input(data: bytes) -> RoomInput:
    """Inverse of :func:`encode_input`; raises DecodeError on anything else."""
    try:
        m = msgpack.unpackb(data, raw=False)
        kind = m["k"]
        if kind == "join":
            role: Literal["dreamer", "observer"] = "dreamer" if m["r"] == "dreamer" else "observer"
            return MemberJoin(str(m["s"]), str(m["n"]), role, str(m["node"]))
        if kind == "leave":
            return MemberLeave(str(m["s"]))
        if kind == "say":
            return StoryInput(str(m["s"]), str(m["n"]), str(m["x"]))
        if kind == "forget":
            return ForgetInput(str(m["s"]), str(m["n"]))
        if kind == "template":
            fmt: TemplateFormat = "json" if m["f"] == "json" else "toml"
            return TemplateInput(str(m["n"]), fmt, str(m["x"]), str(m.get("s", "")))
    except Exception as exc:
        raise DecodeError("malformed room input") from exc
    raise DecodeError(f"unknown room input kind {kind!r}")


# Engine inputs that come from outside the room (telemetry and pod state) are
# recorded with each event, so a new owner can replay the ticks after the last
# snapshot exactly. Inputs derived from room inputs (joins, story lines) are not.
ExternalInput: TypeAlias = Telemetry | PodOffline | PodFault | GlitchInjected


@dataclass(frozen=True, slots=True)
class TickRecord:
    """The inputs of one tick, as stored beside its event for replay."""

    room: list[RoomInput]
    external: list[ExternalInput]


def _encode_external(item: ExternalInput) -> dict[str, object]:
    if isinstance(item, Telemetry):
        return {"k": "tel", "s": item.sample.to_wire()}
    if isinstance(item, PodOffline):
        return {"k": "off", "d": item.dreamer}
    if isinstance(item, PodFault):
        return {"k": "fault", "d": item.dreamer, "n": item.invalid_count}
    return {"k": "glitch", "d": item.dreamer, "i": item.intensity}


def _decode_external(m: dict[str, object]) -> ExternalInput:
    kind = m["k"]
    if kind == "tel":
        sample = m["s"]
        assert isinstance(sample, dict)
        return Telemetry(TelemetrySample.from_wire(sample))
    if kind == "off":
        return PodOffline(str(m["d"]))
    if kind == "fault":
        return PodFault(str(m["d"]), int(cast(int, m["n"])))
    if kind == "glitch":
        return GlitchInjected(str(m["d"]), float(cast(float, m["i"])))
    raise DecodeError(f"unknown external input kind {kind!r}")


def encode_tick(room: list[RoomInput], external: list[ExternalInput]) -> bytes:
    if not room and not external:
        return b""
    packed = {"r": [encode_input(i) for i in room], "e": [_encode_external(i) for i in external]}
    return msgpack.packb(packed, use_bin_type=True)


def decode_tick(data: bytes) -> TickRecord:
    if not data:
        return TickRecord([], [])
    try:
        m = msgpack.unpackb(data, raw=False)
        return TickRecord([decode_input(b) for b in m["r"]], [_decode_external(e) for e in m["e"]])
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError("malformed tick record") from exc
