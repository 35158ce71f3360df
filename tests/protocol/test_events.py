"""Event items: round trips, validation with field paths, unknown and malformed kinds."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleepsync.protocol import events as ev
from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.errors import InvalidMessage
from sleepsync.protocol.events import (
    EVENT_TYPES,
    CircleClosed,
    CircleLifted,
    CircleOpened,
    CircleTurn,
    DreamerWentOffline,
    EventItem,
    GlitchFaded,
    GlitchSpread,
    GlitchStarted,
    InputRefused,
    KnownEvent,
    MemberJoined,
    MemberLeft,
    Mood,
    MoodRow,
    NarrativeChanged,
    NightmareReleased,
    PhaseChanged,
    PhaseFigures,
    PodCameOnline,
    PodWentOffline,
    RecoveryActions,
    Said,
    SceneChanged,
    TemplateRejected,
    TrapCaught,
    UnknownEvent,
    item_from_wire,
    items_of,
    wire_keys,
)
from sleepsync.protocol.events.fields import _Item
from sleepsync.protocol.messages import Event
from sleepsync.protocol.narrative import SCENE_ID_RE
from sleepsync.protocol.wire import NAME_RE, WireMap

names = st.from_regex(NAME_RE, fullmatch=True)
scene_ids = st.from_regex(SCENE_ID_RE, fullmatch=True)
labels = st.text(min_size=1, max_size=ev.MAX_LABEL)
reasons = st.text(max_size=120)
unit = st.floats(0.0, 1.0)
seconds = st.floats(0.0, ev.MAX_SECONDS)
counts = st.integers(0, ev.MAX_COUNT)
ids = st.integers(1, ev.MAX_COUNT)
name_lists = st.lists(names, max_size=6).map(tuple)

rows = st.builds(MoodRow, names, unit, unit, unit, st.none() | counts, st.none() | unit)
figures = st.builds(PhaseFigures, unit, unit, seconds)
actions = st.builds(RecoveryActions, unit, name_lists, scene_ids, st.booleans(), counts)

#: One strategy per kind; the test below checks that none is missing.
STRATEGIES: dict[type[KnownEvent], st.SearchStrategy[KnownEvent]] = {
    MemberJoined: st.builds(MemberJoined, names, labels),
    MemberLeft: st.builds(MemberLeft, names, labels),
    Said: st.builds(Said, names, st.text(min_size=1, max_size=500)),
    PodCameOnline: st.builds(PodCameOnline, names),
    PodWentOffline: st.builds(PodWentOffline, names),
    TemplateRejected: st.builds(TemplateRejected, names, reasons),
    InputRefused: st.builds(InputRefused, st.text(min_size=1, max_size=64), labels, reasons),
    Mood: st.builds(Mood, unit, labels, st.lists(rows, max_size=8).map(tuple)),
    DreamerWentOffline: st.builds(DreamerWentOffline, names, labels),
    GlitchStarted: st.builds(GlitchStarted, ids, labels, names, unit),
    GlitchSpread: st.builds(GlitchSpread, ids, names, names, unit),
    GlitchFaded: st.builds(GlitchFaded, ids, labels, names, counts, seconds),
    PhaseChanged: st.builds(PhaseChanged, labels, labels, reasons, figures, st.none() | actions),
    SceneChanged: st.builds(
        SceneChanged, scene_ids, scene_ids, labels, st.none() | st.text(max_size=1000)
    ),
    NarrativeChanged: st.builds(
        NarrativeChanged, st.text(min_size=1, max_size=80), names, scene_ids
    ),
    TrapCaught: st.builds(TrapCaught, scene_ids, seconds, reasons),
    CircleOpened: st.builds(CircleOpened, names, name_lists, names, seconds),
    CircleTurn: st.builds(CircleTurn, names, labels),
    CircleLifted: st.builds(CircleLifted, names, unit),
    CircleClosed: st.builds(CircleClosed, reasons, counts),
    NightmareReleased: st.builds(
        NightmareReleased, names, st.lists(scene_ids, max_size=5).map(tuple), unit, unit, seconds
    ),
}
known_items = st.one_of(*STRATEGIES.values())

wire_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text()
)
wire_values = st.recursive(
    wire_scalars | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=20,
)
ALL_KEYS = sorted({key for cls in EVENT_TYPES.values() for key in wire_keys(cls)})


def frame_of(*items: WireMap) -> Event:
    return Event("r1", 1, 1, 1, list(items))


class TestRegistry:
    def test_every_kind_has_a_type_and_a_strategy(self) -> None:
        item_types = {
            obj
            for obj in vars(ev).values()
            if isinstance(obj, type) and issubclass(obj, _Item) and obj is not _Item
        }
        assert set(EVENT_TYPES.values()) == item_types == set(STRATEGIES)
        assert all(EVENT_TYPES[cls.KIND] is cls for cls in item_types)

    def test_the_issue_kinds_are_all_there(self) -> None:
        expected = {
            "joined", "left", "said", "mood", "glitch_started", "glitch_spread",
            "glitch_faded", "phase", "scene", "narrative", "trap", "circle_opened",
            "circle_turn", "circle_lifted", "circle_closed", "nightmare_released",
            "pod_online", "pod_offline", "dreamer_offline", "template_rejected",
            "input_refused",
        }  # fmt: skip
        assert set(EVENT_TYPES) == expected

    def test_keyword_fields_keep_their_wire_key(self) -> None:
        assert wire_keys(PhaseChanged) == ("from", "to", "reason", "figures", "actions")
        assert wire_keys(GlitchSpread) == ("id", "from", "to", "intensity")
        assert wire_keys(SceneChanged) == ("from", "to", "reason", "text")
        assert wire_keys(MoodRow) == ("name", "valence", "arousal", "glitch", "seq", "fragility")
        assert wire_keys(str) == ()

    def test_kind_property(self) -> None:
        assert Said("lila", "hi").kind == "said" == Said.KIND
        assert UnknownEvent("aurora", {}).kind == "aurora"


class TestRoundTrip:
    @settings(max_examples=400)
    @given(known_items)
    def test_from_wire_inverts_to_wire(self, item: KnownEvent) -> None:
        wire = item.to_wire()
        assert wire["kind"] == item.KIND
        assert item_from_wire(wire, "item") == item
        declared = {"kind", *wire_keys(type(item))}
        assert set(wire) <= declared
        assert declared - set(wire) <= {"actions", "text"}  # the optional fields

    @settings(max_examples=100)
    @given(st.lists(known_items, max_size=6))
    def test_through_the_codec(self, items: list[KnownEvent]) -> None:
        msg = decode(encode(frame_of(*(i.to_wire() for i in items))))
        assert isinstance(msg, Event)
        assert items_of(msg) == items

    def test_mood_rows_are_compact_on_the_wire(self) -> None:
        mood = Mood(
            0.5,
            "stable",
            (MoodRow("lila", 0.5, 0.4, 0.0, None), MoodRow("rico", 1, 0, 0.25, 7, 0.75)),
        )
        assert mood.to_wire() == {
            "kind": "mood",
            "balance": 0.5,
            "phase": "stable",
            "dreamers": [["lila", 0.5, 0.4, 0.0, None], ["rico", 1, 0, 0.25, 7, 0.75]],
        }
        assert mood.dreamers[1].seq == 7 and mood.dreamers[0].name == "lila"

    def test_phase_wire_form(self) -> None:
        item = PhaseChanged(
            "strained",
            "collapsed",
            "balance collapsed",
            PhaseFigures(0.25, 0.3, 3.0),
            RecoveryActions(0.4, ("rico",), "hearth", True, 2),
        )
        assert item.to_wire() == {
            "kind": "phase",
            "from": "strained",
            "to": "collapsed",
            "reason": "balance collapsed",
            "figures": {"balance": 0.25, "threshold": 0.3, "held_s": 3.0},
            "actions": {
                "damping": 0.4,
                "isolated": ["rico"],
                "scene": "hearth",
                "circle": True,
                "cues": 2,
            },
        }
        assert "actions" not in dataclasses.replace(item, actions=None).to_wire()


class TestValidation:
    @settings(max_examples=300)
    @given(known_items, st.data())
    def test_a_mistyped_field_is_named(self, item: KnownEvent, data: st.DataObject) -> None:
        wire = item.to_wire()
        key = data.draw(st.sampled_from(sorted(k for k in wire if k != "kind")) | st.just("kind"))
        wrong: Any = "x" if isinstance(wire[key], dict | list) else {"x": 1}
        with pytest.raises(InvalidMessage) as info:
            item_from_wire({**wire, key: wrong}, "event.items[3]")
        assert info.value.path == f"event.items[3].{key}"

    @settings(max_examples=200)
    @given(known_items, st.data())
    def test_a_missing_field_is_named(self, item: KnownEvent, data: st.DataObject) -> None:
        wire = item.to_wire()
        optional = ("kind", "actions") if item.KIND != "scene" else ("kind", "text")
        required = sorted(k for k in wire if k not in optional)
        if not required:
            return
        key = data.draw(st.sampled_from(required))
        del wire[key]
        with pytest.raises(InvalidMessage, match="missing") as info:
            item_from_wire(wire, "item")
        assert info.value.path == f"item.{key}"

    @settings(max_examples=300)
    @given(
        st.dictionaries(
            st.sampled_from(ALL_KEYS) | st.text(max_size=6),
            wire_values,
            max_size=8,
        ),
        st.sampled_from(sorted(EVENT_TYPES)) | st.text(max_size=6) | wire_scalars,
    )
    def test_random_maps_raise_only_invalid_message(self, m: dict[str, Any], kind: Any) -> None:
        m["kind"] = kind
        try:
            item = item_from_wire(m, "item")
        except InvalidMessage:
            return
        assert item_from_wire(item.to_wire(), "item") == item

    def test_not_a_map(self) -> None:
        with pytest.raises(InvalidMessage) as info:
            item_from_wire(["kind", "said"], "event.items[0]")  # type: ignore[arg-type]
        assert info.value.path == "event.items[0]"

    @pytest.mark.parametrize(
        ("wire", "path"),
        [
            (
                {"kind": "glitch_started", "id": 1, "glitch": "stress", "origin": "rico",
                 "intensity": "high"},
                "event.items[3].intensity",
            ),
            (
                {"kind": "glitch_started", "id": 0, "glitch": "stress", "origin": "rico",
                 "intensity": 0.5},
                "event.items[3].id",
            ),
            (
                {"kind": "glitch_spread", "id": 2, "from": "a b", "to": "rico", "intensity": 0.5},
                "event.items[3].from",
            ),
            (
                {"kind": "mood", "balance": 0.5, "phase": "stable",
                 "dreamers": [["a", 0.5, 0.5, 0.0, 1], ["b", "sad", 0.5, 0.0, None]]},
                "event.items[3].dreamers[1].valence",
            ),
            (
                {"kind": "mood", "balance": 0.5, "phase": "stable", "dreamers": [["a", 0.5]]},
                "event.items[3].dreamers[0]",
            ),
            (
                {"kind": "mood", "balance": 0.5, "phase": "stable",
                 "dreamers": [["a", 0.5, 0.5, 0.0, True]]},
                "event.items[3].dreamers[0].seq",
            ),
            (
                {"kind": "mood", "balance": 1.5, "phase": "stable", "dreamers": []},
                "event.items[3].balance",
            ),
            (
                {"kind": "mood", "balance": 0.5, "phase": "stable", "dreamers": [[]] * 1025},
                "event.items[3].dreamers",
            ),
            (
                {"kind": "phase", "from": "stable", "to": "strained", "reason": "r",
                 "figures": {"balance": 0.3, "threshold": 0.4}},
                "event.items[3].figures.held_s",
            ),
            (
                {"kind": "phase", "from": "stable", "to": "strained", "reason": "r",
                 "figures": {"balance": 0.3, "threshold": 0.4, "held_s": 1.0},
                 "actions": {"damping": 0.4, "isolated": ["ok", 3], "scene": "s",
                             "circle": True, "cues": 0}},
                "event.items[3].actions.isolated[1]",
            ),
            (
                {"kind": "circle_opened", "by": "recovery", "order": "lila", "turn": "lila",
                 "turn_s": 20.0},
                "event.items[3].order",
            ),
            (
                {"kind": "nightmare_released", "dreamer": "rico", "loop": ["a", "B!"],
                 "valence": 0.1, "arousal": 0.9, "for_s": 15.0},
                "event.items[3].loop[1]",
            ),
            ({"kind": "said", "name": "lila", "text": ""}, "event.items[3].text"),
            ({"kind": "", "name": "lila"}, "event.items[3].kind"),
        ],
    )  # fmt: skip
    def test_paths_name_the_failing_field(self, wire: WireMap, path: str) -> None:
        with pytest.raises(InvalidMessage) as info:
            item_from_wire(wire, "event.items[3]")
        assert info.value.path == path

    def test_extra_keys_and_row_columns_are_ignored(self) -> None:
        wire: WireMap = {
            "kind": "mood",
            "balance": 0.5,
            "phase": "stable",
            "dreamers": [["a", 0.5, 0.5, 0.0, 3, 0.2, "a newer column"]],
            "weather": "fog",
        }
        assert item_from_wire(wire) == Mood(0.5, "stable", (MoodRow("a", 0.5, 0.5, 0.0, 3, 0.2),))
        wire["dreamers"] = [["a", 0.5, 0.5, 0.0, 3]]  # from a server without fragility
        assert item_from_wire(wire) == Mood(0.5, "stable", (MoodRow("a", 0.5, 0.5, 0.0, 3),))


class TestUnknownAndMalformed:
    def test_unknown_kinds_pass_through_unchanged(self) -> None:
        wire: WireMap = {"aurora": [1, 2], "kind": "aurora_borealis", "glow": 0.9}
        item = item_from_wire(wire, "item")
        assert item == UnknownEvent("aurora_borealis", {"aurora": [1, 2], "glow": 0.9})
        assert item.to_wire() == wire
        assert item.to_wire() is not item.to_wire()

    def test_items_of_never_raises(self) -> None:
        good = Said("lila", "once").to_wire()
        bad: WireMap = {"kind": "glitch_started", "id": "one"}
        newer: WireMap = {"kind": "aurora", "glow": 1}
        items: list[EventItem] = items_of(frame_of(good, bad, newer))
        assert items[0] == Said("lila", "once")
        assert items[1] == UnknownEvent(
            "glitch_started", {"id": "one"}, "event.items[1].id: expected an integer, got a string"
        )
        assert items[1].to_wire() == bad
        assert items[2] == UnknownEvent("aurora", {"glow": 1})

    def test_items_of_tolerates_items_that_are_not_maps(self) -> None:
        event = frame_of()
        object.__setattr__(event, "items", [["not", "a", "map"]])
        (item,) = items_of(event)
        assert isinstance(item, UnknownEvent) and item.kind == "?" and item.problem

    def test_items_of_type_reads_one_kind_and_skips_malformed_ones(self) -> None:
        frame = frame_of(
            Said("lila", "once").to_wire(),
            {"kind": "said", "name": "lila"},
            MemberJoined("rico", "dreamer").to_wire(),
            Said("rico", "twice").to_wire(),
        )
        assert ev.items_of_type(frame, Said) == [Said("lila", "once"), Said("rico", "twice")]
        assert ev.items_of_type(frame, Mood) == []
