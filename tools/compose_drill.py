"""The client side of ``make compose-test``: a failover drill against the compose stack.

``tools/compose-test.sh`` runs this once ``docker-compose up`` has every service
healthy. It talks only to the nodes' ports published on the host (127.0.0.1)
and runs ``docker-compose kill`` itself, with the environment the script set
(``COMPOSE_FILE``, ``COMPOSE_PROJECT_NAME``, ``DOCKER_HOST``).

How it works: two clients on each node join the pods' room and keep every
message with the time it arrived; on a lost connection a client resumes, from
its last (epoch, seq), at the other node. The drill checks that clients on both
nodes see the same events and a pod's telemetry, finds the node that owns the
room (``sleepsync_rooms_owned`` in ``/metrics``), kills it, and times how long
clients go without events. ``RoomClient`` refuses an event whose seq does not
follow the last one (a silent gap); a ``resync`` (an announced gap) is counted
and fails the drill too, since a failover must be resumed, not resynced.

The nodes require tokens (the compose file gives them ``SLEEPSYNC_AUTH_SECRET_FILE``):
with ``--auth-secret-file`` (the stack's ``deploy/secrets/auth_secret``) the drill
mints each client a token of its own, for the room, with its client's role.

Steps and their times go to stdout as ``step NAME SECONDS`` lines and, as JSON,
to ``--report``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from sleepsync.client.connection import ClientError, RoomClient, SeqGap
from sleepsync.protocol.identity import Keys, mint
from sleepsync.protocol.messages import Event, Resync, Role, ServerMessage, Snapshot

#: A drill token's time to live (s): far longer than any drill.
TOKEN_TTL = 3600.0


class DrillFailed(Exception):
    """A check of the drill did not hold."""


@dataclass
class Arrival:
    at: float  # time.monotonic() when the message arrived
    url: str  # the node it came from
    msg: ServerMessage


@dataclass
class Watcher:
    """One client in the room, following it across nodes."""

    name: str
    urls: list[str]  # its own node first, then where it resumes
    room: str
    role: Role
    #: The signed token its hello carries (None: the nodes run open).
    token: str | None = field(default=None, repr=False)
    seen: list[Arrival] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    connects: int = 0
    task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        client = RoomClient(self.urls[0], self.room, self.name, role=self.role, token=self.token)
        i = 0
        try:
            while True:
                client.url = self.urls[i % len(self.urls)]
                try:
                    await client.open()
                    self.connects += 1
                    async for msg in client.messages():
                        self.seen.append(Arrival(time.monotonic(), client.url, msg))
                except SeqGap as exc:
                    self.gaps.append(str(exc))
                except ClientError:
                    raise
                except (ConnectionError, ConnectionClosed, OSError, TimeoutError):
                    pass
                if client.conn is not None:
                    with contextlib.suppress(Exception):
                        await client.conn.close()
                i += 1
                await asyncio.sleep(0.1)
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    def events(self, since: float = 0.0) -> list[Event]:
        return [a.msg for a in self.seen if isinstance(a.msg, Event) and a.at >= since]

    def resyncs(self) -> list[Resync]:
        return [a.msg for a in self.seen if isinstance(a.msg, Resync)]

    def first_event(self, where: Callable[[Event], bool]) -> Arrival | None:
        return next(
            (a for a in self.seen if isinstance(a.msg, Event) and where(a.msg)),
            None,
        )

    def silent_gaps(self) -> list[str]:
        """Events that do not follow the previous one or a snapshot."""
        found = list(self.gaps)
        position: int | None = None
        for arrival in self.seen:
            msg = arrival.msg
            if isinstance(msg, Snapshot):
                position = msg.seq
            elif isinstance(msg, Event):
                if position is None:
                    found.append(f"event {msg.seq} before any snapshot")
                elif msg.seq != position + 1:
                    found.append(f"event {msg.seq} after {position}")
                position = msg.seq
        return found


def pod_seqs(events: list[Event]) -> dict[str, set[int]]:
    """Telemetry seqs applied per pod, read from the ``mood`` items."""
    out: dict[str, set[int]] = {}
    for event in events:
        for item in event.items:
            if item.get("kind") != "mood":
                continue
            rows = item.get("dreamers")
            # Each row: [name, valence, arousal, glitch, seq of the last telemetry applied].
            for row in rows if isinstance(rows, list) else []:
                if not (isinstance(row, list) and len(row) >= 5 and isinstance(row[4], int)):
                    continue
                if str(row[0]).startswith("pod-"):
                    out.setdefault(str(row[0]), set()).add(row[4])
    return out


def telemetry_flows(events: list[Event]) -> bool:
    """Some pod's telemetry seq advanced within these events."""
    return any(len(seqs) >= 2 for seqs in pod_seqs(events).values())


