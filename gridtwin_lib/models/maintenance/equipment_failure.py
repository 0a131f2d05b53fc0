"""m05 equipment failure (XGBoost), baseline :class:`AgeLoadingLogistic`.

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
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import polars as pl
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_recall_curve,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..base import Baseline, Dataset, GridModel, ModelSpec, input_matrix

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

_M05_LAYOUT = f"a frame with columns {list(M05_INPUT_COLUMNS)[:4]}... (datasets.maintenance.equipment_failure)"



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

    Parameters
    ----------
    n_estimators, max_depth, learning_rate, subsample, colsample_bytree, min_child_weight, reg_lambda : \
    int, int, float, float, float, float, float
        Passed to :class:`xgboost.XGBClassifier`; ``n_estimators`` is the most boosting rounds.
    validation_fraction : float
        Last share of the training rows used for early stopping and the alarm threshold.
    early_stopping_rounds : int
        Rounds without improvement of ``eval_metric`` before stopping.
    eval_metric : str
        XGBoost's validation metric.
    random_state : int
        Seed of XGBoost.

    Attributes
    ----------
    model_ : XGBClassifier
        Refitted on all training rows with ``best_n_estimators_`` rounds.
    threshold_ : float
        Probability (1) at or above which ``alarm`` is set (best F1 on the validation slice).
    validation_pr_auc_ : float
        PR-AUC on the validation slice (NaN without positives there).
    feature_importances_ : Series
        Gain importance per input column.
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

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        return failure_scores(y_true, y_pred, meta)

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        return _m05_figures(dataset, predictions)


class AgeLoadingLogistic(Baseline):
    """m05 baseline: logistic regression on calendar age [years] and 30-day mean loading [pu].

    Its subclasses of the ladder differ only in ``columns`` (the inputs the regression reads);
    each chooses its alarm threshold (best F1) on the last ``validation_fraction`` of the
    training rows, then refits on all of them.
    """

    name = "logistic regression on age and mean loading"
    columns: ClassVar[tuple[str, ...]] = M05_BASELINE_COLUMNS

    def __init__(self, validation_fraction: float = 0.25, C: float = 1.0):
        self.validation_fraction = validation_fraction
        self.C = C

    def _A(self, X) -> np.ndarray:
        if isinstance(X, pd.DataFrame):
            return input_matrix(X, pd.Index(self.columns), "m05 baseline", _M05_LAYOUT)
        A = input_matrix(X, pd.Index(M05_INPUT_COLUMNS), "m05 baseline", _M05_LAYOUT)
        return A[:, [M05_INPUT_COLUMNS.index(c) for c in self.columns]]

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


class EquivalentAgeLogistic(AgeLoadingLogistic):
    """m05 ladder: the thermal-ageing rule of thumb, calibrated: logistic regression on the
    estimated equivalent age [years] alone: calendar age times the 30-day mean relative ageing
    rate of the estimated hot spot (IEC 60076-7 doubling every 6 K above 98 degC), so the unit
    that has consumed the most life is ranked first."""

    name = "logistic regression on estimated equivalent age"
    columns: ClassVar[tuple[str, ...]] = ("equivalent_age_est",)


class AllInputsLogistic(AgeLoadingLogistic):
    """m05 ladder: logistic regression (standardised, L2) on all of m05's 27 input columns:
    the linear model on exactly the model's inputs."""

    name = "logistic regression on all inputs"
    columns: ClassVar[tuple[str, ...]] = M05_INPUT_COLUMNS


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


# --------------------------------------------------------------------------- serving


def serve_assets(est, observations: pl.DataFrame, *, utc_offset_h: float = 10.0) -> pl.DataFrame:
    """How the inference engine serves this model (role ``asset_failure``): each asset at its latest day.

    Parameters
    ----------
    est : the fitted :class:`EquipmentFailure`.
    observations : transformer observations (ts, device_id, load_pu_measured [pu], top_oil_temp_c,
        ambient_temp_c [°C], age_years [a]), sorted by device and time; up to 30 days are used.
    utc_offset_h : not used (daily rows); accepted so every asset model is called alike.

    Returns
    -------
    ``predict``'s columns (p_fail_7d [1], alarm) and ``device_id``, one row per asset.
    """
    from ...datasets.maintenance.equipment_failure import m05_daily_features

    daily = m05_daily_features(observations).sort("device_id", "ts").group_by("device_id").agg(pl.all().last())
    pred = est.predict(daily.select(list(M05_INPUT_COLUMNS)).to_pandas())
    return pl.from_pandas(pred).with_columns(daily["device_id"])


SERVING = serve_assets
