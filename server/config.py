"""Server settings: one table that gives the CLI flags, the env vars and the docs.

Every setting is a field of :class:`Settings` with a default, a help text and
an env var ``SLEEPSYNC_<NAME>``. :func:`add_arguments` turns the table into
``argparse`` flags, so a flag on the command line beats the env var, which
beats the default. A bad value, from either place, makes argparse exit with a
one-line message naming the flag or variable, never a traceback.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any

__all__ = ["ENV_PREFIX", "Settings", "add_arguments", "env_name", "settings_from_args"]

ENV_PREFIX = "SLEEPSYNC_"


def _setting(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    aliases: tuple[str, ...] = (),
    secret: bool = False,
) -> Any:
    """One setting; a ``secret`` one (it may hold a password) is left out of ``repr``."""
    metadata = {"help": help, "minimum": minimum, "aliases": aliases}
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a server node can be told. Defaults suit one laptop."""

    host: str = _setting("127.0.0.1", "address the websocket and HTTP port binds to")
    port: int = _setting(8765, "websocket and HTTP port (0 picks a free one)", minimum=0)
    tls_cert_file: str = _setting(
        "",
        "certificate chain (PEM) of this node: the port then serves wss:// and https:// "
        "only (empty: ws:// and http://)",
    )
    tls_key_file: str = _setting(
        "", "private key (PEM) of --tls-cert-file (empty: it is in the certificate file)"
    )
    allowed_origins: str = _setting(
        "",
        "browser origins (https://host[:port], comma-separated) whose pages may open a "
        "websocket; any other Origin is refused with 403 in the handshake. Clients that "
        "send no Origin (terminal, TUI, load tester) always pass. Empty: no browser page; "
        "*: any",
    )
    node_id: str = _setting("", "this node's name in presence and logs (default: host-pid)")
    tick_hz: float = _setting(10.0, "room ticks per second", minimum=0.1)
    room_capacity: int = _setting(50, "most dreamers and observers in one room", minimum=1)
    room_idle_seconds: float = _setting(
        30.0,
        "an empty room goes idle after this many seconds: its owner lets go of it and "
        "its stored state is kept for --retention-hours",
        minimum=0.0,
    )
    retention_hours: float = _setting(
        24.0,
        "hours an idle room's stored events, snapshot and inbox are kept (Redis key TTLs); "
        "joining the room within that time resumes it. 0: removed as soon as it is idle",
        minimum=0.0,
    )
    unused_room_seconds: float = _setting(
        5.0,
        "an empty room that never held a story line, a template or a pod (it was only "
        "joined) is removed after this many seconds (at most --room-idle-seconds), not "
        "retired: nothing of it is kept",
        minimum=0.0,
    )
    max_rooms: int = _setting(1000, "most rooms this deployment holds at once", minimum=1)
    max_clients: int = _setting(
        10000, "most websocket clients on this node (counted once they said hello)", minimum=1
    )
    max_greeting_clients: int = _setting(
        1000,
        "most connections on this node that have not said hello yet; a new one beyond "
        "this closes the oldest of them (hello_timeout), so idle sockets lock no one out",
        minimum=1,
    )
    max_rooms_per_client: int = _setting(8, "most rooms one connection may join", minimum=1)
    room_creations_per_minute: int = _setting(
        5,
        "rooms one connection may create (join while they do not exist) per minute; "
        "beyond, such a join is refused with too_many_new_rooms",
        minimum=1,
    )
    template_upload_interval: float = _setting(
        5.0,
        "seconds one connection must wait between two template uploads (upload_too_soon)",
        minimum=0.0,
    )
    max_frame_bytes: int = _setting(
        65536, "largest inbound websocket frame; bigger closes with 1009", minimum=256
    )
    max_inbound_rate: float = _setting(
        50.0,
        "inbound frames per second per client, valid or not; more closes with 1008",
        minimum=0.1,
    )
    inbound_burst: int = _setting(100, "frames a client may send in one burst", minimum=1)
    max_bad_frames: int = _setting(
        20, "invalid frames in a row before the connection is closed with 1008", minimum=1
    )
    hello_timeout: float = _setting(
        10.0,
        "seconds a new connection has to complete hello; later it is closed with 1008",
        minimum=0.1,
    )
    auth_secret_file: str = _setting(
        "",
        "file holding the shared secret (at least 32 bytes) that signs client tokens "
        "(HS256, `sleepsync token`); hello then needs a valid token",
    )
    auth_public_key_file: str = _setting(
        "",
        "Ed25519 public key (PEM) whose tokens (EdDSA) hello accepts; with or without "
        "--auth-secret-file",
    )
    insecure_no_auth: bool = _setting(
        False,
        "serve without tokens on a non-loopback --host: anyone who reaches the port may "
        "join any room as anyone and erase rooms (without auth settings the server "
        "refuses to bind anything but a loopback address)",
    )
    outbound_buffer_bytes: int = _setting(
        262144,
        "bytes queued to one client before it counts as a slow consumer (closed with 1013)",
        minimum=1024,
    )
    story_tail: int = _setting(20, "story lines kept in a room snapshot", minimum=0)
    snapshot_every: int = _setting(
        10, "owner saves the room snapshot every this many ticks", minimum=1
    )
    event_retention: int = _setting(
        2000, "events kept per room for resume (stream MAXLEN ~)", minimum=10
    )
    lease_ttl_ms: int = _setting(3000, "room ownership lease time-to-live", minimum=200)
    redis_url: str = _setting(
        "",
        "Redis shared by the nodes, redis://host:6379/0 (empty: one node, in-memory "
        "backend); give its password with --redis-password-file",
        aliases=("--redis",),
        secret=True,
    )
    redis_password_file: str = _setting(
        "",
        "file holding the Redis password (read at start, one trailing newline dropped); "
        "the --redis-url then carries none",
    )
    redis_timeout: float = _setting(
        2.0, "seconds one Redis command may take before it counts as failed", minimum=0.05
    )
    node_ttl_ms: int = _setting(
        6000,
        "a node silent this long counts as dead: its presence is removed and it leaves "
        "the fair share (heartbeats every lease TTL / 3)",
        minimum=300,
    )
    room_share_slack: int = _setting(
        0, "rooms a node may own beyond its fair share (rooms / live nodes)", minimum=0
    )
    inbox_limit: int = _setting(
        10000,
        "inputs waiting in one room's inbox; when full, new ones are refused with an error",
        minimum=10,
    )
    close_timeout: float = _setting(
        5.0,
        "seconds to wait for a closing handshake before dropping the TCP connection",
        minimum=0.1,
    )
    shutdown_grace: float = _setting(
        5.0, "seconds clients get to finish closing on SIGTERM/SIGINT", minimum=0.0
    )
    engine_seed: int = _setting(0, "seed of new rooms' dream engines (0: derived from the room id)")
    mqtt_url: str = _setting(
        "",
        "MQTT broker of the pods, mqtt://user:pass@host:1883 or mqtts://user@host:8883 "
        "(TLS) (empty: start the embedded amqtt broker on 127.0.0.1, needs the 'embedded' "
        "extra)",
        secret=True,
    )
    mqtt_password_file: str = _setting(
        "",
        "file holding the MQTT password (read at start, one trailing newline dropped); "
        "the --mqtt-url then carries none",
    )
    mqtt_ca_file: str = _setting(
        "",
        "CA certificate file (PEM) that signed the broker's certificate, for mqtts:// URLs "
        "(empty: the system's CAs)",
    )
    mqtt_embedded_port: int = _setting(
        1883, "port of the embedded MQTT broker (0 picks a free one)", minimum=0
    )
    mqtt_client_id: str = _setting(
        "",
        "start of this node's MQTT client id (default: sleepsync-NODE_ID); a random suffix "
        "is always added, so no pod can guess the id and take over the node's connection",
    )
    mqtt_queue: int = _setting(
        10000,
        "MQTT messages received but not yet ingested; when full the oldest is dropped (counted)",
        minimum=1,
    )
    mqtt_cue_queue: int = _setting(
        1000, "cues waiting to be published to pods; when full new cues are dropped", minimum=1
    )
    mqtt_backoff_cap: float = _setting(
        10.0, "longest wait between MQTT reconnect attempts, in seconds", minimum=0.1
    )
    mqtt_dedup_window: int = _setting(
        1024, "telemetry seqs remembered per pod boot to drop QoS 1 redeliveries", minimum=1
    )
    mqtt_fault_threshold: int = _setting(
        10,
        "invalid payloads from one pod within --mqtt-fault-window that make it a sensor fault",
        minimum=1,
    )
    mqtt_fault_window: float = _setting(
        10.0, "seconds over which a pod's invalid payloads are counted", minimum=0.1
    )
    mqtt_log_interval: float = _setting(
        10.0,
        "at most one log line per pod about invalid payloads per this many seconds",
        minimum=0.0,
    )
    mqtt_discover_rooms: bool = _setting(
        True, "open a room when a pod announces itself online in it (status topic)"
    )
    mqtt_pod_rooms_per_hour: int = _setting(
        4,
        "rooms one pod may enter per hour through its status or telemetry; its messages "
        "for further rooms are dropped (counted as room_limit)",
        minimum=1,
    )
    mqtt_max_clock_skew: float = _setting(
        60.0,
        "seconds a telemetry timestamp may run ahead of this node's clock (further: "
        "refused as future_ts); a pod's new boot may not start further back than this "
        "before its newest sample (stale_boot)",
        minimum=0.0,
    )
    journal_dir: str = _setting(
        "",
        "record every room this node owns into this directory as dream journal segments "
        "(empty: no recording)",
    )
    journal_segment_mb: float = _setting(
        64.0,
        "a journal segment over this many MB (compressed) ends and a new one starts",
        minimum=0.001,
    )
    journal_max_mb: float = _setting(
        1024.0,
        "the journal directory is kept under this many MB: the oldest segments go",
        minimum=0.001,
    )
    journal_hash_every: int = _setting(
        10,
        "ticks between the engine state hashes a journal (recorded or exported) keeps",
        minimum=1,
    )
    log_level: str = _setting("INFO", "DEBUG, INFO, WARNING or ERROR")

    @property
    def tick_seconds(self) -> float:
        return 1.0 / self.tick_hz

    @property
    def retention_ms(self) -> int:
        return round(self.retention_hours * 3_600_000)


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _convert(f: Field[Any], raw: str, source: str) -> Any:
    kind: Any = type(f.default)
    try:
        value = kind(raw) if kind is not bool else raw.lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{source}: expected {kind.__name__}, got {raw!r}"
        ) from None
    minimum = f.metadata.get("minimum")
    if minimum is not None and value < minimum:
        raise argparse.ArgumentTypeError(f"{source}: must be at least {minimum}, got {raw}")
    return value


