"""Journal files: writing records out, and reading them back as a stream.

How it works. :class:`JournalReader` reads a file (plain, or gzip found by
its magic) in chunks, decompressing with a bound on each step's output,
feeds a msgpack ``Unpacker`` with the schema's limits, and hands each
complete record to a :class:`~.codec.JournalDecoder`. The header is read
when the reader opens; :meth:`JournalReader.ticks` then streams the ticks,
so a night of any length replays in constant memory. Every failure —
unreadable file, foreign format, a record cut short, bad msgpack, a field
out of range — becomes one :class:`~.schema.JournalError` whose message
names the file, the record and the field.

:class:`JournalFile` writes: bytes from a :class:`~.codec.JournalEncoder`
go to a plain or gzip file; :meth:`JournalFile.flush` makes everything
written so far readable (a gzip sync point), so a file being written can be
read up to its last flush.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgpack

from sleepsync.protocol.narrative import NarrativeTemplate

from .codec import JournalDecoder
from .schema import (
    GZIP_MAGIC,
    MAGIC,
    MAX_RECORD,
    MAX_STR,
    JournalEnd,
    JournalError,
    JournalHeader,
    JournalTick,
    TemplateUse,
)

__all__ = ["JournalFile", "JournalReader", "is_compressed_name"]

CHUNK = 64 * 1024


def is_compressed_name(path: str | Path) -> bool:
    return str(path).endswith(".gz")


class JournalFile:
    """A journal file being written; gzip when its name ends in ``.gz``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: BinaryIO = path.open("xb")
        self._gz: gzip.GzipFile | None = None
        if is_compressed_name(path):
            self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=0)
        #: Uncompressed bytes written so far.
        self.written = 0

    def write(self, data: bytes) -> None:
        (self._gz or self._raw).write(data)
        self.written += len(data)

    @property
    def size(self) -> int:
        """Bytes on disk so far (flushed or not yet)."""
        return self._raw.tell()

    def flush(self) -> None:
        if self._gz is not None:
            self._gz.flush(zlib.Z_SYNC_FLUSH)
        self._raw.flush()

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
        self._raw.close()


