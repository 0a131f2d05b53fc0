"""The solar-asset models over the store: what a PV fleet's champions say, for the dashboards and the daily report.

One place turns stored PV readings and inverter observations into the outputs of the four solar-asset models
(found by role in the registry), so dashboard 02 and the daily report show and alert on the same numbers:

======================  ==========================================================================
function                what it gives
======================  ==========================================================================
fleet_sources           the PV fleets the fleet models (health, faults) were configured on
plant_of                a simulated source's plant: its scenario's defaults with its run's overrides
forecast_against_actual the PV forecast issued at a local hour from earlier readings, against the
                        measured hourly power and the clear sky (role ``pv_forecast``)
fleet_outputs           each device's daily health index (``pv_health``) and the fault flags of its
                        last days (``pv_anomaly``)
pv_alert_frame          both as one frame for the alert rules' ``pv`` input
fleet_remaining_life    each inverter's remaining life at its latest day (``asset_rul``)
======================  ==========================================================================

Readings carry no plant: a PV source's position and ratings are those its configured simulation ran with
(:func:`plant_of`); a measured source would need its plant in ``conf/base/sites.yaml`` (not done).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ..errors import InputError
from ..models import registry

FORECAST_ROLE, HEALTH_ROLE, ANOMALY_ROLE, RUL_ROLE = "pv_forecast", "pv_health", "pv_anomaly", "asset_rul"
COMPONENTS = ("power", "temperature", "battery", "inverter")  # the health index's breakdown
ANOMALY_HISTORY_D = 10  # [d] readings before those scored that the anomaly model's trailing features read
RUL_HISTORY_D = 31  # [d] inverter observations the remaining-life model's daily features read
HEALTH_SETTINGS = ("utc_offset_h", "battery_min_pv_kw", "reference_days")
FORECAST_SETTINGS = ("min_clear_sky_fraction", "reference_temp_c")


def model_of(role: str) -> str:
    """The registry's id of the model serving ``role``; InputError if none does."""
    entry = registry.by_role(role)
    if entry is None:
        raise InputError(f"no model serves {role.replace('_', ' ')} in the registry")
    return entry.id


