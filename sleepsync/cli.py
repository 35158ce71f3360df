"""The ``sleepsync`` command: one entry point, subcommands loaded lazily.

Each subcommand lives in the package it belongs to (``server.cli``,
``client.cli``; ``demo`` and ``nights`` compose both sides) as a pair: a
function that adds its argparse subparser and one that runs it.
:data:`COMMANDS` names the module of each, so ``sleepsync dream`` never
imports the server and ``sleepsync serve`` never imports the client;
``sleepsync --help`` imports neither.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sleepsync import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand -> (module that defines it, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("sleepsync.server.cli", "run a server node"),
    "mqtt-passwd": (
        "sleepsync.server.cli",
        "generate Mosquitto credentials for the server and N pods",
    ),
    "token": ("sleepsync.server.cli", "mint a signed token for one person (hello's token)"),
    "secrets": (
        "sleepsync.server.cli",
        "write the secrets of docker-compose.yml (MQTT, Redis, auth) into a directory",
    ),
    "demo": ("sleepsync.demo", "run a single-node server and join its demo room"),
    "dream": ("sleepsync.client.cli", "join a room from the terminal"),
    "watch": ("sleepsync.client.cli", "watch several rooms at once (read-only dashboard)"),
    "pods": ("sleepsync.client.cli", "simulate pods streaming telemetry into a room"),
    "load": (
        "sleepsync.client.cli",
        "load-test a deployment with simulated pods and observers",
    ),
    "forget": (
        "sleepsync.client.cli",
        "erase everything stored about a room (operator token)",
    ),
    "journal": ("sleepsync.nights", "export, plot and inspect dream journals"),
    "replay": (
        "sleepsync.nights",
        "re-run a dream journal: check it bit-exact, watch it again, or run a what-if",
    ),
}

Runner = Callable[[argparse.Namespace], int]


def _command(name: str) -> tuple[Callable[[Any], None], Runner]:
    module = importlib.import_module(COMMANDS[name][0])
    table: dict[str, tuple[Callable[[Any], None], Runner]] = module.COMMANDS
    return table[name]


def _root() -> tuple[argparse.ArgumentParser, Any]:
    parser = argparse.ArgumentParser(
        prog="sleepsync",
        description="SleepSync: shared dream rooms. Pods stream emotional telemetry, "
        "the server simulates how the room's emotions spread and steers it back when "
        "it collapses; people watch and tell stories from terminal clients.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"sleepsync {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser, sub


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand (imports them all), or with ``only`` one
    real subcommand and the others listed by name."""
    parser, sub = _root()
    for name, (_module, help_text) in COMMANDS.items():
        if only is None or name == only:
            add, _run = _command(name)
            add(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_in if not a.startswith("-")), None)
    only = chosen if chosen in COMMANDS else ""
    args = build_parser(only).parse_args(args_in)
    _add, run = _command(args.command)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
