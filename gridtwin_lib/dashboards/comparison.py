"""Dashboard 06: every registered model's champion against its baseline, from MLflow.

Reuses :func:`gridtwin_lib.notebook.comparison_table` / :func:`comparison_figure` (the
same view as notebook 20) and adds a per-model drill-down: every metric model vs
baseline, the registered versions with the champion decision of each, and the run links.
"""

from __future__ import annotations

import pandas as pd

from .. import tracking
from ..notebook import comparison_figure, comparison_table
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
    beats = int(lb["beats_baseline"].sum())
    return (f"{len(lb)} registered models, {champions} with a champion; {beats} of the shown versions beat their "
            f"named baseline on held-out data. Run links open the MLflow UI ({tracking.ui_url()}, `make mlflow`).")


def table(lb: pd.DataFrame) -> pd.DataFrame:
    """People's view of the leaderboard with the champion status spelled out and a run link column."""
    t = comparison_table(lb).reset_index()
    t["champion_version"] = [f"v{_version(v)}" if _version(v) else "no champion" for v in t["champion_version"]]
    t["run"] = [u.rsplit("/", 1)[-1][:8] for u in t["run_url"]]
    return t[["model_id", "module", "algorithm", "primary_metric", "model", "baseline score", "skill", "beats_baseline",
              "champion_version", "n_versions", "test_range", "run", "run_url"]]


def skill_figure(lb: pd.DataFrame):
    return comparison_figure(lb)


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
    return (f"{model_id} has no champion: its latest version {reason or 'was not promoted'}. The dashboards that "
            "use it show a note instead of its outputs until a version beats its baseline.")


def metrics_figure(lb: pd.DataFrame, model_id: str):
    """Every shared metric, model against baseline (same held-out rows), for one model."""
    import plotly.graph_objects as go

    row = lb[lb["model_id"] == model_id].iloc[0]
    names = sorted(k for k in row["metrics"] if k in row["baseline_metrics"])
    fig = go.Figure([
        go.Bar(name="model", x=names, y=[row["metrics"][k] for k in names], marker_color="#264653"),
        go.Bar(name=f"baseline ({row['baseline']})", x=names, y=[row["baseline_metrics"][k] for k in names],
               marker_color="#e9c46a"),
    ])
    champion = _version(row["champion_version"])
    shown = f"champion v{champion}" if champion else f"latest v{_version(row['latest_version'])} (no champion)"
    fig.update_layout(barmode="group", height=380, title=f"{model_id}, {shown}: every metric, model vs baseline",
                      legend=dict(orientation="h", y=-0.25))
    return fig


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
