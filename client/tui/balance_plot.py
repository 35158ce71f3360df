"""The room's balance over the last minutes, with phase changes and glitch onsets marked."""

from __future__ import annotations

from textual.reactive import reactive
from textual_plotext import PlotextPlot

from sleepsync.client.roomview import HISTORY_S, Mark

from .theme import PHASE_RGB

__all__ = ["BalancePlot", "phase_segments"]


def phase_segments(
    points: tuple[tuple[float, float], ...], marks: tuple[Mark, ...], phase: str
) -> list[tuple[str, list[float], list[float]]]:
    """Split the points where the phase changed: [(phase, times, balances)].

    Each segment starts with the last point of the one before, so the line
    stays joined. ``phase`` is the phase now (of the last segment).
    """
    changes = [(m.ts, m.label) for m in marks if m.kind == "phase"]
    # The phase before the first change in view is unknown from marks: assume
    # the first change's "from" is what the line was; use stable before any.
    current = "stable" if changes else phase
    out: list[tuple[str, list[float], list[float]]] = [(current, [], [])]
    k = 0
    for t, b in points:
        while k < len(changes) and changes[k][0] <= t:
            current = changes[k][1]
            k += 1
            last = out[-1]
            seed_t, seed_b = (last[1][-1:], last[2][-1:]) if last[1] else ([], [])
            out.append((current, list(seed_t), list(seed_b)))
        out[-1][1].append(t)
        out[-1][2].append(b)
    return [seg for seg in out if seg[1]]


class BalancePlot(PlotextPlot):
    """Balance against seconds before the latest event, coloured by phase.

    Phase changes are vertical lines in the new phase's colour; glitch
    onsets are ``x`` marks on the line.
    """

    DEFAULT_CSS = """
    BalancePlot {
        height: 1fr;
        min-height: 8;
    }
    """

    #: (server time, balance) points, oldest first.
    points: reactive[tuple[tuple[float, float], ...]] = reactive(())
    marks: reactive[tuple[Mark, ...]] = reactive(())
    phase: reactive[str] = reactive("stable")

    def on_mount(self) -> None:
        self._draw()

    def watch_points(self) -> None:
        self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("room balance · | phase change · x glitch")
        plt.ylim(0, 1)
        plt.yticks([0, 0.3, 0.5, 0.7, 1.0])
        plt.xlabel("seconds ago")
        if not self.points:
            plt.xlim(-60, 0)
            self.refresh()
            return
        now = self.points[-1][0]
        span = max(60.0, min(HISTORY_S, now - self.points[0][0]))
        plt.xlim(-span, 0)
        for phase, ts, bs in phase_segments(self.points, self.marks, self.phase):
            colour = PHASE_RGB.get(phase, (200, 200, 200))
            plt.plot([t - now for t in ts], bs, marker="braille", color=colour)
        for mark in self.marks:
            x = mark.ts - now
            if mark.kind == "phase":
                plt.vline(x, PHASE_RGB.get(mark.label, (200, 200, 200)))
            else:
                y = _balance_at(self.points, mark.ts)
                plt.scatter([x], [y], marker="x", color=(230, 90, 230))
        self.refresh()


def _balance_at(points: tuple[tuple[float, float], ...], ts: float) -> float:
    before = [b for t, b in points if t <= ts]
    return before[-1] if before else points[0][1]
