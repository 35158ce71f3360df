"""MQTT ingest against a real Mosquitto running the shipped config and ACL."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import msgpack
import pytest
from conftest import Mosquitto

from sleepsync.client.connection import RoomClient
from sleepsync.client.pods import PodFleet, PodOptions
from sleepsync.protocol.messages import Snapshot
from sleepsync.protocol.telemetry import (
    Cue,
    TelemetrySample,
    VitalSigns,
    decode_cue,
    encode_telemetry,
)
from sleepsync.protocol.topics import cmd_topic, status_topic, telemetry_topic
from sleepsync.server.ingest import Ingest
from sleepsync.server.node import Node

from nodes import Recorder, running_node, wait_for

ROOM = "r1"


def sample(
    pod: str,
    seq: int,
    *,
    boot: str = "b1",
    valence: float = 0.6,
    arousal: float = 0.4,
    hr: float = 60.0,
) -> TelemetrySample:
    return TelemetrySample(
        pod, boot, seq, 1.7e9 + seq, VitalSigns(hr, 50.0, 2.0, 12.0), valence, arousal
    )


@contextlib.asynccontextmanager
async def pod_client(broker: Mosquitto, user: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username=user, password=broker.passwords[user], identifier=user
    ) as client:
        yield client


@contextlib.asynccontextmanager
async def mqtt_node(broker: Mosquitto, **overrides: Any) -> AsyncIterator[Node]:
    async with running_node(mqtt=True, mqtt_url=broker.server_url, **overrides) as node:
        yield node


def ingest_of(node: Node) -> Ingest:
    assert node.ingest is not None
    return node.ingest


def metric(node: Node, name: str, **labels: str) -> float:
    return node.metrics.value(f"sleepsync_{name}", **labels)


async def open_room(node: Node, room: str = ROOM) -> None:
    await node.rooms.open_room(room)
    await wait_for(lambda: room in ingest_of(node).subscribed, 15, f"subscribed to {room}")


def mood_seq(rec: Recorder, pod: str) -> int | None:
    """The last telemetry seq the engine reports for ``pod`` (None: not a dreamer)."""
    for item in reversed(rec.items("mood")):
        for row in item["dreamers"]:
            name, _v, _a, _g, seq = row[:5]  # later columns (fragility) are optional
            if name == pod:
                return int(seq)
    return None


# ---------------------------------------------------------------- happy path
async def test_telemetry_reaches_the_engine(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto) as node:
        async with Recorder(RoomClient(node.url, ROOM, "watcher", role="observer")) as rec:
            await wait_for(lambda: ROOM in ingest_of(node).subscribed, 15, "subscription")
            async with pod_client(mosquitto, "lila") as pod:
                for seq in range(1, 6):
                    payload = encode_telemetry(sample("lila", seq))
                    await pod.publish(telemetry_topic(ROOM, "lila"), payload, qos=1)
            await wait_for(lambda: mood_seq(rec, "lila") == 5, 15, "lila's seq 5 in the mood")
            joined = [i for i in rec.items("joined") if i["name"] == "lila"]
            assert joined and joined[0]["role"] == "pod"
        assert metric(node, "telemetry_ingested_total") == 5
        assert node.rooms.owned[ROOM].state.pods() == {"lila": True}


async def test_simulated_pods_open_their_room_and_stream(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto) as node:
        fleet = PodFleet(
            PodOptions(
                room="sim",
                count=3,
                rate=10,
                profile="calm",
                seed=7,
                mqtt=mosquitto.url(),
                passwords=mosquitto.passwords,
            )
        )
        task = asyncio.create_task(fleet.run())
        try:
            await wait_for(lambda: "sim" in node.rooms.owned, 15, "room discovered")
            state = lambda: node.rooms.owned["sim"].state  # noqa: E731
            await wait_for(lambda: len(state().pods()) == 3, 15, "three pods in the room")
            assert metric(node, "rooms_discovered_total") == 1
        finally:
            fleet.stop()
            await task
        # A clean stop publishes "offline" itself.
        await wait_for(lambda: not any(state().pods().values()), 15, "pods offline")


async def test_subscriptions_follow_ownership(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto, mqtt_discover_rooms=False) as node:
        await open_room(node)
        node.rooms.step_down(ROOM, "test")
        await wait_for(lambda: ROOM not in ingest_of(node).subscribed, 15, "unsubscribed")
        await open_room(node)


# ---------------------------------------------------------------- QoS 1 duplicates
async def test_duplicates_are_ignored_and_gaps_counted(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        async with pod_client(mosquitto, "lila") as pod:
            for seq in (1, 2, 2, 3, 1, 3, 6):
                await pod.publish(
                    telemetry_topic(ROOM, "lila"), encode_telemetry(sample("lila", seq)), qos=1
                )
        await wait_for(lambda: metric(node, "telemetry_ingested_total") == 4, 15, "4 unique")
        await wait_for(lambda: metric(node, "telemetry_duplicates_total") == 3, 15, "3 dups")
        assert metric(node, "telemetry_gaps_total") == 2  # 4 and 5 never came
        stats = ingest_of(node).tracker.stats("lila")
        assert (stats.accepted, stats.duplicates, stats.missing) == (4, 3, 2)


# ---------------------------------------------------------------- identity
async def test_a_pod_cannot_publish_as_another(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        async with pod_client(mosquitto, "mallory") as pod:
            # The broker's ACL refuses this: mallory may write only under its own id.
            await pod.publish(
                telemetry_topic(ROOM, "lila"), encode_telemetry(sample("lila", 1)), qos=1
            )
            await pod.publish(status_topic(ROOM, "lila"), b"offline", qos=1, retain=True)
            # On its own topic, speaking for lila: the server drops it.
            await pod.publish(
                telemetry_topic(ROOM, "mallory"), encode_telemetry(sample("lila", 2)), qos=1
            )
            await pod.publish(
                telemetry_topic(ROOM, "mallory"), encode_telemetry(sample("mallory", 1)), qos=1
            )
        tracker = ingest_of(node).tracker
        # Mosquitto keeps one publisher's order: once mallory's own sample is in, the rest was seen.
        await wait_for(lambda: tracker.stats("mallory").accepted == 1, 15, "mallory's sample")
        assert "lila" not in tracker
        assert metric(node, "telemetry_invalid_total", reason="pod_mismatch") == 1
        assert dict(tracker.stats("mallory").invalid) == {"pod_mismatch": 1}
        assert "lila" not in node.rooms.owned[ROOM].state.pods()


async def test_anonymous_clients_are_refused(mosquitto: Mosquitto) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="anon"):
            pass


# ---------------------------------------------------------------- Last Will
async def test_killing_a_pod_connection_marks_it_offline(mosquitto: Mosquitto) -> None:
    creds = mosquitto.workdir / "credentials"
    command = [
        sys.executable,
        "-m",
        "sleepsync",
        "pods",
        "--room",
        ROOM,
        "--count",
        "1",
        "--rate",
        "5",
        "--profile",
        "calm",
        "--mqtt",
        mosquitto.url(),
        "--credentials",
        str(creds),
    ]
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            state = node.rooms.owned[ROOM].state
            await wait_for(lambda: state.pods().get("pod-001") is True, 30, "pod online")
            proc.kill()  # no DISCONNECT: the broker publishes the Last Will
            await proc.wait()
            await wait_for(lambda: state.pods().get("pod-001") is False, 30, "pod offline")
            assert metric(node, "pods_offline_total") == 1
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


# ---------------------------------------------------------------- broker restart
async def test_broker_restart_mid_stream(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        fleet = PodFleet(
            PodOptions(
                room=ROOM,
                count=3,
                rate=10,
                profile="calm",
                mqtt=mosquitto.url(),
                passwords=mosquitto.passwords,
            )
        )
        task = asyncio.create_task(fleet.run())
        ingest = ingest_of(node)
        ingested = lambda: metric(node, "telemetry_ingested_total")  # noqa: E731
        try:
            await wait_for(lambda: ingested() >= 30, 20, "telemetry flowing")
            await asyncio.to_thread(mosquitto.stop)
            await wait_for(lambda: not ingest.connected, 15, "the node notices")
            # Websocket clients are still served while the broker is away.
            client = RoomClient(node.url, ROOM, "visitor", role="observer")
            await client.open()
            async for msg in client.messages():
                if isinstance(msg, Snapshot):
                    break
            await client.close()
            await asyncio.sleep(1.0)  # the pods keep sampling: these samples are lost
            await asyncio.to_thread(mosquitto.start)
            before = ingested()
            await wait_for(lambda: ingest.connections >= 2, 30, "reconnected")
            await wait_for(lambda: ingested() >= before + 30, 30, "telemetry flowing again")
            await wait_for(lambda: metric(node, "telemetry_gaps_total") > 0, 15, "gaps counted")
            assert metric(node, "mqtt_reconnects_total") >= 1
            assert metric(node, "room_failures_total") == 0
            assert ROOM in ingest.subscribed
        finally:
            fleet.stop()
            await task


# ---------------------------------------------------------------- bad payloads
BAD_PAYLOADS: dict[str, list[bytes]] = {
    "bad_msgpack": [b"\xc1\x00garbage"],
    "not_a_map": [msgpack.packb("a string, not a map")],
    "bad_field": [
        msgpack.packb({**sample("noisy", 1).to_wire(), "hr": "fast"}),
        msgpack.packb({**sample("noisy", 1).to_wire(), "extra": 1}),
    ],
    "out_of_range": [msgpack.packb({**sample("noisy", 1).to_wire(), "valence": 1.5})],
    "oversize": [msgpack.packb({**sample("noisy", 1).to_wire(), "pad": "x" * 1500})],
    "pod_mismatch": [encode_telemetry(sample("lila", 1))],
}


async def test_every_class_of_bad_payload_is_dropped_and_counted(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        async with Recorder(RoomClient(node.url, ROOM, "watcher", role="observer")) as rec:
            async with pod_client(mosquitto, "noisy") as pod:
                for payloads in BAD_PAYLOADS.values():
                    for payload in payloads:
                        await pod.publish(telemetry_topic(ROOM, "noisy"), payload, qos=1)
                await pod.publish(status_topic(ROOM, "noisy"), b"\xc1", qos=1)
            # A pod id that is no valid name (yet a valid broker user): wrong topic.
            async with pod_client(mosquitto, "bad!pod") as pod:
                await pod.publish(telemetry_topic(ROOM, "bad!pod"), b"\x80", qos=1)
            async with pod_client(mosquitto, "noisy") as pod:
                await pod.publish(
                    telemetry_topic(ROOM, "noisy"), encode_telemetry(sample("noisy", 2)), qos=1
                )
            await wait_for(lambda: mood_seq(rec, "noisy") == 2, 15, "the valid sample arrives")
        expected = {reason: len(p) for reason, p in BAD_PAYLOADS.items()}
        expected["bad_msgpack"] += 1  # the status
        await wait_for(
            lambda: metric(node, "telemetry_invalid_total", reason="wrong_topic") == 1, 15
        )
        for reason, count in expected.items():
            assert metric(node, "telemetry_invalid_total", reason=reason) == count, reason
        assert dict(ingest_of(node).tracker.stats("noisy").invalid) == expected
        assert metric(node, "room_failures_total") == 0
        assert node.rooms.owned[ROOM].state.pods() == {"noisy": True}


async def test_a_pod_sending_garbage_becomes_a_sensor_fault(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto, mqtt_fault_threshold=3) as node:
        await open_room(node)
        async with Recorder(RoomClient(node.url, ROOM, "watcher", role="observer")) as rec:
            async with pod_client(mosquitto, "noisy") as pod:
                topic = telemetry_topic(ROOM, "noisy")
                await pod.publish(topic, encode_telemetry(sample("noisy", 1)), qos=1)
                await wait_for(lambda: mood_seq(rec, "noisy") == 1, 15, "noisy is a dreamer")
                for _ in range(3):
                    await pod.publish(topic, b"\xc1", qos=1)
            await wait_for(
                lambda: any(
                    g["glitch"] == "sensor" and g["origin"] == "noisy"
                    for g in rec.items("glitch_started")
                ),
                15,
                "a sensor-fault glitch",
            )
        assert metric(node, "pod_faults_total") == 1


# ---------------------------------------------------------------- cues
async def test_recovery_cues_reach_the_pods(mosquitto: Mosquitto) -> None:
    pods = ["pod-001", "pod-002", "pod-003"]
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        received: list[Cue] = []

        async def pod(name: str) -> None:
            async with pod_client(mosquitto, name) as client:
                await client.subscribe(cmd_topic(ROOM, name), qos=1)

                async def listen() -> None:
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        received.append(decode_cue(message.payload))

                listener = asyncio.create_task(listen())
                try:
                    seq = 0
                    while not any(c.pod == name for c in received):
                        seq += 1
                        miserable = sample(name, seq, valence=0.02, arousal=0.9)
                        await client.publish(
                            telemetry_topic(ROOM, name), encode_telemetry(miserable), qos=1
                        )
                        await asyncio.sleep(0.1)
                finally:
                    listener.cancel()

        async with asyncio.timeout(60):
            await asyncio.gather(*(pod(name) for name in pods))
        assert {c.pod for c in received} >= set(pods)
        assert all(c.kind in ("calm", "breathe") for c in received)
        assert metric(node, "cues_published_total") >= 3


async def test_cues_published_by_the_node_reach_the_simulator(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        fleet = PodFleet(
            PodOptions(
                room=ROOM,
                count=1,
                rate=5,
                profile="anxious",
                mqtt=mosquitto.url(),
                passwords=mosquitto.passwords,
            )
        )
        task = asyncio.create_task(fleet.run())
        try:
            simulated = fleet.pods[0]
            state = node.rooms.owned[ROOM].state
            await wait_for(lambda: state.pods().get("pod-001") is True, 15, "pod streaming")
            ingest_of(node).send_cues(ROOM, [Cue("pod-001", "breathe", 0.9, "test")])
            await wait_for(lambda: len(simulated.cues) == 1, 15, "cue received")
            assert simulated.cues[0] == Cue("pod-001", "breathe", 0.9, "test")
            assert simulated.physiology._calm > 0.5
        finally:
            fleet.stop()
            await task


# ---------------------------------------------------------------- a stock client
async def test_stock_mosquitto_pub_publishes_into_a_room(
    mosquitto: Mosquitto, mosquitto_pub: str, tmp_path: Path
) -> None:
    payload = tmp_path / "sample.msgpack"
    payload.write_bytes(encode_telemetry(sample("lila", 41)))
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        result = await asyncio.to_thread(
            subprocess.run,
            [
                mosquitto_pub,
                "-h",
                "127.0.0.1",
                "-p",
                str(mosquitto.port),
                "-u",
                "lila",
                "-P",
                mosquitto.passwords["lila"],
                "-q",
                "1",
                "-t",
                telemetry_topic(ROOM, "lila"),
                "-f",
                str(payload),
            ],
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        state = node.rooms.owned[ROOM].state
        await wait_for(lambda: state.pods() == {"lila": True}, 15, "lila in the room")
        assert ingest_of(node).tracker.stats("lila").accepted == 1
