"""Dataset of m19 (remaining useful life of PV inverters, right-censored).

It reads the PV inverter-fleet ageing twin (:mod:`gridtwin_lib.simulate.ageing`, ``inverter_fleet``).
Inputs come only from what a plant operator observes: the inverters' ``pv`` readings (AC power,
measured efficiency) and the observable truth table ``asset_observations`` (heatsink and ambient
temperature [degC], calendar age [years], rating [kW]); never the hidden ``asset_state`` (wear, fan
state, health, hazard).

One row per asset and **issue time** t: a UTC midnight every ``issue_every_days`` days, the same
instants for every asset (so the concordance compares assets at one time). Features summarise the
readings of the current unit before t (:func:`rul_daily_features`: causal 7- and 30-day windows that
restart when a unit is replaced). Target (truth table ``lifetimes``): the days from t to the unit's
drawn failure, an event when the failure falls in the observation and right-censored at the end of
the observation otherwise.

Split by held-out assets and later issue times: a seeded ``test_asset_fraction`` of the assets is
test-only, with rows issued at or after the cut (``1 - test_fraction`` of the span) and followed to
the end of the run. The other assets train on rows issued before the cut, **censored at the cut**
(what was known then): a failure after the cut is not a training event. Several rows per asset:
the bootstrap's blocks are assets (``meta_test['device_id']``).
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.maintenance.remaining_useful_life import RUL_INPUT_COLUMNS, RUL_TARGET_COLUMNS
from ...store import Store
from .transformer_fleet import asset_split, iso_utc, replacement_unit, time_cut

#: the inverter-fleet run it reads (runs per size: ``conf/base/models/maintenance/remaining_useful_life.yaml``)
RUL_SOURCE = "sim:m19_inverters"
#: a reading counts for the efficiency when its AC power is at least this share of the rating [1]
EFFICIENCY_MIN_LOADING = 0.1
DAY = timedelta(days=1)


def inverter_readings(store: Store, source: str, start=None, end=None) -> pl.DataFrame:
    """The observable inverter readings of ``source`` (pv readings joined to the asset observations)."""
    obs = store.scan_truth("asset_observations", source=source, start=start, end=end).collect()
    if obs.height == 0:
        raise InputError(f"m19: no asset_observations from source {source!r} in {store.root}; simulate the inverter_fleet "
                         "twin first (the model's simulations in conf/base/models/maintenance/remaining_useful_life.yaml)")
    if "heatsink_temp_c" not in obs.columns:
        raise InputError(f"m19: source {source!r} has no heatsink_temp_c; use an inverter_fleet source")
    pv = store.scan("pv", source=source, start=start, end=end).select("ts", "device_id", "ac_power", "inverter_efficiency").collect()
    return join_readings(obs, pv)


def join_readings(observations: pl.DataFrame, pv: pl.DataFrame) -> pl.DataFrame:
    """Asset observations (ts, device_id, heatsink_temp_c, ambient_temp_c [degC], age_years, rating_kva
    [the inverter's kW]) with the pv readings at the same instants (ac_power [W], inverter_efficiency [1])."""
    need = {"ts", "device_id", "heatsink_temp_c", "ambient_temp_c", "age_years", "rating_kva"}
    if not need <= set(observations.columns):
        raise InputError(f"m19: the observations lack {sorted(need - set(observations.columns))}; pass an inverter fleet's asset_observations")
    if not {"ts", "device_id", "ac_power", "inverter_efficiency"} <= set(pv.columns):
        raise InputError("m19: the pv readings need ts, device_id, ac_power [W] and inverter_efficiency [1]")
    return (observations.select(sorted(need)).join(pv.select("ts", "device_id", "ac_power", "inverter_efficiency"),
                                                   on=["ts", "device_id"], how="inner").sort("device_id", "ts"))


def rul_daily_features(readings: pl.DataFrame) -> pl.DataFrame:
    """Daily summaries per asset, then causal rolling windows per unit; row ts = the end of the day.

    ``readings``: :func:`join_readings` rows. Training (:func:`remaining_useful_life`) and serving
    (:func:`gridtwin_lib.models.maintenance.remaining_useful_life.serve_rul`) both call it.
    """
    loading = pl.col("ac_power") / (pl.col("rating_kva") * 1000.0)
    producing = loading >= EFFICIENCY_MIN_LOADING
    daily = (readings.with_columns(loading.alias("loading"), pl.col("ts").dt.truncate("1d").alias("day"),
                                   (pl.col("heatsink_temp_c") - pl.col("ambient_temp_c")).alias("rise"),
                                   (2.0 ** ((pl.col("heatsink_temp_c") - 70.0) / 10.0)).alias("stress"))
             .group_by("device_id", "day")
             .agg(pl.col("loading").mean().alias("loading_1d"), pl.col("rise").filter(producing).mean().alias("rise_1d"),
                  pl.col("loading").filter(producing).mean().alias("loading_producing_1d"),
                  pl.col("heatsink_temp_c").max().alias("heatsink_max_1d"), pl.col("stress").mean().alias("stress_1d"),
                  pl.col("ambient_temp_c").mean().alias("ambient_1d"),
                  pl.col("inverter_efficiency").filter(producing).mean().alias("efficiency_1d"),
                  pl.col("age_years").last(), pl.col("age_years").min().alias("age_min"), pl.len().alias("n"))
             .sort("device_id", "day"))
    daily = daily.with_columns(replacement_unit())
    g = ["device_id", "unit"]
    windows = []
    for w in (7, 30):
        windows += [pl.col("efficiency_1d").rolling_mean(w, min_samples=1).over(g).alias(f"efficiency_{w}d"),
                    pl.col("rise_1d").rolling_mean(w, min_samples=1).over(g).alias(f"heatsink_rise_{w}d")]
    daily = daily.with_columns(
        *windows,
        pl.col("loading_1d").rolling_mean(30, min_samples=1).over(g).alias("loading_30d"),
        pl.col("loading_producing_1d").rolling_mean(30, min_samples=1).over(g).alias("loading_producing_30d"),
        pl.col("heatsink_max_1d").rolling_max(30, min_samples=1).over(g).alias("heatsink_max_30d"),
        pl.col("stress_1d").rolling_mean(30, min_samples=1).over(g).alias("capacitor_stress_30d"),
        (pl.col("stress_1d").cum_sum().over(g) / 365.25).alias("capacitor_stress_cum"),
        pl.col("ambient_1d").rolling_mean(30, min_samples=1).over(g).alias("ambient_30d"),
        (pl.col("day") + DAY).alias("ts"),
    )
    # a day with no producing reading (night-only coverage) leaves the efficiency and rise empty: carry the last
    fill = ["efficiency_7d", "efficiency_30d", "heatsink_rise_7d", "heatsink_rise_30d", "loading_producing_30d"]
    return daily.with_columns(pl.col(c).forward_fill().over(g) for c in fill)


def lifetime_targets(rows: pl.DataFrame, lifetimes: pl.DataFrame, observed_until) -> pl.DataFrame:
    """``rows`` (device_id, ts) with ``duration_days`` and ``event`` from the truth table ``lifetimes``:
    the days from ts to the unit's drawn failure (event) or to ``observed_until`` [UTC], whichever
    is first (censored there). Rows whose unit is not found (ts outside the run) are dropped."""
    spans = lifetimes.select("device_id", pl.col("ts").alias("from_ts"), "end", "failed").sort("from_ts")
    joined = rows.sort("ts").join_asof(spans, left_on="ts", right_on="from_ts", by="device_id", strategy="backward",
                                       check_sortedness=False)
    joined = joined.filter(pl.col("end").is_not_null() & (pl.col("end") > pl.col("ts")) & (pl.col("ts") < observed_until))
    event = pl.col("failed") & (pl.col("end") <= observed_until)
    stop = pl.when(event).then(pl.col("end")).otherwise(pl.min_horizontal(pl.col("end"), pl.lit(observed_until)))
    return joined.with_columns(((stop - pl.col("ts")).dt.total_seconds() / 86_400).alias("duration_days"),
                               event.alias("event")).drop("from_ts", "end", "failed")


def remaining_useful_life(
    store: Store,
    *,
    source: str = RUL_SOURCE,
    issue_every_days: int = 7,
    test_fraction: float = 0.5,
    test_asset_fraction: float = 0.4,
    seed: int = 0,
    min_history_days: int = 7,
) -> Dataset:
    """m19 rows: (asset, issue time) -> (days to the drawn failure, event?), see the module docstring.

    Parameters
    ----------
    store : the store holding the inverter-fleet run ``source``.
    issue_every_days : days between issue times [days] (the same UTC midnights for every asset).
    test_fraction : share of the span (whole days) whose issue times are tested.
    test_asset_fraction : share of the assets held out (seeded with ``seed``).
    min_history_days : an issue time needs this many days of the unit's readings [days].
    """
    if int(issue_every_days) < 1:
        raise InputError(f"m19: issue_every_days must be >= 1, got {issue_every_days}")
    readings = inverter_readings(store, source)
    lifetimes = store.scan_truth("lifetimes", source=source).collect()
    if lifetimes.height == 0:
        raise InputError(f"m19: no truth table 'lifetimes' for {source!r}; simulate the inverter_fleet again "
                         "(the twin writes it since m19)")
    lo = readings["ts"].min().replace(hour=0, minute=0, second=0, microsecond=0)
    run_end = lifetimes["end"].max()  # the end of the observation (every censored lifetime ends there)
    daily = rul_daily_features(readings)
    day_index = ((pl.col("ts") - pl.lit(lo)).dt.total_days())
    issued = daily.filter((day_index % int(issue_every_days) == 0) & (pl.col("n") >= 12)
                          & (pl.int_range(pl.len()).over("device_id", "unit") >= int(min_history_days) - 1)
                          & (pl.col("ts") + DAY <= run_end))
    cut = time_cut(lo, run_end, test_fraction, "m19", DAY)
    test_assets = asset_split(issued["device_id"].unique().to_list(), test_asset_fraction, seed, "m19")
    is_test = pl.col("device_id").is_in(sorted(test_assets))
    train = lifetime_targets(issued.filter(~is_test & (pl.col("ts") < cut)), lifetimes, cut).sort("ts", "device_id")
    test = lifetime_targets(issued.filter(is_test & (pl.col("ts") >= cut)), lifetimes, run_end).sort("ts", "device_id")
    for name, part in (("training", train), ("test", test)):
        if part.height and not part["event"].any():
            raise InputError(f"m19: no failure is observed in the {name} rows of {source!r}; simulate longer, more "
                             "devices or the accelerated-life settings of its configuration")
    cols = list(RUL_INPUT_COLUMNS)
    meta = lambda part: part.select("device_id", "ts").to_pandas()  # noqa: E731 - local shorthand
    targets = lambda part: part.select(list(RUL_TARGET_COLUMNS)).to_pandas()  # noqa: E731
    return Dataset(
        name="m19_remaining_useful_life",
        X_train=train.select(cols).to_pandas(), y_train=targets(train),
        X_test=test.select(cols).to_pandas(), y_test=targets(test),
        meta_test=meta(test), meta_train=meta(train),
        split={"train": [iso_utc(lo), iso_utc(cut)], "test": [iso_utc(cut), iso_utc(run_end)], "test_assets": sorted(test_assets)},
        params=dict(source=source, issue_every_days=issue_every_days, test_fraction=test_fraction,
                    test_asset_fraction=test_asset_fraction, seed=seed, min_history_days=min_history_days),
        description=(f"{source}: days to the drawn inverter failure every {issue_every_days} d per asset, right-censored "
                     f"(training at the cut {cut.date()}, test at the end of the run); {len(test_assets)} held-out assets"),
    )


__all__ = ["RUL_SOURCE", "inverter_readings", "join_readings", "rul_daily_features", "lifetime_targets",
           "remaining_useful_life"]
