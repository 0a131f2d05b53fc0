"""Write the Voila dashboard notebooks of this folder (run after changing a layout).

    .venv/bin/python notebooks/dashboards/_generate.py

The notebooks hold layout and widget wiring only; data and figures come from
``gridtwin_lib.dashboards``. They are written without outputs, on the ``gridtwin`` kernel.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from gridtwin_lib.dashboards import DASHBOARDS, KERNEL  # noqa: E402

SETUP = """\
import ipywidgets as w
from gridtwin_lib import dashboards as db
"""

CODE: dict[str, str] = {}

CODE["06_model_comparison"] = """\
from gridtwin_lib.dashboards import comparison as dc

def view():
    lb = dc.board()
    module = w.Dropdown(options=dc.modules(lb), description="module")
    model = w.Dropdown(options=list(lb["model_id"]), description="model")
    skill = db.figure(dc.skill_figure(lb))
    table = w.HTML(db.table_html(dc.table(lb), links={"run": "run_url"}))
    detail = db.figure(dc.metrics_figure(lb, model.value))
    note, history = w.VBox(), w.HTML()

    def show_module(_=None):
        shown = dc.filtered(lb, module.value)
        db.refresh(skill, dc.skill_figure(shown))
        table.value = db.table_html(dc.table(shown), links={"run": "run_url"})

    def show_model(_=None):
        db.refresh(detail, dc.metrics_figure(lb, model.value))
        text = dc.champion_note(lb, model.value)
        note.children = [db.missing(text)] if text else []
        history.value = "<b>Registered versions</b>" + db.table_html(dc.versions(model.value), links={"run": "run_url"})

    module.observe(show_module, "value")
    model.observe(show_model, "value")
    show_model()
    return w.VBox([w.HTML(dc.summary_text(lb)), module, skill, table, w.HTML("<h3>One model</h3>"), model, note,
                   detail, history])

info = db.dashboard("06_model_comparison")
db.page(info.title, info.summary, db.guarded(view, "the model comparison"))
"""

CODE["01_realtime_monitoring"] = """\
from gridtwin_lib.dashboards import monitoring as mon

def view():
    sources = mon.sources()
    source = w.Dropdown(options=sources, description="source")
    device = w.Dropdown(options=mon.devices(sources[0]), description="device")
    day = w.Dropdown(options=mon.days(sources[0]), description="day (UTC)")
    start_hour = w.IntSlider(value=mon.DEFAULT_START_HOUR, min=0, max=23, description="from hour (UTC)")
    hours = w.Dropdown(options=mon.WINDOW_HOURS, value=mon.DEFAULT_HOURS, description="hours")
    speed = w.Dropdown(options=mon.SPEEDS, value=300, description="speed")
    play = w.Play(value=mon.STEPS - 1, min=0, max=mon.STEPS - 1, step=1, description="replay")
    clock = w.IntSlider(value=mon.STEPS - 1, min=0, max=mon.STEPS - 1, description="clock", readout=False)
    w.jslink((play, "value"), (clock, "value"))
    status, notes = w.HTML(), w.VBox()
    replay = mon.Replay(mon.load(source.value, device.value, day.value, start_hour.value, hours.value))
    play.interval = mon.interval_ms(replay.window, speed.value)

    def show(_=None):
        status.value = replay.show(clock.value)

    def reload(_=None):
        notes.children = []
        window = db.attempt(notes, lambda: mon.load(source.value, device.value, day.value, start_hour.value, hours.value),
                            "the replay range")
        if window is not None:
            replay.load(window)
            play.interval = mon.interval_ms(window, speed.value)
            clock.value = mon.STEPS - 1
            status.value = replay.status

    reload_once = db.Quiet(reload)  # several widgets set together reload the replay once

    def pick_source(_=None):
        with reload_once.setting():
            db.replace_options(device, mon.devices(source.value))
            db.replace_options(day, mon.days(source.value))

    follow = w.ToggleButton(value=False, description="follow newest", icon="refresh",
                            tooltip=f"jump to the device's newest readings and look for new ones every {mon.FOLLOW_EVERY_S} s "
                                    "(e.g. the collector's source while devices post)")

    def jump(new_day, new_hour):
        with reload_once.setting():
            db.replace_options(day, mon.days(source.value))
            day.value, start_hour.value = new_day, new_hour

    mon.Follower(follow, lambda: (source.value, device.value, hours.value), jump,
                 lambda fn, what: db.attempt(notes, fn, what))
    source.observe(pick_source, "value")
    for control in (device, day, start_hour, hours):
        control.observe(reload_once, "value")
    speed.observe(lambda _: setattr(play, "interval", mon.interval_ms(replay.window, speed.value)), "value")
    clock.observe(show, "value")
    status.value = replay.status
    return w.VBox([db.row(source, device, day), db.row(start_hour, hours, speed), db.row(play, clock, follow), status, notes,
                   replay.figure])

