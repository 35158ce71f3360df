"""Issue #10, identity: who may read a room, speak in it, be a pod, change or erase it.

Every test replays an attack against real nodes on a real Redis (and a real
Mosquitto where pods matter). "Before" is the same attack against a node
without auth settings (open mode, which is what every node was before
tokens); "after" is a node with ``--auth-secret-file``. Each test also shows
that the legitimate users next to the attacker are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import redis as redis_client
from conftest import Issuer, Mosquitto
from peers import Peer, metric

from sleepsync.client.connection import RoomClient
from sleepsync.client.forget import forget_room
from sleepsync.protocol.identity import LEEWAY, unverified_subject
from sleepsync.protocol.messages import (
    Error,
    Forget,
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
from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns, encode_telemetry
from sleepsync.protocol.topics import telemetry_topic
from sleepsync.server.node import Node

from nodes import Recorder, running_node, wait_for
from redis_server import RedisServer

TEMPLATE = """
title = "Taken over"
entry = "a"
safe = "a"
[[scenes]]
id = "a"
text = "Someone else's dream."
mood = { valence = 0.2, arousal = 0.8 }
"""


@contextlib.asynccontextmanager
async def node_on(
    redis: RedisServer, issuer: Issuer | None, **overrides: Any
) -> AsyncIterator[Node]:
    """A node on the shared Redis; with the issuer's secret (auth on) or without (open)."""
    redis.command("FLUSHALL")
    if issuer is not None:
        overrides["auth_secret_file"] = str(issuer.secret_file)
    async with running_node(redis_url=redis.url, **overrides) as node:
        yield node


def members(peer: Peer) -> list[dict[str, Any]]:
    snapshots = peer.of_type(Snapshot)
    assert snapshots, "no snapshot"
    found = snapshots[-1].state["members"]
    assert isinstance(found, list)
    return found


# ---------------------------------------------------------------- reading
async def test_nobody_reads_a_rooms_dreamers_without_a_token_for_it(
    redis: RedisServer, issuer: Issuer, figures: list[str]
) -> None:
    """Attack: join any room anonymously and read every dreamer's valence and arousal."""

    async def spy(node: Node, hello: Hello) -> Peer:
        async with Peer(node.url) as peer:
            await peer.send(hello, Join("night", "observer"))
            await asyncio.sleep(1.5)
        return peer

    async with (
        node_on(redis, None) as node,
        Recorder(RoomClient(node.url, "night", "lila")) as lila,
    ):
        await wait_for(lambda: bool(lila.items("mood")), what="lila's mood")
        before = (await spy(node, Hello("spy"))).dreamer_states()

    async with node_on(redis, issuer) as node:
        lila_token = issuer.token("lila", "night")
        friend_token = issuer.token("ana", "night", "observer")
        async with (
            Recorder(RoomClient(node.url, "night", "lila", token=lila_token)) as lila,
            Recorder(
                RoomClient(node.url, "night", "ana", role="observer", token=friend_token)
            ) as friend,
        ):
            await wait_for(lambda: bool(friend.items("mood")), what="the friend reads the room")
            anonymous = await spy(node, Hello("spy"))
            elsewhere = await spy(node, Hello("spy", token=issuer.token("spy", "day*", "observer")))
            assert lila.error is None and friend.error is None
    assert [e.code for e in anonymous.errors()] == ["unauthorized"]
    assert anonymous.close_code == 1008 and not anonymous.of_type(Welcome)
    assert [(e.code, e.ref) for e in elsewhere.errors()] == [("forbidden", "join")]
    after = anonymous.dreamer_states() + elsewhere.dreamer_states()
    assert before > 0 and after == 0
    figures.append(
        f"per-dreamer valence/arousal readings a tokenless client got in 1.5 s: "
        f"before {before}, after {after} (unauthorized, close 1008; a token for other "
        "rooms: forbidden)"
    )


