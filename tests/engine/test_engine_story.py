"""Narrative runtime (transitions, traps, fragments), storytelling circle, nightmare loops."""

from __future__ import annotations

from sleepsync.protocol.events import (
    CircleClosed,
    CircleLifted,
    CircleOpened,
    CircleTurn,
    EventItem,
    GlitchStarted,
    NarrativeChanged,
    NightmareReleased,
    PhaseChanged,
    SceneChanged,
    TrapCaught,
)
from sleepsync.server.engine import (
    DreamerJoined,
    DreamerLeft,
    Engine,
    EngineConfig,
    StoryLine,
    TemplateUploaded,
)
from sleepsync.server.engine.api import Refusal
from sleepsync.server.engine.circle import parse_command
from sleepsync.server.engine.narrative_runtime import MAX_HISTORY, NarrativeRuntime

from engine_helpers import calm_template, kinds, run, scene, tel, template

CFG = EngineConfig(trait_variation=0.0)


class TestNarrative:
    def test_timed_transition(self) -> None:
        t = template([scene("a", 0.5, 0.5, ("b", {"after": 1})), scene("b", 0.5, 0.5)], "a", "b")
        engine = Engine(1, CFG, t)
        events = run(engine, 9, [DreamerJoined("x")])
        assert kinds(events, SceneChanged) == []
        events = run(engine, 1)
        assert kinds(events, SceneChanged) == [SceneChanged("a", "b", "transition", "Scene b.")]

    def test_balance_condition_and_first_matching_transition_wins(self) -> None:
        t = template(
            [
                scene(
                    "a",
                    0.5,
                    0.5,
                    ("low", {"balance_below": 0.45}),
                    ("high", {"balance_above": 0.45}),
                ),
                scene("low", 0.5, 0.5, ("safe", {"after": 1})),
                scene("high", 0.5, 0.5, ("safe", {"after": 1})),
                scene("safe", 0.5, 0.5),
            ],
            "a",
            "safe",
        )
        engine = Engine(1, CFG, t)
        events = engine.step([DreamerJoined("x")]).events
        assert kinds(events, SceneChanged)[0].to == "high"

    def test_scene_mood_pulls_dreamers(self) -> None:
        t = template([scene("a", 0.9, 0.1, ("b", {"after": 3000})), scene("b", 0.5, 0.5)], "a", "b")
        engine = Engine(1, EngineConfig(trait_variation=0.0, baseline_pull=0.0, scene_pull=1.0), t)
        run(engine, 50, [DreamerJoined("x")])
        assert engine.dreamers.val[0] > 0.85 and engine.dreamers.aro[0] < 0.15

    def test_run_time_trap_is_caught(self) -> None:
        # 'stuck' can only leave when balance is above 0.99: never, in practice
        t = template(
            [
                scene("stuck", 0.5, 0.5, ("safe", {"balance_above": 0.99}), max_dwell=2),
                scene("safe", 0.5, 0.5),
            ],
            "stuck",
            "safe",
        )
        engine = Engine(1, CFG, t)
        events = run(engine, 30, [DreamerJoined("x")])
        reason = "no transition fired within the maximum dwell time"
        assert kinds(events, TrapCaught) == [TrapCaught("stuck", 2.0, reason)]
        assert kinds(events, SceneChanged) == [SceneChanged("stuck", "safe", "trap", "Scene safe.")]

    def test_default_dwell_applies_and_safe_scene_never_traps(self) -> None:
        t = template(
            [scene("a", 0.5, 0.5, ("b", {"balance_above": 0.99})), scene("b", 0.5, 0.5)], "a", "b"
        )
        engine = Engine(1, EngineConfig(trait_variation=0.0, max_scene_dwell_s=1.0), t)
        events = run(engine, 100, [DreamerJoined("x")])
        assert len(kinds(events, TrapCaught)) == 1

    def test_corrupted_fragment_origin(self) -> None:
        corrupt = template(
            [
                scene("a", 0.5, 0.5, ("c", {"after": 0.1})),
                scene("c", 0.3, 0.7, ("s", {"after": 100}), corruption=0.6),
                scene("s", 0.8, 0.2),
            ],
            "a",
            "s",
        )
        engine = Engine(1, CFG, calm_template())
        engine.step([tel("lila", 1, 0.2, 0.5), tel("mira", 1, 0.9, 0.5)])
        events = run(engine, 3, [TemplateUploaded("ghost", corrupt)])
        started = kinds(events, GlitchStarted)
        assert [(e.glitch, e.origin, e.intensity) for e in started] == [("fragment", "lila", 0.6)]
        engine = Engine(1, CFG, calm_template())
        engine.step([tel("lila", 1, 0.2, 0.5), tel("mira", 1, 0.9, 0.5)])
        events = run(engine, 3, [TemplateUploaded("mira", corrupt)])
        assert kinds(events, GlitchStarted)[0].origin == "mira"

    def test_corrupt_entry_in_an_empty_room_starts_nothing(self) -> None:
        corrupt = template(
            [scene("c", 0.3, 0.7, ("s", {"after": 1}), corruption=0.6), scene("s", 0.8, 0.2)],
            "c",
            "s",
        )
        engine = Engine(1, CFG, calm_template())
        assert engine.step([TemplateUploaded("x", corrupt)]).events[:2] == [
            NarrativeChanged("T", "x", "c"),
            SceneChanged("rest", "c", "narrative", "Scene c."),
        ]
        assert not engine.glitches.active

    def test_history_is_bounded_and_loops_are_found(self) -> None:
        rt = NarrativeRuntime(
            template(
                [
                    scene("a", 0.5, 0.5, ("b", {"after": 1})),
                    scene("b", 0.5, 0.5, ("a", {"after": 1})),
                ],
                "a",
                "b",
            )
        )
        events: list[EventItem] = []
        for k in range(1, 200):
            rt.move("b" if k % 2 else "a", "transition", k * 10, events)  # type: ignore[arg-type]
        assert len(rt.history) == MAX_HISTORY
        assert rt.loop(2000, 50, 2) == ["b", "a"]
        assert rt.loop(2000, 15, 2) is None  # window holds 'b' then 'a': no re-entry
        assert rt.loop(5000, 50, 2) is None  # window holds only the current scene


