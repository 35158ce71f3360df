"""Engine snapshots: the one module that writes them and reads them back.

How it works: :func:`write_snapshot` turns the parts of an engine
(:class:`EngineParts`) into one msgpack map, keys in a fixed order,
dreamers in name order, glitches in id order, so equal states give equal
bytes and ``Engine.state_hash`` is their sha256. :func:`read_snapshot`
undoes it and checks everything on the way: the version, that every key is
there and no other, the type of every field and every column (a bool is not
an int, a string is not a number, ``None`` only where a value may be
absent), the length of every row, ranges (levels in [0, 1], ticks and
counts not negative), and the orders the writer keeps (names sorted and
unique, glitch ids increasing and below the next id). Anything wrong raises
:class:`~sleepsync.protocol.errors.LocalError` naming the part, for example
``snapshot dreamers[2].val: expected a number, got str``, so a corrupt
snapshot is refused at restore and never fails a later step.

Numbers are kept as they were written (an ``int`` level stays an ``int``),
so ``read_snapshot`` then ``write_snapshot`` gives the same bytes.

Versions: 2 added the dreamers' recent state and fragility (four columns)
and the fragility settings. A version 1 snapshot is still read: its
settings get the fragility defaults, and each dreamer's recent state starts
at its current valence and arousal, steady (written back as version 2).

The engine imports this module; this module imports the engine's parts and
never the engine, so there is no import cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import msgpack

from sleepsync.protocol.errors import LocalError, TemplateInvalid
from sleepsync.protocol.narrative import template_from_wire, template_to_wire
from sleepsync.protocol.wire import WireMap, WireValue

from .circle import Circle
from .config import EngineConfig
from .dreamer import DreamerTable
from .glitch import Glitch, GlitchField
from .narrative_runtime import MAX_HISTORY, NarrativeRuntime
from .recovery import TABLE, PhaseMachine
from .rng import SplitMix64
from .traits import Traits

__all__ = ["SNAPSHOT_VERSION", "EngineParts", "read_snapshot", "write_snapshot"]

SNAPSHOT_VERSION = 2
#: Versions :func:`read_snapshot` reads (older ones are upgraded on the way).
READABLE_VERSIONS = (1, 2)

#: Top-level keys, in the order they are written.
KEYS = (
    "v",
    "seed",
    "config",
    "tick",
    "rng",
    "balance",
    "arousal",
    "damped",
    "phase",
    "holds",
    "dreamers",
    "traits",
    "glitches",
    "next_glitch",
    "narrative",
    "author",
    "scene",
    "since",
    "history",
    "circle",
)

#: The columns of a ``traits`` row after the name.
TRAITS = ("expressiveness", "openness", "amplification", "bias")

_U64 = 2**64 - 1
_I64 = 2**63


@dataclass(slots=True)
class EngineParts:
    """Everything an engine's state is made of; what a snapshot holds."""

    seed: int
    config: EngineConfig
    tick: int
    rng: SplitMix64
    balance: float
    arousal: float
    damped: bool
    machine: PhaseMachine
    dreamers: DreamerTable
    overrides: dict[str, Traits]
    glitches: GlitchField
    narrative: NarrativeRuntime
    circle: Circle | None


# ---------------------------------------------------------------- writing


def write_snapshot(parts: EngineParts) -> bytes:
    """The parts as canonical msgpack bytes."""
    t = parts.dreamers
    nr = parts.narrative
    columns = [getattr(t, column) for column in t.COLUMNS]
    active = parts.glitches.active
    circle = parts.circle
    state: WireMap = {
        "v": SNAPSHOT_VERSION,
        "seed": parts.seed,
        "config": parts.config.to_wire(),
        "tick": parts.tick,
        "rng": parts.rng.state,
        "balance": parts.balance,
        "arousal": parts.arousal,
        "damped": parts.damped,
        "phase": parts.machine.phase,
        "holds": list[WireValue](parts.machine.holds),
        "dreamers": [list[WireValue](row) for row in zip(*columns, strict=True)],
        "traits": [
            [name, tr.expressiveness, tr.openness, tr.amplification, tr.bias]
            for name, tr in sorted(parts.overrides.items())
        ],
        "glitches": [
            [g.id, g.kind, g.origin, g.peak, g.started, g.reach]
            for g in (active[k] for k in sorted(active))
        ],
        "next_glitch": parts.glitches.next_id,
        "narrative": template_to_wire(nr.template),
        "author": nr.author,
        "scene": nr.scene.id,
        "since": nr.since,
        "history": [[at, scene_id] for at, scene_id in nr.history],
        "circle": None
        if circle is None
        else [circle.opened_by, circle.holder, circle.opened, circle.turn_since, circle.told],
    }
    return msgpack.packb(state, use_bin_type=True)


