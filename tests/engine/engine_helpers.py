"""Builders shared by the engine tests (imported as a plain module)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sleepsync.protocol.events import EventItem, Mood
from sleepsync.protocol.narrative import NarrativeTemplate, validate_template
from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns
from sleepsync.server.engine import Engine, EngineConfig, EngineInput, StepResult, Telemetry

VITALS = VitalSigns(heart_rate=61.0, hrv=55.0, skin_conductance=2.5, respiration=13.0)


def tel(pod: str, seq: int, valence: float, arousal: float, boot: str = "b1") -> Telemetry:
    return Telemetry(TelemetrySample(pod, boot, seq, 1000.0 + seq, VITALS, valence, arousal))


def scene(
    sid: str, v: float, a: float, *transitions: tuple[str, dict[str, float]], **extra: Any
) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": sid, "text": f"Scene {sid}.", "mood": {"valence": v, "arousal": a}}
    if transitions:
        doc["transitions"] = [{"to": to, "when": dict(when)} for to, when in transitions]
    doc.update(extra)
    return doc


def template(
    scenes: list[dict[str, Any]], entry: str, safe: str, title: str = "T"
) -> NarrativeTemplate:
    return validate_template({"title": title, "entry": entry, "safe": safe, "scenes": scenes})


def calm_template() -> NarrativeTemplate:
    """Two scenes, no transitions that fire on their own within a test."""
    return template(
        [scene("rest", 0.5, 0.4, ("hearth", {"after": 3000})), scene("hearth", 0.8, 0.2)],
        "rest",
        "hearth",
    )


#: Only contagion: no trait variation, no pulls.
PURE = EngineConfig(
    trait_variation=0.0,
    baseline_pull=0.0,
    scene_pull=0.0,
    telemetry_pull=0.0,
    stale_after_s=1000.0,
    offline_after_s=1000.0,
)


T = TypeVar("T")


def run(engine: Engine, ticks: int, inputs: Iterable[EngineInput] = ()) -> list[EventItem]:
    """Step ``ticks`` times (``inputs`` on the first) and return all events."""
    events: list[EventItem] = []
    first = list(inputs)
    for k in range(ticks):
        events.extend(engine.step(first if k == 0 else []).events)
    return events


def kinds(events: Iterable[EventItem], kind: type[T]) -> list[T]:
    """The events of one type, in order."""
    return [e for e in events if isinstance(e, kind)]


def mood_of(result: StepResult | list[EventItem], name: str) -> tuple[float, float, float]:
    events = result.events if isinstance(result, StepResult) else result
    mood = kinds(events, Mood)[-1]
    for row in mood.dreamers:
        if row.name == name:
            return row.valence, row.arousal, row.glitch
    raise KeyError(name)


def dreamer(engine: Engine, name: str) -> tuple[float, float]:
    t = engine.dreamers
    i = t.index[name]
    return t.val[i], t.aro[i]
