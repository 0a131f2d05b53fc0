"""Everything MLflow: where runs go, what a model run logs, the registry and the champion rule.

Store: ``$MLFLOW_TRACKING_URI`` if set (a tracking server backed by PostgreSQL works
unchanged), else ``sqlite:///<project>/mlruns/mlflow.db`` with artifacts under
``<project>/mlruns/artifacts/<module>`` (absolute, so Papermill's working directory
does not matter). One experiment per catalogue module: ``gridtwin.monitoring``,
``gridtwin.maintenance``, ``gridtwin.energy``, ``gridtwin.decision``.

A model run logs parameters, data digest and seed, model and baseline metrics with the
skill on the primary metric, the evaluation figures (plotly HTML and PNG), the model as
a ``pyfunc`` with signature and input example, and later (from the pipeline runner)
the executed notebook and its HTML report.

Every run also logs its baseline ladder: each baseline's metrics, the paired block-bootstrap
interval of the primary metric for the model, each baseline and the model's difference to each
(``ci/...`` metrics, ``evaluation/uncertainty.json``), the strongest baseline's name, test-set
size, number and kind of blocks, and each fitted baseline (``baselines/<slug>.pkl``).

Registration: ``gridtwin.<model_id>``. The alias ``champion`` moves to a new version only if the
**champion gate** passes (the interval of its difference to the strongest baseline excludes
zero in its favour; an ensemble is also at least as good as each member) and it beats the
current champion on the primary metric. The alias ``serving`` always names the version that
serves: the champion (tag ``gridtwin.serves`` = ``model``), or, when no version passed the gate,
the newest version with its strongest baseline serving (``baseline:<name>``); the inference
engine loads what ``serving`` says (:func:`load_served`).
Inside a pipeline (``GRIDTWIN_RUN_MANIFEST`` set) registration waits until the whole
notebook has succeeded, so a failing notebook leaves nothing half-registered.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import re
import subprocess
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import config
from .errors import InputError
from .models.base import Dataset, Evaluation, GridModel, better

MANIFEST_ENV = "GRIDTWIN_RUN_MANIFEST"
CHAMPION = "champion"
SERVING = "serving"
_PNG_STATE: dict[str, Any] = {}


class TrackingError(InputError):
    """The tracking store cannot be opened or written."""


# ----------------------------------------------------------------------------- store
def tracking_uri() -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{config.mlruns_dir() / 'mlflow.db'}"


def artifact_root() -> Path:
    return config.mlruns_dir() / "artifacts"


def ui_url() -> str:
    """Base URL of the MLflow UI used in report and dashboard links: ``GRIDTWIN_MLFLOW_UI``; else the tracking
    server when ``MLFLOW_TRACKING_URI`` is one (http/https, it serves the UI too); else ``make mlflow``'s
    ``http://127.0.0.1:$MLFLOW_PORT`` (default port 5000)."""
    if os.environ.get("GRIDTWIN_MLFLOW_UI"):
        return os.environ["GRIDTWIN_MLFLOW_UI"].rstrip("/")
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return f"http://127.0.0.1:{os.environ.get('MLFLOW_PORT', '5000')}"


def client():
    """An ``MlflowClient`` on the project's store (the store is created on first use)."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(f"tracking store {uri}: cannot create {db.parent} ({exc.strerror}); "
                                "set MLFLOW_TRACKING_URI or GRIDTWIN_HOME to a writable place") from None
    _quiet_mlflow()
    mlflow.set_tracking_uri(uri)
    c = MlflowClient(tracking_uri=uri)
    try:
        c.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any backend failure is reported the same way
        raise TrackingError(f"tracking store {uri} cannot be opened: {_first_line(exc)}; "
                            "check MLFLOW_TRACKING_URI (or unset it to use mlruns/mlflow.db)") from None
    return c


def experiment_id(module: str, c=None) -> str:
    """Id of the module's experiment ``gridtwin.<module>``, created with an absolute artifact location."""
    c = c or client()
    name = f"gridtwin.{module}"
    exp = c.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if tracking_uri().startswith("sqlite:"):
        location = (artifact_root() / module).resolve().as_uri()
    try:
        return c.create_experiment(name, artifact_location=location, tags={"gridtwin.module": module})
    except Exception:  # noqa: BLE001 - created concurrently by a parallel notebook
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


# ----------------------------------------------------------------------------- the pyfunc wrapper
from mlflow.pyfunc import PythonModel as _PythonModel  # noqa: E402


