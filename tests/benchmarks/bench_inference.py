"""Inference through the engine (issue 5): one reading on a warm device, the rest of the per-reading
path, batched throughput, and the scheduled models' wall times.

Needs the project's champions (``make run``: the MLflow registry of the workspace) and its store
(``sim:m08_mixed``, 1 s readings of 2 devices, for the readings). Measures, after warm-up:

1. ``Engine.score_one`` on consecutive readings of one device holding 90 min of history:
   p50 / p99 / max [ms], with the readings that close a 10-min window (m07 computes its next
   forecast there) reported apart; the same through the reference path measured in the same run
   (``Engine(incremental=False)``: every held reading's features recomputed per call, m07
   recomputed per call, forests through scikit-learn and XGBoost threaded: the pre-optimisation
   algorithm on today's code), and the largest output difference between the two;
2. the rest of the per-reading path on one input each: m02 (one waveform window), m05 + m06 (one
   transformer: the engine's 30-day build, and the models' predict on one prepared row), m10 +
   m13 (one feeder snapshot of three meters through ``Engine.score``), m16 (one state);
3. batched throughput [readings/s] through ``Engine.score`` and ``score_stream``;
4. the scheduled models: m09 forecast of one day, m11 LP plan, m12 segmentation, m14 balance.

Usage: ``.venv/bin/python tests/benchmarks/bench_inference.py [--json] [--n 1200] [--n-reference 300]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_of, report  # noqa: E402

WINDOW_US = 600_000_000  # m07's 10-min window [us]


def _latencies_ms(fn, inputs) -> np.ndarray:
    out = np.empty(len(inputs))
    for k, x in enumerate(inputs):
        t0 = time.perf_counter()
        fn(x)
        out[k] = time.perf_counter() - t0
    return out * 1e3


def _pcts(lat: np.ndarray) -> str:
    return f"{np.percentile(lat, 50):.1f} / {np.percentile(lat, 99):.1f} / {lat.max():.1f}"


def _single_readings(engine, one: pl.DataFrame, n: int, warm_rows: int) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    """Latencies [ms] of ``score_one`` on ``n`` consecutive readings after ``warm_rows`` of history
    (the first 20 calls are warm-up, not timed), which of them close a 10-min window, and the outputs."""
    engine.reset()
    engine.score(one.head(warm_rows))
    rows = one.slice(warm_rows, n + 20).to_dicts()
    frames = []

    def call(r):
        frames.append(engine.score([r]).frame)

    for r in rows[:20]:
        call(r)
    lat = _latencies_ms(call, rows[20:])
    closes = np.array([int(r["ts"].timestamp() * 1e6) % WINDOW_US == 0 for r in rows[20:]])
    return lat, closes, pl.concat(frames[20:], how="diagonal")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--n", type=int, default=1200, help="timed single readings through the engine")
    ap.add_argument("--n-reference", type=int, default=300, help="timed single readings through the reference path")
    ap.add_argument("--batch", type=int, default=120_000, help="readings of the batched measurement")
    ap.add_argument("--source", default="sim:m08_mixed")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    from gridtwin_lib import inference
    from gridtwin_lib.config import store_dir
    from gridtwin_lib.models import _trees
    from gridtwin_lib.store import Store

    result: dict[str, object] = {"machine": "2 cores, 24 GB, no GPU (shared: other jobs may run)"}
    t0 = time.perf_counter()
    engine = inference.Engine.from_registry()
    result["load champions [s]"] = f"{time.perf_counter() - t0:.1f}"
    if engine.missing:
        result["missing champions"] = ", ".join(sorted(engine.missing))
    engine.warm_up()
    store = Store(store_dir())
    raw = store.scan("three_phase", source=args.source).collect().sort("ts")
    one = raw.filter(pl.col("device_id") == raw["device_id"][0])
    warm_rows = int(inference.HISTORY.total_seconds())  # 90 min of 1 s readings

    # 1. one reading on a warm device: the engine's path, then the reference path (same run)
    lat, closes, fast_out = _single_readings(engine, one, args.n, warm_rows)
    result["score_one p50 / p99 / max [ms]"] = _pcts(lat)
    result["score_one without window-closing readings p50 / p99 / max [ms]"] = _pcts(lat[~closes])
    result["score_one window-closing readings (count; median / max) [ms]"] = (
        f"{int(closes.sum())}; {np.median(lat[closes]):.1f} / {lat[closes].max():.1f}" if closes.any() else "none")
    reference = inference.Engine(engine.estimators, missing=engine.missing, incremental=False)
    flat_rows = _trees.FLAT_MAX_ROWS
    _trees.FLAT_MAX_ROWS = 0  # forests through scikit-learn, XGBoost on its threads
    try:
        ref_lat, ref_closes, ref_out = _single_readings(reference, one, args.n_reference, warm_rows)
    finally:
        _trees.FLAT_MAX_ROWS = flat_rows
    result["reference path p50 / p99 / max [ms]"] = _pcts(ref_lat)
    result["speed-up p50 / p99 [x]"] = (f"{np.percentile(ref_lat, 50) / np.percentile(lat, 50):.1f} / "
                                        f"{np.percentile(ref_lat, 99) / np.percentile(lat, 99):.1f}")
    both = fast_out.head(ref_out.height)

    def rel_diff(c: str) -> float:
        a, b = (f[c].cast(pl.Float64).to_numpy() for f in (both, ref_out))
        return float(np.nanmax(np.abs(a - b) / np.maximum(1.0, np.abs(b))))

    diffs = [rel_diff(c) for c in ref_out.columns if "." in c and ref_out[c].dtype.is_numeric() and ref_out[c].null_count() < ref_out.height]
    result["largest output difference engine vs reference [relative]"] = f"{max(diffs):.1e}"

    # 2. the rest of the per-reading path, one input each
    parts = {"m01 m03 m04 m07 m08 m15 (score_one)": float(np.percentile(lat, 50))}
    from gridtwin_lib.datasets.monitoring.harmonic_analysis import waveform_windows

    windows = waveform_windows(store, "sim:m02_pq_snr20").head(201)
    wl = _latencies_ms(lambda k: engine.score_waveforms(windows.iloc[[k]]), range(201))[1:]
    parts["m02 (one waveform window)"] = float(np.percentile(wl, 50))

    from gridtwin_lib.datasets.maintenance.equipment_failure import m05_daily_features
    from gridtwin_lib.datasets.maintenance.overload_risk import m06_features
    from gridtwin_lib.models.maintenance.equipment_failure import M05_INPUT_COLUMNS
    from gridtwin_lib.models.maintenance.overload_risk import M06_INPUT_COLUMNS

    src = "sim:m05_transformers"
    last = store.scan_truth("asset_observations", source=src).select(pl.col("ts").max()).collect().item()
    obs = store.scan_truth("asset_observations", source=src, start=last - timedelta(days=31), end=last + timedelta(seconds=1)).collect()
    need = ("ts", "device_id", "load_pu_measured", "top_oil_temp_c", "ambient_temp_c", "age_years")
    tx = obs.filter(pl.col("device_id") == obs["device_id"].min()).select(need)
    build_s, _ = best_of(lambda: engine.score_assets(tx), 5)
    result["m05 + m06 one transformer, 31 days through score_assets [ms]"] = f"{build_s * 1e3:.1f}"
    row05 = m05_daily_features(tx).sort("ts").tail(1).select(list(M05_INPUT_COLUMNS)).to_pandas()
    row06 = m06_features(tx, 10.0).sort("ts").tail(1).select(list(M06_INPUT_COLUMNS)).to_pandas()
    m05, m06 = engine.estimators["m05_equipment_failure"], engine.estimators["m06_overload_risk"]
    al = _latencies_ms(lambda _: (m05.predict(row05), m06.predict(row06)), range(201))[1:]
    parts["m05 + m06 (predict on one prepared row)"] = float(np.percentile(al, 50))

    feeder = store.scan("three_phase", source="sim:m10_feeder").collect().sort("ts", "device_id")
    snaps = [g for _, g in feeder.group_by("ts", maintain_order=True) if g.height == 3]
    fe = inference.Engine(engine.estimators, missing=engine.missing)
    fl = _latencies_ms(lambda g: fe.score(g), snaps[:300])[20:]
    parts["m10 + m13 (one feeder snapshot, three meters)"] = float(np.percentile(fl, 50))

    from gridtwin_lib.models.decision.optimal_dispatch import dispatch_features

    hours = np.arange(24)
    load = 0.5 + 1.5 * ((hours >= 17) & (hours < 22))
    pv = np.clip(3 * np.sin(np.pi * (hours - 6) / 12), 0, None)
    price = np.where((hours >= 17) & (hours < 21), 0.34, 0.16)
    state = dispatch_features(np.array([5.0]), np.array([0]), load[None, :], pv[None, :], price[None, :])
    m16 = engine.estimators["m16_optimal_dispatch"]
    sl = _latencies_ms(lambda _: m16.predict(state), range(201))[1:]
    parts["m16 (one state)"] = float(np.percentile(sl, 50))
    for name, ms in parts.items():
        result[f"p50 {name} [ms]"] = f"{ms:.2f}"
    result["full per-reading path, sum of p50s [ms]"] = f"{sum(parts.values()):.1f}"

    # 3. batched: several devices, interleaved
    sources = [args.source, "sim:m07_mixed"]
    per = args.batch // 4
    frames = []
    for s in sources:
        r = store.scan("three_phase", source=s).collect().sort("ts")
        for dev in sorted(r["device_id"].unique())[:2]:
            frames.append(r.filter(pl.col("device_id") == dev).head(per).with_columns(pl.lit(f"{s}/{dev}").alias("device_id")))
    batch = pl.concat(frames).sort("ts")
    eb = inference.Engine(engine.estimators, missing=engine.missing)
    t0 = time.perf_counter()
    eb.score(batch)
    result[f"Engine.score, {batch.height:,} readings of 4 devices [readings/s]"] = f"{batch.height / (time.perf_counter() - t0):,.0f}"
    es = inference.Engine(engine.estimators, missing=engine.missing)
    t0 = time.perf_counter()
    inference.score_stream(es, batch, chunk_rows=50_000)
    result["score_stream (50,000-reading chunks) [readings/s]"] = f"{batch.height / (time.perf_counter() - t0):,.0f}"

    # 4. scheduled and on-demand models
    from gridtwin_lib.datasets.energy.load_forecast import meter_load

    last = store.scan("meter", source="uci").select(pl.col("ts").max()).collect().item()
    readings = meter_load(store.scan("meter", source="uci", start=last - timedelta(days=9))).collect()
    tomorrow = (last + timedelta(hours=1)).date() + timedelta(days=1)
    fc_s, fc = best_of(lambda: engine.forecast_day(readings, tomorrow, utc_offset_h=1.0, site="fr_sceaux"), 3)
    result["m09 forecast of one day (forecast_day) [ms]"] = f"{fc_s * 1e3:.1f}"
    plan_s, plan = best_of(lambda: engine.plan_day(fc["load_kw"].to_numpy(), pv, price), 3)
    result["m11 LP plan of one day (plan_day, incl. m16) [ms]"] = (
        f"{plan_s * 1e3:.1f} (LP {plan['m11_power_flow_optimization'].seconds * 1e3:.1f}, {plan['m11_power_flow_optimization'].status})")
    from gridtwin_lib.datasets.decision.load_balancing import load_balancing
    from gridtwin_lib.datasets.energy.demand_response import demand_response

    dr = demand_response(store).X_test
    seg_s, _ = best_of(lambda: engine.segment(dr), 3)
    result[f"m12 segment {len(dr)} customer-days [ms]"] = f"{seg_s * 1e3:.1f}"
    lb = load_balancing(store).X_test.head(1)
    bal_s, bal = best_of(lambda: engine.balance(lb), 3)
    result["m14 balance one feeder-day [ms]"] = f"{bal_s * 1e3:.1f} ({bal.status})"
    result["targets (issue 15): score_one p99 <= 5 ms, batched >= 100,000 readings/s"] = ""
    report(result, args.json)


if __name__ == "__main__":
    pd.options.mode.chained_assignment = None
    main()
