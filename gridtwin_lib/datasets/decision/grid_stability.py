"""Dataset of m15 (grid stability).

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

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...features import compute
from ...models.base import Dataset
from ...small_frames import column_index

DISTURBANCE_TYPES = ("sag", "swell", "undervoltage", "interruption", "overcurrent", "overload", "frequency_excursion",
                     "unbalance", "harmonics")
M15_WINDOWS = ("1m", "15m", "1h")


#: the grid-twin runs it reads by default, one per scenario (runs per size: ``conf/base/models/decision/grid_stability.yaml``)
M15_SOURCES = tuple(f"sim:m15_{s}" for s in ("mixed", "voltage_sag", "frequency_drift", "normal"))




def _iso(x) -> str:
    return pd.Timestamp(x).isoformat()



# --------------------------------------------------------------------------- m15


def _labels(ts_s: np.ndarray, starts_s: np.ndarray, horizon_s: float) -> np.ndarray:
    s = np.sort(starts_s)
    return (np.searchsorted(s, ts_s + horizon_s, side="right") > np.searchsorted(s, ts_s, side="right")).astype(int)


def _one_row_each(features: pd.DataFrame, keys: list[str]) -> bool:
    """Whether no device has two rows (e.g. a live poll's readings): then no row has a previous one to carry from."""
    groups = list(zip(*(features[k].tolist() for k in keys)))
    return len(set(groups)) == len(groups)


def grid_stability_design(features: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """m15's input matrix from :func:`features.compute` rows (in time order): infinities and gaps
    carried forward from the same device's previous row (never another device's), then 0.
    Training and serving share it."""
    index = column_index(tuple(columns))
    A = (features if features.columns.equals(index) else features[index]).to_numpy(dtype=float, copy=True)
    A[np.isinf(A)] = np.nan
    keys = [k for k in ("source", "device_id") if k in features.columns]
    if len(A) > 1 and np.isnan(A).any() and not (keys and _one_row_each(features, keys)):  # something to carry forward
        X = pd.DataFrame(A, columns=index, index=features.index)
        A = (X.groupby([features[k] for k in keys], sort=False).ffill() if keys else X.ffill()).to_numpy()
    return pd.DataFrame(np.where(np.isnan(A), 0.0, A), columns=index, copy=False)


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
        raise InputError("m15 dataset: no sources given; pass the grid runs of conf/base/models/decision/grid_stability.yaml")
    parts = []
    for src in sources:
        raw = store.scan("three_phase", source=src, start=start, end=end).collect()
        if raw.height == 0:
            raise InputError(f"m15 dataset: no three_phase readings of source {src!r} in {store}; simulate it first "
                             f"(conf/base/models/decision/grid_stability.yaml)")
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
