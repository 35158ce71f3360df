"""Server nodes as real ``sleepsync serve`` processes sharing one Redis, for tests.

Each node gets free ports (websocket and embedded MQTT broker) and writes its
log to a file; every process started is killed at the end, also on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from sleepsync.client.connection import RoomClient, SeqGap
from sleepsync.protocol.messages import Event, Resync, Role, ServerMessage, Snapshot, Status

from nodes import free_port

SLEEPSYNC = os.path.join(os.path.dirname(sys.executable), "sleepsync")

#: Fast failover for tests: 1 s leases, 2 s node heartbeats, snapshots every 5 ticks.
FAST = {
    "--tick-hz": "20",
    "--lease-ttl-ms": "1000",
    "--node-ttl-ms": "2000",
    "--snapshot-every": "5",
    "--room-idle-seconds": "30",
}


class NodeProcess:
    """One ``sleepsync serve --redis ...`` process."""

    def __init__(self, name: str, redis_url: str, logdir: Path, **flags: str) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = logdir / f"{name}.log"
        args = {
            **FAST,
            "--node-id": name,
            "--port": str(self.port),
            "--redis": redis_url,
            "--mqtt-embedded-port": str(free_port()),
            **{"--" + k.replace("_", "-"): v for k, v in flags.items()},
        }
        self.argv = [SLEEPSYNC, "serve", *(x for kv in args.items() for x in kv)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)

    def http(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.name} exited:\n{self.log()}")
            with contextlib.suppress(OSError):
                if self.http("/readyz")[0] == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"node {self.name} not ready:\n{self.log()}")
            time.sleep(0.05)

    def metric(self, name: str) -> float:
        """A sample of /metrics (0 when absent)."""
        _status, body = self.http("/metrics")
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        return self.proc.wait(timeout=20)

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except OSError:
            return ""


@contextlib.contextmanager
def node_processes(
    count: int, redis_url: str, logdir: Path, **flags: str
) -> Iterator[list[NodeProcess]]:
    nodes = [NodeProcess(f"n{i + 1}", redis_url, logdir, **flags) for i in range(count)]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        yield nodes
    finally:
        for node in nodes:
            node.kill()


class Follower:
    """A client that stays in a room across nodes: on a lost connection it
    resumes, with its last (epoch, seq), at the next URL in ``urls``.

    ``RoomClient`` checks every seq: a gap or a duplicate ends up in ``gaps``.
    """

    def __init__(
        self,
        urls: list[str],
        room: str,
        name: str,
        role: Role = "dreamer",
        *,
        token: str | None = None,
    ) -> None:
        self.urls = urls
        self.client = RoomClient(urls, room, name, role=role, token=token)
        self.messages: list[ServerMessage] = []
        self.gaps: list[str] = []
        self.connects = 0
        self.task: asyncio.Task[None] | None = None
        self.stopped = False

    async def __aenter__(self) -> Follower:
        self.task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self.stopped = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        with contextlib.suppress(Exception):
            await self.client.close()

    async def _run(self) -> None:
        while True:  # each open() after a loss tries the next URL (RoomClient's failover)
            try:
                await self.client.open()
                self.connects += 1
                async for msg in self.client.messages():
                    self.messages.append(msg)
            except SeqGap as exc:
                self.gaps.append(str(exc))
            except (ConnectionError, ConnectionClosed, OSError, TimeoutError):
                pass
            with contextlib.suppress(Exception):
                if self.client.conn is not None:
                    await self.client.conn.close()
            await asyncio.sleep(0.1)

    async def say(self, text: str) -> None:
        await self.client.say(text)

    def events(self) -> list[Event]:
        return [m for m in self.messages if isinstance(m, Event)]

    def of_type(self, cls: type[ServerMessage]) -> list[ServerMessage]:
        return [m for m in self.messages if isinstance(m, cls)]

    def resyncs(self) -> list[Resync]:
        return [m for m in self.messages if isinstance(m, Resync)]

    def statuses(self) -> list[str]:
        return [m.state for m in self.messages if isinstance(m, Status)]

    def snapshots(self) -> list[Snapshot]:
        return [m for m in self.messages if isinstance(m, Snapshot)]

    def said(self) -> list[str]:
        return [
            str(item["text"])
            for e in self.events()
            for item in e.items
            if item.get("kind") == "said"
        ]

    def last_seq(self) -> int:
        pos = self.client.position
        return 0 if pos is None else pos.seq

    def check_history(self) -> None:
        """Every event follows the previous one or a snapshot: no gap, no duplicate."""
        assert not self.gaps, self.gaps
        position: int | None = None
        for msg in self.messages:
            if isinstance(msg, Snapshot):
                position = msg.seq
            elif isinstance(msg, Event):
                assert position is not None, "an event before any snapshot"
                assert msg.seq == position + 1, f"event {msg.seq} after {position}"
                position = msg.seq
