"""Hypothesis drives both sessions through random histories; invariants hold throughout."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sleepsync.protocol.errors import (
    DecodeError,
    FrameTooBig,
    InvalidMessage,
    RemoteError,
    RoomFull,
    ServerFull,
    SleepSyncError,
    SlowConsumer,
)
from sleepsync.protocol.messages import (
    Error,
    Event,
    Hello,
    Join,
    Leave,
    ListRooms,
    Message,
    ResumePoint,
    Resync,
    Rooms,
    Say,
    Snapshot,
    Status,
    UploadTemplate,
    Welcome,
)
from sleepsync.protocol.session import (
    ApplyTemplate,
    ClientSession,
    Close,
    Deliver,
    EnterRoom,
    FetchRooms,
    Gap,
    LeaveRoom,
    Send,
    ServerAction,
    ServerSession,
    SessionLimits,
    TellStory,
)

ROOMS = ["a", "b", "c", "d"]
rooms = st.sampled_from(ROOMS)
roles = st.sampled_from(["dreamer", "observer"])
client_messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, name=st.just("lila"), version=st.sampled_from([1, 1, 1, 2])),
    st.builds(Join, room=rooms, role=roles),
    st.builds(Leave, room=rooms),
    st.builds(Say, room=rooms, text=st.just("once upon a time")),
    st.builds(UploadTemplate, room=rooms, format=st.just("json"), text=st.just("{}")),
    st.just(ListRooms()),
    st.just(Status("ok", "a server message from a client")),
)


def codec_errors() -> st.SearchStrategy[RemoteError]:
    def with_ref(ref: str | None) -> RemoteError:
        error = InvalidMessage("join.room", "bad") if ref else DecodeError("junk")
        error.ref = ref
        return error

    return st.one_of(
        st.builds(with_ref, st.sampled_from([None, "join", "unheard-of"])),
        st.just(FrameTooBig("big")),
    )


failures = st.sampled_from([RoomFull("full"), ServerFull("bye"), SleepSyncError("odd")])


class ServerSessionMachine(RuleBasedStateMachine):
    """Random frames, clock ticks and request outcomes against one session."""

    def __init__(self) -> None:
        super().__init__()
        self.limits = SessionLimits(
            max_rate=5, burst=6, max_bad_frames=4, max_rooms=2, hello_timeout=5
        )
        self.now = 0.0
        self.session = ServerSession("s", "n", self.now, limits=self.limits)
        self.closed = False
        self.closes = 0
        #: Requests carried out but not answered yet.
        self.pending: list[EnterRoom | LeaveRoom | FetchRooms] = []

    def check(self, actions: list[ServerAction], *, answers_frame: bool = False) -> None:
        """What every batch of actions must look like, given the state before it."""
        rooms = dict(self.session.rooms)
        if self.closed:
            assert all(isinstance(a, LeaveRoom) for a in actions), actions
        for i, action in enumerate(actions):
            if isinstance(action, Close):
                self.closes += 1
                assert i == len(actions) - 1, "nothing after Close"
                told = actions[:i]
                assert all(isinstance(a, Send) and isinstance(a.message, Error) for a in told)
                assert all(a.message.fatal for a in told if isinstance(a, Send))
            elif isinstance(action, Send) and isinstance(action.message, Error):
                assert (action.message.ref is not None) == answers_frame, action
            elif isinstance(action, TellStory | ApplyTemplate):
                assert action.room in rooms, "never an action for a room not joined"
            elif isinstance(action, EnterRoom):
                assert action.room in self.session.entering
                self.pending.append(action)
            elif isinstance(action, LeaveRoom):
                assert action.room not in self.session.rooms
                self.pending.append(action)
            elif isinstance(action, FetchRooms):
                self.pending.append(action)
        assert self.closes <= 1
        self.closed = self.session.closed

    @rule(msg=client_messages, dt=st.floats(0, 0.5))
    def receive(self, msg: Message, dt: float) -> None:
        self.now += dt
        before = dict(self.session.rooms)
        expired = self.timer_expired()
        actions = self.session.receive(msg, self.now)
        for action in actions:
            if isinstance(action, TellStory | ApplyTemplate | LeaveRoom):
                assert action.room in before, "never an action for a room not joined"
        self.check(actions, answers_frame=not expired)

    def timer_expired(self) -> bool:
        return self.session.phase == "greeting" and self.now >= self.limits.hello_timeout

    @precondition(lambda self: self.session.phase == "greeting")
    @rule(dt=st.floats(0, 1))
    def say_hello(self, dt: float) -> None:
        self.receive(Hello("lila"), dt)

    @precondition(lambda self: self.session.phase == "open")
    @rule(room=rooms, role=roles, text=st.sampled_from(["hi", "again"]), dt=st.floats(0, 0.3))
    def join_and_say(self, room: str, role: str, text: str, dt: float) -> None:
        self.receive(Join(room, "dreamer" if role == "dreamer" else "observer"), dt)
        self.receive(Say(room, text), dt)

    @rule(error=codec_errors(), dt=st.floats(0, 0.5))
    def receive_garbage(self, error: RemoteError, dt: float) -> None:
        self.now += dt
        expired = self.timer_expired()
        actions = self.session.receive(error, self.now)
        assert not any(isinstance(a, EnterRoom | TellStory) for a in actions)
        self.check(actions, answers_frame=not expired)

    @rule(dt=st.floats(0, 3))
    def poll(self, dt: float) -> None:
        self.now += dt
        self.check(self.session.poll(self.now))

    @precondition(lambda self: bool(self.pending))
    @rule(index=st.integers(0, 7), ok=st.booleans(), error=failures)
    def answer(self, index: int, ok: bool, error: SleepSyncError) -> None:
        request = self.pending.pop(index % len(self.pending))
        if isinstance(request, EnterRoom):
            if ok:
                actions = self.session.joined(request.room)
            else:
                actions = self.session.join_failed(request.room, error)
        elif isinstance(request, LeaveRoom):
            actions = self.session.left(request.room) if ok else []
        else:
            actions = self.session.listed(Rooms([])) if ok else []
        if not ok and not isinstance(request, EnterRoom):
            actions = self.session.request_failed(error, request.REF)
        self.check(actions, answers_frame=True)

    @rule(room=rooms)
    def slow(self, room: str) -> None:
        actions = self.session.slow(room)
        assert actions == [] or [type(a) for a in actions] == [Close]
        self.check(actions)

    @rule()
    def lost(self) -> None:
        self.check(self.session.fail(SlowConsumer("gone")))

    @rule()
    def connection_lost(self) -> None:
        rooms = {*self.session.rooms, *self.session.entering}
        actions = self.session.connection_lost()
        assert {a.room for a in actions if isinstance(a, LeaveRoom)} == rooms
        self.closed = True
        self.check(actions)

    @invariant()
    def bucket_stays_within_its_bounds(self) -> None:
        assert 0.0 <= self.session.tokens <= self.limits.burst

    @invariant()
    def room_limit_holds(self) -> None:
        s = self.session
        assert len(s.rooms) + len(s.entering) <= self.limits.max_rooms
        assert not set(s.rooms) & set(s.entering)

    @invariant()
    def rooms_only_after_hello(self) -> None:
        if self.session.name is None:
            assert not self.session.rooms and not self.session.entering

    @invariant()
    def bad_frames_stay_under_the_limit(self) -> None:
        assert self.session.bad_in_row <= self.limits.max_bad_frames


TestServerSessionMachine = ServerSessionMachine.TestCase
TestServerSessionMachine.settings = settings(max_examples=300, stateful_step_count=40)


class ClientSessionMachine(RuleBasedStateMachine):
    """A server that mostly behaves; the client must never miss a gap silently."""

    def __init__(self) -> None:
        super().__init__()
        self.session = ClientSession("lila")
        self.session.join("a")
        self.session.join("b", "observer")
        #: The seq the application last got per room (snapshot or event).
        self.seen: dict[str, int | None] = {"a": None, "b": None}
        #: A gap or resync was announced and no snapshot has come since.
        self.announced: dict[str, bool] = {"a": False, "b": False}

    @rule()
    def connect(self) -> None:
        actions = self.session.connect()
        assert isinstance(actions[0], Send) and isinstance(actions[0].message, Hello)
        joins = [a.message for a in actions[1:] if isinstance(a, Send)]
        assert all(isinstance(j, Join) for j in joins)
        for join in joins:
            assert isinstance(join, Join)
            seen = self.seen[join.room]
            assert (join.resume.seq if join.resume else None) == seen, "resume where it stopped"
        self.announced = dict.fromkeys(self.announced, False)

    @rule()
    def hang_up(self) -> None:
        leaves = self.session.hang_up()
        assert all(isinstance(a, Send) and isinstance(a.message, Leave) for a in leaves)
        assert not self.session.connected

    @rule(room=rooms, seq=st.integers(0, 50))
    def snapshot(self, room: str, seq: int) -> None:
        actions = self.session.receive(Snapshot(room, 1, seq, {}))
        if room in self.seen:
            assert actions == [Deliver(Snapshot(room, 1, seq, {}))]
            self.seen[room] = seq
            self.announced[room] = False
        else:
            assert actions == []

    @rule(room=st.sampled_from(["a", "b"]), skip=st.sampled_from([1, 1, 1, 1, 0, 2, -3]))
    def event(self, room: str, skip: int) -> None:
        last = self.seen[room]
        seq = max(0, (last or 0) + skip)
        actions = self.session.receive(Event(room, 1, seq, seq, []))
        delivered = [a for a in actions if isinstance(a, Deliver)]
        gaps = [a for a in actions if isinstance(a, Gap)]
        if delivered:
            assert last is not None and seq == last + 1, "only the next seq is delivered"
            self.seen[room] = seq
        elif gaps:
            self.announced[room] = True
        else:
            assert self.announced[room], "an event dropped without a gap or resync announced"

    @rule(room=st.sampled_from(["a", "b"]))
    def resync(self, room: str) -> None:
        before = self.session.resyncs
        actions = self.session.receive(Resync(room, "lost"))
        assert actions == [Deliver(Resync(room, "lost"))]
        assert self.session.resyncs == before + 1
        self.announced[room] = True

    @rule(msg=st.sampled_from([Welcome(1, "n", "s", 1, 1), Status("ok", "x"), Rooms([])]))
    def other(self, msg: Message) -> None:
        assert self.session.receive(msg) == [Deliver(msg)]  # type: ignore[arg-type]

    @invariant()
    def positions_follow_what_the_application_saw(self) -> None:
        for room, seen in self.seen.items():
            position = self.session.position(room)
            assert (position.seq if position else None) == seen

    @invariant()
    def resume_points_are_valid(self) -> None:
        for room in self.seen:
            position = self.session.position(room)
            assert position is None or isinstance(position, ResumePoint)


TestClientSessionMachine = ClientSessionMachine.TestCase
TestClientSessionMachine.settings = settings(max_examples=200, stateful_step_count=40)
