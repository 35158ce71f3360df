"""Capacity report: ``sleepsync load --find-capacity`` against three deployments.

1. ``embedded``: ``sleepsync serve`` alone (in-memory rooms, in-process amqtt broker);
2. ``mosquitto``: one node with a real Mosquitto (shipped config, ACL, passwords);
3. ``redis``: the same plus the Redis backend (one node, rooms in Redis).

Each runs the same load shape (default: 100 rooms x 10 pods x 10 observers, the
issue's goal of 1,000 pods at 2 Hz with 1,000 observers) at rising rates per pod
until p99 or loss breaks the SLO. Everything binds to 127.0.0.1 and is stopped
at the end. Run: ``.venv/bin/python benchmarks/capacity.py [--only mosquitto]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SLEEPSYNC = str(BIN / "sleepsync")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def mosquitto(work: Path, pods: int) -> Iterator[tuple[str, str, Path]]:
    """A Mosquitto with the shipped config; yields (server URL, pod URL, credentials)."""
    subprocess.run(
        [SLEEPSYNC, "mqtt-passwd", "--pods", str(pods), "--out", str(work / "passwd")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    lines = []
    for line in (ROOT / "deploy/mosquitto/mosquitto.conf").read_text().splitlines():
        line = line.replace("/mosquitto/config/", f"{work}/").replace(
            "/mosquitto/data/", f"{work}/data/"
        )
        lines.append(f"listener {port} 127.0.0.1" if line.startswith("listener ") else line)
    lines.append("user root" if os.geteuid() == 0 else "")
    shutil.copy(ROOT / "deploy/mosquitto/acl", work / "acl")
    (work / "data").mkdir(exist_ok=True)
    (work / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    creds = work / "passwd.credentials"
    password = next(
        line.split(":", 1)[1]
        for line in creds.read_text().splitlines()
        if line.startswith("sleepsync-server:")
    )
    with process(binary, "-c", str(work / "mosquitto.conf")):
        wait_port(port)
        yield (
            f"mqtt://sleepsync-server:{password}@127.0.0.1:{port}",
            f"mqtt://127.0.0.1:{port}",
            creds,
        )


@contextlib.contextmanager
def redis(work: Path) -> Iterator[str]:
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    with process(
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(work),
    ):
        wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"


def find_capacity(
    name: str,
    server_args: list[str],
    mqtt: str,
    creds: Path | None,
    args: argparse.Namespace,
    work: Path,
) -> dict[str, object]:
    port = free_port()
    out = work / f"{name}.json"
    with process(SLEEPSYNC, "serve", "--port", str(port), "--log-level", "WARNING", *server_args):
        wait_port(port)
        cmd = [
            SLEEPSYNC,
            "load",
            "--find-capacity",
            "--server",
            f"ws://127.0.0.1:{port}",
            "--mqtt",
            mqtt,
            "--rooms",
            str(args.rooms),
            "--pods-per-room",
            str(args.pods),
            "--observers-per-room",
            str(args.observers),
            "--rate",
            str(args.start_rate),
            "--step",
            str(args.step),
            "--max-steps",
            str(args.max_steps),
            "--duration",
            str(args.duration),
            "--ramp",
            str(args.ramp),
            "--workers",
            str(args.workers),
            "--slo-p99-ms",
            str(args.slo_p99_ms),
            "--json-out",
            str(out),
        ]
        if creds is not None:
            cmd += ["--credentials", str(creds)]
        print(f"\n== {name} ==", flush=True)
        subprocess.run(cmd, check=False, stderr=subprocess.DEVNULL)
    result: dict[str, object] = json.loads(out.read_text())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["embedded", "mosquitto", "redis"], action="append")
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--observers", type=int, default=10)
    parser.add_argument("--start-rate", type=float, default=0.5)
    parser.add_argument("--step", type=float, default=2.0)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slo-p99-ms", type=float, default=150.0)
    args = parser.parse_args()
    wanted = args.only or ["embedded", "mosquitto", "redis"]
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "embedded" in wanted:
            broker = free_port()
            results["embedded"] = find_capacity(
                "embedded",
                ["--mqtt-embedded-port", str(broker)],
                f"mqtt://127.0.0.1:{broker}",
                None,
                args,
                work,
            )
        if "mosquitto" in wanted or "redis" in wanted:
            with mosquitto(work, args.rooms * args.pods) as (server_url, pod_url, creds):
                if "mosquitto" in wanted:
                    results["mosquitto"] = find_capacity(
                        "mosquitto", ["--mqtt", server_url], pod_url, creds, args, work
                    )
                if "redis" in wanted:
                    with redis(work) as redis_url:
                        results["redis"] = find_capacity(
                            "redis",
                            ["--mqtt", server_url, "--redis", redis_url],
                            pod_url,
                            creds,
                            args,
                            work,
                        )
    print("\n" + json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
