"""``sleepsync journal …`` and ``sleepsync replay``: recorded nights, looked at again.

Like ``demo``, these commands compose both sides — the server's journal
(format, engine replay, figures, plots) and the client's fetch and
renderers — which is why they live here and not in ``server`` or ``client``.

Exit status: 0 done (``replay``: bit-exact); 1 ``replay`` found a tick that
differs, or ``journal export`` could not get the history; 2 a file that
cannot be read (corrupt, truncated, not a journal) or bad arguments. Errors
are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sleepsync.client.cli import add_ca_argument, add_token_argument, read_ca
from sleepsync.client.connection import websocket_tls
from sleepsync.client.history import HistoryError, fetch_history
from sleepsync.client.render import JsonRenderer
from sleepsync.client.roomview import RoomView
from sleepsync.client.sentences import describe
from sleepsync.cliutil import pattern, positive, readable_file, run
from sleepsync.protocol.errors import TemplateInvalid
from sleepsync.protocol.events import EventItem, MemberJoined, MemberLeft, Said
from sleepsync.protocol.identity import unverified_subject
from sleepsync.protocol.messages import Event
from sleepsync.protocol.narrative import NarrativeTemplate, parse_template
from sleepsync.protocol.wire import NAME_RE, ROOM_RE
from sleepsync.server.engine import (
    DreamerJoined,
    DreamerLeft,
    EngineConfig,
    EngineInput,
    StoryLine,
)
from sleepsync.server.journal.files import JournalReader, is_compressed_name
from sleepsync.server.journal.night import NightStats, NightTrace, comparison
from sleepsync.server.journal.replay import (
    Observer,
    ReplayResult,
    WhatIf,
    apply_settings,
    read_night,
    replay,
)
from sleepsync.server.journal.scenario import SCENARIOS
from sleepsync.server.journal.schema import JournalError, JournalHeader

__all__ = ["COMMANDS"]

DEFAULT_SERVER = "ws://127.0.0.1:8765"


class Refused(Exception):
    """Bad arguments or an unreadable file: one line, exit status 2."""


# ---------------------------------------------------------------- parsers


def add_journal_parser(sub: Any) -> None:
    journal = sub.add_parser(
        "journal",
        help="export, plot and inspect dream journals",
        description="Dream journals: a room's night as the engine saw it (see README, "
        "'Dream journal').",
    )
    jsub = journal.add_subparsers(dest="journal_command", required=True, metavar="SUBCOMMAND")

    export = jsub.add_parser(
        "export",
        help="write a room's retained history (snapshot + stored events) as a journal",
        description="Ask a server for ROOM's retained history and write it as a journal "
        "(gzip when OUT ends in .gz).",
    )
    export.add_argument("room", type=pattern(ROOM_RE, "ROOM"), help="room id")
    export.add_argument("--server", default=DEFAULT_SERVER, help="websocket URL of a node")
    add_ca_argument(export)
    add_token_argument(export)
    export.add_argument(
        "--name",
        default=None,
        type=pattern(NAME_RE, "NAME"),
        help="hello's name (default: the token's subject; 'journal' without a token)",
    )
    export.add_argument("--out", required=True, metavar="FILE", help="journal file to write")
    export.add_argument("--timeout", type=positive, default=120.0, help="seconds to wait")

    plot = jsub.add_parser(
        "plot",
        help="draw a night: balance and phases, dreamers, glitches (a what-if overlaid)",
        description="Draw FILE's night into OUT (.png or .svg). With --template or --set, "
        "the what-if night is drawn over it, dashed.",
    )
    plot.add_argument("file", type=readable_file, help="journal file")
    plot.add_argument("--out", required=True, metavar="OUT", help="picture to write")
    plot.add_argument("--title", default=None, help="title (default: room and file)")
    _whatif_arguments(plot)

    info = jsub.add_parser("info", help="what a journal holds: header, templates, ticks")
    info.add_argument("files", nargs="+", type=readable_file, metavar="FILE")

    scenario = jsub.add_parser(
        "scenario",
        help="record a shipped scenario as a journal",
        description="Run a shipped scenario through the engine and write its journal. "
        + " ".join(f"{name}: {what}." for name, (what, _f) in SCENARIOS.items()),
    )
    scenario.add_argument("name", choices=sorted(SCENARIOS), nargs="?", default="lighthouse-night")
    scenario.add_argument("--out", required=True, metavar="FILE", help="journal file to write")


def add_replay_parser(sub: Any) -> None:
    rp = sub.add_parser(
        "replay",
        help="re-run a journal: check it bit-exact, watch it again, or run a what-if",
        description="Re-run the engine from each FILE's inputs and check every recorded state "
        "hash: exit 0 and 'bit-exact: N ticks', or 1 naming the first tick that differs. "
        "Several segments of one room are also checked against each other. With --template "
        "or --set, run the same telemetry and story lines under another narrative or engine "
        "settings and compare the two nights.",
    )
    rp.add_argument("files", nargs="+", type=readable_file, metavar="FILE")
    rp.add_argument("--follow", action="store_true", help="print the night's events as it runs")
    rp.add_argument(
        "--speed",
        type=positive,
        default=None,
        help="with --follow: times real time (default 1; the recorded pace)",
    )
    rp.add_argument("--json", action="store_true", help="with --follow: JSON lines (as dream)")
    _whatif_arguments(rp)


def _whatif_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--template",
        type=readable_file,
        default=None,
        metavar="FILE",
        help="what-if: this narrative (JSON or TOML) instead of every one the night used",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="engine.KEY=VALUE",
        help="what-if: an engine setting (repeatable), e.g. engine.fragility_gain=0",
    )


# ---------------------------------------------------------------- commands


def cmd_journal(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "export": _export,
        "plot": _plot,
        "info": _info,
        "scenario": _scenario,
    }
    return _guarded(lambda: handlers[args.journal_command](args))


def cmd_replay(args: argparse.Namespace) -> int:
    return _guarded(lambda: _replay(args))


def _guarded(body: Callable[[], int]) -> int:
    try:
        return body()
    except (JournalError, Refused) as exc:
        print(f"sleepsync: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()
        return 0


def _export(args: argparse.Namespace) -> int:
    name = args.name or (unverified_subject(args.token) if args.token else None) or "journal"
    try:
        tls = websocket_tls(args.server, read_ca(args))
    except (OSError, ValueError) as exc:
        raise Refused(str(exc)) from exc
    try:
        data = run(
            lambda: fetch_history(
                args.server,
                args.room,
                name=name,
                token=args.token,
                timeout=args.timeout,
                tls=tls,
            )
        )
    except HistoryError as exc:
        print(f"sleepsync: {exc.message}", file=sys.stderr)
        return 1
    if data is None:  # interrupted
        return 130
    reader = JournalReader(data, name=f"{args.room} history")
    summary = _Summary()
    read_night(reader, [summary])
    _write(Path(args.out), data)
    span = _span(reader.header, summary.first, reader.end.tick if reader.end else summary.last)
    print(f"wrote {args.out}: room {reader.header.room}, {span}, {_size(args.out)}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from sleepsync.server.journal.plot import plot_night  # matplotlib: only when drawing

    reader = JournalReader(args.file)
    whatif = _whatif(args, reader.header)
    trace = NightTrace(every=max(1, round(reader.header.config.tick_hz / 5)))
    other: NightTrace | None = None
    if whatif is None:
        read_night(reader, [trace])
    else:
        other = NightTrace(every=trace.every)
        replay(reader, check=False, whatif=whatif, observers=[other], recorded=[trace])
    title = args.title or f"room {reader.header.room} — {Path(args.file).name}"
    if whatif is not None:
        title += f"  (dashed: {_whatif_label(args)})"
    try:
        plot_night(
            trace, reader.header.config, args.out, title=title, other=other,
            labels=("recorded", _whatif_label(args)),
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        raise Refused(f"cannot write {args.out}: {exc}") from exc
    print(f"wrote {args.out}")
    return 0


def _info(args: argparse.Namespace) -> int:
    for k, path in enumerate(args.files):
        if k:
            print()
        reader = JournalReader(path)
        h = reader.header
        summary = _Summary()
        records = read_night(reader, [summary])
        seg = h.segment
        end = reader.end
        print(f"{path}: dream journal (format 1), written by SleepSync {h.sleepsync}")
        print(f"  room      {h.room}")
        print(
            f"  segment   {seg.reason} #{seg.index} by {seg.node or '?'} at epoch {seg.epoch}"
            + (f", continues {seg.previous}" if seg.previous else "")
            + (f", created {_when(seg.created)}" if seg.created > 1 else "")
        )
        changed = _changed_settings(h.config)
        print(f"  engine    seed {h.seed}, {h.config.tick_hz:g} Hz, hash every {h.hash_every}"
              + (f"; settings changed: {changed}" if changed else ""))  # fmt: skip
        last = end.tick if end is not None else summary.last
        print(f"  length    {_span(h, h.start_tick, last)}; {records} tick records")
        print(f"  dreamers  {', '.join(sorted(summary.dreamers)) or 'none'}")
        for use in reader.template_uses():
            when = "at the start" if use.tick is None else f"at {_clock(h, use.tick)}"
            by = "" if use.author is None else f" by {use.author}"
            print(f"  narrative “{use.title}” {when}{by} ({use.hash[:12]})")
        if end is None:
            print("  end       none: the file was cut (its node stopped, or it is still open)")
        else:
            digest = end.hash[:12] if end.hash else "not recorded"
            print(f"  end       {end.reason} at tick {end.tick}, state hash {digest}")
        size = os.path.getsize(path)
        ticks = max(1, last - h.start_tick)
        print(f"  size      {_size(path)}, {size / ticks:.0f} bytes a tick")
    return 0


def _scenario(args: argparse.Namespace) -> int:
    _what, record = SCENARIOS[args.name]
    data = record()
    _write(Path(args.out), data)
    print(f"wrote {args.out}: scenario {args.name}, {_size(args.out)}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    if (args.speed is not None or args.json) and not args.follow:
        raise Refused("--speed and --json go with --follow")
    readers = [JournalReader(path) for path in args.files]
    whatif = _whatif(args, readers[0].header)
    if whatif is not None:
        if len(readers) > 1:
            raise Refused("a what-if runs one journal at a time")
        return _whatif_replay(args, readers[0], whatif)
    failed = False
    hashes: dict[str, dict[int, str]] = {}
    for path, reader in zip(args.files, readers, strict=True):
        seen = hashes.setdefault(reader.header.room, {})
        observers = [_follower(args, reader.header)] if args.follow else []
        link = _link(reader.header, seen)
        result = replay(reader, observers=observers, hashes=seen)
        name = path if len(args.files) > 1 else ""
        failed |= _report(name, reader.header, result)
        if link is not None:
            failed |= link[0]
            print(link[1])
    return 1 if failed else 0


def _whatif_replay(args: argparse.Namespace, reader: JournalReader, whatif: WhatIf) -> int:
    dt = 1.0 / reader.header.config.tick_hz
    recorded, changed = NightStats(dt), NightStats(dt)
    observers: list[Observer] = [changed]
    if args.follow:
        observers.append(_follower(args, reader.header))
    result = replay(reader, check=False, whatif=whatif, observers=observers, recorded=[recorded])
    label = _whatif_label(args)
    print(f"what-if ({label}) on {args.files[0]}: {result.ticks} ticks in {result.seconds:.1f} s")
    print()
    for line in comparison(("recorded", "what-if"), recorded, changed):
        print(line)
    return 0


# ---------------------------------------------------------------- parts


def _whatif(args: argparse.Namespace, header: JournalHeader) -> WhatIf | None:
    if not args.template and not args.set:
        return None
    template: NarrativeTemplate | None = None
    if args.template:
        path = Path(args.template)
        try:
            data = path.read_bytes()
            template = parse_template(data, "toml" if path.suffix == ".toml" else "json")
        except TemplateInvalid as exc:
            raise Refused(f"{path}: {exc.message}") from exc
        except OSError as exc:
            raise Refused(f"cannot read {path}: {exc.strerror}") from exc
    config = apply_settings(header.config, args.set) if args.set else None
    return WhatIf(config=config, template=template)


def _whatif_label(args: argparse.Namespace) -> str:
    parts = []
    if getattr(args, "template", None):
        parts.append(f"template {Path(args.template).name}")
    parts += [s.removeprefix("engine.") for s in getattr(args, "set", [])]
    return ", ".join(parts) or "what-if"


def _report(name: str, header: JournalHeader, result: ReplayResult) -> bool:
    """Print the outcome of one checked replay; True when it differs."""
    prefix = f"{name}: " if name else ""
    rate = result.ticks / result.seconds if result.seconds > 0 else 0.0
    if result.mismatch is not None:
        m = result.mismatch
        print(
            f"{prefix}differs at tick {m.tick} ({_clock(header, m.tick)} into the night): "
            f"{m.what}: {m.detail}"
        )
        return True
    print(
        f"{prefix}bit-exact: {result.ticks} ticks ({result.hashes} state hashes checked, "
        f"{result.seconds:.2f} s, {rate:,.0f} ticks/s)"
    )
    if result.end is None:
        print(f"{prefix}note: no end record: the file was cut (its node stopped, or it is "
              "still being written); checked what it holds")  # fmt: skip
    return False


def _link(header: JournalHeader, seen: dict[int, str]) -> tuple[bool, str] | None:
    """How a segment meets the earlier ones of its room: (differs, line), or None."""
    if not seen:
        return None
    start = header.start_tick
    last = max(seen)
    if start in seen:
        if seen[start] == header.start_hash:
            return False, f"  linked: starts at tick {start}, where the earlier segment agrees"
        return True, f"  link broken: at tick {start} the earlier segment had another state"
    if start > last:
        return False, f"  note: a gap of {start - last} ticks before this segment"
    return False, f"  note: starts at tick {start}; no earlier hash at that tick to compare"


@dataclass
class _Summary:
    """First and last tick, and the dreamers, of a recorded night."""

    first: int = -1
    last: int = 0
    dreamers: set[str] = field(default_factory=set)

    def __call__(
        self, tick: int, inputs: Sequence[EngineInput], items: Sequence[EventItem]
    ) -> None:
        if self.first < 0:
            self.first = tick
        self.last = tick + 1
        for inp in inputs:
            if isinstance(inp, DreamerJoined):
                self.dreamers.add(inp.dreamer)
            elif hasattr(inp, "sample"):
                self.dreamers.add(inp.sample.pod)


def _follower(args: argparse.Namespace, header: JournalHeader) -> Observer:
    """An observer that prints each tick's events, paced like the night (times speed)."""
    renderer: JsonRenderer | _Sentences = (
        JsonRenderer() if args.json else _Sentences(RoomView(header.room))
    )
    speed = args.speed or 1.0
    hz = header.config.tick_hz
    epoch = header.segment.epoch
    begun = time.monotonic()
    base = header.segment.created if header.segment.created > 1 else 0.0
    seq = 0

    def follow(tick: int, inputs: Sequence[EngineInput], items: Sequence[EventItem]) -> None:
        nonlocal seq
        shown = _visible(inputs, items)
        if not shown:
            return
        at = begun + (tick - header.start_tick) / hz / speed
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        seq += 1
        ts = base + (tick - header.start_tick) / hz if base else 0.0
        wire = [item.to_wire() for item in shown]
        event = Event(header.room, epoch, seq, tick + 1, wire, ts)
        for line in renderer.render(event):
            print(line, flush=True)

    return follow


