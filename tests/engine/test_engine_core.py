"""Engine: inputs, mood events, view, privacy, snapshot/restore."""

from __future__ import annotations

import msgpack
import pytest

from sleepsync.protocol.errors import LocalError
from sleepsync.protocol.events import (
    DreamerWentOffline,
    GlitchStarted,
    Mood,
    MoodRow,
    NarrativeChanged,
    SceneChanged,
)
from sleepsync.server.engine import (
    DreamEngine,
    DreamerJoined,
    DreamerLeft,
    Engine,
    EngineConfig,
    GlitchInjected,
    PodFault,
    PodOffline,
    StoryLine,
    TemplateUploaded,
    Traits,
    load_default_narrative,
)

from engine_helpers import calm_template, dreamer, kinds, run, scene, tel, template

CFG = EngineConfig(trait_variation=0.0)


def test_engine_satisfies_the_protocol() -> None:
    engine: DreamEngine = Engine(1)
    assert engine.step([]).events == []


def test_default_narrative_ships() -> None:
    t = load_default_narrative()
    assert t.title == "The Shared Night" and t.safe == "hearth"
    engine = Engine(1)
    assert engine.view()["scene"] == {"id": t.entry, "text": t.scene(t.entry).text}
    assert engine.tick == 0 and engine.phase == "stable"


def test_empty_room_only_counts_ticks() -> None:
    engine = Engine(1, CFG, calm_template())
    assert run(engine, 5) == []
    assert engine.tick == 5


def test_join_creates_a_baseline_dreamer_and_mood_every_tick() -> None:
    engine = Engine(1, CFG, calm_template())
    events = engine.step(
        [DreamerJoined("rico"), DreamerJoined("lila"), DreamerJoined("lila")]
    ).events
    assert [e.kind for e in events] == ["mood"]
    mood = events[0]
    assert isinstance(mood, Mood) and mood.phase == "stable"
    assert [row.name for row in mood.dreamers] == ["lila", "rico"]
    assert mood.dreamers[0] == MoodRow("lila", 0.5, 0.4, 0.0, None, 0.32)  # resting fragility
    assert mood.balance == 0.5
    assert len(run(engine, 3)) == 3


def test_telemetry_creates_pulls_and_traces_seq() -> None:
    engine = Engine(1, CFG, calm_template())
    result = engine.step([tel("mira", 7, 0.9, 0.1)])
    assert kinds(result.events, Mood)[0].dreamers[0].seq == 7
    for seq in range(8, 40):
        result = engine.step([tel("mira", seq, 0.9, 0.1)])
    v, a = dreamer(engine, "mira")
    assert v > 0.85 and a < 0.15
    assert kinds(result.events, Mood)[0].dreamers[0].seq == 39
    view = engine.view()
    assert view["dreamers"][0]["online"] is True and view["dreamers"][0]["pod"] is True  # type: ignore[index]


def test_offline_by_timeout_and_status() -> None:
    engine = Engine(
        1,
        EngineConfig(trait_variation=0.0, stale_after_s=0.5, offline_after_s=1.0),
        calm_template(),
    )
    engine.step([tel("mira", 1, 0.9, 0.1), tel("rico", 1, 0.9, 0.1)])
    events = engine.step([PodOffline("rico"), PodOffline("ghost"), PodOffline("rico")]).events
    assert kinds(events, DreamerWentOffline) == [DreamerWentOffline("rico", "status")]
    events = run(engine, 12)
    assert kinds(events, DreamerWentOffline) == [DreamerWentOffline("mira", "timeout")]
    assert [d["online"] for d in engine.view()["dreamers"]] == [False, False]  # type: ignore[index,union-attr]
    engine.step([tel("mira", 2, 0.9, 0.1)])
    assert engine.view()["dreamers"][0]["online"] is True  # type: ignore[index]


def test_leave_removes_and_unknown_leave_is_ignored() -> None:
    engine = Engine(1, CFG, calm_template())
    engine.step([DreamerJoined("a"), DreamerJoined("b")])
    engine.step([DreamerLeft("a"), DreamerLeft("zed")])
    assert engine.dreamers.names == ["b"]


def test_set_traits_before_and_after_join_and_in_snapshot() -> None:
    engine = Engine(1, EngineConfig(trait_variation=0.3), calm_template())
    fixed = Traits(0.9, 0.1, 0.2, 0.3)
    engine.set_traits("lila", fixed)
    engine.step([DreamerJoined("lila"), DreamerJoined("rico")])
    assert engine.traits("lila") == fixed
    other = Traits(0.1, 0.2, 0.3, 0.4)
    engine.set_traits("rico", other)
    assert engine.traits("rico") == other
    restored = Engine.restore(engine.snapshot())
    assert restored.traits("rico") == other and restored.overrides == engine.overrides
    with pytest.raises(KeyError):
        engine.traits("ghost")


