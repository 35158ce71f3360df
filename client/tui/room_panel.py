"""One room on the watch dashboard: phase, balance sparkline, dreamers, glitches, scene."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Sparkline, Static

from sleepsync.client.roomview import RoomView, scene_label
from sleepsync.client.sentences import listing

from .phase_banner import PhaseBanner
from .theme import link_glyph

__all__ = ["RoomPanel", "RoomSummary", "summarise"]


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """What the dashboard shows of a room."""

    room: str
    link: str = "connecting"
    phase: str = "stable"
    balance: float | None = None
    balances: tuple[float, ...] = ()
    people: int = 0
    pods: int = 0
    pods_online: int = 0
    glitches: tuple[str, ...] = ()
    scene: str = ""
    scene_text: str = ""
    circle: str = ""
    last: str = ""


def summarise(view: RoomView, link: str, last: str) -> RoomSummary:
    pods = view.pods()
    glitches = tuple(
        f"{g.kind} from {g.origin}" + (f" (+{len(g.carriers) - 1})" if len(g.carriers) > 1 else "")
        for g in sorted(view.glitches.values(), key=lambda g: g.id)
    )
    circle = ""
    if view.circle is not None:
        circle = f"circle: {listing(view.circle_order())}; {view.circle.turn}'s turn"
    return RoomSummary(
        view.room,
        link,
        view.phase,
        view.balance,
        tuple(b for _, b in view.history)[-120:],
        sum(1 for m in view.people() if m.role == "dreamer"),
        len(pods),
        sum(1 for p in pods if p.online),
        glitches,
        view.scene,
        view.scene_text,
        circle,
        last,
    )


class RoomPanel(Vertical):
    """A bordered panel for one room; ``summary`` is all it shows."""

    DEFAULT_CSS = """
    RoomPanel {
        height: 8;
        border: round $primary;
        border-title-align: left;
        border-subtitle-align: right;
        margin: 0 0 0 0;
    }
    RoomPanel.-collapsed { border: heavy red; }
    RoomPanel.-strained { border: round yellow; }
    RoomPanel Horizontal { height: 3; }
    RoomPanel Sparkline { width: 1fr; height: 3; margin: 0 1; }
    RoomPanel PhaseBanner { width: 22; }
    RoomPanel #facts { height: 3; padding: 0 1; }
    """

    summary: reactive[RoomSummary | None] = reactive(None)

    def __init__(self, room: str) -> None:
        super().__init__(id=f"room-{room}")
        self.room = room

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield PhaseBanner()
            yield Sparkline([], summary_function=min)
        yield Static(id="facts")

    def on_mount(self) -> None:
        self.border_title = self.room

    def watch_summary(self, s: RoomSummary | None) -> None:
        if s is None or not self.is_mounted:
            return
        for phase in ("stable", "strained", "collapsed", "recovering"):
            self.set_class(s.phase == phase, f"-{phase}")
        banner = self.query_one(PhaseBanner)
        banner.phase = s.phase
        banner.balance = s.balance
        self.query_one(Sparkline).data = list(s.balances) or [0.0]
        word, style = link_glyph(s.link)
        self.border_subtitle = word
        facts = Text()
        facts.append(f"{s.people} dreamer{'s' if s.people != 1 else ''}", style="bold")
        facts.append(f", {s.pods_online}/{s.pods} pods online")
        if s.glitches:
            facts.append(f" · glitches: {'; '.join(s.glitches)}", style="bold magenta")
        else:
            facts.append(" · no glitches", style="dim")
        if s.circle:
            facts.append(f" · {s.circle}", style="magenta")
        facts.append("\n")
        if s.scene:
            facts.append(scene_label(s.scene).capitalize(), style="bold italic")
            facts.append(f": {s.scene_text}" if s.scene_text else "", style="italic")
        facts.append("\n")
        facts.append(s.last, style="dim")
        facts.no_wrap = True
        facts.overflow = "ellipsis"
        self.query_one("#facts", Static).update(facts)
        self.styles.border_subtitle_color = style.split()[-1] if style else None
