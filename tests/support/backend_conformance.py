"""The backend conformance suite: every Backend implementation must pass it.

Subclass :class:`BackendConformance` in a test module and provide a
``make_backend`` fixture: an async factory ``make_backend(retention=...)``
returning a started backend with an empty store. The suite only uses the
``Backend`` protocol, so it runs unchanged against memory and Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from sleepsync.server.backend.base import (
    Backend,
    Commit,
    Fenced,
    InboxFull,
    Member,
    RoomMissing,
    RoomSnapshot,
    StoredEvent,
)

MakeBackend = Callable[..., Awaitable[Backend]]


def ev(epoch: int, seq: int, tick: int | None = None) -> StoredEvent:
    return StoredEvent(epoch, seq, tick if tick is not None else seq, f"f{seq}".encode(), b"in")


class BackendConformance:
    """Behaviour every backend shares. Test names say the rule they check."""

    # ------------------------------------------------------------ registry
    async def test_create_room_respects_max_rooms(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        assert await b.create_room("a", 2)
        assert await b.create_room("b", 2)
        assert not await b.create_room("c", 2)
        assert await b.create_room("a", 2), "an existing room is not a new one"
        assert await b.list_rooms() == ["a", "b"]

    async def test_only_an_empty_room_at_the_current_epoch_retires(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend()
        await b.create_room("a", 10)
        lease = await b.acquire_lease("a", "n1", 5000)
        assert lease is not None
        assert not await b.retire_room("a", lease.epoch + 1, 0)
        await b.join_presence("a", Member("s1", "lila", "dreamer", "n1"), 5)
        assert not await b.retire_room("a", lease.epoch, 0), "someone is in the room"
        await b.leave_presence("a", "s1")
        await b.push_input("a", b"join")
        assert not await b.retire_room("a", lease.epoch, 0), "an input waits for the room"
        (entry,) = (await b.read_inputs(["a"], 10))["a"]
        assert await b.append_many({"a": Commit(lease.epoch, (), entry.id)}) == {"a": True}
        assert await b.retire_room("a", lease.epoch, 0), "0: removed at once"
        assert await b.list_rooms() == []

    async def test_room_status_tells_registered_from_missing(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend()
        assert await b.room_status("a") == "missing"
        await b.create_room("a", 10)
        assert await b.room_status("a") == "exists"

    async def test_forget_room_erases_a_busy_room_and_leaves_a_tombstone(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend()
        await b.create_room("a", 10)
        lease = await b.acquire_lease("a", "n1", 5000)
        assert lease is not None
        await b.append_many({"a": Commit(lease.epoch, [ev(lease.epoch, 1)])})
        await b.save_snapshot("a", RoomSnapshot(lease.epoch, 1, b"s", b"v"), lease.epoch)
        await b.join_presence("a", Member("s1", "lila", "dreamer", "n1"), 5)
        await b.push_input("a", b"say")
        assert not await b.forget_room("a", lease.epoch + 1, 60_000), "fenced"
        assert await b.room_status("a") == "exists"
        assert await b.forget_room("a", lease.epoch, 60_000)
        assert await b.room_status("a") == "forgotten"
        assert await b.list_rooms() == []
        assert await b.read_events("a", 0, 10) == []
        assert await b.load_snapshot("a") is None
        assert await b.presence("a") == []
        assert await b.read_inputs(["a"], 10) == {}
        assert await b.owner("a") is None
        assert not await b.forget_room("a", lease.epoch, 60_000), "nothing left to erase"
        await b.create_room("a", 10)
        assert await b.room_status("a") == "exists", "a room made again is a new room"
        assert await b.read_events("a", 0, 10) == []

    async def test_a_tombstone_expires(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("a", 10)
        lease = await b.acquire_lease("a", "n1", 5000)
        assert lease is not None
        assert await b.forget_room("a", lease.epoch, 50)
        await asyncio.sleep(0.2)
        assert await b.room_status("a") == "missing"
        assert await b.load_snapshot("a") is None
        assert await b.owner("a") is None

    async def test_forget_room_erases_a_retired_room_and_its_templates(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend()
        await b.create_room("a", 10)
        lease = await b.acquire_lease("a", "n1", 5000)
        assert lease is not None
        commit = Commit(lease.epoch, [ev(lease.epoch, 1)], templates={"d1": b"t"})
        assert await b.append_many({"a": commit}) == {"a": True}
        assert not await b.forget_room("a", None, 60_000), "a live room is its owner's to erase"
        assert await b.read_templates("a") == {"d1": b"t"}
        assert await b.retire_room("a", lease.epoch, 60_000)
        assert await b.room_status("a") == "retired"
        assert await b.forget_room("a", None, 60_000)
        assert await b.room_status("a") == "forgotten"
        assert await b.read_events("a", 0, 10) == []
        assert await b.read_templates("a") == {}
        assert await b.load_snapshot("a") is None
        assert not await b.forget_room("a", None, 60_000), "nothing left to erase"
        assert await b.create_room("a", 10)
        assert await b.read_events("a", 0, 10) == [], "not revived: a new room"

    async def test_a_fenced_forget_also_erases_a_retired_room(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend(max_retained=1)
        await b.create_room("a", 10)
        lease = await b.acquire_lease("a", "n1", 5000)
        assert lease is not None
        await b.append_events("a", lease.epoch, [ev(lease.epoch, 1)])
        assert await b.retire_room("a", lease.epoch, 120_000)
        assert await b.forget_room("a", lease.epoch, 60_000)
        assert await b.read_events("a", 0, 10) == []
        # It left the retired rooms: another one, closer to expiring, takes the one place.
        await b.create_room("b", 10)
        other = await b.acquire_lease("b", "n1", 5000)
        assert other is not None
        await b.append_events("b", other.epoch, [ev(other.epoch, 1)])
        assert await b.retire_room("b", other.epoch, 60_000)
        assert [e.seq for e in await b.read_events("b", 0, 10)] == [1]

    async def test_a_retired_room_is_kept_then_expires(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("a", 10)
        lease = await b.acquire_lease("a", "n1", 5000)
        assert lease is not None
        await b.append_events("a", lease.epoch, [ev(lease.epoch, 1)])
        snap = RoomSnapshot(lease.epoch, 1, b"s", b"v")
        await b.save_snapshot("a", snap, lease.epoch)
        assert await b.retire_room("a", lease.epoch, 400)
        # Off the registry, no owner, no lease, no input; its state is still there.
        assert await b.list_rooms() == [] and await b.owner("a") is None
        assert await b.room_status("a") == "retired"
        assert await b.acquire_lease("a", "n2", 5000) is None
        with pytest.raises(RoomMissing):
            await b.push_input("a", b"x")
        assert await b.load_snapshot("a") == snap
        assert [e.seq for e in await b.read_events("a", 0, 10)] == [1]
        await asyncio.sleep(0.5)
        assert await b.load_snapshot("a") is None
        assert await b.read_events("a", 0, 10) == []
        assert await b.acquire_lease("a", "n2", 5000) is None
        assert await b.room_status("a") == "missing"

    async def test_a_retired_room_created_again_comes_back_as_it_was(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend()
        await b.create_room("a", 10)
        lease = await b.acquire_lease("a", "n1", 5000)
        assert lease is not None
        await b.append_events("a", lease.epoch, [ev(lease.epoch, 1)])
        assert await b.retire_room("a", lease.epoch, 300)
        assert await b.create_room("a", 10)
        assert await b.list_rooms() == ["a"]
        assert await b.room_status("a") == "exists"
        await asyncio.sleep(0.4)  # past the retention: it is kept for good again
        again = await b.acquire_lease("a", "n2", 5000)
        assert again is not None and again.epoch == lease.epoch + 1
        assert [e.seq for e in await b.read_events("a", 0, 10)] == [1]
        await b.push_input("a", b"x")

    async def test_retired_rooms_do_not_count_as_rooms_and_the_oldest_go_first(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend(max_retained=2)
        for n, room in enumerate(("a", "b", "c")):
            assert await b.create_room(room, 1), "a retired room leaves its place"
            lease = await b.acquire_lease(room, "n1", 5000)
            assert lease is not None
            await b.append_events(room, lease.epoch, [ev(lease.epoch, 1)])
            assert await b.retire_room(room, lease.epoch, 60_000 + n * 1000)
        # At most two retired rooms are kept: the one closest to expiring went.
        assert await b.read_events("a", 0, 10) == []
        assert [len(await b.read_events(r, 0, 10)) for r in ("b", "c")] == [1, 1]

    async def test_keep_registered_puts_a_live_room_back(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("a", 10)
        await b.keep_registered(["a"])
        await b.keep_registered([])
        assert await b.list_rooms() == ["a"]

    # ------------------------------------------------------------ leases
    async def test_lease_is_exclusive_and_epochs_increase(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        first = await b.acquire_lease("r", "n1", 5000)
        assert first is not None and first.node == "n1"
        assert await b.acquire_lease("r", "n2", 5000) is None
        owner = await b.owner("r")
        assert owner == first
        await b.release_lease(first)
        assert await b.owner("r") is None
        second = await b.acquire_lease("r", "n2", 5000)
        assert second is not None and second.epoch == first.epoch + 1

    async def test_lease_expires_and_renewal_extends(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        lease = await b.acquire_lease("r", "n1", 300)
        assert lease is not None
        await asyncio.sleep(0.2)
        assert await b.renew_leases([lease], 300) == [True]
        await asyncio.sleep(0.2)
        assert await b.owner("r") == lease, "renewal kept the lease alive"
        await asyncio.sleep(0.25)
        assert await b.owner("r") is None
        taken = await b.acquire_lease("r", "n2", 5000)
        assert taken is not None and taken.epoch == lease.epoch + 1
        assert await b.renew_leases([lease], 300) == [False], "a stale lease cannot renew"

    async def test_release_of_stale_lease_does_nothing(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        old = await b.acquire_lease("r", "n1", 5000)
        assert old is not None
        await b.release_lease(old)
        new = await b.acquire_lease("r", "n2", 5000)
        await b.release_lease(old)
        assert await b.owner("r") == new

    # ------------------------------------------------------------ events and fencing
    async def test_append_and_read_in_order(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        lease = await b.acquire_lease("r", "n1", 5000)
        assert lease is not None
        await b.append_events("r", lease.epoch, [ev(lease.epoch, s) for s in range(1, 6)])
        got = await b.read_events("r", 0, 100)
        assert [e.seq for e in got] == [1, 2, 3, 4, 5]
        assert got[0] == ev(lease.epoch, 1), "frame, tick and inputs come back unchanged"
        assert [e.seq for e in await b.read_events("r", 2, 2)] == [3, 4]
        assert await b.read_events("r", 5, 10) == []
        assert await b.first_seq("r") == 1
        assert await b.last_position("r") == (lease.epoch, 5)

    async def test_empty_stream_positions(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        assert await b.first_seq("r") is None
        assert await b.last_position("r") == (0, 0)
        assert await b.read_events("r", 0, 10) == []

    async def test_stale_epoch_append_is_fenced(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        old = await b.acquire_lease("r", "n1", 5000)
        assert old is not None
        await b.release_lease(old)
        new = await b.acquire_lease("r", "n2", 5000)
        assert new is not None
        with pytest.raises(Fenced):
            await b.append_events("r", old.epoch, [ev(old.epoch, 1)])
        result = await b.append_many({"r": Commit(old.epoch, [ev(old.epoch, 1)])})
        assert result == {"r": False}
        assert await b.read_events("r", 0, 10) == [], "nothing of the stale owner was written"
        assert await b.append_many({"r": Commit(new.epoch, [ev(new.epoch, 1)])}) == {"r": True}
        assert [e.seq for e in await b.read_events("r", 0, 10)] == [1]

    async def test_append_many_covers_several_rooms(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        epochs = {}
        for room in ("a", "b"):
            await b.create_room(room, 10)
            lease = await b.acquire_lease(room, "n1", 5000)
            assert lease is not None
            epochs[room] = lease.epoch
        result = await b.append_many(
            {room: Commit(epoch, [ev(epoch, 1), ev(epoch, 2)]) for room, epoch in epochs.items()}
        )
        assert result == {"a": True, "b": True}
        for room in ("a", "b"):
            assert [e.seq for e in await b.read_events(room, 0, 10)] == [1, 2]

    async def test_retention_trims_oldest(self, make_backend: MakeBackend) -> None:
        b = await make_backend(retention=20)
        await b.create_room("r", 10)
        lease = await b.acquire_lease("r", "n1", 5000)
        assert lease is not None
        for start in range(1, 201, 10):
            await b.append_events(
                "r", lease.epoch, [ev(lease.epoch, s) for s in range(start, start + 10)]
            )
        first = await b.first_seq("r")
        assert first is not None and 150 <= first <= 181, first
        kept = await b.read_events("r", 0, 1000)
        assert kept[-1].seq == 200
        assert [e.seq for e in kept] == list(range(kept[0].seq, 201)), "no holes"

    async def test_wait_events_returns_pending_at_once(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        lease = await b.acquire_lease("r", "n1", 5000)
        assert lease is not None
        await b.append_events("r", lease.epoch, [ev(lease.epoch, 1)])
        found = await b.wait_events({"r": 0}, 5.0, 10)
        assert [e.seq for e in found["r"]] == [1]

    async def test_wait_events_wakes_on_append(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        for room in ("r", "s"):
            await b.create_room(room, 10)
        lease = await b.acquire_lease("s", "n1", 5000)
        assert lease is not None
        waiter = asyncio.create_task(b.wait_events({"r": 0, "s": 0}, 5.0, 10))
        await asyncio.sleep(0.1)
        assert not waiter.done()
        await b.append_events("s", lease.epoch, [ev(lease.epoch, 1)])
        found = await asyncio.wait_for(waiter, 3.0)
        assert list(found) == ["s"]

    async def test_wait_events_times_out_empty(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        assert await b.wait_events({"r": 0}, 0.2, 10) == {}

    # ------------------------------------------------------------ snapshots
    async def test_snapshot_round_trip_and_fencing(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        lease = await b.acquire_lease("r", "n1", 5000)
        assert lease is not None
        assert await b.load_snapshot("r") is None
        snap = RoomSnapshot(lease.epoch, 7, b"state\x00\xff", b"view")
        await b.save_snapshot("r", snap, lease.epoch)
        assert await b.load_snapshot("r") == snap
        with pytest.raises(Fenced):
            await b.save_snapshot("r", RoomSnapshot(1, 8, b"x", b"y"), lease.epoch + 1)
        assert await b.load_snapshot("r") == snap

    # ------------------------------------------------------------ templates
    async def test_templates_are_stored_once_with_their_events_until_a_snapshot(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        lease = await b.acquire_lease("r", "n1", 5000)
        assert lease is not None
        text = b"title = 'T'" + b" " * 2000
        for seq in (1, 2):
            commit = Commit(lease.epoch, [ev(lease.epoch, seq)], templates={"d1": text})
            assert await b.append_many({"r": commit}) == {"r": True}
        await b.append_many(
            {"r": Commit(lease.epoch, [ev(lease.epoch, 3)], templates={"d2": b"x"})}
        )
        assert await b.read_templates("r") == {"d1": text, "d2": b"x"}
        assert await b.read_templates("other") == {}
        # A snapshot covers the events so far: the store forgets their templates.
        await b.save_snapshot("r", RoomSnapshot(lease.epoch, 3, b"s", b"v"), lease.epoch)
        assert await b.read_templates("r") == {}
        await b.append_many(
            {"r": Commit(lease.epoch, [ev(lease.epoch, 4)], templates={"d3": b"y"})}
        )
        await b.save_snapshots({"r": (RoomSnapshot(lease.epoch, 4, b"s", b"v"), lease.epoch)})
        assert await b.read_templates("r") == {}

    async def test_a_fenced_commit_stores_no_template_and_a_fenced_snapshot_forgets_none(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        lease = await b.acquire_lease("r", "n1", 5000)
        assert lease is not None
        await b.append_many(
            {"r": Commit(lease.epoch, [ev(lease.epoch, 1)], templates={"d1": b"a"})}
        )
        stale = Commit(lease.epoch - 1, [ev(lease.epoch - 1, 2)], templates={"d2": b"b"})
        assert await b.append_many({"r": stale}) == {"r": False}
        snap = RoomSnapshot(1, 2, b"s", b"v")
        assert await b.save_snapshots({"r": (snap, lease.epoch + 1)}) == {"r": False}
        assert await b.read_templates("r") == {"d1": b"a"}

    # ------------------------------------------------------------ inbox
    async def test_inbox_is_fifo_per_room_and_reading_removes_nothing(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend()
        for room in ("a", "b"):
            await b.create_room(room, 10)
        for i in range(5):
            await b.push_input("a", f"a{i}".encode())
        await b.push_input("b", b"b0")
        got = await b.read_inputs(["a", "b"], 3)
        assert {r: [e.data for e in got[r]] for r in got} == {
            "a": [b"a0", b"a1", b"a2"],
            "b": [b"b0"],
        }
        again = await b.read_inputs(["a", "b", "c"], 10)
        assert [e.data for e in again["a"]] == [b"a0", b"a1", b"a2", b"a3", b"a4"]
        assert again["a"][:3] == got["a"], "the same entries, with the same ids"
        assert "c" not in again and await b.read_inputs([], 10) == {}

    async def test_commit_consumes_inputs_through_the_given_entry_once(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        lease = await b.acquire_lease("r", "n1", 5000)
        assert lease is not None
        for i in range(4):
            await b.push_input("r", f"x{i}".encode())
        read = (await b.read_inputs(["r"], 2))["r"]
        await b.push_input("r", b"x4")
        ok = await b.append_many({"r": Commit(lease.epoch, [ev(lease.epoch, 1)], read[-1].id)})
        assert ok == {"r": True}
        left = (await b.read_inputs(["r"], 10))["r"]
        assert [e.data for e in left] == [b"x2", b"x3", b"x4"], "consumed exactly once"
        # A tick that stored no event still commits what it consumed.
        ok = await b.append_many({"r": Commit(lease.epoch, (), left[1].id)})
        assert ok == {"r": True}
        assert [e.data for e in (await b.read_inputs(["r"], 10))["r"]] == [b"x4"]
        assert [e.seq for e in await b.read_events("r", 0, 10)] == [1]

    async def test_stale_commit_leaves_the_inbox_to_the_new_owner(
        self, make_backend: MakeBackend
    ) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        old = await b.acquire_lease("r", "n1", 5000)
        assert old is not None
        await b.push_input("r", b"line")
        await b.push_input("r", b"join")
        read = (await b.read_inputs(["r"], 10))["r"]
        await b.release_lease(old)  # (or it expired while the old owner was paused)
        new = await b.acquire_lease("r", "n2", 5000)
        assert new is not None
        stale = Commit(old.epoch, [ev(old.epoch, 1)], read[-1].id)
        assert await b.append_many({"r": stale}) == {"r": False}
        with pytest.raises(Fenced):
            await b.append_events("r", old.epoch, [ev(old.epoch, 1)])
        fresh = (await b.read_inputs(["r"], 10))["r"]
        assert fresh == read, "the new owner sees every input the stale one read"
        assert await b.read_events("r", 0, 10) == []
        assert await b.append_many({"r": Commit(new.epoch, [], fresh[-1].id)}) == {"r": True}
        assert await b.read_inputs(["r"], 10) == {}

    async def test_push_into_an_unknown_room_is_refused(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        with pytest.raises(RoomMissing):
            await b.push_input("nowhere", b"x")
        await b.create_room("r", 10)
        lease = await b.acquire_lease("r", "n1", 5000)
        assert lease is not None
        assert await b.retire_room("r", lease.epoch, 0)
        with pytest.raises(RoomMissing):
            await b.push_input("r", b"y")
        assert await b.read_inputs(["r"], 10) == {}

    async def test_full_inbox_refuses_new_inputs(self, make_backend: MakeBackend) -> None:
        b = await make_backend(inbox_limit=3)
        await b.create_room("r", 10)
        for i in range(3):
            await b.push_input("r", bytes([i]))
        with pytest.raises(InboxFull):
            await b.push_input("r", b"\x09")
        read = (await b.read_inputs(["r"], 10))["r"]
        assert [e.data for e in read] == [b"\x00", b"\x01", b"\x02"], "nothing was dropped"
        lease = await b.acquire_lease("r", "n1", 5000)
        assert lease is not None
        await b.append_many({"r": Commit(lease.epoch, [], read[0].id)})
        await b.push_input("r", b"\x03")
        assert len((await b.read_inputs(["r"], 10))["r"]) == 3

    # ------------------------------------------------------------ presence
    async def test_presence_enforces_capacity(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        members = [Member(f"s{i}", f"n{i}", "dreamer", "node1") for i in range(3)]
        assert await b.join_presence("r", members[0], 2)
        assert await b.join_presence("r", members[1], 2)
        assert not await b.join_presence("r", members[2], 2)
        assert await b.join_presence("r", members[0], 2), "re-joining is not a new member"
        assert await b.presence("r") == members[:2]
        await b.leave_presence("r", "s0")
        assert await b.join_presence("r", members[2], 2)
        assert [m.session for m in await b.presence("r")] == ["s1", "s2"]

    # ------------------------------------------------------------ batches, nodes, incarnations
    async def test_batched_reads_match_single_ones(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        for room in ("a", "b", "c"):
            await b.create_room(room, 10)
        lease = await b.acquire_lease("a", "n1", 5000)
        assert lease is not None
        await b.append_events("a", lease.epoch, [ev(lease.epoch, 1), ev(lease.epoch, 2)])
        await b.join_presence("b", Member("s1", "lila", "dreamer", "n1"), 5)
        assert await b.owners(["a", "b"]) == {"a": lease, "b": None}
        assert await b.last_positions(["a", "b"]) == {"a": (lease.epoch, 2), "b": (0, 0)}
        presences = await b.presences(["a", "b"])
        assert presences == {"a": [], "b": [Member("s1", "lila", "dreamer", "n1")]}
        assert await b.owners([]) == {} and await b.last_positions([]) == {}

    async def test_save_snapshots_is_fenced_per_room(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        leases = {}
        for room in ("a", "b"):
            await b.create_room(room, 10)
            lease = await b.acquire_lease(room, "n1", 5000)
            assert lease is not None
            leases[room] = lease
        snap = RoomSnapshot(leases["a"].epoch, 3, b"s", b"v")
        result = await b.save_snapshots(
            {"a": (snap, leases["a"].epoch), "b": (snap, leases["b"].epoch + 1)}
        )
        assert result == {"a": True, "b": False}
        assert await b.load_snapshot("a") == snap
        assert await b.load_snapshot("b") is None

    async def test_heartbeats_expire(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.heartbeat("n1", 300)
        await b.heartbeat("n2", 5000)
        assert await b.live_nodes() == ["n1", "n2"]
        await asyncio.sleep(0.45)
        assert await b.live_nodes() == ["n2"]
        await b.heartbeat("n1", 5000)
        assert await b.live_nodes() == ["n1", "n2"]

    async def test_recreated_room_never_reuses_an_epoch(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        first = await b.acquire_lease("r", "n1", 5000)
        assert first is not None
        assert await b.retire_room("r", first.epoch, 0)
        await b.create_room("r", 10)
        second = await b.acquire_lease("r", "n1", 5000)
        assert second is not None and second.epoch > first.epoch

    async def test_lease_needs_an_existing_room(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        assert await b.acquire_lease("nowhere", "n1", 5000) is None

    async def test_events_keep_their_own_epoch(self, make_backend: MakeBackend) -> None:
        b = await make_backend()
        await b.create_room("r", 10)
        old = await b.acquire_lease("r", "n1", 5000)
        assert old is not None
        await b.append_events("r", old.epoch, [ev(old.epoch, 1)])
        await b.release_lease(old)
        new = await b.acquire_lease("r", "n2", 5000)
        assert new is not None
        await b.append_events("r", new.epoch, [ev(new.epoch, 2)])
        got = await b.read_events("r", 0, 10)
        assert [(e.epoch, e.seq) for e in got] == [(old.epoch, 1), (new.epoch, 2)]
        found = await b.wait_events({"r": 1}, 1.0, 10)
        assert [(e.epoch, e.seq) for e in found["r"]] == [(new.epoch, 2)]
