"""Starting the Textual screens from the command line (and from ``sleepsync demo``)."""

from __future__ import annotations

from sleepsync.protocol.messages import Role

from ..connection import RoomClient, fetch_rooms, websocket_tls
from ..link import CONNECT_WITHIN, ClientLink, RoomLink
from .dream_app import DreamApp
from .watch_app import WatchApp

__all__ = ["dream_app", "run_dream_screen", "run_watch_screen", "watch_app"]


def dream_app(
    urls: tuple[str, ...],
    room: str,
    name: str,
    *,
    role: Role = "dreamer",
    give_up_after: float = 60.0,
    duration: float | None = None,
    ca_pem: str | None = None,
    token: str | None = None,
) -> DreamApp:
    tls = websocket_tls(urls, ca_pem)
    client = RoomClient(urls, room, name, role=role, tls=tls, token=token)
    link = ClientLink(
        client, connect_within=min(CONNECT_WITHIN, give_up_after), give_up_after=give_up_after
    )
    app = DreamApp(link, me=name, can_speak=role == "dreamer")
    if duration is not None:
        app.leave_after = duration
    return app


def run_dream_screen(
    urls: tuple[str, ...],
    room: str,
    name: str,
    *,
    role: Role = "dreamer",
    give_up_after: float = 60.0,
    duration: float | None = None,
    ca_pem: str | None = None,
    token: str | None = None,
) -> int:
    app = dream_app(
        urls,
        room,
        name,
        role=role,
        give_up_after=give_up_after,
        duration=duration,
        ca_pem=ca_pem,
        token=token,
    )
    app.run()
    return app.return_code or 0


def watch_app(
    urls: tuple[str, ...],
    rooms: list[str],
    *,
    name: str = "watcher",
    duration: float | None = None,
    ca_pem: str | None = None,
    token: str | None = None,
) -> WatchApp:
    tls = websocket_tls(urls, ca_pem)

    def make_link(room: str) -> RoomLink:
        return ClientLink(RoomClient(urls, room, name, role="observer", tls=tls, token=token))

    async def discover() -> list[str]:
        return [info.room for info in await fetch_rooms(urls, name, tls=tls, token=token)]

    app = WatchApp(make_link, rooms, discover=None if rooms else discover, title=f"on {urls[0]}")
    if duration is not None:
        app.leave_after = duration
    return app


def run_watch_screen(
    urls: tuple[str, ...],
    rooms: list[str],
    *,
    name: str = "watcher",
    duration: float | None = None,
    ca_pem: str | None = None,
    token: str | None = None,
) -> int:
    app = watch_app(urls, rooms, name=name, duration=duration, ca_pem=ca_pem, token=token)
    app.run()
    return app.return_code or 0
