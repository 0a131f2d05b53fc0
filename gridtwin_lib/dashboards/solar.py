"""Dashboard 02, solar assets: the PV forecast hours ahead against what the plant then produced.

The PV forecast (the registry's role ``pv_forecast``) is issued at a chosen local hour from the
readings before it only (:meth:`gridtwin_lib.inference.Engine.forecast_pv`), and drawn against the
measured hourly AC power of the following hours and the plant's clear-sky power (the sun's path
alone, :func:`gridtwin_lib.physics.solar.clear_sky_ac_power`).

A plant's parameters (position, orientation, ratings) are the ones its simulation ran with: the
registry's configured simulator runs that write the source (:func:`plant_of`); the model's own
settings (clock, clear-sky floor) are its configuration's. Times are the plant's local standard
time, named with its offset from UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from . import MissingData, engine, model_id, simulated_sources, sources, store

FORECAST_ROLE = "pv_forecast"
ISSUE_HOURS = tuple(range(6, 15))  # [local h] issue times offered: the 6 hours after them hold daylight
HISTORY_H = 48  # [h] readings fed to the forecast (it needs the last 24 h)
SETTINGS = ("min_clear_sky_fraction", "reference_temp_c")  # the forecast's settings from its configuration


def forecaster() -> str:
    return model_id(role=FORECAST_ROLE)


def pv_sources() -> list[str]:
    """Stored PV sources, those the forecast was trained on first."""
    return sources(simulated_sources(role=FORECAST_ROLE), kind="pv")


def plant_of(source: str) -> dict[str, Any]:
    """The solar-twin parameters the simulation of ``source`` ran with: its scenario's defaults with its configured
    run's overrides."""
    from ..models import registry
    from ..simulate import SCENARIOS

    run = registry.simulation_of(source)
    if run is not None:
        return SCENARIOS[run["scenario"]].resolve(dict(run.get("overrides") or {}))
    raise MissingData(f"{source}: no configured simulation writes this PV source, so its plant (position, ratings) "
                      "is unknown; forecasts are shown for the registry's simulated plants")


def model_settings() -> dict[str, Any]:
    """The forecast's clock [h from UTC] and settings, as its dataset was built (its configuration)."""
    from ..models import registry

    params = registry.get(forecaster()).parameters("full")
    return {"utc_offset_h": float(params["utc_offset_h"]), **{k: params[k] for k in SETTINGS if k in params}}


def zone_label(utc_offset_h: float) -> str:
    """``UTC−5``-style name of a fixed offset."""
    hours = int(utc_offset_h)
    minutes = round(abs(utc_offset_h - hours) * 60)
    sign = "−" if utc_offset_h < 0 else "+"
    return f"UTC{sign}{abs(hours)}" + (f":{minutes:02d}" if minutes else "")


def pv_devices(source: str) -> list[str]:
    return store().scan("pv", source=source).select(pl.col("device_id").unique().sort()).collect()["device_id"].to_list()


def forecast_days(source: str) -> list[date]:
    """Local days of ``source`` with a full day of history before them, newest first."""
    off = timedelta(hours=model_settings()["utc_offset_h"])
    first, last = store().scan("pv", source=source).select(pl.col("ts").min(), pl.col("ts").max().alias("last")).collect().row(0)
    newest, oldest = (last + off).date() - timedelta(days=1), (first + off).date() + timedelta(days=2)
    return [newest - timedelta(days=k) for k in range((newest - oldest).days + 1)]


