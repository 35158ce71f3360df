"""``sleepsync load`` against a real server and a real Mosquitto with the shipped ACL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from conftest import Mosquitto

from sleepsync.client.load import LoadOptions, plan_workers, run_load
from sleepsync.client.loadstats import LatencyHistogram, LoadReport
from sleepsync.client.loadworker import Worker

from nodes import free_port, running_node, wait_for

SLEEPSYNC = os.path.join(os.path.dirname(sys.executable), "sleepsync")


def options(url: str, broker: Mosquitto, **kw: object) -> LoadOptions:
    base: dict[str, object] = {
        "servers": (url,),
        "mqtt": broker.url(),
        "credentials": tuple(broker.passwords.items()),
        "rooms": 2,
        "pods_per_room": 4,
        "observers_per_room": 2,
        "rate": 5.0,
        "duration": 3.0,
    }
    base.update(kw)
    return LoadOptions(**base)  # type: ignore[arg-type]


async def test_short_run_counts_are_exact(mosquitto: Mosquitto) -> None:
    async with running_node(mqtt=True, mqtt_url=mosquitto.server_url) as node:
        report = await run_load(options(node.url, mosquitto))
    j = report.to_json()
    # 8 pods x 5 Hz x 3 s, every one reflected to both observers of its room.
    assert j["published"] == j["scheduled"] == 120
    assert j["samples_reflected"] + j["samples_lost"] == j["published"]
    assert j["samples_lost"] == 0
    assert j["deliveries"] == 240 and j["deliveries_lost"] == 0
    assert j["seq_gaps"] == 0 and j["duplicates"] == 0 and j["resyncs"] == 0
    assert report.latency.count == 240
    assert 0 < j["latency"]["p50_ms"] < 1000
    assert j["server"]["counters"]["sleepsync_telemetry_ingested_total"] == 120
    assert j["acked"] == 120 and j["publish_errors"] == 0


async def test_observers_carry_minted_tokens_to_a_server_with_auth(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    secret = tmp_path / "auth.secret"
    secret.write_bytes(b"load-test-secret-of-at-least-32-bytes\n")
    auth = {"mqtt_url": mosquitto.server_url, "auth_secret_file": str(secret)}
    async with running_node(mqtt=True, **auth) as node:
        opts = options(node.url, mosquitto, duration=2.0, auth_secret=secret.read_bytes())
        report = await run_load(opts)
    j = report.to_json()
    assert j["published"] > 0 and j["samples_lost"] == 0 and j["connection_failures"] == 0
    assert j["server"]["counters"].get("sleepsync_errors_total", 0) == 0


async def test_a_killed_observer_shows_up_in_the_report(mosquitto: Mosquitto) -> None:
    async with running_node(mqtt=True, mqtt_url=mosquitto.server_url) as node:
        opts = options(node.url, mosquitto, duration=4.0)
        [plan] = plan_workers(opts, time.time() + 2.0)
        worker = Worker(plan)
        run = asyncio.create_task(worker.run())
        await wait_for(lambda: bool(worker.rooms[0].observers), what="observers")
        victim = worker.rooms[0].observers[0]
        await wait_for(lambda: victim.ready.is_set(), timeout=15, what="observer joined")
        await asyncio.sleep(2.5)
        assert victim.client.conn is not None and victim.client.conn.transport is not None
        victim.client.conn.transport.abort()  # the connection dies under it
        result = await asyncio.wait_for(run, 30)
    totals = result.totals
    assert totals.connection_failures >= 1 and totals.reconnects >= 1
    # It resumed from its last (epoch, seq): no gap, nothing lost.
    assert totals.seq_gaps == 0
    assert totals.deliveries == totals.expected_deliveries


async def test_an_injected_server_delay_shows_up_in_the_report(mosquitto: Mosquitto) -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        SLEEPSYNC,
        "serve",
        "--port",
        str(port),
        "--mqtt",
        mosquitto.server_url,
        "--log-level",
        "WARNING",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        url = f"ws://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                await asyncio.sleep(0.1)
        load = asyncio.create_task(run_load(options(url, mosquitto, duration=5.0)))
        await asyncio.sleep(5.0)  # setup (~3 s) then 2 s of steady load
        os.kill(proc.pid, signal.SIGSTOP)
        await asyncio.sleep(1.5)
        os.kill(proc.pid, signal.SIGCONT)
        report: LoadReport = await asyncio.wait_for(load, 60)
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 15)
    assert report.latency.max_ms() >= 1300, report.latency.summary()
    assert report.latency.percentile_ms(99) >= 1000
    assert report.lost_samples == 0, "the stall delays samples, it does not lose them"


def test_histograms_of_workers_merge_in_the_report() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    a.record(0.010)
    b.record(0.500)
    merged = LatencyHistogram()
    for h in (a, b):
        merged.merge(h.encode())
    assert merged.count == 2 and merged.max_ms() >= 499
