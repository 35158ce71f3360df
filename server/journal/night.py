"""What a night was like: figures for a comparison, series for a picture.

Both are observers of a replay (:data:`.replay.Observer`): called with each
tick's inputs and event items, in order, they keep what they need and
nothing else. :class:`NightStats` counts (time in each phase, the lowest
balance, collapses and the time to recover from each, glitches started and
spread, nightmare releases, story lines, circles); :class:`NightTrace`
keeps the series a plot draws (balance and phase over time, each dreamer's
valence, arousal and fragility, and the moments things happened).
:func:`comparison` lays two nights' figures side by side.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sleepsync.protocol.events import (
    CircleOpened,
    EventItem,
    GlitchSpread,
    GlitchStarted,
    Mood,
    NarrativeChanged,
    NightmareReleased,
    PhaseChanged,
    SceneChanged,
)

from ..engine import EngineInput, StoryLine, TemplateUploaded

__all__ = ["PHASE_ORDER", "NightStats", "NightTrace", "comparison"]

PHASE_ORDER = ("stable", "strained", "collapsed", "recovering")


@dataclass(slots=True)
class NightStats:
    """Figures of one night, from its event items (an observer)."""

    dt: float
    ticks: int = 0
    phase_ticks: Counter[str] = field(default_factory=Counter)
    lowest_balance: float | None = None
    lowest_at: int = 0
    collapses: int = 0
    recoveries: list[int] = field(default_factory=list)
    glitches_started: Counter[str] = field(default_factory=Counter)
    glitches_spread: int = 0
    nightmares: int = 0
    story_lines: int = 0
    circles: int = 0
    templates: int = 0
    _collapsed_at: int | None = None

    def __call__(
        self, tick: int, inputs: Sequence[EngineInput], items: Sequence[EventItem]
    ) -> None:
        self.ticks += 1
        for inp in inputs:
            if isinstance(inp, StoryLine):
                self.story_lines += 1
            elif isinstance(inp, TemplateUploaded):
                self.templates += 1
        for item in items:
            if isinstance(item, Mood):
                self.phase_ticks[item.phase] += 1
                if self.lowest_balance is None or item.balance < self.lowest_balance:
                    self.lowest_balance = item.balance
                    self.lowest_at = tick
            elif isinstance(item, GlitchStarted):
                self.glitches_started[item.glitch] += 1
            elif isinstance(item, GlitchSpread):
                self.glitches_spread += 1
            elif isinstance(item, PhaseChanged):
                if item.to == "collapsed":
                    self.collapses += 1
                    self._collapsed_at = tick
                elif item.to == "stable" and self._collapsed_at is not None:
                    self.recoveries.append(tick - self._collapsed_at)
                    self._collapsed_at = None
            elif isinstance(item, NightmareReleased):
                self.nightmares += 1
            elif isinstance(item, CircleOpened):
                self.circles += 1

    def rows(self) -> list[tuple[str, str]]:
        """(figure, value) rows, in a fixed order."""
        dt = self.dt
        out = [("length", _duration(self.ticks * dt))]
        for phase in PHASE_ORDER:
            out.append((f"time {phase}", _duration(self.phase_ticks[phase] * dt)))
        lowest = "—" if self.lowest_balance is None else f"{self.lowest_balance:.3f}"
        if self.lowest_balance is not None:
            lowest += f" at {_duration(self.lowest_at * dt)}"
        out.append(("lowest balance", lowest))
        out.append(("collapses", str(self.collapses)))
        if self.recoveries:
            mean = sum(self.recoveries) / len(self.recoveries) * dt
            worst = max(self.recoveries) * dt
            recover = f"{_duration(mean)} mean, {_duration(worst)} longest"
        else:
            recover = "—"
        if self._collapsed_at is not None:
            recover += " (still down at the end)"
        out.append(("time to recover", recover))
        started = sum(self.glitches_started.values())
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.glitches_started.items()))
        out.append(("glitches started", f"{started}" + (f" ({kinds})" if kinds else "")))
        out.append(("glitches spread", str(self.glitches_spread)))
        out.append(("nightmare releases", str(self.nightmares)))
        out.append(("circles opened", str(self.circles)))
        out.append(("story lines", str(self.story_lines)))
        return out


def comparison(labels: tuple[str, str], a: NightStats, b: NightStats) -> list[str]:
    """Two nights' figures side by side, as aligned text lines."""
    rows = [("", labels[0], labels[1])]
    rows += [(name, x, y) for (name, x), (_, y) in zip(a.rows(), b.rows(), strict=True)]
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    lines = []
    for k, (name, x, y) in enumerate(rows):
        lines.append(f"{name:<{widths[0]}}  {x:<{widths[1]}}  {y}".rstrip())
        if k == 0:
            lines.append("-" * (widths[0] + widths[1] + widths[2] + 4))
    return lines


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f} s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


