"""A tiny explicit PRNG whose whole state is one integer.

SplitMix64 (Steele, Lea & Flood 2014): the state advances by a fixed odd
constant and each output is a bijective mix of it. It passes BigCrush, needs
no tables, and snapshots as a single ``int``, which is all the engine needs:
randomness that is part of the state, identical on every node.
"""

from __future__ import annotations

__all__ = ["SplitMix64", "mix64", "name_seed"]

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def mix64(z: int) -> int:
    """The SplitMix64 finaliser: a bijection on 64-bit integers."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def name_seed(seed: int, name: str) -> int:
    """A 64-bit value derived from ``seed`` and ``name`` (FNV-1a over UTF-8, then mixed).

    Used for per-dreamer trait variation, so a dreamer's traits do not depend
    on who joined first.
    """
    h = 0xCBF29CE484222325
    for byte in name.encode("utf-8"):
        h = ((h ^ byte) * 0x100000001B3) & _MASK
    return mix64(h ^ mix64(seed))


class SplitMix64:
    """SplitMix64 generator; ``state`` is the whole state (a 64-bit int)."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = seed & _MASK

    def next_u64(self) -> int:
        self.state = (self.state + _GOLDEN) & _MASK
        return mix64(self.state)

    def random(self) -> float:
        """A float in [0, 1) with 53 random bits."""
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))
