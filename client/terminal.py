"""``sleepsync dream``: the plain terminal client.

It joins one room, prints the room's events (readable lines, or one JSON
object per line with ``--json``), and sends each line read from stdin as a
story line. It works with stdin and stdout as pipes. On a lost connection it
reconnects with backoff and resumes where it left off. A dreamer exits when
stdin ends, once its own lines have come back as ``said`` events (or after
``EOF_LINGER`` seconds); an observer runs until Ctrl-C or ``--duration``.
Exit status: 0 on a clean end, 1 when the server stayed unreachable, 2 when
the server refused the session for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from websockets.exceptions import ConnectionClosed

from sleepsync.protocol.backoff import Backoff
from sleepsync.protocol.errors import InvalidMessage
from sleepsync.protocol.events import Said, items_of_type
from sleepsync.protocol.messages import Event, Role, Say, Status

from .connection import ClientError, RoomClient, SeqGap, websocket_tls
from .render import JsonRenderer, TextRenderer

__all__ = ["TerminalOptions", "run_terminal"]

EOF_LINGER = 5.0


@dataclass(frozen=True, slots=True)
class TerminalOptions:
    url: str
    room: str
    name: str
    role: Role = "dreamer"
    json: bool = False
    duration: float | None = None
    give_up_after: float = 60.0
    #: The signed token hello carries (None: the server runs open).
    token: str | None = field(default=None, repr=False)
    #: The text of ``--ca-file`` (PEM), for a ``wss://`` server.
    ca_pem: str | None = None


def _stdin_lines(stream: IO[str], loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Read ``stream`` in a daemon thread (works for pipes, files and ttys)."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        try:
            for line in stream:
                loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        with contextlib.suppress(RuntimeError):  # the loop may be gone at exit
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    return queue


class _Terminal:
    def __init__(self, opts: TerminalOptions, out: IO[str]) -> None:
        self.opts = opts
        self.out = out
        self.renderer: JsonRenderer | TextRenderer = JsonRenderer() if opts.json else TextRenderer()
        tls = websocket_tls(opts.url, opts.ca_pem)
        self.client = RoomClient(
            opts.url, opts.room, opts.name, role=opts.role, token=opts.token, tls=tls
        )
        self.unechoed: Counter[str] = Counter()
        self.eof = asyncio.Event()
        self.connected = asyncio.Event()
        self.done = asyncio.Event()
        self.last_error = "connection closed"

    def emit(self, lines: list[str]) -> None:
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def note(self, kind: str, **fields: object) -> None:
        self.emit([self.renderer.note(kind, **fields)])

    async def receive(self) -> int:
        backoff = Backoff()
        loop = asyncio.get_running_loop()
        failing_since: float | None = None
        while True:
            try:
                await self.client.open()
                failing_since = None
                self.connected.set()
                async for msg in self.client.messages():
                    backoff.reset()
                    self.emit(self.renderer.render(msg))
                    if isinstance(msg, Event):
                        self._echoed(msg)
                    if isinstance(msg, Status) and msg.state == "shutting_down":
                        break
                self.note("disconnected", room=self.opts.room)
            except ClientError as exc:
                self.note("refused", reason=str(exc))
                return 2
            except SeqGap as exc:
                self.note("gap", detail=str(exc))
            except (ConnectionError, ConnectionClosed) as exc:
                self.last_error = str(exc)
                now = loop.time()
                failing_since = failing_since or now
                if now - failing_since >= self.opts.give_up_after:
                    self.note("unreachable", url=self.opts.url, detail=str(exc))
                    return 1
            finally:
                self.connected.clear()
            with contextlib.suppress(Exception):
                if self.client.conn is not None:
                    await self.client.conn.close()
            delay = backoff.next_delay()
            self.note("reconnecting", seconds=round(delay, 2), reason=self.last_error)
            await asyncio.sleep(delay)

    def _echoed(self, event: Event) -> None:
        for said in items_of_type(event, Said):
            text = said.text
            if said.name == self.opts.name and self.unechoed[text] > 0:
                self.unechoed[text] -= 1
                if self.unechoed[text] == 0:
                    del self.unechoed[text]
        if self.eof.is_set() and not self.unechoed:
            self.done.set()

    async def linger(self) -> None:
        """Ends when stdin has ended and our lines came back (or after EOF_LINGER)."""
        await self.eof.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), EOF_LINGER)

    async def send_lines(self, lines: asyncio.Queue[str | None]) -> None:
        while True:
            line = await lines.get()
            if line is None:
                self.eof.set()
                if not self.unechoed:
                    self.done.set()
                return
            text = line.strip()
            if not text:
                continue
            try:
                Say(self.opts.room, text)
            except InvalidMessage as exc:
                self.note("not_sent", reason=exc.reason)
                continue
            while True:
                await self.connected.wait()
                try:
                    self.unechoed[text] += 1
                    await self.client.say(text)
                    break
                except (ConnectionError, ConnectionClosed):
                    self.unechoed[text] -= 1
                    await asyncio.sleep(0.1)


async def run_terminal(
    opts: TerminalOptions, *, stdin: IO[str] | None = None, out: IO[str] | None = None
) -> int:
    """Run the client until it ends; returns the exit status."""
    term = _Terminal(opts, out or sys.stdout)
    receiver = asyncio.create_task(term.receive())
    enders: set[asyncio.Task[Any]] = {receiver}
    helpers: list[asyncio.Task[Any]] = []
    if opts.role == "dreamer":
        lines = _stdin_lines(stdin or sys.stdin, asyncio.get_running_loop())
        helpers.append(asyncio.create_task(term.send_lines(lines)))
        enders.add(asyncio.create_task(term.linger()))
    if opts.duration is not None:
        enders.add(asyncio.create_task(asyncio.sleep(opts.duration)))
    try:
        finished, _ = await asyncio.wait(enders, return_when=asyncio.FIRST_COMPLETED)
        code: int = receiver.result() if receiver in finished else 0
    finally:
        for task in (*enders, *helpers):
            task.cancel()
        await asyncio.gather(*enders, *helpers, return_exceptions=True)
        with contextlib.suppress(Exception):
            await term.client.close()
    return code
