"""Fixtures: a real Mosquitto with the shipped config, ACL and generated passwords.

The broker runs ``deploy/mosquitto/mosquitto.conf`` with only the listener
(127.0.0.1 on a free port), the password file, the ACL path and the
persistence directory rewritten, so the tests exercise the deployed rules.
``mosquitto_tls`` also turns on the config's optional TLS listener (its
``#tls `` lines) on a second free port, with a certificate for 127.0.0.1
signed by a CA that ``trustme`` makes for the test.
Mosquitto missing is a failure with the packages to install, never a skip.
"""

from __future__ import annotations

import contextlib
import getpass
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from sleepsync.server.broker import SERVER_USER, read_credentials, write_credentials

from nodes import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "mosquitto"
#: Pods with credentials in every test broker, beyond pod-001..pod-008.
EXTRA_PODS = ("lila", "mallory", "noisy", "bad!pod")


def _find(binary: str, package: str) -> str:
    for candidate in (shutil.which(binary), f"/usr/sbin/{binary}", f"/usr/bin/{binary}"):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail(
        f"{binary} is not installed: run `make services` or "
        f"`apt-get install mosquitto mosquitto-clients` ({package})",
        pytrace=False,
    )


@dataclass
class Mosquitto:
    """A mosquitto process on 127.0.0.1:port; restartable on the same port and data."""

    binary: str
    workdir: Path
    port: int
    passwords: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    #: Port of the TLS listener (None: the shipped default, TLS off).
    tls_port: int | None = None

    @property
    def ca_file(self) -> Path:
        """The PEM of the CA that signed the TLS listener's certificate."""
        return self.workdir / "ca.pem"

    def tls_url(self, user: str | None = None) -> str:
        assert self.tls_port is not None, "use the mosquitto_tls fixture"
        plain = self.url(user).replace("mqtt://", "mqtts://", 1)
        return plain.replace(f":{self.port}", f":{self.tls_port}")

    @property
    def server_url(self) -> str:
        return f"mqtt://{SERVER_USER}:{self.passwords[SERVER_USER]}@127.0.0.1:{self.port}"

    def url(self, user: str | None = None) -> str:
        if user is None:
            return f"mqtt://127.0.0.1:{self.port}"
        return f"mqtt://{user}:{self.passwords[user]}@127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        overrides = {
            "listener": f"listener {self.port} 127.0.0.1",
            "password_file": f"password_file {self.workdir / 'passwd'}",
            "acl_file": f"acl_file {self.workdir / 'acl'}",
            "persistence_location": f"persistence_location {self.workdir / 'data'}/",
            "log_dest": f"log_dest file {self.workdir / 'mosquitto.log'}",
        }
        tls = {
            "listener": f"listener {self.tls_port} 127.0.0.1",
            "certfile": f"certfile {self.workdir / 'server.pem'}",
            "keyfile": f"keyfile {self.workdir / 'server.key'}",
        }
        lines = []
        for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
            if line.startswith("#tls ") and self.tls_port is not None:
                line = line.removeprefix("#tls ")
                lines.append(tls.pop(line.split(" ", 1)[0], line))
                continue
            key = line.split(" ", 1)[0]
            lines.append(overrides.pop(key, line))
        assert not overrides, f"the shipped config lost its {sorted(overrides)} lines"
        if self.tls_port is not None:
            assert not tls, f"the shipped config lost its #tls {sorted(tls)} lines"
            self._write_certificates()
        # Run as whoever runs the tests (as root mosquitto would switch to `mosquitto`).
        lines.append(f"user {getpass.getuser()}")
        config = self.workdir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        shutil.copy(DEPLOY / "acl", self.workdir / "acl")
        (self.workdir / "data").mkdir(exist_ok=True)
        return config

    def _write_certificates(self) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(self.ca_file)
        cert.private_key_pem.write_to_path(self.workdir / "server.key")
        with (self.workdir / "server.pem").open("wb") as f:
            for pem in cert.cert_chain_pems:
                f.write(pem.bytes())

    def start(self) -> None:
        config = self.write_config()
        self.process = subprocess.Popen(
            [self.binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.workdir / "mosquitto.log").read_text(errors="replace")
                raise RuntimeError(f"mosquitto exited: {log[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening within 10 s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    return _find("mosquitto", "mosquitto")


@pytest.fixture(scope="session")
def mosquitto_pub() -> str:
    return _find("mosquitto_pub", "mosquitto-clients")


@pytest.fixture
def mosquitto(tmp_path: Path, mosquitto_bin: str) -> Iterator[Mosquitto]:
    """A fresh broker per test, so retained statuses never leak between tests."""
    creds = tmp_path / "credentials"
    write_credentials(8, tmp_path / "passwd", creds, extra_users=EXTRA_PODS)
    broker = Mosquitto(mosquitto_bin, tmp_path, free_port(), read_credentials(creds))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_tls(tmp_path: Path, mosquitto_bin: str) -> Iterator[Mosquitto]:
    """A fresh broker with the shipped TLS listener on as well (``tls_port``, ``ca_file``)."""
    creds = tmp_path / "credentials"
    write_credentials(8, tmp_path / "passwd", creds, extra_users=EXTRA_PODS)
    broker = Mosquitto(mosquitto_bin, tmp_path, free_port(), read_credentials(creds))
    broker.tls_port = free_port()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
