"""Dashboard 06: every registered model against its baseline ladder, from MLflow, and what serves.

Reuses :func:`gridtwin_lib.notebook.comparison_table` / :func:`comparison_figure` and the
interval views :func:`~gridtwin_lib.notebook.difference_figure` / :func:`~gridtwin_lib.notebook.interval_figure`
(the same views as notebook 20: 95 % block-bootstrap error bars, the champion gate, and whether
the model or its strongest baseline serves) and adds a per-model drill-down: every metric model vs
baseline, the registered versions with the champion decision of each, and the run links.
"""

from __future__ import annotations

from datetime import UTC

import pandas as pd

from .. import tracking
from ..notebook import comparison_figure, comparison_table, difference_figure, interval_figure
from . import MissingData

ALL_MODULES = "all modules"


def board() -> pd.DataFrame:
    """The MLflow leaderboard (one row per registered model); MissingData when nothing is registered."""
    lb = tracking.leaderboard()
    if lb.empty:
        raise MissingData("No registered models in this project's MLflow registry yet: run `make run` "
                          "(or `gridtwin pipeline run smoke` for a small workspace) to train and register them.")
    return lb


def modules(lb: pd.DataFrame) -> list[str]:
    return [ALL_MODULES, *sorted(m for m in lb["module"].dropna().unique())]


def filtered(lb: pd.DataFrame, module: str) -> pd.DataFrame:
    return lb if module == ALL_MODULES else lb[lb["module"] == module]


def summary_text(lb: pd.DataFrame) -> str:
    champions = sum(_version(v) is not None for v in lb["champion_version"])
    serves = lb["serves"] if "serves" in lb else pd.Series(["model"] * len(lb))
    by_baseline = [t for t, sv in zip(lb.get("serving_text", serves), serves, strict=True) if sv and sv != "model"]
    return (f"{len(lb)} registered models, {champions} with a champion (the interval of the difference to the strongest "
            f"baseline excludes zero in the model's favour); {len(lb) - len(by_baseline)} served by the model"
            + (f", {len(by_baseline)} by a baseline: " + "; ".join(by_baseline) if by_baseline else "")
            + f". Run links open the MLflow UI ({tracking.ui_url()}, `make mlflow`).")


def served_text(lb: pd.DataFrame) -> str:
    """One line per model saying what serves it (e.g. "m03: persistence serves; the LSTM did not beat it")."""
    col = lb["serving_text"] if "serving_text" in lb else lb["model_id"]
    return "<br>".join(str(t) for t in col)


def intervals() -> pd.DataFrame:
    """The model table with intervals (:func:`gridtwin_lib.tracking.models_report`)."""
    return tracking.models_report()


def model_interval_figure(report: pd.DataFrame, model_id: str):
    """One model's primary metric and its baselines' with 95 % error bars."""
    part = report[report["model_id"] == model_id]
    if part.empty:
        raise MissingData(f"{model_id}: no run with intervals logged yet")
    return interval_figure(part)


def table(lb: pd.DataFrame) -> pd.DataFrame:
    """People's view of the leaderboard with the champion status spelled out and a run link column."""
    t = comparison_table(lb).reset_index()
    t["champion_version"] = [f"v{_version(v)}" if _version(v) else "no champion" for v in t["champion_version"]]
    t["run"] = [u.rsplit("/", 1)[-1][:8] for u in t["run_url"]]
    t["test_range"] = [range_text(r) for r in t["test_range"]]
    by_id = lb.set_index("model_id")
    t["serves"] = [by_id["serves"].get(m) if "serves" in by_id else "model" for m in t["model_id"]]
    t["gate"] = [by_id["gate"].get(m) if "gate" in by_id else None for m in t["model_id"]]
    return t[["model_id", "module", "algorithm", "primary_metric", "model", "baseline score", "skill", "beats_baseline",
              "gate", "champion_version", "serves", "n_versions", "test_range", "run", "run_url"]]


def skill_figure(lb: pd.DataFrame):
    """Skill per model (notebook 20's figure) with a y-axis title short enough to be shown whole."""
    fig = comparison_figure(lb)
    fig.update_layout(title=dict(text="Skill over the named baseline on each model's primary metric (held-out data)<br>"
                                      "<sup>1 − model/baseline for errors; model − baseline for scores; above 0 = "
                                      "better than the baseline</sup>", font=dict(size=14)),
                      yaxis_title="skill [1]", margin=dict(t=90, l=60))
    return fig


def versions(model_id: str) -> pd.DataFrame:
    """Every registered version of a model: metric, baseline, champion decision, run link."""
    c = tracking.client()
    name = f"gridtwin.{model_id}"
    champ = tracking.champion_version(name, c)
    rows = []
    for v in sorted(c.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)):
        tags = v.tags or {}
        run_id = tags.get("gridtwin.run_id") or v.run_id
        run = c.get_run(run_id)
        rows.append({
            "version": f"v{v.version}" + (" (champion)" if champ is not None and champ.version == v.version else ""),
            "metric": _float(tags.get("gridtwin.metric")), "baseline": _float(tags.get("gridtwin.baseline_metric")),
            "beats_baseline": tags.get("gridtwin.beats_baseline") == "true",
            "decision": tags.get("gridtwin.champion_decision", ""),
            "run": run_id[:8], "run_url": tracking.run_url(run.info.experiment_id, run_id),
        })
    return pd.DataFrame(rows)