class JournalReader:
    """Reads one journal: the header at once, the ticks as a stream.

    ``source`` is a path or the file's bytes. Raises :class:`JournalError`.
    """

    def __init__(self, source: str | Path | bytes, *, name: str | None = None) -> None:
        if isinstance(source, bytes):
            self.name = name or "journal"
            self._chunks: Iterator[bytes] = _pieces(source)
        else:
            self.name = name or str(source)
            self._chunks = _file_chunks(Path(source), self.name)
        self.decoder = JournalDecoder(self.name)
        self._records = self._stream()
        self.header = self._first()
        self._started = False

    @property
    def end(self) -> JournalEnd | None:
        """The end record, once :meth:`ticks` ran to the end (None: the file was cut)."""
        return self.decoder.end

    @property
    def templates(self) -> dict[str, NarrativeTemplate]:
        return self.decoder.templates

    @property
    def start_narrative(self) -> NarrativeTemplate:
        return self.decoder.templates[self.header.narrative]

    def ticks(self) -> Iterator[JournalTick]:
        """Every tick record in order (once per reader)."""
        if self._started:
            raise JournalError(f"{self.name}: the ticks were already read")
        self._started = True
        for record in self._records:
            if isinstance(record, JournalTick):
                yield record

    def template_uses(self) -> list[TemplateUse]:
        """The narratives a night used: the start one, and each upload (read the ticks first)."""
        start = self.start_narrative
        return [TemplateUse(self.header.narrative, start.title), *self.decoder.uploads]

    # -------------------------------------------------------- internals
    def _first(self) -> JournalHeader:
        """The header, once the start narrative it names is defined too."""
        header: JournalHeader | None = None
        for record in self._records:
            if isinstance(record, JournalHeader):
                header = record
            if header is not None and header.narrative in self.decoder.templates:
                return header
            if isinstance(record, JournalTick | JournalEnd):
                break  # the decoder refuses these before the narrative: not reached
        if header is None:
            raise JournalError(f"{self.name}: the file holds no header")
        raise JournalError(f"{self.name}: the header's narrative is not defined")

    def _stream(self) -> Iterator[JournalTick | JournalHeader | JournalEnd | str]:
        unpacker = msgpack.Unpacker(
            raw=False,
            strict_map_key=True,
            max_buffer_size=MAX_RECORD,
            max_str_len=MAX_STR,
            max_bin_len=MAX_RECORD,
            max_array_len=65536,
            max_map_len=4096,
            max_ext_len=0,
        )
        fed = 0
        self._complete = 0  # bytes of the complete records read so far
        data = _decompressed(self._chunks, self.name)
        head = b""
        for chunk in data:
            if len(head) < len(MAGIC):
                need = len(MAGIC) - len(head)
                head += chunk[:need]
                chunk = chunk[need:]
                if len(head) == len(MAGIC) and head != MAGIC:
                    raise JournalError(f"{self.name}: not a SleepSync journal")
            if not chunk:
                continue
            try:
                unpacker.feed(chunk)
            except msgpack.BufferFull as exc:
                raise JournalError(
                    f"{self.name}: record {self.decoder.count + 1} is over {MAX_RECORD} bytes"
                ) from exc
            fed += len(chunk)
            yield from self._decode(unpacker)
        if len(head) < len(MAGIC):
            raise JournalError(f"{self.name}: not a SleepSync journal (too short)")
        if self._complete != fed:
            after = self.decoder.count
            raise JournalError(
                f"{self.name}: truncated: the file ends inside record {after + 1}"
                f" (after {after} complete records)"
            )

    def _decode(
        self, unpacker: msgpack.Unpacker
    ) -> Iterator[JournalTick | JournalHeader | JournalEnd | str]:
        decoder = self.decoder
        while True:
            try:
                raw = next(unpacker)
            except StopIteration:
                return
            except Exception as exc:  # msgpack raises many unrelated types
                raise JournalError(
                    f"{self.name}: record {decoder.count + 1} is not valid msgpack ({exc})"
                ) from exc
            self._complete = unpacker.tell()
            record = decoder.record(raw)
            if record is not None:
                yield record


def _pieces(data: bytes) -> Iterator[bytes]:
    """``data`` in reading-sized pieces: the unpacker holds one record at most."""
    view = memoryview(data)
    for k in range(0, len(data), CHUNK):
        yield bytes(view[k : k + CHUNK])


def _file_chunks(path: Path, name: str) -> Iterator[bytes]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise JournalError(f"{name}: cannot open: {exc.strerror or exc}") from exc
    with handle:
        while True:
            try:
                chunk = handle.read(CHUNK)
            except OSError as exc:
                raise JournalError(f"{name}: cannot read: {exc.strerror or exc}") from exc
            if not chunk:
                return
            yield chunk


def _decompressed(chunks: Iterator[bytes], name: str) -> Iterator[bytes]:
    """The file's bytes, gunzipped when they start with the gzip magic."""
    first = next(chunks, b"")
    if not first.startswith(GZIP_MAGIC):
        if first:
            yield first
        yield from chunks
        return
    d = zlib.decompressobj(wbits=31)
    for chunk in _chain(first, chunks):
        if d.eof:
            raise JournalError(f"{name}: data after the end of the compressed journal")
        pending = chunk
        while pending:
            try:
                out = d.decompress(pending, CHUNK)
            except zlib.error as exc:
                raise JournalError(f"{name}: corrupt compressed data ({exc})") from exc
            pending = d.unconsumed_tail
            if out:
                yield out
            if d.eof:
                if pending or d.unused_data:
                    raise JournalError(f"{name}: data after the end of the compressed journal")
                break


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
