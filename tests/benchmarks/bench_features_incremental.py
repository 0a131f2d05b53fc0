"""Benchmark: every three-phase feature for one new reading, incremental vs batch on the window.

One device at 1 s, windows 1 m / 15 m / 1 h, two hours of history first. Per new reading:

* ``incremental``: :meth:`IncrementalFeatures.update` (a dict reading, as the collector has it);
* ``batch_on_window``: :func:`features.compute` on the last hour of readings with
  ``rows=`` the new one (what serving did without an incremental executor),

measured in the same run on the same readings (checked equal first), per-reading
latency percentiles and their ratio. Also the state bytes per device after the warm-up,
with the ring growing on its own and with ``capacity=3600`` given.

    .venv/bin/python tests/benchmarks/bench_features_incremental.py [--readings 20000] [--batch-readings 300] [--json]
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import polars as pl
from _common import report
from bench_features import synthetic_three_phase

from gridtwin_lib import features
from gridtwin_lib.features_incremental import IncrementalFeatures

WARMUP_S = 2 * 3600


def _percentiles_ms(ns: list[int]) -> dict[str, float]:
    a = np.array(ns) / 1e6
    return {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4),
            "max": round(float(a.max()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=20_000, help="readings timed on the incremental executor")
    ap.add_argument("--batch-readings", type=int, default=300, help="readings timed on the batch executor")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    frame = synthetic_three_phase(WARMUP_S + args.readings)
    rows = frame.to_dicts()
    ts_us = frame["ts"].dt.epoch("us").to_numpy()

    grown, sized = IncrementalFeatures(), IncrementalFeatures(capacity=3600)
    for r in rows[:WARMUP_S]:
        grown.update(r["device_id"], r["ts"], r)
        sized.update(r["device_id"], r["ts"], r)

    # the same readings through the batch executor on the window, checked equal
    check_at = range(WARMUP_S, WARMUP_S + args.batch_readings)
    batch_ns, worst = [], 0.0
    names = grown.names
    gc.disable()
    for k in check_at:
        window = frame.slice(k - 3600, 3601)
        t0 = time.perf_counter_ns()
        out = features.compute(window, rows=pl.col("ts") == rows[k]["ts"], keep_inputs=False)
        batch_ns.append(time.perf_counter_ns() - t0)
        want = np.array([np.nan if v is None else float(v) for v in out.row(0)[2:]])
        got = grown.update(rows[k]["device_id"], rows[k]["ts"], rows[k])
        sized.update(rows[k]["device_id"], rows[k]["ts"], rows[k])
        assert np.array_equal(np.isnan(want), np.isnan(got)), "null patterns differ"
        worst = max(worst, float(np.nanmax(np.abs(got - want) / np.maximum(1.0, np.abs(want)))))

    incremental_ns = []
    for k in range(WARMUP_S + args.batch_readings, WARMUP_S + args.readings):
        r = rows[k]
        t0 = time.perf_counter_ns()
        grown.update(r["device_id"], r["ts"], r)
        incremental_ns.append(time.perf_counter_ns() - t0)
    gc.enable()
    values_ns = []
    x = np.array([[r.get(n) if r.get(n) is not None else np.nan for n in sized.inputs] for r in rows[-args.readings:]])
    for k in range(args.readings - args.batch_readings):
        j = WARMUP_S + args.batch_readings + k
        t0 = time.perf_counter_ns()
        sized.update_values("feeder-1", int(ts_us[j]), x[j - WARMUP_S])
        values_ns.append(time.perf_counter_ns() - t0)

    inc, batch, raw = _percentiles_ms(incremental_ns), _percentiles_ms(batch_ns), _percentiles_ms(values_ns)
    report({
        "features": len(names),
        "incremental_readings": len(incremental_ns),
        "incremental_p50_ms": inc["p50"],
        "incremental_p99_ms": inc["p99"],
        "incremental_max_ms": inc["max"],
        "incremental_array_input_p99_ms": raw["p99"],
        "batch_on_window_readings": len(batch_ns),
        "batch_on_window_p50_ms": batch["p50"],
        "batch_on_window_p99_ms": batch["p99"],
        "p99_speedup_vs_batch_on_window": round(batch["p99"] / inc["p99"], 1),
        "max_rel_diff_vs_batch": worst,
        "state_bytes_per_device_grown": grown.state_bytes("feeder-1"),
        "state_bytes_per_device_capacity_3600": sized.state_bytes("feeder-1"),
    }, args.json)


if __name__ == "__main__":
    main()