# ---------------------------------------------------------------- checks


def _fail(path: str, what: str) -> NoReturn:
    raise LocalError(f"snapshot {path}: {what}")


def _type(value: object) -> str:
    return "nil" if value is None else type(value).__name__


def _int(value: object, path: str, lo: int = 0, hi: int = _I64) -> int:
    if type(value) is not int:
        _fail(path, f"expected an integer, got {_type(value)}")
    if not lo <= value <= hi:
        _fail(path, f"must be in {lo}..{hi}, got {value}")
    return value


def _unit(value: object, path: str) -> float:
    """A level in [0, 1]: an int or a float, kept as it is."""
    if type(value) is not float and type(value) is not int:
        _fail(path, f"expected a number, got {_type(value)}")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        _fail(path, f"must be in [0, 1], got {value!r}")
    return value


def _bool(value: object, path: str) -> bool:
    if type(value) is not bool:
        _fail(path, f"expected true or false, got {_type(value)}")
    return value


def _str(value: object, path: str) -> str:
    if type(value) is not str or not value:
        _fail(path, f"expected a non-empty string, got {_type(value)}")
    return value


def _optional_str(value: object, path: str) -> str | None:
    return None if value is None else _str(value, path)


def _optional_count(value: object, path: str) -> int | None:
    return None if value is None else _int(value, path)


def _list(value: object, path: str, length: int | None = None) -> list[object]:
    if type(value) is not list:
        _fail(path, f"expected an array, got {_type(value)}")
    if length is not None and len(value) != length:
        _fail(path, f"expected {length} values, got {len(value)}")
    return value


def _check_keys(state: dict[str, object]) -> None:
    """Every top-level key is there, and no other."""
    missing = [k for k in KEYS if k not in state]
    if missing:
        _fail(missing[0], "missing")
    extra = sorted(str(k) for k in state if k not in KEYS)
    if extra:
        _fail(extra[0], "unexpected key")


#: How each dreamer column is checked, in :attr:`DreamerTable.COLUMNS` order.
COLUMN_CHECKS: dict[str, Callable[[object, str], object]] = {
    "names": _str,
    "val": _unit,
    "aro": _unit,
    "eps": _unit,
    "dlt": _unit,
    "eta": _unit,
    "beta": _unit,
    "pod": _bool,
    "tel_v": _unit,
    "tel_a": _unit,
    "tel_age": _int,
    "seq": _optional_count,
    "online": _bool,
    "mute": _int,
    "glitch": _unit,
    "gid": _int,
    "distress": _int,
    "release": _int,
    "fr_v": _unit,
    "fr_a": _unit,
    "fr_u": _unit,
    "frag": _unit,
}

#: The columns version 1 did not have, in order, after the version 1 columns.
_V2_COLUMNS = ("fr_v", "fr_a", "fr_u", "frag")


# ---------------------------------------------------------------- reading


def read_snapshot(data: bytes) -> EngineParts:
    """Check and decode :func:`write_snapshot` bytes; LocalError on anything wrong."""
    try:
        raw: object = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise LocalError("snapshot: not a msgpack document") from exc
    if type(raw) is not dict or type(raw.get("v")) is not int or raw["v"] not in READABLE_VERSIONS:
        raise LocalError("snapshot: unknown snapshot version")
    s: dict[str, object] = raw
    _check_keys(s)
    if s["v"] == 1:
        _upgrade_v1(s)
    config = _config(s["config"])
    machine = _machine(config, s["phase"], s["holds"])
    rng = SplitMix64(0)
    rng.state = _int(s["rng"], "rng", 0, _U64)
    return EngineParts(
        seed=_int(s["seed"], "seed", -_I64, _U64),
        config=config,
        tick=_int(s["tick"], "tick"),
        rng=rng,
        balance=_unit(s["balance"], "balance"),
        arousal=_unit(s["arousal"], "arousal"),
        damped=_bool(s["damped"], "damped"),
        machine=machine,
        dreamers=_dreamers(s["dreamers"]),
        overrides=_traits(s["traits"]),
        glitches=_glitches(s["glitches"], s["next_glitch"]),
        narrative=_narrative(s),
        circle=None if s["circle"] is None else _circle(s["circle"]),
    )


def _upgrade_v1(s: dict[str, object]) -> None:
    """Version 1 → 2 in place: fragility settings and columns (see the module note)."""
    config = s["config"]
    if type(config) is not dict:
        _fail("config", f"expected a map, got {_type(config)}")
    defaults = EngineConfig().to_wire()
    for key in (f for f in defaults if f.startswith("fragility_")):
        config.setdefault(key, defaults[key])
    cfg = _config(config)
    old = len(DreamerTable.COLUMNS) - len(_V2_COLUMNS)
    val = DreamerTable.COLUMNS.index("val")
    aro = DreamerTable.COLUMNS.index("aro")
    for k, row in enumerate(_list(s["dreamers"], "dreamers")):
        cells = _list(row, f"dreamers[{k}]", old)
        v = _unit(cells[val], f"dreamers[{k}].val")
        a = _unit(cells[aro], f"dreamers[{k}].aro")
        cells.extend([v, a, 0.0, min(1.0, max(0.0, cfg.fragility(v, a, 0.0)))])


