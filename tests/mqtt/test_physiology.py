"""Simulated physiology: deterministic, in range, profile-shaped, cue-responsive."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from sleepsync.client.physiology import CORRUPTIONS, Physiology, profile_for
from sleepsync.client.pods import SimulatedPod, corrupt_payload
from sleepsync.protocol.errors import TelemetryInvalid
from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns, decode_telemetry
from sleepsync.protocol.topics import BrokerUrl


def run(profile: str, seed: object = 1, steps: int = 600, rate: float = 5.0) -> list:  # type: ignore[type-arg]
    phys = Physiology(profile_for(profile, 0, 0), str(seed), rate)
    return [phys.step() for _ in range(steps)]


def test_same_seed_same_signals() -> None:
    assert run("glitchy", seed=5) == run("glitchy", seed=5)
    assert run("glitchy", seed=5) != run("glitchy", seed=6)


@pytest.mark.parametrize("profile", ["calm", "anxious", "fragile", "glitchy"])
def test_every_sample_is_valid_telemetry(profile: str) -> None:
    pod = SimulatedPod("pod-001", "r1", Physiology(profile, 3, 5.0), BrokerUrl("h"), rate=5.0)  # type: ignore[arg-type]
    for _ in range(1500):
        payload = pod.next_payload()
        if payload is None:
            continue
        try:
            decode_telemetry(payload, topic_pod="pod-001")
        except TelemetryInvalid:
            assert profile == "glitchy"
    if profile == "glitchy":
        assert pod.corrupt_sent > 0 and pod.dropouts > 0
    else:
        assert pod.corrupt_sent == 0 and pod.dropouts == 0


def test_every_corruption_is_refused_by_the_server() -> None:
    sample = TelemetrySample("pod-001", "b1", 1, 1.0, VitalSigns(60, 50, 2, 12), 0.5, 0.5)
    rng = random.Random(0)
    for kind in CORRUPTIONS:
        for _ in range(20):
            with pytest.raises(TelemetryInvalid):
                decode_telemetry(corrupt_payload(sample, kind, rng), topic_pod="pod-001")


def test_profiles_differ() -> None:
    calm = statistics.mean(e.arousal for e in run("calm", steps=3000))
    anxious = statistics.mean(e.arousal for e in run("anxious", steps=3000))
    assert anxious > calm + 0.2
    calm_hr = statistics.mean(e.vitals.heart_rate for e in run("calm", steps=3000))
    anxious_hr = statistics.mean(e.vitals.heart_rate for e in run("anxious", steps=3000))
    assert anxious_hr > calm_hr + 5
    calm_hrv = statistics.mean(e.vitals.hrv for e in run("calm", steps=3000))
    anxious_hrv = statistics.mean(e.vitals.hrv for e in run("anxious", steps=3000))
    assert calm_hrv > anxious_hrv


def test_heart_rate_follows_breathing() -> None:
    """Respiratory sinus arrhythmia: heart rate rises with inspiration."""
    phys = Physiology("calm", 1, 10.0)
    pairs = []
    for _ in range(2000):
        emission = phys.step()
        pairs.append((math.sin(phys.resp_phase), emission.vitals.heart_rate))
    assert statistics.correlation([p for p, _ in pairs], [h for _, h in pairs]) > 0.5


def test_calm_cues_lower_arousal() -> None:
    plain = Physiology("anxious", 9, 5.0)
    cued = Physiology("anxious", 9, 5.0)
    for _ in range(50):
        plain.step()
        cued.step()
    cued.cue("breathe", 1.0)
    after_plain = [plain.step() for _ in range(150)]
    after_cued = [cued.step() for _ in range(150)]
    assert (
        statistics.mean(e.arousal for e in after_cued)
        < statistics.mean(e.arousal for e in after_plain) - 0.1
    )
    assert statistics.mean(e.vitals.respiration for e in after_cued) < statistics.mean(
        e.vitals.respiration for e in after_plain
    )


def test_mixed_deals_every_profile() -> None:
    dealt = {profile_for("mixed", i, 42) for i in range(8)}
    assert dealt == {"calm", "anxious", "fragile", "glitchy"}
    with pytest.raises(ValueError):
        profile_for("sleepy", 0, 0)
