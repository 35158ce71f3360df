"""Counters and gauges of one node, in Prometheus form.

Each node has its own registry (several nodes can live in one test process),
served as text on ``GET /metrics``. Names start with ``sleepsync_``.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        self.connections = Gauge(
            "sleepsync_open_connections", "open websocket connections", registry=r
        )
        self.connections_total = Counter(
            "sleepsync_connections_total", "websocket connections accepted", registry=r
        )
        self.rooms_owned = Gauge("sleepsync_rooms_owned", "rooms this node ticks", registry=r)
        self.rooms_created = Counter(
            "sleepsync_rooms_created_total",
            "rooms this node created: opened by a join or by a pod announcing itself",
            registry=r,
        )
        self.rooms_retired = Counter(
            "sleepsync_rooms_retired_total",
            "idle rooms this node let go of (stored for --retention-hours)",
            registry=r,
        )
        self.rooms_removed = Counter(
            "sleepsync_rooms_removed_total",
            "rooms this node erased: unused (never held a story line, a template or a pod; "
            "empty for --unused-room-seconds; not retired), forgotten (erased at an "
            "operator's request)",
            ["reason"],
            registry=r,
        )
        self.greeting_evicted = Counter(
            "sleepsync_greeting_evicted_total",
            "connections closed before their hello to make room for a newer one "
            "(--max-greeting-clients)",
            registry=r,
        )
        self.rooms_local = Gauge(
            "sleepsync_rooms_local", "rooms with clients on this node", registry=r
        )
        self.dreamers = Gauge("sleepsync_dreamers", "dreamers in rooms this node owns", registry=r)
        self.messages_in = Counter(
            "sleepsync_messages_in_total", "client messages received", ["type"], registry=r
        )
        self.messages_out = Counter(
            "sleepsync_messages_out_total", "messages sent to clients", ["type"], registry=r
        )
        self.frames_out = Counter(
            "sleepsync_event_frames_out_total", "event frames written to clients", registry=r
        )
        self.errors = Counter(
            "sleepsync_errors_total", "errors reported to clients", ["code"], registry=r
        )
        self.closes = Counter(
            "sleepsync_closes_total", "connections closed by the server", ["code"], registry=r
        )
        self.slow_consumers = Counter(
            "sleepsync_slow_consumers_total", "clients closed for not reading", registry=r
        )
        self.ticks = Counter("sleepsync_ticks_total", "room ticks run", registry=r)
        self.tick_seconds = Histogram(
            "sleepsync_tick_seconds",
            "time to tick all owned rooms once",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.tick_lag = Gauge(
            "sleepsync_tick_lag_seconds", "how late the last tick started", registry=r
        )
        self.ticks_skipped = Counter(
            "sleepsync_ticks_skipped_total", "ticks skipped because the node was late", registry=r
        )
        self.room_failures = Counter(
            "sleepsync_room_failures_total", "room ticks that raised (room kept)", registry=r
        )
        self.inputs_invalid = Counter(
            "sleepsync_inputs_invalid_total", "inbox inputs that could not be decoded", registry=r
        )
        self.backend_ops = Counter(
            "sleepsync_backend_ops_total", "backend calls", ["op"], registry=r
        )
        self.backend_failures = Counter(
            "sleepsync_backend_failures_total", "backend calls that failed", ["op"], registry=r
        )
        self.lease_takeovers = Counter(
            "sleepsync_lease_takeovers_total", "rooms this node took ownership of", registry=r
        )
        self.fenced = Counter(
            "sleepsync_fenced_appends_total", "appends refused for a stale epoch", registry=r
        )
        self.resyncs = Counter("sleepsync_resyncs_total", "resyncs sent to clients", registry=r)
        self.degraded = Gauge(
            "sleepsync_degraded", "1 while the shared store (Redis) is unreachable", registry=r
        )
        self.resets = Counter(
            "sleepsync_room_resets_total",
            "rooms whose stored history vanished (the store lost its data)",
            registry=r,
        )
        self.resumes = Counter(
            "sleepsync_resumes_total", "joins resumed by replaying events", registry=r
        )
        self.fanout_seconds = Histogram(
            "sleepsync_fanout_seconds",
            "time from an event's append to its write to local clients",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=r,
        )

        self.pods_refused = Counter(
            "sleepsync_pods_refused_total",
            "pod samples refused because the room was full",
            registry=r,
        )

        # -- MQTT ingest --------------------------------------------------
        self.telemetry_ingested = Counter(
            "sleepsync_telemetry_ingested_total",
            "telemetry samples handed to rooms (after dedup)",
            registry=r,
        )
        self.telemetry_duplicates = Counter(
            "sleepsync_telemetry_duplicates_total",
            "telemetry samples dropped as QoS 1 redeliveries",
            registry=r,
        )
        self.telemetry_invalid = Counter(
            "sleepsync_telemetry_invalid_total",
            "pod payloads dropped as invalid",
            ["reason"],
            registry=r,
        )
        self.telemetry_gaps = Counter(
            "sleepsync_telemetry_gaps_total",
            "telemetry samples missing from pods' seq numbers",
            registry=r,
        )
        self.telemetry_reordered = Counter(
            "sleepsync_telemetry_reordered_total",
            "telemetry samples that arrived late and filled a gap",
            registry=r,
        )
        self.telemetry_unowned = Counter(
            "sleepsync_telemetry_unowned_total",
            "pod messages for rooms this node no longer owns",
            registry=r,
        )
        self.mqtt_drops = Counter(
            "sleepsync_mqtt_drops_total",
            "MQTT messages dropped because a queue was full",
            ["queue"],
            registry=r,
        )
        self.pod_faults = Counter(
            "sleepsync_pod_faults_total", "pods reported as sensor faults", registry=r
        )
        self.pods_offline = Counter(
            "sleepsync_pods_offline_total", "offline statuses (Last Will) received", registry=r
        )
        self.cues_published = Counter(
            "sleepsync_cues_published_total", "cues published to pods", registry=r
        )
        self.mqtt_reconnects = Counter(
            "sleepsync_mqtt_reconnects_total", "MQTT connections lost or refused", registry=r
        )
        self.mqtt_connected = Gauge(
            "sleepsync_mqtt_connected", "1 while connected to the MQTT broker", registry=r
        )
        self.mqtt_refused = Counter(
            "sleepsync_mqtt_refused_total",
            "valid pod messages dropped by the ingest's rules: room_limit (the pod entered "
            "too many rooms this hour), future_ts, retired_boot, stale_boot, seq_jump",
            ["reason"],
            registry=r,
        )
        self.telemetry_resyncs = Counter(
            "sleepsync_telemetry_resyncs_total",
            "pod boots re-anchored after two samples confirmed a seq jump",
            registry=r,
        )
        self.rooms_discovered = Counter(
            "sleepsync_rooms_discovered_total",
            "rooms opened because a pod announced itself in them",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0.0 when it was never touched); for tests and tools."""
        found = self.registry.get_sample_value(name, labels or None)
        return 0.0 if found is None else found
