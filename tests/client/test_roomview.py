"""The room view model and the sentences, without Textual or a server."""

from __future__ import annotations

import itertools

import pytest

from sleepsync.client.commands import Command, Story, parse_line, pass_refusal, who_lines
from sleepsync.client.roomview import SAMPLE_S, RoomView, scene_label
from sleepsync.client.sentences import describe, describe_message
from sleepsync.protocol.events import (
    CircleClosed,
    DreamerWentOffline,
    EventItem,
    GlitchFaded,
    InputRefused,
    MemberLeft,
    Mood,
    NarrativeChanged,
    NightmareReleased,
    PhaseChanged,
    PhaseFigures,
    PodWentOffline,
    SceneChanged,
    TrapCaught,
    UnknownEvent,
)
from sleepsync.protocol.messages import Error, Event, Resync, RoomInfo, Rooms, Status

from scripted_room import DRIFT, HEARTH, T0, event, night, snapshot, welcome


def folded(until: str = "collapse") -> tuple[RoomView, list[str]]:
    view = RoomView("demo", me="ana")
    said: list[str] = []
    for msg in night(until):
        items = view.apply(msg)
        if isinstance(msg, Event):
            said += [str(s) for item in items if (s := describe(item, view)) is not None]
        else:
            said += [str(s) for s in describe_message(msg, view)]
    return view, said


class TestFold:
    def test_snapshot_gives_members_scene_text_and_story(self) -> None:
        view = RoomView("demo", me="ana")
        view.apply(welcome())
        view.apply(snapshot())
        assert view.node == "node-1" and view.session == "s-you"
        assert [m.name for m in view.people()] == ["lila", "mira"]
        assert len(view.pods()) == 6 and view.pods()[0].role == "pod"
        assert view.scene == "drift" and view.scene_text == DRIFT
        assert view.narrative == "The Shared Night"
        assert [s.text for s in view.story] == ["We float above a quiet sea."]
        assert view.moods["pod-001"].pod and not view.moods["lila"].pod
        assert view.balance == 0.52 and view.ready

    def test_the_night_folds_into_a_collapsed_room_with_a_circle(self) -> None:
        view, _ = folded()
        assert view.phase == "collapsed"
        assert view.scene == "hearth" and view.scene_text == HEARTH
        assert view.circle is not None and view.circle.turn == "ana" and view.my_turn()
        assert view.circle_order() == ["ana", "lila"], "people only, never pods"
        assert view.moods["pod-003"].isolated and not view.moods["lila"].isolated
        assert [m.kind for m in view.marks] == ["glitch", "phase", "phase"]
        assert view.glitches[1].carriers == {"pod-003", "lila", "pod-005"}
        assert view.story[-1].text == "We sit by the fire and the static fades."
        assert view.turn_left_s() == pytest.approx(20.0 - 0.5 * 9)

    def test_history_keeps_one_point_per_sample_period(self) -> None:
        view, _ = folded("calm")
        times = [t for t, _ in view.history]
        assert len(times) == 41
        assert all(b - a >= SAMPLE_S - 1e-9 for a, b in itertools.pairwise(times))

    def test_scene_text_without_a_text_field_comes_from_what_was_seen(self) -> None:
        view = RoomView("demo")
        view.apply(snapshot())
        view.apply(event(11, [SceneChanged("drift", "storm", "transition")], T0))
        assert view.scene == "storm" and view.scene_text == ""
        view.apply(event(12, [SceneChanged("storm", "drift", "transition")], T0 + 1))
        assert view.scene_text == DRIFT
        view.apply(event(13, [NarrativeChanged("New", "lila", "a")], T0 + 2))
        assert view.narrative == "New" and view.scene_texts == {}

    def test_leaving_offline_and_fading(self) -> None:
        view, _ = folded()
        items: list[EventItem] = [
            MemberLeft("lila", "dreamer"),
            PodWentOffline("pod-001"),
            DreamerWentOffline("pod-002", "timeout"),
            GlitchFaded(1, "sensor", "pod-003", 3, 20.0),
            CircleClosed("stable", 1),
        ]
        view.apply(event(view.seq + 1, items, T0 + 100))
        assert "lila" not in view.moods and ("lila", "dreamer") not in view.members
        assert not view.members[("pod-001", "pod")].online and not view.moods["pod-001"].online
        assert not view.moods["pod-002"].online
        assert view.glitches == {} and view.circle is None
        view.apply(event(view.seq + 1, [Mood(0.5, "collapsed", ())], T0 + 101))
        assert view.moods == {}

    def test_messages_for_other_rooms_are_ignored(self) -> None:
        view = RoomView("elsewhere")
        view.apply(snapshot())
        assert not view.ready and view.apply(event(11, [], T0)) == []


