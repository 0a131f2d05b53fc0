"""Datasets of the monitoring models m01 (voltage anomaly) and m04 (phase imbalance cause).

Features come from :func:`gridtwin_lib.features.compute` (kind ``three_phase``), computed
one day at a time with a leading margin as long as the longest window, so a value at t
is exactly what an online engine would compute from readings up to t. Labels come from
the grid twin's truth tables only (``events`` for m01, ``grid_state`` for m04).

m01 (``voltage_anomaly``): one ``mixed`` run at 1 s; the last ``test_days`` are the
test range, everything before is training (unsupervised: ``y_train`` is None). The test
labels mark readings inside target-event windows (1), inside rule-defined or
pre-test-range event windows (-1, left out of precision) or elsewhere (0); the events
themselves travel in ``meta_test`` (see :mod:`gridtwin_lib.models.monitoring`).

m04 (``phase_imbalance``): the ``phase_unbalance`` scenario has ONE cause per run, active
from ``onset_fraction`` of the run to its end (``balanced`` before). So every cause gets
two runs of its own (own sources and seeds, ``unbalance_strength`` 0.6 and 1.4, several
devices each) and two more runs never reach their onset (``onset_fraction=1``: all
``balanced``). All runs share the same calendar, and one
chronological cut at ``1 - test_fraction`` of the span puts the pre-onset balanced rows and
the start of each cause in training, the rest of each cause and the balanced run's last
part in test; the builder refuses a split where a class misses either side. Because a run
has one cause, the split is also grouped by asset: the last ``holdout_devices`` devices of
every run are test-only (after the cut), the others train-only (before it).
``unbalanced_pv`` rows are relabelled ``balanced`` when the truth PV output
(``grid_state.pv_kw``) is below ``pv_active_kw``: at night the installed PV injects nothing
and no measurement can show the cause (the twin keeps the cause label regardless).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ..errors import InputError
from ..features import compute, window_us
from ..models.base import Dataset
from ..models.monitoring import (
    DRIVER_EVENT_TYPES, M01_INPUT_COLUMNS, M04_INPUT_COLUMNS, RULE_DEFINED_EVENT_TYPES, TARGET_EVENT_TYPES, UNBALANCE_CLASSES,
)
from ..store import Store

KIND = "three_phase"
M01_SOURCE = "sim:m01_mixed"
M04_STRENGTHS: tuple[float, ...] = (0.6, 1.4)  # unbalance_strength of the two runs of each cause


def _m04_source(cause: str, k: int) -> str:
    return f"sim:m04_{cause}_{k}"


M04_SOURCES: tuple[str, ...] = tuple(_m04_source(c, k) for c in UNBALANCE_CLASSES for k in range(len(M04_STRENGTHS)))


def _m01_runs(duration: str, devices: int) -> list[dict[str, Any]]:
    return [dict(scenario="mixed", duration=duration, resolution="1s", seed=11, devices=devices, overrides={},
                 source=M01_SOURCE)]


def _m04_runs(duration: str, resolution: str, devices: int) -> list[dict[str, Any]]:
    """Two runs (strengths 0.6 and 1.4) per cause, and two that never reach their onset. Seeds are 10
    apart: the twin seeds device d of a run with seed + d, so runs never share a device."""
    runs = []
    for j, cause in enumerate(UNBALANCE_CLASSES):
        for k, strength in enumerate(M04_STRENGTHS):
            overrides = ({"cause": "single_phase_overload_a", "onset_fraction": 1.0} if cause == "balanced"
                         else {"cause": cause, "onset_fraction": 0.25, "unbalance_strength": strength})
            runs.append(dict(scenario="phase_unbalance", duration=duration, resolution=resolution, seed=40 + 20 * j + 10 * k,
                             devices=devices, overrides=overrides, source=_m04_source(cause, k)))
    return runs


#: simulator runs per model and size (keyword arguments of ``simulate.run_scenario``)
SIMULATIONS_BY_MODEL: dict[str, dict[str, list[dict[str, Any]]]] = {
    "m01_voltage_anomaly": {"full": _m01_runs("10d", 2), "smoke": _m01_runs("2d", 1)},
    "m04_phase_imbalance": {"full": _m04_runs("21d", "1m", 2), "smoke": _m04_runs("3d", "5m", 1)},
}
SIMULATIONS: dict[str, list[dict[str, Any]]] = {
    size: [run for runs in SIMULATIONS_BY_MODEL.values() for run in runs[size]] for size in ("full", "smoke")
}


# --------------------------------------------------------------------------- helpers


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat()


def _require_source(store: Store, source: str, model: str, scenario_hint: str) -> None:
    if source not in store.sources(KIND):
        raise InputError(f"{model}: no {KIND} measurements from source {source!r} in {store.root}; simulate them first, "
                         f"e.g. run_scenario({scenario_hint}, source={source!r}) (see SIMULATIONS in gridtwin_lib.datasets.monitoring)")


def _time_range(store: Store, source: str, start=None, end=None) -> tuple[datetime, datetime, int]:
    """First and last reading [UTC] and the number of readings of ``source`` in [start, end)."""
    r = store.scan(KIND, source=source, start=start, end=end).select(
        pl.col("ts").min().alias("lo"), pl.col("ts").max().alias("hi"), pl.len().alias("n")).collect()
    return r["lo"][0], r["hi"][0], int(r["n"][0])


def features_by_day(store: Store, source: str, start: datetime, end: datetime, windows: tuple[str, ...],
                    columns: tuple[str, ...], site=None, stride: int = 1) -> pl.DataFrame:
    """``features.compute`` on [start, end) of one source, one day at a time with a leading
    margin as long as the longest window (values identical to one pass over all data, memory
    bounded). Returns ts, device_id and ``columns``; ``stride`` > 1 keeps every stride-th
    reading of each device *after* the features are computed (windows still see every reading).
    """
    margin = timedelta(microseconds=max(window_us(w) for w in windows))
    parts = []
    day = start
    while day < end:
        nxt = min(end, day + timedelta(days=1))
        frame = store.scan(KIND, source=source, start=day - margin, end=nxt).collect()
        if frame.height:
            f = compute(frame, KIND, windows=windows, site=site, keep_inputs=True)
            f = f.filter(pl.col("ts") >= day)
            missing = [c for c in columns if c not in f.columns]
            if missing:
                raise InputError(f"source {source!r} lacks what the features {missing[:4]} need (thd_v? frequency?); "
                                 "use a grid-twin three_phase source")
            f = f.select("ts", "device_id", *columns)
            if stride > 1:
                f = f.filter((pl.int_range(pl.len()).over("device_id") % stride) == 0)
            parts.append(f)
        day = nxt
    if not parts:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "device_id": pl.String, **{c: pl.Float64 for c in columns}})
    return pl.concat(parts, how="vertical_relaxed").sort("device_id", "ts")


def _to_pandas(df: pl.DataFrame, columns) -> pd.DataFrame:
    return df.select([pl.col(c).cast(pl.Float64) for c in columns]).to_pandas()


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
    target_types: tuple[str, ...] = TARGET_EVENT_TYPES,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    site=None,
) -> Dataset:
    """m01 dataset: features of one grid source; the last ``test_days`` [d] are the test range.

    ``train_stride`` thins training readings (the forest needs a sample, not every second);
    test readings are all kept. An event counts as detected by a flag in ``[start, end +
    tolerance_s)``; for precision only flags within ``onset_s`` of its start (plus the
    tolerance) are hits (see :func:`_window_labels`).
    """
    windows = tuple(windows)
    if test_days <= 0 or train_stride < 1 or tolerance_s < 0:
        raise InputError(f"m01: need test_days > 0, train_stride >= 1, tolerance_s >= 0 (got {test_days}, {train_stride}, {tolerance_s})")
    if not {"1m", "15m"} <= set(windows):
        raise InputError(f"m01: windows must include 1m and 15m (the model's inputs), got {list(windows)}")
    _require_source(store, source, "m01", "'mixed', duration='10d', resolution='1s', devices=2")
    lo, hi, n = _time_range(store, source, start, end)
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
        X_train=_to_pandas(train, M01_INPUT_COLUMNS),
        y_train=None,
        X_test=_to_pandas(test, M01_INPUT_COLUMNS),
        y_test=y_test,
        meta_test=meta_test,
        meta_train=meta_train,
        split={"train": [_iso(lo), _iso(split)], "test": [_iso(split), _iso(stop)]},
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


# --------------------------------------------------------------------------- m04


def phase_imbalance(
    store: Store,
    *,
    sources: tuple[str, ...] | list[str] = M04_SOURCES,
    test_fraction: float = 0.35,
    windows: tuple[str, ...] = ("1m", "15m"),
    pv_active_kw: float = 3.0,
    holdout_devices: int = 1,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    site=None,
) -> Dataset:
    """m04 dataset: features of every ``phase_unbalance`` run, cause labels from ``grid_state``.

    One chronological cut at ``1 - test_fraction`` of the common span (floored to the hour).
    Each run has one cause, so a tree could learn an asset's identity (its load level) for
    its cause: the last ``holdout_devices`` devices (by id) of every run are therefore test
    only, and the first ones train only -- test assets are never seen in training.
    """
    windows, sources = tuple(windows), list(sources)
    if not 0 < test_fraction < 1:
        raise InputError(f"m04: test_fraction must be in (0, 1), got {test_fraction}")
    if not {"1m", "15m"} <= set(windows):
        raise InputError(f"m04: windows must include 1m and 15m (the model's inputs), got {list(windows)}")
    if not sources:
        raise InputError("m04: no sources given; pass the phase_unbalance runs of SIMULATIONS_BY_MODEL['m04_phase_imbalance']")
    for s in sources:
        _require_source(store, s, "m04", "'phase_unbalance', overrides={'cause': ...}")
    ranges = [_time_range(store, s, start, end) for s in sources]
    empty = [s for s, r in zip(sources, ranges) if r[2] == 0]
    if empty:
        raise InputError(f"m04: no readings of {empty[0]!r} in [{start}, {end}); widen the window or simulate that range")
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    split = (lo + (hi - lo) * (1.0 - test_fraction)).replace(minute=0, second=0, microsecond=0)
    if split <= lo:
        raise InputError(f"m04: the data span {lo} to {hi} is too short to cut at 1 - test_fraction; simulate longer runs")
    stop = hi + timedelta(microseconds=1)

    frames = []
    for s in sources:
        f = features_by_day(store, s, lo, stop, windows, M04_INPUT_COLUMNS, site)
        state = store.scan_truth("grid_state", source=s).select("ts", "device_id", "unbalance_cause", "pv_kw").collect()
        if state.height == 0:
            raise InputError(f"m04: no truth table 'grid_state' for {s!r}; re-run the phase_unbalance simulation with run_scenario")
        state = state.sort("device_id", "ts")
        f = f.sort("device_id", "ts").join_asof(state, on="ts", by="device_id", strategy="backward", check_sortedness=False)
        frames.append(f.with_columns(pl.lit(s).alias("source")))
    data = pl.concat(frames, how="vertical_relaxed").filter(pl.col("unbalance_cause").is_not_null())
    data = data.with_columns(
        pl.when((pl.col("unbalance_cause") == "unbalanced_pv") & (pl.col("pv_kw") < pv_active_kw))
        .then(pl.lit("balanced")).otherwise(pl.col("unbalance_cause")).alias("label")
    ).sort("source", "device_id", "ts")
    ids = sorted(data["device_id"].unique().to_list())
    if holdout_devices < 0 or (holdout_devices and holdout_devices >= len(ids)):
        raise InputError(f"m04: holdout_devices={holdout_devices} needs more devices per run than {len(ids)}; "
                         "simulate with more devices or set m04_holdout_devices=0")
    held = ids[len(ids) - holdout_devices:] if holdout_devices else []
    is_held = pl.col("device_id").is_in(held)
    train = data.filter((pl.col("ts") < split) & ~is_held)
    test = data.filter((pl.col("ts") >= split) & (is_held if held else pl.lit(True)))
    c_train, c_test = set(train["label"].unique().to_list()), set(test["label"].unique().to_list())
    if c_train != c_test:
        lacking = sorted(c_train ^ c_test)
        raise InputError(f"m04: cause(s) {lacking} appear on one side of the cut at {split:%Y-%m-%d %H:%M} only; "
                         "simulate every cause with onset_fraction < 1 - test_fraction, plus a balanced run (onset_fraction=1)")

    def meta(df: pl.DataFrame) -> pd.DataFrame:
        return df.select("ts", "source", "device_id", "label", "unbalance_cause", "pv_kw").to_pandas()

    return Dataset(
        name="m04_phase_imbalance",
        X_train=_to_pandas(train, M04_INPUT_COLUMNS),
        y_train=train["label"].to_numpy().astype(str),
        X_test=_to_pandas(test, M04_INPUT_COLUMNS),
        y_test=test["label"].to_numpy().astype(str),
        meta_test=meta(test),
        meta_train=meta(train),
        split={"train": [_iso(lo), _iso(split)], "test": [_iso(split), _iso(stop)]},
        params=dict(sources=sources, test_fraction=test_fraction, windows=list(windows), pv_active_kw=pv_active_kw,
                    holdout_devices=holdout_devices, test_devices=held),
        description=(f"{len(sources)} phase_unbalance runs, {train.height:,} train / {test.height:,} test readings "
                     f"(test devices {held or 'all'}); "
                     f"classes {sorted(c_train)}"),
    )
