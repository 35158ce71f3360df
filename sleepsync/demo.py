"""``sleepsync demo``: a single-node server and a terminal in its demo room.

The one command that composes both sides (a server node and the terminal
client), which is why it lives here and not in ``server`` or ``client``.
The server's log lines go to a file the demo names once, never onto the
screen: on a terminal the screen is the Textual dream screen (``--plain``
or a pipe gives sentences, ``--json`` JSON lines).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from typing import Any

from sleepsync.client.pods import PodFleet, PodOptions
from sleepsync.client.terminal import TerminalOptions, run_terminal
from sleepsync.cliutil import configure_logging, pattern, positive, run
from sleepsync.protocol.errors import SleepSyncError
from sleepsync.protocol.wire import NAME_RE
from sleepsync.server.config import Settings
from sleepsync.server.node import Node

__all__ = ["COMMANDS", "DEMO_PODS"]

#: Pods ``sleepsync demo`` starts in its room.
DEMO_PODS = 8


def add_demo_parser(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="run a single-node server and join its demo room",
        description="Start an embedded single-node server and join room 'demo' as a dreamer: "
        "type lines to tell the story, Ctrl-C to leave.",
    )
    demo.add_argument("--port", type=int, default=8765, help="websocket port of the demo server")
    demo.add_argument("--name", default="you", type=pattern(NAME_RE, "NAME"))
    mode = demo.add_mutually_exclusive_group()
    mode.add_argument("--plain", action="store_true", help="sentences, one per line; no screen")
    mode.add_argument("--json", action="store_true", help="print JSON lines")
    demo.add_argument(
        "--log-file",
        default=None,
        metavar="FILE",
        help="where the server's log lines go (default: a new file in the temp folder)",
    )
    demo.add_argument("--duration", type=positive, default=None, help="stop after seconds")
    demo.add_argument(
        "--mqtt-port", type=int, default=1883, help="port of the demo's embedded MQTT broker"
    )
    demo.add_argument(
        "--pods", type=int, default=DEMO_PODS, help="simulated pods streaming into the room"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    log_file = args.log_file
    if log_file is None:
        fd, log_file = tempfile.mkstemp(prefix="sleepsync-demo-", suffix=".log")
        os.close(fd)
    configure_logging("INFO", file=log_file)
    screen = not (args.plain or args.json) and sys.stdout.isatty() and sys.stdin.isatty()
    settings = Settings(port=args.port, node_id="demo", mqtt_embedded_port=args.mqtt_port)
    node = Node(settings)

    async def demo() -> int:
        await node.start()
        fleet: PodFleet | None = None
        pods: asyncio.Task[None] | None = None
        try:
            if args.pods > 0 and node.broker is not None:
                # The pods open the room by announcing themselves; the room is alive
                # before the first line is typed.
                fleet = PodFleet(
                    PodOptions(room="demo", count=args.pods, profile="mixed", mqtt=node.broker.url)
                )
                pods = asyncio.create_task(fleet.run())
            print(
                f"SleepSync demo server on {node.url}, MQTT on port {args.mqtt_port}; room "
                f"'demo' with {args.pods} simulated pods. Server logs: {log_file}",
                file=sys.stderr,
            )
            if screen:
                from sleepsync.client.tui.run import dream_app

                app = dream_app((node.url,), "demo", args.name, duration=args.duration)
                await app.run_async()
                return app.return_code or 0
            opts = TerminalOptions(
                url=node.url, room="demo", name=args.name, json=args.json, duration=args.duration
            )
            return await run_terminal(opts)
        finally:
            if fleet is not None and pods is not None:
                fleet.stop()
                with contextlib.suppress(Exception):
                    await asyncio.shield(asyncio.wait_for(pods, 5))
            await asyncio.shield(node.stop())

    try:
        code = run(demo)
    except SleepSyncError as exc:
        print(f"sleepsync: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sleepsync: cannot serve on port {args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0 if code is None else code


COMMANDS = {"demo": (add_demo_parser, cmd_demo)}
