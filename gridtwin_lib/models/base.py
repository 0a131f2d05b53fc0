"""The one interface every GridTwin model follows.

A model is a scikit-learn style estimator (parameters in ``__init__`` only, learned
state in attributes ending in ``_``, ``fit`` returns ``self``) plus a small
contract that lets one piece of code train, judge, track and serve all 16 of them:

* ``spec`` (class attribute): id, module, algorithm, baseline name, primary metric
  and the units of what ``predict`` returns;
* ``baseline()``: a *fresh, unfitted* :class:`Baseline` with the same ``fit``/``predict``
  interface, the named baseline of the model catalogue;
* ``evaluate(y_true, y_pred, meta=None)``: the catalogue's metrics of one set of
  predictions (named so that scikit-learn's ``score(X, y)`` is not shadowed); called
  with the model's and the baseline's predictions on exactly
  the same held-out rows (:func:`fit_and_evaluate` guarantees it);
* ``figures(dataset, predictions)``: plotly figures of the evaluation;
* ``supplementary_metrics(dataset, ev, ...)`` (optional): metrics comparing predictors on the
  same rows beyond the primary metric (e.g. a secondary output's table), added to ``ev.metrics``.

Models get frames (or arrays), never paths; they never talk to MLflow
(``gridtwin_lib.tracking`` does) and never see ground truth except as ``y``.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ..errors import InputError

MODULES = ("monitoring", "maintenance", "energy", "decision")


@dataclass(frozen=True)
class ModelSpec:
    """What the model catalogue (``../shared/spec/models.md``) says about a model.

    ``output_units`` maps each output (column of ``predict``'s result, or ``"y"``
    for a single output) to its unit, e.g. ``{"load_kw": "kW"}``.
    """

    model_id: str  # "mNN_<name>", the registry id
    module: str  # one of MODULES
    algorithm: str  # e.g. "IsolationForest"
    baseline: str  # e.g. "EN 50160 rule |dV| > 10 % of nominal"
    target: str  # what is predicted, from which ground truth
    primary_metric: str  # a key of evaluate()'s result
    greater_is_better: bool
    output_units: dict[str, str]
    secondary_metrics: tuple[str, ...] = ()
    #: bootstrap block of the test rows: "customer", "asset", "device", "day", "hour" or "row"
    #: (see gridtwin_lib.evaluation.block_ids); None: chosen from the columns of meta_test / X_test
    block: str | None = None
    #: must the model be at least as good as each of its members (an ensemble) to become champion?
    #: None: yes when ``evaluate`` reports ``member_<name>_<primary metric>`` values
    must_beat_members: bool | None = None

    def __post_init__(self):
        if self.module not in MODULES:
            raise ValueError(f"module {self.module!r} is not one of {MODULES}")

    @property
    def registered_name(self) -> str:
        return f"gridtwin.{self.model_id}"


@dataclass
class Dataset:
    """A chronological train/test split handed to a model.

    ``X_*`` are what the model may see (pandas DataFrame or NumPy array);
    ``y_*`` the labels from ground truth (``None`` for unsupervised training);
    ``meta_test`` carries per-row context for scoring and plots (timestamps,
    device ids, event logs...) and is never given to ``predict``.
    ``split`` records the time ranges, e.g. ``{"train": [start, end], "test": [...]}``
    (ISO strings); ``digest`` identifies the exact data (see :func:`digest`).
    """

    name: str
    X_train: Any
    y_train: Any
    X_test: Any
    y_test: Any
    meta_test: Any = None
    meta_train: Any = None
    split: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    digest: str = ""
    description: str = ""

    def __post_init__(self):
        if _n_rows(self.X_train) == 0:
            raise InputError(f"dataset {self.name}: the training window is empty ({self.split.get('train')}); "
                             "simulate or ingest data for that range first (notebook 00_data)")
        if _n_rows(self.X_test) == 0:
            raise InputError(f"dataset {self.name}: the test window is empty ({self.split.get('test')}); "
                             "extend the data or move the split")
        if not self.digest:
            self.digest = digest(self.X_train, self.y_train, self.X_test, self.y_test)

    @property
    def n_train(self) -> int:
        return _n_rows(self.X_train)

    @property
    def n_test(self) -> int:
        return _n_rows(self.X_test)


@dataclass
class Evaluation:
    """Model and its baseline ladder judged on the same held-out rows.

    ``baseline_metrics`` are the metrics of **the catalogue's named baseline** (the first of the
    ladder, ``GridModel.baseline()``); ``ladder`` holds every baseline's metrics by its short
    name (the named one first), ``strongest`` names the best of them on the primary metric, and
    ``uncertainty`` holds the paired block-bootstrap intervals of the primary metric for the
    model, each baseline and the model's difference to each
    (:class:`gridtwin_lib.evaluation.Uncertainty`). ``members`` holds the primary metric of each
    ensemble member where the model reports them (``member_<name>_<primary>``).
    """

    spec: ModelSpec
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    n_test: int
    test_rows_digest: str
    figures: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)
    ladder: dict[str, dict[str, float]] = field(default_factory=dict)
    ladder_predictions: dict[str, Any] = field(default_factory=dict, repr=False)
    fitted_baselines: dict[str, Any] = field(default_factory=dict, repr=False)
    uncertainty: Any = None  # gridtwin_lib.evaluation.Uncertainty
    members: dict[str, float] = field(default_factory=dict)

    @property
    def primary(self) -> float:
        return self.metrics[self.spec.primary_metric]

    @property
    def baseline_primary(self) -> float:
        return self.baseline_metrics[self.spec.primary_metric]

    @property
    def baseline_name(self) -> str:
        """Short name of the catalogue's named baseline (the first of the ladder)."""
        return next(iter(self.ladder), self.spec.baseline)

    @property
    def strongest(self) -> str:
        """Name of the ladder's best baseline on the primary metric (the named one on ties or NaN)."""
        best, value = self.baseline_name, self.ladder.get(self.baseline_name, self.baseline_metrics).get(self.spec.primary_metric)
        for name, metrics in self.ladder.items():
            v = metrics.get(self.spec.primary_metric, float("nan"))
            if better(v, value, self.spec.greater_is_better):
                best, value = name, v
        return best

    @property
    def strongest_primary(self) -> float:
        return self.ladder.get(self.strongest, self.baseline_metrics)[self.spec.primary_metric]

    @property
    def skill(self) -> float:
        """Skill on the primary metric over the named baseline: ``1 - model/baseline`` for errors,
        ``model - baseline`` for scores where greater is better."""
        return skill(self.primary, self.baseline_primary, self.spec.greater_is_better)

    @property
    def beats_baseline(self) -> bool:
        """Point estimate better than the named baseline's (the gate asks more: see :meth:`gate`)."""
        return better(self.primary, self.baseline_primary, self.spec.greater_is_better)

    @property
    def members_required(self) -> bool:
        return bool(self.members) if self.spec.must_beat_members is None else bool(self.spec.must_beat_members)

    def gate(self) -> tuple[bool, str]:
        """Does the model earn ``champion``? The interval of its difference to the strongest
        baseline must exclude zero in its favour (and, for ensembles, it must be at least as
        good as each member). Returns (passed, the decision in words)."""
        from ..evaluation import gate_decision

        return gate_decision(self.uncertainty, self.strongest if self.ladder else None,
                             members=self.members if self.members_required else None, model_value=self.primary,
                             model_label=self.spec.algorithm)

    def table(self) -> pd.DataFrame:
        """Metrics side by side (rows: metric; columns: model, then each baseline of the ladder)."""
        ladder = self.ladder or {"baseline": self.baseline_metrics}
        names = list(dict.fromkeys([*self.metrics, *(k for m in ladder.values() for k in m)]))
        data = {"model": [self.metrics.get(n, np.nan) for n in names]}
        for bname, metrics in ladder.items():
            data[bname] = [metrics.get(n, np.nan) for n in names]
        return pd.DataFrame(data, index=pd.Index(names, name="metric"))


