"""``sleepsync dream`` on a terminal: one screen for one room.

How it works: a worker runs the room's :class:`~sleepsync.client.link.RoomLink`
and posts every server message and connection change as a message
(:mod:`.messages`). The app folds messages into its
:class:`~sleepsync.client.roomview.RoomView`, writes sentences to the event
log and story lines to the story pane at once, and pushes the rest (header,
plot, roster, circle) into the widgets' reactive attributes at most
:data:`REFRESH_S` apart: a room sends a ``mood`` every tick, a screen need
not redraw that often. Typed lines go through
:func:`~sleepsync.client.commands.execute`: slash commands stay in the client.
"""

from __future__ import annotations

import contextlib

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Input, Static

from sleepsync.client.commands import Command, Story, execute, parse_line
from sleepsync.client.link import LinkState, RoomLink
from sleepsync.client.roomview import RoomView
from sleepsync.client.sentences import Sentence, describe, describe_message
from sleepsync.protocol.events import Said
from sleepsync.protocol.messages import Event, ServerMessage, Snapshot, TemplateFormat

from .balance_plot import BalancePlot
from .event_log import EventLog
from .messages import LinkChanged, LinkEnded, ServerMessageArrived
from .prompt import Prompt
from .room_header import RoomHeader
from .roster import Roster, roster_rows
from .story_pane import StoryPane

__all__ = ["REFRESH_S", "DreamApp"]

#: Longest time between a change in the room and the screen showing it.
REFRESH_S = 0.25


