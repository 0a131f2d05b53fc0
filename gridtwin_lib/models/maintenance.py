"""Maintenance models m05 (equipment failure, XGBoost) and m06 (overload risk, calibrated RBF SVM).

m05 :class:`EquipmentFailure`: P(the asset fails within the next 7 days | its observable history
up to t), one daily row per asset (see :mod:`gridtwin_lib.datasets.maintenance`). Inputs are causal
summaries of the observable readings only (measured loading, top-oil and ambient temperature,
calendar age, a hot spot *estimated* from them); never the twin's hidden state. Training rows
come in time order: ``fit`` holds out the last ``validation_fraction`` of them (chronological)
to pick the number of boosting rounds (early stopping) and the alarm threshold (max F1), then
refits on all rows (depth 2, min_child_weight 20, log-loss early stopping: chosen on that
validation slice). Baseline :class:`AgeLoadingLogistic`: logistic regression on calendar age
and 30-day mean loading, with its alarm threshold chosen the same way. Scores: PR-AUC (primary,
average precision), Brier score, and the median lead time [days] of the first alarm in the
horizon before each test failure (with the share of failures alarmed at all).

m06 :class:`OverloadRisk`: class of the maximum loading in the next hour (0: < 80 %, 1: 80-100 %,
2: > 100 % of rating) from features up to t; SVC(RBF) calibrated by
``CalibratedClassifierCV(method='sigmoid', ensemble=False)`` (Platt scaling on cross-validated
decisions) on a stratified subsample of ``max_train_rows`` training rows (C = 10 and 8000 rows
chosen on the last quarter of the training range; fits in ~1-3 s); the predicted class is the most probable one after optional class re-weighting. Baseline
:class:`PersistenceClass`: the class of the current measured loading. Scores: macro-F1 (primary),
recall of the > 100 % class, accuracy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, precision_recall_curve, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .base import Dataset, GridModel, ModelSpec, input_matrix

M05_INPUT_COLUMNS: tuple[str, ...] = (
    "age_years", "days_observed", "ageing_cum",
    "load_mean_1d", "load_max_1d", "top_oil_max_1d", "ambient_max_1d", "hs_est_max_1d", "ageing_est_1d",
    "frac_over_1pu_1d", "frac_hs_over_120_1d",
    "load_mean_7d", "load_max_7d", "hs_est_max_7d", "ageing_est_7d", "days_hs_over_120_7d",
    "load_mean_30d", "load_max_30d", "hs_est_max_30d", "ageing_est_30d", "days_hs_over_120_30d",
    "top_oil_max_7d", "ambient_max_7d",
    "thermal_stress_1d", "thermal_stress_7d", "thermal_stress_30d", "equivalent_age_est",
)
M05_BASELINE_COLUMNS: tuple[str, ...] = ("age_years", "load_mean_30d")
M06_INPUT_COLUMNS: tuple[str, ...] = (
    "load_pu", "load_lag1", "load_lag2", "load_lag4", "load_mean_1h", "load_max_1h", "load_mean_4h",
    "load_mean_24h", "load_max_24h", "load_max_next1h_yday", "top_oil_temp_c", "ambient_temp_c", "hour_sin", "hour_cos",
)
M06_CLASSES: tuple[str, ...] = ("<80%", "80-100%", ">100%")
M06_EDGES_PU: tuple[float, float] = (0.8, 1.0)

_M05_LAYOUT = f"a frame with columns {list(M05_INPUT_COLUMNS)[:4]}... (datasets.maintenance.equipment_failure)"
_M06_LAYOUT = f"a frame with columns {list(M06_INPUT_COLUMNS)[:4]}... (datasets.maintenance.overload_risk)"


def _best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Probability threshold of maximal F1 on (y, p); 0.5 if y has no positive."""
    if y.sum() == 0:
        return 0.5
    prec, rec, thr = precision_recall_curve(y, p)
    f1 = 2 * prec[:-1] * rec[:-1] / np.maximum(prec[:-1] + rec[:-1], 1e-12)
    return float(thr[int(np.argmax(f1))])