def skill(model: float, baseline: float, greater_is_better: bool) -> float:
    if greater_is_better:
        return float(model - baseline)
    if baseline == 0 or not math.isfinite(baseline):
        return float("nan")
    return float(1.0 - model / baseline)


def better(a: float, b: float | None, greater_is_better: bool) -> bool:
    """Is ``a`` strictly better than ``b``? (``b`` None or NaN: yes, if ``a`` is finite)."""
    if a is None or not math.isfinite(a):
        return False
    if b is None or not math.isfinite(b):
        return True
    return a > b if greater_is_better else a < b


class GridModel(BaseEstimator):
    """Base class of the GridTwin models: a scikit-learn estimator plus the catalogue's contract.

    Subclasses set ``spec`` and implement ``fit``, ``predict``, ``baseline`` and
    ``evaluate``. ``predict`` returns a NumPy array or a pandas DataFrame whose columns
    are the keys of ``spec.output_units``. The metric method is ``evaluate`` (not
    ``score``), so scikit-learn's ``score(X, y)`` keeps its meaning where an estimator
    defines it and ``cross_val_score`` never calls a metric with the wrong arguments.

    Parameters
    ----------
    **params
        Each model's own, in its ``__init__`` (scikit-learn convention: stored unchanged,
        validated in ``fit``).

    Attributes
    ----------
    spec : ModelSpec
        Class attribute: id, module, algorithm, named baseline, primary metric and the
        unit of each output.
    """

    spec: ClassVar[ModelSpec]

    def fit(self, X, y=None):  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, X):  # pragma: no cover - interface
        raise NotImplementedError

    def baseline(self) -> Baseline:  # pragma: no cover - interface
        """A fresh, unfitted :class:`Baseline` implementing the catalogue's baseline."""
        raise NotImplementedError

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:  # pragma: no cover - interface
        """The catalogue's metrics of one set of predictions (the model's or its baseline's).

        Parameters
        ----------
        y_true : array-like or DataFrame
            Ground truth of the held-out rows (``Dataset.y_test``).
        y_pred : array-like or DataFrame
            ``predict``'s output on the same rows, from the model or its baseline.
        meta : Any, optional
            Per-row context (``Dataset.meta_test``): timestamps, device ids, event logs.

        Returns
        -------
        dict of str to float
            Metric name to value; holds ``spec.primary_metric``.
        """
        raise NotImplementedError

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        """Plotly figures keyed by a file-safe name; default: none."""
        return {}

    def input_example(self, X):
        """A few rows of ``X`` to store with the model (its signature is inferred from them)."""
        return X[:5] if not isinstance(X, pd.DataFrame) else X.head(5)

    def ladder(self) -> list[Baseline]:
        """Fresh, unfitted baselines of the model's ladder: ``baseline()`` (the catalogue's named
        one) first, then each further class of the model's registry entry (``ModelEntry.baselines``),
        made by ``cls.for_model(self)``."""
        first = self.baseline()
        ladder = [first]
        try:
            from . import registry

            classes = registry.get(self.spec.model_id).baseline_classes()
        except Exception:  # noqa: BLE001 - a model outside the registry has its named baseline only
            classes = ()
        for cls in classes:
            if type(first) is cls:
                continue
            ladder.append(cls.for_model(self))
        return ladder

    def bootstrap_blocks(self, dataset: Dataset) -> tuple[str, np.ndarray]:
        """The bootstrap block of each test row: ``(kind, ids)``.

        Default: ``spec.block`` if set, else the first of customer, asset, device, day, hour found
        in ``meta_test`` / ``X_test`` / ``y_test`` with at least 10 blocks
        (:func:`gridtwin_lib.evaluation.block_ids`). Override for a task-specific block.
        """
        from ..evaluation import block_ids

        return block_ids(dataset.n_test, dataset.meta_test, dataset.X_test, dataset.y_test, kind=self.spec.block)

    def bootstrap_terms(self, y_true, y_pred, meta=None):
        """Optional: the primary metric as a function of sums over rows, for a vectorised bootstrap.

        Returns None (default: the bootstrap finds a fast path itself, or calls ``evaluate`` per
        block or per replicate), or ``(terms, combine)``: ``terms`` an (n, k) array of per-row
        additive terms of the test rows (e.g. for an event-level F1: detected events, events,
        true flags, flags, each counted on the row where it falls) and ``combine(sums)`` mapping
        their sums (B × k) to the metric (B,). Used only when ``combine`` of the full-sample sums
        equals ``evaluate``'s value.
        """
        return None

    def supplementary_metrics(self, dataset: Dataset, ev: Evaluation, *, n_replicates: int, seed: int) -> dict[str, float]:
        """Optional: metrics that need more than one predictor's output, computed once every
        baseline has predicted the test rows (e.g. a secondary output of the model against two
        baselines on identical rows, with paired bootstrap intervals on the differences).

        ``fit_and_evaluate`` adds them to ``ev.metrics`` (so a run logs them as ``model/<name>``);
        ``n_replicates`` is 0 when no bootstrap is asked for, ``seed`` is the bootstrap's. Default: none.
        """
        return {}

    def member_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """The primary metric of each ensemble member, from ``evaluate``'s ``member_<name>_<primary>``
        keys (empty for a model that is not an ensemble). The champion gate requires the model to
        be at least as good as each (``spec.must_beat_members``)."""
        prefix, suffix = "member_", f"_{self.spec.primary_metric}"
        return {k[len(prefix):-len(suffix)]: float(v) for k, v in metrics.items()
                if k.startswith(prefix) and k.endswith(suffix) and len(k) > len(prefix) + len(suffix)}


