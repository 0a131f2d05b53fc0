"""m09 load_forecast: day-ahead hourly load (24 steps issued at local midnight), in kW.

Two candidate algorithms, the champion chosen on a validation slice at the *end of
the training range* (never the test range): Prophet (trend + yearly/weekly
seasonality + a daily profile conditioned on working/off days, the day's holiday
flag and the previous day's mean load as regressors) and a small Keras LSTM (the last
7 days as 7 steps of 24 hourly loads, the target day's calendar, 24 outputs). A
second small LSTM gives one-step-ahead forecasts (each hour from the loads up to the
previous hour), reported for comparison with the literature on the UCI data.

Input layout (one row per forecast issue; no hidden history: a row carries all the
model needs):

* ``issue_time_local``: the issue instant, local standard time of the site, naive
  datetime at 00:00 (the target day is ``[issue, issue + 24 h)``);
* ``holiday``: 1.0 if the target day is a public holiday, else 0.0;
* ``lag_kw_001`` .. ``lag_kw_168``: hourly mean load [kW] of the hour starting
  ``k`` hours before the issue (``lag_kw_001`` = 23:00-24:00 of the previous day);
* ``obs_kw_h00`` .. ``obs_kw_h22`` (optional, NaN allowed): the measured hourly load
  [kW] of the target day itself. **Only the one-step outputs read them** (hour h
  from data up to hour h-1); the day-ahead outputs never do (a test checks it).

Output: a DataFrame with ``load_kw_h00`` .. ``load_kw_h23`` (day-ahead forecast of
the hourly mean load [kW] for hour h of the target day) and ``onestep_kw_h00`` ..
``onestep_kw_h23`` (one-step-ahead forecast of the same hours [kW]; NaN where the
needed ``obs`` values are missing).

Metrics (:meth:`LoadForecast.evaluate`): MASE of the day-ahead forecast, scaled by
the in-sample MAE of the seasonal-naive (same hour last week, 168 h) forecast on the
training range (:func:`seasonal_naive_scale`); MAE and RMSE [kW]; one-step MAE and
RMSE [kW]; lag-24 persistence MASE/MAE/RMSE as a reference. Hours whose target is
NaN (too few valid readings) are left out of every metric, for every forecast alike.
The one-step table (:meth:`LoadForecast.supplementary_metrics`, :func:`onestep_comparison`):
the one-step head against persistence and AR(24) + lag-168 on identical hours, RMSE [kW] with
paired day-block bootstrap intervals on the differences.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from ...errors import InputError
from ...units import HOURS_PER_DAY
from .._keras import from_bytes, import_keras, to_bytes
from ..base import Baseline, GridModel, ModelSpec

HOURS = HOURS_PER_DAY
WEEK_H = 168
LAG_COLS = [f"lag_kw_{k:03d}" for k in range(1, WEEK_H + 1)]
OBS_COLS = [f"obs_kw_h{h:02d}" for h in range(HOURS - 1)]
OUT_COLS = [f"load_kw_h{h:02d}" for h in range(HOURS)]
ONESTEP_COLS = [f"onestep_kw_h{h:02d}" for h in range(HOURS)]
ISSUE_COL = "issue_time_local"
HOLIDAY_COL = "holiday"
X_COLS = [ISSUE_COL, HOLIDAY_COL, *LAG_COLS, *OBS_COLS]
PERSIST24_COLS = [f"persist24_kw_h{h:02d}" for h in range(HOURS)]
ALGORITHMS = ("auto", "prophet", "lstm")
ONESTEP_WINDOW_H = 24
_MIN_VAL_DAYS = 7


# --------------------------------------------------------------------------- input helpers


def _check_X(X, need_obs: bool = False) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise InputError(f"m09_load_forecast: X must be a pandas DataFrame with columns {ISSUE_COL}, {HOLIDAY_COL}, "
                         "lag_kw_001..lag_kw_168 (see gridtwin_lib.models.energy_forecast)")
    missing = [c for c in (ISSUE_COL, HOLIDAY_COL, *LAG_COLS) if c not in X.columns]
    if missing:
        raise InputError(f"m09_load_forecast: X lacks {len(missing)} column(s), first {missing[0]!r}; "
                         "build it with gridtwin_lib.datasets.energy.load_forecast")
    if len(X) == 0:
        raise InputError("m09_load_forecast: X has no rows (no forecast issue); widen the data window")
    return X


def _issue_times(X: pd.DataFrame) -> pd.DatetimeIndex:
    t = pd.DatetimeIndex(pd.to_datetime(X[ISSUE_COL]))
    return t.tz_localize(None) if t.tz is not None else t


def _history(X: pd.DataFrame) -> np.ndarray:
    """(n, 168) hourly loads [kW] before the issue, oldest first."""
    return X[LAG_COLS[::-1]].to_numpy(dtype=float)


def _obs(X: pd.DataFrame) -> np.ndarray:
    """(n, 23) measured loads of the target day's hours 0..22 [kW] (NaN when absent)."""
    out = np.full((len(X), HOURS - 1), np.nan)
    for j, c in enumerate(OBS_COLS):
        if c in X.columns:
            out[:, j] = X[c].to_numpy(dtype=float)
    return out


def _targets(y, n: int) -> np.ndarray:
    if y is None:
        return np.full((n, HOURS), np.nan)
    if isinstance(y, pd.DataFrame):
        y = y[OUT_COLS]
    arr = np.asarray(y, dtype=float)
    if arr.shape != (n, HOURS):
        raise InputError(f"m09_load_forecast: y must have {n} rows x 24 columns {OUT_COLS[0]}..{OUT_COLS[-1]} (got {arr.shape})")
    return arr


def _pred_array(y, cols: list[str]) -> np.ndarray:
    """Columns ``cols`` of a prediction (DataFrame by name; ndarray: day-ahead 0..23, one-step 24..47)."""
    if isinstance(y, pd.DataFrame):
        if not set(cols) <= set(y.columns):
            return np.full((len(y), len(cols)), np.nan)
        return y[cols].to_numpy(dtype=float)
    arr = np.asarray(y, dtype=float)
    start = 0 if cols == OUT_COLS else HOURS
    if arr.ndim != 2 or arr.shape[1] < start + HOURS:
        return np.full((len(arr), len(cols)), np.nan)
    return arr[:, start:start + HOURS]


