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

A ``wss://`` URL connects over TLS and checks the server's certificate and
name, against the system's CAs or the CA file given to
:func:`websocket_tls` (``--ca-file``).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

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

__all__ = ["ClientError", "RoomClient", "SeqGap", "websocket_tls"]


class ClientError(SleepSyncError, peer=False):
    """The server refused us for good (bad name, full room, wrong version...)."""

    code = "client"


class SeqGap(SleepSyncError, peer=False):
    """An event arrived whose seq does not follow the last one."""

    code = "gap"


def websocket_tls(url: str, ca_pem: str | None = None) -> ssl.SSLContext | None:
    """The TLS context of a ``wss://`` URL (None for ``ws://``).

    ``ca_pem`` is the text of a CA file (PEM) that signed the server's
    certificate; without it the system's CAs are trusted. Raises ValueError
    with a sentence for a CA that is no PEM certificate, or for a CA given
    with a ``ws://`` URL (it would silently do nothing).
    """
    if not url.startswith("wss://"):
        if ca_pem is not None:
            raise ValueError(f"a CA file needs a wss:// server URL, got {url}")
        return None
    context = ssl.create_default_context()
    if ca_pem is not None:
        try:
            context.load_verify_locations(cadata=ca_pem)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(f"the CA file holds no usable PEM certificate: {exc}") from None
    return context


def _explain(url: str, exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"the TLS certificate of {url} is not trusted ({text}); pass the CA file that signed it"
        )
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return f"{url} does not speak TLS ({text}); use a ws:// URL"
    return f"cannot connect to {url}: {text}"


class RoomClient:
    """One user's connection to one room.

    ``token`` is the signed token hello carries (``sleepsync token``), for a
    server that requires one; its subject must be ``name``. ``tls`` is the
    context of a ``wss://`` URL (:func:`websocket_tls`; None: the system's CAs).
    """

    def __init__(
        self,
        url: str,
        room: str,
        name: str,
        *,
        role: Role = "dreamer",
        max_size: int = 1 << 20,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        self.tls = tls
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

    @position.setter
    def position(self, point: ResumePoint | None) -> None:
        self.session.resume_from(self.room, point)

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
        extra: dict[str, Any] = {} if self.tls is None else {"ssl": self.tls}
        try:
            self.conn = await connect(
                self.url, max_size=self.max_size, compression=None, open_timeout=5, **extra
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectionError(_explain(self.url, exc)) from exc
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
