"""Dataset of m06 (overload risk).

It reads the transformer-fleet ageing twin (:mod:`gridtwin_lib.simulate.ageing`). Inputs come
ONLY from what the twin declares observable: the truth table ``asset_observations`` (its
docstring: "observable sensor readings, safe as model inputs": measured load [pu], top-oil and
ambient temperature [degC], calendar age [years], rating [kVA]). The hidden ``asset_state``
(hot spot, consumed life, health, RUL, hazard) is never a feature (the overload model uses its true
``load_pu`` only as the label). ``features.compute`` covers the measurement kinds
``three_phase`` and ``meter``, not ``asset_observations``, so the per-asset rolling summaries are
computed here (causal: a row at t only summarises readings before t).

m06 (``overload_risk``): one row per asset and 15-min reading t; label = class of the MAXIMUM
true loading ``asset_state.load_pu`` over the next hour (t, t + 1 h]: 0 (< 0.8), 1 (0.8-1.0),
2 (> 1.0 pu). Features up to t: measured load now and 1-4 readings back, past 1 h / 4 h / 24 h
mean and max, the maximum of the hour that followed this time yesterday ((t - 24 h, t - 23 h]),
top-oil and ambient temperature, local hour (sin/cos). Split grouped by asset and chronological, as the equipment-failure dataset's.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.maintenance.overload_risk import M06_INPUT_COLUMNS, loading_class
from ...store import Store
from .transformer_fleet import asset_split, fleet_observations, iso_utc, time_cut

#: the fleet it reads by default (runs per size: ``conf/base/models/maintenance/overload_risk.yaml``)
M06_SOURCE = "sim:m06_transformers"


# --------------------------------------------------------------------------- m06

def m06_features(obs: pl.DataFrame, utc_offset_h: float) -> pl.DataFrame:
    """Per observation: lags and causal 1/4/24 h load windows, yesterday's next-hour peak, local hour.

    Shared by training (:func:`overload_risk`) and serving (:mod:`gridtwin_lib.inference`)."""
    load = pl.col("load_pu_measured")
    df = obs.sort("device_id", "ts").with_columns(
        *[load.shift(k).over("device_id").alias(f"load_lag{k}") for k in (1, 2, 4)],
    )
    # time-based causal windows (t - w, t] per device
    rolled = df.rolling("ts", period="1h", group_by="device_id").agg(
        load.mean().alias("load_mean_1h"), load.max().alias("load_max_1h"))
    rolled4 = df.rolling("ts", period="4h", group_by="device_id").agg(load.mean().alias("load_mean_4h"))
    rolled24 = df.rolling("ts", period="24h", group_by="device_id").agg(
        load.mean().alias("load_mean_24h"), load.max().alias("load_max_24h"))
    df = (df.join(rolled, on=["device_id", "ts"]).join(rolled4, on=["device_id", "ts"]).join(rolled24, on=["device_id", "ts"]))
    # max of the hour that followed this time yesterday: (t - 24 h, t - 23 h] = load_max_1h at t - 23 h
    yday = rolled.select("device_id", (pl.col("ts") + timedelta(hours=23)).alias("ts"), pl.col("load_max_1h").alias("load_max_next1h_yday"))
    df = df.join(yday, on=["device_id", "ts"], how="left")
    hour = ((pl.col("ts").dt.hour().cast(pl.Float64) + pl.col("ts").dt.minute().cast(pl.Float64) / 60 + utc_offset_h) % 24)
    return df.with_columns((2 * math.pi * hour / 24).sin().alias("hour_sin"), (2 * math.pi * hour / 24).cos().alias("hour_cos"),
                           load.alias("load_pu"))


def overload_risk(
    store: Store,
    *,
    source: str = M06_SOURCE,
    test_fraction: float = 0.3,
    test_asset_fraction: float = 0.3,
    seed: int = 0,
    utc_offset_h: float = 10.0,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
) -> Dataset:
    """m06 dataset: one row per asset and reading; label = class of the max true loading over the
    next hour. Needs readings finer than 1 h (the ``full`` run is at 15 min)."""
    obs = fleet_observations(store, source, "m06", start, end)
    step = obs.filter(pl.col("device_id") == obs["device_id"][0])["ts"].diff().dt.total_seconds().median()
    if step is None or step >= 3600:
        raise InputError(f"m06: {source!r} has readings every {step} s; 'next hour' needs a finer resolution (e.g. 15m)")
    state = store.scan_truth("asset_state", source=source, start=start, end=end).select("ts", "device_id", "load_pu").collect()
    if state.height == 0:
        raise InputError(f"m06: no truth table 'asset_state' for {source!r}; re-run the simulation with run_scenario")
    # label: max true load over (t, t + 1 h]  = trailing 1 h max at t + 1 h
    nxt = (state.sort("device_id", "ts").rolling("ts", period="1h", group_by="device_id").agg(pl.col("load_pu").max().alias("max_next"))
           .with_columns((pl.col("ts") - timedelta(hours=1)).alias("ts")))
    df = m06_features(obs, utc_offset_h).join(nxt, on=["device_id", "ts"], how="inner")
    lo, hi = obs["ts"].min(), obs["ts"].max() + timedelta(seconds=float(step))
    # a full day of history before t and a complete next hour after it
    df = df.filter((pl.col("ts") >= lo + timedelta(hours=24)) & (pl.col("ts") + timedelta(hours=1) < hi)).drop_nulls(list(M06_INPUT_COLUMNS))
    df = df.with_columns(pl.Series("y", loading_class(df["max_next"].to_numpy())))
    cut = time_cut(lo, hi, test_fraction, "m06", timedelta(hours=1))
    test_assets = asset_split(df["device_id"].unique().to_list(), test_asset_fraction, seed, "m06")
    is_test_asset = pl.col("device_id").is_in(list(test_assets))
    train = df.filter(~is_test_asset & (pl.col("ts") + timedelta(hours=1) <= cut)).sort("ts", "device_id")
    test = df.filter(is_test_asset & (pl.col("ts") >= cut)).sort("device_id", "ts")
    cols = list(M06_INPUT_COLUMNS)
    return Dataset(
        name="m06_overload_risk",
        X_train=train.select(cols).to_pandas(), y_train=train["y"].to_numpy().astype(int),
        X_test=test.select(cols).to_pandas(), y_test=test["y"].to_numpy().astype(int),
        meta_test={"ts": test["ts"].to_numpy(), "device_id": test["device_id"].to_numpy(), "max_next_pu": test["max_next"].to_numpy()},
        meta_train={"ts": train["ts"].to_numpy(), "device_id": train["device_id"].to_numpy()},
        split={"train": [iso_utc(lo), iso_utc(cut - timedelta(hours=1))], "test": [iso_utc(cut), iso_utc(hi)], "test_assets": sorted(test_assets)},
        params=dict(source=source, test_fraction=test_fraction, test_asset_fraction=test_asset_fraction, seed=seed,
                    utc_offset_h=utc_offset_h),
        description=f"next-hour max loading class of {source}; grouped by asset and chronological",
    )
