"""Collapse and recovery: the room's phase as an explicit state machine.

The whole machine is :data:`TABLE`. Each row says: in phase ``source``, when
balance is ``below``/``above`` the config threshold ``threshold`` on every
tick for ``hold`` seconds, move to ``target``::

    stable ──below strain_below, strain_hold_s──────────────▶ strained
    strained ──below collapse_below, collapse_hold_s────────▶ collapsed
    strained ──above strain_clear_above, strain_clear_hold_s▶ stable
    collapsed ──above recover_above, recover_hold_s─────────▶ recovering
    recovering ──above stable_above, stable_hold_s──────────▶ stable
    recovering ──below collapse_below, collapse_hold_s──────▶ collapsed

Each row keeps its own count of consecutive ticks; a tick on which the
condition fails resets it, and a transition resets them all. Clearing needs
a higher threshold than entering (hysteresis) held for a while, so a noisy
balance cannot make the phase flap, and at most one transition happens per
tick, so no state is ever skipped. The engine carries out the recovery
actions when a transition happens (see :mod:`.engine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .config import EngineConfig

__all__ = ["PHASES", "TABLE", "PhaseMachine", "Rule"]

PHASES = ("stable", "strained", "collapsed", "recovering")


@dataclass(frozen=True, slots=True)
class Rule:
    source: str
    target: str
    test: Literal["below", "above"]
    threshold: str  # EngineConfig field
    hold: str  # EngineConfig field, seconds
    reason: str


TABLE: tuple[Rule, ...] = (
    Rule("stable", "strained", "below", "strain_below", "strain_hold_s", "balance fell"),
    Rule(
        "strained", "collapsed", "below", "collapse_below", "collapse_hold_s", "balance collapsed"
    ),
    Rule(
        "strained",
        "stable",
        "above",
        "strain_clear_above",
        "strain_clear_hold_s",
        "balance steadied",
    ),
    Rule("collapsed", "recovering", "above", "recover_above", "recover_hold_s", "balance rose"),
    Rule("recovering", "stable", "above", "stable_above", "stable_hold_s", "balance restored"),
    Rule("recovering", "collapsed", "below", "collapse_below", "collapse_hold_s", "relapse"),
)


@dataclass(frozen=True, slots=True)
class Transition:
    """A transition that happened, with the figures that caused it."""

    rule: Rule
    balance: float
    threshold: float
    held_s: float


class PhaseMachine:
    """Runs :data:`TABLE`; ``phase`` and ``holds`` are its whole state."""

    __slots__ = ("_limits", "_rows", "holds", "phase")

    def __init__(self, config: EngineConfig, phase: str = "stable") -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        self.phase = phase
        self.holds = [0] * len(TABLE)
        self._limits = [
            (float(getattr(config, r.threshold)), config.ticks(getattr(config, r.hold)))
            for r in TABLE
        ]
        self._rows = config

    def observe(self, balance: float) -> Transition | None:
        """Feed one tick's balance; return the transition it caused, if any."""
        for k, rule in enumerate(TABLE):
            if rule.source != self.phase:
                continue
            threshold, ticks = self._limits[k]
            ok = balance < threshold if rule.test == "below" else balance > threshold
            if not ok:
                self.holds[k] = 0
                continue
            self.holds[k] += 1
            if self.holds[k] >= ticks:
                held = self.holds[k] / self._rows.tick_hz
                self.phase = rule.target
                self.holds = [0] * len(TABLE)
                return Transition(rule, balance, threshold, held)
        return None
