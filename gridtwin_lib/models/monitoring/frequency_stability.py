"""m03 frequency_stability: the next 10 s of system frequency and the risk of leaving the band.

Input (``fit``, ``predict``): one row per forecast origin t, the last 100 one-second
frequency readings [Hz], oldest first: DataFrame columns ``f_t-99``, ``f_t-98``, ...,
``f_t-1``, ``f_t`` (:data:`INPUT_COLUMNS`), or a float array (n, 100) in that order.
Output of ``predict``: DataFrame ``f_t+1`` .. ``f_t+10`` [Hz] and ``p_excursion``, the
probability that the frequency is outside the normal band 49.85-50.15 Hz at least once
in t+1 .. t+10 s. ``y`` for ``fit``: DataFrame ``f_t+1`` .. ``f_t+10`` [Hz] and
``excursion`` (0/1, from the twin's ``frequency_excursion`` event log).

Why an LSTM, and why on top of a linear path: the frequency is the output of a linear
swing-equation/governor system driven by noise, generator trips and slow AGC drift, so
most of what can be predicted is a linear function of the recent trajectory. The network
therefore has a frozen linear AR(100) path (weights = the least-squares fit on the
training slice, set in ``fit``) and the LSTM learns what it misses: it reads the 100 s
history as 100/``block_s`` steps of ``block_s`` readings (levels and first differences),
adds a correction to the AR forecast of the *change* from f_t, and drives the excursion
probability from its state and the forecast's distance to the band edges. On the grid
twin the point forecast ends up close to the linear AR (the process is nearly linear);
the LSTM's gain is mostly in the excursion probability (see the report of the run).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from scipy.special import expit, ndtr
from sklearn.metrics import average_precision_score

from ...config import NOMINAL_FREQUENCY_HZ
from ...errors import InputError
from .._keras import from_bytes, import_keras, to_bytes
from ..base import Baseline, GridModel, ModelSpec, input_matrix
from ..serving import ServingAdapter, missing_input, prefixed

HISTORY = 100  # [s] readings per input row
HORIZON = 10  # [s] steps ahead
F_NOMINAL = NOMINAL_FREQUENCY_HZ  # [Hz]
BAND_HZ = (49.85, 50.15)
INPUT_COLUMNS = [f"f_t-{k}" for k in range(HISTORY - 1, 0, -1)] + ["f_t"]
FORECAST_COLUMNS = [f"f_t+{h}" for h in range(1, HORIZON + 1)]
OUTPUT_COLUMNS = [*FORECAST_COLUMNS, "p_excursion"]
_LEVEL_HZ = 0.1  # input scaling of f - 50 Hz
_DIFF_HZ = 0.01  # input scaling of one-second changes
_TARGET_HZ = 0.05  # output scaling of f_t+h - f_t
_INPUT_INDEX = pd.Index(INPUT_COLUMNS)
# up to this many rows (single readings), predict runs the fitted network in NumPy
# (:class:`_NumpyNet`): Keras' ``predict`` costs ~60 ms per call whatever the batch. Larger
# batches go to Keras: there NumPy's matrix products reach OpenBLAS' multi-threading
# threshold, and OpenBLAS threads spinning against TensorFlow's on 2 cores can be 10x slower.
NUMPY_MAX_ROWS = 16


def _history(X) -> np.ndarray:
    """Input rows as float64 (n, 100) [Hz], oldest first; refuse anything else in one line."""
    arr = input_matrix(X, _INPUT_INDEX, "m03", "the last 100 one-second readings f_t-99 .. f_t [Hz], oldest first")
    if (np.abs(arr - F_NOMINAL) > 5.0).any():
        raise InputError("m03: input values are not frequencies near 50 Hz (|f - 50| > 5 Hz); pass Hz, not mHz or pu")
    return arr


def _targets(y) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(y, pd.DataFrame) or any(c not in y.columns for c in [*FORECAST_COLUMNS, "excursion"]):
        raise InputError("m03: y must be a DataFrame with f_t+1 .. f_t+10 [Hz] and excursion (0/1)")
    return y[FORECAST_COLUMNS].to_numpy(dtype=float), y["excursion"].to_numpy(dtype=float)


def _outside(f: np.ndarray) -> np.ndarray:
    return (f < BAND_HZ[0]) | (f > BAND_HZ[1])


def _margin_weights() -> list[np.ndarray]:
    """Weights of the fixed layer (linear inputs, scaled deltas) -> distance of f_t+h to the band edges.

    Scaled forecast level ``(f_t+h - 50) / 0.1 = linear[0] + delta_h * 0.05 / 0.1``; upper margin
    ``(50.15 - 50) / 0.1 - level``, lower margin ``level - (49.85 - 50) / 0.1`` (both > 0 inside).
    """
    kernel = np.zeros((HISTORY + HORIZON, 2 * HORIZON), "float32")
    ratio = _TARGET_HZ / _LEVEL_HZ
    for h in range(HORIZON):
        kernel[0, h], kernel[HISTORY + h, h] = -1.0, -ratio
        kernel[0, HORIZON + h], kernel[HISTORY + h, HORIZON + h] = 1.0, ratio
    bias = np.concatenate([np.full(HORIZON, (BAND_HZ[1] - F_NOMINAL) / _LEVEL_HZ),
                           np.full(HORIZON, (F_NOMINAL - BAND_HZ[0]) / _LEVEL_HZ)]).astype("float32")
    return [kernel, bias]


class FrequencyStability(GridModel):
    """LSTM (Keras): f_t+1..f_t+10 [Hz] and P(outside 49.85-50.15 Hz within 10 s) from 100 s of 1 s readings.

    ``fit`` holds out the last ``validation_fraction`` of the training rows (rows must be
    in time order, as the dataset builder gives them) for early stopping.

    Parameters
    ----------
    units, dense_units : int
        LSTM and dense layer widths.
    block_s : int
        Readings [s] per LSTM step (the 100-s history becomes 100/block_s steps).
    epochs, batch_size, learning_rate, patience : int, int, float, int
        Adam training with early stopping on the validation slice.
    validation_fraction : float
        Last share of the training rows held out for early stopping.
    excursion_weight : float
        Weight of the excursion head's loss against the forecast's.
    threads : int
        TensorFlow threads.
    random_state : int
        Seed of Keras.
    verbose : int
        Keras verbosity.

    Attributes
    ----------
    model_ : keras.Model
        The fitted network (frozen AR path, LSTM correction, excursion head).
    n_epochs_ : int
        Epochs actually trained.
    history_ : dict
        Training and validation losses per epoch.
    """

    spec = ModelSpec(
        model_id="m03_frequency_stability",
        module="monitoring",
        algorithm="LSTM (TensorFlow/Keras)",
        baseline="persistence (f_t+h = f_t; p = 1 if f_t is outside the band else 0); linear AR on lags reported as ar_*",
        target="next 10 one-second frequency readings [Hz] and whether the frequency leaves 49.85-50.15 Hz "
               "within them (grid twin's frequency_excursion events)",
        primary_metric="rmse_step10",
        greater_is_better=False,
        output_units={**{c: "Hz" for c in FORECAST_COLUMNS}, "p_excursion": "1"},
        secondary_metrics=("skill_rmse_step10", "rmse_mean", "brier_excursion", "brier_skill_vs_persistence",
                           "pr_auc_excursion", "ar_rmse_step10", "ar_brier_excursion"),
    )

    def __init__(self, units: int = 32, block_s: int = 5, dense_units: int = 32, epochs: int = 10,
                 batch_size: int = 256, learning_rate: float = 1e-3, validation_fraction: float = 0.15,
                 patience: int = 3, excursion_weight: float = 1.0, threads: int = 2, random_state: int = 0,
                 verbose: int = 0):
        self.units = units
        self.block_s = block_s
        self.dense_units = dense_units
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.excursion_weight = excursion_weight
        self.threads = threads
        self.random_state = random_state
        self.verbose = verbose

    # ---------------------------------------------------------------- tensors

    def _inputs(self, f: np.ndarray) -> dict[str, np.ndarray]:
        level = (f - F_NOMINAL) / _LEVEL_HZ
        diff = np.diff(f, axis=1, prepend=f[:, :1]) / _DIFF_HZ
        steps = HISTORY // self.block_s
        seq = np.concatenate([level.reshape(-1, steps, self.block_s), diff.reshape(-1, steps, self.block_s)], axis=2)
        # the linear path: f_t - 50 Hz and the changes f_t - f_t-k, k = 1..99 (the AR design)
        linear = np.concatenate([level[:, -1:], (f[:, -1:] - f[:, :-1]) / _LEVEL_HZ], axis=1)
        return {"sequence": seq.astype("float32"), "linear": linear.astype("float32")}

    def _build(self, keras):
        steps = HISTORY // self.block_s
        seq = keras.Input((steps, 2 * self.block_s), name="sequence")
        linear = keras.Input((HISTORY,), name="linear")
        # frozen linear AR path, set to the least-squares solution in fit()
        ar_delta = keras.layers.Dense(HORIZON, trainable=False, name="ar_delta")(linear)
        state = keras.layers.LSTM(self.units, name="lstm")(seq)
        hidden = keras.layers.Dense(self.dense_units, activation="relu", name="hidden")(
            keras.layers.Concatenate()([state, ar_delta]))
        correction = keras.layers.Dense(HORIZON, kernel_initializer="zeros", name="lstm_correction")(hidden)
        delta = keras.layers.Add(name="delta")([ar_delta, correction])
        # distances of each forecast step to the two band edges [0.1 Hz]: fixed weights set in fit()
        margins = keras.layers.Dense(2 * HORIZON, trainable=False, name="band_margins")(
            keras.layers.Concatenate()([linear, delta]))
        risk = keras.layers.Dense(16, activation="relu", name="risk")(
            keras.layers.Concatenate()([hidden, margins]))
        excursion = keras.layers.Dense(1, activation="sigmoid", name="excursion")(risk)
        model = keras.Model({"sequence": seq, "linear": linear}, {"delta": delta, "excursion": excursion})
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate),
            loss={"delta": "mse", "excursion": "binary_crossentropy"},
            loss_weights={"delta": 1.0, "excursion": float(self.excursion_weight)},
        )
        return model

    # ---------------------------------------------------------------- API

    def fit(self, X, y):
        f = _history(X)
        future, excursion = _targets(y)
        if len(future) != len(f):
            raise InputError(f"m03: {len(f)} input rows but {len(future)} target rows")
        if HISTORY % self.block_s:
            raise InputError(f"m03: block_s={self.block_s} must divide {HISTORY}")
        keras = import_keras(self.threads)
        keras.utils.set_random_seed(int(self.random_state))
        inputs = self._inputs(f)
        targets = {"delta": ((future - f[:, -1:]) / _TARGET_HZ).astype("float32"),
                   "excursion": excursion.reshape(-1, 1).astype("float32")}
        n_val = int(round(len(f) * self.validation_fraction))
        if n_val < 1 or len(f) - n_val < 1:
            raise InputError(f"m03: {len(f)} training rows are too few to hold out a validation slice")
        tr = {k: v[:-n_val] for k, v in inputs.items()}, {k: v[:-n_val] for k, v in targets.items()}
        va = {k: v[-n_val:] for k, v in inputs.items()}, {k: v[-n_val:] for k, v in targets.items()}
        self.model_ = self._build(keras)
        # the linear path starts (and stays) at the least-squares AR fit of the training slice
        design = np.concatenate([tr[0]["linear"], np.ones((len(tr[0]["linear"]), 1), "float32")], axis=1)
        coef, *_ = np.linalg.lstsq(design.astype(float), tr[1]["delta"].astype(float), rcond=None)
        self.model_.get_layer("ar_delta").set_weights([coef[:-1].astype("float32"), coef[-1].astype("float32")])
        self.model_.get_layer("band_margins").set_weights(_margin_weights())
        rate = float(np.clip(tr[1]["excursion"].mean(), 1e-4, 1 - 1e-4))  # start at the training base rate
        kernel, _ = self.model_.get_layer("excursion").get_weights()
        self.model_.get_layer("excursion").set_weights([kernel, np.array([math.log(rate / (1 - rate))], "float32")])
        stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience, restore_best_weights=True)
        hist = self.model_.fit(*tr, validation_data=va, epochs=self.epochs, batch_size=self.batch_size,
                               callbacks=[stop], verbose=self.verbose, shuffle=True)
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        self.n_epochs_ = len(self.history_.get("loss", []))
        self.__dict__.pop("_numpy_net", None)
        return self

    def _network(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs of the fitted network: NumPy for small batches (single readings), Keras for large ones."""
        if len(inputs["linear"]) <= NUMPY_MAX_ROWS:
            cached = self.__dict__.get("_numpy_net")
            if cached is None or cached[0] is not self.model_:
                cached = (self.model_, _NumpyNet.from_keras(self.model_, self._inputs(_CHECK_HISTORY)))
                self._numpy_net = cached
            if cached[1] is not None:
                return cached[1](inputs)
        return self.model_.predict(inputs, batch_size=4096, verbose=0)

    def predict(self, X) -> pd.DataFrame:
        f = _history(X)
        out = self._network(self._inputs(f))
        forecast = f[:, -1:] + np.asarray(out["delta"], dtype=float) * _TARGET_HZ
        values = np.concatenate([forecast, np.asarray(out["excursion"], dtype=float).reshape(-1, 1)], axis=1)
        return pd.DataFrame(values, columns=OUTPUT_COLUMNS, index=X.index if isinstance(X, pd.DataFrame) else None)

    def baseline(self) -> PersistenceAndAR:
        return PersistenceAndAR()

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        return score_frequency(y_true, y_pred, meta)

    def figures(self, dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        return frequency_figures(dataset, predictions)

    # ---------------------------------------------------------------- pickling

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_numpy_net", None)  # derived from model_, rebuilt on first use
        model = state.get("model_")
        if model is not None and not isinstance(model, bytes):
            state["model_"] = to_bytes(model)
        return state

    def __setstate__(self, state):
        blob = state.get("model_")
        if isinstance(blob, bytes):
            state = {**state, "model_": from_bytes(blob, state.get("threads", 2))}
        self.__dict__.update(state)


# 8 fixed rows (a calm grid, a ramp, an oscillation, a step) that check the NumPy copy against Keras
_t = np.arange(HISTORY, dtype=float)
_CHECK_HISTORY = np.stack([
    np.full(HISTORY, 50.0), 50.0 + 0.01 * np.sin(_t / 7.0), 49.95 + 0.001 * _t, 50.08 - 0.0015 * _t,
    50.0 + 0.05 * np.sin(_t / 3.0) * np.exp(-_t / 60.0), np.where(_t < 80, 50.0, 49.8), 50.12 + 0.002 * np.cos(_t),
    49.9 + 0.0005 * (_t % 13),
])
del _t


class _NumpyNet:
    """The fitted Keras network of :class:`FrequencyStability` evaluated with NumPy in float32.

    Why: Keras' ``predict`` (and even a direct eager call) costs 40-70 ms of per-call
    overhead, while the network is 11k weights: in NumPy one reading takes ~0.15 ms
    (a cached ``tf.function`` still takes ~1.4 ms). The arithmetic is the network's (same
    float32 weights, same layer order; LSTM gates i, f, c, o as Keras), so outputs agree with
    Keras to float32 round-off (~1e-7 of the scaled outputs, as Keras' own batch-size effects).
    :meth:`from_keras` returns ``None`` (callers then use Keras) unless the layers are the
    ones :meth:`FrequencyStability._build` makes *and* the copy reproduces Keras on fixed rows.
    """

    _DENSE = {"ar_delta": "linear", "hidden": "relu", "lstm_correction": "linear", "band_margins": "linear",
              "risk": "relu", "excursion": "sigmoid"}

    def __init__(self, weights: dict[str, list[np.ndarray]]):
        self.w = weights

    @classmethod
    def from_keras(cls, model, check_inputs: dict[str, np.ndarray]) -> _NumpyNet | None:
        try:
            layers = {layer.name: layer for layer in model.layers if layer.weights}
            if set(layers) != {*cls._DENSE, "lstm"}:
                return None
            for name, activation in cls._DENSE.items():
                cfg = layers[name].get_config()
                if cfg.get("activation") != activation or not cfg.get("use_bias", False):
                    return None
            cfg = layers["lstm"].get_config()
            if (cfg.get("activation"), cfg.get("recurrent_activation")) != ("tanh", "sigmoid") \
                    or not cfg.get("use_bias") or cfg.get("return_sequences") or cfg.get("go_backwards") \
                    or cfg.get("stateful"):
                return None
            net = cls({name: [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
                       for name, layer in layers.items()})
            ours = net(check_inputs)
            theirs = model.predict(check_inputs, verbose=0)  # also builds Keras' predict function for batches
            for key in ("delta", "excursion"):
                if not np.allclose(ours[key], np.asarray(theirs[key]), rtol=1e-4, atol=1e-4):
                    return None
            return net
        except Exception:  # anything unexpected: Keras stays the reference
            return None

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        w = self.w
        seq = np.asarray(inputs["sequence"], dtype=np.float32)
        linear = np.asarray(inputs["linear"], dtype=np.float32)
        kernel, recurrent, bias = w["lstm"]
        units = recurrent.shape[0]
        ar = linear @ w["ar_delta"][0] + w["ar_delta"][1]
        h = np.zeros((len(linear), units), np.float32)
        c = np.zeros((len(linear), units), np.float32)
        x_proj = seq @ kernel  # (n, steps, 4 units)
        for t in range(seq.shape[1]):
            z = x_proj[:, t] + h @ recurrent + bias
            i, f, o = expit(z[:, :units]), expit(z[:, units:2 * units]), expit(z[:, 3 * units:])
            c = f * c + i * np.tanh(z[:, 2 * units:3 * units])
            h = o * np.tanh(c)
        hidden = np.maximum(np.concatenate([h, ar], axis=1) @ w["hidden"][0] + w["hidden"][1], 0.0)
        delta = ar + (hidden @ w["lstm_correction"][0] + w["lstm_correction"][1])
        margins = np.concatenate([linear, delta], axis=1) @ w["band_margins"][0] + w["band_margins"][1]
        risk = np.maximum(np.concatenate([hidden, margins], axis=1) @ w["risk"][0] + w["risk"][1], 0.0)
        excursion = expit(risk @ w["excursion"][0] + w["excursion"][1])
        return {"delta": delta, "excursion": excursion}


# --------------------------------------------------------------------------- baselines


class LinearAR(Baseline):
    """Linear AR on lags: f_t+h - f_t regressed (least squares) on f_t - 50 and f_t - f_t-k, k < p.

    The lag count p is chosen from ``lag_choices`` on the last ``validation_fraction`` of
    the training rows (RMSE at step 10), then refitted on all of them. ``p_excursion``:
    each step's forecast with a Gaussian error of that step's training residual sd
    [Hz]; the probability of the most likely step to be outside the band.
    """

    name = "linear AR on lags (direct multi-step)"

    def __init__(self, lag_choices: tuple[int, ...] = (2, 5, 10, 20, 50, 100), validation_fraction: float = 0.15):
        self.lag_choices = lag_choices
        self.validation_fraction = validation_fraction

    @staticmethod
    def _design(f: np.ndarray, lags: int) -> np.ndarray:
        last = f[:, -1:]
        cols = [np.ones_like(last), last - F_NOMINAL]
        if lags > 1:
            cols.append(last - f[:, -lags:-1])
        return np.concatenate(cols, axis=1)

    def _solve(self, f, delta, lags):
        coef, *_ = np.linalg.lstsq(self._design(f, lags), delta, rcond=None)
        return coef

    def fit(self, X, y):
        f = _history(X)
        future, _ = _targets(y)
        delta = future - f[:, -1:]
        n_val = int(round(len(f) * self.validation_fraction))
        best, best_rmse = self.lag_choices[0], math.inf
        if n_val >= 1 and len(f) - n_val > max(self.lag_choices) + 2:
            for lags in self.lag_choices:
                coef = self._solve(f[:-n_val], delta[:-n_val], lags)
                err = self._design(f[-n_val:], lags) @ coef - delta[-n_val:]
                rmse = float(np.sqrt(np.mean(err[:, -1] ** 2)))
                if rmse < best_rmse:
                    best, best_rmse = lags, rmse
        self.lags_ = int(best)
        self.coef_ = self._solve(f, delta, self.lags_)
        resid = self._design(f, self.lags_) @ self.coef_ - delta
        self.sigma_hz_ = np.sqrt(np.mean(resid**2, axis=0))
        return self

    def predict(self, X) -> pd.DataFrame:
        f = _history(X)
        forecast = f[:, -1:] + self._design(f, self.lags_) @ self.coef_
        sigma = np.maximum(self.sigma_hz_, 1e-6)
        # normal CDF / survival function (scipy.stats.norm's cdf, sf) without scipy.stats' per-call overhead
        p_out = ndtr((BAND_HZ[0] - forecast) / sigma) + ndtr(-((BAND_HZ[1] - forecast) / sigma))
        return pd.DataFrame(np.column_stack([forecast, np.clip(p_out.max(axis=1), 0.0, 1.0)]), columns=[*FORECAST_COLUMNS, "p_excursion"],
                            index=X.index if isinstance(X, pd.DataFrame) else None)


class Persistence(Baseline):
    """f_t+h = f_t for every h; p_excursion = 1 if f_t is already outside the band, else 0."""

    name = "persistence"

    def fit(self, X, y=None):
        _history(X)
        self.fitted_ = True
        return self

    def predict(self, X) -> pd.DataFrame:
        f = _history(X)
        frame = pd.DataFrame(np.repeat(f[:, -1:], HORIZON, axis=1), columns=FORECAST_COLUMNS)
        frame["p_excursion"] = _outside(f[:, -1]).astype(float)
        if isinstance(X, pd.DataFrame):
            frame.index = X.index
        return frame


class PersistenceAndAR(Baseline):
    """The catalogue's two baselines in one estimator.

    ``predict`` returns persistence in the model's columns (the reference of the primary
    skill) and the linear AR forecast in extra columns ``ar_f_t+1`` .. ``ar_p_excursion``,
    so one call of the model's ``evaluate`` reports both (AR's metrics prefixed ``ar_``).
    """

    name = "persistence (and the linear AR, reported apart)"

    def __init__(self, lag_choices: tuple[int, ...] = (2, 5, 10, 20, 50, 100)):
        self.lag_choices = lag_choices

    def fit(self, X, y):
        self.persistence_ = Persistence().fit(X, y)
        self.ar_ = LinearAR(self.lag_choices).fit(X, y)
        return self

    def predict(self, X) -> pd.DataFrame:
        out = self.persistence_.predict(X)
        ar = self.ar_.predict(X)
        return pd.concat([out, ar.add_prefix("ar_")], axis=1)


# --------------------------------------------------------------------------- scoring


def _metrics(future: np.ndarray, excursion: np.ndarray, forecast: np.ndarray, p: np.ndarray,
             f_t: np.ndarray | None) -> dict[str, float]:
    err = forecast - future
    rmse = np.sqrt(np.mean(err**2, axis=0))
    out = {"rmse_step1": rmse[0], "rmse_step10": rmse[-1], "rmse_mean": float(np.sqrt(np.mean(err**2))),
           "brier_excursion": float(np.mean((p - excursion) ** 2))}
    if 0 < excursion.sum() < len(excursion):
        out["pr_auc_excursion"] = average_precision_score(excursion, p)
    if f_t is not None:
        persistence_rmse10 = float(np.sqrt(np.mean((f_t - future[:, -1]) ** 2)))
        out["skill_rmse_step10"] = 1.0 - rmse[-1] / persistence_rmse10 if persistence_rmse10 > 0 else float("nan")
        persistence_brier = float(np.mean((_outside(f_t).astype(float) - excursion) ** 2))
        out["brier_skill_vs_persistence"] = (1.0 - out["brier_excursion"] / persistence_brier
                                             if persistence_brier > 0 else float("nan"))
    return {k: float(v) for k, v in out.items()}


def score_frequency(y_true, y_pred, meta=None) -> dict[str, float]:
    """RMSE [Hz] per step (1, 10, all), Brier and PR-AUC of the excursion probability and, with
    ``meta['f_t']`` (the last reading of each row), skills against persistence. Columns
    ``ar_*`` in ``y_pred`` (the AR baseline) are scored the same way under ``ar_`` keys."""
    future, excursion = _targets(y_true)
    f_t = None
    if meta is not None and "f_t" in meta:
        f_t = np.asarray(meta["f_t"], dtype=float)
    out = _metrics(future, excursion, y_pred[FORECAST_COLUMNS].to_numpy(dtype=float),
                   y_pred["p_excursion"].to_numpy(dtype=float), f_t)
    if all(f"ar_{c}" in y_pred.columns for c in OUTPUT_COLUMNS):
        ar = _metrics(future, excursion, y_pred[[f"ar_{c}" for c in FORECAST_COLUMNS]].to_numpy(dtype=float),
                      y_pred["ar_p_excursion"].to_numpy(dtype=float), f_t)
        out.update({f"ar_{k}": v for k, v in ar.items()})
    out["excursion_rate"] = float(excursion.mean())
    return out


def _as_frames(predictions: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Model, persistence and (when the baseline carries it) AR predictions, by name."""
    frames = {}
    for name, pred in predictions.items():
        frames["persistence" if name == "baseline" else name] = pred[OUTPUT_COLUMNS]
        if all(f"ar_{c}" in pred.columns for c in OUTPUT_COLUMNS):
            frames["linear AR"] = pred[[f"ar_{c}" for c in OUTPUT_COLUMNS]].set_axis(OUTPUT_COLUMNS, axis=1)
    return frames


def frequency_figures(dataset, predictions: dict[str, Any]) -> dict[str, Any]:
    """RMSE by horizon; a forecast excerpt around the test's deepest excursion; reliability of p_excursion."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    future, excursion = _targets(dataset.y_test)
    frames = _as_frames(predictions)
    figs: dict[str, Any] = {}
    fig = go.Figure()
    for name, pred in frames.items():
        rmse = np.sqrt(np.mean((pred[FORECAST_COLUMNS].to_numpy() - future) ** 2, axis=0)) * 1e3
        fig.add_scatter(x=list(range(1, HORIZON + 1)), y=rmse, mode="lines+markers", name=name)
    fig.update_layout(title="m03 RMSE by horizon (test)", xaxis_title="steps ahead [s]", yaxis_title="RMSE [mHz]")
    figs["rmse_by_horizon"] = fig

    meta = dataset.meta_test
    if meta is not None and "ts" in meta:
        ts = pd.to_datetime(meta["ts"]).reset_index(drop=True)
        deepest = int(np.argmax(np.abs(future[:, -1] - F_NOMINAL)))
        lo, hi = max(0, deepest - 150), min(len(ts), deepest + 150)
        sel = slice(lo, hi)
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
        fig.add_scatter(x=ts[sel] + pd.Timedelta(seconds=HORIZON), y=future[sel, -1], name="measured", row=1, col=1,
                        line={"color": "black"})
        for name, pred in frames.items():
            fig.add_scatter(x=ts[sel] + pd.Timedelta(seconds=HORIZON), y=pred["f_t+10"].to_numpy()[sel],
                            name=f"{name} (10 s ahead)", row=1, col=1)
            fig.add_scatter(x=ts[sel], y=pred["p_excursion"].to_numpy()[sel], name=f"{name} p_excursion",
                            row=2, col=1, showlegend=False)
        fig.add_scatter(x=ts[sel], y=excursion[sel], name="excursion within 10 s", row=2, col=1,
                        line={"color": "black", "dash": "dot"})
        for band in BAND_HZ:
            fig.add_hline(y=band, line_dash="dash", line_color="grey", row=1, col=1)
        fig.update_yaxes(title_text="frequency [Hz]", row=1, col=1)
        fig.update_yaxes(title_text="P(excursion)", range=[-0.05, 1.05], row=2, col=1)
        fig.update_layout(title="10 s-ahead forecasts around the test's largest deviation")
        figs["forecast_excerpt"] = fig

    fig = go.Figure()
    edges = np.linspace(0, 1, 11)
    for name, pred in frames.items():
        p = pred["p_excursion"].to_numpy()
        idx = np.clip(np.digitize(p, edges) - 1, 0, 9)
        xs, ys, ns = [], [], []
        for b in range(10):
            m = idx == b
            if m.any():
                xs.append(p[m].mean()), ys.append(excursion[m].mean()), ns.append(int(m.sum()))
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=name, text=[f"n={n}" for n in ns])
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "grey"}, name="perfect")
    fig.update_layout(title="reliability of p_excursion (test)", xaxis_title="predicted probability",
                      yaxis_title="observed frequency")
    figs["excursion_reliability"] = fig
    return figs


