"""Dataset of m03 frequency_stability: 100 s of 1 s frequency readings -> the next 10 s.

Inputs and regression targets are the measured ``frequency`` of ``three_phase`` records
(the forecast target is the *future* measurement); the excursion label comes from the
twin's truth table ``events`` (type ``frequency_excursion``, intervals ``[ts, end)`` when
the measured frequency is outside 49.85-50.15 Hz): 1 if such an interval covers any of
the seconds t+1 .. t+10.

Scenario: ``frequency_drift`` (AGC drift episodes and generator trips) with a stronger
drift (0.15 pu/h instead of 0.05): the frequency is outside the band ~1-2 % of the time
and a 10 s window holds an excursion ~2-3 % of the time, excursions coming both from
slow drifts (foreseeable) and from trips (not). With the default drift they are 20x
rarer (~10 a day), too few to learn or judge a probability on a few days of data.

Split: the last ``test_days`` of the timeline are the test range. A training row uses
readings t-99 .. t+10 that all lie before the cut; a test row's history starts at or
after it, so no row straddles the boundary. Training origins are taken every
``train_stride_s`` seconds, test origins every ``test_stride_s`` seconds (neighbouring
origins share 99 of 100 readings; the stride trades a little information for time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from ...errors import InputError
from ...models.base import Dataset
from ...models.monitoring.frequency_stability import (
    FORECAST_COLUMNS,
    HISTORY,
    HORIZON,
    INPUT_COLUMNS,
)

#: the run it reads by default (runs per size: ``conf/base/models/monitoring/frequency_stability.yaml``)
FREQ_SOURCES = ("sim:m03_frequency_drift",)


def _series(store, source: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per device: epoch seconds of a regular 1 s grid and the frequency on it (NaN in gaps)."""
    frame = (store.scan("three_phase", source=source).select("ts", "device_id", "frequency")
             .drop_nulls("ts").collect())
    if frame.height == 0:
        raise InputError(f"m03 dataset: no three_phase readings of source {source!r} in {store}; simulate it first, "
                         "e.g. run_scenario('frequency_drift', resolution='1s', source=...) "
                         "(conf/base/models/monitoring/frequency_stability.yaml)")
    out = []
    for (device,), part in frame.partition_by("device_id", as_dict=True, maintain_order=True).items():
        us = part["ts"].dt.epoch("us").to_numpy()
        steps = np.diff(us)
        if len(us) < 2 or np.median(steps) != 1_000_000 or (us % 1_000_000).any():
            raise InputError(f"m03 dataset: {source!r} device {device!r} is not sampled every whole second "
                             f"(median step {np.median(steps) / 1e6 if len(us) > 1 else float('nan'):g} s); "
                             "simulate or resample it at resolution 1s")
        grid, f = frequency_grid(us, part["frequency"])
        out.append((str(device), grid, f))
    return out