def hourly_series(X: pd.DataFrame, y=None) -> pd.DataFrame:
    """The hourly series the rows describe, on a regular grid (index: local naive hour).

    ``filled`` [kW]: the input loads (lags and obs; the builder filled gaps causally);
    ``target`` [kW]: the labels (NaN where none); ``holiday``: the row's flag on each target hour.
    """
    X = _check_X(X)
    issue = _issue_times(X).values.astype("datetime64[h]").astype(np.int64)  # hours since epoch
    hist, obs, Y = _history(X), _obs(X), _targets(y, len(X))
    h_hist = issue[:, None] + np.arange(-WEEK_H, 0)[None, :]
    h_obs = issue[:, None] + np.arange(HOURS - 1)[None, :]
    h_day = issue[:, None] + np.arange(HOURS)[None, :]
    lo, hi = int(h_hist.min()), int(h_day.max())
    n = hi - lo + 1
    filled = np.full(n, np.nan)
    for hours, vals in ((h_hist, hist), (h_obs, obs)):
        ok = np.isfinite(vals)
        filled[hours[ok] - lo] = vals[ok]
    target = np.full(n, np.nan)
    ok = np.isfinite(Y)
    target[h_day[ok] - lo] = Y[ok]
    holiday = np.full(n, np.nan)
    holiday[(h_day - lo).ravel()] = np.repeat(X[HOLIDAY_COL].to_numpy(dtype=float), HOURS)
    filled = np.where(np.isfinite(filled), filled, target)  # last day's hour 23 is known only as a label
    index = pd.DatetimeIndex((np.arange(lo, hi + 1)).astype("datetime64[h]").astype("datetime64[ns]"))
    return pd.DataFrame({"filled": filled, "target": target, "holiday": holiday}, index=index)


def seasonal_naive_scale(X: pd.DataFrame, y) -> float:
    """MASE scale [kW]: in-sample MAE of the seasonal-naive (168 h) forecast on the rows' labels.

    ``mean |y_t - y_{t-168 h}|`` over every pair of hours of the training range whose
    two labels are valid (NaN labels are skipped, not filled).
    """
    r = hourly_series(X, y)["target"].to_numpy()
    d = np.abs(r[WEEK_H:] - r[:-WEEK_H])
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise InputError("m09_load_forecast: no pair of valid hourly labels one week apart in the training range; "
                         "the MASE scale needs at least 8 days of training data")
    return float(d.mean())


def _calendar(times: pd.DatetimeIndex, holiday: np.ndarray) -> np.ndarray:
    """Calendar of an issue instant: weekday one-hot (7), holiday, day-of-year and hour cycles (2 + 2)."""
    doy = 2 * np.pi * (times.dayofyear.to_numpy() - 1) / 365.25
    hod = 2 * np.pi * times.hour.to_numpy() / 24
    dow = np.eye(7)[times.dayofweek.to_numpy()]
    return np.column_stack([dow, np.nan_to_num(holiday, nan=0.0), np.sin(doy), np.cos(doy), np.sin(hod), np.cos(hod)])


def _mean_load(Y: np.ndarray) -> float:
    m = float(np.nanmean(Y)) if np.isfinite(Y).any() else float("nan")
    if not (np.isfinite(m) and m > 0):
        raise InputError("m09_load_forecast: the training labels hold no positive load; check the data window")
    return m


def _mae(y, p, mask):
    return float(np.mean(np.abs(y[mask] - p[mask]))) if mask.any() else float("nan")


def _rmse(y, p, mask):
    return float(np.sqrt(np.mean((y[mask] - p[mask]) ** 2))) if mask.any() else float("nan")


@contextlib.contextmanager
def _quiet_stan():
    """Silence cmdstanpy/prophet INFO chatter for the duration of a fit (then restore)."""
    loggers = [logging.getLogger(n) for n in ("cmdstanpy", "prophet")]
    before = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, b in zip(loggers, before):
            lg.disabled = b


def _call(model, inputs: list[np.ndarray], batch: int = 8192) -> np.ndarray:
    """Inference by direct calls in batches (no per-model tf.function tracing, unlike ``predict``)."""
    n = len(inputs[0])
    parts = [np.asarray(model([x[i:i + batch].astype("float32") for x in inputs], training=False), dtype=float)
             for i in range(0, n, batch)]
    return np.concatenate(parts) if parts else np.empty((0,))


# --------------------------------------------------------------------------- baseline


class NaiveLoad(Baseline):
    """Naive forecasts from the row's own lags (no fitting).

    Day-ahead hour h = the load ``lag_h`` hours earlier (``lag_h=168``: seasonal naive,
    same hour last week, the catalogue baseline; ``lag_h=24``: persistence of yesterday).
    One-step hour h = the previous hour's load (persistence lag-1). Outputs in kW, the
    same 48 columns as :class:`LoadForecast`.
    """

    name = "seasonal naive (same hour last week)"

    def __init__(self, lag_h: int = WEEK_H):
        self.lag_h = lag_h

    def fit(self, X, y=None):
        if self.lag_h not in range(HOURS, WEEK_H + 1, HOURS):
            raise InputError(f"NaiveLoad: lag_h must be a multiple of 24 within 24..168 (got {self.lag_h})")
        self.n_features_in_ = len(X.columns) if isinstance(X, pd.DataFrame) else None
        return self

    def predict(self, X) -> pd.DataFrame:
        X = _check_X(X)
        day = X[[f"lag_kw_{self.lag_h - h:03d}" for h in range(HOURS)]].to_numpy(dtype=float)
        one = np.column_stack([X["lag_kw_001"].to_numpy(dtype=float), _obs(X)])
        return pd.DataFrame(np.hstack([day, one]), columns=[*OUT_COLS, *ONESTEP_COLS], index=X.index)


class YesterdayLoad(NaiveLoad):
    """Persistence of yesterday: day-ahead hour h = the same hour of the day before (lag 24 h);
    one-step = the previous hour's load. Outputs in kW, the 48 columns of :class:`LoadForecast`."""

    name = "persistence of yesterday (lag 24 h)"

    def __init__(self, lag_h: int = HOURS):
        super().__init__(lag_h=lag_h)


class SameHourMean7d(Baseline):
    """Same-hour mean of the last 7 days: hour h of the target day = mean of hour h over the 7
    days before the issue (kW). No intraday information: the one-step columns carry the same
    values. Learns nothing (``fit`` checks the layout)."""

    name = "same-hour mean of the last 7 days"

    def fit(self, X, y=None):
        _check_X(X)
        return self

    def predict(self, X) -> pd.DataFrame:
        X = _check_X(X)
        days = [X[[f"lag_kw_{HOURS * k - h:03d}" for h in range(HOURS)]].to_numpy(dtype=float) for k in range(1, 8)]
        day = np.nanmean(np.stack(days), axis=0)
        return pd.DataFrame(np.hstack([day, day]), columns=[*OUT_COLS, *ONESTEP_COLS], index=X.index)


