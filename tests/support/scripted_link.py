"""A RoomLink that plays a script instead of talking to a server (screen snapshots)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from sleepsync.client.link import LinkListener, LinkState
from sleepsync.protocol.messages import ServerMessage, TemplateFormat


class ScriptedLink:
    def __init__(
        self, room: str, messages: Iterable[ServerMessage], url: str = "ws://node-1"
    ) -> None:
        self.room = room
        self.messages = list(messages)
        self.url = url
        self.said: list[str] = []
        self.uploads: list[tuple[str, str]] = []
        self.listed = 0
        self.delivered = asyncio.Event()

    async def run(self, listener: LinkListener) -> int:
        listener.on_state(LinkState("connecting", self.url))
        listener.on_state(LinkState("connected", self.url, ever_connected=True))
        for msg in self.messages:
            listener.on_message(msg)
        self.delivered.set()
        await asyncio.Event().wait()
        return 0

    async def say(self, text: str) -> None:
        self.said.append(text)

    async def list_rooms(self) -> None:
        self.listed += 1

    async def upload_template(self, fmt: TemplateFormat, text: str) -> None:
        self.uploads.append((fmt, text))

    async def close(self) -> None:
        pass
