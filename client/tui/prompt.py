"""The input line: what you type stays put while the room goes on; Up/Down recall history."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input

__all__ = ["Prompt"]

#: Lines remembered for Up/Down.
HISTORY = 200


class Prompt(Input):
    """An :class:`~textual.widgets.Input` with a history of submitted lines."""

    DEFAULT_CSS = """
    Prompt {
        dock: bottom;
        margin: 0 0 1 0;
    }
    """

    BINDINGS = [
        Binding("up", "history(-1)", "previous line", show=False),
        Binding("down", "history(1)", "next line", show=False),
    ]

    def __init__(self, *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id)
        self.history: list[str] = []
        self._at = 0
        self._draft = ""

    def remember(self, line: str) -> None:
        """Add a submitted line to the history (no repeats in a row)."""
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
            del self.history[:-HISTORY]
        self._at = len(self.history)
        self._draft = ""

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._at == len(self.history):
            self._draft = self.value
        self._at = min(len(self.history), max(0, self._at + step))
        self.value = self.history[self._at] if self._at < len(self.history) else self._draft
        self.cursor_position = len(self.value)
