"""Simulated physiology of one sleeper in a pod: pure, deterministic per seed.

How it works: an emotional trajectory (valence, arousal) follows a
mean-reverting random walk around the profile's resting point, with the
profile's events on top (stress spikes for ``anxious``, slow collapses for
``fragile``). The vital signs follow the arousal:

- respiration: 10..20 breaths/min, slower after a ``breathe`` cue; its phase
  drives respiratory sinus arrhythmia (RSA), so heart rate rises on each
  inhalation and falls on exhalation, with a swing that shrinks as arousal
  (sympathetic tone) grows;
- HRV (RMSSD): high when calm, low when aroused;
- skin conductance: a tonic level that tracks arousal slowly, plus skin
  conductance responses (SCRs, a fast rise and slow decay) that fire as a
  Poisson process whose rate grows with arousal.

A calm or breathe cue pulls the trajectory toward a calmer point; its effect
decays over about half a minute. A ``glitchy`` pod also has sensor-fault
episodes (most payloads corrupt for a few seconds), single corrupt payloads
and sensor dropouts (nothing sent). Everything random comes from one
``random.Random`` seeded with the pod's seed, so the same seed gives the same
signals and the same faults.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from sleepsync.protocol.telemetry import VitalSigns

__all__ = [
    "CORRUPTIONS",
    "PROFILES",
    "Emission",
    "Physiology",
    "Profile",
    "ProfileParams",
    "profile_for",
]

Profile = Literal["calm", "anxious", "fragile", "glitchy"]
PROFILES: tuple[str, ...] = ("calm", "anxious", "fragile", "glitchy", "mixed")
_BASE_PROFILES: tuple[Profile, ...] = ("calm", "anxious", "fragile", "glitchy")
Corruption = Literal["garbage", "truncated", "out_of_range", "wrong_type", "oversize"]
CORRUPTIONS: tuple[Corruption, ...] = (
    "garbage",
    "truncated",
    "out_of_range",
    "wrong_type",
    "oversize",
)


@dataclass(frozen=True, slots=True)
class ProfileParams:
    """The resting point and the character of a profile (rates per minute)."""

    valence: float
    arousal: float
    #: Random-walk strength per sqrt(second), and pull back per second.
    volatility: float
    reversion: float
    #: Stress spikes: how often and how much arousal jumps.
    spike_rate: float = 0.0
    spike_size: float = 0.0
    #: Collapses: how often valence sinks toward ``collapse_to`` for a while.
    collapse_rate: float = 0.0
    collapse_to: float = 0.15
    collapse_s: float = 20.0
    #: Sensor faults: episodes of mostly corrupt payloads, single corrupt
    #: payloads (share of samples) and dropouts.
    fault_rate: float = 0.0
    fault_share: float = 0.0
    corrupt_share: float = 0.0
    dropout_rate: float = 0.0


PARAMS: dict[Profile, ProfileParams] = {
    "calm": ProfileParams(
        0.72, 0.25, volatility=0.03, reversion=0.08, spike_rate=0.2, spike_size=0.1
    ),
    "anxious": ProfileParams(
        0.42, 0.68, volatility=0.07, reversion=0.05, spike_rate=2.0, spike_size=0.3
    ),
    "fragile": ProfileParams(
        0.5,
        0.45,
        volatility=0.06,
        reversion=0.04,
        spike_rate=0.5,
        spike_size=0.2,
        collapse_rate=0.6,
    ),
    "glitchy": ProfileParams(
        0.6,
        0.35,
        volatility=0.04,
        reversion=0.06,
        fault_rate=1.0,
        fault_share=0.85,
        corrupt_share=0.02,
        dropout_rate=0.5,
    ),
}


def profile_for(profile: str, index: int, seed: int) -> Profile:
    """The profile of pod number ``index``; ``mixed`` deals the four in turn."""
    for known in _BASE_PROFILES:
        if profile == known:
            return known
    if profile != "mixed":
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    order = list(_BASE_PROFILES)
    random.Random(f"mixed:{seed}").shuffle(order)
    return order[index % len(order)]


@dataclass(frozen=True, slots=True)
class Emission:
    """What a pod does at one sample time."""

    kind: Literal["sample", "corrupt", "dropout"]
    vitals: VitalSigns
    #: The pod's own estimates, in [0, 1].
    valence: float
    arousal: float
    corruption: Corruption | None = None


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


class Physiology:
    """One sleeper's signals, advanced one sample (``1 / rate_hz`` s) per :meth:`step`."""

    def __init__(self, profile: Profile, seed: int | str, rate_hz: float = 2.0) -> None:
        if not rate_hz > 0:
            raise ValueError("rate_hz must be positive")
        self.profile = profile
        self.params = PARAMS[profile]
        self.dt = 1.0 / rate_hz
        self.rng = random.Random(f"physiology:{profile}:{seed}")
        p = self.params
        self.t = 0.0
        self.valence = _clip(p.valence + self.rng.gauss(0, 0.05), 0.0, 1.0)
        self.arousal = _clip(p.arousal + self.rng.gauss(0, 0.05), 0.0, 1.0)
        self.resp_phase = self.rng.uniform(0, 2 * math.pi)
        self.tonic = 1.5 + 8.0 * self.arousal
        self._scrs: list[tuple[float, float]] = []  # (onset t, amplitude)
        self._calm = 0.0  # cue effect, decays
        self._breathe = 0.0
        self._collapse_until = -1.0
        self._fault_until = -1.0
        self._dropout_until = -1.0

    # ------------------------------------------------------------ cues
    def cue(self, kind: str, intensity: float) -> None:
        """React to a server cue: calm and breathe soothe; wake raises arousal a bit."""
        intensity = _clip(intensity, 0.0, 1.0)
        if kind in ("calm", "breathe"):
            self._calm = max(self._calm, 0.4 + 0.6 * intensity)
            self._collapse_until = min(self._collapse_until, self.t)
            if kind == "breathe":
                self._breathe = max(self._breathe, 1.0)
        elif kind == "wake":
            self.arousal = _clip(self.arousal + 0.2 * intensity, 0.0, 1.0)

    # ------------------------------------------------------------ one sample
    def _chance(self, per_minute: float) -> bool:
        return per_minute > 0 and self.rng.random() < per_minute / 60.0 * self.dt

    def _emotion(self) -> None:
        p, dt, rng = self.params, self.dt, self.rng
        target_v, target_a = p.valence, p.arousal
        if self._chance(p.collapse_rate):
            self._collapse_until = self.t + p.collapse_s * rng.uniform(0.5, 1.5)
        if self.t < self._collapse_until:
            target_v, target_a = p.collapse_to, max(target_a, 0.7)
        # Cues pull toward a calm, pleasant point; their effect fades (tau 30 s).
        target_v += (0.8 - target_v) * self._calm
        target_a += (0.15 - target_a) * self._calm
        decay = math.exp(-dt / 30.0)
        self._calm *= decay
        self._breathe *= decay
        pull = 1.0 - math.exp(-(p.reversion + 0.5 * self._calm) * dt)
        noise = p.volatility * math.sqrt(dt)
        self.valence += (target_v - self.valence) * pull + noise * rng.gauss(0, 1)
        self.arousal += (target_a - self.arousal) * pull + noise * rng.gauss(0, 1)
        if self._chance(p.spike_rate):
            jump = p.spike_size * rng.uniform(0.5, 1.0)
            self.arousal += jump
            self.valence -= jump / 2
        self.valence = _clip(self.valence, 0.0, 1.0)
        self.arousal = _clip(self.arousal, 0.0, 1.0)

    def _vitals(self) -> VitalSigns:
        a, dt, rng = self.arousal, self.dt, self.rng
        resp = _clip(10.0 + 10.0 * a - 3.5 * self._breathe + rng.gauss(0, 0.3), 4.0, 40.0)
        self.resp_phase = (self.resp_phase + 2 * math.pi * resp / 60.0 * dt) % (2 * math.pi)
        rsa_swing = 2.0 + 8.0 * (1.0 - a)  # beats/min, vagal tone falls with arousal
        hr = 52.0 + 40.0 * a + rsa_swing * math.sin(self.resp_phase) + rng.gauss(0, 0.8)
        hrv = 15.0 + 70.0 * (1.0 - a) ** 1.5 + rng.gauss(0, 3.0)
        self.tonic += (1.5 + 8.0 * a - self.tonic) * (1.0 - math.exp(-dt / 20.0))
        if rng.random() < (1.0 + 12.0 * a) / 60.0 * dt:
            self._scrs.append((self.t, rng.uniform(0.05, 0.6) * (0.5 + a)))
        self._scrs = [(t0, amp) for t0, amp in self._scrs if self.t - t0 < 20.0][-16:]
        phasic = sum(
            amp * (1.0 - math.exp(-(self.t - t0) / 0.75)) * math.exp(-(self.t - t0) / 3.0)
            for t0, amp in self._scrs
        )
        return VitalSigns(
            heart_rate=round(_clip(hr, 35.0, 200.0), 2),
            hrv=round(_clip(hrv, 5.0, 200.0), 2),
            skin_conductance=round(_clip(self.tonic + phasic + rng.gauss(0, 0.02), 0.1, 60.0), 3),
            respiration=round(resp, 2),
        )

    def step(self) -> Emission:
        """Advance one sample and say what the pod sends."""
        self.t += self.dt
        self._emotion()
        vitals = self._vitals()
        rng, p = self.rng, self.params
        est_v = round(_clip(self.valence + rng.gauss(0, 0.02), 0.0, 1.0), 3)
        est_a = round(_clip(self.arousal + rng.gauss(0, 0.02), 0.0, 1.0), 3)
        if self._chance(p.dropout_rate):
            self._dropout_until = self.t + rng.uniform(1.0, 4.0)
        if self.t < self._dropout_until:
            return Emission("dropout", vitals, est_v, est_a)
        if self._chance(p.fault_rate):
            self._fault_until = self.t + rng.uniform(3.0, 6.0)
        share = p.fault_share if self.t < self._fault_until else p.corrupt_share
        if share and rng.random() < share:
            return Emission("corrupt", vitals, est_v, est_a, rng.choice(CORRUPTIONS))
        return Emission("sample", vitals, est_v, est_a)
