"""Colours and glyphs shared by the widgets.

Only the 16 ANSI colour names are used (``green``, ``bright_red``…), so a
16-colour terminal shows the same screen as a true-colour one; and every
state that has a colour also has a word or a glyph, so nothing depends on
colour alone.
"""

from __future__ import annotations

from sleepsync.client.sentences import Tone

__all__ = ["PHASE_COLOUR", "PHASE_RGB", "TONE_STYLE", "bar", "link_glyph"]

#: Phase -> its colour (the banner's background, the plot's line).
PHASE_COLOUR: dict[str, str] = {
    "stable": "green",
    "strained": "yellow",
    "collapsed": "red",
    "recovering": "cyan",
}

#: Phase -> colour for plotext, which names colours its own way (a terminal
#: with fewer colours gets the nearest one from Textual).
PHASE_RGB: dict[str, tuple[int, int, int]] = {
    "stable": (90, 200, 90),
    "strained": (230, 200, 40),
    "collapsed": (235, 60, 60),
    "recovering": (70, 190, 230),
}

TONE_STYLE: dict[Tone, str] = {
    "info": "",
    "good": "green",
    "warn": "yellow",
    "bad": "bold red",
    "story": "bold",
    "you": "bold magenta",
}

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(level: float, width: int = 6) -> tuple[str, str]:
    """``level`` in [0, 1] as a bar ``width`` cells wide, in eighths of a cell:
    (the filled part, the rest as dots to show dimmed)."""
    level = min(1.0, max(0.0, level))
    eighths = round(level * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    return text, "·" * (width - len(text))


def link_glyph(kind: str) -> tuple[str, str]:
    """A connection state as (glyph and word, style)."""
    if kind == "connected":
        return "● connected", "green"
    if kind in ("connecting",):
        return "◌ connecting", "yellow"
    if kind in ("unreachable", "refused"):
        return f"✕ {kind}", "bold red"
    return "◌ reconnecting", "bold yellow"
