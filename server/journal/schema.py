# ruff: noqa: RUF002  (the schema is written in its own notation)
"""The dream journal's file format, version 1: what a journal holds, in one place.

A journal is one room's night as the engine saw it: where the engine started
and every tick's inputs in the order they were applied, the event items the
tick produced, and the engine's state hash every ``hash_every`` ticks and at
the end. Replaying it is running the engine again (:mod:`.replay`). It holds
derived emotional state only: telemetry keeps the pod's valence and arousal
estimates, never its vital signs (a replayed sample carries zeros there,
which the engine never reads).

File layout (``.ssj``; ``.ssj.gz`` is the same bytes gzip-compressed, found
by the gzip magic, so ``zcat`` works)::

    MAGIC (8 bytes: 89 'S' 'S' 'J' 0D 0A 1A 0A)
    record*                      one msgpack array each, tag first

Records, in file order:

``["H", header]``
    exactly once, first. ``header`` is a map: ``format`` (1), ``sleepsync``
    (version that wrote it), ``room``, ``seed``, ``config`` (every engine
    setting, :meth:`EngineConfig.to_wire`), ``hash_every``, ``start``
    {``tick``, ``state`` (the engine snapshot at that tick, bytes),
    ``hash`` (its sha256), ``narrative`` (hash of the narrative in use)},
    ``segment`` {``node``, ``epoch``, ``index``, ``reason``, ``created``
    (Unix time), ``previous`` (file name of the room's previous segment or
    nil)}.
``["N", name]``
    defines the next name id (0, 1, 2 … in file order): dreamer, pod,
    author and boot names and phase labels are written as ids.
``["P", hash, template]``
    defines a narrative template once: ``hash`` is the sha256 (hex) of its
    canonical msgpack form, ``template`` its wire map. The header's start
    narrative and every template upload refer to templates by hash.
``["K", skip, inputs, items, hash]``
    one engine tick: it is ``skip`` ticks after the previous ``K`` record's
    tick + 1 (the first one: after ``start.tick``); the quiet ticks in
    between had no input and no item. ``inputs`` in applied order (the
    engine's canonical order), ``items`` as the engine emitted them,
    ``hash`` the state hash after the tick or nil. Trailing nils are left
    out.
``["E", end]``
    last record of a finished file: {``tick`` (the engine's tick count at
    the end), ``hash`` (state hash then, nil when unknown), ``reason``
    (``export``, ``closed``, ``rotated`` or ``lost``)}. A file without it
    was cut off (its node stopped, or it is still being written).

Inputs (arrays, tag first; ``#x`` is a name id, ``~x`` a number channel)::

    ["j", #dreamer]                          DreamerJoined
    ["l", #dreamer]                          DreamerLeft
    ["t", #pod, ~ts, #boot, ~seq, ~valence, ~arousal]   Telemetry
    ["o", #dreamer]                          PodOffline
    ["f", #dreamer, invalid_count]           PodFault
    ["g", #dreamer, intensity]               GlitchInjected
    ["u", #author, template hash]            TemplateUploaded
    ["s", #author, text]                     StoryLine

Items: ``["m", ~balance, #phase, rows]`` is a ``mood`` item, each row
``[#name, ~valence, ~arousal, ~glitch, ~seq, ~fragility]``; any other item is
``["w", map]``, its wire map as clients receive it.

**Number channels** make the per-tick numbers small without losing a bit.
Each channel (a field of one name: the telemetry ``ts`` of pod ``lila``, the
``valence`` of mood row ``rico``…) remembers its last value as an integer
``m`` of thousandths. A float ``x`` that is exactly ``m'/1000`` is written as
the integer ``m' − m`` (the channel then holds ``m'``); any other float is
written as it is; any other value (an int, nil) as ``[value]``. Sequence
numbers use the same rule with units instead of thousandths. Channels start
at 0 in every file. The reader computes ``m'/1000`` the same way, so every
float comes back bit for bit.

Limits a reader enforces (a file over them is refused, never half-read):
one record at most :data:`MAX_RECORD` bytes, a string :data:`MAX_STR`,
:data:`MAX_NAMES` names, :data:`MAX_TEMPLATES` templates. Anything wrong
raises :class:`JournalError` naming the record and field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgpack

from sleepsync.protocol.errors import SleepSyncError
from sleepsync.protocol.events import EventItem
from sleepsync.protocol.narrative import NarrativeTemplate, template_to_wire
from sleepsync.protocol.telemetry import VitalSigns

from ..engine.api import EngineInput
from ..engine.config import EngineConfig

__all__ = [
    "END_REASONS",
    "FORMAT_VERSION",
    "GZIP_MAGIC",
    "MAGIC",
    "MAX_NAMES",
    "MAX_RECORD",
    "MAX_STR",
    "MAX_TEMPLATES",
    "STRIPPED_VITALS",
    "JournalEnd",
    "JournalError",
    "JournalHeader",
    "JournalTick",
    "Segment",
    "TemplateUse",
    "template_hash",
]

FORMAT_VERSION = 1
MAGIC = b"\x89SSJ\r\n\x1a\n"
GZIP_MAGIC = b"\x1f\x8b"
#: Largest record: a header holds an engine snapshot (a narrative of at most
#: 60 KiB and a few hundred bytes per dreamer).
MAX_RECORD = 16 * 1024 * 1024
MAX_STR = 64 * 1024
MAX_NAMES = 1_000_000
MAX_TEMPLATES = 10_000
END_REASONS = ("export", "closed", "rotated", "lost")

#: What a replayed telemetry sample carries instead of vital signs.
STRIPPED_VITALS = VitalSigns(heart_rate=0.0, hrv=0.0, skin_conductance=0.0, respiration=0.0)


class JournalError(SleepSyncError, peer=False):
    """A journal file cannot be read: corrupt, truncated, hostile or of another format."""

    code = "journal"


@dataclass(frozen=True, slots=True)
class Segment:
    """Which recording a file is: who wrote it, and the file it continues."""

    node: str = ""
    epoch: int = 0
    index: int = 0
    #: ``export``, ``install`` (an owner took the room), ``rotate``, ``scenario``.
    reason: str = "export"
    created: float = 0.0
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class JournalHeader:
    room: str
    seed: int
    config: EngineConfig
    start_tick: int
    #: The engine snapshot at ``start_tick`` (:meth:`Engine.snapshot`).
    start_state: bytes
    start_hash: str
    #: Hash of the narrative in use at the start (a ``P`` record defines it).
    narrative: str
    hash_every: int
    segment: Segment = field(default_factory=Segment)
    #: The SleepSync version that wrote the file.
    sleepsync: str = ""


@dataclass(frozen=True, slots=True)
class JournalTick:
    """One tick: the engine was at ``tick`` before it, ``tick + 1`` after."""

    tick: int
    inputs: tuple[EngineInput, ...] = ()
    items: tuple[EventItem, ...] = ()
    #: The state hash after the tick, when recorded.
    hash: str | None = None


@dataclass(frozen=True, slots=True)
class JournalEnd:
    tick: int
    hash: str | None
    reason: str


@dataclass(slots=True)
class TemplateUse:
    """A narrative a night used: the start, or an upload at ``tick`` by ``author``."""

    hash: str
    title: str
    tick: int | None = None
    author: str | None = None


def template_hash(template: NarrativeTemplate) -> str:
    """The hash naming a template: sha256 (hex) of its canonical msgpack form."""
    data = msgpack.packb(template_to_wire(template), use_bin_type=True)
    return hashlib.sha256(data).hexdigest()
