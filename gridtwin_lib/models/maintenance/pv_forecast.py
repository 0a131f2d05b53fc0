"""m18 PV forecast: hourly AC power 1-6 h ahead, judged by skill against smart persistence.

One row per plant and daylight issue time t (hourly). Inputs, all known at t
(:data:`PV_INPUT_COLUMNS`, built by :func:`gridtwin_lib.datasets.maintenance.pv_forecast.pv_forecast_rows`):
the last three hourly powers and their clear-sky indices, the clear-sky power now and at
t+1..t+6 (pvlib, :func:`gridtwin_lib.physics.solar.clear_sky_ac_power`), yesterday's power and
index at the six target hours, the local hour and day of year. Targets: the hourly AC power at
t+1..t+6 [kW].

Clear-sky-index formulation: for each lead time h a ridge regression predicts the clear-sky
index ``k(t+h) = P(t+h) / P_cs(t+h)``, weighted by ``P_cs(t+h)**2`` (so its squared error in the
index is the squared error in kW), and the forecast is ``k_hat * P_cs(t+h)``. The ladder:
:class:`SmartPersistence` (the index at t persisted, the reference of solar forecasting),
:class:`PowerPersistence`, :class:`SeasonalNaive` (same hour yesterday) and
:class:`IndexRegressionToMean` (the index at t shrunk to its training mean per lead time, the
CLIPER-style blend of persistence and climatology).

Night: issue times are daylight only (clear-sky power at t at least ``min_clear_sky_fraction`` of
the inverter rating) and the metrics count daylight target hours only (clear-sky power > 0); at a
night target every index forecast is 0 by construction.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...errors import InputError
from ..base import Baseline, GridModel, ModelSpec, input_matrix

HORIZONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)  # lead times [h]
LAGS: tuple[int, ...] = (0, 1, 2)  # hours before the issue time
K_MAX = 1.5  # upper clip of the clear-sky index [1]

PV_INPUT_COLUMNS = pd.Index([
    *[f"p_kw_lag{k}" for k in LAGS], *[f"k_lag{k}" for k in LAGS], "pcs_kw_lag0",
    *[f"pcs_kw_h{h}" for h in HORIZONS], *[f"p_kw_yday_h{h}" for h in HORIZONS], *[f"k_yday_h{h}" for h in HORIZONS],
    "hour_sin", "hour_cos", "doy_sin", "doy_cos",
])
PV_OUTPUTS: tuple[str, ...] = tuple(f"p_kw_h{h}" for h in HORIZONS)
PV_LAYOUT = ("m18 inputs: hourly AC power [kW] and clear-sky index of the last 3 hours, clear-sky power [kW] now and "
             "at t+1..t+6, yesterday's power and index at the target hours, local hour and day of year "
             "(datasets.maintenance.pv_forecast.pv_forecast_rows)")


def _cols(names) -> list[int]:
    return [PV_INPUT_COLUMNS.get_loc(c) for c in names]


_PCS_H, _PYDAY_H = _cols(f"pcs_kw_h{h}" for h in HORIZONS), _cols(f"p_kw_yday_h{h}" for h in HORIZONS)
_K0, _P0 = PV_INPUT_COLUMNS.get_loc("k_lag0"), PV_INPUT_COLUMNS.get_loc("p_kw_lag0")
#: the inputs of the model's regressions: clear-sky indices [1] and the calendar (sin/cos)
INDEX_FEATURES: tuple[str, ...] = (*[f"k_lag{k}" for k in LAGS], *[f"k_yday_h{h}" for h in HORIZONS],
                                   "hour_sin", "hour_cos", "doy_sin", "doy_cos")
_INDEX = _cols(INDEX_FEATURES)


def _out(p_kw: np.ndarray, index=None) -> pd.DataFrame:
    return pd.DataFrame(np.clip(np.asarray(p_kw, float), 0.0, None), columns=list(PV_OUTPUTS), index=index)


def _matrix(X, who: str) -> np.ndarray:
    return input_matrix(X, PV_INPUT_COLUMNS, who, PV_LAYOUT)


def _targets(y, n: int, who: str) -> np.ndarray:
    if y is None:
        raise InputError(f"{who}: fit needs y (the hourly AC power at t+1..t+6 [kW])")
    arr = y[list(PV_OUTPUTS)].to_numpy(float) if isinstance(y, pd.DataFrame) else np.asarray(y, float)
    if arr.shape != (n, len(HORIZONS)) or not np.isfinite(arr).all():
        raise InputError(f"{who}: y must be {n} rows of {len(HORIZONS)} finite powers [kW] ({', '.join(PV_OUTPUTS)})")
    return arr


def _index_targets(arr: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clear-sky index at each lead time [1] and its weight ``P_cs**2`` [kW²] (0 at night)."""
    pcs = arr[:, _PCS_H]
    k = np.clip(y / np.where(pcs > 0, pcs, 1.0), 0.0, K_MAX)
    return np.where(pcs > 0, k, 0.0), np.where(pcs > 0, pcs ** 2, 0.0)


