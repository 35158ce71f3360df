"""Unit tests: RNG, traits, config, balance and the contagion model."""

from __future__ import annotations

import math

import pytest

from sleepsync.server.engine import EngineConfig, Traits, room_balance
from sleepsync.server.engine.balance import balance_from_sums
from sleepsync.server.engine.contagion import Pulls, advance, spiral_update
from sleepsync.server.engine.dreamer import DreamerTable
from sleepsync.server.engine.rng import SplitMix64, mix64, name_seed
from sleepsync.server.engine.traits import default_traits


class TestRng:
    def test_known_splitmix64_sequence(self) -> None:
        rng = SplitMix64(1234567)
        # reference values of SplitMix64 seeded with 1234567
        assert rng.next_u64() == 6457827717110365317
        assert rng.next_u64() == 3203168211198807973

    def test_random_in_unit_interval_and_state_is_the_whole_state(self) -> None:
        a = SplitMix64(42)
        values = [a.random() for _ in range(1000)]
        assert all(0.0 <= v < 1.0 for v in values)
        assert 0.4 < sum(values) / len(values) < 0.6
        b = SplitMix64(0)
        b.state = a.state
        assert [a.random() for _ in range(5)] == [b.random() for _ in range(5)]

    def test_mix_and_name_seed(self) -> None:
        assert mix64(0) == 0 and mix64(1) != 1
        assert name_seed(1, "lila") == name_seed(1, "lila")
        assert name_seed(1, "lila") != name_seed(2, "lila") != name_seed(1, "rico")


