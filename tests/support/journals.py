"""Builders of small journals for the journal tests (imported as a plain module)."""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import replace

from sleepsync.protocol.narrative import validate_template
from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns
from sleepsync.server.engine import (
    DreamerJoined,
    DreamerLeft,
    Engine,
    EngineConfig,
    EngineInput,
    GlitchInjected,
    PodFault,
    PodOffline,
    StoryLine,
    Telemetry,
    TemplateUploaded,
)
from sleepsync.server.journal.schema import STRIPPED_VITALS, JournalTick, Segment
from sleepsync.server.journal.tap import EngineTap, JournalWriter

VITALS = VitalSigns(heart_rate=61.0, hrv=55.0, skin_conductance=2.5, respiration=13.0)
PODS = ("jasper", "lila", "mira", "rico")

CORRUPT = validate_template(
    {
        "title": "Static",
        "entry": "a",
        "safe": "s",
        "scenes": [
            {"id": "a", "text": "A.", "mood": {"valence": 0.3, "arousal": 0.8},
             "transitions": [{"to": "b", "when": {"after": 1}}]},
            {"id": "b", "text": "B.", "mood": {"valence": 0.2, "arousal": 0.9},
             "corruption": 0.8, "transitions": [{"to": "a", "when": {"after": 1}},
                                                {"to": "s", "when": {"balance_above": 0.9}}]},
            {"id": "s", "text": "S.", "mood": {"valence": 0.8, "arousal": 0.2}},
        ],
    }
)  # fmt: skip

FAST = EngineConfig(
    collapse_hold_s=0.5, strain_hold_s=0.2, recover_hold_s=0.5, stable_hold_s=0.5,
    circle_turn_s=1.0, nightmare_window_s=2.0, glitch_spread_rate=10.0,
)  # fmt: skip


def sample(pod: str, seq: int, valence: float, arousal: float, ts: float) -> Telemetry:
    return Telemetry(TelemetrySample(pod, "boot-1", seq, ts, VITALS, valence, arousal))


def schedule(ticks: int, seed: int = 1) -> list[list[EngineInput]]:
    """A night of every input kind: pods (some with 3-decimal values, some not),
    a websocket dreamer, story lines, a corrupted upload, faults, injections."""
    rnd = random.Random(seed)
    out: list[list[EngineInput]] = []
    for k in range(ticks):
        batch: list[EngineInput] = []
        if k % 2 == 0:
            for j, pod in enumerate(PODS):
                v = rnd.random() if j == 3 else round(0.3 + 0.4 * rnd.random(), 3)
                a = round(0.2 + 0.6 * rnd.random(), 3)
                batch.append(sample(pod, k // 2, v, a, round(1764111600.0 + k / 10, 3)))
        if k == 3:
            batch.append(DreamerJoined("nora"))
        if k == 20:
            batch.append(TemplateUploaded("rico", CORRUPT))
        if k in (30, 31, 60):
            batch.append(StoryLine("nora", "/circle" if k == 30 else "the sea was calm"))
        if k == 40:
            batch.append(PodFault("mira", 12))
        if k == 45:
            batch.append(GlitchInjected("lila", 0.9))
        if k == 50:
            batch.append(PodOffline("jasper"))
        if k == ticks - 5:
            batch.append(DreamerLeft("nora"))
        out.append(batch)
    return out


def record(
    batches: Sequence[Sequence[EngineInput]],
    *,
    seed: int = 7,
    config: EngineConfig = FAST,
    hash_every: int = 10,
    quiet_before: int = 0,
) -> tuple[bytes, list[JournalTick], Engine]:
    """A journal of ``batches`` (after ``quiet_before`` empty ticks), its ticks, the engine."""
    engine = Engine(seed, config)
    for _ in range(quiet_before):
        engine.step([])
    tap = EngineTap(engine, hash_every)
    tap.mark_start()
    out = io.BytesIO()
    writer = JournalWriter(out, tap, room="night", segment=Segment(node="test", created=1.0))
    ticks: list[JournalTick] = []
    for batch in batches:
        tap.step(batch)
        steps = tap.take()
        ticks += steps
        writer.write(steps)
    writer.finish("export")
    return out.getvalue(), ticks, engine


def stripped(ticks: Sequence[JournalTick]) -> list[JournalTick]:
    """``ticks`` as a journal gives them back: telemetry without vital signs."""
    out = []
    for t in ticks:
        inputs = tuple(
            Telemetry(replace(i.sample, vitals=STRIPPED_VITALS)) if isinstance(i, Telemetry) else i
            for i in t.inputs
        )
        out.append(replace(t, inputs=inputs))
    return out
