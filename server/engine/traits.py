"""Per-dreamer contagion traits (Bosse et al. 2009).

ε (expressiveness) scales how strongly a dreamer sends, δ (openness) how
strongly it receives, η (amplification) whether it amplifies (1) or absorbs
(0) what it perceives, and β (bias) whether amplification drifts up (1) or
down (0). Defaults come from :class:`~.config.EngineConfig`; with a non-zero
``trait_variation`` every dreamer gets a deterministic offset derived from
the seed and its name (not from join order), so all nodes agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import EngineConfig
from .rng import SplitMix64, name_seed

__all__ = ["Traits", "default_traits"]


@dataclass(frozen=True, slots=True)
class Traits:
    """Contagion traits of one dreamer, each in [0, 1]."""

    expressiveness: float
    openness: float
    amplification: float
    bias: float

    def __post_init__(self) -> None:
        for name in ("expressiveness", "openness", "amplification", "bias"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not math.isfinite(value)
                or not 0.0 <= value <= 1.0
            ):
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def default_traits(config: EngineConfig, seed: int, name: str) -> Traits:
    """The configured defaults, varied by up to ``±trait_variation`` per dreamer."""
    spread = config.trait_variation
    base = (config.expressiveness, config.openness, config.amplification, config.bias)
    if spread == 0.0:
        return Traits(*base)
    rng = SplitMix64(name_seed(seed, name))
    varied = [min(1.0, max(0.0, b + spread * (2.0 * rng.random() - 1.0))) for b in base]
    return Traits(*varied)
