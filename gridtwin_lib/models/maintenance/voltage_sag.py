"""m08 voltage sag: P(a sag starts within 15 min), baseline :class:`HourlySagRate`.

m08 predicts the probability that a sag (truth ``events``, type ``sag``: 0.05 <= V < 0.9 pu)
starts within the next 15 minutes, from causal 1m/15m/1h features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from ...errors import InputError
from .._linear import logistic_proba
from .._trees import forest_proba
from ..base import Baseline, GridModel, ModelSpec, input_matrix
from ..serving import ServingAdapter, columns_scorer

M08_HORIZON_S = 900
_W = ("1m", "15m", "1h")
M08_INPUT_COLUMNS = pd.Index([
    *[f"{s}_{w}" for w in _W for s in ("v_mean", "v_std", "v_min", "v_max", "v_slope", "v_unbalance_max", "i_mean", "i_std",
                                       "i_max", "p_total_mean", "p_total_std", "p_total_max", "flag_voltage_count")],
    "hour", "hour_sin", "hour_cos", "is_weekend",
])
M08_LAYOUT = "m08 inputs: features.compute 1m/15m/1h window statistics (v, unbalance, i, p_total, voltage flags) and hour, hour_sin, hour_cos, is_weekend"


_C = M08_INPUT_COLUMNS.get_loc


def _m08_design(arr: np.ndarray) -> np.ndarray:
    """Inputs plus spike heights a forest cannot form from single splits: current peak over
    its window mean (motor-start inrush, the sag precursor) and voltage dip below its mean."""
    extra = [arr[:, _C(f"i_max_{w}")] - arr[:, _C(f"i_mean_{w}")] for w in _W]
    extra += [arr[:, _C(f"v_mean_{w}")] - arr[:, _C(f"v_min_{w}")] for w in _W]
    extra += [arr[:, _C("i_max_15m")] - arr[:, _C("i_mean_1h")], arr[:, _C("i_max_1h")] - arr[:, _C("i_mean_1h")]
              - (arr[:, _C("i_max_15m")] - arr[:, _C("i_mean_15m")])]
    return np.column_stack([arr, *extra])


_PROB_COLUMNS = pd.Index(["p_sag_15m"])


def _prob_out(p: np.ndarray, index=None) -> pd.DataFrame:
    # from a float block with a kept column index: a dict costs ~5x more to frame for one reading
    return pd.DataFrame(np.asarray(p, float).reshape(-1, 1), columns=_PROB_COLUMNS, index=index, copy=False)


class HourlySagRate(Baseline):
    """Baseline of m08: the training rate of 'a sag starts within 15 min' per local hour of day."""

    name = "hour-of-day base rate"
    spec = None  # set below

    def fit(self, X, y=None):
        arr = input_matrix(X, M08_INPUT_COLUMNS, "m08 baseline", M08_LAYOUT)
        y = np.asarray(y, float).ravel()
        hour = np.floor(arr[:, M08_INPUT_COLUMNS.get_loc("hour")]).astype(int) % 24
        self.overall_ = float(y.mean())
        rate = np.full(24, self.overall_)
        for h in range(24):
            if (hour == h).sum() >= 5:
                rate[h] = y[hour == h].mean()
        self.rate_ = rate
        return self

    def predict(self, X):
        arr = input_matrix(X, M08_INPUT_COLUMNS, "m08 baseline", M08_LAYOUT)
        hour = np.floor(arr[:, M08_INPUT_COLUMNS.get_loc("hour")]).astype(int) % 24
        return _prob_out(self.rate_[hour], getattr(X, "index", None))


#: the inputs of :class:`RecentEventsLogistic`: how many voltage flags the last minute, 15 min and hour held
M08_RECENCY_COLUMNS = ("flag_voltage_count_1m", "flag_voltage_count_15m", "flag_voltage_count_1h")


class _LogisticOn(Baseline):
    """Logistic regression (standardised, L2) on ``columns`` of the m08 design; output ``p_sag_15m``."""

    columns: tuple[str, ...] = ()

    def __init__(self, C: float = 1.0, max_iter: int = 1000):
        self.C = C
        self.max_iter = max_iter

    def _A(self, X) -> np.ndarray:
        arr = input_matrix(X, M08_INPUT_COLUMNS, "m08 baseline", M08_LAYOUT)
        return _m08_design(arr) if not self.columns else arr[:, [M08_INPUT_COLUMNS.get_loc(c) for c in self.columns]]

    def fit(self, X, y=None):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        y = np.asarray(y, int).ravel()
        if len(np.unique(y)) < 2:
            raise InputError("m08 baseline: y must hold both classes (no sag in the training range?)")
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter)).fit(self._A(X), y)
        return self

    def predict(self, X):
        return _prob_out(logistic_proba(self.model_, self._A(X))[:, 1], getattr(X, "index", None))


class RecentEventsLogistic(_LogisticOn):
    """m08 ladder: recency of the last events: logistic regression on the counts of voltage
    flags in the last 1 min, 15 min and 1 h (:data:`M08_RECENCY_COLUMNS`): sags cluster, so a
    recent one raises the odds of the next."""

    name = "recency of the last voltage events (logistic)"
    columns = M08_RECENCY_COLUMNS


class DesignLogistic(_LogisticOn):
    """m08 ladder: logistic regression on the model's whole design (43 inputs plus its spike heights)."""

    name = "logistic regression on all inputs"
    columns = ()


