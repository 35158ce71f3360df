"""The top of the dream screen: where you are, what the dream is, how the room is."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

from sleepsync.client.roomview import scene_label

from .phase_banner import PhaseBanner
from .theme import link_glyph

__all__ = ["RoomHeader"]


class RoomHeader(Horizontal):
    """Room, node, connection state, narrative title, the scene's text, and the phase."""

    DEFAULT_CSS = """
    RoomHeader {
        height: 3;
        background: $panel;
    }
    RoomHeader #where {
        width: 1fr;
        height: 3;
        padding: 0 1;
    }
    """

    room: reactive[str] = reactive("")
    node: reactive[str] = reactive("")
    link: reactive[str] = reactive("connecting")
    link_detail: reactive[str] = reactive("")
    narrative: reactive[str] = reactive("")
    scene: reactive[str] = reactive("")
    scene_text: reactive[str] = reactive("")

    def compose(self) -> ComposeResult:
        yield Static(id="where")
        yield PhaseBanner()

    def watch_room(self) -> None:
        self._show()

    def watch_node(self) -> None:
        self._show()

    def watch_link(self) -> None:
        self._show()

    def watch_link_detail(self) -> None:
        self._show()

    def watch_narrative(self) -> None:
        self._show()

    def watch_scene(self) -> None:
        self._show()

    def watch_scene_text(self) -> None:
        self._show()

    def _show(self) -> None:
        if not self.is_mounted:
            return
        word, style = link_glyph(self.link)
        line = Text.assemble(
            ("SleepSync", "bold"),
            "  room ",
            (self.room, "bold"),
            "  node ",
            (self.node or "?", "bold"),
            "  ",
            (word, style),
        )
        if self.link != "connected" and self.link_detail:
            line.append(f" ({self.link_detail})", style="dim")
        line.no_wrap = True
        line.overflow = "ellipsis"
        title = Text()
        if self.narrative:
            title.append(self.narrative, style="bold italic")
        if self.scene:
            title.append((" · " if self.narrative else "") + scene_label(self.scene).capitalize())
        title.no_wrap = True
        title.overflow = "ellipsis"
        scene = Text(self.scene_text or "", style="italic")
        scene.no_wrap = True
        scene.overflow = "ellipsis"
        self.query_one("#where", Static).update(Text("\n").join([line, title, scene]))

    def on_mount(self) -> None:
        self._show()
