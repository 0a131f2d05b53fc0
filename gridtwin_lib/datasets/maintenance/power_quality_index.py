"""Dataset of m07 (power quality index).

From grid-twin runs at 1 s.

m07 (``power_quality_index``): per device, clock-aligned 10-min windows of the raw
``three_phase`` readings give the EN 50160 quantities and the PQ index
(:func:`gridtwin_lib.physics.pq.pq_window_table`, the one definition). A row is
window k of a device: inputs are window k's quantities, sub-scores and index, windows k-1 and
k-2's index and sub-scores, and :func:`gridtwin_lib.features.compute` values at the last
reading of window k; the label is the index of window k+1 (measured on readings the inputs
never see). Runs: ``mixed``, ``harmonic_distortion`` and ``peak_load``.

It splits chronologically at one instant for every device (the last ``test_fraction`` of
the span is the test); training rows whose label reaches past the cut are dropped. Rows
with a missing input (supply interruptions: no frequency, no power factor) are dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...features import compute, window_us
from ...models.base import Dataset
from ...models.maintenance.power_quality_index import M07_FEATURES, M07_INPUT_COLUMNS, M07_LAGS
from ...physics.pq import SUBSCORES, WINDOW_S, pq_window_table
from ...store import Store
from ..common import KIND, iso_or_none, round_cut, source_span

#: the runs it reads by default (runs per size: ``conf/base/models/maintenance/power_quality_index.yaml``)
M07_SOURCES = ("sim:m07_mixed", "sim:m07_harmonics", "sim:m07_peak_load")


# --------------------------------------------------------------------------- m07


def m07_window_rows(raw: pl.DataFrame, since: datetime, site=None, features: pl.DataFrame | None = None
                    ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Clock-aligned 10-min windows starting at or after ``since`` of canonical three_phase
    ``raw`` readings (which must reach 1 h further back for the features), and the
    :func:`features.compute` values at each window's last reading (its features use readings
    <= that reading only). ``features``: that compute already done on ``raw`` (windows
    including 15m and 1h), to avoid doing it twice. Returns (window table, features); shared by
    training and serving."""
    own = raw.filter(pl.col("ts") >= since)
    windows = pq_window_table(own)
    f = features if features is not None else compute(raw, KIND, windows=("15m", "1h"), site=site, keep_inputs=False)
    f = f.filter(pl.col("ts") >= since).with_columns(pl.col("ts").dt.truncate(f"{WINDOW_S}s").alias("window_start"))
    f = f.group_by("device_id", "window_start").agg(pl.all().sort_by("ts").last())
    return windows, f.select("device_id", "window_start", pl.col("ts").alias("ts_last"), *M07_FEATURES)


def m07_rows(windows: pl.DataFrame, feats: pl.DataFrame) -> pd.DataFrame:
    """One row per (device, window k): window k's quantities, sub-scores and index, the lags of
    windows k-1, k-2 (a missing window is a NaN row, never a shifted neighbour), the features at
    k's last reading, and ``y`` = index of window k+1 (NaN when absent)."""
    table = windows.sort("device_id", "window_start").join(feats, on=["device_id", "window_start"], how="left").to_pandas()
    out = []
    step = pd.Timedelta(seconds=WINDOW_S)
    for dev, g in table.groupby("device_id", sort=True):
        g = g.set_index("window_start").sort_index()
        full = g.reindex(pd.date_range(g.index.min(), g.index.max(), freq=step))  # gaps become NaN rows
        for k in M07_LAGS:
            for c in ("pq_index", *SUBSCORES):
                full[f"{c}_lag{k}"] = full[c].shift(k)
        full["y"] = full["pq_index"].shift(-1)
        full["device_id"] = dev
        full.index.name = "window_start"
        out.append(full.reset_index())
    return pd.concat(out, ignore_index=True)


def _m07_source(store: Store, source: str, lo: datetime, hi: datetime, site) -> pd.DataFrame:
    """Rows of one source: window k's inputs, the next window's index as ``y`` (NaN if absent)."""
    margin = timedelta(microseconds=window_us("1h"))
    feats, windows = [], []
    # days start on the 10-min grid, so no window is split between two days
    day = datetime.fromtimestamp(int(lo.timestamp()) // WINDOW_S * WINDOW_S, tz=UTC)
    end = hi + timedelta(seconds=1)
    while day < end:
        nxt = min(end, day + timedelta(days=1))
        raw = store.scan(KIND, source=source, start=day - margin, end=nxt).collect()
        if raw.height:
            win, feat = m07_window_rows(raw, day, site)
            windows.append(win)
            feats.append(feat)
        day = nxt
    if not windows:
        raise InputError(f"m07: source {source!r} has no readings")
    frame = m07_rows(pl.concat(windows), pl.concat(feats, how="vertical_relaxed"))
    frame["source"] = source
    return frame


def power_quality_index(store: Store, *, sources: list[str] | tuple[str, ...] = M07_SOURCES, test_fraction: float = 0.3,
                        site=None) -> Dataset:
    """m07 dataset: one row per (source, device, 10-min window k) with a successor window.

    X: ``M07_INPUT_COLUMNS`` (quantities in their units, sub-scores and indices 0-100,
    features in their catalog units); y: pq_index of window k+1; meta: window_start (of k),
    device_id, source, pq_index (current). Split: windows whose successor starts before the
    cut are training, windows starting at or after the cut are test.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"m07: test_fraction must be in (0, 1) (got {test_fraction})")
    sources = [sources] if isinstance(sources, str) else list(sources)
    if not sources:
        raise InputError("m07: no sources given")
    spans = {s: source_span(store, s, "m07") for s in sources}
    frames = [_m07_source(store, s, *spans[s], site) for s in sources]
    frame = pd.concat(frames, ignore_index=True)
    cols = list(M07_INPUT_COLUMNS)
    ok = frame[cols].notna().all(axis=1) & frame["y"].notna() & np.isfinite(frame[cols].to_numpy(float)).all(axis=1)
    frame = frame[ok].sort_values(["window_start", "source", "device_id"], kind="stable").reset_index(drop=True)
    cut = round_cut([v[0] for v in spans.values()], [v[1] for v in spans.values()], test_fraction, WINDOW_S)
    cut_ts = pd.Timestamp(cut)
    step = pd.Timedelta(seconds=WINDOW_S)
    train = frame[frame["window_start"] + step < cut_ts]  # label window k+1 ends by the cut
    test = frame[frame["window_start"] >= cut_ts]
    meta_cols = ["window_start", "device_id", "source", "pq_index"]

    def part(df):
        df = df.reset_index(drop=True)
        return df[cols].astype(float), df["y"].astype(float).rename("pq_index_next"), df[meta_cols]

    X_train, y_train, meta_train = part(train)
    X_test, y_test, meta_test = part(test)
    split = {"train": [iso_or_none(train["window_start"].min()), iso_or_none(train["window_start"].max())],
             "test": [iso_or_none(test["window_start"].min()), iso_or_none(test["window_start"].max())],
             "cut": cut.isoformat(), "rule": "by 10-min window start, one cut for every source and device; "
                                             "training labels end at the cut"}
    return Dataset(
        name="m07_power_quality_index", X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
        meta_train=meta_train, meta_test=meta_test, split=split,
        params={"sources": sources, "test_fraction": test_fraction},
        description="10-min windows of 1 s three-phase readings: EN 50160 quantities + pq_index now and 2 windows back, "
                    "features.compute at the window's end -> pq_index of the next window",
    )
