"""Dashboard 05: run a grid-twin scenario and see how the champions reacted.

The run goes through :func:`gridtwin_lib.simulate.run_scenario` (the same validation as
ingested data) into a throw-away store under the system temp directory, so the project's
store is never touched. The readings then go through the inference engine
(:class:`gridtwin_lib.inference.Engine`, champions of the current registry) and the voltage-anomaly
model's flags are matched to the twin's ground-truth events: an event is *hit* when a reading in
``[start, end + tolerance)`` is flagged (that model's own recall rule, ``models.monitoring``),
its *delay* is the first such flag minus the event start [s]. Models are found in the registry
by catalogue name (:func:`gridtwin_lib.dashboards.model_id`); the page names none by id.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import polars as pl

from ..models.monitoring.voltage_anomaly import TARGET_EVENT_TYPES
from ..simulate import DEFAULT_START, SCENARIOS
from ..simulate.grid import BASE_PARAMS
from ..store import Store
from . import MissingData, engine, model_id, per_device, time_axis, to_local

DEFAULT_SCENARIO = "mixed"
DURATIONS = ("1h", "3h", "6h", "12h")
DEFAULT_DURATION = "3h"
#: runs start at 16:00 local time of the default site (UTC+10): the evening peak, when events happen
START_UTC = DEFAULT_START + timedelta(hours=6)
TOLERANCE_S = 60.0  # [s] a flag up to this long after an event's end still counts (the anomaly model's smoke setting)
ANOMALY, STABILITY = "voltage_anomaly", "grid_stability"  # catalogue names of the two models whose reaction is shown
_FALLBACK_PARAMS = ("load_scale", "motor_starts_per_h", "sags_per_h", "faults_per_h")
_MAX_PARAMS = 6
_MAX_SHADED_EVENTS = 60  # event bands drawn on the traces (the table lists all)


def reacting_models() -> tuple[str, str]:
    """Ids of the voltage-anomaly and the grid-stability models (from the registry)."""
    return model_id(ANOMALY), model_id(STABILITY)


def anomaly_col(output: str) -> str:
    return f"{model_id(ANOMALY)}.{output}"


def scenarios() -> list[str]:
    """The grid-twin scenarios (three-phase measurement points, what the voltage-anomaly model watches)."""
    return sorted(name for name, s in SCENARIOS.items() if s.twin == "grid")


def parameters(scenario: str) -> dict[str, Any]:
    """The parameters that make the scenario what it is (those differing from the base feeder), else a few
    common ones: name -> :class:`~gridtwin_lib.simulate.Param` with the scenario's default."""
    params = SCENARIOS[scenario].params
    own = [k for k, p in params.items() if k not in BASE_PARAMS or p.default != BASE_PARAMS[k].default]
    names = (own or list(_FALLBACK_PARAMS))[:_MAX_PARAMS]
    return {k: params[k] for k in names}


def parameter_widgets(scenario: str) -> dict[str, Any]:
    """One widget per parameter, bounded by the parameter's physical range, labelled with its unit."""
    import ipywidgets as w

    out = {}
    for name, p in parameters(scenario).items():
        label = f"{name} [{p.unit}]" if p.unit and p.unit != "1" else name
        style = {"description_width": "190px"}
        if p.choices is not None:
            out[name] = w.Dropdown(options=list(p.choices), value=p.default, description=label, style=style)
        elif isinstance(p.default, bool):
            out[name] = w.Checkbox(value=p.default, description=label, style=style)
        elif isinstance(p.default, int | float):
            lo = p.min if p.min is not None else -1e9
            hi = p.max if p.max is not None else 1e9
            cls = w.BoundedIntText if isinstance(p.default, int) else w.BoundedFloatText
            out[name] = cls(value=p.default, min=lo, max=hi, description=label, tooltip=p.description, style=style)
        else:
            out[name] = w.Text(value=str(p.default), description=label, style=style)
    return out


