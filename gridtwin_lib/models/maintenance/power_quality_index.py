"""m07 power quality index (forecast of the next 10-min window's index), and the PQ index itself.
The PQ index (:func:`pq_index`, :func:`pq_window_table`) is defined ONCE here, on measured
three-phase readings of one 10-minute window (the EN 50160 / IEC 61000-4-30 aggregation
interval). Five quantities, each mapped to a 0-100 sub-score against its EN 50160 limit:

=================  ===========================================================  =====  ========
quantity           definition on the window's readings                           unit   limit L
=================  ===========================================================  =====  ========
``v_dev_pct``      max over phases of ``|mean(v_x) - 230 V| / 230 V * 100``          %      10
``unbalance_pct``  mean of the per-reading unbalance ``max|v_x - v_mean| / v_mean``  %      2
``thd_pct``        mean of the measured voltage THD ``thd_v``                        %      8
``freq_dev_hz``    max of ``|mean f over each 10 s block - 50 Hz|``                  Hz     0.5
``rvc_pct``        flicker-like short-term variation: 95th percentile, over the     %      3
                   window's consecutive-reading steps, of the largest phase step
                   ``|v_x[k] - v_x[k-1]| / 230 V * 100``
=================  ===========================================================  =====  ========

Limits: EN 50160 (LV) supply voltage within ±10 % of U_n for 10-min means; negative-sequence
unbalance up to 2 % (here the magnitude-only unbalance of :mod:`gridtwin_lib.features`, as the
canonical record has no phase angles); THD up to 8 %; frequency 50 Hz ±1 % (10-s means);
rapid voltage changes are "generally below 5 %"; 3 % is used as a stricter flicker proxy
(IEC 61000-3-3 d_max 3.3 %) because the 1-s record cannot give Pst (IEC 61000-4-15).

Sub-score ``s = 100 * clip(1 - x / L, 0, 1)``: 100 for an ideal supply (x = 0), 0 at or beyond
the limit. Index ``= 0.5 * mean(s) + 0.5 * min(s)``: an ideal window scores 100; any limit
violation (one sub-score 0) caps the index at 40 (the mean of the other four is at most 80),
so the worst quantity dominates, as EN 50160 compliance is decided per quantity, while the
mean keeps the index sensitive to every quantity. A window whose frequency or THD readings
are all missing (supply interrupted) scores 0 on those quantities.

m07 predicts the index of the NEXT 10-min window from the current and past windows'
quantities and features; the label is a measurement of a window the inputs never see.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from .._keras import from_bytes, import_keras, to_bytes
from ..base import GridModel, ModelSpec, input_matrix
from ..serving import Held, ServingAdapter, missing_input, prefixed

V_NOMINAL = 230.0  # [V]
F_NOMINAL = 50.0  # [Hz]
WINDOW_S = 600  # [s] the 10-min aggregation interval
FREQ_BLOCK_S = 10  # [s] frequency is judged on 10-s means (EN 50160)
#: (quantity, unit, EN 50160 limit)
PQ_LIMITS: dict[str, tuple[str, float]] = {
    "v_dev_pct": ("%", 10.0),
    "unbalance_pct": ("%", 2.0),
    "thd_pct": ("%", 8.0),
    "freq_dev_hz": ("Hz", 0.5),
    "rvc_pct": ("%", 3.0),
}
PQ_QUANTITIES = tuple(PQ_LIMITS)
SUBSCORES = tuple(f"s_{q}" for q in PQ_QUANTITIES)


# --------------------------------------------------------------------------- the PQ index


def subscores(quantities: pd.DataFrame) -> pd.DataFrame:
    """Sub-scores ``s_<quantity> = 100 clip(1 - x / L, 0, 1)`` and ``pq_index`` of quantity rows.

    NaN quantities (no readings of that kind in the window) score 0.
    """
    out = pd.DataFrame(index=quantities.index)
    for q, (_, limit) in PQ_LIMITS.items():
        x = quantities[q].to_numpy(dtype=float)
        s = 100.0 * np.clip(1.0 - np.abs(x) / limit, 0.0, 1.0)
        out[f"s_{q}"] = np.where(np.isfinite(x), s, 0.0)
    s = out[list(SUBSCORES)].to_numpy()
    out["pq_index"] = 0.5 * s.mean(axis=1) + 0.5 * s.min(axis=1)
    return out


def pq_window_table(readings: pl.DataFrame | pd.DataFrame, window_s: int = WINDOW_S) -> pl.DataFrame:
    """The five quantities, sub-scores and index of every (device, clock-aligned window).

    ``readings``: canonical ``three_phase`` rows (ts [UTC], device_id, v_a, v_b, v_c [V],
    frequency [Hz], thd_v [%]). Returns one row per device and window: ``device_id``,
    ``window_start``, ``n`` (readings), the quantities of :data:`PQ_LIMITS`, ``s_*`` and
    ``pq_index``, sorted by device and window.
    """
    df = pl.from_pandas(readings) if isinstance(readings, pd.DataFrame) else readings
    need = {"ts", "device_id", "v_a", "v_b", "v_c", "frequency", "thd_v"}
    missing = sorted(need - set(df.columns))
    if missing:
        raise InputError(f"pq index: readings lack columns {missing}; pass canonical three_phase records")
    if df.height == 0:
        raise InputError("pq index: no readings in the window")
    vn = V_NOMINAL
    v = [pl.col(f"v_{p}") for p in "abc"]
    v_mean = (v[0] + v[1] + v[2]) / 3
    every = f"{int(window_s)}s"
    df = df.sort("device_id", "ts").with_columns(
        pl.col("ts").dt.truncate(every).alias("window_start"),
        pl.col("ts").dt.truncate(f"{FREQ_BLOCK_S}s").alias("_fblock"),
        (pl.max_horizontal([(vx - v_mean).abs() for vx in v]) / v_mean * 100).alias("_unb"),
        pl.max_horizontal([(vx - vx.shift(1).over("device_id")).abs() for vx in v]).alias("_step"),
    )
    # the first reading of a window has no step inside the window
    df = df.with_columns(pl.when(pl.col("window_start") == pl.col("window_start").shift(1).over("device_id"))
                         .then(pl.col("_step")).otherwise(None).alias("_step"))
    fblocks = (df.group_by("device_id", "window_start", "_fblock")
               .agg(pl.col("frequency").mean().alias("_f10"))
               .group_by("device_id", "window_start")
               .agg(((pl.col("_f10") - F_NOMINAL).abs().max()).alias("freq_dev_hz")))
    agg = df.group_by("device_id", "window_start").agg(
        pl.len().alias("n"),
        (pl.max_horizontal([(vx.mean() - vn).abs() for vx in v]) / vn * 100).alias("v_dev_pct"),
        pl.col("_unb").mean().alias("unbalance_pct"),
        pl.col("thd_v").mean().alias("thd_pct"),
        (pl.col("_step").quantile(0.95, "linear") / vn * 100).fill_null(0.0).alias("rvc_pct"),
    ).join(fblocks, on=["device_id", "window_start"], how="left").sort("device_id", "window_start")
    agg = agg.select("device_id", "window_start", "n", *PQ_QUANTITIES)
    q = agg.select(PQ_QUANTITIES).to_pandas().astype(float)
    return pl.concat([agg, pl.from_pandas(subscores(q))], how="horizontal")


def pq_index(readings: pl.DataFrame | pd.DataFrame) -> float:
    """The PQ index (0-100, 100 = ideal supply) of ONE 10-min window of one device's readings.

    See the module docstring for the five EN 50160 quantities, their limits, the sub-score
    ``100 clip(1 - x / L, 0, 1)`` and the combination ``0.5 mean + 0.5 min``. The readings
    are taken as one window whatever their clock alignment.
    """
    df = pl.from_pandas(readings) if isinstance(readings, pd.DataFrame) else readings
    if df.height == 0:
        raise InputError("pq index: no readings in the window")
    if "device_id" in df.columns and df["device_id"].n_unique() > 1:
        raise InputError("pq index: readings of several devices; pass one device's window (or use pq_window_table)")
    span = (df["ts"].max() - df["ts"].min()).total_seconds()
    t0 = df["ts"].min()
    df = df.with_columns(pl.lit("one").alias("device_id"), (pl.col("ts") - t0 + pl.lit(pd.Timestamp(0, tz="UTC"))).alias("ts"))
    table = pq_window_table(df, window_s=int(max(WINDOW_S, span + 1)) * 10)
    return float(table["pq_index"][0])


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


# --------------------------------------------------------------------------- serving


def _serve(engine, est, model_id, new, held, errors):
    """m07's forecast for each reading's 10-min window, issued when the previous window closed:
    kept per device, so only a device's first reading in a window computes it."""
    window_us = WINDOW_S * 1_000_000
    forecasts = engine.state(model_id)  # device -> (start of its latest reading's window [us], forecast or None)
    devices = new["device_id"].to_list()
    windows = (new["ts"].dt.epoch("us").to_numpy() // window_us * window_us).tolist()
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
        missing_input(errors, new.filter(pl.Series(miss)), model_id,
                       "needs the three closed 10-min windows before this reading's window, with valid PQ quantities",
                       code="insufficient_history")
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
    since = datetime.fromtimestamp(int(first.timestamp()) // WINDOW_S * WINDOW_S, tz=timezone.utc) - 3 * step
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
