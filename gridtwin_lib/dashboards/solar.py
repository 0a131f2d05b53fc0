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

import re
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ..inference import solar_assets as sa
from ..inference.solar_assets import COMPONENTS
from . import MissingData, engine, model_id, simulated_sources, sources, store

FORECAST_ROLE, HEALTH_ROLE, ANOMALY_ROLE, RUL_ROLE = sa.FORECAST_ROLE, sa.HEALTH_ROLE, sa.ANOMALY_ROLE, sa.RUL_ROLE
ISSUE_HOURS = tuple(range(6, 15))  # [local h] issue times offered: the 6 hours after them hold daylight
ANOMALY_DAYS = 7  # [d] fault flags shown per device


def forecaster() -> str:
    return model_id(role=FORECAST_ROLE)


def model_ids() -> tuple[str, ...]:
    """The solar part's models: forecast, health index, anomaly detector, remaining life (from the registry's roles)."""
    return tuple(model_id(role=r) for r in (FORECAST_ROLE, HEALTH_ROLE, ANOMALY_ROLE, RUL_ROLE))


def pv_sources() -> list[str]:
    """The stored PV plants the forecast was configured on (:func:`~gridtwin_lib.inference.solar_assets.forecast_sources`)."""
    found = [s for s in sources(sa.forecast_sources(), kind="pv") if s in sa.forecast_sources()]
    if not found:
        raise MissingData("No PV plant of the forecast in the store: run `make run` (its TMY3 simulation) first.")
    return found


def plant_of(source: str) -> dict[str, Any]:
    """The solar-twin parameters the simulation of ``source`` ran with (:func:`~gridtwin_lib.inference.solar_assets.plant_of`)."""
    return sa.plant_of(source)


def model_settings() -> dict[str, Any]:
    """The forecast's clock [h from UTC] and settings, as its dataset was built (its configuration)."""
    return sa.settings_of(FORECAST_ROLE, ("utc_offset_h", *sa.FORECAST_SETTINGS))


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
    """The forecast issued at local ``issue_hour`` of ``day`` from earlier readings only, against the measured power
    (:func:`~gridtwin_lib.inference.solar_assets.forecast_against_actual`)."""
    m18 = forecaster()
    return sa.forecast_against_actual(store(), engine((m18,)), source, device_id, day, issue_hour)


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

    from . import attempt, cascade, choose, figure, labelled, refresh, row

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

    cascade(source, {device: pv_devices, day: forecast_days}, show, also=(hour,))
    show()
    return w.VBox([w.HTML("<h3>Solar assets: AC power forecast 1-6 h ahead against the measured power</h3>"),
                   row(source, device), row(day, hour), notes, fig])


# ----------------------------------------------------------------------------- the PV fleet: health and faults
def fleet_sources() -> list[str]:
    """The stored PV fleets the fleet models were configured on (:func:`~gridtwin_lib.inference.solar_assets.fleet_sources`),
    the health index's first."""
    found = [s for s in sources(sa.fleet_sources(), kind="pv") if s in sa.fleet_sources()]
    if not found:
        raise MissingData("No PV fleet in the store: run `make run` (the PV fleet simulations) first.")
    return found


def solar_fleet(source: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The fleet table of a PV source (one row per device, least healthy first), the daily health of every device
    (for the gauge and its trend) and notes on what is missing.

    Table columns: device_id, date, health_index and ``component_<c>`` [0-100] of the latest local day,
    fault_events (runs of flags in the last :data:`ANOMALY_DAYS` days), last_flag [UTC], alarm (the alert rules'
    worst severity on the two models' outputs).
    """
    from ..alerts import SEVERITIES, raise_alerts

    health_id, anomaly_id = model_id(role=HEALTH_ROLE), model_id(role=ANOMALY_ROLE)
    eng = engine((health_id, anomaly_id))
    plant_of(source)  # a clear message for a source whose plant is unknown
    daily, flags, notes = sa.fleet_outputs(store(), eng, source, anomaly_days=ANOMALY_DAYS)
    ids = store().scan("pv", source=source).select(pl.col("device_id").unique().sort()).collect()["device_id"].to_list()
    table = pd.DataFrame({"device_id": ids})
    if daily is not None and len(daily):
        latest = daily.sort_values("date").groupby("device_id").tail(1)
        cols = {f"{health_id}.health_index": "health_index", **{f"{health_id}.component_{c}": f"component_{c}" for c in COMPONENTS}}
        table = table.merge(latest[["device_id", "date", *cols]].rename(columns=cols), on="device_id", how="left")
    if flags is not None:
        table = table.merge(sa.fault_events(flags), on="device_id", how="left")
        table["fault_events"] = table.pop("events").fillna(0).astype(int)
    raised = raise_alerts(pv=sa.pv_alert_frame(daily, flags, source))
    rank = {sev: k for k, sev in enumerate(SEVERITIES)}
    worst: dict[str, str] = {}
    for dev, sev in raised.select("device_id", "severity").iter_rows():
        if dev not in worst or rank[sev] < rank[worst[dev]]:
            worst[dev] = sev
    table["alarm"] = table["device_id"].map(worst).fillna("none")
    if "health_index" in table:
        table = table.sort_values("health_index", kind="stable", na_position="last")
    return table.reset_index(drop=True), daily if daily is not None else pd.DataFrame(columns=["device_id", "date"]), notes


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


def remaining_life(source: str) -> pd.DataFrame:
    """Each inverter's remaining life at the end of its latest day, riskiest first
    (:func:`~gridtwin_lib.inference.solar_assets.fleet_remaining_life`)."""
    rul_id = model_id(role=RUL_ROLE)
    return sa.fleet_remaining_life(store(), engine((rul_id,)), source)


def _survival_grid(frame: pd.DataFrame, rul_id: str) -> list[tuple[str, int]]:
    """The survival columns ``<id>.s_<d>d`` with their day ``d``, in order of ``d``."""
    found = [(c, re.fullmatch(rf"{re.escape(rul_id)}\.s_(\d+)d", c)) for c in frame.columns]
    return sorted(((c, int(m.group(1))) for c, m in found if m), key=lambda cd: cd[1])


def rul_for_people(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """The remaining-life table as shown: days rounded, the interval in one column, the issue time local."""
    from . import local_text

    rul_id = model_id(role=RUL_ROLE)
    grid = _survival_grid(frame, rul_id)
    cap = grid[-1][1] if grid else None

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
    columns = _survival_grid(frame, rul_id)
    curve, grid = [c for c, _ in columns], [d for _, d in columns]
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

    from . import attempt, figure, refresh, row, table_html

    source = rul_source()
    frame = remaining_life(source)
    device = w.Dropdown(options=frame["device_id"].tolist(), description="inverter")
    notes, curve = w.VBox(), figure()

    def show(_=None):
        if device.value is not None:
            attempt(notes, lambda: refresh(curve, survival_figure(frame, device.value)), "the survival curve")

    device.observe(show, "value")
    show()
    return w.VBox([w.HTML("<h3>Inverters: remaining useful life, shortest first (10th percentile)</h3>"), notes,
                   w.HTML(table_html(rul_for_people(frame, source), 20)), row(device), curve])