# ---------------------------------------------------------------- names
async def test_nobody_speaks_under_another_name(
    redis: RedisServer, issuer: Issuer, figures: list[str]
) -> None:
    """Attack: say hello as ``lila`` and speak; two lilas merge into one member."""

    async def impersonate(node: Node, token: str | None) -> Peer:
        async with Peer(node.url) as mallory:
            await mallory.send(Hello("lila", token=token), Join("night"))
            await asyncio.sleep(0.3)
            await mallory.send(Say("night", "I give my pod to mallory"))
            await asyncio.sleep(0.5)
        return mallory

    def confessions(rec: Recorder) -> int:
        return sum(1 for i in rec.items("said") if "mallory" in i["text"])

    async with (
        node_on(redis, None) as node,
        Recorder(RoomClient(node.url, "night", "lila")) as lila,
    ):
        await wait_for(lambda: bool(lila.events()), what="lila in the room")
        await impersonate(node, None)
        await wait_for(lambda: confessions(lila) > 0, what="the forged line")
        before = confessions(lila)

    async with node_on(redis, issuer) as node:
        token = issuer.token("lila", "night")
        async with Recorder(RoomClient(node.url, "night", "lila", token=token)) as lila:
            await wait_for(lambda: bool(lila.events()), what="lila in the room")
            forged = [
                await impersonate(node, None),
                await impersonate(node, issuer.token("mallory", "night")),
            ]
            # lila herself, from a second terminal: the same member, one more session.
            async with Peer(node.url) as second:
                await second.send(Hello("lila", token=token), Join("night"))
                await second.until(lambda: bool(second.of_type(Snapshot)), "second snapshot")
                await second.send(Say("night", "both terminals are mine"))
                await wait_for(lambda: bool(lila.items("said")), what="lila's own line")
                state = node.rooms.owned["night"].state
                await wait_for(lambda: state.session_count == 2, what="two sessions")
                assert state.view()["members"] == [
                    {"name": "lila", "role": "dreamer", "sessions": 2}
                ]
            assert [i["name"] for i in lila.items("joined")] == ["lila"], "joined once"
            after = confessions(lila)
    for mallory in forged:
        assert [e.code for e in mallory.errors()] == ["unauthorized"]
        assert mallory.close_code == 1008
    assert before == 1 and after == 0
    figures.append(
        f"lines told under lila's name by someone else: before {before}, after {after} "
        "(no token or another's: unauthorized); lila's second terminal: one member, 2 sessions"
    )


# ---------------------------------------------------------------- pods
def _sample(pod: str, seq: int) -> TelemetrySample:
    return TelemetrySample(
        pod, "boot", seq, time.time(), VitalSigns(60.0, 50.0, 2.0, 12.0), 0.7, 0.3
    )


async def _stream(broker: Mosquitto, pod: str, room: str, stop: asyncio.Event) -> None:
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username=pod, password=broker.passwords[pod], identifier=pod
    ) as client:
        seq = 0
        while not stop.is_set():
            seq += 1
            payload = encode_telemetry(_sample(pod, seq))
            await client.publish(telemetry_topic(room, pod), payload, qos=1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)


def valences(rec: Recorder, pod: str) -> list[float]:
    return [row[1] for item in rec.items("mood") for row in item["dreamers"] if row[0] == pod]


def mood_names(rec: Recorder) -> list[set[str]]:
    return [{row[0] for row in item["dreamers"]} for item in rec.items("mood")]