class VoltageSag(GridModel):
    """m08: RandomForest probability that a sag below 0.9 pu starts within the next 15 min.

    Parameters
    ----------
    n_estimators, max_depth, min_samples_leaf, max_features, max_samples, n_jobs, random_state : \
    int, int or None, int, float or str, float or None, int, int
        Passed to :class:`sklearn.ensemble.RandomForestClassifier`.

    Attributes
    ----------
    forest_ : RandomForestClassifier
        Fitted on the 43 input columns (V, %, A, kW, flags, hour).
    n_features_in_ : int
        Input width (43).
    """

    spec = ModelSpec(
        model_id="m08_voltage_sag", module="maintenance", algorithm="RandomForest",
        baseline="hour-of-day base rate (fitted on train)",
        target="a sag (truth events, type sag, 0.05 <= V < 0.9 pu) starts in (t, t + 15 min]",
        primary_metric="pr_auc", greater_is_better=True, output_units={"p_sag_15m": "probability"},
        secondary_metrics=("brier", "brier_skill", "roc_auc", "base_rate"),
    )

    def __init__(self, n_estimators: int = 200, max_depth: int | None = None, min_samples_leaf: int = 200,
                 max_features: float | str = 0.3, max_samples: float | None = 0.5, n_jobs: int = 2, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y=None):
        arr = input_matrix(X, M08_INPUT_COLUMNS, "m08", M08_LAYOUT)
        y = np.asarray(y, int).ravel()
        if y.size != arr.shape[0] or len(np.unique(y)) < 2:
            raise InputError("m08: y must be 0/1 per row with both classes present (no sag in the training range?)")
        self.forest_ = RandomForestClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features, max_samples=self.max_samples, n_jobs=self.n_jobs,
            random_state=self.random_state,
        ).fit(_m08_design(arr), y)
        # predict on one thread: threads add the trees' votes in varying order, which changes the
        # last bits of a probability from call to call
        self.forest_.n_jobs = 1
        self.n_features_in_ = arr.shape[1]
        return self

    def predict(self, X):
        arr = input_matrix(X, M08_INPUT_COLUMNS, "m08", M08_LAYOUT)
        # single readings walk the forest with NumPy (verified against scikit-learn): ~0.3 ms, not ~20
        return _prob_out(forest_proba(self, self.forest_, _m08_design(arr))[:, 1], getattr(X, "index", None))

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_flat_forests", None)  # derived from forest_, rebuilt on first use
        return state

    def baseline(self):
        return HourlySagRate()

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        """PR-AUC (average precision), ROC-AUC, Brier and Brier skill vs the constant test base rate."""
        y = np.asarray(y_true, int).ravel()
        p = (y_pred["p_sag_15m"] if isinstance(y_pred, pd.DataFrame) else pd.Series(np.ravel(y_pred))).to_numpy(float)
        base = float(y.mean())
        brier = float(brier_score_loss(y, p))
        ref = base * (1 - base)  # Brier of the constant base rate
        both = 0 < base < 1
        return {"pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
                "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
                "brier": brier, "brier_skill": float(1 - brier / ref) if ref > 0 else float("nan"),
                "base_rate": base}

    def figures(self, dataset, predictions) -> dict[str, Any]:
        import plotly.graph_objects as go
        from sklearn.metrics import precision_recall_curve

        y = np.asarray(dataset.y_test, int)
        pr = go.Figure()
        rel = go.Figure()
        for name, pred in predictions.items():
            p = pred["p_sag_15m"].to_numpy()
            prec, rec, _ = precision_recall_curve(y, p)
            pr.add_scatter(x=rec, y=prec, name=name, mode="lines")
            bins = np.clip((p * 10).astype(int), 0, 9)
            mids = [(k + 0.5) / 10 for k in range(10) if (bins == k).any()]
            obs = [y[bins == k].mean() for k in range(10) if (bins == k).any()]
            rel.add_scatter(x=mids, y=obs, name=name, mode="lines+markers")
        pr.update_layout(title="m08 precision-recall, sag starts within 15 min", xaxis_title="recall", yaxis_title="precision")
        rel.add_scatter(x=[0, 1], y=[0, 1], name="ideal", mode="lines", line={"dash": "dot"})
        rel.update_layout(title="m08 reliability", xaxis_title="predicted probability", yaxis_title="observed frequency")
        return {"m08_precision_recall": pr, "m08_reliability": rel}


HourlySagRate.spec = VoltageSag.spec


# --------------------------------------------------------------------------- serving

#: how the inference engine serves m08: the reading's feature row, complete rows only (as trained)
SERVING = ServingAdapter(score=columns_scorer(M08_INPUT_COLUMNS, complete_rows="a 1m/15m/1h feature is undefined (supply interruption?)"),
                         outputs=("p_sag_15m",))
