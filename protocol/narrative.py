"""Narrative templates: schema, parsing and validation (sans-I/O).

A template is a graph of scenes, authored as JSON or TOML::

    {"title": "Tide pools", "entry": "shore", "safe": "hearth",
     "scenes": [
       {"id": "shore", "text": "Waves fold over warm sand.",
        "mood": {"valence": 0.7, "arousal": 0.3},
        "transitions": [{"to": "hearth", "when": {"after": 60}}]},
       {"id": "hearth", "text": "A fire, and the others around it.",
        "mood": {"valence": 0.8, "arousal": 0.2}}]}

Scene keys: ``id`` (``[a-z0-9][a-z0-9_-]{0,31}``), ``text``, ``mood``
(valence and arousal the scene pulls toward), optional ``transitions``,
optional ``max_dwell`` (seconds before the engine treats the scene as a
trap) and optional ``corruption`` (0..1: a corrupted fragment; entering the
scene starts a glitch of that intensity). A transition fires when every
condition in its ``when`` map holds: ``after`` (seconds in the scene),
``balance_above``/``balance_below`` (room balance), ``arousal_above``/
``arousal_below`` (room mean arousal); comparisons are strict.

Validation rejects, with a JSONPath-like location (``$.scenes[3].transitions
[0].to``) in :class:`~sleepsync.protocol.errors.TemplateInvalid`: unknown
keys, wrong types, NaN/inf, out-of-range numbers, conditions that can never
hold, dangling or self transitions, duplicate scene ids, a missing entry or
safe scene, oversize documents (bytes, nodes, nesting, scenes, transitions,
text), scenes unreachable from the entry, and *inescapable* scenes.

**Escape** means: from every scene some chain of transitions leads to the
safe scene. A strongly connected set of scenes with no transition out of it
(or a dead-end scene) therefore fails validation. The safe scene itself may
be a dead end: it is where a room rests. A trap that only shows at run time
(conditions that are never met) is the engine's job: it enforces a maximum
dwell time per scene.

The validator is iterative (an explicit stack bounds nesting and node
count first), so no document, however deep or large, can exhaust the Python
stack, and it raises nothing but ``TemplateInvalid``.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .errors import TemplateInvalid
from .wire import WireMap, WireValue

__all__ = [
    "MAX_DWELL_S",
    "MAX_SCENES",
    "MAX_SCENE_TEXT",
    "MAX_TEMPLATE_BYTES",
    "MAX_TEMPLATE_DEPTH",
    "MAX_TEMPLATE_NODES",
    "MAX_TITLE",
    "MAX_TRANSITIONS",
    "MAX_WAIT_S",
    "SCENE_ID_RE",
    "Condition",
    "MoodTarget",
    "NarrativeTemplate",
    "Scene",
    "Transition",
    "parse_template",
    "template_from_wire",
    "template_to_wire",
    "validate_template",
]

#: Largest template source accepted by :func:`parse_template`, in bytes.
MAX_TEMPLATE_BYTES = 64 * 1024
#: Most nested maps/arrays in a document (the schema itself needs 6).
MAX_TEMPLATE_DEPTH = 8
#: Most maps, arrays and scalars in a document.
MAX_TEMPLATE_NODES = 8192
MAX_SCENES = 64
MAX_TRANSITIONS = 8
MAX_SCENE_TEXT = 1000
MAX_TITLE = 80
#: Longest ``after`` condition and ``max_dwell``, in seconds.
MAX_WAIT_S = 86400.0
MAX_DWELL_S = 86400.0
SCENE_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

_TOP_KEYS = ("title", "entry", "safe", "scenes")
_SCENE_KEYS = ("id", "text", "mood", "transitions", "max_dwell", "corruption")
_MOOD_KEYS = ("valence", "arousal")
_TRANSITION_KEYS = ("to", "when")
_WHEN_KEYS = ("after", "balance_above", "balance_below", "arousal_above", "arousal_below")


@dataclass(frozen=True, slots=True)
class MoodTarget:
    """The valence and arousal a scene pulls its dreamers toward."""

    valence: float
    arousal: float


@dataclass(frozen=True, slots=True)
class Condition:
    """All set fields must hold (strict comparisons) for a transition to fire."""

    after: float | None = None
    balance_above: float | None = None
    balance_below: float | None = None
    arousal_above: float | None = None
    arousal_below: float | None = None

    def holds(self, seconds: float, balance: float, arousal: float) -> bool:
        return (
            (self.after is None or seconds >= self.after)
            and (self.balance_above is None or balance > self.balance_above)
            and (self.balance_below is None or balance < self.balance_below)
            and (self.arousal_above is None or arousal > self.arousal_above)
            and (self.arousal_below is None or arousal < self.arousal_below)
        )


@dataclass(frozen=True, slots=True)
class Transition:
    to: str
    when: Condition


@dataclass(frozen=True, slots=True)
class Scene:
    id: str
    text: str
    mood: MoodTarget
    transitions: tuple[Transition, ...] = ()
    max_dwell: float | None = None
    corruption: float = 0.0


@dataclass(frozen=True)
class NarrativeTemplate:
    """A validated narrative: build it with :func:`validate_template`."""

    title: str
    entry: str
    safe: str
    scenes: tuple[Scene, ...]
    _index: dict[str, Scene] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {s.id: s for s in self.scenes})

    def scene(self, scene_id: str) -> Scene:
        """The scene called ``scene_id`` (KeyError if there is none)."""
        return self._index[scene_id]


# -- parsing -------------------------------------------------------------------


def parse_template(text: str | bytes, fmt: Literal["json", "toml"]) -> NarrativeTemplate:
    """Parse JSON or TOML source and validate it; every failure is TemplateInvalid."""
    if isinstance(text, str):
        size = len(text.encode("utf-8", "surrogatepass"))
    elif isinstance(text, bytes | bytearray):
        size = len(text)
    else:
        raise TemplateInvalid("$", "a template must be text or bytes")
    if size > MAX_TEMPLATE_BYTES:
        raise TemplateInvalid("$", f"template of {size} bytes exceeds {MAX_TEMPLATE_BYTES}")
    if isinstance(text, bytes | bytearray):
        try:
            source = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TemplateInvalid("$", f"not UTF-8 (byte {exc.start})") from exc
    else:
        source = text
    if fmt == "json":
        doc = _load_json(source)
    elif fmt == "toml":
        doc = _load_toml(source)
    else:
        raise TemplateInvalid("$", "format must be json or toml")
    return validate_template(doc)


def _reject_constant(name: str) -> object:
    raise TemplateInvalid("$", f"{name} is not a finite number")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise TemplateInvalid("$", f"duplicate key {key!r}")
        out[key] = value
    return out


def _load_json(source: str) -> object:
    try:
        return json.loads(source, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except TemplateInvalid:
        raise
    except json.JSONDecodeError as exc:
        raise TemplateInvalid("$", f"not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except (ValueError, RecursionError) as exc:
        raise TemplateInvalid("$", "not valid JSON") from exc


def _load_toml(source: str) -> object:
    try:
        return tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateInvalid("$", f"not valid TOML: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise TemplateInvalid("$", "not valid TOML") from exc


# -- validation ----------------------------------------------------------------


def validate_template(doc: object) -> NarrativeTemplate:
    """Validate a decoded document (maps, lists, scalars) into a template."""
    _check_shape(doc)
    top = _as_map(doc, "$", _TOP_KEYS)
    title = _text(top, "title", "$", MAX_TITLE, single_line=True)
    entry = _scene_id(top, "entry", "$")
    safe = _scene_id(top, "safe", "$")
    raw_scenes = _required(top, "scenes", "$")
    if not isinstance(raw_scenes, list):
        raise TemplateInvalid("$.scenes", f"expected an array, got {_kind(raw_scenes)}")
    if not 1 <= len(raw_scenes) <= MAX_SCENES:
        raise TemplateInvalid("$.scenes", f"needs 1..{MAX_SCENES} scenes, got {len(raw_scenes)}")
    scenes = tuple(_scene(raw, f"$.scenes[{i}]") for i, raw in enumerate(raw_scenes))
    index: dict[str, int] = {}
    for i, scene in enumerate(scenes):
        if scene.id in index:
            raise TemplateInvalid(f"$.scenes[{i}].id", f"duplicate scene id {scene.id!r}")
        index[scene.id] = i
    if entry not in index:
        raise TemplateInvalid("$.entry", f"no scene with id {entry!r}")
    if safe not in index:
        raise TemplateInvalid("$.safe", f"no scene with id {safe!r}")
    for i, scene in enumerate(scenes):
        for j, transition in enumerate(scene.transitions):
            path = f"$.scenes[{i}].transitions[{j}].to"
            if transition.to not in index:
                raise TemplateInvalid(path, f"no scene with id {transition.to!r}")
            if transition.to == scene.id:
                raise TemplateInvalid(path, "a scene cannot transition to itself")
    _check_graph(scenes, index, entry, safe)
    return NarrativeTemplate(title=title, entry=entry, safe=safe, scenes=scenes)


def _check_shape(doc: object) -> None:
    """Bound nesting depth and node count without recursion."""
    stack: list[tuple[object, int]] = [(doc, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_TEMPLATE_NODES:
            raise TemplateInvalid("$", f"more than {MAX_TEMPLATE_NODES} values")
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        else:
            continue
        if depth > MAX_TEMPLATE_DEPTH:
            raise TemplateInvalid("$", f"nested deeper than {MAX_TEMPLATE_DEPTH} levels")
        if len(children) > MAX_TEMPLATE_NODES:
            raise TemplateInvalid("$", f"more than {MAX_TEMPLATE_NODES} values")
        stack.extend((child, depth + 1) for child in children)


def _check_graph(scenes: tuple[Scene, ...], index: dict[str, int], entry: str, safe: str) -> None:
    forward: list[list[int]] = [[index[t.to] for t in s.transitions] for s in scenes]
    backward: list[list[int]] = [[] for _ in scenes]
    for i, targets in enumerate(forward):
        for j in targets:
            backward[j].append(i)
    reachable = _closure(index[entry], forward)
    for i, scene in enumerate(scenes):
        if i not in reachable:
            raise TemplateInvalid(
                f"$.scenes[{i}]", f"scene {scene.id!r} is unreachable from the entry {entry!r}"
            )
    escapes = _closure(index[safe], backward)
    trapped = [s.id for i, s in enumerate(scenes) if i not in escapes]
    if trapped:
        first = next(i for i in range(len(scenes)) if i not in escapes)
        names = ", ".join(repr(n) for n in trapped[:5]) + (", ..." if len(trapped) > 5 else "")
        raise TemplateInvalid(
            f"$.scenes[{first}]",
            f"no way out: scenes {names} cannot reach the safe scene {safe!r}",
        )


def _closure(start: int, edges: list[list[int]]) -> set[int]:
    seen = {start}
    todo = [start]
    while todo:
        for j in edges[todo.pop()]:
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return seen


def _scene(raw: object, path: str) -> Scene:
    m = _as_map(raw, path, _SCENE_KEYS)
    scene_id = _scene_id(m, "id", path)
    text = _text(m, "text", path, MAX_SCENE_TEXT, single_line=False)
    mood_map = _as_map(_required(m, "mood", path), f"{path}.mood", _MOOD_KEYS)
    mood = MoodTarget(
        valence=_number(mood_map, "valence", f"{path}.mood", 0.0, 1.0),
        arousal=_number(mood_map, "arousal", f"{path}.mood", 0.0, 1.0),
    )
    transitions: tuple[Transition, ...] = ()
    if "transitions" in m:
        raw_transitions = m["transitions"]
        tpath = f"{path}.transitions"
        if not isinstance(raw_transitions, list):
            raise TemplateInvalid(tpath, f"expected an array, got {_kind(raw_transitions)}")
        if len(raw_transitions) > MAX_TRANSITIONS:
            raise TemplateInvalid(
                tpath, f"at most {MAX_TRANSITIONS} transitions, got {len(raw_transitions)}"
            )
        transitions = tuple(_transition(t, f"{tpath}[{j}]") for j, t in enumerate(raw_transitions))
    max_dwell = None
    if "max_dwell" in m:
        max_dwell = _number(m, "max_dwell", path, 0.0, MAX_DWELL_S)
        if max_dwell <= 0.0:
            raise TemplateInvalid(f"{path}.max_dwell", "must be > 0")
    corruption = _number(m, "corruption", path, 0.0, 1.0) if "corruption" in m else 0.0
    return Scene(scene_id, text, mood, transitions, max_dwell, corruption)


def _transition(raw: object, path: str) -> Transition:
    m = _as_map(raw, path, _TRANSITION_KEYS)
    to = _scene_id(m, "to", path)
    wpath = f"{path}.when"
    when = _as_map(_required(m, "when", path), wpath, _WHEN_KEYS)
    if not when:
        raise TemplateInvalid(wpath, "needs at least one condition")
    values: dict[str, float] = {}
    for key in _WHEN_KEYS:
        if key in when:
            hi = MAX_WAIT_S if key == "after" else 1.0
            values[key] = _number(when, key, wpath, 0.0, hi)
    for low, high in (("balance_above", "balance_below"), ("arousal_above", "arousal_below")):
        if low in values and values[low] >= 1.0:
            raise TemplateInvalid(f"{wpath}.{low}", "can never hold (nothing is above 1)")
        if high in values and values[high] <= 0.0:
            raise TemplateInvalid(f"{wpath}.{high}", "can never hold (nothing is below 0)")
        if low in values and high in values and values[low] >= values[high]:
            raise TemplateInvalid(wpath, f"{low} >= {high}: the condition can never hold")
    return Transition(to, Condition(**values))


def _as_map(raw: object, path: str, allowed: tuple[str, ...]) -> dict[str, object]:
    if not isinstance(raw, dict):
        raise TemplateInvalid(path, f"expected a map, got {_kind(raw)}")
    for key in raw:
        if not isinstance(key, str):
            raise TemplateInvalid(path, f"keys must be strings, got {_kind(key)}")
        if key not in allowed:
            shown = key if len(key) <= 40 else key[:40] + "..."
            raise TemplateInvalid(f"{path}.{shown}", "unknown key")
    return raw


def _required(m: Mapping[str, object], key: str, path: str) -> object:
    if key not in m:
        raise TemplateInvalid(f"{path}.{key}", "missing")
    return m[key]


def _text(m: Mapping[str, object], key: str, path: str, max_len: int, *, single_line: bool) -> str:
    value = _required(m, key, path)
    if not isinstance(value, str):
        raise TemplateInvalid(f"{path}.{key}", f"expected a string, got {_kind(value)}")
    if not value.strip():
        raise TemplateInvalid(f"{path}.{key}", "must not be empty")
    if len(value) > max_len:
        raise TemplateInvalid(f"{path}.{key}", f"at most {max_len} characters, got {len(value)}")
    allowed = "" if single_line else "\n\t"
    for c in value:
        if (ord(c) < 32 or 0x7F <= ord(c) < 0xA0) and c not in allowed:
            raise TemplateInvalid(f"{path}.{key}", "must not contain control characters")
        if 0xD800 <= ord(c) <= 0xDFFF:
            raise TemplateInvalid(f"{path}.{key}", "must not contain lone surrogates")
    return value


def _scene_id(m: Mapping[str, object], key: str, path: str) -> str:
    value = _required(m, key, path)
    if not isinstance(value, str):
        raise TemplateInvalid(f"{path}.{key}", f"expected a scene id string, got {_kind(value)}")
    if not SCENE_ID_RE.fullmatch(value):
        raise TemplateInvalid(f"{path}.{key}", f"a scene id must match {SCENE_ID_RE.pattern}")
    return value


def _number(m: Mapping[str, object], key: str, path: str, lo: float, hi: float) -> float:
    value = _required(m, key, path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TemplateInvalid(f"{path}.{key}", f"expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError as exc:
        raise TemplateInvalid(f"{path}.{key}", "number out of range") from exc
    if not math.isfinite(number):
        raise TemplateInvalid(f"{path}.{key}", "must be finite")
    if not lo <= number <= hi:
        raise TemplateInvalid(f"{path}.{key}", f"must be in [{lo:g}, {hi:g}], got {number:g}")
    return number


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a map"
    return "an unsupported value"


# -- wire form -----------------------------------------------------------------


def template_to_wire(t: NarrativeTemplate) -> WireMap:
    """The template as its authoring document (valid input to :func:`validate_template`)."""
    scenes: list[WireValue] = []
    for s in t.scenes:
        scene: WireMap = {
            "id": s.id,
            "text": s.text,
            "mood": {"valence": s.mood.valence, "arousal": s.mood.arousal},
        }
        if s.transitions:
            transitions: list[WireValue] = []
            for tr in s.transitions:
                when: WireMap = {}
                for key in _WHEN_KEYS:
                    value = getattr(tr.when, key)
                    if value is not None:
                        when[key] = value
                transitions.append({"to": tr.to, "when": when})
            scene["transitions"] = transitions
        if s.max_dwell is not None:
            scene["max_dwell"] = s.max_dwell
        if s.corruption:
            scene["corruption"] = s.corruption
        scenes.append(scene)
    return {"title": t.title, "entry": t.entry, "safe": t.safe, "scenes": scenes}


def template_from_wire(m: Mapping[str, object]) -> NarrativeTemplate:
    """Rebuild a template from :func:`template_to_wire` output (validated again)."""
    return validate_template(dict(m))
