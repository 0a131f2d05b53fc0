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
* ``figures(dataset, predictions)``: plotly figures of the evaluation.

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
    """Model and baseline judged on the same held-out rows."""

    spec: ModelSpec
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    n_test: int
    test_rows_digest: str
    figures: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def primary(self) -> float:
        return self.metrics[self.spec.primary_metric]

    @property
    def baseline_primary(self) -> float:
        return self.baseline_metrics[self.spec.primary_metric]

    @property
    def skill(self) -> float:
        """Skill on the primary metric: ``1 - model/baseline`` for errors,
        ``model - baseline`` for scores where greater is better."""
        return skill(self.primary, self.baseline_primary, self.spec.greater_is_better)

    @property
    def beats_baseline(self) -> bool:
        return better(self.primary, self.baseline_primary, self.spec.greater_is_better)

    def table(self) -> pd.DataFrame:
        """Metrics side by side (rows: metric; columns: model, baseline)."""
        names = list(dict.fromkeys([*self.metrics, *self.baseline_metrics]))
        return pd.DataFrame(
            {"model": [self.metrics.get(n, np.nan) for n in names],
             "baseline": [self.baseline_metrics.get(n, np.nan) for n in names]},
            index=pd.Index(names, name="metric"),
        )


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
    """

    spec: ClassVar[ModelSpec | None] = None

    def fit(self, X, y=None):  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, X):  # pragma: no cover - interface
        raise NotImplementedError


def fit_and_evaluate(model: GridModel, dataset: Dataset) -> tuple[GridModel, Baseline, Evaluation]:
    """Fit the model and its baseline on the training rows, score both on the test rows."""
    t0 = time.perf_counter()
    model.fit(dataset.X_train, dataset.y_train)
    t1 = time.perf_counter()
    bl = model.baseline().fit(dataset.X_train, dataset.y_train)
    t2 = time.perf_counter()
    ev = evaluate(model, dataset, bl)
    ev.timings_s.update({"fit_s": t1 - t0, "baseline_fit_s": t2 - t1})
    return model, bl, ev


def evaluate(model: GridModel, dataset: Dataset, baseline: Baseline) -> Evaluation:
    """Predict the same test rows with model and baseline and score both the same way."""
    X = dataset.X_test
    rows = digest(X)
    t0 = time.perf_counter()
    y_model = model.predict(X)
    t1 = time.perf_counter()
    y_base = baseline.predict(X)
    if _n_rows(y_model) != _n_rows(X) or _n_rows(y_base) != _n_rows(X):
        raise ValueError(f"{model.spec.model_id}: predictions do not cover the {_n_rows(X)} test rows "
                         f"(model {_n_rows(y_model)}, baseline {_n_rows(y_base)})")
    metrics = model.evaluate(dataset.y_test, y_model, dataset.meta_test)
    base_metrics = model.evaluate(dataset.y_test, y_base, dataset.meta_test)
    predictions = {"model": y_model, "baseline": y_base}
    ev = Evaluation(
        spec=model.spec,
        metrics={k: float(v) for k, v in metrics.items()},
        baseline_metrics={k: float(v) for k, v in base_metrics.items()},
        n_test=_n_rows(X),
        test_rows_digest=rows,
        predictions=predictions,
        timings_s={"predict_s": t1 - t0},
    )
    if model.spec.primary_metric not in ev.metrics:
        raise ValueError(f"{model.spec.model_id}: evaluate() did not return the primary metric "
                         f"{model.spec.primary_metric!r}")
    ev.figures = model.figures(dataset, predictions)
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