class GridModelPyfunc(_PythonModel):
    """MLflow ``pyfunc`` around a fitted :class:`GridModel` stored as a cloudpickle artifact."""

    # inputs differ per model and are checked against the logged signature instead of type hints
    _skip_type_hint_validation = True

    def load_context(self, context):
        import cloudpickle

        with open(context.artifacts["estimator"], "rb") as fh:
            self.estimator = cloudpickle.load(fh)

    def predict(self, context, model_input, params=None):
        return self.estimator.predict(model_input)


def load_estimator(model_uri: str) -> GridModel:
    """The fitted :class:`GridModel` behind a logged/registered model URI
    (e.g. ``models:/gridtwin.<model id>@champion``)."""
    import mlflow

    client()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().estimator


# ----------------------------------------------------------------------------- logging a run
@dataclass
class RunRecord:
    run_id: str
    experiment_id: str
    model_id: str
    registered_name: str
    model_uri: str
    primary_metric: str
    metric: float
    baseline_metric: float
    beats_baseline: bool
    url: str
    registered_version: str | None = None
    champion: bool | None = None
    champion_reason: str | None = None
    registrable: bool = True  # False: logged for reference only, never registered
    strongest_baseline: str | None = None
    gate_passed: bool | None = None
    gate_reason: str | None = None
    baseline_artifacts: dict[str, str] | None = None  # baseline name -> artifact path of its pickle in the run
    serves: str | None = None  # after registration: "model" or "baseline:<name>" (of the serving version)
    serving_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def log_model_run(
    model: GridModel,
    dataset: Dataset,
    evaluation: Evaluation,
    *,
    seed: int | None = None,
    params: dict[str, Any] | None = None,
    extra_metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    register: bool | None = None,
) -> RunRecord:
    """Log one trained model with its evaluation as an MLflow run (and register it).

    ``register``: default ``True`` outside a pipeline; inside one (``GRIDTWIN_RUN_MANIFEST``)
    the run is written to the manifest and the runner registers it once the notebook
    has succeeded.
    """
    import cloudpickle
    import mlflow
    from mlflow.models import infer_signature

    spec = model.spec
    c = client()
    exp = experiment_id(spec.module, c)
    manifest = os.environ.get(MANIFEST_ENV)
    registrable = register is not False
    if register is None:
        register = not manifest

    run_tags = {
        "gridtwin.model_id": spec.model_id,
        "gridtwin.module": spec.module,
        "gridtwin.algorithm": spec.algorithm,
        "gridtwin.baseline": spec.baseline,
        "gridtwin.target": spec.target,
        "gridtwin.primary_metric": spec.primary_metric,
        "gridtwin.greater_is_better": str(spec.greater_is_better).lower(),
        "gridtwin.output_units": json.dumps(spec.output_units),
        "gridtwin.data_digest": dataset.digest,
        "gridtwin.dataset": dataset.name,
        "gridtwin.git_commit": _git_commit(),
        **{k: v for k, v in {
            "gridtwin.pipeline": os.environ.get("GRIDTWIN_PIPELINE"),
            "gridtwin.pipeline_run": os.environ.get("GRIDTWIN_PIPELINE_RUN"),
            "gridtwin.notebook": os.environ.get("GRIDTWIN_NOTEBOOK"),
        }.items() if v},
        **(tags or {}),
    }
    all_params = {
        **{f"model.{k}": v for k, v in model.get_params(deep=False).items()},
        **{f"data.{k}": v for k, v in dataset.params.items()},
        "seed": seed,
        "data_digest": dataset.digest,
        "n_train": dataset.n_train,
        "n_test": dataset.n_test,
        **{f"split.{k}": v for k, v in dataset.split.items()},
        **(params or {}),
    }
    fitted_params, fitted_metrics = _fitted_summary(model)
    all_params.update(fitted_params)
    metrics = {
        **fitted_metrics,
        **{f"model/{k}": v for k, v in evaluation.metrics.items()},
        **{f"baseline/{k}": v for k, v in evaluation.baseline_metrics.items()},
        f"skill/{spec.primary_metric}": evaluation.skill,
        "beats_baseline": float(evaluation.beats_baseline),
        **{f"time/{k}": v for k, v in evaluation.timings_s.items()},
        **ladder_metrics(evaluation),
        **(extra_metrics or {}),
    }
    gate_passed, gate_reason = evaluation.gate()
    names = list(evaluation.ladder)
    slugs = dict(zip(names, _slugs(names), strict=True))
    run_tags.update({
        "gridtwin.ladder": json.dumps([{"name": n, "slug": slugs[n], "class": type(evaluation.fitted_baselines[n]).__name__}
                                       for n in names if n in evaluation.fitted_baselines]) if evaluation.fitted_baselines else "[]",
        "gridtwin.strongest_baseline": evaluation.strongest,
        "gridtwin.gate": "passed" if gate_passed else "failed",
        "gridtwin.gate_reason": gate_reason[:4000],
    })
    unc = evaluation.uncertainty
    if unc is not None:
        run_tags.update({"gridtwin.bootstrap_block": unc.block_kind, "gridtwin.bootstrap_method": unc.method,
                         **({"gridtwin.bootstrap_note": unc.note[:4000]} if unc.note else {})})

    with mlflow.start_run(experiment_id=exp, run_name=spec.model_id, tags=run_tags) as run:
        mlflow.log_params({k: _param_value(v) for k, v in all_params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if _finite(v)})
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            evaluation.table().to_csv(tmp / "metrics.csv")
            (tmp / "dataset.json").write_text(json.dumps(
                {"name": dataset.name, "digest": dataset.digest, "split": dataset.split, "params": dataset.params,
                 "n_train": dataset.n_train, "n_test": dataset.n_test, "description": dataset.description},
                indent=2, default=str))
            mlflow.log_artifact(str(tmp / "metrics.csv"), "evaluation")
            mlflow.log_artifact(str(tmp / "dataset.json"), "evaluation")
            if unc is not None:
                (tmp / "uncertainty.json").write_text(json.dumps({**unc.to_dict(), "strongest": evaluation.strongest,
                                                                  "slugs": slugs, "members": evaluation.members}, indent=2))
                mlflow.log_artifact(str(tmp / "uncertainty.json"), "evaluation")
            baseline_artifacts = {}
            for name, fitted in evaluation.fitted_baselines.items():
                served = copy.copy(fitted)
                if getattr(served, "spec", None) is None:
                    served.spec = spec  # the engine reads output units from it
                path = tmp / f"{slugs[name]}.pkl"
                with open(path, "wb") as fh:
                    cloudpickle.dump(served, fh)
                mlflow.log_artifact(str(path), "baselines")
                baseline_artifacts[name] = f"baselines/{path.name}"
            for name, fig in evaluation.figures.items():
                _log_figure(fig, name, tmp)

            estimator = tmp / "estimator.pkl"
            with open(estimator, "wb") as fh:
                cloudpickle.dump(model, fh)
            example = model.input_example(dataset.X_test)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                signature = infer_signature(example, model.predict(example))
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=GridModelPyfunc(),
                    artifacts={"estimator": str(estimator)},
                    signature=signature,
                    input_example=example,
                    pip_requirements=_requirements(),
                    metadata={"gridtwin_model_id": spec.model_id, "output_units": spec.output_units},
                )

    record = RunRecord(
        run_id=run.info.run_id, experiment_id=exp, model_id=spec.model_id,
        registered_name=spec.registered_name, model_uri=info.model_uri,
        primary_metric=spec.primary_metric, metric=evaluation.primary,
        baseline_metric=evaluation.baseline_primary, beats_baseline=evaluation.beats_baseline,
        url=run_url(exp, run.info.run_id), registrable=registrable,
        strongest_baseline=evaluation.strongest, gate_passed=gate_passed, gate_reason=gate_reason,
        baseline_artifacts=baseline_artifacts,
    )
    if manifest:
        with open(manifest, "a") as fh:
            fh.write(json.dumps(record.to_dict()) + "\n")
    if register:
        register_run(record)
    return record