def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None) -> None:
    """Add one flag per setting; defaults come from ``env`` (``os.environ``)."""
    env = os.environ if env is None else env
    for f in fields(Settings):
        var = env_name(f.name)
        default = f.default
        if var in env:
            try:
                default = _convert(f, env[var], var)
            except argparse.ArgumentTypeError as exc:
                parser.error(str(exc))

        def convert(raw: str, f: Field[Any] = f) -> Any:
            return _convert(f, raw, _flag(f.name))

        convert.__name__ = type(f.default).__name__
        # A yes/no setting given alone (``--insecure-no-auth``) means yes.
        switch: dict[str, Any] = {"nargs": "?", "const": True} if f.type == "bool" else {}
        parser.add_argument(
            _flag(f.name),
            *f.metadata.get("aliases", ()),
            dest=f.name,
            type=convert,
            default=default,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} (env {var}, default: {f.default!r})",
            **switch,
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    values = {f.name: getattr(args, f.name) for f in fields(Settings) if hasattr(args, f.name)}
    return Settings(**values)


def settings_table() -> list[tuple[str, str, str, str]]:
    """(flag, env var, default, help) for every setting: the README table."""
    return [
        (_flag(f.name), env_name(f.name), repr(f.default), str(f.metadata["help"]))
        for f in fields(Settings)
    ]
