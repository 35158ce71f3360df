"""ServerSession: every per-connection rule, without a socket or a clock."""

from __future__ import annotations

import msgpack
import pytest

from sleepsync.protocol.codec import decode
from sleepsync.protocol.errors import (
    CLOSE_OVERLOADED,
    CLOSE_POLICY,
    CLOSE_PROTOCOL,
    CLOSE_TOO_BIG,
    DecodeError,
    FrameTooBig,
    LocalError,
    RemoteError,
    RoomFull,
    ServerFull,
    SleepSyncError,
    TemplateInvalid,
)
from sleepsync.protocol.identity import TOKEN_ROLES
from sleepsync.protocol.messages import (
    CLIENT_TYPES,
    MAX_JOURNAL_CHUNK,
    ROLES,
    Error,
    Hello,
    History,
    Join,
    Journal,
    Leave,
    Left,
    ListRooms,
    Message,
    ResumePoint,
    RoomInfo,
    Rooms,
    Say,
    Status,
    UploadTemplate,
    Welcome,
)
from sleepsync.protocol.session import (
    MAX_CLOSE_REASON,
    PERMISSIONS,
    RULES,
    SEATS,
    UNREAD_REF,
    ApplyTemplate,
    Close,
    EnterRoom,
    FetchHistory,
    FetchRooms,
    LeaveRoom,
    Send,
    ServerAction,
    ServerSession,
    SessionLimits,
    TellStory,
    close_reason,
)

LIMITS = SessionLimits(max_rate=10, burst=5, max_bad_frames=3, max_rooms=2, hello_timeout=10)


def session(limits: SessionLimits = LIMITS, now: float = 100.0) -> ServerSession:
    return ServerSession("s1", "node-a", now, limits=limits)


def open_session(limits: SessionLimits = LIMITS, name: str = "lila") -> ServerSession:
    s = session(limits)
    [welcome] = s.receive(Hello(name), 100.0)
    assert isinstance(welcome, Send) and isinstance(welcome.message, Welcome)
    return s


def in_rooms(*rooms: str, role: str = "dreamer", limits: SessionLimits = LIMITS) -> ServerSession:
    s = open_session(limits)
    for room in rooms:
        [enter] = s.receive(Join(room, "dreamer" if role == "dreamer" else "observer"), 100.0)
        assert isinstance(enter, EnterRoom)
        assert s.joined(room) == []
    return s


def errors(actions: list[ServerAction]) -> list[Error]:
    return [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, Error)]


def only_error(actions: list[ServerAction]) -> Error:
    [action] = actions
    assert isinstance(action, Send) and isinstance(action.message, Error)
    return action.message


def closing(actions: list[ServerAction]) -> tuple[Error, Close]:
    first, second = actions
    assert isinstance(first, Send) and isinstance(first.message, Error)
    assert isinstance(second, Close)
    assert first.message.fatal
    return first.message, second


def bad(data: bytes) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        decode(data)
    return info.value


class TestTables:
    def test_every_client_message_type_has_a_rule(self) -> None:
        assert set(RULES) == CLIENT_TYPES

    def test_every_role_has_permissions_and_only_client_types_are_granted(self) -> None:
        assert set(PERMISSIONS) == set(TOKEN_ROLES) == set(SEATS)
        for granted in PERMISSIONS.values():
            assert granted <= CLIENT_TYPES
        for seats in SEATS.values():
            assert seats <= set(ROLES)

    def test_roles_are_ceilings_each_allows_what_the_one_below_does(self) -> None:
        assert PERMISSIONS["observer"] <= PERMISSIONS["dreamer"] <= PERMISSIONS["operator"]
        assert SEATS["observer"] <= SEATS["dreamer"] <= SEATS["operator"]
        assert all(
            rule.permission in PERMISSIONS["operator"]
            for rule in RULES.values()
            if rule.permission is not None
        )

    def test_limits_must_be_positive(self) -> None:
        with pytest.raises(LocalError):
            SessionLimits(max_rate=0)
        with pytest.raises(LocalError):
            SessionLimits(max_rooms=0)


