"""docker-compose.yml and the Dockerfile, checked against the code (no Docker engine here),
and the same topology run as local processes: redis-server, mosquitto with the
shipped config, two ``sleepsync serve`` nodes configured by the compose env vars,
the pod simulator and terminal clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from sleepsync.cli import build_parser
from sleepsync.client.cli import TOKEN_ENV
from sleepsync.protocol.identity import Keys, mint, verify
from sleepsync.protocol.topics import BrokerUrl
from sleepsync.server.auth import exposure, load_keys
from sleepsync.server.broker import SERVER_USER, write_credentials
from sleepsync.server.config import Settings, env_name
from sleepsync.server.secret_files import COMPOSE_SECRETS, write_compose_secrets

from cluster import SLEEPSYNC, Follower
from nodes import free_port, wait_for
from redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SETTINGS_ENV = {env_name(f.name): f for f in fields(Settings)}
AUTH_SECRET_ENV = env_name("auth_secret_file")
SECRETS_DIR = "deploy/secrets"
#: Mounted files that are generated, never committed, and the command that makes them.
GENERATED = {
    "deploy/mosquitto/passwd": "sleepsync mqtt-passwd",
    "deploy/mosquitto/passwd.credentials": "sleepsync mqtt-passwd",
}


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def substitute(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and env[name] != "":
            return env[name]
        if op == ":-":
            return arg or ""
        raise KeyError(f"${{{name}}} is required: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, text)


def node_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if s.get("command", [None])[0] == "serve"}


def service_secrets(service: dict[str, Any]) -> dict[str, str]:
    """Path in the container -> secret name, for the secrets a service lists."""
    out = {}
    for entry in service.get("secrets", []):
        name = entry if isinstance(entry, str) else entry["source"]
        target = name if isinstance(entry, str) else entry.get("target", name)
        out[target if target.startswith("/") else f"/run/secrets/{target}"] = name
    return out


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            out.append((source[2:], target))
    return out


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


# ---------------------------------------------------------------- compose file
def test_compose_has_the_stack() -> None:
    s = services()
    assert {"redis", "mosquitto", "node-1", "node-2", "pods", "client"} <= set(s)
    assert s["redis"]["image"].split(":")[0] == "redis"
    assert s["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert s["pods"]["profiles"] == ["pods"]
    assert s["client"].get("profiles"), "the client runs with `docker compose run`, not `up`"
    assert s["client"]["stdin_open"] and s["client"]["tty"]
    for name in ("redis", "mosquitto", "node-1", "node-2"):
        assert "healthcheck" in s[name], name


def test_redis_keeps_an_append_only_file_every_second() -> None:
    command = services()["redis"]["command"]
    args = dict(zip(command[1::2], command[2::2], strict=False))
    assert args["--appendonly"] == "yes" and args["--appendfsync"] == "everysec"


def test_nodes_are_built_here_and_wait_for_healthy_services() -> None:
    for name, node in node_services().items():
        assert node["build"] == ".", name
        assert (ROOT / node["build"] / "Dockerfile").is_file()
        for dep in ("redis", "mosquitto"):
            assert node["depends_on"][dep]["condition"] == "service_healthy"


def test_every_node_env_var_is_a_setting() -> None:
    for name, node in node_services().items():
        env = node["environment"]
        assert env, name
        for var, value in env.items():
            assert var in SETTINGS_ENV, f"{name}: {var} is not a sleepsync serve setting"
            field = SETTINGS_ENV[var]
            kind = type(field.default)
            if kind in (int, float):
                kind(str(value))  # the node would refuse a bad number at start
        assert env["SLEEPSYNC_REDIS_URL"].startswith("redis://redis:")
        assert "@mosquitto:1883" in env["SLEEPSYNC_MQTT_URL"]
        assert env["SLEEPSYNC_HOST"] == "0.0.0.0"
    ids = {node["environment"]["SLEEPSYNC_NODE_ID"] for node in node_services().values()}
    assert len(ids) == len(node_services()), "every node has its own id"


def published(
    service: dict[str, Any], env: dict[str, str] | None = None
) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of each published port, as compose reads it."""
    out = []
    for mapping in service.get("ports", []):
        address, host, container = substitute(str(mapping), env or {}).split(":")
        out.append((address, host, container))
    return out


#: Published host ports: one env var each, with the default the docs give
#: (the server's and the broker's own defaults; node 2 on the next port).
_WS_DEFAULT = Settings().port
HOST_PORTS = {
    "node-1": ("SLEEPSYNC_NODE1_PORT", str(_WS_DEFAULT)),
    "node-2": ("SLEEPSYNC_NODE2_PORT", str(_WS_DEFAULT + 1)),
    "mosquitto": ("SLEEPSYNC_MQTT_PORT", str(BrokerUrl("localhost").port)),
}


