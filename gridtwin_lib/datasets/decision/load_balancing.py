"""Dataset of m14 (load balancing).

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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.decision.load_balancing import HOURS, PHASES, feeder_columns

#: the meter run it reads by default (runs per size: ``conf/base/models/decision/load_balancing.yaml``); the
#: phase assignment is drawn with that run's seed unless ``phase_seed`` says otherwise
M14_SOURCE = "sim:m14_meters"
M14_SEED = 1401


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
                         f"run_scenario('meter', source={source!r}, devices=48, resolution='15m', duration='42d') (conf/base/models/decision/load_balancing.yaml)")
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
