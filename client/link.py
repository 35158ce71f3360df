"""Keeping a :class:`~.connection.RoomClient` connected: the reconnect loop.

Every front end (the Textual app, ``--plain``, ``--json``, ``sleepsync
watch``) runs :func:`run_link` and listens: it gets each server message and
each change of the connection's state (:class:`LinkState`), and decides
how to show them (the TUI in its header, ``--json`` as one line per
attempt, as documented).

The rules, in one place:

- The **first** connection must be made within ``connect_within`` seconds
  (and within ``give_up_after``): otherwise the state is ``unreachable`` and
  the loop ends with exit status 1. A person at a terminal learns at once
  that the URL is wrong instead of watching retries.
- **Later** losses are retried with capped exponential backoff and jitter,
  on the next node when several were given (the resume point carries
  over); after ``give_up_after`` seconds of failing, ``unreachable``, 1.
- A refusal for good (bad name, full room, wrong version) is ``refused``, 2.
- A gap in the event history reconnects at once and resumes.
- A node announcing ``shutting_down`` is left for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Literal, Protocol

from websockets.exceptions import ConnectionClosed

from sleepsync.protocol.backoff import Backoff
from sleepsync.protocol.messages import ServerMessage, Status, TemplateFormat

from .connection import ClientError, RoomClient, SeqGap

__all__ = [
    "CONNECT_WITHIN",
    "ClientLink",
    "LinkListener",
    "LinkState",
    "RoomLink",
    "StateKind",
    "run_link",
]

#: Seconds the first connection may take before the client gives up.
CONNECT_WITHIN = 5.0

StateKind = Literal[
    "connecting", "connected", "disconnected", "reconnecting", "gap", "unreachable", "refused"
]


@dataclass(frozen=True, slots=True)
class LinkState:
    """Where the connection stands."""

    kind: StateKind
    #: The node tried or connected to.
    url: str
    #: Why (the error), for disconnected, reconnecting, gap, unreachable, refused.
    detail: str = ""
    #: Seconds until the next attempt (reconnecting).
    delay: float = 0.0
    #: Has this client ever been connected?
    ever_connected: bool = False


class LinkListener(Protocol):
    def on_message(self, msg: ServerMessage) -> None: ...

    def on_state(self, state: LinkState) -> None: ...


async def run_link(
    client: RoomClient,
    listener: LinkListener,
    *,
    connect_within: float = CONNECT_WITHIN,
    give_up_after: float = 60.0,
    backoff: Backoff | None = None,
) -> int:
    """Keep ``client`` connected until refused or unreachable; returns the exit status.

    Cancel the task to stop it (the caller closes the client).
    """
    backoff = backoff or Backoff()
    loop = asyncio.get_running_loop()
    first_deadline = loop.time() + min(connect_within, give_up_after)
    failing_since: float | None = None
    ever = False
    while True:
        detail = "connection closed"
        listener.on_state(LinkState("connecting", client.url, ever_connected=ever))
        try:
            await client.open()
            failing_since = None
            ever = True
            listener.on_state(LinkState("connected", client.url, ever_connected=True))
            async for msg in client.messages():
                backoff.reset()
                listener.on_message(msg)
                if isinstance(msg, Status) and msg.state == "shutting_down":
                    detail = f"node shutting down: {msg.message}"
                    break
            listener.on_state(LinkState("disconnected", client.url, detail, ever_connected=True))
        except ClientError as exc:
            listener.on_state(LinkState("refused", client.url, str(exc), ever_connected=ever))
            return 2
        except SeqGap as exc:
            listener.on_state(LinkState("gap", client.url, str(exc), ever_connected=ever))
        except (ConnectionError, ConnectionClosed) as exc:
            detail = str(exc) or type(exc).__name__
            now = loop.time()
            failing_since = failing_since if failing_since is not None else now
            late = now - failing_since >= give_up_after if ever else now >= first_deadline
            if late:
                listener.on_state(LinkState("unreachable", client.url, detail, ever_connected=ever))
                return 1
        with contextlib.suppress(Exception):
            if client.conn is not None:
                await client.conn.close()
        delay = backoff.next_delay()
        if not ever:
            # Never past the first-connection deadline: say so on time.
            delay = max(0.05, min(delay, first_deadline - loop.time()))
        listener.on_state(
            LinkState("reconnecting", client.url, detail, round(delay, 2), ever_connected=ever)
        )
        await asyncio.sleep(delay)


class RoomLink(Protocol):
    """One room's connection as a screen uses it (a real one, or a script in tests)."""

    room: str

    async def run(self, listener: LinkListener) -> int:
        """Deliver messages and states until the link ends; returns the exit status."""
        ...

    async def say(self, text: str) -> None: ...

    async def list_rooms(self) -> None: ...

    async def upload_template(self, fmt: TemplateFormat, text: str) -> None: ...

    async def close(self) -> None: ...


class ClientLink:
    """A :class:`RoomLink` over a real :class:`RoomClient` and :func:`run_link`."""

    def __init__(
        self,
        client: RoomClient,
        *,
        connect_within: float = CONNECT_WITHIN,
        give_up_after: float = 60.0,
    ) -> None:
        self.client = client
        self.room = client.room
        self.connect_within = connect_within
        self.give_up_after = give_up_after

    async def run(self, listener: LinkListener) -> int:
        return await run_link(
            self.client,
            listener,
            connect_within=self.connect_within,
            give_up_after=self.give_up_after,
        )

    async def say(self, text: str) -> None:
        await self.client.say(text)

    async def list_rooms(self) -> None:
        await self.client.list_rooms()

    async def upload_template(self, fmt: TemplateFormat, text: str) -> None:
        await self.client.upload_template(fmt, text)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()
