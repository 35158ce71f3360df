"""Real websocket connections against a real node on an ephemeral port."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import urllib.request

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sleepsync.client.connection import RoomClient
from sleepsync.protocol.codec import decode, encode
from sleepsync.protocol.messages import (
    MAX_TEMPLATE_TEXT,
    Error,
    Event,
    Hello,
    Join,
    Leave,
    Left,
    ListRooms,
    Rooms,
    Say,
    Snapshot,
    UploadTemplate,
    Welcome,
)
from sleepsync.protocol.wire import Limits
from sleepsync.server.config import Settings

from nodes import Recorder, running_node, wait_for


async def recv_until(ws: object, cls: type, timeout: float = 5.0) -> object:
    async with asyncio.timeout(timeout):
        while True:
            msg = decode(await ws.recv(), _LIMITS)  # type: ignore[attr-defined]
            if isinstance(msg, cls):
                return msg


_LIMITS = Limits(max_frame=1 << 22, max_str=1 << 20, max_array=1 << 16)


def assert_contiguous(events: list[Event]) -> None:
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


async def test_three_clients_see_the_same_events_in_the_same_order() -> None:
    async with running_node() as node:
        clients = [
            RoomClient(node.url, "lounge", "lila"),
            RoomClient(node.url, "lounge", "rico"),
            RoomClient(node.url, "lounge", "mira", role="observer"),
        ]
        async with Recorder(clients[0]) as a, Recorder(clients[1]) as b, Recorder(clients[2]) as c:
            for n in range(5):
                await clients[n % 2].say(f"line {n}")
                await asyncio.sleep(0.03)
            await wait_for(lambda: all(len(r.items("said")) == 5 for r in (a, b, c)), what="lines")
            # The dream ticks on (a mood item per tick): wait for ten more events.
            last = max(r.events()[-1].seq for r in (a, b, c)) + 10
            await wait_for(lambda: all(r.events()[-1].seq >= last for r in (a, b, c)))
            logs = []
            for r in (a, b, c):
                assert r.error is None
                assert len(r.of_type(Snapshot)) == 1
                events = r.events()
                assert_contiguous(events)
                logs.append({e.seq: e for e in events})
            shared = set(logs[0]) & set(logs[1]) & set(logs[2])
            assert len(shared) >= 10
            for seq in shared:
                assert logs[0][seq] == logs[1][seq] == logs[2][seq]
            said = [(i["name"], i["text"]) for i in a.items("said")]
            assert said == [("lila" if n % 2 == 0 else "rico", f"line {n}") for n in range(5)]
            assert said == [(i["name"], i["text"]) for i in c.items("said")]


async def test_joins_and_leaves_are_events_and_rooms_are_listed() -> None:
    async with running_node(room_idle_seconds=0.3, lease_ttl_ms=300) as node:
        async with Recorder(RoomClient(node.url, "hall", "mira", role="observer")) as watcher:
            async with Recorder(RoomClient(node.url, "hall", "lila")):
                await wait_for(lambda: any(i["name"] == "lila" for i in watcher.items("joined")))
            await wait_for(lambda: any(i["name"] == "lila" for i in watcher.items("left")))
            async with connect(node.url) as ws:
                await ws.send(encode(Hello("jasper")))
                await ws.send(encode(ListRooms()))
                rooms = await recv_until(ws, Rooms)
                assert isinstance(rooms, Rooms)
                [info] = rooms.rooms
                assert (info.room, info.dreamers, info.observers) == ("hall", 0, 1)
        # Empty rooms go away after room_idle_seconds.
        await wait_for(lambda: "hall" not in node.rooms.owned, timeout=10, what="idle removal")
        assert await node.backend.list_rooms() == []


async def test_room_capacity_is_enforced() -> None:
    async with (
        running_node(room_capacity=2) as node,
        Recorder(RoomClient(node.url, "tiny", "a")),
        Recorder(RoomClient(node.url, "tiny", "b")),
        connect(node.url) as ws,
    ):
        await ws.send(encode(Hello("c")))
        await ws.send(encode(Join("tiny")))
        error = await recv_until(ws, Error)
        assert isinstance(error, Error) and error.code == "room_full" and not error.fatal


async def test_client_that_never_reads_is_closed_1013_others_keep_up() -> None:
    async with running_node(
        engine=False,
        outbound_buffer_bytes=64 * 1024,
        max_inbound_rate=100_000,
        inbound_burst=100_000,
        close_timeout=30,
    ) as node:
        # A slow reader: a tiny receive buffer, and it never reads.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", node.port))
        slow = await connect(node.url, sock=sock, max_queue=1, max_size=None)
        await slow.send(encode(Hello("sloth")))
        await slow.send(encode(Join("storm", "observer")))
        await recv_until(slow, Snapshot)
        watchers = [RoomClient(node.url, "storm", f"w{i}", role="observer") for i in range(3)]
        teller = RoomClient(node.url, "storm", "teller")
        async with (
            Recorder(watchers[0]) as w0,
            Recorder(watchers[1]) as w1,
            Recorder(watchers[2]) as w2,
            Recorder(teller),
        ):
            line = "x" * 490
            sent = 0
            for _ in range(60):
                for _ in range(200):
                    await teller.say(f"{sent} {line}")
                    sent += 1
                await asyncio.sleep(0.02)
                if node.metrics.value("sleepsync_slow_consumers_total"):
                    break
            await wait_for(
                lambda: node.metrics.value("sleepsync_slow_consumers_total") == 1,
                timeout=20,
                what="the slow consumer to be detected",
            )
            # The others received everything sent, in order, promptly.
            started = time.monotonic()
            await wait_for(
                lambda: all(len(w.items("said")) == sent for w in (w0, w1, w2)),
                timeout=15,
                what="fast readers to catch up",
            )
            assert time.monotonic() - started < 10
            for w in (w0, w1, w2):
                assert w.error is None
                assert_contiguous(w.events())
        # Reading now, the slow client finds the server closed it with 1013.
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(20):
                while True:
                    await slow.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1013


async def test_oversize_frame_closes_with_1009() -> None:
    async with running_node(max_frame_bytes=4096) as node, connect(node.url, max_size=None) as ws:
        await ws.send(encode(Hello("big")))
        await recv_until(ws, Welcome)
        await ws.send(b"\x00" * 5000)
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_garbage_gets_an_error_and_the_server_keeps_serving() -> None:
    async with running_node() as node:
        async with Recorder(RoomClient(node.url, "calm", "lila")) as other:
            async with connect(node.url) as ws:
                for garbage, ref in (
                    (os.urandom(64), "?"),
                    (b"\xc1", "?"),
                    (msgpack.packb({"t": "join", "room": 5}), "join"),
                    (msgpack.packb({"t": "dance"}), "dance"),
                    ("text frame", "?"),
                ):
                    await ws.send(garbage)
                    error = await recv_until(ws, Error)
                    assert isinstance(error, Error) and not error.fatal and error.message
                    assert error.ref == ref, (garbage, error)
                await ws.send(encode(Say("calm", "hello")))
                error = await recv_until(ws, Error)
                assert isinstance(error, Error) and error.code == "hello_required"
                assert error.ref == "say"
                # The same connection still works once it behaves.
                await ws.send(encode(Hello("rico")))
                await recv_until(ws, Welcome)
                await ws.send(encode(Join("calm")))
                await recv_until(ws, Snapshot)
                await ws.send(encode(Say("calm", "I am here")))
                await wait_for(lambda: any(i["name"] == "rico" for i in other.items("said")))
            assert other.error is None
        assert node.metrics.value("sleepsync_errors_total", code="bad_frame") >= 2
        assert node.metrics.value("sleepsync_errors_total", code="invalid") >= 1


async def test_only_garbage_is_closed_with_1008_and_its_own_code() -> None:
    async with running_node(max_bad_frames=5) as node, connect(node.url) as ws:
        errors: list[Error] = []
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(5):
                for _ in range(10):
                    await ws.send(b"\xc1")
                    errors.append(decode(await ws.recv()))  # type: ignore[arg-type]
                while True:
                    await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        assert info.value.rcvd.reason.startswith("too_many_bad_frames")
        assert [e.code for e in errors] == ["bad_frame"] * 4 + ["too_many_bad_frames"]
        assert errors[-1].fatal and errors[-1].ref == "?"
        assert node.metrics.value("sleepsync_errors_total", code="too_many_bad_frames") == 1


async def test_a_connection_that_never_says_hello_is_closed_with_1008() -> None:
    async with running_node(hello_timeout=0.3) as node, connect(node.url) as ws:
        started = time.monotonic()
        error = await recv_until(ws, Error)
        assert isinstance(error, Error) and error.code == "hello_timeout"
        assert error.fatal and error.ref is None
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(5):
                await ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        assert 0.25 < time.monotonic() - started < 3
        # A connection that said hello in time stays open past the timeout.
        async with connect(node.url) as ok:
            await ok.send(encode(Hello("lila")))
            await recv_until(ok, Welcome)
            await asyncio.sleep(0.5)
            await ok.send(encode(ListRooms()))
            assert isinstance(await recv_until(ok, Rooms), Rooms)


async def test_per_connection_room_limit_and_membership_rules_have_their_codes() -> None:
    async with running_node(max_rooms_per_client=2) as node, connect(node.url) as ws:
        await ws.send(encode(Hello("rico")))
        await recv_until(ws, Welcome)
        for room in ("one", "two"):
            await ws.send(encode(Join(room, "observer")))
            await recv_until(ws, Snapshot)
        for msg, code in (
            (Join("three"), "too_many_rooms"),
            (Join("one"), "already_joined"),
            (Say("one", "may I?"), "forbidden"),
            (Say("four", "hello?"), "not_joined"),
            (Hello("rico"), "hello_repeated"),
        ):
            await ws.send(encode(msg))
            error = await recv_until(ws, Error)
            assert isinstance(error, Error), msg
            assert (error.code, error.ref, error.fatal) == (code, msg.TYPE, False)
        await ws.send(encode(Leave("two")))
        assert await recv_until(ws, Left) == Left("two")
        await ws.send(encode(Join("three")))
        await recv_until(ws, Snapshot)


async def test_flood_is_closed_with_1008() -> None:
    async with running_node(max_inbound_rate=20, inbound_burst=20) as node:
        async with connect(node.url) as ws:
            await ws.send(encode(Hello("flood")))
            await ws.send(encode(Join("calm")))
            for n in range(100):
                try:
                    await ws.send(encode(Say("calm", f"spam {n}")))
                except ConnectionClosed:
                    break
            with pytest.raises(ConnectionClosed) as info:
                async with asyncio.timeout(5):
                    while True:
                        msg = decode(await ws.recv(), _LIMITS)
                        if isinstance(msg, Error) and msg.code == "rate_limited":
                            assert msg.fatal
            assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        assert node.metrics.value("sleepsync_closes_total", code="1008") == 1


async def test_wrong_protocol_version_is_refused() -> None:
    async with running_node() as node, connect(node.url) as ws:
        await ws.send(encode(Hello("old", version=99)))
        error = await recv_until(ws, Error)
        assert isinstance(error, Error) and error.code == "version" and error.fatal
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                await ws.recv()


async def test_http_endpoints() -> None:
    async with running_node() as node:
        base = f"http://127.0.0.1:{node.port}"

        def get(path: str) -> tuple[int, str]:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return response.status, response.read().decode()

        assert await asyncio.to_thread(get, "/healthz") == (200, "ok\n")
        assert (await asyncio.to_thread(get, "/readyz"))[0] == 200
        status, body = await asyncio.to_thread(get, "/metrics")
        assert status == 200 and "sleepsync_open_connections" in body


async def test_sigterm_shuts_down_cleanly(tmp_path: object) -> None:
    from nodes import free_port

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        os.path.join(os.path.dirname(os.sys.executable), "sleepsync"),  # type: ignore[attr-defined]
        "serve",
        "--port",
        str(port),
        "--tick-hz",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"ws://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                ws = await connect(url)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        await ws.send(encode(Hello("lila")))
        await ws.send(encode(Join("night")))
        await recv_until(ws, Snapshot)
        proc.terminate()
        statuses = []
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(10):
                while True:
                    msg = decode(await ws.recv(), _LIMITS)
                    statuses.append(type(msg).__name__)
        assert "Status" in statuses
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        stderr = (await proc.stderr.read()).decode()  # type: ignore[union-attr]
        assert "Traceback" not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_max_rooms_is_enforced_with_an_error() -> None:
    async with (
        running_node(max_rooms=1) as node,
        Recorder(RoomClient(node.url, "one", "lila")),
        connect(node.url) as ws,
    ):
        await ws.send(encode(Hello("rico")))
        await ws.send(encode(Join("two")))
        error = await recv_until(ws, Error)
        assert isinstance(error, Error) and error.code == "rooms_exhausted"
        assert not error.fatal and error.ref == "join"
        await ws.send(encode(Join("one")))  # the existing room still takes people
        await recv_until(ws, Snapshot)


async def test_max_clients_closes_the_extra_connection_with_1013() -> None:
    async with running_node(max_clients=1) as node, connect(node.url) as first:
        await first.send(encode(Hello("lila")))
        await recv_until(first, Welcome)
        async with connect(node.url) as second:
            error = decode(await second.recv())
            assert isinstance(error, Error) and error.code == "server_full" and error.fatal
            with pytest.raises(ConnectionClosed) as info:
                async with asyncio.timeout(5):
                    await second.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 1013
        await first.send(encode(ListRooms()))
        assert isinstance(await recv_until(first, Rooms), Rooms)


async def test_metrics_count_fanout_latency_and_dreamers() -> None:
    async with running_node(lease_ttl_ms=300) as node, Recorder(RoomClient(node.url, "m", "lila")):
        await wait_for(lambda: node.metrics.value("sleepsync_fanout_seconds_count") >= 5)
        await wait_for(lambda: node.metrics.value("sleepsync_dreamers") == 1, timeout=5)
        assert node.metrics.value("sleepsync_fanout_seconds_sum") < 5
        assert node.metrics.value("process_resident_memory_bytes") > 0


GOOD_TEMPLATE = """
title = "The Lighthouse"
entry = "shore"
safe = "circle"

