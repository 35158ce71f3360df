"""The failover drill's judgement (tools/compose_drill.py), without containers:
``make compose-test`` runs it against the real stack; here, messages made up
for the purpose check what it calls a gap, telemetry and the same events.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from sleepsync.protocol.identity import Keys, verify
from sleepsync.protocol.messages import Event, Snapshot
from sleepsync.server.broker import write_credentials
from sleepsync.server.secret_files import write_compose_secrets

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compose_drill", ROOT / "tools/compose_drill.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compose_drill"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


drill = _load()


def event(seq: int, epoch: int = 1, items: list[dict[str, object]] | None = None) -> Event:
    return Event("lounge", epoch, seq, seq, items if items is not None else [{"kind": "phase"}])


def watcher(*messages: Snapshot | Event) -> object:
    w = drill.Watcher("ana", ["ws://a", "ws://b"], "lounge", "dreamer")
    w.seen = [drill.Arrival(float(i), "ws://a", m) for i, m in enumerate(messages)]
    return w


def mood(*rows: list[object]) -> dict[str, object]:
    return {"kind": "mood", "balance": 0.5, "phase": "stable", "dreamers": list(rows)}


class TestGaps:
    def test_events_after_a_snapshot_and_across_a_new_epoch_are_contiguous(self) -> None:
        w = watcher(Snapshot("lounge", 1, 5, {}), event(6), event(7), event(8, epoch=2))
        assert w.silent_gaps() == []  # type: ignore[attr-defined]

    def test_a_missing_seq_is_a_silent_gap(self) -> None:
        w = watcher(Snapshot("lounge", 1, 5, {}), event(6), event(8))
        assert w.silent_gaps() == ["event 8 after 6"]  # type: ignore[attr-defined]

    def test_a_duplicate_is_a_gap_too(self) -> None:
        w = watcher(Snapshot("lounge", 1, 5, {}), event(6), event(6))
        assert w.silent_gaps() == ["event 6 after 6"]  # type: ignore[attr-defined]

    def test_a_snapshot_after_a_resume_restarts_the_count(self) -> None:
        w = watcher(Snapshot("lounge", 1, 5, {}), event(6), Snapshot("lounge", 2, 9, {}), event(10))
        assert w.silent_gaps() == []  # type: ignore[attr-defined]

    def test_an_event_before_any_snapshot_is_reported(self) -> None:
        w = watcher(event(3))
        assert w.silent_gaps() == ["event 3 before any snapshot"]  # type: ignore[attr-defined]


class TestTelemetry:
    def test_pod_rows_give_the_seqs_of_applied_telemetry(self) -> None:
        events = [
            event(1, items=[mood(["pod-001", 0.5, 0.5, 0.0, 10], ["ana", 0.5, 0.5, 0.0, None])]),
            event(2, items=[mood(["pod-001", 0.5, 0.5, 0.0, 11])]),
        ]
        assert drill.pod_seqs(events) == {"pod-001": {10, 11}}
        assert drill.telemetry_flows(events)

    def test_a_pod_whose_seq_stands_still_sends_nothing(self) -> None:
        events = [event(i, items=[mood(["pod-001", 0.5, 0.5, 0.0, 10])]) for i in (1, 2, 3)]
        assert not drill.telemetry_flows(events)
        assert not drill.telemetry_flows([event(1)])


class TestSameEvents:
    def _drill(self, *logs: list[Event]) -> object:
        d = drill.Drill({"node-1": "ws://a", "node-2": "ws://b"}, "lounge", ["docker-compose"])
        for w, log in zip(d.watchers, logs, strict=False):
            w.seen = [drill.Arrival(0.0, "ws://a", e) for e in log]
        return d

    def test_clients_that_saw_the_same_items_agree(self) -> None:
        log = [event(i) for i in range(1, 14)]
        self._drill(log, log, log[2:], log[1:]).same_events()  # type: ignore[attr-defined]

    def test_different_items_at_one_seq_fail(self) -> None:
        log = [event(i) for i in range(1, 12)]
        other = [*log[:5], event(6, items=[{"kind": "said", "text": "x"}]), *log[6:]]
        d = self._drill(log, log, log, other)
        with pytest.raises(drill.DrillFailed, match=r"disagree on event \(1, 6\)"):
            d.same_events()  # type: ignore[attr-defined]


class TestTokens:
    def test_each_client_gets_a_token_for_the_room_with_its_role(self, tmp_path: Path) -> None:
        # The secret `sleepsync secrets` writes for the stack is the one the drill reads.
        creds = tmp_path / "passwd.credentials"
        write_credentials(1, tmp_path / "passwd", creds)
        write_compose_secrets(tmp_path / "secrets", creds)
        keys = Keys.load(secret=(tmp_path / "secrets/auth_secret").read_bytes())
        nodes = {"node-1": "ws://a", "node-2": "ws://b"}
        d = drill.Drill(nodes, "lounge", ["docker-compose"], keys)
        now = time.time()
        for w in d.watchers:  # type: ignore[attr-defined]
            claims = verify(w.token, keys, now)
            assert (claims.subject, claims.rooms, claims.role) == (w.name, "lounge", w.role)
        assert {w.role for w in d.watchers} == {"dreamer", "observer"}  # type: ignore[attr-defined]

    def test_without_a_secret_clients_carry_no_token(self) -> None:
        d = drill.Drill({"node-1": "ws://a", "node-2": "ws://b"}, "lounge", ["docker-compose"])
        assert all(w.token is None for w in d.watchers)  # type: ignore[attr-defined]
