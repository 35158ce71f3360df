"""The story's night as a shipped scenario: *the lighthouse night*.

Seven sleepers share room ``lighthouse``, each in a pod. Lila uploads *The
Lighthouse*, a calm narrative, and the night settles. Rico, restless, uploads
*Beyond the Static*: a narrative whose broken stair is a corrupted fragment
and whose two scenes send the room back and forth between them. Each time
the room enters the stair a glitch starts at Rico; it spreads, first to the
most fragile sleepers (Jasper, then Pia); Rico, distressed while the room
loops, is caught in a nightmare loop and released, again and again. After
the second release Ana and Nell, awake in the lab, join the room as dreamers
from their terminals: a pod streams telemetry and cannot speak, so only they
can take turns in a circle. The room's balance spirals down until it
collapses. Recovery damps the contagion, isolates the carriers, moves to the
lamplit circle, cues the pods to calm and opens a storytelling circle: Ana
and Nell tell the story in turn, and the room comes back to stable.

The sleepers are simulated, deterministically (one seeded RNG): each feels
what the dream makes the engine's dreamer feel (half its own resting point,
half the dream), a glitch it carries lowers its valence and raises its
arousal, and a calm cue brings it to rest for a while. Their pods sample
five times a second; the engine ticks ten. :func:`record_lighthouse_night`
runs it all through an :class:`~.tap.EngineTap` and returns the journal;
the package ships it (``scenarios/lighthouse_night.ssj.gz``, made by
``sleepsync journal scenario``) and ``tests/server/test_journal_scenario.py``
checks that it replays bit-exact and tells the arc in order.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from functools import cache
from importlib import resources

from sleepsync.protocol.events import NightmareReleased
from sleepsync.protocol.narrative import NarrativeTemplate, parse_template
from sleepsync.protocol.telemetry import TelemetrySample

from ..engine import (
    DreamerJoined,
    Engine,
    EngineConfig,
    EngineInput,
    StoryLine,
    Telemetry,
    TemplateUploaded,
)
from .schema import STRIPPED_VITALS, Segment
from .tap import EngineTap, JournalWriter

__all__ = ["SCENARIOS", "lighthouse_template", "record_lighthouse_night", "static_template"]

ROOM = "lighthouse"
SEED = 2007
TICK_HZ = 10
#: Seconds into the night of the two uploads, and its length.
LIGHTHOUSE_AT = 5.0
STATIC_AT = 100.0
LENGTH_S = 480.0
#: Unix time of the night's first tick (pods' timestamps count from it).
T0 = 1764111600.0
#: How much a glitch a sleeper carries lowers its valence and raises its arousal.
GLITCH_V = 0.4
GLITCH_A = 0.34
#: Where a calm cue brings a sleeper, for 20 s and more (with the cue's intensity).
CALM_V = 0.62
CALM_A = 0.3
RICO_DREAM = 0.85
JASPER_DREAM = 0.7
OTHERS_DREAM = 0.55
#: Nightmare releases after which the two awake in the lab join the room.
JOIN_AFTER_RELEASES = 2


@cache
def _template(name: str) -> NarrativeTemplate:
    data = resources.files(__package__).joinpath("scenarios", f"{name}.json").read_bytes()
    return parse_template(data, "json")


def lighthouse_template() -> NarrativeTemplate:
    """*The Lighthouse*: the calm narrative Lila uploads."""
    return _template("the_lighthouse")


def static_template() -> NarrativeTemplate:
    """*Beyond the Static*: Rico's template, with its corrupted fragment."""
    return _template("beyond_the_static")


@dataclass(slots=True)
class Sleeper:
    """One simulated sleeper and pod: a resting point, and how unsteady its arousal is."""

    name: str
    rest_v: float
    rest_a: float
    unsteady: float
    #: Story lines told when the circle comes to this sleeper (None: passes).
    lines: tuple[str, ...] | None = None
    #: A pod streams telemetry and cannot speak; False: a person awake at a
    #: terminal, joined as a dreamer over the websocket, who can tell lines.
    pod: bool = True
    #: How much the sleeper feels the dream (the rest is its own resting point).
    dream: float = 0.45
    v: float = 0.5
    a: float = 0.4
    calm_until: float = -1.0
    seq: int = 0
    told: int = 0

    def feel(
        self, rng: random.Random, now: float, dream_v: float, dream_a: float, glitch: float
    ) -> tuple[float, float]:
        """What the pod measures now: half the sleeper's rest, half the dream, and the glitch."""
        w = self.dream
        target_v = (1 - w) * self.rest_v + w * dream_v - GLITCH_V * glitch
        target_a = (1 - w) * self.rest_a + w * dream_a + GLITCH_A * glitch
        if now < self.calm_until:
            target_v, target_a = max(target_v, CALM_V), min(target_a, CALM_A)
        self.v += 0.12 * (target_v - self.v) + rng.gauss(0.0, 0.01)
        self.a += 0.12 * (target_a - self.a) + rng.gauss(0.0, self.unsteady)
        self.v = min(1.0, max(0.0, self.v))
        self.a = min(1.0, max(0.0, self.a))
        return round(self.v, 3), round(self.a, 3)


