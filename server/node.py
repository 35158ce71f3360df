"""A server node: the websocket gateway, rooms, fan-out and HTTP endpoints.

``Node`` composes the parts around one backend and runs them under one
TaskGroup. ``GET /healthz`` says the process is alive, ``GET /readyz`` that
it serves (503 while starting or shutting down), ``GET /metrics`` gives the
Prometheus counters; all on the websocket port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from sleepsync.protocol.messages import Status

from .backend.base import Backend
from .backend.memory import MemoryBackend
from .config import Settings
from .dream import engine_hooks
from .fanout import Fanout
from .gateway import Gateway
from .metrics import Metrics
from .room_state import EngineHooks
from .rooms import RoomManager

__all__ = ["Node"]

log = logging.getLogger("sleepsync.node")


class Node:
    """One SleepSync server process (or one of several sharing a backend)."""

    def __init__(
        self,
        settings: Settings,
        *,
        backend: Backend | None = None,
        hooks: EngineHooks | None = None,
        engine: bool = True,
    ) -> None:
        """``engine=False`` runs rooms without dream dynamics (membership and story only)."""
        self.settings = settings
        if hooks is None and engine:
            hooks = engine_hooks(settings)
        self.node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
        self.metrics = Metrics()
        self.backend: Backend = backend or MemoryBackend(retention=settings.event_retention)
        self.rooms = RoomManager(self.backend, settings, self.node_id, self.metrics, hooks)
        self.fanout = Fanout(
            self.backend, self.metrics, outbound_buffer_bytes=settings.outbound_buffer_bytes
        )
        self.gateway = Gateway(
            settings=settings,
            node_id=self.node_id,
            backend=self.backend,
            rooms=self.rooms,
            fanout=self.fanout,
            metrics=self.metrics,
            hooks=hooks,
        )
        self.ready = False
        self._server: Server | None = None
        self._tasks: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start the node first"
        sock = next(iter(self._server.sockets))
        return int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{self.settings.host}:{self.port}"

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if path == "/readyz":
            if self.ready:
                return connection.respond(HTTPStatus.OK, "ready\n")
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "not ready\n")
        if path == "/metrics":
            body = self.metrics.render()
            headers = Headers(
                [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
            )
            return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, body)
        return None

    async def start(self) -> None:
        await self.backend.start()
        s = self.settings
        self._server = await serve(
            self.gateway.handle,
            s.host,
            s.port,
            process_request=self._http,
            max_size=s.max_frame_bytes,
            max_queue=16,
            compression=None,
            close_timeout=s.close_timeout,
            ping_interval=20,
            ping_timeout=20,
        )
        self._tasks = asyncio.create_task(self._run_parts())
        self.ready = True
        log.info("node %s serving on %s", self.node_id, self.url)

    async def _run_parts(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.rooms.run())
            tg.create_task(self.fanout.run())

    async def stop(self) -> None:
        """Stop accepting, tell clients, close them cleanly, hand rooms back."""
        self.ready = False
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close(close_connections=False)  # stop accepting
        await self.gateway.tell_all(Status("shutting_down", "the server is shutting down"))
        closing = [
            session.conn.close(1001, "server shutting down") for session in self.gateway.sessions
        ]
        if closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.shutdown_grace):
                    await asyncio.gather(*closing, return_exceptions=True)
        await server.wait_closed()
        if self._tasks is not None:
            self._tasks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tasks
        await self.rooms.release_all()
        await self.backend.close()
        log.info("node %s stopped", self.node_id)

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
