"""Who holds a socket on this node: a pure rule, no sockets.

How it works: connections that said hello count against ``max_clients``;
connections still greeting live in a separate pool of ``max_greeting``.
A newcomer is refused (``server_full``) only when the node's clients are at
their limit. When the greeting pool is full, the newcomer takes the place of
the *oldest* greeting connection, which is closed: so any number of sockets
that never say hello cannot lock a client out (each one lives at most until
``hello_timeout``, or until ``max_greeting`` newer ones arrived), while a
real client, who says hello within a round trip, is never the oldest.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Admission", "Arrival"]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Arrival(Generic[K]):
    """The verdict on a new connection."""

    admitted: bool
    #: The greeting connection to close to make room (None: nobody).
    evicted: K | None = None


class Admission(Generic[K]):
    """The clients and greeting connections of one node (see the module docstring)."""

    def __init__(self, max_clients: int, max_greeting: int) -> None:
        self.max_clients = max_clients
        self.max_greeting = max_greeting
        #: Greeting connections, oldest first.
        self.greeting: dict[K, None] = {}
        self.clients: set[K] = set()

    def arrive(self, key: K) -> Arrival[K]:
        """A new connection: admitted to the greeting pool, maybe pushing out the oldest."""
        if len(self.clients) >= self.max_clients:
            return Arrival(False)
        evicted = None
        if len(self.greeting) >= self.max_greeting:
            evicted = next(iter(self.greeting))
            del self.greeting[evicted]
        self.greeting[key] = None
        return Arrival(True, evicted)

    def greeted(self, key: K) -> bool:
        """``key`` said hello: a client now. False when the clients are at their limit."""
        self.greeting.pop(key, None)
        if key in self.clients:
            return True
        if len(self.clients) >= self.max_clients:
            return False
        self.clients.add(key)
        return True

    def gone(self, key: K) -> None:
        self.greeting.pop(key, None)
        self.clients.discard(key)