def _split_val(n: int, fraction: float) -> int:
    """Index of the first validation row (the last ``fraction`` of time-ordered rows)."""
    return int(np.clip(round(n * (1 - fraction)), 1, n - 1))


# --------------------------------------------------------------------------- m05


class EquipmentFailure(GridModel):
    """m05: XGBoost probability that an asset fails within the next 7 days.

    Input: the daily rows of :func:`gridtwin_lib.datasets.maintenance.equipment_failure`
    (columns :data:`M05_INPUT_COLUMNS`: pu, degC, years, days). Output: ``p_fail_7d`` (1)
    and ``alarm`` (p at or above the threshold chosen on the validation slice).
    """

    spec: ClassVar[ModelSpec] = ModelSpec(
        model_id="m05_equipment_failure",
        module="maintenance",
        algorithm="XGBoost",
        baseline="logistic regression on age and mean loading",
        target="failure of the asset within the next 7 days (transformer ageing twin's `failures` truth)",
        primary_metric="pr_auc",
        greater_is_better=True,
        output_units={"p_fail_7d": "1", "alarm": "bool"},
        secondary_metrics=("brier", "median_lead_days", "failures_alarmed", "alarm_precision", "base_rate"),
    )
    input_columns: ClassVar[tuple[str, ...]] = M05_INPUT_COLUMNS

    def __init__(self, n_estimators: int = 600, max_depth: int = 2, learning_rate: float = 0.03, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, min_child_weight: float = 20.0, reg_lambda: float = 5.0,
                 validation_fraction: float = 0.25, early_stopping_rounds: int = 50, eval_metric: str = "logloss", random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.validation_fraction = validation_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.eval_metric = eval_metric
        self.random_state = random_state

    def _booster(self, n_estimators: int, early: int | None):
        from xgboost import XGBClassifier

        return XGBClassifier(n_estimators=n_estimators, max_depth=self.max_depth, learning_rate=self.learning_rate,
                             subsample=self.subsample, colsample_bytree=self.colsample_bytree,
                             min_child_weight=self.min_child_weight, reg_lambda=self.reg_lambda, objective="binary:logistic",
                             eval_metric=self.eval_metric, early_stopping_rounds=early, tree_method="hist", n_jobs=2,
                             random_state=self.random_state)

    def fit(self, X, y):
        A = input_matrix(X, pd.Index(self.input_columns), "m05", _M05_LAYOUT)
        y = np.asarray(y, int)
        k = _split_val(len(y), self.validation_fraction)
        if y[:k].sum() == 0 or y[k:].sum() == 0:  # no positive on one side: no early stopping, default threshold
            self.best_n_estimators_, self.threshold_, self.validation_pr_auc_ = self.n_estimators, 0.5, float("nan")
        else:
            probe = self._booster(self.n_estimators, self.early_stopping_rounds).fit(A[:k], y[:k], eval_set=[(A[k:], y[k:])], verbose=False)
            self.best_n_estimators_ = int(probe.best_iteration) + 1
            p_val = probe.predict_proba(A[k:], iteration_range=(0, self.best_n_estimators_))[:, 1]
            self.threshold_ = _best_f1_threshold(y[k:], p_val)
            self.validation_pr_auc_ = float(average_precision_score(y[k:], p_val))
        self.model_ = self._booster(self.best_n_estimators_, None).fit(A, y, verbose=False)
        self.feature_importances_ = pd.Series(self.model_.feature_importances_, index=list(self.input_columns)).sort_values(ascending=False)
        return self

    def predict_proba(self, X) -> np.ndarray:
        A = input_matrix(X, pd.Index(self.input_columns), "m05", _M05_LAYOUT)
        return self.model_.predict_proba(A)[:, 1]

    def predict(self, X) -> pd.DataFrame:
        p = self.predict_proba(X)
        return pd.DataFrame({"p_fail_7d": p, "alarm": p >= self.threshold_})

    def baseline(self):
        return AgeLoadingLogistic(validation_fraction=self.validation_fraction)

    def score(self, y_true, y_pred, meta=None) -> dict[str, float]:
        return failure_scores(y_true, y_pred, meta)

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        return _m05_figures(dataset, predictions)


class AgeLoadingLogistic(BaseEstimator):
    """m05 baseline: logistic regression on calendar age [years] and 30-day mean loading [pu]."""

    def __init__(self, validation_fraction: float = 0.25, C: float = 1.0):
        self.validation_fraction = validation_fraction
        self.C = C

    def _A(self, X) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            return input_matrix(X, pd.Index(M05_BASELINE_COLUMNS), "m05 baseline", _M05_LAYOUT)
        A = input_matrix(X, pd.Index(M05_INPUT_COLUMNS), "m05 baseline", _M05_LAYOUT)
        return A[:, [M05_INPUT_COLUMNS.index(c) for c in M05_BASELINE_COLUMNS]]

    def _new(self):
        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=1000))

    def fit(self, X, y):
        A, y = self._A(X), np.asarray(y, int)
        k = _split_val(len(y), self.validation_fraction)
        if y[:k].sum() and y[k:].sum():
            self.threshold_ = _best_f1_threshold(y[k:], self._new().fit(A[:k], y[:k]).predict_proba(A[k:])[:, 1])
        else:
            self.threshold_ = 0.5
        self.model_ = self._new().fit(A, y)
        return self

    def predict(self, X) -> pd.DataFrame:
        p = self.model_.predict_proba(self._A(X))[:, 1]
        return pd.DataFrame({"p_fail_7d": p, "alarm": p >= self.threshold_})


