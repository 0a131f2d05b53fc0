"""Dashboard 02: which assets to visit first, and how power quality will evolve.

Fleet: the transformer observations of a fleet source (``asset_observations``: measured
load [pu], top-oil and ambient temperature [°C], age [a]) over the last 31 days, scored
by :meth:`gridtwin_lib.inference.Engine.score_assets` (the models serving the registry's
roles ``asset_failure``, failure probability within 7 days, and ``asset_overload``, the
overload class). Health is ``100 × (1 − p_fail_7d)``; the expected lead time assumes the
hazard is constant over the 7-day horizon: ``7 d / −ln(1 − p)``.

Power quality over time: the power-quality-index model (PQ index of the next 10-min window)
and the voltage-sag model (probability of a sag within 15 min) on a three-phase source, per
reading, through the same engine. Models are found in the registry by role or catalogue
name (:func:`gridtwin_lib.dashboards.model_id`); the page names none by id.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import polars as pl

from . import (
    MissingData,
    days,
    decimate,
    engine,
    local_start,
    model_id,
    score_range,
    simulated_sources,
    sources,
    store,
    time_axis,
    to_local,
)

FAILURE_ROLE, OVERLOAD_ROLE = "asset_failure", "asset_overload"  # the registry's roles of the fleet's two models
PQ_INDEX, SAG = "power_quality_index", "voltage_sag"  # catalogue names of the two power-quality models
HORIZON_D = 7.0  # [d] the failure model's prediction horizon
HISTORY_D = 31  # [d] observations the failure model's rolling features need
PQ_HOURS = (3, 6, 12, 24)
PQ_START_HOUR = 16  # [local h] the PQ outlook starts at the evening ramp
OBSERVED = ("load_pu_measured", "top_oil_temp_c", "ambient_temp_c", "age_years")


def asset_models() -> tuple[str, str]:
    """Ids of the failure and the overload models (from the registry's roles)."""
    return model_id(role=FAILURE_ROLE), model_id(role=OVERLOAD_ROLE)


def pq_models() -> tuple[str, str]:
    """Ids of the PQ-index and the sag models (from the registry's catalogue names)."""
    return model_id(PQ_INDEX), model_id(SAG)


def fleets() -> list[str]:
    """The transformer fleets of the store (the inverter fleets have their own view: :mod:`.solar`)."""
    from ..inference.solar_assets import inverter_fleets

    st = store()
    inverters = set(inverter_fleets(st))
    found = [s for s in st.truth_sources("asset_observations") if s not in inverters]
    if not found:
        raise MissingData("No transformer fleet observations in the store: run `make run` (its transformer-fleet simulations) first.")
    return found


def observations(fleet: str) -> pl.DataFrame:
    """The fleet's last :data:`HISTORY_D` days of observations."""
    st = store()
    last = st.scan_truth("asset_observations", source=fleet).select(pl.col("ts").max()).collect().item()
    obs = st.scan_truth("asset_observations", source=fleet, start=last - timedelta(days=HISTORY_D),
                        end=last + timedelta(seconds=1)).collect()
    return obs.select("ts", "device_id", *OBSERVED).sort("device_id", "ts")


def fleet_table(obs: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """One row per asset, riskiest first: failure probability, health, lead time, the alarm the alert rules give
    (``alerts.yaml``'s rules on the two fleet models; "none" below every level), overload class; and notes on
    missing champions."""
    from ..alerts import SEVERITIES, load_rules, raise_alerts

    failure, overload = asset_models()
    eng = engine((failure, overload))
    scored = eng.score_assets(obs)
    latest = obs.group_by("device_id").agg(pl.all().sort_by("ts").last()).drop("ts")
    table = scored.join(latest, on="device_id", how="left")
    notes = [f"{m}: {eng.missing[m]}" for m in (failure, overload) if m in eng.missing]
    rules = load_rules()
    raised = raise_alerts(assets=scored, rules=rules)
    rank = {s: k for k, s in enumerate(SEVERITIES)}
    worst: dict[str, str] = {}
    for dev, sev in raised.select("device_id", "severity").iter_rows():
        if dev not in worst or rank[sev] < rank[worst[dev]]:
            worst[dev] = sev
    table = table.with_columns(pl.col("device_id").replace_strict(worst, default="none", return_dtype=pl.String)
                               .alias("alarm (alert rules)"))
    p = f"{failure}.p_fail_7d"
    if p in table.columns:
        table = table.with_columns(
            (100.0 * (1.0 - pl.col(p))).alias("health [0-100]"),
            lead_time_expr(pl.col(p)).alias("expected lead time [d]"),
        ).sort(p, descending=True, nulls_last=True)
    else:
        table = table.sort("load_pu_measured", descending=True)
    keep = [c for c in ("device_id", p, "health [0-100]", "expected lead time [d]", "alarm (alert rules)",
                        f"{overload}.load_class", f"{overload}.p_gt100", *OBSERVED) if c in table.columns]
    return table.select(keep), notes


def column_labels() -> dict[str, str]:
    """The fleet table's columns as people read them (the internal names stay in ``fleet_table``'s frame)."""
    failure, overload = asset_models()
    return {
        "device_id": "asset",
        f"{failure}.p_fail_7d": "failure probability within 7 days [%]",
        f"{overload}.load_class": "load class, next hour",
        f"{overload}.p_gt100": "P(load > 100 % of rating), next hour [%]",
        "load_pu_measured": "load [pu]",
        "top_oil_temp_c": "top-oil temperature [°C]",
        "ambient_temp_c": "ambient temperature [°C]",
        "age_years": "age [years]",
    }


def for_people(ranked: pl.DataFrame) -> pl.DataFrame:
    """The fleet table as shown: probabilities in %, numbers rounded for reading, columns with units."""
    failure, overload = asset_models()
    pct = [c for c in (f"{failure}.p_fail_7d", f"{overload}.p_gt100") if c in ranked.columns]
    shown = ranked.with_columns([(pl.col(c) * 100.0).round(1) for c in pct])
    rounding = {"health [0-100]": 1, "expected lead time [d]": 1, "load_pu_measured": 2, "top_oil_temp_c": 1,
                "ambient_temp_c": 1, "age_years": 0}
    shown = shown.with_columns([pl.col(c).round(n) for c, n in rounding.items() if c in shown.columns])
    labels = column_labels()
    return shown.rename({k: v for k, v in labels.items() if k in shown.columns})


def lead_time_expr(p_fail: pl.Expr) -> pl.Expr:
    """Expected days to failure for a constant hazard giving ``p_fail`` over the 7-day horizon (vectorised:
    no Python callback per row); 0 at p = 1, null at p = 0 or unknown."""
    return (pl.when(p_fail >= 1.0).then(0.0)
            .when(p_fail > 0.0).then(HORIZON_D / -(1.0 - p_fail).log())
            .otherwise(None))


def lead_time_d(p_fail: float | None) -> float | None:
    """Expected days to failure for a constant hazard giving ``p_fail`` over the 7-day horizon."""
    if p_fail is None or not 0.0 < p_fail < 1.0:
        return None if p_fail is None or p_fail <= 0.0 else 0.0
    return HORIZON_D / -math.log(1.0 - p_fail)


def asset_history_figure(obs: pl.DataFrame, device_id: str, fleet: str | None = None):
    """One asset's measured load and temperatures over the observed days (local time at the ``fleet``'s site)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    one = obs.filter(pl.col("device_id") == device_id)
    if one.height == 0:
        raise MissingData(f"asset {device_id}: no observations")
    df = decimate(one).to_pandas()
    df["ts"] = to_local(df["ts"], fleet)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=df["ts"], y=df["load_pu_measured"], name="load [pu]", line=dict(color="#264653")), secondary_y=False)
    fig.add_trace(go.Scatter(x=df["ts"], y=df["top_oil_temp_c"], name="top-oil [°C]", line=dict(color="#e76f51")), secondary_y=True)
    fig.add_trace(go.Scatter(x=df["ts"], y=df["ambient_temp_c"], name="ambient [°C]", line=dict(color="#8ab17d")), secondary_y=True)
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey", secondary_y=False)
    fig.update_layout(height=360, title=f"asset {device_id}: last {HISTORY_D} days", legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text=time_axis(fleet))
    fig.update_yaxes(title_text="load [pu]", secondary_y=False)
    fig.update_yaxes(title_text="temperature [°C]", secondary_y=True)
    return fig


def pq_sources() -> list[str]:
    """Three-phase sources, those the two PQ models were trained on first."""
    return sources((*simulated_sources(SAG), *simulated_sources(PQ_INDEX)))


def pq_days(source: str) -> list[date]:
    return days(source)


def pq_devices(source: str) -> list[str]:
    """The devices of a three-phase source."""
    return (store().scan("three_phase", source=source).select(pl.col("device_id").unique().sort())
            .collect()["device_id"].to_list())


def pq_over_time(source: str, day: date, hours: int = PQ_HOURS[0], device_id: str | None = None
                 ) -> tuple[pl.DataFrame, list[str]]:
    """PQ index and sag probability per reading of ``device_id`` (None: every device of the source) over ``hours``
    from local ``day`` 16:00 at the source's site. The page scores one device at a time: on the full store a
    source holds several devices, and scoring them all on every change took minutes."""
    start = local_start(day, PQ_START_HOUR, source)
    scored = score_range(pq_models(), source, device_id, start, start + timedelta(hours=int(hours)))
    return scored.frame, [f"{m}: {why}" for m, why in scored.missing.items()]


def pq_figure(frame: pl.DataFrame, source: str):
    """PQ index and sag probability over time: one trace per device and output, each sorted by time (a trace
    never steps back)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from . import source_label

    pq_index, sag = pq_models()
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    outputs = ((f"{pq_index}.pq_index_next", "PQ index, next 10 min", False, "solid"),
               (f"{sag}.p_sag_15m", "P(sag within 15 min)", True, "dot"))
    palette = ("#2a9d8f", "#e63946", "#264653", "#e9c46a", "#8ab17d", "#6d597a", "#f4a261", "#457b9d")
    for k, (device, one) in enumerate(sorted(frame.partition_by("device_id", as_dict=True).items())):
        one = decimate(one.sort("ts"), by=None).to_pandas()
        x = to_local(one["ts"], source)
        for col, label, secondary, dash in outputs:
            if col in one:
                fig.add_trace(go.Scatter(x=x, y=one[col], name=f"{device[0]}: {label}", legendgroup=str(device[0]),
                                         line=dict(color=palette[k % len(palette)], dash=dash, width=1.5),
                                         connectgaps=True), secondary_y=secondary)
    if not fig.data:
        raise MissingData("Neither the PQ-index model nor the voltage-sag model has a champion: nothing to show over time.")
    fig.update_layout(height=380, title=f"{source_label(source)}: power quality ahead, per device",
                      legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(title_text=time_axis(source))
    fig.update_yaxes(title_text="PQ index [0-100] (solid)", secondary_y=False)
    fig.update_yaxes(title_text="probability [0-1] (dotted)", range=[0, 1], secondary_y=True)
    return fig


def page(fleet: str | None = None, pq_source: str | None = None, pv_source: str | None = None):
    """The whole dashboard: the asset fleet (``fleet``: a fleet source, None = the first stored), power
    quality over time (``pq_source``: a three-phase source, None = the preferred one) and the solar assets
    (``pv_source``: a PV fleet source, None = the health index's first; :mod:`.solar`)."""
    from . import dashboard, guarded, solar
    from . import page as layout

    info = dashboard("02_predictive_maintenance")
    return layout(info.title, info.summary, guarded(lambda: fleet_view(fleet), "the asset fleet"),
                  guarded(lambda: pq_view(pq_source), "the PQ outlook"),
                  guarded(lambda: solar.view(pv_source), "the solar assets"),
                  model_ids=lambda: (*asset_models(), *pq_models(), *solar.model_ids()))


def fleet_view(fleet_name: str | None = None):
    import ipywidgets as w

    from . import choose, figure, labelled, missing, refresh, replace_options, table_html

    names = fleets()
    fleet = w.Dropdown(options=labelled(names), value=choose(names, fleet_name, "fleet"), description="fleet")
    asset = w.Dropdown(description="asset")
    table, notes, history = w.HTML(), w.VBox(), figure()
    shown = {}

    def show_asset(_=None):
        if asset.value is not None:
            refresh(history, asset_history_figure(shown["frame"], asset.value, fleet.value))

    def show_fleet(_=None):
        shown["frame"] = observations(fleet.value)
        ranked, missing_notes = fleet_table(shown["frame"])
        notes.children = [missing(m + " (its columns are left out)") for m in missing_notes]
        table.value = table_html(for_people(ranked), 50)
        replace_options(asset, ranked["device_id"].to_list())
        show_asset()

    fleet.observe(show_fleet, "value")
    asset.observe(show_asset, "value")
    show_fleet()
    return w.VBox([w.HTML("<h3>Asset fleet, riskiest first (failure risk, overload risk)</h3>"), fleet, notes, table,
                   w.HTML("<h3>One asset's history</h3>"), asset, history])


def pq_view(source_name: str | None = None):
    import ipywidgets as w

    from . import attempt, cascade, choose, figure, labelled, missing, refresh, row

    names = pq_sources()
    source = w.Dropdown(options=labelled(names), value=choose(names, source_name, "source"), description="source")
    device = w.Dropdown(options=pq_devices(source.value), description="device")
    day = w.Dropdown(options=pq_days(source.value), description="day (local)")
    hours = w.Dropdown(options=PQ_HOURS, description=f"hours from {PQ_START_HOUR}:00")
    notes, fig = w.VBox(), figure()

    def show(_=None):
        notes.children = []
        got = attempt(notes, lambda: pq_over_time(source.value, day.value, hours.value, device.value), "the PQ outlook")
        if got is None:
            return
        frame, missing_notes = got
        notes.children = [missing(m) for m in missing_notes]
        attempt(notes, lambda: refresh(fig, pq_figure(frame, source.value)), "the PQ outlook")

    cascade(source, {device: pq_devices, day: pq_days}, show, also=(hours,))  # a new source: one redraw, not two
    show()
    return w.VBox([w.HTML("<h3>Power quality over time (PQ index ahead, voltage-sag risk)</h3>"), row(source, device, day),
                   row(hours), notes,
                   fig])