class DreamApp(App[int]):
    """The dream room screen; ``run()`` returns the exit status."""

    TITLE = "SleepSync"
    CSS = """
    Screen {
        layout: vertical;
    }
    #middle {
        height: 1fr;
    }
    #left {
        width: 1fr;
    }
    #lower {
        height: 1fr;
    }
    #hint {
        dock: bottom;
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    """
    BINDINGS = [
        Binding("ctrl+c", "leave", "leave", priority=True),
        Binding("ctrl+q", "leave", "leave", show=False),
    ]

    def __init__(self, link: RoomLink, *, me: str, can_speak: bool = True) -> None:
        super().__init__()
        self.link = link
        self.view = RoomView(link.room, me=me)
        self.can_speak = can_speak
        self._dirty = True
        #: Seconds after which the app ends by itself (``--duration``).
        self.leave_after: float | None = None

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield RoomHeader()
        with Horizontal(id="middle"):
            with Vertical(id="left"):
                yield BalancePlot()
                with Horizontal(id="lower"):
                    yield StoryPane()
                    yield EventLog()
            yield Roster()
        hint = "Enter tells the room · /help commands · ↑↓ history · Ctrl-C leaves"
        placeholder = "tell the room a line, or /help"
        if not self.can_speak:
            hint = "watching (observer) · /who · /rooms · /help · Ctrl-C leaves"
            placeholder = "you are watching: /who, /rooms, /help"
        yield Prompt(placeholder=placeholder, id="prompt")
        yield Static(hint, id="hint")

    def on_mount(self) -> None:
        header = self.query_one(RoomHeader)
        header.room = self.view.room
        self.query_one(StoryPane).me = self.view.me
        self.query_one(Prompt).focus()
        self.set_interval(REFRESH_S, self._refresh_widgets)
        self.run_worker(self._run_link(), name="link", exit_on_error=False)
        if self.leave_after is not None:
            self.set_timer(self.leave_after, self.action_leave)

    async def _run_link(self) -> None:
        link = self.link
        app = self

        class Listener:
            last = ""

            def on_message(self, msg: ServerMessage) -> None:
                app.post_message(ServerMessageArrived(link.room, msg))

            def on_state(self, state: LinkState) -> None:
                if state.detail:
                    self.last = state.detail
                app.post_message(LinkChanged(link.room, state))

        listener = Listener()
        code = await link.run(listener)
        self.post_message(LinkEnded(link.room, code, listener.last))

    # ------------------------------------------------------------------ the room
    def on_server_message_arrived(self, message: ServerMessageArrived) -> None:
        with contextlib.suppress(NoMatches):  # a message may come in while the app closes
            self._show(message.msg)

    def _show(self, msg: ServerMessage) -> None:
        items = self.view.apply(msg)
        log = self.query_one(EventLog)
        story = self.query_one(StoryPane)
        if isinstance(msg, Event):
            for item in items:
                if isinstance(item, Said):
                    story.add(self.view.story[-1])
                    continue
                sentence = describe(item, self.view)
                if sentence is not None:
                    log.say(sentence)
        else:
            if isinstance(msg, Snapshot):
                story.reset(list(self.view.story))
            for sentence in describe_message(msg, self.view):
                log.say(sentence)
        self._dirty = True

    def on_link_changed(self, message: LinkChanged) -> None:
        state = message.state
        header = self.query_one_optional(RoomHeader)
        if header is None:
            return
        header.link = state.kind
        header.link_detail = state.detail if state.kind != "connecting" else ""

    def on_link_ended(self, message: LinkEnded) -> None:
        if message.code == 2:
            text = f"sleepsync: the server refused: {message.reason}"
        else:
            text = f"sleepsync: cannot reach {self.link_url()}: {message.reason}"
        self.exit(message.code, return_code=message.code, message=text)

    def link_url(self) -> str:
        client = getattr(self.link, "client", None)
        return str(getattr(client, "url", self.link.room))

    def refresh_now(self) -> None:
        """Push the view into the widgets now (tests and screenshots wait on this)."""
        self._dirty = True
        self._refresh_widgets()

    def _refresh_widgets(self) -> None:
        if not self._dirty or self.query_one_optional(RoomHeader) is None:
            return
        self._dirty = False
        view = self.view
        header = self.query_one(RoomHeader)
        header.node = view.node
        header.narrative = view.narrative
        header.scene = view.scene
        header.scene_text = view.scene_text
        banner = header.query_one("PhaseBanner")
        banner.phase = view.phase  # type: ignore[attr-defined]
        banner.balance = view.balance  # type: ignore[attr-defined]
        plot = self.query_one(BalancePlot)
        plot.phase = view.phase
        plot.marks = tuple(view.marks)
        plot.points = tuple(view.history)
        self.query_one(Roster).rows = roster_rows(view)
        story = self.query_one(StoryPane)
        story.circle_order = tuple(view.circle_order())
        story.circle_turn = view.circle.turn if view.circle is not None else ""
        left = view.turn_left_s()
        story.turn_left = None if left is None else float(round(left))

    # ------------------------------------------------------------------ typing
    async def on_input_submitted(self, event: Input.Submitted) -> None:
        prompt = self.query_one(Prompt)
        line = event.value
        prompt.remember(line.strip())
        prompt.value = ""
        entry = parse_line(line)
        if entry is not None:
            await self.run_line(entry)

    async def run_line(self, entry: Command | Story) -> None:
        """Carry out a typed line (also what tests call)."""
        try:
            await execute(entry, self)
        except ConnectionError:
            self.tell(Sentence("Not connected right now: try again in a moment.", "you"))

    # CommandContext
    async def send_line(self, text: str) -> None:
        await self.link.say(text)

    async def list_rooms(self) -> None:
        await self.link.list_rooms()

    async def upload_template(self, fmt: TemplateFormat, text: str) -> None:
        await self.link.upload_template(fmt, text)

    def tell(self, sentence: Sentence) -> None:
        log = self.query_one_optional(EventLog)
        if log is not None:
            log.say(sentence)

    def quit(self) -> None:
        self.action_leave()

    def action_leave(self) -> None:
        self.exit(0, return_code=0)

    async def on_unmount(self) -> None:
        with contextlib.suppress(Exception):
            await self.link.close()
