"""``sleepsync forget ROOM``: ask a server to erase everything stored about a room.

One short connection: hello with an operator's token, ``forget``, then the
server's ``forgotten`` (the room's owner erased it) or an ``error``
(``forbidden`` for a token that is not an operator's or does not cover the
room, ``unauthorized`` for a bad one). The rules are the
:class:`~sleepsync.protocol.session.ClientSession`'s; this only moves bytes.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.errors import RemoteError
from sleepsync.protocol.messages import Error, Forgotten
from sleepsync.protocol.session import ClientSession, Deliver, Send

from .connection import ClientError

__all__ = ["forget_room"]


async def forget_room(
    url: str,
    room: str,
    name: str,
    token: str | None,
    timeout: float,
    *,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Erase ``room`` through the server at ``url`` (``tls``: for a ``wss://`` one,
    see :func:`~.connection.websocket_tls`).

    Raises ClientError with the server's ``code: message`` when it refused,
    ConnectionError when it could not be reached or went away, TimeoutError
    after ``timeout`` seconds.
    """
    session = ClientSession(name, token=token)
    async with asyncio.timeout(timeout):
        try:
            extra: dict[str, Any] = {} if tls is None else {"ssl": tls}
            conn = await connect(url, compression=None, open_timeout=timeout, **extra)
        except (OSError, InvalidHandshake, InvalidURI) as exc:
            raise ConnectionError(f"cannot connect to {url}: {exc}") from exc
        async with conn:
            try:
                for action in [*session.connect(), *session.forget(room)]:
                    if isinstance(action, Send):
                        await conn.send(encode(action.message))
                async for raw in conn:
                    if isinstance(raw, str):
                        continue
                    try:
                        frame = decode(raw)
                    except RemoteError:
                        continue
                    for action in session.receive(frame):
                        if not isinstance(action, Deliver):
                            continue
                        message = action.message
                        if isinstance(message, Forgotten) and message.room == room:
                            return
                        if isinstance(message, Error):
                            raise ClientError(f"{message.code}: {message.message}")
            except ConnectionClosed as exc:
                raise ConnectionError(f"the server closed the connection: {exc}") from exc
    raise ConnectionError("the server closed the connection without an answer")
