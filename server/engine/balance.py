# ruff: noqa: RUF002  (the model is written in its own notation)
"""The emotional balance of a room.

    balance = μ · (1 − w · min(1, 2σ))

where μ is the mean valence of the room's dreamers, σ its population
standard deviation (at most 0.5 for values in [0, 1], so 2σ is in [0, 1])
and w the configured ``balance_dispersion_weight``. A room is balanced when
its dreamers feel good *together*: a high mean with wide dispersion (some
elated, some miserable) is less balanced than the same mean shared by all.
The result is in [0, 1]; a uniform neutral room (all 0.5) has balance 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["balance_from_sums", "room_balance"]


def balance_from_sums(n: int, sum_v: float, sum_v2: float, weight: float) -> float:
    """Balance from the count, sum and sum of squares of valences (``n > 0``)."""
    mean = sum_v / n
    var = sum_v2 / n - mean * mean
    sd = math.sqrt(var) if var > 0.0 else 0.0
    spread = 2.0 * sd
    if spread > 1.0:
        spread = 1.0
    b = mean * (1.0 - weight * spread)
    return 0.0 if b < 0.0 else 1.0 if b > 1.0 else b


def room_balance(valences: Sequence[float], weight: float) -> float:
    """Balance of a room with these valences (1.0 for an empty room)."""
    if not valences:
        return 1.0
    return balance_from_sums(len(valences), sum(valences), sum(v * v for v in valences), weight)
