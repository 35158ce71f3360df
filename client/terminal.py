"""``sleepsync dream`` without a full screen: ``--plain`` sentences or ``--json`` lines.

It joins one room, prints the room (human sentences with ``--plain``, one
JSON object per line with ``--json``) and sends what is typed. It works
with stdin and stdout as pipes. On a terminal, ``--plain`` reads with a
readline prompt that incoming lines do not break, and handles slash
commands itself (:mod:`.commands`); ``--json`` sends every stdin line as a
story line, as documented. The connection is kept by :func:`.link.run_link`
(first connection within a few seconds, then reconnecting and resuming,
over every ``--server`` in turn). A dreamer exits when stdin ends, once its
own story lines have come back as ``said`` events (or after ``EOF_LINGER``
seconds); an observer runs until Ctrl-C or ``--duration``. Exit status: 0 on
a clean end, 1 when the server could not be reached, 2 when it refused the
session for good.
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

from sleepsync.protocol.errors import InvalidMessage
from sleepsync.protocol.events import Said, items_of_type
from sleepsync.protocol.messages import Event, Role, Say, ServerMessage, TemplateFormat

from .commands import Command, Story, execute, parse_line
from .connection import RoomClient, websocket_tls
from .lineinput import TtyPrompt
from .link import CONNECT_WITHIN, LinkState, run_link
from .render import JsonRenderer
from .roomview import RoomView
from .sentences import Sentence, describe, describe_message

__all__ = ["TerminalOptions", "run_terminal"]

EOF_LINGER = 5.0


@dataclass(frozen=True, slots=True)
class TerminalOptions:
    #: One node URL or several (failover, in turn).
    url: str | tuple[str, ...]
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
    connect_within: float = CONNECT_WITHIN
    #: Read stdin with a readline prompt (stdin and stdout are a terminal).
    tty: bool = False


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


class _Plain:
    """Sentences for people: the room's view folded in, one line per thing worth saying."""

    def __init__(self, view: RoomView) -> None:
        self.view = view
        self.lost = False

    def render(self, msg: ServerMessage) -> list[str]:
        items = self.view.apply(msg)
        if isinstance(msg, Event):
            return [str(s) for item in items if (s := describe(item, self.view)) is not None]
        return [str(s) for s in describe_message(msg, self.view)]

    def state(self, state: LinkState) -> list[str]:
        """Connection changes, said once: not a line per attempt."""
        if state.kind == "connected" and self.lost:
            self.lost = False
            return [f"Connected again, to {state.url}."]
        if state.kind in ("disconnected", "gap") and not self.lost:
            self.lost = True
            return [f"Lost the connection ({state.detail}); reconnecting and resuming…"]
        if state.kind == "unreachable":
            return [f"Cannot reach {state.url}: {state.detail}"]
        if state.kind == "refused":
            return [f"The server refused: {state.detail}"]
        return []


class _Terminal:
    def __init__(self, opts: TerminalOptions, out: IO[str]) -> None:
        self.opts = opts
        self.out = out
        tls = websocket_tls(opts.url, opts.ca_pem)
        self.client = RoomClient(
            opts.url, opts.room, opts.name, role=opts.role, token=opts.token, tls=tls
        )
        self.view = RoomView(opts.room, me=opts.name)
        self.json = JsonRenderer() if opts.json else None
        self.plain = _Plain(self.view)
        self.prompt: TtyPrompt | None = TtyPrompt(out=out) if opts.tty else None
        self.unechoed: Counter[str] = Counter()
        self.eof = asyncio.Event()
        self.connected = asyncio.Event()
        self.done = asyncio.Event()
        self.quitting = asyncio.Event()
        self.ready = asyncio.Event()
        self.can_speak = opts.role == "dreamer"

    def emit(self, lines: list[str]) -> None:
        if self.prompt is not None:
            self.prompt.show(lines)
            return
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    # LinkListener
    def on_message(self, msg: ServerMessage) -> None:
        if self.json is not None:
            self.view.apply(msg)
            self.emit(self.json.render(msg))
        else:
            self.emit(self.plain.render(msg))
        if isinstance(msg, Event):
            self._echoed(msg)
        elif self.view.ready:
            self.ready.set()

    def on_state(self, state: LinkState) -> None:
        if state.kind == "connected":
            self.connected.set()
        elif state.kind != "connecting":
            self.connected.clear()
        if self.json is None:
            self.emit(self.plain.state(state))
            return
        j = self.json
        if state.kind == "disconnected":
            self.emit([j.note("disconnected", room=self.opts.room)])
        elif state.kind == "gap":
            self.emit([j.note("gap", detail=state.detail)])
        elif state.kind == "reconnecting":
            self.emit([j.note("reconnecting", seconds=state.delay, reason=state.detail)])
        elif state.kind == "refused":
            self.emit([j.note("refused", reason=state.detail)])
        elif state.kind == "unreachable":
            self.emit([j.note("unreachable", url=state.url, detail=state.detail)])

    async def receive(self) -> int:
        return await run_link(
            self.client,
            self,
            connect_within=self.opts.connect_within,
            give_up_after=self.opts.give_up_after,
        )

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

    async def read_lines(self, lines: asyncio.Queue[str | None]) -> None:
        while True:
            line = await lines.get()
            if line is None:
                self.eof.set()
                if not self.unechoed:
                    self.done.set()
                return
            if self.json is not None:
                await self._json_line(line)
                continue
            entry = parse_line(line)
            if entry is not None:
                await self._run(entry)

    async def _json_line(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        try:
            Say(self.opts.room, text)
        except InvalidMessage as exc:
            self.emit([JsonRenderer().note("not_sent", reason=exc.reason)])
            return
        await self.send_line(text)

    async def _run(self, entry: Command | Story) -> None:
        if not (isinstance(entry, Command) and entry.name in ("help", "quit")):
            await self.ready.wait()  # commands look at the room: wait for its snapshot
        await execute(entry, self)

    # CommandContext
    async def send_line(self, text: str) -> None:
        """Send a line, waiting for a connection; a story line is expected back."""
        story = not text.startswith("/")
        while True:
            await self.connected.wait()
            try:
                if story:
                    self.unechoed[text] += 1
                await self.client.say(text)
                return
            except (ConnectionError, ConnectionClosed):
                if story:
                    self.unechoed[text] -= 1
                await asyncio.sleep(0.1)

    async def list_rooms(self) -> None:
        await self.client.list_rooms()

    async def upload_template(self, fmt: TemplateFormat, text: str) -> None:
        await self.client.upload_template(fmt, text)

    def tell(self, sentence: Sentence) -> None:
        self.emit([str(sentence)])

    def quit(self) -> None:
        self.quitting.set()


async def run_terminal(
    opts: TerminalOptions, *, stdin: IO[str] | None = None, out: IO[str] | None = None
) -> int:
    """Run the client until it ends; returns the exit status."""
    term = _Terminal(opts, out or sys.stdout)
    receiver = asyncio.create_task(term.receive())
    enders: set[asyncio.Task[Any]] = {receiver, asyncio.create_task(term.quitting.wait())}
    helpers: list[asyncio.Task[Any]] = []
    if opts.role == "dreamer" or term.prompt is not None:
        loop = asyncio.get_running_loop()
        if term.prompt is not None:
            lines = term.prompt.lines(loop)
        else:
            lines = _stdin_lines(stdin or sys.stdin, loop)
        helpers.append(asyncio.create_task(term.read_lines(lines)))
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
        if term.prompt is not None:
            term.out.write("\n")
    return code
