# ruff: noqa: RUF002  (the model is written in its own notation)
"""Glitches: disturbances that start at one dreamer, spread, and fade.

A glitch has an id, a kind, an origin dreamer and a peak intensity. Each
dreamer carries at most one glitch at a time, as a *load* in (0, 1] (the
strongest that reached it) with that glitch's id; while carried, the load
pushes valence down and arousal up (see :mod:`.contagion`). A new glitch
starting at a dreamer replaces what it carries only when it is stronger
than the load: a weaker one leaves the load and the id alone, is carried by
nobody, and so fades at the end of the tick.

Sources (kinds):

- ``injected`` — a :class:`~.api.GlitchInjected` input (operators, drills);
- ``sensor`` — a :class:`~.api.PodFault` input: intensity
  ``sensor_fault_base + sensor_fault_per_invalid · invalid_count`` (max 1);
- ``stress`` — a stress spike: a pod's measured arousal rises by at least
  ``stress_jump · (1 − fragility_stress_share · f_R)`` between two samples
  (a fragile dreamer spikes sooner); intensity ``stress_gain · rise``;
- ``fragment`` — a corrupted narrative fragment: the room enters a scene
  whose ``corruption`` is above 0; intensity = the corruption, origin = the
  template's uploader when present, else the most fragile dreamer (highest
  f_R, then lowest valence, then name).

**Fragility of a dreamer.** Beside the room's fragility (1 − balance), each
dreamer R has its own, from its recent state only (derived values, never
raw vitals), kept by :func:`.contagion.advance`::

    v̄_R += k_f · (v_R − v̄_R)          (recent valence)
    d = a_R − ā_R;  ā_R += k_f · d     (recent arousal)
    σ²_R += k_f · (d² − σ²_R)          (unsteadiness of arousal)
    f_R = (w_v · (1 − v̄_R) + w_a · ā_R + w_u · min(1, σ_R / σ_ref)) / (w_v + w_a + w_u)

with ``k_f = 1 − exp(−Δt / fragility_window_s)``, the weights
``fragility_{valence,arousal,unsteady}_weight`` and ``σ_ref =
fragility_unsteady_sd``. Low valence, high arousal and unsteady arousal make
a dreamer fragile; f_R is in [0, 1], shown in ``mood`` rows and snapshots.
Its susceptibility ``φ_R = exp(κ · (f_R − f_rest))`` scales the hazard
below, as in a proportional-hazards model: κ = ``fragility_gain``, so e^κ
is the hazard ratio of a fully fragile dreamer to a fully steady one, and
f_rest is the fragility of a dreamer resting at the baseline, which
therefore catches glitches at the configured rate.

**Spread.** Every tick, each dreamer without a glitch catches one with
probability ``1 − exp(−λ_R)``,
``λ_R = rate · δ_R · φ_R · α/(n−1) · Σ_S ε_S g_S · (1 − balance) · Δt``
over expressive carriers S: proportional to the contagion strength toward
R, to R's own fragility and to the room's. The draw uses the engine's
seeded RNG, one draw per susceptible dreamer in name order. The new carrier takes
``spread_share`` of the load of the strongest sender (largest ε_S g_S,
first by name on ties), and the glitch of that sender. Loads then decay
exponentially (``glitch_half_life_s``); below ``glitch_floor`` they are
gone, and a glitch nobody carries any more has faded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sleepsync.protocol.events import EventItem, GlitchFaded, GlitchSpread, GlitchStarted
from sleepsync.protocol.wire import WireValue

from .dreamer import DreamerTable
from .rng import SplitMix64

__all__ = ["GLITCH_KINDS", "Glitch", "GlitchField"]

GLITCH_KINDS = ("fragment", "sensor", "stress", "injected")


def r3(x: float) -> float:
    return round(x, 3)


@dataclass(slots=True)
class Glitch:
    id: int
    kind: str
    origin: str
    peak: float
    started: int  # tick
    reach: int = 1  # dreamers it reached, origin included


class GlitchField:
    """The active glitches of a room and the next glitch id."""

    __slots__ = ("active", "next_id")

    def __init__(self) -> None:
        self.active: dict[int, Glitch] = {}
        self.next_id = 1

    def start(
        self,
        t: DreamerTable,
        i: int,
        kind: str,
        intensity: float,
        tick: int,
        events: list[EventItem],
    ) -> None:
        """Start a glitch of ``kind`` at dreamer column ``i`` (carried there if stronger)."""
        if not math.isfinite(intensity):
            return
        intensity = float(min(1.0, max(0.0, intensity)))
        if intensity <= 0.0:
            return
        glitch = Glitch(self.next_id, kind, t.names[i], intensity, tick)
        self.next_id += 1
        self.active[glitch.id] = glitch
        if intensity > t.glitch[i]:
            t.glitch[i] = intensity
            t.gid[i] = glitch.id
        events.append(GlitchStarted(glitch.id, kind, glitch.origin, r3(intensity)))

    def step(
        self,
        t: DreamerTable,
        rng: SplitMix64,
        *,
        alpha: float,
        fragility: float,
        rate: float,
        share: float,
        decay: float,
        floor: float,
        dt: float,
        tick: int,
        events: list[EventItem],
        gain: float = 0.0,
        rest: float = 0.0,
    ) -> None:
        """Spread, decay and fade; does nothing when no glitch is active.

        ``gain`` is κ and ``rest`` is f_rest of the susceptibility φ_R (κ = 0:
        every dreamer's φ is 1).
        """
        if not self.active:
            return
        n = len(t)
        glitch, gid = t.glitch, t.gid
        if n > 1 and fragility > 0.0 and rate > 0.0:
            total = 0.0
            best = -1
            best_w = 0.0
            for i in range(n):
                g = glitch[i]
                if g > 0.0 and t.online[i] and t.mute[i] <= tick:
                    w = t.eps[i] * g
                    total += w
                    if w > best_w:
                        best_w = w
                        best = i
            if best >= 0:
                base = rate * alpha / (n - 1) * total * fragility * dt
                src_load = glitch[best]
                src_id = gid[best]
                src_name = t.names[best]
                frag = t.frag
                for i in range(n):
                    if glitch[i] > 0.0:
                        continue
                    lam = base * t.dlt[i]
                    if gain:
                        lam *= math.exp(gain * (frag[i] - rest))
                    if rng.random() < 1.0 - math.exp(-lam):
                        glitch[i] = share * src_load
                        gid[i] = src_id
                        record = self.active.get(src_id)
                        if record is not None:
                            record.reach += 1
                        events.append(GlitchSpread(src_id, src_name, t.names[i], r3(glitch[i])))
        carried: set[int] = set()
        for i in range(n):
            g = glitch[i]
            if g > 0.0:
                g *= decay
                if g < floor:
                    glitch[i] = 0.0
                    gid[i] = 0
                else:
                    glitch[i] = g
                    carried.add(gid[i])
        for glitch_id in sorted(self.active):
            if glitch_id not in carried:
                record = self.active.pop(glitch_id)
                lasted_s = r3((tick + 1 - record.started) * dt)
                events.append(
                    GlitchFaded(glitch_id, record.kind, record.origin, record.reach, lasted_s)
                )

    def view(self, t: DreamerTable) -> list[WireValue]:
        carriers: dict[int, int] = {}
        for g_id in t.gid:
            if g_id:
                carriers[g_id] = carriers.get(g_id, 0) + 1
        return [
            {
                "id": g.id,
                "kind": g.kind,
                "origin": g.origin,
                "intensity": r3(g.peak),
                "carriers": carriers.get(g.id, 0),
                "reach": g.reach,
            }
            for g in (self.active[k] for k in sorted(self.active))
        ]