@dataclass(slots=True)
class DreamerSeries:
    ticks: array[int] = field(default_factory=lambda: array("q"))
    valence: array[float] = field(default_factory=lambda: array("f"))
    arousal: array[float] = field(default_factory=lambda: array("f"))
    fragility: array[float] = field(default_factory=lambda: array("f"))


#: Most level samples a trace keeps per series before it halves its resolution.
MAX_SAMPLES = 20_000


@dataclass(slots=True)
class NightTrace:
    """The series of one night for a picture (an observer).

    Levels are kept every ``every`` ticks; when a series passes
    :data:`MAX_SAMPLES` the trace keeps every other one and doubles
    ``every``, so a night of any length fits in bounded memory (a picture
    needs no more). Moments (glitches, scenes, circles, story lines) are
    kept exactly.
    """

    every: int = 1
    ticks: array[int] = field(default_factory=lambda: array("q"))
    balance: array[float] = field(default_factory=lambda: array("f"))
    #: (tick, phase) whenever the phase changes, first one included.
    phases: list[tuple[int, str]] = field(default_factory=list)
    dreamers: dict[str, DreamerSeries] = field(default_factory=dict)
    #: (tick, glitch id, kind, origin)
    glitch_starts: list[tuple[int, int, str, str]] = field(default_factory=list)
    #: (tick, glitch id, from, to)
    spreads: list[tuple[int, int, str, str]] = field(default_factory=list)
    #: (tick, scene, reason)
    scenes: list[tuple[int, str, str]] = field(default_factory=list)
    #: (tick, opened by)
    circles: list[tuple[int, str]] = field(default_factory=list)
    #: (tick, author, text)
    story: list[tuple[int, str, str]] = field(default_factory=list)
    #: (tick, title, by)
    narratives: list[tuple[int, str, str]] = field(default_factory=list)
    #: (tick, dreamer)
    nightmares: list[tuple[int, str]] = field(default_factory=list)
    first: int | None = None
    last: int = 0

    def __call__(
        self, tick: int, inputs: Sequence[EngineInput], items: Sequence[EventItem]
    ) -> None:
        if self.first is None:
            self.first = tick
        self.last = tick
        for inp in inputs:
            if isinstance(inp, StoryLine):
                self.story.append((tick, inp.author, inp.text))
        for item in items:
            if isinstance(item, Mood):
                if not self.phases or self.phases[-1][1] != item.phase:
                    self.phases.append((tick, item.phase))
                if tick % self.every:
                    continue
                if len(self.ticks) >= MAX_SAMPLES:
                    self._thin()
                    if tick % self.every:
                        continue
                self.ticks.append(tick)
                self.balance.append(item.balance)
                for row in item.dreamers:
                    series = self.dreamers.get(row.name)
                    if series is None:
                        series = self.dreamers[row.name] = DreamerSeries()
                    series.ticks.append(tick)
                    series.valence.append(row.valence)
                    series.arousal.append(row.arousal)
                    series.fragility.append(row.fragility or 0.0)
            elif isinstance(item, GlitchStarted):
                self.glitch_starts.append((tick, item.id, item.glitch, item.origin))
            elif isinstance(item, GlitchSpread):
                self.spreads.append((tick, item.id, item.source, item.to))
            elif isinstance(item, SceneChanged):
                self.scenes.append((tick, item.to, item.reason))
            elif isinstance(item, CircleOpened):
                self.circles.append((tick, item.by))
            elif isinstance(item, NarrativeChanged):
                self.narratives.append((tick, item.title, item.by))
            elif isinstance(item, NightmareReleased):
                self.nightmares.append((tick, item.dreamer))

    def _thin(self) -> None:
        """Keep the samples on multiples of twice ``every``; double it."""
        self.every *= 2
        every = self.every
        picked = [k for k, tick in enumerate(self.ticks) if tick % every == 0]
        self.ticks = array("q", (self.ticks[k] for k in picked))
        self.balance = array("f", (self.balance[k] for k in picked))
        for s in self.dreamers.values():
            rows = [k for k, tick in enumerate(s.ticks) if tick % every == 0]
            s.ticks = array("q", (s.ticks[k] for k in rows))
            s.valence = array("f", (s.valence[k] for k in rows))
            s.arousal = array("f", (s.arousal[k] for k in rows))
            s.fragility = array("f", (s.fragility[k] for k in rows))
