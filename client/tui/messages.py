"""The custom messages of the Textual apps, in one place."""

from __future__ import annotations

from textual.message import Message

from sleepsync.client.link import LinkState
from sleepsync.protocol.messages import ServerMessage

__all__ = ["LinkChanged", "LinkEnded", "ServerMessageArrived"]


class ServerMessageArrived(Message):
    """A server message for ``room`` came in."""

    def __init__(self, room: str, msg: ServerMessage) -> None:
        super().__init__()
        self.room = room
        self.msg = msg


class LinkChanged(Message):
    """The connection to ``room`` changed state."""

    def __init__(self, room: str, state: LinkState) -> None:
        super().__init__()
        self.room = room
        self.state = state


class LinkEnded(Message):
    """The reconnect loop of ``room`` ended for good with exit status ``code``."""

    def __init__(self, room: str, code: int, reason: str) -> None:
        super().__init__()
        self.room = room
        self.code = code
        self.reason = reason
