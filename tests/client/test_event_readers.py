"""Clients read event items as types: rendering, echo tracking, load reflection.

A newer server's unknown kinds and a buggy server's malformed items are
shown generically and never crash a client.
"""

from __future__ import annotations

import io
import json
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from sleepsync.client.loadstats import Schedule
from sleepsync.client.loadworker import LoadPlan, Worker, _Observer
from sleepsync.client.render import JsonRenderer
from sleepsync.client.roomview import RoomView
from sleepsync.client.sentences import describe
from sleepsync.client.terminal import TerminalOptions, _Terminal
from sleepsync.protocol.events import (
    Mood,
    MoodRow,
    Said,
)
from sleepsync.protocol.messages import Event
from sleepsync.protocol.wire import WireMap

MALFORMED: WireMap = {"kind": "glitch_started", "id": "one", "origin": "rico"}
NEWER: WireMap = {"kind": "aurora", "glow": 0.9}


def event(*items: WireMap, seq: int = 3) -> Event:
    return Event("r1", 1, seq, 30, list(items), 1700000000.5)


def with_kind(m: WireMap) -> WireMap:
    """Every item on the wire has a string kind (``Event`` checks it)."""
    kind = m.get("kind")
    return {**m, "kind": kind if isinstance(kind, str) else "mood"}


def mood(balance: float, phase: str = "stable", *rows: MoodRow) -> WireMap:
    return Mood(balance, phase, rows).to_wire()


class TestJsonRenderer:
    def test_one_line_per_item_with_the_event_fields(self) -> None:
        lines = JsonRenderer().render(
            event(
                Said("lila", "hi").to_wire(), mood(0.5, "stable", MoodRow("lila", 0.5, 0.4, 0.0, 7))
            )
        )
        base = {"room": "r1", "epoch": 1, "seq": 3, "tick": 30, "ts": 1700000000.5}
        assert [json.loads(line) for line in lines] == [
            {"type": "said", **base, "name": "lila", "text": "hi"},
            {
                "type": "mood",
                **base,
                "balance": 0.5,
                "phase": "stable",
                "dreamers": [["lila", 0.5, 0.4, 0.0, 7]],
            },
        ]

    def test_unknown_and_malformed_items_pass_through_as_they_came(self) -> None:
        lines = JsonRenderer().render(event(NEWER, MALFORMED))
        assert [json.loads(line) for line in lines] == [
            {"type": "aurora", "room": "r1", "epoch": 1, "seq": 3, "tick": 30,
             "ts": 1700000000.5, "glow": 0.9},
            {"type": "glitch_started", "room": "r1", "epoch": 1, "seq": 3, "tick": 30,
             "ts": 1700000000.5, "id": "one", "origin": "rico"},
        ]  # fmt: skip

    @settings(max_examples=100)
    @given(
        st.lists(
            st.dictionaries(
                st.sampled_from(["kind", "name", "text", "balance", "dreamers", "id", "role"]),
                st.none() | st.booleans() | st.integers() | st.text(max_size=5)
                | st.lists(st.lists(st.integers() | st.text(max_size=3), max_size=5), max_size=3),
            ).map(with_kind),
            max_size=5,
        )
    )  # fmt: skip
    def test_no_item_crashes_a_renderer(self, items: list[WireMap]) -> None:
        msg = event(*items)
        assert len(JsonRenderer().render(msg)) == len(items)
        view = RoomView("r1")
        for item in view.apply(msg):
            describe(item, view)


class TestEchoes:
    def test_own_said_items_are_counted_off(self) -> None:
        terminal = _Terminal(TerminalOptions("ws://127.0.0.1:1", "r1", "lila"), io.StringIO())
        terminal.unechoed.update(["once", "once", "twice"])
        terminal._echoed(
            event(
                Said("lila", "once").to_wire(),
                Said("rico", "twice").to_wire(),
                {"kind": "said", "name": "lila"},  # malformed: skipped
                Said("lila", "twice").to_wire(),
                Said("lila", "never sent").to_wire(),
            )
        )
        assert dict(terminal.unechoed) == {"once": 1}
        assert not terminal.done.is_set()
        terminal.eof.set()
        terminal._echoed(event(Said("lila", "once").to_wire()))
        assert not terminal.unechoed and terminal.done.is_set()


class TestLoadReflection:
    def test_mood_rows_reflect_samples_of_known_pods(self) -> None:
        schedule = Schedule(start=time.time() - 10.0, rate=10.0, pods=2)
        plan = LoadPlan(
            servers=("ws://127.0.0.1:1",),
            mqtt="mqtt://127.0.0.1:1",
            rooms=("r1",),
            pods=(("p0", "p1"),),
            pod_indexes=((0, 1),),
            observers_per_room=1,
            schedule=schedule,
        )
        worker = Worker(plan)
        room = worker.rooms[0]
        observer = _Observer(worker, room, plan.servers[0], "watcher")
        rows = (
            MoodRow("p0", 0.5, 0.5, 0.0, 2),
            MoodRow("p1", 0.5, 0.5, 0.0, None),  # no sample applied yet
            MoodRow("lila", 0.5, 0.5, 0.0, 9),  # not a pod of this run
        )
        observer._frame(event(mood(0.5, "stable", *rows), MALFORMED, NEWER))
        assert room.reflected == {"p0": {0, 1, 2}}
        assert worker.totals.deliveries == 3 and worker.totals.frames == 1
        bad_row: WireMap = {"kind": "mood", "balance": 0.5, "phase": "stable",
                            "dreamers": [["p1", 0.5, 0.5, 0.0, "4"]]}  # fmt: skip
        observer._frame(event(bad_row, mood(0.5, "stable", MoodRow("p1", 0.5, 0.5, 0.0, 1))))
        assert room.reflected == {"p0": {0, 1, 2}, "p1": {0, 1}}
        assert worker.totals.deliveries == 5