def rooms_owned(http_url: str) -> float:
    with urllib.request.urlopen(f"{http_url}/metrics", timeout=3) as r:
        body = r.read().decode()
    for line in body.splitlines():
        if line.startswith("sleepsync_rooms_owned"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise DrillFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


class Drill:
    def __init__(
        self, nodes: dict[str, str], room: str, compose: list[str], keys: Keys | None = None
    ) -> None:
        self.nodes = nodes  # compose service -> ws:// URL on the host
        self.room = room
        self.compose = compose
        self.steps: list[tuple[str, float, str]] = []
        self.results: dict[str, object] = {}
        self.started = time.monotonic()
        urls = list(nodes.values())
        self.watchers = [
            Watcher(f"{service}-{role}", [url, *(u for u in urls if u != url)], room, role)
            for service, url in nodes.items()
            for role in ("dreamer", "observer")
        ]
        if keys is not None:
            now = time.time()
            for w in self.watchers:
                w.token = mint(
                    keys, subject=w.name, rooms=room, role=w.role, now=now, ttl=TOKEN_TTL
                )

    def step(self, name: str, detail: str = "") -> None:
        now = time.monotonic()
        since = self.steps[-1][1] if self.steps else self.started
        self.steps.append((name, now, detail))
        print(f"step {name} {now - since:.2f} {detail}".rstrip())

    def home(self, w: Watcher) -> str:
        return next(s for s, url in self.nodes.items() if url == w.urls[0])

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for w in self.watchers:
                w.task = tg.create_task(w.run())
            try:
                await self.checks()
            finally:
                for w in self.watchers:
                    if w.task is not None:
                        w.task.cancel()

    async def checks(self) -> None:
        ws = self.watchers
        await until(lambda: all(w.events() for w in ws), 60, "events on every client")
        self.step("join", f"{len(ws)} clients on {len(self.nodes)} nodes")

        await until(lambda: all(len(w.events()) >= 20 for w in ws), 60, "20 events each")
        self.same_events()
        self.step("same-events", "identical items at every common (epoch, seq)")

        await until(lambda: all(telemetry_flows(w.events()) for w in ws), 60, "pod telemetry")
        pods = sorted(set().union(*(pod_seqs(w.events()) for w in ws)))
        self.step("telemetry", f"{len(pods)} pods in the room, seqs advancing")

        owners = {s: rooms_owned(url.replace("ws://", "http://")) for s, url in self.nodes.items()}
        owner = next((s for s, n in owners.items() if n >= 1), None)
        if owner is None:
            raise DrillFailed(f"no node owns a room: {owners}")
        survivor = next(s for s in self.nodes if s != owner)
        old_epoch = max(e.epoch for w in ws for e in w.events())
        seq_at_kill = max(e.seq for w in ws for e in w.events())
        sent = time.monotonic()
        kill = await asyncio.create_subprocess_exec(
            *self.compose, "kill", owner,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await kill.communicate()
        if kill.returncode != 0:
            raise DrillFailed(f"{' '.join(self.compose)} kill {owner}: {output.decode()}")
        returned = time.monotonic()
        took = returned - sent
        self.step("kill", f"{owner} (the owner; kill took {took:.2f} s) after seq {seq_at_kill}")

        def new_owner(e: Event) -> bool:
            return e.epoch > old_epoch

        await until(
            lambda: all(w.first_event(new_owner) for w in ws),
            60,
            "events of a new epoch on every client",
        )
        # The owner died somewhere between `sent` and `returned`; what clients saw is
        # exact: the last event of the old epoch, then the first of the new one.
        silence, after_sent = {}, {}
        for w in ws:
            first = w.first_event(new_owner)
            assert first is not None
            last = max(
                a.at for a in w.seen if isinstance(a.msg, Event) and a.msg.epoch <= old_epoch
            )
            silence[w.name] = round(first.at - last, 3)
            after_sent[w.name] = round(first.at - sent, 3)
        failover = max(silence.values())
        self.step("failover", f"{survivor} took over; clients went {failover:.2f} s without events")
        self.results.update(
            killed=owner,
            survivor=survivor,
            failover_s=failover,
            kill_command_s=round(returned - sent, 3),
            silence_s=silence,
            first_event_after_kill_sent_s=after_sent,
        )
        print("  client: no events for | first new-epoch event after the kill was sent")
        for w in ws:
            moved = "resumed on " + survivor if self.home(w) == owner else "stayed"
            gap, since = silence[w.name], after_sent[w.name]
            print(f"    {w.name:<16} {gap:5.2f} s | {since:5.2f} s  ({moved})")

        target = seq_at_kill + 40
        await until(
            lambda: all(w.events() and w.events()[-1].seq >= target for w in ws),
            60,
            f"every client past seq {target}",
        )
        after = [[e for e in w.events() if e.epoch > old_epoch] for w in ws]
        if not all(telemetry_flows(events) for events in after):
            raise DrillFailed("no pod telemetry after the failover")
        self.same_events()
        if rooms_owned(self.nodes[survivor].replace("ws://", "http://")) < 1:
            raise DrillFailed(f"{survivor} does not own the room after the failover")
        gaps = {w.name: w.silent_gaps() for w in ws if w.silent_gaps()}
        resyncs = {w.name: len(w.resyncs()) for w in ws if w.resyncs()}
        self.results.update(silent_gaps=gaps, resyncs=resyncs)
        if gaps:
            raise DrillFailed(f"silent gaps: {gaps}")
        if resyncs:
            raise DrillFailed(f"resyncs after a failover (it must be resumed): {resyncs}")
        silence_since = self.longest_silence(sent)
        self.results.update(longest_silence_s=silence_since)
        self.step(
            "no-gap",
            f"contiguous seqs on every client to seq {target}, no resync;"
            f" longest time without an event since the kill {silence_since:.2f} s",
        )

    def same_events(self) -> None:
        logs = [{(e.epoch, e.seq): e for e in w.events()} for w in self.watchers]
        common = set(logs[0]).intersection(*logs[1:])
        if len(common) < 10:
            raise DrillFailed(f"only {len(common)} events seen by every client")
        for key in common:
            items = {json.dumps(log[key].items, sort_keys=True, default=str) for log in logs}
            if len(items) != 1:
                raise DrillFailed(f"clients disagree on event {key}")

    def longest_silence(self, since: float) -> float:
        """The longest time any client went without an event, from ``since`` on."""
        longest = 0.0
        for w in self.watchers:
            times = [since, *(a.at for a in w.seen if isinstance(a.msg, Event) and a.at >= since)]
            longest = max([longest, *(b - a for a, b in itertools.pairwise(times))])
        return round(longest, 3)

    def report(self) -> dict[str, object]:
        steps, last = [], self.started
        for name, at, detail in self.steps:
            steps.append({"name": name, "seconds": round(at - last, 3), "detail": detail})
            last = at
        return {"steps": steps, **self.results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--node",
        action="append",
        required=True,
        metavar="SERVICE=URL",
        help="a node's compose service and its websocket URL on the host (twice)",
    )
    parser.add_argument("--room", default="lounge")
    parser.add_argument("--compose", default="docker-compose", help="the compose command")
    parser.add_argument("--report", type=Path, help="write the steps and results as JSON")
    parser.add_argument(
        "--auth-secret-file",
        type=Path,
        help="the nodes' token secret (deploy/secrets/auth_secret): mint a token per client",
    )
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    nodes = dict(n.split("=", 1) for n in args.node)
    if len(nodes) != 2:
        parser.error("give exactly two --node SERVICE=URL")
    keys = None
    if args.auth_secret_file is not None:
        try:
            keys = Keys.load(secret=args.auth_secret_file.read_bytes())
        except (OSError, ValueError) as exc:
            parser.error(f"--auth-secret-file: {exc}")
    drill = Drill(nodes, args.room, args.compose.split(), keys)
    status = 0
    try:
        asyncio.run(drill.run())
    except* DrillFailed as group:
        for exc in group.exceptions:
            print(f"drill failed: {exc}", file=sys.stderr)
        status = 1
    if args.report is not None:
        args.report.write_text(json.dumps({**drill.report(), "ok": status == 0}, indent=1) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
