# ruff: noqa: RUF002  (the model is written in its own notation)
"""The dream engine: one room's dynamics, advanced one tick per ``step``.

How a tick runs (``now`` is :attr:`Engine.tick` before the step):

1. Inputs are sorted into a canonical order (kind, then every field the
   engine reads), so their order within a tick never matters: leaves,
   joins, telemetry, pod status, pod faults, injected glitches, template
   uploads, story lines. Telemetry sorts by pod, ts, boot, seq, valence and
   arousal: never by raw vital signs, which the engine does not read, so a
   journal that keeps derived values only replays in the same order.
2. Every dreamer advances (:func:`.contagion.advance`): contagion, pulls
   toward telemetry/baseline and the scene's mood, glitch push, and its
   recent state and fragility. Balance and mean arousal are computed; pods
   silent too long go offline.
3. Glitches spread (more readily to fragile dreamers), decay and fade
   (:mod:`.glitch`).
4. The phase machine sees the balance (:mod:`.recovery`); a transition to
   ``collapsed`` runs the recovery actions: damp α, isolate the strongest
   glitch carriers, move to the safe scene, open a storytelling circle and
   send calm cues to pods. Back to ``stable`` lifts the damping and closes a
   recovery circle.
5. The narrative moves along a transition or catches a trap.
6. The circle's turn timer, leavers and time limit. Turns go only to the
   dreamers that can speak (people, not pods: :meth:`Engine.speakers`).
7. Nightmare loops are detected and released.
8. One ``mood`` event closes every tick that has dreamers.

An empty room only counts ticks: nothing drifts, no phase or scene changes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources

from sleepsync.protocol.events import (
    CircleLifted,
    DreamerWentOffline,
    EventItem,
    Mood,
    MoodRow,
    PhaseChanged,
    PhaseFigures,
    RecoveryActions,
)
from sleepsync.protocol.narrative import (
    NarrativeTemplate,
    Scene,
    parse_template,
    template_to_wire,
)
from sleepsync.protocol.telemetry import Cue, CueKind
from sleepsync.protocol.wire import WireMap, WireValue

from .api import (
    DreamerJoined,
    DreamerLeft,
    EngineInput,
    GlitchInjected,
    PodFault,
    PodOffline,
    Refusal,
    StepResult,
    StoryLine,
    Telemetry,
    TemplateUploaded,
)
from .balance import balance_from_sums
from .circle import Circle, parse_command
from .config import EngineConfig
from .contagion import Pulls, advance
from .dreamer import DreamerTable
from .glitch import GlitchField
from .narrative_runtime import NarrativeRuntime
from .nightmare import release_nightmares
from .recovery import PhaseMachine, Transition
from .rng import SplitMix64
from .snapshot import SNAPSHOT_VERSION, EngineParts, read_snapshot, write_snapshot
from .traits import Traits, default_traits

__all__ = ["SNAPSHOT_VERSION", "Engine", "canonical_order", "load_default_narrative"]


@lru_cache(maxsize=1)
def load_default_narrative() -> NarrativeTemplate:
    """The built-in narrative shipped as ``default_narrative.json``."""
    data = resources.files(__package__).joinpath("default_narrative.json").read_bytes()
    return parse_template(data, "json")


def _r3(x: float) -> float:
    return round(x, 3)


#: Builds a :class:`MoodRow` from a tuple without the per-field call overhead.
_new_row = tuple.__new__


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf


def _input_key(inp: EngineInput) -> tuple[object, ...]:
    """A total order on inputs: kind first, then every field the engine reads.

    Telemetry's vital signs are left out: the engine never reads them, and a
    journal (derived data only) does not keep them.
    """
    if isinstance(inp, DreamerLeft):
        return (0, inp.dreamer)
    if isinstance(inp, DreamerJoined):
        return (1, inp.dreamer)
    if isinstance(inp, Telemetry):
        s = inp.sample
        return (2, s.pod, s.ts, s.boot, s.seq, s.valence, s.arousal)
    if isinstance(inp, PodOffline):
        return (3, inp.dreamer)
    if isinstance(inp, PodFault):
        return (4, inp.dreamer, inp.invalid_count)
    if isinstance(inp, GlitchInjected):
        return (5, inp.dreamer, _finite(inp.intensity))
    if isinstance(inp, TemplateUploaded):
        doc = json.dumps(template_to_wire(inp.template), sort_keys=True)
        return (6, inp.author, doc)
    return (7, inp.author, inp.text)


def canonical_order(inputs: Sequence[EngineInput]) -> list[EngineInput]:
    """``inputs`` in the order ``step`` applies them (a journal records this order)."""
    return sorted(inputs, key=_input_key)


class Engine:
    """A room's dream engine; satisfies :class:`~.api.DreamEngine`."""

    __slots__ = (
        "_pulls",
        "arousal",
        "balance",
        "circle",
        "config",
        "damped",
        "dreamers",
        "glitches",
        "machine",
        "narrative",
        "overrides",
        "rng",
        "seed",
        "tick",
    )

    def __init__(
        self,
        seed: int,
        config: EngineConfig | None = None,
        narrative: NarrativeTemplate | None = None,
    ) -> None:
        self.config = config if config is not None else EngineConfig()
        self.seed = seed
        self.rng = SplitMix64(seed)
        #: Ticks stepped so far.
        self.tick = 0
        self.dreamers = DreamerTable()
        self.overrides: dict[str, Traits] = {}
        self.glitches = GlitchField()
        self.machine = PhaseMachine(self.config)
        self.narrative = NarrativeRuntime(
            narrative if narrative is not None else load_default_narrative()
        )
        self.circle: Circle | None = None
        self.balance = self.config.baseline_valence
        self.arousal = self.config.baseline_arousal
        self.damped = False
        self._pulls: Pulls | None = None

    # -- public API ------------------------------------------------------------

    @property
    def phase(self) -> str:
        """The recovery state: stable, strained, collapsed or recovering."""
        return self.machine.phase

    def set_traits(self, name: str, traits: Traits) -> None:
        """Fix ``name``'s traits (now, or when it joins); part of the state."""
        self.overrides[name] = traits
        i = self.dreamers.index.get(name)
        if i is not None:
            self.dreamers.set_traits(i, traits)

    def speakers(self) -> list[str]:
        """The present dreamers that can tell a line (not pods), in name order."""
        t = self.dreamers
        return [name for name, pod in zip(t.names, t.pod, strict=True) if not pod]

    def traits(self, name: str) -> Traits:
        """The traits of a present dreamer (KeyError if absent)."""
        return self.dreamers.traits(self.dreamers.index[name])

    def step(self, inputs: Sequence[EngineInput]) -> StepResult:
        """Apply ``inputs`` (any order) and advance one tick."""
        events: list[EventItem] = []
        cues: list[Cue] = []
        refused: list[Refusal] = []
        now = self.tick
        for inp in canonical_order(inputs):
            self._apply(inp, now, events, refused)
        t = self.dreamers
        cfg = self.config
        n = len(t)
        if n:
            pulls = self._pulls or self._make_pulls()
            totals = advance(t, pulls, now)
            self.balance = balance_from_sums(
                n, totals.sum_v, totals.sum_v2, cfg.balance_dispersion_weight
            )
            self.arousal = min(1.0, max(0.0, totals.sum_a / n))
            for i in totals.offline:
                events.append(DreamerWentOffline(t.names[i], "timeout"))
            self.glitches.step(
                t,
                self.rng,
                alpha=pulls.alpha,
                fragility=1.0 - self.balance,
                rate=cfg.glitch_spread_rate,
                share=cfg.glitch_spread_share,
                decay=0.5 ** (cfg.dt / cfg.glitch_half_life_s),
                floor=cfg.glitch_floor,
                dt=cfg.dt,
                tick=now,
                events=events,
                gain=cfg.fragility_gain,
                rest=cfg.rest_fragility,
            )
            transition = self.machine.observe(self.balance)
            if transition is not None:
                self._on_transition(transition, now, events, cues)
            entered = self.narrative.advance(
                now,
                cfg.dt,
                self.balance,
                self.arousal,
                hold=self.phase in ("collapsed", "recovering"),
                default_dwell_s=cfg.max_scene_dwell_s,
                events=events,
            )
            if entered is not None:
                self._entered(entered, now, events)
        self._circle_tick(now, events)
        if n:
            window = cfg.ticks(cfg.nightmare_window_s)
            loop = self.narrative.loop(now, window, cfg.nightmare_min_revisits)
            if loop is not None:
                release_nightmares(
                    t,
                    loop,
                    window=window,
                    release_ticks=cfg.ticks(cfg.nightmare_release_s),
                    release_s=cfg.nightmare_release_s,
                    tick=now,
                    events=events,
                    cues=cues,
                )
            # One row per dreamer per tick: built as bare tuples, the cheapest record.
            rows = tuple(
                _new_row(MoodRow, (name, round(v, 3), round(a, 3), round(g, 3), s, round(f, 3)))
                for name, v, a, g, s, f in zip(
                    t.names, t.val, t.aro, t.glitch, t.seq, t.frag, strict=True
                )
            )
            events.append(Mood(_r3(self.balance), self.phase, rows))
        self.tick = now + 1
        return StepResult(events, cues, refused)

    def view(self) -> WireMap:
        """Derived state for a newcomer: never raw vital signs."""
        t = self.dreamers
        scene = self.narrative.scene
        dreamers: list[WireValue] = [
            {
                "name": t.names[i],
                "valence": _r3(t.val[i]),
                "arousal": _r3(t.aro[i]),
                "glitch": _r3(t.glitch[i]),
                "fragility": _r3(t.frag[i]),
                "online": t.online[i],
                "pod": t.pod[i],
            }
            for i in range(len(t))
        ]
        return {
            "tick": self.tick,
            "balance": _r3(self.balance),
            "phase": self.phase,
            "scene": {"id": scene.id, "text": scene.text},
            "narrative": self.narrative.template.title,
            "narrative_by": self.narrative.author,
            "circle": None if self.circle is None else self.circle.view(self.tick, self.config.dt),
            "dreamers": dreamers,
            "glitches": self.glitches.view(t),
        }

    def snapshot(self) -> bytes:
        """The whole state, RNG included, as canonical msgpack bytes (see :mod:`.snapshot`)."""
        return write_snapshot(
            EngineParts(
                seed=self.seed,
                config=self.config,
                tick=self.tick,
                rng=self.rng,
                balance=self.balance,
                arousal=self.arousal,
                damped=self.damped,
                machine=self.machine,
                dreamers=self.dreamers,
                overrides=self.overrides,
                glitches=self.glitches,
                narrative=self.narrative,
                circle=self.circle,
            )
        )

    def state_hash(self) -> str:
        """sha256 of the canonical snapshot, in hex."""
        return hashlib.sha256(self.snapshot()).hexdigest()

    @classmethod
    def restore(cls, data: bytes) -> Engine:
        """An engine that continues exactly where ``snapshot()`` left off.

        Every part of ``data`` is checked first: a corrupt or mistyped
        snapshot raises :class:`~sleepsync.protocol.errors.LocalError` here.
        """
        parts = read_snapshot(data)
        engine = cls.__new__(cls)
        engine.seed = parts.seed
        engine.config = parts.config
        engine.tick = parts.tick
        engine.rng = parts.rng
        engine.balance = parts.balance
        engine.arousal = parts.arousal
        engine.damped = parts.damped
        engine.machine = parts.machine
        engine.dreamers = parts.dreamers
        engine.overrides = parts.overrides
        engine.glitches = parts.glitches
        engine.narrative = parts.narrative
        engine.circle = parts.circle
        engine._pulls = None
        return engine

    # -- inputs ----------------------------------------------------------------

    def _apply(
        self, inp: EngineInput, now: int, events: list[EventItem], refused: list[Refusal]
    ) -> None:
        t = self.dreamers
        cfg = self.config
        if isinstance(inp, DreamerLeft):
            if inp.dreamer in t.index:
                t.remove(inp.dreamer)
        elif isinstance(inp, DreamerJoined):
            self._ensure(inp.dreamer)
        elif isinstance(inp, Telemetry):
            s = inp.sample
            i = self._ensure(s.pod)
            rise = s.arousal - t.tel_a[i]
            jump = cfg.stress_jump * (1.0 - cfg.fragility_stress_share * t.frag[i])
            if t.pod[i] and rise >= jump and rise > 0.0:
                self.glitches.start(t, i, "stress", cfg.stress_gain * rise, now, events)
            t.pod[i] = True
            t.tel_v[i] = s.valence
            t.tel_a[i] = s.arousal
            t.tel_age[i] = 0
            t.seq[i] = s.seq
            t.online[i] = True
        elif isinstance(inp, PodOffline):
            i_off = t.index.get(inp.dreamer)
            if i_off is not None and t.online[i_off]:
                t.online[i_off] = False
                t.tel_age[i_off] = max(t.tel_age[i_off], cfg.ticks(cfg.stale_after_s))
                events.append(DreamerWentOffline(inp.dreamer, "status"))
        elif isinstance(inp, PodFault):
            i_f = t.index.get(inp.dreamer)
            if i_f is not None:
                intensity = cfg.sensor_fault_base + cfg.sensor_fault_per_invalid * max(
                    0, inp.invalid_count
                )
                self.glitches.start(t, i_f, "sensor", intensity, now, events)
        elif isinstance(inp, GlitchInjected):
            i_g = t.index.get(inp.dreamer)
            if i_g is not None:
                self.glitches.start(t, i_g, "injected", inp.intensity, now, events)
        elif isinstance(inp, TemplateUploaded):
            to_safe = self.phase in ("collapsed", "recovering")
            scene = self.narrative.replace(inp.template, inp.author, now, events, to_safe=to_safe)
            self._entered(scene, now, events)
        else:
            self._story(inp, now, events, refused)

    def _ensure(self, name: str) -> int:
        t = self.dreamers
        i = t.index.get(name)
        if i is None:
            cfg = self.config
            traits = self.overrides.get(name) or default_traits(cfg, self.seed, name)
            i = t.add(name, traits, cfg.baseline_valence, cfg.baseline_arousal, cfg.rest_fragility)
        return i

    def _story(
        self, line: StoryLine, now: int, events: list[EventItem], refused: list[Refusal]
    ) -> None:
        t = self.dreamers
        i = t.index.get(line.author)
        if i is None or t.pod[i]:
            return  # pods cannot tell lines; nor can those who left
        command = parse_command(line.text)
        circle = self.circle
        cfg = self.config

        def refuse(what: str, reason: str) -> None:
            refused.append(Refusal(line.author, line.text, what, reason))

        if command == "open":
            if circle is None:
                self.circle = Circle.open(
                    line.author, self.speakers(), now, cfg.circle_turn_s, events
                )
            else:
                refuse("circle", f"a circle is already open; it is {circle.holder}'s turn")
            return
        if circle is None:
            if command is not None:
                refuse("pass" if command == "pass" else "circle", "no storytelling circle is open")
            return
        if command == "close":
            circle.close(f"closed by {line.author}", events)
            self.circle = None
        elif circle.holder != line.author:
            if command == "pass":
                refuse("pass", f"it is not your turn: {circle.holder} holds the circle")
            return
        elif command == "pass":
            circle.pass_turn(self.speakers(), "passed", now, events)
        else:
            lift = cfg.circle_lift
            val, aro = t.val, t.aro
            for i in range(len(t)):
                val[i] += lift * (1.0 - val[i])
                aro[i] -= 0.5 * lift * aro[i]
            circle.told += 1
            events.append(CircleLifted(line.author, lift))
            circle.pass_turn(self.speakers(), "told", now, events)

    # -- phases, scenes, circle --------------------------------------------------

    def _on_transition(
        self, tr: Transition, now: int, events: list[EventItem], cues: list[Cue]
    ) -> None:
        cfg = self.config
        t = self.dreamers
        rule = tr.rule
        figures = PhaseFigures(_r3(tr.balance), tr.threshold, _r3(tr.held_s))
        # The phase item comes first; on collapse its actions are known only
        # after they ran (and emitted their own items), so it goes in last.
        at = len(events)
        actions: RecoveryActions | None = None
        if rule.target == "collapsed":
            self.damped = True
            self._pulls = None
            carriers = sorted(
                (i for i in range(len(t)) if t.glitch[i] > 0.0),
                key=lambda i: (-t.glitch[i], t.names[i]),
            )[: cfg.isolate_count]
            until = now + cfg.ticks(cfg.isolate_s)
            for i in carriers:
                t.mute[i] = max(t.mute[i], until)
            opened = False
            speakers = self.speakers()
            if self.circle is None and speakers:
                self.circle = Circle.open("recovery", speakers, now, cfg.circle_turn_s, events)
                opened = True
            if self.narrative.scene.id != self.narrative.template.safe:
                scene = self.narrative.move(self.narrative.template.safe, "recovery", now, events)
                self._entered(scene, now, events)
            sent = 0
            for i in range(len(t)):
                if t.pod[i]:
                    kind: CueKind = "breathe" if t.aro[i] > cfg.breathe_above else "calm"
                    cues.append(Cue(t.names[i], kind, _r3(1.0 - self.balance), "room collapsed"))
                    sent += 1
            isolated = tuple(t.names[i] for i in sorted(carriers))
            safe = self.narrative.template.safe
            actions = RecoveryActions(cfg.recovery_damping, isolated, safe, opened, sent)
        elif rule.target == "stable" and self.damped:
            self.damped = False
            self._pulls = None
            if self.circle is not None and self.circle.opened_by == "recovery":
                self.circle.close("stable", events)
                self.circle = None
        events.insert(at, PhaseChanged(rule.source, rule.target, rule.reason, figures, actions))

    def _entered(self, scene: Scene, now: int, events: list[EventItem]) -> None:
        self._pulls = None
        t = self.dreamers
        if scene.corruption <= 0.0 or not len(t):
            return
        author = self.narrative.author
        if author is not None and author in t.index:
            origin = t.index[author]
        else:
            origin = min(range(len(t)), key=lambda i: (-t.frag[i], t.val[i], t.names[i]))
        self.glitches.start(t, origin, "fragment", scene.corruption, now, events)

    def _circle_tick(self, now: int, events: list[EventItem]) -> None:
        circle = self.circle
        if circle is None:
            return
        cfg = self.config
        members = self.speakers()
        if not members:
            circle.close("empty", events)
            self.circle = None
            return
        if circle.holder not in self.dreamers.index:
            circle.pass_turn(members, "left", now, events)
        elif now + 1 - circle.turn_since >= cfg.ticks(cfg.circle_turn_s):
            circle.pass_turn(members, "timeout", now, events)
        timed = circle.opened_by != "recovery" or self.phase == "stable"
        if timed and now + 1 - circle.opened >= cfg.ticks(cfg.circle_max_s):
            circle.close("time", events)
            self.circle = None

    def _make_pulls(self) -> Pulls:
        cfg = self.config
        scene = self.narrative.scene
        safe = self.narrative.template.scene(self.narrative.template.safe)
        alpha = cfg.channel_strength * (cfg.recovery_damping if self.damped else 1.0)
        weights = (
            cfg.fragility_valence_weight
            + cfg.fragility_arousal_weight
            + cfg.fragility_unsteady_weight
        )
        self._pulls = Pulls(
            dt=cfg.dt,
            alpha=alpha,
            k_tel=cfg.per_tick(cfg.telemetry_pull),
            k_base=cfg.per_tick(cfg.baseline_pull),
            k_scene=cfg.per_tick(cfg.scene_pull),
            k_release=cfg.per_tick(cfg.nightmare_release_pull),
            base_v=cfg.baseline_valence,
            base_a=cfg.baseline_arousal,
            scene_v=scene.mood.valence,
            scene_a=scene.mood.arousal,
            safe_v=safe.mood.valence,
            safe_a=safe.mood.arousal,
            glitch_v=cfg.glitch_valence_push * cfg.dt,
            glitch_a=cfg.glitch_arousal_push * cfg.dt,
            stale_ticks=cfg.ticks(cfg.stale_after_s),
            offline_ticks=cfg.ticks(cfg.offline_after_s),
            distress_v=cfg.nightmare_valence_below,
            distress_a=cfg.nightmare_arousal_above,
            k_frag=1.0 - math.exp(-cfg.dt / cfg.fragility_window_s),
            w_valence=cfg.fragility_valence_weight / weights,
            w_arousal=cfg.fragility_arousal_weight / weights,
            w_unsteady=cfg.fragility_unsteady_weight / weights,
            inv_sd=1.0 / cfg.fragility_unsteady_sd,
        )
        return self._pulls
