"""Dashboard 03: load forecast, losses, the day's battery schedule and the customers' flexibility.

* The day-ahead load model (the registry's role ``day_ahead_load``): the hourly forecast of a
  household meter issued at local midnight (:meth:`Engine.forecast_day`, only readings before
  that midnight) against what the meter then measured, with the error per hour.
* The day planner (role ``day_plan``): the LP schedule for that day (:meth:`Engine.plan_day` on
  that forecast, a clear-sky PV forecast of the planner's site and its time-of-use tariff)
  against the rule baseline planned on the same forecast.
* The energy-loss model (catalogue name ``energy_loss``): its losses [kW] for the feeder-head readings of a
  day (the stored scores, :func:`~gridtwin_lib.dashboards.score_range`), beside the losses the feeder twin
  computed (power flow).
* The segmentation (role ``segments``): the customers' daily profiles (its dataset's rows)
  segmented into archetypes with their peak share and flexible energy.

Models are found in the registry (:func:`gridtwin_lib.dashboards.model_id`); the page names none by id.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl

from .. import settings
from . import MissingData, days, engine, model_id, score_range, simulated_sources, store

FORECAST_ROLE, PLAN_ROLE, SEGMENT_ROLE = "day_ahead_load", "day_plan", "segments"  # the registry's roles shown here
LOSSES = "energy_loss"  # catalogue name of the per-reading losses model
TARIFF_EUR_PER_KWH = (0.16, 0.22, 0.34)  # off-peak, shoulder, peak: the day planner's dataset's default tariff
FORECAST_DAYS = 14  # days offered in the day selector
PLAN_TIME_LIMIT_S = 30.0  # [s] the LP solves a day in ~0.01 s; the limit only guards a stuck solver on a busy host


def models() -> dict[str, str]:
    """The page's model ids by what they do (from the registry)."""
    return {"forecast": model_id(role=FORECAST_ROLE), "losses": model_id(LOSSES), "plan": model_id(role=PLAN_ROLE),
            "segments": model_id(role=SEGMENT_ROLE)}


def loss_source() -> str:
    """The feeder source the losses model was trained on."""
    return simulated_sources(LOSSES)[0]


def segment_source() -> str:
    """The customers' meter source the segmentation was trained on."""
    return simulated_sources(role=SEGMENT_ROLE)[0]


def _engine(what: str):
    """The engine of the page's model ``what`` alone (a key of :func:`models`): a figure loads only its own model."""
    return engine((models()[what],))


def meter_sources() -> list[str]:
    found = store().sources("meter")
    if not found:
        raise MissingData("No household meter data: ingest the UCI data (`gridtwin ingest uci`) or run `make run`.")
    return sorted(found, key=lambda s: (s != "uci", s))


def _offset(source: str) -> float:
    """The source's meter clock [h from UTC] (conf/base/sites.yaml: ``sources``, else ``other_sources``)."""
    return settings.source_profile(source).utc_offset_h


def forecast_days(source: str) -> list[date]:
    """The last complete local days of the source that have a week of data before them (newest first)."""
    st = store()
    first, last = st.scan("meter", source=source).select(pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")).collect().row(0)
    off = timedelta(hours=_offset(source))
    newest, oldest = (last + off).date() - timedelta(days=1), (first + off).date() + timedelta(days=8)
    return [newest - timedelta(days=k) for k in range(FORECAST_DAYS) if newest - timedelta(days=k) >= oldest]


def forecast_vs_actual(source: str, day: date) -> pd.DataFrame:
    """Hourly day-ahead forecast [kW] issued at local midnight of ``day`` and the measured hourly mean [kW]."""
    from ..datasets.energy.load_forecast import meter_load

    eng = _engine("forecast")
    forecaster = models()["forecast"]
    if forecaster not in eng.estimators:
        raise MissingData(f"{forecaster}: {eng.missing[forecaster]}")
    off = _offset(source)
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=off)
    lf = store().scan("meter", source=source, start=midnight - timedelta(days=9), end=midnight + timedelta(days=1))
    readings = meter_load(lf).collect()
    fc = eng.forecast_day(readings.filter(pl.col("ts") < midnight), day, utc_offset_h=off,
                          site="fr_sceaux" if source == "uci" else None)
    actual = (readings.filter((pl.col("ts") >= midnight) & pl.col("valid"))
              .group_by("device_id", ((pl.col("ts") - midnight).dt.total_hours()).alias("h"))
              .agg((pl.col("value").mean() / 1000.0).alias("kw"))
              .group_by("h").agg(pl.col("kw").sum()).sort("h"))
    fc["actual_kw"] = np.nan
    hours = actual["h"].to_numpy()
    ok = (hours >= 0) & (hours < 24)
    fc.loc[hours[ok], "actual_kw"] = actual["kw"].to_numpy()[ok]
    fc["error_kw"] = fc["load_kw"] - fc["actual_kw"]
    return fc


