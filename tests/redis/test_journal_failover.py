"""Journals across a failover: two ``sleepsync serve`` processes on one real Redis.

The owner of the room is killed mid-night. The room's retained history,
exported from the survivor, replays bit-exact across both epochs; and the
segments the two nodes recorded with ``--journal-dir`` replay bit-exact and
link: the new owner's starts from a state the old one's passed through.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_multinode import node_named, owner_of

from sleepsync.client.history import fetch_history
from sleepsync.server.engine import StoryLine
from sleepsync.server.journal.files import JournalReader
from sleepsync.server.journal.replay import replay

from cluster import SLEEPSYNC, Follower, node_processes
from nodes import wait_for
from redis_server import RedisServer

ROOM = "watch"


async def test_export_and_recorded_segments_replay_across_a_failover(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    journals = tmp_path / "journals"
    flags = {"journal_dir": str(journals), "journal_hash_every": "5"}
    with node_processes(2, redis_server.url, tmp_path, **flags) as nodes:
        follower = Follower([n.url for n in nodes], ROOM, "lila")
        async with follower:
            await wait_for(lambda: follower.events(), 20, "the room to tick")
            for n in range(3):
                await follower.say(f"before {n}")
            await wait_for(lambda: len(follower.said()) == 3, 20, "the lines before")
            owner = node_named(nodes, owner_of(redis_server, ROOM))
            survivor = next(n for n in nodes if n is not owner)
            owner.kill()
            await wait_for(
                lambda: owner_of(redis_server, ROOM) == survivor.name, 20, "the failover"
            )
            await wait_for(lambda: follower.client.conn is not None, 20, "the reconnect")
            said = len(follower.said())
            for n in range(3):
                await follower.say(f"after {n}")
            await wait_for(lambda: len(follower.said()) >= said + 3, 30, "the lines after")
            data = await fetch_history(survivor.url, ROOM)

    # the retained history, from the survivor: one night, both epochs
    reader = JournalReader(data)
    assert reader.header.start_tick == 0
    lines = [i.text for t in reader.ticks() for i in t.inputs if isinstance(i, StoryLine)]
    assert lines[:3] == ["before 0", "before 1", "before 2"]
    assert lines[-3:] == ["after 0", "after 1", "after 2"]
    result = replay(JournalReader(data))
    assert result.exact and result.ticks > 0

    # what the two nodes recorded: a cut segment, and a linked one after it
    files = sorted((journals / ROOM).glob("*.ssj.gz"))
    by_node = {JournalReader(p).header.segment.node: p for p in files}
    assert set(by_node) == {owner.name, survivor.name}, files
    new = JournalReader(by_node[survivor.name]).header
    assert new.segment.previous == by_node[owner.name].name
    proc = await asyncio.create_subprocess_exec(
        SLEEPSYNC, "replay", str(by_node[owner.name]), str(by_node[survivor.name]),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert text.count("bit-exact") == 2 and "linked" in text, text
