"""Narrative templates: parsing, validation errors with paths, wire round trip."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleepsync.protocol.errors import TemplateInvalid
from sleepsync.protocol.narrative import (
    MAX_SCENE_TEXT,
    MAX_SCENES,
    MAX_TEMPLATE_BYTES,
    MAX_TEMPLATE_DEPTH,
    MAX_TEMPLATE_NODES,
    MAX_TRANSITIONS,
    Condition,
    NarrativeTemplate,
    parse_template,
    template_from_wire,
    template_to_wire,
    validate_template,
)


def good() -> dict[str, Any]:
    return {
        "title": "Tide pools",
        "entry": "shore",
        "safe": "hearth",
        "scenes": [
            {
                "id": "shore",
                "text": "Waves fold over warm sand.",
                "mood": {"valence": 0.7, "arousal": 0.3},
                "transitions": [
                    {"to": "reef", "when": {"after": 30, "balance_above": 0.5}},
                    {"to": "hearth", "when": {"balance_below": 0.3}},
                ],
            },
            {
                "id": "reef",
                "text": "Colours under the water.\nSomeone laughs.",
                "mood": {"valence": 0.6, "arousal": 0.5},
                "max_dwell": 120,
                "corruption": 0.4,
                "transitions": [
                    {"to": "hearth", "when": {"arousal_above": 0.6, "arousal_below": 0.9}}
                ],
            },
            {"id": "hearth", "text": "A fire.", "mood": {"valence": 0.8, "arousal": 0.2}},
        ],
    }


def invalid(doc: object) -> TemplateInvalid:
    with pytest.raises(TemplateInvalid) as info:
        validate_template(doc)
    return info.value


class TestValid:
    def test_good_document(self) -> None:
        t = validate_template(good())
        assert t.title == "Tide pools"
        assert t.entry == "shore" and t.safe == "hearth"
        assert [s.id for s in t.scenes] == ["shore", "reef", "hearth"]
        reef = t.scene("reef")
        assert reef.max_dwell == 120.0 and reef.corruption == 0.4
        assert reef.transitions[0].when == Condition(arousal_above=0.6, arousal_below=0.9)
        assert t.scene("shore").transitions[0].when.after == 30.0
        assert isinstance(t.scene("shore").transitions[0].when.after, float)

    def test_parse_json_and_toml_agree(self) -> None:
        toml = """
title = "Tide pools"
entry = "shore"
safe = "hearth"

[[scenes]]
id = "shore"
text = "Waves fold over warm sand."
mood = { valence = 0.7, arousal = 0.3 }
transitions = [
  { to = "reef", when = { after = 30, balance_above = 0.5 } },
  { to = "hearth", when = { balance_below = 0.3 } },
]

[[scenes]]
id = "reef"
text = "Colours under the water.\\nSomeone laughs."
mood = { valence = 0.6, arousal = 0.5 }
max_dwell = 120
corruption = 0.4
transitions = [{ to = "hearth", when = { arousal_above = 0.6, arousal_below = 0.9 } }]

