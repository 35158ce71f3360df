"""Loading an engine back from :meth:`Engine.snapshot` bytes.

The snapshot is a msgpack map written by :meth:`Engine.snapshot` in a fixed
key order with dreamers in name order, so equal states give equal bytes and
``state_hash`` is their sha256. Loading checks the version and the shape of
every part; anything unexpected raises, and :meth:`Engine.restore` turns it
into :class:`~sleepsync.protocol.errors.LocalError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgpack

from sleepsync.protocol.errors import LocalError
from sleepsync.protocol.narrative import template_from_wire

from .circle import Circle
from .config import EngineConfig
from .dreamer import DreamerTable
from .glitch import Glitch, GlitchField
from .narrative_runtime import NarrativeRuntime
from .recovery import TABLE, PhaseMachine
from .rng import SplitMix64
from .traits import Traits

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["load_state"]


def load_state(cls: type[Engine], data: bytes) -> Engine:
    s: dict[str, Any] = msgpack.unpackb(data, raw=False, strict_map_key=True)
    if not isinstance(s, dict) or s.get("v") != 1:
        raise LocalError("unknown snapshot version")
    config = EngineConfig.from_wire(s["config"])
    engine = cls.__new__(cls)
    engine.config = config
    engine.seed = int(s["seed"])
    engine.rng = SplitMix64(0)
    engine.rng.state = int(s["rng"])
    engine.tick = int(s["tick"])
    engine.balance = float(s["balance"])
    engine.arousal = float(s["arousal"])
    engine.damped = bool(s["damped"])
    machine = PhaseMachine(config, s["phase"])
    holds = [int(h) for h in s["holds"]]
    if len(holds) != len(TABLE):
        raise LocalError("snapshot phase holds do not match the table")
    machine.holds = holds
    engine.machine = machine
    table = DreamerTable()
    table.load_rows(s["dreamers"])
    engine.dreamers = table
    engine.overrides = {row[0]: Traits(*row[1:]) for row in s["traits"]}
    field = GlitchField()
    field.active = {g.id: g for g in (Glitch.from_row(row) for row in s["glitches"])}
    field.next_id = int(s["next_glitch"])
    engine.glitches = field
    narrative = NarrativeRuntime(template_from_wire(s["narrative"]), s["author"])
    narrative.scene = narrative.template.scene(s["scene"])
    narrative.since = int(s["since"])
    narrative.history = [(int(at), str(scene_id)) for at, scene_id in s["history"]]
    engine.narrative = narrative
    engine.circle = None if s["circle"] is None else Circle.from_wire(s["circle"])
    engine._pulls = None
    return engine