class TestTraitsAndConfig:
    def test_traits_validate(self) -> None:
        Traits(0.0, 1.0, 0.5, 1)
        for bad in (-0.1, 1.1, math.nan, True):
            with pytest.raises(ValueError):
                Traits(bad, 0.5, 0.5, 0.5)  # type: ignore[arg-type]

    def test_default_traits_vary_by_name_not_order(self) -> None:
        cfg = EngineConfig(trait_variation=0.2)
        a = default_traits(cfg, 7, "lila")
        assert a == default_traits(cfg, 7, "lila")
        assert a != default_traits(cfg, 7, "rico")
        for value, base in zip(
            (a.expressiveness, a.openness, a.amplification, a.bias),
            (cfg.expressiveness, cfg.openness, cfg.amplification, cfg.bias),
            strict=True,
        ):
            assert abs(value - base) <= 0.2 + 1e-12
        plain = default_traits(EngineConfig(trait_variation=0.0), 7, "lila")
        assert plain == Traits(0.6, 0.6, 0.3, 0.5)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"tick_hz": 0.0},
            {"tick_hz": math.inf},
            {"openness": 1.5},
            {"baseline_pull": -1.0},
            {"isolate_count": 1.5},
            {"isolate_count": True},
            {"collapse_below": 0.5},
            {"strain_clear_above": 0.3},
            {"strain_below": 0.2},
            {"glitch_half_life_s": 0.0},
            {"offline_after_s": 1.0},
        ],
    )
    def test_config_rejects(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            EngineConfig(**kwargs)  # type: ignore[arg-type]

    def test_config_conversions_and_wire(self) -> None:
        cfg = EngineConfig(tick_hz=4.0)
        assert cfg.dt == 0.25
        assert cfg.ticks(1.0) == 4 and cfg.ticks(0.3) == 2 and cfg.ticks(0.0) == 1
        assert cfg.per_tick(0.0) == 0.0 and 0.0 < cfg.per_tick(1.0) < 1.0
        assert EngineConfig.from_wire(cfg.to_wire()) == cfg
        with pytest.raises(ValueError, match="unknown is not a setting"):
            EngineConfig.from_wire({**cfg.to_wire(), "unknown": 1})
        partial = cfg.to_wire()
        del partial["tick_hz"]
        with pytest.raises(ValueError, match="tick_hz is missing"):
            EngineConfig.from_wire(partial)


class TestBalance:
    def test_formula(self) -> None:
        assert room_balance([], 0.5) == 1.0
        assert room_balance([0.5, 0.5], 0.5) == pytest.approx(0.5)
        # mean 0.5, sd 0.5 -> 2 * sd = 1 -> 0.5 * (1 - 0.5)
        assert room_balance([0.0, 1.0], 0.5) == pytest.approx(0.25)
        assert room_balance([0.4, 0.6], 0.5) == pytest.approx(0.5 * (1 - 0.5 * 0.2))
        assert room_balance([0.0, 1.0], 0.0) == pytest.approx(0.5)

    def test_dispersion_lowers_balance_at_equal_mean(self) -> None:
        assert room_balance([0.6, 0.6, 0.6], 0.5) > room_balance([0.3, 0.6, 0.9], 0.5)

    def test_clamped_against_rounding(self) -> None:
        assert balance_from_sums(2, 2.0000000001, 2.0, 0.5) == 1.0
        assert balance_from_sums(1, 0.3, 0.08, 0.5) == pytest.approx(0.3)
        # an impossible dispersion (only reachable by rounding) is capped at 2 * sd = 1
        assert balance_from_sums(2, 1.0, 2.0, 0.5) == pytest.approx(0.25)


def room(levels: list[float], traits: Traits) -> DreamerTable:
    t = DreamerTable()
    for k, q in enumerate(levels):
        i = t.add(f"d{k}", traits, q, q)
        t.pod[i] = True
        t.online[i] = True
        t.tel_age[i] = 0
    return t


def pure_pulls(**kw: float) -> Pulls:
    args: dict[str, float] = dict(
        dt=0.1, alpha=1.0, k_tel=0.0, k_base=0.0, k_scene=0.0, k_release=0.0,
        base_v=0.5, base_a=0.5, scene_v=0.5, scene_a=0.5, safe_v=0.9, safe_a=0.1,
        glitch_v=0.0, glitch_a=0.0, stale_ticks=10**9, offline_ticks=10**9,
        distress_v=0.3, distress_a=0.7,
    )  # fmt: skip
    args.update(kw)
    return Pulls(**args)  # type: ignore[arg-type]


def run_model(t: DreamerTable, ticks: int, pulls: Pulls | None = None) -> None:
    p = pulls or pure_pulls()
    for k in range(ticks):
        advance(t, p, k)


START = [0.2, 0.35, 0.5, 0.65, 0.8]


class TestContagion:
    def test_reference_update(self) -> None:
        # absorption: move toward q*
        assert spiral_update(0.2, 0.6, 1.0, 0.0, 0.5, 0.1) == pytest.approx(0.24)
        # gamma * dt capped at 1
        assert spiral_update(0.2, 0.6, 50.0, 0.0, 0.5, 0.1) == pytest.approx(0.6)
        up = spiral_update(0.5, 0.5, 1.0, 1.0, 1.0, 0.1)
        down = spiral_update(0.5, 0.5, 1.0, 1.0, 0.0, 0.1)
        assert down < 0.5 < up

    def test_advance_matches_reference_form(self) -> None:
        traits = Traits(0.7, 0.6, 0.4, 0.3)
        t = room([0.2, 0.5, 0.9], traits)
        before = list(t.val)
        advance(t, pure_pulls(), 0)
        e = traits.expressiveness
        for r in range(3):
            others = [before[s] for s in range(3) if s != r]
            q_star = sum(others) / 2
            gamma = e * (1.0 / 2) * traits.openness * 2  # Σ over two senders
            expected = spiral_update(before[r], q_star, gamma, 0.4, 0.3, 0.1)
            assert t.val[r] == pytest.approx(expected)

    def test_no_amplification_converges_to_the_mean(self) -> None:
        t = room(START, Traits(0.8, 0.8, 0.0, 0.5))
        run_model(t, 1500)
        mean = sum(START) / len(START)
        for q in t.val + t.aro:
            assert q == pytest.approx(mean, abs=1e-6)

    def test_weighted_mean_leans_to_the_expressive(self) -> None:
        t = room([0.2, 0.8], Traits(0.8, 0.8, 0.0, 0.5))
        t.set_traits(0, Traits(1.0, 0.8, 0.0, 0.5))
        t.set_traits(1, Traits(0.1, 0.8, 0.0, 0.5))
        run_model(t, 3000)
        assert t.val[0] == pytest.approx(t.val[1], abs=1e-6)
        assert 0.2 < t.val[0] < 0.5

    def test_negative_spiral_goes_below_every_start(self) -> None:
        t = room(START, Traits(0.8, 0.8, 1.0, 0.0))
        run_model(t, 400)
        assert max(t.val) < min(START)

    def test_upward_spiral_goes_above_every_start(self) -> None:
        t = room(START, Traits(0.8, 0.8, 1.0, 1.0))
        run_model(t, 400)
        assert min(t.val) > max(START)

    def test_non_expressive_dreamers_receive_but_do_not_send(self) -> None:
        t = room([0.9, 0.1], Traits(0.8, 0.8, 0.0, 0.5))
        t.online[1] = False
        run_model(t, 50)
        assert t.val[0] == pytest.approx(0.9)
        assert t.val[1] > 0.5

    def test_muted_sender_is_silent_until_its_tick(self) -> None:
        t = room([0.9, 0.1], Traits(0.8, 0.8, 0.0, 0.5))
        t.mute[0] = 10
        advance(t, pure_pulls(), 5)
        assert t.val[1] == pytest.approx(0.1)
        advance(t, pure_pulls(), 10)
        assert t.val[1] > 0.1

    def test_strength_times_dt_is_capped_at_one(self) -> None:
        t = room([0.2, 0.8], Traits(1.0, 1.0, 0.0, 0.5))
        advance(t, pure_pulls(alpha=1000.0), 0)
        assert t.val == [pytest.approx(0.8), pytest.approx(0.2)]

    def test_single_dreamer_and_zero_alpha_do_not_move(self) -> None:
        t = room([0.3], Traits(0.8, 0.8, 1.0, 0.0))
        run_model(t, 10)
        assert t.val == [0.3]
        t = room([0.3, 0.7], Traits(0.8, 0.8, 1.0, 0.0))
        run_model(t, 10, pure_pulls(alpha=0.0))
        assert t.val == [0.3, 0.7]

    def test_pulls_telemetry_baseline_scene_release_and_glitch(self) -> None:
        t = room([0.5, 0.5], Traits(0.0, 0.0, 0.0, 0.5))
        t.tel_v[0], t.tel_a[0] = 0.9, 0.1
        t.pod[1] = False
        totals = advance(t, pure_pulls(k_tel=0.5, k_base=0.5, base_v=0.2, base_a=0.8), 0)
        assert t.val[0] == pytest.approx(0.7) and t.aro[0] == pytest.approx(0.3)
        assert t.val[1] == pytest.approx(0.35) and t.aro[1] == pytest.approx(0.65)
        assert totals.sum_v == pytest.approx(1.05) and totals.offline == []
        t.release[1] = 5
        t.glitch[0] = 1.0
        advance(t, pure_pulls(k_release=1.0, k_scene=1.0, scene_v=0.4, scene_a=0.4,
                              glitch_v=0.1, glitch_a=0.1), 1)  # fmt: skip
        assert t.val[1] == pytest.approx(0.9) and t.aro[1] == pytest.approx(0.1)
        assert t.val[0] == pytest.approx(0.3) and t.aro[0] == pytest.approx(0.5)

    def test_stale_then_offline(self) -> None:
        t = room([0.5], Traits(0.5, 0.5, 0.0, 0.5))
        p = pure_pulls(k_tel=1.0, k_base=1.0, base_v=0.1, stale_ticks=2, offline_ticks=3)
        t.tel_v[0] = 0.9
        advance(t, p, 0)
        assert t.val[0] == pytest.approx(0.9)
        advance(t, p, 1)
        totals = advance(t, p, 2)
        assert t.val[0] == pytest.approx(0.1) and totals.offline == []
        totals = advance(t, p, 3)
        assert totals.offline == [0] and not t.online[0]
        assert advance(t, p, 4).offline == []

    def test_clamps_and_distress(self) -> None:
        t = room([0.05, 0.5], Traits(0.0, 0.0, 0.0, 0.5))
        t.aro[0] = 0.95
        t.pod[0] = False
        t.glitch[0] = 1.0
        t.tel_v[1], t.tel_a[1] = 1.0, 0.0
        # an overshooting telemetry pull (k > 1) exercises the other clamps
        advance(t, pure_pulls(glitch_v=0.5, glitch_a=0.5, k_tel=1.5), 0)
        assert t.val[0] == 0.0 and t.aro[0] == 1.0
        assert t.val[1] == 1.0 and t.aro[1] == 0.0
        assert t.distress == [1, 0]
        advance(t, pure_pulls(glitch_v=0.5, glitch_a=0.5), 1)
        assert t.distress == [2, 0]
        t.glitch[0] = 0.0
        t.val[0] = 0.9
        advance(t, pure_pulls(), 2)
        assert t.distress[0] == 0


class TestDreamerTable:
    def test_sorted_insert_remove_and_columns(self) -> None:
        t = DreamerTable()
        tr = Traits(0.1, 0.2, 0.3, 0.4)
        for name in ("rico", "lila", "mira"):
            t.add(name, tr, 0.5, 0.4)
        assert t.names == ["lila", "mira", "rico"] and t.index["rico"] == 2
        t.remove("lila")
        assert t.names == ["mira", "rico"] and t.index == {"mira": 0, "rico": 1}
        assert t.traits(1) == tr
        copy = DreamerTable()
        copy.set_columns({c: getattr(t, c) for c in t.COLUMNS})
        assert copy.index == t.index and len(copy) == 2
        assert all(getattr(copy, c) == getattr(t, c) for c in t.COLUMNS)
        copy.val[0] = 0.0
        assert t.val[0] == 0.5, "the table owns its columns"

    def test_set_columns_rejects_bad_columns(self) -> None:
        good = DreamerTable()
        good.add("b", Traits(0.5, 0.5, 0.5, 0.5), 0.5, 0.5)
        good.add("a", Traits(0.5, 0.5, 0.5, 0.5), 0.5, 0.5)
        columns = {c: list(getattr(good, c)) for c in good.COLUMNS}
        t = DreamerTable()
        with pytest.raises(ValueError, match="not the dreamer columns"):
            t.set_columns({"names": ["a"]})
        with pytest.raises(ValueError, match="different lengths"):
            t.set_columns({**columns, "val": [0.5]})
        for names in (["b", "a"], ["a", "a"]):
            with pytest.raises(ValueError, match="sorted and unique"):
                t.set_columns({**columns, "names": names})
        assert len(t) == 0