def lead_times_days(alarm: np.ndarray, meta: dict[str, Any]) -> tuple[np.ndarray, int]:
    """Lead time [days] of the first alarm in [f - horizon, f) before each test failure f (alarmed
    failures only) and the number of failures with at least one row in that window."""
    failures = meta.get("failures")
    if failures is None or len(failures) == 0:
        return np.array([]), 0
    ts = pd.to_datetime(meta["ts"], utc=True)
    dev = np.asarray(meta["device_id"])
    horizon = pd.Timedelta(days=float(meta.get("horizon_days", 7.0)))
    leads, n = [], 0
    for f_ts, f_dev in zip(pd.to_datetime(failures["ts"], utc=True), failures["device_id"]):
        window = (dev == f_dev) & (ts >= f_ts - horizon) & (ts < f_ts)
        if not window.any():
            continue
        n += 1
        hit = window & np.asarray(alarm, bool)
        if hit.any():
            leads.append((f_ts - ts[hit].min()) / pd.Timedelta(days=1))
    return np.asarray(leads, float), n


def failure_scores(y_true, y_pred, meta=None) -> dict[str, float]:
    y = np.asarray(y_true, int)
    p = np.asarray(y_pred["p_fail_7d"], float)
    alarm = np.asarray(y_pred["alarm"], bool)
    out = {
        "pr_auc": float(average_precision_score(y, p)) if y.sum() else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "base_rate": float(y.mean()),
        "alarm_precision": float(y[alarm].mean()) if alarm.any() else float("nan"),
        "alarm_recall_rows": float(alarm[y == 1].mean()) if y.sum() else float("nan"),
    }
    if meta is not None:
        leads, n = lead_times_days(alarm, meta)
        out["median_lead_days"] = float(np.median(leads)) if len(leads) else float("nan")
        out["failures_alarmed"] = float(len(leads) / n) if n else float("nan")
        out["n_failures"] = float(n)
    return out


