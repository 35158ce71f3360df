"""Helpers to run real server nodes and real websocket clients in tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sleepsync.client.connection import RoomClient
from sleepsync.protocol.messages import Event, ServerMessage
from sleepsync.server.config import Settings
from sleepsync.server.node import Node


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {"port": 0, "tick_hz": 20.0, "node_id": "test-node"}
    base.update(overrides)
    return Settings(**base)


@contextlib.asynccontextmanager
async def running_node(**overrides: Any) -> AsyncIterator[Node]:
    """A started node; no MQTT unless ``mqtt=True`` is passed."""
    engine = overrides.pop("engine", True)
    mqtt = overrides.pop("mqtt", False)
    extra = {k: overrides.pop(k) for k in ("backend", "hooks") if k in overrides}
    node = Node(test_settings(**overrides), engine=engine, mqtt=mqtt, **extra)
    await node.start()
    try:
        yield node
    finally:
        await node.stop()


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


class Recorder:
    """Reads a RoomClient's messages in the background and keeps them."""

    def __init__(self, client: RoomClient) -> None:
        self.client = client
        self.messages: list[ServerMessage] = []
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Recorder:
        await self.client.open()
        self.task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        with contextlib.suppress(Exception):
            await self.client.close()

    async def _read(self) -> None:
        try:
            async for msg in self.client.messages():
                self.messages.append(msg)
        except Exception as exc:  # kept for the test to inspect
            self.error = exc

    def events(self) -> list[Event]:
        return [m for m in self.messages if isinstance(m, Event)]

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [
            {**item, "seq": e.seq}
            for e in self.events()
            for item in e.items
            if item["kind"] == kind
        ]

    def of_type(self, cls: type[Any]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, cls)]


class ManualClock:
    """A monotonic clock that moves only when told: ``clock()`` and ``advance(s)``.

    Injected into a MemoryBackend and the room managers sharing it, it lets a
    test expire leases and heartbeats without sleeping through them.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class OffsetClock:
    """The real monotonic clock plus an offset a test can move forward: the nodes'
    loops keep running in real time, and ``advance`` makes leases expire at once."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
