"""One load-generator worker: simulated pods and observers for some rooms.

A worker owns whole rooms: their pods (one MQTT client each, publishing on
the shared :class:`~.loadstats.Schedule` at QoS 1 without waiting for the
broker, so a slow system cannot slow the schedule) and their observers (one
websocket client each). Observers turn every frame's ``mood`` item into
reflected samples and record each sample's latency from its intended publish
time. ``sleepsync load`` runs several workers in separate processes and
merges their results; tests run one in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiomqtt
from websockets.exceptions import ConnectionClosed

from sleepsync.protocol.backoff import Backoff
from sleepsync.protocol.events import Mood, items_of_type
from sleepsync.protocol.messages import Event, Resync
from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns, encode_telemetry
from sleepsync.protocol.topics import BrokerUrl, telemetry_topic

from .connection import ClientError, RoomClient, SeqGap, websocket_tls
from .loadstats import LatencyHistogram, Reflection, Schedule, WorkerTotals

__all__ = ["LoadPlan", "Worker", "WorkerResult"]

log = logging.getLogger("sleepsync.load")

#: After the last scheduled sample, observers wait this long for it to show.
GRACE_S = 3.0


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What one worker does (picklable: it crosses to worker processes)."""

    servers: tuple[str, ...]
    mqtt: str
    rooms: tuple[str, ...]
    #: pod ids per room, in the same order as ``rooms``
    pods: tuple[tuple[str, ...], ...]
    #: global pod index of each pod (for the schedule), parallel to ``pods``
    pod_indexes: tuple[tuple[int, ...], ...]
    observers_per_room: int
    schedule: Schedule
    credentials: tuple[tuple[str, str], ...] = ()
    seed: int = 0
    worker: int = 0
    #: The text of the CA file (PEM) for an ``mqtts://`` broker and ``wss://`` servers;
    #: None: the system's CAs.
    ca_pem: str | None = None
    #: Per room (as ``rooms``), per observer: its name and the token its hello
    #: carries. Empty: observers are named ``load-wW-oO`` and carry no token.
    observers: tuple[tuple[tuple[str, str | None], ...], ...] = field(default=(), repr=False)


@dataclass
class WorkerResult:
    totals: WorkerTotals
    histogram: str

    def to_dict(self) -> dict[str, Any]:
        return {"totals": asdict(self.totals), "histogram": self.histogram}


@dataclass
class _Room:
    room: str
    pods: dict[str, int]  # pod id -> global index
    published: dict[str, int] = field(default_factory=dict)
    reflected: dict[str, set[int]] = field(default_factory=dict)
    observers: list[_Observer] = field(default_factory=list)


class _Observer:
    def __init__(
        self, worker: Worker, room: _Room, url: str, name: str, token: str | None = None
    ) -> None:
        self.worker = worker
        self.room = room
        ca_pem = worker.plan.ca_pem if url.startswith("wss://") else None
        tls = websocket_tls(url, ca_pem)
        self.client = RoomClient(
            url, room.room, name, role="observer", max_size=8 << 20, token=token, tls=tls
        )
        self.reflection = Reflection()
        self.ready = asyncio.Event()
        self.connected = False

    async def run(self) -> None:
        totals = self.worker.totals
        backoff = Backoff(initial=0.1, cap=2.0)
        first = True
        while not self.worker.stopping.is_set():
            try:
                await self.client.open()
                if not first:
                    totals.reconnects += 1
                first = False
                self.connected = True
                async for msg in self.client.messages():
                    backoff.reset()
                    if isinstance(msg, Event):
                        self.ready.set()
                        self._frame(msg)
                    elif isinstance(msg, Resync):
                        totals.resyncs += 1
                    else:
                        self.ready.set()
            except SeqGap:
                totals.seq_gaps += 1
            except ClientError as exc:
                log.warning("observer refused: %s", exc)
                totals.connection_failures += 1
                return
            except (ConnectionError, ConnectionClosed, OSError):
                totals.connection_failures += 1
            finally:
                self.connected = False
            with contextlib.suppress(Exception):
                if self.client.conn is not None:
                    await self.client.conn.close()
            await asyncio.sleep(backoff.next_delay())

    def _frame(self, event: Event) -> None:
        now = time.time()
        totals = self.worker.totals
        totals.frames += 1
        schedule = self.worker.plan.schedule
        record = self.worker.latency.record
        pods = self.room.pods
        for mood in items_of_type(event, Mood):
            for row in mood.dreamers:
                pod, last = row.name, row.seq
                if last is None or pod not in pods:
                    continue
                index = pods[pod]
                seen = self.room.reflected.setdefault(pod, set())
                for seq in self.reflection.reflect(pod, last):
                    record(now - schedule.intended(index, seq))
                    totals.deliveries += 1
                    seen.add(seq)


