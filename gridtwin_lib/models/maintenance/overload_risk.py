"""m06 overload risk (calibrated RBF SVM), baseline :class:`PersistenceClass`.

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
import polars as pl
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import f1_score, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ..base import Baseline, Dataset, GridModel, ModelSpec, input_matrix

M06_INPUT_COLUMNS: tuple[str, ...] = (
    "load_pu", "load_lag1", "load_lag2", "load_lag4", "load_mean_1h", "load_max_1h", "load_mean_4h",
    "load_mean_24h", "load_max_24h", "load_max_next1h_yday", "top_oil_temp_c", "ambient_temp_c", "hour_sin", "hour_cos",
)
M06_CLASSES: tuple[str, ...] = ("<80%", "80-100%", ">100%")
M06_EDGES_PU: tuple[float, float] = (0.8, 1.0)

_M06_LAYOUT = f"a frame with columns {list(M06_INPUT_COLUMNS)[:4]}... (datasets.maintenance.overload_risk)"

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

    Parameters
    ----------
    C, gamma : float, str or float
        Passed to :class:`sklearn.svm.SVC` (RBF kernel).
    max_train_rows : int
        Training rows kept at most (stratified subsample).
    class_weight : "balanced" or None
        Multiplies the probabilities by inverse training frequency before the arg-max.
    calibration_folds : int
        Folds of the sigmoid calibration (:class:`sklearn.calibration.CalibratedClassifierCV`).
    random_state : int
        Seed of the subsample and the SVM.

    Attributes
    ----------
    model_ : Pipeline
        Standard scaling and the calibrated SVM.
    classes_ : ndarray of int
        Loading classes seen in training (0 < 80 %, 1 80-100 %, 2 > 100 % of rating).
    class_factor_ : ndarray
        Per-class probability factor of ``class_weight``.
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

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        return overload_scores(y_true, y_pred)

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        return _m06_figures(dataset, predictions)


class PersistenceClass(Baseline):
    """m06 baseline: the next hour's class is the class of the current measured loading ``load_pu``."""

    name = "persistence of the current loading class"

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


def _class_output(load_pu: np.ndarray) -> pd.DataFrame:
    """A rule's output in :class:`OverloadRisk`'s columns: the class of ``load_pu`` [pu] and one-hot probabilities."""
    cls = loading_class(load_pu)
    onehot = np.eye(3)[cls]
    return pd.DataFrame({"load_class": cls, "p_lt80": onehot[:, 0], "p_80_100": onehot[:, 1], "p_gt100": onehot[:, 2]})


def _m06_columns(X, *names: str) -> list[np.ndarray]:
    A = input_matrix(X, pd.Index(M06_INPUT_COLUMNS), "m06 baseline", _M06_LAYOUT)
    return [A[:, M06_INPUT_COLUMNS.index(n)] for n in names]


class LoadTrendRule(Baseline):
    """m06 ladder: the load trend of the last hour carried one hour ahead.

    Expected maximum of the next hour [pu] = max(load now, load now + (load now - load 1 h ago))
    (``load_pu``, ``load_lag4`` at 15-min readings); its class. Learns nothing.
    """

    name = "load-trend rule (last hour's trend carried 1 h ahead)"

    def fit(self, X, y=None):
        _m06_columns(X, "load_pu")
        return self

    def predict(self, X) -> pd.DataFrame:
        now, hour_ago = _m06_columns(X, "load_pu", "load_lag4")
        return _class_output(np.maximum(now, 2.0 * now - hour_ago))


class YesterdayPeakRule(Baseline):
    """m06 ladder: daily persistence: the class of max(load now, the maximum of the same next
    hour yesterday) [pu] (``load_max_next1h_yday``): a feeder's evening peak recurs. Learns nothing."""

    name = "max(load now, same next hour yesterday)"

    def fit(self, X, y=None):
        _m06_columns(X, "load_pu")
        return self

    def predict(self, X) -> pd.DataFrame:
        now, yday = _m06_columns(X, "load_pu", "load_max_next1h_yday")
        return _class_output(np.maximum(now, yday))


class InputLogistic(Baseline):
    """m06 ladder: multinomial logistic regression (standardised, L2) on the model's 14 inputs.

    Output like :class:`OverloadRisk` (most probable class, class probabilities; 0 for a
    class unseen in training)."""

    name = "logistic regression on all inputs"

    def __init__(self, C: float = 1.0, max_iter: int = 1000):
        self.C = C
        self.max_iter = max_iter

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression

        A = input_matrix(X, pd.Index(M06_INPUT_COLUMNS), "m06 baseline", _M06_LAYOUT)
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter)).fit(A, np.asarray(y, int))
        return self

    def predict(self, X) -> pd.DataFrame:
        A = input_matrix(X, pd.Index(M06_INPUT_COLUMNS), "m06 baseline", _M06_LAYOUT)
        P = np.zeros((A.shape[0], 3))
        P[:, self.model_.classes_] = self.model_.predict_proba(A)
        return pd.DataFrame({"load_class": np.argmax(P, axis=1), "p_lt80": P[:, 0], "p_80_100": P[:, 1], "p_gt100": P[:, 2]})


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


# --------------------------------------------------------------------------- serving


def serve_assets(est, observations: pl.DataFrame, *, utc_offset_h: float = 10.0) -> pl.DataFrame:
    """How the inference engine serves this model (role ``asset_overload``): each asset at its latest observation.

    Parameters
    ----------
    est : the fitted :class:`OverloadRisk`.
    observations : transformer observations (ts, device_id, load_pu_measured [pu], top_oil_temp_c,
        ambient_temp_c [°C]), sorted by device and time.
    utc_offset_h : local clock of the fleet [h from UTC] (the hour features).

    Returns
    -------
    ``predict``'s columns (load_class and its probabilities [1]) and ``device_id``, one row per asset.
    """
    from ...datasets.maintenance.overload_risk import m06_features

    f = m06_features(observations, utc_offset_h).sort("device_id", "ts").group_by("device_id").agg(pl.all().last())
    pred = est.predict(f.select(list(M06_INPUT_COLUMNS)).to_pandas())
    return pl.from_pandas(pred).with_columns(f["device_id"])


SERVING = serve_assets