def run_url(experiment: str, run_id: str) -> str:
    return f"{ui_url()}/#/experiments/{experiment}/runs/{run_id}"


def _log_figure(fig, name: str, tmp: Path) -> None:
    """Plotly figure as interactive HTML (plotly.js embedded, so MLflow shows it offline), plus PNG when a
    Chromium for kaleido is available."""
    import mlflow

    html = tmp / f"{name}.html"
    fig.write_html(html, include_plotlyjs=True, full_html=True)  # plotly.js embedded: renders offline
    mlflow.log_artifact(str(html), "figures")
    png = tmp / f"{name}.png"
    if _png_available():
        try:
            fig.write_image(png, width=1000, height=550)
            mlflow.log_artifact(str(png), "figures")
            return
        except Exception as exc:  # noqa: BLE001 - PNG export is best effort, reported once
            _PNG_STATE["ok"] = False
            _PNG_STATE["reason"] = _first_line(exc)
    mlflow.set_tag("gridtwin.png_figures", f"skipped: {_PNG_STATE.get('reason')}")


def _png_available() -> bool:
    """kaleido (1.x) renders through a Chrome/Chromium; Debian's ``chromium`` works."""
    if "ok" not in _PNG_STATE:
        browser = os.environ.get("BROWSER_PATH") or next(
            (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome") if Path(p).exists()),
            None)
        if browser:
            os.environ.setdefault("BROWSER_PATH", browser)
        _PNG_STATE["ok"] = browser is not None
        _PNG_STATE["reason"] = None if browser else "no Chromium found for kaleido (apt-get install chromium)"
    return _PNG_STATE["ok"]


# ----------------------------------------------------------------------------- registry
def register_run(record: RunRecord | dict[str, Any]) -> RunRecord:
    """Register the run's model as a new version; move ``champion`` to it only if it passes the
    gate and beats the current champion; point ``serving`` at what serves.

    The gate (computed when the run was logged, ``RunRecord.gate_passed``): the interval of the
    model's difference to its strongest baseline excludes zero in its favour (and an ensemble is
    at least as good as each member). A champion from before the gate (no ``gridtwin.gate`` tag)
    does not count as one. Every version is tagged with the decision in words
    (``gridtwin.champion_decision``) and what serves (``gridtwin.serves``).
    """
    import mlflow

    rec = record if isinstance(record, RunRecord) else RunRecord(**record)
    c = client()
    gib = c.get_run(rec.run_id).data.tags.get("gridtwin.greater_is_better", "false") == "true"
    gate = None if rec.gate_passed is None else ("passed" if rec.gate_passed else "failed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mv = mlflow.register_model(rec.model_uri, rec.registered_name, tags={k: v for k, v in {
            "gridtwin.run_id": rec.run_id, "gridtwin.primary_metric": rec.primary_metric,
            "gridtwin.metric": repr(rec.metric), "gridtwin.baseline_metric": repr(rec.baseline_metric),
            "gridtwin.beats_baseline": str(rec.beats_baseline).lower(), "gridtwin.gate": gate,
            "gridtwin.strongest_baseline": rec.strongest_baseline}.items() if v is not None})
    if str(mv.version) == "1":
        c.update_registered_model(
            rec.registered_name,
            description=f"GridTwin {rec.model_id}; primary metric {rec.primary_metric} "
                        f"({'greater' if gib else 'lower'} is better). Alias '{CHAMPION}': the version whose difference "
                        f"to its strongest baseline has a bootstrap interval excluding zero in its favour and that beats "
                        f"the previous champion. Alias '{SERVING}': what the inference engine serves (tag gridtwin.serves).")
        c.set_registered_model_tag(rec.registered_name, "gridtwin.model_id", rec.model_id)
    # the run id is the link from registry to run (MLflow 3 versions point at a logged model)
    rec.registered_version = str(mv.version)

    current = champion_version(rec.registered_name, c)
    if current is not None and (current.tags or {}).get("gridtwin.gate") != "passed":
        current = None  # a champion from before the gate: it never showed it beats its strongest baseline
    current_metric = _version_metric(current) if current else None
    if rec.gate_passed is None:  # a record without a ladder (older manifest): the point estimate rule
        passed, why = rec.beats_baseline, (f"{'beats' if rec.beats_baseline else 'does not beat'} its baseline "
                                           f"({rec.primary_metric} {rec.metric:.4g} vs {rec.baseline_metric:.4g}; no interval)")
    else:
        passed, why = rec.gate_passed, rec.gate_reason or ""
    if not passed:
        rec.champion, rec.champion_reason = False, why
    elif current is not None and not better(rec.metric, current_metric, gib):
        rec.champion, rec.champion_reason = False, (
            f"{why}; does not beat champion v{current.version} ({rec.primary_metric} {rec.metric:.4g} vs {current_metric:.4g})")
    else:
        c.set_registered_model_alias(rec.registered_name, CHAMPION, rec.registered_version)
        rec.champion = True
        rec.champion_reason = (f"{why}; first version to pass the gate" if current is None else
                               f"{why}; beats champion v{current.version} ({rec.metric:.4g} vs {current_metric:.4g})")
    c.set_model_version_tag(rec.registered_name, rec.registered_version, "gridtwin.champion_decision", rec.champion_reason[:4000])

    # what serves: the (gated) champion, else this version's strongest baseline
    serving = rec.registered_version if rec.champion else (current.version if current is not None else None)
    if serving is not None:
        serves = "model"
        c.set_model_version_tag(rec.registered_name, serving, "gridtwin.serves", serves)
    else:
        serving, name = rec.registered_version, rec.strongest_baseline
        artifact = (rec.baseline_artifacts or {}).get(name or "")
        if artifact is None:  # no fitted baseline in the run: nothing to serve instead, the model serves
            serves = "model"
        else:
            serves = f"baseline:{name}"
            c.set_model_version_tag(rec.registered_name, serving, "gridtwin.serving_artifact", artifact)
        c.set_model_version_tag(rec.registered_name, serving, "gridtwin.serves", serves)
    c.set_registered_model_alias(rec.registered_name, SERVING, serving)
    rec.serves, rec.serving_version = serves, str(serving)
    return rec


