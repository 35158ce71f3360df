"""Fetching a room's retained history as a dream journal, over the websocket protocol.

One short connection: ``hello`` (with the token, if any), ``history`` for the
room, then the ``journal`` parts in order until the one marked ``last``. The
bytes are the journal file as the server wrote it; this module does not read
them (the server package does). Any ``error`` the server answers with, a
part out of order, or a connection that fails becomes a :class:`HistoryError`.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidURI, WebSocketException

from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.errors import RemoteError, SleepSyncError
from sleepsync.protocol.messages import (
    MAX_JOURNAL_PARTS,
    Error,
    Hello,
    History,
    Journal,
    Welcome,
)
from sleepsync.protocol.wire import MAX_FRAME, Limits

__all__ = ["HistoryError", "fetch_history"]

LIMITS = Limits(max_frame=MAX_FRAME)


class HistoryError(SleepSyncError, peer=False):
    """The history could not be fetched; ``code`` is the server's error code, if any."""

    code = "history"

    def __init__(self, message: str, server_code: str | None = None) -> None:
        super().__init__(message)
        self.server_code = server_code


async def fetch_history(
    url: str,
    room: str,
    *,
    name: str = "journal",
    token: str | None = None,
    timeout: float = 120.0,
    tls: ssl.SSLContext | None = None,
) -> bytes:
    """The journal bytes of ``room``'s retained history (raises :class:`HistoryError`).

    ``token`` is hello's signed token (its subject must be ``name``; it must
    cover ``room``); ``tls`` the context of a ``wss://`` URL
    (:func:`~.connection.websocket_tls`)."""
    extra: dict[str, Any] = {} if tls is None else {"ssl": tls}
    try:
        async with asyncio.timeout(timeout):
            async with connect(url, max_size=MAX_FRAME, compression=None, **extra) as ws:
                await ws.send(encode(Hello(name, token=token)))
                _expect_welcome(decode(_binary(await ws.recv()), LIMITS))
                await ws.send(encode(History(room)))
                parts: list[bytes] = []
                while True:
                    msg = decode(_binary(await ws.recv()), LIMITS)
                    if isinstance(msg, Error):
                        raise HistoryError(f"{msg.code}: {msg.message}", msg.code)
                    if not isinstance(msg, Journal) or msg.room != room:
                        continue  # a status, say: not for us
                    if msg.part != len(parts) or len(parts) >= MAX_JOURNAL_PARTS:
                        raise HistoryError(f"journal part {msg.part} came out of order")
                    parts.append(msg.data)
                    if msg.last:
                        return b"".join(parts)
    except TimeoutError:
        raise HistoryError(f"no complete answer from {url} within {timeout:g} s") from None
    except RemoteError as exc:
        raise HistoryError(f"the server sent something unreadable: {exc.message}") from exc
    except (OSError, InvalidURI, WebSocketException) as exc:
        raise HistoryError(f"cannot fetch the history from {url}: {exc}") from exc


def _binary(frame: str | bytes) -> bytes:
    if isinstance(frame, str):
        raise HistoryError("the server sent a text frame")
    return frame


def _expect_welcome(msg: object) -> None:
    if isinstance(msg, Error):
        raise HistoryError(f"{msg.code}: {msg.message}", msg.code)
    if not isinstance(msg, Welcome):
        raise HistoryError("the server did not answer hello with welcome")
