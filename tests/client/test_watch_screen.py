"""``sleepsync watch`` against a real server: it finds the rooms and shows each one."""

from __future__ import annotations

import time

from sleepsync.client.connection import RoomClient
from sleepsync.client.tui.phase_banner import PhaseBanner
from sleepsync.client.tui.room_panel import RoomPanel
from sleepsync.client.tui.run import watch_app

from nodes import Recorder, running_node


async def test_watch_finds_every_room_and_shows_it_read_only() -> None:
    async with (
        running_node() as node,
        Recorder(RoomClient(node.url, "lounge", "lila")),
        Recorder(RoomClient(node.url, "attic", "rico")),
    ):
        app = watch_app((node.url,), [])
        async with app.run_test(size=(120, 36)) as pilot:
            deadline = time.monotonic() + 30

            def shown() -> bool:
                panels = {p.room: p.summary for p in app.query(RoomPanel)}
                return set(panels) == {"lounge", "attic"} and all(
                    s is not None and s.link == "connected" and s.people == 1
                    for s in panels.values()
                )

            while not shown():
                assert time.monotonic() < deadline, "the rooms never showed"
                await pilot.pause(0.1)
            lounge = app.query_one("#room-lounge", RoomPanel)
            assert lounge.query_one(PhaseBanner).phase == "stable"
            assert lounge.summary is not None and lounge.summary.scene == "drift"
            await pilot.press("q")
        assert app.return_code == 0