class TestHello:
    def test_hello_opens_the_session_with_a_welcome(self) -> None:
        s = session(SessionLimits(max_rate=12.5, max_frame=4096))
        [action] = s.receive(Hello("lila"), 100.0)
        assert action == Send(Welcome(1, "node-a", "s1", 4096, 12))
        assert (s.phase, s.name, s.deadline()) == ("open", "lila", None)

    @pytest.mark.parametrize(
        "msg",
        [
            Join("night"),
            Leave("night"),
            Say("night", "hi"),
            ListRooms(),
            UploadTemplate("n", "json", "{}"),
        ],
    )
    def test_nothing_but_hello_comes_first(self, msg: Message) -> None:
        s = session()
        error = only_error(s.receive(msg, 100.0))
        assert (error.code, error.ref, error.fatal) == ("hello_required", msg.TYPE, False)
        assert s.phase == "greeting" and s.bad_in_row == 1

    def test_hello_only_once(self) -> None:
        s = open_session()
        error = only_error(s.receive(Hello("rico"), 100.0))
        assert (error.code, error.ref) == ("hello_repeated", "hello")
        assert s.name == "lila"

    def test_another_protocol_version_is_refused_and_closed(self) -> None:
        s = session()
        error, close = closing(s.receive(Hello("lila", version=2), 100.0))
        assert (error.code, error.ref) == ("version", "hello")
        assert close.code == CLOSE_PROTOCOL and close.reason.startswith("version: ")
        assert s.closed and s.name is None

    def test_no_hello_in_time_closes_with_1008(self) -> None:
        s = session(now=100.0)
        assert s.deadline() == 110.0
        assert s.poll(109.9) == []
        error, close = closing(s.poll(110.0))
        assert (error.code, error.ref) == ("hello_timeout", None)
        assert close.code == CLOSE_POLICY
        assert s.closed and s.deadline() is None and s.poll(200.0) == []

    def test_a_hello_after_the_deadline_is_too_late(self) -> None:
        s = session(now=100.0)
        error, _ = closing(s.receive(Hello("lila"), 110.5))
        assert error.code == "hello_timeout" and s.name is None

    def test_the_timer_stops_once_hello_is_said(self) -> None:
        s = open_session()
        assert s.deadline() is None and s.poll(1e9) == []


class TestRate:
    def test_every_frame_spends_a_token_and_an_empty_bucket_closes(self) -> None:
        s = session()
        frames: list[Message | RemoteError] = [
            Hello("lila"),
            DecodeError("junk"),
            ListRooms(),
            Join("night"),
            Say("x", "y"),
        ]
        for frame in frames:
            actions = s.receive(frame, 100.0)
            assert not any(isinstance(a, Close) for a in actions), frame
        assert s.tokens == 0.0
        error, close = closing(s.receive(ListRooms(), 100.0))
        assert (error.code, error.ref, close.code) == ("rate_limited", "list_rooms", CLOSE_POLICY)
        assert s.receive(ListRooms(), 200.0) == []

    def test_the_bucket_refills_with_time_up_to_the_burst(self) -> None:
        s = open_session()
        for _ in range(4):
            s.receive(ListRooms(), 100.0)
        assert s.tokens == 0.0
        assert s.receive(ListRooms(), 100.15) == [FetchRooms()]  # 10/s: a token back
        s.receive(ListRooms(), 1000.0)
        assert s.tokens == 4.0  # refilled to the burst, then one spent

    def test_a_clock_that_goes_back_refills_nothing(self) -> None:
        s = open_session()
        s.receive(ListRooms(), 100.0)
        s.receive(ListRooms(), 50.0)
        assert s.tokens == 2.0 and s.refilled == 100.0

    def test_an_unreadable_flood_is_limited_with_the_unread_ref(self) -> None:
        s = session(SessionLimits(burst=1, max_rate=1, max_bad_frames=10))
        s.receive(DecodeError("junk"), 0.0)
        error, _ = closing(s.receive(DecodeError("junk"), 0.0))
        assert (error.code, error.ref) == ("rate_limited", UNREAD_REF)