@dataclass
class SimRun:
    """One simulated run: readings, truth events, and (when the engine ran) the champions' reaction."""

    scenario: str
    params: dict[str, Any]
    readings: pl.DataFrame
    events: pl.DataFrame
    sim_seconds: float
    scores: pl.DataFrame | None = None
    matched: pl.DataFrame | None = None
    score_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def run(scenario: str = DEFAULT_SCENARIO, duration: str = DEFAULT_DURATION, seed: int = 0,
        overrides: dict[str, Any] | None = None, react: bool = True) -> SimRun:
    """Simulate ``scenario`` at 1 s into a temporary store, read it back, and score it with the champions."""
    from ..simulate import run_scenario

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gridtwin-sim-") as tmp:
        st = Store(tmp)
        summary = run_scenario(scenario, duration, "1s", seed, 1, overrides or {}, START_UTC, store=st, progress=False)
        readings = st.scan("three_phase").collect()
        events = st.scan_truth("events").collect() if "events" in st.truth_tables() else pl.DataFrame()
    result = SimRun(scenario, summary.params, readings, _events(events), time.perf_counter() - t0)
    if summary.rejected.get("three_phase"):
        result.notes.append(f"{summary.rejected['three_phase']:,} readings rejected by validation (hard limits)")
    if react:
        _react(result)
    return result


def _events(events: pl.DataFrame) -> pl.DataFrame:
    cols = ["ts", "end", "device_id", "type", "cause", "severity", "phase", "magnitude", "unit"]
    if events.height == 0:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "type": pl.String})
    # "event" numbers each event: events on several phases at one instant stay distinct rows
    return events.select([c for c in cols if c in events.columns]).sort("ts").with_row_index("event")


def _react(result: SimRun) -> None:
    models = reacting_models()
    eng = engine(models)
    if models[0] not in eng.estimators:
        result.notes.append(f"{models[0]}: {eng.missing.get(models[0])}")
        return
    t0 = time.perf_counter()
    eng.reset()
    batch = eng.score(result.readings)
    result.score_seconds = time.perf_counter() - t0
    result.scores = batch.frame
    result.matched = match_events(result.events, batch.frame, TOLERANCE_S)
    for m in models:
        if m in eng.missing:
            result.notes.append(f"{m}: {eng.missing[m]}")


def match_events(events: pl.DataFrame, scores: pl.DataFrame, tolerance_s: float = TOLERANCE_S) -> pl.DataFrame:
    """The anomaly model's reaction to each target event: hit when a reading in [start, end + tolerance) is
    flagged; delay [s] from the event start to that first flag."""
    flag_col = anomaly_col("is_anomaly")
    targets = events.filter(pl.col("type").is_in(TARGET_EVENT_TYPES)) if events.height else events
    if targets.height == 0 or flag_col not in scores.columns:
        return targets.with_columns(pl.lit(False).alias("hit"), pl.lit(None, pl.Float64).alias("delay_s"))
    flags = scores.filter(pl.col(flag_col).fill_null(False)).select("ts").sort("ts")
    rows = []
    tol = pl.duration(microseconds=int(tolerance_s * 1e6))
    bounds = targets.with_columns((pl.col("end") + tol).alias("_until"))
    for ev in bounds.iter_rows(named=True):
        first = flags.filter((pl.col("ts") >= ev["ts"]) & (pl.col("ts") < ev["_until"]))["ts"]
        rows.append((first.len() > 0, (first[0] - ev["ts"]).total_seconds() if first.len() else None))
    return targets.with_columns(pl.Series("hit", [r[0] for r in rows], pl.Boolean),
                                pl.Series("delay_s", [r[1] for r in rows], pl.Float64))


def reaction_text(result: SimRun) -> str:
    """One line: hits, misses, median delay, flagged readings outside any event."""
    head = (f"{result.scenario}: {result.readings.height:,} readings and {result.events.height} truth events, "
            f"simulated in {result.sim_seconds:.1f} s")
    if result.matched is None:
        return head + ". " + " ".join(result.notes)
    m = result.matched
    hits = int(m["hit"].sum()) if m.height else 0
    delay = m.filter(pl.col("hit"))["delay_s"].median() if hits else None
    flagged = int(result.scores[anomaly_col("is_anomaly")].fill_null(False).sum())
    text = (f"{head}; champions scored it in {result.score_seconds:.1f} s. Voltage-anomaly model: {hits} of {m.height} "
            f"target events hit, "
            f"{m.height - hits} missed" + (f", median delay {delay:.0f} s" if delay is not None else "")
            + f"; {flagged:,} readings flagged.")
    return text + (" " + " ".join(result.notes) if result.notes else "")


