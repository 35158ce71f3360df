"""Lines typed at a terminal while other lines arrive: a readline prompt that stays whole.

``--plain`` on a terminal reads with :mod:`readline` (editing keys, Up/Down
history) in a thread. When a line from the room arrives, :meth:`TtyPrompt.show`
clears the prompt line, prints the room's line, and draws the prompt again
with what was typed so far, so incoming lines never break a half-typed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import IO

try:
    import readline
except ImportError:  # pragma: no cover - not on this platform
    readline = None  # type: ignore[assignment]

__all__ = ["TtyPrompt"]


class TtyPrompt:
    """A prompt on ``out`` fed by ``input()`` in a daemon thread."""

    def __init__(self, prompt: str = "> ", out: IO[str] | None = None) -> None:
        self.prompt = prompt
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._reading = False

    def lines(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
        """Start reading; each line typed (None at end of input) goes to the queue."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def pump() -> None:
            while True:
                try:
                    self._reading = True
                    line = input(self.prompt)
                except (EOFError, OSError, ValueError, KeyboardInterrupt):
                    line = None
                finally:
                    self._reading = False
                with contextlib.suppress(RuntimeError):  # the loop may be gone at exit
                    loop.call_soon_threadsafe(queue.put_nowait, line)
                if line is None:
                    return

        threading.Thread(target=pump, name="prompt", daemon=True).start()
        return queue

    def show(self, lines: list[str]) -> None:
        """Print ``lines`` above the prompt, then redraw the prompt and the typed text."""
        if not lines:
            return
        with self._lock:
            typed = readline.get_line_buffer() if readline is not None else ""
            self.out.write("\r\x1b[2K" + "".join(line + "\n" for line in lines))
            if self._reading:
                self.out.write(self.prompt + typed)
            self.out.flush()