class TestBadFrames:
    def test_codec_errors_are_answered_with_the_frames_type_when_known(self) -> None:
        s = session()
        cases = [
            (b"\xc1", "bad_frame", UNREAD_REF),
            (msgpack.packb({"t": "join", "room": 5}), "invalid", "join"),
            (msgpack.packb({"t": "dance"}), "unknown_type", "dance"),
        ]
        for data, code, ref in cases:
            s.bad_in_row = 0
            error = only_error(s.receive(bad(data), 100.0))
            assert (error.code, error.ref, error.fatal) == (code, ref, False)

    def test_a_long_unknown_type_is_cut_to_the_wire_limit(self) -> None:
        error = only_error(session().receive(bad(msgpack.packb({"t": "x" * 100})), 100.0))
        assert error.ref == "x" * 32

    def test_server_messages_are_refused_as_unknown_types(self) -> None:
        s = open_session()
        error = only_error(s.receive(Status("ok", "fine"), 100.0))
        assert (error.code, error.ref) == ("unknown_type", "status")

    def test_too_many_in_a_row_close_with_their_own_code(self) -> None:
        s = open_session()
        s.receive(DecodeError("junk"), 100.0)
        s.receive(Say("nowhere", "hi"), 100.0)  # a refused rule counts too
        assert s.bad_in_row == 2
        error, close = closing(s.receive(DecodeError("junk"), 100.0))
        assert (error.code, error.ref, close.code) == ("too_many_bad_frames", "?", CLOSE_POLICY)
        assert close.reason.startswith("too_many_bad_frames: 3 refused frames")

    def test_an_accepted_frame_resets_the_count(self) -> None:
        s = open_session()
        for _ in range(2):
            s.receive(DecodeError("junk"), 100.0)
        s.receive(ListRooms(), 100.0)
        assert s.bad_in_row == 0
        assert errors(s.receive(DecodeError("junk"), 100.0))[0].code == "bad_frame"

    def test_a_fatal_codec_error_closes_with_its_code(self) -> None:
        error, close = closing(open_session().receive(FrameTooBig("big"), 100.0))
        assert (error.code, close.code) == ("too_big", CLOSE_TOO_BIG)


class TestRooms:
    def test_join_asks_to_enter_and_counts_while_entering(self) -> None:
        s = open_session()
        resume = ResumePoint(3, 40)
        assert s.receive(Join("night", "observer", resume), 100.0) == [
            EnterRoom("night", "lila", "observer", resume)
        ]
        assert s.entering == {"night": "observer"} and s.rooms == {}
        error = only_error(s.receive(Join("night"), 100.0))
        assert (error.code, error.ref) == ("already_joined", "join")
        assert s.joined("night") == []
        assert s.rooms == {"night": "observer"} and s.entering == {}
        assert only_error(s.receive(Join("night"), 100.0)).code == "already_joined"

    def test_the_connections_room_limit_is_too_many_rooms(self) -> None:
        s = open_session()
        s.receive(Join("one"), 100.0)
        s.receive(Join("two"), 100.0)  # still entering: counts
        error = only_error(s.receive(Join("three"), 100.0))
        assert (error.code, error.ref, error.fatal) == ("too_many_rooms", "join", False)
        assert "at most 2 rooms" in error.message

    def test_a_failed_join_frees_the_room_and_answers_with_ref_join(self) -> None:
        s = open_session()
        s.receive(Join("night"), 100.0)
        error = only_error(s.join_failed("night", RoomFull("room night is full")))
        assert (error.code, error.ref) == ("room_full", "join")
        assert s.entering == {} and s.rooms == {}
        assert s.receive(Join("night"), 100.0) == [EnterRoom("night", "lila", "dreamer", None)]

    def test_a_fatal_join_failure_closes(self) -> None:
        s = open_session()
        s.receive(Join("night"), 100.0)
        error, close = closing(s.join_failed("night", ServerFull("full")))
        assert (error.ref, close.code) == ("join", CLOSE_OVERLOADED)

    def test_leave_takes_the_room_away_at_once_and_left_answers(self) -> None:
        s = in_rooms("night")
        assert s.receive(Leave("night"), 100.0) == [LeaveRoom("night")]
        assert s.rooms == {}
        assert s.left("night") == [Send(Left("night"))]
        error = only_error(s.receive(Leave("night"), 100.0))
        assert (error.code, error.ref) == ("not_joined", "leave")

    def test_a_room_being_entered_is_not_joined_yet(self) -> None:
        s = open_session()
        s.receive(Join("night"), 100.0)
        assert only_error(s.receive(Say("night", "hi"), 100.0)).code == "not_joined"

    def test_room_list(self) -> None:
        s = open_session()
        assert s.receive(ListRooms(), 100.0) == [FetchRooms()]
        rooms = Rooms([RoomInfo("night", 1, 2, "stable")])
        assert s.listed(rooms) == [Send(rooms)]

    def test_history_needs_no_membership_and_comes_in_parts(self) -> None:
        s = open_session()
        assert s.receive(History("night"), 100.0) == [FetchHistory("night")]
        journal = b"j" * (2 * MAX_JOURNAL_CHUNK + 5)
        parts = [a.message for a in s.history("night", journal) if isinstance(a, Send)]
        assert [(p.part, p.last, len(p.data)) for p in parts if isinstance(p, Journal)] == [
            (0, False, MAX_JOURNAL_CHUNK),
            (1, False, MAX_JOURNAL_CHUNK),
            (2, True, 5),
        ]
        assert s.history("night", b"") == [Send(Journal("night", 0, True, b""))]

    def test_history_before_hello_and_after_close(self) -> None:
        s = session()
        assert only_error(s.receive(History("night"), 100.0)).code == "hello_required"
        s = open_session()
        s.fail(LocalError("bye"))
        assert s.history("night", b"journal") == []


