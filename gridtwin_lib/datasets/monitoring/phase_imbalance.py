"""Dataset of m04 (phase imbalance cause).
Features come from :func:`gridtwin_lib.features.compute` (kind ``three_phase``), computed
one day at a time with a leading margin as long as the longest window, so a value at t
is exactly what an online engine would compute from readings up to t. Labels come from
the grid twin's truth tables only (``events`` for anomalies, ``grid_state`` for unbalance causes).

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

from datetime import datetime, timedelta

import pandas as pd
import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.monitoring.phase_imbalance import M04_INPUT_COLUMNS, UNBALANCE_CLASSES
from ...store import Store
from ..common import (
    features_by_day,
    float_frame,
    iso_utc,
    require_source,
    time_range,
)

#: the runs it reads by default, two per cause (runs per size: ``conf/base/models/monitoring/phase_imbalance.yaml``)
M04_SOURCES: tuple[str, ...] = tuple(f"sim:m04_{c}_{k}" for c in UNBALANCE_CLASSES for k in range(2))



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
        raise InputError("m04: no sources given; pass the phase_unbalance runs of conf/base/models/monitoring/phase_imbalance.yaml")
    for s in sources:
        require_source(store, s, "m04", "'phase_unbalance', overrides={'cause': ...}")
    ranges = [time_range(store, s, start, end) for s in sources]
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
        X_train=float_frame(train, M04_INPUT_COLUMNS),
        y_train=train["label"].to_numpy().astype(str),
        X_test=float_frame(test, M04_INPUT_COLUMNS),
        y_test=test["label"].to_numpy().astype(str),
        meta_test=meta(test),
        meta_train=meta(train),
        split={"train": [iso_utc(lo), iso_utc(split)], "test": [iso_utc(split), iso_utc(stop)]},
        params=dict(sources=sources, test_fraction=test_fraction, windows=list(windows), pv_active_kw=pv_active_kw,
                    holdout_devices=holdout_devices, test_devices=held),
        description=(f"{len(sources)} phase_unbalance runs, {train.height:,} train / {test.height:,} test readings "
                     f"(test devices {held or 'all'}); "
                     f"classes {sorted(c_train)}"),
    )
