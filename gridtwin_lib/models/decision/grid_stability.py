"""m15 grid stability (stacking ensemble), baseline :class:`Climatology`.

m15 ``GridStability``
    P(any disturbance event starts in the next 30 min) from one minute of three-phase
    features; stacking of RandomForest, XGBoost and a (standardised) logistic regression with
    a logistic meta-learner on the members' out-of-fold logits (chronological folds: members
    trained on folds < k predict fold k). ``stability_score = 100 (1 - p)``. Baseline
    :class:`Climatology` (training base rate). ``predict`` also returns each member's
    probability so that ``evaluate`` reports the members' ROC-AUC and Brier.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...small_frames import SMALL_ROWS, column_index
from ..base import Baseline, Dataset, GridModel, ModelSpec, input_matrix
from ..serving import ServingAdapter, float_frame, prefixed

# =========================================================================== m15

M15_OUTPUTS = {"p_disturbance_30min": "1", "stability_score": "0-100", "p_member_rf": "1", "p_member_xgb": "1",
               "p_member_logit": "1"}
MEMBERS = ("rf", "xgb", "logit")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class GridStability(GridModel):
    """Stacking (RF + XGBoost + logistic, logistic meta-learner on out-of-fold logits).

    Input: one row per minute of :func:`gridtwin_lib.features.compute` columns (the builder's
    ``X``, rows in chronological order for ``fit``). Output: ``p_disturbance_30min`` [1],
    ``stability_score`` = 100 (1 - p) and the members' probabilities ``p_member_*`` [1].

    Parameters
    ----------
    n_folds : int
        Chronological folds of the out-of-fold member predictions.
    rf_trees, rf_min_leaf, rf_max_samples : int, int, float
        RandomForest member.
    xgb_trees, xgb_depth, xgb_learning_rate : int, int, float
        XGBoost member.
    logit_c : float
        Inverse regularisation of the logistic member.
    random_state, n_jobs : int
        Seed and threads of the members.

    Attributes
    ----------
    members_ : dict
        The three members refitted on all training rows.
    meta_ : LogisticRegression
        Meta-learner on the members' out-of-fold logits.
    columns_ : list of str
        Feature columns seen in training.
    base_rate_ : float
        Training share of rows with a disturbance in the next 30 min (1).
    """

    spec = ModelSpec(
        model_id="m15_grid_stability", module="decision", algorithm="stacking ensemble (RandomForest + XGBoost + logistic)",
        baseline="climatology (training base rate); each member reported too",
        target="any disturbance event (grid twin truth events: sag, swell, undervoltage, interruption, overcurrent, overload, "
               "frequency_excursion, unbalance, harmonics) starting in the next 30 min",
        primary_metric="roc_auc", greater_is_better=True, output_units=M15_OUTPUTS,
        secondary_metrics=("brier", "brier_skill", "member_rf_roc_auc", "member_xgb_roc_auc", "member_logit_roc_auc"),
    )

    def __init__(self, n_folds: int = 4, rf_trees: int = 100, rf_min_leaf: int = 20, rf_max_samples: float = 0.3,
                 xgb_trees: int = 150, xgb_depth: int = 4, xgb_learning_rate: float = 0.1, logit_c: float = 0.1,
                 random_state: int = 0, n_jobs: int = 2):
        self.n_folds, self.rf_trees, self.rf_min_leaf, self.rf_max_samples = n_folds, rf_trees, rf_min_leaf, rf_max_samples
        self.xgb_trees, self.xgb_depth, self.xgb_learning_rate = xgb_trees, xgb_depth, xgb_learning_rate
        self.logit_c, self.random_state, self.n_jobs = logit_c, random_state, n_jobs

    def _members(self) -> dict[str, Any]:
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from xgboost import XGBClassifier
        return {
            "rf": RandomForestClassifier(n_estimators=self.rf_trees, min_samples_leaf=self.rf_min_leaf, max_features="sqrt",
                                         max_samples=self.rf_max_samples,
                                         n_jobs=self.n_jobs, random_state=self.random_state),
            "xgb": XGBClassifier(n_estimators=self.xgb_trees, max_depth=self.xgb_depth, learning_rate=self.xgb_learning_rate,
                                 subsample=0.8, colsample_bytree=0.8, n_jobs=self.n_jobs, random_state=self.random_state,
                                 max_bin=64, tree_method="hist", eval_metric="logloss", verbosity=0),
            "logit": make_pipeline(StandardScaler(), LogisticRegression(C=self.logit_c, max_iter=500)),
        }

    def _matrix(self, X) -> np.ndarray:
        from ..base import input_matrix
        cols = pd.Index(self.columns_) if hasattr(self, "columns_") else None
        if cols is None:
            raise InputError("m15: model is not fitted")
        return input_matrix(X, cols, "m15", "the feature columns of datasets.decision.grid_stability")

    def fit(self, X, y=None):
        from sklearn.linear_model import LogisticRegression
        if y is None:
            raise InputError("m15: labels y (disturbance in the next 30 min) are required")
        if not isinstance(X, pd.DataFrame):
            raise InputError("m15: pass a DataFrame of feature columns")
        self.columns_ = list(X.columns)
        A = self._matrix(X)
        yy = np.asarray(y, dtype=int)
        if len(np.unique(yy)) < 2:
            raise InputError("m15: training labels hold one class only; simulate longer or add an event-rich scenario")
        edges = np.linspace(0, len(A), self.n_folds + 1).astype(int)
        oof, keep = np.zeros((len(A), len(MEMBERS))), np.zeros(len(A), bool)
        for k in range(1, self.n_folds):
            tr, te = slice(0, edges[k]), slice(edges[k], edges[k + 1])
            if len(np.unique(yy[tr])) < 2:
                continue
            for j, est in enumerate(self._members().values()):
                oof[te, j] = est.fit(A[tr], yy[tr]).predict_proba(A[te])[:, 1]
            keep[te] = True
        if len(np.unique(yy[keep])) < 2:
            raise InputError("m15: out-of-fold rows hold one class only; use fewer folds or more data")
        self.meta_ = LogisticRegression(C=1.0, max_iter=1000).fit(_logit(oof[keep]), yy[keep])
        self.members_ = {name: est.fit(A, yy) for name, est in self._members().items()}
        self.base_rate_ = float(yy.mean())
        return self

    def predict(self, X) -> pd.DataFrame:
        A = self._matrix(X)
        probs = np.column_stack([self._member_proba(m, A)[:, 1] for m in MEMBERS])
        p = self.meta_.predict_proba(_logit(probs))[:, 1]
        out = {"p_disturbance_30min": p, "stability_score": 100.0 * (1.0 - p)}
        out.update({f"p_member_{m}": probs[:, j] for j, m in enumerate(MEMBERS)})
        return pd.DataFrame(out)

    def _member_proba(self, member: str, A: np.ndarray) -> np.ndarray:
        return member_proba(self, member, self.members_[member], A)

    def baseline(self):
        return Climatology()

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_flat_forests", None)  # derived from members_["rf"], rebuilt on first use
        return state

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        """ROC-AUC and Brier of ``p_disturbance_30min`` (and of each member's probability when present).

        ``brier_skill`` = 1 - Brier / Brier of the test sample's climatology (its own base rate).
        """
        from sklearn.metrics import brier_score_loss, roc_auc_score
        y = np.asarray(y_true, dtype=int)
        two = len(np.unique(y)) == 2

        def auc(p):
            return float(roc_auc_score(y, p)) if two else float("nan")

        p = np.asarray(y_pred["p_disturbance_30min"], float)
        ref = float(np.mean((y - y.mean()) ** 2))
        out = {"roc_auc": auc(p), "brier": float(brier_score_loss(y, p)),
               "brier_skill": float(1 - brier_score_loss(y, p) / ref) if ref > 0 else float("nan"),
               "base_rate": float(y.mean())}
        for m in MEMBERS:
            col = f"p_member_{m}"
            if col in y_pred and np.isfinite(y_pred[col]).all():
                out[f"member_{m}_roc_auc"] = auc(y_pred[col])
                out[f"member_{m}_brier"] = float(brier_score_loss(y, y_pred[col]))
        return out

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        import plotly.graph_objects as go
        from sklearn.metrics import roc_curve
        y = np.asarray(dataset.y_test, int)
        fig = go.Figure()
        model = predictions["model"]
        curves = {"ensemble": model["p_disturbance_30min"], **{m: model[f"p_member_{m}"] for m in MEMBERS},
                  "climatology": predictions["baseline"]["p_disturbance_30min"]}
        if len(np.unique(y)) == 2:
            for name, p in curves.items():
                fpr, tpr, _ = roc_curve(y, p)
                fig.add_scatter(x=fpr, y=tpr, mode="lines", name=name)
        fig.update_layout(title="m15: ROC on held-out minutes", xaxis_title="false positive rate", yaxis_title="true positive rate")
        ts = dataset.meta_test["ts"] if dataset.meta_test is not None and "ts" in dataset.meta_test else np.arange(len(y))
        fig2 = go.Figure()
        fig2.add_scatter(x=ts, y=model["stability_score"], mode="markers", marker={"size": 3, "color": y, "colorscale": "Bluered"},
                         name="stability score (red: disturbance within 30 min)")
        fig2.update_layout(title="m15: stability score 100 (1 - p) on the test range", yaxis_title="score")
        return {"m15_roc": fig, "m15_stability_score": fig2}


class Climatology(Baseline):
    """Baseline: the training base rate for every row."""

    spec = GridStability.spec
    name = "climatology (training base rate)"

    def fit(self, X, y=None):
        if y is None:
            raise InputError("m15 climatology: labels y are required")
        self.base_rate_ = float(np.mean(np.asarray(y, float)))
        return self

    def predict(self, X) -> pd.DataFrame:
        n = len(X)
        if n == 0:
            raise InputError("m15 climatology: no input rows")
        p = np.full(n, self.base_rate_)
        out = {"p_disturbance_30min": p, "stability_score": 100.0 * (1.0 - p)}
        out.update({f"p_member_{m}": np.full(n, np.nan) for m in MEMBERS})
        return pd.DataFrame(out)


_PROBABILITY_COLUMNS = pd.Index(["p_disturbance_30min", "stability_score", *(f"p_member_{m}" for m in MEMBERS)])


def _probability_frame(p: np.ndarray) -> pd.DataFrame:
    """The model's output columns for one probability [1] per row (no member columns); from one
    float block (a dict of columns costs ~10x more to frame for the single readings served)."""
    p = np.asarray(p, dtype=float)
    values = np.full((len(p), len(_PROBABILITY_COLUMNS)), np.nan)
    values[:, 0], values[:, 1] = p, 100.0 * (1.0 - p)
    return pd.DataFrame(values, columns=_PROBABILITY_COLUMNS, copy=False)


def member_proba(owner, member: str, est, A: np.ndarray) -> np.ndarray:
    """One member's class probabilities. On a few rows (single readings) the forest walks its
    trees with NumPy (verified against scikit-learn, ~0.1 ms instead of ~20; the flat copy is kept
    on ``owner``) and XGBoost runs on the calling thread: waking its worker threads costs more
    than the trees (up to ~30 ms on a busy 2-core machine). Same values either way."""
    from .._trees import FLAT_MAX_ROWS, forest_proba

    if len(A) > FLAT_MAX_ROWS:
        return est.predict_proba(A)
    if member == "rf":
        return forest_proba(owner, est, A)
    if member == "xgb":
        import xgboost

        with xgboost.config_context(nthread=1):
            return est.predict_proba(A)
    return est.predict_proba(A)


class BestSingleMember(Baseline):
    """Ladder baseline of m15: the best single member of the ensemble, chosen on training rows only.

    Each member (:class:`GridStability`'s RandomForest, XGBoost, logistic regression, with the
    model's parameters) is fitted on the first ``1 - validation_fraction`` of the training rows
    (chronological) and scored by ROC-AUC on the rest; the best is refitted on every training row.

    Parameters
    ----------
    model_params : dict or None
        :class:`GridStability` parameters of the members (None: its defaults).
    validation_fraction : float
        Last share of the training rows the member is chosen on.
    """

    spec = GridStability.spec
    name = "best single member (chosen on a validation slice of training)"

    def __init__(self, model_params: dict | None = None, validation_fraction: float = 0.25):
        self.model_params = model_params
        self.validation_fraction = validation_fraction

    @classmethod
    def for_model(cls, model):
        return cls(model_params=model.get_params())

    def fit(self, X, y=None):
        from sklearn.metrics import roc_auc_score

        if y is None:
            raise InputError("m15 best member: labels y are required")
        if not 0 < self.validation_fraction < 1:
            raise InputError(f"m15 best member: validation_fraction must be in (0, 1) (got {self.validation_fraction})")
        ens = GridStability(**(self.model_params or {}))
        A = input_matrix(X, pd.Index(X.columns), "m15 best member", "the feature columns of datasets.decision.grid_stability") \
            if isinstance(X, pd.DataFrame) else np.asarray(X, float)
        self.columns_ = list(X.columns) if isinstance(X, pd.DataFrame) else None
        yy = np.asarray(y, dtype=int)
        cut = int(len(A) * (1 - self.validation_fraction))
        if len(np.unique(yy[:cut])) < 2 or len(np.unique(yy[cut:])) < 2:
            raise InputError("m15 best member: the fitting or validation slice of training holds one class only; simulate longer")
        self.validation_auc_ = {name: float(roc_auc_score(yy[cut:], est.fit(A[:cut], yy[:cut]).predict_proba(A[cut:])[:, 1]))
                                for name, est in ens._members().items()}
        self.member_ = max(self.validation_auc_, key=self.validation_auc_.get)
        self.estimator_ = ens._members()[self.member_].fit(A, yy)
        return self

    def predict(self, X) -> pd.DataFrame:
        if self.columns_ is not None:
            A = input_matrix(X, column_index(tuple(self.columns_)), "m15 best member", "the feature columns of datasets.decision.grid_stability")
        else:
            A = np.asarray(X, float)
        return _probability_frame(member_proba(self, self.member_, self.estimator_, A)[:, 1])

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_flat_forests", None)  # derived from estimator_, rebuilt on first use
        return state


class RegimeBaseRate(Baseline):
    """Ladder baseline of m15: the base rate per operating regime: a shallow decision tree
    (scikit-learn, depth ``max_depth``, leaves of at least ``min_samples_leaf`` rows) on the same
    features, whose leaf frequencies are the probability [1]. A practitioner's "which regime is the
    grid in, and how often did trouble follow it" rule, fitted on training rows."""

    spec = GridStability.spec
    name = "base rate per regime (shallow decision tree)"

    def __init__(self, max_depth: int = 3, min_samples_leaf: int = 200, random_state: int = 0):
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def fit(self, X, y=None):
        from sklearn.tree import DecisionTreeClassifier

        if y is None:
            raise InputError("m15 regime base rate: labels y are required")
        self.columns_ = list(X.columns)
        A = input_matrix(X, pd.Index(self.columns_), "m15 regime base rate", "the feature columns of datasets.decision.grid_stability")
        self.tree_ = DecisionTreeClassifier(max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
                                            random_state=self.random_state).fit(A, np.asarray(y, dtype=int))
        return self

    def predict(self, X) -> pd.DataFrame:
        A = input_matrix(X, pd.Index(self.columns_), "m15 regime base rate", "the feature columns of datasets.decision.grid_stability")
        return _probability_frame(self.tree_.predict_proba(A)[:, -1])


# --------------------------------------------------------------------------- serving


def design_order(new: pl.DataFrame, numpy_max_rows: int = SMALL_ROWS) -> np.ndarray:
    """Positions of ``new``'s rows by ``ts``, ``device_id`` and ``row``: a poll's few readings with
    NumPy (a Polars sort expression costs more to plan than to run there), a batch with Polars."""
    if new.height > numpy_max_rows:
        return new.select(pl.arg_sort_by("ts", "device_id", "row")).to_series().to_numpy()
    if new.height <= 1:
        return np.zeros(new.height, np.int64)
    _, device_rank = np.unique(np.array(new["device_id"].to_list(), dtype=object), return_inverse=True)
    return np.lexsort((new["row"].to_numpy(), device_rank, new["ts"].cast(pl.Int64).to_numpy()))  # last key first


def _serve(engine, est, model_id, new, held, errors):
    from ...datasets.decision.grid_stability import grid_stability_design

    # the training design is built in (ts, device) order: carry-forward follows the same order (the
    # readings' order found once; only the model's columns are reordered)
    order = design_order(new)
    cols = list(est.columns_)
    X = pd.DataFrame(float_frame(new, cols, held.cache).to_numpy()[order], columns=column_index(tuple(cols)), copy=False)
    devices = new["device_id"].to_numpy()[order]
    if len(devices) > len(set(devices.tolist())):  # one reading per device has nothing to carry forward
        X.insert(0, "device_id", devices)
    return prefixed(model_id, new["row"].to_numpy()[order], est.predict(grid_stability_design(X, cols)))


#: how the inference engine serves m15: the reading's feature row, carried forward per device as in training
SERVING = ServingAdapter(score=_serve, outputs=("p_disturbance_30min", "stability_score"))
