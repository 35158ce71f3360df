"""The package layout: imports flow one way, tools resolve the package as it is."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(folder: str) -> list[tuple[str, str]]:
    """(file, imported module) for every absolute import under ``folder``."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((str(path.relative_to(ROOT)), node.module))
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("server", "sleepsync.client"),
        ("client", "sleepsync.server"),
        ("protocol", "sleepsync.server"),
        ("protocol", "sleepsync.client"),
    ],
)
def test_packages_import_one_way(folder: str, forbidden: str) -> None:
    bad = [(f, m) for f, m in _imports(folder) if m == forbidden or m.startswith(forbidden + ".")]
    assert bad == []


@pytest.mark.parametrize("module", ["asyncio", "websockets", "redis", "aiomqtt"])
def test_protocol_and_engine_do_no_io(module: str) -> None:
    for folder in ("protocol", "server/engine"):
        bad = [(f, m) for f, m in _imports(folder) if m.split(".")[0] == module]
        assert bad == [], folder


def test_the_package_folder_links_the_top_level_folders() -> None:
    for name in ("protocol", "server", "client"):
        link = ROOT / "sleepsync" / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve()


def _imported_after(command: str) -> set[str]:
    code = (
        "import sys\nfrom sleepsync.cli import build_parser\n"
        f"build_parser({command!r})\n"
        "print(' '.join(m for m in sys.modules if m.startswith('sleepsync.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(out.stdout.split())


def test_the_cli_loads_only_the_chosen_side() -> None:
    assert not any(m.startswith("sleepsync.server") for m in _imported_after("dream"))
    assert not any(m.startswith("sleepsync.client") for m in _imported_after("serve"))
    assert not any(
        m.startswith(("sleepsync.server", "sleepsync.client")) for m in _imported_after("")
    )
