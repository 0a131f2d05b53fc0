"""Dataset of m08 (voltage sag).

From grid-twin runs at 1 s.

m08 (``voltage_sag``): features (1m/15m/1h windows) sampled once a minute at t = hh:mm:00;
the label is 1 when a ``sag`` event of the truth ``events`` table starts in (t, t + 15 min]
on that device. Runs: ``mixed`` and a ``voltage_sag`` run with fewer motor starts (1/h instead
of 4/h; the scenario's defaults give a sag nearly every 15 min, a base rate near 1) and its
default strong sag excitation after each start (6/h decaying over 900 s): the precursor.

It splits chronologically at one instant for every device (the last ``test_fraction`` of
the span is the test); training rows whose label reaches past the cut are dropped. Rows
with a missing input (supply interruptions: no frequency, no power factor) are dropped.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.maintenance.voltage_sag import M08_HORIZON_S, M08_INPUT_COLUMNS
from ...store import Store
from ..common import features_by_day, iso_or_none, round_cut, source_span

#: the runs it reads by default (runs per size: ``conf/base/models/maintenance/voltage_sag.yaml``)
M08_SOURCES = ("sim:m08_mixed", "sim:m08_voltage_sag")



# --------------------------------------------------------------------------- m08


def _sag_starts(store: Store, source: str) -> pl.DataFrame:
    ev = store.scan_truth("events", source=source).filter(pl.col("type") == "sag").select("device_id", "ts").collect()
    return ev.unique().sort("device_id", "ts")


def _m08_labels(rows: pl.DataFrame, sags: pl.DataFrame, horizon_s: float) -> np.ndarray:
    """1 where a sag of the row's device starts in (t, t + horizon]."""
    y = np.zeros(rows.height, dtype=np.int8)
    dev = rows["device_id"].to_numpy()
    t = rows["ts"].dt.epoch("us").to_numpy()
    h = int(horizon_s * 1e6)
    for d in np.unique(dev):
        s = np.sort(sags.filter(pl.col("device_id") == d)["ts"].dt.epoch("us").to_numpy())
        idx = np.flatnonzero(dev == d)
        if s.size == 0:
            continue
        nxt = np.searchsorted(s, t[idx], side="right")  # first sag strictly after t
        has = nxt < s.size
        y[idx[has]] = (s[nxt[has]] <= t[idx[has]] + h).astype(np.int8)
    return y


def voltage_sag(store: Store, *, sources: list[str] | tuple[str, ...] = M08_SOURCES, test_fraction: float = 0.3,
                horizon_s: float = M08_HORIZON_S, sample_s: int = 60, site=None) -> Dataset:
    """m08 dataset: features every ``sample_s`` s [s] per device; y = a sag starts within ``horizon_s``.

    X: ``M08_INPUT_COLUMNS``; y: 0/1; meta: ts, device_id, source. Training rows end
    ``horizon_s`` before the cut (their labels never look into the test range).
    """
    if not 0.0 < test_fraction < 1.0 or horizon_s <= 0 or sample_s < 1:
        raise InputError(f"m08: need 0 < test_fraction < 1, horizon_s > 0, sample_s >= 1 (got {test_fraction}, {horizon_s}, {sample_s})")
    sources = [sources] if isinstance(sources, str) else list(sources)
    if not sources:
        raise InputError("m08: no sources given")
    spans = {s: source_span(store, s, "m08") for s in sources}
    parts = []
    cols = list(M08_INPUT_COLUMNS)
    for s in sources:
        lo, hi = spans[s]
        f = features_by_day(store, s, lo, hi + timedelta(seconds=1), ("1m", "15m", "1h"), tuple(cols), site, stride=int(sample_s))
        sags = _sag_starts(store, s)
        y = _m08_labels(f, sags, horizon_s)
        # the last horizon of the run has an incomplete label window
        keep = (f["ts"] <= hi - timedelta(seconds=horizon_s)).to_numpy()
        pdf = f.to_pandas()
        pdf["y"] = y
        pdf["source"] = s
        parts.append(pdf[keep])
    frame = pd.concat(parts, ignore_index=True)
    ok = frame[cols].notna().all(axis=1)
    frame = frame[ok].sort_values(["ts", "source", "device_id"], kind="stable").reset_index(drop=True)
    cut = round_cut([v[0] for v in spans.values()], [v[1] for v in spans.values()], test_fraction, 60)
    cut_ts = pd.Timestamp(cut)
    train = frame[frame["ts"] + pd.Timedelta(seconds=horizon_s) < cut_ts]
    test = frame[frame["ts"] >= cut_ts]
    meta_cols = ["ts", "device_id", "source"]

    def part(df):
        df = df.reset_index(drop=True)
        return df[cols].astype(float), df["y"].astype(int).rename("sag_within_15m"), df[meta_cols]

    X_train, y_train, meta_train = part(train)
    X_test, y_test, meta_test = part(test)
    if y_train.nunique() < 2:
        raise InputError("m08: the training range has no sag (or only sags); simulate longer or use a sag scenario")
    split = {"train": [iso_or_none(train["ts"].min()), iso_or_none(train["ts"].max())],
             "test": [iso_or_none(test["ts"].min()), iso_or_none(test["ts"].max())],
             "cut": cut.isoformat(), "rule": "by time, one cut for every source and device; training labels end at the cut"}
    return Dataset(
        name="m08_voltage_sag", X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
        meta_train=meta_train, meta_test=meta_test, split=split,
        params={"sources": sources, "test_fraction": test_fraction, "horizon_s": horizon_s, "sample_s": sample_s},
        description="features.compute 1m/15m/1h at 1 s readings, sampled every minute -> a sag (truth events) "
                    f"starts within {horizon_s:g} s",
    )
