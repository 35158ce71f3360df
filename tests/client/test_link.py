"""The reconnect loop and failover across several --server URLs, against real nodes."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from sleepsync.client.connection import RoomClient, server_urls
from sleepsync.client.link import LinkState, run_link
from sleepsync.protocol.messages import Event, ServerMessage, Snapshot
from sleepsync.server.backend.memory import MemoryBackend
from sleepsync.server.node import Node

from nodes import free_port, running_node, wait_for
from nodes import test_settings as node_settings


class Listener:
    def __init__(self) -> None:
        self.messages: list[ServerMessage] = []
        self.states: list[LinkState] = []

    def on_message(self, msg: ServerMessage) -> None:
        self.messages.append(msg)

    def on_state(self, state: LinkState) -> None:
        self.states.append(state)

    def kinds(self) -> list[str]:
        return [s.kind for s in self.states]

    def seqs(self) -> list[int]:
        return [m.seq for m in self.messages if isinstance(m, Event)]


def test_server_urls_are_checked_and_split() -> None:
    assert server_urls(["ws://a:1,ws://b:2", " wss://c "]) == ["ws://a:1", "ws://b:2", "wss://c"]
    with pytest.raises(ValueError, match="must start with ws:// or wss://"):
        server_urls("http://a:1")
    with pytest.raises(ValueError, match="no server URL"):
        server_urls(" , ")


async def test_the_first_connection_gives_up_within_connect_within() -> None:
    client = RoomClient(f"ws://127.0.0.1:{free_port()}", "void", "lila")
    listener = Listener()
    loop = asyncio.get_running_loop()
    started = loop.time()
    code = await run_link(client, listener, connect_within=1.0, give_up_after=60.0)
    assert code == 1 and loop.time() - started < 3.0
    assert listener.kinds()[-1] == "unreachable"
    assert not listener.states[-1].ever_connected


async def test_a_dead_first_url_fails_over_to_the_next() -> None:
    async with running_node() as node:
        client = RoomClient([f"ws://127.0.0.1:{free_port()}", node.url], "lounge", "lila")
        listener = Listener()
        task = asyncio.create_task(run_link(client, listener))
        await wait_for(lambda: any(isinstance(m, Snapshot) for m in listener.messages))
        assert client.url == node.url
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


class SharedBackend(MemoryBackend):
    """One memory backend for two nodes: a node that stops must not close it for the
    other (MemoryBackend.close wakes every reader for good)."""

    async def close(self) -> None:
        pass


async def test_a_lost_node_resumes_on_the_next_without_a_gap() -> None:
    backend = SharedBackend()
    fast = {"lease_ttl_ms": 600, "node_ttl_ms": 1200}
    a = Node(node_settings(node_id="node-a", **fast), backend=backend, mqtt=False)
    await a.start()
    try:
        async with running_node(backend=backend, node_id="node-b", **fast) as b:
            client = RoomClient(f"{a.url},{b.url}", "lounge", "lila")
            listener = Listener()
            task = asyncio.create_task(run_link(client, listener))
            await wait_for(lambda: len(listener.seqs()) >= 5, what="events on node a")
            await a.stop()
            await wait_for(lambda: client.url == b.url and "connected" in listener.kinds()[-3:])
            before = len(listener.seqs())
            await wait_for(lambda: len(listener.seqs()) >= before + 5, 30, "events on node b")
            seqs = listener.seqs()
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap, no duplicate"
            assert sum(isinstance(m, Snapshot) for m in listener.messages) == 1, "no resync"
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await client.close()
    finally:
        await a.stop()
