"""Issue #10 attacks on the MQTT side, each run against a real Mosquitto.

Each test replays one reported attack with the shipped config and ACL, shows
that it is refused, bounded or counted, and that legitimate pods publishing at
the same time are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

import aiomqtt
import pytest
from conftest import Mosquitto
from test_mqtt_ingest import (
    ROOM,
    ingest_of,
    metric,
    mood_seq,
    mqtt_node,
    open_room,
    pod_client,
    sample,
)

from sleepsync.client.connection import RoomClient
from sleepsync.client.pods import PodFleet, PodOptions
from sleepsync.protocol.telemetry import encode_telemetry
from sleepsync.protocol.topics import status_topic, telemetry_topic

from nodes import Recorder, running_node, wait_for


async def hold_client_id(broker: Mosquitto, user: str, client_id: str, stop: asyncio.Event) -> int:
    """Log in as ``user`` with ``client_id`` and take it back whenever kicked; count logins."""
    logins = 0
    while not stop.is_set():
        try:
            async with aiomqtt.Client(
                "127.0.0.1",
                broker.port,
                username=user,
                password=broker.passwords[user],
                identifier=client_id,
                keepalive=5,
            ) as client:
                logins += 1
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.1)
                    # Raises as soon as the broker has closed this connection.
                    await client.publish("sleepsync/probe", b"", qos=1, timeout=2)
        except aiomqtt.MqttError:
            await asyncio.sleep(0.05)
    return logins


# ---------------------------------------------------------------- client id takeover
async def test_a_pod_cannot_knock_the_node_off_with_its_client_id(mosquitto: Mosquitto) -> None:
    """Attack: log in with a pod's password and the node's client id ``sleepsync-<node-id>``."""
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        ingest = ingest_of(node)
        assert ingest.client_id.startswith("sleepsync-test-node-")
        stop = asyncio.Event()
        attack = asyncio.create_task(
            hold_client_id(mosquitto, "mallory", "sleepsync-test-node", stop)
        )
        try:
            async with pod_client(mosquitto, "lila") as pod:
                for seq in range(1, 31):
                    payload = encode_telemetry(sample("lila", seq))
                    await pod.publish(telemetry_topic(ROOM, "lila"), payload, qos=1)
                    await asyncio.sleep(0.05)
            await wait_for(lambda: metric(node, "telemetry_ingested_total") == 30, 15, "30 samples")
        finally:
            stop.set()
            logins = await attack
        assert logins == 1, "the attacker was never kicked: it did not collide with the node"
        assert ingest.connections == 1
        assert metric(node, "mqtt_reconnects_total") == 0
        assert metric(node, "telemetry_gaps_total") == 0


async def test_a_pod_cannot_knock_another_pod_off(mosquitto: Mosquitto) -> None:
    """The same attack on a simulated pod: its client id is not its pod id either."""
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        fleet = PodFleet(
            PodOptions(
                room=ROOM, count=1, rate=10, mqtt=mosquitto.url(), passwords=mosquitto.passwords
            )
        )
        task = asyncio.create_task(fleet.run())
        stop = asyncio.Event()
        try:
            victim = fleet.pods[0]
            await wait_for(lambda: victim.connected, 15, "the pod is connected")
            attack = asyncio.create_task(hold_client_id(mosquitto, "mallory", "pod-001", stop))
            before = victim.sent
            await wait_for(lambda: victim.sent >= before + 20, 15, "the pod keeps streaming")
            stop.set()
            assert await attack == 1
            assert victim.reconnects == 0
        finally:
            stop.set()
            fleet.stop()
            await task


# ---------------------------------------------------------------- rooms opened by one pod
async def test_one_pod_login_cannot_fill_the_room_table(mosquitto: Mosquitto) -> None:
    """Attack: one pod login publishes ``online`` into 1,100 rooms (the table holds 1,000)."""
    async with mqtt_node(mosquitto) as node:
        limit = node.settings.mqtt_pod_rooms_per_hour
        async with pod_client(mosquitto, "mallory") as pod:
            for i in range(1100):
                await pod.publish(status_topic(f"flood-{i:04d}", "mallory"), b"online", retain=True)
            # The flood and a legitimate pod's own room, through the same broker.
            refused = lambda: metric(node, "mqtt_refused_total", reason="room_limit")  # noqa: E731
            await wait_for(lambda: refused() == 1100 - limit, 30, "the flood refused")
        await wait_for(lambda: len(node.rooms.owned) == limit, 15, f"{limit} rooms")
        assert metric(node, "rooms_discovered_total") == limit
        async with (
            Recorder(RoomClient(node.url, "lounge", "watcher", role="observer")) as rec,
            pod_client(mosquitto, "lila") as pod,
        ):
            await pod.publish(status_topic("lounge", "lila"), b"online", qos=1, retain=True)
            await wait_for(lambda: "lounge" in ingest_of(node).subscribed, 15, "lounge opened")
            for seq in range(1, 4):
                payload = encode_telemetry(sample("lila", seq))
                await pod.publish(telemetry_topic("lounge", "lila"), payload, qos=1)
            await wait_for(lambda: mood_seq(rec, "lila") == 3, 15, "lila streams in lounge")
        assert len(node.rooms.owned) == limit + 1


async def test_telemetry_into_more_rooms_is_dropped_too(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto, mqtt_pod_rooms_per_hour=1) as node:
        rooms = ("r1", "r2")
        for room in rooms:
            await open_room(node, room)
        async with pod_client(mosquitto, "mallory") as pod:
            for room in rooms:
                payload = encode_telemetry(sample("mallory", 1))
                await pod.publish(telemetry_topic(room, "mallory"), payload, qos=1)
        refused = lambda: metric(node, "mqtt_refused_total", reason="room_limit")  # noqa: E731
        await wait_for(lambda: refused() == 1, 15, "the second room refused")
        assert metric(node, "telemetry_ingested_total") == 1


# ---------------------------------------------------------------- seq sanity
async def test_one_sample_at_seq_2_53_cannot_mute_a_pod(mosquitto: Mosquitto) -> None:
    """Attack: one sample whose seq is 2^53; every later real sample looked like a duplicate."""
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        async with Recorder(RoomClient(node.url, ROOM, "watcher", role="observer")) as rec:
            async with pod_client(mosquitto, "lila") as pod:
                topic = telemetry_topic(ROOM, "lila")
                # A valid sample in every field, stamped like its neighbours.
                bad = dataclasses.replace(sample("lila", 3), seq=2**53)
                for item in [*(sample("lila", n) for n in (1, 2, 3)), bad]:
                    await pod.publish(topic, encode_telemetry(item), qos=1)
                for seq in range(4, 11):
                    await pod.publish(topic, encode_telemetry(sample("lila", seq)), qos=1)
            await wait_for(lambda: mood_seq(rec, "lila") == 10, 15, "lila's seq 10 in the mood")
        assert metric(node, "telemetry_ingested_total") == 10
        assert metric(node, "mqtt_refused_total", reason="seq_jump") == 1
        assert metric(node, "telemetry_duplicates_total") == 0


async def test_cycling_boot_ids_cannot_replay_samples(mosquitto: Mosquitto) -> None:
    async with mqtt_node(mosquitto) as node:
        await open_room(node)
        async with pod_client(mosquitto, "lila") as pod:
            topic = telemetry_topic(ROOM, "lila")
            old = [sample("lila", seq, boot="b1") for seq in (1, 2, 3)]
            for item in old:
                await pod.publish(topic, encode_telemetry(item), qos=1)
            for boot in ("b2", "b3", "b4"):
                await pod.publish(topic, encode_telemetry(sample("lila", 4, boot=boot)), qos=1)
            for item in old:  # b1 again, now retired
                await pod.publish(topic, encode_telemetry(item), qos=1)
        refused = lambda: metric(node, "mqtt_refused_total", reason="retired_boot")  # noqa: E731
        await wait_for(lambda: refused() == 3, 15, "the replay refused")
        assert metric(node, "telemetry_ingested_total") == 6


# ---------------------------------------------------------------- secrets in logs
async def test_a_refused_login_logs_no_password(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "hunter2-not-the-password"
    url = f"mqtt://sleepsync-server:{wrong}@127.0.0.1:{mosquitto.port}"
    with caplog.at_level(logging.DEBUG):
        async with running_node(mqtt=True, mqtt_url=url) as node:
            await wait_for(lambda: metric(node, "mqtt_reconnects_total") >= 2, 15, "refused")
    assert "refused" in caplog.text
    assert wrong not in caplog.text
