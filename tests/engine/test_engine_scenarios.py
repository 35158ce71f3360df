"""Scenarios from the story, end to end through Engine.step."""

from __future__ import annotations

from sleepsync.protocol.events import (
    CircleClosed,
    CircleLifted,
    CircleOpened,
    DreamerWentOffline,
    EventItem,
    GlitchFaded,
    GlitchSpread,
    GlitchStarted,
    PhaseChanged,
    SceneChanged,
)
from sleepsync.server.engine import (
    DreamerJoined,
    Engine,
    EngineConfig,
    StoryLine,
    TemplateUploaded,
    Traits,
)

from engine_helpers import dreamer, kinds, scene, tel, template


def test_calm_room_absorbs_one_anxious_dreamer() -> None:
    """Four calm pods and Rico, anxious, with no fresh telemetry after he joins:
    contagion pulls him up to the room instead of dragging the room down."""
    engine = Engine(11, EngineConfig(trait_variation=0.0))
    calm = ["jasper", "lila", "mira", "nora"]
    seq = 0
    engine.step([tel(n, 0, 0.75, 0.25) for n in calm] + [tel("rico", 0, 0.1, 0.9)])
    rico_start = dreamer(engine, "rico")
    for _ in range(15):  # Rico's pod keeps reporting distress for a moment
        seq += 1
        engine.step([tel(n, seq, 0.75, 0.25) for n in calm] + [tel("rico", seq, 0.1, 0.9)])
    rico_low = dreamer(engine, "rico")
    assert rico_low[0] < rico_start[0] and rico_low[1] > rico_start[1]
    events: list[EventItem] = []
    for _ in range(600):  # then his pod goes quiet; the calm pods keep reporting
        seq += 1
        events += engine.step([tel(n, seq, 0.75, 0.25) for n in calm]).events
    rico_end = dreamer(engine, "rico")
    assert rico_end[0] > rico_low[0] + 0.15 and rico_end[1] < rico_low[1] - 0.2
    for name in calm:
        v, a = dreamer(engine, name)
        assert v > 0.65 and a < 0.35
    assert engine.phase == "stable"
    assert not kinds(events, PhaseChanged)
    assert kinds(events, DreamerWentOffline)[0].dreamer == "rico"
    assert engine.balance > 0.55


def corrupted_template() -> TemplateUploaded:
    t = template(
        [
            scene("gate", 0.45, 0.5, ("fracture", {"after": 2})),
            scene("fracture", 0.2, 0.85, ("hearth", {"after": 600}), corruption=1.0),
            scene("hearth", 0.85, 0.15),
        ],
        "gate",
        "hearth",
        title="Beyond the static",
    )
    return TemplateUploaded("rico", t)


def test_corrupted_fragment_collapses_a_fragile_room_and_it_recovers() -> None:
    """Rico uploads a corrupted narrative into a fragile room. Glitches spread,
    the room collapses, recovery damps contagion, isolates Rico, moves to the
    hearth, opens a circle and cues the pods; the pods respond to the cues,
    the dreamers tell the story in turn, and the room comes back to stable."""
    config = EngineConfig(trait_variation=0.0, amplification=0.6, bias=0.2)
    engine = Engine(2009, config)
    pods = ["jasper", "lila", "mira", "rico"]
    for name in pods:
        engine.set_traits(name, Traits(0.8, 0.8, 0.6, 0.2))
    level = {name: (0.42, 0.55) for name in pods}
    seq = 0
    cued: set[str] = set()
    events: list[EventItem] = []
    circle_turn = None

    def tick(extra: list[object] | None = None) -> None:
        nonlocal seq
        seq += 1
        inputs = [tel(n, seq, *level[n]) for n in pods] + list(extra or [])
        result = engine.step(inputs)  # type: ignore[arg-type]
        events.extend(result.events)
        for cue in result.cues:
            cued.add(cue.pod)
            # a cued pod calms its dreamer: its measurements rise
            level[cue.pod] = (0.75, 0.2)

    tick([DreamerJoined("observer-dreamer")])
    for _ in range(30):
        tick()
    assert engine.phase == "stable"
    tick([corrupted_template()])
    for _ in range(1200):
        tick()
        circle = engine.circle
        if circle is not None and circle.holder != circle_turn:
            circle_turn = circle.holder
            tick([StoryLine(circle.holder, "We hold hands and the static fades.")])
        if (
            engine.phase == "stable"
            and kinds(events, PhaseChanged)[-1:]
            and kinds(events, PhaseChanged)[-1].to == "stable"
        ):
            break
    for _ in range(300):  # the night goes on, calmly
        tick()

    started = kinds(events, GlitchStarted)
    assert started[0].glitch == "fragment" and started[0].origin == "rico"
    assert kinds(events, GlitchSpread), "the glitch must spread in a fragile room"
    assert kinds(events, GlitchFaded)[0].id == started[0].id
    phases = [(e.source, e.to) for e in kinds(events, PhaseChanged)]
    assert phases[:4] == [
        ("stable", "strained"),
        ("strained", "collapsed"),
        ("collapsed", "recovering"),
        ("recovering", "stable"),
    ]
    collapse = kinds(events, PhaseChanged)[1]
    assert collapse.figures.balance < config.collapse_below
    actions = collapse.actions
    assert actions is not None
    assert actions.scene == "hearth" and actions.circle is True
    assert "rico" in actions.isolated
    assert cued == set(pods)  # pods only: the websocket dreamer gets no cue
    assert any(e.to == "hearth" and e.reason == "recovery" for e in kinds(events, SceneChanged))
    assert kinds(events, CircleOpened)[0].by == "recovery"
    assert kinds(events, CircleLifted)
    assert kinds(events, CircleClosed)[-1].reason == "stable"
    assert engine.phase == "stable" and engine.balance > config.stable_above
    assert not engine.damped
