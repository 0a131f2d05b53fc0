"""Small helpers that keep the notebooks thin: set-up, train-judge-log, show.

A model notebook trains the registry's models of one catalogue module
(:mod:`gridtwin_lib.models.registry`) with their configured parameters for the pipeline's size
(``conf/base/models/<module>/<model>.yaml``) and the pipeline's overrides::

    results = nb.train_module("monitoring", store, size=size, seed=seed, overrides=overrides)

and one model by hand is three lines::

    ds = voltage_anomaly(store, test_days=2)
    result = nb.train(VoltageAnomaly(random_state=seed), ds, seed=seed)
    nb.show(result)
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .models.base import Baseline, Dataset, Evaluation, GridModel, fit_and_evaluate


@dataclass
class TrainResult:
    model: GridModel
    baseline: Baseline
    dataset: Dataset
    evaluation: Evaluation
    run: Any  # tracking.RunRecord

    def summary(self) -> dict[str, Any]:
        ev = self.evaluation
        return {
            "model_id": ev.spec.model_id, "algorithm": ev.spec.algorithm, "baseline": ev.spec.baseline,
            "primary_metric": ev.spec.primary_metric, "model": ev.primary, "baseline_value": ev.baseline_primary,
            "skill": ev.skill, "beats_baseline": ev.beats_baseline, "strongest_baseline": ev.strongest,
            "gate": ev.gate()[1], "n_train": self.dataset.n_train,
            "n_test": ev.n_test, "test": self.dataset.split.get("test"), "run_id": self.run.run_id if self.run else None,
        }


def setup() -> None:
    """Plotly figures that survive nbconvert (HTML reports) and JupyterLab; quiet libraries."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"
    pio.templates.default = "plotly_white"
    pd.set_option("display.precision", 4)
    pd.set_option("display.max_columns", 40)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("cmdstanpy", "prophet", "mlflow", "absl", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def train(model: GridModel, dataset: Dataset, *, seed: int | None = None, log: bool = True,
          register: bool | None = None, params: dict[str, Any] | None = None,
          extra_metrics: dict[str, float] | None = None) -> TrainResult:
    """Fit the model and its baseline ladder on the training range, judge all on the test range
    (with paired block-bootstrap intervals, seeded by ``seed``), log to MLflow.

    ``register=False`` logs the run without registering it (e.g. a secondary dataset).
    """
    model, baseline, ev = fit_and_evaluate(model, dataset, seed=0 if seed is None else int(seed))
    run = None
    if log:
        from . import tracking

        run = tracking.log_model_run(model, dataset, ev, seed=seed, params=params, extra_metrics=extra_metrics,
                                     register=register)
    return TrainResult(model, baseline, dataset, ev, run)


def estimator(cls: type, seed: int | None, params: dict[str, Any]):
    """``cls(**params)``, seeded with ``random_state=seed`` when the class takes one."""
    import inspect

    if seed is not None and "random_state" in inspect.signature(cls).parameters:
        return cls(random_state=seed, **params)
    return cls(**params)


def train_model(model_id: str, store, *, size: str = "full", seed: int | None = None,
                overrides: dict[str, Any] | None = None, log: bool = True) -> list[TrainResult]:
    """Build the registry model's dataset, train and judge it (and its variants, not registered).

    Parameters
    ----------
    model_id : a registry id.
    store : the :class:`~gridtwin_lib.store.Store` the dataset builders read.
    size : pipeline size (``full``, ``smoke``): which of the model's configured parameter sets.
    seed : seeds the estimator (``random_state``) and is logged with the run.
    overrides : parameters replacing the configured ones (``ModelEntry.parameters(size)``); each goes to
        the dataset builder or the estimator, whichever accepts it (a name neither accepts is an error).
    log : log the runs to MLflow.

    Returns
    -------
    The main dataset's :class:`TrainResult`, then one per variant.
    """
    from .models import registry

    entry = registry.get(model_id)
    params = {**entry.parameters(size), **(overrides or {})}
    cls, builder = entry.estimator_class(), entry.dataset_builder()
    prefixes = tuple(v.prefix for v in entry.variants) + ((entry.dataset_prefix,) if entry.dataset_prefix else ())
    rest = {k: v for k, v in params.items() if not k.startswith(prefixes)} if prefixes else params
    if entry.dataset_prefix:
        build_kw = parameters(params, entry.dataset_prefix)
        (model_kw,) = route(rest, cls, prefix=f"{model_id}: ")
    else:
        build_kw, model_kw = route(rest, builder, cls, prefix=f"{model_id}: ")
    results = [train(estimator(cls, seed, model_kw), builder(store, **build_kw), seed=seed, log=log)]
    for variant in entry.variants:
        data = registry.load(variant.dataset)(store, **parameters(params, variant.prefix))
        results.append(train(estimator(cls, seed, model_kw), data, seed=seed, log=log, register=False))
    return results


def train_module(module: str, store, *, size: str = "full", seed: int | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None, only: list[str] | tuple[str, ...] = (),
                 display: bool = True, log: bool = True) -> dict[str, TrainResult]:
    """Train, judge and show every registry model of a catalogue ``module``, in registry order.

    Parameters
    ----------
    module : catalogue module (monitoring, maintenance, energy, decision).
    store, size, seed, log : as :func:`train_model`.
    overrides : model id -> its parameter overrides; ids of other modules are ignored, unknown ids are an error.
    only : if given, the ids to train (the others of the module are skipped).
    display : show each result (:func:`show`) as it is trained.

    Returns
    -------
    model id -> the :class:`TrainResult` of its main dataset.
    """
    from .errors import InputError
    from .models import registry

    registry.check_configuration()
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(registry.ids())) + sorted(set(only) - set(registry.ids()))
    if unknown:
        raise InputError(f"unknown model id(s) {', '.join(unknown)} in the overrides or 'only'; known: {', '.join(registry.ids())}")
    results = {}
    for model_id in registry.ids(module):
        if only and model_id not in only:
            continue
        trained = train_model(model_id, store, size=size, seed=seed, overrides=overrides.get(model_id), log=log)
        results[model_id] = trained[0]
        if display:
            for r in trained:
                show(r)
    return results


