"""Dashboard 04: how stable is the grid, what to do about it, and what is alarming.

* Grid stability (catalogue name ``grid_stability``): the stability score [0-100] of the latest
  reading of a three-phase source as a gauge, with its drivers: the ensemble members'
  disturbance probabilities and the reading's deviations from nominal.
* Reactive power (``reactive_power_compensation``): the set-point per feeder head at the latest
  hour and the loss reduction it is expected to bring; the phase move (role ``phase_move``) for
  each feeder with the voltage unbalance before and after; the battery dispatch (role
  ``dispatch``): the set-point for the next hour from the household's latest day (persistence as
  the load forecast), with the LP's set-point as reference.
* Alerts: :func:`gridtwin_lib.alerts.raise_alerts` over the shown readings' scores and the
  transformer fleet's asset scores, most severe first, each with the rule or model that
  raised it; the models scored for them are those the alert rules name.

Models are found in the registry (:func:`gridtwin_lib.dashboards.model_id`); the page names none by id.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl

from . import MissingData, Scored, engine, model_id, score_range, simulated_sources, store
from . import sources as shared_sources

STABILITY, REACTIVE = "grid_stability", "reactive_power_compensation"  # catalogue names of the per-reading models
PHASE_MOVE_ROLE, DISPATCH_ROLE = "phase_move", "dispatch"  # the registry's roles of the two other advisers
HOURS = (1, 3, 6)
SEVERITY_COLOURS = {"CRITICAL": "#9d0208", "HIGH": "#e85d04", "MEDIUM": "#f4a261", "LOW": "#8ab17d"}
ALL = "all severities"


def models() -> dict[str, str]:
    """The page's advisers' ids by what they do (from the registry)."""
    return {"stability": model_id(STABILITY), "reactive": model_id(REACTIVE), "phase_move": model_id(role=PHASE_MOVE_ROLE),
            "dispatch": model_id(role=DISPATCH_ROLE)}


def alert_models() -> tuple[str, ...]:
    """The registered models the alert rules read (``alerts.yaml``): scored so that their rules can fire."""
    from ..alerts import load_rules
    from ..models import registry

    named = {rule.column.split(".")[0] for rule in load_rules().rules if "." in rule.column}
    return tuple(m for m in registry.ids() if m in named)


def reading_models() -> tuple[str, ...]:
    """The per-reading models the page shows or the alert rules read: their outputs come from the stored scores
    (:func:`~gridtwin_lib.dashboards.score_range`), so the page loads none of them when those are current."""
    from ..models import registry

    per_reading = set(registry.reading_ids())
    return tuple(m for m in dict.fromkeys((*models().values(), *alert_models())) if m in per_reading)


def feeder_source() -> str:
    """The feeder heads the reactive-power model was trained on."""
    return simulated_sources(REACTIVE)[0]


def sources() -> list[str]:
    """Three-phase sources, those the stability model was trained on first."""
    return shared_sources(simulated_sources(STABILITY))


def last_hours(source: str, hours: int) -> Scored:
    """The source's last ``hours`` of readings with the alert features and the outputs of :func:`reading_models`."""
    from ..inference import ALERT_FEATURES

    last = store().scan("three_phase", source=source).select(pl.col("ts").max()).collect().item()
    end = last + timedelta(seconds=1)
    return score_range(reading_models(), source, None, end - timedelta(hours=int(hours)), end, with_features=ALERT_FEATURES)


def gauge_figure(frame: pl.DataFrame, source: str):
    """The stability score of the latest scored reading as a gauge (red below 40, amber below 70)."""
    import plotly.graph_objects as go

    from . import local_text, source_label

    stability = models()["stability"]
    col = f"{stability}.stability_score"
    if col not in frame.columns:
        raise MissingData(f"{stability}: nothing serves it in the registry (run `make run`)")
    scored = frame.filter(pl.col(col).is_not_null()) if col in frame.columns else frame.clear()
    if scored.height == 0:
        raise MissingData(f"{source}: the stability model scored no reading in the range (it needs an hour of history)")
    last = scored.tail(1).row(0, named=True)
    fig = go.Figure(go.Indicator(
        mode="gauge+number", value=last[col], number={"suffix": " / 100"},
        title={"text": f"grid stability, {source_label(source)} {last['device_id']} at {local_text(last['ts'], source)}"},
        gauge={"axis": {"range": [0, 100]}, "bar": {"color": "#264653"},
               "steps": [{"range": [0, 40], "color": "#f8d7da"}, {"range": [40, 70], "color": "#fff3cd"},
                         {"range": [70, 100], "color": "#d8f3dc"}]}))
    fig.update_layout(height=300)
    return fig