def test_no_password_in_an_env_var_a_url_or_a_command_line() -> None:
    """Every secret reaches its service as a file under /run/secrets (compose secrets)."""
    text = COMPOSE.read_text()
    assert "PASSWORD:" not in text and "PASSWORD}" not in text, "a password in an env var"
    assert " -P " not in text and "--requirepass" not in text
    for name, node in node_services().items():
        env = node["environment"]
        for var in ("SLEEPSYNC_MQTT_URL", "SLEEPSYNC_REDIS_URL"):
            userinfo = env[var].split("//", 1)[1].rpartition("@")[0]
            assert ":" not in userinfo, f"{name}: {var} carries a password"
        files = {v: env[v] for v in env if v.endswith("_FILE")}
        assert set(files) == {
            "SLEEPSYNC_MQTT_PASSWORD_FILE",
            "SLEEPSYNC_REDIS_PASSWORD_FILE",
            "SLEEPSYNC_AUTH_SECRET_FILE",
        }
        listed = service_secrets(node)
        for var, path in files.items():
            assert path in listed, f"{name}: {var}={path} is not a secret the node lists"


def test_secrets_are_files_that_sleepsync_secrets_writes(tmp_path: Path) -> None:
    declared = compose()["secrets"]
    assert set(declared) == set(COMPOSE_SECRETS)
    for name, secret in declared.items():
        assert secret["file"] == f"./{SECRETS_DIR}/{name}", name
    assert f"{SECRETS_DIR}/" in (ROOT / ".gitignore").read_text().split(), "never committed"
    used = {n for s in services().values() for n in service_secrets(s).values()}
    assert used == set(declared), "every secret is used, and only declared ones"
    # Each service sees only what it needs: no node gets the broker's health-check login
    # or the pods' passwords, the pods get no server password.
    pods = set(service_secrets(services()["pods"]).values())
    assert pods == {"pod_credentials"}
    for node in node_services().values():
        assert set(service_secrets(node).values()) == {
            "mqtt_password",
            "redis_password",
            "auth_secret",
        }
    # The generator writes exactly these files.
    creds = tmp_path / "passwd.credentials"
    write_credentials(2, tmp_path / "passwd", creds)
    write_compose_secrets(tmp_path / "secrets", creds)
    assert sorted(p.name for p in (tmp_path / "secrets").iterdir()) == sorted(declared)


def test_the_auth_secret_is_one_the_nodes_accept_and_tokens_are_minted_with(
    tmp_path: Path,
) -> None:
    """Nodes bind 0.0.0.0, so without auth they would refuse to start: the secret
    ``sleepsync secrets`` writes is an HS256 secret that ``--auth-secret-file`` loads."""
    creds = tmp_path / "passwd.credentials"
    write_credentials(1, tmp_path / "passwd", creds)
    write_compose_secrets(tmp_path / "secrets", creds)
    for node in node_services().values():
        env = {k: on_host(str(v), tmp_path / "secrets") for k, v in node["environment"].items()}
        settings = Settings(host=env["SLEEPSYNC_HOST"], auth_secret_file=env[AUTH_SECRET_ENV])
        keys = load_keys(settings)
        assert keys is not None and keys.algorithms() == ("HS256",)
        assert exposure(settings, keys) is None, "a node on 0.0.0.0 with its secret starts"
    token = mint(keys, subject="lila", rooms="lounge", role="dreamer", now=time.time(), ttl=60)
    assert verify(token, keys, time.time()).subject == "lila"


def test_the_client_service_takes_its_token_from_the_shell() -> None:
    """``SLEEPSYNC_TOKEN`` passes through (a name alone: the value is the caller's)."""
    client = services()["client"]
    assert client["environment"] == [TOKEN_ENV]
    assert TOKEN_ENV in COMPOSE.read_text().split("\nx-node", 1)[0], "documented in the header"


