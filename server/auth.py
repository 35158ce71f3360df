"""Whom a node lets in: the keys hello's tokens must verify with, and open mode.

A node with ``--auth-secret-file`` and/or ``--auth-public-key-file``
requires a signed token in every hello (see :mod:`sleepsync.protocol.identity`).
Without them it runs *open*: any name, any room, the operator role, which is
only safe when nothing but this machine can reach the port. So open mode is
allowed on a loopback address (one log line says so), and binding anything
else without keys refuses to start, in one line, unless
``--insecure-no-auth`` says the operator knows.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from sleepsync.protocol.identity import Keys

from .config import Settings

__all__ = ["exposure", "is_loopback", "load_keys"]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``).

    Anything else, a host name or the wildcard ``0.0.0.0`` included, is not.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_keys(settings: Settings) -> Keys | None:
    """The keys the node's hello checks tokens with; None: open mode.

    Raises ValueError, in one sentence naming the flag, for an unreadable,
    empty or unfit file.
    """
    secret = _read(settings.auth_secret_file, "--auth-secret-file")
    pem = _read(settings.auth_public_key_file, "--auth-public-key-file")
    if secret is None and pem is None:
        return None
    try:
        keys = Keys.load(secret=secret, pem=pem)
    except ValueError as exc:
        flag = "--auth-secret-file" if secret is not None and pem is None else "auth keys"
        raise ValueError(f"{flag}: {exc}") from None
    if pem is not None and keys.private_key is not None:
        raise ValueError(
            "--auth-public-key-file: give the server the public key, not the private one"
        )
    return keys


def _read(path: str, flag: str) -> bytes | None:
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    if not data.strip():
        raise ValueError(f"{flag}: {path} is empty")
    return data


def exposure(settings: Settings, keys: Keys | None) -> str | None:
    """The log line a node without keys says at start (None: it has keys).

    Raises ValueError, in one line, when the node would serve a non-loopback
    address without keys and ``--insecure-no-auth`` was not given.
    """
    if keys is not None:
        return None
    where = f"{settings.host}:{settings.port}"
    if is_loopback(settings.host):
        return (
            f"no auth settings: open mode on loopback {where}: anyone on this machine may "
            "join any room under any name (give --auth-secret-file to require tokens)"
        )
    if not settings.insecure_no_auth:
        raise ValueError(
            f"refusing to serve {where} without auth: give --auth-secret-file or "
            "--auth-public-key-file (tokens: sleepsync token), bind a loopback --host, "
            "or say --insecure-no-auth"
        )
    return (
        f"--insecure-no-auth: open mode on {where}: anyone who reaches it may join any room "
        "under any name and erase rooms"
    )
