"""What a connection must bring to the node's port: TLS, and a browser origin it allows.

How it works. The node serves websockets and its HTTP endpoints on one port
(``websockets.asyncio.server.serve``). Given a certificate
(``--tls-cert-file``, ``--tls-key-file``) the port speaks TLS only:
``wss://`` for clients and ``https://`` for ``/healthz``, ``/readyz`` and
``/metrics``, with one :class:`ssl.SSLContext` (TLS 1.2 at least).

Browsers send an ``Origin`` header with every websocket handshake, and a
page from any site may open a websocket to any host its visitor can reach
(a server on the visitor's loopback included). ``--allowed-origins`` lists
the pages' origins that may; a handshake with any other ``Origin`` is
refused with 403 before it reaches the gateway. Clients that are not
browsers (the terminal client, the TUI, the load tester) send no ``Origin``
and always pass; the HTTP endpoints are answered before the check.
"""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

from websockets.typing import Origin

from .secret_files import read_text_file

__all__ = ["allowed_origins", "tls_context"]


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext | None:
    """The server's TLS context (None without a certificate: plain ws:// and http://).

    ``cert_file`` holds the certificate chain (PEM, the server's own first);
    ``key_file`` its private key (PEM; empty when it is in ``cert_file``).
    Raises ValueError, in one sentence naming the flag, for files that do
    not load.
    """
    if not cert_file:
        if key_file:
            raise ValueError("--tls-key-file needs --tls-cert-file")
        return None
    read_text_file(cert_file, "--tls-cert-file")  # one sentence naming the unreadable file
    if key_file:
        read_text_file(key_file, "--tls-key-file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file or None)
    except (OSError, ssl.SSLError) as exc:
        files = f"{cert_file} and {key_file}" if key_file else cert_file
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise ValueError(
            f"--tls-cert-file/--tls-key-file: no certificate and matching key in {files} ({reason})"
        ) from None
    return context


def allowed_origins(setting: str) -> list[Origin | None] | None:
    """The ``origins`` argument of ``serve`` for ``--allowed-origins``.

    ``""``: no browser page may connect (only clients without ``Origin``);
    ``"*"``: any (no check, None); else comma-separated ``scheme://host[:port]``.
    Raises ValueError naming an entry that is no origin.
    """
    entries = [entry.strip() for entry in setting.split(",") if entry.strip()]
    if entries == ["*"]:
        return None
    origins: list[Origin | None] = [None]  # no Origin header: not a browser
    for entry in entries:
        parts = urlsplit(entry)
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is no number
        except ValueError:
            parts = urlsplit("")
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ValueError(
                f"--allowed-origins: {entry!r} is not an origin like https://dream.example:8443"
                " (or use * alone for any)"
            )
        origins.append(Origin(entry.rstrip("/").lower()))
    return origins
