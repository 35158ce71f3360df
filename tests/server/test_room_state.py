"""Room logic without sockets: membership, story lines, pods, seq, snapshots."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleepsync.protocol.errors import DecodeError
from sleepsync.protocol.events import (
    EVENT_TYPES,
    EventItem,
    InputRefused,
    Mood,
    MoodRow,
    Said,
    TemplateRejected,
    item_from_wire,
)
from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns
from sleepsync.server.config import Settings
from sleepsync.server.dream import engine_hooks
from sleepsync.server.engine.api import NO_VITALS, PodOffline, Telemetry
from sleepsync.server.inputs import (
    ForgetInput,
    MemberJoin,
    MemberLeave,
    RoomInput,
    StoryInput,
    TemplateInput,
    decode_input,
    decode_tick,
    encode_input,
    encode_tick,
    template_digest,
    template_texts,
)
from sleepsync.server.room_state import NOT_A_MEMBER, RoomState


def join(session: str, name: str, role: str = "dreamer") -> MemberJoin:
    return MemberJoin(session, name, "dreamer" if role == "dreamer" else "observer", "node-a")


def sample(pod: str, seq: int, valence: float = 0.5) -> Telemetry:
    vitals = VitalSigns(60.0, 50.0, 2.0, 14.0)
    return Telemetry(TelemetrySample(pod, "boot1", seq, 1000.0 + seq, vitals, valence, 0.4))


def kinds(items: list[EventItem]) -> list[tuple[object, ...]]:
    return [
        (i.kind, getattr(i, "name", None), getattr(i, "role", None))
        for i in items
        if not isinstance(i, Mood)
    ]


class TestMembership:
    def test_join_and_leave_are_events(self) -> None:
        room = RoomState("r")
        out = room.apply([join("s1", "lila"), join("s2", "rico", "observer")])
        assert kinds(out.items) == [("joined", "lila", "dreamer"), ("joined", "rico", "observer")]
        assert out.seq == 1
        out = room.apply([MemberLeave("s1")])
        assert kinds(out.items) == [("left", "lila", "dreamer")]
        assert room.dreamers() == [] and room.observers() == ["rico"]

    def test_one_person_with_several_terminals_joins_once(self) -> None:
        room = RoomState("r")
        out = room.apply([join("s1", "lila"), join("s2", "lila")])
        assert kinds(out.items) == [("joined", "lila", "dreamer")]
        out = room.apply([MemberLeave("s1")])
        assert out.items == [] and out.seq == 0, "still there on the other terminal"
        out = room.apply([MemberLeave("s2")])
        assert kinds(out.items) == [("left", "lila", "dreamer")]

    def test_duplicate_join_and_unknown_leave_are_ignored(self) -> None:
        room = RoomState("r")
        room.apply([join("s1", "lila")])
        out = room.apply([join("s1", "lila"), MemberLeave("nobody")])
        assert out.items == []
        assert room.session_count == 1


class TestStory:
    def test_story_lines_carry_author_and_text(self) -> None:
        room = RoomState("r")
        room.apply([join("s1", "lila")])
        out = room.apply([StoryInput("s1", "lila", "once upon a time")])
        assert out.items == [Said("lila", "once upon a time")]
        story = room.view()["story"]
        assert story == [{"seq": 2, "name": "lila", "text": "once upon a time"}]

    def test_story_tail_is_bounded(self) -> None:
        room = RoomState("r", story_tail=3)
        room.apply([join("s1", "lila")])
        for i in range(10):
            room.apply([StoryInput("s1", "lila", f"line {i}")])
        story = room.view()["story"]
        assert isinstance(story, list)
        assert [line["text"] for line in story] == ["line 7", "line 8", "line 9"]  # type: ignore[index]

    def test_a_line_from_someone_who_left_is_refused_to_its_sender(self) -> None:
        room = RoomState("r")
        out = room.apply([StoryInput("ghost", "x", "boo")])
        assert out.items == [InputRefused("ghost", "say", NOT_A_MEMBER)]
        assert out.seq == 1, "the refusal is a frame its sender sees"
        assert not room.view()["story"]

    def test_template_without_engine_is_rejected_not_applied(self) -> None:
        room = RoomState("r")
        out = room.apply([TemplateInput("lila", "json", "{}")])
        assert out.items == [TemplateRejected("lila", "this room runs no dream engine")]
        assert out.seq == 1, "a rejection alone is a frame"

    def test_a_bad_template_is_rejected_after_the_dream_items(self) -> None:
        room = RoomState("r", hooks=engine_hooks(Settings()))
        room.apply([join("s1", "lila")])
        out = room.apply([TemplateInput("lila", "json", "{not json")])
        assert [i.kind for i in out.items] == ["mood", "template_rejected"]
        rejected = out.items[-1]
        assert isinstance(rejected, TemplateRejected) and rejected.name == "lila"
        assert rejected.reason.startswith("$")

    def test_circle_commands_are_not_story_and_a_wrong_pass_is_answered(self) -> None:
        room = RoomState("r", hooks=engine_hooks(Settings()))
        room.apply([join("s1", "lila"), join("s2", "rico"), join("s3", "rico")])
        out = room.apply([StoryInput("s3", "rico", "/pass")])
        assert [i for i in out.items if not isinstance(i, Mood)] == [
            InputRefused("s3", "pass", "no storytelling circle is open")
        ]
        out = room.apply([StoryInput("s1", "lila", "/circle")])
        assert [i.kind for i in out.items] == ["circle_opened", "mood"]
        out = room.apply([StoryInput("s2", "rico", "/pass")])
        refused = [i for i in out.items if isinstance(i, InputRefused)]
        assert refused == [InputRefused("s2", "pass", "it is not your turn: lila holds the circle")]
        out = room.apply([StoryInput("s1", "lila", "a tide")])
        assert [i.kind for i in out.items] == ["said", "circle_lifted", "circle_turn", "mood"]
        assert [line["text"] for line in room.view()["story"]] == ["a tide"]  # type: ignore[index, union-attr]


class TestSeq:
    @given(st.lists(st.sampled_from(["join", "leave", "say", "quiet"]), max_size=60))
    @settings(max_examples=100)
    def test_seq_is_contiguous_and_only_counts_non_empty_ticks(self, script: list[str]) -> None:
        room = RoomState("r")
        seqs = []
        present: list[str] = []
        for n, step in enumerate(script):
            inputs: list[RoomInput] = []
            if step == "join":
                inputs = [join(f"s{n}", f"p{n}")]
                present.append(f"s{n}")
            elif step == "leave" and present:
                inputs = [MemberLeave(present.pop())]
            elif step == "say" and present:
                inputs = [StoryInput(present[0], "p", "hello")]
            out = room.apply(inputs)
            if out.items:
                seqs.append(out.seq)
            else:
                assert out.seq == 0
        assert seqs == list(range(1, len(seqs) + 1))
        assert room.seq == len(seqs)


class TestPods:
    def test_first_sample_makes_a_pod_member_and_offline_is_an_event(self) -> None:
        room = RoomState("r", hooks=engine_hooks(Settings()))
        out = room.apply([], [sample("pod1", 1)])
        assert ("joined", "pod1", "pod") in kinds(out.items)
        out = room.apply([], [sample("pod1", 2)])
        assert kinds(out.items) == []
        out = room.apply([], [PodOffline("pod1")])
        assert ("pod_offline", "pod1", None) in kinds(out.items)
        assert room.online_pods == 0
        out = room.apply([], [sample("pod1", 3)])
        assert ("pod_online", "pod1", None) in kinds(out.items)

    def test_capacity_counts_sessions_and_pods(self) -> None:
        room = RoomState("r", capacity=2, hooks=engine_hooks(Settings()))
        room.apply([join("s1", "lila")])
        room.apply([], [sample("pod1", 1)])
        out = room.apply([], [sample("pod2", 1)])
        assert out.refused_pods == ["pod2"]
        assert set(room.pods()) == {"pod1"}

    def test_mood_reports_last_applied_telemetry_seq(self) -> None:
        room = RoomState("r", hooks=engine_hooks(Settings()))
        out = room.apply([], [sample("pod1", 41), sample("pod1", 42)])
        mood = [i for i in out.items if isinstance(i, Mood)]
        assert mood and mood[0].dreamers[0].name == "pod1"
        assert mood[0].dreamers[0].seq == 42
        assert isinstance(mood[0].dreamers[0], MoodRow)

    def test_every_item_is_a_registered_type_that_reads_back(self) -> None:
        room = RoomState("r", hooks=engine_hooks(Settings()))
        script: list[tuple[list[RoomInput], list[Telemetry | PodOffline]]] = [
            ([join("s1", "lila"), join("s2", "rico", "observer")], [sample("pod1", 1)]),
            ([StoryInput("s1", "lila", "/circle")], [PodOffline("pod1")]),
            ([StoryInput("s1", "lila", "the sea"), TemplateInput("x", "json", "{")], []),
            ([MemberLeave("s1"), MemberLeave("s2")], [sample("pod1", 2)]),
        ]
        seen: set[str] = set()
        for inputs, external in script:
            for item in room.apply(inputs, external).items:
                assert type(item) is EVENT_TYPES[item.kind]
                assert item_from_wire(item.to_wire(), "item") == item
                seen.add(item.kind)
        assert {"joined", "left", "said", "pod_offline", "pod_online", "template_rejected"} <= seen


class TestPodNames:
    """A websocket member is never a pod, and never takes a pod's dreamer away."""

    def test_a_join_under_a_pod_name_is_refused_to_its_session(self) -> None:
        room = RoomState("r", hooks=engine_hooks(Settings()))
        room.apply([], [sample("pod1", 1)])
        out = room.apply([join("s1", "pod1"), StoryInput("s1", "pod1", "I am the pod")])
        refused = [i for i in out.items if isinstance(i, InputRefused)]
        assert [(i.session, i.input) for i in refused] == [("s1", "join"), ("s1", "say")]
        assert room.session_count == 0 and "pod1" not in room.dreamers()
        out = room.apply([MemberLeave("s1")], [sample("pod1", 2)])
        assert _dreamers(out.items) == ["pod1"], "the pod's dreamer is still there"

    def test_a_pod_that_comes_under_a_members_name_keeps_its_dreamer_when_the_member_leaves(
        self,
    ) -> None:
        room = RoomState("r", hooks=engine_hooks(Settings()))
        room.apply([join("s1", "lila")])
        room.apply([], [sample("lila", 1)])
        out = room.apply([MemberLeave("s1")], [sample("lila", 2)])
        assert ("left", "lila", "dreamer") in kinds(out.items)
        assert _dreamers(out.items) == ["lila"]


