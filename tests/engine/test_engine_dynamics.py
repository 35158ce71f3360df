"""Glitches, the phase machine and recovery actions."""

from __future__ import annotations

import pytest

from sleepsync.protocol.events import (
    CircleClosed,
    CircleOpened,
    EventItem,
    GlitchFaded,
    GlitchSpread,
    GlitchStarted,
    PhaseChanged,
    PhaseFigures,
    RecoveryActions,
    SceneChanged,
)
from sleepsync.server.engine import (
    TABLE,
    DreamerJoined,
    Engine,
    EngineConfig,
    GlitchInjected,
    PodFault,
    Traits,
)
from sleepsync.server.engine.dreamer import DreamerTable
from sleepsync.server.engine.glitch import GlitchField
from sleepsync.server.engine.recovery import PhaseMachine
from sleepsync.server.engine.rng import SplitMix64

from engine_helpers import calm_template, kinds, run, tel


def table(n: int) -> DreamerTable:
    t = DreamerTable()
    for k in range(n):
        i = t.add(f"d{k}", Traits(1.0, 1.0, 0.0, 0.5), 0.5, 0.5)
        t.online[i] = True
    return t


def step(f: GlitchField, t: DreamerTable, tick: int, **kw: float) -> list[EventItem]:
    events: list[EventItem] = []
    args: dict[str, float] = dict(
        alpha=1.0, fragility=1.0, rate=0.0, share=0.5, decay=0.5, floor=0.15, dt=0.1
    )
    args.update(kw)
    f.step(t, SplitMix64(tick), tick=tick, events=events, **args)  # type: ignore[arg-type]
    return events


class TestGlitchField:
    def test_start_decay_and_fade(self) -> None:
        t = table(2)
        f = GlitchField()
        events: list[EventItem] = []
        f.start(t, 0, "injected", 0.8, 0, events)
        f.start(t, 1, "injected", 0.0, 0, events)
        assert events == [GlitchStarted(1, "injected", "d0", 0.8)]
        assert step(f, t, 0) == [] and t.glitch[0] == pytest.approx(0.4)
        assert step(f, t, 1) == [] and t.glitch[0] == pytest.approx(0.2)
        faded = step(f, t, 2)
        assert faded == [GlitchFaded(1, "injected", "d0", 1, 0.3)]
        assert t.glitch == [0.0, 0.0] and t.gid == [0, 0] and not f.active
        assert step(f, t, 3) == []

    def test_spread_needs_fragility_and_an_expressive_carrier(self) -> None:
        t = table(3)
        f = GlitchField()
        f.start(t, 0, "sensor", 1.0, 0, [])
        assert not kinds(step(f, t, 0, fragility=0.0, rate=1e9, decay=1.0), GlitchSpread)
        t.mute[0] = 10
        assert not kinds(step(f, t, 1, rate=1e9, decay=1.0), GlitchSpread)
        t.mute[0] = 0
        spread = kinds(step(f, t, 2, rate=1e9, decay=1.0), GlitchSpread)
        assert [(e.source, e.to, e.intensity) for e in spread] == [
            ("d0", "d1", 0.5),
            ("d0", "d2", 0.5),
        ]
        assert f.active[1].reach == 3
        assert f.view(t) == [
            {"id": 1, "kind": "sensor", "origin": "d0", "intensity": 1.0, "carriers": 3, "reach": 3}
        ]

    def test_new_glitch_replaces_and_old_one_fades(self) -> None:
        t = table(1)
        f = GlitchField()
        f.start(t, 0, "stress", 0.5, 0, [])
        f.start(t, 0, "injected", 1.5, 0, [])
        assert t.glitch[0] == 1.0 and t.gid[0] == 2
        faded = kinds(step(f, t, 0, decay=1.0), GlitchFaded)
        assert [e.id for e in faded] == [1]

    def test_a_weaker_glitch_never_renames_the_stronger_one_carried(self) -> None:
        t = table(2)
        f = GlitchField()
        events: list[EventItem] = []
        f.start(t, 0, "stress", 0.8, 0, events)
        f.start(t, 0, "sensor", 0.3, 0, events)
        f.start(t, 0, "injected", 0.8, 0, events)  # as strong: not stronger
        assert [e.id for e in kinds(events, GlitchStarted)] == [1, 2, 3]
        assert t.glitch[0] == 0.8 and t.gid[0] == 1
        faded = step(f, t, 0, decay=1.0)
        assert faded == [
            GlitchFaded(2, "sensor", "d0", 1, 0.1),
            GlitchFaded(3, "injected", "d0", 1, 0.1),
        ]
        assert list(f.active) == [1] and t.gid[0] == 1
        spread = kinds(step(f, t, 1, rate=1e9, decay=1.0), GlitchSpread)
        assert [(e.id, e.source, e.to) for e in spread] == [(1, "d0", "d1")]
        assert f.active[1].reach == 2

    def test_in_the_engine_the_stronger_glitch_keeps_its_carrier(self) -> None:
        engine = Engine(1, EngineConfig(trait_variation=0.0), calm_template())
        engine.step([tel("rico", 1, 0.5, 0.3), DreamerJoined("lila")])
        # inputs apply in kind order: the stress spike (0.8) first, then the sensor fault (0.2)
        events = engine.step([PodFault("rico", 0), tel("rico", 2, 0.5, 0.7)]).events
        started = kinds(events, GlitchStarted)
        assert [(e.id, e.glitch, e.intensity) for e in started] == [
            (1, "stress", 0.8),
            (2, "sensor", 0.2),
        ]
        assert [e.id for e in kinds(events, GlitchFaded)] == [2]
        assert engine.dreamers.gid[engine.dreamers.index["rico"]] == 1
        assert [(g["id"], g["carriers"]) for g in engine.view()["glitches"]] == [(1, 1)]  # type: ignore[index,union-attr]

    def test_glitch_pushes_valence_down_and_arousal_up(self) -> None:
        cfg = EngineConfig(trait_variation=0.0, baseline_pull=0.0, scene_pull=0.0)
        engine = Engine(1, cfg, calm_template())
        engine.step([DreamerJoined("a"), DreamerJoined("b"), GlitchInjected("a", 1.0)])
        engine.step([])
        t = engine.dreamers
        assert t.val[0] < t.val[1] and t.aro[0] > t.aro[1]


