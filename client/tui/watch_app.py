"""``sleepsync watch``: a read-only dashboard of several rooms, one panel each.

Each room has its own observer connection (a :class:`~sleepsync.client.link.RoomLink`)
and :class:`~sleepsync.client.roomview.RoomView`; panels are refreshed at
most every :data:`REFRESH_S`. With no rooms named, the app asks the server
for its rooms and looks again every :data:`DISCOVER_S` seconds for new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from sleepsync.client.link import LinkState, RoomLink
from sleepsync.client.roomview import RoomView
from sleepsync.client.sentences import describe
from sleepsync.protocol.messages import Event, ServerMessage

from .messages import LinkChanged, LinkEnded, ServerMessageArrived
from .room_panel import RoomPanel, summarise

__all__ = ["DISCOVER_S", "REFRESH_S", "WatchApp"]

REFRESH_S = 0.5
DISCOVER_S = 10.0


class WatchApp(App[int]):
    """Panels of rooms; ``make_link(room)`` opens an observer link to a room."""

    TITLE = "SleepSync watch"
    CSS = """
    #top { height: 1; padding: 0 1; background: $panel; }
    #rooms { height: 1fr; }
    """
    BINDINGS = [Binding("ctrl+c", "quit_watch", "quit", priority=True), ("q", "quit_watch")]

    def __init__(
        self,
        make_link: Callable[[str], RoomLink],
        rooms: list[str],
        *,
        discover: Callable[[], Awaitable[list[str]]] | None = None,
        title: str = "",
    ) -> None:
        super().__init__()
        self.make_link = make_link
        self.wanted = list(rooms)
        self.discover = discover
        self.views: dict[str, RoomView] = {}
        self.links: dict[str, RoomLink] = {}
        self.states: dict[str, str] = {}
        self.last: dict[str, str] = {}
        self.dirty: set[str] = set()
        self.heading = title
        #: Seconds after which the app ends by itself (``--duration``).
        self.leave_after: float | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="top")
        yield VerticalScroll(id="rooms")

    async def on_mount(self) -> None:
        self._top()
        for room in self.wanted:
            await self.add_room(room)
        if self.discover is not None:
            self.run_worker(self._discover_loop(), exit_on_error=False)
        self.set_interval(REFRESH_S, self._refresh)
        if self.leave_after is not None:
            self.set_timer(self.leave_after, self.action_quit_watch)

    def _top(self) -> None:
        top = self.query_one("#top", Static)
        n = len(self.views)
        rooms = f"{n} room{'s' if n != 1 else ''}"
        top.update(f"SleepSync watch {self.heading} · {rooms} · read-only · q quits")

    async def _discover_loop(self) -> None:
        assert self.discover is not None
        while True:
            with contextlib.suppress(ConnectionError):
                for room in await self.discover():
                    if room not in self.views:
                        await self.add_room(room)
            await asyncio.sleep(DISCOVER_S)

    async def add_room(self, room: str) -> None:
        if room in self.views:
            return
        self.views[room] = RoomView(room)
        self.states[room] = "connecting"
        self.last[room] = ""
        link = self.make_link(room)
        self.links[room] = link
        await self.query_one("#rooms").mount(RoomPanel(room))
        self.dirty.add(room)
        self._top()
        self.run_worker(self._run(link), exit_on_error=False)

    async def _run(self, link: RoomLink) -> None:
        app = self

        class Listener:
            def on_message(self, msg: ServerMessage) -> None:
                app.post_message(ServerMessageArrived(link.room, msg))

            def on_state(self, state: LinkState) -> None:
                app.post_message(LinkChanged(link.room, state))

        code = await link.run(Listener())
        self.post_message(LinkEnded(link.room, code, ""))

    def on_server_message_arrived(self, message: ServerMessageArrived) -> None:
        view = self.views.get(message.room)
        if view is None:
            return
        items = view.apply(message.msg)
        if isinstance(message.msg, Event):
            for item in items:
                sentence = describe(item, view)
                if sentence is not None and sentence.tone != "story":
                    self.last[message.room] = sentence.text
        self.dirty.add(message.room)

    def on_link_changed(self, message: LinkChanged) -> None:
        self.states[message.room] = message.state.kind
        self.dirty.add(message.room)

    def on_link_ended(self, message: LinkEnded) -> None:
        self.states[message.room] = "unreachable" if message.code == 1 else "refused"
        self.dirty.add(message.room)

    def refresh_now(self) -> None:
        """Push every room into its panel now (tests and screenshots wait on this)."""
        self.dirty.update(self.views)
        self._refresh()

    def _refresh(self) -> None:
        for room in list(self.dirty):
            with contextlib.suppress(Exception):
                panel = self.query_one(f"#room-{room}", RoomPanel)
                panel.summary = summarise(self.views[room], self.states[room], self.last[room])
        self.dirty.clear()

    def action_quit_watch(self) -> None:
        self.exit(0, return_code=0)

    async def on_unmount(self) -> None:
        for link in self.links.values():
            with contextlib.suppress(Exception):
                await link.close()
