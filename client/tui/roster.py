"""Who is in the room: people and pods, their role, whether online, and their moods."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from sleepsync.client.roomview import RoomView

from .theme import bar

__all__ = ["Roster", "RosterRow", "roster_rows"]


@dataclass(frozen=True, slots=True)
class RosterRow:
    name: str
    #: ``dreamer``, ``observer`` or ``pod``.
    role: str
    online: bool
    you: bool = False
    valence: float | None = None
    arousal: float | None = None
    glitch: float = 0.0
    isolated: bool = False
    turn: bool = False


def roster_rows(view: RoomView) -> tuple[RosterRow, ...]:
    """People first (by name), then pods; dreamers with their mood."""
    rows = []
    turn = view.circle.turn if view.circle is not None else None
    for m in [*view.people(), *view.pods()]:
        mood = view.moods.get(m.name) if m.role != "observer" else None
        # A person is online while a member; a pod while its telemetry flows.
        online = m.online and (mood is None or m.role != "pod" or mood.online)
        rows.append(
            RosterRow(
                m.name,
                m.role,
                online,
                m.name == view.me and m.role != "pod",
                None if mood is None else mood.valence,
                None if mood is None else mood.arousal,
                0.0 if mood is None else mood.glitch,
                mood is not None and mood.isolated,
                m.name == turn and m.role == "dreamer",
            )
        )
    return tuple(rows)


_ROLE = {"dreamer": ("☺", "dreamer"), "observer": ("◌", "watching"), "pod": ("◆", "pod")}


class Roster(Static):
    """The roster as a table; ``rows`` is all it shows."""

    DEFAULT_CSS = """
    Roster {
        width: 40%;
        max-width: 56;
        min-width: 34;
        height: 1fr;
        border: round $primary;
        border-title-align: left;
        padding: 0 1;
    }
    """

    rows: reactive[tuple[RosterRow, ...]] = reactive(())

    def on_mount(self) -> None:
        self.border_title = "who is here"

    def watch_rows(self, rows: tuple[RosterRow, ...]) -> None:
        people = sum(1 for r in rows if r.role != "pod")
        self.border_title = f"who is here: {people} people, {len(rows) - people} pods"
        table = Table.grid(padding=(0, 1))
        table.add_column(width=1)
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column(width=6, no_wrap=True, overflow="crop")  # valence
        table.add_column(width=6, no_wrap=True, overflow="crop")  # arousal
        table.add_column(width=11, no_wrap=True)  # glitch / state
        table.add_row(
            "", Text("name", style="dim"), Text("val", "dim"), Text("arou", "dim"), Text("", "dim")
        )
        for r in rows:
            glyph, role = _ROLE.get(r.role, ("?", r.role))
            name = Text(r.name, style="bold" if r.you else "")
            if r.you and r.name != "you":
                name.append(" (you)", style="magenta")
            if r.role != "pod":
                name.append(f" {role}", style="dim")
            if r.turn:
                name.append(" ▶ turn", style="bold magenta")
            dot = Text(glyph, style="green" if r.online else "dim red")
            if r.valence is None or r.arousal is None:
                table.add_row(dot, name, "", "", Text("" if r.online else "offline", "dim red"))
                continue
            state = Text()
            if r.glitch > 0:
                state.append(f"⚡{r.glitch:.2f}", style="bold magenta")
            if r.isolated:
                state.append(" iso" if state else "isolated", style="yellow")
            if not r.online:
                state = Text("offline", style="dim red")
            table.add_row(
                dot, name, _bar(r.valence, _level_style(r.valence)), _bar(r.arousal, "cyan"), state
            )
        self.update(table)


def _bar(level: float, style: str) -> Text:
    filled, rest = bar(level, 6)
    return Text.assemble((filled, style), (rest, "dim"))


def _level_style(valence: float) -> str:
    if valence < 0.3:
        return "red"
    if valence < 0.45:
        return "yellow"
    return "green"