class Baseline(BaseEstimator):
    """A baseline: the simple rule or reference a practitioner tries before any model.

    Persistence, a climatology, a fixed factor, a threshold rule of a standard, a
    logistic regression on two columns: whatever a utility engineer would use without
    the model. Each :class:`GridModel` names one (``baseline()``). A baseline has the
    model's interface (``fit(X, y)``, ``predict(X)`` with the same output columns and
    units), so :func:`fit_and_evaluate` fits both on the same training rows and judges
    both with the model's ``evaluate`` on the same held-out rows. A rule that learns
    nothing still implements ``fit`` (it checks the input and returns ``self``).

    Parameters
    ----------
    **params
        Each baseline's own, in its ``__init__`` (thresholds, lags; units in their names).

    Attributes
    ----------
    spec : ModelSpec or None
        Class attribute: the spec of the model the baseline is judged with, where set.
    name : str or None
        Class attribute: a short human name for tables and reports (e.g. ``"EN 50160
        multi-channel rule"``); None: the catalogue's baseline name for the named baseline,
        the class name otherwise.

    Notes
    -----
    The ladder (:meth:`GridModel.ladder`) fits every baseline of a model on the same training
    rows with ``fit(X, y)`` and predicts the same test rows with ``predict(X)``, so a baseline
    sees exactly what the model sees. A baseline that needs per-task context ``fit(X, y)`` lacks
    (the model's settings, a lag, a feeder's parameters) gets it through its constructor: the
    ladder builds each further baseline with :meth:`for_model`, which a baseline overrides to copy
    what it needs from the model's parameters. Context that depends on the rows must come with
    the rows: add the column to the dataset's ``X`` (the model ignores columns it does not use).
    """

    spec: ClassVar[ModelSpec | None] = None
    name: ClassVar[str | None] = None

    @classmethod
    def for_model(cls, model: GridModel) -> Baseline:
        """A fresh baseline for ``model``'s ladder; default ``cls()``. Override to take settings
        from the model (e.g. ``cls(lags=model.lags)``)."""
        return cls()

    def fit(self, X, y=None):  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, X):  # pragma: no cover - interface
        raise NotImplementedError