def test_node_ports_and_healthchecks_match_the_configured_port() -> None:
    hosts = set()
    for name, node in node_services().items():
        port = str(node["environment"]["SLEEPSYNC_PORT"])
        for _address, host, container in published(node):
            assert container == port, name
            hosts.add(host)
        check = " ".join(node["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/healthz" in check, name
    assert len(hosts) == len(node_services()), "each node on its own host port"


def test_published_ports_are_overridable_and_on_loopback_by_default() -> None:
    """A test (or a user) picks free host ports; nothing is open beyond the host unless asked."""
    overrides = {"SLEEPSYNC_PUBLISH_HOST": "0.0.0.0"}
    overrides.update((var, f"1{default}") for var, default in HOST_PORTS.values())
    for name, service in services().items():
        for mapping in service.get("ports", []):
            var, default = HOST_PORTS[name]
            assert f"${{{var}:-{default}}}" in str(mapping), name
        assert all(p[:2] == ("127.0.0.1", HOST_PORTS[name][1]) for p in published(service)), name
        moved = published(service, overrides)
        assert all(p[:2] == ("0.0.0.0", f"1{HOST_PORTS[name][1]}") for p in moved), name
    assert {name for name, s in services().items() if s.get("ports")} == set(HOST_PORTS)


def test_healthchecks_run_where_something_serves() -> None:
    """The image's HEALTHCHECK asks the server's /healthz: containers that run no
    server (pods, client) turn it off, or they would be unhealthy for good."""
    for name, service in services().items():
        if service.get("image", "").startswith("sleepsync") and service["command"][0] != "serve":
            assert service["healthcheck"] == {"disable": True}, name


def test_exec_form_healthchecks_have_no_spaces_in_arguments() -> None:
    """Podman's Docker API (4.x) splits exec-form (CMD) arguments at whitespace:
    a check like ``python -c "import x; ..."`` must use the shell form."""
    for name, service in services().items():
        test = service.get("healthcheck", {}).get("test", [])
        if test and test[0] == "CMD":
            assert not any(re.search(r"\s", arg) for arg in test[1:]), name


def test_mounted_files_exist_or_are_generated(tmp_path: Path) -> None:
    ignored = (ROOT / "deploy/mosquitto/.gitignore").read_text().split()
    for name, service in services().items():
        for source, _target in bind_mounts(service):
            if source in GENERATED:
                assert Path(source).name in ignored, f"{source} must not be committed"
                continue
            assert (ROOT / source).is_file(), f"{name} mounts missing {source}"
    # The generator named in the compose file makes exactly the generated files.
    assert "sleepsync mqtt-passwd" in COMPOSE.read_text()
    write_credentials(2, tmp_path / "passwd", tmp_path / "passwd.credentials")
    assert (tmp_path / "passwd").is_file() and (tmp_path / "passwd.credentials").is_file()


def test_mosquitto_mounts_what_its_config_names() -> None:
    mosquitto = services()["mosquitto"]
    targets = {target: source for source, target in bind_mounts(mosquitto)}
    assert targets["/mosquitto/config/mosquitto.conf"] == "deploy/mosquitto/mosquitto.conf"
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    for key in ("password_file", "acl_file"):
        m = re.search(rf"^{key}\s+(\S+)", conf, re.M)
        assert m and m.group(1) in targets, f"{key} {m and m.group(1)} is not mounted"
    m = re.search(r"^listener\s+(\d+)", conf, re.M)
    assert m and [p[2] for p in published(mosquitto)] == [m.group(1)]
    assert any(v.endswith(":/mosquitto/data") for v in mosquitto["volumes"])


def _host_path(argv: list[str], service: dict[str, Any], tmp_path: Path) -> list[str]:
    """Container paths in a command, mapped to the files mounted there."""
    mounts = {target: source for source, target in bind_mounts(service)}
    declared = compose().get("secrets", {})
    for target, name in service_secrets(service).items():
        mounts[target] = declared[name]["file"][2:]
    out = []
    for arg in argv:
        if arg in mounts:
            source = ROOT / mounts[arg]
            if not source.exists():
                source = tmp_path / Path(mounts[arg]).name
                source.write_text(f"{SERVER_USER}:secret\n")
            arg = str(source)
        out.append(arg)
    return out


def test_service_commands_parse_with_the_cli(tmp_path: Path) -> None:
    parser = build_parser()
    for name, service in services().items():
        if service.get("image", "").startswith("sleepsync") or "build" in service:
            argv = _host_path([str(a) for a in service["command"]], service, tmp_path)
            args = parser.parse_args(argv)
            assert args.command in ("serve", "pods", "dream"), name
            if args.command in ("pods", "dream"):
                servers = getattr(args, "server", None) or [""]  # --server repeats: a list
                target = getattr(args, "mqtt", None) or servers[0]
                host = target.split("//", 1)[1].split(":")[0].split("@")[-1]
                assert host in services(), f"{name} talks to unknown service {host}"


def test_docker_compose_config_validates() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (the parsing tests above still ran)")
    env = dict(os.environ)
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "--profile", "pods", "--profile", "client", "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert set(resolved["services"]) == set(services())
    url = resolved["services"]["node-1"]["environment"]["SLEEPSYNC_MQTT_URL"]
    assert url == "mqtt://sleepsync-server@mosquitto:1883"
    assert _ports(resolved["services"]["node-2"]) == [("127.0.0.1", "8766", "8765")]
    assert resolved["services"]["pods"]["healthcheck"] == {"test": ["NONE"]}
    env["SLEEPSYNC_NODE2_PORT"] = "18766"
    done = subprocess.run(
        [binary, "-f", str(COMPOSE), "config"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    node = yaml.safe_load(done.stdout)["services"]["node-2"]
    assert _ports(node) == [("127.0.0.1", "18766", "8765")]


def _ports(resolved: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Ports of a service from ``config``: short strings (compose 1.x) or maps (v2)."""
    out = []
    for port in resolved["ports"]:
        if isinstance(port, str):
            address, host, container = port.removesuffix("/tcp").split(":")
            out.append((address, host, container))
        else:
            out.append((port["host_ip"], str(port["published"]), str(port["target"])))
    return out


# ---------------------------------------------------------------- Dockerfile
def test_dockerfile_runs_the_cli_as_a_non_root_user_with_a_healthcheck() -> None:
    ops = dockerfile()
    assert ops[0][0] == "FROM" and ops[0][1].startswith("python:3.11")
    final = max(i for i, (op, _) in enumerate(ops) if op == "FROM")
    stage = ops[final:]
    users = [arg for op, arg in stage if op == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image runs as a non-root user"
    health = " ".join(arg for op, arg in stage if op == "HEALTHCHECK")
    assert "/healthz" in health
    entry = next(arg for op, arg in stage if op == "ENTRYPOINT")
    assert entry == '["sleepsync"]'
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'sleepsync = "sleepsync.cli:main"' in pyproject
    env = " ".join(arg for op, arg in stage if op == "ENV")
    for var in re.findall(r"(SLEEPSYNC_\w+)=", env):
        assert var in SETTINGS_ENV, var
    port = re.search(r"SLEEPSYNC_PORT=(\d+)", env)
    expose = [arg for op, arg in stage if op == "EXPOSE"]
    assert port and expose == [port.group(1)]


def test_dockerfile_copies_every_package_and_nothing_missing() -> None:
    copied = set()
    for op, arg in dockerfile():
        if op != "COPY" or arg.startswith("--from"):
            continue
        *sources, _dest = shlex.split(arg)
        for source in sources:
            if "*" in source:
                continue  # optional files (README.md*)
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            copied.add(source)
    # sleepsync/ links the top-level package folders: the image needs both.
    linked = {p.name for p in (ROOT / "sleepsync").iterdir() if p.is_symlink()}
    assert linked == {"protocol", "server", "client"}
    assert {"sleepsync", *linked} <= copied
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)


# ---------------------------------------------------------------- the same topology, locally
class LocalMosquitto:
    """mosquitto with the shipped config, rewritten for a free port and a tmp dir."""

    def __init__(self, workdir: Path) -> None:
        candidates = (shutil.which("mosquitto"), "/usr/sbin/mosquitto")
        binary = next((b for b in candidates if b and Path(b).is_file()), None)
        if binary is None:
            pytest.fail("mosquitto is not installed: apt-get install mosquitto", pytrace=False)
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        w = self.workdir
        overrides = {
            "listener": f"listener {self.port} 127.0.0.1",
            "password_file": f"password_file {w / 'passwd'}",
            "acl_file": f"acl_file {ROOT / 'deploy/mosquitto/acl'}",
            "persistence_location": f"persistence_location {w / 'data'}/",
            "log_dest": f"log_dest file {w / 'mosquitto.log'}",
        }
        conf = ROOT.joinpath("deploy/mosquitto/mosquitto.conf").read_text().splitlines()
        lines = [overrides.get(line.split(" ", 1)[0], line) for line in conf]
        lines.append(f"user {getpass.getuser()}")
        (w / "data").mkdir(exist_ok=True)
        (w / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(w / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def on_host(value: str, secrets: Path) -> str:
    """A compose value with /run/secrets/NAME pointing at the files ``sleepsync secrets`` wrote."""
    return value.replace("/run/secrets", str(secrets))


def run_healthcheck(service: dict[str, Any], secrets: Path, **replace: str) -> int:
    """Run a CMD-SHELL health check of ``service`` here, with its secrets and ports moved."""
    kind, command = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    command = on_host(command.replace("$$", "$"), secrets)
    for old, new in replace.items():
        command = command.replace(old, new)
    return subprocess.run(["sh", "-c", command], capture_output=True, timeout=30).returncode


@contextlib.contextmanager
def local_stack(tmp_path: Path) -> Iterator[tuple[list[str], LocalMosquitto, Path, Keys]]:
    """redis, mosquitto and the compose file's nodes, as local processes, with the
    secrets ``sleepsync secrets`` writes, given to them the way the compose file does;
    and the keys clients' tokens are minted with (the ``auth_secret``)."""
    creds = tmp_path / "passwd.credentials"
    write_credentials(4, tmp_path / "passwd", creds)
    secrets = tmp_path / "secrets"
    write_compose_secrets(secrets, creds)
    redis = RedisServer(
        tmp_path / "redis",
        password=(secrets / "redis_password").read_text().strip(),
        acl_file=secrets / "redis_acl",
    )
    mosquitto = LocalMosquitto(tmp_path)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        redis.start()
        mosquitto.start()
        # The services' health checks log in with their secrets, as in the containers.
        redis_check = run_healthcheck(
            services()["redis"], secrets, **{"redis-cli ": f"redis-cli -p {redis.port} "}
        )
        assert redis_check == 0, "the redis health check fails"
        broker_check = run_healthcheck(
            services()["mosquitto"], secrets, **{"-p 1883": f"-p {mosquitto.port}"}
        )
        assert broker_check == 0, "the mosquitto health check fails"
        urls = []
        for name, node in node_services().items():
            port = free_port()
            env = {
                k: on_host(substitute(str(v), {}), secrets) for k, v in node["environment"].items()
            }
            env["SLEEPSYNC_REDIS_URL"] = env["SLEEPSYNC_REDIS_URL"].replace(
                "redis:6379", f"127.0.0.1:{redis.port}"
            )
            env["SLEEPSYNC_MQTT_URL"] = env["SLEEPSYNC_MQTT_URL"].replace(
                "@mosquitto:1883", f"@127.0.0.1:{mosquitto.port}"
            )
            env.update(SLEEPSYNC_HOST="127.0.0.1", SLEEPSYNC_PORT=str(port))
            env.update(SLEEPSYNC_LEASE_TTL_MS="1000", SLEEPSYNC_NODE_TTL_MS="2000")
            log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            procs.append(
                subprocess.Popen(
                    [SLEEPSYNC, *node["command"]],
                    env={**os.environ, **env},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()
            urls.append(f"ws://127.0.0.1:{port}")
        for url, proc in zip(urls, procs, strict=True):
            _wait_http(url.replace("ws://", "http://") + "/readyz", proc)
        keys = Keys.load(secret=(secrets / "auth_secret").read_bytes())
        yield urls, mosquitto, secrets / "pod_credentials", keys
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        mosquitto.stop()
        redis.stop()


def _wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        assert proc.poll() is None, f"node exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{url} not ready"
        time.sleep(0.05)


async def test_the_compose_topology_runs_as_local_processes(tmp_path: Path) -> None:
    with local_stack(tmp_path) as (urls, mosquitto, creds, keys):
        assert len(urls) == 2

        def token(name: str) -> str:
            now = time.time()
            return mint(keys, subject=name, rooms="lounge", role="dreamer", now=now, ttl=300)

        async with (
            Follower([urls[0]], "lounge", "ana", token=token("ana")) as ana,
            Follower([urls[1]], "lounge", "bo", token=token("bo")) as bo,
        ):
            await wait_for(lambda: bool(ana.events() and bo.events()), 20, "events on both")
            pods = await asyncio.create_subprocess_exec(
                SLEEPSYNC, "pods", "--room", "lounge", "--count", "2", "--rate", "5",
                "--duration", "30", "--mqtt", f"mqtt://127.0.0.1:{mosquitto.port}",
                "--credentials", str(creds),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:

                def pods_joined(f: Follower) -> bool:
                    return any(
                        i.get("kind") == "joined" and i.get("role") == "pod"
                        for e in f.events()
                        for i in e.items
                    )

                await wait_for(lambda: pods_joined(ana) and pods_joined(bo), 30, "pods in room")
                await bo.say("hello from node 2")
                await wait_for(lambda: "hello from node 2" in ana.said(), 15, "the story line")
            finally:
                if pods.returncode is None:
                    pods.kill()
                await pods.wait()
            for f in (ana, bo):
                f.check_history()