async def test_a_websocket_client_can_never_be_a_pod(
    redis: RedisServer, issuer: Issuer, mosquitto: Mosquitto, figures: list[str]
) -> None:
    """Attack: connect as ``pod-001`` over the websocket and, by leaving, reset its dreamer."""
    settings = {"mqtt": True, "mqtt_url": mosquitto.server_url}
    async with node_on(redis, issuer, **settings) as node:
        watch = issuer.token("watch", "ward", "observer")
        async with Recorder(
            RoomClient(node.url, "ward", "watch", role="observer", token=watch)
        ) as rec:
            assert node.ingest is not None
            await wait_for(lambda: "ward" in node.ingest.subscribed, 15, "subscription")
            stop = asyncio.Event()
            pods = [
                asyncio.create_task(_stream(mosquitto, p, "ward", stop))
                for p in ("pod-001", "lila")
            ]
            try:
                await wait_for(
                    lambda: bool(mood_names(rec)) and mood_names(rec)[-1] >= {"pod-001", "lila"},
                    15,
                    "both pods dream",
                )
                moods_before = len(mood_names(rec))
                # In the pods' namespace: refused at hello, token or not.
                async with Peer(node.url) as fake_pod:
                    await fake_pod.send(Hello("pod-001"), Join("ward"), Leave("ward"))
                    await fake_pod.send(Hello("pod-001", token=issuer.token("x", "*")))
                    await fake_pod.until(lambda: len(fake_pod.errors()) >= 4, "four refusals")
                # A person's token whose name is a pod in the room: refused at join.
                async with Peer(node.url) as lila:
                    await lila.send(Hello("lila", token=issuer.token("lila", "ward")))
                    await lila.send(Join("ward"))
                    await lila.until(lambda: bool(lila.errors()), "the join refused")
                    await lila.send(Leave("ward"))
                    await lila.until(lambda: len(lila.errors()) >= 2, "the leave refused")
                await wait_for(lambda: len(mood_names(rec)) >= moods_before + 10, what="ticks")
            finally:
                stop.set()
                await asyncio.gather(*pods, return_exceptions=True)
    codes = [(e.code, e.ref) for e in fake_pod.errors()]
    assert codes[:2] == [("name_taken", "hello"), ("hello_required", "join")]
    assert ("name_taken", "hello") in codes[2:]
    assert [(e.code, e.ref) for e in lila.errors()] == [
        ("name_taken", "join"),
        ("not_joined", "leave"),
    ]
    gone = sum(1 for names in mood_names(rec)[moods_before:] if not {"pod-001", "lila"} <= names)
    # A dreamer removed and made again starts over from neutral: its valence drops.
    drops = [
        round(a - b, 3)
        for pod in ("pod-001", "lila")
        for a, b in itertools.pairwise(valences(rec, pod)[moods_before:])
        if a - b > 0.1
    ]
    websocket_pods = [
        i for i in rec.items("joined") if i["name"] in ("pod-001", "lila") and i["role"] != "pod"
    ]
    assert gone == 0 and drops == [] and websocket_pods == [] and not rec.items("left")
    figures.append(
        "a websocket client named like a pod joins and leaves: before it joined as a second "
        "member pod-001 and its leave rebuilt the pod's dreamer (valence 0.75 -> 0.52 in one "
        f"tick); after: refused (hello pod-001 and join as pod lila: name_taken), {gone} ticks "
        f"without a pod's dreamer, {len(drops)} valence drops"
    )


