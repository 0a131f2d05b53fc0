"""Dashboard 02, solar assets: the PV fleet's health and faults, the inverters' remaining life, and the PV
forecast hours ahead against what the plant then produced.

The fleet of a PV source: each device's health index of its latest day with its breakdown (the registry's role
``pv_health``, :meth:`~gridtwin_lib.inference.Engine.pv_health`, from the device's commissioning on) and the fault
events of its last :data:`ANOMALY_DAYS` days (role ``pv_anomaly``, runs of flagged readings); the alarm is the worst
severity the alert rules give (``alerts.yaml``, input ``pv``). The inverters: median remaining life with its
10-90 % interval and the survival curve (role ``asset_rul``, from the inverter fleet's observations and readings).

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

FORECAST_ROLE, HEALTH_ROLE, ANOMALY_ROLE, RUL_ROLE = "pv_forecast", "pv_health", "pv_anomaly", "asset_rul"
COMPONENTS = ("power", "temperature", "battery", "inverter")  # the health index's breakdown (m20)
ANOMALY_DAYS = 7  # [d] fault flags shown per device
ANOMALY_HISTORY_D = 10  # [d] readings before those the anomaly model's trailing features read
RUL_HISTORY_D = 31  # [d] inverter observations the remaining-life model's daily features read
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
    from ..simulate import run_parameters

    run = registry.simulation_of(source)
    if run is not None:
        return run_parameters(run)
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


def view(pv_source: str | None = None):
    """The solar part of dashboard 02: the PV fleet (``pv_source``: a PV source, None = the health index's first),
    the inverters' remaining life and the PV forecast, each shown or explained on its own."""
    import ipywidgets as w

    from . import guarded

    return w.VBox([guarded(lambda: fleet_view(pv_source), "the PV fleet"), guarded(rul_view, "the inverters' remaining life"),
                   guarded(forecast_view, "the PV forecast")])


def forecast_view(source_name: str | None = None):
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


# ----------------------------------------------------------------------------- the PV fleet: health and faults
def _settings(role: str, keys: tuple[str, ...]) -> dict[str, Any]:
    from ..models import registry

    params = registry.get(model_id(role=role)).parameters("full")
    return {k: params[k] for k in keys if k in params}


def fleet_sources() -> list[str]:
    """Stored PV sources, those the health index was trained on first, then the anomaly model's."""
    return sources((*simulated_sources(role=HEALTH_ROLE), *simulated_sources(role=ANOMALY_ROLE)), kind="pv")


def _events(flags: pd.DataFrame, flag_col: str, gap_s: float) -> pd.DataFrame:
    """Runs of flagged readings per device (flags closer than ``gap_s`` join): device_id, events, last_flag."""
    hit = flags[flags[flag_col].fillna(False).astype(bool)].sort_values(["device_id", "ts"])
    if hit.empty:
        return pd.DataFrame({"device_id": pd.Series(dtype=str), "events": pd.Series(dtype=int),
                             "last_flag": pd.Series(dtype="datetime64[ns, UTC]")})
    new = hit.groupby("device_id")["ts"].diff().dt.total_seconds().fillna(np.inf) > gap_s
    return (hit.assign(new=new).groupby("device_id")
            .agg(events=("new", "sum"), last_flag=("ts", "max")).reset_index())


def solar_fleet(source: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The fleet table of a PV source (one row per device, least healthy first), the daily health of every device
    (for the gauge and its trend) and notes on what is missing.

    Table columns: device_id, health_index and ``component_<c>`` [0-100] of the latest local day, fault_events
    (runs of flags in the last :data:`ANOMALY_DAYS` days), last_flag [UTC], alarm (the alert rules' worst severity).
    """
    from ..alerts import SEVERITIES, raise_alerts

    health_id, anomaly_id = model_id(role=HEALTH_ROLE), model_id(role=ANOMALY_ROLE)
    eng = engine((health_id, anomaly_id))
    notes = [f"{m}: {eng.missing[m]}" for m in (health_id, anomaly_id) if m in eng.missing]
    plant = plant_of(source)
    readings = store().scan("pv", source=source).collect()
    if readings.height == 0:
        raise MissingData(f"{source}: no PV readings")
    devices = pd.DataFrame({"device_id": sorted(readings["device_id"].unique().to_list())})
    daily = pd.DataFrame(columns=["device_id", "date"])
    table = devices
    if health_id in eng.estimators:
        daily = eng.pv_health(readings, plant, **_settings(HEALTH_ROLE, ("utc_offset_h", "battery_min_pv_kw", "reference_days")))
        latest = daily.sort_values("date").groupby("device_id").tail(1)
        cols = {f"{health_id}.health_index": "health_index", **{f"{health_id}.component_{c}": f"component_{c}" for c in COMPONENTS}}
        table = table.merge(latest[["device_id", "date", *cols]].rename(columns=cols), on="device_id", how="left")
    pv_frames = []
    if health_id in eng.estimators and len(daily):  # a day's index is raised at the end of the local day
        off = pd.Timedelta(hours=float(_settings(HEALTH_ROLE, ("utc_offset_h",)).get("utc_offset_h", 0.0)))
        ends = pd.to_datetime(daily["date"]) + pd.Timedelta(days=1) - off
        pv_frames.append(pl.from_pandas(daily.assign(ts=ends.dt.tz_localize("UTC")).drop(columns="date")))
    if anomaly_id in eng.estimators:
        last = readings["ts"].max()
        since = last - timedelta(days=ANOMALY_DAYS)
        recent = readings.filter(pl.col("ts") >= since - timedelta(days=ANOMALY_HISTORY_D))
        flags = eng.detect_pv_anomalies(recent, plant, since=since)
        flags["ts"] = pd.to_datetime(flags["ts"], utc=True)
        gap = float(_settings(ANOMALY_ROLE, ("merge_gap_s",)).get("merge_gap_s", 3600.0))
        table = table.merge(_events(flags, f"{anomaly_id}.flag", gap), on="device_id", how="left")
        table["events"] = table["events"].fillna(0).astype(int)
        table = table.rename(columns={"events": "fault_events"})
        pv_frames.append(pl.from_pandas(flags))
    raised = raise_alerts(pv=pl.concat(pv_frames, how="diagonal_relaxed") if pv_frames else None)
    rank = {sev: k for k, sev in enumerate(SEVERITIES)}
    worst: dict[str, str] = {}
    for dev, sev in raised.select("device_id", "severity").iter_rows():
        if dev not in worst or rank[sev] < rank[worst[dev]]:
            worst[dev] = sev
    table["alarm"] = table["device_id"].map(worst).fillna("none")
    if "health_index" in table:
        table = table.sort_values("health_index", kind="stable", na_position="last")
    return table.reset_index(drop=True), daily, notes


def fleet_for_people(table: pd.DataFrame, source: str) -> pd.DataFrame:
    """The fleet table as shown: rounded, with units, times local at the source's site."""
    from . import local_text

    shown = table.copy()
    for c in ("health_index", *[f"component_{c}" for c in COMPONENTS]):
        if c in shown:
            shown[c] = shown[c].round(0)
    if "last_flag" in shown:
        shown["last_flag"] = [local_text(t, source) if not pd.isna(t) else "–" for t in shown["last_flag"]]
    labels = {"device_id": "device", "date": "day (local)", "health_index": "health index [0-100]",
              **{f"component_{c}": f"{c} [0-100]" for c in COMPONENTS},
              "fault_events": f"fault events, last {ANOMALY_DAYS} days", "last_flag": "last fault flag",
              "alarm": "alarm (alert rules)"}
    return shown.rename(columns=labels)


def health_figure(daily: pd.DataFrame, device_id: str):
    """One device's health: a gauge of its latest day, the breakdown into components, and the index over its days."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    health_id = model_id(role=HEALTH_ROLE)
    one = daily[daily["device_id"] == device_id].sort_values("date") if len(daily) else daily
    if one is None or len(one) == 0:
        raise MissingData(f"{device_id}: no health index (no champion of the health index, or no whole day of readings)")
    last = one.iloc[-1]
    fig = make_subplots(rows=1, cols=3, specs=[[{"type": "indicator"}, {"type": "xy"}, {"type": "xy"}]],
                        column_widths=[0.3, 0.3, 0.4], subplot_titles=("", "components [0-100]", "health index over the days"))
    fig.add_trace(go.Indicator(mode="gauge+number", value=float(last[f"{health_id}.health_index"]), number={"suffix": " / 100"},
                               gauge={"axis": {"range": [0, 100]}, "bar": {"color": "#264653"},
                                      "steps": [{"range": [0, 60], "color": "#f8d7da"}, {"range": [60, 80], "color": "#fff3cd"},
                                                {"range": [80, 100], "color": "#d8f3dc"}]}), 1, 1)
    values = [float(last[f"{health_id}.component_{c}"]) for c in COMPONENTS]
    fig.add_trace(go.Bar(x=list(COMPONENTS), y=values, marker_color="#457b9d", text=[f"{v:.0f}" for v in values],
                         textposition="auto", name="component"), 1, 2)
    fig.add_trace(go.Scatter(x=pd.to_datetime(one["date"]), y=one[f"{health_id}.health_index"], mode="lines+markers",
                             line=dict(color="#264653"), name="health index"), 1, 3)
    fig.update_yaxes(range=[0, 100], row=1, col=2)
    fig.update_yaxes(range=[0, 100], title_text="[0-100]", row=1, col=3)
    fig.update_xaxes(title_text="local day", row=1, col=3)
    fig.update_layout(height=320, showlegend=False, title=f"{device_id}: health on {last['date']} (local day)")
    return fig


def fleet_view(source_name: str | None = None):
    import ipywidgets as w

    from . import Quiet, attempt, choose, figure, labelled, missing, refresh, replace_options, row, table_html

    names = fleet_sources()
    source = w.Dropdown(options=labelled(names), value=choose(names, source_name, "source"), description="PV fleet")
    device = w.Dropdown(description="device")
    notes, table, gauge = w.VBox(), w.HTML(), figure()
    shown: dict[str, Any] = {}

    def show_device(_=None):
        if device.value is not None and "daily" in shown:
            attempt(notes, lambda: refresh(gauge, health_figure(shown["daily"], device.value)), "the health index")

    show_once = Quiet(show_device)

    def show_fleet(_=None):
        notes.children = []
        got = attempt(notes, lambda: solar_fleet(source.value), "the PV fleet")
        if got is None:
            return
        ranked, shown["daily"], missing_notes = got
        notes.children = [missing(m) for m in missing_notes]
        table.value = table_html(fleet_for_people(ranked, source.value), 50)
        with show_once.setting():
            replace_options(device, ranked["device_id"].tolist())
        show_device()

    source.observe(show_fleet, "value")
    device.observe(show_once, "value")
    show_fleet()
    return w.VBox([w.HTML("<h3>PV fleet, least healthy first (health index, fault events)</h3>"), source, notes, table,
                   row(device), gauge])


# ----------------------------------------------------------------------------- inverters: remaining useful life
def rul_source() -> str:
    found = simulated_sources(role=RUL_ROLE)
    if not found:
        raise MissingData("no inverter fleet is configured for the remaining-life model")
    return found[0]


def remaining_life(source: str) -> tuple[pd.DataFrame, list[str]]:
    """Each inverter's remaining life at the end of its latest day: the engine's ``<id>.median_days``,
    ``p10_days``, ``p90_days`` [days], ``risk`` and survival columns, riskiest first."""
    rul_id = model_id(role=RUL_ROLE)
    eng = engine((rul_id,))
    if rul_id not in eng.estimators:
        raise MissingData(f"the remaining-life model: {eng.missing[rul_id]}")
    st = store()
    last = st.scan_truth("asset_observations", source=source).select(pl.col("ts").max()).collect().item()
    if last is None:
        raise MissingData(f"{source}: no inverter observations; run `make run` (the inverter fleet simulation)")
    start, end = last - timedelta(days=RUL_HISTORY_D), last + timedelta(seconds=1)
    obs = st.scan_truth("asset_observations", source=source, start=start, end=end).collect()
    readings = st.scan("pv", source=source, start=start, end=end).collect()
    out = eng.remaining_life(obs, readings)
    return out.sort_values(f"{rul_id}.p10_days", kind="stable").reset_index(drop=True), []


def rul_for_people(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The remaining-life table as shown: days rounded, the interval in one column, the issue time local."""
    from . import local_text

    rul_id = model_id(role=RUL_ROLE)
    cap = max(int(c.rsplit("_s_", 1)[-1].rstrip("d")) for c in frame.columns if ".s_" in c) if any(".s_" in c for c in frame.columns) else None

    def days(v: float) -> str:
        return f"≥ {cap}" if cap is not None and v >= cap else f"{v:.0f}"

    return pd.DataFrame({
        "inverter": frame["device_id"],
        "median remaining life [days]": [days(v) for v in frame[f"{rul_id}.median_days"]],
        "10-90 % interval [days]": [f"{days(a)} – {days(b)}" for a, b in zip(frame[f"{rul_id}.p10_days"], frame[f"{rul_id}.p90_days"], strict=True)],
        "as of": [local_text(t, source) for t in pd.to_datetime(frame["issued_at"], utc=True)],
    })


def survival_figure(frame: pd.DataFrame, device_id: str):
    """One inverter's survival curve: P(still working after d days), with its median and 10-90 % interval."""
    import plotly.graph_objects as go

    rul_id = model_id(role=RUL_ROLE)
    one = frame[frame["device_id"] == device_id]
    if one.empty:
        raise MissingData(f"{device_id}: no remaining-life estimate")
    curve = [c for c in frame.columns if c.startswith(f"{rul_id}.s_")]
    grid = [int(c.rsplit("_s_", 1)[-1].rstrip("d")) for c in curve]
    r = one.iloc[0]
    fig = go.Figure(go.Scatter(x=[0, *grid], y=[1.0, *r[curve].astype(float)], mode="lines", line=dict(color="#264653", shape="hv"),
                               name="P(working after d days)"))
    fig.add_vrect(x0=float(r[f"{rul_id}.p10_days"]), x1=float(r[f"{rul_id}.p90_days"]), fillcolor="#e9c46a", opacity=0.2,
                  line_width=0, annotation_text="10-90 %", annotation_position="top left")
    fig.add_vline(x=float(r[f"{rul_id}.median_days"]), line_dash="dash", line_color="#e76f51", annotation_text="median")
    fig.update_layout(height=320, title=f"inverter {device_id}: survival from now", legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title_text="days from now")
    fig.update_yaxes(title_text="probability still working [0-1]", range=[0, 1.02])
    return fig


def rul_view():
    import ipywidgets as w

    from . import attempt, figure, missing, refresh, row, table_html

    source = rul_source()
    frame, notes_text = remaining_life(source)
    device = w.Dropdown(options=frame["device_id"].tolist(), description="inverter")
    notes, curve = w.VBox([missing(m) for m in notes_text]), figure()

    def show(_=None):
        if device.value is not None:
            attempt(notes, lambda: refresh(curve, survival_figure(frame, device.value)), "the survival curve")

    device.observe(show, "value")
    show()
    return w.VBox([w.HTML("<h3>Inverters: remaining useful life, shortest first (10th percentile)</h3>"), notes,
                   w.HTML(table_html(rul_for_people(frame, source), 20)), row(device), curve])
