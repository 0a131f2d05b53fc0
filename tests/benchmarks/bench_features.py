"""Benchmark: the full feature catalog on 2 M three-phase rows at 1 s.

Compares ``gridtwin_lib.features.compute`` with a vectorised pandas
implementation of the same windows (pandas' time-based ``rolling``), measured in
the same run on the same frame, and checks both give the same numbers first.
Also reports peak resident memory of a separate process running only the
GridTwin path.

    .venv/bin/python tests/benchmarks/bench_features.py [--rows 2000000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
from _common import best_of, report

from gridtwin_lib import features
from gridtwin_lib.config import default_site
from gridtwin_lib.schema import conform


def synthetic_three_phase(rows: int, seed: int = 0) -> pl.DataFrame:
    """Realistic-looking 1 s three-phase data: daily load cycle, noise, a few gaps."""
    rng = np.random.default_rng(seed)
    start = datetime(2025, 1, 1)
    ts = pl.datetime_range(start, start + timedelta(seconds=rows - 1), "1s", eager=True, time_zone="UTC")
    hours = np.arange(rows) / 3600
    load = 1 + 0.4 * np.sin(2 * np.pi * (hours - 7) / 24)
    cols = {"ts": ts, "source": "bench", "device_id": "feeder-1"}
    for k, ph in enumerate("abc"):
        i = np.abs(40 * load * (1 + 0.05 * k) + rng.normal(0, 2, rows))
        v = 232 - 0.08 * i + rng.normal(0, 0.5, rows)
        pf = 0.95 + rng.normal(0, 0.01, rows).clip(-0.04, 0.04)
        cols[f"v_{ph}"], cols[f"i_{ph}"] = v, i
        cols[f"p_{ph}"] = v * i * pf
        cols[f"q_{ph}"] = v * i * np.sqrt(1 - pf**2)
    cols["frequency"] = 50 + np.cumsum(rng.normal(0, 0.0005, rows)).clip(-0.3, 0.3)
    return conform(pl.DataFrame(cols), "three_phase")


def pandas_features(df: pd.DataFrame, windows=features.DEFAULT_WINDOWS) -> dict:
    """The same catalog with pandas: vectorised columns and time-based rolling windows."""
    site = default_site()
    vn, fn = site.nominal_voltage_v, site.nominal_frequency_hz
    out: dict[str, object] = {c: df[c] for c in df.columns}  # one concat at the end, no fragmentation
    v = df[["v_a", "v_b", "v_c"]].to_numpy()
    i = df[["i_a", "i_b", "i_c"]].to_numpy()
    p = df[["p_a", "p_b", "p_c"]].to_numpy()
    q = df[["q_a", "q_b", "q_c"]].to_numpy()
    v_mean, i_mean = v.mean(axis=1), i.mean(axis=1)
    out["v_mean_v"] = v_mean
    for k, ph in enumerate("abc"):
        out[f"v_{ph}_dev_pct"] = (v[:, k] - vn) / vn * 100
    out["v_mean_dev_pct"] = (v_mean - vn) / vn * 100
    out["v_max_abs_dev_pct"] = np.abs(v - vn).max(axis=1) / vn * 100
    out["v_spread_v"] = v.max(axis=1) - v.min(axis=1)
    out["v_unbalance_pct"] = np.abs(v - v_mean[:, None]).max(axis=1) / v_mean * 100
    out["i_mean_a"] = i_mean
    out["i_max_a"] = i.max(axis=1)
    out["i_unbalance_pct"] = np.where(i_mean > 0, np.abs(i - i_mean[:, None]).max(axis=1) / np.where(i_mean > 0, i_mean, 1) * 100, 0)
    s = np.sqrt(p**2 + q**2)
    theta = -2 * np.pi * np.arange(3) / 3
    phasor = i * np.exp(1j * (theta - np.arctan2(q, p)))
    out["i_neutral_est_a"] = np.abs(phasor.sum(axis=1))
    out["p_total_w"], out["q_total_var"] = p.sum(axis=1), q.sum(axis=1)
    for k, ph in enumerate("abc"):
        out[f"s_{ph}_va"] = s[:, k]
    out["s_total_va"] = s.sum(axis=1)
    for k, ph in enumerate("abc"):
        out[f"pf_{ph}"] = np.abs(p[:, k]) / s[:, k]
    out["pf_total"] = np.abs(out["p_total_w"]) / out["s_total_va"]
    out["pf_lagging"] = (out["q_total_var"] > 0).astype(np.int8)
    for k, ph in enumerate("abc"):
        out[f"p_share_{ph}"] = p[:, k] / out["p_total_w"]
    out["vi_consistency"] = (v * i).sum(axis=1) / out["s_total_va"]
    out["thd_v_pct"] = df["thd_v"]
    out["freq_dev_hz"] = df["frequency"] - fn
    out["freq_dev_abs_hz"] = (df["frequency"] - fn).abs()
    out["flag_voltage"] = ((df["quality_flags"] & 1) > 0).astype(np.int8)
    out["flag_frequency"] = ((df["quality_flags"] & 2) > 0).astype(np.int8)

    t = (df["ts"] - df["ts"].iloc[0]).dt.total_seconds()
    specs = features._WINDOW_SPECS["three_phase"]
    pandas_window = {"m": "min", "h": "h", "s": "s", "d": "D"}
    for w in windows:
        pw = w[:-1] + pandas_window[w[-1]]
        tv = t.to_numpy()
        inputs = {"t": tv, "tt": tv * tv}
        for base, _stem, _unit, stats in specs:
            inputs[base] = np.asarray(out[base], dtype=float)
            if "slope" in stats:
                inputs[f"t_{base}"] = tv * inputs[base]
        roll_frame = pd.DataFrame(inputs, index=df["ts"])  # one construction, no fragmentation
        r = roll_frame.rolling(pw)
        cols = out
        sums = r.sum()
        n = r["t"].count().to_numpy()
        cols[f"n_{w}"] = n
        for base, stem, _unit, stats in specs:
            for stat in stats:
                name = features._window_name(stem, stat, w)
                if stat == "slope":
                    st, stt = sums["t"].to_numpy(), sums["tt"].to_numpy()
                    sx, stx = sums[base].to_numpy(), sums[f"t_{base}"].to_numpy()
                    den = n * stt - st * st
                    cols[name] = np.where(n > 1, (n * stx - st * sx) / np.where(den != 0, den, np.nan), np.nan)
                elif stat == "sum":
                    cols[name] = sums[base].to_numpy()
                else:
                    cols[name] = getattr(r[base], stat)().to_numpy()
    cal = out
    local = df["ts"].dt.tz_convert(site.timezone)
    minute = local.dt.hour * 60 + local.dt.minute
    cal["hour"] = local.dt.hour
    cal["minute_of_day"] = minute
    cal["hour_sin"] = np.sin(minute * 2 * np.pi / 1440)
    cal["hour_cos"] = np.cos(minute * 2 * np.pi / 1440)
    cal["weekday"] = local.dt.weekday + 1
    cal["is_weekend"] = (local.dt.weekday >= 5).astype(np.int8)
    midnight = local.dt.normalize()  # vectorised local dates (no Python date objects)
    days = pd.DatetimeIndex(midnight.unique())
    uniq = tuple(d.date() for d in days)
    hol = pd.DatetimeIndex([pd.Timestamp(d) for d in features._holidays(site, uniq)]).tz_localize(site.timezone)
    cal["is_holiday"] = midnight.isin(hol).astype(np.int8)
    cal["month"] = local.dt.month
    cal["doy_sin"] = np.sin(local.dt.dayofyear * 2 * np.pi / 365.25)
    cal["doy_cos"] = np.cos(local.dt.dayofyear * 2 * np.pi / 365.25)
    rise, sset = features._sun_seconds(site, uniq)
    sod = (local - midnight).dt.total_seconds().to_numpy()
    k = days.get_indexer(midnight)
    cal["is_daylight"] = ((sod >= rise[k]) & (sod < sset[k])).astype(np.int8)
    return out  # column -> array or Series (building one more frame is not feature work)


def _vm_hwm_kb() -> int:
    """Peak resident memory of this process [kB] (VmHWM; unlike ru_maxrss, not inherited over exec)."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))


