"""Dataset of m12 (demand response), built from the store.

``demand_response`` (m12)
    Daily profiles (mean kW of each local hour) of every meter of a ``meter`` source: the meter
    twin by default, or ``uci``. Labels are the customer types the meter twin assigned (truth
    table ``customer_types``, see :func:`customer_types`); a source without them (real data)
    gives ``y = None`` and a NaN ARI unless ``require_labels=True`` (then :class:`InputError`).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.energy.demand_response import PROFILE_COLUMNS
from ...models.energy.power_flow_optimization import HOURS

#: the meter run it reads by default (runs per size: ``conf/base/models/energy/demand_response.yaml``)
M12_SOURCE = "sim:m12_meters"


def _iso(x) -> str:
    return pd.Timestamp(x).isoformat()


# --------------------------------------------------------------------------- m12

MISSING_TYPES = (
    "no truth table customer_types (device_id, customer_type) for this source; the meter twin writes one "
    "(gridtwin_lib/simulate/meter.py), real data have none"
)


def customer_types(store, source: str) -> dict[str, str] | None:
    """Customer type per device from the truth tables of ``source``, or None if none was recorded.

    Looked for: a truth table ``customer_types`` (or ``meter_customers``) with ``device_id`` and
    ``customer_type``, else a ``customer_type`` column in ``meter_state``.
    """
    tables = store.truth_tables()
    for table in ("customer_types", "meter_customers", "meter_state"):
        if table not in tables:
            continue
        lf = store.scan_truth(table, source=source)
        if "customer_type" not in lf.collect_schema().names():
            continue
        t = lf.select("device_id", "customer_type").drop_nulls().unique("device_id", keep="first").collect()
        if t.height:
            return dict(zip(t["device_id"].to_list(), map(str, t["customer_type"].to_list())))
    return None


def demand_response(store, *, source: str = M12_SOURCE, timezone_name: str = "Etc/GMT-10", test_days: int = 7,
                    holdout_customer_fraction: float = 0.3, holdout_seed: int = 1212,
                    require_labels: bool = False, start: datetime | str | None = None,
                    end: datetime | str | None = None) -> Dataset:
    """Daily load profiles per (meter, local day); the test is the last ``test_days`` days of the
    customers held out from training.

    ``holdout_customer_fraction`` of the meters (at least one, drawn with ``holdout_seed`` from the
    sorted ids) are never seen in training: training rows are the other meters' days before the
    cut, test rows the held-out meters' days from the cut on (0: every meter in both, split by time
    only).

    X: ``h00..h23`` mean demand of each local hour [kW], ``weekday`` (0 = Monday), ``month``;
    y: the meter's customer type from truth, or None when the twin recorded none (see
    :data:`MISSING_TYPES`; ``require_labels=True`` turns that into an InputError);
    meta: device_id, date. Readings with voltage 0 (failed reads) and duplicates are dropped.
    """
    if test_days < 1:
        raise InputError(f"m12 dataset: test_days must be >= 1 (got {test_days})")
    if not 0.0 <= holdout_customer_fraction < 1.0:
        raise InputError(f"m12 dataset: holdout_customer_fraction must be in [0, 1) (got {holdout_customer_fraction})")
    lf = store.scan("meter", source=source, start=start, end=end)
    valid = pl.col("voltage").is_null() | (pl.col("voltage") > 0)
    hourly = (
        lf.filter(valid).unique(["device_id", "ts"], keep="first")
        .select("device_id", pl.col("ts").dt.convert_time_zone(timezone_name).dt.truncate("1h").alias("t"), (pl.col("power") / 1000).alias("kw"))
        .drop_nulls("kw")
        .group_by("device_id", "t").agg(pl.col("kw").mean())
        .with_columns(pl.col("t").dt.date().alias("date"), pl.col("t").dt.hour().alias("hour"))
        .collect()
    )
    if hourly.height == 0:
        raise InputError(f"m12 dataset: no meter readings of source {source!r} in {store}; simulate them first, e.g. "
                         f"run_scenario('meter', source={source!r}, devices=30, resolution='15m', duration='28d') (conf/base/models/energy/demand_response.yaml)")
    complete = hourly.group_by("device_id", "date").agg(pl.len().alias("k")).filter(pl.col("k") == HOURS).select("device_id", "date")
    hourly = hourly.join(complete, on=["device_id", "date"]).sort("device_id", "date", "hour")
    if hourly.height == 0:
        raise InputError(f"m12 dataset: no meter of {source!r} has a complete local day (24 hours) in the window; simulate longer")
    kw = hourly["kw"].to_numpy().reshape(-1, HOURS)
    keys = hourly.select("device_id", pl.col("date").cast(pl.String)).gather_every(HOURS).to_pandas()
    X = pd.DataFrame(kw, columns=list(PROFILE_COLUMNS))
    X["weekday"] = pd.to_datetime(keys["date"]).dt.weekday.to_numpy()
    X["month"] = pd.to_datetime(keys["date"]).dt.month.to_numpy()
    types = customer_types(store, source)
    if types is None and require_labels:
        raise InputError(f"m12 dataset: no customer types for {source!r}: {MISSING_TYPES}")
    y = None if types is None else keys["device_id"].map(types)
    days = np.sort(keys["date"].unique())
    if days.size <= test_days:
        raise InputError(f"m12 dataset: {days.size} complete days in {source!r}, need more than test_days={test_days}")
    cut = days[-test_days]
    meters = np.array(sorted(keys["device_id"].unique()))
    held = np.zeros(len(meters), bool)
    if holdout_customer_fraction > 0:
        if len(meters) < 2:
            raise InputError(f"m12 dataset: {len(meters)} meter in {source!r} cannot be split into training and held-out "
                             "customers; simulate more devices or pass holdout_customer_fraction=0")
        k = min(len(meters) - 1, max(1, round(holdout_customer_fraction * len(meters))))
        held[np.random.default_rng(holdout_seed).choice(len(meters), k, replace=False)] = True
    held_out = set(meters[held])
    late = (keys["date"] >= cut).to_numpy()
    unseen = keys["device_id"].isin(held_out).to_numpy() if held_out else np.ones(len(keys), bool)
    is_test, is_train = late & unseen, ~late & (~unseen if held_out else True)
    meta = keys
    sub = lambda f, m: None if f is None else f[m].reset_index(drop=True)  # noqa: E731
    return Dataset(
        name="m12_demand_response",
        X_train=X[is_train].reset_index(drop=True), y_train=sub(y, is_train),
        X_test=X[is_test].reset_index(drop=True), y_test=sub(y, is_test),
        meta_train=meta[is_train].reset_index(drop=True), meta_test=meta[is_test].reset_index(drop=True),
        split={"train": [str(days[0]), str(days[-test_days - 1])], "test": [str(cut), str(days[-1])], "timezone": timezone_name,
               "held_out_customers": sorted(held_out)},
        params={"source": source, "test_days": test_days, "holdout_customer_fraction": holdout_customer_fraction,
                "holdout_seed": holdout_seed, "labelled": types is not None},
        description=("daily profiles per meter and local day -> archetypes; labels: "
                     + ("customer types from truth" if types is not None else "NONE (" + MISSING_TYPES + ")")),
    )