class SmartPersistence(Baseline):
    """Named baseline of m18: the clear-sky index at t persisted, ``P(t+h) = k(t) P_cs(t+h)``."""

    name = "smart persistence (clear-sky index persisted)"
    spec = None  # set below

    def fit(self, X, y=None):
        _matrix(X, "m18 smart persistence")
        return self

    def predict(self, X):
        arr = _matrix(X, "m18 smart persistence")
        return _out(arr[:, [_K0]] * arr[:, _PCS_H], getattr(X, "index", None))


class PowerPersistence(Baseline):
    """m18 ladder: the power at t persisted to every lead time (blind to the sun's path)."""

    name = "persistence of the power"

    def fit(self, X, y=None):
        _matrix(X, "m18 persistence")
        return self

    def predict(self, X):
        arr = _matrix(X, "m18 persistence")
        return _out(np.repeat(arr[:, [_P0]], len(HORIZONS), axis=1), getattr(X, "index", None))


class SeasonalNaive(Baseline):
    """m18 ladder: each target hour's power yesterday (24 h before it, known at t)."""

    name = "seasonal naive (same hour yesterday)"

    def fit(self, X, y=None):
        _matrix(X, "m18 seasonal naive")
        return self

    def predict(self, X):
        arr = _matrix(X, "m18 seasonal naive")
        return _out(arr[:, _PYDAY_H], getattr(X, "index", None))


class IndexRegressionToMean(Baseline):
    """m18 ladder: ``k(t+h) = a_h + b_h k(t)`` by weighted least squares on the training rows
    (weights ``P_cs(t+h)**2``, as the model's): persistence blended with the training climatology of
    the index, more so at longer lead times (the CLIPER idea of forecast verification).

    Attributes
    ----------
    coef_ : ndarray (6, 2)
        ``a_h`` [1] and ``b_h`` [1] per lead time.
    """

    name = "index regression to the mean (CLIPER)"

    def fit(self, X, y=None):
        arr = _matrix(X, "m18 index regression")
        k, w = _index_targets(arr, _targets(y, arr.shape[0], "m18 index regression"))
        A = np.column_stack([np.ones(arr.shape[0]), arr[:, _K0]])
        self.coef_ = np.empty((len(HORIZONS), 2))
        for j in range(len(HORIZONS)):
            sw = np.sqrt(w[:, j])
            self.coef_[j] = np.linalg.lstsq(A * sw[:, None], k[:, j] * sw, rcond=None)[0]
        return self

    def predict(self, X):
        arr = _matrix(X, "m18 index regression")
        k = np.clip(self.coef_[:, 0] + arr[:, [_K0]] * self.coef_[:, 1], 0.0, K_MAX)
        return _out(k * arr[:, _PCS_H], getattr(X, "index", None))


