"""What happened in the room, as sentences coloured by tone."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from sleepsync.client.sentences import Sentence

from .theme import TONE_STYLE

__all__ = ["EventLog"]


class EventLog(RichLog):
    """A log of :class:`~sleepsync.client.sentences.Sentence` values."""

    DEFAULT_CSS = """
    EventLog {
        border: round $secondary;
        border-title-align: left;
        height: 1fr;
        background: transparent;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(wrap=True, markup=False, max_lines=2000, min_width=20, id=id)

    def on_mount(self) -> None:
        self.border_title = "what happens"

    def say(self, sentence: Sentence) -> None:
        self.write(Text(sentence.text, style=TONE_STYLE.get(sentence.tone, "")))