class TestUse:
    def test_a_room_is_used_once_it_held_a_line_a_template_or_a_pod(self) -> None:
        hooks = engine_hooks(Settings())
        joined = RoomState("r", hooks=hooks)
        joined.apply([join("s1", "lila"), MemberLeave("s1")])
        assert not joined.used
        told = RoomState("r", hooks=hooks)
        told.apply([join("s1", "lila"), StoryInput("s1", "lila", "once")])
        podded = RoomState("r", hooks=hooks)
        podded.apply([], [sample("pod1", 1)])
        assert told.used and podded.used
        assert RoomState.restore(told.snapshot(), hooks).used
        assert not RoomState.restore(joined.snapshot(), hooks).used


def _dreamers(items: list[EventItem]) -> list[str]:
    moods = [i for i in items if isinstance(i, Mood)]
    return [row.name for row in moods[-1].dreamers] if moods else []


class TestSnapshots:
    def test_restore_continues_identically(self) -> None:
        hooks = engine_hooks(Settings())
        room = RoomState("r", hooks=hooks)
        room.apply([join("s1", "lila"), join("s2", "rico", "observer")], [sample("pod1", 1)])
        room.apply([StoryInput("s1", "lila", "the sea")])
        copy = RoomState.restore(room.snapshot(), hooks)
        assert copy.view() == room.view()
        for n in range(30):
            inputs: list[RoomInput] = [StoryInput("s1", "lila", f"line {n}")] if n % 7 == 0 else []
            a = room.apply(inputs, [sample("pod1", n + 2, 0.2)])
            b = copy.apply(inputs, [sample("pod1", n + 2, 0.2)])
            assert a.items == b.items and a.seq == b.seq
        assert copy.snapshot() == room.snapshot()


