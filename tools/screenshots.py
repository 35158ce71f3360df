"""Write the README's screenshots, docs/dream.svg and docs/watch.svg.

They are Textual screenshots of the apps fed the scripted night of the
tests (``tests/support/scripted_room.py``), so they change only when the
screen does: ``.venv/bin/python tools/screenshots.py``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from textual.app import App

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "tests" / "client"))

from test_screens import collapsed_room, dashboard, settle  # noqa: E402


async def shoot(app: App[int], path: Path, size: tuple[int, int], typed: str = "") -> None:
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        if typed:
            await pilot.press(*typed)
            await pilot.pause(0.2)
        app.save_screenshot(str(path))
    print(f"wrote {path.relative_to(ROOT)}")


async def main() -> None:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    await shoot(collapsed_room(), docs / "dream.svg", (150, 45), "the fire crackles and")
    await shoot(dashboard(), docs / "watch.svg", (120, 32))


if __name__ == "__main__":
    asyncio.run(main())