class TestSentences:
    def test_the_night_reads_as_sentences(self) -> None:
        _, said = folded()
        assert "You are in room demo with lila, mira and 6 pods." in said
        assert f"The Shared Night, the drift: {DRIFT}" in said
        assert any(s.startswith("The dream moves to the tide pools: Shallow pools") for s in said)
        assert "A glitch spread from pod-003 to lila." in said
        assert (
            "The room collapsed: balance 0.28. Isolating pod-003 and pod-005, moving everyone "
            "to the hearth, a storytelling circle opens, calming 6 pods." in said
        )
        assert "Your turn: tell a line, or /pass." in said
        assert "lila: We sit by the fire and the static fades." in said
        assert not any("balance 0.5" in s and "mood" in s for s in said)
        assert not any("=" in s or "[seq" in s for s in said), "no key=value, no seq"

    def test_refusals_only_for_this_session(self) -> None:
        view = RoomView("demo", me="ana")
        view.apply(welcome("s-you"))
        mine = InputRefused("s-you", "pass", "it is not your turn: lila holds the circle")
        assert str(describe(mine, view)) == "Not now: it is not your turn: lila holds the circle."
        assert describe(InputRefused("s-other", "pass", "no"), view) is None

    @pytest.mark.parametrize(
        ("item", "text"),
        [
            (
                PhaseChanged("collapsed", "recovering", "up", PhaseFigures(0.41, 0.4, 3.0)),
                "The room is recovering: balance 0.41.",
            ),
            (
                PhaseChanged("recovering", "stable", "up", PhaseFigures(0.46, 0.45, 5.0)),
                "The room is stable again: balance 0.46.",
            ),
            (
                TrapCaught("storm-coast", 300.0, "x"),
                "The dream was stuck in the storm coast for 300 s.",
            ),
            (
                NightmareReleased("pod-002", ("storm-coast", "drift"), 0.2, 0.8, 15.0),
                "pod-002 was caught in a nightmare loop (storm coast → drift) and is released "
                "for 15 s.",
            ),
            (DreamerWentOffline("pod-002", "status"), None),
            (UnknownEvent("comet", {}), "Something this client does not know happened: comet."),
        ],
    )
    def test_items(self, item: EventItem, text: str | None) -> None:
        said = describe(item, RoomView("demo"))
        assert (None if said is None else str(said)) == text

    def test_messages(self) -> None:
        rooms = Rooms([RoomInfo("demo", 2, 1, "stable")])
        assert [str(s) for s in describe_message(rooms)] == [
            "Room demo: 2 dreamers, 1 watching, stable."
        ]
        assert "catching up" in str(describe_message(Resync("demo", "gone"))[0])
        assert str(describe_message(Status("degraded", "redis down"))[0]) == (
            "The server is degraded: redis down"
        )
        assert "(room_full)" in str(describe_message(Error("room_full", "full", False))[0])
        assert scene_label("tide-pools") == "the tide pools"


class TestCommands:
    def test_parse(self) -> None:
        assert parse_line("  ") is None
        assert parse_line("once upon a time") == Story("once upon a time")
        assert parse_line("/template  night.json ") == Command("template", "night.json")
        assert parse_line("/WHO") == Command("who")

    def test_pass_is_checked_locally(self) -> None:
        view, _ = folded("calm")
        assert pass_refusal(view) is None, "no circle in sight: the room decides"
        view, _ = folded()
        assert pass_refusal(view) is None
        view.me = "lila"
        assert pass_refusal(view) == "it is not your turn: ana holds the circle"

    def test_who_lists_people_and_pods(self) -> None:
        view, _ = folded()
        lines = who_lines(view)
        assert lines[0] == "In demo: 3 people and 6 pods."
        assert "  ana (you): dreamer, holds the circle" in lines
        assert any(
            line.startswith("  pod-003: pod, online") and "isolated" in line for line in lines
        )
