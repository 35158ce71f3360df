"""MQTT ingest throughput: the server vs a bare aiomqtt subscriber, same broker, same run.

How it works: a Mosquitto on a free loopback port (anonymous, large queues)
serves three phases; the publishers always run in a separate process
(paho-mqtt, several connections, QoS 1).

1. bare: an aiomqtt subscriber that only msgpack-decodes, fed a flood of
   ``--flood`` samples as fast as the publishers go: its receive rate.
2. server: a real node (``Node`` with MQTT ingest, rooms, dream engine) fed
   the same flood: samples ingested into rooms per second.
3. sustained: ``--pods`` pods at ``--hz`` for ``--duration`` seconds into the
   node; after dedup every sample sent must have been ingested (loss = sent -
   ingested unique), and gaps, duplicates and drops are reported.

Run: ``.venv/bin/python benchmarks/ingest.py`` (defaults: 1,000 pods at 5 Hz
for 60 s, a 60,000-sample flood). Goal: server >= 70 % of bare, 0 lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOMS = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- publisher process
def publish(port: int, pods: int, hz: float, duration: float, flood: int, conns: int) -> None:
    """Publish telemetry (paced, or a flood when ``flood`` > 0); print a JSON summary."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns, encode_telemetry
    from sleepsync.protocol.topics import telemetry_topic

    clients = []
    for i in range(conns):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{i}")
        client.max_inflight_messages_set(200)
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        clients.append(client)
    names = [f"pod-{i:04d}" for i in range(pods)]
    topics = [telemetry_topic(f"bench-{i % ROOMS}", name) for i, name in enumerate(names)]
    seqs = [0] * pods
    boot = f"b{time.time_ns():x}"
    vitals = VitalSigns(62.0, 55.0, 3.1, 13.0)
    infos: list[mqtt.MQTTMessageInfo] = []

    def send(index: int) -> None:
        seqs[index] += 1
        sample = TelemetrySample(names[index], boot, seqs[index], time.time(), vitals, 0.6, 0.4)
        info = clients[index % conns].publish(topics[index], encode_telemetry(sample), qos=1)
        if len(infos) < 1 or seqs[index] % 50 == 0:
            infos.append(info)

    start = time.perf_counter()
    sent = 0
    if flood:
        while sent < flood:
            send(sent % pods)
            sent += 1
    else:
        period = 1.0 / hz
        tick = 0
        while time.perf_counter() - start < duration:
            for index in range(pods):  # one round: every pod sends one sample per period
                send(index)
                sent += 1
            tick += 1
            delay = start + tick * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    for info in infos[-200:]:
        info.wait_for_publish(timeout=60)
    elapsed = time.perf_counter() - start
    for client in clients:
        client.loop_stop()
        client.disconnect()
    print(json.dumps({"sent": sent, "seconds": elapsed}), flush=True)