def test_glitch_sources_from_inputs() -> None:
    cfg = EngineConfig(trait_variation=0.0, stress_jump=0.3, stress_gain=2.0)
    engine = Engine(1, cfg, calm_template())
    engine.step([tel("rico", 1, 0.5, 0.3), DreamerJoined("lila")])
    events = engine.step(
        [
            tel("rico", 2, 0.5, 0.7),  # +0.4 arousal: stress spike
            PodFault("rico", 4),
            PodFault("ghost", 4),
            GlitchInjected("lila", 0.5),
            GlitchInjected("lila", float("nan")),
            GlitchInjected("ghost", 0.5),
        ]
    ).events
    started = [(e.glitch, e.origin, e.intensity) for e in kinds(events, GlitchStarted)]
    assert started == [("stress", "rico", 0.8), ("sensor", "rico", 0.4), ("injected", "lila", 0.5)]


def test_first_sample_is_never_a_stress_spike() -> None:
    engine = Engine(1, CFG, calm_template())
    events = engine.step([tel("rico", 1, 0.1, 1.0)]).events
    assert not kinds(events, GlitchStarted)


def test_template_upload_moves_to_its_entry() -> None:
    engine = Engine(1, CFG, calm_template())
    engine.step([DreamerJoined("lila")])
    new = template(
        [scene("a", 0.6, 0.3, ("b", {"after": 100})), scene("b", 0.7, 0.2)], "a", "b", "New"
    )
    events = engine.step([TemplateUploaded("lila", new)]).events
    assert events[0] == NarrativeChanged("New", "lila", "a")
    assert events[1] == SceneChanged("rest", "a", "narrative", "Scene a.")
    view = engine.view()
    assert view["narrative"] == "New" and view["narrative_by"] == "lila"
    assert view["scene"] == {"id": "a", "text": "Scene a."}


def test_no_raw_vitals_reach_events_or_view() -> None:
    engine = Engine(1, CFG, calm_template())
    events = []
    for seq in range(30):
        told = [DreamerJoined("lila"), StoryLine("lila", "/circle")]
        events += engine.step([tel("rico", seq, 0.2, 0.95), *told]).events
    blob = repr(events) + repr(engine.view())
    for word in (
        "hr",
        "hrv",
        "eda",
        "resp",
        "heart",
        "skin",
        "respiration",
        "61.0",
        "55.0",
        "13.0",
    ):
        assert f"'{word}'" not in blob
    assert "61.0" not in blob and "55.0" not in blob


def test_view_lists_glitches_and_circle() -> None:
    engine = Engine(1, CFG, calm_template())
    engine.step([DreamerJoined("lila")])
    engine.step(
        [tel("rico", 1, 0.5, 0.5), GlitchInjected("rico", 0.9), StoryLine("lila", "/circle")]
    )
    view = engine.view()
    assert view["glitches"] == [
        {"id": 1, "kind": "injected", "origin": "rico", "intensity": 0.9, "carriers": 1, "reach": 1}
    ]
    assert view["circle"] == {"by": "lila", "turn": "lila", "turn_for_s": 0.1, "told": 0}
    assert view["tick"] == 2 and view["phase"] == "stable"


class TestSnapshot:
    def test_restore_continues_identically(self) -> None:
        engine = Engine(5, EngineConfig(), calm_template())
        engine.step([tel(n, 1, 0.3, 0.8) for n in "abcde"] + [GlitchInjected("a", 1.0)])
        run(engine, 20, [DreamerJoined("f"), StoryLine("f", "/circle")])
        copy = Engine.restore(engine.snapshot())
        assert copy.state_hash() == engine.state_hash()
        assert copy.view() == engine.view()
        for k in range(60):
            inputs = [tel(n, 100 + k, 0.2, 0.9) for n in "abc"] if k % 3 == 0 else []
            assert engine.step(inputs).events == copy.step(inputs).events
        assert copy.state_hash() == engine.state_hash()

    def test_hash_changes_with_state_and_is_stable(self) -> None:
        a = Engine(5, CFG, calm_template())
        b = Engine(5, CFG, calm_template())
        assert a.state_hash() == b.state_hash()
        a.step([DreamerJoined("x")])
        assert a.state_hash() != b.state_hash()
        assert Engine(6, CFG, calm_template()).state_hash() != b.state_hash()

    def test_bad_snapshots_raise_local_error(self) -> None:
        with pytest.raises(LocalError):
            Engine.restore(b"\xc1 not msgpack")
        with pytest.raises(LocalError):
            Engine.restore(msgpack.packb({"v": 99}))
        state = msgpack.unpackb(Engine(1).snapshot())
        state["holds"] = [0]
        with pytest.raises(LocalError):
            Engine.restore(msgpack.packb(state))
        state = msgpack.unpackb(Engine(1).snapshot())
        state["glitches"] = [[1, "x", "y", "not a float", 0, 1]]
        with pytest.raises(LocalError):
            Engine.restore(msgpack.packb(state))
        state = msgpack.unpackb(Engine(1).snapshot())
        state["circle"] = ["recovery", 1, 2, 3, 4]
        with pytest.raises(LocalError):
            Engine.restore(msgpack.packb(state))
