"""The websocket gateway: one session per connection, bytes in, domain calls out.

A session goes ``hello`` → ``join`` (one or more rooms) → ``say``/``leave``/
``upload_template``/``list_rooms``. Every inbound frame, valid or not, spends
a token of the session's rate bucket; an empty bucket closes with 1008.
Garbage gets an ``error`` message with a code and a sentence, and the session
goes on; a session that sends only garbage for ``max_bad_frames`` frames in a
row is closed with 1008. Oversize frames are refused by websockets itself
(close 1009). No room rule lives here: the gateway validates, then hands
inputs to the room's owner through the backend.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.errors import (
    CLOSE_POLICY,
    DecodeError,
    OutOfOrder,
    RateLimited,
    RemoteError,
    RoomFull,
    SleepSyncError,
    SlowConsumer,
    TemplateInvalid,
    VersionMismatch,
)
from sleepsync.protocol.messages import (
    PROTOCOL_VERSION,
    Error,
    Hello,
    Join,
    Leave,
    Left,
    ListRooms,
    Message,
    Role,
    RoomInfo,
    Rooms,
    Say,
    Status,
    UploadTemplate,
    Welcome,
)
from sleepsync.protocol.wire import Limits

from .backend.base import Backend, BackendError, Member
from .config import Settings
from .fanout import Fanout, RoomUnavailable, Subscriber
from .inputs import MemberJoin, MemberLeave, RoomInput, StoryInput, TemplateInput
from .metrics import Metrics
from .room_state import EngineHooks
from .rooms import RoomManager
from .supervisor import Supervisor

__all__ = ["Gateway", "Session"]

log = logging.getLogger("sleepsync.gateway")


@dataclass(eq=False)
class Session:
    """One websocket connection and what it has joined."""

    conn: ServerConnection
    id: str
    tasks: Supervisor
    rate: float
    burst: int
    name: str | None = None
    rooms: dict[str, Role] = field(default_factory=dict)
    tokens: float = 0.0
    refilled: float = 0.0
    bad_in_row: int = 0
    closing: bool = False
    #: Told the close code whenever the server closes this session.
    on_close: Callable[[int], None] | None = None

    def allow(self, now: float) -> bool:
        """Token bucket: ``rate`` frames per second, bursts of ``burst``."""
        self.tokens = min(self.burst, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True

    async def send_frame(self, frame: bytes) -> None:
        await self.conn.send(frame)

    def slow(self, room: str) -> None:
        self.close_with(SlowConsumer(f"you did not read the events of {room} fast enough"))

    def lost(self, room: str) -> None:
        self.close_with(RoomUnavailable(f"room {room} could not be restored; reconnect"))

    def close_with(self, error: SleepSyncError) -> None:
        """Close the connection with the error's close code (at most once)."""
        if self.closing:
            return
        self.closing = True
        code = error.close_code or CLOSE_POLICY
        if self.on_close is not None:
            self.on_close(code)
        self.tasks.spawn(self.conn.close(code, error.message[:120]), "close")


