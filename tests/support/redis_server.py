"""A real ``redis-server`` process for tests, on a free port, with no persistence.

Tests never skip because redis-server is missing: they fail with one line
naming the package to install (``make test`` installs it when it can).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from nodes import free_port

MISSING = (
    "redis-server is not installed: install the Debian/Ubuntu package 'redis-server' "
    "(make services does it when it can)"
)


class RedisServer:
    """One redis-server; :meth:`restart` brings it back empty on the same port.

    With a ``password`` it runs with ``--requirepass`` (or with ``acl_file``,
    an ACL file that holds it); :attr:`url` carries none.
    """

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        password: str = "",
        acl_file: Path | None = None,
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(MISSING, pytrace=False)
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password
        self.acl_file = acl_file
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
                # Small stream nodes make MAXLEN ~ trim close to the asked length.
                "--stream-node-max-entries", "16",
                "--daemonize", "no",
                "--loglevel", "warning",
                *self._auth_args(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.ping():
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"redis-server exited: {err.strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not answer PING within 10 s")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(self._auth() + b"PING\r\n")
                return b"+PONG" in _replies(sock, 2 if self.password else 1)
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command through a raw socket (inline protocol), the reply's first line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            sock.sendall(self._auth() + (" ".join(args) + "\r\n").encode())
            return _replies(sock, 2 if self.password else 1).split(b"\r\n")[-2]

    def _auth_args(self) -> list[str]:
        if self.acl_file is not None:
            return ["--aclfile", str(self.acl_file)]
        return ["--requirepass", self.password] if self.password else []

    def _auth(self) -> bytes:
        return f"AUTH {self.password}\r\n".encode() if self.password else b""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        """Kill it and start it again empty (a Redis that lost its data)."""
        self.stop()
        self.start()


def _replies(sock: socket.socket, lines: int) -> bytes:
    """Read until ``lines`` reply lines came (one-line replies: +OK, :1, -ERR...)."""
    data = b""
    while data.count(b"\r\n") < lines:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data
