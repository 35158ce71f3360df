"""Engine snapshots: one module writes and reads them, and restore refuses any corruption."""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleepsync.protocol.errors import LocalError
from sleepsync.server.engine import (
    DreamerJoined,
    Engine,
    EngineConfig,
    GlitchInjected,
    StoryLine,
    TemplateUploaded,
    Traits,
)
from sleepsync.server.engine.dreamer import DreamerTable
from sleepsync.server.engine.narrative_runtime import MAX_HISTORY
from sleepsync.server.engine.snapshot import COLUMN_CHECKS, KEYS, read_snapshot, write_snapshot

from engine_helpers import scene, tel, template

ENGINE_DIR = Path(__file__).resolve().parents[2] / "server" / "engine"
FAST = EngineConfig(
    collapse_hold_s=0.3, strain_hold_s=0.1, recover_hold_s=0.3, stable_hold_s=0.3,
    strain_clear_hold_s=0.2, circle_turn_s=5.0, glitch_half_life_s=30.0,
)  # fmt: skip
LOOP = template(
    [
        scene("a", 0.4, 0.6, ("b", {"after": 0.2})),
        scene("b", 0.4, 0.6, ("a", {"after": 0.2}), ("s", {"balance_above": 0.99})),
        scene("s", 0.8, 0.2),
    ],
    "a",
    "s",
    "Loop",
)


@lru_cache(maxsize=1)
def rich_snapshot() -> bytes:
    """A state with every part filled: pods and plain dreamers, traits, glitches, a circle."""
    engine = Engine(42, FAST)
    engine.set_traits("lila", Traits(0.9, 0.1, 0.2, 0.3))
    engine.step([tel("lila", 1, 0.6, 0.3), tel("rico", 1, 0.5, 0.4), DreamerJoined("mira")])
    engine.step([TemplateUploaded("lila", LOOP), GlitchInjected("rico", 0.9)])
    for seq in range(2, 12):
        engine.step([tel("lila", seq, 0.6, 0.3), tel("rico", seq, 0.5, 0.4)])
    engine.step([StoryLine("mira", "/circle"), GlitchInjected("mira", 0.5)])
    state = msgpack.unpackb(engine.snapshot())
    assert state["circle"] is not None and len(state["glitches"]) >= 2
    assert state["traits"] and state["author"] == "lila" and len(state["history"]) > 2
    seqs = {row[0]: row[11] for row in state["dreamers"]}
    assert seqs["mira"] is None and seqs["lila"] == 11
    return engine.snapshot()


def corrupt(change: Callable[[dict[str, Any]], object]) -> bytes:
    state = msgpack.unpackb(rich_snapshot())
    change(state)
    return msgpack.packb(state)


def refused(data: bytes, match: str) -> None:
    with pytest.raises(LocalError, match=match):
        Engine.restore(data)


