"""The shipped scenario, the lighthouse night: the story's arc, in order, bit-exact."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from sleepsync.protocol.events import (
    CircleLifted,
    CircleOpened,
    GlitchSpread,
    GlitchStarted,
    Mood,
    NarrativeChanged,
    NightmareReleased,
    PhaseChanged,
)
from sleepsync.server.engine import TemplateUploaded
from sleepsync.server.journal.files import JournalReader
from sleepsync.server.journal.replay import replay
from sleepsync.server.journal.scenario import record_lighthouse_night
from sleepsync.server.journal.schema import JournalTick

SHIPPED = resources.files("sleepsync.server.journal").joinpath(
    "scenarios", "lighthouse_night.ssj.gz"
)
REGENERATE = (
    "the engine changed: run `sleepsync journal scenario lighthouse-night "
    "--out server/journal/scenarios/lighthouse_night.ssj.gz` and commit the file"
)


@pytest.fixture(scope="module")
def ticks() -> list[JournalTick]:
    return list(JournalReader(record_lighthouse_night()).ticks())


def test_the_shipped_journal_replays_bit_exact() -> None:
    with resources.as_file(SHIPPED) as path:
        result = replay(JournalReader(Path(path)))
    assert result.exact, (result.mismatch, REGENERATE)
    assert result.ticks == 4800 and result.end is not None


def test_the_shipped_journal_is_what_the_scenario_records() -> None:
    with resources.as_file(SHIPPED) as path:
        shipped = JournalReader(Path(path))
        shipped_ticks = list(shipped.ticks())
    fresh = JournalReader(record_lighthouse_night())
    assert list(fresh.ticks()) == shipped_ticks, REGENERATE
    assert fresh.end == shipped.end, REGENERATE


def first(ticks: list[JournalTick], kind: type, **fields: object) -> tuple[int, object]:
    """(tick, item) of the first item of ``kind`` whose fields match."""
    for t in ticks:
        for item in t.items:
            if isinstance(item, kind) and all(getattr(item, k) == v for k, v in fields.items()):
                return t.tick, item
    raise AssertionError(f"no {kind.__name__} {fields}")


def test_the_arc_of_the_story_in_order(ticks: list[JournalTick]) -> None:
    # a dreamer uploads a narrative template with a corrupted fragment
    upload = next(
        (t.tick, i)
        for t in ticks
        for i in t.inputs
        if isinstance(i, TemplateUploaded) and i.author == "rico"
    )
    assert any(scene.corruption > 0 for scene in upload[1].template.scenes)
    narrative, _ = first(ticks, NarrativeChanged, by="rico")
    fragment, glitch = first(ticks, GlitchStarted, glitch="fragment")
    assert isinstance(glitch, GlitchStarted) and glitch.origin == "rico"
    # glitches spread, first to the most fragile dreamers
    spread_at, _ = first(ticks, GlitchSpread)
    assert first_catchers(ticks, 2) == ["jasper", "pia"]
    # a nightmare loop: rico, distressed while the room loops, is released
    nightmare, released = first(ticks, NightmareReleased)
    assert isinstance(released, NightmareReleased) and released.dreamer == "rico"
    assert set(released.loop) == {"static-shore", "broken-stair"}
    # the room collapses; recovery opens the storytelling circle
    strained, _ = first(ticks, PhaseChanged, to="strained")
    collapse, change = first(ticks, PhaseChanged, to="collapsed")
    assert isinstance(change, PhaseChanged) and change.actions is not None
    assert change.actions.circle and change.actions.scene == "circle"
    circle, opened = first(ticks, CircleOpened)
    assert isinstance(opened, CircleOpened) and opened.by == "recovery"
    lifts = [t.tick for t in ticks for i in t.items if isinstance(i, CircleLifted)]
    recovering, _ = first(ticks, PhaseChanged, to="recovering")
    stable, _ = first(ticks, PhaseChanged, source="recovering", to="stable")
    assert (
        upload[0]
        == narrative
        < fragment
        < spread_at
        < strained
        < nightmare
        < collapse
        == circle
        < lifts[0]
        < recovering
        < stable
    )
    assert len([tick for tick in lifts if circle < tick <= stable]) >= 3  # told in turn
    # and the night ends stable, never collapsing again
    last = next(i for t in reversed(ticks) for i in t.items if isinstance(i, Mood))
    assert isinstance(last, Mood) and last.phase == "stable"
    collapses = [i for t in ticks for i in t.items if isinstance(i, PhaseChanged)]
    assert [c.to for c in collapses].count("collapsed") == 1


def first_catchers(ticks: list[JournalTick], n: int) -> list[str]:
    """The first ``n`` dreamers glitch 1 spread to; each was then among the two most
    fragile dreamers it could spread to."""
    fragility: dict[str, float] = {}
    caught: list[str] = []
    for t in ticks:
        for item in t.items:
            if isinstance(item, GlitchSpread) and item.id == 1 and len(caught) < n:
                ranked = sorted(
                    (name for name in fragility if name != item.source and name not in caught),
                    key=lambda name: -fragility[name],
                )
                assert item.to in ranked[:2], (item.to, ranked, fragility)
                caught.append(item.to)
        for item in t.items:
            if isinstance(item, Mood):
                fragility = {row.name: row.fragility or 0.0 for row in item.dreamers}
    return caught