def _ar_inputs(X: pd.DataFrame, order_h: int) -> tuple[np.ndarray, np.ndarray]:
    """One-step regressors of each target hour, flat row-major (n x 24 samples): the ``order_h``
    hourly loads before the hour (up to h-1) and the same hour one week earlier (t - 168 h) [kW];
    and which samples are complete."""
    full = np.hstack([_history(X), _obs(X)])  # (n, 191): hours -168 .. +22
    win = np.lib.stride_tricks.sliding_window_view(full, order_h, axis=1)[:, WEEK_H - order_h: WEEK_H - order_h + HOURS]
    A = np.concatenate([win, full[:, :HOURS, None]], axis=2).reshape(len(X) * HOURS, order_h + 1)
    return A, np.isfinite(A).all(axis=1)


def _day_ahead_inputs(X: pd.DataFrame) -> np.ndarray:
    """Day-ahead regressors of a row: the 168 hourly lags [kW], the weekday one-hot and the holiday flag."""
    times = _issue_times(X)
    return np.hstack([_history(X), np.eye(7)[times.dayofweek.to_numpy()], X[[HOLIDAY_COL]].to_numpy(dtype=float)])


class LinearARLoad(Baseline):
    """Linear autoregression by ordinary least squares (scikit-learn ``LinearRegression``).

    One-step: AR(``order_h``) + lag-168, hour h of the target day from the ``order_h`` loads up to
    hour h-1 and the same hour a week earlier (one equation for every hour of the day).
    Day-ahead: a direct linear model of the 24 hours of the target day on the week of hourly lags
    before the issue, the weekday (one-hot) and the holiday flag (ridge with a small penalty, as the
    lags are collinear). Fitted on the training rows only; kW in and out.

    Parameters
    ----------
    order_h : int
        Autoregressive order of the one-step model [h].
    ridge_alpha : float
        L2 penalty of the day-ahead model (inputs standardised).
    """

    name = "linear AR(24) + lag-168 (one-step) and linear regression on the last week (day-ahead)"

    def __init__(self, order_h: int = 24, ridge_alpha: float = 1.0):
        self.order_h = order_h
        self.ridge_alpha = ridge_alpha

    def fit(self, X, y=None):
        from sklearn.linear_model import LinearRegression, Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        if not 1 <= int(self.order_h) <= WEEK_H:
            raise InputError(f"LinearARLoad: order_h must be within 1..168 hours (got {self.order_h})")
        X = _check_X(X)
        Y = _targets(y, len(X))
        A, ok = _ar_inputs(X, int(self.order_h))
        t = Y.reshape(-1)
        ok &= np.isfinite(t)
        if ok.sum() < 2 * (int(self.order_h) + 1):
            raise InputError(f"LinearARLoad: {int(ok.sum())} complete training hours are too few for an AR({self.order_h}); "
                             "extend the training range")
        self.onestep_ = LinearRegression().fit(A[ok], t[ok])
        D = _day_ahead_inputs(X)
        rows = np.isfinite(D).all(axis=1) & np.isfinite(Y).all(axis=1)
        if rows.sum() < 2:
            raise InputError("LinearARLoad: fewer than two training days with complete lags and labels")
        self.day_ahead_ = make_pipeline(StandardScaler(), Ridge(alpha=self.ridge_alpha)).fit(D[rows], Y[rows])
        self.fallback_kw_ = np.nanmean(Y[rows], axis=0)
        return self

    def predict(self, X) -> pd.DataFrame:
        X = _check_X(X)
        A, ok = _ar_inputs(X, int(self.order_h))
        one = np.full(len(X) * HOURS, np.nan)
        if ok.any():
            one[ok] = self.onestep_.predict(A[ok])
        D = _day_ahead_inputs(X)
        rows = np.isfinite(D).all(axis=1)
        day = np.tile(self.fallback_kw_, (len(X), 1))
        if rows.any():
            day[rows] = self.day_ahead_.predict(D[rows])
        out = np.hstack([np.clip(day, 0.0, None), np.clip(one.reshape(len(X), HOURS), 0.0, None)])
        return pd.DataFrame(out, columns=[*OUT_COLS, *ONESTEP_COLS], index=X.index)


