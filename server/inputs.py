"""Room inputs: what a node sends to a room's owner, their inbox encoding, tick records.

Inputs from websocket clients may arrive at any node; they travel to the
owner through the backend inbox as small msgpack maps keyed by ``k``.
Telemetry never travels this way: only the owner subscribes to it.

A tick record (:func:`encode_tick`) is what each stored event keeps of its
tick's inputs, so a new owner can replay the tick. A template upload is
recorded by the sha256 digest of its text, never by the text itself: the
room stores each text once, by digest, beside its events
(:func:`template_texts` gives them to the owner's commit), so a client that
uploads the same 16 KB template over and over adds 64 bytes per tick to
the event stream, not 16 KB. :func:`decode_tick` takes those texts back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias, cast

import msgpack

from sleepsync.protocol.errors import DecodeError
from sleepsync.protocol.messages import Role, TemplateFormat
from sleepsync.protocol.telemetry import TelemetrySample

from .engine.api import NO_VITALS, GlitchInjected, PodFault, PodOffline, Telemetry

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
    "template_digest",
    "template_texts",
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
# Telemetry is recorded as the derived state the room worked on (pod, boot, seq,
# time, valence, arousal): never vital signs, which rooms never get.
ExternalInput: TypeAlias = Telemetry | PodOffline | PodFault | GlitchInjected


@dataclass(frozen=True, slots=True)
class TickRecord:
    """The inputs of one tick, as stored beside its event for replay."""

    room: list[RoomInput]
    external: list[ExternalInput]


def _encode_external(item: ExternalInput) -> dict[str, object]:
    if isinstance(item, Telemetry):
        s = item.sample  # derived state only: a record never holds vital signs
        return {
            "k": "tel",
            "p": s.pod,
            "b": s.boot,
            "q": s.seq,
            "t": s.ts,
            "v": s.valence,
            "a": s.arousal,
        }
    if isinstance(item, PodOffline):
        return {"k": "off", "d": item.dreamer}
    if isinstance(item, PodFault):
        return {"k": "fault", "d": item.dreamer, "n": item.invalid_count}
    return {"k": "glitch", "d": item.dreamer, "i": item.intensity}


def _decode_external(m: dict[str, object]) -> ExternalInput:
    kind = m["k"]
    if kind == "tel":
        if "s" in m:  # written before records dropped vital signs
            wire = m["s"]
            assert isinstance(wire, dict)
            return Telemetry.derived(TelemetrySample.from_wire(wire))
        sample = TelemetrySample(
            pod=str(m["p"]),
            boot=str(m["b"]),
            seq=int(cast(int, m["q"])),
            ts=float(cast(float, m["t"])),
            vitals=NO_VITALS,
            valence=float(cast(float, m["v"])),
            arousal=float(cast(float, m["a"])),
        )
        return Telemetry(sample)
    if kind == "off":
        return PodOffline(str(m["d"]))
    if kind == "fault":
        return PodFault(str(m["d"]), int(cast(int, m["n"])))
    if kind == "glitch":
        return GlitchInjected(str(m["d"]), float(cast(float, m["i"])))
    raise DecodeError(f"unknown external input kind {kind!r}")


def template_digest(text: str) -> str:
    """The name a tick record gives a template text: its sha256, hex."""
    return hashlib.sha256(text.encode()).hexdigest()


def template_texts(room: Sequence[RoomInput]) -> dict[str, bytes]:
    """digest -> UTF-8 text of every template upload among ``room`` (once each)."""
    return {
        template_digest(item.text): item.text.encode()
        for item in room
        if isinstance(item, TemplateInput)
    }


def _record_input(item: RoomInput) -> bytes:
    if isinstance(item, TemplateInput):
        fields = {
            "k": "template",
            "n": item.name,
            "f": item.format,
            "h": template_digest(item.text),
            "s": item.session,
        }
        return msgpack.packb(fields, use_bin_type=True)
    return encode_input(item)


def _resolve(data: bytes, templates: Mapping[str, bytes]) -> RoomInput:
    m = msgpack.unpackb(data, raw=False)
    if not (isinstance(m, dict) and m.get("k") == "template" and "h" in m):
        return decode_input(data)  # records written before templates were named by digest too
    digest = str(m["h"])
    text = templates.get(digest)
    if text is None:
        raise DecodeError(f"template {digest[:12]} is not stored (any more)")
    fmt: TemplateFormat = "json" if m["f"] == "json" else "toml"
    return TemplateInput(str(m["n"]), fmt, text.decode(), str(m.get("s", "")))


def encode_tick(room: Sequence[RoomInput], external: Sequence[ExternalInput]) -> bytes:
    """The tick's record: room inputs (templates by digest), then external inputs."""
    if not room and not external:
        return b""
    packed = {"r": [_record_input(i) for i in room], "e": [_encode_external(i) for i in external]}
    return msgpack.packb(packed, use_bin_type=True)


def decode_tick(data: bytes, templates: Mapping[str, bytes] | None = None) -> TickRecord:
    """Inverse of :func:`encode_tick`, with the texts of the templates it names.

    Raises DecodeError for a malformed record or a template not in ``templates``.
    """
    if not data:
        return TickRecord([], [])
    try:
        m = msgpack.unpackb(data, raw=False)
        room = [_resolve(b, templates or {}) for b in m["r"]]
        return TickRecord(room, [_decode_external(e) for e in m["e"]])
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError("malformed tick record") from exc