def champion_note(lb: pd.DataFrame, model_id: str) -> str | None:
    """Why a model has no champion (its latest decision), or None when it has one."""
    row = lb[lb["model_id"] == model_id].iloc[0]
    if _version(row["champion_version"]):
        return None
    vs = versions(model_id)
    reason = vs["decision"].iloc[-1] if len(vs) else "never registered"
    serves = row.get("serving_text") if "serving_text" in row else None
    return (f"{model_id} has no champion: its latest version {reason or 'was not promoted'}. "
            + (f"{serves}: the dashboards show the baseline's outputs in its place." if serves else
               "The dashboards that use it show a note instead of its outputs."))


def metrics_figure(lb: pd.DataFrame, model_id: str):
    """Every shared metric, model against baseline (same held-out rows), for one model: one small panel per
    metric, each on its own scale (a count of events never shares an axis with a 0-1 score)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    row = lb[lb["model_id"] == model_id].iloc[0]
    names = sorted(k for k in row["metrics"] if k in row["baseline_metrics"])
    if not names:
        raise MissingData(f"{model_id}: no metric logged for both the model and its baseline")
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[n.replace("_", " ") for n in names],
                        horizontal_spacing=0.08, vertical_spacing=0.3 / rows)
    for k, name in enumerate(names):
        r, c = divmod(k, cols)
        for label, value, color in (("model", row["metrics"][name], "#264653"),
                                    (f"baseline ({row['baseline']})", row["baseline_metrics"][name], "#e9c46a")):
            fig.add_trace(go.Bar(x=[label.split(" (")[0]], y=[value], name=label, marker_color=color, showlegend=k == 0,
                                 legendgroup=label, text=[f"{value:.3g}"], textposition="auto"), row=r + 1, col=c + 1)
    champion = _version(row["champion_version"])
    shown = f"champion v{champion}" if champion else f"latest v{_version(row['latest_version'])} (no champion)"
    fig.update_layout(height=220 + 200 * rows, title=dict(text=f"{model_id}, {shown}: model vs baseline, each metric "
                                                               "on its own scale", font=dict(size=14)),
                      margin=dict(t=90), legend=dict(orientation="h", y=-0.12))
    return fig


def range_text(raw) -> str:
    """A run's held-out time range (JSON list of two ISO times, as logged) as people read it:
    ``2025-01-07 11:59 – 2025-01-07 23:59 UTC``; anything else is shown as it is."""
    import json
    from datetime import datetime

    try:
        start, end = (datetime.fromisoformat(v).astimezone(UTC) for v in json.loads(raw))
    except (TypeError, ValueError):
        return "–" if raw is None or (isinstance(raw, float) and pd.isna(raw)) else str(raw)
    return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"


def _version(v) -> str | None:
    """A registry version as text ("3"), None when absent (pandas turns a missing one into NaN)."""
    if v is None or pd.isna(v):
        return None
    return str(int(float(v)))


def _float(raw) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _registry_ids() -> list[str]:
    from ..models import registry

    return registry.ids()


def page(model: str | None = None):
    """The whole dashboard: every model's champion against its baseline; ``model`` (None = the first) drilled into."""
    from . import dashboard, guarded
    from . import page as layout

    info = dashboard("06_model_comparison")
    return layout(info.title, info.summary, guarded(lambda: view(model), "the model comparison"),
                  model_ids=_registry_ids)


def view(model_name: str | None = None):
    import ipywidgets as w

    from . import choose, figure, missing, refresh, table_html

    lb = board()
    module = w.Dropdown(options=modules(lb), description="module")
    ids = list(lb["model_id"])
    model = w.Dropdown(options=ids, value=choose(ids, model_name, "model"), description="model")
    report = intervals()
    skill = figure(skill_figure(lb))
    gain = figure(difference_figure(report))
    table_box = w.HTML(table_html(table(lb), links={"run": "run_url"}))
    detail = figure(metrics_figure(lb, model.value))
    bars = figure(model_interval_figure(report, model.value))
    note, history = w.VBox(), w.HTML()

    def show_module(_=None):
        shown = filtered(lb, module.value)
        refresh(skill, skill_figure(shown))
        refresh(gain, difference_figure(report[report["model_id"].isin(shown["model_id"])]))
        table_box.value = table_html(table(shown), links={"run": "run_url"})

    def show_model(_=None):
        refresh(detail, metrics_figure(lb, model.value))
        refresh(bars, model_interval_figure(report, model.value))
        text = champion_note(lb, model.value)
        note.children = [missing(text)] if text else []
        history.value = "<b>Registered versions</b>" + table_html(versions(model.value), links={"run": "run_url"})

    module.observe(show_module, "value")
    model.observe(show_model, "value")
    show_model()
    return w.VBox([w.HTML(summary_text(lb)), w.HTML("<b>What serves</b><br>" + served_text(lb)), module, gain, skill,
                   table_box, w.HTML("<h3>One model</h3>"), model, note, bars, detail, history])
