"""The client's subcommands: ``dream``, ``pods``, ``load`` and ``forget``.

The ``sleepsync`` command (``sleepsync.cli``) imports this module only for
these commands; nothing here imports the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from sleepsync.cliutil import configure_logging, count, pattern, positive, readable_file, run
from sleepsync.protocol.credentials import parse_credentials
from sleepsync.protocol.identity import unverified_subject
from sleepsync.protocol.wire import NAME_RE, ROOM_RE

from .connection import ClientError, websocket_tls
from .forget import forget_room
from .load import add_load_parser, main_load
from .physiology import PROFILES
from .pods import PodFleet, PodOptions
from .terminal import TerminalOptions, run_terminal

__all__ = ["COMMANDS", "DEFAULT_MQTT", "DEFAULT_SERVER"]

DEFAULT_SERVER = "ws://127.0.0.1:8765"
DEFAULT_MQTT = "mqtt://127.0.0.1:1883"
#: The env var a client's ``--token`` defaults to.
TOKEN_ENV = "SLEEPSYNC_TOKEN"


def add_token_argument(parser: argparse.ArgumentParser) -> None:
    """``--token``: the signed token hello carries (from ``sleepsync token``)."""
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        metavar="TOKEN",
        help=f"signed token for a server that requires one (env {TOKEN_ENV})",
    )


def add_ca_argument(parser: argparse.ArgumentParser) -> None:
    """``--ca-file``: the CA that signed a ``wss://`` server's certificate."""
    parser.add_argument(
        "--ca-file",
        type=readable_file,
        default=None,
        metavar="FILE",
        help="CA certificate (PEM) that signed the server's, for a wss:// URL",
    )


def read_ca(args: argparse.Namespace) -> str | None:
    """The text of ``--ca-file``, checked against ``--server``.

    Raises OSError or ValueError (one line) for an unreadable file, a bad CA
    or URL.
    """
    ca_pem = None if args.ca_file is None else Path(args.ca_file).read_text()
    websocket_tls(args.server, ca_pem)
    return ca_pem


def add_dream_parser(sub: Any) -> None:
    dream = sub.add_parser(
        "dream",
        help="join a room from the terminal",
        description="Join ROOM, print its events, and send each stdin line as a story line.",
    )
    dream.add_argument("room", type=pattern(ROOM_RE, "ROOM"), help="room id")
    dream.add_argument(
        "--name", required=True, type=pattern(NAME_RE, "NAME"), help="your name in the room"
    )
    dream.add_argument("--server", default=DEFAULT_SERVER, help="websocket URL of a server node")
    add_ca_argument(dream)
    dream.add_argument("--observer", action="store_true", help="watch only (stdin is not read)")
    dream.add_argument("--json", action="store_true", help="one JSON object per line (see README)")
    dream.add_argument(
        "--duration", type=positive, default=None, help="leave after this many seconds"
    )
    dream.add_argument(
        "--give-up-after",
        type=positive,
        default=60.0,
        help="exit with status 1 when the server stays unreachable this long (seconds)",
    )
    add_token_argument(dream)


def add_forget_parser(sub: Any) -> None:
    forget = sub.add_parser(
        "forget",
        help="erase everything stored about a room (operator token)",
        description="Ask the server to erase ROOM: its events, snapshot, inputs and "
        "presence; members are told and leave it. Needs an operator's token that covers "
        "the room (a server in open mode allows it on loopback only).",
    )
    forget.add_argument("room", type=pattern(ROOM_RE, "ROOM"), help="room id")
    forget.add_argument("--server", default=DEFAULT_SERVER, help="websocket URL of a server node")
    add_ca_argument(forget)
    add_token_argument(forget)
    forget.add_argument(
        "--name",
        type=pattern(NAME_RE, "NAME"),
        default=None,
        help="hello's name (default: the token's subject; 'operator' without a token)",
    )
    forget.add_argument("--timeout", type=positive, default=30.0, help="seconds to wait")


