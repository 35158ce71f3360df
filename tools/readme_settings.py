"""Write the configuration table of README.md from ``Settings``.

Run ``.venv/bin/python tools/readme_settings.py`` after adding a setting;
``tests/test_readme.py`` fails while the README and the code disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sleepsync.server.config import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def table() -> str:
    rows = ["| flag | env var | default | meaning |", "| --- | --- | --- | --- |"]
    for flag, env, default, help_text in settings_table():
        meaning = help_text.replace("|", "\\|")
        rows.append(f"| `{flag}` | `{env}` | `{default}` | {meaning} |")
    return "\n".join(rows)


def render(text: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table()}\n{END}{tail}"


if __name__ == "__main__":
    text = README.read_text()
    new = render(text)
    if "--check" in sys.argv:
        sys.exit(0 if new == text else 1)
    README.write_text(new)
