"""Fixtures of the security suite: signed tokens, a real Redis, a real Mosquitto.

Each test in this folder replays one attack of issue #10 against real
servers. Figures (before/after) are collected with the ``figures`` fixture
and printed in a "security figures" section at the end of the run.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import Issuer

from sleepsync.protocol.identity import Keys

from redis_server import RedisServer

# The MQTT fixtures live beside the MQTT tests; load them under another name.
_spec = importlib.util.spec_from_file_location(
    "mqtt_fixtures", Path(__file__).resolve().parents[1] / "mqtt" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
mqtt_fixtures = importlib.util.module_from_spec(_spec)
sys.modules["mqtt_fixtures"] = mqtt_fixtures
_spec.loader.exec_module(mqtt_fixtures)
Mosquitto = mqtt_fixtures.Mosquitto
mosquitto = mqtt_fixtures.mosquitto
mosquitto_bin = mqtt_fixtures.mosquitto_bin

FIGURES: list[str] = []


@pytest.fixture
def issuer(tmp_path: Path) -> Issuer:
    secret = tmp_path / "auth.secret"
    secret.write_text("correct-horse-battery-staple-" * 2 + "\n")
    secret.chmod(0o600)
    return Issuer(secret, Keys.load(secret=secret.read_bytes()))


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Lines a test records about its attack: printed at the end of the run."""
    lines: list[str] = []
    yield lines
    FIGURES.extend(f"{request.node.name}: {line}" for line in lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("security figures (attack: before -> after)")
        for line in FIGURES:
            terminalreporter.write_line(line)
