"""The README tells the truth about the code: settings, commands, messages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sleepsync.cli import build_parser
from sleepsync.protocol.messages import MESSAGE_TYPES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_configuration_table_matches_the_settings() -> None:
    path = ROOT / "tools" / "readme_settings.py"
    spec = importlib.util.spec_from_file_location("readme_settings", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render(README) == README, "run: .venv/bin/python tools/readme_settings.py"


def test_every_command_is_documented() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert f"sleepsync {name}" in README, name


def test_every_message_type_is_documented() -> None:
    for kind in MESSAGE_TYPES:
        assert f"| `{kind}` |" in README, kind


def test_the_two_commands_and_ci_agree() -> None:
    assert "make demo" in README and "make test" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    makefile = (ROOT / "Makefile").read_text()
    assert "\ndemo:" in makefile and "\ntest:" in makefile


def test_the_narrative_example_is_a_valid_template() -> None:
    import re

    from sleepsync.protocol.narrative import parse_template

    example = re.search(r"```json\n(.*?)```", README, re.S)
    assert example is not None
    template = parse_template(example.group(1), "json")
    assert template.title == "The Lighthouse"


def _event_table() -> dict[str, str]:
    """The README's event item table: kind -> its row."""
    start = README.index("**Event items.**")
    rows: dict[str, str] = {}
    in_table = False
    for line in README[start:].splitlines()[1:]:
        if line.startswith("|"):
            in_table = True
            cells = line.split(" | ")
            rows[cells[0].strip("| `")] = line
        elif in_table:
            break
    return rows


def _records(item_type: type) -> list[type]:
    """``item_type`` and the records nested in its fields (figures, actions, mood rows)."""
    import dataclasses
    import typing

    found = [item_type]
    if not dataclasses.is_dataclass(item_type):
        return found
    for hint in typing.get_type_hints(item_type).values():
        stack = [hint]
        while stack:
            t = stack.pop()
            stack.extend(typing.get_args(t))
            if isinstance(t, type) and (dataclasses.is_dataclass(t) or hasattr(t, "_fields")):
                found += _records(t)
    return found


def test_every_event_item_and_field_is_documented() -> None:
    from sleepsync.protocol.events import EVENT_TYPES, wire_keys

    rows = _event_table()
    assert set(EVENT_TYPES) <= set(rows), sorted(set(EVENT_TYPES) - set(rows))
    for kind, item_type in EVENT_TYPES.items():
        fields = rows[kind].split(" | ")[1]
        for record in _records(item_type):
            for key in wire_keys(record):
                assert f"`{key}`" in fields, f"{kind}.{key}"