[[scenes]]
id = "hearth"
text = "A fire."
mood = { valence = 0.8, arousal = 0.2 }
"""
        assert parse_template(toml, "toml") == parse_template(json.dumps(good()), "json")
        assert parse_template(json.dumps(good()).encode(), "json") == validate_template(good())

    def test_wire_round_trip(self) -> None:
        t = validate_template(good())
        wire = template_to_wire(t)
        assert template_from_wire(wire) == t
        assert "max_dwell" not in wire["scenes"][0]  # type: ignore[index,operator]

    def test_condition_holds(self) -> None:
        c = Condition(after=2.0, balance_above=0.4, arousal_below=0.5)
        assert c.holds(2.0, 0.5, 0.4)
        assert not c.holds(1.9, 0.5, 0.4)
        assert not c.holds(2.0, 0.4, 0.4)  # strict
        assert not c.holds(2.0, 0.5, 0.5)
        assert Condition(balance_below=0.3, arousal_above=0.6).holds(0.0, 0.2, 0.7)
        assert not Condition(balance_below=0.3).holds(0.0, 0.3, 0.7)
        assert not Condition(arousal_above=0.6).holds(0.0, 0.2, 0.6)

    def test_template_is_hashable_and_scene_lookup_fails_cleanly(self) -> None:
        t = validate_template(good())
        assert hash(t) == hash(validate_template(good()))
        with pytest.raises(KeyError):
            t.scene("nowhere")


def mutate(path: str, value: Any) -> dict[str, Any]:
    """``good()`` with the value at a dotted/indexed path replaced (``...`` deletes)."""
    doc = good()
    parts = path.replace("[", ".").replace("]", "").split(".")
    node: Any = doc
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "where", "why"),
    [
        ("bogus", 1, "$.bogus", "unknown key"),
        ("scenes[0].colour", "red", "$.scenes[0].colour", "unknown key"),
        ("scenes[0].mood.joy", 1, "$.scenes[0].mood.joy", "unknown key"),
        (
            "scenes[0].transitions[0].when.soon",
            1,
            "$.scenes[0].transitions[0].when.soon",
            "unknown key",
        ),
        ("title", 3, "$.title", "expected a string"),
        ("title", "  ", "$.title", "must not be empty"),
        ("title", "x" * 81, "$.title", "at most 80"),
        ("title", "two\nlines", "$.title", "control"),
        ("scenes[0].text", "bell\x07", "$.scenes[0].text", "control"),
        ("scenes[0].text", "x" * (MAX_SCENE_TEXT + 1), "$.scenes[0].text", "at most"),
        ("scenes[0].text", "half \ud800", "$.scenes[0].text", "surrogate"),
        ("title", ..., "$.title", "missing"),
        ("scenes[0].mood", ..., "$.scenes[0].mood", "missing"),
        ("scenes[0].mood", [0.5, 0.5], "$.scenes[0].mood", "expected a map"),
        ("scenes[0].mood.valence", "high", "$.scenes[0].mood.valence", "expected a number"),
        ("scenes[0].mood.valence", True, "$.scenes[0].mood.valence", "expected a number"),
        ("scenes[0].mood.valence", math.nan, "$.scenes[0].mood.valence", "finite"),
        ("scenes[0].mood.arousal", math.inf, "$.scenes[0].mood.arousal", "finite"),
        ("scenes[0].mood.arousal", 10**400, "$.scenes[0].mood.arousal", "out of range"),
        ("scenes[0].mood.arousal", 1.5, "$.scenes[0].mood.arousal", "must be in"),
        ("scenes[0].id", "Shore!", "$.scenes[0].id", "must match"),
        ("scenes[0].id", None, "$.scenes[0].id", "expected a scene id"),
        ("scenes[1].id", "shore", "$.scenes[1].id", "duplicate"),
        ("scenes", {}, "$.scenes", "expected an array"),
        ("scenes", [], "$.scenes", "needs 1.."),
        ("scenes[0].transitions", {}, "$.scenes[0].transitions", "expected an array"),
        ("scenes[0].transitions[0].to", "nowhere", "$.scenes[0].transitions[0].to", "no scene"),
        ("scenes[0].transitions[0].to", "shore", "$.scenes[0].transitions[0].to", "itself"),
        ("scenes[0].transitions[0].when", {}, "$.scenes[0].transitions[0].when", "at least one"),
        ("scenes[0].transitions[0].when", ..., "$.scenes[0].transitions[0].when", "missing"),
        (
            "scenes[0].transitions[0].when.after",
            -1,
            "$.scenes[0].transitions[0].when.after",
            "must be in",
        ),
        (
            "scenes[0].transitions[0].when.balance_above",
            1.0,
            "$.scenes[0].transitions[0].when.balance_above",
            "never",
        ),
        (
            "scenes[1].transitions[0].when.arousal_below",
            0.0,
            "$.scenes[1].transitions[0].when.arousal_below",
            "never",
        ),
        (
            "scenes[1].transitions[0].when.arousal_above",
            0.95,
            "$.scenes[1].transitions[0].when",
            "never hold",
        ),
        ("scenes[1].max_dwell", 0, "$.scenes[1].max_dwell", "> 0"),
        ("scenes[1].corruption", 2, "$.scenes[1].corruption", "must be in"),
        ("entry", "nowhere", "$.entry", "no scene"),
        ("safe", "nowhere", "$.safe", "no scene"),
        ("entry", ..., "$.entry", "missing"),
    ],
)
def test_rejects_with_path(path: str, value: Any, where: str, why: str) -> None:
    error = invalid(mutate(path, value))
    assert error.path == where
    assert why in error.reason


class TestGraph:
    def test_unreachable_scene(self) -> None:
        doc = good()
        doc["scenes"].append(
            {
                "id": "island",
                "text": "Alone.",
                "mood": {"valence": 0.5, "arousal": 0.5},
                "transitions": [{"to": "hearth", "when": {"after": 1}}],
            }
        )
        error = invalid(doc)
        assert error.path == "$.scenes[3]"
        assert "unreachable" in error.reason

    def test_inescapable_cycle(self) -> None:
        doc = good()
        # reef <-> maze, and nothing leaves the pair
        doc["scenes"][1]["transitions"] = [{"to": "maze", "when": {"after": 5}}]
        doc["scenes"].append(
            {
                "id": "maze",
                "text": "Corridors.",
                "mood": {"valence": 0.2, "arousal": 0.8},
                "transitions": [{"to": "reef", "when": {"after": 5}}],
            }
        )
        error = invalid(doc)
        assert error.path == "$.scenes[1]"
        assert "no way out" in error.reason and "'reef', 'maze'" in error.reason

    def test_dead_end_scene_is_inescapable_but_safe_may_rest(self) -> None:
        doc = good()
        del doc["scenes"][1]["transitions"]
        error = invalid(doc)
        assert error.path == "$.scenes[1]" and "no way out" in error.reason
        validate_template(good())  # hearth (the safe scene) has no transitions: fine

    def test_many_trapped_scenes_are_abbreviated(self) -> None:
        scenes = [
            {
                "id": "hub",
                "text": "Hub.",
                "mood": {"valence": 0.5, "arousal": 0.5},
                "transitions": [
                    {"to": "s1", "when": {"after": 1}},
                    {"to": "safe", "when": {"after": 2}},
                ],
            }
        ]
        for k in range(1, 8):
            nxt = f"s{k + 1}" if k < 7 else "s1"
            scenes.append(
                {
                    "id": f"s{k}",
                    "text": "Ring.",
                    "mood": {"valence": 0.5, "arousal": 0.5},
                    "transitions": [{"to": nxt, "when": {"after": 1}}],
                }
            )
        scenes.append({"id": "safe", "text": "Safe.", "mood": {"valence": 0.9, "arousal": 0.1}})
        error = invalid({"title": "Ring", "entry": "hub", "safe": "safe", "scenes": scenes})
        assert "'s5', ..." in error.reason and "'s6'" not in error.reason


class TestLimits:
    def test_not_a_map(self) -> None:
        assert invalid([1, 2]).path == "$"
        assert "expected a map" in invalid("text").reason

    def test_non_string_key(self) -> None:
        doc: dict[Any, Any] = good()
        doc[1] = 2
        assert "keys must be strings" in invalid(doc).reason

    def test_too_many_scenes_and_transitions(self) -> None:
        doc = good()
        doc["scenes"] = [copy.deepcopy(doc["scenes"][2]) for _ in range(MAX_SCENES + 1)]
        assert invalid(doc).path == "$.scenes"
        doc = good()
        doc["scenes"][0]["transitions"] = [{"to": "hearth", "when": {"after": 1}}] * (
            MAX_TRANSITIONS + 1
        )
        assert invalid(doc).path == "$.scenes[0].transitions"

    def test_deep_nesting_is_refused_without_recursion(self) -> None:
        deep: Any = 0
        for _ in range(100_000):
            deep = [deep]
        error = invalid({"title": deep})
        assert "deeper than" in error.reason
        deep_map: Any = {}
        for _ in range(MAX_TEMPLATE_DEPTH + 1):
            deep_map = {"x": deep_map}
        assert "deeper than" in invalid(deep_map).reason

    def test_self_referential_document(self) -> None:
        loop: list[Any] = []
        loop.append(loop)
        assert "deeper than" in invalid({"title": loop}).reason

    def test_huge_documents(self) -> None:
        assert "more than" in invalid({"title": list(range(MAX_TEMPLATE_NODES + 5))}).reason
        wide = {"title": [[0] * 100 for _ in range(MAX_TEMPLATE_NODES // 100 + 5)]}
        assert "more than" in invalid(wide).reason

    def test_parse_limits_and_garbage(self) -> None:
        big = json.dumps(good()) + " " * MAX_TEMPLATE_BYTES
        assert "exceeds" in _parse_error(big, "json").reason
        assert "exceeds" in _parse_error(big.encode(), "toml").reason
        assert "not valid JSON" in _parse_error("{", "json").reason
        assert "not valid TOML" in _parse_error("title = ", "toml").reason
        assert "not UTF-8" in _parse_error(b"\xff\xfe", "json").reason
        assert "finite" in _parse_error('{"title": NaN}', "json").reason
        assert "duplicate key" in _parse_error('{"a": 1, "a": 2}', "json").reason
        assert "format" in _parse_error("{}", "yaml").reason  # type: ignore[arg-type]
        assert "text or bytes" in _parse_error(42, "json").reason  # type: ignore[arg-type]
        deep = _parse_error("[" * 30_000 + "]" * 30_000, "json")
        assert deep.path == "$" and ("deeper than" in deep.reason or "not valid" in deep.reason)
        deep_toml = _parse_error("x = " + "[" * 30_000 + "]" * 30_000, "toml")
        assert deep_toml.path == "$"
        when = _parse_error("title = 1985-04-12T23:20:50Z", "toml")
        assert when.path == "$.title" and "unsupported" in when.reason

    def test_toml_nan_is_rejected_at_its_path(self) -> None:
        doc = good()
        toml_mood = "mood = { valence = nan, arousal = 0.5 }"
        text = (
            f'title = "x"\nentry = "a"\nsafe = "a"\n[[scenes]]\nid = "a"\ntext = "t"\n{toml_mood}\n'
        )
        error = _parse_error(text, "toml")
        assert error.path == "$.scenes[0].mood.valence" and "finite" in error.reason
        assert doc == good()


def _parse_error(text: Any, fmt: Any) -> TemplateInvalid:
    with pytest.raises(TemplateInvalid) as info:
        parse_template(text, fmt)
    return info.value


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(
            st.sampled_from(
                [
                    "title",
                    "entry",
                    "safe",
                    "scenes",
                    "id",
                    "text",
                    "mood",
                    "valence",
                    "arousal",
                    "transitions",
                    "to",
                    "when",
                    "after",
                    "x",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=6,
        )
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_validator_raises_only_template_invalid(doc: object) -> None:
    try:
        result = validate_template(doc)
    except TemplateInvalid as exc:
        assert exc.path.startswith("$")
    else:
        assert isinstance(result, NarrativeTemplate)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200), st.sampled_from(["json", "toml"]))
def test_parser_raises_only_template_invalid(text: str | bytes, fmt: Any) -> None:
    with pytest.raises(TemplateInvalid):
        parse_template(text, fmt)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_good_documents(data: st.DataObject) -> None:
    """Replace one value anywhere in a good document: valid or TemplateInvalid."""
    doc = good()
    node: Any = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = data.draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and data.draw(st.booleans()):
            node = child
            continue
        node[key] = data.draw(json_values)
        break
    try:
        validate_template(doc)
    except TemplateInvalid as exc:
        assert exc.path.startswith("$")
