"""Dream journal: size of a night, replay speed, and the fragility figures.

A room of ``--dreamers`` simulated sleepers (the pod simulator's physiology,
profile ``mixed``, reacting to the engine's cues) ticks at 10 Hz with every
pod sampling at ``--rate`` Hz for ``--hours``. The night is recorded as a
journal (an engine tap and a writer, as ``serve --journal-dir`` does) and as
the baseline measured in the same run: the same ticks as the store keeps
them (each event frame plus its tick record, raw vitals included). Then the
journal is replayed with every hash checked, and read without the engine.
Last, the fragility experiment of ``tests/engine/test_engine_fragility.py``
over ``--seeds`` seeds: spreading glitches caught by fragile and by steady
dreamers in the same room, with and without the fragility gain.

    .venv/bin/python benchmarks/journal.py [--hours 1] [--dreamers 10] [--rate 10] [--seeds 60]
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import time
from pathlib import Path

from sleepsync.client.physiology import Physiology, profile_for
from sleepsync.protocol.codec import encode
from sleepsync.protocol.messages import Event
from sleepsync.protocol.telemetry import TelemetrySample
from sleepsync.server.engine import Engine, EngineConfig, EngineInput, Telemetry
from sleepsync.server.inputs import encode_tick
from sleepsync.server.journal.files import JournalReader
from sleepsync.server.journal.replay import read_night, replay
from sleepsync.server.journal.schema import Segment
from sleepsync.server.journal.tap import EngineTap, JournalWriter

TICK_HZ = 10.0


def night(hours: float, dreamers: int, rate: float) -> tuple[bytes, int, float, float]:
    """(journal bytes, stored-stream bytes, seconds recording, seconds of the bare engine)."""
    ticks = round(hours * 3600 * TICK_HZ)
    every = max(1, round(TICK_HZ / rate))
    pods = [
        Physiology(profile_for("mixed", i, 7), f"s{i}", TICK_HZ / every) for i in range(dreamers)
    ]
    tap = EngineTap(Engine(42, EngineConfig(tick_hz=TICK_HZ)), 10)
    bare = Engine(42, EngineConfig(tick_hz=TICK_HZ))
    out = io.BytesIO()
    writer = JournalWriter(
        out, tap, room="bench", segment=Segment(node="bench", created=time.time())
    )
    stream = 0
    recording = engine_only = 0.0
    for k in range(ticks):
        batch: list[EngineInput] = []
        if k % every == 0:
            for i, p in enumerate(pods):
                e = p.step()
                if e.kind == "sample":
                    ts = round(1764111600.0 + k / TICK_HZ, 3)
                    s = TelemetrySample(
                        f"pod-{i:02d}", "boot-a", k, ts, e.vitals, e.valence, e.arousal
                    )
                    batch.append(Telemetry(s))
        t0 = time.perf_counter()
        bare.step(batch)
        t1 = time.perf_counter()
        result = tap.step(batch)
        if k % 10 == 9:
            writer.write(tap.take())
        t2 = time.perf_counter()
        engine_only += t1 - t0
        recording += t2 - t1
        for cue in result.cues:
            pods[int(cue.pod[4:])].cue(cue.kind, cue.intensity)
        # the baseline: what the store keeps of this tick (frame + tick record)
        items = [item.to_wire() for item in result.events]
        frame = encode(Event("bench", 1, k + 1, k + 1, items, 1764111600.0 + k / TICK_HZ))
        stream += len(frame) + len(encode_tick([], [i for i in batch if isinstance(i, Telemetry)]))
    writer.write(tap.take())
    writer.finish("closed")
    return out.getvalue(), stream, recording, engine_only


def fragility_ratio(seeds: int, gain: float) -> tuple[int, int]:
    """Catches of spreading glitches by fragile and by steady dreamers (the engine test's room)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))
    from test_engine_fragility import night as fragility_night

    config = EngineConfig(glitch_half_life_s=1.5, fragility_gain=gain)
    fragile = steady = 0
    for seed in range(seeds):
        caught = fragility_night(seed, config)
        fragile += caught["fragile"]
        steady += caught["steady"]
    return fragile, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--dreamers", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10.0, help="samples per second per pod")
    parser.add_argument("--seeds", type=int, default=60)
    args = parser.parse_args()

    data, stream, recording, engine_only = night(args.hours, args.dreamers, args.rate)
    packed = gzip.compress(data, 6)
    ticks = round(args.hours * 3600 * TICK_HZ)
    dreamer_hours = args.dreamers * args.hours
    scale = 8 * 10 / dreamer_hours  # to 8 hours of a 10-dreamer room

    reader = JournalReader(data)
    checked = replay(reader)
    assert checked.exact, checked.mismatch
    t0 = time.perf_counter()
    read_night(JournalReader(data), [])
    decode_s = time.perf_counter() - t0

    print(f"night: {args.hours:g} h, {args.dreamers} dreamers, ticks {TICK_HZ:g} Hz, "
          f"pods {args.rate:g} Hz: {ticks:,} ticks")  # fmt: skip
    print()
    print("| what | bytes | per dreamer-hour | 8 h x 10 dreamers |")
    print("| --- | ---: | ---: | ---: |")
    for name, size in (
        ("stored stream (frames + tick records, vitals included): baseline", stream),
        ("journal, plain (.ssj)", len(data)),
        ("journal, gzip (.ssj.gz)", len(packed)),
    ):
        print(f"| {name} | {size:,} | {size / dreamer_hours / 1e6:.2f} MB "
              f"| {size * scale / 1e6:.1f} MB |")  # fmt: skip
    print()
    print("| run | ticks/s |")
    print("| --- | ---: |")
    print(f"| engine alone (baseline) | {ticks / engine_only:,.0f} |")
    print(f"| engine + journal tap and writer (recording) | {ticks / recording:,.0f} |")
    print(f"| replay, every hash and item checked | {checked.ticks / checked.seconds:,.0f} |")
    print(f"| reading the journal without the engine | {ticks / decode_s:,.0f} |")
    print()
    on = fragility_ratio(args.seeds, EngineConfig().fragility_gain)
    off = fragility_ratio(args.seeds, 0.0)
    print(f"fragility over {args.seeds} seeds (4 fragile, 4 steady dreamers, one origin):")
    for label, (fragile, steady) in (("gain 3 (default)", on), ("gain 0", off)):
        print(f"  {label}: fragile caught {fragile}, steady {steady}: "
              f"ratio {fragile / max(1, steady):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
