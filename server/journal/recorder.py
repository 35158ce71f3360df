"""``serve --journal-dir``: every room a node owns, recorded as it runs.

How it works. The node's engine hooks are tapped (:func:`.tap.tapped_hooks`),
so each owned room's engine records its steps. The room manager tells the
:class:`JournalKeeper` three things: a room was *installed* (taken, or
rebuilt from the store), a tick's events were *stored* (its steps are safe
to keep), and the node *let go* of a room (cleanly on shutdown, or because
the lease was lost). The keeper writes one journal *segment* per room at a
time, ``DIR/ROOM/STAMP-NODE-eEPOCH-NNNN.ssj.gz``:

- **Install** starts a new segment. Its start state is the room's stored
  snapshot, and its first ticks are the stored events the new owner replayed,
  so a segment holds everything from its snapshot on, even the ticks a
  previous owner recorded but did not live to write out.
- **Failover** is therefore a *linked* segment, never an append: each file
  has exactly one writer (a paused former owner cannot interleave), and the
  header names the room's previous segment found in the directory. Where
  the two overlap, the same ticks carry the same hashes: ``sleepsync replay
  A B`` checks that B starts from a state A passed through.
- **Rotation**: a segment over ``--journal-segment-mb`` (compressed) ends
  (reason ``rotated``, with the exact end hash) and the next one starts
  from the engine's state at that moment.
- **Forget**: an operator's ``forget`` deletes the room's segments in this
  node's directory (:meth:`JournalKeeper.forget`).
- **Bounded disk**: after a segment starts, the oldest finished segments
  of the directory are deleted until all of them fit ``--journal-max-mb``.
- Files are gzip, flushed at most once a second, so a crash loses at most
  the last second of a segment (the next owner's segment holds it again).
  Letting go on shutdown writes an end record with the exact hash; a lost
  lease writes an end record without one (reason ``lost``): the ticks
  after the last stored one are not the room's.

A disk error stops recording for that room (logged and counted) until it is
installed again; it never stops the room.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..room_state import EngineHooks
from ..runner import RoomRunner
from .files import JournalFile
from .schema import Segment
from .tap import EngineTap, JournalWriter, tapped_hooks

__all__ = ["FLUSH_S", "JournalKeeper"]

log = logging.getLogger("sleepsync.journal")

#: Seconds between two flushes of a segment.
FLUSH_S = 1.0
SUFFIX = ".ssj.gz"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(slots=True)
class _Recording:
    """The segment a room is being recorded into."""

    tap: EngineTap
    file: JournalFile
    writer: JournalWriter
    flushed_at: float
    index: int


@dataclass(slots=True)
class KeeperStats:
    """What the keeper did since the node started (counts)."""

    segments: int = 0
    rotated: int = 0
    deleted: int = 0
    errors: int = 0
    ticks: int = 0


class JournalKeeper:
    """Records the rooms of one node into ``directory`` (see the module docstring)."""

    def __init__(
        self,
        directory: str | Path,
        *,
        node: str,
        segment_bytes: int,
        max_bytes: int,
        hash_every: int = 10,
        flush_s: float = FLUSH_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(directory)
        self.node = node
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.hash_every = hash_every
        self.flush_s = flush_s
        self._clock = clock
        self._recordings: dict[str, _Recording] = {}
        self._index = 0
        self.stats = KeeperStats()

    def hooks(self, hooks: EngineHooks) -> EngineHooks:
        """The node's hooks, with every engine tapped."""
        return tapped_hooks(hooks, self.hash_every)

    # ------------------------------------------------------------ events
    def installed(self, room: str, runner: RoomRunner, epoch: int) -> None:
        """The node owns ``room`` from now on, as ``runner`` (just restored and replayed)."""
        self.let_go(room, clean=False)
        tap = runner.state.engine
        if not isinstance(tap, EngineTap):
            return
        self._start(room, tap, epoch, "install")

    def stored(self, room: str) -> None:
        """The room's ticks so far are stored: write their steps; flush, rotate."""
        rec = self._recordings.get(room)
        if rec is None:
            return
        steps = rec.tap.take()
        now = self._clock()
        try:
            rec.writer.write(steps)
            self.stats.ticks += len(steps)
            if now - rec.flushed_at >= self.flush_s:
                rec.file.flush()
                rec.flushed_at = now
            if rec.file.size >= self.segment_bytes:
                self._finish(room, "rotated", exact=True)
                self.stats.rotated += 1
                rec.tap.mark_start()
                self._start(room, rec.tap, rec.writer.header.segment.epoch, "rotate")
        except OSError as exc:
            self._broken(room, exc)

    def let_go(self, room: str, *, clean: bool) -> None:
        """The node no longer owns ``room``: end its segment.

        ``clean``: every step the engine took is stored (shutdown), so the end
        record carries the exact hash; otherwise the unstored steps are dropped.
        """
        rec = self._recordings.get(room)
        if rec is None:
            return
        if clean:
            try:
                rec.writer.write(rec.tap.take())
            except OSError as exc:
                self._broken(room, exc)
                return
        else:
            rec.tap.take()
        self._finish(room, "closed" if clean else "lost", exact=clean)

    def forget(self, room: str) -> None:
        """An operator's ``forget`` erased ``room``: stop recording it and delete
        its segments in this node's directory (nothing of it stays on disk here)."""
        rec = self._recordings.pop(room, None)
        if rec is not None:
            rec.tap.take()
            with contextlib.suppress(OSError):
                rec.file.close()
        folder = self.directory / _safe(room)
        try:
            paths = list(folder.glob(f"*{SUFFIX}"))
        except OSError:
            return
        for path in paths:
            try:
                path.unlink()
            except OSError as exc:
                self.stats.errors += 1
                log.warning("journal of room %s: could not delete %s: %s", room, path, exc)
                continue
            self.stats.deleted += 1
        with contextlib.suppress(OSError):
            folder.rmdir()
        log.info("journal of room %s deleted: the room was forgotten", room)

    def close(self) -> None:
        """Let go of every room cleanly (the node stops)."""
        for room in list(self._recordings):
            self.let_go(room, clean=True)

    @property
    def recording(self) -> list[str]:
        return sorted(self._recordings)

    # ------------------------------------------------------------ segments
    def _start(self, room: str, tap: EngineTap, epoch: int, reason: str) -> None:
        folder = self.directory / _safe(room)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            previous = _newest(folder)
            self._index += 1
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
            name = f"{stamp}-{_safe(self.node)}-e{epoch}-{self._index:04d}{SUFFIX}"
            file = JournalFile(folder / name)
            segment = Segment(
                node=self.node,
                epoch=epoch,
                index=self._index,
                reason=reason,
                created=self._clock(),
                previous=previous,
            )
            writer = JournalWriter(file, tap, room=room, segment=segment)
            writer.write(tap.take())
            file.flush()
        except OSError as exc:
            self._broken(room, exc)
            return
        self._recordings[room] = _Recording(tap, file, writer, self._clock(), self._index)
        self.stats.segments += 1
        log.info("journal of room %s: %s", room, file.path)
        self._trim()

    def _finish(self, room: str, reason: str, *, exact: bool) -> None:
        rec = self._recordings.pop(room)
        try:
            rec.writer.finish(reason, exact=exact)
            rec.file.close()
        except OSError as exc:
            self.stats.errors += 1
            log.warning("journal of room %s: could not finish %s: %s", room, rec.file.path, exc)

    def _broken(self, room: str, exc: OSError) -> None:
        self.stats.errors += 1
        rec = self._recordings.pop(room, None)
        log.warning("journal of room %s stops until the room is taken again: %s", room, exc)
        if rec is not None:
            with contextlib.suppress(OSError):
                rec.file.close()

    def _trim(self) -> None:
        """Delete the oldest finished segments until the directory fits ``max_bytes``."""
        open_files = {rec.file.path for rec in self._recordings.values()}
        try:
            files = sorted(
                (p.stat().st_mtime, p.name, p) for p in self.directory.rglob(f"*{SUFFIX}")
            )
            total = sum(p.stat().st_size for _m, _n, p in files)
        except OSError as exc:
            log.warning("journal directory %s: %s", self.directory, exc)
            return
        for _mtime, _name, path in files:
            if total <= self.max_bytes:
                break
            if path in open_files:
                continue
            try:
                size = path.stat().st_size
                path.unlink()
            except OSError:
                continue
            total -= size
            self.stats.deleted += 1
            log.info("journal segment %s deleted: the directory is over its budget", path)


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name) or "_"


def _newest(folder: Path) -> str | None:
    names = sorted(p.name for p in folder.glob(f"*{SUFFIX}"))
    return names[-1] if names else None
