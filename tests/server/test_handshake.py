"""TLS and browser origins on the node's port, with a certificate this test makes (trustme)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from sleepsync.client.connection import RoomClient, websocket_tls
from sleepsync.client.load import LoadOptions, LoadSetupError, run_load, validate
from sleepsync.server.handshake import allowed_origins, tls_context

from cluster import SLEEPSYNC
from nodes import Recorder, free_port, running_node, wait_for


@dataclass
class Certs:
    cert: Path
    key: Path
    ca: Path

    @property
    def ca_pem(self) -> str:
        return self.ca.read_text()

    def client(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        return context


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    out = Certs(tmp_path / "node.pem", tmp_path / "node.key", tmp_path / "ca.pem")
    issued.private_key_pem.write_to_path(out.key)
    with out.cert.open("wb") as f:
        for pem in issued.cert_chain_pems:
            f.write(pem.bytes())
    ca.cert_pem.write_to_path(out.ca)
    return out


def tls_settings(certs: Certs) -> dict[str, str]:
    return {"tls_cert_file": str(certs.cert), "tls_key_file": str(certs.key)}


# ---------------------------------------------------------------- TLS
async def test_wss_and_https_on_one_port_with_the_ca(certs: Certs) -> None:
    async with running_node(**tls_settings(certs)) as node:
        assert node.url.startswith("wss://127.0.0.1:")
        client = RoomClient(node.url, "vault", "lila", tls=websocket_tls(node.url, certs.ca_pem))
        async with Recorder(client) as rec:
            await client.say("over TLS")
            await wait_for(lambda: bool(rec.items("said")), what="the line")
        https = node.url.replace("wss://", "https://")
        for path, body in (("/healthz", b"ok\n"), ("/readyz", b"ready\n")):
            got = await asyncio.to_thread(_get, https + path, certs.client())
            assert got == body
        metrics = await asyncio.to_thread(_get, https + "/metrics", certs.client())
        assert b"sleepsync_connections_total" in metrics
        # Plain HTTP to the TLS port gets nowhere.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            await asyncio.to_thread(_get, https.replace("https://", "http://") + "/healthz", None)


async def test_a_client_without_the_ca_is_refused_with_a_hint(certs: Certs) -> None:
    async with running_node(**tls_settings(certs)) as node:
        client = RoomClient(node.url, "vault", "lila")  # the system's CAs only
        with pytest.raises(ConnectionError, match=r"not trusted .*pass the CA file"):
            await client.open()
        plain = RoomClient(node.url.replace("wss://", "ws://"), "vault", "lila")
        with pytest.raises(ConnectionError):
            await plain.open()


def test_the_client_tls_context_wants_a_wss_url_and_a_pem(certs: Certs) -> None:
    assert websocket_tls("ws://127.0.0.1:1") is None
    assert websocket_tls("wss://127.0.0.1:1") is not None
    with pytest.raises(ValueError, match="needs a wss:// server URL"):
        websocket_tls("ws://127.0.0.1:1", certs.ca_pem)
    with pytest.raises(ValueError, match="no usable PEM certificate"):
        websocket_tls("wss://127.0.0.1:1", "not a certificate")


def test_certificate_files_that_do_not_load_fail_in_one_sentence(
    certs: Certs, tmp_path: Path
) -> None:
    assert tls_context("", "") is None
    with pytest.raises(ValueError, match="--tls-key-file needs --tls-cert-file"):
        tls_context("", str(certs.key))
    with pytest.raises(ValueError, match="--tls-cert-file: cannot read"):
        tls_context(str(tmp_path / "missing.pem"), "")
    with pytest.raises(ValueError, match="--tls-key-file: cannot read"):
        tls_context(str(certs.cert), str(tmp_path / "missing.key"))
    with pytest.raises(ValueError, match="no certificate and matching key"):
        tls_context(str(certs.ca), str(certs.key))  # a key that belongs to another cert
    proc = subprocess.run(
        [SLEEPSYNC, "serve", "--port", "0", "--tls-cert-file", str(tmp_path / "missing.pem")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--tls-cert-file: cannot read" in proc.stderr


def test_the_dream_client_takes_a_ca_file_for_wss_only(certs: Certs) -> None:
    argv = ["dream", "r", "--name", "lila", "--server", "ws://127.0.0.1:1"]
    proc = subprocess.run(
        [SLEEPSYNC, *argv, "--ca-file", str(certs.ca)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "needs a wss:// server URL" in proc.stderr, proc.stderr


async def test_the_dream_client_joins_over_wss_with_its_ca_file(certs: Certs) -> None:
    async with running_node(**tls_settings(certs)) as node:
        proc = await asyncio.create_subprocess_exec(
            SLEEPSYNC, "dream", "vault", "--name", "mira", "--observer", "--json",
            "--server", node.url, "--ca-file", str(certs.ca), "--duration", "1.5",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    types = [json.loads(line)["type"] for line in out.decode().splitlines()]
    assert "welcome" in types and "snapshot" in types, types


# ---------------------------------------------------------------- origins
async def test_browser_pages_need_an_allowed_origin(certs: Certs) -> None:
    settings = {**tls_settings(certs), "allowed_origins": "https://dream.example"}
    async with running_node(**settings) as node:
        context = certs.client()
        with pytest.raises(InvalidStatus) as refused:
            async with connect(node.url, ssl=context, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with connect(node.url, ssl=context, origin="https://dream.example") as ws:
            await ws.ping()
        async with connect(node.url, ssl=context) as ws:  # no Origin: not a browser
            await ws.ping()


async def test_by_default_no_browser_page_may_connect_and_star_lets_any() -> None:
    async with running_node() as node:
        with pytest.raises(InvalidStatus):
            async with connect(node.url, origin="http://127.0.0.1:8000"):
                pass
        async with Recorder(RoomClient(node.url, "r", "lila")) as rec:
            await wait_for(lambda: bool(rec.messages), what="a client without Origin")
    async with (
        running_node(allowed_origins="*") as node,
        connect(node.url, origin="https://anywhere.example") as ws,
    ):
        await ws.ping()


def test_allowed_origins_are_parsed_and_checked() -> None:
    assert allowed_origins("*") is None
    assert allowed_origins("") == [None]
    assert allowed_origins(" https://A.example , http://b.example:8080/ ") == [
        None,
        "https://a.example",
        "http://b.example:8080",
    ]
    for bad in ("dream.example", "https://x.example/path", "ftp://x", "https://x:port", "*,x"):
        with pytest.raises(ValueError, match="--allowed-origins"):
            allowed_origins(bad)


def _get(url: str, context: ssl.SSLContext | None) -> bytes:
    with urllib.request.urlopen(url, timeout=5, context=context) as response:
        body: bytes = response.read()
        return body


async def test_the_load_tester_watches_over_wss_with_its_ca_file(certs: Certs) -> None:
    mqtt_port = free_port()
    settings = {**tls_settings(certs), "mqtt_embedded_port": mqtt_port}
    async with running_node(mqtt=True, **settings) as node:
        opts = LoadOptions(
            servers=(node.url,),
            mqtt=f"mqtt://127.0.0.1:{mqtt_port}",
            rooms=1,
            pods_per_room=2,
            observers_per_room=1,
            rate=5.0,
            duration=2.0,
            ca_pem=certs.ca_pem,
        )
        report = (await run_load(opts)).to_json()
    assert report["published"] == report["scheduled"] == 20
    assert report["deliveries"] == 20 and report["connection_failures"] == 0
    assert report["server"]["counters"]["sleepsync_telemetry_ingested_total"] == 20
    with pytest.raises(LoadSetupError, match="--ca-file needs an mqtts:// broker or a wss://"):
        validate(replace(opts, servers=(opts.servers[0].replace("wss", "ws"),)))