# ---------------------------------------------------------------- narratives
async def test_only_an_operator_replaces_a_rooms_narrative(
    redis: RedisServer, issuer: Issuer, figures: list[str]
) -> None:
    """Attack: replace a room's narrative (any member could upload a template)."""

    async def upload(node: Node, hello: Hello, role: str = "observer") -> Peer:
        async with Peer(node.url) as peer:
            await peer.send(hello, Join("night", "observer" if role == "observer" else "dreamer"))
            await peer.until(lambda: bool(peer.of_type(Snapshot)) or bool(peer.errors()), "joined")
            await peer.send(UploadTemplate("night", "toml", TEMPLATE))
            await asyncio.sleep(0.6)
        return peer

    async with (
        node_on(redis, None) as node,
        Recorder(RoomClient(node.url, "night", "lila")) as lila,
    ):
        await wait_for(lambda: bool(lila.events()), what="lila in the room")
        await upload(node, Hello("spy"))
        await wait_for(lambda: bool(lila.items("narrative")), what="the narrative replaced")
        before = len(lila.items("narrative"))

    async with (
        node_on(redis, issuer) as node,
        Recorder(
            RoomClient(node.url, "night", "lila", token=issuer.token("lila", "night"))
        ) as lila,
    ):
        await wait_for(lambda: bool(lila.events()), what="lila in the room")
        observer = await upload(node, Hello("spy", token=issuer.token("spy", "night", "observer")))
        dreamer = await upload(node, Hello("rico", token=issuer.token("rico", "night")), "dreamer")
        after = len(lila.items("narrative"))
        async with Peer(node.url) as anna:
            await anna.send(Hello("anna", token=issuer.token("anna", "*", "operator")))
            await anna.send(Join("night", "observer"), UploadTemplate("night", "toml", TEMPLATE))
            await wait_for(lambda: bool(lila.items("narrative")), what="the operator's narrative")
            await anna.send(UploadTemplate("night", "toml", TEMPLATE))
            await anna.until(lambda: bool(anna.errors()), "the second upload refused")
    for peer in (observer, dreamer):
        assert [(e.code, e.ref) for e in peer.errors()] == [("forbidden", "upload_template")]
        assert not peer.closed or peer.close_code == 1000
    assert [(e.code, e.ref) for e in anna.errors()] == [("upload_too_soon", "upload_template")]
    assert lila.items("narrative")[0]["by"] == "anna"
    assert before == 1 and after == 0
    figures.append(
        f"narratives replaced by members who are not operators: before {before}, after {after} "
        "(forbidden); an operator's second upload within 5 s: upload_too_soon"
    )


# ---------------------------------------------------------------- roles and rooms
async def test_a_token_caps_rooms_and_role(redis: RedisServer, issuer: Issuer) -> None:
    async with node_on(redis, issuer) as node, Peer(node.url) as ana:
        await ana.send(Hello("ana", token=issuer.token("ana", "night*", "observer")))
        await ana.send(Join("day"), Join("night", "dreamer"), Join("night", "observer"))
        await ana.until(lambda: bool(ana.of_type(Snapshot)), "the observer's snapshot")
        await ana.send(Say("night", "hello"), Forget("night"), ListRooms())
        await ana.until(lambda: bool(ana.of_type(Rooms)), "the room list")
        assert [(e.code, e.ref) for e in ana.errors()] == [
            ("forbidden", "join"),
            ("forbidden", "join"),
            ("forbidden", "say"),
            ("forbidden", "forget"),
        ]
        assert not ana.closed, "a refusal is not a reason to close"
        assert [r.room for r in ana.of_type(Rooms)[0].rooms] == ["night"]


async def test_an_expired_token_ends_the_connection_before_its_next_input(
    redis: RedisServer, issuer: Issuer, figures: list[str]
) -> None:
    async with node_on(redis, issuer) as node:
        watch = issuer.token("watch", "night", "observer")
        async with Recorder(
            RoomClient(node.url, "night", "watch", role="observer", token=watch)
        ) as rec:
            # Valid for about two more seconds (its exp is already past, within the leeway).
            start = time.time()
            short = issuer.token("lila", "night", now=start - LEEWAY, ttl=2.0)
            async with Peer(node.url) as lila:
                await lila.send(Hello("lila", token=short), Join("night"))
                await lila.until(lambda: bool(lila.of_type(Snapshot)), "lila joined")
                await lila.send(Say("night", "still here"))
                await lila.until(lambda: lila.closed, "the connection ended", timeout=8)
                lasted = time.time() - start
                await lila.send(Say("night", "after the end"))
            await wait_for(lambda: any(i["name"] == "lila" for i in rec.items("left")), what="left")
    error = lila.errors()[-1]
    assert (error.code, error.fatal, error.ref) == ("unauthorized", True, None)
    assert "expired" in error.message and lila.close_code == 1008
    assert [i["text"] for i in rec.items("said")] == ["still here"]
    assert metric(node, "errors_total", code="unauthorized") == 1
    figures.append(f"a connection whose token expired: closed with unauthorized {lasted:.1f} s in")


