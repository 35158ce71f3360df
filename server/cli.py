"""The ``sleepsync`` command: ``serve``, ``dream`` and ``demo``.

Every ``serve`` flag is also an env var ``SLEEPSYNC_<NAME>`` (see
``config.py``). Bad arguments exit with status 2 and one line naming the
problem; SIGTERM and SIGINT stop a server gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sleepsync.client.terminal import TerminalOptions, run_terminal
from sleepsync.protocol.wire import NAME_RE, ROOM_RE

from .config import Settings, add_arguments, settings_from_args
from .node import Node

__all__ = ["main"]

T = TypeVar("T")
DEFAULT_SERVER = "ws://127.0.0.1:8765"


def _pattern(regex: object, what: str) -> Callable[[str], str]:
    import re

    assert isinstance(regex, re.Pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise argparse.ArgumentTypeError(f"{what} must match {regex.pattern}, got {value!r}")
        return value

    check.__name__ = what
    return check


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sleepsync",
        description="SleepSync: shared dream rooms. Pods stream emotional telemetry, "
        "the server simulates how the room's emotions spread and steers it back when "
        "it collapses; people watch and tell stories from terminal clients.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run a server node",
        description="Run a server node. Every flag is also an env var SLEEPSYNC_<FLAG>.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(serve)

    dream = sub.add_parser(
        "dream",
        help="join a room from the terminal",
        description="Join ROOM, print its events, and send each stdin line as a story line.",
    )
    dream.add_argument("room", type=_pattern(ROOM_RE, "ROOM"), help="room id")
    dream.add_argument(
        "--name", required=True, type=_pattern(NAME_RE, "NAME"), help="your name in the room"
    )
    dream.add_argument("--server", default=DEFAULT_SERVER, help="websocket URL of a server node")
    dream.add_argument("--observer", action="store_true", help="watch only (stdin is not read)")
    dream.add_argument("--json", action="store_true", help="one JSON object per line (see README)")
    dream.add_argument(
        "--duration", type=_positive, default=None, help="leave after this many seconds"
    )
    dream.add_argument(
        "--give-up-after",
        type=_positive,
        default=60.0,
        help="exit with status 1 when the server stays unreachable this long (seconds)",
    )

    demo = sub.add_parser(
        "demo",
        help="run a single-node server and join its demo room",
        description="Start an embedded single-node server and join room 'demo' as a dreamer: "
        "type lines to tell the story, Ctrl-C to leave.",
    )
    demo.add_argument("--port", type=int, default=8765, help="websocket port of the demo server")
    demo.add_argument("--name", default="you", type=_pattern(NAME_RE, "NAME"))
    demo.add_argument("--json", action="store_true", help="print JSON lines")
    demo.add_argument("--duration", type=_positive, default=None, help="stop after seconds")
    return parser


def _run(main: Callable[[], Awaitable[T]]) -> T | None:
    """Run ``main`` until it ends or SIGINT/SIGTERM cancels it (cleanly)."""

    async def wrapper() -> T | None:
        task = asyncio.ensure_future(main())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            return None

    return asyncio.run(wrapper())


async def serve_until_cancelled(node: Node) -> None:
    await node.start()
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(node.stop())


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # websockets logs every plain HTTP probe (/healthz) as a rejected handshake.
    logging.getLogger("websockets.server").setLevel(logging.WARNING)


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    _configure_logging(settings.log_level)
    node = Node(settings)
    try:
        _run(lambda: serve_until_cancelled(node))
    except OSError as exc:
        print(
            f"sleepsync: cannot serve on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_dream(args: argparse.Namespace) -> int:
    opts = TerminalOptions(
        url=args.server,
        room=args.room,
        name=args.name,
        role="observer" if args.observer else "dreamer",
        json=args.json,
        duration=args.duration,
        give_up_after=args.give_up_after,
    )
    with contextlib.suppress(BrokenPipeError):
        code = _run(lambda: run_terminal(opts))
        return 0 if code is None else code
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    _configure_logging("WARNING")
    settings = Settings(port=args.port, node_id="demo")
    node = Node(settings)

    async def demo() -> int:
        await node.start()
        try:
            print(
                f"SleepSync demo server on {node.url}; room 'demo'. Type to tell the story, "
                "Ctrl-C to leave.",
                file=sys.stderr,
            )
            opts = TerminalOptions(
                url=node.url, room="demo", name=args.name, json=args.json, duration=args.duration
            )
            return await run_terminal(opts)
        finally:
            await asyncio.shield(node.stop())

    try:
        code = _run(demo)
    except OSError as exc:
        print(f"sleepsync: cannot serve on port {args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0 if code is None else code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"serve": _cmd_serve, "dream": _cmd_dream, "demo": _cmd_demo}
    return commands[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