def settings_of(role: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The configured parameters ``keys`` of the model serving ``role`` (as its dataset was built)."""
    params = registry.get(model_of(role)).parameters("full")
    return {k: params[k] for k in keys if k in params}


def forecast_sources() -> tuple[str, ...]:
    """The PV plants the forecast was configured on (its simulated sources, every size): its hour-of-day inputs are
    on its own site's clock, so another plant would get a forecast on the wrong hours."""
    entry = registry.by_role(FORECAST_ROLE)
    runs = [r for size in registry.SIZES for r in entry.simulation_runs(size)] if entry is not None else []
    return tuple(dict.fromkeys(r["source"] for r in runs if r.get("source")))


def fleet_sources() -> tuple[str, ...]:
    """The PV fleets the health index and the anomaly model were configured on (their simulated sources, every size):
    the fleet models score these. Another PV plant would need its clock and ratings configured (the models' local
    days are their own site's)."""
    out: dict[str, None] = {}
    for role in (HEALTH_ROLE, ANOMALY_ROLE):
        entry = registry.by_role(role)
        for size in (registry.SIZES if entry is not None else ()):
            out.update({r["source"]: None for r in entry.simulation_runs(size) if r.get("source")})
    return tuple(out)


def plant_of(source: str) -> dict[str, Any]:
    """The solar-twin parameters the simulation of ``source`` ran with: its scenario's defaults with its
    configured run's overrides; InputError for a source no configured run writes."""
    from ..simulate import run_parameters

    run = registry.simulation_of(source)
    if run is None:
        raise InputError(f"{source}: no configured simulation writes this PV source, so its plant (position, ratings) "
                         "is unknown; the solar-asset models are shown for the registry's simulated plants")
    return run_parameters(run)


def _require(engine, model: str, what: str) -> None:
    if model not in engine.estimators:
        raise InputError(f"{what}: {engine.missing.get(model, 'not loaded')}")


# ----------------------------------------------------------------------------- the PV forecast
def forecast_against_actual(store, engine, source: str, device_id: str, day: date, issue_hour: int) -> pd.DataFrame:
    """The forecast issued at local ``issue_hour`` of ``day`` (the model's clock) from the readings up to then,
    hour by hour ahead, against what the plant then measured.

    Returns
    -------
    DataFrame
        ``lead_h`` (1-6), ``hour`` (local start of the target hour), ``forecast_kw``, ``actual_kw`` (measured
        hourly mean AC power) and ``clear_sky_kw`` [kW].
    """
    from ..datasets.maintenance.pv_forecast import hourly_power
    from ..physics.solar import clear_sky_ac_power

    model = model_of(FORECAST_ROLE)
    _require(engine, model, "the PV forecast")
    if source not in forecast_sources():
        raise InputError(f"{source}: the PV forecast runs on the plants it was configured on ({', '.join(forecast_sources())}); "
                         "its hour-of-day inputs are on their clock")
    off = float(settings_of(FORECAST_ROLE, ("utc_offset_h",))["utc_offset_h"])
    plant = plant_of(source)
    issued = datetime(day.year, day.month, day.day, int(issue_hour), tzinfo=UTC) - timedelta(hours=off)
    readings = store.scan("pv", source=source, device_id=device_id, start=issued - timedelta(hours=48),
                          end=issued + timedelta(hours=6, seconds=1)).select("ts", "device_id", "ac_power").collect()
    # hourly means are labelled by the hour's end (hourly_power, as the model's rows): a reading at the issue time
    # closes the issue hour, so it is seen; lead h is the hour ending issued + h
    fc = engine.forecast_pv(readings.filter(pl.col("ts") <= issued), plant, utc_offset_h=off,
                            **settings_of(FORECAST_ROLE, FORECAST_SETTINGS))
    if fc.empty:
        raise InputError(f"{device_id}: no forecast issued at {issue_hour:02d}:00 on {day} (no daylight that hour, "
                         "or less than 24 h of readings before it)")
    ends = pd.DatetimeIndex([pd.Timestamp(issued) + pd.Timedelta(hours=h) for h in range(1, 7)])
    hourly = hourly_power(readings)
    actual = pd.Series(hourly["p_kw"].to_numpy(), index=pd.DatetimeIndex(hourly["ts"]))
    physical = {k: plant[k] for k in ("latitude", "longitude", "altitude", "tilt_deg", "azimuth_deg", "pv_kw", "inverter_kw")}
    starts = ends - pd.Timedelta(hours=1)
    return pd.DataFrame({"lead_h": range(1, 7), "hour": (starts + pd.Timedelta(hours=off)).tz_localize(None),
                         "forecast_kw": [float(fc[f"{model}.p_kw_h{h}"].iloc[0]) for h in range(1, 7)],
                         "actual_kw": actual.reindex(ends).to_numpy(dtype=float),
                         "clear_sky_kw": clear_sky_ac_power(starts + pd.Timedelta(minutes=30), **physical)})


# ----------------------------------------------------------------------------- health and faults
def fleet_outputs(store, engine, source: str, *, anomaly_days: float = 7.0, end: datetime | None = None
                  ) -> tuple[pd.DataFrame | None, pd.DataFrame | None, list[str]]:
    """The health index of every device and local day (from commissioning to ``end``), the fault score and flag of
    each reading of the last ``anomaly_days`` before ``end`` (default: the source's newest reading), and notes on
    what is missing (a model without a champion gives None and a note)."""
    health, anomaly = model_of(HEALTH_ROLE), model_of(ANOMALY_ROLE)
    plant = plant_of(source)
    scan = store.scan("pv", source=source)
    if end is not None:
        scan = scan.filter(pl.col("ts") < end)
    readings = scan.collect()
    if readings.height == 0:
        raise InputError(f"{source}: no PV readings" + (f" before {end:%Y-%m-%d %H:%M} UTC" if end else ""))
    notes, daily, flags = [], None, None
    if health in engine.estimators:
        daily = engine.pv_health(readings, plant, **settings_of(HEALTH_ROLE, HEALTH_SETTINGS))
    else:
        notes.append(f"{health}: {engine.missing.get(health, 'not loaded')}")
    if anomaly in engine.estimators:
        since = readings["ts"].max() - timedelta(days=float(anomaly_days))
        recent = readings.filter(pl.col("ts") >= since - timedelta(days=ANOMALY_HISTORY_D))
        flags = engine.detect_pv_anomalies(recent, plant, since=since)
        flags["ts"] = pd.to_datetime(flags["ts"], utc=True)
    else:
        notes.append(f"{anomaly}: {engine.missing.get(anomaly, 'not loaded')}")
    return daily, flags, notes


def fault_events(flags: pd.DataFrame, gap_s: float | None = None) -> pd.DataFrame:
    """Runs of flagged readings per device (flags closer than ``gap_s``, default the anomaly model's merge gap, join):
    device_id, events, last_flag [UTC]."""
    model = model_of(ANOMALY_ROLE)
    gap = float(settings_of(ANOMALY_ROLE, ("merge_gap_s",)).get("merge_gap_s", 3600.0)) if gap_s is None else gap_s
    hit = flags[flags[f"{model}.flag"].fillna(False).astype(bool)].sort_values(["device_id", "ts"])
    if hit.empty:
        return pd.DataFrame({"device_id": pd.Series(dtype=str), "events": pd.Series(dtype=int),
                             "last_flag": pd.Series(dtype="datetime64[ns, UTC]")})
    new = hit.groupby("device_id")["ts"].diff().dt.total_seconds().fillna(np.inf) > gap
    return hit.assign(new=new).groupby("device_id").agg(events=("new", "sum"), last_flag=("ts", "max")).reset_index()


def pv_alert_frame(daily: pd.DataFrame | None, flags: pd.DataFrame | None, source: str) -> pl.DataFrame | None:
    """The health index and the fault flags as one frame for the alert rules' ``pv`` input (device_id, ts, source and
    the models' columns); a day's index stands at the end of its local day."""
    parts = []
    if daily is not None and len(daily):
        off = pd.Timedelta(hours=float(settings_of(HEALTH_ROLE, ("utc_offset_h",)).get("utc_offset_h", 0.0)))
        ends = (pd.to_datetime(daily["date"]) + pd.Timedelta(days=1) - off).dt.tz_localize("UTC")
        parts.append(pl.from_pandas(daily.assign(ts=ends).drop(columns="date")))
    if flags is not None and len(flags):
        parts.append(pl.from_pandas(flags))
    if not parts:
        return None
    return pl.concat(parts, how="diagonal_relaxed").with_columns(pl.lit(source).alias("source"),
                                                                 pl.col("ts").cast(pl.Datetime("us", "UTC")))


# ----------------------------------------------------------------------------- inverters: remaining life
def inverter_fleets(store) -> list[str]:
    """Sources of asset observations from inverters (their heatsink temperature marks them)."""
    out = []
    for src in store.truth_sources("asset_observations"):
        if "heatsink_temp_c" in store.scan_truth("asset_observations", source=src).collect_schema().names():
            out.append(src)
    return out


def fleet_remaining_life(store, engine, source: str, end: datetime | None = None) -> pd.DataFrame:
    """Each inverter of ``source`` at the end of its latest day with both observations and readings (before
    ``end``): the engine's ``<id>.median_days``, ``p10_days``, ``p90_days`` [days], ``risk`` and survival columns,
    riskiest first.

    Both, because they can end apart: a twin run reaching past today keeps its observations (truth) while the
    store refuses its readings from the future (``hard.timestamp_not_future`` rejects)."""
    model = model_of(RUL_ROLE)
    _require(engine, model, "the remaining-life model")
    obs_all, readings_all = store.scan_truth("asset_observations", source=source), store.scan("pv", source=source)
    if end is not None:
        obs_all, readings_all = obs_all.filter(pl.col("ts") < end), readings_all.filter(pl.col("ts") < end)
    last_obs = obs_all.select(pl.col("ts").max()).collect().item()
    last_reading = readings_all.select(pl.col("ts").max()).collect().item()
    if last_obs is None or last_reading is None:
        raise InputError(f"{source}: no inverter observations or readings; run `make run` (the inverter fleet simulation)")
    last = min(last_obs, last_reading)
    start, stop = last - timedelta(days=RUL_HISTORY_D), last + timedelta(seconds=1)
    obs = store.scan_truth("asset_observations", source=source, start=start, end=stop).collect()
    readings = store.scan("pv", source=source, start=start, end=stop).collect()
    out = engine.remaining_life(obs, readings)
    return out.sort_values(f"{model}.p10_days", kind="stable").reset_index(drop=True)


__all__ = ["forecast_sources", "fleet_sources", "plant_of", "forecast_against_actual", "fleet_outputs", "fault_events", "pv_alert_frame", "inverter_fleets",
           "fleet_remaining_life", "model_of", "settings_of", "COMPONENTS"]
