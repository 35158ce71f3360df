"""The owner of a node's background tasks.

asyncio keeps only weak references to tasks, so a task nobody holds can be
garbage-collected mid-flight, and one nobody awaits fails silently. Every
part of a node (gateway, fan-out, rooms, ingest) starts its background work
through the node's one :class:`Supervisor`: it holds each task until it
ends, logs an exception instead of letting it vanish, and :meth:`stop`
cancels and awaits every task, including the ones started while stopping,
so nothing of the node is alive once it returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["Supervisor"]

log = logging.getLogger("sleepsync.supervisor")


class Supervisor:
    """Holds, logs and finally cancels the background tasks of one node."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        """The tasks still running."""
        return frozenset(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task this supervisor holds until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        if self._stopping:
            task.cancel()  # nothing new may outlive stop()
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        """Cancel every task and wait until all have ended."""
        self._stopping = True
        while self._tasks:
            pending = list(self._tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
