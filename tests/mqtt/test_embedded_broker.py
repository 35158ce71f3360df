"""The embedded amqtt broker: the laptop default still speaks real MQTT."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sleepsync.cli import main
from sleepsync.client.pods import PodFleet, PodOptions
from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns, encode_telemetry
from sleepsync.protocol.topics import telemetry_topic
from sleepsync.server.broker import BrokerUnavailable, EmbeddedBroker

from nodes import free_port, running_node, wait_for


async def test_pods_stream_into_a_room_through_the_embedded_broker() -> None:
    port = free_port()
    async with running_node(mqtt=True, mqtt_embedded_port=port) as node:
        assert node.broker is not None and node.broker.port == port
        fleet = PodFleet(
            PodOptions(
                room="demo",
                count=4,
                rate=5,
                profile="mixed",
                seed=3,
                mqtt=f"mqtt://127.0.0.1:{port}",
            )
        )
        task = asyncio.create_task(fleet.run())
        try:
            await wait_for(lambda: "demo" in node.rooms.owned, 20, "room discovered")
            state = node.rooms.owned["demo"].state
            await wait_for(lambda: len(state.pods()) == 4, 20, "four pods")
            await wait_for(
                lambda: node.metrics.value("sleepsync_telemetry_ingested_total") >= 20, 20
            )
        finally:
            fleet.stop()
            await task
        await wait_for(lambda: not any(state.pods().values()), 20, "pods offline")


async def test_stock_mosquitto_pub_reaches_the_embedded_broker(
    mosquitto_pub: str, tmp_path: Path
) -> None:
    port = free_port()
    sample = TelemetrySample("lila", "b1", 1, 1.7e9, VitalSigns(60, 50, 2, 12), 0.6, 0.4)
    payload = tmp_path / "sample.msgpack"
    payload.write_bytes(encode_telemetry(sample))
    async with running_node(mqtt=True, mqtt_embedded_port=port) as node:
        await node.rooms.open_room("r1")
        assert node.ingest is not None
        ingest = node.ingest
        await wait_for(lambda: "r1" in ingest.subscribed, 20, "subscribed")
        result = await asyncio.to_thread(
            subprocess.run,
            [
                mosquitto_pub,
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-q",
                "1",
                "-t",
                telemetry_topic("r1", "lila"),
                "-f",
                str(payload),
            ],
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        state = node.rooms.owned["r1"].state
        await wait_for(lambda: state.pods() == {"lila": True}, 20, "lila in the room")


async def test_a_taken_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}: the port is taken"):
            await EmbeddedBroker(port).start()


async def test_a_missing_extra_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)  # import fails as if not installed
    with pytest.raises(BrokerUnavailable, match=r"sleepsync\[embedded\]"):
        await EmbeddedBroker(0).start()


def test_serve_reports_a_taken_port_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--port", "0", "--mqtt-embedded-port", str(port)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "the port is taken" in err[0]


def test_serve_refuses_a_malformed_mqtt_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--mqtt", "http://example"]) == 2
    assert "MQTT URL must look like" in capsys.readouterr().err
