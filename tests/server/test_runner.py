"""The room runner without sockets or an event loop: ticks, stored events, replay."""

from __future__ import annotations

import pytest

from sleepsync.protocol.codec import decode
from sleepsync.protocol.messages import Event, Snapshot
from sleepsync.protocol.wire import Limits
from sleepsync.server.backend.base import StoredEvent
from sleepsync.server.config import Settings
from sleepsync.server.dream import engine_hooks
from sleepsync.server.inputs import MemberJoin, MemberLeave, StoryInput, TemplateInput
from sleepsync.server.room_state import EngineHooks
from sleepsync.server.runner import ReplayError, RoomRunner, TickResult

LIMITS = Limits(max_frame=1 << 22, max_str=1 << 20, max_array=1 << 16)
HOOKS = engine_hooks(Settings(tick_hz=10.0))


def runner(epoch: int = 7, hooks: EngineHooks | None = None) -> RoomRunner:
    return RoomRunner.open("r", None, epoch=epoch, hooks=hooks, story_tail=5, capacity=10)


def join(session: str, name: str) -> MemberJoin:
    return MemberJoin(session, name, "dreamer", "node-a")


def event(result: TickResult) -> Event:
    assert result.stored is not None
    msg = decode(result.stored.frame, LIMITS)
    assert isinstance(msg, Event)
    return msg


def kinds(result: TickResult) -> list[object]:
    return [item["kind"] for item in event(result).items if item["kind"] != "mood"]


class TestTick:
    def test_an_event_carries_the_owner_epoch_and_the_next_seq(self) -> None:
        r = runner(epoch=7)
        first = r.tick([join("s1", "lila")], [], 123.5)
        assert first.stored is not None
        assert (first.stored.epoch, first.stored.seq, first.stored.tick) == (7, 1, 1)
        msg = event(first)
        assert (msg.room, msg.epoch, msg.seq, msg.ts) == ("r", 7, 1, 123.5)
        assert kinds(first) == ["joined"]
        second = r.tick([StoryInput("s1", "lila", "once")], [], 124.0)
        assert second.stored is not None and second.stored.seq == 2
        assert event(second).items == [{"kind": "said", "name": "lila", "text": "once"}]

    def test_a_quiet_tick_stores_nothing(self) -> None:
        r = runner()
        assert r.tick([], [], 0.0) == TickResult()
        assert r.state.tick == 1 and r.state.seq == 0

    def test_inputs_without_a_visible_item_still_store_an_event(self) -> None:
        """A second terminal of the same dreamer changes membership but shows nothing:
        the event is stored anyway, so a new owner replays that membership."""
        r = runner()
        r.tick([join("s1", "lila")], [], 0.0)
        quiet = r.tick([join("s2", "lila")], [], 0.0)
        assert quiet.stored is not None and event(quiet).items == []
        assert r.state.session_count == 2

    def test_lines_and_templates_from_unknown_sessions_are_refused_not_dropped(self) -> None:
        r = runner(hooks=HOOKS)
        r.tick([join("s1", "lila")], [], 0.0)
        out = r.tick(
            [
                StoryInput("ghost", "casper", "boo"),
                TemplateInput("casper", "json", "{}", "ghost"),
                MemberLeave("s1"),
                StoryInput("s1", "lila", "too late"),
            ],
            [],
            0.0,
        )
        refused = [i for i in event(out).items if i["kind"] == "input_refused"]
        assert [(i["session"], i["input"]) for i in refused] == [
            ("ghost", "say"),
            ("ghost", "template"),
            ("s1", "say"),
        ]
        assert all(isinstance(i["reason"], str) and i["reason"] for i in refused)
        assert not [i for i in event(out).items if i["kind"] == "said"]

    def test_template_rejections_are_items(self) -> None:
        r = runner(hooks=None)
        r.tick([join("s1", "lila")], [], 0.0)
        out = r.tick([TemplateInput("lila", "json", "{}", "s1")], [], 0.0)
        [item] = event(out).items
        assert item["kind"] == "template_rejected" and item["name"] == "lila"
        assert out.stored is not None and out.stored.seq == 2

    def test_a_broken_template_is_rejected_at_run_time(self) -> None:
        r = runner(hooks=HOOKS)
        r.tick([join("s1", "lila")], [], 0.0)
        out = r.tick([TemplateInput("lila", "json", "not json", "s1")], [], 0.0)
        assert "template_rejected" in kinds(out)