# --------------------------------------------------------------------------- serving


def _serve(engine, est, model_id, new, held, errors):
    from ...datasets.monitoring.frequency_stability import frequency_grid

    N_HIST = HISTORY

    rows, hist, skipped = [], [], []
    new_us, new_row = new["ts"].cast(pl.Int64).to_numpy(), new["row"].to_numpy()  # ts: canonical, µs
    new_f = new["frequency"].cast(pl.Float64).to_numpy()  # a null is NaN
    devices = np.array(new["device_id"].to_list(), dtype=object)
    by_device = np.argsort(devices, kind="stable")  # each device's readings stay in time order
    bounds = [0, *(np.flatnonzero(devices[by_device][1:] != devices[by_device][:-1]) + 1).tolist(), len(devices)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mine = by_device[lo:hi]
        if not (new_us[mine] % 1_000_000 == 0).any():  # no new reading at a whole second: none has a window
            skipped.append(new_row[mine])
            continue
        # the device's held readings (the engine's history, in time order) that reach a window: the N_HIST
        # seconds before its first new reading
        since = (int(new_us[mine].min()) // 1_000_000 - N_HIST + 1) * 1_000_000
        h_us, h_f = _held_since(engine.history(devices[mine[0]]), since)
        us = np.concatenate([h_us, new_us[mine]])
        row = np.concatenate([np.full(len(h_us), -1, np.int64), new_row[mine]])
        f_all = np.concatenate([h_f, new_f[mine]])
        is_new = row >= 0
        whole = us % 1_000_000 == 0
        grid, f = frequency_grid(us[whole], f_all[whole])
        sec0 = grid[0] if grid.size else 0
        # each new whole-second reading's window is f[k - N_HIST + 1 .. k], k its second on the grid
        k = us // 1_000_000 - sec0
        ok = is_new & whole & (k >= N_HIST - 1)
        gaps = np.concatenate([[0], np.cumsum(~np.isfinite(f))])  # non-finite values up to each second
        ok[ok] = gaps[k[ok] + 1] == gaps[k[ok] + 1 - N_HIST]
        skipped.append(row[is_new & ~ok])
        if ok.any():
            rows.append(row[ok])
            hist.append(np.lib.stride_tricks.sliding_window_view(f, N_HIST)[k[ok] - N_HIST + 1])
    skipped = np.concatenate(skipped) if skipped else np.empty(0, np.int64)
    if skipped.size:
        missing_input(errors, new, model_id, f"needs the last {N_HIST} one-second frequencies of this device (whole-second readings, no gap)",
                      code="insufficient_history", where=np.isin(new_row, skipped))
    if not rows:
        return None
    return prefixed(model_id, np.concatenate(rows), est.predict(pd.DataFrame(np.vstack(hist), columns=INPUT_COLUMNS)))


def _held_since(held: pl.DataFrame | None, since_us: int) -> tuple[np.ndarray, np.ndarray]:
    """(ts [µs], frequency [Hz], NaN for null) of the held readings at or after ``since_us``, read from
    the end of the history: a 90-min history is not converted whole for the last 100 s."""
    if held is None or held.height == 0:
        return np.empty(0, np.int64), np.empty(0)
    ts, take = held["ts"], 128
    while True:
        us = ts.tail(take).cast(pl.Int64).to_numpy()
        if us[0] < since_us or take >= held.height:
            break
        take *= 4
    first = int(np.searchsorted(us, since_us))
    return us[first:], held["frequency"].tail(len(us) - first).cast(pl.Float64).to_numpy()


#: how the inference engine serves m03: each device's last HISTORY one-second frequencies
SERVING = ServingAdapter(score=_serve, outputs=(*FORECAST_COLUMNS, "p_excursion"))
