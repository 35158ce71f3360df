"""The client's subcommands: ``dream``, ``watch``, ``pods``, ``load`` and ``forget``.

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
from sleepsync.protocol.messages import Role
from sleepsync.protocol.wire import NAME_RE, ROOM_RE

from .connection import ClientError, server_urls, websocket_tls
from .forget import forget_room
from .link import CONNECT_WITHIN
from .load import add_load_parser, main_load
from .physiology import PROFILES
from .pods import PodFleet, PodOptions, broker_unreachable
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


def _add_servers(parser: Any) -> None:
    parser.add_argument(
        "--server",
        action="append",
        default=None,
        metavar="URL",
        help="websocket URL of a server node; repeat it (or give a comma list) to fail over "
        f"to the next node, resuming where the last one stopped (default {DEFAULT_SERVER})",
    )
    add_ca_argument(parser)


def servers(args: argparse.Namespace) -> tuple[tuple[str, ...], str | None] | None:
    """The --server URLs and the --ca-file's text, checked; None (after one line
    on stderr) when a URL or the CA file is wrong."""
    try:
        urls = tuple(server_urls(args.server or [DEFAULT_SERVER]))
        ca_pem = None if args.ca_file is None else Path(args.ca_file).read_text()
        websocket_tls(urls, ca_pem)  # a CA that is no certificate, or one without wss://
    except (OSError, ValueError) as exc:
        print(f"sleepsync: {exc}", file=sys.stderr)
        return None
    return urls, ca_pem


def add_dream_parser(sub: Any) -> None:
    dream = sub.add_parser(
        "dream",
        help="join a room from the terminal",
        description="Join ROOM and tell its story. On a terminal this is a full screen "
        "(the scene, the room's balance, who is here, the story and what happens); with "
        "--plain, or when stdout is not a terminal, one sentence per line; with --json, "
        "one JSON object per line (see README).",
    )
    dream.add_argument("room", type=pattern(ROOM_RE, "ROOM"), help="room id")
    dream.add_argument(
        "--name", required=True, type=pattern(NAME_RE, "NAME"), help="your name in the room"
    )
    _add_servers(dream)
    add_token_argument(dream)
    dream.add_argument("--observer", action="store_true", help="watch only (you cannot tell)")
    mode = dream.add_mutually_exclusive_group()
    mode.add_argument("--plain", action="store_true", help="sentences, one per line; no screen")
    mode.add_argument("--json", action="store_true", help="one JSON object per line (see README)")
    dream.add_argument(
        "--duration", type=positive, default=None, help="leave after this many seconds"
    )
    dream.add_argument(
        "--give-up-after",
        type=positive,
        default=60.0,
        help="exit with status 1 when the server stays unreachable this long (seconds); "
        f"the first connection must be made within {CONNECT_WITHIN:g} s",
    )


def add_watch_parser(sub: Any) -> None:
    watch = sub.add_parser(
        "watch",
        help="watch several rooms at once (read-only dashboard)",
        description="A read-only dashboard of ROOMs (default: every room on the server, "
        "and rooms that open later): phase, balance, dreamers, glitches and scene of each. "
        "Joins as an observer.",
    )
    watch.add_argument("rooms", nargs="*", type=pattern(ROOM_RE, "ROOM"), metavar="ROOM")
    _add_servers(watch)
    watch.add_argument(
        "--name",
        default=None,
        type=pattern(NAME_RE, "NAME"),
        help="observer name (default: the token's subject, else 'watcher')",
    )
    watch.add_argument(
        "--duration", type=positive, default=None, help="stop after this many seconds"
    )
    add_token_argument(watch)


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
    got = servers(args)
    if got is None:
        return 2
    urls, ca_pem = got
    role: Role = "observer" if args.observer else "dreamer"
    screen = not (args.plain or args.json) and sys.stdout.isatty() and sys.stdin.isatty()
    if screen:
        from .tui.run import run_dream_screen

        return run_dream_screen(
            urls,
            args.room,
            args.name,
            role=role,
            give_up_after=args.give_up_after,
            duration=args.duration,
            ca_pem=ca_pem,
            token=args.token,
        )
    opts = TerminalOptions(
        url=urls,
        room=args.room,
        name=args.name,
        role=role,
        json=args.json,
        duration=args.duration,
        give_up_after=args.give_up_after,
        token=args.token,
        ca_pem=ca_pem,
        tty=not args.json and sys.stdin.isatty() and sys.stdout.isatty(),
    )
    with contextlib.suppress(BrokenPipeError):
        code = run(lambda: run_terminal(opts))
        return 0 if code is None else code
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    got = servers(args)
    if got is None:
        return 2
    urls, ca_pem = got
    from .tui.run import run_watch_screen

    name = args.name
    if args.token and name is None:
        name = unverified_subject(args.token) or "watcher"  # hello's name is the token's
    return run_watch_screen(
        urls,
        list(args.rooms),
        name=name or "watcher",
        duration=args.duration,
        ca_pem=ca_pem,
        token=args.token,
    )


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
    unreachable = asyncio.run(broker_unreachable(opts.mqtt))
    if unreachable is not None:
        print(f"sleepsync: {unreachable}", file=sys.stderr)
        return 1
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
    "watch": (add_watch_parser, cmd_watch),
    "pods": (add_pods_parser, cmd_pods),
    "load": (add_load_parser, main_load),
    "forget": (add_forget_parser, cmd_forget),
}
