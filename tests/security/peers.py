"""A raw websocket peer for attacks: sends any message, keeps every frame it gets."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.errors import RemoteError
from sleepsync.protocol.identity import Keys, TokenRole, mint
from sleepsync.protocol.messages import Error, Event, Message, Snapshot
from sleepsync.protocol.wire import Limits
from sleepsync.server.node import Node

from nodes import wait_for

T = TypeVar("T")
LIMITS = Limits(max_frame=1 << 22, max_str=1 << 20, max_array=1 << 16)


@dataclass(frozen=True)
class Issuer:
    """The operator's side: the secret file the servers read, and tokens minted with it."""

    secret_file: Path
    keys: Keys

    def token(
        self,
        name: str,
        rooms: str = "*",
        role: TokenRole = "dreamer",
        *,
        ttl: float = 600.0,
        now: float | None = None,
    ) -> str:
        issued = time.time() if now is None else now
        return mint(self.keys, subject=name, rooms=rooms, role=role, now=issued, ttl=ttl)


class Peer:
    """One websocket connection driven by hand (no ClientSession: an attacker's)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: ClientConnection | None = None
        self.messages: list[Message] = []
        #: The close code the server sent (None while open).
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Peer:
        self.ws = await connect(self.url, compression=None, max_size=1 << 22, open_timeout=10)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                if isinstance(raw, bytes):
                    with contextlib.suppress(RemoteError):
                        self.messages.append(decode(raw, LIMITS))
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    async def send(self, *messages: Message) -> None:
        assert self.ws is not None
        for message in messages:
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(encode(message))

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    def of_type(self, cls: type[T]) -> list[T]:
        return [m for m in self.messages if isinstance(m, cls)]

    def errors(self, code: str | None = None) -> list[Error]:
        return [e for e in self.of_type(Error) if code is None or e.code == code]

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [i for e in self.of_type(Event) for i in e.items if i.get("kind") == kind]

    def dreamer_states(self) -> int:
        """How many per-dreamer (valence, arousal) readings this peer received."""
        rows = sum(len(item["dreamers"]) for item in self.items("mood"))
        for snap in self.of_type(Snapshot):
            dream = snap.state.get("dream")
            if isinstance(dream, dict) and isinstance(dream.get("dreamers"), list):
                rows += len(dream["dreamers"])
        return rows

    async def until(self, predicate: Any, what: str, timeout: float = 10.0) -> None:
        await wait_for(predicate, timeout, what)


def metric(node: Node, name: str, **labels: str) -> float:
    return node.metrics.value(f"sleepsync_{name}", **labels)
