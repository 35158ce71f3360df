"""ClientSession: seq tracking, gaps, resume points, resyncs and error reactions."""

from __future__ import annotations

import pytest

from sleepsync.protocol.errors import DecodeError, InvalidMessage, LocalError, peer_errors
from sleepsync.protocol.messages import (
    Error,
    Event,
    Hello,
    Join,
    Leave,
    Left,
    ResumePoint,
    Resync,
    Rooms,
    Say,
    Snapshot,
    Status,
    Welcome,
)
from sleepsync.protocol.session import (
    ERROR_REACTIONS,
    ClientSession,
    Deliver,
    Gap,
    GiveUp,
    Reconnect,
    Send,
    reaction,
)


def event(seq: int, room: str = "night", epoch: int = 1) -> Event:
    return Event(room, epoch, seq, seq, [{"kind": "mood"}])


def connected(*rooms: str) -> ClientSession:
    s = ClientSession("lila", token="t0k")
    for room in rooms:
        assert s.join(room) == []
    s.connect()
    return s


class TestConnecting:
    def test_hello_then_a_join_per_room(self) -> None:
        s = ClientSession("lila", token="t0k")
        s.join("night")
        s.join("day", "observer")
        assert s.connect() == [
            Send(Hello("lila", token="t0k")),
            Send(Join("night", "dreamer", None)),
            Send(Join("day", "observer", None)),
        ]
        assert s.connected

    def test_a_new_connection_resumes_where_the_last_one_stopped(self) -> None:
        s = connected("night")
        s.receive(Snapshot("night", 2, 10, {}))
        s.receive(event(11, epoch=3))
        s.disconnected()
        assert not s.connected
        assert s.connect()[1] == Send(Join("night", "dreamer", ResumePoint(3, 11)))

    def test_joining_while_connected_sends_the_join_at_once(self) -> None:
        s = connected()
        assert s.join("night", "observer") == [Send(Join("night", "observer", None))]
        with pytest.raises(LocalError):
            s.join("night")
        with pytest.raises(InvalidMessage):
            s.join("Not A Room")

    def test_a_bad_name_is_refused_when_connecting(self) -> None:
        with pytest.raises(InvalidMessage):
            ClientSession("no spaces").connect()

    def test_welcome_is_kept_per_connection(self) -> None:
        s = connected()
        welcome = Welcome(1, "node", "abc", 65536, 50)
        assert s.receive(welcome) == [Deliver(welcome)]
        assert s.welcome == welcome
        s.connect()
        assert s.welcome is None


class TestSeq:
    def test_snapshot_then_contiguous_events_are_delivered(self) -> None:
        s = connected("night")
        snap = Snapshot("night", 1, 5, {"tick": 5})
        assert s.receive(snap) == [Deliver(snap)]
        for seq in (6, 7, 8):
            assert s.receive(event(seq)) == [Deliver(event(seq))]
        assert s.position("night") == ResumePoint(1, 8)
        assert s.gaps == 0

    def test_a_skipped_seq_is_a_gap_and_later_events_wait_for_a_new_start(self) -> None:
        s = connected("night")
        s.receive(Snapshot("night", 1, 5, {}))
        [gap] = s.receive(event(7))
        assert gap == Gap("night", 6, 7) and str(gap) == "event 7 in night where 6 was due"
        assert s.gaps == 1 and s.position("night") == ResumePoint(1, 5)
        assert s.receive(event(8)) == [], "already announced: not a second gap"
        assert s.connect()[1] == Send(Join("night", "dreamer", ResumePoint(1, 5)))
        assert s.receive(event(6)) == [Deliver(event(6))]

    def test_a_duplicate_is_a_gap_too(self) -> None:
        s = connected("night")
        s.receive(Snapshot("night", 1, 5, {}))
        assert s.receive(event(5)) == [Gap("night", 6, 5)]

    def test_an_event_before_any_snapshot_is_a_gap(self) -> None:
        s = connected("night")
        [gap] = s.receive(event(3))
        assert gap == Gap("night", None, 3) and "before any snapshot" in str(gap)

    def test_a_new_epoch_continues_the_seq(self) -> None:
        s = connected("night")
        s.receive(Snapshot("night", 1, 5, {}))
        assert s.receive(event(6, epoch=2)) == [Deliver(event(6, epoch=2))]
        assert s.position("night") == ResumePoint(2, 6)

    def test_resync_waits_for_the_next_snapshot_which_resets_the_position(self) -> None:
        s = connected("night")
        s.receive(Snapshot("night", 1, 5, {}))
        resync = Resync("night", "history lost")
        assert s.receive(resync) == [Deliver(resync)]
        assert s.resyncs == 1
        assert s.receive(event(6)) == [], "the old history is over"
        s.receive(Snapshot("night", 4, 1, {}))
        assert s.position("night") == ResumePoint(4, 1)
        assert s.receive(event(2, epoch=4)) == [Deliver(event(2, epoch=4))]
        assert s.gaps == 0

    def test_rooms_not_joined_are_ignored(self) -> None:
        s = connected("night")
        assert s.receive(event(1, room="day")) == []
        assert s.receive(Snapshot("day", 1, 1, {})) == []
        assert s.receive(Resync("day", "x")) == []
        assert s.position("day") is None


