"""``sleepsync dream`` driven through pipes, the way scripts use it."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from sleepsync.client.connection import RoomClient

from nodes import Recorder, free_port, running_node, wait_for

SLEEPSYNC = os.path.join(os.path.dirname(sys.executable), "sleepsync")


async def run_cli(
    *args: str, stdin: bytes | None = None, timeout: float = 30
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        SLEEPSYNC,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_dream_json_through_pipes_sends_lines_and_exits_on_eof() -> None:
    async with (
        running_node() as node,
        Recorder(RoomClient(node.url, "pipes", "mira", role="observer")) as watcher,
    ):
        code, out, err = await run_cli(
            "dream",
            "pipes",
            "--name",
            "lila",
            "--json",
            "--server",
            node.url,
            stdin=b"once upon a time\n\nthe sea was calm\n",
        )
        assert code == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert all("type" in line for line in lines)
        types = [line["type"] for line in lines]
        assert types[:2] == ["welcome", "snapshot"]
        said = [line for line in lines if line["type"] == "said"]
        assert [s["text"] for s in said] == ["once upon a time", "the sea was calm"]
        event_lines = [line for line in lines if line["type"] not in ("welcome", "snapshot")]
        assert event_lines and all(isinstance(line["seq"], int) for line in event_lines)
        assert all(line["room"] == "pipes" and "epoch" in line for line in event_lines)
        seqs = sorted({line["seq"] for line in event_lines})
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), "contiguous"
        # Others in the room saw the same lines, and saw lila leave.
        await wait_for(lambda: len(watcher.items("said")) == 2)
        await wait_for(lambda: any(i["name"] == "lila" for i in watcher.items("left")))
        assert "Traceback" not in err


async def test_dream_plain_prints_sentences() -> None:
    async with running_node() as node:
        code, out, err = await run_cli(
            "dream",
            "words",
            "--name",
            "rico",
            "--server",
            node.url,
            stdin=b"a dream of rain\n/help\n/who\n/pass\n",
        )
        assert code == 0, err
        lines = out.splitlines()
        assert "rico joined the dream." in lines
        assert "rico: a dream of rain" in lines
        assert "The Shared Night, the drift: The pods hum." in out, "the scene's text"
        assert "  /template FILE: check a narrative template (.json or .toml) and upload it" in out
        assert any(line.startswith("In words: ") for line in lines), "/who answered locally"
        assert not any(line.startswith("rico: /") for line in lines), "commands are not story"
        assert not any("[seq" in line or "=" in line for line in lines)


async def test_an_illegal_pass_is_answered() -> None:
    async with running_node() as node:
        code, out, err = await run_cli(
            "dream", "turns", "--name", "rico", "--server", node.url, stdin=b"/pass\nhello\n"
        )
        assert code == 0, err
        assert "Not now: no storytelling circle is open." in out.splitlines()


async def test_a_wrong_scheme_is_one_line_and_status_2() -> None:
    code, out, err = await run_cli("dream", "x", "--name", "a", "--server", "http://127.0.0.1:1")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "sleepsync: server URL 'http://127.0.0.1:1' must start with ws:// or wss://"
    ]


async def test_an_unreachable_first_server_is_said_once_and_status_1() -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    started = asyncio.get_running_loop().time()
    code, out, err = await run_cli("dream", "void", "--name", "lila", "--plain", "--server", url)
    assert code == 1, err
    assert asyncio.get_running_loop().time() - started < 15
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Cannot reach {url}: ")


async def test_observer_runs_for_its_duration_without_reading_stdin() -> None:
    async with running_node() as node, Recorder(RoomClient(node.url, "watch", "lila")) as teller:
        task = asyncio.create_task(
            run_cli(
                "dream",
                "watch",
                "--name",
                "jasper",
                "--observer",
                "--json",
                "--duration",
                "2",
                "--server",
                node.url,
            )
        )
        await asyncio.sleep(1.0)
        await teller.client.say("seen by the observer")
        code, out, err = await task
        assert code == 0, err
        said = [json.loads(x) for x in out.splitlines() if '"said"' in x]
        assert [s["text"] for s in said] == ["seen by the observer"]


async def test_observer_cannot_tell_the_story_and_is_told_why() -> None:
    async with running_node() as node:
        code, out, _ = await run_cli(
            "dream",
            "watch",
            "--name",
            "jasper",
            "--observer",
            "--json",
            "--duration",
            "1",
            "--server",
            node.url,
        )
        assert code == 0
        assert '"said"' not in out


async def test_unreachable_server_gives_up_with_status_1() -> None:
    port = free_port()
    code, out, err = await run_cli(
        "dream",
        "void",
        "--name",
        "lila",
        "--json",
        "--give-up-after",
        "1",
        "--server",
        f"ws://127.0.0.1:{port}",
    )
    assert code == 1
    last = json.loads(out.splitlines()[-1])
    assert last["type"] == "unreachable"
    assert "Traceback" not in err


async def test_bad_arguments_exit_2_with_one_clear_line() -> None:
    for args, needle in [
        (("dream", "Bad Room", "--name", "x"), "ROOM must match"),
        (("dream", "ok", "--name", "not ok"), "NAME must match"),
        (("dream", "ok"), "--name"),
        (("dream", "ok", "--name", "x", "--duration", "-1"), "must be positive"),
        (("serve", "--port", "http"), "--port"),
        (("serve", "--tick-hz", "0"), "at least"),
    ]:
        code, _out, err = await run_cli(*args)
        assert code == 2, (args, err)
        assert needle in err, (args, err)
        assert "Traceback" not in err


async def test_bad_env_setting_is_reported_not_raised() -> None:
    proc = await asyncio.create_subprocess_exec(
        SLEEPSYNC,
        "serve",
        "--help",
        env={**os.environ, "SLEEPSYNC_TICK_HZ": "fast"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"SLEEPSYNC_TICK_HZ" in err and b"Traceback" not in err


async def test_serve_reports_a_taken_port() -> None:
    async with running_node() as node:
        code, _, err = await run_cli(
            "serve", "--port", str(node.port), "--mqtt-embedded-port", str(free_port())
        )
        assert code == 1
        assert "cannot serve" in err and "Traceback" not in err


async def test_pods_exit_1_when_their_broker_is_unreachable_at_start() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    code, _out, err = await run_cli("pods", "--room", "r", "--count", "1", "--mqtt", url)
    assert code == 1
    assert "cannot reach the MQTT broker at 127.0.0.1:" in err and "Traceback" not in err
