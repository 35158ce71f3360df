"""What every ``sleepsync`` subcommand shares: argument types and the runner.

Argument types raise :class:`argparse.ArgumentTypeError` with one sentence,
so a bad value exits with status 2 and one line naming the flag. :func:`run`
runs a coroutine until it ends or SIGINT/SIGTERM cancels it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["configure_logging", "count", "pattern", "positive", "readable_file", "run"]

T = TypeVar("T")


def pattern(regex: re.Pattern[str], what: str) -> Callable[[str], str]:
    """An argument type accepting strings that match ``regex`` whole."""

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise argparse.ArgumentTypeError(f"{what} must match {regex.pattern}, got {value!r}")
        return value

    check.__name__ = what
    return check


def positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= 100_000:
        raise argparse.ArgumentTypeError(f"must be 1..100000, got {value}")
    return number


def readable_file(value: str) -> str:
    if not os.path.isfile(value):
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return value


def run(main: Callable[[], Awaitable[T]]) -> T | None:
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


def configure_logging(level: str, file: str | None = None) -> None:
    """Log lines at ``level`` and above to stderr, or to ``file`` (appended) when given."""
    target: dict[str, Any] = {"filename": file} if file else {"stream": sys.stderr}
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        **target,
    )
    # websockets logs every plain HTTP probe (/healthz) as a rejected handshake.
    logging.getLogger("websockets.server").setLevel(logging.WARNING)
