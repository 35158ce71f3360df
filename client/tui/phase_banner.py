"""The room's recovery phase as a coloured banner, with its balance."""

from __future__ import annotations

from textual.reactive import reactive
from textual.widgets import Static

from sleepsync.client.roomview import PHASES

__all__ = ["PhaseBanner"]

_GLYPH = {"stable": "◉", "strained": "◎", "collapsed": "✖", "recovering": "↻"}


class PhaseBanner(Static):
    """``✖ COLLAPSED 0.28`` on the phase's colour (the word is there for 16-colour terminals)."""

    DEFAULT_CSS = """
    PhaseBanner {
        width: 24;
        height: 3;
        content-align: center middle;
        text-style: bold;
        background: $panel-lighten-1;
    }
    PhaseBanner.-stable { background: green; color: black; }
    PhaseBanner.-strained { background: yellow; color: black; }
    PhaseBanner.-collapsed { background: red; color: white; }
    PhaseBanner.-recovering { background: cyan; color: black; }
    """

    phase: reactive[str] = reactive("stable")
    balance: reactive[float | None] = reactive(None)

    def on_mount(self) -> None:
        self._show()

    def watch_phase(self) -> None:
        self._show()

    def watch_balance(self) -> None:
        self._show()

    def _show(self) -> None:
        for phase in PHASES:
            self.set_class(self.phase == phase, f"-{phase}")
        balance = "" if self.balance is None else f"  {self.balance:.2f}"
        self.update(f"{_GLYPH.get(self.phase, '?')} {self.phase.upper()}{balance}")