def baseline_names(baselines: list[Baseline], spec: ModelSpec) -> list[str]:
    """Unique short names of a ladder: each class's ``name``; else the catalogue's baseline name
    for the first and the class name for the others."""
    names: list[str] = []
    for k, bl in enumerate(baselines):
        name = getattr(type(bl), "name", None)
        if not isinstance(name, str) or not name:
            name = spec.baseline if k == 0 else type(bl).__name__
        base, i = name, 2
        while name in names:
            name, i = f"{base} #{i}", i + 1
        names.append(name)
    return names


def fit_and_evaluate(model: GridModel, dataset: Dataset, *, baselines: list[Baseline] | None = None,
                     bootstrap: bool = True, n_replicates: int = 1000, seed: int = 0,
                     time_budget_s: float | None = None) -> tuple[GridModel, Baseline, Evaluation]:
    """Fit the model and every baseline of its ladder on the training rows, score all on the test rows.

    Parameters
    ----------
    model : the unfitted model.
    dataset : its train/test split.
    baselines : unfitted baselines (default ``model.ladder()``; the first is the catalogue's named one).
    bootstrap : compute the paired block-bootstrap intervals of the primary metric (``ev.uncertainty``).
    n_replicates, seed : B and the seed of the bootstrap draws.
    time_budget_s : time limit [s] of the bootstrap's generic fallback (default
        ``$GRIDTWIN_BOOTSTRAP_BUDGET_S`` or 20 s; the vectorised paths always do ``n_replicates``).

    Returns
    -------
    The fitted model, the fitted named baseline, and the :class:`Evaluation`.
    """
    t0 = time.perf_counter()
    model.fit(dataset.X_train, dataset.y_train)
    t1 = time.perf_counter()
    ladder = list(baselines) if baselines is not None else model.ladder()
    fitted = [bl.fit(dataset.X_train, dataset.y_train) for bl in ladder]
    t2 = time.perf_counter()
    ev = evaluate(model, dataset, fitted)
    ev.timings_s.update({"fit_s": t1 - t0, "baseline_fit_s": t2 - t1})
    if bootstrap:
        attach_uncertainty(model, dataset, ev, n_replicates=n_replicates, seed=seed, time_budget_s=time_budget_s)
    t3 = time.perf_counter()
    extra = model.supplementary_metrics(dataset, ev, n_replicates=n_replicates if bootstrap else 0, seed=seed)
    if extra:
        ev.metrics.update({k: float(v) for k, v in extra.items()})
        ev.timings_s["supplementary_s"] = time.perf_counter() - t3
    return model, fitted[0], ev


