"""What both sides' sessions ask of their pumps."""

from __future__ import annotations

from dataclasses import dataclass

from ..messages import Message

__all__ = ["Send"]


@dataclass(frozen=True, slots=True)
class Send:
    """Send this message to the peer."""

    message: Message