class TestRoles:
    def test_dreamers_tell_the_story(self) -> None:
        s = in_rooms("night")
        assert s.receive(Say("night", "once"), 100.0) == [TellStory("night", "lila", "once")]

    def test_observers_cannot_say(self) -> None:
        s = in_rooms("night", role="observer")
        error = only_error(s.receive(Say("night", "once"), 100.0))
        assert (error.code, error.ref) == ("forbidden", "say")
        assert "as an observer in room night" in error.message

    @pytest.mark.parametrize("role", ["dreamer", "observer"])
    def test_members_upload_templates(self, role: str) -> None:
        s = in_rooms("night", role=role)
        assert s.receive(UploadTemplate("night", "toml", "x"), 100.0) == [
            ApplyTemplate("night", "lila", "toml", "x")
        ]

    def test_say_and_upload_outside_a_room(self) -> None:
        s = open_session()
        for msg in (Say("night", "hi"), UploadTemplate("night", "json", "{}")):
            error = only_error(s.receive(msg, 100.0))
            assert (error.code, error.ref) == ("not_joined", msg.TYPE)


class TestOutcomesAndClosing:
    def test_a_failed_request_answers_with_its_ref(self) -> None:
        s = in_rooms("night")
        error = only_error(s.request_failed(TemplateInvalid("$.x", "bad"), "upload_template"))
        assert (error.code, error.ref, error.fatal) == (
            "template_invalid",
            "upload_template",
            False,
        )
        assert error.message == "$.x: bad"

    def test_a_fatal_request_failure_closes(self) -> None:
        s = in_rooms("night")
        _, close = closing(s.request_failed(LocalError("bug"), "say"))
        assert close.code == 1011 and s.closed

    def test_a_slow_consumer_is_closed_without_a_word(self) -> None:
        s = in_rooms("night")
        [close] = s.slow("night")
        assert isinstance(close, Close) and close.code == CLOSE_OVERLOADED
        assert close.reason.startswith("slow_consumer: ")
        assert s.slow("night") == [] and s.fail(ServerFull("x")) == []
        assert s.rooms == {"night": "dreamer"}, "kept so that cleanup leaves it"

    def test_fail_tells_then_closes_policy_by_default(self) -> None:
        error, close = closing(open_session().fail(SleepSyncError("odd")))
        assert (error.ref, close.code) == (None, CLOSE_POLICY)

    def test_after_close_nothing_is_sent(self) -> None:
        s = in_rooms("night")
        s.receive(Join("day"), 100.0)
        s.fail(ServerFull("bye"))
        assert s.receive(ListRooms(), 100.0) == []
        assert s.poll(1e9) == []
        assert s.left("night") == [] and s.listed(Rooms([])) == []
        assert s.request_failed(RoomFull("x"), "say") == []
        assert s.joined("day") == [], "recorded silently, for the cleanup"
        assert s.connection_lost() == [LeaveRoom("night"), LeaveRoom("day")]
        assert s.connection_lost() == []
        assert s.joined("night") == [] and s.rooms == {}, "only a room being entered"

    def test_connection_lost_leaves_rooms_being_entered_too(self) -> None:
        s = in_rooms("night")
        s.receive(Join("day"), 100.0)
        assert s.connection_lost() == [LeaveRoom("night"), LeaveRoom("day")]
        assert s.closed and s.rooms == {} and s.entering == {}

    def test_close_reasons_fit_a_close_frame(self) -> None:
        reason = close_reason(SleepSyncError("é" * 200))
        assert len(reason.encode()) <= MAX_CLOSE_REASON
        assert reason.startswith("error: é")
        assert close_reason(SleepSyncError("short")) == "error: short"


def test_error_messages_are_cut_to_the_wire_limits() -> None:
    error = Error.about(SleepSyncError("x" * 5000), "y" * 100)
    assert len(error.message) == 1000 and error.ref == "y" * 32
