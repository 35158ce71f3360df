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


async def test_inbox_drops_oldest_when_full() -> None:
    backend = MemoryBackend(inbox_limit=3)
    await backend.create_room("r", 10)
    for i in range(5):
        await backend.push_input("r", bytes([i]))
    assert await backend.pop_inputs(["r"], 10) == {"r": [b"\x02", b"\x03", b"\x04"]}
