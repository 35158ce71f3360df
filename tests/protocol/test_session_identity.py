"""ServerSession with tokens: identity, roles, expiry and per-connection budgets."""

from __future__ import annotations

import pytest

from sleepsync.protocol.errors import CLOSE_POLICY, NameTaken, RoomForgotten, TooManyNewRooms
from sleepsync.protocol.identity import LEEWAY, Keys, TokenRole, mint
from sleepsync.protocol.messages import (
    Error,
    Forget,
    Forgotten,
    Hello,
    History,
    Join,
    Leave,
    Left,
    ListRooms,
    Message,
    RoomInfo,
    Rooms,
    Say,
    UploadTemplate,
    Welcome,
)
from sleepsync.protocol.session import (
    ApplyTemplate,
    Close,
    EnterRoom,
    FetchHistory,
    FetchRooms,
    ForgetRoom,
    LeaveRoom,
    Send,
    ServerAction,
    ServerSession,
    SessionLimits,
    TellStory,
)

KEYS = Keys.load(secret=b"k" * 32)
#: The session's clock starts at 100; Unix time is 1.8e9 then.
START = 100.0
OFFSET = 1_800_000_000.0 - START
LIMITS = SessionLimits(room_creations_per_minute=2, template_upload_interval=5.0)


def token(name: str = "lila", rooms: str = "night*", role: TokenRole = "dreamer", ttl=600.0) -> str:
    return mint(KEYS, subject=name, rooms=rooms, role=role, now=START + OFFSET, ttl=ttl)


def session(keys: Keys | None = KEYS) -> ServerSession:
    return ServerSession("s1", "node-a", START, limits=LIMITS, keys=keys, unix_offset=OFFSET)


def hello(s: ServerSession, msg: Hello, now: float = START) -> list[ServerAction]:
    return s.receive(msg, now)


def open_as(role: TokenRole = "dreamer", rooms: str = "night*", ttl: float = 600.0):
    s = session()
    [welcome] = hello(s, Hello("lila", token=token(rooms=rooms, role=role, ttl=ttl)))
    assert isinstance(welcome, Send) and isinstance(welcome.message, Welcome)
    return s


def seated(role: TokenRole, seat: str = "dreamer") -> ServerSession:
    s = open_as(role)
    [enter] = s.receive(Join("night", "dreamer" if seat == "dreamer" else "observer"), START)
    assert isinstance(enter, EnterRoom)
    s.joined("night")
    return s


def error_of(actions: list[ServerAction]) -> Error:
    errors = [a.message for a in actions if isinstance(a, Send) and isinstance(a.message, Error)]
    assert len(errors) == 1, actions
    return errors[0]


def closes(actions: list[ServerAction]) -> Close | None:
    return next((a for a in actions if isinstance(a, Close)), None)


class TestHelloNeedsAToken:
    def test_a_valid_token_for_the_name_opens_the_session(self) -> None:
        s = open_as()
        assert s.claims is not None and s.claims.role == "dreamer"
        assert s.deadline() == START + 600 + LEEWAY

    @pytest.mark.parametrize(
        ("msg", "reason"),
        [
            (Hello("lila"), "needs a token"),
            (Hello("lila", token="junk"), "not a readable JWT"),
            (Hello("mallory", token=token("lila")), "another name"),
            (Hello("lila", token=token(ttl=1.0)), "expired"),
        ],
    )
    def test_no_valid_token_is_unauthorized_and_closes(self, msg: Hello, reason: str) -> None:
        s = session()
        now = START + 7 if "expired" in reason else START
        actions = hello(s, msg, now)
        error = error_of(actions)
        assert (error.code, error.ref, error.fatal) == ("unauthorized", "hello", True)
        assert reason in error.message
        close = closes(actions)
        assert close is not None and close.code == CLOSE_POLICY
        assert s.closed and s.name is None and s.claims is None

    def test_the_token_never_shows_in_a_repr(self) -> None:
        tok = token()
        assert tok not in repr(Hello("lila", token=tok))

    def test_pod_names_are_taken_even_in_open_mode(self) -> None:
        for keys in (KEYS, None):
            s = session(keys)
            error = error_of(hello(s, Hello("pod-001", token=token())))
            assert (error.code, error.fatal) == ("name_taken", False)
            assert s.phase == "greeting", "another name may still be said"

    def test_open_mode_lets_anyone_be_an_operator_anywhere(self) -> None:
        s = session(keys=None)
        hello(s, Hello("lila"))
        assert s.claims is not None and s.claims.role == "operator"
        assert s.deadline() is None, "no token, no expiry"
        assert s.receive(Forget("any"), START) == [ForgetRoom("any", "lila")]


class TestExpiry:
    def test_an_expired_token_closes_before_the_next_input_is_applied(self) -> None:
        s = seated("dreamer")
        expiry = START + 600 + LEEWAY
        assert s.poll(expiry - 0.1) == []
        actions = s.receive(Say("night", "one more line"), expiry)
        assert not any(isinstance(a, TellStory) for a in actions)
        error = error_of(actions)
        assert (error.code, error.ref, error.fatal) == ("unauthorized", None, True)
        assert "expired" in error.message
        assert s.closed

    def test_the_timer_alone_closes_an_idle_connection(self) -> None:
        s = seated("observer", seat="observer")
        deadline = s.deadline()
        assert deadline is not None
        actions = s.poll(deadline)
        assert error_of(actions).code == "unauthorized" and closes(actions) is not None
        assert s.connection_lost() == [LeaveRoom("night")]


