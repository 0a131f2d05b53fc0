"""Dataset of m01 (voltage anomaly).
Features come from :func:`gridtwin_lib.features.compute` (kind ``three_phase``), computed
one day at a time with a leading margin as long as the longest window, so a value at t
is exactly what an online engine would compute from readings up to t. Labels come from
the grid twin's truth tables only (``events`` for anomalies, ``grid_state`` for unbalance causes).

m01 (``voltage_anomaly``): one ``mixed`` run at 1 s; the last ``test_days`` are the
test range, everything before is training (unsupervised: ``y_train`` is None). The test
labels mark readings inside target-event windows (1), inside rule-defined or
pre-test-range event windows (-1, left out of precision) or elsewhere (0); the events
themselves travel in ``meta_test`` (see :mod:`gridtwin_lib.models.monitoring.voltage_anomaly`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.monitoring.voltage_anomaly import (
    DRIVER_EVENT_TYPES,
    M01_INPUT_COLUMNS,
    RULE_DEFINED_EVENT_TYPES,
)
from ...store import Store
from ..common import (
    features_by_day,
    float_frame,
    iso_utc,
    require_source,
    time_range,
)

#: the grid-twin run it reads by default (its runs per size: ``conf/base/models/monitoring/voltage_anomaly.yaml``)
M01_SOURCE = "sim:m01_mixed"


# --------------------------------------------------------------------------- m01


def voltage_anomaly(
    store: Store,
    *,
    source: str = M01_SOURCE,
    test_days: float = 3.0,
    train_stride: int = 5,
    windows: tuple[str, ...] = ("1m", "15m"),
    tolerance_s: float = 60.0,
    onset_s: float = 60.0,
    merge_gap_s: float = 10.0,
    target_types: tuple[str, ...] = DRIVER_EVENT_TYPES,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    site=None,
) -> Dataset:
    """m01 dataset: features of one grid source; the last ``test_days`` [d] are the test range.

    ``train_stride`` thins training readings (the forest needs a sample, not every second);
    test readings are all kept. An event counts as detected by a flag in ``[start, end +
    tolerance_s)``; for precision only flags within ``onset_s`` of its start (plus the
    tolerance) are hits (see :func:`_window_labels`).

    ``target_types``: the events m01 is judged on; by default the twin's injected drivers
    only (:data:`DRIVER_EVENT_TYPES`), never the threshold crossings of m01's own input
    channels (unbalance, overcurrent, frequency, harmonics), which a limit rule on those
    channels finds by construction; their windows are left out of precision (label -1).
    """
    windows = tuple(windows)
    if test_days <= 0 or train_stride < 1 or tolerance_s < 0:
        raise InputError(f"m01: need test_days > 0, train_stride >= 1, tolerance_s >= 0 (got {test_days}, {train_stride}, {tolerance_s})")
    if not {"1m", "15m"} <= set(windows):
        raise InputError(f"m01: windows must include 1m and 15m (the model's inputs), got {list(windows)}")
    require_source(store, source, "m01", "'mixed', duration='10d', resolution='1s', devices=2")
    lo, hi, n = time_range(store, source, start, end)
    if n == 0:
        raise InputError(f"m01: source {source!r} has no readings in [{start}, {end}); widen the window or simulate that range")
    split = hi - timedelta(days=float(test_days))
    split = split.replace(second=0, microsecond=0)
    if split <= lo:
        raise InputError(f"m01: {source!r} spans {lo:%Y-%m-%d %H:%M} to {hi:%Y-%m-%d %H:%M}, not more than test_days={test_days}; "
                         "simulate a longer run or lower m01_test_days")
    stop = hi + timedelta(microseconds=1)
    train = features_by_day(store, source, lo, split, windows, M01_INPUT_COLUMNS, site, stride=train_stride)
    test = features_by_day(store, source, split, stop, windows, M01_INPUT_COLUMNS, site)

    ts_us = test["ts"].dt.epoch("us").to_numpy()
    dev = test["device_id"].to_numpy()
    events = store.scan_truth("events", source=source).collect()
    if events.height == 0 or "type" not in events.columns:
        raise InputError(f"m01: no truth table 'events' for {source!r}; re-run the simulation with run_scenario (it writes truth)")
    events = events.filter(pl.col("device_id").is_in(list(set(dev.tolist())))
                           & (pl.col("end") >= split) & (pl.col("ts") < stop))
    split_us = int(split.timestamp() * 1e6)
    ev = pd.DataFrame({
        "ts_us": events["ts"].dt.epoch("us").to_numpy(),
        "end_us": events["end"].dt.epoch("us").to_numpy(),
        "device_id": events["device_id"].to_numpy(),
        "type": events["type"].to_numpy(),
        "cause": events["cause"].to_numpy(),
    })
    ev["role"] = _event_roles(ev, target_types, split_us)
    ev = ev.sort_values(["device_id", "ts_us", "type"], kind="stable").reset_index(drop=True)
    y_test = _window_labels(ts_us, dev, ev, tolerance_s, onset_s)

    device_days = float(sum((g.max() - g.min()) / 86_400e6 for _, g in pd.Series(ts_us).groupby(dev)))
    meta_test = {
        "ts_us": ts_us, "device_id": dev, "events": ev, "tolerance_s": float(tolerance_s),
        "merge_gap_s": float(merge_gap_s), "onset_s": float(onset_s), "device_days": device_days,
    }
    meta_train = pd.DataFrame({"ts": train["ts"].to_pandas(), "device_id": train["device_id"].to_pandas()})
    return Dataset(
        name="m01_voltage_anomaly",
        X_train=float_frame(train, M01_INPUT_COLUMNS),
        y_train=None,
        X_test=float_frame(test, M01_INPUT_COLUMNS),
        y_test=y_test,
        meta_test=meta_test,
        meta_train=meta_train,
        split={"train": [iso_utc(lo), iso_utc(split)], "test": [iso_utc(split), iso_utc(stop)]},
        params=dict(source=source, test_days=test_days, train_stride=train_stride, windows=list(windows),
                    tolerance_s=tolerance_s, onset_s=onset_s, merge_gap_s=merge_gap_s, target_types=list(target_types)),
        description=(f"{source}: features {list(windows)} at the source resolution; train {train.height:,} readings "
                     f"(every {train_stride}th), test {test.height:,} readings with "
                     f"{int((ev['role'] == 'target').sum())} target events"),
    )


def _event_roles(ev: pd.DataFrame, target_types, split_us: int) -> np.ndarray:
    """Role of each event in m01's scoring (see :mod:`gridtwin_lib.models.monitoring`).

    ``rule``: sag/swell/undervoltage/interruption, the baseline rule's own crossings.
    ``target``: a driver starting in the test range, or another disturbance starting in
    the test range whose interval does not overlap a rule-defined one of its device.
    ``cooccurring``: such a disturbance that does overlap one (e.g. the LVUR > 2 % interval
    of a single-phase sag: the same measured crossing seen through another definition), or
    a driver that starts while a rule interval is already open (a motor start drawn during
    an outage).
    ``ignore``: everything else (events that began before the test range, other types).
    """
    n = len(ev)
    role = np.full(n, "ignore", dtype=object)
    is_rule = ev["type"].isin(list(RULE_DEFINED_EVENT_TYPES)).to_numpy()
    role[is_rule] = "rule"
    in_test = ev["ts_us"].to_numpy() >= split_us
    wanted = ev["type"].isin(list(target_types)).to_numpy() & in_test & ~is_rule
    driver = ev["type"].isin(list(DRIVER_EVENT_TYPES)).to_numpy()
    overlap = np.zeros(n, bool)
    inside = np.zeros(n, bool)
    s0, s1, dev = ev["ts_us"].to_numpy(np.int64), ev["end_us"].to_numpy(np.int64), ev["device_id"].to_numpy()
    for d in np.unique(dev):
        r = np.flatnonzero(is_rule & (dev == d))
        if r.size == 0:
            continue
        order = np.argsort(s0[r])
        rs, re_max = s0[r][order], np.maximum.accumulate(s1[r][order])
        k = np.flatnonzero(dev == d)
        # a rule interval [rs, re) overlaps [s, e) iff rs < e and re > s: among rule intervals
        # starting before e, the latest-ending one decides (prefix maximum of the ends)
        pos = np.searchsorted(rs, np.maximum(s1[k], s0[k] + 1), "left") - 1
        overlap[k] = (pos >= 0) & (re_max[np.maximum(pos, 0)] > s0[k])
        # a driver drawn while a rule interval is already open (e.g. a motor start during an
        # outage) cannot be told apart from that interval
        pos = np.searchsorted(rs, s0[k], "left") - 1
        inside[k] = (pos >= 0) & (re_max[np.maximum(pos, 0)] > s0[k])
    keep = np.where(driver, ~inside, ~overlap)
    role[wanted & keep] = "target"
    role[wanted & ~keep] = "cooccurring"
    return role


def _window_labels(ts_us: np.ndarray, dev: np.ndarray, ev: pd.DataFrame, tolerance_s: float, onset_s: float) -> np.ndarray:
    """Per test row: 1 near a target event's onset, ``[start, min(end, start + onset_s) + tolerance_s)``;
    -1 elsewhere inside any event window ``[start, end + tolerance_s)``; else 0.

    Only flags near an onset count as hits for precision: a 15-min cloud or a 40-min
    frequency drift is one event, and flags late in it are neither hits nor false alarms.
    """
    tol, onset = int(round(tolerance_s * 1e6)), int(round(onset_s * 1e6))
    near = np.zeros(ts_us.size + 1, np.int64)
    inside = np.zeros(ts_us.size + 1, np.int64)
    for d in np.unique(dev):
        rows = np.flatnonzero(dev == d)
        lo = int(rows[0])
        t = ts_us[lo:int(rows[-1]) + 1]
        e = ev[ev["device_id"] == d]
        s0, s1 = e["ts_us"].to_numpy(np.int64), e["end_us"].to_numpy(np.int64)
        tgt = (e["role"] == "target").to_numpy()
        for acc, a_us, b_us in ((near, s0[tgt], np.minimum(s1[tgt], s0[tgt] + onset) + tol), (inside, s0, s1 + tol)):
            if a_us.size:
                np.add.at(acc, lo + np.searchsorted(t, a_us, "left"), 1)
                np.add.at(acc, lo + np.searchsorted(t, b_us, "left"), -1)
    in_near = np.cumsum(near[:-1]) > 0
    in_event = np.cumsum(inside[:-1]) > 0
    return np.where(in_near, 1, np.where(in_event, -1, 0)).astype(np.int8)