def start_publisher(port: int, **kw: float | int) -> subprocess.Popen[str]:
    args = [sys.executable, __file__, "--publish", str(port)]
    for key, value in kw.items():
        args += [f"--{key}", str(value)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


async def finish(proc: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = await asyncio.to_thread(proc.communicate)
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---------------------------------------------------------------- consumers
async def wait_idle(
    count: Callable[[], float], idle: float = 3.0, limit: float = 300.0
) -> tuple[float, float]:
    """Wait until ``count()`` stops growing; (first change time, last change time)."""
    loop = asyncio.get_running_loop()
    first: float | None = None
    quiet_since = last = loop.time()
    seen = count()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        now, value = loop.time(), count()
        if value != seen:
            seen = value
            first = first or now
            last = quiet_since = now
        elif now - quiet_since > idle and (first is not None or now - quiet_since > 4 * idle):
            break
    return (first or last), last


async def bare_subscriber(port: int, flood: int, conns: int, pods: int) -> float:
    import aiomqtt
    import msgpack

    received = 0
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier="bench-bare",
        clean_session=True,
        max_queued_incoming_messages=200_000,
    ) as client:
        await client.subscribe("sleepsync/v1/rooms/+/pods/+/telemetry", qos=1)

        async def consume() -> None:
            nonlocal received
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                msgpack.unpackb(message.payload)
                received += 1

        task = asyncio.create_task(consume())
        proc = start_publisher(port, pods=pods, flood=flood, conns=conns)
        t0 = time.perf_counter()
        first, last = await wait_idle(lambda: received)
        await finish(proc)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    span = max(last - first, 1e-3)
    print(f"  bare: {received} received in {span:.2f} s ({time.perf_counter() - t0:.1f} s wall)")
    return received / span


async def server_phase(port: int, args: argparse.Namespace) -> tuple[float, dict[str, float]]:
    from sleepsync.server.config import Settings
    from sleepsync.server.node import Node

    settings = Settings(
        port=0,
        node_id="bench",
        room_capacity=max(200, args.pods),
        mqtt_url=f"mqtt://127.0.0.1:{port}",
        mqtt_queue=200_000,
        mqtt_discover_rooms=False,
        mqtt_dedup_window=4096,
        max_rooms=100,
    )
    node = Node(settings)
    await node.start()
    metric = node.metrics.value

    def ingested() -> float:
        return float(metric("sleepsync_telemetry_ingested_total"))

    try:
        assert node.ingest is not None
        for i in range(ROOMS):
            await node.rooms.open_room(f"bench-{i}")
        while len(node.ingest.subscribed) < ROOMS:  # noqa: ASYNC110 (another task's state)
            await asyncio.sleep(0.05)
        # Flood: the node's maximum ingest rate.
        proc = start_publisher(port, pods=args.pods, flood=args.flood, conns=args.conns)
        first, last = await wait_idle(ingested)
        await finish(proc)
        flood_got = ingested()
        rate = flood_got / max(last - first, 1e-3)
        print(f"  server: {flood_got:.0f} ingested in {last - first:.2f} s")
        # Sustained: pods at hz for duration; nothing may be lost.
        before = ingested()
        proc = start_publisher(
            port, pods=args.pods, hz=args.hz, duration=args.duration, flood=0, conns=args.conns
        )
        result = await finish(proc)
        await wait_idle(ingested, idle=3.0)
        got = ingested() - before
        report = {
            "sent": result["sent"],
            "send_seconds": result["seconds"],
            "ingested": got,
            "lost": result["sent"] - got,
            "duplicates": metric("sleepsync_telemetry_duplicates_total"),
            "gaps": metric("sleepsync_telemetry_gaps_total"),
            "drops_incoming": metric("sleepsync_mqtt_drops_total", queue="incoming"),
            "drops_room": metric("sleepsync_mqtt_drops_total", queue="room"),
            "flood_ingested": flood_got,
        }
        return rate, report
    finally:
        await node.stop()


async def run(args: argparse.Namespace) -> int:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.conf"
        config.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_inflight_messages 100\nmax_queued_messages 200000\nmax_packet_size 4096\n"
            "log_dest none\n"
        )
        broker = subprocess.Popen([binary, "-c", str(config)])  # noqa: ASYNC220 (starts at once)
        try:
            for _ in range(100):
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                await asyncio.sleep(0.05)
            print(
                f"flood of {args.flood} samples from {args.pods} pods, QoS 1, "
                f"{args.conns} publisher connections in another process"
            )
            bare = await bare_subscriber(port, args.flood, args.conns, args.pods)
            server, report = await server_phase(port, args)
        finally:
            broker.terminate()
            broker.wait(10)
    ratio = server / bare
    rate = report["sent"] / report["send_seconds"]
    print()
    print("| measure | value |\n| --- | --- |")
    print(f"| bare aiomqtt subscriber (decode only) | {bare:,.0f} msg/s |")
    print(f"| server ingest into rooms | {server:,.0f} msg/s |")
    print(f"| server / bare | {ratio:.0%} (goal >= 70%) |")
    print(
        f"| sustained: {args.pods} pods x {args.hz:g} Hz x {args.duration:g} s | "
        f"{report['sent']:,.0f} sent at {rate:,.0f} msg/s |"
    )
    print(f"| ingested after dedup | {report['ingested']:,.0f} |")
    print(f"| lost | {report['lost']:,.0f} (goal 0) |")
    print(
        f"| duplicates dropped / gaps / queue drops | {report['duplicates']:.0f} / "
        f"{report['gaps']:.0f} / {report['drops_incoming'] + report['drops_room']:.0f} |"
    )
    return 0 if ratio >= 0.7 and report["lost"] == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--hz", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--flood", type=int, default=60000)
    parser.add_argument("--conns", type=int, default=8)
    parser.add_argument("--publish", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish is not None:
        publish(args.publish, args.pods, args.hz, args.duration, args.flood, args.conns)
        return 0
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