def drive(machine: PhaseMachine, values: list[float]) -> list[tuple[str, str]]:
    out = []
    for b in values:
        tr = machine.observe(b)
        if tr is not None:
            out.append((tr.rule.source, tr.rule.target))
    return out


class TestPhaseMachine:
    cfg = EngineConfig()  # 10 Hz: strain 10 ticks, collapse 30, clear 20, recover 30, stable 50

    def test_full_cycle_in_order(self) -> None:
        m = PhaseMachine(self.cfg)
        path = drive(m, [0.35] * 10 + [0.25] * 30 + [0.42] * 30 + [0.5] * 50)
        assert path == [("stable", "strained"), ("strained", "collapsed"),
                        ("collapsed", "recovering"), ("recovering", "stable")]  # fmt: skip

    def test_durations_are_required(self) -> None:
        m = PhaseMachine(self.cfg)
        assert drive(m, [0.35] * 9) == []
        assert drive(m, [0.5] + [0.35] * 9) == []  # a good tick resets the hold
        assert drive(m, [0.35]) == [("stable", "strained")]

    def test_hysteresis_no_flapping_on_noise(self) -> None:
        m = PhaseMachine(self.cfg)
        drive(m, [0.35] * 10)
        noisy = [0.39, 0.44, 0.41, 0.43] * 100  # around the strain threshold, never above clear
        assert drive(m, noisy) == []
        assert m.phase == "strained"
        assert drive(m, [0.46] * 20) == [("strained", "stable")]

    def test_relapse_and_collapsed_needs_the_higher_threshold(self) -> None:
        m = PhaseMachine(self.cfg, "collapsed")
        assert drive(m, [0.35] * 100) == []  # above collapse, below recover: stays collapsed
        drive(m, [0.45] * 30)
        assert m.phase == "recovering"
        assert drive(m, [0.2] * 30) == [("recovering", "collapsed")]

    def test_unknown_phase(self) -> None:
        with pytest.raises(ValueError):
            PhaseMachine(self.cfg, "panic")

    def test_table_is_the_documented_cycle(self) -> None:
        edges = {(r.source, r.target) for r in TABLE}
        assert edges == {("stable", "strained"), ("strained", "collapsed"), ("strained", "stable"),
                         ("collapsed", "recovering"), ("recovering", "stable"),
                         ("recovering", "collapsed")}  # fmt: skip


