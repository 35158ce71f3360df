"""The Textual dream screen driven like a person would, against a real embedded server."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import RichLog

from sleepsync.client.tui.dream_app import DreamApp
from sleepsync.client.tui.event_log import EventLog
from sleepsync.client.tui.phase_banner import PhaseBanner
from sleepsync.client.tui.prompt import Prompt
from sleepsync.client.tui.roster import Roster
from sleepsync.client.tui.run import dream_app
from sleepsync.client.tui.story_pane import StoryPane
from sleepsync.protocol.narrative import parse_template
from sleepsync.server.engine import Engine, EngineConfig
from sleepsync.server.room_state import EngineHooks

from nodes import running_node

SIZE = (150, 45)


async def until(
    pilot: Pilot[int], predicate: Callable[[], bool], what: str = "", t: float = 30
) -> None:
    deadline = time.monotonic() + t
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.05)


def log_text(log: RichLog) -> str:
    return "\n".join(line.text for line in log.lines)


def story(app: DreamApp) -> str:
    return log_text(app.query_one(StoryPane).query_one(RichLog))


def events(app: DreamApp) -> str:
    """The event log's text, wrapped lines joined (spaces collapsed)."""
    return " ".join(log_text(app.query_one(EventLog)).split())


def fragile_hooks() -> EngineHooks:
    """A room that collapses at once: every threshold sits above a calm room's balance."""
    config = EngineConfig(
        tick_hz=20.0,
        strain_below=0.9,
        strain_clear_above=0.95,
        strain_hold_s=0.2,
        collapse_below=0.85,
        collapse_hold_s=0.3,
        recover_above=0.9,
        stable_above=0.95,
    )
    return EngineHooks(
        create=lambda room: Engine(7, config),
        restore=Engine.restore,
        parse_template=lambda text, fmt: parse_template(text, "toml" if fmt == "toml" else "json"),
    )


async def test_a_typed_line_shows_in_the_story_pane() -> None:
    async with running_node() as node:
        app = dream_app((node.url,), "lounge", "lila")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.view.ready, "the snapshot")
            await pilot.press(*"once upon a time", "enter")
            await until(pilot, lambda: "lila: once upon a time" in story(app), "the line")
            assert app.query_one(Prompt).value == ""
            assert "once upon a time" not in events(app), "story lines go to the story pane"
            await until(pilot, lambda: any(r.name == "lila" for r in app.query_one(Roster).rows))
            assert app.query_one(Prompt).history == ["once upon a time"]


async def test_who_lists_the_members_and_slash_commands_are_not_story() -> None:
    async with running_node() as node:
        app = dream_app((node.url,), "lounge", "lila")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: ("lila", "dreamer") in app.view.members, "joined")
            for line in ("/who", "/help", "/bogus", "/pass"):
                await pilot.press(*line, "enter")
            await until(pilot, lambda: "Not now: no storytelling circle is open." in events(app))
            text = events(app)
            assert "In lounge: 1 people and 0 pods." in text
            assert "lila (you): dreamer" in text
            assert "/who: who is in the room: people, pods, their moods" in text
            assert "Unknown command /bogus: /help lists them." in text
            assert story(app) == ""


async def test_a_collapse_shows_the_banner_and_the_sentence() -> None:
    async with running_node(hooks=fragile_hooks()) as node:
        app = dream_app((node.url,), "fragile", "lila")
        async with app.run_test(size=SIZE) as pilot:
            banner = app.query_one(PhaseBanner)
            await until(pilot, lambda: banner.phase == "collapsed", "the collapse")
            assert banner.has_class("-collapsed")
            await until(pilot, lambda: "The room collapsed: balance" in events(app))
            assert "Moving everyone to the hearth, a storytelling circle opens." in events(app)
            pane = app.query_one(StoryPane)
            await until(pilot, lambda: pane.circle_order == ("lila",), "the circle bar")
            assert pane.circle_turn == "lila" and app.view.my_turn()


async def test_the_input_line_keeps_its_text_while_fifty_events_arrive() -> None:
    async with running_node() as node:
        app = dream_app((node.url,), "lounge", "lila")
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.view.ready and app.view.seq > 0)
            await pilot.press(*"half a thought")
            start = app.view.seq
            await until(pilot, lambda: app.view.seq >= start + 50, "fifty events")
            prompt = app.query_one(Prompt)
            assert prompt.value == "half a thought" and prompt.has_focus
            await pilot.press(*" and the rest", "enter")
            await until(pilot, lambda: "lila: half a thought and the rest" in story(app))