info = db.dashboard("01_realtime_monitoring")
db.page(info.title, info.summary, db.guarded(view, "the real-time replay"))
"""

CODE["02_predictive_maintenance"] = """\
from gridtwin_lib.dashboards import maintenance as mt

def fleet_view():
    fleet = w.Dropdown(options=mt.fleets(), description="fleet")
    asset = w.Dropdown(description="asset")
    table, notes, history = w.HTML(), w.VBox(), db.figure()
    fleet_obs = {}

    def show_asset(_=None):
        if asset.value is not None:
            db.refresh(history, mt.asset_history_figure(fleet_obs["frame"], asset.value))

    def show_fleet(_=None):
        fleet_obs["frame"] = mt.observations(fleet.value)
        ranked, missing = mt.fleet_table(fleet_obs["frame"])
        notes.children = [db.missing(m + " (its columns are left out)") for m in missing]
        table.value = db.table_html(ranked, 15)
        db.replace_options(asset, ranked["device_id"].to_list())
        show_asset()

    fleet.observe(show_fleet, "value")
    asset.observe(show_asset, "value")
    show_fleet()
    return w.VBox([w.HTML("<h3>Asset fleet, riskiest first (m05, m06)</h3>"), fleet, notes, table,
                   w.HTML("<h3>One asset's history</h3>"), asset, history])

def pq_view():
    sources = mt.pq_sources()
    source = w.Dropdown(options=sources, description="source")
    day = w.Dropdown(options=mt.pq_days(sources[0]), description="day (UTC)")
    hours = w.Dropdown(options=mt.PQ_HOURS, description="hours from 06:00")
    notes, figure = w.VBox(), db.figure()

    def show(_=None):
        notes.children = []
        frame, missing = mt.pq_over_time(source.value, day.value, hours.value)
        notes.children = [db.missing(m) for m in missing]
        db.attempt(notes, lambda: db.refresh(figure, mt.pq_figure(frame, source.value)), "the PQ outlook")

    def pick_source(_=None):
        db.replace_options(day, mt.pq_days(source.value))
        show()

    source.observe(pick_source, "value")
    day.observe(show, "value")
    hours.observe(show, "value")
    show()
    return w.VBox([w.HTML("<h3>Power quality over time (m07, m08)</h3>"), db.row(source, day, hours), notes, figure])

info = db.dashboard("02_predictive_maintenance")
db.page(info.title, info.summary, db.guarded(fleet_view, "the asset fleet"), db.guarded(pq_view, "the PQ outlook"))
"""

CODE["03_energy_flow"] = """\
from gridtwin_lib.dashboards import energy as en

def forecast_view():
    sources = en.meter_sources()
    source = w.Dropdown(options=sources, description="meter")
    day = w.Dropdown(options=en.forecast_days(sources[0]), description="day (local)")
    notes, cost = w.VBox(), w.HTML()
    forecast, plan = db.figure(), db.figure()

    def show(_=None):
        notes.children, cost.value = [], ""
        fc = db.attempt(notes, lambda: en.forecast_vs_actual(source.value, day.value), "the m09 forecast")
        if fc is None:
            return
        db.refresh(forecast, en.forecast_figure(fc, source.value))
        planned = db.attempt(notes, lambda: en.schedule(fc, source.value, day.value), "the m11 schedule")
        if planned is not None:
            db.refresh(plan, en.schedule_figure(planned[0], planned[1]))
            cost.value = planned[2]

    def pick_source(_=None):
        db.replace_options(day, en.forecast_days(source.value))
        show()

    source.observe(pick_source, "value")
    day.observe(show, "value")
    show()
    return w.VBox([w.HTML("<h3>Load forecast (m09) and the day's schedule (m11)</h3>"), db.row(source, day), notes,
                   forecast, cost, plan])

def losses_view():
    day = w.Dropdown(options=en.loss_days(), description="day (UTC)")
    losses = db.figure(en.losses_figure(day.value))
    day.observe(lambda _: db.refresh(losses, en.losses_figure(day.value)), "value")
    return w.VBox([w.HTML("<h3>Network losses (m10)</h3>"), day, losses])

def archetype_view():
    summary, profiles = en.archetypes()
    return w.VBox([w.HTML("<h3>Customer archetypes and demand-response potential (m12)</h3>"),
                   db.figure(en.archetype_figure(summary, profiles)), w.HTML(db.table_html(summary))])

info = db.dashboard("03_energy_flow")
db.page(info.title, info.summary, db.guarded(forecast_view, "the load forecast"), db.guarded(losses_view, "the losses"),
        db.guarded(archetype_view, "the archetypes"))
"""

CODE["04_decision_making"] = """\
from gridtwin_lib.dashboards import decision as de