async def test_refusals_are_counted_and_tokens_never_logged(
    redis: RedisServer, issuer: Issuer, caplog: Any
) -> None:
    caplog.set_level("DEBUG")
    tokens = [issuer.token("mallory", "day"), "not-even-a-token"]
    async with node_on(redis, issuer) as node:
        for token in tokens:
            async with Peer(node.url) as peer:
                await peer.send(Hello("lila", token=token))
                await peer.until(lambda: peer.closed, "refused")
        assert metric(node, "errors_total", code="unauthorized") == 2
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused" in logged
    assert not any(token in logged for token in tokens)


# ---------------------------------------------------------------- forget
async def test_an_operator_erases_a_room_everywhere_and_no_one_else_can(
    redis: RedisServer, issuer: Issuer, figures: list[str]
) -> None:
    redis.command("FLUSHALL")
    auth = {"redis_url": redis.url, "auth_secret_file": str(issuer.secret_file)}
    async with (
        running_node(node_id="node-a", **auth) as a,
        running_node(node_id="node-b", **auth) as b,
        Recorder(RoomClient(b.url, "night", "lila", token=issuer.token("lila", "night"))) as lila,
    ):
        await wait_for(lambda: bool(lila.events()), what="lila in the room")
        await lila.client.say("a secret dream")
        await wait_for(lambda: bool(lila.items("said")), what="the line stored")
        keys_before = len(room_keys(redis, "night"))
        for token in (issuer.token("rico", "night"), issuer.token("anna", "day", "operator")):
            async with Peer(a.url) as peer:
                await peer.send(Hello(peer_name(token), token=token), Forget("night"))
                await peer.until(lambda: bool(peer.errors()), "forget refused")
                assert [(e.code, e.ref) for e in peer.errors()] == [("forbidden", "forget")]
        anna = issuer.token("anna", "*", "operator")
        await forget_room(a.url, "night", "anna", anna, timeout=20)
        await wait_for(lambda: lila.error is not None, 15, "lila told")
        told = [e for e in lila.of_type(Error) if e.code == "room_forgotten"]
        assert told and not told[0].fatal and "room_forgotten" in str(lila.error)
        assert room_keys(redis, "night") == ["{room:night}:forgotten"]
        assert await a.backend.list_rooms() == []
        removed = [metric(n, "rooms_removed_total", reason="forgotten") for n in (a, b)]
        assert sum(removed) == 1
    figures.append(
        f"keys of room night after an operator's forget: before {keys_before}, after 0 "
        "(a 60 s tombstone); refused to a dreamer and to an operator of other rooms (forbidden)"
    )


def peer_name(token: str) -> str:
    return unverified_subject(token) or "x"


def room_keys(server: RedisServer, room: str) -> list[str]:
    client = redis_client.Redis.from_url(server.url)
    try:
        return sorted(key.decode() for key in client.keys(f"{{room:{room}}}*"))
    finally:
        client.close()


async def test_sleepsync_forget_needs_an_operators_token(
    redis: RedisServer, issuer: Issuer
) -> None:
    async def forget(token: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sleepsync",
            "forget",
            "night",
            "--server",
            node.url,
            "--token",
            token,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, err.decode()

    async with node_on(redis, issuer) as node:
        async with Peer(node.url) as lila:
            await lila.send(Hello("lila", token=issuer.token("lila", "night")), Join("night"))
            await lila.until(lambda: bool(lila.of_type(Snapshot)), "lila joined")
            code, err = await forget(issuer.token("lila", "night"))
            assert (code, err.strip()) == (
                2,
                f"sleepsync: refused: {err.split(': ', 2)[2].strip()}",
            )
            assert "forbidden" in err and not lila.errors()
            code, err = await forget(issuer.token("anna", "*", "operator"))
            assert (code, err.strip()) == (0, "room night forgotten")
            await lila.until(lambda: bool(lila.of_type(Left)), "lila out of the room")
        assert [e.code for e in lila.errors()] == ["room_forgotten"]
        assert await node.backend.room_status("night") == "forgotten"
