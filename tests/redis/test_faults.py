"""Fault test: the owner is paused past its lease and node TTL while clients keep talking.

Two ``sleepsync serve`` processes share one real Redis with short lease and
node TTLs. Dreamers on both nodes say numbered lines all along and newcomers
join (some leave again) at the node that is not paused, while the room's
owner is SIGSTOPped for 1.5x, then 3x, max(lease TTL, node TTL), and
SIGCONTed. Then every line sent must be applied (a ``said`` item in the
room's stored stream) or answered (an error to its sender, or an
``input_refused`` item naming its session): 0 lost. Every connected client
is in the room's member view exactly once and no one who left lingers: 0
ghosts. No client saw a seq gap without a resync: 0 silent gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgpack
from redis import Redis

from sleepsync.protocol.codec import decode
from sleepsync.protocol.messages import Error, Event, Role, Snapshot, Welcome
from sleepsync.protocol.wire import Limits

from cluster import Follower, NodeProcess, node_processes
from nodes import wait_for
from redis_server import RedisServer

ROOM = "vigil"
LEASE_MS, NODE_TTL_MS = 600, 1200
WORST = max(LEASE_MS, NODE_TTL_MS) / 1000
LIMITS = Limits(max_frame=1 << 22, max_str=1 << 20, max_array=1 << 16)


def owner_of(redis: RedisServer) -> str | None:
    with Redis.from_url(redis.url) as r:
        value = r.get(f"{{room:{ROOM}}}:owner")
    return None if value is None else value.decode().split("|", 1)[1]


def stored_items(redis: RedisServer) -> list[dict[str, Any]]:
    with Redis.from_url(redis.url) as r:
        entries = r.xrange(f"{{room:{ROOM}}}:events")
    items = []
    for _id, fields in entries:
        msg = decode(fields[b"f"], LIMITS)
        assert isinstance(msg, Event)
        items.extend(msg.items)
    return items


def member_view(redis: RedisServer) -> tuple[Counter[str], Counter[str]]:
    """(names in the owner's last snapshot view with their session counts, presence names)."""
    with Redis.from_url(redis.url) as r:
        view = r.hget(f"{{room:{ROOM}}}:snapshot", "view")
        presence = r.hgetall(f"{{room:{ROOM}}}:presence")
    members: Counter[str] = Counter()
    if view is not None:
        snap = decode(view, LIMITS)
        assert isinstance(snap, Snapshot)
        for m in snap.state["members"]:  # type: ignore[union-attr]
            if m["role"] != "pod":  # type: ignore[index]
                members[m["name"]] += int(m["sessions"])  # type: ignore[index,call-overload]
    names: Counter[str] = Counter(msgpack.unpackb(raw)[0] for raw in presence.values())
    return members, names


class Talker:
    """A dreamer that says a numbered line every ``every`` seconds and keeps count."""

    def __init__(self, follower: Follower, every: float = 0.1) -> None:
        self.f = follower
        self.every = every
        self.sent: list[str] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        n = 0
        while True:
            await asyncio.sleep(self.every)
            line = f"{self.f.client.name} {n}"
            try:
                await self.f.say(line)
            except Exception:  # not connected: the client knows it was not sent
                continue
            self.sent.append(line)
            n += 1


def sessions(f: Follower) -> set[str]:
    return {m.session for m in f.messages if isinstance(m, Welcome)}


def errors(f: Follower, ref: str) -> list[Error]:
    return [m for m in f.messages if isinstance(m, Error) and m.ref == ref]


async def test_paused_owner_loses_no_line_leaves_no_ghost_and_no_silent_gap(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    flags = {"lease_ttl_ms": str(LEASE_MS), "node_ttl_ms": str(NODE_TTL_MS)}
    with node_processes(2, redis_server.url, tmp_path, **flags) as nodes:
        started = time.monotonic()
        everyone: list[Follower] = []
        gone: list[Follower] = []

        async def follow(node: NodeProcess, name: str, role: Role = "dreamer") -> Follower:
            f = Follower([node.url], ROOM, name, role=role)
            await f.__aenter__()
            everyone.append(f)
            await wait_for(lambda: bool(f.snapshots()), timeout=20, what=f"{name} to join")
            return f

        # The room starts at n1; dreamers and a watcher on each node.
        talkers = [Talker(await follow(nodes[0], "ana"))]
        await wait_for(lambda: owner_of(redis_server) == "n1", what="n1 to own the room")
        for node, name in [(nodes[1], "bo"), (nodes[1], "cy"), (nodes[0], "dee")]:
            talkers.append(Talker(await follow(node, name)))
        for i, node in enumerate(nodes):
            await follow(node, f"watch{i}", "observer")
        for t in talkers:
            t.start()
        joined = 0
        takeovers: list[float] = []
        try:
            for factor in (1.5, 3.0):
                owner = next(n for n in nodes if n.name == owner_of(redis_server))
                other = next(n for n in nodes if n is not owner)
                owner.signal(signal.SIGSTOP)
                paused = time.monotonic()
                took: float | None = None
                try:
                    newcomers: list[Follower] = []
                    while time.monotonic() - paused < factor * WORST:
                        joined += 1
                        role: Role = "dreamer" if joined % 2 else "observer"
                        newcomers.append(await follow(other, f"new{joined}", role))
                        if len(newcomers) >= 2 and joined % 3 == 0:
                            leaving = newcomers.pop(0)
                            await leaving.stop()  # says leave, then closes
                            gone.append(leaving)
                        if took is None and owner_of(redis_server) == other.name:
                            took = time.monotonic() - paused
                        await asyncio.sleep(0.25)
                finally:
                    owner.signal(signal.SIGCONT)
                assert took is not None, "the other node took the room over during the pause"
                takeovers.append(took)
                await asyncio.sleep(1.5)  # the resumed node catches up while everyone talks
        finally:
            for t in talkers:
                await t.stop()

        # Every line: applied or answered.
        def unaccounted() -> list[str]:
            items = stored_items(redis_server)
            said = Counter(str(i["text"]) for i in items if i["kind"] == "said")
            refused_sessions = Counter(
                str(i["session"]) for i in items if i["kind"] == "input_refused"
            )
            missing = []
            for t in talkers:
                answered = len(errors(t.f, "say")) + sum(refused_sessions[s] for s in sessions(t.f))
                lost = [line for line in t.sent if not said[line]]
                if len(lost) > answered:
                    missing.extend(lost)
            return missing

        await wait_for(lambda: not unaccounted(), timeout=15, what="every line accounted for")
        said = Counter(str(i["text"]) for i in stored_items(redis_server) if i["kind"] == "said")
        assert max(said.values()) == 1, "no line applied twice"
        sent = sum(len(t.sent) for t in talkers)
        refused = sum(len(errors(t.f, "say")) for t in talkers)
        refused_items = sum(1 for i in stored_items(redis_server) if i["kind"] == "input_refused")

        # Every connected client exactly once; nobody who left.
        connected = [f for f in everyone if f not in gone]
        expected = Counter(f.client.name for f in connected)

        def ghosts() -> str:
            members, present = member_view(redis_server)
            if members == expected and present == expected:
                return ""
            return f"view {dict(members)} presence {dict(present)} expected {dict(expected)}"

        await wait_for(lambda: not ghosts(), timeout=15, what="the member view to settle")
        assert not any(f.client.name in member_view(redis_server)[0] for f in gone)

        # No silent gap anywhere.
        for f in everyone:
            f.check_history()
        resyncs = sum(len(f.resyncs()) for f in everyone)
        print(
            f"\nfault test: lines sent {sent}, applied {sum(said.values())}, "
            f"refused {refused} (+{refused_items} input_refused items), lost 0; "
            f"joins {joined} ({len(gone)} left again), ghosts 0; "
            f"takeovers after {', '.join(f'{t:.2f} s' for t in takeovers)}; "
            f"resyncs {resyncs}, silent gaps 0; {time.monotonic() - started:.1f} s"
        )
        for f in everyone:
            await f.stop()
