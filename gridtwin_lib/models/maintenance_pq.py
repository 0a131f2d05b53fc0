"""m07 power_quality_index and m08 voltage_sag (module ``maintenance``), and the PQ index.

The PQ index (quantities, limits, sub-scores, index) is defined once, in :mod:`gridtwin_lib.physics.pq`.

m07 predicts the index of the NEXT 10-min window from the current and past windows'
quantities and features; the label is a measurement of a window the inputs never see.
m08 predicts the probability that a sag (truth ``events``, type ``sag``: 0.05 <= V < 0.9 pu)
starts within the next 15 minutes, from causal 1m/15m/1h features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from ..errors import InputError
from ..physics.pq import PQ_LIMITS, PQ_QUANTITIES, SUBSCORES, pq_index, pq_window_table, subscores
from ._keras import from_bytes, import_keras, to_bytes
from ._trees import forest_proba
from .base import GridModel, ModelSpec, input_matrix

# --------------------------------------------------------------------------- m07

M07_CURRENT = [*PQ_QUANTITIES, *SUBSCORES, "pq_index"]
M07_LAGS = (1, 2)  # previous windows
#: features.compute values at the last reading of the current window
M07_FEATURES = ("p_total_mean_1h", "p_total_slope_1h", "p_total_mean_15m", "p_total_slope_15m", "v_mean_15m",
                "v_slope_1h", "v_min_15m", "i_max_15m", "v_unbalance_mean_15m", "freq_std_15m", "hour_sin", "hour_cos")
M07_INPUT_COLUMNS = pd.Index([*M07_CURRENT, *[f"{c}_lag{k}" for k in M07_LAGS for c in ("pq_index", *SUBSCORES)],
                              *M07_FEATURES])
M07_LAYOUT = ("m07 inputs: the current 10-min window's PQ quantities, sub-scores and pq_index, the two previous "
              "windows' pq_index/sub-scores (_lag1, _lag2) and features.compute values at the window's last reading")


def _pq_out(y: np.ndarray, index=None) -> pd.DataFrame:
    return pd.DataFrame({"pq_index_next": np.clip(np.asarray(y, float).ravel(), 0.0, 100.0)}, index=index)


class PersistencePQ(GridModel):
    """Baseline of m07: the next window's index equals the current window's index."""

    spec = None  # set below (same spec as the model)

    def fit(self, X, y=None):
        self.n_features_in_ = len(M07_INPUT_COLUMNS)
        return self

    def predict(self, X):
        arr = input_matrix(X, M07_INPUT_COLUMNS, "m07 persistence", M07_LAYOUT)
        return _pq_out(arr[:, M07_INPUT_COLUMNS.get_loc("pq_index")], getattr(X, "index", None))


class PowerQualityIndex(GridModel):
    """m07: Keras MLP for the PQ index of the next 10-min window.

    The network predicts the change from the current index (residual on persistence), on
    standardised inputs, trained with MAE loss; the last ``validation_fraction`` of the
    training rows (chronological) drives early stopping. Output clipped to [0, 100].
    """

    spec = ModelSpec(
        model_id="m07_power_quality_index", module="maintenance", algorithm="neural network (Keras MLP)",
        baseline="persistence of the current window's PQ index",
        target="PQ index (0-100, pq_index of EN 50160 quantities) of the next 10-min window, from measurements",
        primary_metric="mae", greater_is_better=False, output_units={"pq_index_next": "index 0-100"},
        secondary_metrics=("rmse", "mae_low", "bias"),
    )

    def __init__(self, hidden: tuple[int, ...] = (32, 16), epochs: int = 200, batch_size: int = 64,
                 learning_rate: float = 1e-3, patience: int = 20, validation_fraction: float = 0.2,
                 l2: float = 1e-3, random_state: int = 0):
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.l2 = l2
        self.random_state = random_state

    def fit(self, X, y=None):
        if y is None:
            raise InputError("m07: fit needs y (the next window's pq_index)")
        arr = input_matrix(X, M07_INPUT_COLUMNS, "m07", M07_LAYOUT)
        y = np.asarray(y, float).ravel()
        if y.size != arr.shape[0] or not np.isfinite(y).all():
            raise InputError(f"m07: y must be {arr.shape[0]} finite values")
        keras = import_keras()
        keras.utils.set_random_seed(int(self.random_state))
        self.mean_ = arr.mean(axis=0)
        self.scale_ = np.where(arr.std(axis=0) > 1e-9, arr.std(axis=0), 1.0)
        z = (arr - self.mean_) / self.scale_
        cur = arr[:, M07_INPUT_COLUMNS.get_loc("pq_index")]
        target = (y - cur) / 10.0
        n_val = int(round(self.validation_fraction * len(y)))
        reg = keras.regularizers.L2(self.l2)
        layers = [keras.Input((z.shape[1],))]
        layers += [keras.layers.Dense(h, activation="relu", kernel_regularizer=reg) for h in self.hidden]
        layers += [keras.layers.Dense(1)]
        net = keras.Sequential(layers)
        net.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="mae")
        kw: dict[str, Any] = {}
        if n_val >= 10 and len(y) - n_val >= 10:
            kw["validation_data"] = (z[-n_val:], target[-n_val:])
            kw["callbacks"] = [keras.callbacks.EarlyStopping(patience=self.patience, restore_best_weights=True)]
            zt, tt = z[:-n_val], target[:-n_val]
        else:
            zt, tt = z, target
        hist = net.fit(zt, tt, epochs=self.epochs, batch_size=self.batch_size, shuffle=True, verbose=0, **kw)
        self.epochs_run_ = len(hist.history["loss"])
        self.net_ = net
        self.n_features_in_ = z.shape[1]
        return self

    def predict(self, X):
        arr = input_matrix(X, M07_INPUT_COLUMNS, "m07", M07_LAYOUT)
        z = (arr - self.mean_) / self.scale_
        delta = self.net_(z.astype("float32"), training=False).numpy().astype(float).ravel() * 10.0
        return _pq_out(arr[:, M07_INPUT_COLUMNS.get_loc("pq_index")] + delta, getattr(X, "index", None))

    def baseline(self):
        return PersistencePQ()

    def score(self, y_true, y_pred, meta=None) -> dict[str, float]:
        y = np.asarray(y_true, float).ravel()
        p = (y_pred["pq_index_next"] if isinstance(y_pred, pd.DataFrame) else pd.Series(np.ravel(y_pred))).to_numpy(float)
        err = p - y
        low = y < 60.0  # windows with a limit violation or near one
        return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))),
                "mae_low": float(np.mean(np.abs(err[low]))) if low.any() else float("nan"),
                "bias": float(np.mean(err)), "n_low": float(low.sum())}

    def figures(self, dataset, predictions) -> dict[str, Any]:
        import plotly.graph_objects as go

        meta = dataset.meta_test
        y = np.asarray(dataset.y_test, float)
        first = meta["device_id"] == meta["device_id"].iloc[0]
        fig = go.Figure()
        t = meta.loc[first, "window_start"]
        fig.add_scatter(x=t, y=y[first.to_numpy()], name="measured (next window)", mode="lines")
        for name, pred in predictions.items():
            fig.add_scatter(x=t, y=pred["pq_index_next"].to_numpy()[first.to_numpy()], name=name, mode="lines")
        fig.update_layout(title=f"m07 PQ index of the next 10-min window, {meta['device_id'].iloc[0]} ({meta['source'].iloc[0]})",
                          yaxis_title="PQ index (0-100)")
        err = go.Figure()
        for name, pred in predictions.items():
            err.add_histogram(x=pred["pq_index_next"].to_numpy() - y, name=name, opacity=0.6, nbinsx=60)
        err.update_layout(title="m07 error (prediction - measured)", xaxis_title="index points", barmode="overlay")
        return {"m07_next_window_index": fig, "m07_error_histogram": err}

    def __getstate__(self):
        state = dict(super().__getstate__())
        if state.get("net_") is not None:
            state["net_"] = ("keras_bytes", to_bytes(state["net_"]))
        return state

    def __setstate__(self, state):
        state = dict(state)
        v = state.get("net_")
        if isinstance(v, tuple) and v and v[0] == "keras_bytes":
            state["net_"] = from_bytes(v[1])
        super().__setstate__(state)


PersistencePQ.spec = PowerQualityIndex.spec


# --------------------------------------------------------------------------- m08

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


def _prob_out(p: np.ndarray, index=None) -> pd.DataFrame:
    return pd.DataFrame({"p_sag_15m": np.asarray(p, float).ravel()}, index=index)


class HourlySagRate(GridModel):
    """Baseline of m08: the training rate of 'a sag starts within 15 min' per local hour of day."""

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


class VoltageSag(GridModel):
    """m08: RandomForest probability that a sag below 0.9 pu starts within the next 15 min."""

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

    def score(self, y_true, y_pred, meta=None) -> dict[str, float]:
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

__all__ = [
    "PQ_LIMITS", "PQ_QUANTITIES", "SUBSCORES", "pq_index", "pq_window_table", "subscores",
    "PowerQualityIndex", "PersistencePQ", "VoltageSag", "HourlySagRate",
    "M07_INPUT_COLUMNS", "M08_INPUT_COLUMNS", "M08_HORIZON_S",
]