def attach_uncertainty(model: GridModel, dataset: Dataset, ev: Evaluation, *, n_replicates: int = 1000, seed: int = 0,
                       time_budget_s: float | None = None) -> None:
    """Set ``ev.uncertainty``: paired block-bootstrap intervals of the primary metric for the model,
    every baseline of the ladder and the model's difference to each (same blocks for all)."""
    import os

    from ..evaluation import bootstrap

    primary = model.spec.primary_metric
    budget = float(os.environ.get("GRIDTWIN_BOOTSTRAP_BUDGET_S", "20")) if time_budget_s is None else float(time_budget_s)
    preds = {"model": ev.predictions["model"], **ev.ladder_predictions}
    values = {"model": ev.primary, **{k: m[primary] for k, m in ev.ladder.items()}}
    ev.uncertainty = bootstrap(
        lambda y, p, m: model.evaluate(y, p, m), primary, model.spec.greater_is_better, dataset.y_test, preds, values,
        meta=dataset.meta_test, block=model.bootstrap_blocks(dataset), n_replicates=n_replicates, seed=seed,
        preferred_columns=list(model.spec.output_units), time_budget_s=budget,
        terms=lambda p: model.bootstrap_terms(dataset.y_test, p, dataset.meta_test))
    ev.timings_s["bootstrap_s"] = ev.uncertainty.seconds


