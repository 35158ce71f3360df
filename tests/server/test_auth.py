"""Open mode only on loopback; key files read once, each problem in one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sleepsync.server.auth import exposure, is_loopback, load_keys
from sleepsync.server.config import Settings


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.org", False),
        ("", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) == loopback


def test_open_mode_on_loopback_says_so_in_one_line() -> None:
    line = exposure(Settings(host="127.0.0.1", port=0), None)
    assert line is not None and "open mode" in line and "\n" not in line


def test_no_auth_on_another_address_refuses_to_start_unless_told() -> None:
    with pytest.raises(ValueError, match=r"refusing to serve 0\.0\.0\.0:8765 without auth"):
        exposure(Settings(host="0.0.0.0"), None)
    line = exposure(Settings(host="0.0.0.0", insecure_no_auth=True), None)
    assert line is not None and line.startswith("--insecure-no-auth")


def test_with_keys_any_address_is_fine(tmp_path: Path) -> None:
    secret = tmp_path / "auth.secret"
    secret.write_text("x" * 48 + "\n")
    settings = Settings(host="0.0.0.0", auth_secret_file=str(secret))
    keys = load_keys(settings)
    assert keys is not None and keys.algorithms() == ("HS256",)
    assert exposure(settings, keys) is None


def test_no_key_settings_no_keys() -> None:
    assert load_keys(Settings()) is None


def test_key_file_problems_are_one_sentence(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("tiny")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    private = Ed25519PrivateKey.generate()
    key = tmp_path / "auth.key"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub = tmp_path / "auth.pub"
    pub.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    cases = [
        (Settings(auth_secret_file=str(tmp_path / "nope")), "--auth-secret-file: cannot read"),
        (Settings(auth_secret_file=str(short)), "at least 32 bytes"),
        (Settings(auth_secret_file=str(empty)), "is empty"),
        (Settings(auth_public_key_file=str(short)), "Ed25519"),
        (Settings(auth_public_key_file=str(key)), "not the private one"),
    ]
    for settings, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            load_keys(settings)
        assert "\n" not in str(info.value)
    keys = load_keys(Settings(auth_public_key_file=str(pub)))
    assert keys is not None and keys.algorithms() == ("EdDSA",)
