"""The dream engine: pure, deterministic dynamics of one shared dream room.

Build one per room with ``Engine(seed, config, narrative)``, call
``step(inputs)`` once per tick, publish the returned events, send the cues
to the pods, and keep ``snapshot()`` bytes for failover
(``Engine.restore``). See :mod:`.engine` for how a tick runs.
"""

from __future__ import annotations

from .api import (
    DreamEngine,
    DreamerJoined,
    DreamerLeft,
    EngineInput,
    GlitchInjected,
    PodFault,
    PodOffline,
    StepResult,
    StoryLine,
    Telemetry,
    TemplateUploaded,
)
from .balance import room_balance
from .config import EngineConfig
from .engine import Engine, canonical_order, load_default_narrative
from .glitch import GLITCH_KINDS
from .recovery import PHASES, TABLE
from .traits import Traits

__all__ = [
    "GLITCH_KINDS",
    "PHASES",
    "TABLE",
    "DreamEngine",
    "DreamerJoined",
    "DreamerLeft",
    "Engine",
    "EngineConfig",
    "EngineInput",
    "GlitchInjected",
    "PodFault",
    "PodOffline",
    "StepResult",
    "StoryLine",
    "Telemetry",
    "TemplateUploaded",
    "Traits",
    "canonical_order",
    "load_default_narrative",
    "room_balance",
]