CTRL = EngineConfig(
    trait_variation=0.0,
    channel_strength=0.0,
    scene_pull=0.0,
    telemetry_pull=60.0,
    glitch_spread_rate=0.0,
)


class TestRecoveryActions:
    def test_collapse_actions_and_return_to_stable(self) -> None:
        engine = Engine(3, CTRL, calm_template())
        seq = 0

        def feed(
            v: float, a: float, ticks: int, extra: list[object] | None = None
        ) -> tuple[list[dict[str, object]], list[object]]:
            nonlocal seq
            events: list[dict[str, object]] = []
            cues: list[object] = []
            for k in range(ticks):
                seq += 1
                inputs = [tel("lila", seq, v, a), tel("rico", seq, v, min(1.0, a + 0.3))]
                result = engine.step(inputs + (list(extra or []) if k == 0 else []))  # type: ignore[arg-type]
                events += result.events
                cues += result.cues
            return events, cues

        feed(
            0.6,
            0.3,
            5,
            [DreamerJoined("ws"), GlitchInjected("rico", 1.0), GlitchInjected("lila", 0.5)],
        )
        events, cues = feed(0.2, 0.5, 50)
        phase = kinds(events, PhaseChanged)
        assert [(e.source, e.to) for e in phase] == [
            ("stable", "strained"),
            ("strained", "collapsed"),
        ]
        collapse = phase[1]
        assert collapse.reason == "balance collapsed"
        assert collapse.figures == PhaseFigures(pytest.approx(0.2, abs=0.06), 0.3, 3.0)
        assert collapse.actions == RecoveryActions(0.4, ("lila", "rico"), "hearth", True, 2)
        assert sorted((c.pod, c.kind) for c in cues) == [("lila", "calm"), ("rico", "breathe")]  # type: ignore[attr-defined]
        assert engine.damped and engine.circle is not None
        t = engine.dreamers
        assert t.mute[t.index["rico"]] > engine.tick
        assert engine.narrative.scene.id == "hearth"
        events, _ = feed(0.7, 0.2, 100)
        assert [(e.source, e.to) for e in kinds(events, PhaseChanged)] == [
            ("collapsed", "recovering"),
            ("recovering", "stable"),
        ]
        assert kinds(events, CircleClosed) == [CircleClosed("stable", 0)]
        assert not engine.damped and engine.circle is None

    def test_upload_while_collapsed_goes_to_the_safe_scene(self) -> None:
        from sleepsync.server.engine import TemplateUploaded

        from engine_helpers import scene, template

        engine = Engine(3, CTRL, calm_template())
        engine.step([DreamerJoined("mira")])  # someone who can speak in the circle
        for seq in range(60):
            engine.step([tel("lila", seq, 0.1, 0.5)])
        assert engine.phase == "collapsed"
        new = template([scene("a", 0.5, 0.5, ("z", {"after": 1})), scene("z", 0.9, 0.1)], "a", "z")
        events = engine.step([TemplateUploaded("lila", new)]).events
        assert kinds(events, SceneChanged)[0].to == "z"
        assert engine.circle is not None and engine.circle.opened_by == "recovery"
        _ = run(engine, 1)

    def test_a_room_of_pods_collapses_without_a_circle(self) -> None:
        engine = Engine(3, CTRL, calm_template())
        events = []
        for seq in range(60):
            events += engine.step([tel("lila", seq, 0.1, 0.5), tel("rico", seq, 0.1, 0.5)]).events
        collapse = [e for e in kinds(events, PhaseChanged) if e.to == "collapsed"]
        assert collapse and collapse[0].actions is not None
        assert collapse[0].actions.circle is False
        assert engine.circle is None and not kinds(events, CircleOpened)