class TestRoomsAndRoles:
    def test_a_room_outside_the_glob_is_forbidden(self) -> None:
        s = open_as(rooms="night*")
        for msg in (Join("day"), Forget("day"), History("day")):
            error = error_of(s.receive(msg, START))
            assert (error.code, error.ref, error.fatal) == ("forbidden", msg.TYPE, False)
            assert "does not cover room day" in error.message
        assert s.receive(Join("nightfall"), START)[0] == EnterRoom(
            "nightfall", "lila", "dreamer", None, create=True
        )

    def test_the_role_is_a_ceiling_on_the_seat(self) -> None:
        s = open_as(role="observer")
        error = error_of(s.receive(Join("night", "dreamer"), START))
        assert error.code == "forbidden" and "observer token" in error.message
        assert isinstance(s.receive(Join("night", "observer"), START)[0], EnterRoom)

    @pytest.mark.parametrize(
        ("role", "seat", "msg", "allowed"),
        [
            ("dreamer", "dreamer", Say("night", "hi"), True),
            ("dreamer", "observer", Say("night", "hi"), False),
            ("operator", "observer", Say("night", "hi"), False),
            ("operator", "dreamer", Say("night", "hi"), True),
            ("observer", "observer", UploadTemplate("night", "json", "{}"), False),
            ("dreamer", "dreamer", UploadTemplate("night", "json", "{}"), False),
            ("operator", "observer", UploadTemplate("night", "json", "{}"), True),
            ("dreamer", "dreamer", Forget("night"), False),
            ("operator", "dreamer", Forget("night"), True),
        ],
    )
    def test_what_each_role_may_do(
        self, role: TokenRole, seat: str, msg: Message, allowed: bool
    ) -> None:
        actions = seated(role, seat).receive(msg, START)
        if allowed:
            assert isinstance(actions[0], TellStory | ApplyTemplate | ForgetRoom), actions
        else:
            error = error_of(actions)
            assert (error.code, error.ref, error.fatal) == ("forbidden", msg.TYPE, False)

    @pytest.mark.parametrize("role", ["observer", "dreamer", "operator"])
    def test_every_role_may_read_a_covered_room_s_history_without_joining(
        self, role: TokenRole
    ) -> None:
        s = open_as(role=role, rooms="night*")
        assert s.receive(History("nightfall"), START) == [FetchHistory("nightfall")]
        error = error_of(s.receive(History("day"), START))
        assert (error.code, error.ref, error.fatal) == ("forbidden", "history", False)

    def test_the_room_list_shows_only_rooms_the_token_covers(self) -> None:
        s = open_as(rooms="night*")
        assert s.receive(ListRooms(), START) == [FetchRooms()]
        listed = Rooms([RoomInfo("night", 1, 0, "stable"), RoomInfo("day", 2, 0, "stable")])
        assert s.listed(listed) == [Send(Rooms([RoomInfo("night", 1, 0, "stable")]))]


class TestBudgets:
    def test_joins_that_create_rooms_are_counted_per_minute(self) -> None:
        s = open_as(rooms="*")
        for room in ("a", "b"):
            [enter] = s.receive(Join(room), START)
            assert isinstance(enter, EnterRoom) and enter.create
            s.joined(room, created=True)
        [enter] = s.receive(Join("c"), START + 1)
        assert isinstance(enter, EnterRoom) and not enter.create, "budget spent"
        error = error_of(s.join_failed("c", TooManyNewRooms("no more")))
        assert (error.code, error.ref, error.fatal) == ("too_many_new_rooms", "join", False)
        s.receive(Leave("a"), START + 1)
        s.joined("c")  # an existing room costs nothing
        [enter] = s.receive(Join("d"), START + 60.5)
        assert isinstance(enter, EnterRoom) and enter.create, "a minute later"

    def test_one_template_upload_per_interval(self) -> None:
        s = seated("operator")
        upload = UploadTemplate("night", "json", "{}")
        assert isinstance(s.receive(upload, START)[0], ApplyTemplate)
        error = error_of(s.receive(upload, START + 2))
        assert (error.code, error.ref, error.fatal) == ("upload_too_soon", "upload_template", False)
        assert "in 3 s" in error.message
        assert isinstance(s.receive(upload, START + 5)[0], ApplyTemplate)


class TestOutcomes:
    def test_forgot_answers_forgotten(self) -> None:
        s = open_as(role="operator")
        assert s.forgot("night") == [Send(Forgotten("night"))]

    def test_a_room_gone_under_a_member_is_left_with_a_word(self) -> None:
        s = seated("dreamer")
        actions = s.room_gone("night", RoomForgotten("erased"))
        assert actions[1:] == [LeaveRoom("night")] and s.rooms == {}
        error = error_of(actions)
        assert (error.code, error.ref, error.fatal) == ("room_forgotten", None, False)
        assert s.room_gone("night", RoomForgotten("again")) == []
        assert s.left("night") == [Send(Left("night"))]

    def test_a_pod_name_refused_at_join_is_name_taken(self) -> None:
        s = open_as()
        s.receive(Join("night"), START)
        error = error_of(s.join_failed("night", NameTaken("lila is a pod here")))
        assert (error.code, error.ref) == ("name_taken", "join")

    def test_closed_sessions_answer_nothing(self) -> None:
        s = seated("operator")
        s.fail(RoomForgotten("bye"))
        assert s.forgot("night") == [] and s.room_gone("night", RoomForgotten("x")) == []
