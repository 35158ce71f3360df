"""MQTT brokers: the embedded amqtt broker, and credentials for a real Mosquitto.

With no ``--mqtt`` URL a node starts :class:`EmbeddedBroker`, an in-process
amqtt broker (extra ``embedded``) on ``127.0.0.1``, so the laptop default
still speaks real MQTT and ``mosquitto_pub`` can publish into it. It accepts
anyone: it listens on loopback only. amqtt is slow (about 2k msg/s): a
deployment runs Mosquitto with the files in ``deploy/mosquitto/``.

:func:`write_credentials` makes the Mosquitto password file for the server
user and N pods (pod usernames are pod ids, as the ACL's ``%u`` patterns
need), hashed the way ``mosquitto_passwd`` hashes (``$7$``: PBKDF2-SHA512),
plus a plain ``user:password`` credentials file for the server and the pod
simulator.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleepsync.protocol.credentials import SERVER_USER, format_credentials, parse_credentials
from sleepsync.protocol.errors import SleepSyncError
from sleepsync.protocol.topics import pod_ids

__all__ = [
    "SERVER_USER",
    "BrokerUnavailable",
    "Credentials",
    "EmbeddedBroker",
    "hash_password",
    "read_credentials",
    "write_credentials",
]

log = logging.getLogger("sleepsync.broker")

#: The server's broker username (the ACL gives it read on telemetry and status).


class BrokerUnavailable(SleepSyncError):
    """The embedded broker cannot start (port taken, extra not installed)."""

    code = "broker_unavailable"


class EmbeddedBroker:
    """An amqtt broker in this process, on ``host:port`` (port 0: a free one)."""

    def __init__(self, port: int = 1883, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    async def start(self) -> None:
        try:
            from amqtt.broker import Broker  # type: ignore[import-untyped]
        except ImportError:
            raise BrokerUnavailable(
                "the embedded MQTT broker needs the 'embedded' extra: "
                "pip install 'sleepsync[embedded]', or pass --mqtt mqtt://HOST:PORT"
            ) from None
        if self.port == 0:
            self.port = _free_port(self.host)
        _check_port(self.host, self.port)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        broker = Broker(config)
        # amqtt logs each failure as an exception with a traceback (we report it
        # once), warns about its own PUBACK bookkeeping, and its state machine
        # library logs every transition at INFO: keep what matters.
        amqtt_log = logging.getLogger("amqtt")
        level = amqtt_log.level
        amqtt_log.setLevel(logging.CRITICAL)
        if logging.getLogger("transitions").level == logging.NOTSET:
            logging.getLogger("transitions").setLevel(logging.WARNING)
        try:
            await broker.start()
        except Exception as exc:
            raise BrokerUnavailable(
                f"the embedded MQTT broker cannot listen on {self.host}:{self.port}: "
                f"{exc.__cause__ or exc}"
            ) from None
        finally:
            amqtt_log.setLevel(level if level != logging.NOTSET else logging.ERROR)
        self._broker = broker
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            try:
                await broker.shutdown()
            except Exception:  # a broker that fails to stop must not stop the node's shutdown
                log.exception("the embedded MQTT broker did not stop cleanly")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_port(host: str, port: int) -> None:
    """Fail early, in one sentence, when the port is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerUnavailable(
                    f"the embedded MQTT broker cannot listen on {host}:{port}: the port is "
                    "taken (another broker?); set --mqtt-embedded-port, or pass "
                    f"--mqtt mqtt://{host}:{port} to use that broker"
                ) from None
            raise BrokerUnavailable(
                f"the embedded MQTT broker cannot listen on {host}:{port}: {exc.strerror}"
            ) from None


# ---------------------------------------------------------------- Mosquitto credentials
@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


def hash_password(password: str, *, iterations: int = 101, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password hash (``$7$``, as ``mosquitto_passwd`` writes it)."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def write_credentials(
    pods: int,
    passwd: Path,
    credentials: Path,
    *,
    prefix: str = "pod",
    extra_users: tuple[str, ...] = (),
) -> list[Credentials]:
    """Write a Mosquitto password file and the plain credentials beside it.

    ``passwd`` holds hashes (mount it into the broker); ``credentials`` holds
    ``user:password`` lines, mode 0600 (give the server its password in a file,
    ``--mqtt-password-file``, which ``sleepsync secrets`` writes, and the whole
    file to ``sleepsync pods --credentials``). Passwords are random, 24
    URL-safe chars.
    """
    users = [SERVER_USER, *pod_ids(pods, prefix), *extra_users]
    if SERVER_USER in users[1:]:
        raise ValueError(f"{SERVER_USER!r} is the server's username, not a pod id")
    creds = [Credentials(user, secrets.token_urlsafe(18)) for user in users]
    for path in (passwd, credentials):
        path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(passwd, "".join(f"{c.username}:{hash_password(c.password)}\n" for c in creds))
    _write_private(credentials, format_credentials({c.username: c.password for c in creds}))
    return creds


def read_credentials(path: Path) -> dict[str, str]:
    """``user:password`` lines (blank lines and ``#`` comments ignored)."""
    return parse_credentials(path.read_text(), str(path))


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    tmp.replace(path)