def forecast_against_actual(source: str, device_id: str, day: date, issue_hour: int) -> pd.DataFrame:
    """The forecast issued at local ``issue_hour`` of ``day`` from earlier readings only, hour by hour ahead.

    Returns
    -------
    DataFrame
        ``lead_h`` (1-6), ``hour`` (local start of the target hour), ``forecast_kw``, ``actual_kw``
        (measured hourly mean AC power) and ``clear_sky_kw`` [kW].
    """
    from ..datasets.maintenance.pv_forecast import hourly_power
    from ..physics.solar import clear_sky_ac_power

    m18, cfg = forecaster(), model_settings()
    eng = engine((m18,))
    if m18 not in eng.estimators:
        raise MissingData(f"the PV forecast: {eng.missing[m18]}")
    off = cfg.pop("utc_offset_h")
    plant = plant_of(source)
    issued = datetime(day.year, day.month, day.day, int(issue_hour), tzinfo=UTC) - timedelta(hours=off)
    readings = store().scan("pv", source=source, device_id=device_id, start=issued - timedelta(hours=HISTORY_H),
                            end=issued + timedelta(hours=6, seconds=1)).select("ts", "device_id", "ac_power").collect()
    # hourly means are labelled by the hour's end (hourly_power, as the model's rows): a reading at the issue time
    # closes the issue hour, so it is seen; lead h is the hour ending issued + h
    fc = eng.forecast_pv(readings.filter(pl.col("ts") <= issued), plant, utc_offset_h=off, **cfg)
    if fc.empty:
        raise MissingData(f"{device_id}: no forecast issued at {issue_hour:02d}:00 on {day} (no daylight that hour, "
                          "or less than 24 h of readings before it)")
    ends = pd.DatetimeIndex([pd.Timestamp(issued) + pd.Timedelta(hours=h) for h in range(1, 7)])
    hourly = hourly_power(readings)
    actual = pd.Series(hourly["p_kw"].to_numpy(), index=pd.DatetimeIndex(hourly["ts"]))
    physical = {k: plant[k] for k in ("latitude", "longitude", "altitude", "tilt_deg", "azimuth_deg", "pv_kw", "inverter_kw")}
    starts = ends - pd.Timedelta(hours=1)
    return pd.DataFrame({"lead_h": range(1, 7), "hour": (starts + pd.Timedelta(hours=off)).tz_localize(None),
                         "forecast_kw": [float(fc[f"{m18}.p_kw_h{h}"].iloc[0]) for h in range(1, 7)],
                         "actual_kw": actual.reindex(ends).to_numpy(dtype=float),
                         "clear_sky_kw": clear_sky_ac_power(starts + pd.Timedelta(minutes=30), **physical)})


def forecast_figure(frame: pd.DataFrame, device_id: str, zone: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frame["hour"], y=frame["clear_sky_kw"], name="clear sky", line=dict(color="#e9c46a", dash="dot")))
    fig.add_trace(go.Scatter(x=frame["hour"], y=frame["actual_kw"], name="measured", mode="lines+markers", line=dict(color="#264653")))
    fig.add_trace(go.Scatter(x=frame["hour"], y=frame["forecast_kw"], name="forecast", mode="lines+markers",
                             line=dict(color="#e76f51", dash="dash")))
    err = np.nanmean(np.abs(frame["forecast_kw"] - frame["actual_kw"]))
    title = f"{device_id}: AC power 1-6 h ahead" + (f", mean absolute error {err:.2f} kW" if np.isfinite(err) else "")
    fig.update_layout(height=360, title=title, legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title_text=f"hour starting ({zone})")
    fig.update_yaxes(title_text="AC power, hourly mean [kW]", rangemode="tozero")
    return fig


def solar_view(source_name: str | None = None):
    import ipywidgets as w

    from . import Quiet, attempt, choose, figure, labelled, refresh, replace_options, row

    names = pv_sources()
    zone = zone_label(model_settings()["utc_offset_h"])
    source = w.Dropdown(options=labelled(names), value=choose(names, source_name, "source"), description="plant")
    device = w.Dropdown(options=pv_devices(source.value), description="inverter")
    day = w.Dropdown(options=forecast_days(source.value), description=f"day ({zone})")
    hour = w.Dropdown(options=[(f"{h:02d}:00", h) for h in ISSUE_HOURS], value=9, description="issued at")
    notes, fig = w.VBox(), figure()

    def show(_=None):
        notes.children = []
        frame = attempt(notes, lambda: forecast_against_actual(source.value, device.value, day.value, hour.value), "the PV forecast")
        if frame is not None:
            attempt(notes, lambda: refresh(fig, forecast_figure(frame, device.value, zone)), "the PV forecast")

    show_once = Quiet(show)

    def pick_source(_=None):
        with show_once.setting():
            replace_options(device, pv_devices(source.value))
            replace_options(day, forecast_days(source.value))

    source.observe(pick_source, "value")
    for control in (device, day, hour):
        control.observe(show_once, "value")
    show()
    return w.VBox([w.HTML("<h3>Solar assets: AC power forecast 1-6 h ahead against the measured power</h3>"),
                   row(source, device), row(day, hour), notes, fig])