def forecast_figure(fc: pd.DataFrame, source: str):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    mae = float(np.nanmean(np.abs(fc["error_kw"])))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06)
    fig.add_trace(go.Scatter(x=fc["hour"], y=fc["actual_kw"], name="measured", line=dict(color="#264653")), 1, 1)
    fig.add_trace(go.Scatter(x=fc["hour"], y=fc["load_kw"], name="forecast (issued at midnight)",
                             line=dict(color="#e76f51", dash="dash")), 1, 1)
    fig.add_trace(go.Bar(x=fc["hour"], y=fc["error_kw"], name="error (forecast − measured)", marker_color="#adb5bd"), 2, 1)
    fig.update_layout(height=420, title=f"{source}: day-ahead load forecast, MAE {mae:.2f} kW",
                      legend=dict(orientation="h", y=-0.15))
    fig.update_yaxes(title_text="load [kW]", row=1, col=1)
    fig.update_yaxes(title_text="error [kW]", row=2, col=1)
    return fig


def schedule(fc: pd.DataFrame, source: str, day: date) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The day planner's LP schedule and the rule baseline's, both planned on the forecast; and a cost line."""
    from ..daily import clear_sky_pv_kw
    from ..datasets.energy.power_flow_optimization import PV_AT_SCEAUX, tou_price
    from ..models.energy.power_flow_optimization import PowerFlowOptimization
    from ..physics.battery import day_cost

    eng = _engine("plan")
    hours = np.arange(24)
    pv = clear_sky_pv_kw(day, PV_AT_SCEAUX) if source == "uci" else np.zeros(24)
    price = tou_price(hours, *TARIFF_EUR_PER_KWH)
    plan = eng.plan_day(fc["load_kw"].to_numpy(), pv, price, time_limit_s=PLAN_TIME_LIMIT_S)
    planner = models()["plan"]
    lp = plan[planner]
    if lp.status != "ok":
        raise MissingData(lp.message or "the day planner gave no schedule")
    est = eng.estimators.get(planner) or PowerFlowOptimization()
    X = pd.DataFrame({"day": 0, "hour": hours, "load_kw": fc["load_kw"].to_numpy(), "pv_kw": pv, "price_per_kwh": price})
    rule = est.baseline().fit().predict(X)
    sched = lp.result.reset_index(drop=True).assign(hour=fc["hour"].to_numpy(), pv_kw=pv, price=price)
    rule = rule.reset_index(drop=True).assign(hour=fc["hour"].to_numpy())
    costs = [_cost(day_cost, est, s, price) for s in (sched, rule)]
    who = "the planner's champion" if plan["lp_is_champion"] else "the LP (the planner has no champion; shown with default parameters)"
    text = (f"Planned cost on the forecast: {who} {costs[0]:.2f} €/day, rule baseline {costs[1]:.2f} €/day "
            f"(solved in {lp.seconds:.2f} s)." if None not in costs else f"Schedule by {who}, solved in {lp.seconds:.2f} s.")
    return sched, rule, text


def _cost(day_cost, est, sched: pd.DataFrame, price: np.ndarray) -> float | None:
    """The day's cost [€] of a schedule by the planner's own cost function (None if it cannot be evaluated)."""
    try:
        grid = sched["grid_import_kw"].to_numpy(float)[None, :]
        return float(day_cost(est.battery_site(), grid, sched["soc_kwh"].to_numpy(float)[-1:], np.asarray(price, float)[None, :])[0])
    except Exception:  # noqa: BLE001 - the cost line is a convenience; the schedule is shown regardless
        return None


def schedule_figure(sched: pd.DataFrame, rule: pd.DataFrame):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=sched["hour"], y=sched["grid_import_kw"], name="import, optimal plan [kW]", marker_color="#264653"))
    fig.add_trace(go.Bar(x=rule["hour"], y=rule["grid_import_kw"], name="import, rule [kW]", marker_color="#e9c46a"))
    fig.add_trace(go.Scatter(x=sched["hour"], y=sched["pv_kw"], name="PV forecast [kW]", line=dict(color="#f4a261")))
    fig.add_trace(go.Scatter(x=sched["hour"], y=sched["soc_kwh"], name="battery SoC, optimal plan [kWh]",
                             line=dict(color="#2a9d8f", width=3)), secondary_y=True)
    fig.add_trace(go.Scatter(x=rule["hour"], y=rule["soc_kwh"], name="battery SoC, rule [kWh]",
                             line=dict(color="#2a9d8f", dash="dot")), secondary_y=True)
    fig.update_layout(barmode="group", height=400, title="24 h schedule: optimal plan against the rule baseline",
                      legend=dict(orientation="h", y=-0.2))
    fig.update_yaxes(title_text="power [kW]", secondary_y=False)
    fig.update_yaxes(title_text="state of charge [kWh]", secondary_y=True)
    return fig


def loss_days() -> list[date]:
    return days(loss_source())


def losses_figure(day: date):
    """Estimated losses per feeder over the day, beside the twin's power-flow losses."""
    import plotly.graph_objects as go

    from . import local_start, source_label, time_axis, to_local

    losses_model, source = models()["losses"], loss_source()
    column = f"{losses_model}.losses_kw"
    start, end = local_start(day, 0, source), local_start(day + timedelta(days=1), 0, source)  # the local day
    scored = score_range((losses_model,), source, None, start, end)  # MissingData without feeder-head readings
    if losses_model in scored.missing:
        raise MissingData(f"{losses_model}: {scored.missing[losses_model]}")
    st = store()
    out = scored.frame.filter(pl.col(column).is_not_null())
    truth = st.scan_truth("feeder_losses", source=source, start=start, end=end).collect()
    fig = go.Figure()
    for (feeder,), part in out.with_columns(pl.col("device_id").str.replace(r"_[RIC]$", "").alias("feeder")) \
            .group_by("feeder", maintain_order=True):
        p = part.group_by("ts").agg(pl.col(column).first()).sort("ts")
        fig.add_trace(go.Scatter(x=to_local(p["ts"].to_pandas(), source), y=p[column], name=f"{feeder}: model estimate",
                                 mode="lines+markers"))
    if truth.height:
        for (feeder,), part in truth.sort("ts").group_by("device_id", maintain_order=True):
            fig.add_trace(go.Scatter(x=to_local(part["ts"].to_pandas(), source), y=part["losses_kw"], name=f"{feeder}: power flow (twin)",
                                     line=dict(dash="dot")))
    fig.update_layout(height=360, title=f"{source_label(source)}: network losses on {day}", yaxis_title="losses [kW]",
                      xaxis_title=time_axis(source), legend=dict(orientation="h", y=-0.25))
    return fig