class Gateway:
    def __init__(
        self,
        *,
        settings: Settings,
        node_id: str,
        backend: Backend,
        rooms: RoomManager,
        fanout: Fanout,
        metrics: Metrics,
        hooks: EngineHooks | None,
        tasks: Supervisor,
    ) -> None:
        self.settings = settings
        self.tasks = tasks
        self.node_id = node_id
        self.backend = backend
        self.rooms = rooms
        self.fanout = fanout
        self.metrics = metrics
        self.hooks = hooks
        self.sessions: set[Session] = set()
        self.limits = Limits(max_frame=settings.max_frame_bytes)
        #: The degraded status while the backend is unreachable, told to newcomers too.
        self.degraded: Status | None = None
        fanout.rejoin = self.rejoin

    # ------------------------------------------------------------ connection
    async def handle(self, conn: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        session = Session(
            conn=conn,
            id=secrets.token_hex(8),
            tasks=self.tasks,
            rate=self.settings.max_inbound_rate,
            burst=self.settings.inbound_burst,
            tokens=float(self.settings.inbound_burst),
            refilled=loop.time(),
            on_close=lambda code: self.metrics.closes.labels(str(code)).inc(),
        )
        self.metrics.connections_total.inc()
        if len(self.sessions) >= self.settings.max_clients:
            self.metrics.closes.labels("1013").inc()
            await conn.close(1013, "the server is at its client limit")
            return
        self.sessions.add(session)
        self.metrics.connections.set(len(self.sessions))
        try:
            async for raw in conn:
                if not session.allow(loop.time()):
                    await self._fail(session, RateLimited("too many frames per second"), None)
                    break
                if not await self._receive(session, raw):
                    break
            # Closing: keep draining what the peer already sent, so its answer to
            # our close frame is read (returning now would close with 1000).
            async for _ in conn:
                pass
        except ConnectionClosed:
            pass
        finally:
            self.sessions.discard(session)
            self.metrics.connections.set(len(self.sessions))
            await self._leave_all(session)

    async def _receive(self, session: Session, raw: str | bytes) -> bool:
        """Handle one frame; False when the connection must end."""
        ref = None
        try:
            if isinstance(raw, str):
                raise DecodeError("send binary msgpack frames, not text")
            msg = decode(raw, self.limits)
            ref = msg.TYPE
            self.metrics.messages_in.labels(ref).inc()
            await self._dispatch(session, msg)
        except RemoteError as exc:
            session.bad_in_row += 1
            if session.bad_in_row >= self.settings.max_bad_frames:
                await self._fail(
                    session, RateLimited(f"{session.bad_in_row} invalid frames in a row"), ref
                )
                return False
            return await self._fail(session, exc, ref)
        except SleepSyncError as exc:  # capacity, backend trouble: report, keep going
            return await self._fail(session, exc, ref)
        else:
            session.bad_in_row = 0
        return True

    async def _fail(self, session: Session, exc: SleepSyncError, ref: str | None) -> bool:
        """Tell the peer; close when the error says so. False when closing."""
        fatal = exc.close_code is not None
        self.metrics.errors.labels(exc.code).inc()
        try:
            await self._send(session, Error(exc.code, exc.message, fatal, ref))
        except ConnectionClosed:
            return False
        if fatal:
            session.close_with(exc)
            return False
        return True

    async def _send(self, session: Session, msg: Message) -> None:
        self.metrics.messages_out.labels(msg.TYPE).inc()
        await session.conn.send(encode(msg))

    # ------------------------------------------------------------ messages
    async def _dispatch(self, session: Session, msg: Message) -> None:
        if isinstance(msg, Hello):
            await self._hello(session, msg)
            return
        if session.name is None:
            raise OutOfOrder("say hello first")
        if isinstance(msg, Join):
            await self._join(session, msg)
        elif isinstance(msg, Leave):
            self._member_of(session, msg.room)
            await self._leave(session, msg.room)
            await self._send(session, Left(msg.room))
        elif isinstance(msg, Say):
            if self._member_of(session, msg.room) != "dreamer":
                raise OutOfOrder("observers watch; join as a dreamer to tell the story")
            await self._push(msg.room, StoryInput(session.id, session.name, msg.text))
        elif isinstance(msg, ListRooms):
            await self._send(session, await self._list_rooms())
        elif isinstance(msg, UploadTemplate):
            await self._upload(session, msg)
        else:
            raise OutOfOrder(f"{msg.TYPE} is a server message")

    async def _hello(self, session: Session, msg: Hello) -> None:
        if session.name is not None:
            raise OutOfOrder("hello was already said")
        if msg.version != PROTOCOL_VERSION:
            raise VersionMismatch(
                f"this server speaks protocol {PROTOCOL_VERSION}, not {msg.version}"
            )
        session.name = msg.name
        await self._send(
            session,
            Welcome(
                version=PROTOCOL_VERSION,
                node=self.node_id,
                session=session.id,
                max_frame=self.settings.max_frame_bytes,
                max_rate=int(self.settings.max_inbound_rate),
            ),
        )
        if self.degraded is not None:
            await self._send(session, self.degraded)

    def _member_of(self, session: Session, room: str) -> Role:
        role = session.rooms.get(room)
        if role is None:
            raise OutOfOrder(f"you are not in room {room}")
        return role

    async def _join(self, session: Session, msg: Join) -> None:
        assert session.name is not None
        if msg.room in session.rooms:
            raise OutOfOrder(f"you are already in room {msg.room}")
        if len(session.rooms) >= self.settings.max_rooms_per_client:
            raise OutOfOrder(
                f"one connection may be in at most {self.settings.max_rooms_per_client} rooms"
            )
        await self.rooms.open_room(msg.room)
        member = Member(session.id, session.name, msg.role, self.node_id)
        if not await self.backend.join_presence(msg.room, member, self.settings.room_capacity):
            raise RoomFull(
                f"room {msg.room} is full ({self.settings.room_capacity} members at most)"
            )
        session.rooms[msg.room] = msg.role
        try:
            await self._push(msg.room, MemberJoin(session.id, session.name, msg.role, self.node_id))
            await self.fanout.attach(msg.room, session, msg.resume)
        except BaseException:
            await self._leave(session, msg.room)
            raise

    async def rejoin(self, room: str, subscriber: Subscriber) -> bool:
        """Enter a session again after its room's history was lost (a resync).

        The room may have to be created and owned again, and the session's
        presence and membership recorded again; nothing happens twice when
        they survived. False when the session left the room meanwhile.
        """
        session = subscriber if isinstance(subscriber, Session) else None
        if session is None or session.closing or session.name is None:
            return False
        role = session.rooms.get(room)
        if role is None:
            return False
        await self.rooms.open_room(room)
        if any(m.session == session.id for m in await self.backend.presence(room)):
            return True
        member = Member(session.id, session.name, role, self.node_id)
        if not await self.backend.join_presence(room, member, self.settings.room_capacity):
            raise RoomFull(f"room {room} is full")
        await self._push(room, MemberJoin(session.id, session.name, role, self.node_id))
        return True

    def set_health(self, healthy: bool, reason: str) -> None:
        """Tell every client the node is degraded (the store is unreachable) or ok again."""
        if healthy:
            self.degraded = None
            status = Status("ok", "the shared store is reachable again")
        else:
            status = Status("degraded", f"{reason}; rooms pause until it is back")
            self.degraded = status
        self.tasks.spawn(self.tell_all(status), "status")

    async def _leave(self, session: Session, room: str) -> None:
        if session.rooms.pop(room, None) is None:
            return
        self.fanout.detach(room, session)
        await self.backend.leave_presence(room, session.id)
        await self._push(room, MemberLeave(session.id))

    async def _leave_all(self, session: Session) -> None:
        for room in list(session.rooms):
            try:
                await self._leave(session, room)
            except BackendError as exc:
                log.warning("could not record %s leaving %s: %s", session.id, room, exc)

    async def _push(self, room: str, item: RoomInput) -> None:
        await self.rooms.submit(room, item)  # raises InputRefused: the sender is told

    async def _upload(self, session: Session, msg: UploadTemplate) -> None:
        assert session.name is not None
        self._member_of(session, msg.room)
        if self.hooks is None:
            raise TemplateInvalid("$", "this server runs no dream engine")
        self.hooks.parse_template(msg.text, msg.format)  # raises TemplateInvalid
        await self._push(msg.room, TemplateInput(session.name, msg.format, msg.text, session.id))

    async def _list_rooms(self) -> Rooms:
        infos = []
        rooms = (await self.backend.list_rooms())[:500]
        presences = await self.backend.presences(rooms)  # one round trip for all rooms
        for room in rooms:
            members = presences.get(room, [])
            dreamers = sum(1 for m in members if m.role == "dreamer")
            owned = self.rooms.owned.get(room)
            phase = owned.state.phase() if owned is not None else "unknown"
            infos.append(RoomInfo(room, dreamers, len(members) - dreamers, phase))
        return Rooms(infos)

    # ------------------------------------------------------------ shutdown
    async def tell_all(self, msg: Message) -> None:
        """One broadcast to every client: a client that does not read delays no one."""
        broadcast([session.conn for session in self.sessions], encode(msg))
