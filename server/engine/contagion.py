# ruff: noqa: RUF002  (the model is written in its own notation)
"""Emotion contagion (Bosse et al., PRIMA 2009) and the per-tick dreamer update.

Per dimension q (valence, then arousal), from sender S to receiver R::

    γ_SR = ε_S · α_SR · δ_R          γ_R = Σ_S γ_SR
    q*_R = Σ_S γ_SR · q_S / γ_R
    q_R += γ_R · [η_R · (β_R · (1 − (1 − q*_R)(1 − q_R)) + (1 − β_R) · q*_R · q_R)
                  + (1 − η_R) · q*_R − q_R] · Δt

The channel strength is uniform per room and shared among the senders:
α_SR = α / (n − 1). Then with room totals E = Σ ε_S and Q = Σ ε_S q_S::

    γ_R = δ_R · α / (n − 1) · (E − ε_R)      q*_R = (Q − ε_R q_R) / (E − ε_R)

so a tick is O(n). Only *expressive* dreamers send (ε counts as 0 for a
dreamer whose pod is offline or never existed, or whose contagion is cut);
everyone receives. ``γ_R · Δt`` is capped at 1, which keeps every update a
convex combination of values in [0, 1].

After contagion each dreamer is pulled toward its measured level (fresh
telemetry) or the neutral baseline (none, or stale), then toward the
scene's mood target (the safe scene's, with a stronger pull, while released
from a nightmare), and a glitch load g pushes valence down and arousal up.
Values are clamped to [0, 1]. Last, each dreamer's *recent state* moves
toward the new values — exponential averages v̄, ā of valence and arousal
and σ_a² of arousal's squared deviation from ā, at the per-tick fraction
k_f = 1 − exp(−Δt / fragility_window_s) — and gives its fragility f (the
equation is in :mod:`.glitch`, which uses it). :func:`advance` does all of
it in one pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import mul

from .dreamer import DreamerTable

__all__ = ["Pulls", "Totals", "advance", "spiral_update"]


def spiral_update(
    q: float, q_star: float, gamma: float, eta: float, beta: float, dt: float
) -> float:
    """One Bosse et al. update of level ``q`` toward perceived ``q_star`` (reference form)."""
    g = min(1.0, gamma * dt)
    amplified = beta * (1.0 - (1.0 - q_star) * (1.0 - q)) + (1.0 - beta) * q_star * q
    return q + g * (eta * amplified + (1.0 - eta) * q_star - q)


@dataclass(frozen=True, slots=True)
class Pulls:
    """Per-tick constants of :func:`advance` (fractions are per tick)."""

    dt: float
    alpha: float  # effective room channel strength (after recovery damping)
    k_tel: float
    k_base: float
    k_scene: float
    k_release: float
    base_v: float
    base_a: float
    scene_v: float
    scene_a: float
    safe_v: float
    safe_a: float
    glitch_v: float  # valence push per tick at load 1
    glitch_a: float
    stale_ticks: int
    offline_ticks: int
    distress_v: float
    distress_a: float
    #: Fragility: the averaging fraction k_f, the weights (normalised to sum
    #: 1) and 1 / fragility_unsteady_sd.
    k_frag: float = 0.0
    w_valence: float = 0.0
    w_arousal: float = 0.0
    w_unsteady: float = 0.0
    inv_sd: float = 0.0


@dataclass(frozen=True, slots=True)
class Totals:
    """Room aggregates after a tick; ``offline`` are columns whose pod timed out."""

    sum_v: float
    sum_v2: float
    sum_a: float
    offline: list[int]


def advance(t: DreamerTable, p: Pulls, tick: int) -> Totals:
    """Advance every dreamer by one tick in place and return the room totals."""
    names = t.names
    n = len(names)
    val = t.val
    aro = t.aro
    eff = [e if on and m <= tick else 0.0 for e, on, m in zip(t.eps, t.online, t.mute, strict=True)]
    e_tot = sum(eff)
    qv_tot = sum(map(mul, eff, val))
    qa_tot = sum(map(mul, eff, aro))
    a_n = p.alpha / (n - 1) if n > 1 else 0.0
    dt = p.dt
    dlt, eta, beta = t.dlt, t.eta, t.beta
    pod, tel_v, tel_a, tel_age, online = t.pod, t.tel_v, t.tel_a, t.tel_age, t.online
    glitch, release, distress = t.glitch, t.release, t.distress
    k_tel, k_base, k_scene = p.k_tel, p.k_base, p.k_scene
    base_v, base_a, scene_v, scene_a = p.base_v, p.base_a, p.scene_v, p.scene_a
    gpv, gpa = p.glitch_v, p.glitch_a
    stale, offline_after = p.stale_ticks, p.offline_ticks
    dv, da = p.distress_v, p.distress_a
    fr_v, fr_a, fr_u, frag = t.fr_v, t.fr_a, t.fr_u, t.frag
    k_f, w_v, w_a, w_u, inv_sd = p.k_frag, p.w_valence, p.w_arousal, p.w_unsteady, p.inv_sd
    sqrt = math.sqrt
    sum_v = sum_v2 = sum_a = 0.0
    offline: list[int] = []
    for i in range(n):
        v = val[i]
        a = aro[i]
        e = eff[i]
        er = e_tot - e
        if er > 1e-12 and a_n > 0.0:
            g = dlt[i] * a_n * er * dt
            if g > 1.0:
                g = 1.0
            sv = (qv_tot - e * v) / er
            sa = (qa_tot - e * a) / er
            h = eta[i]
            if h > 0.0:
                b = beta[i]
                xv = h * (b * (1.0 - (1.0 - sv) * (1.0 - v)) + (1.0 - b) * sv * v) + (1.0 - h) * sv
                xa = h * (b * (1.0 - (1.0 - sa) * (1.0 - a)) + (1.0 - b) * sa * a) + (1.0 - h) * sa
            else:
                xv = sv
                xa = sa
            nv = v + g * (xv - v)
            na = a + g * (xa - a)
        else:
            nv = v
            na = a
        if pod[i]:
            age = tel_age[i] + 1
            tel_age[i] = age
            if age <= stale:
                nv += k_tel * (tel_v[i] - nv)
                na += k_tel * (tel_a[i] - na)
            else:
                nv += k_base * (base_v - nv)
                na += k_base * (base_a - na)
                if age > offline_after and online[i]:
                    online[i] = False
                    offline.append(i)
        else:
            nv += k_base * (base_v - nv)
            na += k_base * (base_a - na)
        if release[i] > tick:
            nv += p.k_release * (p.safe_v - nv)
            na += p.k_release * (p.safe_a - na)
        else:
            nv += k_scene * (scene_v - nv)
            na += k_scene * (scene_a - na)
        gl = glitch[i]
        if gl > 0.0:
            nv -= gpv * gl
            na += gpa * gl
        if nv < 0.0:
            nv = 0.0
        elif nv > 1.0:
            nv = 1.0
        if na < 0.0:
            na = 0.0
        elif na > 1.0:
            na = 1.0
        val[i] = nv
        aro[i] = na
        if nv < dv and na > da:
            distress[i] += 1
        elif distress[i]:
            distress[i] = 0
        fv = fr_v[i] + k_f * (nv - fr_v[i])
        dev = na - fr_a[i]
        fa = fr_a[i] + k_f * dev
        fu = fr_u[i] + k_f * (dev * dev - fr_u[i])
        fr_v[i] = fv
        fr_a[i] = fa
        fr_u[i] = fu
        unsteady = sqrt(fu) * inv_sd if fu > 0.0 else 0.0
        if unsteady > 1.0:
            unsteady = 1.0
        f = w_v * (1.0 - fv) + w_a * fa + w_u * unsteady
        frag[i] = 0.0 if f < 0.0 else 1.0 if f > 1.0 else f
        sum_v += nv
        sum_v2 += nv * nv
        sum_a += na
    return Totals(sum_v, sum_v2, sum_a, offline)