def archetypes() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Archetype per customer-day and per archetype: customers, days, mean peak share, flexible energy [kWh/day]."""
    from ..datasets.energy.demand_response import demand_response

    eng = _engine("segments")
    segmenter = models()["segments"]
    if segmenter not in eng.estimators:
        raise MissingData(f"{segmenter}: {eng.missing[segmenter]}")
    ds = demand_response(store(), source=segment_source(), test_days=2, holdout_customer_fraction=0.0)  # every customer-day
    X = pd.concat([ds.X_train, ds.X_test], ignore_index=True)
    meta = pd.concat([ds.meta_train, ds.meta_test], ignore_index=True)
    seg = eng.segment(X).reset_index(drop=True)
    per_day = pd.concat([meta.reset_index(drop=True), seg], axis=1)
    summary = (per_day.groupby("archetype")
               .agg(customers=("device_id", "nunique"), days=("device_id", "size"), peak_share=("peak_share", "mean"),
                    flexible_kwh_per_day=("flexible_kwh", "mean"))
               .reset_index())
    profiles = pd.concat([X[[f"h{h:02d}" for h in range(24)]], seg["archetype"]], axis=1).groupby("archetype").mean()
    return summary, profiles


def archetype_figure(summary: pd.DataFrame, profiles: pd.DataFrame):
    import plotly.graph_objects as go

    fig = go.Figure()
    for a, row in profiles.iterrows():
        s = summary.set_index("archetype").loc[a]
        fig.add_trace(go.Scatter(x=list(range(24)), y=row.to_numpy(), mode="lines",
                                 name=f"archetype {a}: {int(s['customers'])} customers, peak share {s['peak_share']:.0%}, "
                                      f"{s['flexible_kwh_per_day']:.1f} kWh/day flexible"))
    fig.update_layout(height=380, title="load archetypes: mean daily profile and demand-response potential",
                      xaxis_title="local hour", yaxis_title="mean demand [kW]", legend=dict(orientation="h", y=-0.25))
    return fig


def page(meter: str | None = None):
    """The whole dashboard: forecast and schedule of ``meter`` (None = the first stored), losses, archetypes."""
    from . import dashboard, guarded
    from . import page as layout

    info = dashboard("03_energy_flow")
    return layout(info.title, info.summary, guarded(lambda: forecast_view(meter), "the load forecast"),
                  guarded(losses_view, "the losses"), guarded(archetype_view, "the archetypes"),
                  model_ids=lambda: models().values())


def forecast_view(meter: str | None = None):
    import ipywidgets as w

    from . import attempt, cascade, choose, figure, labelled, refresh, row

    names = meter_sources()
    source = w.Dropdown(options=labelled(names), value=choose(names, meter, "meter"), description="meter")
    day = w.Dropdown(options=forecast_days(source.value), description="day (local)")
    notes, cost = w.VBox(), w.HTML()
    forecast, plan = figure(), figure()

    def show(_=None):
        notes.children, cost.value = [], ""
        fc = attempt(notes, lambda: forecast_vs_actual(source.value, day.value), "the load forecast")
        if fc is None:
            return
        refresh(forecast, forecast_figure(fc, source.value))
        planned = attempt(notes, lambda: schedule(fc, source.value, day.value), "the day's schedule")
        if planned is not None:
            refresh(plan, schedule_figure(planned[0], planned[1]))
            cost.value = planned[2]

    cascade(source, {day: forecast_days}, show)  # a new meter sets its days: one redraw, not two
    show()
    return w.VBox([w.HTML("<h3>Day-ahead load forecast and the day's battery schedule</h3>"), row(source, day), notes,
                   forecast, cost, plan])


def losses_view():
    import ipywidgets as w

    from . import figure, refresh

    day = w.Dropdown(options=loss_days(), description="day (local)")
    losses = figure(losses_figure(day.value))
    day.observe(lambda _: refresh(losses, losses_figure(day.value)), "value")
    return w.VBox([w.HTML("<h3>Network losses</h3>"), day, losses])


def archetype_view():
    import ipywidgets as w

    from . import figure, table_html

    summary, profiles = archetypes()
    return w.VBox([w.HTML("<h3>Customer archetypes and demand-response potential</h3>"),
                   figure(archetype_figure(summary, profiles)), w.HTML(table_html(summary))])
