"""Pictures of a night (matplotlib, Agg backend: no display needed).

One figure, time across, five panels sharing it:

1. the room's balance, on bands coloured by recovery phase, with the
   collapse and stable thresholds; scene changes as dotted lines named at
   the top (short ticks when the room loops between scenes), narrative
   uploads and circle openings marked, story lines as ticks along the bottom;
2. each dreamer's valence, 3. arousal, 4. fragility (one colour per dreamer
   throughout);
5. glitches: a row per dreamer; a star where a glitch starts, a line from
   source (dot) to target (triangle) where one spreads, a cross where a
   nightmare is released.

A what-if (``other``) is drawn over it dashed: its balance and dreamers'
lines, its phases as a strip under the balance, its glitches hollow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MultipleLocator

from ..engine import EngineConfig
from .night import NightTrace

__all__ = ["PHASE_COLOURS", "plot_night"]

PHASE_COLOURS = {
    "stable": "#e7f4e4",
    "strained": "#fdf1c7",
    "collapsed": "#f9d0cb",
    "recovering": "#d8e6f7",
}
STRIP = {
    "stable": "#7fbf74",
    "strained": "#e8c04a",
    "collapsed": "#d9534f",
    "recovering": "#5b8fd1",
}
#: Steps (seconds) the time axis may be marked in: at most 12 marks.
STEPS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
#: Tick → seconds into the night.
ToSeconds = Callable[[float], float]


def plot_night(
    trace: NightTrace,
    config: EngineConfig,
    out: str | Path,
    *,
    title: str,
    other: NightTrace | None = None,
    labels: tuple[str, str] = ("recorded", "what-if"),
) -> None:
    """Draw ``trace`` (and ``other`` over it) into ``out`` (.png or .svg)."""
    start = trace.first or 0
    hz = config.tick_hz
    end = max(trace.last, other.last if other is not None else 0) + 1

    def t(tick: float) -> float:
        return (tick - start) / hz

    span = max(t(end), 1.0)
    names = sorted(set(trace.dreamers) | (set(other.dreamers) if other else set()))
    colours = _colours(names)
    fig, axes = plt.subplots(
        5,
        1,
        figsize=(14, 12),
        sharex=True,
        gridspec_kw={"height_ratios": [2.4, 1.3, 1.3, 1.0, 1.6]},
    )
    balance, valence, arousal, fragility, glitches = axes
    fig.suptitle(title, fontsize=14, x=0.01, ha="left")

    _phase_bands(balance, trace, end, t)
    xs = [t(k) for k in trace.ticks]
    balance.plot(xs, trace.balance, color="black", lw=1.4, label=f"balance ({labels[0]})")
    if other is not None:
        xs = [t(k) for k in other.ticks]
        balance.plot(
            xs, other.balance, color="#7a2e8e", lw=1.3, ls="--", label=f"balance ({labels[1]})"
        )
        _phase_strip(balance, other, end, t)
    balance.axhline(config.collapse_below, color="#d9534f", lw=0.8, ls=":")
    balance.axhline(config.stable_above, color="#4a8f3f", lw=0.8, ls=":")
    for level, text, colour in (
        (config.collapse_below, "collapse", "#d9534f"),
        (config.stable_above, "stable", "#4a8f3f"),
    ):
        balance.text(span, level, f" {text}", va="center", fontsize=8, color=colour)
    _moments(balance, trace, t, span)
    balance.set_ylim(-0.08 if other is not None else 0.0, 1.0)
    balance.set_ylabel("balance")
    handles, _ = balance.get_legend_handles_labels()
    handles += [Patch(color=PHASE_COLOURS[p], label=p) for p in PHASE_COLOURS]
    balance.legend(handles=handles, loc="upper right", fontsize=8, ncol=3, framealpha=0.9)

    for ax, attr in ((valence, "valence"), (arousal, "arousal"), (fragility, "fragility")):
        for name in names:
            series = trace.dreamers.get(name)
            if series is not None:
                xs = [t(k) for k in series.ticks]
                ax.plot(xs, getattr(series, attr), color=colours[name], lw=1.0, label=name)
            if other is not None and name in other.dreamers:
                s2 = other.dreamers[name]
                xs = [t(k) for k in s2.ticks]
                ax.plot(xs, getattr(s2, attr), color=colours[name], lw=0.9, ls="--", alpha=0.8)
        ax.set_ylim(0.0, 1.0)
        ax.set_ylabel(attr)
    valence.legend(loc="upper right", fontsize=8, ncol=min(7, max(1, len(names))), framealpha=0.9)

    _glitch_rows(glitches, trace, names, colours, t, hollow=False)
    if other is not None:
        _glitch_rows(glitches, other, names, colours, t, hollow=True)
    glitches.set_ylabel("glitches")
    glitches.legend(
        handles=[
            Line2D([], [], ls="", marker="*", ms=10, color="#222222", label="glitch starts"),
            Line2D([], [], ls="", marker="o", ms=4, color="#555555", label="spreads from"),
            Line2D([], [], ls="", marker="^", ms=7, color="#555555", label="caught by"),
            Line2D([], [], ls="", marker="X", ms=9, color="#c0392b", label="nightmare released"),
        ],
        loc="upper right",
        fontsize=8,
        ncol=4,
        framealpha=0.9,
    )

    for ax in axes:
        ax.grid(axis="x", color="#dddddd", lw=0.5)
        ax.set_xlim(0.0, span)
    step = next((s for s in STEPS if span / s <= 12), STEPS[-1])
    glitches.xaxis.set_major_locator(MultipleLocator(step))
    glitches.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _clock(x)))
    glitches.set_xlabel("time into the night (h:mm:ss)" if span >= 3600 else "time (m:ss)")
    fig.tight_layout(rect=(0, 0, 0.97, 0.97))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _colours(names: Sequence[str]) -> dict[str, str]:
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: to_hex(cmap(k % cmap.N)) for k, name in enumerate(names)}


def _spans(trace: NightTrace, end: int) -> list[tuple[int, int, str]]:
    phases = trace.phases
    return [
        (tick, phases[k + 1][0] if k + 1 < len(phases) else end, phase)
        for k, (tick, phase) in enumerate(phases)
    ]


def _phase_bands(ax: Axes, trace: NightTrace, end: int, t: ToSeconds) -> None:
    for a, b, phase in _spans(trace, end):
        ax.axvspan(t(a), t(b), color=PHASE_COLOURS.get(phase, "#eeeeee"), lw=0)


def _phase_strip(ax: Axes, trace: NightTrace, end: int, t: ToSeconds) -> None:
    """The what-if's phases, as a strip along the bottom of the balance panel."""
    for a, b, phase in _spans(trace, end):
        ax.axvspan(t(a), t(b), ymin=0.0, ymax=0.06, color=STRIP.get(phase, "#999999"), lw=0)
    ax.text(0.003, 0.03, "what-if phases", transform=ax.transAxes, va="center", fontsize=7)


