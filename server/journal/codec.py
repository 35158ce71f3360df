"""Journal records to bytes and back (the format is in :mod:`.schema`).

How it works: a :class:`JournalEncoder` and a :class:`JournalDecoder` each
keep the same three tables while they walk a file in order: the names seen
so far (written once, then as ids), the templates defined so far (by hash)
and the number channels (last value per field and name). The encoder turns
typed values into compact records; the decoder checks every record, field
by field, and turns it back into the same typed values, or raises
:class:`~.schema.JournalError` naming the record and the field. Neither does
any I/O: :mod:`.files` moves the bytes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import NoReturn

import msgpack

from sleepsync.protocol.errors import InvalidMessage, TemplateInvalid
from sleepsync.protocol.events import EventItem, Mood, MoodRow, item_from_wire
from sleepsync.protocol.narrative import NarrativeTemplate, template_from_wire, template_to_wire
from sleepsync.protocol.telemetry import TelemetrySample
from sleepsync.protocol.wire import MAX_TEXT

from ..engine.api import (
    DreamerJoined,
    DreamerLeft,
    EngineInput,
    GlitchInjected,
    PodFault,
    PodOffline,
    StoryLine,
    Telemetry,
    TemplateUploaded,
)
from ..engine.config import EngineConfig
from .schema import (
    END_REASONS,
    FORMAT_VERSION,
    MAGIC,
    MAX_NAMES,
    MAX_STR,
    MAX_TEMPLATES,
    STRIPPED_VITALS,
    JournalEnd,
    JournalError,
    JournalHeader,
    JournalTick,
    Segment,
    TemplateUse,
    template_hash,
)

__all__ = ["JournalDecoder", "JournalEncoder", "Record"]

#: What one decoded record gives: the hash of a template definition, None for a name.
Record = JournalHeader | JournalTick | JournalEnd | str | None

#: Channel values stay below this in magnitude (exact in a double).
_EXACT = 2**53
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_SEED = 2**64
_MAX_TICK = 2**62


# ---------------------------------------------------------------- encoding


class JournalEncoder:
    """Turns one file's header, ticks and end into record bytes, in order."""

    def __init__(self) -> None:
        self._packer = msgpack.Packer(use_bin_type=True)
        self._names: dict[str, int] = {}
        self._templates: set[str] = set()
        self._channels: dict[tuple[str, int], int] = {}
        self._next_tick = 0
        self._pending: list[bytes] = []

    def header(self, header: JournalHeader, narrative: NarrativeTemplate) -> bytes:
        """MAGIC, the header record and the start narrative's definition."""
        seg = header.segment
        doc = {
            "format": FORMAT_VERSION,
            "sleepsync": header.sleepsync,
            "room": header.room,
            "seed": header.seed,
            "config": header.config.to_wire(),
            "hash_every": header.hash_every,
            "start": {
                "tick": header.start_tick,
                "state": header.start_state,
                "hash": header.start_hash,
                "narrative": header.narrative,
            },
            "segment": {
                "node": seg.node,
                "epoch": seg.epoch,
                "index": seg.index,
                "reason": seg.reason,
                "created": seg.created,
                "previous": seg.previous,
            },
        }
        self._next_tick = header.start_tick
        out = [MAGIC, self._packer.pack(["H", doc])]
        self._template(narrative, header.narrative)
        out += self._pending
        self._pending = []
        return b"".join(out)

    def tick(self, tick: JournalTick) -> bytes:
        """One ``K`` record, after the name and template definitions it needs."""
        skip = tick.tick - self._next_tick
        if skip < 0:
            raise JournalError(f"tick {tick.tick} comes after tick {self._next_tick - 1}")
        self._next_tick = tick.tick + 1
        record: list[object] = ["K", skip]
        if tick.inputs or tick.items or tick.hash is not None:
            record.append([self._input(i) for i in tick.inputs] if tick.inputs else None)
        if tick.items or tick.hash is not None:
            record.append([self._item(i) for i in tick.items] if tick.items else None)
        if tick.hash is not None:
            record.append(tick.hash)
        packed = self._packer.pack(record)
        if not self._pending:
            return packed
        out = b"".join([*self._pending, packed])
        self._pending = []
        return out

    def end(self, end: JournalEnd) -> bytes:
        return self._packer.pack(["E", {"tick": end.tick, "hash": end.hash, "reason": end.reason}])

    # -------------------------------------------------------- parts
    def _id(self, name: str) -> int:
        i = self._names.get(name)
        if i is None:
            i = self._names[name] = len(self._names)
            self._pending.append(self._packer.pack(["N", name]))
        return i

    def _template(self, template: NarrativeTemplate, digest: str | None = None) -> str:
        digest = digest or template_hash(template)
        if digest not in self._templates:
            self._templates.add(digest)
            self._pending.append(self._packer.pack(["P", digest, template_to_wire(template)]))
        return digest

    def _milli(self, field: str, owner: int, x: object, scale: int = 1000) -> object:
        """A number channel (see the schema): an int delta, a float, or ``[value]``."""
        if type(x) is not float:
            return [x]
        if math.isfinite(x) and abs(x) * scale < _EXACT:
            m = round(x * scale)
            if m / scale == x and (m or math.copysign(1.0, x) > 0):
                key = (field, owner)
                delta = m - self._channels.get(key, 0)
                self._channels[key] = m
                return delta
        return x

    def _count(self, field: str, owner: int, x: int | None) -> object:
        if type(x) is int and abs(x) < _EXACT:
            key = (field, owner)
            delta = x - self._channels.get(key, 0)
            self._channels[key] = x
            return delta
        return [x]

    def _input(self, inp: EngineInput) -> list[object]:
        if isinstance(inp, Telemetry):
            s = inp.sample
            pod = self._id(s.pod)
            return [
                "t",
                pod,
                self._milli("ts", pod, s.ts),
                self._id(s.boot),
                self._count("sq", pod, s.seq),
                self._milli("tv", pod, s.valence),
                self._milli("ta", pod, s.arousal),
            ]
        if isinstance(inp, DreamerJoined):
            return ["j", self._id(inp.dreamer)]
        if isinstance(inp, DreamerLeft):
            return ["l", self._id(inp.dreamer)]
        if isinstance(inp, PodOffline):
            return ["o", self._id(inp.dreamer)]
        if isinstance(inp, PodFault):
            return ["f", self._id(inp.dreamer), inp.invalid_count]
        if isinstance(inp, GlitchInjected):
            return ["g", self._id(inp.dreamer), inp.intensity]
        if isinstance(inp, TemplateUploaded):
            return ["u", self._id(inp.author), self._template(inp.template)]
        return ["s", self._id(inp.author), inp.text]

    def _item(self, item: EventItem) -> list[object]:
        if isinstance(item, Mood):
            rows = []
            for row in item.dreamers:
                i = self._id(row.name)
                rows.append(
                    [
                        i,
                        self._milli("mv", i, row.valence),
                        self._milli("ma", i, row.arousal),
                        self._milli("mg", i, row.glitch),
                        self._count("ms", i, row.seq),
                        self._milli("mf", i, row.fragility),
                    ]
                )
            return ["m", self._milli("b", 0, item.balance), self._id(item.phase), rows]
        return ["w", item.to_wire()]