class SeasonalETSLoad(Baseline):
    """Exponential smoothing with a daily season, statsforecast's ``AutoETS(season_length=24)``.

    The statistical forecaster a practitioner tries first on hourly load, from a maintained
    library rather than written here. ``fit``: AutoETS picks the ETS form among ``ets_model``
    (error and season additive or multiplicative; no trend by default: a trend over the one day
    ahead is not what a household's load has, and the trend candidates triple the fit time) and
    its smoothing parameters by AICc, on the last ``history_weeks`` weeks of the training range
    only (the hourly inputs the training rows carry: what the meter delivered, gaps filled
    causally by the dataset builder; the labels are not read), from a local midnight on: the
    forward pass keeps the fitted initial states, whose daily phase must be that of the rows' weeks
    (each starts at midnight, 168 h before the issue). Four weeks: with two or three, AICc can drop the daily
    season on the UCI household; a longer window costs about a second per week. ``predict``: for each row, the fitted model is run over the row's own 168 hourly lags
    (``AutoETS.forward``: the same parameters, states filtered again on that week) and forecasts
    the 24 hours of the target day, issued at midnight exactly like the model. A row carries
    all it needs, so one row alone gets the forecast it gets in a batch (what the engine
    serves). The target day's own hours (``obs_kw_*``) are never read: the one-step columns
    carry the day-ahead values. A row whose forecast is not finite (a multiplicative form run
    on a week holding a zero load) gets yesterday's load instead. kW in and out.

    Parameters
    ----------
    season_length_h : int
        Season of the ETS model [h].
    history_weeks : int
        Training weeks [wk] (the last ones) the ETS form and parameters are chosen on.
    ets_model : str
        statsforecast's three-letter ETS form to search (``Z``: chosen by AICc; ``N``: none).

    Attributes
    ----------
    ets_ : statsforecast.models.AutoETS
        The fitted model (``ets_.model_["method"]`` names the chosen form, e.g. ``ETS(M,Ad,M)``).
    """

    name = "exponential smoothing, daily season (statsforecast AutoETS)"

    def __init__(self, season_length_h: int = HOURS, history_weeks: int = 4, ets_model: str = "ZNZ"):
        self.season_length_h = season_length_h
        self.history_weeks = history_weeks
        self.ets_model = ets_model

    def fit(self, X, y=None):
        from statsforecast.models import AutoETS

        if not 1 <= int(self.season_length_h) <= WEEK_H // 2:
            raise InputError(f"SeasonalETSLoad: season_length_h must be within 1..84 hours, a week holds two seasons "
                             f"(got {self.season_length_h})")
        if int(self.history_weeks) < 1:
            raise InputError(f"SeasonalETSLoad: history_weeks must be >= 1 (got {self.history_weeks})")
        form = str(self.ets_model)
        if len(form) != 3 or form[0] not in "AMZ" or form[1] not in "ANMZ" or form[2] not in "ANMZ":
            raise InputError(f"SeasonalETSLoad: ets_model={self.ets_model!r} is not an ETS form; write error, trend, "
                             "season as three letters, e.g. ZNZ (A additive, M multiplicative, N none, Z chosen by AICc)")
        X = _check_X(X)
        series = hourly_series(X)["filled"]  # the inputs only: labels (a twin's truth) are not what serving sees
        series = series.loc[:series.last_valid_index()].ffill().dropna()
        series = series[series.index >= series.index[-1] - pd.Timedelta(hours=int(self.history_weeks) * WEEK_H - 1)]
        midnight = np.flatnonzero(series.index.hour == 0)
        # AutoETS.forward keeps the fitted initial states: the window starts at a local midnight, like every row's week
        series = series.iloc[midnight[0]:].to_numpy() if midnight.size else series.iloc[:0].to_numpy()
        if len(series) < 2 * int(self.season_length_h) + 2:
            raise InputError(f"SeasonalETSLoad: {len(series)} training hours are too few for a season of "
                             f"{self.season_length_h} h; extend the training range")
        self.ets_ = AutoETS(season_length=int(self.season_length_h), model=self.ets_model).fit(series)
        self.form_ = str(self.ets_.model_.get("method", ""))
        return self

    def predict(self, X) -> pd.DataFrame:
        if not hasattr(self, "ets_"):
            raise InputError("SeasonalETSLoad: the baseline is not fitted; call fit first")
        X = _check_X(X)
        hist = _history(X)
        day = np.full((len(X), HOURS), np.nan)
        for i, week in enumerate(hist):
            if np.isfinite(week).all():
                with np.errstate(all="ignore"):
                    day[i] = self.ets_.forward(y=week, h=HOURS)["mean"]
        bad = ~np.isfinite(day).all(axis=1)
        day[bad] = hist[bad][:, -HOURS:]  # yesterday's load (lag 24 h)
        day = np.clip(day, 0.0, None)
        return pd.DataFrame(np.hstack([day, day]), columns=[*OUT_COLS, *ONESTEP_COLS], index=X.index)


# --------------------------------------------------------------------------- the model