def _moments(ax: Axes, trace: NightTrace, t: ToSeconds, span: float) -> None:
    """Scenes, uploads, circles and story lines on the balance panel."""
    previous = (-1e18, "")
    looping = False
    for tick, scene, reason in trace.scenes:
        x = t(tick)
        if x - previous[0] >= span / 40 or reason in ("narrative", "recovery", "trap"):
            ax.axvline(x, color="#555555", lw=0.7, ls=":")
            ax.text(x, 0.985, f"{scene} ", rotation=90, va="top", ha="right", fontsize=7)
            looping = False
        else:  # the room moves between scenes quickly: a short tick, one label
            ax.plot([x, x], [0.955, 1.0], color="#555555", lw=0.6)
            if not looping:
                ax.text(x, 0.94, f" {previous[1]} ⇄ {scene}", va="top", fontsize=7)
                looping = True
        previous = (x, scene)
    for tick, title, by in trace.narratives:
        x = t(tick)
        ax.plot([x], [0.1], marker="v", color="#8a1c1c", ms=7)
        ax.annotate(
            f"{by} uploads “{title}”",
            (x, 0.1),
            xytext=(6, -3),
            textcoords="offset points",
            fontsize=8,
            color="#8a1c1c",
        )
    for tick, by in trace.circles:
        x = t(tick)
        ax.plot([x], [0.17], marker="o", mfc="white", mec="#1f5fa8", mew=1.5, ms=8)
        ax.annotate(
            f"circle opened ({by})",
            (x, 0.17),
            xytext=(7, -3),
            textcoords="offset points",
            fontsize=8,
            color="#1f5fa8",
        )
    if trace.story:
        xs = [t(tick) for tick, _author, _text in trace.story]
        ax.plot(
            xs, [0.03] * len(xs), ls="", marker="|", ms=10, mew=1.5, color="#1f5fa8",
            label="story lines",
        )  # fmt: skip


def _glitch_rows(
    ax: Axes,
    trace: NightTrace,
    names: Sequence[str],
    colours: dict[str, str],
    t: ToSeconds,
    *,
    hollow: bool,
) -> None:
    row = {name: k for k, name in enumerate(names)}
    shift = 0.22 if hollow else 0.0
    alpha = 0.55 if hollow else 1.0
    for tick, _gid, source, target in trace.spreads:
        if source not in row or target not in row:
            continue
        x = t(tick)
        y0, y1 = row[source] + shift, row[target] + shift
        ax.plot([x, x], [y0, y1], color=colours[target], lw=0.6, alpha=0.5 * alpha)
        ax.plot([x], [y0], marker="o", ms=3, color=colours[source], alpha=alpha,
                mfc="none" if hollow else colours[source])  # fmt: skip
        ax.plot([x], [y1], marker="^", ms=6, color=colours[target], alpha=alpha,
                mfc="none" if hollow else colours[target])  # fmt: skip
    for tick, _gid, kind, origin in trace.glitch_starts:
        if origin not in row:
            continue
        ax.plot(
            [t(tick)], [row[origin] + shift], marker="*", ms=11 if kind == "fragment" else 8,
            color="#222222" if not hollow else "#777777", alpha=0.8 * alpha,
            mfc="none" if hollow else None,
        )  # fmt: skip
    for tick, dreamer in trace.nightmares:
        if dreamer in row:
            ax.plot(
                [t(tick)], [row[dreamer] + shift], marker="X", ms=11, color="#c0392b",
                mec="white", alpha=alpha, zorder=5,
            )  # fmt: skip
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(-0.6, len(names) + 0.4)


def _clock(seconds: float) -> str:
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
