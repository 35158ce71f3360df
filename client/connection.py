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

**Failover.** A client may be given several node URLs (a list, or one
comma-separated string). After a connection is lost, or an attempt fails,
the next :meth:`RoomClient.open` tries the next URL in turn; the resume
point (epoch, seq) carries over, so the new node replays what was missed.
Every URL is checked when the client is made: a wrong scheme raises
``ValueError`` at once rather than failing on every attempt.

A ``wss://`` URL connects over TLS and checks the server's certificate and
name, against the system's CAs or the CA file given to
:func:`websocket_tls` (``--ca-file``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.uri import parse_uri

from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.errors import RemoteError, SleepSyncError
from sleepsync.protocol.messages import (
    Hello,
    ListRooms,
    Message,
    ResumePoint,
    Role,
    RoomInfo,
    Rooms,
    ServerMessage,
    TemplateFormat,
    UploadTemplate,
    Welcome,
)
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

__all__ = [
    "ClientError",
    "RoomClient",
    "SeqGap",
    "fetch_rooms",
    "server_urls",
    "websocket_tls",
]


def server_urls(urls: str | Sequence[str]) -> list[str]:
    """Node URLs from ``--server`` values (each may be a comma list), checked.

    Raises ``ValueError`` with a one-line reason for an empty list or a URL
    that is not ``ws://`` or ``wss://``.
    """
    values = [urls] if isinstance(urls, str) else list(urls)
    out = [u.strip() for value in values for u in value.split(",") if u.strip()]
    if not out:
        raise ValueError("no server URL given")
    for url in out:
        if not url.lower().startswith(("ws://", "wss://")):
            raise ValueError(f"server URL {url!r} must start with ws:// or wss://")
        try:
            parse_uri(url)
        except InvalidURI as exc:
            raise ValueError(f"server URL {url!r} is not valid: {exc}") from exc
    return out


class ClientError(SleepSyncError, peer=False):
    """The server refused us for good (bad name, full room, wrong version...)."""

    code = "client"


class SeqGap(SleepSyncError, peer=False):
    """An event arrived whose seq does not follow the last one."""

    code = "gap"


def websocket_tls(url: str | Sequence[str], ca_pem: str | None = None) -> ssl.SSLContext | None:
    """The TLS context for ``wss://`` URLs (None when every URL is ``ws://``).

    ``url`` is one URL or the failover list (:func:`server_urls`).
    ``ca_pem`` is the text of a CA file (PEM) that signed the servers'
    certificates; without it the system's CAs are trusted. Raises ValueError
    with a sentence for a CA that is no PEM certificate, or for a CA given
    with only ``ws://`` URLs (it would silently do nothing).
    """
    urls = server_urls(url)
    if not any(u.lower().startswith("wss://") for u in urls):
        if ca_pem is not None:
            raise ValueError(f"a CA file needs a wss:// server URL, got {', '.join(urls)}")
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
        url: str | Sequence[str],
        room: str,
        name: str,
        *,
        role: Role = "dreamer",
        max_size: int = 1 << 20,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = tls
        #: The nodes to try, in turn (see *Failover* above).
        self.urls = server_urls(url)
        self._current = 0
        #: Try the next URL on the next open (the last attempt failed or was lost).
        self._move_on = False
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
    def url(self) -> str:
        """The node this client is connected to, or will try next."""
        return self.urls[self._current]

    @url.setter
    def url(self, value: str) -> None:
        """Pin the next :meth:`open` to ``value`` (one of :attr:`urls`, or a new one)."""
        (checked,) = server_urls(value)
        if checked not in self.urls:
            self.urls.append(checked)
        self._current = self.urls.index(checked)
        self._move_on = False

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
        """Connect, say hello and join (resuming when a position is known).

        After a failed attempt or a lost connection this tries the next URL.
        """
        self.session.disconnected()
        if self._move_on:
            self._current = (self._current + 1) % len(self.urls)
        self._move_on = True  # until this connection ends politely in close()
        # TLS settings go with wss:// URLs only (websockets refuses them for ws://).
        secure = self.tls is not None and self.url.lower().startswith("wss://")
        extra: dict[str, Any] = {"ssl": self.tls} if secure else {}
        try:
            self.conn = await connect(
                self.url, max_size=self.max_size, compression=None, open_timeout=5, **extra
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ConnectionError(_explain(self.url, exc)) from exc
        await self._send(self.session.connect())

    async def close(self) -> None:
        """Leave politely; the next :meth:`open` returns to the same node and resumes."""
        self._move_on = False
        if self.conn is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._send(self.session.hang_up())
            self.session.disconnected()
            await self.conn.close()

    async def say(self, text: str) -> None:
        if self.conn is None:
            raise ConnectionError("not connected")
        await self._send(self.session.say(self.room, text))

    async def list_rooms(self) -> None:
        """Ask for the rooms (answered by a ``rooms`` message)."""
        if self.conn is None:
            raise ConnectionError("not connected")
        await self._send([Send(ListRooms())])

    async def upload_template(self, fmt: TemplateFormat, text: str) -> None:
        """Upload a narrative template (validate it locally first)."""
        if self.conn is None:
            raise ConnectionError("not connected")
        await self._send([Send(UploadTemplate(self.room, fmt, text))])

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


async def fetch_rooms(
    urls: Sequence[str],
    name: str,
    *,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
    token: str | None = None,
) -> list[RoomInfo]:
    """The rooms of a deployment, from the first node in ``urls`` that answers.

    Raises ``ConnectionError`` when none does within ``timeout`` seconds each.
    """
    limits = Limits(max_frame=1 << 20, max_array=8192, max_map=1024)
    last = "no server URL"
    for url in urls:
        secure = tls is not None and url.lower().startswith("wss://")
        extra: dict[str, Any] = {"ssl": tls} if secure else {}
        try:
            async with (
                asyncio.timeout(timeout),
                connect(
                    url, max_size=1 << 20, compression=None, open_timeout=timeout, **extra
                ) as conn,
            ):
                await conn.send(encode(Hello(name, token=token)))
                await conn.send(encode(ListRooms()))
                async for raw in conn:
                    if isinstance(raw, bytes):
                        with contextlib.suppress(RemoteError):
                            msg = decode(raw, limits)
                            if isinstance(msg, Rooms):
                                return list(msg.rooms)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ConnectionClosed) as exc:
            last = f"cannot connect to {url}: {exc}"
    raise ConnectionError(last)
