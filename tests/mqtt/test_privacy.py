"""What is kept about sleepers: derived emotional state, never raw vital signs.

Pods stream telemetry with distinctive vital signs through a real Mosquitto
into a node on a real Redis (both with passwords from files). Then every
event frame a client received, every Redis key (event stream entries and
their tick records, snapshots, inboxes, templates, presence, registries) and
every log line of the node are scanned: none holds a vital sign's field name
(``hr``, ``hrv``, ``eda``, ``resp``) or value, and no log line holds a
password. Positive controls make sure the scan would have seen them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import msgpack
import pytest
from conftest import Mosquitto
from redis.asyncio import Redis
from websockets.asyncio.client import connect

from sleepsync.client.connection import RoomClient
from sleepsync.protocol.codec import encode
from sleepsync.protocol.messages import Hello, Join
from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns, encode_telemetry
from sleepsync.protocol.topics import telemetry_topic
from sleepsync.server.broker import SERVER_USER

from nodes import Recorder, running_node, wait_for
from redis_server import RedisServer

ROOM = "hush"
PODS = ("pod-001", "pod-002")
#: Vital signs no other number in a run would equal.
VITALS = {"hr": 123.4567, "hrv": 87.6543, "eda": 12.3457, "resp": 17.8912}
#: What a room does keep: the derived state (positive control).
VALENCE = 0.612345
REDIS_PASSWORD = "redis-pw-0a9b8c7d"


def sample(pod: str, seq: int) -> TelemetrySample:
    vitals = VitalSigns(VITALS["hr"], VITALS["hrv"], VITALS["eda"], VITALS["resp"])
    return TelemetrySample(pod, "b1", seq, 1.7e9 + seq, vitals, VALENCE, 0.398765)


def packed_key(name: str) -> bytes:
    return msgpack.packb(name)


def packed_float(value: float) -> bytes:
    return b"\xcb" + struct.pack(">d", value)


def leaks(blob: bytes) -> list[str]:
    """The vital signs' names (as msgpack keys) and values found in ``blob``."""
    found = [name for name in VITALS if packed_key(name) in blob]
    for name, value in VITALS.items():
        if packed_float(value) in blob or str(value).encode() in blob:
            found.append(f"{name}={value}")
    return found


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", password=REDIS_PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def redis_dump(redis: Redis) -> dict[str, bytes]:
    """Every key of the store, its whole content as bytes."""
    out: dict[str, bytes] = {}
    async for key in redis.scan_iter():
        kind = (await redis.type(key)).decode()
        parts: list[bytes] = []
        if kind == "string":
            parts.append(await redis.get(key))
        elif kind == "hash":
            for field, value in (await redis.hgetall(key)).items():
                parts += [field, value]
        elif kind == "stream":
            for entry_id, fields in await redis.xrange(key):
                parts.append(entry_id)
                for field, value in fields.items():
                    parts += [field, value]
        elif kind == "set":
            parts += list(await redis.smembers(key))
        elif kind == "zset":
            parts += [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
        out[key.decode()] = b"\x00".join(parts)
    return out


@contextlib.asynccontextmanager
async def raw_frames(url: str, into: list[bytes]) -> AsyncIterator[None]:
    """Every binary frame an observer of ROOM receives, as sent."""
    async with connect(url, max_size=1 << 22) as ws:
        await ws.send(encode(Hello("scanner")))
        await ws.send(encode(Join(ROOM, "observer")))

        async def read() -> None:
            async for frame in ws:
                if isinstance(frame, bytes):
                    into.append(frame)

        task = asyncio.create_task(read())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def mood_seq(rec: Recorder, pod: str) -> int:
    for item in reversed(rec.items("mood")):
        for row in item["dreamers"]:  # name, valence, arousal, glitch, seq[, fragility]
            if row[0] == pod:
                return int(row[4])
    return 0


async def test_no_vital_sign_is_kept_sent_or_logged(
    mosquitto: Mosquitto,
    locked_redis: RedisServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    mqtt_password = mosquitto.passwords[SERVER_USER]
    (tmp_path / "mqtt-pw").write_text(mqtt_password + "\n")
    (tmp_path / "redis-pw").write_text(REDIS_PASSWORD + "\n")
    settings = {
        "mqtt_url": f"mqtt://{SERVER_USER}@127.0.0.1:{mosquitto.port}",
        "mqtt_password_file": str(tmp_path / "mqtt-pw"),
        "redis_url": locked_redis.url,
        "redis_password_file": str(tmp_path / "redis-pw"),
        "snapshot_every": 5,
    }
    frames: list[bytes] = []
    redis = Redis.from_url(locked_redis.url, password=REDIS_PASSWORD)
    try:
        async with running_node(mqtt=True, **settings) as node:
            watcher = RoomClient(node.url, ROOM, "lila")
            async with Recorder(watcher) as rec, raw_frames(node.url, frames):
                await wait_for(lambda: ROOM in (node.ingest.subscribed if node.ingest else ()))
                await watcher.say("the tide is warm")
                for pod in PODS:
                    async with aiomqtt.Client(
                        "127.0.0.1",
                        mosquitto.port,
                        username=pod,
                        password=mosquitto.passwords[pod],
                        identifier=f"{pod}-privacy",
                    ) as client:
                        topic = telemetry_topic(ROOM, pod)
                        for seq in range(1, 11):
                            await client.publish(topic, encode_telemetry(sample(pod, seq)), qos=1)
                        # Refused samples: the log says so without the vital sign or its value.
                        bad = dict(sample(pod, 11).to_wire(), hr=333.333)
                        await client.publish(topic, msgpack.packb(bad), qos=1)
                        bad = dict(sample(pod, 12).to_wire(), hrv=str(VITALS["hrv"]))
                        await client.publish(topic, msgpack.packb(bad), qos=1)
                await wait_for(
                    lambda: all(mood_seq(rec, pod) == 10 for pod in PODS), 20, "both pods' samples"
                )
                await asyncio.sleep(0.5)  # a snapshot after the last sample
                snapshot = await node.backend.load_snapshot(ROOM)
                store = await redis_dump(redis)
            logs = caplog.text
    finally:
        await redis.aclose()

    # What was scanned holds what it should (positive controls).
    assert snapshot is not None and frames and rec.items("said")
    events = store[f"{{room:{ROOM}}}:events"]
    assert packed_float(VALENCE) in events, "tick records keep the derived state"
    assert b"pod-001" in snapshot.state and b"pod-002" in snapshot.view
    assert "dropped a payload from pod pod-001" in logs
    # Nothing else.
    for n, frame in enumerate(frames):
        assert not leaks(frame), f"event frame {n}: {leaks(frame)}"
    assert not leaks(snapshot.state) and not leaks(snapshot.view)
    for key, blob in store.items():
        assert not leaks(blob), f"redis key {key}: {leaks(blob)}"
    assert not [v for v in VITALS.values() if str(v) in logs] and "333.333" not in logs
    assert not re.search(r"\b(hr|hrv|eda|resp)\b", logs), "a vital sign named in the logs"
    assert mqtt_password not in logs and REDIS_PASSWORD not in logs
