"""``history`` over a real websocket: a room's retained history as a journal, replayed exactly."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from sleepsync.client.connection import RoomClient
from sleepsync.client.history import HistoryError, fetch_history
from sleepsync.protocol.codec import decode
from sleepsync.protocol.events import Mood, items_of
from sleepsync.protocol.messages import Event
from sleepsync.protocol.narrative import template_to_wire
from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns
from sleepsync.protocol.wire import Limits
from sleepsync.server.backend.memory import MemoryBackend
from sleepsync.server.engine.api import Telemetry
from sleepsync.server.journal.files import JournalReader
from sleepsync.server.journal.replay import replay
from sleepsync.server.journal.scenario import lighthouse_template
from sleepsync.server.node import Node

from nodes import Recorder, running_node, wait_for
from nodes import test_settings as node_settings

VITALS = VitalSigns(heart_rate=123.456, hrv=78.9, skin_conductance=4.56, respiration=17.25)
ROOM = "harbour"


async def feed(node: Node, seconds: float, seed: int = 3) -> None:
    """Three pods sampling at 20 Hz into the room's owner, raw vitals and all."""
    rnd = random.Random(seed)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    seq = 0
    while loop.time() < end:
        seq += 1
        for pod in ("pod-a", "pod-b", "pod-c"):
            v, a = round(rnd.uniform(0.1, 0.9), 3), round(rnd.uniform(0.1, 0.9), 3)
            sample = TelemetrySample(pod, f"boot-{seed}", seq, 1.7e9 + seq / 20, VITALS, v, a)
            node.rooms.add_external(ROOM, Telemetry(sample))
        await asyncio.sleep(0.05)


async def stored_moods(node: Node) -> dict[int, Mood]:
    """The mood item of every stored event, by tick (what clients received)."""
    out = {}
    for stored in await node.backend.read_events(ROOM, 0, 100_000):
        event = decode(stored.frame, Limits(max_frame=1 << 22))
        assert isinstance(event, Event)
        for item in items_of(event):
            if isinstance(item, Mood):
                out[event.tick] = item
    return out


async def test_a_room_on_one_node_exports_and_replays_bit_exact() -> None:
    async with running_node() as node:
        client = RoomClient(node.url, ROOM, "lila")
        async with Recorder(client) as rec:
            await wait_for(lambda: rec.events(), what="the room to tick")
            await client.say("the lighthouse turns")
            await feed(node, 1.5)
            await client.say("and finds each of us")
            await wait_for(lambda: len(rec.items("said")) == 2, what="both lines")
            data = await fetch_history(node.url, ROOM, name="exporter")
            moods = await stored_moods(node)
    reader = JournalReader(data)
    assert reader.header.room == ROOM and reader.header.start_tick == 0  # the whole night
    result = replay(reader)
    assert result.exact and result.ticks >= 30 and result.hashes >= 3
    assert result.end is not None and result.end.reason == "export"
    assert b"123.456" not in data and b"78.9" not in data  # derived data only
    # the journal is the stream, kept: what clients saw is what the engine recorded
    recorded = {t.tick + 1: i for t in JournalReader(data).ticks() for i in t.items}
    recorded_moods = {tick: m for tick, m in recorded.items() if isinstance(m, Mood)}
    common = set(moods) & set(recorded_moods)
    assert len(common) >= 25
    assert all(moods[t] == recorded_moods[t] for t in common)


class LastingBackend(MemoryBackend):
    """An in-memory store that outlives the nodes using it (as Redis would)."""

    async def close(self) -> None:
        return None


async def test_a_template_upload_s_text_reaches_the_journal() -> None:
    """Tick records name uploads by digest; the store keeps their texts only until
    the next snapshot, so the journal starts at the snapshot that holds the
    uploaded narrative, and replays exactly from there."""
    template = json.dumps(template_to_wire(lighthouse_template()))
    async with running_node() as node:
        client = RoomClient(node.url, ROOM, "lila")
        async with Recorder(client) as rec:
            await wait_for(lambda: rec.events(), what="the room to tick")
            await client.upload_template("json", template)
            await wait_for(lambda: rec.items("narrative"), what="the upload to apply")
            await feed(node, 0.5)
            await client.say("the lighthouse turns")
            await wait_for(lambda: rec.items("said"), what="the line")
            data = await fetch_history(node.url, ROOM, name="exporter")
    reader = JournalReader(data)
    assert reader.header.start_tick > 0  # the upload's text is gone from the store
    assert reader.start_narrative.title == "The Lighthouse"
    result = replay(reader)
    assert result.exact and result.end is not None and result.end.reason == "export"


async def test_after_a_restart_the_history_starts_at_the_snapshot() -> None:
    backend = LastingBackend(retention=20)
    first = Node(node_settings(event_retention=20, snapshot_every=5), backend=backend, mqtt=False)
    await first.start()
    try:
        client = RoomClient(first.url, ROOM, "mira")
        async with Recorder(client) as rec:
            await wait_for(lambda: rec.events(), what="the room to tick")
            await feed(first, 1.0, seed=4)
    finally:
        await first.stop()  # hands the room back with a fresh snapshot
    second = Node(node_settings(event_retention=20, snapshot_every=5), backend=backend, mqtt=False)
    await second.start()
    try:
        client = RoomClient(second.url, ROOM, "mira")
        async with Recorder(client) as rec:
            await wait_for(lambda: ROOM in second.rooms.owned, what="the room to be taken")
            await feed(second, 1.0, seed=5)
            await client.say("we came back")
            await wait_for(lambda: rec.items("said"), what="the line")
            assert (await backend.first_seq(ROOM) or 0) > 1, "the stream was trimmed"
            data = await fetch_history(second.url, ROOM)
    finally:
        await second.stop()
    reader = JournalReader(data)
    assert reader.header.start_tick > 0  # from the snapshot, not the first tick
    result = replay(reader)
    assert result.exact and result.ticks > 0


async def test_a_room_without_history_is_refused_with_a_clear_error() -> None:
    async with running_node() as node:
        with pytest.raises(HistoryError) as caught:
            await fetch_history(node.url, "nowhere")
        assert caught.value.server_code == "no_history"
        assert "nowhere" in caught.value.message


async def test_a_server_without_a_dream_engine_has_no_history() -> None:
    async with running_node(engine=False) as node:
        with pytest.raises(HistoryError, match="no dream engine"):
            await fetch_history(node.url, ROOM)


async def test_an_unreachable_server_is_one_error() -> None:
    with pytest.raises(HistoryError, match="cannot fetch"):
        await fetch_history("ws://127.0.0.1:9", ROOM, timeout=5)
