"""Credentials for a real Mosquitto, and the service installer."""

from __future__ import annotations

import base64
import hashlib
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

from sleepsync.cli import main
from sleepsync.server.broker import SERVER_USER, hash_password, read_credentials


def verify(password: str, hashed: str) -> bool:
    _, algorithm, iterations, salt, digest = hashed.split("$")
    assert algorithm == "7"
    derived = hashlib.pbkdf2_hmac(
        "sha512", password.encode(), base64.b64decode(salt), int(iterations)
    )
    return base64.b64encode(derived).decode() == digest


def test_mqtt_passwd_writes_hashes_and_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "passwd"
    assert main(["mqtt-passwd", "--pods", "5", "--out", str(out)]) == 0
    creds = read_credentials(tmp_path / "passwd.credentials")
    assert list(creds) == [SERVER_USER, "pod-001", "pod-002", "pod-003", "pod-004", "pod-005"]
    hashes = dict(line.split(":", 1) for line in out.read_text().splitlines())
    assert all(verify(creds[user], hashes[user]) for user in creds)
    assert stat.S_IMODE((tmp_path / "passwd.credentials").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    printed = capsys.readouterr().out
    assert f"mqtt://{SERVER_USER}@HOST:1883 --mqtt-password-file" in printed
    assert not any(password in printed for password in creds.values()), "never printed"


def test_hashes_match_mosquitto_passwd(tmp_path: Path) -> None:
    """Same scheme as the stock tool: what it writes, our check reads, and back."""
    passwd = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "u", "secret"], check=True)
    assert verify("secret", passwd.read_text().strip().split(":", 1)[1])
    assert verify("secret", hash_password("secret"))


def test_ensure_services_is_quiet_when_everything_is_installed() -> None:
    result = subprocess.run(
        ["sh", str(ROOT / "tools" / "ensure-services.sh")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")