def _m05_figures(dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
    import plotly.graph_objects as go

    y = np.asarray(dataset.y_test, int)
    figs: dict[str, Any] = {}
    if y.sum():
        fig = go.Figure()
        for name, pred in predictions.items():
            prec, rec, _ = precision_recall_curve(y, np.asarray(pred["p_fail_7d"], float))
            fig.add_scatter(x=rec, y=prec, mode="lines", name=f"{name} (AP {average_precision_score(y, pred['p_fail_7d']):.3f})")
        fig.add_hline(y=y.mean(), line_dash="dot", annotation_text="base rate")
        fig.update_layout(title="m05: precision-recall on test assets after the cut", xaxis_title="recall", yaxis_title="precision")
        figs["m05_pr_curve"] = fig
    meta = dataset.meta_test or {}
    if "device_id" in meta:
        dev = np.asarray(meta["device_id"])
        failed = meta.get("failures")
        pick = failed["device_id"].iloc[0] if failed is not None and len(failed) else dev[0]
        rows = dev == pick
        fig = go.Figure()
        ts = pd.to_datetime(meta["ts"][rows], utc=True)
        for name, pred in predictions.items():
            fig.add_scatter(x=ts, y=np.asarray(pred["p_fail_7d"])[rows], mode="lines", name=name)
        if failed is not None:
            for f in pd.to_datetime(failed.loc[failed["device_id"] == pick, "ts"], utc=True):
                fig.add_vline(x=f, line_color="red")
        fig.update_layout(title=f"m05: P(failure within 7 d) of {pick} (red: failures)", yaxis_title="probability")
        figs["m05_asset_timeline"] = fig
    return figs


# --------------------------------------------------------------------------- m06


def loading_class(load_pu) -> np.ndarray:
    """0: < 0.8 pu, 1: 0.8-1.0 pu, 2: > 1.0 pu of rating."""
    return np.digitize(np.asarray(load_pu, float), M06_EDGES_PU, right=True).astype(int)


class OverloadRisk(GridModel):
    """m06: class of the maximum loading in the next hour, calibrated RBF SVM.

    Input: :data:`M06_INPUT_COLUMNS` (pu of rating, degC, sin/cos of the local hour). Output:
    ``load_class`` (0 < 80 %, 1 80-100 %, 2 > 100 %) and the calibrated probabilities
    ``p_lt80``, ``p_80_100``, ``p_gt100``. ``class_weight`` multiplies the probabilities before
    the arg-max (``"balanced"``: by inverse training frequency, which favours the rare overload
    class and the macro-F1).
    """

    spec: ClassVar[ModelSpec] = ModelSpec(
        model_id="m06_overload_risk",
        module="maintenance",
        algorithm="SVM (RBF, calibrated: CalibratedClassifierCV sigmoid)",
        baseline="persistence of the current loading class",
        target="class of the maximum true loading in the next hour: <80 %, 80-100 %, >100 % of rating (twin's asset_state)",
        primary_metric="macro_f1",
        greater_is_better=True,
        output_units={"load_class": "class", "p_lt80": "1", "p_80_100": "1", "p_gt100": "1"},
        secondary_metrics=("recall_gt100", "accuracy"),
    )
    input_columns: ClassVar[tuple[str, ...]] = M06_INPUT_COLUMNS

    def __init__(self, C: float = 10.0, gamma: str | float = "scale", max_train_rows: int = 8000, class_weight: str | None = None,
                 calibration_folds: int = 3, random_state: int = 0):
        self.C = C
        self.calibration_folds = calibration_folds
        self.gamma = gamma
        self.max_train_rows = max_train_rows
        self.class_weight = class_weight
        self.random_state = random_state

    def fit(self, X, y):
        A = input_matrix(X, pd.Index(self.input_columns), "m06", _M06_LAYOUT)
        y = np.asarray(y, int)
        rng = np.random.default_rng(self.random_state)
        keep = _stratified_sample(y, self.max_train_rows, rng)
        self.n_train_rows_ = int(len(keep))
        n_min = int(np.bincount(y[keep]).min(initial=0)) if len(keep) else 0
        svm = SVC(kernel="rbf", C=self.C, gamma=self.gamma, random_state=self.random_state)
        calibrated = CalibratedClassifierCV(svm, method="sigmoid", cv=int(np.clip(n_min, 2, self.calibration_folds)), ensemble=False)
        self.model_ = make_pipeline(StandardScaler(), calibrated).fit(A[keep], y[keep])
        self.classes_ = self.model_.classes_
        freq = np.array([max((y == c).mean(), 1e-6) for c in self.classes_])
        self.class_factor_ = (1 / freq) / (1 / freq).sum() if self.class_weight == "balanced" else np.ones(len(self.classes_))
        return self

    def predict_proba(self, X) -> np.ndarray:
        """(n, 3) calibrated probabilities of the three classes (0 for a class unseen in training)."""
        A = input_matrix(X, pd.Index(self.input_columns), "m06", _M06_LAYOUT)
        out = np.zeros((A.shape[0], 3))
        out[:, self.classes_] = self.model_.predict_proba(A)
        return out

    def predict(self, X) -> pd.DataFrame:
        P = self.predict_proba(X)
        factor = np.zeros(3)
        factor[self.classes_] = self.class_factor_
        return pd.DataFrame({"load_class": np.argmax(P * factor, axis=1), "p_lt80": P[:, 0], "p_80_100": P[:, 1], "p_gt100": P[:, 2]})

    def baseline(self):
        return PersistenceClass()

    def score(self, y_true, y_pred, meta=None) -> dict[str, float]:
        return overload_scores(y_true, y_pred)

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        return _m06_figures(dataset, predictions)


class PersistenceClass(BaseEstimator):
    """m06 baseline: the next hour's class is the class of the current measured loading ``load_pu``."""

    def fit(self, X, y=None):
        self.fitted_ = True
        return self

    def predict(self, X) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame) and "load_pu" in X.columns:
            load = X["load_pu"].to_numpy(float)
        else:
            load = input_matrix(X, pd.Index(M06_INPUT_COLUMNS), "m06 baseline", _M06_LAYOUT)[:, 0]
        cls = loading_class(load)
        onehot = np.eye(3)[cls]
        return pd.DataFrame({"load_class": cls, "p_lt80": onehot[:, 0], "p_80_100": onehot[:, 1], "p_gt100": onehot[:, 2]})


