"""m10 energy loss: technical losses [kW] of the CIGRE LV reference feeder from what the feeder
head measures; ordinary least squares on physical regressors (I², P², Q² per transformer),
because Joule losses are quadratic in the currents. Truth: the twin's AC power flow.
Baseline :class:`FixedLossFactor`. Units: kW, kvar, A, V.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, r2_score

from ...errors import InputError
from ...physics.powerflow import CIGRE_SUBNETS
from ...small_frames import SMALL_ROWS
from ..base import Baseline, Dataset, GridModel, ModelSpec
from ..serving import Held, ServingAdapter, missing_input

#: per-transformer feeder-head quantities the loss model reads (from features.compute)
HEAD_FEATURES = ("i_mean_a", "p_total_w", "q_total_var", "v_mean_v")


def feeder_head_frame(features: pd.DataFrame) -> pd.DataFrame:
    """Wide per-(feeder, ts) frame from :func:`gridtwin_lib.features.compute` rows of ``three_phase``.

    The feeder twin names its transformer meters ``<feeder>_<R|I|C>``; the result has one row
    per (``feeder``, ``ts``) and columns ``<subnet>_<feature>`` for :data:`HEAD_FEATURES`
    (A, W, var, V). Pure function of measurements: training and serving share it.
    """
    missing = [c for c in ("ts", "device_id", *HEAD_FEATURES) if c not in features.columns]
    if missing:
        raise InputError(f"feeder head frame: feature columns {missing} are missing; pass the output of features.compute(kind='three_phase')")
    f = features[["ts", "device_id", *HEAD_FEATURES]].copy()
    parts = f["device_id"].astype(str).str.rsplit("_", n=1, expand=True)
    if parts.shape[1] != 2 or parts[1].isna().any():
        raise InputError("feeder head frame: device ids must look like '<feeder>_<subnet>' (e.g. feeder0_R), as the feeder twin writes them")
    f["feeder"], f["subnet"] = parts[0], parts[1]
    wide = f.pivot_table(index=["feeder", "ts"], columns="subnet", values=list(HEAD_FEATURES), aggfunc="first")
    wide.columns = [f"{sub}_{feat}" for feat, sub in wide.columns]
    wide = wide[sorted(wide.columns)].dropna().reset_index()
    return wide


def _head_subnets(X: pd.DataFrame) -> list[str]:
    subs = sorted(c[: -len("_i_mean_a")] for c in X.columns if c.endswith("_i_mean_a"))
    if not subs:
        raise InputError("energy loss: X has no '<subnet>_i_mean_a' columns; build it with feeder_head_frame()")
    return subs


def _delivered_kw(X: pd.DataFrame, subnets: list[str]) -> np.ndarray:
    """Power through the feeder head [kW]: sum over transformers of |P|."""
    return sum(np.abs(X[f"{s}_p_total_w"].to_numpy(float)) for s in subnets) / 1000.0


def _loss_frame(y) -> np.ndarray:
    if isinstance(y, pd.DataFrame):
        y = y["losses_kw"]
    return np.asarray(y, float).ravel()


def _loss_score(y_true, y_pred) -> dict[str, float]:
    yt, yp = _loss_frame(y_true), _loss_frame(y_pred)
    return {
        "mae_kw": float(mean_absolute_error(yt, yp)),
        "r2": float(r2_score(yt, yp)),
        "rmse_kw": float(np.sqrt(np.mean((yt - yp) ** 2))),
        # error of the loss *energy* over the test period (what a loss audit sees)
        "energy_error_pct": float(100 * (yp.sum() - yt.sum()) / yt.sum()) if yt.sum() else float("nan"),
    }


class EnergyLoss(GridModel):
    """Feeder technical losses [kW] from feeder-head measurements, by least squares on I², P², Q².

    Joule losses in lines and transformer windings are quadratic in current, the transformer
    iron losses are a constant: ``losses ≈ c0 + Σ_t a_t I_t²`` over the feeder's transformers
    ``t`` (default ``regressors=("i2",)``: ``a_t`` [kW/kA²] is the transformer's equivalent
    resistance per phase in mΩ, including the network behind it; P² and Q² terms validated no
    better on a slice of the training range). Input: :func:`feeder_head_frame` columns per transformer,
    ``i_mean_a`` [A], ``p_total_w`` [W], ``q_total_var`` [var], ``v_mean_v`` [V]. Output:
    ``losses_kw`` [kW]. ``regressors`` picks among ``i2`` (Σ phases I² [kA²]), ``p2``
    ([MW²]), ``q2`` ([Mvar²]), ``s2v2`` ((S/V)² [(MVA/kV)²]) and ``p_abs`` (|P| [MW]).

    Parameters
    ----------
    regressors : tuple of {"i2", "p2", "q2", "s2v2", "p_abs"}
        Per-transformer regressors (units in the text above).
    fit_intercept : bool
        Fit a constant loss [kW] (no-load losses).

    Attributes
    ----------
    coef_ : ndarray
        One coefficient per regressor in ``regressor_names_`` (for I²: an equivalent resistance [kW/kA²]).
    intercept_kw_ : float
        Constant loss [kW].
    subnets_ : list of str
        Transformer meters of the feeder head seen in training.
    """

    spec = ModelSpec(
        model_id="m10_energy_loss",
        module="energy",
        algorithm="LinearRegression on physical regressors (I², P², Q² per transformer)",
        baseline="fixed loss factor: losses = k x power through the feeder head, k fitted on train",
        target="technical losses [kW] of the CIGRE LV feeder, AC power flow of the feeder twin (truth feeder_losses.losses_kw)",
        primary_metric="mae_kw",
        greater_is_better=False,
        output_units={"losses_kw": "kW"},
        secondary_metrics=("r2", "rmse_kw", "energy_error_pct"),
    )

    def __init__(self, regressors: tuple[str, ...] = ("i2",), fit_intercept: bool = True):
        self.regressors = regressors
        self.fit_intercept = fit_intercept

    _KNOWN = ("i2", "p2", "q2", "s2v2", "p_abs")

    def _design(self, X: pd.DataFrame) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            raise InputError("energy loss: X must be a pandas DataFrame of feeder_head_frame() columns")
        unknown = [r for r in self.regressors if r not in self._KNOWN]
        if unknown or not self.regressors:
            raise InputError(f"energy loss: regressors {list(self.regressors)} must be a non-empty subset of {self._KNOWN}")
        cols = []
        for s in getattr(self, "subnets_", None) or _head_subnets(X):
            i = X[f"{s}_i_mean_a"].to_numpy(float) / 1000  # kA
            p = X[f"{s}_p_total_w"].to_numpy(float) / 1e6  # MW
            q = X[f"{s}_q_total_var"].to_numpy(float) / 1e6  # Mvar
            v = X[f"{s}_v_mean_v"].to_numpy(float) / 1000  # kV
            for r in self.regressors:
                cols.append({"i2": 3 * i**2, "p2": p**2, "q2": q**2,
                             "s2v2": (p**2 + q**2) / np.maximum(v, 1e-6) ** 2, "p_abs": np.abs(p)}[r])
        A = np.column_stack(cols)
        if not np.isfinite(A).all():
            raise InputError("energy loss: X holds missing or infinite values; drop incomplete feeder-head rows first")
        return A

    def fit(self, X, y=None):
        if y is None:
            raise InputError("energy loss: y (losses_kw from the feeder_losses truth table) is required to fit")
        self.subnets_ = _head_subnets(X)
        A = self._design(X)
        self.lr_ = LinearRegression(fit_intercept=self.fit_intercept).fit(A, _loss_frame(y))
        self.regressor_names_ = [f"{s}_{r}" for s in self.subnets_ for r in self.regressors]
        self.coef_ = dict(zip(self.regressor_names_, self.lr_.coef_.tolist()))
        self.intercept_kw_ = float(self.lr_.intercept_)
        return self

    def predict(self, X):
        return pd.DataFrame({"losses_kw": self.lr_.predict(self._design(X))}, index=X.index)

    def baseline(self):
        return FixedLossFactor()

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        return _loss_score(y_true, y_pred)

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        import plotly.graph_objects as go

        yt = _loss_frame(dataset.y_test)
        ts = dataset.meta_test["ts"] if isinstance(dataset.meta_test, pd.DataFrame) and "ts" in dataset.meta_test else np.arange(yt.size)
        scatter = go.Figure()
        for name, pred in predictions.items():
            scatter.add_trace(go.Scatter(x=yt, y=_loss_frame(pred), mode="markers", name=name, marker={"size": 4, "opacity": 0.6}))
        lim = [0, float(yt.max()) * 1.05]
        scatter.add_trace(go.Scatter(x=lim, y=lim, mode="lines", name="y = x", line={"dash": "dot", "color": "grey"}))
        scatter.update_layout(title="m10: predicted vs power-flow losses (test)", xaxis_title="power-flow losses [kW]",
                              yaxis_title="predicted losses [kW]")
        series = go.Figure([go.Scatter(x=ts, y=yt, name="power flow (truth)", line={"color": "black"})])
        for name, pred in predictions.items():
            series.add_trace(go.Scatter(x=ts, y=_loss_frame(pred), name=name))
        series.update_layout(title="m10: feeder losses over the test period", yaxis_title="losses [kW]")
        return {"losses_scatter": scatter, "losses_timeseries": series}


class FixedLossFactor(Baseline):
    """Baseline of m10: losses [kW] = k x power through the feeder head [kW] (Σ|P| of the transformers).

    ``k`` is the energy-weighted loss factor of the training period (Σ losses / Σ delivered),
    the "x % of delivered energy" a utility books when it has no loss model.
    """

    name = "fixed loss factor (share of delivered energy)"

    def fit(self, X, y=None):
        self.subnets_ = _head_subnets(X)
        delivered = _delivered_kw(X, self.subnets_)
        self.loss_factor_ = float(_loss_frame(y).sum() / delivered.sum())
        return self

    def predict(self, X):
        return pd.DataFrame({"losses_kw": self.loss_factor_ * _delivered_kw(X, self.subnets_)}, index=X.index)


class QuadraticLossFactor(Baseline):
    """Ladder baseline of m10: the quadratic loss-factor fit ``losses = c0 + c1 P + c2 P²`` [kW] on
    the power through the feeder head ``P`` [kW] (Σ|P| of the transformers), least squares on the
    training rows (``numpy.polynomial.Polynomial.fit``). What a planner fits from one metered total
    when losses are known to grow with the square of the load."""

    name = "quadratic loss-factor fit on delivered power"

    def fit(self, X, y=None):
        if y is None:
            raise InputError("m10 quadratic loss factor: y (losses_kw) is required to fit")
        self.subnets_ = _head_subnets(X)
        self.poly_ = np.polynomial.Polynomial.fit(_delivered_kw(X, self.subnets_), _loss_frame(y), deg=2)
        return self

    def predict(self, X):
        return pd.DataFrame({"losses_kw": self.poly_(_delivered_kw(X, self.subnets_))}, index=X.index)


class LinearOnHeadReadings(Baseline):
    """Ladder baseline of m10: ordinary least squares of the losses [kW] on the raw feeder-head
    readings themselves (I [A], P [W], Q [var], V [V] of each transformer, not their squares):
    the generic regression a data scientist tries before any physics."""

    name = "linear regression on the raw feeder-head readings"

    def fit(self, X, y=None):
        if y is None:
            raise InputError("m10 linear baseline: y (losses_kw) is required to fit")
        self.subnets_ = _head_subnets(X)
        self.columns_ = [f"{s}_{f}" for s in self.subnets_ for f in HEAD_FEATURES]
        self.lr_ = LinearRegression().fit(X[self.columns_].to_numpy(float), _loss_frame(y))
        return self

    def predict(self, X):
        return pd.DataFrame({"losses_kw": self.lr_.predict(X[self.columns_].to_numpy(float))}, index=X.index)


# --------------------------------------------------------------------------- serving

#: the feeder twin's transformer meters are ``<feeder>_<subnet>`` (:data:`gridtwin_lib.physics.powerflow.CIGRE_SUBNETS`)
FEEDER_SUBNETS = CIGRE_SUBNETS


def feeder_head_rows(new: pl.DataFrame, held: Held) -> pl.DataFrame:
    """The rows of ``new`` from feeder-head meters (``<feeder>_<R|I|C>``), found once per call."""
    if "feeder_rows" not in held.cache:
        devices = set(new["device_id"].to_list()) if new.height <= SMALL_ROWS else new["device_id"].unique().to_list()
        heads = [d for d in devices if _is_feeder_head(d)]  # per device, not per reading
        held.cache["feeder_rows"] = new.filter(pl.col("device_id").is_in(heads)) if heads else new.clear()
    return held.cache["feeder_rows"]


@functools.lru_cache(maxsize=65_536)
def _is_feeder_head(device_id: str) -> bool:
    match = re.search(r"_([A-Za-z]+)$", device_id)
    return match is not None and match.group(1) in FEEDER_SUBNETS


def serve_feeder_head(engine, est, model_id, new, held, errors):
    """Scorer of the models whose input is the feeder head at one instant (:func:`feeder_head_frame`
    of the meters of the feeder, built once per call); the engine drops the adapter's ``dropped_outputs``."""
    rows = new.select("row", "ts", "device_id", pl.col("device_id").str.replace(r"_[A-Za-z]+$", "").alias("feeder"))
    if "feeder_head" not in held.cache:
        held.cache["feeder_head"] = feeder_head_frame(new.select("ts", "device_id", *HEAD_FEATURES).to_pandas())
    head = held.cache["feeder_head"]
    if head.empty:
        missing_input(errors, new, model_id, "needs every transformer meter of the feeder (<feeder>_R, _I, _C) at the same instant")
        return None
    cols = [c for c in head.columns if c not in ("feeder", "ts")]
    pred = est.predict(head[cols]).reset_index(drop=True)
    ts_us = (pd.to_datetime(head["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
    keyed = pl.DataFrame([pl.Series("feeder", head["feeder"].astype(str).to_numpy(), dtype=pl.String),
                          pl.Series("ts", ts_us.to_numpy(), dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
                          *[pl.Series(f"{model_id}.{c}", pred[c].to_numpy(), nan_to_null=True) for c in pred.columns]])
    joined = rows.join(keyed, on=["feeder", "ts"], how="left")
    first = f"{model_id}.{pred.columns[0]}"
    if joined[first].null_count():
        lost = joined.filter(pl.col(first).is_null())
        missing_input(errors, lost, model_id, "needs every transformer meter of the feeder (<feeder>_R, _I, _C) at the same instant")
        joined = joined.filter(pl.col(first).is_not_null())
    return joined.drop("ts", "device_id", "feeder")


#: how the inference engine serves m10: the feeder head's meters at the same instant
SERVING = ServingAdapter(score=serve_feeder_head, outputs=("losses_kw",), applies=feeder_head_rows)