def _config(value: object) -> EngineConfig:
    if type(value) is not dict:
        _fail("config", f"expected a map, got {_type(value)}")
    try:
        return EngineConfig.from_wire(value)
    except ValueError as exc:
        raise LocalError(f"snapshot config: {exc}") from exc


def _machine(config: EngineConfig, phase: object, holds: object) -> PhaseMachine:
    try:
        machine = PhaseMachine(config, _str(phase, "phase"))
    except ValueError as exc:
        raise LocalError(f"snapshot phase: {exc}") from exc
    rows = _list(holds, "holds", len(TABLE))
    machine.holds = [_int(h, f"holds[{k}]") for k, h in enumerate(rows)]
    return machine


def _dreamers(value: object) -> DreamerTable:
    names = DreamerTable.COLUMNS
    columns: dict[str, list[object]] = {name: [] for name in names}
    checks = [(columns[name], COLUMN_CHECKS[name], name) for name in names]
    for k, row in enumerate(_list(value, "dreamers")):
        cells = _list(row, f"dreamers[{k}]", len(names))
        for (column, check, name), cell in zip(checks, cells, strict=True):
            column.append(check(cell, f"dreamers[{k}].{name}"))
    table = DreamerTable()
    try:
        table.set_columns(columns)
    except ValueError as exc:
        raise LocalError(f"snapshot dreamers: {exc}") from exc
    return table


def _traits(value: object) -> dict[str, Traits]:
    overrides: dict[str, Traits] = {}
    for k, row in enumerate(_list(value, "traits")):
        path = f"traits[{k}]"
        cells = _list(row, path, 5)
        name = _str(cells[0], f"{path}.name")
        if overrides and name <= max(overrides):
            _fail(f"{path}.name", "names must be sorted and unique")
        e, o, a, b = (_unit(x, f"{path}.{TRAITS[j]}") for j, x in enumerate(cells[1:]))
        overrides[name] = Traits(e, o, a, b)
    return overrides


def _glitches(rows: object, next_id: object) -> GlitchField:
    field = GlitchField()
    last = 0
    for k, row in enumerate(_list(rows, "glitches")):
        path = f"glitches[{k}]"
        gid, kind, origin, peak, started, reach = _list(row, path, 6)
        glitch = Glitch(
            _int(gid, f"{path}.id", 1),
            _str(kind, f"{path}.kind"),
            _str(origin, f"{path}.origin"),
            _unit(peak, f"{path}.peak"),
            _int(started, f"{path}.started"),
            _int(reach, f"{path}.reach", 1),
        )
        if glitch.id <= last:
            _fail(f"{path}.id", "glitch ids must be increasing")
        last = glitch.id
        field.active[glitch.id] = glitch
    field.next_id = _int(next_id, "next_glitch", last + 1)
    return field


def _narrative(s: dict[str, object]) -> NarrativeRuntime:
    doc = s["narrative"]
    if type(doc) is not dict:
        _fail("narrative", f"expected a map, got {_type(doc)}")
    try:
        template = template_from_wire(doc)
    except TemplateInvalid as exc:
        raise LocalError(f"snapshot narrative: {exc.message}") from exc
    narrative = NarrativeRuntime(template, _optional_str(s["author"], "author"))
    scene = _str(s["scene"], "scene")
    try:
        narrative.scene = template.scene(scene)
    except KeyError:
        _fail("scene", f"no scene {scene!r} in the narrative")
    narrative.since = _int(s["since"], "since")
    entries = _list(s["history"], "history")
    if len(entries) > MAX_HISTORY:
        _fail("history", f"at most {MAX_HISTORY} entries, got {len(entries)}")
    history: list[tuple[int, str]] = []
    for k, entry in enumerate(entries):
        at, scene_id = _list(entry, f"history[{k}]", 2)
        history.append((_int(at, f"history[{k}].at"), _str(scene_id, f"history[{k}].scene")))
    narrative.history = history
    return narrative


def _circle(value: object) -> Circle:
    opened_by, holder, opened, turn_since, told = _list(value, "circle", 5)
    circle = Circle(
        _str(opened_by, "circle.opened_by"),
        _str(holder, "circle.holder"),
        _int(opened, "circle.opened"),
    )
    circle.turn_since = _int(turn_since, "circle.turn_since")
    circle.told = _int(told, "circle.told")
    return circle