def _stratified_sample(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``n`` rows keeping the class shares (every present class keeps >= 1 row)."""
    if len(y) <= n:
        return np.arange(len(y))
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = max(1, int(round(n * len(idx) / len(y))))
        keep.append(rng.choice(idx, min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


def overload_scores(y_true, y_pred) -> dict[str, float]:
    y = np.asarray(y_true, int)
    c = np.asarray(y_pred["load_class"], int)
    per = f1_score(y, c, labels=[0, 1, 2], average=None, zero_division=0)
    return {
        "macro_f1": float(f1_score(y, c, labels=[0, 1, 2], average="macro", zero_division=0)),
        "recall_gt100": float(recall_score(y, c, labels=[2], average="macro", zero_division=0)) if (y == 2).any() else float("nan"),
        "accuracy": float((y == c).mean()),
        **{f"f1_{name}": float(v) for name, v in zip(("lt80", "80_100", "gt100"), per)},
        "share_gt100": float((y == 2).mean()),
    }


def _m06_figures(dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
    import plotly.graph_objects as go
    from sklearn.metrics import confusion_matrix

    y = np.asarray(dataset.y_test, int)
    figs: dict[str, Any] = {}
    for name, pred in predictions.items():
        cm = confusion_matrix(y, np.asarray(pred["load_class"], int), labels=[0, 1, 2])
        fig = go.Figure(go.Heatmap(z=cm, x=list(M06_CLASSES), y=list(M06_CLASSES), colorscale="Blues", text=cm, texttemplate="%{text}"))
        fig.update_layout(title=f"m06 {name}: confusion (rows: true next-hour class)", xaxis_title="predicted", yaxis_title="true")
        figs[f"m06_confusion_{name}"] = fig
    return figs

from .maintenance_pq import PowerQualityIndex, VoltageSag  # m07, m08  # noqa: E402,F401
