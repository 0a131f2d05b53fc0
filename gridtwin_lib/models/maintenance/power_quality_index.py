"""m07 power quality index: forecast of the next 10-min window's PQ index.

The PQ index (quantities, limits, sub-scores, index) is defined once, in :mod:`gridtwin_lib.physics.pq`;
its names are re-exported here for the model's callers.

m07 predicts the index of the NEXT 10-min window from the current and past windows'
quantities and features; the label is a measurement of a window the inputs never see.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...physics.pq import PQ_LIMITS, PQ_QUANTITIES, SUBSCORES, WINDOW_S, pq_index, pq_window_table, subscores  # noqa: F401 (re-exported)
from .._keras import from_bytes, import_keras, to_bytes
from ..base import Baseline, GridModel, ModelSpec, input_matrix
from ..serving import Held, ServingAdapter, missing_input, prefixed

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


class PersistencePQ(Baseline):
    """Baseline of m07: the next window's index equals the current window's index."""

    name = "persistence of the current window's index"
    spec = None  # set below (same spec as the model)

    def fit(self, X, y=None):
        self.n_features_in_ = len(M07_INPUT_COLUMNS)
        return self

    def predict(self, X):
        arr = input_matrix(X, M07_INPUT_COLUMNS, "m07 persistence", M07_LAYOUT)
        return _pq_out(arr[:, M07_INPUT_COLUMNS.get_loc("pq_index")], getattr(X, "index", None))


class RecentMeanPQ(Baseline):
    """m07 ladder: the mean index of the current and the two previous 10-min windows
    (``pq_index``, ``pq_index_lag1``, ``pq_index_lag2``): persistence smoothed over 30 min."""

    name = "mean index of the last three windows"

    def fit(self, X, y=None):
        input_matrix(X, M07_INPUT_COLUMNS, "m07 recent mean", M07_LAYOUT)
        return self

    def predict(self, X):
        arr = input_matrix(X, M07_INPUT_COLUMNS, "m07 recent mean", M07_LAYOUT)
        cols = [M07_INPUT_COLUMNS.get_loc(c) for c in ("pq_index", "pq_index_lag1", "pq_index_lag2")]
        return _pq_out(arr[:, cols].mean(axis=1), getattr(X, "index", None))


class LinearPQ(Baseline):
    """m07 ladder: linear regression on the model's inputs, as the model predicting the change
    from the current index (``sklearn.linear_model.HuberRegressor`` on standardised inputs:
    robust to the rare deep dips, as the model's MAE loss). Output clipped to [0, 100]."""

    name = "linear (Huber) regression on the same inputs"

    def __init__(self, epsilon: float = 1.35, alpha: float = 1e-3, max_iter: int = 500):
        self.epsilon = epsilon
        self.alpha = alpha
        self.max_iter = max_iter

    def fit(self, X, y=None):
        from sklearn.linear_model import HuberRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if y is None:
            raise InputError("m07 linear baseline: fit needs y (the next window's pq_index)")
        arr = input_matrix(X, M07_INPUT_COLUMNS, "m07 linear", M07_LAYOUT)
        delta = np.asarray(y, float).ravel() - arr[:, M07_INPUT_COLUMNS.get_loc("pq_index")]
        self.model_ = make_pipeline(StandardScaler(), HuberRegressor(epsilon=self.epsilon, alpha=self.alpha,
                                                                     max_iter=self.max_iter)).fit(arr, delta)
        return self

    def predict(self, X):
        arr = input_matrix(X, M07_INPUT_COLUMNS, "m07 linear", M07_LAYOUT)
        return _pq_out(arr[:, M07_INPUT_COLUMNS.get_loc("pq_index")] + self.model_.predict(arr), getattr(X, "index", None))


class PowerQualityIndex(GridModel):
    """m07: Keras MLP for the PQ index of the next 10-min window.

    The network predicts the change from the current index (residual on persistence), on
    standardised inputs, trained with MAE loss; the last ``validation_fraction`` of the
    training rows (chronological) drives early stopping. Output clipped to [0, 100].

    Parameters
    ----------
    hidden : tuple of int
        Widths of the hidden layers.
    epochs, batch_size, learning_rate, patience : int, int, float, int
        Adam training (MAE loss) with early stopping on the validation slice.
    validation_fraction : float
        Last share of the training rows held out for early stopping.
    l2 : float
        L2 weight penalty.
    random_state : int
        Seed of Keras.

    Attributes
    ----------
    net_ : keras.Model
        The fitted network (predicts the change of the PQ index [index points]).
    mean_, scale_ : ndarray
        Input standardisation of the training rows.
    epochs_run_ : int
        Epochs actually trained.
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

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
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


# --------------------------------------------------------------------------- serving


def _serve(engine, est, model_id, new, held, errors):
    """m07's forecast for each reading's 10-min window, issued when the previous window closed:
    kept per device, so only a device's first reading in a window computes it."""
    window_us = WINDOW_S * 1_000_000
    forecasts = engine.state(model_id)  # device -> (start of its latest reading's window [us], forecast or None)
    devices = new["device_id"].to_list()
    windows = (new["ts"].cast(pl.Int64).to_numpy() // window_us * window_us).tolist()  # canonical ts: µs
    cached = [forecasts.get(d, (None, None)) if engine.incremental else (None, None) for d in devices]
    hit = np.array([c[0] == w for c, w in zip(cached, windows)], dtype=bool)
    value = np.array([c[1] if h and c[1] is not None else np.nan for c, h in zip(cached, hit)], dtype=float)
    if not hit.all():
        # a forecast for window W needs readings in W-1, W-2 and W-3 (m07_rows makes a missing
        # window a NaN row, which has no forecast): skip the build when one of them is empty
        keys = set(zip((d for d, h in zip(devices, hit) if not h), (w for w, h in zip(windows, hit) if not h)))
        possible = _windows_held(held.readings, keys, window_us)
        todo = np.array([not h and (d, w) in possible for d, w, h in zip(devices, windows, hit)], dtype=bool)
        computed = _window_forecasts(engine, est, new.filter(pl.Series(todo)), held) if todo.any() else {}
        for k in np.flatnonzero(~hit):
            value[k] = computed.get((devices[k], windows[k]), np.nan)
        for d, w in zip(devices, windows):  # keep each device's latest window (readings come in time order)
            kept = forecasts.get(d)
            if kept is None or w > kept[0]:
                forecast = computed.get((d, w), np.nan)
                forecasts[d] = (w, float(forecast) if np.isfinite(forecast) else None)
    miss = np.isnan(value)
    if miss.any():
        missing_input(errors, new, model_id,
                       "needs the three closed 10-min windows before this reading's window, with valid PQ quantities",
                       code="insufficient_history", where=miss)
    if miss.all():
        return None
    return prefixed(model_id, new["row"].to_numpy()[~miss], pd.DataFrame({"pq_index_next": value[~miss]}))


def _windows_held(readings: pl.DataFrame, keys: set[tuple[str, int]], window_us: int) -> set[tuple[str, int]]:
    """The (device, window start [us]) of ``keys`` whose device holds readings in each of the
    three windows before that window."""
    starts = readings.select("device_id", (pl.col("ts").dt.epoch("us") // window_us * window_us).alias("w")).unique()
    held = set(zip(starts["device_id"].to_list(), starts["w"].to_list()))
    return {(d, w) for d, w in keys if all((d, w - k * window_us) in held for k in (1, 2, 3))}


def _window_forecasts(engine, est, new: pl.DataFrame, held: Held) -> dict[tuple[str, int], float]:
    """(device, window start [us since epoch]) -> m07 forecast for each window of ``new``'s
    readings that has one, from the training builder's rows (``m07_window_rows``, ``m07_rows``)
    of the three closed windows before it."""
    from ... import features as F
    from ... import schema
    from ...datasets.maintenance.power_quality_index import m07_rows, m07_window_rows

    step = timedelta(seconds=WINDOW_S)
    first = new["ts"].min()
    since = datetime.fromtimestamp(int(first.timestamp()) // WINDOW_S * WINDOW_S, tz=UTC) - 3 * step
    mine = pl.col("device_id").is_in(new["device_id"].unique().implode())
    readings = held.readings.filter(mine)
    raw = readings.select([c for c in readings.columns if c in set(schema.polars_schema("three_phase")) | {"row"}])
    if held.features is not None:
        feats = held.features.filter(mine)
    else:  # the features of each window's last reading are all the builder keeps
        window = pl.col("ts").dt.truncate(f"{WINDOW_S}s")
        last = (window != window.shift(-1).over("device_id")).fill_null(True)
        feats = F.compute(readings, "three_phase", windows=SERVING.windows, site=engine.site, keep_inputs=False,
                          rows=last & (pl.col("ts") >= since))
    win, ft = m07_window_rows(raw, since, engine.site, features=feats.select("ts", "device_id", *M07_FEATURES))
    table = m07_rows(win, ft)
    cols = list(M07_INPUT_COLUMNS)
    X = table[cols].astype(float)
    ok = np.isfinite(X.to_numpy()).all(axis=1)
    if not ok.any():
        return {}
    table = table[ok]
    # the window each forecast is for: the one after window k
    target = ((pd.to_datetime(table["window_start"], utc=True) + step - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)).to_numpy()
    value = est.predict(X[ok]).iloc[:, 0].to_numpy(float)
    return dict(zip(zip(table["device_id"].astype(str), target.tolist()), value.tolist()))


#: how the inference engine serves m07: per device, the forecast for the current 10-min window,
#: issued when the previous one closed (only a device's first reading in a window computes it)
SERVING = ServingAdapter(score=_serve, outputs=("pq_index_next",))
