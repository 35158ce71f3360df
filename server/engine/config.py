# ruff: noqa: RUF002, RUF003  (the model is written in its own notation)
"""Every tunable of the dream engine, with documented defaults.

Rates are per second and turned into per-tick fractions with
``1 - exp(-rate * dt)``, so changing ``tick_hz`` keeps the dynamics' time
scale. Durations are seconds and turned into whole ticks (rounded up).
Thresholds on balance, valence and arousal are in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from sleepsync.protocol.wire import WireMap

__all__ = ["EngineConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Tunables of one room's dream engine (all keyword-only)."""

    #: Ticks per second; one ``step`` advances ``1 / tick_hz`` seconds.
    tick_hz: float = 10.0

    # -- contagion (Bosse et al. 2009) -----------------------------------
    #: Room channel strength α. Senders share it: α_SR = α / (n - 1), so a
    #: receiver's total γ_R stays at most α whatever the room size.
    channel_strength: float = 1.0
    #: Default traits ε, δ, η, β of a new dreamer.
    expressiveness: float = 0.6
    openness: float = 0.6
    amplification: float = 0.3
    bias: float = 0.5
    #: Each trait is varied per dreamer by up to ± this (0 disables).
    trait_variation: float = 0.1

    # -- telemetry, baseline and scene pulls ------------------------------
    #: Neutral state a dreamer without fresh telemetry drifts to.
    baseline_valence: float = 0.5
    baseline_arousal: float = 0.4
    #: Pull rates (per second) toward the measured level, the baseline, and
    #: the current scene's mood target.
    telemetry_pull: float = 0.8
    baseline_pull: float = 0.05
    scene_pull: float = 0.05
    #: After this long without a sample a dreamer drifts to the baseline...
    stale_after_s: float = 2.0
    #: ...and after this long its pod is offline: it stops sending contagion.
    offline_after_s: float = 10.0

    # -- balance -------------------------------------------------------------
    #: balance = mean_v * (1 - w * min(1, 2 * std_v)); this is w.
    balance_dispersion_weight: float = 0.5

    # -- glitches ------------------------------------------------------------
    glitch_half_life_s: float = 6.0
    #: A glitch load below this is gone.
    glitch_floor: float = 0.02
    #: Per second, at load 1: valence pushed down, arousal pushed up.
    glitch_valence_push: float = 0.1
    glitch_arousal_push: float = 0.1
    #: Spread hazard per second at full contagion strength and fragility 1.
    glitch_spread_rate: float = 2.0
    #: A newly infected dreamer carries this share of its source's load.
    glitch_spread_share: float = 0.7
    #: Sensor fault: intensity = base + per_invalid * invalid_count (max 1).
    sensor_fault_base: float = 0.2
    sensor_fault_per_invalid: float = 0.05
    #: A stress spike is an arousal rise of at least this between two samples;
    #: its intensity is ``stress_gain * rise`` (max 1).
    stress_jump: float = 0.3
    stress_gain: float = 2.0

    # -- fragility (per dreamer; equation in glitch.py) ----------------------
    #: A dreamer's fragility f in [0, 1] comes from its own recent state:
    #: exponential averages, over about this many seconds, of its valence, its
    #: arousal and the squared deviation of its arousal from that average.
    fragility_window_s: float = 30.0
    #: Weights of low valence (1 − v̄), high arousal (ā) and unsteady arousal
    #: (σ_a / fragility_unsteady_sd, at most 1); f is their weighted mean.
    fragility_valence_weight: float = 0.4
    fragility_arousal_weight: float = 0.3
    fragility_unsteady_weight: float = 0.3
    #: Standard deviation of arousal at which unsteadiness counts fully.
    fragility_unsteady_sd: float = 0.08
    #: Susceptibility gain κ: the spread hazard toward R is scaled by
    #: exp(κ·(f_R − f_rest)), f_rest being a dreamer resting at the baseline.
    fragility_gain: float = 3.0
    #: A stress spike at R needs an arousal rise of stress_jump · (1 − share · f_R).
    fragility_stress_share: float = 0.5

    # -- collapse and recovery (see recovery.py for the table) -------------
    strain_below: float = 0.40
    strain_hold_s: float = 1.0
    strain_clear_above: float = 0.45
    strain_clear_hold_s: float = 2.0
    collapse_below: float = 0.30
    collapse_hold_s: float = 3.0
    recover_above: float = 0.40
    recover_hold_s: float = 3.0
    stable_above: float = 0.45
    stable_hold_s: float = 5.0
    #: While collapsed or recovering α is multiplied by this.
    recovery_damping: float = 0.4
    #: On collapse the strongest glitch carriers are isolated (their outgoing
    #: contagion and glitch spread cut) for ``isolate_s``.
    isolate_count: int = 2
    isolate_s: float = 10.0
    #: Arousal above which a recovery cue is ``breathe`` rather than ``calm``.
    breathe_above: float = 0.7

    # -- narrative -------------------------------------------------------------
    #: Longest stay in a scene (other than the safe scene) when the scene sets
    #: no ``max_dwell``; beyond it the room is moved to the safe scene (trap).
    max_scene_dwell_s: float = 300.0

    # -- storytelling circle --------------------------------------------------
    circle_turn_s: float = 20.0
    #: Each story line told in turn lifts valence by lift * (1 - v) and lowers
    #: arousal by lift / 2 * a, for every dreamer.
    circle_lift: float = 0.05
    #: A circle opened by a member closes after this long.
    circle_max_s: float = 180.0

    # -- nightmare loops -------------------------------------------------------
    nightmare_window_s: float = 20.0
    nightmare_valence_below: float = 0.3
    nightmare_arousal_above: float = 0.65
    #: Scene re-entries within the window that make a loop.
    nightmare_min_revisits: int = 2
    nightmare_release_s: float = 15.0
    #: Pull rate toward the safe scene's mood while released.
    nightmare_release_pull: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{f.name} must be a number")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{f.name} must be finite and >= 0, got {value!r}")
            if f.type == "int" and not isinstance(value, int):
                raise ValueError(f"{f.name} must be an integer")
        if self.tick_hz <= 0:
            raise ValueError("tick_hz must be > 0")
        for name in _UNIT_FIELDS:
            if getattr(self, name) > 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if not self.collapse_below < self.recover_above <= self.stable_above:
            raise ValueError("need collapse_below < recover_above <= stable_above")
        if not self.strain_below < self.strain_clear_above:
            raise ValueError("need strain_below < strain_clear_above")
        if not self.collapse_below <= self.strain_below:
            raise ValueError("need collapse_below <= strain_below")
        if self.offline_after_s < self.stale_after_s:
            raise ValueError("need stale_after_s <= offline_after_s")
        if self.glitch_half_life_s <= 0:
            raise ValueError("glitch_half_life_s must be > 0")
        if self.fragility_window_s <= 0 or self.fragility_unsteady_sd <= 0:
            raise ValueError("fragility_window_s and fragility_unsteady_sd must be > 0")
        weights = (
            self.fragility_valence_weight
            + self.fragility_arousal_weight
            + self.fragility_unsteady_weight
        )
        if weights <= 0:
            raise ValueError("the fragility weights must not all be 0")

    @property
    def dt(self) -> float:
        return 1.0 / self.tick_hz

    def ticks(self, seconds: float) -> int:
        """``seconds`` as whole ticks, rounded up, at least 1."""
        return max(1, math.ceil(seconds * self.tick_hz - 1e-9))

    def per_tick(self, rate: float) -> float:
        """A per-second rate as the fraction of the gap closed in one tick."""
        return 1.0 - math.exp(-rate * self.dt)

    def fragility(self, valence: float, arousal: float, unsteady_var: float) -> float:
        """f = (w_v·(1 − v̄) + w_a·ā + w_u·min(1, σ_a / σ_ref)) / (w_v + w_a + w_u).

        ``valence`` and ``arousal`` are the dreamer's averages v̄ and ā,
        ``unsteady_var`` the average squared deviation of its arousal (σ_a²).
        """
        wv = self.fragility_valence_weight
        wa = self.fragility_arousal_weight
        wu = self.fragility_unsteady_weight
        sd = math.sqrt(unsteady_var) if unsteady_var > 0.0 else 0.0
        unsteady = min(1.0, sd / self.fragility_unsteady_sd)
        return (wv * (1.0 - valence) + wa * arousal + wu * unsteady) / (wv + wa + wu)

    @property
    def rest_fragility(self) -> float:
        """The fragility of a dreamer resting at the baseline (steady arousal)."""
        return self.fragility(self.baseline_valence, self.baseline_arousal, 0.0)

    def to_wire(self) -> WireMap:
        return dict(asdict(self))

    @classmethod
    def from_wire(cls, m: Mapping[str, object]) -> EngineConfig:
        """The inverse of :meth:`to_wire`: every field, and no other key (ValueError)."""
        known = [f.name for f in fields(cls)]
        missing = [name for name in known if name not in m]
        if missing:
            raise ValueError(f"{missing[0]} is missing")
        unknown = sorted(str(key) for key in m if key not in known)
        if unknown:
            raise ValueError(f"{unknown[0]} is not a setting")
        return cls(**m)  # type: ignore[arg-type]


_UNIT_FIELDS = (
    "expressiveness",
    "openness",
    "amplification",
    "bias",
    "trait_variation",
    "baseline_valence",
    "baseline_arousal",
    "balance_dispersion_weight",
    "glitch_floor",
    "glitch_spread_share",
    "sensor_fault_base",
    "sensor_fault_per_invalid",
    "stress_jump",
    "strain_below",
    "strain_clear_above",
    "collapse_below",
    "recover_above",
    "stable_above",
    "recovery_damping",
    "breathe_above",
    "fragility_valence_weight",
    "fragility_arousal_weight",
    "fragility_unsteady_weight",
    "fragility_stress_share",
    "circle_lift",
    "nightmare_valence_below",
    "nightmare_arousal_above",
)