MEMBER_NAMES = {"rf": "random forest", "xgb": "gradient boosting (XGBoost)", "logit": "logistic regression"}


def drivers_figure(frame: pl.DataFrame, source: str | None = None):
    """What drives the latest score: each ensemble member's P(disturbance within 30 min), then the reading's
    deviations, each in its own panel with its own unit (the time: local at the ``source``'s site)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from . import local_text

    stability = models()["stability"]
    col = f"{stability}.stability_score"
    scored = frame.filter(pl.col(col).is_not_null()) if col in frame.columns else frame.clear()
    if scored.height == 0:
        raise MissingData("the stability model scored no reading in the range: no drivers to show")
    last = scored.sort("ts").tail(1).row(0, named=True)
    members = {name: last.get(f"{stability}.p_member_{m}") for m, name in MEMBER_NAMES.items()}
    deviations = (("largest voltage deviation", "%", _abs(last.get("v_max_abs_dev_pct"))),
                  ("frequency deviation", "Hz", _abs(last.get("freq_dev_hz"))),
                  ("voltage THD", "%", last.get("thd_v_pct")))
    fig = make_subplots(rows=1, cols=4, column_widths=[0.4, 0.2, 0.2, 0.2], horizontal_spacing=0.09,
                        subplot_titles=("P(disturbance in 30 min) per model", *[f"{n} [{u}]" for n, u, _ in deviations]))
    fig.add_trace(go.Bar(x=list(members), y=[v if v is not None else 0.0 for v in members.values()], marker_color="#e76f51",
                         text=[f"{v:.2f}" if v is not None else "–" for v in members.values()], textposition="auto"), 1, 1)
    for k, (name, unit, value) in enumerate(deviations):
        fig.add_trace(go.Bar(x=[name], y=[value if value is not None else 0.0], marker_color="#457b9d",
                             text=[f"{value:.3g} {unit}" if value is not None else "–"], textposition="auto"), 1, k + 2)
        fig.update_xaxes(showticklabels=False, row=1, col=k + 2)
    fig.update_layout(height=320, showlegend=False,
                      title=f"drivers of the stability score at {local_text(last['ts'], source, '%Y-%m-%d %H:%M:%S')}")
    fig.update_yaxes(range=[0, 1], title_text="probability [0-1]", row=1, col=1)
    fig.update_annotations(font_size=11)
    return fig


def _abs(v):
    return None if v is None else abs(v)


def stability_trend_figure(frame: pl.DataFrame, source: str):
    """The stability score over the range, one time-sorted trace per device."""
    import plotly.graph_objects as go

    from . import decimate, source_label, time_axis, to_local

    col = f"{models()['stability']}.stability_score"
    scored = frame.filter(pl.col(col).is_not_null()) if col in frame.columns else frame.clear()
    if scored.height == 0:
        raise MissingData("the stability model scored no reading in the range")
    fig = go.Figure()
    for device, one in sorted(scored.partition_by("device_id", as_dict=True).items()):
        df = decimate(one.sort("ts"), by=None).to_pandas()
        fig.add_trace(go.Scatter(x=to_local(df["ts"], source), y=df[col], name=str(device[0]), mode="lines"))
    fig.update_layout(height=280, title=f"{source_label(source)}: stability score over the range, per device",
                      yaxis=dict(range=[0, 100], title="stability score [0-100]"), xaxis_title=time_axis(source))
    return fig


def actions() -> tuple[pd.DataFrame, list[str]]:
    """Recommended actions with their expected effect: reactive power per feeder head, a phase move per feeder, the
    battery set-point for the next hour."""
    rows, notes = [], []
    for fn in (_reactive_actions, _phase_moves, _dispatch_action):
        try:
            rows += fn()
        except MissingData as exc:
            notes.append(str(exc))
    return pd.DataFrame(rows, columns=["adviser", "where", "action", "expected effect"]), notes


def _reactive_actions() -> list[dict]:
    reactive, source = models()["reactive"], feeder_source()
    last = store().scan("three_phase", source=source).select(pl.col("ts").max()).collect().item()
    if last is None:
        raise MissingData(f"reactive power: no feeder-head readings ({source}); run `make run`")
    scored = score_range((reactive,), source, None, last, last + timedelta(seconds=1))
    if reactive in scored.missing:
        raise MissingData(f"{reactive}: {scored.missing[reactive]}")
    out = scored.frame.filter(pl.col(f"{reactive}.q_setpoint_kvar").is_not_null())
    out = out.with_columns(pl.col("device_id").str.replace(r"_[RIC]$", "").alias("feeder"))  # one set-point per feeder
    from . import local_text

    return [{"adviser": "reactive power compensation", "where": f"{r['feeder']} ({local_text(r['ts'], source)})",
             "action": f"set the compensator to {r[f'{reactive}.q_setpoint_kvar']:.0f} kvar",
             "expected effect": f"−{r[f'{reactive}.expected_loss_reduction_kw']:.2f} kW losses"}
            for r in out.unique("feeder", keep="first", maintain_order=True).iter_rows(named=True)]


def _phase_moves() -> list[dict]:
    from ..datasets.decision.load_balancing import load_balancing

    mover = models()["phase_move"]
    eng = engine((mover,))
    if mover in eng.missing:
        raise MissingData(f"{mover}: {eng.missing[mover]}")
    ds = load_balancing(store())
    X, meta = ds.X_test.reset_index(drop=True), ds.meta_test.reset_index(drop=True)
    rows = []
    for feeder in meta["feeder"].unique():
        k = meta.index[meta["feeder"] == feeder][-1]
        res = eng.balance(X.iloc[[k]])
        if res.status != "ok":
            rows.append({"adviser": "load balancing", "where": feeder, "action": "no answer", "expected effect": res.message})
            continue
        r = res.result.iloc[0]
        rows.append({"adviser": "load balancing", "where": f"{feeder} ({meta['date'][k]})",
                     "action": f"move {r['customer']} from phase {r['from_phase']} to {r['to_phase']}",
                     "expected effect": f"VUF {r['expected_vuf_before_pct']:.2f} % → {r['expected_vuf_after_pct']:.2f} %"})
    return rows


def _dispatch_action() -> list[dict]:
    from ..datasets.energy.power_flow_optimization import tou_price
    from .energy import TARIFF_EUR_PER_KWH

    dispatcher = models()["dispatch"]
    eng = engine((dispatcher,))
    if dispatcher in eng.missing:
        raise MissingData(f"{dispatcher}: {eng.missing[dispatcher]}")
    load = _last_day_hourly_kw()
    plan = eng.plan_day(load, np.zeros(24), tou_price(np.arange(24), *TARIFF_EUR_PER_KWH))
    dispatch = plan[dispatcher]
    setpoint = next((v for k, v in dispatch.items() if k.endswith("_kw") and "battery" in k), None)
    ref = plan.get(f"{dispatcher.split('_')[0]}_reference_battery_kw")  # the engine's key for the LP's own set-point
    text = f"battery set-point {setpoint:+.2f} kW for the next hour" if setpoint is not None else \
        "battery set-point: " + ", ".join(f"{k} {v:.3g}" for k, v in dispatch.items() if isinstance(v, float))
    return [{"adviser": "battery dispatch", "where": "household battery (UCI house, persistence forecast)",
             "action": text, "expected effect": f"LP reference {ref:+.2f} kW" if ref is not None else "no LP reference"}]


def _last_day_hourly_kw() -> np.ndarray:
    st = store()
    meters = st.sources("meter")
    if not meters:
        raise MissingData("battery dispatch: no household meter data to plan from; ingest UCI (gridtwin ingest uci)")
    src = "uci" if "uci" in meters else meters[0]
    last = st.scan("meter", source=src).select(pl.col("ts").max()).collect().item()
    day = st.scan("meter", source=src, start=last - timedelta(days=1), end=last + timedelta(seconds=1)).collect()
    hourly = (day.group_by(pl.col("ts").dt.hour().alias("h")).agg((pl.col("power").mean() / 1000.0).alias("kw")).sort("h"))
    out = np.full(24, np.nan)
    out[hourly["h"].to_numpy()] = hourly["kw"].to_numpy()
    return np.nan_to_num(out, nan=float(np.nanmean(out)) if np.isfinite(out).any() else 0.0)


def alert_table(frame: pl.DataFrame) -> pl.DataFrame:
    """Alerts of the shown readings and of the transformer fleet, most severe first."""
    from .. import alerts

    assets = None
    fleets = store().truth_sources("asset_observations")
    eng = engine((model_id(role="asset_failure"), model_id(role="asset_overload")))
    if fleets and eng.estimators:
        from .maintenance import observations

        assets = eng.score_assets(observations(fleets[0])).with_columns(pl.lit(fleets[0]).alias("source"))
    scores = frame if "source" in frame.columns else frame.with_columns(pl.lit(None, pl.String).alias("source"))
    return alerts.raise_alerts(scores=scores, assets=assets)


def severity_options() -> list[str]:
    from ..alerts import SEVERITIES

    return [ALL, *SEVERITIES]


def counts_html(table: pl.DataFrame) -> str:
    from ..alerts import counts

    return " ".join(f"<span style='background:{SEVERITY_COLOURS[s]};color:white;padding:3px 10px;border-radius:10px;"
                    f"margin-right:6px'>{s} {n}</span>" for s, n in counts(table).items())


def alerts_shown(table: pl.DataFrame, severity: str) -> pl.DataFrame:
    shown = table if severity == ALL else table.filter(pl.col("severity") == severity)
    keep = ["severity", "raised_by", "device_id", "first_utc", "last_utc", "count", "message", "suggested_action"]
    words = {"raised_by": "raised by", "device_id": "device", "first_utc": "first", "last_utc": "last",
             "count": "firings", "suggested_action": "suggested action"}  # times are shown in local time (table_html)
    return shown.select([c for c in keep if c in shown.columns]).rename(lambda c: words.get(c, c))


def page(source: str | None = None):
    """The whole dashboard: stability and alerts of ``source`` (None = the first stored), recommended actions."""
    from . import dashboard, guarded
    from . import page as layout

    info = dashboard("04_decision_making")
    return layout(info.title, info.summary, guarded(lambda: stability_view(source), "the stability view"),
                  guarded(actions_view, "the actions"), model_ids=lambda: (*models().values(), *alert_models()))


def stability_view(source_name: str | None = None):
    import ipywidgets as w

    from . import attempt, choose, figure, labelled, missing, refresh, row, table_html, timezone_of

    names = sources()
    source = w.Dropdown(options=labelled(names), value=choose(names, source_name, "source"), description="source")
    hours = w.Dropdown(options=HOURS, description="last hours")
    severity = w.Dropdown(options=severity_options(), description="severity")
    notes, counts, table = w.VBox(), w.HTML(), w.HTML()
    gauge, drivers, trend = figure(), figure(), figure()
    shown = {}

    def show_alerts(_=None):
        table.value = table_html(alerts_shown(shown["alerts"], severity.value), 100, zone=timezone_of(source.value))

    def show(_=None):
        notes.children = []
        got = attempt(notes, lambda: last_hours(source.value, hours.value), "the readings")
        if got is None:
            return
        frame = got.frame
        notes.children = [*notes.children, *(missing(f"{m}: {why}") for m, why in got.missing.items())]
        attempt(notes, lambda: refresh(gauge, gauge_figure(frame, source.value)), "the stability gauge")
        attempt(notes, lambda: refresh(drivers, drivers_figure(frame, source.value)), "the stability drivers")
        attempt(notes, lambda: refresh(trend, stability_trend_figure(frame, source.value)), "the stability trend")
        shown["alerts"] = alert_table(frame)
        counts.value = counts_html(shown["alerts"])
        show_alerts()

    source.observe(show, "value")
    hours.observe(show, "value")
    severity.observe(show_alerts, "value")
    show()
    return w.VBox([row(source, hours), notes, row(gauge, drivers), trend,
                   w.HTML("<h3>Alerts, most severe first</h3>"), counts, severity, table])


def actions_view():
    import ipywidgets as w

    from . import missing, table_html

    found, notes = actions()
    return w.VBox([w.HTML("<h3>Recommended actions and their expected effect</h3>"),
                   *[missing(m) for m in notes], w.HTML(table_html(found))])