class TestLeaving:
    def test_leave_sends_keeps_the_position_and_drops_events(self) -> None:
        s = connected("night")
        s.receive(Snapshot("night", 1, 5, {}))
        assert s.leave("night") == [Send(Leave("night"))]
        assert s.leave("night") == []
        assert s.position("night") == ResumePoint(1, 5)
        assert s.receive(event(6)) == []
        assert s.receive(Left("night")) == [Deliver(Left("night"))]
        assert s.connect() == [Send(Hello("lila", token="t0k"))]
        with pytest.raises(LocalError):
            s.say("night", "hello?")

    def test_join_again_after_leaving_starts_afresh(self) -> None:
        s = connected("night")
        s.receive(Snapshot("night", 1, 5, {}))
        s.leave("night")
        assert s.join("night") == [Send(Join("night", "dreamer", None))]

    def test_hanging_up_leaves_politely_and_the_next_connection_resumes(self) -> None:
        s = connected("night", "day")
        s.receive(Snapshot("night", 1, 5, {}))
        s.leave("day")
        assert s.hang_up() == [Send(Leave("night"))]
        assert not s.connected and s.hang_up() == []
        assert s.connect()[1:] == [Send(Join("night", "dreamer", ResumePoint(1, 5)))]

    def test_leaving_while_disconnected_sends_nothing(self) -> None:
        s = connected("night")
        s.disconnected()
        assert s.leave("night") == []
        assert s.join("day") == []

    def test_say(self) -> None:
        s = connected("night")
        assert s.say("night", "once") == [Send(Say("night", "once"))]
        with pytest.raises(InvalidMessage):
            s.say("night", "")


class TestErrors:
    @pytest.mark.parametrize(
        ("code", "ref", "fatal", "expected"),
        [
            ("invalid", "say", False, None),
            ("invalid", "hello", False, GiveUp),
            ("room_full", "join", False, GiveUp),
            ("too_many_rooms", "join", False, GiveUp),
            ("room_starting", "join", False, Reconnect),
            ("rooms_exhausted", "join", False, Reconnect),
            ("backend", "say", False, None),
            ("template_invalid", "upload_template", False, None),
            ("version", "hello", True, GiveUp),
            ("too_many_bad_frames", "?", True, GiveUp),
            ("rate_limited", "say", True, Reconnect),
            ("hello_timeout", None, True, Reconnect),
            ("room_unavailable", None, True, Reconnect),
            ("a_future_code", None, True, Reconnect),
            ("a_future_code", "join", False, GiveUp),
            ("a_future_code", "say", False, None),
        ],
    )
    def test_each_error_gets_its_reaction(
        self, code: str, ref: str | None, fatal: bool, expected: type | None
    ) -> None:
        error = Error(code, "because", fatal, ref)
        actions = connected("night").receive(error)
        assert actions[0] == Deliver(error)
        if expected is None:
            assert actions == [Deliver(error)]
        else:
            [_, then] = actions
            assert isinstance(then, expected) and then.reason == f"{code}: because"

    def test_every_protocol_error_code_has_a_reaction(self) -> None:
        # The server's own errors (room_starting, backend...) are checked
        # against the README's error table in tests/test_readme.py.
        codes = {cls.code for cls in peer_errors() if cls.__module__.endswith("protocol.errors")}
        assert codes <= set(ERROR_REACTIONS)

    def test_retry_outside_entry_is_a_report(self) -> None:
        assert reaction(Error("backend", "x", False, "list_rooms")) == "retry"


class TestOtherFrames:
    def test_unreadable_frames_and_client_messages_are_ignored(self) -> None:
        s = connected("night")
        assert s.receive(DecodeError("new server")) == []
        assert s.receive(Hello("odd")) == []

    @pytest.mark.parametrize("msg", [Rooms([]), Status("degraded", "redis"), Left("x")])
    def test_the_rest_is_delivered(self, msg: Rooms | Status | Left) -> None:
        assert connected().receive(msg) == [Deliver(msg)]