class PvForecast(GridModel):
    """m18: hourly PV AC power 1-6 h ahead, one ridge regression of the clear-sky index per lead time.

    Each lead time's :class:`sklearn.linear_model.Ridge` maps the index features
    (:data:`INDEX_FEATURES`: the index of the last three hours and of yesterday's target hours, local
    hour and day of year) to the index at t+h, fitted with sample weight ``P_cs(t+h)**2`` so that it
    minimises the squared error in kW; the forecast is the clipped index times ``P_cs(t+h)``. A
    gradient-boosted regressor (HistGradientBoosting) on the same targets was tried and was both
    less accurate on the held-out months and one to two orders of magnitude slower to fit: one
    TMY3 year gives about 3,000 daylight issue times, too few for trees to beat a linear blend.

    Parameters
    ----------
    alpha : float
        Ridge penalty [1] (inputs are indices [1] and sin/cos, all of order 1).

    Attributes
    ----------
    regressors_ : list of Ridge
        One per lead time (1..6 h), predicting the clear-sky index [1].
    """

    spec: ClassVar[ModelSpec] = ModelSpec(
        model_id="m18_pv_forecast", module="maintenance",
        algorithm="ridge regression of the clear-sky index, one per lead time",
        baseline="smart persistence (clear-sky index persisted)",
        target="hourly PV AC power [kW] 1-6 h ahead, from the solar twin on TMY3 weather (measured clouds)",
        primary_metric="rmse_kw", greater_is_better=False, output_units={c: "kW" for c in PV_OUTPUTS},
        secondary_metrics=("mae_kw", "bias_kw", *[f"rmse_h{h}_kw" for h in HORIZONS]), block="day",
    )

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X, y=None):
        from sklearn.linear_model import Ridge

        arr = _matrix(X, "m18")
        k, w = _index_targets(arr, _targets(y, arr.shape[0], "m18"))
        z = arr[:, _INDEX]
        self.regressors_ = []
        for j in range(len(HORIZONS)):
            day = w[:, j] > 0
            self.regressors_.append(Ridge(alpha=self.alpha).fit(z[day], k[day, j], sample_weight=w[day, j] / w[day, j].mean()))
        self.n_features_in_ = arr.shape[1]
        return self

    def predict(self, X):
        arr = _matrix(X, "m18")
        z = arr[:, _INDEX]
        k = np.column_stack([np.clip(reg.predict(z), 0.0, K_MAX) for reg in self.regressors_])
        return _out(k * arr[:, _PCS_H], getattr(X, "index", None))

    def baseline(self):
        return SmartPersistence()

    # ------------------------------------------------------------------ judging
    @staticmethod
    def _errors(y_true, y_pred, meta) -> tuple[np.ndarray, np.ndarray]:
        """Errors [kW] (n, 6) and the daylight-target mask (n, 6) (``meta`` ``daylight_h<h>``)."""
        y = y_true[list(PV_OUTPUTS)].to_numpy(float) if isinstance(y_true, pd.DataFrame) else np.asarray(y_true, float)
        p = y_pred[list(PV_OUTPUTS)].to_numpy(float) if isinstance(y_pred, pd.DataFrame) else np.asarray(y_pred, float)
        if meta is None or any(f"daylight_h{h}" not in meta for h in HORIZONS):
            raise InputError("m18 evaluate: meta must carry daylight_h1..daylight_h6 (the dataset's meta_test)")
        day = np.column_stack([np.asarray(meta[f"daylight_h{h}"], bool) for h in HORIZONS])
        return p - y, day

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        """RMSE [kW] over every daylight target hour of every lead time (primary), per lead time,
        MAE and bias [kW], and the RMSE per local hour of the target (``rmse_at_<hh>h_kw``)."""
        err, day = self._errors(y_true, y_pred, meta)
        e = err[day]
        out = {"rmse_kw": float(np.sqrt(np.mean(e ** 2))) if e.size else float("nan"),
               "mae_kw": float(np.mean(np.abs(e))) if e.size else float("nan"),
               "bias_kw": float(np.mean(e)) if e.size else float("nan"), "n_targets": float(e.size)}
        for j, h in enumerate(HORIZONS):
            ej = err[day[:, j], j]
            out[f"rmse_h{h}_kw"] = float(np.sqrt(np.mean(ej ** 2))) if ej.size else float("nan")
        if all(f"hour_h{h}" in meta for h in HORIZONS):
            hours = np.column_stack([np.asarray(meta[f"hour_h{h}"], int) for h in HORIZONS])
            for hour in np.unique(hours[day]):
                eh = err[day & (hours == hour)]
                out[f"rmse_at_{int(hour):02d}h_kw"] = float(np.sqrt(np.mean(eh ** 2)))
        return out

    def bootstrap_terms(self, y_true, y_pred, meta=None):
        """Per issue time: the summed squared error over its daylight targets [kW²] and their count."""
        err, day = self._errors(y_true, y_pred, meta)
        terms = np.column_stack([np.where(day, err ** 2, 0.0).sum(axis=1), day.sum(axis=1)])

        def combine(sums: np.ndarray) -> np.ndarray:
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.sqrt(sums[:, 0] / sums[:, 1])
        return terms, combine

    def figures(self, dataset, predictions) -> dict[str, Any]:
        import plotly.graph_objects as go

        table = skill_by_hour(dataset.y_test, predictions["model"], predictions["baseline"], dataset.meta_test)
        by_hour = go.Figure()
        by_hour.add_bar(x=table["hour"], y=table["skill"], name="skill vs smart persistence",
                        customdata=table[["rmse_model_kw", "rmse_smart_persistence_kw", "n_targets"]].to_numpy(),
                        hovertemplate="hour %{x}: skill %{y:.3f}<br>RMSE model %{customdata[0]:.3f} kW, "
                                      "smart persistence %{customdata[1]:.3f} kW<br>%{customdata[2]} targets")
        by_hour.update_layout(title="m18 skill against smart persistence by local hour of the target (all lead times)",
                              xaxis_title="local standard hour of the target", yaxis_title="1 - RMSE / RMSE smart persistence")
        err_m, day = self._errors(dataset.y_test, predictions["model"], dataset.meta_test)
        err_b, _ = self._errors(dataset.y_test, predictions["baseline"], dataset.meta_test)
        rm = [np.sqrt(np.mean(err_m[day[:, j], j] ** 2)) for j in range(len(HORIZONS))]
        rb = [np.sqrt(np.mean(err_b[day[:, j], j] ** 2)) for j in range(len(HORIZONS))]
        lead = go.Figure()
        lead.add_scatter(x=list(HORIZONS), y=rm, name="model", mode="lines+markers")
        lead.add_scatter(x=list(HORIZONS), y=rb, name="smart persistence", mode="lines+markers")
        lead.update_layout(title="m18 RMSE by lead time (daylight targets)", xaxis_title="lead time [h]", yaxis_title="RMSE [kW]")
        return {"m18_skill_by_hour": by_hour, "m18_rmse_by_lead_time": lead}