def evaluate(model: GridModel, dataset: Dataset, baselines: Baseline | list[Baseline]) -> Evaluation:
    """Predict the same test rows with the model and every fitted baseline and score all the same way."""
    ladder = [baselines] if isinstance(baselines, Baseline) else list(baselines)
    if not ladder:
        raise ValueError(f"{model.spec.model_id}: no baseline to judge the model against")
    names = baseline_names(ladder, model.spec)
    X = dataset.X_test
    rows = digest(X)
    t0 = time.perf_counter()
    y_model = model.predict(X)
    t1 = time.perf_counter()
    preds = {name: bl.predict(X) for name, bl in zip(names, ladder, strict=True)}
    t2 = time.perf_counter()
    short = {name: _n_rows(p) for name, p in preds.items() if _n_rows(p) != _n_rows(X)}
    if _n_rows(y_model) != _n_rows(X) or short:
        raise ValueError(f"{model.spec.model_id}: predictions do not cover the {_n_rows(X)} test rows "
                         f"(model {_n_rows(y_model)}, baselines {short})")
    if digest(X) != rows:
        raise ValueError(f"{model.spec.model_id}: a predict() changed the test rows in place")
    metrics = model.evaluate(dataset.y_test, y_model, dataset.meta_test)
    ladder_metrics = {name: {k: float(v) for k, v in model.evaluate(dataset.y_test, p, dataset.meta_test).items()}
                      for name, p in preds.items()}
    first = names[0]
    ev = Evaluation(
        spec=model.spec,
        metrics={k: float(v) for k, v in metrics.items()},
        baseline_metrics=ladder_metrics[first],
        n_test=_n_rows(X),
        test_rows_digest=rows,
        predictions={"model": y_model, "baseline": preds[first]},
        timings_s={"predict_s": t1 - t0, "baseline_predict_s": t2 - t1},
        ladder=ladder_metrics,
        ladder_predictions=preds,
        fitted_baselines=dict(zip(names, ladder, strict=True)),
    )
    missing = [n for n, m in {"model": ev.metrics, **ladder_metrics}.items() if model.spec.primary_metric not in m]
    if missing:
        raise ValueError(f"{model.spec.model_id}: evaluate() did not return the primary metric "
                         f"{model.spec.primary_metric!r} for {missing}")
    ev.members = model.member_metrics(ev.metrics)
    ev.figures = model.figures(dataset, ev.predictions)
    return ev


