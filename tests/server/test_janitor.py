"""The janitor's rules without a backend: dead nodes' members leave, empty rooms go."""

from __future__ import annotations

from sleepsync.server.backend.base import Member
from sleepsync.server.inputs import MemberJoin, MemberLeave, StoryInput
from sleepsync.server.janitor import Janitor
from sleepsync.server.room_state import RoomState


def room_with(*members: tuple[str, str]) -> RoomState:
    state = RoomState("r")
    state.apply([MemberJoin(s, f"name-{s}", "dreamer", node) for s, node in members])
    return state


def presence(*members: tuple[str, str]) -> list[Member]:
    return [Member(s, f"name-{s}", "dreamer", node) for s, node in members]


def test_members_of_dead_nodes_leave_from_state_and_presence() -> None:
    state = room_with(("s1", "a"), ("s2", "b"), ("s3", "b"))
    sweep = Janitor(30).sweep(
        0.0, {"a"}, {"r": state}, {"r": presence(("s1", "a"), ("s2", "b"), ("s9", "c"))}, {}
    )
    assert sweep.leaves == {"r": [MemberLeave("s2"), MemberLeave("s3")]}
    assert sweep.gone == {"r": ["s2", "s9"]}
    assert sweep.dead == {"r": ["b", "c"]}
    assert sweep.idle == []


def test_a_lost_leave_is_found_again_in_the_state() -> None:
    """The presence entry is gone already (an earlier round), the member is not."""
    state = room_with(("s2", "b"))
    sweep = Janitor(30).sweep(0.0, {"a"}, {"r": state}, {"r": []}, {})
    assert sweep.leaves == {"r": [MemberLeave("s2")]} and sweep.gone == {}


def test_an_empty_room_goes_after_the_idle_time() -> None:
    janitor = Janitor(5)
    empty = RoomState("r")
    assert janitor.sweep(0.0, {"a"}, {"r": empty}, {}, {}).idle == []
    assert janitor.sweep(4.9, {"a"}, {"r": empty}, {}, {}).idle == []
    assert janitor.sweep(5.0, {"a"}, {"r": empty}, {}, {}).idle == ["r"]


def test_anything_in_the_room_resets_the_idle_time() -> None:
    janitor = Janitor(5)
    empty = RoomState("r")
    janitor.sweep(0.0, {"a"}, {"r": empty}, {}, {})
    assert janitor.sweep(6.0, {"a"}, {"r": empty}, {"r": presence(("s1", "a"))}, {}).idle == []
    assert janitor.sweep(7.0, {"a"}, {"r": empty}, {}, {}).idle == [], "counted from 7 now"
    assert janitor.sweep(8.0, {"a"}, {"r": empty}, {}, {"r": 1}).idle == [], "a leave pending"
    busy = room_with(("s1", "a"))
    assert janitor.sweep(20.0, {"a"}, {"r": busy}, {}, {}).idle == []
    janitor.sweep(21.0, {"a"}, {"r": empty}, {}, {})
    janitor.forget("r")
    assert janitor.sweep(25.0, {"a"}, {"r": empty}, {}, {}).idle == [], "forgotten: from 25"
    assert janitor.sweep(30.0, {"a"}, {"r": empty}, {}, {}).idle == ["r"]


def test_a_room_never_used_goes_after_the_unused_time() -> None:
    janitor = Janitor(30, 5)
    joined_only = room_with(("s1", "a"))
    joined_only.apply([MemberLeave("s1")])
    assert not joined_only.used
    janitor.sweep(0.0, {"a"}, {"r": joined_only}, {}, {})
    sweep = janitor.sweep(5.0, {"a"}, {"r": joined_only}, {}, {})
    assert (sweep.unused, sweep.idle) == (["r"], [])


def test_a_used_room_keeps_the_idle_time() -> None:
    janitor = Janitor(30, 5)
    told = room_with(("s1", "a"))
    told.apply([StoryInput("s1", "name-s1", "once"), MemberLeave("s1")])
    assert told.used
    janitor.sweep(0.0, {"a"}, {"r": told}, {}, {})
    assert janitor.sweep(29.0, {"a"}, {"r": told}, {}, {}).unused == []
    assert janitor.sweep(30.0, {"a"}, {"r": told}, {}, {}).idle == ["r"]


def test_a_room_never_used_is_removed_not_retired_whichever_time_is_shorter() -> None:
    janitor = Janitor(10, 60)
    joined_only = room_with(("s1", "a"))
    joined_only.apply([MemberLeave("s1")])
    janitor.sweep(0.0, {"a"}, {"r": joined_only}, {}, {})
    sweep = janitor.sweep(10.0, {"a"}, {"r": joined_only}, {}, {})
    assert (sweep.unused, sweep.idle) == (["r"], [])