def parameters(scope: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The notebook's parameters named ``<prefix>...``, prefix stripped (``uci_split`` → ``split``).

    ``scope`` is the notebook's ``globals()`` (or a dict from an earlier call, to split further).
    """
    return {k[len(prefix):]: v for k, v in scope.items() if k.startswith(prefix) and not k.startswith("_")}


def route(params: dict[str, Any], *targets, prefix: str = "") -> list[dict[str, Any]]:
    """Split parameters among callables (dataset builder, model class) by their signatures.

    A parameter no target accepts is an error: a misspelt name in a pipeline file must not
    be silently ignored.
    """
    import inspect

    routed: list[dict[str, Any]] = []
    used: set[str] = set()
    for target in targets:
        accepted = set(inspect.signature(target).parameters)
        routed.append({k: v for k, v in params.items() if k in accepted})
        used |= accepted & set(params)
    unused = sorted(set(params) - used)
    if unused:
        from .errors import InputError

        names = ", ".join(getattr(t, "__name__", str(t)) for t in targets)
        raise InputError(f"parameter(s) {', '.join(prefix + u for u in unused)} are not accepted by {names}; "
                         "check the spelling in the model's configuration (conf/), the pipeline file or the notebook's parameters")
    return routed


def show(result: TrainResult) -> None:
    """The gate's decision with intervals, the metrics table (model and every baseline on the same
    rows) and the evaluation figures."""
    from IPython.display import Markdown, display

    ev = result.evaluation
    split = result.dataset.split
    passed, reason = ev.gate()
    unc = ev.uncertainty
    ci = ""
    if unc is not None:
        ci = (f" Model {unc.model.text()}, strongest baseline **{ev.strongest}** {unc.baselines[ev.strongest].text()} "
              f"({unc.level:.0%} intervals, {unc.n_replicates} replicates of {unc.n_blocks} {unc.block_kind} blocks, "
              f"{unc.method}).")
    display(Markdown(
        f"**{ev.spec.model_id}** ({ev.spec.algorithm}) on `{ev.spec.primary_metric}`: gate "
        f"{'**passed**' if passed else '**refused**'}: {reason}.{ci} "
        f"{result.dataset.n_train:,} training and {ev.n_test:,} test rows; "
        f"train {_range(split.get('train'))}, test {_range(split.get('test'))}."
        + (f" MLflow run `{result.run.run_id}`." if result.run else "")))
    display(ev.table())
    for fig in ev.figures.values():
        fig.show()


def registry_table(module: str | None = None) -> pd.DataFrame:
    """The registry's models (of one catalogue ``module``) as the catalogue describes them: id,
    algorithm, what it predicts, its baseline and primary metric (from each estimator's ``spec``)."""
    from .models import registry

    rows = []
    for entry in registry.entries(module):
        spec = entry.estimator_class().spec
        rows.append({"model_id": entry.id, "module": entry.module, "algorithm": spec.algorithm, "predicts": spec.target,
                     "baseline": spec.baseline, "primary_metric": spec.primary_metric,
                     "served": "per reading" if entry.role is None and entry.serving else entry.role or "-"})
    return pd.DataFrame(rows).set_index("model_id")


def summary_table(results: list[TrainResult]) -> pd.DataFrame:
    return pd.DataFrame([r.summary() for r in results]).set_index("model_id")


def _range(r: Any) -> str:
    if isinstance(r, list | tuple) and len(r) == 2:
        return f"{r[0]} → {r[1]}"
    return str(r)


def comparison_table(leaderboard: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard as people read it: one row per model, primary metric model vs baseline."""
    if leaderboard.empty:
        return leaderboard
    cols = ["module", "algorithm", "primary_metric", "model", "baseline_value", "skill", "beats_baseline",
            "baseline", "champion_version", "n_versions", "test_range", "run_url"]
    return leaderboard.set_index("model_id")[cols].rename(columns={"baseline_value": "baseline score",
                                                                   "baseline": "baseline (named)"})


def comparison_figure(leaderboard: pd.DataFrame):
    """Skill on the primary metric per model (positive = better than its baseline)."""
    import plotly.graph_objects as go

    lb = leaderboard.sort_values("model_id")
    colours = ["#2a9d8f" if b else "#e76f51" for b in lb["beats_baseline"]]
    fig = go.Figure(go.Bar(
        x=lb["model_id"], y=lb["skill"], marker_color=colours,
        text=[f"{m:.3g} vs {b:.3g}" for m, b in zip(lb["model"], lb["baseline_value"], strict=True)],
        hovertext=[f"{p}: model {m:.4g}, baseline {b:.4g}" for p, m, b in
                   zip(lb["primary_metric"], lb["model"], lb["baseline_value"], strict=True)]))
    fig.update_layout(title="Skill over the named baseline on each model's primary metric (held-out data)",
                      yaxis_title="skill (1 − model/baseline for errors; model − baseline for scores)",
                      xaxis_title="model", height=450)
    fig.add_hline(y=0, line_color="grey")
    return fig


def interval_table(report: pd.DataFrame) -> pd.DataFrame:
    """:func:`gridtwin_lib.tracking.models_report` as people read it: one row per model, values with
    their 95 % intervals as text, the gate's decision and what serves."""
    if report.empty:
        return report

    def ci(v, lo, hi):
        import math

        if v is None or not math.isfinite(v):
            return "–"
        return f"{v:.4g} [{lo:.4g}, {hi:.4g}]" if math.isfinite(lo) and math.isfinite(hi) else f"{v:.4g}"

    return pd.DataFrame({
        "model_id": report["model_id"], "primary metric": report["primary_metric"],
        "model [95 % CI]": [ci(r.model, r.model_low, r.model_high) for r in report.itertuples()],
        "baselines [95 % CI]": ["; ".join(f"{b['name']}: {ci(b['value'], b['low'], b['high'])}" for b in r.ladder)
                                for r in report.itertuples()],
        "strongest baseline": report["strongest_baseline"],
        "model − strongest [95 % CI]": [ci(r.diff, r.diff_low, r.diff_high) for r in report.itertuples()],
        "test rows": report["n_test"], "blocks": [f"{int(n)} {k}" if n == n else "–" for n, k in
                                                  zip(report["n_blocks"], report["block_kind"], strict=True)],
        "gate": report["gate"], "serves": report["serving_text"],
    }).set_index("model_id")


def interval_figure(report: pd.DataFrame):
    """The primary metric of each model and of every baseline with 95 % bootstrap error bars, one
    panel per model (each metric on its own scale); the title of a panel says what serves."""
    import math

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows_ = report.reset_index(drop=True)
    n = len(rows_)
    cols = 2 if n > 1 else 1
    rows = max(1, math.ceil(n / cols))
    titles = [f"{r.model_id.split('_')[0]} {r.primary_metric} ({'model' if r.serves == 'model' else (r.serves or '–')} serves)"
              for r in rows_.itertuples()]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, vertical_spacing=0.25 / rows if rows > 1 else 0.1)
    for i, r in enumerate(rows_.itertuples()):
        names = ["model", *(b["name"] for b in r.ladder)]
        vals = [r.model, *(b["value"] for b in r.ladder)]
        lows = [r.model_low, *(b["low"] for b in r.ladder)]
        highs = [r.model_high, *(b["high"] for b in r.ladder)]
        colours = ["#264653" if k == 0 else ("#e76f51" if nm == r.strongest_baseline else "#e9c46a")
                   for k, nm in enumerate(names)]
        fig.add_trace(go.Scatter(
            x=names, y=vals, mode="markers", marker=dict(size=10, color=colours), showlegend=False,
            error_y=dict(type="data", symmetric=False, array=[h - v for h, v in zip(highs, vals, strict=True)],
                         arrayminus=[v - lo for v, lo in zip(vals, lows, strict=True)]),
            hovertext=[f"{nm}: {v:.4g} [{lo:.4g}, {h:.4g}]" for nm, v, lo, h in zip(names, vals, lows, highs, strict=True)]),
            row=i // cols + 1, col=i % cols + 1)
    fig.update_layout(height=300 * rows + 80, title="Primary metric of model and baselines with 95 % block-bootstrap "
                                                    "intervals (strongest baseline in red; same held-out rows)")
    return fig


def difference_figure(report: pd.DataFrame):
    """Model − strongest baseline on the primary metric, relative to the baseline's value, with its
    95 % interval; green when the gate passed (the interval excludes zero in the model's favour)."""
    import plotly.graph_objects as go

    r = report.reset_index(drop=True)
    scale = r["ladder"].combine(r["strongest_baseline"], lambda lad, s: next((abs(b["value"]) for b in lad if b["name"] == s), float("nan")))
    scale = scale.where(scale > 0)
    sign = r["greater_is_better"].map(lambda g: 1.0 if g else -1.0)  # up = better for the model, for every metric
    val, lo, hi = sign * r["diff"] / scale, sign * r["diff_low"] / scale, sign * r["diff_high"] / scale
    low, high = pd.concat([lo, hi], axis=1).min(axis=1), pd.concat([lo, hi], axis=1).max(axis=1)
    colours = ["#2a9d8f" if g == "passed" else "#e76f51" for g in r["gate"]]
    fig = go.Figure(go.Scatter(
        x=r["model_id"], y=val, mode="markers", marker=dict(size=11, color=colours),
        error_y=dict(type="data", symmetric=False, array=high - val, arrayminus=val - low),
        hovertext=[f"{t}; vs {s}" for t, s in zip(r["serving_text"], r["strongest_baseline"], strict=True)]))
    fig.add_hline(y=0, line_color="grey")
    fig.update_layout(title="Gain over the strongest baseline, relative to its value, with 95 % interval "
                            "(above 0 = the model is better; green = gate passed, the model serves)",
                      yaxis_title="relative gain [1]", xaxis_title="model", height=450)
    return fig


def metric_pairs_figure(leaderboard: pd.DataFrame):
    """Model and baseline side by side on every shared metric, one panel per model."""
    import math

    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    lb = leaderboard.sort_values("model_id").reset_index(drop=True)
    n = len(lb)
    cols = 2
    rows = max(1, math.ceil(n / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(lb["model_id"]))
    for i, row in lb.iterrows():
        names = [k for k in row["metrics"] if k in row["baseline_metrics"]]
        r, c = i // cols + 1, i % cols + 1
        fig.add_trace(go.Bar(name="model", x=names, y=[row["metrics"][k] for k in names], marker_color="#264653",
                             showlegend=i == 0), row=r, col=c)
        fig.add_trace(go.Bar(name="baseline", x=names, y=[row["baseline_metrics"][k] for k in names],
                             marker_color="#e9c46a", showlegend=i == 0), row=r, col=c)
    fig.update_layout(barmode="group", height=320 * rows, title="All metrics: model vs baseline (same test rows)")
    return fig


def trace_figure(frame, columns: list[str], title: str, time_column: str = "ts"):
    """Time series of a few columns of a (polars or pandas) frame."""
    import plotly.graph_objects as go

    df = frame.to_pandas() if hasattr(frame, "to_pandas") else frame
    fig = go.Figure([go.Scattergl(x=df[time_column], y=df[c], name=c, mode="lines") for c in columns])
    fig.update_layout(title=title, height=380, xaxis_title="time (UTC)")
    return fig
