"""The ``sleepsync`` command: ``serve``, ``dream``, ``demo``, ``pods`` and ``mqtt-passwd``.

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
from pathlib import Path
from typing import TypeVar

from sleepsync.client.load import add_load_parser, main_load
from sleepsync.client.physiology import PROFILES
from sleepsync.client.pods import PodFleet, PodOptions
from sleepsync.client.terminal import TerminalOptions, run_terminal
from sleepsync.protocol.errors import SleepSyncError
from sleepsync.protocol.wire import NAME_RE, ROOM_RE

from .broker import SERVER_USER, read_credentials, write_credentials
from .config import Settings, add_arguments, settings_from_args
from .node import Node

__all__ = ["main"]

T = TypeVar("T")
DEFAULT_SERVER = "ws://127.0.0.1:8765"
DEFAULT_MQTT = "mqtt://127.0.0.1:1883"
#: Pods ``sleepsync demo`` starts in its room.
DEMO_PODS = 8


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
    serve.add_argument(
        "--mqtt",
        dest="mqtt_url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="short for --mqtt-url: the pods' broker, mqtt://user:pass@host:1883",
    )

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
    demo.add_argument(
        "--mqtt-port", type=int, default=1883, help="port of the demo's embedded MQTT broker"
    )
    demo.add_argument(
        "--pods", type=int, default=DEMO_PODS, help="simulated pods streaming into the room"
    )

    pods = sub.add_parser(
        "pods",
        help="simulate pods streaming telemetry into a room",
        description="Run COUNT simulated pods, each its own MQTT client with a Last Will, "
        "streaming telemetry into ROOM and reacting to calm cues. Deterministic per --seed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pods.add_argument("--room", required=True, type=_pattern(ROOM_RE, "ROOM"), help="room id")
    pods.add_argument("--count", type=_count, default=8, help="number of pods")
    pods.add_argument("--rate", type=_positive, default=2.0, help="samples per second per pod")
    pods.add_argument("--profile", choices=PROFILES, default="mixed", help="emotional profile")
    pods.add_argument("--seed", type=int, default=0, help="seed of the signals and faults")
    pods.add_argument("--mqtt", default=DEFAULT_MQTT, metavar="URL", help="broker URL")
    pods.add_argument(
        "--credentials",
        type=_readable,
        default=None,
        metavar="FILE",
        help="user:password lines from `sleepsync mqtt-passwd` (pods log in as their id)",
    )
    pods.add_argument("--prefix", default="pod", help="pod ids are PREFIX-001, PREFIX-002, ...")
    pods.add_argument("--duration", type=_positive, default=None, help="stop after seconds")

    passwd = sub.add_parser(
        "mqtt-passwd",
        help="generate Mosquitto credentials for the server and N pods",
        description="Write a Mosquitto password file (hashed, for the broker) and a plain "
        f"credentials file (user:password, mode 0600) for {SERVER_USER!r} and pods "
        "PREFIX-001..PREFIX-N. Existing files are replaced.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    passwd.add_argument("--pods", type=_count, required=True, help="number of pods")
    passwd.add_argument("--out", default="deploy/mosquitto/passwd", help="password file")
    passwd.add_argument(
        "--credentials",
        default=None,
        help="plain credentials file (default: OUT.credentials beside the password file)",
    )
    passwd.add_argument("--prefix", default="pod", help="pod id prefix")

    add_load_parser(sub)
    return parser


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= 100_000:
        raise argparse.ArgumentTypeError(f"must be 1..100000, got {value}")
    return number


def _readable(value: str) -> str:
    import os

    if not os.path.isfile(value):
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return value


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
    try:
        node = Node(settings)
    except ValueError as exc:  # a malformed --mqtt URL
        print(f"sleepsync: {exc}", file=sys.stderr)
        return 2
    try:
        _run(lambda: serve_until_cancelled(node))
    except SleepSyncError as exc:  # e.g. the embedded broker's port is taken
        print(f"sleepsync: {exc.message}", file=sys.stderr)
        return 1
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
                f"'demo' with {args.pods} simulated pods. Type to tell the story, "
                "Ctrl-C to leave.",
                file=sys.stderr,
            )
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
        code = _run(demo)
    except SleepSyncError as exc:
        print(f"sleepsync: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sleepsync: cannot serve on port {args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0 if code is None else code


def _cmd_pods(args: argparse.Namespace) -> int:
    _configure_logging("WARNING")
    try:
        passwords = read_credentials(Path(args.credentials)) if args.credentials else None
        opts = PodOptions(
            room=args.room,
            count=args.count,
            rate=args.rate,
            profile=args.profile,
            seed=args.seed,
            mqtt=args.mqtt,
            duration=args.duration,
            prefix=args.prefix,
            passwords=passwords,
        )
        fleet = PodFleet(opts)  # checks the URL and the pod ids
    except ValueError as exc:
        print(f"sleepsync: {exc}", file=sys.stderr)
        return 2
    print(
        f"{len(fleet.pods)} pods streaming into room {args.room} via {opts.mqtt.split('@')[-1]}"
        f"{'' if args.duration else '; Ctrl-C to stop'}",
        file=sys.stderr,
    )

    async def pods() -> None:
        task = asyncio.ensure_future(fleet.run())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            fleet.stop()
            await task

    _run(pods)
    print(fleet.summary(), file=sys.stderr)
    return 0


def _cmd_mqtt_passwd(args: argparse.Namespace) -> int:
    out = Path(args.out)
    creds = Path(args.credentials) if args.credentials else out.with_name(out.name + ".credentials")
    try:
        written = write_credentials(args.pods, out, creds, prefix=args.prefix)
    except (OSError, ValueError) as exc:
        print(f"sleepsync: cannot write credentials: {exc}", file=sys.stderr)
        return 1
    server = next(c for c in written if c.username == SERVER_USER)
    print(f"wrote {out} ({len(written)} users, hashed) and {creds} (plain, mode 0600)")
    print(f"server: sleepsync serve --mqtt mqtt://{SERVER_USER}:{server.password}@HOST:1883")
    print(f"pods:   sleepsync pods --room ROOM --count {args.pods} --credentials {creds} "
          "--mqtt mqtt://HOST:1883")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "serve": _cmd_serve,
        "dream": _cmd_dream,
        "demo": _cmd_demo,
        "pods": _cmd_pods,
        "mqtt-passwd": _cmd_mqtt_passwd,
        "load": main_load,
    }
    return commands[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
