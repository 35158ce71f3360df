"""Tick slots by a clock moved by hand: due times, lateness, catching up after a stall."""

from __future__ import annotations

import pytest

from sleepsync.server.scheduler import MAX_SLOTS, Slot, TickScheduler, room_slot, tick_slots

from nodes import ManualClock


def test_slots_per_period_follow_the_tick_rate() -> None:
    assert tick_slots(10.0) == MAX_SLOTS  # 100 ms: 16 slots of 6.25 ms
    assert tick_slots(20.0) == 10  # 50 ms: slots of at least 5 ms
    assert tick_slots(1000.0) == 1


def test_a_room_has_one_stable_slot() -> None:
    assert room_slot("lounge", 16) == room_slot("lounge", 16)
    assert 0 <= room_slot("lounge", 16) < 16
    spread = {room_slot(f"room{i}", 16) for i in range(200)}
    assert len(spread) == 16, "rooms spread over every slot"
    slot = Slot(room_slot("lounge", 16), 16, 0.0)
    assert slot.holds("lounge") and not slot.every_room
    assert Slot(0, 1, 0.0).holds("anything")


def test_slots_come_one_step_apart_in_order() -> None:
    clock = ManualClock()
    s = TickScheduler(10.0, clock)
    seen = []
    for _ in range(2 * s.slots):
        slot = s.next()
        assert slot.wait == pytest.approx(s.step)
        seen.append(slot.index)
        clock.advance(s.step)
    assert seen == [*range(1, s.slots), 0] * 2
    assert s.step * s.slots == pytest.approx(0.1)


def test_a_late_slot_is_due_at_once_in_turn() -> None:
    clock = ManualClock()
    s = TickScheduler(10.0, clock)
    clock.advance(s.step * 3.5)  # late by less than a period: no slot is skipped
    waits = [s.next().wait for _ in range(4)]
    assert waits[0] < 0 and waits[3] > 0
    assert s.next().skipped == 0


def test_after_a_stall_every_room_ticks_once_then_a_new_period_starts() -> None:
    clock = ManualClock()
    s = TickScheduler(10.0, clock)
    s.next()
    clock.advance(1.0)  # ten periods: a paused process
    slot = s.next()
    assert slot.every_room and slot.holds("any room")
    assert slot.skipped >= 9 * s.slots
    assert slot.wait < -0.1
    s.caught_up()
    nxt = s.next()
    assert (nxt.index, nxt.of) == (0, s.slots)
    assert nxt.wait == pytest.approx(s.step * s.slots), "a whole period after the catch-up"