def _cast() -> list[Sleeper]:
    """Rico lives in the dreamscape and Jasper was once swallowed by it: both feel
    the dream more than the others, and Jasper rests low."""
    return [
        Sleeper("lila", 0.72, 0.3, 0.01),
        Sleeper("rico", 0.5, 0.62, 0.045, dream=RICO_DREAM),
        Sleeper("mira", 0.7, 0.32, 0.01),
        Sleeper("jasper", 0.3, 0.55, 0.05, dream=JASPER_DREAM),
        Sleeper("omar", 0.7, 0.3, 0.012, dream=OTHERS_DREAM),
        Sleeper("pia", 0.68, 0.33, 0.012, dream=OTHERS_DREAM),
        Sleeper("sol", 0.72, 0.28, 0.01, dream=OTHERS_DREAM),
        Sleeper("ana", 0.7, 0.3, 0.0, pod=False, lines=(
            "Lila built these pods so that no one would have to dream alone.",
            "The light turns, and it finds each of us.",
            "Rico, the stair stops folding when you tell us where you are.",
        )),
        Sleeper("nell", 0.7, 0.3, 0.0, pod=False, lines=(
            "The glitches follow the fragile ones. So we hold the fragile ones.",
            "Nobody here is only data.",
            "Jasper, the fog is thinner when someone else is talking.",
        )),
    ]  # fmt: skip


def record_lighthouse_night(*, seed: int = SEED, hash_every: int = 10) -> bytes:
    """The lighthouse night, run through the engine and kept as a journal (bytes)."""
    engine = Engine(seed, EngineConfig(tick_hz=TICK_HZ))
    tap = EngineTap(engine, hash_every)
    tap.mark_start()
    out = io.BytesIO()
    segment = Segment(node="scenario", reason="scenario", created=T0)
    writer = JournalWriter(out, tap, room=ROOM, segment=segment)
    rng = random.Random(f"lighthouse:{seed}")
    cast = _cast()
    by_name = {s.name: s for s in cast}
    for s in cast:
        s.v, s.a = s.rest_v, s.rest_a
    holder_since: tuple[str, int] | None = None
    joined = False
    releases = 0
    for k in range(round(LENGTH_S * TICK_HZ)):
        now = k / TICK_HZ
        inputs: list[EngineInput] = []
        t = engine.dreamers
        if not joined and releases >= JOIN_AFTER_RELEASES:
            # the two awake in the lab see Rico's nightmare come back and join
            # the room as dreamers from their terminals: they can speak in a circle
            inputs.extend(DreamerJoined(s.name) for s in cast if not s.pod)
            joined = True
        if k % 2 == 0:  # pods sample at 5 Hz
            for s in cast:
                if not s.pod:
                    continue
                i = t.index.get(s.name)
                dream = (t.val[i], t.aro[i], t.glitch[i]) if i is not None else (s.v, s.a, 0.0)
                v, a = s.feel(rng, now, *dream)
                s.seq += 1
                ts = round(T0 + now, 3)
                sample = TelemetrySample(s.name, "night-1", s.seq, ts, STRIPPED_VITALS, v, a)
                inputs.append(Telemetry(sample))
        if k == round(LIGHTHOUSE_AT * TICK_HZ):
            inputs.append(TemplateUploaded("lila", lighthouse_template()))
        if k == round(STATIC_AT * TICK_HZ):
            inputs.append(TemplateUploaded("rico", static_template()))
        circle = engine.circle
        if circle is None:
            holder_since = None
        else:
            if holder_since is None or holder_since[0] != circle.holder:
                holder_since = (circle.holder, k)
            teller = by_name.get(circle.holder)
            waited = k - holder_since[1]
            if teller is not None and teller.lines is None and waited == TICK_HZ:
                inputs.append(StoryLine(teller.name, "/pass"))
            elif teller is not None and teller.lines is not None and waited == 2 * TICK_HZ:
                line = teller.lines[teller.told % len(teller.lines)]
                teller.told += 1
                inputs.append(StoryLine(teller.name, line))
        result = tap.step(inputs)
        releases += sum(isinstance(item, NightmareReleased) for item in result.events)
        for cue in result.cues:
            sleeper = by_name.get(cue.pod)
            if sleeper is not None:
                sleeper.calm_until = now + 20.0 + 20.0 * cue.intensity
        if k % 100 == 99:
            writer.write(tap.take())
    writer.write(tap.take())
    writer.finish("closed")
    return out.getvalue()


#: Shipped scenarios: name → (what it is, how to record it).
SCENARIOS = {
    "lighthouse-night": (
        "the story's night: a corrupted template, spreading glitches, a nightmare loop, "
        "collapse, the storytelling circle, recovery",
        record_lighthouse_night,
    ),
}
