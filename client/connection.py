"""A websocket connection to one room: a pump around a ClientSession.

:class:`RoomClient` connects, sends what its
:class:`~sleepsync.protocol.session.ClientSession` says (hello, then a join
that resumes from the last event seen) and yields the server messages the
session delivers. The session holds the rules: it checks the seq of every
event (a gap is never silent: :class:`SeqGap`), waits for the snapshot after a
resync, and says which errors end the client for good (:class:`ClientError`)
and which need a new connection (``ConnectionError``). Reconnecting is the
caller's loop, with :class:`~sleepsync.protocol.backoff.Backoff`: calling
:meth:`RoomClient.open` again resumes where the last connection stopped.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.errors import RemoteError, SleepSyncError
from sleepsync.protocol.messages import Message, ResumePoint, Role, ServerMessage, Welcome
from sleepsync.protocol.session import (
    ClientAction,
    ClientSession,
    Deliver,
    Gap,
    GiveUp,
    Reconnect,
    Send,
)
from sleepsync.protocol.wire import Limits

__all__ = ["ClientError", "RoomClient", "SeqGap"]


class ClientError(SleepSyncError, peer=False):
    """The server refused us for good (bad name, full room, wrong version...)."""

    code = "client"


class SeqGap(SleepSyncError, peer=False):
    """An event arrived whose seq does not follow the last one."""

    code = "gap"


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
        token: str | None = None,
    ) -> None:
        """``token``: the signed token hello carries (``sleepsync token``), for a
        server that requires one; its subject must be ``name``."""
        self.url = url
        self.room = room
        self.name = name
        self.role = role
        self.max_size = max_size
        self.session = ClientSession(name, token=token)
        self.session.join(room, role)
        self.conn: ClientConnection | None = None
        # Snapshots can be larger than what a server accepts inbound.
        self.limits = Limits(max_frame=max_size, max_array=8192, max_map=1024)

    @property
    def position(self) -> ResumePoint | None:
        """The (epoch, seq) of the last event seen: where the next open resumes."""
        return self.session.position(self.room)

    @property
    def welcome(self) -> Welcome | None:
        return self.session.welcome

    @property
    def gaps(self) -> int:
        return self.session.gaps

    @property
    def resyncs(self) -> int:
        return self.session.resyncs

    async def open(self) -> None:
        """Connect, say hello and join (resuming when a position is known)."""
        self.session.disconnected()
        try:
            self.conn = await connect(
                self.url, max_size=self.max_size, compression=None, open_timeout=5
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to {self.url}: {exc}") from exc
        await self._send(self.session.connect())

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._send(self.session.hang_up())
            self.session.disconnected()
            await self.conn.close()

    async def say(self, text: str) -> None:
        if self.conn is None:
            raise ConnectionError("not connected")
        await self._send(self.session.say(self.room, text))

    async def messages(self) -> AsyncIterator[ServerMessage]:
        """Yield server messages until the connection ends.

        Raises :class:`SeqGap` when the history breaks (reconnect: the join
        resumes), :class:`ClientError` when the server refused us for good,
        ``ConnectionError`` when the server asks for a new connection.
        """
        assert self.conn is not None
        async for raw in self.conn:
            if isinstance(raw, str):
                continue
            frame: Message | RemoteError
            try:
                frame = decode(raw, self.limits)
            except RemoteError as exc:
                frame = exc
            for action in self.session.receive(frame):
                if isinstance(action, Deliver):
                    yield action.message
                else:
                    await self._act(action)

    async def _act(self, action: ClientAction) -> None:
        if isinstance(action, Gap):
            raise SeqGap(str(action))
        if isinstance(action, GiveUp):
            raise ClientError(action.reason)
        if isinstance(action, Reconnect):
            raise ConnectionError(action.reason)
        await self._send([action])

    async def _send(self, actions: list[ClientAction]) -> None:
        assert self.conn is not None
        for action in actions:
            if isinstance(action, Send):
                await self.conn.send(encode(action.message))
