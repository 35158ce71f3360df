"""MQTT ingest: pod telemetry and status into the rooms this node owns.

How it works: one aiomqtt connection per node. While this node owns a room
it is subscribed (QoS 1) to the room's ``.../pods/+/telemetry`` and
``.../pods/+/status`` topics; ownership changes come from the room manager's
``on_ownership`` callback and are applied by a task that diffs the wanted and
the subscribed rooms. Each message is parsed and validated by
``sleepsync.protocol``; the pure :class:`~.pod_tracker.PodTracker` drops
redeliveries, counts gaps and invalid payloads, holds samples whose seq jumps
out of the window until the next one confirms them, refuses replays from
retired boots, and says when a pod that keeps sending garbage is a sensor
fault. Before that, the pure :class:`~.pod_rooms.PodRooms` limits how many
rooms one pod may enter per hour (its status or telemetry for more rooms is
dropped). What survives goes to the room's next tick through
``RoomManager.add_external``. Every drop is counted by reason in
``sleepsync_mqtt_refused_total`` or ``sleepsync_telemetry_invalid_total``.
Cues that ticks produce are queued (bounded) and published on the pods'
``cmd`` topics.

With room discovery on (the default), every node listens to all pods' status
topics instead of its rooms' only: a pod announcing itself ``online`` in a
room nobody runs makes this node open the room (the backend's lease decides
which node gets it). Statuses are rare and small; telemetry, the heavy
stream, reaches only the owner.

The node's client id is ``sleepsync-NODE_ID`` plus 64 random bits, fresh per
process: a pod that logs in with the node's predictable id cannot take over
(and so cut off) the node's connection. ``mqtts://`` URLs connect with TLS,
trusting ``--mqtt-ca-file`` (or the system's CAs); the password may come from
``--mqtt-password-file``. Log lines name the broker without its password.

A lost connection is retried forever with capped exponential backoff and
jitter; subscriptions are made again on each new connection (clean session),
and the websocket side keeps serving meanwhile. On shutdown, :meth:`Ingest.close`
waits for a subscription in flight before the node cancels the ingest. Telemetry published while the
connection is down is lost and shows up as gaps.

Limits: aiomqtt's incoming queue holds ``mqtt_queue`` messages (the oldest is
dropped when full, counted in ``sleepsync_mqtt_drops_total{queue="incoming"}``);
the cue queue holds ``mqtt_cue_queue`` cues (new ones are dropped when full);
each room's external queue is bounded by the room manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable

import aiomqtt

from sleepsync.protocol.backoff import Backoff
from sleepsync.protocol.errors import SleepSyncError, TelemetryInvalid
from sleepsync.protocol.telemetry import (
    Cue,
    TelemetrySample,
    decode_status,
    decode_telemetry,
    encode_cue,
)
from sleepsync.protocol.topics import (
    ALL_STATUS,
    BrokerUrl,
    cmd_topic,
    explain_connect_error,
    parse_topic,
    room_filters,
)

from .backend.base import BackendError
from .config import Settings
from .engine.api import PodFault, PodOffline, Telemetry
from .metrics import Metrics
from .pod_rooms import PodRooms
from .pod_tracker import REFUSE_REASONS, PodTracker
from .rooms import RoomManager
from .secret_files import read_secret_file, read_text_file
from .supervisor import Supervisor

__all__ = ["Ingest"]

log = logging.getLogger("sleepsync.ingest")

#: A room is offered for discovery at most once per this many seconds.
DISCOVERY_RETRY = 5.0
#: Bound on remembered per-pod statuses and rooms being discovered.
MAX_REMEMBERED = 100_000


def _drop_oldest_queue(on_drop: Callable[[], None]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """A queue class for aiomqtt that drops (and counts) the oldest message when full."""

    class DropOldestQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            if self.full():
                self.get_nowait()
                on_drop()
            super().put_nowait(item)

    return DropOldestQueue


class Ingest:
    """The node's MQTT side: subscriptions following ownership, ingest, cues."""

    def __init__(
        self,
        settings: Settings,
        rooms: RoomManager,
        metrics: Metrics,
        broker: BrokerUrl,
        *,
        client_id: str,
        tasks: Supervisor,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises ValueError, in one sentence, for an unreadable password or CA file."""
        self.settings = settings
        self.tasks = tasks
        self.rooms = rooms
        self.metrics = metrics
        if settings.mqtt_password_file:
            if not settings.mqtt_url:
                raise ValueError(
                    "--mqtt-password-file needs --mqtt-url (the embedded broker takes none)"
                )
            password = read_secret_file(settings.mqtt_password_file, "--mqtt-password-file")
            broker = broker.with_password(password)
        self.broker = broker
        ca = settings.mqtt_ca_file
        self._tls = broker.tls_context(read_text_file(ca, "--mqtt-ca-file") if ca else None)
        #: Unguessable: a pod that logs in with this id would cut the node off the broker.
        self.client_id = f"{client_id}-{secrets.token_hex(8)}"
        self._clock = clock
        self._wall_clock = wall_clock
        self.tracker = PodTracker(
            window=settings.mqtt_dedup_window,
            fault_threshold=settings.mqtt_fault_threshold,
            fault_window=settings.mqtt_fault_window,
            log_interval=settings.mqtt_log_interval,
            max_skew=settings.mqtt_max_clock_skew,
        )
        self.pod_rooms = PodRooms(per_period=settings.mqtt_pod_rooms_per_hour, period=3600.0)
        self._limit_logged: OrderedDict[str, float] = OrderedDict()
        for reason in ("room_limit", *REFUSE_REASONS):
            self.metrics.mqtt_refused.labels(reason)  # every reason shows, at 0
        #: Rooms this node owns (so wants to hear) and rooms it is subscribed to.
        self.wanted: set[str] = set()
        self.subscribed: set[str] = set()
        self._rooms_changed = asyncio.Event()
        self._cues: deque[tuple[str, Cue]] = deque()
        self._cues_ready = asyncio.Event()
        self._cues_sent = asyncio.Event()
        self._last_status: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._discovery: OrderedDict[str, float] = OrderedDict()
        #: Held while a (un)subscription is in flight, and for good by :meth:`close`.
        self._subscribing = asyncio.Lock()
        #: True while connected; ``connections`` counts successful connects.
        self.connected = False
        self.connections = 0
        self._queue_type = _drop_oldest_queue(self.metrics.mqtt_drops.labels("incoming").inc)

    # ------------------------------------------------------------ room manager callbacks
    def room_owned(self, room: str, owned: bool) -> None:
        """``RoomManager.on_ownership``: follow the rooms this node runs."""
        if owned:
            self.wanted.add(room)
        else:
            self.wanted.discard(room)
        self._rooms_changed.set()

    def send_cues(self, room: str, cues: list[Cue]) -> None:
        """``RoomManager.on_cues``: queue cues for the pods' cmd topics."""
        for cue in cues:
            if len(self._cues) >= self.settings.mqtt_cue_queue:
                self.metrics.mqtt_drops.labels("cues").inc()
                continue
            self._cues.append((room, cue))
        self._cues_sent.clear()
        self._cues_ready.set()

    # ------------------------------------------------------------ connection
    async def run(self) -> None:
        """Stay connected until cancelled; every loss is logged, counted and retried."""
        backoff = Backoff(initial=0.25, cap=self.settings.mqtt_backoff_cap)
        while True:
            try:
                await self._session(backoff)
            except* aiomqtt.MqttError as group:
                self.metrics.mqtt_reconnects.inc()
                log.warning(
                    "MQTT connection to %s lost or refused: %s; retrying",
                    self.broker,
                    explain_connect_error(group.exceptions[0], self.broker),
                )
            finally:
                self.connected = False
                self.subscribed.clear()
                self.metrics.mqtt_connected.set(0)
            await asyncio.sleep(backoff.next_delay())

    async def _session(self, backoff: Backoff) -> None:
        async with aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            identifier=self.client_id,
            tls_context=self._tls,
            clean_session=True,
            keepalive=15,
            queue_type=self._queue_type,
            max_queued_incoming_messages=self.settings.mqtt_queue,
        ) as client:
            backoff.reset()
            self.subscribed.clear()
            if self.settings.mqtt_discover_rooms:
                async with self._subscribing:
                    await client.subscribe(ALL_STATUS, qos=1)
            self.connected = True
            self.connections += 1
            self.metrics.mqtt_connected.set(1)
            log.info("MQTT connected to %s as %s", self.broker, self.client_id)
            self._rooms_changed.set()
            self._cues_ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._receive(client))
                tg.create_task(self._follow_rooms(client))
                tg.create_task(self._publish_cues(client))

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            data = payload if isinstance(payload, bytes) else bytes(str(payload), "utf-8")
            try:
                self.handle(message.topic.value, data)
            except Exception:  # a bug here must not stop the ingest of everything else
                self.metrics.telemetry_invalid.labels("internal").inc()
                log.exception("could not ingest a message on %s", message.topic.value)

    async def _follow_rooms(self, client: aiomqtt.Client) -> None:
        while True:
            await self._rooms_changed.wait()
            self._rooms_changed.clear()
            async with self._subscribing:
                for room in sorted(self.wanted - self.subscribed):
                    await client.subscribe([(f, 1) for f in self._filters(room)])
                    self.subscribed.add(room)
                    log.debug("subscribed to room %s", room)
                for room in sorted(self.subscribed - self.wanted):
                    await client.unsubscribe(list(self._filters(room)))
                    self.subscribed.discard(room)
                    log.debug("unsubscribed from room %s", room)

    def _filters(self, room: str) -> tuple[str, ...]:
        telemetry, status = room_filters(room)
        # With discovery on, the subscription to every pod's status already covers
        # this room's; a second, overlapping one would deliver each status twice.
        return (telemetry,) if self.settings.mqtt_discover_rooms else (telemetry, status)

    async def _publish_cues(self, client: aiomqtt.Client) -> None:
        while True:
            await self._cues_ready.wait()
            self._cues_ready.clear()
            while self._cues:
                room, cue = self._cues[0]
                # A failed publish raises and leaves the cue queued for the next connection.
                await client.publish(cmd_topic(room, cue.pod), encode_cue(cue), qos=1)
                self._cues.popleft()
                self.metrics.cues_published.inc()
            self._cues_sent.set()

    # ------------------------------------------------------------ one message
    def handle(self, topic: str, payload: bytes) -> None:
        """Ingest one MQTT message; invalid ones are counted, logged and dropped."""
        try:
            where = parse_topic(topic)
        except TelemetryInvalid as exc:
            self._invalid(None, None, exc)
            return
        room, pod = where.room, where.pod
        if where.kind == "telemetry":
            if room not in self.rooms.owned:
                self.metrics.telemetry_unowned.inc()
                return
            try:
                sample = decode_telemetry(payload, topic_pod=pod)
            except TelemetryInvalid as exc:
                self._invalid(room, pod, exc)
                return
            if not self._admit(room, pod):
                return
            verdict = self.tracker.accept(sample, now=self._wall_clock())
            if verdict.discarded:
                self.metrics.mqtt_refused.labels("seq_jump").inc()
            if verdict.refused is not None:
                self.metrics.mqtt_refused.labels(verdict.refused).inc()
                return
            if verdict.duplicate:
                self.metrics.telemetry_duplicates.inc()
                return
            if verdict.held:
                return
            if verdict.missing:
                self.metrics.telemetry_gaps.inc(verdict.missing)
            if verdict.reordered:
                self.metrics.telemetry_reordered.inc()
            if verdict.released is not None:
                self.metrics.telemetry_resyncs.inc()
                self._deliver(room, verdict.released)
            self._deliver(room, sample)
        elif where.kind == "status":
            try:
                status = decode_status(payload, topic_pod=pod)
            except TelemetryInvalid as exc:
                self._invalid(room, pod, exc)
                return
            if not self._admit(room, pod):
                return
            # Retained statuses come again on every (re)subscribe: act on changes only.
            key = (room, pod)
            if self._last_status.get(key) == status.state:
                return
            self._last_status[key] = status.state
            self._last_status.move_to_end(key)
            if len(self._last_status) > MAX_REMEMBERED:
                self._last_status.popitem(last=False)
            if status.state == "offline":
                if room in self.rooms.owned:
                    self.metrics.pods_offline.inc()
                    self.rooms.add_external(room, PodOffline(pod))
            elif room not in self.rooms.owned and self.settings.mqtt_discover_rooms:
                self._discover(room)
        # cmd topics are the server's own output; it never subscribes to them.

    def _deliver(self, room: str, sample: TelemetrySample) -> None:
        if self.rooms.add_external(room, Telemetry.derived(sample)):  # raw vitals stop here
            self.metrics.telemetry_ingested.inc()
        else:
            self.metrics.mqtt_drops.labels("room").inc()

    def _admit(self, room: str, pod: str) -> bool:
        """Whether ``pod`` may speak in ``room`` (rooms per hour); a refusal is counted."""
        now = self._clock()
        if self.pod_rooms.admit(pod, room, now):
            return True
        self.metrics.mqtt_refused.labels("room_limit").inc()
        last = self._limit_logged.get(pod)
        if last is None or now - last >= self.settings.mqtt_log_interval:
            self._limit_logged[pod] = now
            self._limit_logged.move_to_end(pod)
            if len(self._limit_logged) > MAX_REMEMBERED:
                self._limit_logged.popitem(last=False)
            log.warning(
                "pod %s entered %d rooms within the hour; its messages for room %s and "
                "any other new room are dropped",
                pod,
                self.settings.mqtt_pod_rooms_per_hour,
                room,
            )
        return False

    def _invalid(self, room: str | None, pod: str | None, exc: TelemetryInvalid) -> None:
        self.metrics.telemetry_invalid.labels(exc.reason).inc()
        outcome = self.tracker.invalid(pod, exc.reason, self._clock())
        if outcome.log:
            more = f" ({outcome.suppressed} more not logged)" if outcome.suppressed else ""
            log.warning(
                "dropped a payload from pod %s in room %s: %s%s",
                pod or "?",
                room or "?",
                exc.message,
                more,
            )
        if outcome.fault is not None and room is not None and pod is not None:
            self.metrics.pod_faults.inc()
            log.warning("pod %s in room %s keeps sending garbage: sensor fault", pod, room)
            self.rooms.add_external(room, PodFault(pod, outcome.fault))

    def _discover(self, room: str) -> None:
        now = self._clock()
        last = self._discovery.get(room)
        if last is not None and now - last < DISCOVERY_RETRY:
            return
        self._discovery[room] = now
        self._discovery.move_to_end(room)
        if len(self._discovery) > MAX_REMEMBERED:
            self._discovery.popitem(last=False)
        self.tasks.spawn(self._open_room(room), f"discover {room}")

    async def _open_room(self, room: str) -> None:
        try:
            await self.rooms.open_room(room)
        except (SleepSyncError, BackendError) as exc:
            log.warning("a pod is in room %s but it cannot be opened: %s", room, exc)
            return
        if room in self.rooms.owned:
            self.metrics.rooms_discovered.inc()
            log.info("opened room %s for its pods", room)

    async def close(self, timeout: float = 1.0) -> None:
        """Before the node cancels the ingest: let a (un)subscription in flight
        finish (``timeout`` at most), then start no other. Cancelled mid-flight,
        aiomqtt would forget the request and log its broker's answer as an error.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._subscribing.acquire()

    async def drain_cues(self, timeout: float = 1.0) -> None:
        """Wait (a little) until queued cues are published: for a clean stop."""
        if not self._cues or not self.connected:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._cues_sent.wait()