class LoadForecast(GridModel):
    """Day-ahead hourly load [kW], Prophet or LSTM, champion by validation MASE.

    ``fit(X, y)``: X as in the module docstring (one row per issue day, training
    range), y the 24 hourly loads of the target day [kW] (``load_kw_h00..23``; NaN =
    no valid label, skipped). The last ``validation_fraction`` of the training days
    (at least 7) is held out; each candidate (both when ``algorithm="auto"``) is fitted
    on the days before it and scored there by MASE; the champion is then refitted on
    the whole training range. The one-step LSTM is fitted on the whole training range.

    One-step outputs come from a dedicated small LSTM (the last 24 hourly loads, plus
    the hour, working/off day and the load 168 h earlier), trained with MSE since the
    literature compares RMSE; the baseline's one-step forecast is persistence (lag 1 h).

    Fitted attributes (for tracking): ``algorithm_`` (the one ``predict`` uses),
    ``validation_mase_`` (dict algorithm -> MASE on the validation slice, with
    ``seasonal_naive`` for reference), ``validation_mase_prophet_`` and
    ``validation_mase_lstm_`` (NaN when not a candidate), ``validation_range_`` (ISO),
    ``mase_scale_kw_``, ``load_scale_kw_`` (mean training load [kW], the normaliser).

    Parameters
    ----------
    algorithm : {"auto", "prophet", "lstm"}
        ``"auto"`` fits both and keeps the lower validation MASE.
    validation_fraction : float
        Last share of the training days used to choose and stop.
    prophet_history_days : int
        Training days [d] given to Prophet at most.
    prophet_yearly : bool or None
        Prophet's yearly seasonality (None: Prophet decides).
    lstm_units, lstm_epochs, lstm_stride_h, lstm_batch_size, learning_rate : int, int, int, int, float
        Day-ahead LSTM: width, epochs, stride between training windows [h], batch, Adam rate.
    one_step : bool
        Also fit the one-step-ahead (next hour) model.
    onestep_units, onestep_epochs : int
        Width and epochs of that model.
    random_state : int
        Seed of Keras and Prophet's sampling.

    Attributes
    ----------
    algorithm_ : str
        The algorithm kept.
    validation_mase_ : dict of str to float
        MASE per candidate (and ``seasonal_naive``) on the validation days.
    load_scale_kw_, mase_scale_kw_ : float
        Load scale [kW] of the networks' inputs; MASE denominator [kW].
    """

    spec = ModelSpec(
        model_id="m09_load_forecast",
        module="energy",
        algorithm="Prophet and LSTM (Keras), champion by validation MASE; one-step LSTM",
        baseline="seasonal naive (same hour last week); lag-24 persistence reported too",
        target="hourly mean load of the next local day [kW] (UCI measured; simulated feeders: twin's true load)",
        primary_metric="mase",
        greater_is_better=False,
        output_units={**{c: "kW" for c in OUT_COLS}, **{c: "kW" for c in ONESTEP_COLS}},
        secondary_metrics=("mae_kw", "rmse_kw", "onestep_rmse_kw", "onestep_mae_kw",
                           "lag24_mase", "lag24_mae_kw", "lag24_rmse_kw"),
    )

    def __init__(
        self,
        algorithm: str = "auto",
        validation_fraction: float = 0.1,
        prophet_history_days: int = 730,
        prophet_yearly: bool | None = None,
        lstm_units: int = 32,
        lstm_epochs: int = 30,
        lstm_stride_h: int = 24,
        lstm_batch_size: int = 64,
        learning_rate: float = 3e-3,
        one_step: bool = True,
        onestep_units: int = 16,
        onestep_epochs: int = 6,
        random_state: int = 0,
    ):
        self.algorithm = algorithm
        self.validation_fraction = validation_fraction
        self.prophet_history_days = prophet_history_days
        self.prophet_yearly = prophet_yearly
        self.lstm_units = lstm_units
        self.lstm_epochs = lstm_epochs
        self.lstm_stride_h = lstm_stride_h
        self.lstm_batch_size = lstm_batch_size
        self.learning_rate = learning_rate
        self.one_step = one_step
        self.onestep_units = onestep_units
        self.onestep_epochs = onestep_epochs
        self.random_state = random_state

    # ------------------------------------------------------------------ fit

    def fit(self, X, y=None):
        if self.algorithm not in ALGORITHMS:
            raise InputError(f"m09_load_forecast: algorithm={self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
        if not 0 < self.validation_fraction < 1:
            raise InputError(f"m09_load_forecast: validation_fraction={self.validation_fraction} must be within (0, 1)")
        X = _check_X(X)
        Y = _targets(y, len(X))
        order = np.argsort(_issue_times(X).values, kind="stable")
        X, Y = X.iloc[order], Y[order]
        n = len(X)
        n_val = max(_MIN_VAL_DAYS, math.ceil(self.validation_fraction * n))
        if n - n_val < _MIN_VAL_DAYS:
            raise InputError(f"m09_load_forecast: {n} training days are too few; need at least {2 * _MIN_VAL_DAYS} "
                             "(validation slice + days before it); extend the training range")
        self.mase_scale_kw_ = seasonal_naive_scale(X, Y)  # a common divisor: it does not change the ranking

        X_fit, Y_fit, X_val, Y_val = X.iloc[: n - n_val], Y[: n - n_val], X.iloc[n - n_val:], Y[n - n_val:]
        self.load_scale_kw_ = _mean_load(Y_fit)  # the validation labels stay unseen, even as a normaliser
        t_val = _issue_times(X_val)
        self.validation_range_ = [t_val[0].isoformat(), (t_val[-1] + pd.Timedelta(hours=HOURS)).isoformat()]
        mask = np.isfinite(Y_val)
        candidates = ("prophet", "lstm") if self.algorithm == "auto" else (self.algorithm,)
        self.validation_mase_ = {}
        for algo in candidates:
            pred = self._fit_candidate(algo, X_fit, Y_fit)(X_val)
            self.validation_mase_[algo] = _mae(Y_val, pred, mask) / self.mase_scale_kw_
        naive = NaiveLoad(WEEK_H).fit(X_val).predict(X_val)[OUT_COLS].to_numpy()
        self.validation_mase_["seasonal_naive"] = _mae(Y_val, naive, mask) / self.mase_scale_kw_
        self.algorithm_ = min(candidates, key=lambda a: (not np.isfinite(self.validation_mase_[a]), self.validation_mase_[a]))
        self.validation_mase_prophet_ = self.validation_mase_.get("prophet", float("nan"))
        self.validation_mase_lstm_ = self.validation_mase_.get("lstm", float("nan"))

        # the champion, refitted on the whole training range
        self.load_scale_kw_ = _mean_load(Y)
        self.prophet_ = self.lstm_ = None
        self._fit_candidate(self.algorithm_, X, Y, keep=True)
        self.onestep_ = self._fit_onestep(X, Y) if self.one_step else None
        self.n_train_days_ = n
        return self

    def _fit_candidate(self, algo: str, X: pd.DataFrame, Y: np.ndarray, keep: bool = False):
        """Fit one algorithm; return its day-ahead predict function (kW, (n, 24))."""
        if algo == "prophet":
            model = self._fit_prophet(X, Y)
            if keep:
                self.prophet_ = model
            return lambda Xn: self._predict_prophet(model, Xn)
        model = self._fit_lstm(X, Y)
        if keep:
            self.lstm_ = model
        return lambda Xn: self._predict_lstm(model, Xn)

    # ------------------------------------------------------------------ Prophet

    @staticmethod
    def _prophet_frame(X: pd.DataFrame, Y: np.ndarray | None = None) -> pd.DataFrame:
        """One row per target hour: ds (local), regressors from the issue row, y [kW]."""
        issue = _issue_times(X)
        n = len(X)
        ds = (issue.values[:, None] + (np.arange(HOURS) * np.timedelta64(1, "h"))[None, :]).ravel()
        holiday = np.repeat(X[HOLIDAY_COL].to_numpy(dtype=float), HOURS)
        weekend = pd.DatetimeIndex(ds).dayofweek.to_numpy() >= 5
        off = weekend | (holiday > 0)
        prevday = np.repeat(np.nanmean(X[LAG_COLS[:HOURS]].to_numpy(dtype=float), axis=1), HOURS)
        frame = pd.DataFrame({"ds": ds, "holiday": holiday, "off": off, "work": ~off, "prevday_kw": prevday})
        if Y is not None:
            frame["y"] = np.asarray(Y, dtype=float).reshape(n * HOURS)
        return frame

    def _fit_prophet(self, X: pd.DataFrame, Y: np.ndarray):
        from prophet import Prophet

        d = self._prophet_frame(X, Y).dropna(subset=["y"])
        d = d[d["ds"] > d["ds"].max() - pd.Timedelta(days=self.prophet_history_days)]
        if len(d) < 2 * HOURS:
            raise InputError("m09_load_forecast: fewer than two days of valid labels to fit Prophet; extend the training range")
        span_days = (d["ds"].max() - d["ds"].min()) / pd.Timedelta(days=1)
        yearly = bool(self.prophet_yearly) if self.prophet_yearly is not None else span_days >= 365
        m = Prophet(yearly_seasonality=yearly, weekly_seasonality=True, daily_seasonality=False,
                    uncertainty_samples=0)
        m.add_seasonality("daily_work", period=1, fourier_order=4, condition_name="work")
        m.add_seasonality("daily_off", period=1, fourier_order=4, condition_name="off")
        m.add_regressor("holiday")
        m.add_regressor("prevday_kw")
        with _quiet_stan():
            m.fit(d, seed=int(self.random_state))  # MAP fit (L-BFGS) from Prophet's fixed init
        return m

    def _predict_prophet(self, model, X: pd.DataFrame) -> np.ndarray:
        frame = self._prophet_frame(X)
        with _quiet_stan():
            yhat = model.predict(frame)["yhat"].to_numpy()
        return np.clip(yhat.reshape(len(X), HOURS), 0.0, None)

    # ------------------------------------------------------------------ LSTM day-ahead

    def _lstm_inputs(self, X: pd.DataFrame) -> list[np.ndarray]:
        seq = (_history(X) / self.load_scale_kw_).reshape(len(X), 7, HOURS)
        return [seq, _calendar(_issue_times(X), X[HOLIDAY_COL].to_numpy(dtype=float))]

    def _lstm_samples(self, X: pd.DataFrame, Y: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Windows issued every ``lstm_stride_h`` hours (at local midnight when 24)."""
        s = hourly_series(X, Y)
        f, r = s["filled"].to_numpy(), s["target"].to_numpy()
        hours = s.index.hour.to_numpy()
        stride = int(self.lstm_stride_h)
        if stride < 1 or HOURS % stride:
            raise InputError(f"m09_load_forecast: lstm_stride_h={stride} must divide 24")
        pos = np.arange(WEEK_H, len(s) - HOURS + 1)
        pos = pos[hours[pos] % stride == 0]
        win_f = np.lib.stride_tricks.sliding_window_view(f, WEEK_H)[pos - WEEK_H]
        win_r = np.lib.stride_tricks.sliding_window_view(r, HOURS)[pos]
        ok = np.isfinite(win_f).all(1) & np.isfinite(win_r).all(1)
        pos, win_f, win_r = pos[ok], win_f[ok], win_r[ok]
        if pos.size == 0:
            raise InputError("m09_load_forecast: no complete training window (7 days of history + 1 day of labels)")
        cal = _calendar(s.index[pos], s["holiday"].to_numpy()[pos])
        seq = (win_f / self.load_scale_kw_).reshape(len(pos), 7, HOURS)
        return [seq, cal], win_r / self.load_scale_kw_

    def _fit_lstm(self, X: pd.DataFrame, Y: np.ndarray):
        keras = import_keras()

        inputs, target = self._lstm_samples(X, Y)
        keras.utils.set_random_seed(self.random_state)
        seq = keras.Input((7, HOURS), name="days")
        cal = keras.Input((inputs[1].shape[1],), name="calendar")
        h = keras.layers.LSTM(self.lstm_units)(seq)
        z = keras.layers.Concatenate()([h, cal])
        z = keras.layers.Dense(64, activation="relu")(z)
        out = keras.layers.Dense(HOURS, activation="softplus")(z)  # loads are >= 0
        model = keras.Model([seq, cal], out)
        model.compile(keras.optimizers.Adam(self.learning_rate), loss="mae")  # MASE is an MAE
        model.fit(inputs, target, epochs=self.lstm_epochs, batch_size=self.lstm_batch_size, shuffle=True, verbose=0)
        return model

    def _predict_lstm(self, model, X: pd.DataFrame) -> np.ndarray:
        return _call(model, self._lstm_inputs(X)) * self.load_scale_kw_

    # ------------------------------------------------------------------ one-step LSTM

    def _onestep_inputs(self, X: pd.DataFrame) -> tuple[list[np.ndarray], np.ndarray]:
        """24 samples per row (hour h of the target day from the loads before it); flat, row-major."""
        n = len(X)
        full = np.hstack([_history(X), _obs(X)]) / self.load_scale_kw_  # (n, 191): hours -168 .. +22
        L = ONESTEP_WINDOW_H
        windows = np.lib.stride_tricks.sliding_window_view(full, L, axis=1)[:, WEEK_H - L: WEEK_H - L + HOURS]
        seq = windows.reshape(n * HOURS, L, 1)
        issue = _issue_times(X)
        hod = 2 * np.pi * np.arange(HOURS) / HOURS
        weekend = issue.dayofweek.to_numpy() >= 5
        off = (weekend | (X[HOLIDAY_COL].to_numpy(dtype=float) > 0)).astype(float)
        extra = np.column_stack([
            np.tile(np.sin(hod), n), np.tile(np.cos(hod), n), np.repeat(off, HOURS),
            full[:, :HOURS].ravel(),  # same hour one week earlier (t - 168 h)
        ])
        ok = np.isfinite(seq).all(axis=(1, 2)) & np.isfinite(extra).all(1)
        return [seq, extra], ok

    def _fit_onestep(self, X: pd.DataFrame, Y: np.ndarray):
        keras = import_keras()

        (seq, extra), ok = self._onestep_inputs(X)
        target = Y.reshape(-1) / self.load_scale_kw_
        ok &= np.isfinite(target)
        keras.utils.set_random_seed(self.random_state)
        a = keras.Input((ONESTEP_WINDOW_H, 1), name="hours")
        b = keras.Input((extra.shape[1],), name="context")
        h = keras.layers.LSTM(self.onestep_units)(a)
        z = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([h, b]))
        model = keras.Model([a, b], keras.layers.Dense(1)(z))
        model.compile(keras.optimizers.Adam(self.learning_rate), loss="mse")  # the literature reports RMSE
        model.fit([seq[ok], extra[ok]], target[ok], epochs=self.onestep_epochs, batch_size=256, shuffle=True, verbose=0)
        return model

    def _predict_onestep(self, X: pd.DataFrame) -> np.ndarray:
        if self.onestep_ is None:
            return np.full((len(X), HOURS), np.nan)
        (seq, extra), ok = self._onestep_inputs(X)
        out = np.full(len(X) * HOURS, np.nan)
        if ok.any():
            out[ok] = _call(self.onestep_, [seq[ok], extra[ok]]).ravel() * self.load_scale_kw_
        return np.clip(out.reshape(len(X), HOURS), 0.0, None)

    # ------------------------------------------------------------------ predict

    def predict(self, X) -> pd.DataFrame:
        """Day-ahead (``load_kw_hHH``) and one-step (``onestep_kw_hHH``) hourly loads [kW]."""
        if not hasattr(self, "algorithm_"):
            raise InputError("m09_load_forecast: the model is not fitted; call fit first")
        X = _check_X(X)
        if self.algorithm_ == "prophet":
            day = self._predict_prophet(self.prophet_, X)
        else:
            day = self._predict_lstm(self.lstm_, X)
        return pd.DataFrame(np.hstack([day, self._predict_onestep(X)]), columns=[*OUT_COLS, *ONESTEP_COLS], index=X.index)

    def baseline(self):
        """Seasonal naive (same hour last week); its one-step forecast is persistence lag-1."""
        return NaiveLoad(WEEK_H)

    # ------------------------------------------------------------------ score & figures

    def _mase_scale(self, meta) -> float:
        """The MASE denominator [kW]: the builder's ``mase_scale_kw`` (meta), else the fitted one, else NaN."""
        if isinstance(meta, pd.DataFrame) and "mase_scale_kw" in meta.columns:
            return float(meta["mase_scale_kw"].iloc[0])
        return float(getattr(self, "mase_scale_kw_", float("nan")))

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        """MASE / MAE / RMSE of the day-ahead forecast, one-step MAE / RMSE, lag-24 reference.

        ``meta`` (the builder's ``meta_test``) gives ``mase_scale_kw`` and the lag-24
        persistence forecast (``persist24_kw_hHH``); without it the fitted scale is used.
        """
        Y = _targets(y_true, len(y_true))
        mask = np.isfinite(Y)
        scale = self._mase_scale(meta)
        day = _pred_array(y_pred, OUT_COLS)
        one = _pred_array(y_pred, ONESTEP_COLS)
        out = {
            "mase": _mae(Y, day, mask) / scale,
            "mae_kw": _mae(Y, day, mask),
            "rmse_kw": _rmse(Y, day, mask),
            "onestep_mae_kw": _mae(Y, one, mask),
            "onestep_rmse_kw": _rmse(Y, one, mask),
        }
        if isinstance(meta, pd.DataFrame) and set(PERSIST24_COLS) <= set(meta.columns):
            p24 = meta[PERSIST24_COLS].to_numpy(dtype=float)
            out.update(lag24_mase=_mae(Y, p24, mask) / scale, lag24_mae_kw=_mae(Y, p24, mask), lag24_rmse_kw=_rmse(Y, p24, mask))
        out.update(mase_scale_kw=scale, n_hours_scored=float(mask.sum()))
        return out

    def supplementary_metrics(self, dataset, ev, *, n_replicates: int, seed: int) -> dict[str, float]:
        """The one-step table: the one-step head against persistence and AR(24) + lag-168 on the same hours.

        Persistence (the previous hour's load) is the one-step output of the ladder's
        :class:`NaiveLoad`, AR(24) + lag-168 that of its :class:`LinearARLoad` (order 24), both
        fitted on the training rows only (a fresh one when the ladder lacks it). See
        :func:`onestep_comparison` for the metrics' names; intervals when ``n_replicates`` > 0.
        """
        preds = {"model": _pred_array(ev.predictions["model"], ONESTEP_COLS)}
        for key, cls, wanted in (("persistence", NaiveLoad, lambda b: True),
                                 ("ar24_168", LinearARLoad, lambda b: int(b.order_h) == ONESTEP_WINDOW_H)):
            name = next((n for n, b in ev.fitted_baselines.items() if type(b) is cls and wanted(b)), None)
            if name is not None:
                preds[key] = _pred_array(ev.ladder_predictions[name], ONESTEP_COLS)
            else:
                fresh = cls().fit(dataset.X_train, dataset.y_train)
                preds[key] = _pred_array(fresh.predict(dataset.X_test), ONESTEP_COLS)
        return onestep_comparison(dataset.y_test, preds, n_replicates=n_replicates, seed=seed)

    def bootstrap_terms(self, y_true, y_pred, meta=None):
        """Per-row terms of the day-ahead MASE for the vectorised bootstrap.

        Returns ``(terms, combine)``: ``terms`` (n, 2) holds, per test row, the sum of absolute
        errors [kW] over its scored (finite-truth) hours and the number of those hours (masked
        hours contribute zeros); ``combine(sums)`` is their ratio divided by the MASE scale [kW],
        i.e. ``evaluate``'s ``mase`` on any resample of rows.
        """
        Y = _targets(y_true, len(y_true))
        mask = np.isfinite(Y)
        scale = self._mase_scale(meta)
        err = np.where(mask, np.abs(np.where(mask, Y, 0.0) - _pred_array(y_pred, OUT_COLS)), 0.0)
        terms = np.column_stack([err.reshape(len(Y), -1).sum(axis=1), mask.reshape(len(Y), -1).sum(axis=1)])

        def combine(sums: np.ndarray) -> np.ndarray:
            sums = np.atleast_2d(np.asarray(sums, float))
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(sums[:, 1] > 0, sums[:, 0] / sums[:, 1], np.nan) / scale

        return terms, combine

    def figures(self, dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        import plotly.graph_objects as go

        Y = _targets(dataset.y_test, dataset.n_test)
        meta = dataset.meta_test if isinstance(dataset.meta_test, pd.DataFrame) else None
        issue = _issue_times(meta if meta is not None and ISSUE_COL in meta else dataset.X_test)
        preds = {k: _pred_array(v, OUT_COLS) for k, v in predictions.items()}
        names = {"model": f"model ({getattr(self, 'algorithm_', '?')})", "baseline": "seasonal naive (168 h)"}
        figs = {}

        # 1. the last two weeks of the test range, hour by hour
        k = min(14, len(issue))
        hours = (issue.values[-k:, None] + np.arange(HOURS)[None, :] * np.timedelta64(1, "h")).ravel()
        fig = go.Figure(go.Scatter(x=hours, y=Y[-k:].ravel(), name="actual", line=dict(color="black")))
        for key, p in preds.items():
            fig.add_trace(go.Scatter(x=hours, y=p[-k:].ravel(), name=names.get(key, key)))
        fig.update_layout(title="Day-ahead forecasts, last 14 test days", xaxis_title="local time", yaxis_title="load [kW]")
        figs["forecast_last_days"] = fig

        # 2. error by hour of the target day
        mask = np.isfinite(Y)
        fig = go.Figure()
        series = dict(preds)
        if meta is not None and set(PERSIST24_COLS) <= set(meta.columns):
            series["lag24"] = meta[PERSIST24_COLS].to_numpy(dtype=float)
            names["lag24"] = "persistence (24 h)"
        for key, p in series.items():
            err = np.where(mask, np.abs(Y - p), np.nan)
            fig.add_trace(go.Scatter(x=list(range(HOURS)), y=np.nanmean(err, axis=0), mode="lines+markers", name=names.get(key, key)))
        fig.update_layout(title="MAE by hour of the target day (test)", xaxis_title="hour (local)", yaxis_title="MAE [kW]")
        figs["mae_by_hour"] = fig

        # 3. daily MAE over the test range
        fig = go.Figure()
        for key, p in preds.items():
            err = np.where(mask, np.abs(Y - p), np.nan)
            with np.errstate(invalid="ignore"), _nan_warnings_off():
                daily = np.nanmean(err, axis=1)
            fig.add_trace(go.Scatter(x=issue, y=daily, mode="lines", name=names.get(key, key)))
        fig.update_layout(title="Daily MAE of the day-ahead forecast (test)", xaxis_title="target day", yaxis_title="MAE [kW]")
        figs["daily_mae"] = fig
        return figs

    # ------------------------------------------------------------------ pickling

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        for key in ("lstm_", "onestep_"):
            if state.get(key) is not None:
                state[key] = ("keras_bytes", to_bytes(state[key]))
        if state.get("prophet_") is not None:
            from prophet.serialize import model_to_json

            state["prophet_"] = ("prophet_json", model_to_json(state["prophet_"]))
        return state

    def __setstate__(self, state):
        state = dict(state)
        for key in ("lstm_", "onestep_"):
            v = state.get(key)
            if isinstance(v, tuple) and v and v[0] == "keras_bytes":
                state[key] = from_bytes(v[1])
        v = state.get("prophet_")
        if isinstance(v, tuple) and v and v[0] == "prophet_json":
            from prophet.serialize import model_from_json

            state["prophet_"] = model_from_json(v[1])
        super().__setstate__(state)


ONESTEP_REFERENCES = ("persistence", "ar24_168")


def onestep_comparison(y_true, onestep: dict[str, np.ndarray], *, n_replicates: int = 1000, seed: int = 0) -> dict[str, float]:
    """One-step-ahead hourly RMSE [kW] of several forecasters on identical hours, with paired intervals.

    Parameters
    ----------
    y_true : the test rows' 24 hourly loads [kW] (NaN: no valid label).
    onestep : forecaster -> its (n, 24) one-step forecasts [kW] of the same rows; ``"model"`` and
        the references of :data:`ONESTEP_REFERENCES`.
    n_replicates, seed : the paired day-block bootstrap (0 replicates: point values only).

    Returns
    -------
    dict of str to float
        ``onestep_n_hours_compared`` (hours with a label and every forecast finite),
        ``onestep_rmse_kw_model`` and ``onestep_rmse_kw_<reference>`` on those hours [kW]; with
        replicates also ``ci_onestep_rmse_kw_<name>_{low,high}`` and, per reference,
        ``ci_onestep_diff_<reference>_{value,low,high}`` (model - reference [kW]; below 0 favours
        the model). The bootstrap resamples whole target days (one day: one block), the same
        draws for every forecaster.
    """
    from ...evaluation import bootstrap

    Y = _targets(y_true, len(y_true))
    P = {k: np.asarray(v, dtype=float).reshape(Y.shape) for k, v in onestep.items()}
    mask = np.isfinite(Y) & np.logical_and.reduce([np.isfinite(p) for p in P.values()])
    out: dict[str, float] = {"onestep_n_hours_compared": float(mask.sum())}
    values = {k: _rmse(Y, p, mask) for k, p in P.items()}
    out.update({f"onestep_rmse_kw_{k}": v for k, v in values.items()})
    days = np.nonzero(mask)[0]
    if n_replicates <= 0 or len(np.unique(days)) < 2:
        return out
    flat = {k: p[mask] for k, p in P.items()}
    unc = bootstrap(lambda y, p, m: {"onestep_rmse_kw": float(np.sqrt(np.mean((y - p) ** 2)))}, "onestep_rmse_kw",
                    False, Y[mask], flat, values, block=("day", days), n_replicates=n_replicates, seed=seed)
    for k, iv in {"model": unc.model, **unc.baselines}.items():
        out.update({f"ci_onestep_rmse_kw_{k}_low": iv.low, f"ci_onestep_rmse_kw_{k}_high": iv.high})
    for k, iv in unc.differences.items():
        out.update({f"ci_onestep_diff_{k}_value": iv.value, f"ci_onestep_diff_{k}_low": iv.low,
                    f"ci_onestep_diff_{k}_high": iv.high})
    return out


def onestep_table(metrics: dict[str, float]) -> pd.DataFrame:
    """The one-step table from a run's model metrics (``ev.metrics``, or MLflow's ``model/*`` without
    the prefix): one row per forecaster, RMSE [kW] with its interval and, for the references, the
    model's difference to it [kW] with its interval, all on ``onestep_n_hours_compared`` hours."""
    nan = float("nan")
    rows = []
    for k in ("model", *ONESTEP_REFERENCES):
        rows.append({
            "forecaster": {"model": "one-step head (LSTM)", "persistence": "persistence (previous hour)",
                           "ar24_168": "AR(24) + lag-168 (least squares)"}[k],
            "rmse_kw": metrics.get(f"onestep_rmse_kw_{k}", nan),
            "rmse_low": metrics.get(f"ci_onestep_rmse_kw_{k}_low", nan),
            "rmse_high": metrics.get(f"ci_onestep_rmse_kw_{k}_high", nan),
            "model_minus_kw": metrics.get(f"ci_onestep_diff_{k}_value", nan),
            "diff_low": metrics.get(f"ci_onestep_diff_{k}_low", nan),
            "diff_high": metrics.get(f"ci_onestep_diff_{k}_high", nan),
            "hours": metrics.get("onestep_n_hours_compared", nan),
        })
    return pd.DataFrame(rows).set_index("forecaster")


@contextlib.contextmanager
def _nan_warnings_off():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


# --------------------------------------------------------------------------- serving


def serve_day(est, meter_readings, day, *, utc_offset_h: float, site: str | None) -> np.ndarray:
    """How the inference engine serves this model (role ``day_ahead_load``).

    Parameters
    ----------
    est : the fitted :class:`LoadForecast`.
    meter_readings : ``datasets.energy.load_forecast.meter_load`` rows before local ``day``.
    day : the local day to forecast.
    utc_offset_h : the meter's local clock [h from UTC]; site: its holiday calendar (config.SITES key).

    Returns
    -------
    The 24 hourly loads [kW] of ``day``.
    """
    from ...datasets.energy.load_forecast import forecast_input

    row = forecast_input(meter_readings, day, utc_offset_h=utc_offset_h, site=site)
    return est.predict(row)[list(OUT_COLS)].to_numpy(float)[0]


SERVING = serve_day