# ---------------------------------------------------------------- decoding


def _fail(where: str, what: str) -> NoReturn:
    raise JournalError(f"{where}: {what}")


def _kind(value: object) -> str:
    return "nil" if value is None else type(value).__name__


def _array(value: object, where: str, lo: int, hi: int | None = None) -> list[object]:
    if type(value) is not list:
        _fail(where, f"expected an array, got {_kind(value)}")
    if len(value) < lo or (hi is not None and len(value) > hi):
        wanted = f"{lo}" if hi == lo else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        _fail(where, f"expected {wanted} values, got {len(value)}")
    return value


def _map(value: object, where: str) -> dict[str, object]:
    if type(value) is not dict:
        _fail(where, f"expected a map, got {_kind(value)}")
    return value


def _int(value: object, where: str, lo: int, hi: int) -> int:
    if type(value) is not int:
        _fail(where, f"expected an integer, got {_kind(value)}")
    if not lo <= value <= hi:
        _fail(where, f"must be in {lo}..{hi}, got {value}")
    return value


def _float(value: object, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if type(value) is not float:
        _fail(where, f"expected a float, got {_kind(value)}")
    if not lo <= value <= hi:
        _fail(where, f"must be in [{lo}, {hi}], got {value!r}")
    return value


def _str(value: object, where: str, max_len: int = MAX_STR) -> str:
    if type(value) is not str or not 0 < len(value) <= max_len:
        _fail(where, f"expected a string of 1 to {max_len} characters, got {_kind(value)}")
    return value


def _hash(value: object, where: str) -> str:
    if type(value) is not str or not _HEX64.fullmatch(value):
        _fail(where, "expected a sha256 in hex")
    return value


def _key(m: dict[str, object], key: str, where: str) -> object:
    if key not in m:
        _fail(f"{where}.{key}", "missing")
    return m[key]


class JournalDecoder:
    """Checks and decodes one file's records in order; :meth:`record` per record."""

    def __init__(self, name: str = "journal") -> None:
        self.name = name
        self.header: JournalHeader | None = None
        self.end: JournalEnd | None = None
        self.names: list[str] = []
        self.templates: dict[str, NarrativeTemplate] = {}
        #: Template uploads seen so far, in order.
        self.uploads: list[TemplateUse] = []
        self.count = 0
        self._channels: dict[tuple[str, int], int] = {}
        self._next_tick = 0

    def where(self) -> str:
        return f"{self.name}: record {self.count}"

    def record(self, raw: object) -> Record:
        """Decode the next record; JournalError on anything wrong."""
        self.count += 1
        where = self.where()
        rec = _array(raw, where, 1)
        tag = rec[0]
        if self.header is None and tag != "H":
            _fail(where, "the file must start with its header")
        if self.end is not None:
            _fail(where, "nothing may follow the end record")
        if tag == "K":
            return self._tick(rec, where)
        if tag == "N":
            name = _str(_array(rec, where, 2, 2)[1], f"{where} (name)", 256)
            if len(self.names) >= MAX_NAMES:
                _fail(where, f"more than {MAX_NAMES} names")
            self.names.append(name)
            return None
        if tag == "P":
            return self._define(rec, where)
        if tag == "H":
            if self.header is not None:
                _fail(where, "a second header")
            self.header = self._header(_map(_array(rec, where, 2, 2)[1], f"{where} (header)"))
            self._next_tick = self.header.start_tick
            return self.header
        if tag == "E":
            self._check_narrative(where)
            self.end = self._end(_map(_array(rec, where, 2, 2)[1], f"{where} (end)"))
            return self.end
        _fail(where, f"unknown record tag {tag!r}")

    # -------------------------------------------------------- header and end
    def _header(self, m: dict[str, object]) -> JournalHeader:
        w = f"{self.where()} header"
        fmt = _key(m, "format", w)
        if fmt != FORMAT_VERSION or type(fmt) is not int:
            _fail(
                f"{w}.format", f"this SleepSync reads journal format {FORMAT_VERSION}, not {fmt!r}"
            )
        config_map = _map(_key(m, "config", w), f"{w}.config")
        try:
            config = EngineConfig.from_wire(config_map)
        except (ValueError, TypeError) as exc:
            _fail(f"{w}.config", str(exc))
        start = _map(_key(m, "start", w), f"{w}.start")
        state = _key(start, "state", f"{w}.start")
        if type(state) is not bytes:
            _fail(f"{w}.start.state", f"expected bytes, got {_kind(state)}")
        seg = _map(_key(m, "segment", w), f"{w}.segment")
        previous = _key(seg, "previous", f"{w}.segment")
        created = _key(seg, "created", f"{w}.segment")
        return JournalHeader(
            room=_str(_key(m, "room", w), f"{w}.room", 48),
            seed=_int(_key(m, "seed", w), f"{w}.seed", -(2**63), _MAX_SEED),
            config=config,
            start_tick=_int(_key(start, "tick", f"{w}.start"), f"{w}.start.tick", 0, _MAX_TICK),
            start_state=state,
            start_hash=_hash(_key(start, "hash", f"{w}.start"), f"{w}.start.hash"),
            narrative=_hash(_key(start, "narrative", f"{w}.start"), f"{w}.start.narrative"),
            hash_every=_int(_key(m, "hash_every", w), f"{w}.hash_every", 1, 2**31),
            segment=Segment(
                node=_str(_key(seg, "node", f"{w}.segment"), f"{w}.segment.node", 256)
                if seg.get("node")
                else "",
                epoch=_int(_key(seg, "epoch", f"{w}.segment"), f"{w}.segment.epoch", 0, _MAX_TICK),
                index=_int(_key(seg, "index", f"{w}.segment"), f"{w}.segment.index", 0, 2**31),
                reason=_str(_key(seg, "reason", f"{w}.segment"), f"{w}.segment.reason", 32),
                created=_float(created, f"{w}.segment.created", 0.0, 1e11),
                previous=None if previous is None else _str(previous, f"{w}.segment.previous", 256),
            ),
            sleepsync=_str(_key(m, "sleepsync", w), f"{w}.sleepsync", 64),
        )

    def _end(self, m: dict[str, object]) -> JournalEnd:
        w = f"{self.where()} end"
        h = _key(m, "hash", w)
        reason = _key(m, "reason", w)
        if reason not in END_REASONS:
            _fail(f"{w}.reason", f"must be one of {', '.join(END_REASONS)}")
        tick = _int(_key(m, "tick", w), f"{w}.tick", 0, _MAX_TICK)
        if tick < self._next_tick:
            _fail(f"{w}.tick", f"the file already holds tick {self._next_tick - 1}")
        return JournalEnd(tick, None if h is None else _hash(h, f"{w}.hash"), str(reason))

    def _check_narrative(self, where: str) -> None:
        assert self.header is not None
        if self.header.narrative not in self.templates:
            _fail(where, "the header's narrative is not defined")

    def _define(self, rec: list[object], where: str) -> str:
        _array(rec, where, 3, 3)
        digest = _hash(rec[1], f"{where} (template hash)")
        if len(self.templates) >= MAX_TEMPLATES:
            _fail(where, f"more than {MAX_TEMPLATES} templates")
        try:
            template = template_from_wire(_map(rec[2], f"{where} (template)"))
        except TemplateInvalid as exc:
            _fail(f"{where} (template)", exc.message)
        if template_hash(template) != digest:
            _fail(where, "the template does not match its hash")
        self.templates[digest] = template
        return digest

    # -------------------------------------------------------- ticks
    def _tick(self, rec: list[object], where: str) -> JournalTick:
        _array(rec, where, 2, 5)
        self._check_narrative(where)
        tick = self._next_tick + _int(rec[1], f"{where} (skip)", 0, _MAX_TICK)
        if tick > _MAX_TICK:
            _fail(where, "tick out of range")
        self._next_tick = tick + 1
        where = f"{where} (tick {tick})"
        inputs: tuple[EngineInput, ...] = ()
        items: tuple[EventItem, ...] = ()
        digest = None
        if len(rec) > 2 and rec[2] is not None:
            raw = _array(rec[2], f"{where} inputs", 0)
            inputs = tuple(self._input(x, f"{where} inputs[{k}]", tick) for k, x in enumerate(raw))
        if len(rec) > 3 and rec[3] is not None:
            raw = _array(rec[3], f"{where} items", 0)
            items = tuple(self._item(x, f"{where} items[{k}]") for k, x in enumerate(raw))
        if len(rec) > 4 and rec[4] is not None:
            digest = _hash(rec[4], f"{where} hash")
        return JournalTick(tick, inputs, items, digest)

    def _name(self, value: object, where: str) -> str:
        if type(value) is not int or not 0 <= value < len(self.names):
            _fail(where, f"expected a defined name id, got {value!r}")
        return self.names[value]

    def _number(
        self, field: str, owner: int, value: object, where: str, scale: int = 1000
    ) -> object:
        """A number channel's value (see the schema), unchecked beyond the channel."""
        if type(value) is int:
            key = (field, owner)
            m = self._channels.get(key, 0) + value
            if abs(m) >= _EXACT:
                _fail(where, "number channel out of range")
            self._channels[key] = m
            return m / scale if scale != 1 else m
        if type(value) is float:
            return value
        if type(value) is list and len(value) == 1:
            return value[0]
        _fail(where, f"expected a number, got {_kind(value)}")

    def _input(self, raw: object, where: str, tick: int) -> EngineInput:
        rec = _array(raw, where, 2, 7)
        tag = rec[0]
        if tag == "t":
            _array(rec, where, 7, 7)
            pod_id = rec[1]
            pod = self._name(pod_id, f"{where}.pod")
            assert type(pod_id) is int
            ts = self._number("ts", pod_id, rec[2], f"{where}.ts")
            seq = self._number("sq", pod_id, rec[4], f"{where}.seq", 1)
            valence = self._number("tv", pod_id, rec[5], f"{where}.valence")
            arousal = self._number("ta", pod_id, rec[6], f"{where}.arousal")
            sample = TelemetrySample(
                pod=pod,
                boot=self._name(rec[3], f"{where}.boot"),
                seq=_int(seq, f"{where}.seq", 0, 2**53),
                ts=_float(ts, f"{where}.ts", 0.0, 1e11),
                vitals=STRIPPED_VITALS,
                valence=_float(valence, f"{where}.valence", 0.0, 1.0),
                arousal=_float(arousal, f"{where}.arousal", 0.0, 1.0),
            )
            return Telemetry(sample)
        _array(rec, where, 2, 3)
        who = self._name(rec[1], f"{where}.name")
        if tag == "j":
            return DreamerJoined(who)
        if tag == "l":
            return DreamerLeft(who)
        if tag == "o":
            return PodOffline(who)
        _array(rec, where, 3, 3)
        if tag == "f":
            return PodFault(who, _int(rec[2], f"{where}.invalid_count", 0, 2**31))
        if tag == "g":
            return GlitchInjected(who, _float(rec[2], f"{where}.intensity"))
        if tag == "u":
            digest = _hash(rec[2], f"{where}.template")
            template = self.templates.get(digest)
            if template is None:
                _fail(f"{where}.template", "no template with this hash was defined")
            self.uploads.append(TemplateUse(digest, template.title, tick, who))
            return TemplateUploaded(who, template)
        if tag == "s":
            return StoryLine(who, _str(rec[2], f"{where}.text", 4 * MAX_TEXT))
        _fail(where, f"unknown input tag {tag!r}")

    def _item(self, raw: object, where: str) -> EventItem:
        rec = _array(raw, where, 2, 4)
        if rec[0] == "w":
            _array(rec, where, 2, 2)
            try:
                return item_from_wire(_map(rec[1], where), where)
            except InvalidMessage as exc:
                _fail(where, exc.message)
        if rec[0] != "m":
            _fail(where, f"unknown item tag {rec[0]!r}")
        _array(rec, where, 4, 4)
        rows = []
        for k, raw_row in enumerate(_array(rec[3], f"{where}.dreamers", 0)):
            rows.append(self._row(raw_row, f"{where}.dreamers[{k}]"))
        balance = self._number("b", 0, rec[1], f"{where}.balance")
        return Mood(
            _unit(balance, f"{where}.balance"), self._name(rec[2], f"{where}.phase"), tuple(rows)
        )

    def _row(self, raw: object, where: str) -> MoodRow:
        row = _array(raw, where, 6, 6)
        i = row[0]
        name = self._name(i, f"{where}.name")
        assert type(i) is int
        n: Callable[..., object] = self._number
        seq = n("ms", i, row[4], f"{where}.seq", 1)
        fragility = n("mf", i, row[5], f"{where}.fragility")
        return MoodRow(
            name,
            _unit(n("mv", i, row[1], f"{where}.valence"), f"{where}.valence"),
            _unit(n("ma", i, row[2], f"{where}.arousal"), f"{where}.arousal"),
            _unit(n("mg", i, row[3], f"{where}.glitch"), f"{where}.glitch"),
            None if seq is None else _int(seq, f"{where}.seq", 0, 2**62),
            None if fragility is None else _unit(fragility, f"{where}.fragility"),
        )


def _unit(value: object, where: str) -> float:
    if type(value) is not float or not 0.0 <= value <= 1.0:
        _fail(where, f"expected a level in [0, 1], got {value!r}")
    return value
