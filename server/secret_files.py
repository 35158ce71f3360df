"""Secrets in files: read by a node at start, written for a compose deployment.

Reading. Every secret setting has a ``--…-file`` form (``SLEEPSYNC_…_FILE``):
the file holds the secret alone, as a container runtime mounts it (Docker
and Podman secrets appear as ``/run/secrets/NAME``). The node reads it once
at start. A file that cannot be read, or is empty, stops the node with one
sentence naming the flag and the path, never the content.

Writing (``sleepsync secrets``). :func:`write_compose_secrets` fills the
directory that ``docker-compose.yml`` takes its secrets from:

- ``mqtt_password``: the server's MQTT password, from the plain credentials
  of ``sleepsync mqtt-passwd`` (nodes: ``SLEEPSYNC_MQTT_PASSWORD_FILE``);
- ``mosquitto_pub``: the same login as options for ``mosquitto_pub`` (the
  broker's health check reads it through ``XDG_CONFIG_HOME``, so the
  password is on no command line);
- ``pod_credentials``: the pods' lines of those credentials (the simulator);
- ``redis_password``: random (nodes: ``SLEEPSYNC_REDIS_PASSWORD_FILE``; the
  Redis health check: ``REDISCLI_AUTH``);
- ``redis_acl``: a Redis ACL file holding only the SHA-256 of that password
  (Redis reads it with ``--aclfile``, as Mosquitto reads hashes);
- ``auth_secret``: random (nodes: ``SLEEPSYNC_AUTH_SECRET_FILE``).

Random secrets are kept when the directory holds them already (a rerun
after ``mqtt-passwd`` refreshes the MQTT files without logging Redis or
clients out); ``--rotate`` draws new ones. The directory is made mode 0700
and its files 0644: Docker Compose bind-mounts file secrets as they are (it
cannot change their owner or mode), so a file must be readable by the
containers' non-root users; on the host only the directory's owner can
reach it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from sleepsync.protocol.credentials import SERVER_USER, format_credentials, parse_credentials

__all__ = ["COMPOSE_SECRETS", "read_secret_file", "read_text_file", "write_compose_secrets"]

#: The files of :func:`write_compose_secrets`, as ``docker-compose.yml`` names them.
COMPOSE_SECRETS = (
    "mqtt_password",
    "mosquitto_pub",
    "pod_credentials",
    "redis_password",
    "redis_acl",
    "auth_secret",
)


def read_text_file(path: str, flag: str) -> str:
    """The file's text; ValueError naming ``flag`` and ``path`` when unreadable."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{flag}: cannot read {path}: {getattr(exc, 'strerror', exc)}") from None


def read_secret_file(path: str, flag: str) -> str:
    """A secret file's content, less one trailing newline (``echo`` adds it).

    Raises ValueError (naming ``flag`` and ``path``) when the file cannot be
    read or holds nothing.
    """
    secret = read_text_file(path, flag).removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ValueError(f"{flag}: {path} is empty")
    return secret


def write_compose_secrets(directory: Path, credentials: Path, *, rotate: bool = False) -> None:
    """Write :data:`COMPOSE_SECRETS` into ``directory`` (see the module docstring).

    ``credentials`` is the plain file of ``sleepsync mqtt-passwd``. Raises
    ValueError (in one sentence) when it lacks the server's line, OSError
    when a file cannot be written.
    """
    logins = parse_credentials(credentials.read_text(), str(credentials))
    server = logins.pop(SERVER_USER, None)
    if not server:
        raise ValueError(f"{credentials} has no {SERVER_USER} line (sleepsync mqtt-passwd)")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    redis = _kept(directory / "redis_password", rotate)
    files = {
        "mqtt_password": server + "\n",
        "mosquitto_pub": f"-u {SERVER_USER}\n-P {server}\n",
        "pod_credentials": format_credentials(logins),
        "redis_password": redis + "\n",
        "redis_acl": f"user default on #{hashlib.sha256(redis.encode()).hexdigest()} ~* &* +@all\n",
        "auth_secret": _kept(directory / "auth_secret", rotate) + "\n",
    }
    for name in COMPOSE_SECRETS:
        _write(directory / name, files[name])


def _kept(path: Path, rotate: bool) -> str:
    """The secret in ``path`` if there is one (and no ``rotate``), else a new one."""
    if not rotate:
        with contextlib.suppress(FileNotFoundError):
            if old := path.read_text().strip():
                return old
    return secrets.token_urlsafe(32)


def _write(path: Path, text: str) -> None:
    """Replace ``path`` at once with ``text``, mode 0644 (see the module docstring)."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        os.fchmod(f.fileno(), 0o644)
    tmp.replace(path)