class TestSnapshot:
    def test_a_new_room_snapshot_carries_the_owner_epoch(self) -> None:
        snap = runner(epoch=42).snapshot()
        assert (snap.epoch, snap.seq) == (42, 0)
        view = decode(snap.view, LIMITS)
        assert isinstance(view, Snapshot) and (view.epoch, view.seq) == (42, 0)

    def test_the_snapshot_epoch_is_the_newest_event_writer(self) -> None:
        old = runner(epoch=3)
        old.tick([join("s1", "lila")], [], 0.0)
        snap = old.snapshot()
        new = RoomRunner.open("r", snap, epoch=4, hooks=None, story_tail=5, capacity=10)
        assert new.snapshot().epoch == 3, "no event of epoch 4 yet"
        new.tick([StoryInput("s1", "lila", "hi")], [], 0.0)
        assert new.snapshot().epoch == 4


class TestReplay:
    def run_ticks(self, r: RoomRunner, ticks: int) -> list[StoredEvent]:
        stored = []
        for n in range(ticks):
            inputs = [join(f"s{n}", f"d{n}")] if n % 5 == 0 else []
            if n % 7 == 3:
                inputs.append(StoryInput("s0", "d0", f"line {n}"))
            result = r.tick(inputs, [], float(n))
            if result.stored is not None:
                stored.append(result.stored)
        return stored

    def test_snapshot_plus_tail_continues_exactly(self) -> None:
        original = runner(epoch=1, hooks=HOOKS)
        head = self.run_ticks(original, 12)
        snap = original.snapshot()
        tail = self.run_ticks(original, 25)
        assert head and tail
        copy = RoomRunner.open("r", snap, epoch=2, hooks=HOOKS, story_tail=5, capacity=10)
        for stored in tail:
            copy.replay(stored)
        assert copy.state.snapshot() == original.state.snapshot()
        assert copy.last_epoch == 1
        # Both go on identically.
        a = original.tick([StoryInput("s0", "d0", "after")], [], 99.0)
        b = copy.tick([StoryInput("s0", "d0", "after")], [], 99.0)
        assert a.stored is not None and b.stored is not None
        assert event(a).items == event(b).items and a.stored.seq == b.stored.seq

    def test_replay_from_nothing_rebuilds_the_room(self) -> None:
        original = runner(hooks=HOOKS)
        history = self.run_ticks(original, 20)
        copy = runner(hooks=HOOKS)
        for stored in history:
            copy.replay(stored)
        assert copy.state.snapshot() == original.state.snapshot()

    def test_a_template_is_stored_once_by_digest_and_replayed_with_its_text(self) -> None:
        text = (
            'title = "Tide"\nentry = "a"\nsafe = "a"\n'
            '[[scenes]]\nid = "a"\ntext = "A long shore."\nmood = {valence = 0.6, arousal = 0.3}\n'
        )
        original = runner(hooks=HOOKS)
        history = [original.tick([join("s1", "lila")], [], 0.0)]
        upload = TemplateInput("lila", "toml", text, "s1")
        history.append(original.tick([upload, upload], [], 1.0))
        assert "narrative" in kinds(history[-1])
        stored = [r.stored for r in history if r.stored is not None]
        assert text.encode() not in stored[-1].inputs
        assert list(history[-1].templates.values()) == [text.encode()]
        assert history[0].templates == {}
        copy = runner(hooks=HOOKS)
        copy.replay(stored[0])
        with pytest.raises(ReplayError, match="event 2 of r: template"):
            copy.replay(stored[1], {})
        copy = runner(hooks=HOOKS)
        for s in stored:
            copy.replay(s, history[-1].templates)
        assert copy.state.snapshot() == original.state.snapshot()

    def test_a_hole_in_the_history_is_refused(self) -> None:
        original = runner()
        history = self.run_ticks(original, 12)
        copy = runner()
        copy.replay(history[0])
        with pytest.raises(ReplayError, match="jumps from 1 to 3"):
            copy.replay(history[2])

    def test_an_unreadable_record_is_refused(self) -> None:
        with pytest.raises(ReplayError, match="event 1"):
            runner().replay(StoredEvent(1, 1, 1, b"", b"\xc1garbage"))
