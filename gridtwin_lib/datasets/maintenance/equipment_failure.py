"""Dataset of m05 (equipment failure).

It reads the transformer-fleet ageing twin (:mod:`gridtwin_lib.simulate.ageing`). Inputs come
ONLY from what the twin declares observable: the truth table ``asset_observations`` (its
docstring: "observable sensor readings, safe as model inputs": measured load [pu], top-oil and
ambient temperature [degC], calendar age [years], rating [kVA]). The hidden ``asset_state``
(hot spot, consumed life, health, RUL, hazard) is never a feature (the overload model uses its true
``load_pu`` only as the label). ``features.compute`` covers the measurement kinds
``three_phase`` and ``meter``, not ``asset_observations``, so the per-asset rolling summaries are
computed here (causal: a row at t only summarises readings before t).

m05 (``equipment_failure``): one row per asset and UTC day, issued at the end of the day t
(midnight). Features: that day's loading and temperature summaries, an *estimated* hot spot
``top_oil + 26 K * load^1.6`` (the IEC 60076-7 rated gradient applied to the measured load) and
its ageing rate ``2^((hs - 98) / 6)`` and an over-temperature stress index ``2^((hs - 140) / 6)``
above 120 degC (daily means), an equivalent-age estimate (age x 30-day mean ageing rate), causal 7- and 30-day rolling means/maxima, and the
estimated ageing accumulated since the unit was installed or observation began (stress
history). Label: a ``failures`` truth row of that asset in [t, t + horizon_days). Split grouped
by asset AND chronological: a seeded ``test_asset_fraction`` of the assets is test-only and
only rows at or after the cut (``1 - test_fraction`` of the span) are tested; the other assets
train on rows whose label horizon ends before the cut. Rows whose horizon runs past the data
end are dropped (incomplete labels). Training rows are in time order (the model validates on
the last part). ``meta_test`` carries ts, device_id and the test assets' failures after the cut.

"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.maintenance.equipment_failure import M05_INPUT_COLUMNS
from ...store import Store
from .transformer_fleet import asset_split, fleet_observations, iso_utc, replacement_unit, time_cut

#: the fleet it reads by default (its accelerated-life runs per size: ``conf/base/models/maintenance/equipment_failure.yaml``)
M05_SOURCE = "sim:m05_transformers"


# --------------------------------------------------------------------------- m05


def m05_daily_features(obs: pl.DataFrame) -> pl.DataFrame:
    """Daily summaries per asset, then causal rolling features; row ts = end of the day (issue time).

    ``obs``: asset observations (ts, device_id, load_pu_measured [pu], top_oil_temp_c, ambient_temp_c
    [°C], age_years [a]). Training (:func:`equipment_failure`) and serving (:mod:`gridtwin_lib.inference`)
    both call it."""
    hs = pl.col("top_oil_temp_c") + 26.0 * pl.col("load_pu_measured").clip(0, None) ** 1.6
    daily = (obs.with_columns(hs.alias("hs_est"), pl.col("ts").dt.truncate("1d").alias("day"))
             .with_columns((2.0 ** ((pl.col("hs_est") - 98.0) / 6.0)).alias("v_est"),
                           ((2.0 ** ((pl.col("hs_est") - 140.0) / 6.0)) * (pl.col("hs_est") > 120.0)).alias("thermal_est"))
             .group_by("device_id", "day")
             .agg(pl.col("load_pu_measured").mean().alias("load_mean_1d"), pl.col("load_pu_measured").max().alias("load_max_1d"),
                  pl.col("top_oil_temp_c").max().alias("top_oil_max_1d"), pl.col("ambient_temp_c").max().alias("ambient_max_1d"),
                  pl.col("hs_est").max().alias("hs_est_max_1d"), pl.col("v_est").mean().alias("ageing_est_1d"),
                  pl.col("thermal_est").mean().alias("thermal_stress_1d"),
                  (pl.col("load_pu_measured") > 1.0).mean().alias("frac_over_1pu_1d"),
                  (pl.col("hs_est") > 120.0).mean().alias("frac_hs_over_120_1d"),
                  pl.col("age_years").last().alias("age_years"), pl.col("age_years").min().alias("age_min"), pl.len().alias("n"))
             .sort("device_id", "day"))
    # a replacement (age drops within or between days) starts a new unit: rolling and cumulative stress restart
    daily = daily.with_columns(replacement_unit())
    g = ["device_id", "unit"]
    roll = []
    for w in (7, 30):
        roll += [pl.col("load_mean_1d").rolling_mean(w, min_samples=1).over(g).alias(f"load_mean_{w}d"),
                 pl.col("load_max_1d").rolling_max(w, min_samples=1).over(g).alias(f"load_max_{w}d"),
                 pl.col("hs_est_max_1d").rolling_max(w, min_samples=1).over(g).alias(f"hs_est_max_{w}d"),
                 pl.col("ageing_est_1d").rolling_mean(w, min_samples=1).over(g).alias(f"ageing_est_{w}d"),
                 pl.col("frac_hs_over_120_1d").rolling_sum(w, min_samples=1).over(g).alias(f"days_hs_over_120_{w}d"),
                 pl.col("thermal_stress_1d").rolling_mean(w, min_samples=1).over(g).alias(f"thermal_stress_{w}d")]
    daily = daily.with_columns(
        *roll,
        pl.col("ageing_est_1d").cum_sum().over(g).alias("ageing_cum"),
        pl.col("top_oil_max_1d").rolling_mean(7, min_samples=1).over(g).alias("top_oil_max_7d"),
        pl.col("ambient_max_1d").rolling_mean(7, min_samples=1).over(g).alias("ambient_max_7d"),
        pl.int_range(pl.len()).over(g).cast(pl.Float64).alias("days_observed"),
        (pl.col("day") + timedelta(days=1)).alias("ts"),
    )
    # equivalent age if the unit had always aged at its recent rate (calendar age x 30-day mean ageing rate)
    return daily.with_columns((pl.col("age_years") * pl.col("ageing_est_30d")).alias("equivalent_age_est"))


def equipment_failure(
    store: Store,
    *,
    source: str = M05_SOURCE,
    horizon_days: float = 7.0,
    test_fraction: float = 0.5,
    test_asset_fraction: float = 0.5,
    seed: int = 0,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
) -> Dataset:
    """m05 dataset: daily rows per asset, label = a failure within ``horizon_days`` after the row's
    issue time; grouped by asset (``test_asset_fraction`` test-only assets, drawn with ``seed``)
    and chronological (test rows at or after the cut at ``1 - test_fraction`` of the span)."""
    if horizon_days <= 0:
        raise InputError(f"m05: horizon_days must be > 0, got {horizon_days}")
    obs = fleet_observations(store, source, "m05", start, end)
    failures = store.scan_truth("failures", source=source).collect()
    if failures.height == 0:
        raise InputError(f"m05: no failures in truth table 'failures' of {source!r}: nothing to learn; simulate a longer run, "
                         "more devices or the accelerated-life settings of conf/base/models/maintenance/equipment_failure.yaml")
    failures = failures.select("ts", "device_id", "cause").sort("device_id", "ts")
    daily = m05_daily_features(obs).filter(pl.col("n") >= 12)  # a day with at least half its readings
    lo, hi = obs["ts"].min(), obs["ts"].max() + timedelta(hours=1)
    horizon = timedelta(days=float(horizon_days))
    daily = daily.filter(pl.col("ts") + horizon <= hi)
    if daily.height == 0:
        raise InputError(f"m05: {source!r} spans {lo} to {hi}: no day has a complete {horizon_days}-day label horizon")
    # label: next failure of the same asset at or after ts within the horizon
    nxt = daily.select("device_id", "ts").sort("ts").join_asof(
        failures.rename({"ts": "fail_ts"}).with_columns(pl.col("fail_ts").alias("fail_key")).sort("fail_key"),
        left_on="ts", right_on="fail_key", by="device_id", strategy="forward", check_sortedness=False)
    daily = daily.join(nxt.select("device_id", "ts", "fail_ts"), on=["device_id", "ts"], how="left")
    daily = daily.with_columns(((pl.col("fail_ts") - pl.col("ts")) < horizon).fill_null(False).cast(pl.Int8).alias("y"))

    cut = time_cut(lo, hi, test_fraction, "m05", timedelta(days=1))
    test_assets = asset_split(daily["device_id"].unique().to_list(), test_asset_fraction, seed, "m05")
    is_test_asset = pl.col("device_id").is_in(list(test_assets))
    train = daily.filter(~is_test_asset & (pl.col("ts") + horizon <= cut)).sort("ts", "device_id")
    test = daily.filter(is_test_asset & (pl.col("ts") >= cut)).sort("device_id", "ts")
    for name, part in (("training", train), ("test", test)):
        if part.height and part["y"].sum() == 0:
            raise InputError(f"m05: no failure within {horizon_days} d in the {name} rows of {source!r}; "
                             "simulate longer / more devices or move test_fraction")
    cols = list(M05_INPUT_COLUMNS)
    fail_test = failures.filter(pl.col("device_id").is_in(list(test_assets)) & (pl.col("ts") >= cut)
                                & (pl.col("ts") < test["ts"].max() + horizon if test.height else pl.lit(False)))
    meta_test = {
        "ts": test["ts"].to_numpy(), "device_id": test["device_id"].to_numpy(),
        "failures": fail_test.to_pandas(), "horizon_days": float(horizon_days),
    }
    meta_train = {"ts": train["ts"].to_numpy(), "device_id": train["device_id"].to_numpy()}
    return Dataset(
        name="m05_equipment_failure",
        X_train=train.select(cols).to_pandas(), y_train=train["y"].to_numpy().astype(int),
        X_test=test.select(cols).to_pandas(), y_test=test["y"].to_numpy().astype(int),
        meta_test=meta_test, meta_train=meta_train,
        split={"train": [iso_utc(lo), iso_utc(cut - horizon)], "test": [iso_utc(cut), iso_utc(hi)],
               "test_assets": sorted(test_assets)},
        params=dict(source=source, horizon_days=horizon_days, test_fraction=test_fraction,
                    test_asset_fraction=test_asset_fraction, seed=seed),
        description=f"daily failure-within-{horizon_days:g}-days rows of {source}; grouped by asset and chronological",
    )
