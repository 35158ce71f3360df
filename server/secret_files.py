"""Secrets read from files: passwords that never sit in a URL, an env var or a command line.

Every secret setting has a ``--…-file`` form (``SLEEPSYNC_…_FILE``): the
file holds the secret alone, as a container runtime mounts it (Docker and
Podman secrets appear as ``/run/secrets/NAME``). The node reads it once at
start. A file that cannot be read, or is empty, stops the node with one
sentence naming the flag and the path, never the content.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["read_secret_file", "read_text_file"]


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
