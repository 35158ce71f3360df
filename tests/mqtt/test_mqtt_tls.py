"""``mqtts://`` against a real Mosquitto with the shipped TLS listener, and secrets.

The broker's certificate is signed by a CA the test makes (``trustme``):
clients given that CA connect; clients without it are refused with one line
that says why. The server's password may come from a file, and no log line
carries it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Mosquitto

from sleepsync.client.load import LoadOptions, LoadSetupError, preflight, run_load
from sleepsync.client.pods import PodFleet, PodOptions
from sleepsync.server.broker import SERVER_USER

from nodes import running_node, wait_for

SLEEPSYNC = os.path.join(os.path.dirname(sys.executable), "sleepsync")


def password_file(broker: Mosquitto, user: str = SERVER_USER) -> Path:
    path = broker.workdir / f"{user}.password"
    path.write_text(broker.passwords[user] + "\n")  # as `echo` writes it
    return path


async def test_node_and_pods_speak_tls_with_the_ca(mosquitto_tls: Mosquitto) -> None:
    broker = mosquitto_tls
    url = broker.tls_url().replace("mqtts://", f"mqtts://{SERVER_USER}@", 1)
    async with running_node(
        mqtt=True,
        mqtt_url=url,
        mqtt_password_file=str(password_file(broker)),
        mqtt_ca_file=str(broker.ca_file),
    ) as node:
        fleet = PodFleet(
            PodOptions(
                room="tls",
                count=2,
                rate=10,
                profile="calm",
                mqtt=broker.tls_url(),
                passwords=broker.passwords,
                ca_file=str(broker.ca_file),
            )
        )
        task = asyncio.create_task(fleet.run())
        try:
            await wait_for(lambda: "tls" in node.rooms.owned, 15, "room discovered over TLS")
            ingested = lambda: node.metrics.value("sleepsync_telemetry_ingested_total")  # noqa: E731
            await wait_for(lambda: ingested() >= 10, 15, "telemetry over TLS")
        finally:
            fleet.stop()
            await task
        assert node.ingest is not None and node.ingest.connections == 1
        assert all(pod.reconnects == 0 for pod in fleet.pods)


async def test_a_node_without_the_ca_is_refused_in_one_line(
    mosquitto_tls: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    url = mosquitto_tls.tls_url(SERVER_USER)
    with caplog.at_level(logging.WARNING, logger="sleepsync.ingest"):
        async with running_node(mqtt=True, mqtt_url=url) as node:
            await wait_for(
                lambda: node.metrics.value("sleepsync_mqtt_reconnects_total") >= 1, 15, "refused"
            )
            assert node.ingest is not None and node.ingest.connections == 0
    refused = [r for r in caplog.records if "lost or refused" in r.getMessage()]
    assert refused, caplog.text
    line = refused[0].getMessage()
    assert "\n" not in line and refused[0].exc_info is None
    assert "not trusted" in line and "CA file" in line, line
    assert mosquitto_tls.passwords[SERVER_USER] not in caplog.text


async def test_pods_without_the_ca_say_so_in_one_line(mosquitto_tls: Mosquitto) -> None:
    command = [
        SLEEPSYNC, "pods", "--room", "tls", "--count", "3", "--duration", "2",
        "--mqtt", mosquitto_tls.tls_url(),
        "--credentials", str(mosquitto_tls.workdir / "credentials"),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = err.decode().splitlines()
    refused = [line for line in lines if "cannot reach the broker" in line]
    assert len(refused) == 1, lines  # three pods, one reason: one line
    assert "not trusted" in refused[0] and "Traceback" not in err.decode()


async def test_pods_with_the_ca_on_the_command_line(mosquitto_tls: Mosquitto) -> None:
    broker = mosquitto_tls
    async with running_node(mqtt=True, mqtt_url=broker.server_url) as node:
        command = [
            SLEEPSYNC, "pods", "--room", "cli", "--count", "1", "--rate", "10",
            "--duration", "3", "--mqtt", broker.tls_url(), "--ca-file", str(broker.ca_file),
            "--credentials", str(broker.workdir / "credentials"),
        ]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err
        assert "cannot reach" not in err.decode()
        assert "mqtts://" in err.decode()  # where the pods went, with no password
        assert node.metrics.value("sleepsync_telemetry_ingested_total") > 0


async def test_load_over_tls(mosquitto_tls: Mosquitto) -> None:
    broker = mosquitto_tls
    async with running_node(mqtt=True, mqtt_url=broker.server_url) as node:
        opts = LoadOptions(
            servers=(node.url,),
            mqtt=broker.tls_url(),
            credentials=tuple(broker.passwords.items()),
            rooms=1,
            pods_per_room=2,
            observers_per_room=1,
            rate=5.0,
            duration=2.0,
        )
        with pytest.raises(LoadSetupError, match="not trusted"):
            await preflight(opts)
        report = await run_load(dataclasses.replace(opts, ca_pem=broker.ca_file.read_text()))
    assert report.to_json()["published"] == 20
    assert report.to_json()["samples_lost"] == 0


# ---------------------------------------------------------------- the password file
async def test_the_password_can_come_from_a_file(mosquitto: Mosquitto) -> None:
    url = f"mqtt://{SERVER_USER}@127.0.0.1:{mosquitto.port}"
    async with running_node(
        mqtt=True, mqtt_url=url, mqtt_password_file=str(password_file(mosquitto))
    ) as node:
        assert node.ingest is not None
        await wait_for(lambda: node.ingest is not None and node.ingest.connected, 15, "connected")


@pytest.mark.parametrize(
    ("url", "content", "message"),
    [
        ("mqtt://u:pw@127.0.0.1:1", "secret\n", "already carries a password"),
        ("", "secret\n", "needs --mqtt-url"),
        ("mqtt://u@127.0.0.1:1", "\n", "is empty"),
        ("mqtt://u@127.0.0.1:1", None, "cannot read"),
    ],
)
def test_bad_password_files_fail_in_one_sentence(
    tmp_path: Path, url: str, content: str | None, message: str
) -> None:
    path = tmp_path / "password"
    if content is not None:
        path.write_text(content)
    proc = _serve(["--mqtt-url", url, "--mqtt-password-file", str(path)])
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "secret" not in proc.stderr


def test_a_ca_file_needs_an_mqtts_url(tmp_path: Path, mosquitto: Mosquitto) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    proc = _serve(["--mqtt-url", "mqtt://127.0.0.1:1", "--mqtt-ca-file", str(ca)])
    assert proc.returncode == 2 and "needs an mqtts:// URL" in proc.stderr, proc.stderr
    proc = _serve(["--mqtt-url", "mqtts://127.0.0.1:1", "--mqtt-ca-file", str(ca)])
    assert proc.returncode == 2 and "no usable PEM certificate" in proc.stderr, proc.stderr


def _serve(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SLEEPSYNC, "serve", "--port", "0", *args], capture_output=True, text=True, timeout=60
    )
