"""Multi-node benchmark: two nodes on one Redis against one node on the memory backend.

Clients are split across the nodes (each room has clients on both), one room
per 10 clients, every client a dreamer so every tick of every room makes an
event. Servers and Redis run as their own processes, clients in another.

1. ``max``: rooms tick at ``--max-hz``; delivered events/s for one node
   (memory backend) and for two nodes (Redis).
2. ``half``: both set-ups at the tick rate that gives half of the two-node
   max: p50/p99 latency from the owner's tick (the event's ``ts``) to the
   client, for clients on the owner's node and on the other node (the
   cross-node path), next to the single node. Redis commands per tick per
   room come from Redis' own ``INFO commandstats`` over the run.
3. ``failover``: SIGKILL the owner of a room; time until a client on the
   other node receives the first event of the new owner (goal: lease TTL + 1 s).

Usage: ``python benchmarks/multinode.py [--clients 200] [--seconds 6]``; ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import msgpack

HERE = os.path.abspath(__file__)
SLEEPSYNC = os.path.join(os.path.dirname(sys.executable), "sleepsync")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- processes
@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, Any]]:
    from redis import Redis

    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="sleepsync-bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    client = Redis.from_url(url)
    try:
        for _ in range(200):
            with contextlib.suppress(Exception):
                client.ping()
                break
            time.sleep(0.02)
        yield url, client
    finally:
        client.close()
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def start_node(name: str, port: int, tick_hz: float, redis_url: str, **extra: str) -> Any:
    args = [SLEEPSYNC, "serve", "--port", str(port), "--node-id", name,
            "--tick-hz", str(tick_hz), "--mqtt-embedded-port", str(free_port()),
            "--log-level", "WARNING", "--max-inbound-rate", "1000"]  # fmt: skip
    if redis_url:
        args += ["--redis", redis_url]
    for key, value in extra.items():
        args += ["--" + key.replace("_", "-"), value]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while True:
        ready = f"http://127.0.0.1:{port}/readyz"
        with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=1) as r:
            if r.status == 200:
                return proc
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"node {name} did not start")
        time.sleep(0.05)


def stop(procs: list[Any]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_clients(urls: list[str], clients: int, warmup: float, seconds: float) -> dict[str, Any]:
    """Clients in a child process; returns latencies per (node index, room)."""
    out = subprocess.run(
        [sys.executable, HERE, "_clients", "--urls", ",".join(urls), "--clients", str(clients),
         "--warmup", str(warmup), "--seconds", str(seconds)],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout)
    return result


async def clients_main(urls: list[str], n: int, warmup: float, seconds: float) -> None:
    from websockets.asyncio.client import connect

    from sleepsync.protocol.codec import encode
    from sleepsync.protocol.messages import Hello, Join

    lat: dict[str, list[float]] = {}
    counts = {"events": 0}
    measuring = {"on": False}

    async def one(i: int) -> None:
        room = f"room{i // 10}"
        node = i % len(urls)
        key = f"{node}:{room}"
        async with connect(urls[node], compression=None, max_size=1 << 22) as ws:
            await ws.send(encode(Hello(f"c{i}")))
            await ws.send(encode(Join(room, "dreamer")))
            async for raw in ws:
                now = time.time()
                if not measuring["on"] or not isinstance(raw, bytes):
                    continue
                msg = msgpack.unpackb(raw)
                if msg.get("t") == "event":
                    counts["events"] += 1
                    lat.setdefault(key, []).append(now - msg.get("ts", now))

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        if i % 20 == 19:
            await asyncio.sleep(0.05)
    await asyncio.sleep(warmup)
    measuring["on"] = True
    started = time.monotonic()
    await asyncio.sleep(seconds)
    measuring["on"] = False
    elapsed = time.monotonic() - started
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    failed = sum(1 for t in tasks if t.done() and not t.cancelled() and t.exception())
    json.dump({"latency": lat, "events": counts["events"], "elapsed": elapsed,
               "failed": failed}, sys.stdout)  # fmt: skip


# ---------------------------------------------------------------- measurements
def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000


def commands_total(client: Any) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def owners(client: Any, rooms: int) -> dict[str, str]:
    out = {}
    for r in range(rooms):
        value = client.get(f"{{room:room{r}}}:owner")
        if value:
            out[f"room{r}"] = value.decode().split("|", 1)[1]
    return out


def single(tick_hz: float, clients: int, warmup: float, seconds: float) -> dict[str, Any]:
    port = free_port()
    procs = [start_node("solo", port, tick_hz, "")]
    try:
        res = run_clients([f"ws://127.0.0.1:{port}"], clients, warmup, seconds)
    finally:
        stop(procs)
    all_lat = [x for v in res["latency"].values() for x in v]
    return {"events_s": res["events"] / res["elapsed"], "p50": pct(all_lat, 50),
            "p99": pct(all_lat, 99), "failed": res["failed"]}  # fmt: skip


def double(tick_hz: float, clients: int, warmup: float, seconds: float) -> dict[str, Any]:
    rooms = max(1, clients // 10)
    with redis_server() as (url, client):
        ports = [free_port(), free_port()]
        procs = [start_node(f"n{i}", p, tick_hz, url) for i, p in enumerate(ports)]
        try:
            client.config_resetstat()
            before = commands_total(client)
            res = run_clients([f"ws://127.0.0.1:{p}" for p in ports], clients, warmup, seconds)
            total_time = warmup + seconds
            commands = commands_total(client) - before
            stats = client.info("commandstats")
            owner = owners(client, rooms)
        finally:
            stop(procs)
    local: list[float] = []
    remote: list[float] = []
    for key, values in res["latency"].items():
        node, room = key.split(":", 1)
        (local if owner.get(room) == f"n{node}" else remote).extend(values)
    ticks = total_time * tick_hz * rooms
    top = sorted(((int(v["calls"]), k[8:]) for k, v in stats.items()), reverse=True)[:5]
    return {
        "events_s": res["events"] / res["elapsed"],
        "p50_local": pct(local, 50), "p99_local": pct(local, 99),
        "p50_remote": pct(remote, 50), "p99_remote": pct(remote, 99),
        "cmds_per_tick_room": commands / ticks,
        "top_commands": {name: round(calls / ticks, 2) for calls, name in top},
        "rooms_per_node": {n: list(owner.values()).count(n) for n in ("n0", "n1")},
        "failed": res["failed"],
    }  # fmt: skip


async def failover(lease_ttl_ms: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    from sleepsync.protocol.codec import encode
    from sleepsync.protocol.messages import Hello, Join

    with redis_server() as (url, client):
        ports = [free_port(), free_port()]
        procs = [
            start_node(f"n{i}", p, 10, url, lease_ttl_ms=str(lease_ttl_ms))
            for i, p in enumerate(ports)
        ]
        try:
            async with connect(f"ws://127.0.0.1:{ports[0]}") as ws0:
                await ws0.send(encode(Hello("first")))
                await ws0.send(encode(Join("fo", "dreamer")))
                await asyncio.sleep(1.0)
                owner = owners_of(client, "fo")
                victim = 0 if owner == "n0" else 1
                survivor = 1 - victim
                async with connect(f"ws://127.0.0.1:{ports[survivor]}") as ws:
                    await ws.send(encode(Hello("watcher")))
                    await ws.send(encode(Join("fo", "observer")))
                    epoch = 0
                    while not epoch:
                        msg = msgpack.unpackb(await ws.recv())
                        if msg.get("t") == "event":
                            epoch = msg["epoch"]
                    procs[victim].send_signal(signal.SIGKILL)
                    killed = time.monotonic()
                    while True:
                        msg = msgpack.unpackb(await asyncio.wait_for(ws.recv(), 30))
                        if msg.get("t") == "event" and msg["epoch"] != epoch:
                            return {"failover_s": time.monotonic() - killed,
                                    "lease_ttl_s": lease_ttl_ms / 1000}  # fmt: skip
        finally:
            stop(procs)


def owners_of(client: Any, room: str) -> str:
    value = client.get(f"{{room:{room}}}:owner")
    return "" if value is None else str(value.decode().split("|", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "_clients"])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--max-hz", type=float, default=200.0)
    parser.add_argument("--lease-ttl-ms", type=int, default=3000)
    parser.add_argument("--urls", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.mode == "_clients":
        asyncio.run(clients_main(args.urls.split(","), args.clients, args.warmup, args.seconds))
        return
    c, s, w = args.clients, args.seconds, args.warmup
    rooms = max(1, c // 10)
    max_single = single(args.max_hz, c, w, s)
    max_double = double(args.max_hz, c, w, s)
    # Half of the two-node max: the tick rate whose events/s is half of what was delivered.
    half_hz = max(1.0, max_double["events_s"] / 2 / c)
    half_single = single(half_hz, c, w, s)
    half_double = double(half_hz, c, w, s)
    fo = asyncio.run(failover(args.lease_ttl_ms))
    result = {
        "clients": c, "rooms": rooms, "max_hz": args.max_hz, "half_hz": round(half_hz, 2),
        "max": {"single": max_single, "double": max_double},
        "half": {"single": half_single, "double": half_double}, "failover": fo,
    }  # fmt: skip
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{c} clients, {rooms} rooms (10 dreamers each), clients split over 2 nodes")
    print(f"{'run':<34}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    print(
        f"{'max, 1 node (memory) @' + str(args.max_hz) + ' Hz':<34}"
        f"{max_single['events_s']:>10.0f}{max_single['p50']:>9.2f}{max_single['p99']:>9.2f}"
    )
    print(
        f"{'max, 2 nodes (redis), all':<34}{max_double['events_s']:>10.0f}"
        f"{max_double['p50_remote']:>9.2f}{max_double['p99_remote']:>9.2f}"
    )
    print(
        f"{'half, 1 node @' + format(half_hz, '.1f') + ' Hz':<34}"
        f"{half_single['events_s']:>10.0f}{half_single['p50']:>9.2f}{half_single['p99']:>9.2f}"
    )
    print(
        f"{'half, 2 nodes, owner-node clients':<34}{half_double['events_s']:>10.0f}"
        f"{half_double['p50_local']:>9.2f}{half_double['p99_local']:>9.2f}"
    )
    print(
        f"{'half, 2 nodes, remote clients':<34}{'':>10}"
        f"{half_double['p50_remote']:>9.2f}{half_double['p99_remote']:>9.2f}"
    )
    added = half_double["p99_remote"] - half_single["p99"]
    print(f"p99 added by the cross-node path at half load: {added:.2f} ms (goal <= 5 ms)")
    print(
        f"Redis commands per tick per room, incl. those run inside Lua scripts (half load): "
        f"{half_double['cmds_per_tick_room']:.2f}"
        f"  top: {half_double['top_commands']}"
    )
    print(f"rooms per node: {half_double['rooms_per_node']}")
    print(f"failover (owner SIGKILL -> first event of the new owner): {fo['failover_s']:.2f} s "
          f"(goal <= lease TTL {fo['lease_ttl_s']:.1f} s + 1 s)")  # fmt: skip


if __name__ == "__main__":
    main()
