"""``sleepsync dream`` in a real terminal: tmux runs it, send-keys types, capture-pane reads.

This is the screen as a person sees it: the scene's text, who is here, and
a half-typed line that the room's events do not disturb.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from sleepsync.client.connection import RoomClient

from nodes import Recorder, free_port, running_node

SLEEPSYNC = os.path.join(os.path.dirname(sys.executable), "sleepsync")

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux (make test installs it)")


#: A tmux server of this test's own (never a shared one: -S with a socket of its own).
SOCKET = os.path.join("/tmp", f"sleepsync-tmux-{uuid.uuid4().hex[:8]}")


def tmux(*args: str) -> str:
    out = subprocess.run(["tmux", "-S", SOCKET, *args], capture_output=True, text=True, timeout=10)
    return out.stdout


@pytest.fixture
def session() -> Iterator[str]:
    yield "dream"
    tmux("kill-server")
    with contextlib.suppress(OSError):
        os.unlink(SOCKET)


async def screen_shows(session: str, *needles: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        screen = tmux("capture-pane", "-p", "-t", session)
        if all(n in screen for n in needles):
            return screen
        if time.monotonic() > deadline:
            raise AssertionError(f"screen never showed {needles}:\n{screen}")
        await asyncio.sleep(0.2)


async def test_dream_in_tmux_shows_the_scene_the_roster_and_keeps_the_typed_line(
    session: str,
) -> None:
    async with running_node() as node, Recorder(RoomClient(node.url, "lounge", "rico")) as rico:
        # COLUMNS/LINES (set by the test runner) would override the window's size.
        command = (
            f"env -u COLUMNS -u LINES {SLEEPSYNC} dream lounge --name lila --server {node.url}"
        )
        tmux("new-session", "-d", "-s", session, "-x", "150", "-y", "45", command)
        await screen_shows(session, "The pods hum. One by one", "rico", "lila", "● connected")
        tmux("send-keys", "-t", session, "-l", "the lanterns drift")
        await rico.client.say("a gull calls")
        screen = await screen_shows(session, "rico: a gull calls")
        assert "the lanterns drift" in screen, screen
        tmux("send-keys", "-t", session, "-l", " upward")
        tmux("send-keys", "-t", session, "Enter")
        await screen_shows(session, "lila: the lanterns drift upward")
        assert await _said(rico, "the lanterns drift upward"), "the room heard it"
        tmux("send-keys", "-t", session, "C-c")
        deadline = time.monotonic() + 10
        while session in tmux("list-sessions", "-F", "#{session_name}"):
            assert time.monotonic() < deadline, "the client did not leave on Ctrl-C"
            await asyncio.sleep(0.2)


async def _said(rec: Recorder, text: str) -> bool:
    for _ in range(50):
        if any(i.get("text") == text for i in rec.items("said")):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_an_unreachable_server_is_said_once_and_the_screen_exits_1(session: str) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    command = (
        f"env -u COLUMNS -u LINES {SLEEPSYNC} dream void --name lila --server {url}; "
        "echo exit=$?; sleep 30"
    )
    tmux("new-session", "-d", "-s", session, "-x", "150", "-y", "45", command)
    screen = await screen_shows(session, "exit=1", timeout=30)
    said = [line for line in screen.splitlines() if line.startswith("sleepsync: ")]
    assert said == [f"sleepsync: cannot reach {url}: " + said[0].split(": ", 2)[2]], screen
