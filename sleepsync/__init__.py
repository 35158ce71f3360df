"""SleepSync: shared dream rooms.

The distribution's three packages live in the repository's top-level folders
(``protocol/``, ``server/``, ``client/``); this folder links them under their
import names (``sleepsync.protocol`` ...), so the package resolves from the
repository root for setuptools, mypy, pyright and IDEs alike.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sleepsync")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0+unknown"
