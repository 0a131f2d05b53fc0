"""Dataset of m20 (PV health index), from the solar twin's fault scenarios.

One row per device and local day. The **features** (:func:`daily_features`) come from the pv
readings only: the performance ratio against pvlib's expected output at the measured irradiance,
ambient temperature and wind (:func:`gridtwin_lib.physics.solar.expected_ac_power`),
the DC ratio, the inverter's measured efficiency and availability, the module temperature and the
battery's usable capacity estimated from its state-of-charge swings. The **truth**
(:func:`hidden_health`) comes from the twin's hidden ``pv_state`` table only and is defined once,
here; the model never sees it except as ``y``.

Split: held-out devices **and** later days. In every run, every ``test_device_every``-th device
(the second, fourth, ...; the twin hits the first half of each run's devices, so both healthy and
faulty devices are held out) is a test device; training rows are the other devices' days before the
cut (the local midnight at ``1 - test_fraction`` of the span), test rows the test devices' days
from the cut on. The rows of the commissioning day (partial) are dropped.

meta: ``device_id`` (``<source>/<device>``, the bootstrap block), ``scenario``, ``date`` (local
day), ``day`` (days since the run's first local day) and ``decline_episode`` (see
:func:`decline_episodes`: the id of a window of days before a failure, or during a progressive
fault, in which the hidden health declines; empty otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pvlib

from ...errors import InputError
from ...models.base import Dataset
from ...models.maintenance.health_index import HEALTH_INPUT_COLUMNS, HEALTH_TRUTH_COLUMNS
from ...physics.solar import expected_ac_power

#: the twin's runs (one per fault scenario; runs per size: conf/base/models/maintenance/health_index.yaml)
PV_HEALTH_SOURCES = tuple(f"sim:m20_{s}" for s in ("pv_normal", "pv_degradation", "pv_battery_failure", "pv_soiling",
                                                    "pv_critical_failure", "pv_high_temp", "pv_inverter_fault"))
#: events after which the asset has failed (the end of a decline episode)
FAILURE_TYPES = ("inverter_failure", "battery_isolation")
#: events of a progressive fault (a decline episode runs to the last test day when no failure ends it)
PROGRESSIVE_TYPES = ("degradation", "battery_capacity_fade", "inverter_degradation")
#: plant keys the expected power needs (solar-twin parameters)
PLANT_KEYS = ("pv_kw", "inverter_kw", "gamma_pdc", "eta_inv_nom", "battery_kwh")
DAYLIGHT_ZENITH_DEG = 85.0  # the sun counts as up below this zenith (truth weighting)
HOT_AMBIENT_C = 40.0  # the twin's inverter derates above this ambient temperature (documented physics)


def _plant(plant: Mapping[str, Any] | None) -> dict[str, float]:
    if plant is None:
        raise InputError("m20: give the plant (solar-twin parameters: pv_kw, inverter_kw, battery_kwh, latitude, longitude)")
    missing = [k for k in ("pv_kw", "inverter_kw", "battery_kwh") if k not in plant]
    if missing:
        raise InputError(f"m20: the plant lacks {', '.join(missing)} (solar-twin parameters, see the model's configuration)")
    out = {"gamma_pdc": -0.0037, "eta_inv_nom": 0.96, **{k: float(v) for k, v in plant.items() if isinstance(v, int | float)}}
    return out


def _local_day(ts: pl.Expr, utc_offset_h: float) -> pl.Expr:
    return (ts + pl.duration(minutes=round(utc_offset_h * 60))).dt.date()


# --------------------------------------------------------------------------- truth (the twin's hidden state only)


def hidden_health(state: pl.DataFrame, *, latitude: float, longitude: float, utc_offset_h: float,
                  pv_share: float = 0.75) -> pd.DataFrame:
    """The twin's hidden health per device and local day: the fraction of nominal delivered capacity.

    From the twin's ``pv_state`` (never from readings), averaged over the daylight steps of the day
    (solar zenith below 85 deg at the site, pure geometry):

    * ``truth_power`` [1]: the array's share of its nominal DC capacity, ``degradation_factor * (1 - soiling_loss)``;
    * ``truth_inverter`` [1]: the inverter's share of nominal conversion, ``inverter_health`` (0 while
      tripped or failed, below 1 while its DC-link capacitor wears);
    * ``truth_battery`` [1]: the battery's usable share of its nominal capacity, ``battery_health``,
      0 while the BMS isolates the pack (daily mean over all steps: storage serves at night too);
    * ``health`` [1]: ``pv_share * truth_power * truth_inverter + (1 - pv_share) * truth_battery``:
      the PV conversion chain (array then inverter, in series) and the battery as its own part.

    High temperature is not a loss of health in the twin (its derating is reversible and leaves no
    trace in the hidden state), so no truth column belongs to the temperature component.

    Parameters
    ----------
    state : the twin's ``pv_state`` rows (ts [UTC], device_id and the hidden columns).
    latitude, longitude : site [deg] (the sun's position says which steps are daylight).
    utc_offset_h : local standard time of the site [h from UTC] (the day boundaries).
    pv_share : weight of the PV conversion chain in ``health`` [1]; the battery has the rest.

    Returns
    -------
    DataFrame
        device_id, date (local day) and :data:`~gridtwin_lib.models.maintenance.health_index.HEALTH_TRUTH_COLUMNS`.
    """
    ts = state["ts"].unique().sort()
    zenith = pvlib.solarposition.get_solarposition(pd.DatetimeIndex(ts.to_pandas()), latitude, longitude)["apparent_zenith"]
    sun = pl.DataFrame({"ts": ts, "daylight": zenith.to_numpy() < DAYLIGHT_ZENITH_DEG})
    frame = state.join(sun, on="ts", how="left").with_columns(
        _local_day(pl.col("ts"), utc_offset_h).alias("date"),
        (pl.col("degradation_factor") * (1 - pl.col("soiling_loss"))).alias("array"),
        (pl.col("battery_health") * (~pl.col("battery_isolated")).cast(pl.Float64)).alias("battery"))
    day = pl.col("daylight")
    daily = frame.group_by("device_id", "date").agg(
        pl.col("array").filter(day).mean().alias("truth_power"),
        pl.col("inverter_health").filter(day).mean().alias("truth_inverter"),
        pl.col("battery").mean().alias("truth_battery"))
    daily = daily.with_columns(
        (pv_share * pl.col("truth_power") * pl.col("truth_inverter") + (1 - pv_share) * pl.col("truth_battery")).alias("health"))
    return daily.sort("device_id", "date").to_pandas()[["device_id", "date", *HEALTH_TRUTH_COLUMNS]]


# --------------------------------------------------------------------------- features (the readings only)


def daily_features(readings: pl.DataFrame, plant: Mapping[str, Any], *, utc_offset_h: float,
                   battery_min_pv_kw: float = 2.0, reference_days: int = 3) -> pd.DataFrame:
    """The m20 features of each device and local day, from pv readings only.

    Parameters
    ----------
    readings : pv readings: ts [UTC], device_id, ac_power [W], dc_voltage [V], dc_current [A],
        irradiance (plane of array) [W/m2], module_temperature, ambient_temperature [degC],
        inverter_efficiency [1], battery_soc [%], wind_speed [m/s].
    plant : solar-twin parameters: pv_kw, inverter_kw, battery_kwh [kW, kWh], optionally
        gamma_pdc [1/K], eta_inv_nom [1].
    utc_offset_h : local standard time [h from UTC] (day boundaries).
    battery_min_pv_kw : charging steps count for the capacity estimate only above this AC power
        [kW], where the household load is a small share of the surplus.
    reference_days : the device's first whole local days in ``readings`` are its commissioning
        reference: ``*_vs_commissioning`` divide the day's ratio by their median, which takes out
        the device's own rating spread and its household's load. Give readings from commissioning on.

    Returns
    -------
    DataFrame
        device_id, date, n_readings and :data:`~gridtwin_lib.models.maintenance.health_index.HEALTH_INPUT_COLUMNS`
        (gaps of a day without the needed light are carried from the device's previous day, else neutral).
    """
    need = ("ts", "device_id", "ac_power", "dc_voltage", "dc_current", "irradiance", "module_temperature",
            "ambient_temperature", "inverter_efficiency", "battery_soc", "wind_speed")
    missing = [c for c in need if c not in readings.columns]
    if missing:
        raise InputError(f"m20 features: the pv readings lack {', '.join(missing)} (kind 'pv' of the solar twin)")
    p = _plant(plant)
    r = readings.select(need).sort("device_id", "ts")
    exp = expected_ac_power(
        r["irradiance"].to_numpy(), r["ambient_temperature"].to_numpy(), r["wind_speed"].to_numpy(),
        pv_kw=p["pv_kw"], inverter_kw=p["inverter_kw"], gamma_pdc=p["gamma_pdc"], eta_inv_nom=p["eta_inv_nom"])
    dt_h = (r["ts"].diff().dt.total_seconds() / 3600).fill_null(0.0)
    r = r.with_columns(
        pl.Series("pac_exp_kw", exp["ac_kw"]), pl.Series("pdc_exp_kw", exp["dc_kw"]),
        (pl.col("ac_power") / 1000).alias("ac_kw"), (pl.col("dc_voltage") * pl.col("dc_current") / 1000).alias("dc_kw"),
        _local_day(pl.col("ts"), utc_offset_h).alias("date"),
        pl.col("battery_soc").diff().over("device_id").alias("dsoc"),
        pl.col("battery_soc").shift(1).over("device_id").alias("soc_before"),
        dt_h.alias("dt_h"))
    inv = p["inverter_kw"]
    lit = pl.col("pac_exp_kw") > 0.05 * inv
    bright = pl.col("pac_exp_kw") > 0.2 * inv
    producing = bright & (pl.col("ac_kw") > 0.02 * pl.col("pac_exp_kw"))
    # a derating inverter moves the array off its maximum power point: hot readings say nothing of the array
    cool = pl.col("ambient_temperature") < HOT_AMBIENT_C
    charging = (pl.col("dsoc") > 0.05) & (pl.col("ac_kw") > battery_min_pv_kw) & (pl.col("soc_before") < 90.0)
    daily = r.group_by("device_id", "date").agg(
        pl.len().alias("n_readings"),
        (pl.col("ac_kw").filter(lit).sum() / pl.col("pac_exp_kw").filter(lit).sum()).alias("performance_ratio"),
        (pl.col("dc_kw") / pl.col("pdc_exp_kw")).filter(producing & cool).median().alias("dc_ratio"),
        (pl.col("inverter_efficiency").filter(producing) / p["eta_inv_nom"]).median().alias("efficiency_ratio"),
        producing.cast(pl.Float64).filter(bright).mean().alias("availability"),
        pl.col("module_temperature").filter(lit).quantile(0.95).alias("module_temp_p95_c"),
        (pl.col("ac_kw") * pl.col("dt_h") / (pl.col("dsoc") / 100)).filter(charging).median().alias("capacity_kwh"),
        pl.col("dsoc").abs().max().alias("max_soc_step"))
    # a pack that never moves all day is isolated: no usable capacity
    daily = daily.with_columns(
        pl.when(pl.col("max_soc_step").fill_null(0.0) < 0.01).then(0.0)
        .otherwise(pl.col("capacity_kwh") / p["battery_kwh"]).alias("battery_capacity_ratio"))
    frame = daily.sort("device_id", "date").to_pandas()
    raw = ["performance_ratio", "dc_ratio", "efficiency_ratio", "availability", "module_temp_p95_c", "battery_capacity_ratio"]
    neutral = {"performance_ratio": 1.0, "dc_ratio": 1.0, "efficiency_ratio": 1.0, "availability": 1.0,
               "module_temp_p95_c": 25.0, "battery_capacity_ratio": 1.0}
    frame[raw] = frame.groupby("device_id")[raw].ffill().fillna(neutral)
    # each device against its own commissioning days (its rating spread, its household's load)
    whole = frame["n_readings"] >= 0.9 * frame.groupby("device_id")["n_readings"].transform("max")
    first = frame[whole].groupby("device_id").head(int(reference_days))
    for name in ("performance_ratio", "dc_ratio", "battery_capacity_ratio"):
        reference = frame["device_id"].map(first.groupby("device_id")[name].median())
        frame[f"{name.removesuffix('_ratio')}_vs_commissioning"] = np.where(reference > 0, frame[name] / reference, frame[name])
    return frame[["device_id", "date", "n_readings", *HEALTH_INPUT_COLUMNS]]


def decline_episodes(truth: pd.DataFrame, events: pd.DataFrame, test_days: Sequence, *, utc_offset_h: float,
                     days: int = 5) -> pd.Series:
    """Windows of ``days`` test days in which a held-out device's hidden health declines towards a failure.

    A window ends the day before a failure (``FAILURE_TYPES``) that starts in the test range, or, for a
    progressive fault (``PROGRESSIVE_TYPES``) that no failure ends there, on the last test day. It is kept
    when the hidden health's Kendall tau over its days is below -0.5 (a real decline) and it has 3 days or
    more. Returns the episode id (``<device_id>@<last date>``) per row of ``truth`` ("" outside episodes).
    """
    from scipy.stats import kendalltau

    out = pd.Series("", index=truth.index, dtype=object)
    days_sorted = sorted(set(test_days))
    if not days_sorted or events.empty:
        return out
    ev = events.assign(date=(pd.to_datetime(events["ts"], utc=True) + pd.Timedelta(hours=utc_offset_h)).dt.date)
    for device, rows in truth.groupby("device_id"):
        mine = ev[ev["device_id"] == device]
        fails = mine[mine["type"].isin(FAILURE_TYPES) & mine["date"].isin(days_sorted)]
        if len(fails):
            end = min(fails["date"])
            window = [d for d in days_sorted if d < end][-days:]
        elif mine["type"].isin(PROGRESSIVE_TYPES).any():
            window = days_sorted[-days:]
        else:
            continue
        sel = rows[rows["date"].isin(window)].sort_values("date")
        if len(sel) < 3:
            continue
        tau = kendalltau(np.arange(len(sel)), sel["health"].to_numpy()).statistic
        if np.isfinite(tau) and tau < -0.5:
            out.loc[sel.index] = f"{device}@{sel['date'].iloc[-1]}"
    return out


# --------------------------------------------------------------------------- the builder


def health_index(store, *, sources: Sequence[str] = PV_HEALTH_SOURCES, plant: Mapping[str, Any] | None = None,
                 utc_offset_h: float = 10.0, test_fraction: float = 0.4, test_device_every: int = 2,
                 pv_share: float = 0.75, battery_min_pv_kw: float = 2.0, reference_days: int = 3,
                 decline_days: int = 5) -> Dataset:
    """Train/test rows of m20 from the solar twin's runs ``sources`` (see the module docstring).

    Parameters
    ----------
    store : the :class:`~gridtwin_lib.store.Store` holding the runs.
    sources : the runs (``sim:...``), one per scenario.
    plant : the runs' plant (solar-twin parameters: latitude, longitude [deg], pv_kw, inverter_kw [kW],
        battery_kwh [kWh]); the same for every run.
    utc_offset_h : the site's local standard time [h from UTC].
    test_fraction : share of the span (rounded to a local midnight) held out at its end.
    test_device_every : every ``n``-th device of a run (the 2nd, 4th, ... for 2) is held out.
    pv_share : see :func:`hidden_health`. battery_min_pv_kw, reference_days : see :func:`daily_features`.
    decline_days : length of a decline episode [days] (:func:`decline_episodes`).
    """
    p = _plant(plant)
    if not 0 < test_fraction < 1:
        raise InputError(f"m20 dataset: test_fraction must be in (0, 1), got {test_fraction}")
    if int(test_device_every) < 2:
        raise InputError(f"m20 dataset: test_device_every must be 2 or more, got {test_device_every}")
    known = set(store.sources("pv"))
    absent = [s for s in sources if s not in known]
    if absent:
        raise InputError(f"m20 dataset: no pv measurements from {', '.join(absent)} in {store.root}; simulate them first "
                         "(the model's simulations in conf/base/models/maintenance/health_index.yaml, notebook 00_data)")
    parts, events = [], []
    for source in sources:
        feats = daily_features(store.scan("pv", source=source).collect(), p, utc_offset_h=utc_offset_h,
                               battery_min_pv_kw=battery_min_pv_kw, reference_days=reference_days)
        truth = hidden_health(store.scan_truth("pv_state", source=source).collect(), latitude=p.get("latitude", -33.87),
                              longitude=p.get("longitude", 151.21), utc_offset_h=utc_offset_h, pv_share=pv_share)
        rows = feats.merge(truth, on=["device_id", "date"], how="inner")
        rows = rows[rows["n_readings"] >= 0.9 * rows["n_readings"].max()]  # whole local days only
        devices = sorted(rows["device_id"].unique())
        rows = rows.assign(test_device=rows["device_id"].map({d: k % int(test_device_every) == 1 for k, d in enumerate(devices)}),
                           day=[(d - rows["date"].min()).days for d in rows["date"]],
                           scenario=source.removeprefix("sim:").removeprefix("m20_"),
                           device_id=source + "/" + rows["device_id"])
        ev = store.scan_truth("events", source=source).collect().to_pandas()
        if {"ts", "device_id", "type"} <= set(ev.columns):  # a run without faults logs no event
            events.append(ev.assign(device_id=source + "/" + ev["device_id"].astype(str))[["ts", "device_id", "type"]])
        parts.append(rows)
    rows = pd.concat(parts, ignore_index=True)
    events = pd.concat(events, ignore_index=True) if events else pd.DataFrame(columns=["ts", "device_id", "type"])
    dates = sorted(rows["date"].unique())
    cut = dates[min(len(dates) - 1, max(1, int(round(len(dates) * (1 - test_fraction)))))]
    train = rows[~rows["test_device"] & (rows["date"] < cut)].reset_index(drop=True)
    test = rows[rows["test_device"] & (rows["date"] >= cut)].reset_index(drop=True)
    test["decline_episode"] = decline_episodes(test, events, [d for d in dates if d >= cut], utc_offset_h=utc_offset_h,
                                               days=decline_days)
    train["decline_episode"] = ""
    meta_cols = ["device_id", "scenario", "date", "day", "decline_episode"]
    cols, truth_cols = list(HEALTH_INPUT_COLUMNS), list(HEALTH_TRUTH_COLUMNS)
    return Dataset(
        name="health_index",
        X_train=train[cols], y_train=train[truth_cols], X_test=test[cols], y_test=test[truth_cols],
        meta_train=train[meta_cols], meta_test=test[meta_cols],
        split={"train": [str(dates[0]), str(cut)], "test": [str(cut), str(dates[-1])],
               "test_devices": sorted(test["device_id"].unique())},
        params={"sources": list(sources), "utc_offset_h": utc_offset_h, "test_fraction": test_fraction,
                "test_device_every": test_device_every, "pv_share": pv_share, "battery_min_pv_kw": battery_min_pv_kw,
                "reference_days": reference_days, "decline_days": decline_days, **{f"plant_{k}": v for k, v in p.items()}},
        description=(f"{len(sources)} solar-twin runs: device-days of {train['device_id'].nunique()} training devices before "
                     f"{cut}, of {test['device_id'].nunique()} held-out devices from then; truth: the twin's hidden pv_state; "
                     f"{test['decline_episode'].replace('', np.nan).nunique()} decline episodes"),
    )


__all__ = ["FAILURE_TYPES", "PV_HEALTH_SOURCES", "daily_features", "decline_episodes", "health_index", "hidden_health"]
