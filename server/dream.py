"""How a node builds the dream engine of each room it owns.

The seed of a new room's engine is ``--engine-seed`` when given, otherwise a
stable hash of the room id, so the same room replays the same way on every
node and every run.
"""

from __future__ import annotations

import hashlib

from sleepsync.protocol.narrative import parse_template

from .config import Settings
from .engine import Engine, EngineConfig
from .engine.api import DreamEngine
from .room_state import EngineHooks

__all__ = ["engine_hooks", "room_seed"]


def room_seed(room: str, seed: int = 0) -> int:
    if seed:
        return seed
    return int.from_bytes(hashlib.sha256(room.encode()).digest()[:8], "big")


def engine_hooks(settings: Settings) -> EngineHooks:
    config = EngineConfig(tick_hz=settings.tick_hz)

    def create(room: str) -> DreamEngine:
        return Engine(room_seed(room, settings.engine_seed), config)

    def restore(data: bytes) -> DreamEngine:
        return Engine.restore(data)

    def parse(text: str, fmt: str) -> object:
        return parse_template(text, "toml" if fmt == "toml" else "json")

    return EngineHooks(create=create, restore=restore, parse_template=parse)
