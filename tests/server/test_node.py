"""Whole nodes in one process: HTTP answers, readiness, bounded shutdown, no task
left behind, and failover between two nodes sharing one memory backend."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.protocol import State

from sleepsync.client.connection import RoomClient
from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.messages import Hello, Join, Snapshot, Status
from sleepsync.protocol.wire import Limits
from sleepsync.server.backend.memory import MemoryBackend
from sleepsync.server.node import Node

from nodes import OffsetClock, Recorder, running_node, wait_for
from nodes import test_settings as node_settings

LIMITS = Limits(max_frame=1 << 22, max_str=1 << 20, max_array=1 << 16)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# ---------------------------------------------------------------- HTTP
async def test_unknown_paths_are_404_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_node() as node:
        for path in ("/nope", "/", "/healthz/extra", "/metrics.json"):
            assert await asyncio.to_thread(get, node.port, path) == (404, "not found\n"), path
        assert await asyncio.to_thread(get, node.port, "/healthz") == (200, "ok\n")
    assert not [r for r in caplog.records if r.exc_info], "nothing was logged with a traceback"


class SlowStartBackend(MemoryBackend):
    """A backend whose start waits until the test lets it go on."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.go = asyncio.Event()

    async def start(self) -> None:
        await self.go.wait()


async def test_readyz_is_503_until_the_node_serves() -> None:
    backend = SlowStartBackend()
    node = Node(node_settings(), backend=backend, mqtt=False)
    starting = asyncio.create_task(node.start())
    try:
        await wait_for(lambda: node._server is not None, what="the port to be bound")
        assert await asyncio.to_thread(get, node.port, "/readyz") == (503, "not ready\n")
        assert (await asyncio.to_thread(get, node.port, "/healthz"))[0] == 200
        with pytest.raises(InvalidStatus) as info:
            async with connect(node.url):
                pass
        assert info.value.response.status_code == 503
        backend.go.set()
        await starting
        assert await asyncio.to_thread(get, node.port, "/readyz") == (200, "ready\n")
    finally:
        backend.go.set()
        await starting
        await node.stop()
    assert not node.ready


async def test_a_failed_start_releases_the_port() -> None:
    class Broken(MemoryBackend):
        async def start(self) -> None:
            raise OSError("no store")

    node = Node(node_settings(), backend=Broken(), mqtt=False)
    with pytest.raises(OSError):
        await node.start()
    assert node._server is None
    await node.stop()


