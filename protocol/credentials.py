"""The plain credentials format: ``user:password`` lines.

``sleepsync mqtt-passwd`` writes such a file (mode 0600) beside the hashed
Mosquitto password file; the server reads its own line, the pod simulator
and the load tester read every pod's. Parsing is pure: callers read the file.
"""

from __future__ import annotations

__all__ = ["SERVER_USER", "format_credentials", "parse_credentials"]

#: The server's MQTT username; never a pod id.
SERVER_USER = "sleepsync-server"


def parse_credentials(text: str, source: str = "credentials") -> dict[str, str]:
    """``user:password`` lines (blank lines and ``#`` comments ignored).

    Raises ValueError naming ``source`` and the line for anything else.
    """
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            user, sep, password = line.partition(":")
            if not sep or not user:
                raise ValueError(f"{source}:{number}: expected user:password lines")
            found[user] = password
    return found


def format_credentials(pairs: dict[str, str]) -> str:
    return "".join(f"{user}:{password}\n" for user, password in pairs.items())