def add_pods_parser(sub: Any) -> None:
    pods = sub.add_parser(
        "pods",
        help="simulate pods streaming telemetry into a room",
        description="Run COUNT simulated pods, each its own MQTT client with a Last Will, "
        "streaming telemetry into ROOM and reacting to calm cues. Deterministic per --seed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    pods.add_argument("--room", required=True, type=pattern(ROOM_RE, "ROOM"), help="room id")
    pods.add_argument("--count", type=count, default=8, help="number of pods")
    pods.add_argument("--rate", type=positive, default=2.0, help="samples per second per pod")
    pods.add_argument("--profile", choices=PROFILES, default="mixed", help="emotional profile")
    pods.add_argument("--seed", type=int, default=0, help="seed of the signals and faults")
    pods.add_argument("--mqtt", default=DEFAULT_MQTT, metavar="URL", help="broker URL")
    pods.add_argument(
        "--credentials",
        type=readable_file,
        default=None,
        metavar="FILE",
        help="user:password lines from `sleepsync mqtt-passwd` (pods log in as their id)",
    )
    pods.add_argument(
        "--ca-file",
        type=readable_file,
        default=None,
        metavar="FILE",
        help="CA certificate (PEM) that signed the broker's, for an mqtts:// URL",
    )
    pods.add_argument("--prefix", default="pod", help="pod ids are PREFIX-001, PREFIX-002, ...")
    pods.add_argument("--duration", type=positive, default=None, help="stop after seconds")


def cmd_dream(args: argparse.Namespace) -> int:
    try:
        ca_pem = read_ca(args)  # a bad CA or URL: one line, exit 2
    except (OSError, ValueError) as exc:
        print(f"sleepsync: {exc}", file=sys.stderr)
        return 2
    opts = TerminalOptions(
        url=args.server,
        room=args.room,
        name=args.name,
        role="observer" if args.observer else "dreamer",
        json=args.json,
        duration=args.duration,
        give_up_after=args.give_up_after,
        token=args.token,
        ca_pem=ca_pem,
    )
    with contextlib.suppress(BrokenPipeError):
        code = run(lambda: run_terminal(opts))
        return 0 if code is None else code
    return 0


def cmd_pods(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    try:
        passwords = None
        if args.credentials:
            with open(args.credentials) as f:
                passwords = parse_credentials(f.read(), args.credentials)
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
            ca_file=args.ca_file,
        )
        fleet = PodFleet(opts)  # checks the URL and the pod ids
    except (OSError, ValueError) as exc:
        print(f"sleepsync: {exc}", file=sys.stderr)
        return 2
    print(
        f"{len(fleet.pods)} pods streaming into room {args.room} via {fleet.broker}"
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

    run(pods)
    print(fleet.summary(), file=sys.stderr)
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    name = args.name or (unverified_subject(args.token) if args.token else None) or "operator"
    try:
        tls = websocket_tls(args.server, read_ca(args))
    except (OSError, ValueError) as exc:
        print(f"sleepsync: {exc}", file=sys.stderr)
        return 2

    async def forget() -> None:
        await forget_room(args.server, args.room, name, args.token, args.timeout, tls=tls)

    try:
        run(forget)
    except ClientError as exc:
        print(f"sleepsync: refused: {exc.message}", file=sys.stderr)
        return 2
    except (ConnectionError, TimeoutError) as exc:
        print(f"sleepsync: {exc or 'no answer in time'}", file=sys.stderr)
        return 1
    print(f"room {args.room} forgotten", file=sys.stderr)
    return 0


#: name -> (add the subparser, run the parsed command); read by ``sleepsync.cli``.
COMMANDS = {
    "dream": (add_dream_parser, cmd_dream),
    "pods": (add_pods_parser, cmd_pods),
    "load": (add_load_parser, main_load),
    "forget": (add_forget_parser, cmd_forget),
}
