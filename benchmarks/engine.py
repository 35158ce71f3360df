"""Dream engine throughput: dreamer-updates per second on one core.

Rooms of 5, 20 and 200 dreamers (all with live pods, so every dreamer sends
contagion and gets a telemetry sample every tick), and one tick of 1,000
rooms of 10 dreamers. Beside each engine figure is a baseline measured in
the same run: a bare loop doing only the contagion arithmetic on floats.

    .venv/bin/python benchmarks/engine.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import time

from sleepsync.protocol.telemetry import TelemetrySample, VitalSigns
from sleepsync.server.engine import Engine, EngineInput, Telemetry

VITALS = VitalSigns(heart_rate=60.0, hrv=50.0, skin_conductance=2.0, respiration=14.0)


def make_room(n: int, seed: int = 1) -> tuple[Engine, list[str]]:
    engine = Engine(seed)
    names = [f"d{i:04d}" for i in range(n)]
    engine.step([sample(name, 0, k) for k, name in enumerate(names)])
    return engine, names


def sample(name: str, seq: int, k: int) -> Telemetry:
    v = 0.3 + 0.4 * ((k * 37) % 100) / 100.0
    return Telemetry(TelemetrySample(name, "boot", seq, 1.0 + seq, VITALS, v, 1.0 - v))


def bench_engine(n: int, seconds: float) -> tuple[float, float]:
    """(dreamer-updates/s, µs per tick) for one room of n dreamers, telemetry every tick."""
    engine, names = make_room(n)
    batches: list[list[EngineInput]] = [
        [sample(name, seq, k) for k, name in enumerate(names)] for seq in range(1, 11)
    ]
    ticks = 0
    start = time.perf_counter()
    while True:
        for batch in batches:
            engine.step(batch)
        ticks += len(batches)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return n * ticks / elapsed, elapsed / ticks * 1e6


def bench_baseline(n: int, seconds: float) -> float:
    """Bare contagion arithmetic on floats (no pulls, events or inputs)."""
    val = [0.3 + 0.4 * ((k * 37) % 100) / 100.0 for k in range(n)]
    aro = [1.0 - v for v in val]
    eps = [0.6] * n
    updates = 0
    start = time.perf_counter()
    while True:
        for _ in range(10):
            e_tot = sum(eps)
            qv = sum(e * v for e, v in zip(eps, val, strict=True))
            qa = sum(e * a for e, a in zip(eps, aro, strict=True))
            for i in range(n):
                e = eps[i]
                er = e_tot - e
                g = 0.6 / (n - 1) * er * 0.1
                v = val[i]
                a = aro[i]
                sv = (qv - e * v) / er
                sa = (qa - e * a) / er
                xv = 0.3 * (0.5 * (1 - (1 - sv) * (1 - v)) + 0.5 * sv * v) + 0.7 * sv
                xa = 0.3 * (0.5 * (1 - (1 - sa) * (1 - a)) + 0.5 * sa * a) + 0.7 * sa
                val[i] = v + g * (xv - v)
                aro[i] = a + g * (xa - a)
        updates += 10 * n
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return updates / elapsed


def bench_many_rooms(rooms: int, n: int, rounds: int) -> tuple[float, float]:
    """(ms per tick of all rooms, dreamer-updates/s) for many small rooms."""
    engines = [make_room(n, seed=r) for r in range(rooms)]
    batches = [[sample(name, 1, k) for k, name in enumerate(names)] for _, names in engines]
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for (engine, _names), batch in zip(engines, batches, strict=True):
            engine.step(batch)
        best = min(best, time.perf_counter() - start)
    return best * 1e3, rooms * n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--rooms", type=int, default=1000, help="rooms in the many-rooms case")
    parser.add_argument("--rounds", type=int, default=5, help="ticks in the many-rooms case")
    args = parser.parse_args()

    print(f"{'room size':>10} {'engine upd/s':>14} {'tick µs':>10} {'µs/dreamer':>11}"
          f" {'baseline upd/s':>15} {'engine/base':>12}")  # fmt: skip
    for n in (5, 20, 200):
        rate, tick_us = bench_engine(n, args.seconds)
        base = bench_baseline(n, args.seconds)
        print(f"{n:>10} {rate:>14,.0f} {tick_us:>10.1f} {tick_us / n:>11.2f}"
              f" {base:>15,.0f} {rate / base:>12.2f}")  # fmt: skip
    ms, rate = bench_many_rooms(args.rooms, 10, args.rounds)
    print(f"\n{args.rooms} rooms x 10 dreamers: one tick of all rooms {ms:.1f} ms "
          f"({rate:,.0f} dreamer-updates/s; budget at 10 Hz: 100 ms)")  # fmt: skip


if __name__ == "__main__":
    main()