def _peak_rss_child(rows: int, queue) -> None:
    frame = synthetic_three_phase(rows)
    before = _vm_hwm_kb()
    features.compute(frame)
    queue.put((before, _vm_hwm_kb()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    frame = synthetic_three_phase(args.rows)
    pdf = frame.to_pandas()
    ours = features.compute(frame)  # warm-up (imports, pvlib SPA cache)
    theirs = pandas_features(pdf)
    names = [f.name for f in features.catalog("three_phase")]
    worst = max(
        float(np.nanmax(np.abs(ours[n].cast(pl.Float64).to_numpy() - np.asarray(theirs[n], dtype=float))))
        for n in names
        if not n.endswith(("_std_1m", "_std_15m", "_std_1h"))
    )
    worst_std = max(
        float(np.nanmax(np.abs(ours[n].cast(pl.Float64).to_numpy() - np.asarray(theirs[n], dtype=float))))
        for n in names
        if n.endswith(("_std_1m", "_std_15m", "_std_1h"))
    )
    gridtwin_s, _ = best_of(lambda: features.compute(frame), args.repeat)
    pandas_s, _ = best_of(lambda: pandas_features(pdf), args.repeat)

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_rss_child, args=(args.rows, queue))
    proc.start()
    before_kb, peak_kb = queue.get()
    proc.join()

    result = {
        "rows": args.rows,
        "features": len(names),
        "gridtwin_seconds": round(gridtwin_s, 3),
        "gridtwin_rows_per_s": round(args.rows / gridtwin_s),
        "pandas_seconds": round(pandas_s, 3),
        "pandas_rows_per_s": round(args.rows / pandas_s),
        "speedup_vs_pandas": round(pandas_s / gridtwin_s, 2),
        "max_abs_diff_vs_pandas": worst,
        "max_abs_diff_std_vs_pandas": worst_std,
        "peak_rss_gb": round(peak_kb / 1024**2, 2),
        "rss_before_compute_gb": round(before_kb / 1024**2, 2),
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