[[scenes]]
id = "shore"
text = "Waves fold over warm sand."
mood = { valence = 0.7, arousal = 0.3 }
transitions = [{ to = "circle", when = { after = 60 } }]

[[scenes]]
id = "circle"
text = "Everyone sits in a ring of lamplight."
mood = { valence = 0.65, arousal = 0.25 }
"""


async def test_template_uploads_are_validated_and_applied() -> None:
    # One upload after another: no pause between them (--template-upload-interval).
    async with running_node(template_upload_interval=0.0) as node, connect(node.url) as ws:
        async with Recorder(RoomClient(node.url, "tales", "mira", role="observer")) as watcher:
            await ws.send(encode(Hello("rico")))
            await ws.send(encode(Join("tales")))
            await recv_until(ws, Snapshot)
            # A template with a dangling transition: an error naming the problem.
            bad = GOOD_TEMPLATE.replace('to = "circle"', 'to = "nowhere"')
            await ws.send(encode(UploadTemplate("tales", "toml", bad)))
            error = await recv_until(ws, Error)
            assert isinstance(error, Error) and error.code == "template_invalid"
            assert "scenes[0].transitions[0].to" in error.message and not error.fatal
            # Not even TOML: the same kind of error, and the room goes on.
            await ws.send(encode(UploadTemplate("tales", "toml", "title = [unclosed")))
            error = await recv_until(ws, Error)
            assert isinstance(error, Error) and error.code == "template_invalid"
            # Oversize is refused by the message itself.
            await ws.send(
                msgpack.packb(
                    {
                        "t": "upload_template",
                        "room": "tales",
                        "format": "json",
                        "text": "x" * 62_000,
                    }
                )
            )
            error = await recv_until(ws, Error)
            assert isinstance(error, Error) and error.code == "invalid"
            assert error.ref == "upload_template" and "upload_template.text" in error.message
            assert not watcher.items("narrative"), "a bad template never touches the room"
            # A good one changes the room's narrative for everyone.
            await ws.send(encode(UploadTemplate("tales", "toml", GOOD_TEMPLATE)))
            await wait_for(lambda: bool(watcher.items("narrative")), what="the new narrative")
            [changed] = watcher.items("narrative")
            assert changed["title"] == "The Lighthouse" and changed["by"] == "rico"
            assert_contiguous(watcher.events())
        assert node.metrics.value("sleepsync_errors_total", code="template_invalid") == 2


def long_template(size: int) -> str:
    """A valid JSON template of at least ``size`` bytes: a long chain of scenes."""
    scenes: list[dict[str, object]] = []
    mood = {"valence": 0.6, "arousal": 0.3}
    while True:
        n = len(scenes)
        scenes.append(
            {
                "id": f"s{n}",
                "text": f"Scene {n}: " + "the tide hums softly " * 45,
                "mood": mood,
                "transitions": [
                    {"to": f"s{n + 1}", "when": {"after": 60}},
                    {"to": "circle", "when": {"balance_below": 0.4}},
                ],
            }
        )
        end = [
            {
                "id": f"s{n + 1}",
                "text": "Almost there.",
                "mood": mood,
                "transitions": [{"to": "circle", "when": {"after": 60}}],
            },
            {"id": "circle", "text": "A ring of lamplight.", "mood": mood},
        ]
        doc = {"title": "The Long Shore", "entry": "s0", "safe": "circle", "scenes": scenes + end}
        text = json.dumps(doc)
        if len(text) >= size:
            return text


async def test_a_template_up_to_the_documented_size_is_applied_one_byte_more_is_not() -> None:
    big = long_template(56_000)
    assert 56_000 <= len(big.encode()) <= MAX_TEMPLATE_TEXT
    async with running_node() as node, connect(node.url) as ws:
        async with Recorder(RoomClient(node.url, "saga", "mira", role="observer")) as watcher:
            await ws.send(encode(Hello("rico")))
            await ws.send(encode(Join("saga")))
            await recv_until(ws, Snapshot)
            # One byte over the documented limit (trailing white space is still
            # valid JSON): refused by the message, naming the field.
            over = big + " " * (MAX_TEMPLATE_TEXT + 1 - len(big.encode()))
            frame = msgpack.packb(
                {"t": "upload_template", "room": "saga", "format": "json", "text": over}
            )
            assert len(frame) <= Settings().max_frame_bytes
            await ws.send(frame)
            error = await recv_until(ws, Error)
            assert isinstance(error, Error) and error.code == "invalid" and not error.fatal
            assert error.ref == "upload_template" and "upload_template.text" in error.message
            # The same template within the limit is accepted and applied.
            await ws.send(encode(UploadTemplate("saga", "json", big)))
            await wait_for(lambda: bool(watcher.items("narrative")), what="the new narrative")
            [changed] = watcher.items("narrative")
            assert changed["title"] == "The Long Shore" and changed["by"] == "rico"
        assert node.metrics.value("sleepsync_errors_total", code="invalid") == 1