class Worker:
    """Runs one plan; ``progress`` is called about twice a second."""

    def __init__(
        self,
        plan: LoadPlan,
        *,
        progress: Callable[[WorkerTotals, LatencyHistogram], None] | None = None,
    ) -> None:
        self.plan = plan
        self.totals = WorkerTotals()
        self.latency = LatencyHistogram()
        self.stopping = asyncio.Event()
        self._progress = progress
        self.rooms: list[_Room] = []
        self._inflight: set[asyncio.Task[None]] = set()
        broker = BrokerUrl.parse(plan.mqtt)
        self._tls = broker.tls_context(plan.ca_pem if broker.tls else None)
        for room, pods, indexes in zip(plan.rooms, plan.pods, plan.pod_indexes, strict=True):
            self.rooms.append(_Room(room, dict(zip(pods, indexes, strict=True))))

    def stop(self) -> None:
        """Stop publishing now; observers finish their grace period."""
        self.stopping.set()

    async def run(self) -> WorkerResult:
        plan = self.plan
        observer_tasks = []
        for r, room in enumerate(self.rooms):
            for o in range(plan.observers_per_room):
                url = plan.servers[(r * plan.observers_per_room + o) % len(plan.servers)]
                name, token = f"load-w{plan.worker}-o{o}", None
                if plan.observers:
                    name, token = plan.observers[r][o]
                observer = _Observer(self, room, url, name, token)
                room.observers.append(observer)
                observer_tasks.append(asyncio.create_task(observer.run()))
        reporter = asyncio.create_task(self._report())
        try:
            async with asyncio.TaskGroup() as tg:
                for room in self.rooms:
                    for pod, index in room.pods.items():
                        tg.create_task(self._pod(room, pod, index))
        finally:
            grace_end = min(time.time(), plan.schedule.end) + GRACE_S
            # Poll: the end condition mixes the clock and the observers' progress.
            while time.time() < grace_end and not self._all_reflected():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            self.stopping.set()
            for task in [*observer_tasks, reporter]:
                task.cancel()
            await asyncio.gather(*observer_tasks, reporter, return_exceptions=True)
            for room in self.rooms:
                for observer in room.observers:
                    with contextlib.suppress(Exception):
                        await observer.client.close()
            self._tally()
        return WorkerResult(self.totals, self.latency.encode())

    def _all_reflected(self) -> bool:
        for room in self.rooms:
            if not room.observers:
                continue
            for pod, count in room.published.items():
                if count and len(room.reflected.get(pod, ())) < count:
                    return False
        return True

    def _tally(self) -> None:
        totals = self.totals
        for room in self.rooms:
            if not room.observers:
                continue
            published = sum(room.published.values())
            totals.samples_published_observed += published
            totals.samples_reflected += sum(
                len({s for s in seqs if s < room.published.get(pod, 0)})
                for pod, seqs in room.reflected.items()
            )
            totals.expected_deliveries += published * len(room.observers)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self._progress is not None:
                self._progress(self.totals, self.latency)

    async def _pod(self, room: _Room, pod: str, index: int) -> None:
        plan = self.plan
        schedule = plan.schedule
        broker = BrokerUrl.parse(plan.mqtt)
        passwords = dict(plan.credentials)
        username, password = broker.username, broker.password
        if pod in passwords:
            username, password = pod, passwords[pod]
        rng = random.Random(f"{plan.seed}:{pod}")
        boot = secrets.token_hex(4)
        topic = telemetry_topic(room.room, pod)
        total = schedule.samples(index)
        self.totals.scheduled += total
        room.published[pod] = 0
        valence, arousal = rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.6)
        backoff = Backoff(initial=0.2, cap=2.0)
        seq = 0
        while seq < total and not self.stopping.is_set():
            try:
                async with aiomqtt.Client(
                    broker.host,
                    broker.port,
                    username=username,
                    password=password,
                    identifier=f"{pod}-load-{boot}",
                    tls_context=self._tls,
                    clean_session=True,
                    keepalive=30,
                    max_inflight_messages=100,
                    max_queued_outgoing_messages=1000,
                ) as client:
                    backoff.reset()
                    while seq < total and not self.stopping.is_set():
                        due = schedule.intended(index, seq)
                        delay = due - time.time()
                        if delay > 0:
                            await asyncio.sleep(delay)
                        elif delay < -1.0 / schedule.rate:
                            self.totals.late_publishes += 1
                        valence = min(1.0, max(0.0, valence + rng.gauss(0, 0.02)))
                        arousal = min(1.0, max(0.0, arousal + rng.gauss(0, 0.02)))
                        vitals = VitalSigns(62.0, 55.0, 2.5, 14.0)
                        sample = TelemetrySample(pod, boot, seq, due, vitals, valence, arousal)
                        payload = encode_telemetry(sample)
                        task = asyncio.create_task(self._publish(client, topic, payload))
                        self._inflight.add(task)
                        task.add_done_callback(self._inflight.discard)
                        seq += 1
                        room.published[pod] = seq
                        self.totals.published += 1
                    if self._inflight:
                        await asyncio.wait(list(self._inflight), timeout=5)
            except aiomqtt.MqttError as exc:
                # Refused or cut off: count it, try again; the schedule goes on.
                self.totals.connection_failures += 1
                log.warning("pod %s: %s", pod, exc)
                await asyncio.sleep(backoff.next_delay())

    async def _publish(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        try:
            await client.publish(topic, payload, qos=1)
            self.totals.acked += 1
        except aiomqtt.MqttError:
            self.totals.publish_errors += 1


def run_worker_process(plan: LoadPlan, queue: Any, stop: Any) -> None:
    """Entry point of a worker process: progress and the result go to ``queue``."""
    logging.basicConfig(level=logging.WARNING)

    def progress(totals: WorkerTotals, latency: LatencyHistogram) -> None:
        queue.put(("progress", plan.worker, asdict(totals), latency.encode()))

    async def main() -> WorkerResult:
        worker = Worker(plan, progress=progress)
        task = asyncio.create_task(worker.run())
        while not task.done():
            if stop.is_set():
                worker.stop()
            await asyncio.sleep(0.1)
        return await task

    try:
        result = asyncio.run(main())
        queue.put(("result", plan.worker, result.to_dict()))
    except BaseException as exc:  # report, never hang the coordinator
        queue.put(("error", plan.worker, f"{type(exc).__name__}: {exc}"))