def serving_text(model_id: str, serves: str | None, algorithm: str | None = None) -> str:
    """What serves a model, in words: e.g. "AR serves; the LSTM did not beat it"."""
    short = model_id.split("_")[0]
    if not serves:
        return f"{short}: nothing serves (no registered version)"
    if serves == "model":
        return f"{short}: the model ({algorithm or 'model'}) serves"
    return f"{short}: {serves.removeprefix('baseline:')} serves; the {algorithm or 'model'} did not beat it"


def serving_version(name: str, c=None):
    """The version carrying the ``serving`` alias, else the ``champion`` (registries from before
    the gate), else None."""
    from mlflow.exceptions import MlflowException

    c = c or client()
    for alias in (SERVING, CHAMPION):
        try:
            return c.get_model_version_by_alias(name, alias)
        except MlflowException:
            continue
    return None


def served_keys(model_ids, c=None) -> dict[str, str | None]:
    """What serves each model now, as ``<version>:<serves>`` (``3:model``, ``4:baseline:persistence``), or
    None when nothing is registered: stored scores are current only for these keys
    (:mod:`gridtwin_lib.inference.stored`). Registry lookups only, no model is loaded."""
    c = c or client()
    keys: dict[str, str | None] = {}
    for model_id in model_ids:
        version = serving_version(f"gridtwin.{model_id}", c)
        keys[model_id] = None if version is None else f"{version.version}:{(version.tags or {}).get('gridtwin.serves', 'model')}"
    return keys


