"""Per-dreamer fragility: from the dreamer's own recent state, raising its glitch hazard."""

from __future__ import annotations

import math

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from sleepsync.protocol.events import GlitchSpread, GlitchStarted, Mood
from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns
from sleepsync.server.engine import (
    DreamerJoined,
    Engine,
    EngineConfig,
    EngineInput,
    GlitchInjected,
    Telemetry,
    TemplateUploaded,
)
from sleepsync.server.engine.dreamer import DreamerTable

from engine_helpers import calm_template, kinds, run, scene, tel, template

FRAGILE = ("ana", "ben", "cal", "dee")
STEADY = ("eve", "fay", "gus", "hal")


def fragility(engine: Engine, name: str) -> float:
    return engine.dreamers.frag[engine.dreamers.index[name]]


def unsteady(k: int, j: int) -> float:
    """A fragile pod's arousal: a square wave, each step below a stress spike."""
    return 0.09 if ((k + 3 * j) // 10) % 2 else -0.09


def night(seed: int, config: EngineConfig, ticks: int = 900) -> dict[str, int]:
    """Four fragile and four steady pods and one neutral origin, in one room; a
    glitch injected at the origin every 10 s. Returns the catches per group."""
    engine = Engine(seed, config)
    caught = {"fragile": 0, "steady": 0}
    for k in range(ticks):
        batch: list[EngineInput] = [
            tel(name, k, 0.3, 0.7 + unsteady(k, j)) for j, name in enumerate(FRAGILE)
        ]
        batch += [tel(name, k, 0.7, 0.3) for name in STEADY]
        batch.append(tel("origin", k, 0.5, 0.45))
        if k % 100 == 50:
            batch.append(GlitchInjected("origin", 1.0))
        for spread in kinds(engine.step(batch).events, GlitchSpread):
            if spread.to in FRAGILE:
                caught["fragile"] += 1
            elif spread.to in STEADY:
                caught["steady"] += 1
    return caught


class TestTheMeasure:
    def test_low_valence_high_unsteady_arousal_is_fragile(self) -> None:
        engine = Engine(1, EngineConfig(trait_variation=0.0), calm_template())
        for k in range(300):
            engine.step([tel("rico", k, 0.2, 0.75 + unsteady(k, 0)), tel("lila", k, 0.8, 0.25)])
        rico, lila = fragility(engine, "rico"), fragility(engine, "lila")
        assert rico > 0.6 and lila < 0.4 and rico > lila + 0.25
        t = engine.dreamers
        assert all(0.0 <= f <= 1.0 for f in t.frag)
        i = t.index["rico"]
        assert t.fr_u[i] > 0.0 and t.fr_v[i] < t.fr_v[t.index["lila"]]

    def test_the_column_is_the_equation_in_the_docstring(self) -> None:
        config = EngineConfig(
            fragility_valence_weight=0.2, fragility_arousal_weight=0.5, fragility_unsteady_sd=0.05
        )
        engine = Engine(3, config, calm_template())
        for k in range(120):
            engine.step([tel("rico", k, 0.3, 0.6 + unsteady(k, 1)), tel("mira", k, 0.6, 0.4)])
        t = engine.dreamers
        for i in range(len(t)):
            expected = config.fragility(t.fr_v[i], t.fr_a[i], t.fr_u[i])
            assert math.isclose(t.frag[i], expected, abs_tol=1e-12)

    def test_a_newcomer_rests_at_the_baseline(self) -> None:
        config = EngineConfig()
        engine = Engine(1, config, calm_template())
        engine.step([DreamerJoined("nora")])
        assert math.isclose(fragility(engine, "nora"), config.rest_fragility, abs_tol=1e-3)
        assert config.fragility(1.0, 0.0, 0.0) == 0.0 and config.fragility(0.0, 1.0, 1.0) == 1.0

    def test_mood_rows_and_the_view_show_it(self) -> None:
        engine = Engine(1, EngineConfig(), calm_template())
        events = run(engine, 20, [tel("rico", 1, 0.1, 0.9), DreamerJoined("lila")])
        row = {r.name: r for r in kinds(events, Mood)[-1].dreamers}
        assert row["rico"].fragility is not None and row["lila"].fragility is not None
        assert row["rico"].fragility > row["lila"].fragility
        dreamers = engine.view()["dreamers"]
        assert isinstance(dreamers, list)
        shown = {d["name"]: d["fragility"] for d in dreamers}  # type: ignore[index,call-overload]
        assert shown == {"lila": row["lila"].fragility, "rico": row["rico"].fragility}

    def test_the_config_refuses_a_degenerate_measure(self) -> None:
        for bad in (
            {"fragility_window_s": 0.0},
            {"fragility_unsteady_sd": 0.0},
            {
                "fragility_valence_weight": 0.0,
                "fragility_arousal_weight": 0.0,
                "fragility_unsteady_weight": 0.0,
            },
            {"fragility_stress_share": 1.5},
        ):
            try:
                EngineConfig(**bad)  # type: ignore[arg-type]
            except ValueError:
                continue
            raise AssertionError(f"accepted {bad}")


class TestGlitches:
    def test_fragile_dreamers_catch_spreading_glitches_at_least_twice_as_often(self) -> None:
        """Over many seeds, in the same room: fragile dreamers catch spreading
        glitches at least twice as often as steady ones; without the gain, as
        often. Glitches are short here (half-life 1.5 s), so catching one is
        never certain and the counts show the hazard, not saturation."""
        seeds = range(60)
        on = EngineConfig(glitch_half_life_s=1.5)
        off = EngineConfig(glitch_half_life_s=1.5, fragility_gain=0.0)
        with_gain = [night(seed, on) for seed in seeds]
        fragile = sum(c["fragile"] for c in with_gain)
        steady = sum(c["steady"] for c in with_gain)
        assert steady > 50 and fragile >= 2.0 * steady, (fragile, steady)
        without = [night(seed, off) for seed in seeds[:20]]
        ratio = sum(c["fragile"] for c in without) / sum(c["steady"] for c in without)
        assert 0.7 < ratio < 1.4, ratio

    def test_a_corrupted_fragment_starts_in_the_most_fragile_dreamer(self) -> None:
        corrupt = template(
            [
                scene("a", 0.5, 0.5, ("c", {"after": 0.1})),
                scene("c", 0.3, 0.7, ("s", {"after": 100}), corruption=0.6),
                scene("s", 0.8, 0.2),
            ],
            "a",
            "s",
        )
        engine = Engine(1, EngineConfig(), calm_template())
        for k in range(100):  # same valence; rico's arousal is high and unsteady
            engine.step([tel("rico", k, 0.4, 0.7 + unsteady(k, 0)), tel("mira", k, 0.4, 0.3)])
        assert fragility(engine, "rico") > fragility(engine, "mira")
        events = run(engine, 3, [TemplateUploaded("ghost", corrupt)])
        assert [(e.glitch, e.origin) for e in kinds(events, GlitchStarted)] == [
            ("fragment", "rico")
        ]

    def test_a_fragile_dreamer_spikes_on_a_smaller_rise(self) -> None:
        config = EngineConfig(stress_jump=0.3, fragility_stress_share=0.5)

        def spikes(valence: float, arousal: float) -> list[str]:
            engine = Engine(1, config, calm_template())
            for k in range(200):
                engine.step([tel("rico", k, valence, arousal + unsteady(k, 0) / 3)])
            rise = arousal + 0.25 - engine.dreamers.tel_a[0]
            assert 0.2 < rise < 0.3
            events = engine.step([tel("rico", 500, valence, arousal + 0.25)]).events
            return [e.glitch for e in kinds(events, GlitchStarted)]

        assert spikes(0.15, 0.7) == ["stress"]  # fragile: the rise is enough
        assert spikes(0.85, 0.2) == []  # steady: it is not


class TestDerivedDataOnly:
    @settings(max_examples=30, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["lila", "rico"]),
                st.floats(0, 1),
                st.floats(0, 1),
                st.floats(20, 250),
                st.floats(0, 500),
            ),
            min_size=1,
            max_size=60,
        )
    )
    def test_vital_signs_never_change_the_run(
        self, samples: list[tuple[str, float, float, float, float]]
    ) -> None:
        """The engine reads derived values only: the same samples with other
        (or stripped) vital signs give the same events and state hash."""

        def with_vitals(hr: float | None, hrv: float | None) -> tuple[object, str]:
            engine = Engine(5, EngineConfig(), calm_template())
            events = []
            for seq, (pod, v, a, h, r) in enumerate(samples):
                vitals = VitalSigns(hr if hr is not None else h, hrv or r, 1.0, 12.0)
                sample = TelemetrySample(pod, "b", seq // 3, 100.0, vitals, v, a)
                # two samples a tick, same (pod, ts, boot, seq) apart from vitals
                twin = TelemetrySample(pod, "b", seq // 3, 100.0, VitalSigns(30, 1, 1, 3), v, a)
                events += engine.step([Telemetry(sample), Telemetry(twin)]).events
            return events, engine.state_hash()

        assert with_vitals(None, None) == with_vitals(60.0, 50.0) == with_vitals(200.0, 5.0)


class TestSnapshots:
    def test_a_version_1_snapshot_is_read_and_upgraded(self) -> None:
        engine = Engine(4, EngineConfig(), calm_template())
        run(engine, 30, [tel("rico", 1, 0.2, 0.8), DreamerJoined("lila")])
        state = msgpack.unpackb(engine.snapshot(), raw=False)
        state["v"] = 1
        for key in [k for k in state["config"] if k.startswith("fragility_")]:
            del state["config"][key]
        extra = len(DreamerTable.COLUMNS) - 18
        state["dreamers"] = [row[:-extra] for row in state["dreamers"]]
        old = Engine.restore(msgpack.packb(state, use_bin_type=True))
        assert old.config == EngineConfig()
        t = old.dreamers
        assert t.fr_v == t.val and t.fr_a == t.aro and t.fr_u == [0.0, 0.0]
        assert t.frag[t.index["rico"]] > t.frag[t.index["lila"]]
        assert msgpack.unpackb(old.snapshot(), raw=False)["v"] == 2
        old.step([])  # and it runs on
