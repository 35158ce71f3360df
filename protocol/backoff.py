"""Reconnect delays: capped exponential backoff with jitter.

Shared by every side that reconnects (the terminal client, simulated pods,
the load tester, the server's MQTT ingest). Pure arithmetic: the caller
sleeps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Capped exponential backoff with jitter: delay ``n`` is drawn from
    ``[c/2, c]`` where ``c = min(cap, initial · 2ⁿ)``."""

    initial: float = 0.25
    cap: float = 10.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * 2**self.attempt)
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0
