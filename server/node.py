"""A server node: the websocket gateway, rooms, fan-out and HTTP endpoints.

``Node`` composes the parts around one backend. Every background task of
the node is spawned through its one :class:`~.supervisor.Supervisor`
(``node.tasks``), so :meth:`Node.stop` ends them all: nothing of the node
is alive once it returns.

TLS and origins (:mod:`.handshake`): with a certificate the port speaks
``wss://`` and ``https://`` only; browser pages from origins not in
``--allowed-origins`` are refused during the websocket handshake.

HTTP, on the websocket port: ``GET /healthz`` says the process is alive,
``GET /readyz`` that it serves (503 from the moment the port is bound while
the backend and broker start, and again while shutting down), ``GET
/metrics`` gives the Prometheus counters. Any other plain HTTP request gets
404; a websocket handshake before the node serves gets 503.

Who may connect: with auth keys (``--auth-secret-file``,
``--auth-public-key-file``) every hello needs a signed token; without them
the node runs open, and refuses to be built for a non-loopback host unless
``--insecure-no-auth`` (see :mod:`.auth`).

Shutdown (:meth:`Node.stop`) is bounded by ``shutdown_grace``: clients are
told with one broadcast, asked to close, and whoever has not finished
closing when the grace ends (a client that stopped reading) is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.protocol import State

from sleepsync.protocol.messages import Status
from sleepsync.protocol.telemetry import Cue
from sleepsync.protocol.topics import BrokerUrl

from .auth import exposure, is_loopback, load_keys
from .backend.base import Backend
from .backend.memory import MemoryBackend
from .backend.redis import RedisBackend
from .broker import EmbeddedBroker
from .config import Settings
from .dream import engine_hooks
from .fanout import Fanout
from .gateway import Gateway
from .handshake import allowed_origins, tls_context
from .ingest import Ingest
from .journal.recorder import JournalKeeper
from .metrics import Metrics
from .room_state import EngineHooks
from .rooms import RoomManager
from .secret_files import read_secret_file
from .supervisor import Supervisor

__all__ = ["Node"]

log = logging.getLogger("sleepsync.node")

#: Seconds the node waits, after the grace, for its connection handlers to end.
STOP_MARGIN = 1.0


def redis_password(settings: Settings) -> str | None:
    """The password of ``--redis-password-file``; ValueError, in one sentence, when
    it cannot be read or the URL carries a password as well."""
    if not settings.redis_password_file:
        return None
    if not settings.redis_url:
        raise ValueError("--redis-password-file needs --redis-url (the memory backend takes none)")
    if urlsplit(settings.redis_url).password is not None:
        raise ValueError("the Redis URL already carries a password: give it in one place only")
    return read_secret_file(settings.redis_password_file, "--redis-password-file")


class Node:
    """One SleepSync server process (or one of several sharing a backend)."""

    def __init__(
        self,
        settings: Settings,
        *,
        backend: Backend | None = None,
        hooks: EngineHooks | None = None,
        engine: bool = True,
        mqtt: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``engine=False`` runs rooms without dream dynamics (membership and story only).

        Raises ValueError, in one sentence, for a secret or certificate file
        that cannot be read or does not fit the other settings.

        ``mqtt=False`` runs no MQTT ingest and no embedded broker (tests that need
        no pods). With ``mqtt=True`` the node ingests pod telemetry from
        ``settings.mqtt_url``, or from an embedded broker it starts when that is empty.
        ``clock`` (monotonic seconds) times the rooms' ticks, leases and
        heartbeats; tests share one they can move forward between nodes.

        Raises ValueError, in one sentence, for an unreadable key file or a
        non-loopback host without auth (and without ``insecure_no_auth``).
        """
        self.settings = settings
        self.keys = load_keys(settings)
        #: What the node says at start about running without tokens (None: it has keys).
        self.open_mode = exposure(settings, self.keys)
        if hooks is None and engine:
            hooks = engine_hooks(settings)
        self.node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
        #: Records every owned room (``--journal-dir``); None without a directory.
        self.journal: JournalKeeper | None = None
        if settings.journal_dir and hooks is not None:
            self.journal = JournalKeeper(
                settings.journal_dir,
                node=self.node_id,
                segment_bytes=int(settings.journal_segment_mb * 1e6),
                max_bytes=int(settings.journal_max_mb * 1e6),
                hash_every=settings.journal_hash_every,
            )
            hooks = self.journal.hooks(hooks)
        self.metrics = Metrics()
        #: Every background task of this node; ``stop()`` ends them all.
        self.tasks = Supervisor()
        password = redis_password(settings)
        self._tls = tls_context(settings.tls_cert_file, settings.tls_key_file)
        self._origins = allowed_origins(settings.allowed_origins)
        if backend is None and settings.redis_url:
            backend = RedisBackend(
                settings.redis_url,
                password=password,
                retention=settings.event_retention,
                inbox_limit=settings.inbox_limit,
                max_retained=settings.max_rooms,
                timeout=settings.redis_timeout,
            )
        self.backend: Backend = backend or MemoryBackend(
            retention=settings.event_retention,
            inbox_limit=settings.inbox_limit,
            max_retained=settings.max_rooms,
        )
        self.rooms = RoomManager(
            self.backend,
            settings,
            self.node_id,
            self.metrics,
            hooks,
            on_cues=self._on_cues,
            on_ownership=self._on_ownership,
            on_health=self._on_health,
            tasks=self.tasks,
            clock=clock,
            journal=self.journal,
        )
        self.broker: EmbeddedBroker | None = None
        self.ingest: Ingest | None = None
        if mqtt:
            if settings.mqtt_url:
                broker_url = BrokerUrl.parse(settings.mqtt_url)
            else:
                self.broker = EmbeddedBroker(settings.mqtt_embedded_port)
                broker_url = BrokerUrl("127.0.0.1", settings.mqtt_embedded_port)
            self.ingest = Ingest(
                settings,
                self.rooms,
                self.metrics,
                broker_url,
                client_id=settings.mqtt_client_id or f"sleepsync-{self.node_id}",
                tasks=self.tasks,
            )
        self.fanout = Fanout(
            self.backend,
            self.metrics,
            outbound_buffer_bytes=settings.outbound_buffer_bytes,
            tasks=self.tasks,
        )
        self.gateway = Gateway(
            settings=settings,
            node_id=self.node_id,
            backend=self.backend,
            rooms=self.rooms,
            fanout=self.fanout,
            metrics=self.metrics,
            hooks=hooks,
            tasks=self.tasks,
            keys=self.keys,
        )
        self.ready = False
        self._server: Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start the node first"
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"{'wss' if self._tls else 'ws'}://{self.settings.host}:{self.port}"

    def _on_cues(self, room: str, cues: list[Cue]) -> None:
        if self.ingest is not None:
            self.ingest.send_cues(room, cues)

    def _on_ownership(self, room: str, owned: bool) -> None:
        if self.ingest is not None:
            self.ingest.room_owned(room, owned)

    def _on_health(self, healthy: bool, reason: str) -> None:
        self.gateway.set_health(healthy, reason)

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            if self.ready and self.gateway.degraded is not None:
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "degraded\n")
            if self.ready:
                return connection.respond(HTTPStatus.OK, "ready\n")
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "not ready\n")
        if path == "/metrics":
            body = self.metrics.render()
            headers = Headers(
                [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
            )
            return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, body)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if not self.ready:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "not ready\n")
        return None

    async def start(self) -> None:
        """Bind the port (``/readyz`` says 503), start the broker and the backend,
        run the parts, then serve."""
        s = self.settings
        self._server = await serve(
            self.gateway.handle,
            s.host,
            s.port,
            process_request=self._http,
            ssl=self._tls,
            origins=self._origins,
            max_size=s.max_frame_bytes,
            max_queue=16,
            compression=None,
            close_timeout=s.close_timeout,
            ping_interval=20,
            ping_timeout=20,
        )
        try:
            if self.broker is not None and self.ingest is not None:
                await self.broker.start()  # raises BrokerUnavailable, in one sentence
                self.ingest.broker = BrokerUrl(self.broker.host, self.broker.port)
            await self.backend.start()
        except BaseException:
            server, self._server = self._server, None
            server.close()
            await server.wait_closed()
            if self.broker is not None:
                await self.broker.stop()
            raise
        self.tasks.spawn(self._run_parts(), "node parts")
        self.ready = True
        log.info("node %s serving on %s", self.node_id, self.url)
        if self.open_mode is not None:
            (log.info if is_loopback(self.settings.host) else log.warning)("%s", self.open_mode)
        else:
            algorithms = " or ".join(self.keys.algorithms()) if self.keys else ""
            log.info("hello needs a token signed with %s", algorithms)

    async def _run_parts(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.rooms.run())
            tg.create_task(self.fanout.run())
            if self.ingest is not None:
                tg.create_task(self.ingest.run())

    async def stop(self) -> None:
        """Stop accepting, tell clients, close them (within ``shutdown_grace``),
        end every task of the node, hand rooms back."""
        self.ready = False
        if self._server is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_grace
        server, self._server = self._server, None
        server.close(close_connections=False)  # stop accepting
        await self.gateway.tell_all(Status("shutting_down", "the server is shutting down"))
        await self._close_clients(deadline)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_MARGIN):
                await server.wait_closed()  # the handlers record their clients leaving
        if self.ingest is not None:
            await self.ingest.close()
            await self.ingest.drain_cues(max(0.0, min(1.0, deadline - loop.time())))
        await self.tasks.stop()
        await self.rooms.release_all()
        await self.backend.close()
        if self.broker is not None:
            await self.broker.stop()
        log.info("node %s stopped", self.node_id)

    async def _close_clients(self, deadline: float) -> None:
        """Close every connection with 1001; cut off whoever is not done by ``deadline``."""
        conns = [session.conn for session in self.gateway.sessions]
        if not conns:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await asyncio.gather(
                    *(conn.close(1001, "server shutting down") for conn in conns),
                    return_exceptions=True,
                )
        late = [conn for conn in conns if conn.state is not State.CLOSED]
        if late:
            log.info("cutting off %d client(s) that did not close in time", len(late))
        for conn in late:
            conn.transport.abort()

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