SmartPersistence.spec = PvForecast.spec


def skill_by_hour(y_true, y_model, y_reference, meta) -> pd.DataFrame:
    """Skill ``1 - RMSE_model / RMSE_reference`` per local hour of the target (all lead times pooled).

    Returns
    -------
    DataFrame
        hour [h, local standard time], n_targets, rmse_model_kw, rmse_smart_persistence_kw [kW], skill [1].
    """
    err_m, day = PvForecast._errors(y_true, y_model, meta)
    err_r, _ = PvForecast._errors(y_true, y_reference, meta)
    hours = np.column_stack([np.asarray(meta[f"hour_h{h}"], int) for h in HORIZONS])
    rows = []
    for hour in np.unique(hours[day]):
        sel = day & (hours == hour)
        rm, rr = np.sqrt(np.mean(err_m[sel] ** 2)), np.sqrt(np.mean(err_r[sel] ** 2))
        rows.append({"hour": int(hour), "n_targets": int(sel.sum()), "rmse_model_kw": float(rm),
                     "rmse_smart_persistence_kw": float(rr), "skill": float(1 - rm / rr) if rr > 0 else float("nan")})
    return pd.DataFrame(rows, columns=["hour", "n_targets", "rmse_model_kw", "rmse_smart_persistence_kw", "skill"])


# --------------------------------------------------------------------------- serving


def serve_pv(est, readings, plant, *, utc_offset_h: float, min_clear_sky_fraction: float = 0.05,
             reference_temp_c: float = 20.0) -> pd.DataFrame:
    """How the inference engine serves this model (role ``pv_forecast``): the forecast issued at each
    device's latest full hour of readings, from the training builder's rows.

    Parameters
    ----------
    est : the fitted :class:`PvForecast` (or the baseline that serves in its place).
    readings : pv readings (polars or pandas: ts [UTC], device_id, ac_power [W]), at least the
        last 24 h before the issue time.
    plant : the plant's solar-twin parameters (position, orientation, ratings; see
        :func:`gridtwin_lib.datasets.maintenance.pv_forecast.pv_forecast_rows`).
    utc_offset_h, min_clear_sky_fraction, reference_temp_c : as the dataset's (its configuration).

    Returns
    -------
    DataFrame
        One row per device: ``device_id``, ``issued_at`` [UTC] and ``p_kw_h1..p_kw_h6`` [kW]; an
        empty frame when no device's latest hour is a daylight hour with 24 h of history.
    """
    import polars as pl

    from ...datasets.maintenance.pv_forecast import hourly_power, pv_forecast_rows

    frame = readings if isinstance(readings, pl.DataFrame) else pl.from_pandas(readings)
    hourly = hourly_power(frame.select("ts", "device_id", "ac_power"))
    rows = pv_forecast_rows(hourly, plant, utc_offset_h=utc_offset_h, min_clear_sky_fraction=min_clear_sky_fraction,
                            reference_temp_c=reference_temp_c, targets=False)
    latest = hourly.groupby("device_id")["ts"].max()
    rows = rows[pd.to_datetime(rows["issued_at"], utc=True).to_numpy() == latest.reindex(rows["device_id"]).to_numpy()]
    out = est.predict(rows[list(PV_INPUT_COLUMNS)].reset_index(drop=True)) if len(rows) else pd.DataFrame(columns=list(PV_OUTPUTS))
    return pd.concat([rows[["device_id", "issued_at"]].reset_index(drop=True), out[list(PV_OUTPUTS)].reset_index(drop=True)], axis=1)


#: how the inference engine serves m18 (role ``pv_forecast``)
SERVING = serve_pv