def load_served(model_id: str, alias: str = SERVING, c=None) -> tuple[Any, str, str]:
    """What serves ``model_id``: ``(estimator, serves, version)``.

    ``alias`` ``serving`` (default): the version of that alias (the ``champion`` where a registry
    predates it); the model itself, or, when its tag ``gridtwin.serves`` is ``baseline:<name>``, the
    fitted baseline logged with its run (same ``predict`` interface, so serving adapters work
    unchanged). Another alias (e.g. ``champion``) loads that version's model.

    Raises
    ------
    LookupError
        No version carries the alias.
    """
    import cloudpickle
    import mlflow
    from mlflow.exceptions import MlflowException

    c = c or client()
    name = f"gridtwin.{model_id}"
    if alias == SERVING:
        version = serving_version(name, c)
    else:
        try:
            version = c.get_model_version_by_alias(name, alias)
        except MlflowException:
            version = None
    if version is None:
        raise LookupError(f"no @{alias} version of {name} in {tracking_uri()}; run the pipeline that trains it")
    tags = version.tags or {}
    serves = tags.get("gridtwin.serves", "model") if alias == SERVING else "model"
    if serves.startswith("baseline:") and tags.get("gridtwin.serving_artifact"):
        run_id = tags.get("gridtwin.run_id") or version.run_id
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=tags["gridtwin.serving_artifact"], dst_path=tmp)
            with open(path, "rb") as fh:
                return cloudpickle.load(fh), serves, str(version.version)
    return load_estimator(f"models:/{name}/{version.version}"), "model", str(version.version)


def champion_version(name: str, c=None):
    """The version carrying the ``champion`` alias, or None."""
    from mlflow.exceptions import MlflowException

    c = c or client()
    try:
        return c.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _version_metric(version) -> float | None:
    raw = (version.tags or {}).get("gridtwin.metric")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def fail_runs(run_ids: list[str], reason: str) -> None:
    """Mark runs FAILED (their notebook failed after logging them); they are not registered."""
    if not run_ids:
        return
    c = client()
    for run_id in run_ids:
        c.set_tag(run_id, "gridtwin.failure", reason[:4000])
        c.set_terminated(run_id, status="FAILED")


def log_run_artifacts(run_ids: list[str], paths: list[Path], artifact_path: str = "notebook") -> None:
    c = client()
    for run_id in run_ids:
        for p in paths:
            if Path(p).exists():
                c.log_artifact(run_id, str(p), artifact_path)


