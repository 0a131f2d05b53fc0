"""Datasets of the decision models m14 (load balancing) and m15 (grid stability).

``load_balancing`` (m14)
    Per-customer single-phase loads from the meter twin (kind ``meter``, household customer
    types). The meter twin has no phases and no feeder, so the builder DEALS THEM ITSELF:
    a DATASET CHOICE, recorded in ``Dataset.params['phase_map']`` and in every row: meters
    (sorted ids) are shuffled with ``numpy.random.default_rng(phase_seed)`` into ``feeders``
    feeders of equal size; on each feeder customers get a phase (a, b, c, skewed shares
    ``phase_shares``, default 0.45/0.33/0.22, so there is unbalance to fix) and a position
    along the trunk (uniform in [20, ``feeder_length_m``] m). One row per (feeder, local day
    D >= ``history_days``): X = ids, phases, positions and the EXPECTED hourly profile of each
    customer (mean kW per UTC hour over days D-history_days..D-1: what the operator knows),
    y = the REALISED hourly kW of day D (used only to re-simulate the chosen move), meta =
    date, feeder and the ids / phases / positions. Failed reads (voltage 0) and duplicates
    are dropped; hours without a reading are filled from the same customer's neighbouring
    hours (linear, then nearest). The last ``test_days`` days are the test range.
``grid_stability`` (m15)
    Grid twin runs (``mixed``, ``voltage_sag``, ``frequency_drift``, ``normal`` at 10 s, own
    sources, one shared calendar). Features: :func:`gridtwin_lib.features.compute` (windows
    1 m, 15 m, 1 h) on each device's readings, sampled once per minute (the reading at each
    whole minute). Label: 1 if a disturbance (``DISTURBANCE_TYPES`` of the truth table
    ``events``) of the same device STARTS in (t, t + 30 min]. Split by time: one cut at
    ``1 - test_fraction`` of the span; training rows whose label window reaches past the cut
    are dropped (no label leakage).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ..errors import InputError
from ..features import compute
from ..models.base import Dataset
from ..models.decision import HOURS, PHASES, feeder_columns

M14_SOURCE = "sim:m14_meters"
M14_SEED = 1401
M15_SCENARIOS = ("mixed", "voltage_sag", "frequency_drift", "normal")
DISTURBANCE_TYPES = ("sag", "swell", "undervoltage", "interruption", "overcurrent", "overload", "frequency_excursion",
                     "unbalance", "harmonics")
M15_WINDOWS = ("1m", "15m", "1h")


def _m15_source(scenario: str) -> str:
    return f"sim:m15_{scenario}"


M15_SOURCES = tuple(_m15_source(s) for s in M15_SCENARIOS)


def _m15_runs(duration: str, devices: int) -> list[dict[str, Any]]:
    return [dict(scenario=s, duration=duration, resolution="10s", seed=1500 + i, devices=devices if s == "mixed" else 1,
                 overrides={}, source=_m15_source(s)) for i, s in enumerate(M15_SCENARIOS)]


SIMULATIONS = {
    "full": [dict(scenario="meter", duration="42d", resolution="15m", seed=M14_SEED, devices=48, overrides={}, source=M14_SOURCE),
             *_m15_runs("10d", 1)],
    "smoke": [dict(scenario="meter", duration="18d", resolution="1h", seed=M14_SEED, devices=12, overrides={}, source=M14_SOURCE),
              *_m15_runs("2d", 1)],
}


def _iso(x) -> str:
    return pd.Timestamp(x).isoformat()


# --------------------------------------------------------------------------- m14


def load_balancing(store, *, source: str = M14_SOURCE, feeders: int = 2, phase_seed: int = M14_SEED,
                   phase_shares: tuple[float, float, float] = (0.45, 0.33, 0.22), feeder_length_m: float = 400.0,
                   history_days: int = 7, test_days: int = 10) -> Dataset:
    """Decision rows (feeder, day): expected hourly loads + phase map -> realised hourly loads [kW].

    See the module docstring; the phase map and positions are a dataset choice drawn from
    ``phase_seed`` (default: the meter run's seed) and recorded in ``params['phase_map']``.
    """
    if feeders < 1 or history_days < 1 or test_days < 1:
        raise InputError(f"m14 dataset: feeders, history_days and test_days must be >= 1 (got {feeders}, {history_days}, {test_days})")
    lf = store.scan("meter", source=source)
    valid = pl.col("voltage").is_null() | (pl.col("voltage") > 0)
    hourly = (lf.filter(valid).unique(["device_id", "ts"], keep="first")
              .select("device_id", pl.col("ts").dt.truncate("1h").alias("t"), (pl.col("power") / 1000.0).alias("kw"))
              .drop_nulls("kw").group_by("device_id", "t").agg(pl.col("kw").mean()).collect())
    if hourly.height == 0:
        raise InputError(f"m14 dataset: no meter readings of source {source!r} in {store}; simulate them first, e.g. "
                         f"run_scenario('meter', source={source!r}, devices=48, resolution='15m', duration='42d') (datasets.decision.SIMULATIONS)")
    devices = sorted(hourly["device_id"].unique().to_list())
    per = len(devices) // feeders
    if per < 3:
        raise InputError(f"m14 dataset: {len(devices)} meters cannot make {feeders} feeders of >= 3 customers")
    t0 = hourly["t"].min().replace(hour=0)
    t1 = hourly["t"].max()
    grid = pd.date_range(t0, t1, freq="1h")
    wide = (hourly.to_pandas().pivot(index="t", columns="device_id", values="kw").reindex(grid)[devices]
            .interpolate(limit_direction="both"))
    ndays = len(grid) // HOURS
    if ndays < history_days + test_days + 1:
        raise InputError(f"m14 dataset: {ndays} complete days in {source!r}; need more than history_days + test_days = "
                         f"{history_days + test_days}")
    kw = wide.to_numpy()[: ndays * HOURS].reshape(ndays, HOURS, len(devices))  # (day, hour, device)
    days = [d.date().isoformat() for d in grid[::HOURS][:ndays]]
    rng = np.random.default_rng(phase_seed)
    shuffled = rng.permutation(len(devices))
    shares = np.asarray(phase_shares, float) / np.sum(phase_shares)
    phase_map: dict[str, dict[str, Any]] = {}
    feeders_idx = []
    for f in range(feeders):
        idx = shuffled[f * per:(f + 1) * per]
        counts = np.floor(shares * per).astype(int)
        counts[np.argsort(-(shares * per - counts))[: per - counts.sum()]] += 1
        phases = rng.permutation(np.repeat(np.arange(3), counts))
        pos = np.round(rng.uniform(20.0, feeder_length_m, per), 1)
        feeders_idx.append((f"feeder-{f}", idx, phases, pos))
        for j, k in enumerate(idx):
            phase_map[devices[k]] = {"feeder": f"feeder-{f}", "phase": PHASES[phases[j]], "position_m": float(pos[j])}
    ids_c, ph_c, pos_c, kw_c = feeder_columns(per)
    rows_x, rows_y, rows_m = [], [], []
    for d in range(history_days, ndays):
        for name, idx, phases, pos in feeders_idx:
            expected = kw[d - history_days:d][:, :, idx].mean(axis=0)  # (24, N)
            realised = kw[d][:, idx]
            ident = {**dict(zip(ids_c, [devices[k] for k in idx])), **dict(zip(ph_c, [PHASES[p] for p in phases])),
                     **dict(zip(pos_c, pos))}
            rows_x.append({**ident, **dict(zip(kw_c, expected.T.ravel()))})
            rows_y.append(dict(zip(kw_c, realised.T.ravel())))
            rows_m.append({"date": days[d], "feeder": name, **ident})
    X, Y, M = pd.DataFrame(rows_x), pd.DataFrame(rows_y), pd.DataFrame(rows_m)
    cut = days[ndays - test_days]
    test = (M["date"] >= cut).to_numpy()
    part = lambda f, m: f[m].reset_index(drop=True)  # noqa: E731
    return Dataset(
        name="m14_load_balancing", X_train=part(X, ~test), y_train=part(Y, ~test), X_test=part(X, test), y_test=part(Y, test),
        meta_train=part(M, ~test), meta_test=part(M, test),
        split={"train": [days[history_days], days[ndays - test_days - 1]], "test": [cut, days[-1]], "unit": "UTC day"},
        params={"source": source, "feeders": feeders, "customers_per_feeder": per, "phase_seed": phase_seed,
                "phase_shares": list(phase_shares), "feeder_length_m": feeder_length_m, "history_days": history_days,
                "test_days": test_days, "phase_map": phase_map,
                "phase_map_note": "phases and positions are a dataset choice (seeded), not part of the meter twin"},
        description=(f"meter twin {source}: {feeders} feeders x {per} single-phase customers, seeded phase map; "
                     f"X = {history_days}-day mean hourly profile, y = realised hourly kW of the day"),
    )


# --------------------------------------------------------------------------- m15


def _labels(ts_s: np.ndarray, starts_s: np.ndarray, horizon_s: float) -> np.ndarray:
    s = np.sort(starts_s)
    return (np.searchsorted(s, ts_s + horizon_s, side="right") > np.searchsorted(s, ts_s, side="right")).astype(int)


def grid_stability_design(features: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """m15's input matrix from :func:`features.compute` rows (in time order): infinities and gaps
    carried forward from the same device's previous row (never another device's), then 0.
    Training and serving share it."""
    X = features[columns].astype(float).replace([np.inf, -np.inf], np.nan)
    keys = [k for k in ("source", "device_id") if k in features.columns]
    X = X.groupby([features[k] for k in keys], sort=False).ffill() if keys else X.ffill()
    return X.fillna(0.0).reset_index(drop=True)


def grid_stability(store, *, sources: tuple[str, ...] = M15_SOURCES, horizon_min: float = 30.0, test_fraction: float = 0.3,
                   windows: tuple[str, ...] = M15_WINDOWS, start: datetime | str | None = None,
                   end: datetime | str | None = None) -> Dataset:
    """One row per device-minute: three-phase features -> disturbance starts within ``horizon_min``.

    X: :func:`features.compute` columns (no ids, no timestamps); y: 0/1 from truth ``events``;
    meta: ts, source, device_id.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"m15 dataset: test_fraction must be in (0, 1) (got {test_fraction})")
    if not sources:
        raise InputError("m15 dataset: no sources given; pass the grid runs of datasets.decision.SIMULATIONS")
    parts = []
    for src in sources:
        raw = store.scan("three_phase", source=src, start=start, end=end).collect()
        if raw.height == 0:
            raise InputError(f"m15 dataset: no three_phase readings of source {src!r} in {store}; simulate it first "
                             f"(datasets.decision.SIMULATIONS)")
        feats = compute(raw, "three_phase", windows=tuple(windows), keep_inputs=False)
        feats = feats.filter((pl.col("ts").dt.epoch("us") % 60_000_000) == 0).with_columns(
            (pl.col("ts").dt.epoch("ms") / 1000.0).alias("t_s"))
        ev = store.scan_truth("events", source=src).filter(pl.col("type").is_in(list(DISTURBANCE_TYPES))).collect()
        f = feats.to_pandas()
        f["source"] = src
        ts_s = f["t_s"].to_numpy()
        f["y"] = 0
        for dev, g in f.groupby("device_id").groups.items():
            starts = ev.filter(pl.col("device_id") == dev)["ts"].dt.epoch("us").to_numpy() / 1e6
            f.loc[g, "y"] = _labels(ts_s[f.index.get_indexer(g)], starts, horizon_min * 60)
        f["end_s"] = float(raw["ts"].max().timestamp())
        parts.append(f)
    data = pd.concat(parts, ignore_index=True)
    tsec = data["t_s"].to_numpy()
    # rows whose label window runs past the end of their run are incomplete: drop them
    data = data[tsec + horizon_min * 60 <= data["end_s"].to_numpy()].copy()
    data = data.sort_values(["ts", "source", "device_id"], kind="stable").reset_index(drop=True)
    if data.empty:
        raise InputError("m15 dataset: no minute with a complete label window; simulate longer runs")
    tsec = data["t_s"].to_numpy()
    lo, hi = tsec.min(), tsec.max()
    cut = lo + (1 - test_fraction) * (hi - lo)
    train = data[tsec + horizon_min * 60 < cut]
    test = data[tsec >= cut]
    drop = {"ts", "t_s", "device_id", "source", "y", "end_s"}
    xcols = [c for c in data.columns if c not in drop and pd.api.types.is_numeric_dtype(data[c])]
    clean = lambda f: grid_stability_design(f, xcols)  # noqa: E731
    meta = ["ts", "source", "device_id"]
    return Dataset(
        name="m15_grid_stability", X_train=clean(train), y_train=train["y"].reset_index(drop=True),
        X_test=clean(test), y_test=test["y"].reset_index(drop=True),
        meta_train=train[meta].reset_index(drop=True), meta_test=test[meta].reset_index(drop=True),
        split={"train": [_iso(train["ts"].min()), _iso(train["ts"].max())], "test": [_iso(test["ts"].min()), _iso(test["ts"].max())],
               "sources": list(sources)},
        params={"sources": list(sources), "horizon_min": horizon_min, "test_fraction": test_fraction, "windows": list(windows),
                "disturbance_types": list(DISTURBANCE_TYPES)},
        description=f"grid twin features once per minute -> any disturbance starting within {horizon_min:g} min (truth events)",
    )


__all__ = ["load_balancing", "grid_stability", "SIMULATIONS", "M14_SOURCE", "M15_SOURCES", "DISTURBANCE_TYPES"]
