"""``sleepsync load``: drive a deployment with simulated pods and observers.

The coordinator checks the server(s) and the broker first (a bad setting
fails in seconds with one clear line), scrapes ``/metrics``, splits the rooms
over ``--workers`` processes, shows live progress, merges the workers'
counts and HdrHistograms, scrapes ``/metrics`` again and prints the report
(as a table, and as JSON with ``--json-out``). ``--assert-*`` make it exit 1
when the run misses its target, so it can gate a CI job. Ctrl-C stops the
pods and still prints the report so far. ``--find-capacity`` repeats the run
at rising rates until p99 or loss breaks the SLO.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import re
import secrets
import signal
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from queue import Empty
from typing import Any

import aiomqtt
from rich.console import Console
from rich.live import Live
from rich.table import Table

from sleepsync.protocol.errors import SleepSyncError
from sleepsync.protocol.identity import Keys, mint, unverified_subject
from sleepsync.protocol.topics import BrokerUrl, explain_connect_error, pod_ids
from sleepsync.protocol.wire import NAME_RE

from .connection import websocket_tls
from .loadstats import LatencyHistogram, LoadReport, Schedule, WorkerTotals, parse_metrics
from .loadworker import LoadPlan, Worker, run_worker_process

__all__ = ["LoadOptions", "add_load_parser", "main_load", "plan_workers", "run_load"]

MAX_TOTAL_RATE = 200_000.0
MAX_POD_RATE = 100.0
SETUP_S = 3.0


class LoadSetupError(Exception):
    """A setting makes the run impossible; the message says which and why."""


@dataclass(frozen=True, slots=True)
class LoadOptions:
    servers: tuple[str, ...]
    mqtt: str
    rooms: int = 10
    pods_per_room: int = 10
    observers_per_room: int = 1
    rate: float = 2.0
    duration: float = 30.0
    ramp: float = 0.0
    workers: int = 1
    seed: int = 0
    credentials: tuple[tuple[str, str], ...] = ()
    pod_prefix: str = "pod"
    room_prefix: str = ""
    #: The text of ``--ca-file`` (PEM), for an ``mqtts://`` broker and ``wss://`` servers.
    ca_pem: str | None = None
    #: One token for every observer (``--token``): they all take its subject's name.
    token: str | None = field(default=None, repr=False)
    #: The servers' shared secret (``--auth-secret-file``): each observer gets its
    #: own token for its own room.
    auth_secret: bytes | None = field(default=None, repr=False)

    @property
    def total_pods(self) -> int:
        return self.rooms * self.pods_per_room

    @property
    def target_rate(self) -> float:
        return self.total_pods * self.rate


def validate(opts: LoadOptions) -> None:
    if opts.rooms < 1 or opts.pods_per_room < 0 or opts.observers_per_room < 0:
        raise LoadSetupError("--rooms must be at least 1; pods and observers at least 0")
    if not 0 < opts.rate <= MAX_POD_RATE:
        raise LoadSetupError(f"--rate must be in (0, {MAX_POD_RATE:g}] samples/s per pod")
    if opts.target_rate > MAX_TOTAL_RATE:
        raise LoadSetupError(
            f"{opts.total_pods} pods at {opts.rate:g} Hz is {opts.target_rate:,.0f} msg/s; "
            f"this tool generates at most {MAX_TOTAL_RATE:,.0f}"
        )
    if opts.duration <= 0 or opts.ramp < 0:
        raise LoadSetupError("--duration must be positive and --ramp not negative")
    if opts.workers < 1:
        raise LoadSetupError("--workers must be at least 1")
    if not NAME_RE.fullmatch(f"{opts.pod_prefix}-{opts.total_pods}"):
        raise LoadSetupError(f"--pod-prefix gives pod ids that do not match {NAME_RE.pattern}")
    pod_names(opts)  # enough credentials for every pod
    if opts.token is not None and opts.auth_secret is not None:
        raise LoadSetupError("give --token or --auth-secret-file, not both")
    if opts.token is not None and unverified_subject(opts.token) is None:
        raise LoadSetupError("--token is not a readable token (sleepsync token prints one)")
    if opts.auth_secret is not None:
        try:
            Keys.load(secret=opts.auth_secret)
        except ValueError as exc:
            raise LoadSetupError(f"--auth-secret-file: {exc}") from None
    if opts.ca_pem is not None:
        tls = [url for url in (opts.mqtt, *opts.servers) if url.startswith(("mqtts:", "wss:"))]
        if not tls:
            raise LoadSetupError("--ca-file needs an mqtts:// broker or a wss:// server")
    for server in opts.servers:
        try:
            server_tls(server, opts.ca_pem)
        except ValueError as exc:
            raise LoadSetupError(f"--ca-file: {exc}") from None


def observer_identities(
    opts: LoadOptions, worker: int, rooms: Sequence[str], now: float
) -> tuple[tuple[tuple[str, str | None], ...], ...]:
    """(name, token) of each observer of ``rooms`` (a worker's): the shared
    ``--token``'s subject, or a token minted for each observer and its room."""
    if opts.token is None and opts.auth_secret is None:
        return ()
    names = [f"load-w{worker}-o{o}" for o in range(opts.observers_per_room)]
    if opts.token is not None:
        subject = unverified_subject(opts.token) or names[0]
        return tuple(((subject, opts.token),) * opts.observers_per_room for _ in rooms)
    keys = Keys.load(secret=opts.auth_secret)
    ttl = SETUP_S + opts.ramp + opts.duration + 600.0
    try:
        return tuple(
            tuple(
                (name, mint(keys, subject=name, rooms=room, role="observer", now=now, ttl=ttl))
                for name in names
            )
            for room in rooms
        )
    except SleepSyncError as exc:
        raise LoadSetupError(f"cannot mint observer tokens: {exc.message}") from None


def server_tls(server: str, ca_pem: str | None) -> ssl.SSLContext | None:
    """The TLS context for ``server`` (None for ws://): the CA applies to wss:// only."""
    return websocket_tls(server, ca_pem if server.startswith("wss://") else None)


def plan_workers(opts: LoadOptions, start: float) -> list[LoadPlan]:
    """Split whole rooms over the workers; every pod gets a global schedule index."""
    run = opts.room_prefix or f"load{secrets.token_hex(3)}"
    rooms = [f"{run}-{i:04d}" for i in range(opts.rooms)]
    pods = pod_names(opts)
    schedule = Schedule(start, opts.rate, max(1, opts.total_pods), opts.ramp, opts.duration)
    workers = min(opts.workers, opts.rooms)
    plans = []
    now = time.time()
    for w in range(workers):
        mine = list(range(w, opts.rooms, workers))
        room_pods = []
        room_indexes = []
        for r in mine:
            indexes = tuple(range(r * opts.pods_per_room, (r + 1) * opts.pods_per_room))
            room_indexes.append(indexes)
            room_pods.append(tuple(pods[i] for i in indexes))
        plans.append(
            LoadPlan(
                servers=opts.servers,
                mqtt=opts.mqtt,
                rooms=tuple(rooms[r] for r in mine),
                pods=tuple(room_pods),
                pod_indexes=tuple(room_indexes),
                observers_per_room=opts.observers_per_room,
                schedule=schedule,
                credentials=opts.credentials,
                seed=opts.seed,
                worker=w,
                ca_pem=opts.ca_pem,
                observers=observer_identities(opts, w, [rooms[r] for r in mine], now),
            )
        )
    return plans


def pod_names(opts: LoadOptions) -> list[str]:
    """The pods' ids: from the credentials file when one is given, so the ids
    always have passwords, else PREFIX-001, PREFIX-002..."""
    if not opts.total_pods:
        return []
    if not opts.credentials:
        return pod_ids(opts.total_pods, opts.pod_prefix)
    pattern = re.compile(rf"{re.escape(opts.pod_prefix)}-\d+")
    known = sorted(user for user, _ in opts.credentials if pattern.fullmatch(user))
    if len(known) < opts.total_pods:
        raise LoadSetupError(
            f"the credentials file has {len(known)} pods named {opts.pod_prefix}-N; "
            f"this run needs {opts.total_pods} (sleepsync mqtt-passwd --pods {opts.total_pods})"
        )
    return known[: opts.total_pods]


# ---------------------------------------------------------------- preflight and scraping


def http_base(ws_url: str) -> str:
    if ws_url.startswith("ws://"):
        return "http://" + ws_url[5:].rstrip("/")
    if ws_url.startswith("wss://"):
        return "https://" + ws_url[6:].rstrip("/")
    raise LoadSetupError(f"--server must be a ws:// or wss:// URL, got {ws_url!r}")


def scrape(servers: Sequence[str], ca_pem: str | None = None) -> dict[str, float]:
    """Sum every server's /metrics (counters add up across nodes)."""
    total: dict[str, float] = {}
    for server in servers:
        context = server_tls(server, ca_pem)
        try:
            with urllib.request.urlopen(
                http_base(server) + "/metrics", timeout=5, context=context
            ) as r:
                text = r.read().decode()
        except (OSError, urllib.error.URLError):
            continue
        for name, value in parse_metrics(text).items():
            total[name] = total.get(name, 0.0) + value
    return total


async def preflight(opts: LoadOptions) -> None:
    """Fail fast: every server answers /healthz and the broker accepts a client."""
    for server in opts.servers:
        url = http_base(server) + "/healthz"
        try:
            await asyncio.to_thread(_get, url, server_tls(server, opts.ca_pem))
        except (OSError, urllib.error.URLError) as exc:
            raise LoadSetupError(f"server {server} is unreachable: {exc}") from None
    try:
        broker = BrokerUrl.parse(opts.mqtt)
        tls = broker.tls_context(opts.ca_pem if broker.tls else None)
    except ValueError as exc:
        raise LoadSetupError(str(exc)) from None
    username, password = broker.username, broker.password
    if opts.credentials:
        username, password = opts.credentials[0]
    try:
        async with (
            asyncio.timeout(5),
            aiomqtt.Client(
                broker.host,
                broker.port,
                username=username,
                password=password,
                identifier=f"load-preflight-{secrets.token_hex(3)}",
                tls_context=tls,
            ),
        ):
            pass
    except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
        reason = explain_connect_error(exc, broker)
        raise LoadSetupError(f"broker {broker} refused or unreachable: {reason}") from None


def _get(url: str, context: ssl.SSLContext | None) -> None:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        response.read()


# ---------------------------------------------------------------- running


class _Progress:
    """Live view of the merged progress of all workers."""

    def __init__(self, opts: LoadOptions, start: float) -> None:
        self.opts = opts
        self.start = start
        self.totals: dict[int, WorkerTotals] = {}
        self.histograms: dict[int, str] = {}

    def update(self, worker: int, totals: dict[str, int], histogram: str) -> None:
        self.totals[worker] = WorkerTotals.from_dict(totals)
        self.histograms[worker] = histogram

    def table(self) -> Table:
        merged = WorkerTotals()
        for totals in self.totals.values():
            merged.add(totals)
        hist = LatencyHistogram()
        for encoded in self.histograms.values():
            hist.merge(encoded)
        elapsed = max(0.0, time.time() - self.start)
        rate = merged.published / elapsed if elapsed > 0 else 0.0
        table = Table(title="sleepsync load", show_header=False)
        table.add_row("elapsed", f"{elapsed:5.1f} s of {self.opts.ramp + self.opts.duration:g} s")
        table.add_row("publish rate", f"{rate:,.0f} / {self.opts.target_rate:,.0f} msg/s")
        table.add_row("frames/s", f"{merged.frames / elapsed if elapsed > 0 else 0:,.0f}")
        table.add_row(
            "p50 / p99", f"{hist.percentile_ms(50):.1f} / {hist.percentile_ms(99):.1f} ms"
        )
        errors = merged.publish_errors + merged.connection_failures + merged.seq_gaps
        table.add_row(
            "errors",
            f"{errors} (publish {merged.publish_errors}, "
            f"connections {merged.connection_failures}, gaps {merged.seq_gaps})",
        )
        return table


async def run_in_process(plans: list[LoadPlan], stop: asyncio.Event) -> list[dict[str, Any]]:
    """Run the plans in this process (tests, and --workers 1)."""
    workers = [Worker(plan) for plan in plans]
    tasks = [asyncio.create_task(w.run()) for w in workers]

    async def watch() -> None:
        await stop.wait()
        for w in workers:
            w.stop()

    watcher = asyncio.create_task(watch())
    try:
        results = await asyncio.gather(*tasks)
    finally:
        watcher.cancel()
    return [r.to_dict() for r in results]


def run_processes(
    plans: list[LoadPlan], progress: _Progress | None, console: Console | None
) -> tuple[list[dict[str, Any]], bool]:
    """Run each plan in its own process; returns results and whether Ctrl-C stopped it."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    stop = ctx.Event()
    procs = [ctx.Process(target=run_worker_process, args=(p, queue, stop)) for p in plans]
    for proc in procs:
        proc.start()
    results: dict[int, dict[str, Any]] = {}
    errors: list[str] = []
    interrupted = False
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    live = (
        Live(progress.table(), console=console, refresh_per_second=2)
        if progress and console
        else None
    )
    try:
        with live if live is not None else contextlib.nullcontext():
            while len(results) + len(errors) < len(procs):
                try:
                    kind, worker, *payload = queue.get(timeout=0.5)
                except Empty:
                    if not any(p.is_alive() for p in procs):
                        break
                    continue
                if kind == "progress" and progress is not None:
                    progress.update(worker, payload[0], payload[1])
                    if live is not None:
                        live.update(progress.table())
                elif kind == "result":
                    results[worker] = payload[0]
                elif kind == "error":
                    errors.append(f"worker {worker}: {payload[0]}")
    finally:
        interrupted = stop.is_set()
        signal.signal(signal.SIGINT, previous)
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    if errors:
        raise RuntimeError("; ".join(errors))
    return list(results.values()), interrupted


def merge(results: list[dict[str, Any]]) -> tuple[WorkerTotals, LatencyHistogram]:
    totals = WorkerTotals()
    hist = LatencyHistogram()
    for result in results:
        totals.add(WorkerTotals.from_dict(result["totals"]))
        hist.merge(result["histogram"])
    return totals, hist


def _start_time(opts: LoadOptions) -> float:
    """When the schedule starts: after every observer had time to join."""
    return time.time() + SETUP_S + opts.observers_per_room * opts.rooms * 0.003


def _report(
    opts: LoadOptions,
    start: float,
    results: list[dict[str, Any]],
    interrupted: bool,
    before: dict[str, float],
    after: dict[str, float],
) -> LoadReport:
    elapsed = min(time.time(), start + opts.ramp + opts.duration) - start
    totals, hist = merge(results)
    return LoadReport(
        opts.target_rate,
        opts.duration,
        max(elapsed, 1e-9),
        totals,
        hist,
        before,
        after,
        interrupted=interrupted,
    )


async def run_load(
    opts: LoadOptions, *, stop: asyncio.Event | None = None, in_process: bool = True
) -> LoadReport:
    """One load run, for tests and tools: in this process unless told otherwise."""
    validate(opts)
    await preflight(opts)
    before = await asyncio.to_thread(scrape, opts.servers, opts.ca_pem)
    start = _start_time(opts)
    plans = plan_workers(opts, start)
    stop = stop or asyncio.Event()
    if in_process:
        results = await run_in_process(plans, stop)
        interrupted = stop.is_set()
    else:
        results, interrupted = await asyncio.to_thread(run_processes, plans, None, None)
    after = await asyncio.to_thread(scrape, opts.servers, opts.ca_pem)
    return _report(opts, start, results, interrupted, before, after)


def run_cli_load(opts: LoadOptions, console: Console) -> LoadReport:
    """One run with live progress in worker processes (Ctrl-C keeps the report)."""
    validate(opts)
    asyncio.run(preflight(opts))
    before = scrape(opts.servers, opts.ca_pem)
    start = _start_time(opts)
    progress = _Progress(opts, start)
    results, interrupted = run_processes(plan_workers(opts, start), progress, console)
    return _report(opts, start, results, interrupted, before, scrape(opts.servers, opts.ca_pem))


# ---------------------------------------------------------------- CLI


def add_load_parser(sub: Any) -> None:
    p = sub.add_parser(
        "load",
        help="load-test a deployment with simulated pods and observers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--server",
        action="append",
        default=None,
        metavar="URL",
        help="websocket URL of a node; repeat for several nodes (default ws://127.0.0.1:8765)",
    )
    p.add_argument(
        "--mqtt",
        default="mqtt://127.0.0.1:1883",
        help="broker URL, mqtt://user:pass@host:1883 or mqtts://host:8883",
    )
    p.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="pod credentials file (user:password lines, from sleepsync mqtt-passwd)",
    )
    p.add_argument(
        "--ca-file",
        type=Path,
        default=None,
        help="CA certificate (PEM) that signed the broker's (mqtts://) and/or the "
        "servers' (wss://) certificates",
    )
    p.add_argument("--pod-prefix", default="pod", help="pod ids are PREFIX-001, PREFIX-002...")
    p.add_argument(
        "--token",
        default=os.environ.get("SLEEPSYNC_TOKEN") or None,
        help="one token for every observer, who all take its name (env SLEEPSYNC_TOKEN)",
    )
    p.add_argument(
        "--auth-secret-file",
        type=Path,
        default=None,
        help="the servers' --auth-secret-file: mint each observer a token for its room",
    )
    p.add_argument("--rooms", type=int, default=10)
    p.add_argument("--pods-per-room", type=int, default=10)
    p.add_argument("--observers-per-room", type=int, default=1)
    p.add_argument("--rate", type=float, default=2.0, help="samples per second per pod")
    p.add_argument("--duration", type=float, default=30.0, help="seconds at full rate")
    p.add_argument("--ramp", type=float, default=0.0, help="seconds over which pods start")
    p.add_argument("--workers", type=int, default=1, help="generator processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", type=Path, default=None, help="write the report as JSON here")
    p.add_argument(
        "--assert-p99-ms", type=float, default=None, help="exit 1 when p99 latency is above this"
    )
    p.add_argument(
        "--assert-loss", type=int, default=None, help="exit 1 when more samples than this were lost"
    )
    p.add_argument(
        "--find-capacity",
        action="store_true",
        help="raise --rate step by step until p99 or loss breaks the SLO",
    )
    p.add_argument("--slo-p99-ms", type=float, default=150.0, help="SLO p99 for --find-capacity")
    p.add_argument("--step", type=float, default=1.5, help="rate factor between capacity steps")
    p.add_argument("--max-steps", type=int, default=8)


def options_from_args(args: argparse.Namespace) -> LoadOptions:
    credentials: tuple[tuple[str, str], ...] = ()
    if args.credentials is not None:
        from sleepsync.protocol.credentials import parse_credentials

        try:
            with open(args.credentials) as f:
                text = f.read()
            credentials = tuple(parse_credentials(text, args.credentials).items())
        except (OSError, ValueError) as exc:
            raise LoadSetupError(f"--credentials: {exc}") from None
    ca_pem: str | None = None
    if args.ca_file is not None:
        try:
            ca_pem = args.ca_file.read_text()
        except OSError as exc:
            raise LoadSetupError(f"--ca-file: {exc}") from None
    auth_secret: bytes | None = None
    if args.auth_secret_file is not None:
        try:
            auth_secret = args.auth_secret_file.read_bytes()
        except OSError as exc:
            raise LoadSetupError(f"--auth-secret-file: {exc}") from None
    return LoadOptions(
        servers=tuple(args.server or ["ws://127.0.0.1:8765"]),
        mqtt=args.mqtt,
        rooms=args.rooms,
        pods_per_room=args.pods_per_room,
        observers_per_room=args.observers_per_room,
        rate=args.rate,
        duration=args.duration,
        ramp=args.ramp,
        workers=args.workers,
        seed=args.seed,
        credentials=credentials,
        pod_prefix=args.pod_prefix,
        ca_pem=ca_pem,
        token=args.token,
        auth_secret=auth_secret,
    )


def print_report(report: LoadReport, console: Console) -> None:
    table = Table(title="sleepsync load report" + (" (interrupted)" if report.interrupted else ""))
    table.add_column("what")
    table.add_column("value", justify="right")
    for what, value in report.rows():
        table.add_row(what, value)
    console.print(table)


def main_load(args: argparse.Namespace) -> int:
    console = Console()
    err = Console(stderr=True)
    try:
        opts = options_from_args(args)
        validate(opts)
        if args.find_capacity:
            return _find_capacity(opts, args, console, err)
        report = run_cli_load(opts, err)
    except LoadSetupError as exc:
        err.print(f"sleepsync load: {exc}")
        return 2
    print_report(report, console)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(report.to_json(), indent=2, default=_nan))
    return _check(report, args, err)


def _nan(value: object) -> object:
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def _check(report: LoadReport, args: argparse.Namespace, err: Console) -> int:
    failed = []
    p99 = report.latency.percentile_ms(99)
    if args.assert_p99_ms is not None and not p99 <= args.assert_p99_ms:
        failed.append(f"p99 {p99:.1f} ms > {args.assert_p99_ms:g} ms")
    if args.assert_loss is not None and report.lost_samples > args.assert_loss:
        failed.append(f"lost {report.lost_samples} samples > {args.assert_loss}")
    for failure in failed:
        err.print(f"sleepsync load: assertion failed: {failure}")
    return 1 if failed else 0


def _find_capacity(
    opts: LoadOptions, args: argparse.Namespace, console: Console, err: Console
) -> int:
    rate = opts.rate
    allowed_loss = args.assert_loss or 0
    steps: list[dict[str, Any]] = []
    best: float | None = None
    for _ in range(args.max_steps):
        step = replace(opts, rate=rate)
        if step.target_rate > MAX_TOTAL_RATE or rate > MAX_POD_RATE:
            break
        report = run_cli_load(step, err)
        p99 = report.latency.percentile_ms(99)
        held = (
            p99 <= args.slo_p99_ms
            and report.lost_samples <= allowed_loss
            and report.totals.seq_gaps == 0
            and not report.interrupted
        )
        steps.append(
            {
                "rate_per_pod": rate,
                "target": step.target_rate,
                "achieved": report.achieved_rate,
                "p99_ms": p99,
                "lost": report.lost_samples,
                "held": held,
            }
        )
        if report.interrupted or not held:
            break
        best = step.target_rate
        rate *= args.step
    table = Table(title=f"capacity (SLO: p99 <= {args.slo_p99_ms:g} ms, loss <= {allowed_loss})")
    for column in ("rate/pod Hz", "target msg/s", "achieved msg/s", "p99 ms", "lost", "held"):
        table.add_column(column, justify="right")
    for s in steps:
        table.add_row(
            f"{s['rate_per_pod']:.2f}",
            f"{s['target']:,.0f}",
            f"{s['achieved']:,.0f}",
            f"{s['p99_ms']:.1f}",
            str(s["lost"]),
            "yes" if s["held"] else "NO",
        )
    console.print(table)
    console.print(f"highest rate that held: {best:,.0f} msg/s" if best else "no step held the SLO")
    if args.json_out is not None:
        args.json_out.write_text(
            json.dumps({"steps": steps, "capacity": best}, indent=2, default=_nan)
        )
    return 0 if best else 1
