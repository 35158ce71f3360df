"""The Redis password from a file (``--redis-password-file``), against a redis-server
started with ``--requirepass``; the password never shows in settings, errors or logs."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleepsync.client.connection import RoomClient
from sleepsync.server.backend.base import BackendError
from sleepsync.server.config import Settings
from sleepsync.server.node import Node

from cluster import SLEEPSYNC
from nodes import Recorder, running_node, wait_for
from nodes import test_settings as node_settings
from redis_server import RedisServer

PASSWORD = "s3cret-redis-pw-8c1f"


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", password=PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "redis-password"
    path.write_text(PASSWORD + "\n")  # as `echo` writes it
    path.chmod(0o600)
    return path


async def test_a_node_logs_in_with_the_password_from_the_file(
    locked_redis: RedisServer, password_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = {"redis_url": locked_redis.url, "redis_password_file": str(password_file)}
    async with running_node(**settings) as node:
        client = RoomClient(node.url, "locked", "lila")
        async with Recorder(client) as rec:
            await client.say("through a locked door")
            await wait_for(lambda: bool(rec.items("said")), what="the line")
        assert await node.backend.list_rooms() == ["locked"]
        assert PASSWORD not in repr(node.settings)
    assert PASSWORD not in caplog.text


async def test_without_the_password_the_node_says_so_and_not_more(
    locked_redis: RedisServer, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-it")
    for extra in ({}, {"redis_password_file": str(wrong)}):
        node = Node(node_settings(redis_url=locked_redis.url, **extra), mqtt=False)
        with pytest.raises(BackendError) as info:
            await node.start()
        await node.stop()
        message = info.value.message
        assert f"redis at 127.0.0.1:{locked_redis.port}" in message, message
        assert "not-it" not in message and PASSWORD not in message


def test_a_url_password_is_left_out_of_the_settings_repr() -> None:
    settings = Settings(redis_url=f"redis://:{PASSWORD}@127.0.0.1:6379/0")
    assert PASSWORD not in repr(settings)


@pytest.mark.parametrize(
    ("url", "content", "message"),
    [
        (f"redis://:{PASSWORD}@127.0.0.1:1/0", "other\n", "already carries a password"),
        ("", "other\n", "needs --redis-url"),
        ("redis://127.0.0.1:1/0", "\n", "is empty"),
        ("redis://127.0.0.1:1/0", None, "cannot read"),
    ],
)
def test_bad_password_files_fail_in_one_sentence(
    tmp_path: Path, url: str, content: str | None, message: str
) -> None:
    path = tmp_path / "password"
    if content is not None:
        path.write_text(content)
    env = {**os.environ, "SLEEPSYNC_REDIS_PASSWORD_FILE": str(path)}
    proc = subprocess.run(
        [SLEEPSYNC, "serve", "--port", "0", "--redis-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert PASSWORD not in proc.stderr and "other" not in proc.stderr
