"""Messages round-trip; decode of anything returns a message or a RemoteError."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleepsync.protocol.codec import decode, decode_map, encode, encode_map, event_time
from sleepsync.protocol.errors import (
    DecodeError,
    FrameTooBig,
    InvalidMessage,
    LimitExceeded,
    RemoteError,
    UnknownMessage,
)
from sleepsync.protocol.messages import (
    CLIENT_TYPES,
    MAX_JOURNAL_CHUNK,
    MAX_TEMPLATE_TEXT,
    MAX_TOKEN,
    MESSAGE_TYPES,
    Error,
    Event,
    Forget,
    Forgotten,
    Hello,
    History,
    Join,
    Journal,
    Leave,
    Left,
    ListRooms,
    ResumePoint,
    Resync,
    RoomInfo,
    Rooms,
    Say,
    Snapshot,
    Status,
    UploadTemplate,
    Welcome,
)
from sleepsync.protocol.wire import (
    ROOM_RE,
    Limits,
    check_depth,
    get_bool,
    get_float,
    get_map,
    get_str,
    validate_name,
    validate_room,
    validate_text,
)

rooms = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,47}", fullmatch=True)
names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", fullmatch=True)
seqs = st.integers(0, 2**62)
texts = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=200
)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
wire_values = st.recursive(
    scalars | st.floats(allow_nan=False) | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
items = st.dictionaries(st.text(max_size=8), wire_values, max_size=4).map(
    lambda d: {**d, "kind": "said"}
)

messages = st.one_of(
    st.builds(
        Hello, name=names, version=st.integers(0, 2**31 - 1), token=st.none() | st.text(max_size=50)
    ),
    st.builds(
        Join,
        room=rooms,
        role=st.sampled_from(["dreamer", "observer"]),
        resume=st.none() | st.builds(ResumePoint, epoch=seqs, seq=seqs),
    ),
    st.builds(Leave, room=rooms),
    st.builds(Say, room=rooms, text=texts),
    st.just(ListRooms()),
    st.builds(
        UploadTemplate,
        room=rooms,
        format=st.sampled_from(["json", "toml"]),
        text=st.text(max_size=100),
    ),
    st.builds(
        Welcome,
        version=st.integers(0, 10),
        node=st.text(max_size=20),
        session=st.text(max_size=20),
        max_frame=st.integers(0, 2**20),
        max_rate=st.integers(0, 1000),
    ),
    st.builds(
        Snapshot,
        room=rooms,
        epoch=seqs,
        seq=seqs,
        state=st.dictionaries(st.text(max_size=8), wire_values, max_size=4),
    ),
    st.builds(
        Event,
        room=rooms,
        epoch=seqs,
        seq=seqs,
        tick=seqs,
        items=st.lists(items, max_size=4),
        ts=st.floats(0, 1e10),
    ),
    st.builds(Resync, room=rooms, reason=st.text(max_size=50)),
    st.builds(
        Error,
        code=st.text(max_size=20),
        message=st.text(max_size=100),
        fatal=st.booleans(),
        ref=st.none() | st.sampled_from(sorted(CLIENT_TYPES)),
    ),
    st.builds(
        Rooms,
        rooms=st.lists(
            st.builds(
                RoomInfo,
                room=rooms,
                dreamers=st.integers(0, 100),
                observers=st.integers(0, 100),
                phase=st.text(max_size=10),
            ),
            max_size=5,
        ),
    ),
    st.builds(Left, room=rooms),
    st.builds(History, room=rooms),
    st.builds(
        Journal,
        room=rooms,
        part=st.integers(0, 65535),
        last=st.booleans(),
        data=st.binary(max_size=64) | st.just(b"j" * MAX_JOURNAL_CHUNK),
    ),
    st.builds(Forget, room=rooms),
    st.builds(Forgotten, room=rooms),
    st.builds(
        Status,
        state=st.sampled_from(["ok", "degraded", "shutting_down"]),
        message=st.text(max_size=50),
    ),
)

BIG = Limits(max_frame=1 << 20)


@given(messages)
@settings(max_examples=400)
def test_every_message_round_trips(msg: object) -> None:
    assert decode(encode(msg), BIG) == msg  # type: ignore[arg-type]


def test_every_message_type_is_covered_by_the_strategy() -> None:
    seen = {
        Hello,
        Join,
        Leave,
        Say,
        ListRooms,
        UploadTemplate,
        Welcome,
        Snapshot,
        Event,
        Resync,
        Error,
        Rooms,
        Left,
        Forget,
        Forgotten,
        Status,
        History,
        Journal,
    }
    assert seen == set(MESSAGE_TYPES.values())


def test_a_full_journal_part_fits_a_default_frame() -> None:
    frame = encode(Journal("night", 65535, False, b"j" * MAX_JOURNAL_CHUNK))
    assert len(frame) <= 65536
    assert decode(frame) == Journal("night", 65535, False, b"j" * MAX_JOURNAL_CHUNK)
    for bad in ({"part": -1}, {"data": "text"}, {"data": b"j" * (MAX_JOURNAL_CHUNK + 1)}):
        wire = {"t": "journal", "room": "night", "part": 0, "last": True, "data": b"", **bad}
        with pytest.raises(InvalidMessage):
            decode(encode_map(wire), BIG)


@given(st.binary(max_size=2048))
@settings(max_examples=1000)
def test_decode_of_arbitrary_bytes_raises_only_remote_errors(data: bytes) -> None:
    with contextlib.suppress(RemoteError):
        decode(data)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "t",
                "room",
                "role",
                "text",
                "name",
                "version",
                "resume",
                "epoch",
                "seq",
                "items",
                "state",
            ]
        ),
        wire_values | st.sampled_from(sorted(MESSAGE_TYPES)),
        max_size=6,
    )
)
@settings(max_examples=1500)
def test_decode_of_arbitrary_maps_raises_only_remote_errors(fields: dict[str, object]) -> None:
    with contextlib.suppress(RemoteError):
        decode(msgpack.packb(fields, use_bin_type=True))


def test_oversize_frame_is_refused_before_parsing() -> None:
    with pytest.raises(FrameTooBig) as info:
        decode(b"\x80" * 70_000, Limits(max_frame=65_536))
    assert info.value.close_code == 1009


def test_limits_on_strings_arrays_maps_and_depth() -> None:
    limits = Limits(max_str=10, max_array=3, max_map=3, max_depth=3)
    with pytest.raises(LimitExceeded):
        decode_map(msgpack.packb({"t": "say", "text": "x" * 11}), limits)
    with pytest.raises(LimitExceeded):
        decode_map(msgpack.packb({"t": "x", "a": [1, 2, 3, 4]}), limits)
    with pytest.raises(LimitExceeded):
        decode_map(msgpack.packb({"t": "x", "a": 1, "b": 2, "c": 3}), limits)
    with pytest.raises(LimitExceeded):
        decode_map(msgpack.packb({"t": "x", "a": [[[1]]]}), limits)
    decode_map(msgpack.packb({"t": "x", "a": [[1]]}), limits)


def test_deep_nesting_does_not_blow_the_stack() -> None:
    data = b"\x91" * 60_000 + b"\x00"
    with pytest.raises(RemoteError):
        decode(data)


@pytest.mark.parametrize(
    ("payload", "error", "path"),
    [
        (b"\xc1", DecodeError, None),
        (msgpack.packb([1, 2]), DecodeError, None),
        (msgpack.packb({"x": 1}), DecodeError, None),
        (msgpack.packb({"t": "dance"}), UnknownMessage, None),
        (
            msgpack.packb({"t": "join", "room": "Bad Room!", "role": "dreamer"}),
            InvalidMessage,
            "join.room",
        ),
        (msgpack.packb({"t": "join", "room": "ok", "role": "king"}), InvalidMessage, "join.role"),
        (msgpack.packb({"t": "join", "room": "ok"}), InvalidMessage, "join.role"),
        (msgpack.packb({"t": "hello", "name": "x y", "version": 1}), InvalidMessage, "hello.name"),
        (
            msgpack.packb({"t": "hello", "name": "lila", "version": True}),
            InvalidMessage,
            "hello.version",
        ),
        (msgpack.packb({"t": "say", "room": "ok", "text": "   "}), InvalidMessage, "say.text"),
        (msgpack.packb({"t": "say", "room": "ok", "text": "a\x07b"}), InvalidMessage, "say.text"),
        (msgpack.packb({"t": "say", "room": "ok", "text": "x" * 501}), InvalidMessage, "say.text"),
        (
            msgpack.packb(
                {"t": "join", "room": "ok", "role": "dreamer", "resume": {"epoch": -1, "seq": 0}}
            ),
            InvalidMessage,
            "join.resume.epoch",
        ),
        (msgpack.packb({1: 2}), DecodeError, None),
    ],
)
def test_invalid_frames_name_the_problem(
    payload: bytes, error: type[RemoteError], path: str | None
) -> None:
    with pytest.raises(error) as info:
        decode(payload)
    if path is not None:
        assert isinstance(info.value, InvalidMessage)
        assert info.value.path == path
    assert info.value.message


def test_say_strips_surrounding_white_space_on_decode() -> None:
    msg = decode(msgpack.packb({"t": "say", "room": "ok", "text": "  hi there \n"}))
    assert msg == Say("ok", "hi there")


def test_local_construction_validates_too() -> None:
    with pytest.raises(InvalidMessage):
        Join("NOT A ROOM")
    with pytest.raises(InvalidMessage):
        Say("ok", "")


@pytest.mark.parametrize(
    ("payload", "ref"),
    [
        (b"\xc1", None),
        (msgpack.packb({"x": 1}), None),
        (msgpack.packb({"t": "x", "a": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}), None),
        (msgpack.packb({"t": "dance"}), "dance"),
        (msgpack.packb({"t": "join", "room": 5, "role": "dreamer"}), "join"),
        (msgpack.packb({"t": "say", "room": "ok", "text": ""}), "say"),
    ],
)
def test_errors_name_the_frames_type_once_it_is_known(payload: bytes, ref: str | None) -> None:
    with pytest.raises(RemoteError) as info:
        decode(payload)
    assert info.value.ref == ref


def test_string_limits_follow_the_frame_unless_set_lower() -> None:
    assert Limits().str_limit == Limits().max_frame == 65_536
    assert Limits(max_frame=1000).bin_limit == 1000
    assert Limits(max_frame=1000, max_str=10_000).str_limit == 1000
    assert Limits(max_str=10, max_bin=20).str_limit == 10
    assert Limits(max_bin=20).bin_limit == 20


def test_a_template_of_the_documented_size_decodes_one_byte_more_is_invalid() -> None:
    text = "é" * (MAX_TEMPLATE_TEXT // 2)
    msg = UploadTemplate("tales", "json", text)
    assert decode(encode(msg)) == msg
    over = msgpack.packb(
        {"t": "upload_template", "room": "t", "format": "json", "text": text + "x"}
    )
    with pytest.raises(InvalidMessage) as info:
        decode(over)
    assert info.value.path == "upload_template.text" and info.value.ref == "upload_template"


class TestFieldValidators:
    """The validators the messages (and telemetry) are built from."""

    def test_numbers(self) -> None:
        for value, reason in (
            (True, "expected a number"),
            ("1", "expected a number"),
            (float("nan"), "must be finite"),
            (float("inf"), "must be finite"),
            (2.5, "must be in [0.0, 1.0], got 2.5"),
        ):
            with pytest.raises(InvalidMessage) as info:
                get_float({"x": value}, "x", "m", lo=0.0, hi=1.0)
            assert info.value.path == "m.x" and reason in info.value.reason
        assert get_float({"x": 1}, "x", "m", lo=0.0, hi=1.0) == 1.0

    def test_booleans_maps_and_patterns(self) -> None:
        with pytest.raises(InvalidMessage, match="expected true or false, got nil"):
            get_bool({"x": None}, "x", "m")
        with pytest.raises(InvalidMessage, match="expected a map, got an array"):
            get_map({"x": []}, "x", "m")
        with pytest.raises(InvalidMessage, match="must match"):
            get_str({"x": "A!"}, "x", "m", pattern=ROOM_RE)
        with pytest.raises(InvalidMessage, match="missing"):
            get_str({}, "x", "m")
        assert get_str({"x": "ok"}, "x", "m", pattern=ROOM_RE) == "ok"

    def test_rooms_names_and_story_lines(self) -> None:
        assert validate_room("night") == "night" and validate_name("lila") == "lila"
        for bad in ("Night", "", "a/b", 5):
            with pytest.raises(InvalidMessage):
                validate_room(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidMessage):
            validate_name("no spaces")
        with pytest.raises(InvalidMessage, match="expected a string, got binary"):
            validate_text(b"x")  # type: ignore[arg-type]
        with pytest.raises(InvalidMessage, match="at most 500"):
            validate_text("x" * 501)
        assert validate_text("  hi  ") == "hi"

    def test_depth_counts_containers_only(self) -> None:
        check_depth({"a": [1, "x", {"b": None}]}, 3)
        with pytest.raises(LimitExceeded):
            check_depth({"a": [{"b": []}]}, 3)


class TestMessageEdges:
    def test_local_construction_checks_the_fields_from_wire_cannot_reach(self) -> None:
        with pytest.raises(InvalidMessage, match=r"hello\.version"):
            Hello("lila", version=-1)
        with pytest.raises(InvalidMessage, match=r"hello\.token"):
            Hello("lila", token="x" * (MAX_TOKEN + 1))
        with pytest.raises(InvalidMessage, match=r"say\.text"):
            Say("ok", " padded ")
        with pytest.raises(InvalidMessage, match=r"resume\.seq"):
            ResumePoint(0, -1)
        with pytest.raises(InvalidMessage, match=r"event.items\[0\].kind"):
            Event("ok", 1, 1, 1, [{"kind": 5}])

    def test_server_lists_must_hold_maps(self) -> None:
        with pytest.raises(InvalidMessage, match=r"event.items\[0\]"):
            decode(
                msgpack.packb(
                    {"t": "event", "room": "a", "epoch": 1, "seq": 1, "tick": 1, "items": [1]}
                )
            )
        with pytest.raises(InvalidMessage, match=r"rooms.rooms\[0\]"):
            decode(msgpack.packb({"t": "rooms", "rooms": ["a"]}))
        with pytest.raises(InvalidMessage, match=r"rooms\.rooms"):
            decode(msgpack.packb({"t": "rooms", "rooms": {}}))

    def test_event_time_reads_our_own_frames_only_gently(self) -> None:
        assert event_time(encode(Event("a", 1, 1, 1, [], ts=12.5))) == 12.5
        assert event_time(msgpack.packb({"t": "event", "ts": "late"})) == 0.0
        assert event_time(b"\xc1") == 0.0