@dataclass
class _Sentences:
    """Events as the terminal client's sentences (``dream --plain``), the room folded in."""

    view: RoomView

    def render(self, msg: Event) -> list[str]:
        items = self.view.apply(msg)
        return [str(s) for item in items if (s := describe(item, self.view)) is not None]


def _visible(inputs: Sequence[EngineInput], items: Sequence[EventItem]) -> list[EventItem]:
    """The items a member would have seen: joins, leaves and story lines, then the engine's."""
    shown: list[EventItem] = []
    for inp in inputs:
        if isinstance(inp, DreamerJoined):
            shown.append(MemberJoined(inp.dreamer, "dreamer"))
        elif isinstance(inp, DreamerLeft):
            shown.append(MemberLeft(inp.dreamer, "dreamer"))
        elif isinstance(inp, StoryLine):
            shown.append(Said(inp.author, inp.text))
    return shown + list(items)


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(gzip.compress(data, 6, mtime=0) if is_compressed_name(path) else data)
    except OSError as exc:
        raise Refused(f"cannot write {path}: {exc.strerror}") from exc


def _changed_settings(config: EngineConfig) -> str:
    default = EngineConfig()
    changed = [
        f"{f.name}={getattr(config, f.name)}"
        for f in fields(EngineConfig)
        if getattr(config, f.name) != getattr(default, f.name)
    ]
    return ", ".join(changed)


def _span(header: JournalHeader, first: int, last: int) -> str:
    if first < 0:
        return "no ticks"
    seconds = (last - first) / header.config.tick_hz
    return f"ticks {first} to {last} ({_clock_s(seconds)})"


def _clock(header: JournalHeader, tick: int) -> str:
    return _clock_s((tick - header.start_tick) / header.config.tick_hz)


def _clock_s(seconds: float) -> str:
    s = max(0.0, seconds)
    h, rest = divmod(int(s), 3600)
    m, sec = divmod(rest, 60)
    frac = s - int(s)
    text = f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"
    return text + (f".{int(frac * 10)}" if frac and not h else "")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _size(path: str | Path) -> str:
    n = os.path.getsize(path)
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


#: name -> (add the subparser, run the parsed command); read by ``sleepsync.cli``.
COMMANDS = {
    "journal": (add_journal_parser, cmd_journal),
    "replay": (add_replay_parser, cmd_replay),
}
