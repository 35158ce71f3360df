"""Secret files: read at a node's start, written for docker compose by ``sleepsync secrets``."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from sleepsync.cli import main
from sleepsync.protocol.credentials import SERVER_USER, parse_credentials
from sleepsync.server.broker import write_credentials
from sleepsync.server.secret_files import (
    COMPOSE_SECRETS,
    read_secret_file,
    write_compose_secrets,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secret_file_loses_one_trailing_newline_and_is_never_empty(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.write_text("p@ss word\n")
    assert read_secret_file(str(path), "--x-file") == "p@ss word"
    path.write_text("\n")
    with pytest.raises(ValueError, match=f"--x-file: {path} is empty"):
        read_secret_file(str(path), "--x-file")
    with pytest.raises(ValueError, match="--x-file: cannot read"):
        read_secret_file(str(tmp_path / "missing"), "--x-file")


def test_sleepsync_secrets_writes_what_compose_mounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    creds = tmp_path / "passwd.credentials"
    logins = {c.username: c.password for c in write_credentials(3, tmp_path / "passwd", creds)}
    out = tmp_path / "secrets"
    assert main(["secrets", "--dir", str(out), "--credentials", str(creds)]) == 0
    assert mode(out) == 0o700, "on the host, only the owner reaches them"
    assert sorted(p.name for p in out.iterdir()) == sorted(COMPOSE_SECRETS)
    assert all(mode(out / name) == 0o644 for name in COMPOSE_SECRETS)
    read = {name: (out / name).read_text() for name in COMPOSE_SECRETS}
    server = logins.pop(SERVER_USER)
    assert read["mqtt_password"] == server + "\n"
    assert read["mosquitto_pub"] == f"-u {SERVER_USER}\n-P {server}\n"
    assert parse_credentials(read["pod_credentials"]) == logins, "pods only"
    redis = read["redis_password"].strip()
    assert len(redis) >= 40 and len(read["auth_secret"].strip()) >= 40
    digest = hashlib.sha256(redis.encode()).hexdigest()
    assert read["redis_acl"] == f"user default on #{digest} ~* &* +@all\n"
    assert redis not in read["redis_acl"], "Redis gets the hash only"
    printed = capsys.readouterr().out
    assert all(secret.strip() not in printed for secret in read.values())
    # A rerun keeps the random secrets; --rotate draws new ones.
    write_compose_secrets(out, creds)
    assert (out / "redis_password").read_text() == read["redis_password"]
    assert (out / "auth_secret").read_text() == read["auth_secret"]
    write_compose_secrets(out, creds, rotate=True)
    assert (out / "redis_password").read_text() != read["redis_password"]
    assert (out / "auth_secret").read_text() != read["auth_secret"]


def test_sleepsync_secrets_needs_the_credentials_of_mqtt_passwd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.credentials"
    assert main(["secrets", "--dir", str(tmp_path / "s"), "--credentials", str(missing)]) == 1
    assert "run sleepsync mqtt-passwd first" in capsys.readouterr().err
    pods_only = tmp_path / "pods.credentials"
    pods_only.write_text("pod-001:x\n")
    assert main(["secrets", "--dir", str(tmp_path / "s"), "--credentials", str(pods_only)]) == 1
    assert f"no {SERVER_USER} line" in capsys.readouterr().err