class TestCircle:
    def test_commands(self) -> None:
        assert parse_command(" /circle ") == "open"
        assert parse_command("/CIRCLE open") == "open"
        assert parse_command("/circle close") == "close"
        assert parse_command("/circle end") == "close"
        assert parse_command("/circle dance") is None
        assert parse_command("/pass") == "pass"
        assert parse_command("") is None
        assert parse_command("once upon a time") is None

    def test_turns_lifts_pass_and_close(self) -> None:
        engine = Engine(1, CFG, calm_template())
        engine.step([DreamerJoined(n) for n in ("lila", "mira", "rico")])
        events = engine.step([StoryLine("ghost", "/circle"), StoryLine("mira", "/circle")]).events
        assert kinds(events, CircleOpened) == [
            CircleOpened("mira", ("lila", "mira", "rico"), "mira", 20.0)
        ]
        before = list(engine.dreamers.val)
        events = engine.step(
            [StoryLine("lila", "not my turn"), StoryLine("mira", "The tide came in.")]
        ).events
        assert kinds(events, CircleLifted) == [CircleLifted("mira", 0.05)]
        assert kinds(events, CircleTurn) == [CircleTurn("rico", "told")]
        assert all(after > b for after, b in zip(engine.dreamers.val, before, strict=True))
        events = engine.step([StoryLine("rico", "/pass"), StoryLine("mira", "/circle")]).events
        assert kinds(events, CircleTurn) == [CircleTurn("lila", "passed")]
        assert not kinds(events, CircleOpened)
        events = engine.step(
            [StoryLine("rico", "/pass"), StoryLine("rico", "/circle close")]
        ).events
        assert kinds(events, CircleClosed) == [CircleClosed("closed by rico", 1)]
        assert engine.circle is None
        events = engine.step(
            [StoryLine("rico", "hello"), StoryLine("rico", "/circle close")]
        ).events
        assert [e.kind for e in events] == ["mood"]

    def test_turns_go_to_people_never_to_pods(self) -> None:
        engine = Engine(1, CFG, calm_template())
        engine.step([tel("lila", 1, 0.5, 0.5), tel("rico", 1, 0.5, 0.5), DreamerJoined("mira")])
        engine.step([DreamerJoined("zed"), StoryLine("rico", "/circle")])  # a pod cannot open one
        assert engine.circle is None and engine.speakers() == ["mira", "zed"]
        events = engine.step([StoryLine("mira", "/circle")]).events
        assert kinds(events, CircleOpened) == [CircleOpened("mira", ("mira", "zed"), "mira", 20.0)]
        events = engine.step([StoryLine("mira", "/pass")]).events
        assert kinds(events, CircleTurn) == [CircleTurn("zed", "passed")]
        events = engine.step([StoryLine("zed", "a lantern")]).events
        assert kinds(events, CircleTurn) == [CircleTurn("mira", "told")]
        events = engine.step([DreamerLeft("mira"), DreamerLeft("zed")]).events
        assert kinds(events, CircleClosed) == [CircleClosed("empty", 1)]

    def test_commands_that_cannot_apply_are_refused_to_their_author(self) -> None:
        engine = Engine(1, CFG, calm_template())
        engine.step([DreamerJoined("lila"), DreamerJoined("rico")])
        result = engine.step([StoryLine("lila", "/pass"), StoryLine("rico", "/circle close")])
        assert result.refused == [
            Refusal("lila", "/pass", "pass", "no storytelling circle is open"),
            Refusal("rico", "/circle close", "circle", "no storytelling circle is open"),
        ]
        engine.step([StoryLine("lila", "/circle")])
        result = engine.step([StoryLine("rico", "/pass"), StoryLine("rico", "/circle")])
        assert result.refused == [
            Refusal("rico", "/circle", "circle", "a circle is already open; it is lila's turn"),
            Refusal("rico", "/pass", "pass", "it is not your turn: lila holds the circle"),
        ]
        assert engine.step([StoryLine("rico", "just a line")]).refused == []
        assert not kinds(result.events, CircleTurn)

    def test_timeout_leaver_time_limit_and_empty_room(self) -> None:
        cfg = EngineConfig(trait_variation=0.0, circle_turn_s=1.0, circle_max_s=3.0)
        engine = Engine(1, cfg, calm_template())
        engine.step([DreamerJoined("lila"), DreamerJoined("rico"), StoryLine("rico", "/circle")])
        events = run(engine, 10)
        assert kinds(events, CircleTurn)[0] == CircleTurn("lila", "timeout")
        events = engine.step([DreamerLeft("lila")]).events
        assert kinds(events, CircleTurn) == [CircleTurn("rico", "left")]
        events = run(engine, 20)
        assert kinds(events, CircleClosed) == [CircleClosed("time", 0)]
        engine.step([StoryLine("rico", "/circle")])
        events = engine.step([DreamerLeft("rico")]).events
        assert events == [CircleClosed("empty", 0)]


