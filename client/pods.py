"""The pod simulator: N pods, each its own MQTT client, streaming telemetry.

Each :class:`SimulatedPod` connects with its pod id as broker username and
a client id that is its pod id plus 64 random bits (another pod's login that
guessed the client id would take over, and so cut off, the pod's connection),
over TLS for ``mqtts://`` URLs, and leaves a retained ``offline`` Last Will on its status topic,
announces itself ``online`` (retained), listens for cues on its ``cmd`` topic
and publishes one telemetry sample per ``1 / rate`` seconds at QoS 1. Samples
come from :mod:`.physiology` (deterministic per seed); a ``glitchy`` pod also
sends corrupt payloads and goes quiet in sensor dropouts. The sample clock
runs whether or not the pod is connected: samples due while it was cut off are
never sent, and the server sees them as gaps. Connection loss is retried with
capped exponential backoff and jitter; each distinct reason is logged once per
fleet, as one line (a broker whose TLS certificate is not trusted says so and
names the fix). On a clean stop a pod publishes
``offline`` itself (a clean disconnect does not fire the Will).

``sleepsync pods`` runs a fleet from the command line; ``sleepsync demo``
starts a small mixed fleet into the demo room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import msgpack

from sleepsync.protocol.backoff import Backoff
from sleepsync.protocol.errors import TelemetryInvalid
from sleepsync.protocol.telemetry import (
    Cue,
    PodStatus,
    TelemetrySample,
    decode_cue,
    encode_status,
    encode_telemetry,
)
from sleepsync.protocol.topics import (
    BrokerUrl,
    cmd_topic,
    explain_connect_error,
    pod_ids,
    status_topic,
    telemetry_topic,
)

from .physiology import Corruption, Emission, Physiology, profile_for

__all__ = [
    "ConnectErrors",
    "PodFleet",
    "PodOptions",
    "SimulatedPod",
    "broker_unreachable",
    "corrupt_payload",
]

log = logging.getLogger("sleepsync.pods")

#: Cues a pod remembers (for tests and the summary).
MAX_CUES_KEPT = 256
#: A pod that fell further behind its sample clock than this skips ahead.
MAX_CATCH_UP_S = 30.0


class ConnectErrors:
    """Logs each distinct reason a pod cannot reach the broker once (a fleet shares one).

    A hundred pods refused for the same reason make one warning, not a hundred;
    at most ``limit`` distinct reasons are remembered, later ones go to debug.
    """

    def __init__(self, limit: int = 32) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def report(self, pod: str, reason: str) -> None:
        if reason in self.seen or len(self.seen) >= self.limit:
            log.debug("pod %s lost its broker: %s", pod, reason)
            return
        self.seen.add(reason)
        log.warning("pod %s cannot reach the broker: %s (retrying)", pod, reason)


def corrupt_payload(sample: TelemetrySample, kind: Corruption, rng: random.Random) -> bytes:
    """A broken telemetry payload of the given kind (what a faulty sensor sends)."""
    wire = sample.to_wire()
    if kind == "garbage":
        return bytes([0xC1]) + rng.randbytes(rng.randint(1, 40))  # 0xC1 is never valid
    if kind == "truncated":
        packed = encode_telemetry(sample)
        return packed[: rng.randint(1, len(packed) - 1)]
    if kind == "out_of_range":
        wire["hr"] = rng.choice([0.0, 400.0, -5.0])
    elif kind == "wrong_type":
        wire["hrv"] = "flat"
    else:  # oversize
        wire["note"] = "x" * 1500
    return msgpack.packb(wire, use_bin_type=True)


@dataclass
class SimulatedPod:
    """One pod: a physiology, an MQTT client and its counters."""

    pod: str
    room: str
    physiology: Physiology
    broker: BrokerUrl
    rate: float = 2.0
    boot: str = field(default_factory=lambda: f"b{time.time_ns():x}")
    seq: int = 0
    sent: int = 0
    corrupt_sent: int = 0
    dropouts: int = 0
    #: Samples that came due while the pod was disconnected (never sent).
    missed: int = 0
    reconnects: int = 0
    connected: bool = False
    cues: list[Cue] = field(default_factory=list)
    #: TLS for an ``mqtts://`` broker (``BrokerUrl.tls_context``); None: plain MQTT.
    tls: ssl.SSLContext | None = None
    #: Not guessable by other pods (see the module docstring).
    client_id: str = ""
    errors: ConnectErrors = field(default_factory=ConnectErrors)

    def __post_init__(self) -> None:
        if not self.client_id:
            self.client_id = f"{self.pod}-{secrets.token_hex(8)}"
        self._rng = random.Random(f"payload:{self.pod}:{self.physiology.rng.random()}")
        self._next_at: float | None = None

    @property
    def dt(self) -> float:
        return 1.0 / self.rate

    def next_payload(self) -> bytes | None:
        """Advance one sample; the bytes to publish, or None in a sensor dropout."""
        self.seq += 1
        emission: Emission = self.physiology.step()
        if emission.kind == "dropout":
            self.dropouts += 1
            return None
        sample = TelemetrySample(
            pod=self.pod,
            boot=self.boot,
            seq=self.seq,
            ts=round(time.time(), 3),
            vitals=emission.vitals,
            valence=emission.valence,
            arousal=emission.arousal,
        )
        if emission.kind == "corrupt" and emission.corruption is not None:
            self.corrupt_sent += 1
            return corrupt_payload(sample, emission.corruption, self._rng)
        return encode_telemetry(sample)

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until ``stop`` is set; reconnect whenever the broker goes away."""
        backoff = Backoff(initial=0.2, cap=5.0, rng=random.Random(self.pod))
        await asyncio.sleep(self._rng.uniform(0, min(1.0, self.dt)))  # spread the connects
        while not stop.is_set():
            try:
                await self._session(stop, backoff)
            except* aiomqtt.MqttError as group:
                self.reconnects += 1
                self.errors.report(
                    self.pod, explain_connect_error(group.exceptions[0], self.broker)
                )
            finally:
                self.connected = False
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff.next_delay()):
                        await stop.wait()

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        status = status_topic(self.room, self.pod)
        will = aiomqtt.Will(
            status, encode_status(PodStatus(self.pod, "offline")), qos=1, retain=True
        )
        async with aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.pod if self.broker.username is None else self.broker.username,
            password=self.broker.password,
            identifier=self.client_id,
            tls_context=self.tls,
            will=will,
            clean_session=True,
            keepalive=10,
            max_queued_incoming_messages=64,
        ) as client:
            await client.subscribe(cmd_topic(self.room, self.pod), qos=1)
            await client.publish(
                status, encode_status(PodStatus(self.pod, "online")), qos=1, retain=True
            )
            self.connected = True
            backoff.reset()
            async with asyncio.TaskGroup() as tg:
                listener = tg.create_task(self._listen(client))
                await self._stream(client, stop)
                listener.cancel()
            await client.publish(
                status, encode_status(PodStatus(self.pod, "offline")), qos=1, retain=True
            )

    async def _listen(self, client: aiomqtt.Client) -> None:
        cmd = cmd_topic(self.room, self.pod)
        async for message in client.messages:
            payload = message.payload
            # amqtt 0.12 also hands a new subscriber retained messages of other topics.
            if message.topic.value != cmd or not isinstance(payload, bytes):
                continue
            try:
                cue = decode_cue(payload)
            except TelemetryInvalid:
                log.warning("pod %s ignored a malformed cue", self.pod)
                continue
            self.physiology.cue(cue.kind, cue.intensity)
            if len(self.cues) < MAX_CUES_KEPT:
                self.cues.append(cue)

    async def _stream(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        topic = telemetry_topic(self.room, self.pod)
        if self._next_at is None:
            self._next_at = loop.time()
        while not stop.is_set():
            behind = loop.time() - self._next_at
            if behind > self.dt:  # samples came due while we were away: they are lost
                missed = int(behind / self.dt)
                if behind > MAX_CATCH_UP_S:
                    self.seq += missed
                else:
                    for _ in range(missed):
                        self.next_payload()
                self.missed += missed
                self._next_at += missed * self.dt
            payload = self.next_payload()
            if payload is not None:
                await client.publish(topic, payload, qos=1)
                self.sent += 1
            self._next_at += self.dt
            delay = self._next_at - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await stop.wait()


@dataclass(frozen=True, slots=True)
class PodOptions:
    room: str
    count: int = 8
    rate: float = 2.0
    profile: str = "mixed"
    seed: int = 0
    mqtt: str = "mqtt://127.0.0.1:1883"
    duration: float | None = None
    prefix: str = "pod"
    #: Passwords by pod id (``sleepsync mqtt-passwd`` writes them); None: no password.
    passwords: dict[str, str] | None = None
    #: CA file (PEM) that signed an ``mqtts://`` broker's certificate; None: system CAs.
    ca_file: str | None = None


async def broker_unreachable(url: str, timeout: float = 3.0) -> str | None:
    """Why the broker at ``url`` cannot be reached (a TCP connect), or None when it can."""
    broker = BrokerUrl.parse(url)
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(broker.host, broker.port)
    except (OSError, TimeoutError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        return f"cannot reach the MQTT broker at {broker.host}:{broker.port}: {reason}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


class PodFleet:
    """Many simulated pods in one room, run together."""

    def __init__(self, opts: PodOptions) -> None:
        """Raises ValueError (a bad URL or CA) or OSError (an unreadable CA file)."""
        broker = BrokerUrl.parse(opts.mqtt)
        tls = broker.tls_context(Path(opts.ca_file).read_text() if opts.ca_file else None)
        errors = ConnectErrors()
        #: Where the pods connect (``str()`` leaves the password out).
        self.broker = broker
        self.opts = opts
        self.stop_event = asyncio.Event()
        self.pods: list[SimulatedPod] = []
        for index, pod in enumerate(pod_ids(opts.count, opts.prefix)):
            profile = profile_for(opts.profile, index, opts.seed)
            password = (opts.passwords or {}).get(pod, broker.password)
            self.pods.append(
                SimulatedPod(
                    pod=pod,
                    room=opts.room,
                    physiology=Physiology(profile, f"{opts.seed}:{index}", opts.rate),
                    broker=broker.with_user(pod, password),
                    rate=opts.rate,
                    tls=tls,
                    errors=errors,
                )
            )

    async def run(self) -> None:
        """Run every pod until :meth:`stop` or the duration is over."""
        async with asyncio.TaskGroup() as tg:
            for pod in self.pods:
                tg.create_task(pod.run(self.stop_event))
            if self.opts.duration is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.opts.duration):
                        await self.stop_event.wait()
                self.stop_event.set()

    def stop(self) -> None:
        self.stop_event.set()

    def summary(self) -> str:
        sent = sum(p.sent for p in self.pods)
        corrupt = sum(p.corrupt_sent for p in self.pods)
        cues = sum(len(p.cues) for p in self.pods)
        missed = sum(p.missed for p in self.pods)
        return (
            f"{len(self.pods)} pods in room {self.opts.room}: {sent} payloads sent "
            f"({corrupt} corrupt), {missed} missed while disconnected, {cues} cues received"
        )
