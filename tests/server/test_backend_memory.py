"""The backend conformance suite against the in-memory backend."""

from __future__ import annotations

from typing import Any

import pytest

from sleepsync.server.backend.base import Backend
from sleepsync.server.backend.memory import MemoryBackend

from backend_conformance import BackendConformance, MakeBackend


@pytest.fixture
def make_backend() -> MakeBackend:
    async def make(**kwargs: Any) -> Backend:
        backend = MemoryBackend(**kwargs)
        await backend.start()
        return backend

    return make


class TestMemoryBackend(BackendConformance):
    pass


async def test_leases_and_heartbeats_follow_an_injected_clock() -> None:
    now = [100.0]
    backend = MemoryBackend(clock=lambda: now[0])
    await backend.create_room("r", 10)
    lease = await backend.acquire_lease("r", "n1", 1000)
    await backend.heartbeat("n1", 2000)
    assert lease is not None
    now[0] += 0.9
    assert await backend.owner("r") == lease
    now[0] += 0.2
    assert await backend.owner("r") is None
    assert await backend.live_nodes() == ["n1"]
    now[0] += 1.0
    assert await backend.live_nodes() == []
