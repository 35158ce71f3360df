"""The server's subcommands: ``serve``, ``mqtt-passwd``, ``token`` and ``secrets``.

Every ``serve`` flag is also an env var ``SLEEPSYNC_<NAME>`` (see
``config.py``). Bad arguments exit with status 2 and one line naming the
problem; SIGTERM and SIGINT stop a server gracefully. The ``sleepsync``
command (``sleepsync.cli``) imports this module only for these commands.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from sleepsync.cliutil import configure_logging, count, pattern, positive, readable_file, run
from sleepsync.protocol.credentials import SERVER_USER
from sleepsync.protocol.errors import SleepSyncError
from sleepsync.protocol.identity import ROOM_GLOB_RE, TOKEN_ROLES, Keys, mint
from sleepsync.protocol.wire import NAME_RE

from .broker import write_credentials
from .config import add_arguments, settings_from_args
from .node import Node
from .secret_files import COMPOSE_SECRETS, write_compose_secrets

__all__ = ["COMMANDS", "serve_until_cancelled"]


def add_serve_parser(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run a server node",
        description="Run a server node. Every flag is also an env var SLEEPSYNC_<FLAG>.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(serve)
    serve.add_argument(
        "--mqtt",
        dest="mqtt_url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="short for --mqtt-url: the pods' broker, mqtt://user:pass@host:1883",
    )


def add_passwd_parser(sub: Any) -> None:
    passwd = sub.add_parser(
        "mqtt-passwd",
        help="generate Mosquitto credentials for the server and N pods",
        description="Write a Mosquitto password file (hashed, for the broker) and a plain "
        f"credentials file (user:password, mode 0600) for {SERVER_USER!r} and pods "
        "PREFIX-001..PREFIX-N. Existing files are replaced.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    passwd.add_argument("--pods", type=count, required=True, help="number of pods")
    passwd.add_argument("--out", default="deploy/mosquitto/passwd", help="password file")
    passwd.add_argument(
        "--credentials",
        default=None,
        help="plain credentials file (default: OUT.credentials beside the password file)",
    )
    passwd.add_argument("--prefix", default="pod", help="pod id prefix")


#: A token's time to live when ``--ttl`` is not given: one day.
DEFAULT_TTL = 86400.0


def add_token_parser(sub: Any) -> None:
    token = sub.add_parser(
        "token",
        help="mint a signed token for one person (hello's token)",
        description="Print a token that lets NAME join the rooms matching PATTERN with ROLE "
        "(observer: read; dreamer: read and say; operator: everything, forget included) "
        "until it expires. Sign it with the servers' --auth-secret-file (HS256) or with the "
        "Ed25519 private key whose public key the servers hold (EdDSA).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    keys = token.add_mutually_exclusive_group(required=True)
    keys.add_argument(
        "--secret-file", type=readable_file, help="the shared secret the servers check (HS256)"
    )
    keys.add_argument(
        "--private-key-file", type=readable_file, help="an Ed25519 private key, PEM (EdDSA)"
    )
    token.add_argument(
        "--name", required=True, type=pattern(NAME_RE, "NAME"), help="hello's name (sub)"
    )
    token.add_argument(
        "--room",
        required=True,
        type=pattern(ROOM_GLOB_RE, "PATTERN"),
        help="glob of the rooms it may join: night, night-*, *",
    )
    token.add_argument("--role", required=True, choices=TOKEN_ROLES)
    token.add_argument("--pod", type=pattern(NAME_RE, "POD"), default=None, help="the pod's id")
    token.add_argument("--ttl", type=positive, default=DEFAULT_TTL, help="seconds until it expires")


def add_secrets_parser(sub: Any) -> None:
    p = sub.add_parser(
        "secrets",
        help="write the secrets of docker-compose.yml (MQTT, Redis, auth) into a directory",
        description="Write the files docker-compose.yml takes its secrets from: the server's "
        "MQTT password and the pods' credentials (from the plain credentials of "
        "`sleepsync mqtt-passwd`), the broker health check's login, a Redis password and its "
        "hashed ACL file, an auth secret. Random secrets already there are kept unless "
        "--rotate. The directory is made mode 0700, its files 0644 (see README, Secrets).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dir", default="deploy/secrets", help="the secrets directory")
    p.add_argument(
        "--credentials",
        default="deploy/mosquitto/passwd.credentials",
        help="plain credentials file written by sleepsync mqtt-passwd",
    )
    p.add_argument("--rotate", action="store_true", help="new Redis password and auth secret")


async def serve_until_cancelled(node: Node) -> None:
    await node.start()
    try:
        await asyncio.Event().wait()
    finally:
        await asyncio.shield(node.stop())


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    configure_logging(settings.log_level)
    try:
        node = Node(settings)
    except ValueError as exc:  # a malformed --mqtt URL
        print(f"sleepsync: {exc}", file=sys.stderr)
        return 2
    try:
        run(lambda: serve_until_cancelled(node))
    except SleepSyncError as exc:  # e.g. the embedded broker's port is taken
        print(f"sleepsync: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"sleepsync: cannot serve on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_mqtt_passwd(args: argparse.Namespace) -> int:
    out = Path(args.out)
    creds = Path(args.credentials) if args.credentials else out.with_name(out.name + ".credentials")
    try:
        written = write_credentials(args.pods, out, creds, prefix=args.prefix)
    except (OSError, ValueError) as exc:
        print(f"sleepsync: cannot write credentials: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({len(written)} users, hashed) and {creds} (plain, mode 0600)")
    # Never the password itself: terminals and CI logs keep what is printed.
    print(f"server: sleepsync serve --mqtt mqtt://{SERVER_USER}@HOST:1883 "
          "--mqtt-password-file FILE  (FILE: the password of its line in "
          f"{creds}; `sleepsync secrets` writes it for docker compose)")  # fmt: skip
    print(f"pods:   sleepsync pods --room ROOM --count {args.pods} --credentials {creds} "
          "--mqtt mqtt://HOST:1883")  # fmt: skip
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    try:
        if args.secret_file:
            keys = Keys.load(secret=Path(args.secret_file).read_bytes())
        else:
            keys = Keys.load(pem=Path(args.private_key_file).read_bytes())
            if keys.private_key is None:
                raise ValueError("--private-key-file: that is a public key; give the private one")
        token = mint(
            keys,
            subject=args.name,
            rooms=args.room,
            role=args.role,
            now=time.time(),
            ttl=args.ttl,
            pod=args.pod,
        )
    except (OSError, ValueError) as exc:
        print(f"sleepsync: {exc}", file=sys.stderr)
        return 2
    except SleepSyncError as exc:
        print(f"sleepsync: {exc.message}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_secrets(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    try:
        write_compose_secrets(directory, Path(args.credentials), rotate=args.rotate)
    except FileNotFoundError as exc:
        print(
            f"sleepsync: cannot read {exc.filename}: run sleepsync mqtt-passwd first",
            file=sys.stderr,
        )
        return 1
    except (OSError, ValueError) as exc:
        print(f"sleepsync: cannot write the secrets: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {', '.join(COMPOSE_SECRETS)} into {directory} (directory 0700, files 0644)")
    return 0


#: name -> (add the subparser, run the parsed command); read by ``sleepsync.cli``.
COMMANDS = {
    "serve": (add_serve_parser, cmd_serve),
    "mqtt-passwd": (add_passwd_parser, cmd_mqtt_passwd),
    "token": (add_token_parser, cmd_token),
    "secrets": (add_secrets_parser, cmd_secrets),
}