def frequency_grid(ts_us: np.ndarray, frequency: pl.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whole-second readings of one device on a regular 1 s grid: (epoch seconds, f [Hz]),
    NaN where a second has no reading or a null (NaN) frequency. Training and serving share it."""
    sec = np.asarray(ts_us) // 1_000_000
    grid = np.arange(sec[0], sec[-1] + 1)
    f = np.full(grid.size, np.nan)
    if isinstance(frequency, pl.Series):
        frequency = frequency.cast(pl.Float64).fill_null(float("nan")).to_numpy()
    f[sec - sec[0]] = np.asarray(frequency, dtype=np.float64)
    return grid, f


def _excursion_seconds(store, source: str, device: str, grid: np.ndarray) -> np.ndarray:
    """1 where the truth log has a frequency excursion covering that second of ``grid``."""
    events = store.scan_truth("events", source=source).collect()
    if events.height == 0 or "type" not in events.columns:
        raise InputError(f"m03 dataset: source {source!r} has no truth table 'events'; excursion labels need a "
                         "grid-twin run (e.g. scenario frequency_drift) stored with its truth")
    events = events.filter((pl.col("type") == "frequency_excursion") & (pl.col("device_id") == device))
    mask = np.zeros(grid.size, dtype=np.int8)
    for t0, t1 in events.select(pl.col("ts").dt.epoch("s"), pl.col("end").dt.epoch("s")).iter_rows():
        lo, hi = max(int(t0) - grid[0], 0), min(int(t1) - grid[0], grid.size)
        if hi > lo:
            mask[lo:hi] = 1
    return mask


def frequency_stability(store, *, sources: list[str] | tuple[str, ...] = FREQ_SOURCES, test_days: float = 1.0,
                        train_stride_s: int = 3, test_stride_s: int = 2) -> Dataset:
    """Rows = forecast origins t; X: f_t-99 .. f_t [Hz]; y: f_t+1 .. f_t+10 [Hz] and excursion (0/1).

    meta_*: ts (origin, UTC), source, device_id, f_t [Hz]. Rows in time order.
    """
    if not test_days > 0:
        raise InputError(f"m03 dataset: test_days must be > 0 (got {test_days})")
    if int(train_stride_s) < 1 or int(test_stride_s) < 1:
        raise InputError("m03 dataset: train_stride_s and test_stride_s must be whole seconds >= 1")
    sources = [sources] if isinstance(sources, str) else list(sources)
    if not sources:
        raise InputError("m03 dataset: no sources given; pass e.g. sources=['sim:m03_frequency_drift']")
    series = [(src, dev, grid, f) for src in sources for dev, grid, f in _series(store, src)]
    end = max(grid[-1] for *_, grid, f in series) + 1
    start = min(grid[0] for *_, grid, f in series)
    cut = int(end - round(test_days * 86_400))
    if cut - start < 2 * (HISTORY + HORIZON):
        raise InputError(f"m03 dataset: {(end - start) / 86_400:.2f} d of readings leave no training range before "
                         f"the last {test_days:g} d; simulate a longer run or lower test_days")
    parts = {"train": [], "test": []}
    for src, dev, grid, f in series:
        n = grid.size
        if n < HISTORY + HORIZON:
            continue
        exc = _excursion_seconds(store, src, dev, grid)
        hist = sliding_window_view(f, HISTORY)[: n - HISTORY - HORIZON + 1]  # origin index i = k + 99
        fut = sliding_window_view(f[HISTORY:], HORIZON)
        label = sliding_window_view(exc[HISTORY:], HORIZON).max(axis=1)
        origin = grid[HISTORY - 1: n - HORIZON]
        ok = np.isfinite(hist).all(axis=1) & np.isfinite(fut).all(axis=1)
        first = origin - (HISTORY - 1)
        last = origin + HORIZON
        rel = origin - start
        for name, sel in (("train", ok & (last < cut) & (rel % int(train_stride_s) == 0)),
                          ("test", ok & (first >= cut) & ((origin - cut) % int(test_stride_s) == 0))):
            if sel.any():
                parts[name].append(pd.DataFrame({
                    "ts": pd.to_datetime(origin[sel], unit="s", utc=True), "source": src, "device_id": dev,
                    **dict(zip(INPUT_COLUMNS, hist[sel].T)), **dict(zip(FORECAST_COLUMNS, fut[sel].T)),
                    "excursion": label[sel].astype(np.int64),
                }))

    def assemble(frames):
        if not frames:
            return pd.DataFrame(columns=INPUT_COLUMNS), None, None
        df = pd.concat(frames, ignore_index=True).sort_values(["ts", "source", "device_id"], kind="stable")
        df = df.reset_index(drop=True)
        meta = df[["ts", "source", "device_id"]].assign(f_t=df["f_t"].to_numpy())
        return df[INPUT_COLUMNS], df[[*FORECAST_COLUMNS, "excursion"]], meta

    X_train, y_train, meta_train = assemble(parts["train"])
    X_test, y_test, meta_test = assemble(parts["test"])
    iso = lambda s: (pd.Timestamp(s, unit="s", tz="UTC")).isoformat()  # noqa: E731
    # ranges of every reading a part uses (history and targets), not only the origins
    split = {
        "train": [iso(meta_train["ts"].min().timestamp() - (HISTORY - 1)), iso(meta_train["ts"].max().timestamp() + HORIZON)]
        if meta_train is not None else [iso(start), iso(cut)],
        "test": [iso(meta_test["ts"].min().timestamp() - (HISTORY - 1)), iso(meta_test["ts"].max().timestamp() + HORIZON)]
        if meta_test is not None else [iso(cut), iso(end)],
        "cut": iso(cut),
    }
    return Dataset(
        name="m03_frequency_stability",
        X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
        meta_train=meta_train, meta_test=meta_test, split=split,
        params={"sources": sources, "test_days": test_days, "train_stride_s": int(train_stride_s),
                "test_stride_s": int(test_stride_s)},
        description=f"1 s frequency [Hz]: {HISTORY} s history -> next {HORIZON} s and excursion of 49.85-50.15 Hz "
                    "(truth: frequency_excursion events)",
    )