class TestOneModule:
    def test_snapshot_imports_nothing_from_the_engine(self) -> None:
        tree = ast.parse((ENGINE_DIR / "snapshot.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module not in ("engine", "sleepsync.server.engine.engine")
                assert node.module != "sleepsync.server.engine" or node.level
            if isinstance(node, ast.Import):
                assert all("engine.engine" not in a.name for a in node.names)

    def test_the_engine_imports_snapshot_at_module_level(self) -> None:
        tree = ast.parse((ENGINE_DIR / "engine.py").read_text())
        top = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "snapshot"]
        nested = [
            n
            for f in ast.walk(tree)
            if isinstance(f, ast.FunctionDef)
            for n in ast.walk(f)
            if isinstance(n, ast.ImportFrom | ast.Import)
        ]
        assert top and not nested

    def test_every_column_has_a_check(self) -> None:
        assert tuple(COLUMN_CHECKS) == DreamerTable.COLUMNS

    def test_read_then_write_gives_the_same_bytes(self) -> None:
        data = rich_snapshot()
        assert write_snapshot(read_snapshot(data)) == data
        assert Engine.restore(data).snapshot() == data
        assert list(msgpack.unpackb(data)) == list(KEYS)

    def test_restored_engine_continues_identically(self) -> None:
        a = Engine.restore(rich_snapshot())
        b = Engine.restore(rich_snapshot())
        for seq in range(20, 60):
            inputs = [tel("lila", seq, 0.3, 0.8), StoryLine("mira", "once")]
            assert a.step(inputs).events == b.step(inputs).events
        assert a.state_hash() == b.state_hash()

    def test_levels_written_as_integers_stay_integers(self) -> None:
        engine = Engine(1, EngineConfig(baseline_valence=1, baseline_arousal=0))
        engine.step([DreamerJoined("a")])
        data = engine.snapshot()
        assert msgpack.unpackb(data)["config"]["baseline_valence"] == 1
        assert Engine.restore(data).snapshot() == data


def _set(path: tuple[Any, ...], value: object) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        node: Any = state
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def change(state: dict[str, Any]) -> None:
        node: Any = state
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


VAL = DreamerTable.COLUMNS.index("val")


class TestTargetedCorruptions:
    def test_a_string_valence_is_refused_at_restore_not_at_the_next_step(self) -> None:
        refused(
            corrupt(_set(("dreamers", 0, VAL), "0.5")),
            r"snapshot dreamers\[0\]\.val: expected a number, got str",
        )

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            (_set(("dreamers", 1, DreamerTable.COLUMNS.index("tel_age")), True),
             r"dreamers\[1\]\.tel_age: expected an integer, got bool"),
            (_set(("dreamers", 0, DreamerTable.COLUMNS.index("pod")), 1),
             r"dreamers\[0\]\.pod: expected true or false"),
            (_set(("dreamers", 0, DreamerTable.COLUMNS.index("seq")), 1.5),
             r"dreamers\[0\]\.seq: expected an integer, got float"),
            (_set(("dreamers", 0, DreamerTable.COLUMNS.index("glitch")), 1.5),
             r"dreamers\[0\]\.glitch: must be in \[0, 1\]"),
            (_set(("dreamers", 0, VAL), float("nan")), r"dreamers\[0\]\.val: must be in"),
            (_set(("dreamers", 0, DreamerTable.COLUMNS.index("mute")), -1),
             r"dreamers\[0\]\.mute: must be in 0\.\."),
            (_set(("dreamers", 0, 0), ""), r"dreamers\[0\]\.names: expected a non-empty string"),
            (_set(("dreamers", 0, 0), "zzz"), "dreamers: dreamer names are not sorted"),
            (lambda s: s["dreamers"][0].pop(), r"dreamers\[0\]: expected 22 values, got 21"),
            (_set(("dreamers",), {}), "dreamers: expected an array, got dict"),
            (_delete(("since",)), "snapshot since: missing"),
            (_set(("weather",), "fog"), "snapshot weather: unexpected key"),
            (_set(("v",), 3), "unknown snapshot version"),
            (_set(("v",), True), "unknown snapshot version"),
            (_delete(("config", "tick_hz")), "snapshot config: tick_hz is missing"),
            (_set(("config", "extra"), 1.0), "snapshot config: extra is not a setting"),
            (_set(("config", "openness"), "wide"), "snapshot config: openness must be a number"),
            (_set(("config", "isolate_count"), 2.0), "isolate_count must be an integer"),
            (_set(("config",), None), "snapshot config: expected a map"),
            (_set(("seed",), "42"), "snapshot seed: expected an integer, got str"),
            (_set(("rng",), -1), r"snapshot rng: must be in 0\.\."),
            (_set(("tick",), False), "snapshot tick: expected an integer, got bool"),
            (_set(("balance",), "high"), "snapshot balance: expected a number"),
            (_set(("damped",), 0), "snapshot damped: expected true or false"),
            (_set(("phase",), "dreaming"), "snapshot phase: unknown phase"),
            (_set(("phase",), 3), "snapshot phase: expected a non-empty string"),
            (_set(("holds",), [0]), "snapshot holds: expected 6 values, got 1"),
            (_set(("holds", 2), -3), r"snapshot holds\[2\]: must be in"),
            (_set(("traits", 0, 2), "open"), r"traits\[0\]\.openness: expected a number"),
            (_set(("traits", 0), ["lila", 0.5]), r"traits\[0\]: expected 5 values"),
            (lambda s: s["traits"].append(s["traits"][0]), r"traits\[1\]\.name: names must be"),
            (_set(("glitches", 0, 3), "strong"), r"glitches\[0\]\.peak: expected a number"),
            (_set(("glitches", 0, 0), 0), r"glitches\[0\]\.id: must be in 1\.\."),
            (_set(("glitches", 0, 5), 0), r"glitches\[0\]\.reach: must be in 1\.\."),
            (lambda s: s["glitches"].reverse(), r"glitches\[1\]\.id: glitch ids must be incr"),
            (_set(("next_glitch",), 1), r"snapshot next_glitch: must be in"),
            (_set(("narrative",), "Loop"), "snapshot narrative: expected a map"),
            (_delete(("narrative", "safe")), r"snapshot narrative: \$\.safe"),
            (_set(("author",), 7), "snapshot author: expected a non-empty string"),
            (_set(("scene",), "nowhere"), "snapshot scene: no scene 'nowhere'"),
            (_set(("since",), -1), "snapshot since: must be in"),
            (_set(("history", 0), [0]), r"history\[0\]: expected 2 values"),
            (_set(("history", 1, 0), "soon"), r"history\[1\]\.at: expected an integer"),
            (_set(("history",), [[0, "a"]] * (MAX_HISTORY + 1)), "history: at most"),
            (_set(("circle",), ["recovery", 1, 2, 3, 4]), "circle.holder: expected a non-empty"),
            (_set(("circle",), ["recovery", "mira"]), "circle: expected 5 values, got 2"),
            (_set(("circle",), "open"), "circle: expected an array, got str"),
        ],
    )  # fmt: skip
    def test_refused(self, change: Callable[[dict[str, Any]], object], match: str) -> None:
        refused(corrupt(change), match)

    @pytest.mark.parametrize(
        "data",
        [b"\xc1 not msgpack", b"\x93\x01\x02", msgpack.packb([1, 2]), msgpack.packb({"v": 1}), b""],
    )
    def test_not_a_snapshot(self, data: bytes) -> None:
        with pytest.raises(LocalError):
            Engine.restore(data)

    def test_optional_parts_may_be_absent(self) -> None:
        data = corrupt(_set(("circle",), None))
        assert Engine.restore(data).circle is None
        assert Engine.restore(corrupt(_set(("author",), None))).narrative.author is None


