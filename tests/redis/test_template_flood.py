"""Template floods against a real Redis: what a room stores grows with its rooms, not its uploads.

The attack (issue #10): one client uploads the same valid 16 KB template 45
times a second. When every tick record carried the template text, each
upload stayed in the room's event stream until ``event_retention`` events
later (200 s at 10 ticks a second): 75 s of it held 54 MB per room, and one
client may join 8 rooms.
Now a room stores a template once, by sha256, only until the snapshot that
covers the tick applying it; the tick record carries the hash.

Measured with a 16,314 B template (the first test, 20 then 300 more uploads):
before, the room's keys held 6,073,072 B after 320 uploads (+5,664,960 B for
the last 300, 18.9 KB per upload, nearly all in the event stream); now
125,504 B (+88,904 B, about 300 B per upload: the events' frames and
digests, which the stream's MAXLEN bounds like any other event).

The client's inbound rate and its template uploads (``--template-upload-interval``
0: no wait between two) are raised far above the defaults here: the bound
must hold whatever the per-connection limits let through.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis
from websockets.asyncio.client import connect

from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.messages import Hello, Join, Snapshot, UploadTemplate
from sleepsync.protocol.narrative import MAX_SCENE_TEXT
from sleepsync.protocol.wire import Limits
from sleepsync.server.backend.redis import RedisBackend

from nodes import running_node
from redis_server import RedisServer

TEMPLATE_BYTES = 16_000
#: Far above what any per-connection limit allows: the storage bound must not rely on it.
FLOOD_SETTINGS: dict[str, Any] = {
    "max_inbound_rate": 10_000.0,
    "inbound_burst": 10_000,
    "template_upload_interval": 0.0,
    "tick_hz": 20.0,
}


def template(size: int, title: str = "The Long Shore") -> str:
    """A valid JSON template of at least ``size`` bytes: a long chain of scenes."""
    mood = {"valence": 0.6, "arousal": 0.3}
    scenes: list[dict[str, object]] = []
    while True:
        n = len(scenes)
        scenes.append(
            {
                "id": f"s{n}",
                "text": f"Scene {n}: " + "the tide hums softly " * 45,
                "mood": mood,
                "transitions": [{"to": f"s{n + 1}", "when": {"after": 60}}],
            }
        )
        end = {"id": f"s{n + 1}", "text": "A ring of lamplight.", "mood": mood}
        doc = {"title": title, "entry": "s0", "safe": f"s{n + 1}", "scenes": [*scenes, end]}
        text = json.dumps(doc)
        if len(text) >= size:
            return text


async def room_bytes(redis: Redis, room: str) -> dict[str, int]:
    """MEMORY USAGE of every key of ``room`` (exact: every stream node sampled)."""
    out: dict[str, int] = {}
    async for key in redis.scan_iter(match=f"{{room:{room}}}:*"):
        usage = await redis.memory_usage(key, samples=0)
        out[key.decode().rsplit(":", 1)[1]] = int(usage or 0)
    return out


async def tick_records(redis: Redis, room: str) -> list[bytes]:
    entries = await redis.xrange(f"{{room:{room}}}:events")
    return [fields.get(b"i", b"") for _, fields in entries]


async def flood(url: str, room: str, texts: list[str], redis: Redis) -> None:
    """Upload ``texts`` as fast as the connection takes them; wait until all were applied."""
    limits = Limits(max_frame=1 << 22, max_str=1 << 20, max_array=1 << 16)
    async with connect(url, max_size=1 << 22) as ws:
        await ws.send(encode(Hello("flooder")))
        await ws.send(encode(Join(room)))
        while not isinstance(decode(await ws.recv(), limits), Snapshot):
            pass
        drain = asyncio.create_task(_drain(ws))
        try:
            for text in texts:
                await ws.send(encode(UploadTemplate(room, "json", text)))
            # Applied: the inbox is empty again and a snapshot covers the last upload.
            await asyncio.sleep(0.2)
            await wait_for_async(lambda: _inbox_empty(redis, room), 60, "the inbox to drain")
        finally:
            drain.cancel()


async def _drain(ws: Any) -> None:
    async for _ in ws:
        pass


async def _inbox_empty(redis: Redis, room: str) -> bool:
    return int(await redis.xlen(f"{{room:{room}}}:inbox")) == 0


async def templates_forgotten(redis: Redis, room: str) -> None:
    """The snapshot right after the last upload's tick lands: the room holds no template."""

    async def none_held() -> bool:
        return int(await redis.hlen(f"{{room:{room}}}:templates")) == 0

    await wait_for_async(none_held, 5, "the snapshot to forget the templates")


async def wait_for_async(predicate: Any, timeout: float, what: str) -> None:
    ok = False

    async def check() -> None:
        nonlocal ok
        ok = await predicate()

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await check()
        if ok:
            return
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_the_same_template_uploaded_many_times_is_stored_once(
    shared_redis: RedisServer,
) -> None:
    shared_redis.command("FLUSHALL")
    text = template(TEMPLATE_BYTES)
    size = len(text.encode())
    backend = RedisBackend(shared_redis.url)
    redis = Redis.from_url(shared_redis.url)
    try:
        async with running_node(backend=backend, **FLOOD_SETTINGS) as node:
            await flood(node.url, "shore", [text] * 20, redis)
            await templates_forgotten(redis, "shore")
            base = await room_bytes(redis, "shore")
            await flood(node.url, "shore", [text] * 300, redis)
            await templates_forgotten(redis, "shore")
            after = await room_bytes(redis, "shore")
            records = await tick_records(redis, "shore")
        grown = sum(after.values()) - sum(base.values())
        print(
            f"\n{size} B template: room keys {sum(base.values())} B after 20 uploads, "
            f"{sum(after.values())} B after 320 ({grown:+d} B, {grown / 300:.0f} B per upload); "
            f"by key {after}; largest tick record {max(map(len, records))} B"
        )
        assert not any(text.encode()[:100] in r for r in records), "records name it by digest"
        # The current narrative, once, in the snapshot.
        assert after["snapshot"] < 2 * size
        # What 300 more uploads (4.9 MB of templates) add is the events' own frames and
        # digests: under 1 KB per upload plus the entered scene's text, which the
        # ``scene`` item carries (at most MAX_SCENE_TEXT characters) — it was 18.9 KB —
        # and the stream keeps at most event_retention events of them.
        assert grown / 300 < 1024 + MAX_SCENE_TEXT, after
    finally:
        await redis.aclose()


async def test_distinct_templates_do_not_pile_up_either(shared_redis: RedisServer) -> None:
    shared_redis.command("FLUSHALL")
    texts = [template(TEMPLATE_BYTES, f"Shore {n}") for n in range(120)]
    size = len(texts[0].encode())
    backend = RedisBackend(shared_redis.url)
    redis = Redis.from_url(shared_redis.url)
    try:
        async with running_node(backend=backend, **FLOOD_SETTINGS) as node:
            await flood(node.url, "shore", texts, redis)
            await templates_forgotten(redis, "shore")
            after = await room_bytes(redis, "shore")
        print(f"\n120 distinct {size} B templates: room keys {after}")
        assert after["snapshot"] < 2 * size
        # No template text piles up: what stays besides the snapshot is one event frame
        # per upload (bounded by event_retention), each under 1 KB plus a scene's text.
        assert after.get("templates", 0) == 0, after
        kept = sum(after.values()) - after["snapshot"] - after["events"]
        assert kept < 2 * size, after
        assert after["events"] / len(texts) < 1024 + MAX_SCENE_TEXT, after
    finally:
        await redis.aclose()