def read_manifest(path: Path) -> list[dict[str, Any]]:
    if not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- reading back
def leaderboard(c=None) -> pd.DataFrame:
    """One row per registered GridTwin model: champion (or latest) version against its baseline."""
    c = c or client()
    rows = []
    for rm in c.search_registered_models(filter_string="name LIKE 'gridtwin.%'"):
        champ = champion_version(rm.name, c)
        versions = c.search_model_versions(f"name = '{rm.name}'")
        latest = max(versions, key=lambda v: int(v.version)) if versions else None
        shown = champ or latest
        if shown is None:
            continue
        run_id = (shown.tags or {}).get("gridtwin.run_id") or shown.run_id
        run = c.get_run(run_id)
        tags, m = run.data.tags, run.data.metrics
        primary = tags.get("gridtwin.primary_metric", "")
        rows.append({
            "model_id": tags.get("gridtwin.model_id", rm.name.removeprefix("gridtwin.")),
            "module": tags.get("gridtwin.module"),
            "algorithm": tags.get("gridtwin.algorithm"),
            "baseline": tags.get("gridtwin.baseline"),
            "primary_metric": primary,
            "greater_is_better": tags.get("gridtwin.greater_is_better") == "true",
            "model": m.get(f"model/{primary}"),
            "baseline_value": m.get(f"baseline/{primary}"),
            "skill": m.get(f"skill/{primary}"),
            "beats_baseline": bool(m.get("beats_baseline", 0.0)),
            "champion_version": champ.version if champ else None,
            "latest_version": latest.version if latest else None,
            "n_versions": len(versions),
            "n_test": run.data.params.get("n_test"),
            "test_range": run.data.params.get("split.test"),
            "run_id": run_id,
            "run_url": run_url(run.info.experiment_id, run_id),
            "metrics": {k.removeprefix("model/"): v for k, v in m.items() if k.startswith("model/")},
            "baseline_metrics": {k.removeprefix("baseline/"): v for k, v in m.items() if k.startswith("baseline/")},
            **_interval_columns(tags, m),
            **_serving_columns(rm.name, tags, c),
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    from .models import registry  # registry order (catalogue order), models it does not list last

    order = {m: k for k, m in enumerate(registry.ids())}
    return df.sort_values("model_id", key=lambda ids: ids.map(lambda m: (order.get(m, len(order)), m))).reset_index(drop=True)


def _interval_columns(tags: dict[str, str], m: dict[str, float]) -> dict[str, Any]:
    """A run's ladder and intervals as leaderboard columns (NaN / empty where the run has none)."""
    nan = float("nan")
    ladder = json.loads(tags.get("gridtwin.ladder") or "[]")
    primary = tags.get("gridtwin.primary_metric", "")
    strongest = tags.get("gridtwin.strongest_baseline")
    slug = {b["name"]: b["slug"] for b in ladder}
    baselines = [{"name": b["name"], "value": m.get(f"ladder/{b['slug']}/{primary}", nan),
                  "low": m.get(f"ci/baseline/{b['slug']}/low", nan), "high": m.get(f"ci/baseline/{b['slug']}/high", nan)}
                 for b in ladder]
    s = slug.get(strongest or "", "")
    return {
        "model_low": m.get("ci/model/low", nan), "model_high": m.get("ci/model/high", nan),
        "ladder": baselines, "strongest_baseline": strongest,
        "diff": m.get(f"ci/diff/{s}/value", nan), "diff_low": m.get(f"ci/diff/{s}/low", nan),
        "diff_high": m.get(f"ci/diff/{s}/high", nan),
        "n_blocks": m.get("bootstrap/n_blocks", nan), "block_kind": tags.get("gridtwin.bootstrap_block"),
        "n_replicates": m.get("bootstrap/n_replicates", nan), "gate": tags.get("gridtwin.gate"),
        "gate_reason": tags.get("gridtwin.gate_reason"),
    }


def _serving_columns(name: str, tags: dict[str, str], c) -> dict[str, Any]:
    version = serving_version(name, c)
    vtags = (version.tags or {}) if version is not None else {}
    serves = vtags.get("gridtwin.serves", "model") if version is not None else None
    model_id = tags.get("gridtwin.model_id", name.removeprefix("gridtwin."))
    return {"serving_version": version.version if version is not None else None, "serves": serves,
            "serving_text": serving_text(model_id, serves, tags.get("gridtwin.algorithm"))}


def _latest_versions(c):
    """Each registered GridTwin model with its latest version and that version's run id."""
    for rm in c.search_registered_models(filter_string="name LIKE 'gridtwin.%'"):
        versions = c.search_model_versions(f"name = '{rm.name}'")
        if versions:
            latest = max(versions, key=lambda v: int(v.version))
            yield rm, latest, (latest.tags or {}).get("gridtwin.run_id") or latest.run_id


def models_report(c=None) -> pd.DataFrame:
    """The model table from MLflow: per registered model (registry order), its latest version's run:
    primary metric of the model and of every baseline with their bootstrap intervals, the
    difference to the strongest baseline with its interval, test-set size, blocks, the gate
    decision and what serves (the ``serving`` alias). Empty when nothing is registered."""
    c = c or client()
    rows = []
    for rm, latest, run_id in _latest_versions(c):
        run = c.get_run(run_id)
        tags, m = run.data.tags, run.data.metrics
        primary = tags.get("gridtwin.primary_metric", "")
        rows.append({
            "model_id": tags.get("gridtwin.model_id", rm.name.removeprefix("gridtwin.")),
            "algorithm": tags.get("gridtwin.algorithm"), "primary_metric": primary,
            "greater_is_better": tags.get("gridtwin.greater_is_better") == "true",
            "model": m.get(f"model/{primary}", float("nan")), **_interval_columns(tags, m),
            "n_test": int(float(run.data.params.get("n_test", "nan"))) if run.data.params.get("n_test") else None,
            "latest_version": latest.version, "champion": (latest.tags or {}).get("gridtwin.champion_decision"),
            **_serving_columns(rm.name, tags, c), "run_id": run_id,
        })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    from .models import registry

    order = {m: k for k, m in enumerate(registry.ids())}
    return df.sort_values("model_id", key=lambda ids: ids.map(lambda m: (order.get(m, len(order)), m))).reset_index(drop=True)


def _ci(value: float, low: float, high: float) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{value:.4g}"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"


def report_markdown(report: pd.DataFrame) -> str:
    """:func:`models_report` as a Markdown table (intervals: 95 % paired block bootstrap)."""
    if report.empty:
        return "_No registered models yet: run `gridtwin pipeline run full`._\n"
    head = ("| model | primary metric | model [95 % CI] | baselines [95 % CI] | model − strongest baseline [95 % CI] "
            "| test rows / blocks | gate | serves |\n|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in report.itertuples():
        arrow = "↑" if r.greater_is_better else "↓"
        ladder = "<br>".join(f"{'**' if b['name'] == r.strongest_baseline else ''}{_cell(b['name'])}"
                             f"{'**' if b['name'] == r.strongest_baseline else ''}: {_ci(b['value'], b['low'], b['high'])}"
                             for b in r.ladder) or "–"
        blocks = f"{r.n_test:,} / {int(r.n_blocks)} {r.block_kind}" if r.n_test and math.isfinite(r.n_blocks) else (
            f"{r.n_test:,}" if r.n_test else "–")
        gate = {"passed": "passed", "failed": "refused"}.get(r.gate or "", "–")
        serves = _cell("model" if r.serves == "model" else (r.serves or "–").replace("baseline:", "baseline: "))
        lines.append(f"| {r.model_id} ({_cell(r.algorithm)}) | {r.primary_metric} {arrow} | {_ci(r.model, r.model_low, r.model_high)} "
                     f"| {ladder} | {_ci(r.diff, r.diff_low, r.diff_high)} | {blocks} | {gate} | {serves} |")
    return head + "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """``text`` safe in a Markdown table cell (a name such as "|dV| > 10 %" would end the cell)."""
    return str(text).replace("|", "\\|")


def export_figures(out_dir: str | Path, names: list[str] | None = None, c=None) -> list[Path]:
    """Copy the evaluation figures (PNG, else the offline HTML) of each registered model's latest version run into
    ``out_dir``: only those named ``names`` (a figure file name without its extension), else all. Returns the files written;
    InputError naming the figures available when a named one is in no run."""
    import shutil
    import tempfile

    c = c or client()
    out = Path(out_dir)
    wanted = set(names or ())
    written, seen = [], set()
    for _, _, run_id in _latest_versions(c):
        files = {Path(a.path).name for a in c.list_artifacts(run_id, "figures")}
        for stem in sorted({Path(f).stem for f in files}):
            seen.add(stem)
            if wanted and stem not in wanted:
                continue
            name = f"{stem}.png" if f"{stem}.png" in files else f"{stem}.html"
            with tempfile.TemporaryDirectory() as tmp:
                got = Path(c.download_artifacts(run_id, f"figures/{name}", tmp))
                out.mkdir(parents=True, exist_ok=True)
                written.append(Path(shutil.copyfile(got, out / name)))
    missing = sorted(wanted - seen)
    if missing:
        raise InputError(f"no registered run has the figure(s) {', '.join(missing)}; available: {', '.join(sorted(seen)) or 'none'}")
    return written


README_BEGIN = "<!-- models-report:begin -->"
README_END = "<!-- models-report:end -->"


def write_readme_block(readme: Path, markdown: str) -> None:
    """Replace the text between the README's models-report markers by ``markdown`` (atomically).

    Raises
    ------
    InputError
        The README lacks the markers (nothing is written).
    """
    from .fileio import atomic_write

    text = Path(readme).read_text()
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise InputError(f"{readme}: no '{README_BEGIN}' ... '{README_END}' block; add both markers where the table goes")
    new = text[:start + len(README_BEGIN)] + "\n" + markdown + text[end:]
    with atomic_write(Path(readme)) as tmp:
        Path(tmp).write_text(new)


# ----------------------------------------------------------------------------- small helpers
def _slugs(names: list[str]) -> list[str]:
    """File- and MLflow-key-safe unique slugs of baseline names."""
    out: list[str] = []
    for name in names:
        slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()[:60] or "baseline"
        base, k = slug, 2
        while slug in out:
            slug, k = f"{base}_{k}", k + 1
        out.append(slug)
    return out


def ladder_metrics(ev: Evaluation) -> dict[str, float]:
    """The metrics a run logs for its ladder and intervals (names: see the module docstring)."""
    names = list(ev.ladder)
    slugs = dict(zip(names, _slugs(names), strict=True))
    out: dict[str, float] = {}
    for name, metrics in ev.ladder.items():
        out.update({f"ladder/{slugs[name]}/{k}": v for k, v in metrics.items()})
    out.update({f"member/{k}": v for k, v in ev.members.items()})
    if ev.ladder:
        out[f"strongest/{ev.spec.primary_metric}"] = ev.strongest_primary
    unc = ev.uncertainty
    if unc is None:
        return out
    out.update({"ci/model/value": unc.model.value, "ci/model/low": unc.model.low, "ci/model/high": unc.model.high,
                "bootstrap/n_test": float(unc.n_rows), "bootstrap/n_blocks": float(unc.n_blocks),
                "bootstrap/n_replicates": float(unc.n_replicates), "bootstrap/level": unc.level,
                "bootstrap/seconds": unc.seconds})
    for name, iv in unc.baselines.items():
        out.update({f"ci/baseline/{slugs[name]}/{p}": getattr(iv, p) for p in ("value", "low", "high")})
    for name, iv in unc.differences.items():
        out.update({f"ci/diff/{slugs[name]}/{p}": getattr(iv, p) for p in ("value", "low", "high")})
    out["gate_passed"] = float(ev.gate()[0])
    return out


def _fitted_summary(model: GridModel) -> tuple[dict[str, Any], dict[str, float]]:
    """Scalar learned attributes (``name_``): numbers become ``fitted/<name>`` metrics, text
    ``fitted.<name>`` params (e.g. a chosen algorithm and its validation scores)."""
    import numbers

    params: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    for name, value in vars(model).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        key = name.rstrip("_")
        if isinstance(value, dict) and not all(isinstance(v, numbers.Real | str) for v in value.values()):
            continue  # a cache or a structure (e.g. a flattened forest), not a summary
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            full = key if sub is None else f"{key}.{sub}"
            if isinstance(v, bool | str):
                params[f"fitted.{full}"] = v
            elif isinstance(v, numbers.Real) and _finite(v):
                metrics[f"fitted/{full}"] = float(v)
    return params, metrics



def _param_value(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str) if isinstance(v, list | dict | tuple) else str(v)
    return text if len(text) <= 6000 else text[:5990] + "…"


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=config.project_root(),
                             capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _requirements() -> list[str]:
    """The model's runtime: this environment's versions of what the models import."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in ("gridtwin", "mlflow", "scikit-learn", "numpy", "pandas", "polars", "xgboost", "cloudpickle",
                "tensorflow-cpu", "prophet", "scipy"):
        with contextlib.suppress(PackageNotFoundError):  # not installed: not a requirement
            reqs.append(f"{pkg}=={version(pkg)}")
    return reqs


def _quiet_mlflow() -> None:
    for name in ("mlflow", "mlflow.models", "alembic", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)  # the cloudpickle notice, once per model
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
