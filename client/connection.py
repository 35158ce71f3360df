"""A websocket connection to one room, with resume and reconnect.

:class:`RoomClient` says hello, joins one room and yields the server's
messages. It remembers the (epoch, seq) of the last event it saw; after a
lost connection, :meth:`RoomClient.session` reconnects with capped
exponential backoff and jitter and asks to resume from there, so the server
replays what was missed or sends a resync. The seq of every event is checked:
a gap is never silent (see :class:`SeqGap`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.errors import RemoteError, SleepSyncError
from sleepsync.protocol.messages import (
    Error,
    Event,
    Hello,
    Join,
    Leave,
    ResumePoint,
    Role,
    Say,
    ServerMessage,
    Snapshot,
    Welcome,
)
from sleepsync.protocol.wire import Limits

__all__ = ["ClientError", "RoomClient", "SeqGap"]


class ClientError(SleepSyncError):
    """The server refused us for good (bad name, full room, wrong version...)."""

    code = "client"


class SeqGap(SleepSyncError):
    """An event arrived whose seq does not follow the last one."""

    code = "gap"


#: Errors after which reconnecting cannot help.
FINAL_CODES = frozenset({"invalid", "version", "room_full", "too_many_rooms", "out_of_order"})


class RoomClient:
    """One user's connection to one room."""

    def __init__(
        self,
        url: str,
        room: str,
        name: str,
        *,
        role: Role = "dreamer",
        max_size: int = 1 << 20,
    ) -> None:
        self.url = url
        self.room = room
        self.name = name
        self.role = role
        self.max_size = max_size
        self.position: ResumePoint | None = None
        self.conn: ClientConnection | None = None
        self.welcome: Welcome | None = None
        self.gaps = 0
        self.resyncs = 0

    async def open(self) -> None:
        """Connect, say hello and join (resuming when a position is known)."""
        try:
            self.conn = await connect(
                self.url, max_size=self.max_size, compression=None, open_timeout=5
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to {self.url}: {exc}") from exc
        await self.conn.send(encode(Hello(self.name)))
        await self.conn.send(encode(Join(self.room, self.role, self.position)))

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(ConnectionClosed):
                await self.conn.send(encode(Leave(self.room)))
            await self.conn.close()

    async def say(self, text: str) -> None:
        if self.conn is None:
            raise ConnectionError("not connected")
        await self.conn.send(encode(Say(self.room, text)))

    async def messages(self) -> AsyncIterator[ServerMessage]:
        """Yield server messages until the connection ends; track seq and epoch."""
        assert self.conn is not None
        async for raw in self.conn:
            if isinstance(raw, str):
                continue
            try:
                msg = decode(raw, _CLIENT_LIMITS)
            except RemoteError:
                continue  # a newer server may send what this client does not know
            self._track(msg)
            yield msg  # type: ignore[misc]

    def _track(self, msg: object) -> None:
        if isinstance(msg, Welcome):
            self.welcome = msg
        elif isinstance(msg, Snapshot) and msg.room == self.room:
            self.position = ResumePoint(msg.epoch, msg.seq)
        elif isinstance(msg, Event) and msg.room == self.room:
            if self.position is not None and msg.seq != self.position.seq + 1:
                self.gaps += 1
                raise SeqGap(f"event {msg.seq} follows {self.position.seq}")
            self.position = ResumePoint(msg.epoch, msg.seq)
        elif isinstance(msg, Error) and msg.code in FINAL_CODES and msg.ref in ("hello", "join"):
            raise ClientError(f"{msg.code}: {msg.message}")


#: What a client accepts from a server: snapshots can be larger than inbound frames.
_CLIENT_LIMITS = Limits(max_frame=1 << 20, max_str=64 * 1024, max_array=8192, max_map=1024)