def measurements_figure(result: SimRun):
    """Phase voltages and frequency with the truth events shaded (target events red, others grey)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if result.readings.height == 0:
        raise MissingData(f"{result.scenario}: the run produced no three-phase readings")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06)
    several = result.readings["device_id"].n_unique() > 1
    for device, rows in per_device(result.readings):
        df, tag = rows.to_pandas(), f" {device}" if several else ""
        for p, colour in zip("abc", ("#e76f51", "#2a9d8f", "#264653"), strict=True):
            fig.add_trace(go.Scatter(x=_local(df["ts"]), y=df[f"v_{p}"], name=f"V{p}{tag} [V]", line=dict(color=colour, width=1)),
                          1, 1)
        fig.add_trace(go.Scatter(x=_local(df["ts"]), y=df["frequency"], name=f"f{tag} [Hz]", line=dict(color="#6d597a", width=1)),
                      2, 1)
    _shade_events(fig, result.events)
    fig.update_layout(title=f"{result.scenario}: measurements and ground-truth events", height=460,
                      legend=dict(orientation="h", y=-0.12))
    fig.update_yaxes(title_text="voltage [V]", row=1, col=1)
    fig.update_yaxes(title_text="frequency [Hz]", row=2, col=1)
    fig.update_xaxes(title_text=time_axis(None), row=2, col=1)
    return fig


def reaction_figure(result: SimRun):
    """The anomaly score (flags marked) and the stability score against the target events."""
    import plotly.graph_objects as go

    if result.scores is None:
        raise MissingData("No champion reaction to show: " + (" ".join(result.notes) or "the engine did not run"))
    score, flag = anomaly_col("anomaly_score"), anomaly_col("is_anomaly")
    stability = f"{model_id(STABILITY)}.stability_score"
    scores = result.scores.select("ts", "device_id", *[c for c in result.scores.columns if "." in c])
    several = scores["device_id"].n_unique() > 1
    fig = go.Figure()
    for device, rows in per_device(scores):
        df, tag = rows.to_pandas(), f" {device}" if several else ""
        if score in df:
            fig.add_trace(go.Scatter(x=_local(df["ts"]), y=df[score], name=f"voltage anomaly score{tag}",
                                     line=dict(color="#264653", width=1)))
            flagged = scores.filter(pl.col(flag).fill_null(False)
                                    & (pl.col("device_id") == device)).sort("ts").to_pandas()  # every flag, not thinned
            fig.add_trace(go.Scatter(x=_local(flagged["ts"]), y=flagged[score], mode="markers",
                                     name=f"anomaly flag{tag}", marker=dict(color="#e76f51", size=5)))
        if stability in df:
            fig.add_trace(go.Scatter(x=_local(df["ts"]), y=df[stability] / 100.0,
                                     name=f"stability / 100{tag}", line=dict(color="#2a9d8f", width=1, dash="dot")))
    if result.matched is not None and result.matched.height:
        m = result.matched.to_pandas()
        fig.add_trace(go.Scatter(x=_local(m["ts"]), y=[0.0] * len(m), mode="markers", name="target event (hit ● / miss ✕)",
                                 marker=dict(symbol=["circle" if h else "x" for h in m["hit"]], size=10,
                                             color=["#2a9d8f" if h else "#e63946" for h in m["hit"]]),
                                 text=[f"{t}: {'hit' if h else 'missed'}" + (f", delay {d:.0f} s" if h and d == d else "")
                                       for t, h, d in zip(m["type"], m["hit"], m["delay_s"], strict=True)]))
    fig.update_layout(title="How the champions reacted", height=360, xaxis_title=time_axis(None), yaxis_title="score [1]",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def _local(values):
    """Times of a run as local times of the default site, where the simulator's runs stand (:data:`START_UTC`)."""
    return to_local(values, None)


