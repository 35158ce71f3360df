"""The story told so far, by name, and the storytelling circle: its order and whose turn."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import RichLog, Static

from sleepsync.client.roomview import StoryEntry

__all__ = ["StoryPane"]


class StoryPane(Vertical):
    """Story lines (a log that keeps its place) above a one-line circle bar."""

    DEFAULT_CSS = """
    StoryPane {
        border: round $accent;
        border-title-align: left;
        height: 1fr;
    }
    StoryPane RichLog {
        height: 1fr;
        background: transparent;
        scrollbar-size-vertical: 1;
    }
    StoryPane #circle {
        height: auto;
        padding: 0 1;
    }
    """

    me: reactive[str] = reactive("")
    #: Turn order ([] when no circle is open), whose turn, seconds left (None: unknown).
    circle_order: reactive[tuple[str, ...]] = reactive(())
    circle_turn: reactive[str] = reactive("")
    turn_left: reactive[float | None] = reactive(None)

    def compose(self) -> ComposeResult:
        yield RichLog(wrap=True, markup=False, max_lines=1000, min_width=20)
        yield Static(id="circle")

    def on_mount(self) -> None:
        self.border_title = "story"
        self._circle()

    def reset(self, lines: list[StoryEntry]) -> None:
        """Show ``lines`` afresh (after a snapshot)."""
        log = self.query_one(RichLog)
        log.clear()
        for line in lines:
            self.add(line)

    def add(self, line: StoryEntry) -> None:
        style = "bold magenta" if line.name == self.me else "bold cyan"
        self.query_one(RichLog).write(Text.assemble((line.name, style), ": ", line.text))

    def watch_circle_order(self) -> None:
        self._circle()

    def watch_circle_turn(self) -> None:
        self._circle()

    def watch_turn_left(self) -> None:
        self._circle()

    def _circle(self) -> None:
        if not self.is_mounted:
            return
        bar = self.query_one("#circle", Static)
        if not self.circle_order:
            bar.update(Text("no circle open · /circle opens one", style="dim"))
            return
        text = Text("circle: ", style="bold")
        for i, name in enumerate(self.circle_order):
            if i:
                text.append(" → ", style="dim")
            if name == self.circle_turn:
                text.append(f"▶ {name}", style="bold reverse magenta")
            else:
                text.append(name)
        if self.turn_left is not None:
            text.append(f"  {self.turn_left:.0f} s left", style="dim")
        if self.circle_turn == self.me:
            text.append("  your turn: tell a line or /pass", style="bold magenta")
        bar.update(text)
