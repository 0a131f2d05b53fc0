"""Benchmark: grid twin three-phase rows generated, and generated + written to a temporary Store.

Targets: >= 1 M rows/s generated and written; a year at 1 s for one device (31.5 M rows)
in < 60 s wall with bounded memory (peak RSS reported via resource.getrusage).

    .venv/bin/python tests/benchmarks/bench_simulate.py [--quick] [--scenario mixed]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

from gridtwin_lib.simulate import prepare, run_scenario
from gridtwin_lib.store import Store


def generate_only(scenario: str, duration: str) -> tuple[int, float]:
    """Rows and seconds [s] to generate ``duration`` at 1 s without writing."""
    spec, run, params = prepare(scenario, duration=duration, resolution="1s", seed=0)
    t0, rows = time.perf_counter(), 0
    for chunk in spec.run(run, params):
        rows += chunk.measurements["three_phase"].height
    return rows, time.perf_counter() - t0


def generate_and_write(scenario: str, duration: str) -> tuple[int, float]:
    """Rows and seconds [s] to generate ``duration`` at 1 s and write it to a fresh Store."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = run_scenario(scenario, duration=duration, resolution="1s", seed=0, store=Store(tmp), progress=False)
        return summary.rows["three_phase"], time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7 days instead of a year")
    parser.add_argument("--scenario", default="mixed")
    args = parser.parse_args()
    duration = "7d" if args.quick else "365d"
    rows, secs = generate_only(args.scenario, duration)
    print(f"generate only   {args.scenario} {duration} @1s: {rows:,} rows in {secs:.1f} s = {rows / secs / 1e6:.2f} M rows/s")
    rows, secs = generate_and_write(args.scenario, duration)
    rate = rows / secs / 1e6
    print(f"generate+write  {args.scenario} {duration} @1s: {rows:,} rows in {secs:.1f} s = {rate:.2f} M rows/s"
          f" (target >= 1 M rows/s: {'met' if rate >= 1 else 'MISSED'})")
    if not args.quick:
        print(f"year at 1 s, one device: {secs:.1f} s wall (target < 60 s: {'met' if secs < 60 else 'MISSED'})")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