# ---------------------------------------------------------------- one field mutated


def _paths(node: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    children: list[tuple[Any, object]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    for key, child in children:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


PATHS = _paths(msgpack.unpackb(rich_snapshot()))


def _wrong(value: object) -> list[object]:
    """Values of another type than ``value`` that no field accepts in its place."""
    if isinstance(value, bool):
        return [1, "yes", [True]]
    if isinstance(value, int):
        return ["7", True, 1.5, [value]]
    if isinstance(value, float):
        return ["0.5", False, None, [value]]
    if isinstance(value, str):
        return [7, False, [value], {"s": value}]
    if isinstance(value, list):
        return ["[]", 0, {"x": 1}]
    if isinstance(value, dict):
        return ["{}", 0, [1]]
    return []  # None: another value may be valid (a seq, an author, a circle)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), st.integers(0, 3), st.sampled_from(["replace", "delete", "append"]))
def test_one_mutated_field_is_refused_at_restore(
    path: tuple[Any, ...], pick: int, how: str
) -> None:
    """Mistype, delete or grow any one part: restore raises LocalError, nothing else.

    Outside the narrative (whose template has optional keys and accepts an
    int where a float may be) every such change must be refused; inside it,
    restore may also succeed, and then the engine must run.
    """
    state = msgpack.unpackb(rich_snapshot())
    node: Any = state
    for key in path[:-1]:
        node = node[key]
    last = path[-1]
    target = node[last]
    if how == "replace":
        options = _wrong(target)
        if not options:
            return
        node[last] = copy.deepcopy(options[pick % len(options)])
    elif how == "delete":
        if isinstance(node, list) and not _fixed_row(path):
            return  # a variable list without one entry is another valid state
        del node[last]
    else:
        if not isinstance(target, list) or not (_fixed_row((*path, 0)) or path == ("holds",)):
            return
        target.append(copy.deepcopy(target[-1]) if target else 0)
    data = msgpack.packb(state)
    if path[0] == "narrative":
        try:
            engine = Engine.restore(data)
        except LocalError:
            return
        engine.step([tel("lila", 99, 0.5, 0.5)])
        return
    with pytest.raises(LocalError):
        Engine.restore(data)


def _fixed_row(path: tuple[Any, ...]) -> bool:
    """Whether ``path`` is a cell of a fixed-length row (dreamer, traits, glitch, history...)."""
    head = path[0]
    if head in ("dreamers", "traits", "glitches", "history"):
        return len(path) == 3
    return head in ("holds", "circle") and len(path) == 2