class TestInputCodec:
    @given(
        st.lists(
            st.one_of(
                st.builds(
                    join,
                    st.text(max_size=8),
                    st.text(max_size=8),
                    st.sampled_from(["dreamer", "observer"]),
                ),
                st.builds(MemberLeave, st.text(max_size=8)),
                st.builds(ForgetInput, st.text(max_size=8), st.text(max_size=8)),
                st.builds(
                    StoryInput, st.text(max_size=8), st.text(max_size=8), st.text(max_size=50)
                ),
                st.builds(
                    TemplateInput,
                    st.text(max_size=8),
                    st.sampled_from(["json", "toml"]),
                    st.text(max_size=50),
                ),
            ),
            max_size=5,
        )
    )
    def test_inputs_and_tick_records_round_trip(self, inputs: list[RoomInput]) -> None:
        for item in inputs:
            assert decode_input(encode_input(item)) == item
        data = encode_tick(inputs, [sample("pod1", 3), PodOffline("pod1")])
        record = decode_tick(data, template_texts(inputs))
        assert record.room == inputs
        # Telemetry comes back as the derived state the room used: no vital signs.
        assert record.external == [Telemetry.derived(sample("pod1", 3).sample), PodOffline("pod1")]
        for item in inputs:
            if isinstance(item, TemplateInput):
                assert template_digest(item.text).encode() in data, "named by digest"

    def test_a_record_names_a_template_by_its_digest_and_needs_its_text(self) -> None:
        text = '{"title": "T"}' + " " * 4000
        upload = TemplateInput("lila", "json", text, "s1")
        data = encode_tick([upload, upload], [])
        assert len(data) < 300
        assert template_texts([upload, upload]) == {template_digest(text): text.encode()}
        assert decode_tick(data, template_texts([upload])).room == [upload, upload]
        with pytest.raises(DecodeError, match=f"template {template_digest(text)[:12]}"):
            decode_tick(data, {})

    def test_a_record_holds_no_vital_signs(self) -> None:
        data = encode_tick([], [sample("pod1", 3)])
        m = msgpack.unpackb(data)
        assert set(m["e"][0]) == {"k", "p", "b", "q", "t", "v", "a"}
        [tel] = decode_tick(data).external
        assert isinstance(tel, Telemetry) and tel.sample.vitals == NO_VITALS
        # Records written before carried the whole sample: read, its vitals dropped.
        old = {"r": [], "e": [{"k": "tel", "s": sample("pod1", 3).sample.to_wire()}]}
        [tel] = decode_tick(msgpack.packb(old)).external
        assert tel == Telemetry.derived(sample("pod1", 3).sample)

    def test_records_from_before_digests_still_decode(self) -> None:
        upload = TemplateInput("lila", "toml", "title = 'T'", "s1")
        old = msgpack.packb({"r": [encode_input(upload)], "e": []}, use_bin_type=True)
        assert decode_tick(old).room == [upload]
