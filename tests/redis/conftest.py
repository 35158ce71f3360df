"""Fixtures: a real redis-server per session (flushed per test) or per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sleepsync.server.backend.base import Backend
from sleepsync.server.backend.redis import RedisBackend

from redis_server import RedisServer


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (it may restart it)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def make_backend(shared_redis: RedisServer) -> AsyncIterator[Any]:
    """``make_backend(retention=...)``: a started RedisBackend on an empty database."""
    shared_redis.command("FLUSHALL")
    made: list[RedisBackend] = []

    async def make(**kwargs: Any) -> Backend:
        backend = RedisBackend(shared_redis.url, **kwargs)
        await backend.start()
        made.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in made:
            await backend.close()