def events_table(result: SimRun) -> pl.DataFrame:
    """Every truth event; target events with the anomaly model's hit and delay."""
    ev = result.events
    if ev.height == 0:
        return ev
    if result.matched is not None and result.matched.height:
        key = "event" if "event" in ev.columns and "event" in result.matched.columns else None
        on = [key] if key else [c for c in ("ts", "type", "device_id", "phase") if c in ev.columns and c in result.matched.columns]
        ev = ev.join(result.matched.select(*on, "hit", "delay_s"), on=on, how="left")
    keep = [c for c in ("ts", "end", "type", "cause", "phase", "magnitude", "unit", "hit", "delay_s") if c in ev.columns]
    return ev.select(keep)


def _shade_events(fig, events: pl.DataFrame) -> None:
    for ev in events.head(_MAX_SHADED_EVENTS).iter_rows(named=True):
        target = ev["type"] in TARGET_EVENT_TYPES
        end = max(ev["end"], ev["ts"] + timedelta(seconds=1))  # instant events get a visible band
        x0, x1 = _local([ev["ts"], end])
        fig.add_vrect(x0=x0, x1=x1, fillcolor="#e63946" if target else "#adb5bd", opacity=0.18, line_width=0,
                      row="all", col=1)


EVENT_ROWS = 200  # events listed in the table (the heading says when there are more)


def page(scenario: str = DEFAULT_SCENARIO, duration: str = DEFAULT_DURATION, seed: int = 0):
    """The whole dashboard, run once with ``scenario`` / ``duration`` / ``seed`` on load."""
    import ipywidgets as w

    from . import attempt, choose, dashboard, figure, refresh, row, table_html, timezone_of
    from . import page as layout

    scenario_w = w.Dropdown(options=scenarios(), value=choose(scenarios(), scenario, "scenario"), description="scenario")
    duration_w = w.Dropdown(options=DURATIONS, value=choose(DURATIONS, duration, "duration"), description="duration")
    seed_w = w.BoundedIntText(value=int(seed), min=0, max=2**31 - 1, description="seed")
    run_button = w.Button(description="Run the twin", button_style="primary", icon="play")
    params, notes, status, events = w.VBox(), w.VBox(), w.HTML(), w.HTML()
    measurements, reaction = figure(), figure()
    param_widgets = {}

    def show_params(_=None):
        param_widgets.clear()
        param_widgets.update(parameter_widgets(scenario_w.value))
        params.children = list(param_widgets.values())

    def start(_=None):
        run_button.disabled, notes.children = True, []
        status.value = "<i>running the twin and the champions…</i>"
        overrides = {name: widget.value for name, widget in param_widgets.items()}
        result = attempt(notes, lambda: run(scenario_w.value, duration_w.value, seed_w.value, overrides), "the simulation")
        if result is not None:
            status.value = "<b>" + reaction_text(result) + "</b>"
            attempt(notes, lambda: refresh(measurements, measurements_figure(result)), "the measurements")
            attempt(notes, lambda: refresh(reaction, reaction_figure(result)), "the champions' reaction")
            shown = events_table(result)
            more = (f", the first {EVENT_ROWS} of {shown.height} shown" if shown.height > EVENT_ROWS
                    else f", all {shown.height} shown")
            events.value = (f"<b>Ground-truth events</b> (hit / delay: the voltage-anomaly model on target events{more})"
                            + table_html(shown, EVENT_ROWS, zone=timezone_of(None)))
        else:
            status.value = ""
        run_button.disabled = False

    scenario_w.observe(show_params, "value")
    run_button.on_click(start)
    show_params()
    start()
    info = dashboard("05_simulator")
    return layout(info.title, info.summary,
                  row(w.VBox([scenario_w, duration_w, seed_w, run_button]),
                      w.VBox([w.HTML("<b>scenario parameters</b>"), params])),
                  status, notes, measurements, reaction, events, model_ids=reacting_models)