def input_matrix(X, columns: pd.Index, who: str, layout: str, *, any_names: bool = False) -> np.ndarray:
    """A fixed-width float input (frame with ``columns``, or an array) as (n, width) float64.

    ``any_names``: a frame of exactly the right width is accepted whatever its column
    names. Anything else (missing columns, wrong shape, no rows, NaN or inf) is refused
    with one line naming the model (``who``) and the expected ``layout``.
    """
    width = len(columns)
    if isinstance(X, pd.DataFrame):
        if X.columns.equals(columns):  # the usual case: no lookup by name, no copy
            arr = X.to_numpy(dtype=float)
        else:
            missing = [c for c in columns if c not in X.columns]
            if missing and not (any_names and X.shape[1] == width):
                raise InputError(f"{who}: input frame lacks columns {missing[:3]}; pass {layout}")
            arr = X.to_numpy(dtype=float) if missing else X[list(columns)].to_numpy(dtype=float)
    else:
        arr = np.asarray(X, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise InputError(f"{who}: expected shape (n, {width}), got {arr.shape}; pass {layout}")
    if arr.shape[0] == 0:
        raise InputError(f"{who}: no input rows; pass at least one row of {layout}")
    if not np.isfinite(arr).all():
        raise InputError(f"{who}: an input row holds NaN or inf (a gap in the readings); drop or repair it first")
    return arr


def feature_array(X, columns) -> tuple[np.ndarray, pd.Index | None]:
    """The ``columns`` of ``X`` in that order as a float64 array (n, len(columns)), and the
    index the output takes (None for array input). Same contract as :func:`feature_frame`, but
    without building a frame: selecting columns of a one-row DataFrame costs ~0.3 ms."""
    if isinstance(X, pd.DataFrame):
        if len(X.columns) == len(columns) and list(X.columns) == list(columns):
            return X.to_numpy(dtype=float), X.index
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise ValueError(f"input lacks feature columns {missing[:5]}; pass gridtwin_lib.features.compute(...) output")
        return np.column_stack([X[c].to_numpy(dtype=float) for c in columns]), X.index
    if hasattr(X, "to_pandas"):  # polars
        return feature_array(X.to_pandas(), columns)
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != len(columns):
        raise ValueError(f"array input must have {len(columns)} columns in the order {list(columns)}")
    return arr, None


def feature_frame(X, columns) -> pd.DataFrame:
    """``X`` as a frame holding ``columns`` (a frame is returned as is once checked; a polars
    frame is converted; an array must have ``columns`` in order)."""
    if isinstance(X, pd.DataFrame):
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise ValueError(f"input lacks feature columns {missing[:5]}; pass gridtwin_lib.features.compute(...) output")
        return X
    if hasattr(X, "to_pandas"):  # polars
        return feature_frame(X.to_pandas(), columns)
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != len(columns):
        raise ValueError(f"array input must have {len(columns)} columns in the order {list(columns)}")
    return pd.DataFrame(arr, columns=list(columns))


@dataclass(frozen=True)
class AdviceEffects:
    """Day-by-day outcomes of acting on a decision model's advice, re-simulated on its held-out days.

    Parameters
    ----------
    frame : one row per held-out day (and feeder), a ``day`` column and ``pattern.format(name)``
        columns for each of ``names``.
    label : what the advice is (e.g. "var set-point").
    outcome : the outcome and its unit (e.g. "feeder losses [kWh per day]"); lower is better.
    pattern : column name pattern of the outcome, e.g. ``"losses_{}_kwh"``.
    names : the four actions compared: no action, the baseline rule, the advice, the optimiser.
    """

    frame: pd.DataFrame
    label: str
    outcome: str
    pattern: str
    names: tuple[str, str, str, str]


def digest(*parts) -> str:
    """A short, stable content hash of frames/arrays (identifies the data a run used)."""
    h = hashlib.sha256()
    for part in parts:
        if hasattr(part, "to_pandas") and not isinstance(part, pd.DataFrame | pd.Series):
            part = part.to_pandas()  # polars
        if part is None:
            h.update(b"none")
        elif isinstance(part, pd.DataFrame | pd.Series):
            try:
                h.update(pd.util.hash_pandas_object(part, index=True).values.tobytes())
            except TypeError:  # unhashable cells (lists, dicts)
                h.update(part.to_json(date_format="iso", default_handler=str).encode())
            h.update(repr(list(part.columns) if isinstance(part, pd.DataFrame) else [part.name]).encode())
        elif isinstance(part, np.ndarray):
            h.update(np.ascontiguousarray(part).tobytes())
            h.update(repr((part.shape, str(part.dtype))).encode())
        else:
            h.update(repr(part).encode())
    return h.hexdigest()[:16]


def _n_rows(x) -> int:
    if x is None:
        return 0
    if hasattr(x, "shape"):
        return int(x.shape[0])
    return len(x)