NIGHTMARE = template(
    [
        scene("corridor", 0.1, 0.9, ("stairs", {"after": 1})),
        scene(
            "stairs",
            0.1,
            0.9,
            ("corridor", {"after": 1}),
            ("dawn", {"after": 1, "balance_above": 0.98}),
        ),
        scene("dawn", 0.9, 0.1),
    ],
    "corridor",
    "dawn",
    "Loop",
)


def test_nightmare_loop_is_released() -> None:
    cfg = EngineConfig(
        trait_variation=0.0,
        nightmare_window_s=5.0,
        nightmare_release_s=3.0,
        # keep the room out of collapse: this test is about one dreamer
        strain_below=0.1,
        collapse_below=0.05,
        strain_clear_above=0.15,
        recover_above=0.15,
        stable_above=0.2,
    )
    engine = Engine(1, cfg, NIGHTMARE)
    events: list[EventItem] = []
    cues = []
    for seq in range(80):
        result = engine.step([tel("rico", seq, 0.1, 0.9), DreamerJoined("lila")])
        events += result.events
        cues += result.cues
    released = kinds(events, NightmareReleased)
    assert released, "a distressed dreamer in a looping room must be released"
    first = released[0]
    assert first.dreamer == "rico" and first.for_s == 3.0
    assert sorted(first.loop) == ["corridor", "stairs"]
    assert not kinds(events, PhaseChanged)
    assert [(c.pod, c.kind) for c in cues][:1] == [("rico", "breathe")]
    assert all(e.dreamer == "rico" for e in released)  # lila is not distressed
    # released dreamers are not released again during their release
    ticks = [i for i, e in enumerate(events) if e.kind == "nightmare_released"]
    assert len(ticks) == len(set(ticks))


def test_no_release_without_a_loop() -> None:
    cfg = EngineConfig(trait_variation=0.0, nightmare_window_s=2.0)
    engine = Engine(1, cfg, calm_template())
    events = []
    for seq in range(100):
        events += engine.step([tel("rico", seq, 0.05, 0.95)]).events
    assert not kinds(events, NightmareReleased)