# ---------------------------------------------------------------- stopping
def node_tasks(before: set[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t not in before and not t.done()} - {
        asyncio.current_task()  # type: ignore[arg-type]
    }


@pytest.mark.parametrize("mqtt", [False, True])
async def test_stop_leaves_no_task_of_the_node_alive(mqtt: bool) -> None:
    before = set(asyncio.all_tasks())
    settings = node_settings(mqtt_embedded_port=0)
    node = Node(settings, mqtt=mqtt)
    await node.start()
    async with Recorder(RoomClient(node.url, "r", "lila")) as lila:
        await wait_for(lambda: bool(lila.events()), what="events")
        await lila.client.say("hello")
        await wait_for(lambda: bool(lila.items("said")), what="the line")
        assert node.tasks.tasks, "the node runs background tasks"
        await node.stop()
        await wait_for(lambda: lila.task is not None and lila.task.done(), what="client end")
    assert not node.tasks.tasks
    assert node_tasks(before) == set(), node_tasks(before)
    statuses = lila.of_type(Status)
    assert [s.state for s in statuses] == ["shutting_down"]


async def test_shutdown_grace_bounds_exit_with_a_client_that_stopped_reading() -> None:
    grace = 1.0
    async with running_node(
        engine=False,
        shutdown_grace=grace,
        close_timeout=10,
        outbound_buffer_bytes=1 << 30,  # never a slow consumer: it just stops reading
        max_inbound_rate=100_000,
        inbound_burst=100_000,
    ) as node:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", node.port))
        sloth = await connect(node.url, sock=sock, max_queue=1, max_size=None)
        await sloth.send(encode(Hello("sloth")))
        await sloth.send(encode(Join("storm", "observer")))
        while not isinstance(decode(await sloth.recv(), LIMITS), Snapshot):
            pass
        teller = RoomClient(node.url, "storm", "teller")
        async with Recorder(teller) as told:
            line = "x" * 480

            def held() -> int:
                return max(s.conn.transport.get_write_buffer_size() for s in node.gateway.sessions)

            sent = 0
            while held() < 200_000 and sent < 40_000:  # past what the kernel buffers take
                await teller.say(f"{sent} {line}")
                sent += 1
                if sent % 100 == 0:
                    await asyncio.sleep(0.01)
            await wait_for(lambda: held() > 200_000, timeout=20, what="the server to hold a lot")
            assert told.error is None
            conns = [s.conn for s in node.gateway.sessions]
            started = time.monotonic()
            await node.stop()
            took = time.monotonic() - started
            assert all(conn.state is State.CLOSED for conn in conns), "nobody left behind"
        assert took < grace + 2.0, f"stop took {took:.1f} s with a {grace} s grace"
        sloth.transport.abort()


async def test_status_goes_to_every_client_in_one_broadcast() -> None:
    async with running_node() as node:
        clients = [RoomClient(node.url, "r", f"d{i}", role="observer") for i in range(3)]
        async with Recorder(clients[0]) as a, Recorder(clients[1]) as b, Recorder(clients[2]) as c:
            await wait_for(lambda: all(r.of_type(Snapshot) for r in (a, b, c)), what="joins")
            node.gateway.set_health(False, "the shared store is unreachable")
            node.gateway.set_health(True, "")
            await wait_for(lambda: all(len(r.of_type(Status)) == 2 for r in (a, b, c)))
            assert [s.state for s in a.of_type(Status)] == ["degraded", "ok"]


# ---------------------------------------------------------------- two nodes, one store
async def test_failover_between_two_nodes_in_one_process() -> None:
    clock = OffsetClock()
    backend = MemoryBackend(clock=clock)
    common = {"lease_ttl_ms": 600, "node_ttl_ms": 1200, "snapshot_every": 5}
    a = Node(node_settings(node_id="a", **common), backend=backend, clock=clock, mqtt=False)
    b = Node(node_settings(node_id="b", **common), backend=backend, clock=clock, mqtt=False)
    await a.start()
    await b.start()
    try:
        async with Recorder(RoomClient(a.url, "r", "anchor")) as anchor:
            await wait_for(lambda: "r" in a.rooms.owned, what="a to own the room")
            async with (
                Recorder(RoomClient(b.url, "r", "lila")) as lila,
                Recorder(RoomClient(b.url, "r", "mira", role="observer")) as mira,
            ):
                await wait_for(lambda: bool(lila.events() and mira.events()), what="events")
                await lila.client.say("before")
                await wait_for(lambda: bool(mira.items("said")), what="the first line")
                epoch = mira.events()[-1].epoch
                # a crashes: its tasks end, its lease and heartbeat stay until they expire.
                await a.tasks.stop()
                await lila.client.say("during")
                clock.advance(1.5)
                await wait_for(lambda: "r" in b.rooms.owned, timeout=5, what="b to take over")
                await lila.client.say("after")
                await wait_for(lambda: len(mira.items("said")) == 3, timeout=5, what="lines")
                assert [i["text"] for i in mira.items("said")] == ["before", "during", "after"]
                for r in (lila, mira):
                    seqs = [e.seq for e in r.events()]
                    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no gap"
                    assert r.error is None
                assert mira.events()[-1].epoch > epoch
                await wait_for(
                    lambda: any(i["name"] == "anchor" for i in mira.items("left")),
                    timeout=5,
                    what="the crashed node's member to leave",
                )
            anchor.task.cancel() if anchor.task else None
    finally:
        await b.stop()
        await a.stop()


async def test_a_new_room_first_snapshot_carries_the_real_epoch() -> None:
    async with running_node() as node, Recorder(RoomClient(node.url, "fresh", "lila")) as lila:
        await wait_for(lambda: bool(lila.events()), what="events")
        [snapshot] = lila.of_type(Snapshot)
        assert snapshot.epoch > 0 and snapshot.epoch == lila.events()[0].epoch
