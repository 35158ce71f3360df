"""The websocket gateway: a pump between sockets and sessions.

How it works: each connection gets a :class:`~sleepsync.protocol.session.ServerSession`,
which holds every per-connection rule (hello, rate, bad frames, rooms, roles,
which error code). The gateway only moves things: it reads a frame, decodes
it (the codec's error, if any, goes to the session as is), hands it to the
session with the time, and carries out the actions that come back — sends,
a close, and domain requests (enter or leave a room, push a story line or a
template, list rooms) on the presence store, the room owners and the fan-out.
Each request's outcome goes back to the session, whose answer is carried out
in turn. Between frames, the pump wakes at the session's deadline to run its
timers (the hello timeout, the token's expiry). Who may hold a socket at all
is :mod:`.admission`'s rule: clients that said hello up to ``max_clients``,
and a bounded pool of greeting connections in which a newcomer pushes out
the oldest. A ``history`` request builds the room's journal from the store
(:func:`~.journal.export.export_journal`) and the session sends it in parts.
Every input for a room goes through
:meth:`Gateway._push`; a room that cannot take it raises a
:class:`~sleepsync.protocol.errors.SleepSyncError`, which the session turns
into an error to the sender. Oversize frames are refused by websockets itself
(close 1009). Metrics are counted here, per message, error and close.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.errors import (
    DecodeError,
    HelloTimeout,
    LocalError,
    NameTaken,
    RemoteError,
    RoomForgotten,
    RoomFull,
    RoomsExhausted,
    ServerFull,
    SleepSyncError,
    TemplateInvalid,
    TooManyNewRooms,
    TooManyRooms,
)
from sleepsync.protocol.identity import Keys
from sleepsync.protocol.messages import Error, Message, RoomInfo, Rooms, Status, Welcome
from sleepsync.protocol.session import (
    ApplyTemplate,
    Close,
    EnterRoom,
    FetchHistory,
    ForgetRoom,
    LeaveRoom,
    Request,
    Send,
    ServerAction,
    ServerSession,
    SessionLimits,
    TellStory,
)
from sleepsync.protocol.wire import Limits

from .admission import Admission
from .backend.base import Backend, BackendError, Member, RoomMissing
from .config import Settings
from .fanout import Fanout, RoomUnavailable, Subscriber
from .inputs import (
    ForgetInput,
    MemberJoin,
    MemberLeave,
    RoomInput,
    StoryInput,
    TemplateInput,
)
from .journal.export import NoHistory, export_journal
from .metrics import Metrics
from .room_state import EngineHooks
from .rooms import RoomAbsent, RoomManager
from .supervisor import Supervisor

__all__ = ["Connection", "Gateway"]

log = logging.getLogger("sleepsync.gateway")

#: Most rooms a ``rooms`` answer lists.
MAX_LISTED = 500
#: Seconds between two looks at whether a forgotten room is gone yet.
FORGET_POLL = 0.05


class Connection:
    """One websocket connection and its session; a fan-out ``Subscriber``."""

    def __init__(self, conn: ServerConnection, session: ServerSession, gateway: Gateway) -> None:
        self.conn = conn
        self.session = session
        self.gateway = gateway

    @property
    def id(self) -> str:
        return self.session.id

    async def send_frame(self, frame: bytes) -> None:
        await self.conn.send(frame)

    def slow(self, room: str) -> None:
        self.gateway.later(self, self.session.slow(room))

    def lost(self, room: str) -> None:
        error = RoomUnavailable(f"room {room} could not be restored; reconnect")
        self.gateway.later(self, self.session.fail(error))


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
        keys: Keys | None = None,
    ) -> None:
        """``keys``: what hello's tokens must verify with (None: open mode)."""
        self.settings = settings
        self.keys = keys
        self.tasks = tasks
        self.node_id = node_id
        self.backend = backend
        self.rooms = rooms
        self.fanout = fanout
        self.metrics = metrics
        self.hooks = hooks
        self.sessions: set[Connection] = set()
        self.limits = Limits(max_frame=settings.max_frame_bytes)
        self.session_limits = SessionLimits(
            max_rate=settings.max_inbound_rate,
            burst=settings.inbound_burst,
            max_bad_frames=settings.max_bad_frames,
            max_rooms=settings.max_rooms_per_client,
            hello_timeout=settings.hello_timeout,
            max_frame=settings.max_frame_bytes,
            room_creations_per_minute=settings.room_creations_per_minute,
            template_upload_interval=settings.template_upload_interval,
        )
        self.admission: Admission[Connection] = Admission(
            settings.max_clients, settings.max_greeting_clients
        )
        #: The degraded status while the backend is unreachable, told to newcomers too.
        self.degraded: Status | None = None
        fanout.rejoin = self.rejoin

    # ------------------------------------------------------------ the pump
    async def handle(self, conn: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        session = ServerSession(
            secrets.token_hex(8),
            self.node_id,
            now,
            limits=self.session_limits,
            keys=self.keys,
            unix_offset=time.time() - now,
        )
        link = Connection(conn, session, self)
        self.metrics.connections_total.inc()
        arrival = self.admission.arrive(link)
        if not arrival.admitted:
            await self._run(link, session.fail(ServerFull("the server is at its client limit")))
            await self._drain(conn)
            return
        if arrival.evicted is not None:
            self.metrics.greeting_evicted.inc()
            pushed = arrival.evicted.session.fail(
                HelloTimeout("no hello yet, and newer connections needed the place")
            )
            self.later(arrival.evicted, pushed)
        self.sessions.add(link)
        self.metrics.connections.set(len(self.sessions))
        try:
            while not session.closed:
                try:
                    async with asyncio.timeout_at(session.deadline()):
                        raw = await conn.recv()
                except TimeoutError:
                    await self._run(link, session.poll(loop.time()))
                    continue
                await self._run(link, session.receive(self._decode(raw), loop.time()))
            await self._drain(conn)
        except ConnectionClosed:
            pass
        finally:
            self.sessions.discard(link)
            self.admission.gone(link)
            self.metrics.connections.set(len(self.sessions))
            await self._run(link, session.connection_lost())

    async def _drain(self, conn: ServerConnection) -> None:
        """Closing: read what the peer already sent, so its answer to our close
        frame is read (returning now would close with 1000)."""
        try:
            async for _ in conn:
                pass
        except ConnectionClosed:
            pass

    def _decode(self, raw: str | bytes) -> Message | RemoteError:
        if isinstance(raw, str):
            return DecodeError("send binary msgpack frames, not text")
        try:
            msg = decode(raw, self.limits)
        except RemoteError as exc:
            return exc
        self.metrics.messages_in.labels(msg.TYPE).inc()
        return msg

    def later(self, link: Connection, actions: list[ServerAction]) -> None:
        """Carry out ``actions`` in a task (for callbacks that cannot wait)."""
        if actions:
            self.tasks.spawn(self._run(link, actions), "session actions")

    async def _run(self, link: Connection, actions: list[ServerAction]) -> None:
        """Carry out the session's actions in order; feed outcomes back."""
        for action in actions:
            if isinstance(action, Send):
                if isinstance(action.message, Welcome) and not self.admission.greeted(link):
                    full = ServerFull("the server is at its client limit")
                    await self._run(link, link.session.fail(full))
                    return
                await self._send(link, action.message)
            elif isinstance(action, Close):
                self.metrics.closes.labels(str(action.code)).inc()
                self.tasks.spawn(link.conn.close(action.code, action.reason), "close")
            else:
                await self._run(link, await self._request(link, action))

    async def _send(self, link: Connection, msg: Message) -> None:
        self.metrics.messages_out.labels(msg.TYPE).inc()
        if isinstance(msg, Error):
            self.metrics.errors.labels(msg.code).inc()
            if msg.code == "unauthorized":  # the message names the reason, never the token
                log.info("session %s refused: %s", link.id, msg.message)
        try:
            await link.conn.send(encode(msg))
        except ConnectionClosed:
            return  # the pump sees the close on its next read
        if isinstance(msg, Welcome) and self.degraded is not None:
            await self._send(link, self.degraded)

    async def _request(self, link: Connection, request: Request) -> list[ServerAction]:
        """Carry out one domain request; the session's answer to its outcome."""
        session = link.session
        created = False
        try:
            if isinstance(request, EnterRoom):
                created = await self._enter(link, request)
            elif isinstance(request, ForgetRoom):
                await self._forget(link, request)
                return session.forgot(request.room)
            elif isinstance(request, LeaveRoom):
                await self._leave(link, request.room)
            elif isinstance(request, TellStory):
                await self._push(request.room, StoryInput(link.id, request.name, request.text))
            elif isinstance(request, ApplyTemplate):
                await self._upload(link, request)
            elif isinstance(request, FetchHistory):
                return session.history(request.room, await self._history(request.room))
            else:  # FetchRooms
                return session.listed(await self._list_rooms())
        except SleepSyncError as exc:
            if isinstance(request, EnterRoom):
                return session.join_failed(request.room, exc)
            if session.closed:
                log.warning("could not %s for a closed connection: %s", request.REF, exc)
            return session.request_failed(exc, request.REF)
        except ConnectionClosed:
            raise  # the peer left: the pump ends and the session's rooms are left
        except Exception:  # a bug here: say so loudly, end this connection only
            log.exception("%s failed", request.REF)
            return session.fail(LocalError("the server failed; try again"))
        if isinstance(request, EnterRoom):
            return session.joined(request.room, created=created)
        if isinstance(request, LeaveRoom):
            return session.left(request.room)
        return []

    # ------------------------------------------------------------ requests
    async def _enter(self, link: Connection, request: EnterRoom) -> bool:
        """Presence, membership, the event flow; undone when a step fails.

        True when this join created the room."""
        room = request.room
        try:
            created = await self.rooms.open_room(room, create=request.create)
        except TooManyRooms as exc:  # rooms.py names the deployment limit so
            raise RoomsExhausted(exc.message) from exc
        except RoomAbsent:
            per_minute = self.settings.room_creations_per_minute
            raise TooManyNewRooms(
                f"room {room} does not exist, and one connection may create at most "
                f"{per_minute} rooms a minute; join an existing room or wait"
            ) from None
        owned = self.rooms.owned.get(room)
        if owned is not None and request.name in owned.state.pods():
            # Known here at once when this node owns the room; the owner refuses it
            # anyway (race-free) when the pod is newer than this check.
            raise NameTaken(f"{request.name} is a pod in room {room}; choose another name")
        member = Member(link.id, request.name, request.role, self.node_id)
        if not await self.backend.join_presence(room, member, self.settings.room_capacity):
            raise RoomFull(f"room {room} is full ({self.settings.room_capacity} members at most)")
        try:
            await self._push(room, MemberJoin(link.id, request.name, request.role, self.node_id))
            await self.fanout.attach(room, link, request.resume)
        except SleepSyncError:
            try:
                await self._leave(link, room)
            except SleepSyncError as exc:
                log.warning("could not undo %s entering %s: %s", link.id, room, exc)
            raise
        return created

    async def _leave(self, link: Connection, room: str) -> None:
        self.fanout.detach(room, link)
        await self.backend.leave_presence(room, link.id)
        await self._push(room, MemberLeave(link.id))

    async def _push(self, room: str, item: RoomInput) -> None:
        """The one way an input reaches a room (its owner, maybe on another node).

        Raises :class:`InputRefused` when the room cannot take it now: the
        sender is told, the input is never dropped silently.
        """
        await self.rooms.submit(room, item)

    async def _upload(self, link: Connection, request: ApplyTemplate) -> None:
        if self.hooks is None:
            raise TemplateInvalid("$", "this server runs no dream engine")
        self.hooks.parse_template(request.text, request.format)  # raises TemplateInvalid
        item = TemplateInput(request.name, request.format, request.text, link.id)
        await self._push(request.room, item)

    async def _history(self, room: str) -> bytes:
        """The room's retained history as a journal (raises NoHistory)."""
        if self.hooks is None:
            raise NoHistory("this server runs no dream engine")
        self.metrics.backend_ops.labels("history").inc()
        return await export_journal(
            self.backend,
            room,
            self.hooks,
            node=self.node_id,
            hash_every=self.settings.journal_hash_every,
            story_tail=self.settings.story_tail,
            capacity=self.settings.room_capacity,
        )

    async def _forget(self, link: Connection, request: ForgetRoom) -> None:
        """Hand the room's owner the request to erase it; wait until it is gone.

        A room that does not exist is forgotten already; a retired one is erased
        here and now (it has no owner). Raises BackendError when the owner did
        not act in time (the request stays queued for it).
        """
        room = request.room
        if await self.rooms.forget_retired(room, request.name):
            return  # idle, no owner: its retained keys are erased already
        try:
            await self.rooms.open_room(room, create=False)  # someone must own it to erase it
            await self._push(room, ForgetInput(link.id, request.name))
        except (RoomAbsent, RoomMissing):
            return
        log.info("operator %s asked to forget room %s", request.name, room)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(5.0, 3 * self.settings.lease_ttl_ms / 1000)
        while await self.backend.room_status(room) == "exists":
            if loop.time() > deadline:
                raise BackendError(
                    f"room {room} is not erased yet; its owner will when it gets to it"
                )
            await asyncio.sleep(FORGET_POLL)

    async def _list_rooms(self) -> Rooms:
        infos = []
        rooms = (await self.backend.list_rooms())[:MAX_LISTED]
        presences = await self.backend.presences(rooms)  # one round trip for all rooms
        for room in rooms:
            members = presences.get(room, [])
            dreamers = sum(1 for m in members if m.role == "dreamer")
            owned = self.rooms.owned.get(room)
            phase = owned.state.phase() if owned is not None else "unknown"
            infos.append(RoomInfo(room, dreamers, len(members) - dreamers, phase))
        return Rooms(infos)

    # ------------------------------------------------------------ node events
    async def rejoin(self, room: str, subscriber: Subscriber) -> bool:
        """Enter a session again after its room's history was lost (a resync).

        The room may have to be created and owned again, and the session's
        presence and membership recorded again; nothing happens twice when
        they survived. False when the session left the room meanwhile.
        """
        link = subscriber if isinstance(subscriber, Connection) else None
        if link is None or link.session.closed or link.session.name is None:
            return False
        role = link.session.rooms.get(room)
        if role is None:
            return False
        if await self.backend.room_status(room) == "forgotten":
            # Erased by an operator: tell the member, never open the room again for it.
            gone = RoomForgotten(f"room {room} was erased by an operator; nothing of it is kept")
            self.later(link, link.session.room_gone(room, gone))
            return False
        await self.rooms.open_room(room)
        if any(m.session == link.id for m in await self.backend.presence(room)):
            return True
        member = Member(link.id, link.session.name, role, self.node_id)
        if not await self.backend.join_presence(room, member, self.settings.room_capacity):
            raise RoomFull(f"room {room} is full")
        await self._push(room, MemberJoin(link.id, link.session.name, role, self.node_id))
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

    # ------------------------------------------------------------ shutdown
    async def tell_all(self, msg: Message) -> None:
        """One broadcast to every client: a client that does not read delays no one."""
        broadcast([session.conn for session in self.sessions], encode(msg))