def stability_view():
    source = w.Dropdown(options=de.sources(), description="source")
    hours = w.Dropdown(options=de.HOURS, description="last hours")
    severity = w.Dropdown(options=de.severity_options(), description="severity")
    notes, counts, table = w.VBox(), w.HTML(), w.HTML()
    gauge, drivers, trend = db.figure(), db.figure(), db.figure()
    shown = {}

    def show_alerts(_=None):
        table.value = db.table_html(de.alerts_shown(shown["alerts"], severity.value), 100)

    def show(_=None):
        notes.children = []
        frame = db.attempt(notes, lambda: de.last_hours(source.value, hours.value), "the readings")
        if frame is None:
            return
        db.attempt(notes, lambda: db.refresh(gauge, de.gauge_figure(frame, source.value)), "the m15 gauge")
        db.attempt(notes, lambda: db.refresh(drivers, de.drivers_figure(frame)), "the m15 drivers")
        db.attempt(notes, lambda: db.refresh(trend, de.stability_trend_figure(frame, source.value)), "the m15 trend")
        shown["alerts"] = de.alert_table(frame)
        counts.value = de.counts_html(shown["alerts"])
        show_alerts()

    source.observe(show, "value")
    hours.observe(show, "value")
    severity.observe(show_alerts, "value")
    show()
    return w.VBox([db.row(source, hours), notes, db.row(gauge, drivers), trend,
                   w.HTML("<h3>Alerts, most severe first</h3>"), counts, severity, table])

def actions_view():
    actions, missing = de.actions()
    return w.VBox([w.HTML("<h3>Recommended actions (m13, m14, m16) and their expected effect</h3>"),
                   *[db.missing(m) for m in missing], w.HTML(db.table_html(actions))])

info = db.dashboard("04_decision_making")
db.page(info.title, info.summary, db.guarded(stability_view, "the stability view"), db.guarded(actions_view, "the actions"))
"""

CODE["05_simulator"] = """\
from gridtwin_lib.dashboards import simulator as sim

scenario = w.Dropdown(options=sim.scenarios(), value=sim.DEFAULT_SCENARIO, description="scenario")
duration = w.Dropdown(options=sim.DURATIONS, value=sim.DEFAULT_DURATION, description="duration")
seed = w.BoundedIntText(value=0, min=0, max=2**31 - 1, description="seed")
run_button = w.Button(description="Run the twin", button_style="primary", icon="play")
params, notes, status, events = w.VBox(), w.VBox(), w.HTML(), w.HTML()
measurements, reaction = db.figure(), db.figure()
param_widgets = {}

def show_params(_=None):
    param_widgets.clear()
    param_widgets.update(sim.parameter_widgets(scenario.value))
    params.children = list(param_widgets.values())

def run(_=None):
    run_button.disabled, notes.children = True, []
    status.value = "<i>running the twin and the champions…</i>"
    overrides = {name: widget.value for name, widget in param_widgets.items()}
    result = db.attempt(notes, lambda: sim.run(scenario.value, duration.value, seed.value, overrides), "the simulation")
    if result is not None:
        status.value = "<b>" + sim.reaction_text(result) + "</b>"
        db.attempt(notes, lambda: db.refresh(measurements, sim.measurements_figure(result)), "the measurements")
        db.attempt(notes, lambda: db.refresh(reaction, sim.reaction_figure(result)), "the champions' reaction")
        events.value = "<b>Ground-truth events</b> (hit / delay: m01 on target events)" + db.table_html(sim.events_table(result), 200)
    else:
        status.value = ""
    run_button.disabled = False

scenario.observe(show_params, "value")
run_button.on_click(run)
show_params()
run()
info = db.dashboard("05_simulator")
db.page(info.title, info.summary,
        db.row(w.VBox([scenario, duration, seed, run_button]), w.VBox([w.HTML("<b>scenario parameters</b>"), params])),
        status, notes, measurements, reaction, events)
"""


def index_markdown() -> str:
    lines = ["# GridTwin dashboards", "",
             "Live views of the project's store and MLflow registry (the workspace set by `GRIDTWIN_WORKSPACE`, "
             "else the main project). Each page loads in a few seconds; a page whose data or champion is missing "
             "says so and how to get it.", ""]
    for d in DASHBOARDS:
        lines.append(f"{d.name[:2]}. [{d.title}](./{d.filename}): {d.summary}.")
    return "\n".join(lines)


INDEX_CODE = """\
w.HTML(f"<small>{db.location_text()}</small>")
"""


def notebook(cells: list) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "GridTwin (.venv)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    written = []
    index = notebook([nbf.v4.new_markdown_cell(index_markdown()), nbf.v4.new_code_cell(SETUP + INDEX_CODE)])
    nbf.write(index, HERE / "index.ipynb")
    written.append("index.ipynb")
    for d in DASHBOARDS:
        if d.name not in CODE:
            continue
        nb = notebook([nbf.v4.new_code_cell(SETUP + CODE[d.name])])
        nbf.write(nb, HERE / d.filename)
        written.append(d.filename)
    print("wrote", ", ".join(written))


if __name__ == "__main__":
    main()
