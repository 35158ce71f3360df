"""Snapshots of the screens in their main states (SVGs under __snapshots__).

The apps are fed a scripted night (``scripted_room``) instead of a server,
so every run draws the same screen. After a deliberate change of the look:
``pytest tests/client/test_screens.py --snapshot-update``, and look at the
SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot

from sleepsync.client.link import RoomLink
from sleepsync.client.tui.dream_app import DreamApp
from sleepsync.client.tui.watch_app import WatchApp

from scripted_link import ScriptedLink
from scripted_room import night

SIZE = (150, 45)


async def settle(pilot: Pilot[int]) -> None:
    """Wait until every script was played and shown (not a guess at how long that takes)."""
    app = pilot.app
    assert isinstance(app, DreamApp | WatchApp)

    def played() -> bool:
        if isinstance(app, DreamApp):
            links = [app.link]
        else:
            links = list(app.links.values())
            if len(links) < len(app.wanted):
                return False
        return all(link.delivered.is_set() for link in links)  # type: ignore[attr-defined]

    for _ in range(200):
        if played():
            break
        await pilot.pause(0.05)
    await pilot.pause(0.1)
    app.refresh_now()
    await pilot.pause(0.3)


def calm_room() -> DreamApp:
    return DreamApp(ScriptedLink("demo", night("calm")), me="ana")


def collapsed_room() -> DreamApp:
    return DreamApp(ScriptedLink("demo", night()), me="ana")


def dashboard() -> WatchApp:
    scripts = {"demo": "collapse", "night": "calm", "lab-2": "strained"}

    def make(room: str) -> RoomLink:
        return ScriptedLink(room, night(scripts[room], room))

    return WatchApp(make, list(scripts), title="on ws://node-1:8765")


def test_a_calm_room(snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(calm_room(), terminal_size=SIZE, run_before=settle)


async def typing(pilot: Pilot[int]) -> None:
    await settle(pilot)
    await pilot.press(*"the fire crackles and")


def test_a_collapsed_room_with_your_turn_and_a_half_typed_line(
    snap_compare: Callable[..., bool],
) -> None:
    assert snap_compare(collapsed_room(), terminal_size=SIZE, run_before=typing)


def test_the_watch_dashboard(snap_compare: Callable[..., bool]) -> None:
    assert snap_compare(dashboard(), terminal_size=(120, 36), run_before=settle)
