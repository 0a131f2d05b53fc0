"""m19 remaining useful life of PV inverters: a survival distribution, judged with censoring.

One row per inverter and issue time t (:mod:`gridtwin_lib.datasets.maintenance.remaining_useful_life`):
causal summaries of the observable readings (:data:`RUL_INPUT_COLUMNS`) -> the days to the twin's
drawn failure, an *event* or right-censored at the end of the observation (:data:`RUL_TARGET_COLUMNS`).

:class:`RemainingUsefulLife` is scikit-survival's gradient-boosted Cox model
(:class:`sksurv.ensemble.GradientBoostingSurvivalAnalysis`): boosted regression trees fitted to the
Cox partial likelihood, which uses a censored row for the time it was observed to survive; its
survival function (Breslow baseline hazard) is read on the day grid :data:`GRID_DAYS`.

Every predictor returns the same columns (:data:`RUL_OUTPUTS`): the survival probability ``s_<d>d``
at each grid day, the median remaining life and the 10th / 90th percentiles of the time to failure
[days] (linear between grid days; a value at the grid's end, 364 days, means "at least that"), the
restricted mean survival time over the grid ``rmst_days`` and a ``risk`` score (higher: sooner).

The ladder: :class:`KaplanMeierByAge` (the catalogue's baseline: a Kaplan-Meier curve per calendar-age
band, what a fleet manager reads off the failure records), :class:`UncensoredPointRegressor` (the
reference system's method: a gradient-boosting regressor of the days to failure trained on the rows
whose failure was observed, blind to censoring; its point prediction is its risk and its survival
function a step at the prediction) and :class:`CoxLinear` (a ridge-penalised Cox model on the same inputs).

Metrics (:meth:`RemainingUsefulLife.evaluate`): the integrated Brier score (primary, lower is
better), inverse-probability-of-censoring weighted with the test rows' censoring distribution
(reverse Kaplan-Meier), averaged over the grid days where that distribution is at least
:data:`MIN_CENSORING_SURVIVAL`; Harrell's concordance between assets at the same issue time,
pooled over issue times; the Brier score at 91 and 182 days. The concordance gets its own paired
asset-block bootstrap (:func:`concordance_intervals`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...errors import InputError
from ..base import Baseline, GridModel, ModelSpec, input_matrix

RUL_INPUT_COLUMNS = pd.Index([
    "age_years", "efficiency_7d", "efficiency_30d", "heatsink_rise_7d", "heatsink_rise_30d", "loading_30d",
    "loading_producing_30d", "heatsink_max_30d", "capacitor_stress_30d", "capacitor_stress_cum", "ambient_30d",
])
RUL_LAYOUT = ("m19 inputs: calendar age [years], measured efficiency over 7/30 days [1], heatsink rise over ambient while "
              "producing over 7/30 days [K], loading over 30 days [1], heatsink maximum [degC], capacitor stress "
              "2^((T-70)/10) over 30 days [1] and accumulated [years at 70 degC], ambient [degC] "
              "(datasets.maintenance.remaining_useful_life.rul_daily_features)")
RUL_TARGET_COLUMNS: tuple[str, ...] = ("duration_days", "event")
#: the day grid of the survival function [days]
GRID_DAYS = np.arange(7, 365, 7, dtype=float)
SURVIVAL_COLUMNS: tuple[str, ...] = tuple(f"s_{int(d):03d}d" for d in GRID_DAYS)
SUMMARY_COLUMNS: tuple[str, ...] = ("median_days", "p10_days", "p90_days", "rmst_days", "risk")
RUL_OUTPUTS: tuple[str, ...] = (*SUMMARY_COLUMNS, *SURVIVAL_COLUMNS)
#: the integrated Brier score counts grid days where the censoring survival is at least this [1]
MIN_CENSORING_SURVIVAL = 0.1
BRIER_AT_DAYS = (91, 182)


def _matrix(X, who: str) -> np.ndarray:
    return input_matrix(X, RUL_INPUT_COLUMNS, who, RUL_LAYOUT)


def _targets(y, n: int, who: str) -> tuple[np.ndarray, np.ndarray]:
    """Durations [days] and event flags of ``y`` (a frame with :data:`RUL_TARGET_COLUMNS`)."""
    if y is None or not isinstance(y, pd.DataFrame) or not set(RUL_TARGET_COLUMNS) <= set(y.columns):
        raise InputError(f"{who}: y must be a frame with duration_days [days] and event [bool] (the dataset's y)")
    duration, event = y["duration_days"].to_numpy(float), y["event"].to_numpy(bool)
    if len(duration) != n or not np.isfinite(duration).all() or (duration <= 0).any():
        raise InputError(f"{who}: y must hold {n} positive finite durations [days]")
    return duration, event


def _survival_on_grid(times: np.ndarray, surv: np.ndarray) -> np.ndarray:
    """Right-continuous step functions ``surv`` (n, len(times)) read at :data:`GRID_DAYS` (1 before the first time)."""
    idx = np.searchsorted(np.asarray(times, float), GRID_DAYS, side="right") - 1
    out = np.where(idx >= 0, np.atleast_2d(surv)[:, np.clip(idx, 0, None)], 1.0)
    return np.clip(out, 0.0, 1.0)


def quantile_days(S: np.ndarray, level: float) -> np.ndarray:
    """The first time [days] the survival ``S`` (n, grid) falls to ``level``, linear between grid
    days (``S(0) = 1``); the grid's last day when it never does (read: at least that)."""
    t = np.concatenate([[0.0], GRID_DAYS])
    s = np.column_stack([np.ones(len(S)), np.minimum.accumulate(S, axis=1)])
    below = s <= level
    k = np.where(below.any(axis=1), below.argmax(axis=1), len(t) - 1)
    k0 = np.clip(k - 1, 0, None)
    s0, s1 = s[np.arange(len(S)), k0], s[np.arange(len(S)), k]
    frac = np.where(s0 > s1, (s0 - level) / np.where(s0 > s1, s0 - s1, 1.0), 0.0)
    out = t[k0] + np.clip(frac, 0, 1) * (t[k] - t[k0])
    return np.where(below.any(axis=1), out, GRID_DAYS[-1])


def survival_frame(S: np.ndarray, risk: np.ndarray | None = None, index=None) -> pd.DataFrame:
    """The outputs of every m19 predictor from its survival ``S`` at :data:`GRID_DAYS` (n, grid):
    median / 10th / 90th percentile of the time to failure [days], restricted mean survival time
    over the grid [days], risk (default ``-rmst_days``) and the curve (``s_<d>d`` [1])."""
    S = np.clip(np.asarray(S, float), 0.0, 1.0)
    step = np.diff(np.concatenate([[0.0], GRID_DAYS]))
    rmst = (S * step).sum(axis=1)  # left-closed steps: S read at each grid day's end (a lower bound)
    out = pd.DataFrame({"median_days": quantile_days(S, 0.5), "p10_days": quantile_days(S, 0.9),
                        "p90_days": quantile_days(S, 0.1), "rmst_days": rmst,
                        "risk": -rmst if risk is None else np.asarray(risk, float)}, index=index)
    return pd.concat([out, pd.DataFrame(S, columns=list(SURVIVAL_COLUMNS), index=index)], axis=1)


def _surv(duration: np.ndarray, event: np.ndarray):
    from sksurv.util import Surv

    return Surv.from_arrays(event.astype(bool), duration.astype(float))


class KaplanMeierByAge(Baseline):
    """Named baseline of m19: a Kaplan-Meier survival curve per calendar-age band (quantile bands of the
    training rows' age), every asset of a band gets its band's curve.

    Parameters
    ----------
    n_bands : int
        Age bands [1] (training-row quantiles).

    Attributes
    ----------
    edges_ : ndarray
        Inner band edges [years]. curves_ : (n_bands, grid) survival [1].
    """

    name = "Kaplan-Meier by age band"
    key = "km_by_age"
    spec = None  # set below

    def __init__(self, n_bands: int = 4):
        self.n_bands = n_bands

    def fit(self, X, y=None):
        from sksurv.nonparametric import kaplan_meier_estimator

        arr = _matrix(X, "m19 Kaplan-Meier by age")
        duration, event = _targets(y, arr.shape[0], "m19 Kaplan-Meier by age")
        age = arr[:, RUL_INPUT_COLUMNS.get_loc("age_years")]
        self.edges_ = np.unique(np.quantile(age, np.linspace(0, 1, int(self.n_bands) + 1)[1:-1]))
        band = np.searchsorted(self.edges_, age, side="right")
        self.curves_ = np.ones((len(self.edges_) + 1, len(GRID_DAYS)))
        for b in range(len(self.edges_) + 1):
            sel = band == b
            if sel.any() and event[sel].any():
                times, surv = kaplan_meier_estimator(event[sel], duration[sel])
                self.curves_[b] = _survival_on_grid(times, surv)[0]
        return self

    def predict(self, X):
        arr = _matrix(X, "m19 Kaplan-Meier by age")
        band = np.searchsorted(self.edges_, arr[:, RUL_INPUT_COLUMNS.get_loc("age_years")], side="right")
        return survival_frame(self.curves_[band], index=getattr(X, "index", None))


class UncensoredPointRegressor(Baseline):
    """m19 ladder, the reference system's method: a gradient-boosting regressor of the days to failure,
    trained on the rows whose failure was observed only (censored rows dropped: blind to censoring).

    Its point prediction is its risk (``risk = -days``) and its survival function a step from 1 to 0
    at the prediction (so the Brier score judges it as the certainty it claims).
    """

    name = "gradient boosting on uncensored rows (point)"
    key = "gbr_uncensored"

    def __init__(self, n_estimators: int = 200, learning_rate: float = 0.05, max_depth: int = 3, random_state: int = 0):
        self.n_estimators, self.learning_rate, self.max_depth, self.random_state = n_estimators, learning_rate, max_depth, random_state

    def fit(self, X, y=None):
        from sklearn.ensemble import GradientBoostingRegressor

        arr = _matrix(X, "m19 uncensored regressor")
        duration, event = _targets(y, arr.shape[0], "m19 uncensored regressor")
        if not event.any():
            raise InputError("m19 uncensored regressor: no training row has an observed failure")
        self.regressor_ = GradientBoostingRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                                    max_depth=self.max_depth, random_state=self.random_state).fit(arr[event], duration[event])
        return self

    def predict(self, X):
        arr = _matrix(X, "m19 uncensored regressor")
        days = np.clip(self.regressor_.predict(arr), 0.0, None)
        S = (GRID_DAYS[None, :] < days[:, None]).astype(float)
        out = survival_frame(S, risk=-days, index=getattr(X, "index", None))
        out["median_days"] = out["p10_days"] = out["p90_days"] = np.minimum(days, GRID_DAYS[-1])
        return out


class CoxLinear(Baseline):
    """m19 ladder: a ridge-penalised Cox proportional-hazards model on the standardised inputs
    (Breslow baseline), the classical survival regression before any trees."""

    name = "Cox proportional hazards (linear)"
    key = "cox_linear"

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, X, y=None):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sksurv.linear_model import CoxPHSurvivalAnalysis

        arr = _matrix(X, "m19 Cox")
        duration, event = _targets(y, arr.shape[0], "m19 Cox")
        self.pipeline_ = make_pipeline(StandardScaler(), CoxPHSurvivalAnalysis(alpha=self.alpha, ties="breslow")).fit(arr, _surv(duration, event))
        return self

    def predict(self, X):
        arr = _matrix(X, "m19 Cox")
        cox = self.pipeline_[-1]
        surv = self.pipeline_.predict_survival_function(arr, return_array=True)
        return survival_frame(_survival_on_grid(cox.unique_times_, surv), index=getattr(X, "index", None))


class RemainingUsefulLife(GridModel):
    """m19: the survival distribution of an inverter's time to failure, gradient-boosted Cox model
    (scikit-survival ``GradientBoostingSurvivalAnalysis``, loss ``coxph``).

    Parameters
    ----------
    n_estimators : int
        Boosting rounds [1].
    learning_rate : float
        Shrinkage [1].
    max_depth : int
        Depth of each regression tree [1].
    min_samples_leaf : int
        Rows per leaf [1] (several rows per asset: large leaves keep one asset from ruling a leaf).
    subsample : float
        Share of rows per round [1].
    random_state : int
        Seed.

    Attributes
    ----------
    model_ : GradientBoostingSurvivalAnalysis
        The fitted model (its survival function is read at :data:`GRID_DAYS`; beyond the longest
        training follow-up it stays at its last value: not estimated).
    """

    spec: ClassVar[ModelSpec] = ModelSpec(
        model_id="m19_remaining_useful_life", module="maintenance",
        algorithm="gradient-boosted Cox survival model (scikit-survival)",
        baseline="Kaplan-Meier by age band",
        target="days from the issue time to the inverter twin's drawn failure, right-censored at the end of the observation",
        primary_metric="integrated_brier", greater_is_better=False,
        output_units={"median_days": "d", "p10_days": "d", "p90_days": "d", "rmst_days": "d", "risk": "1 (higher: sooner)",
                      **{c: "1" for c in SURVIVAL_COLUMNS}},
        secondary_metrics=("concordance", *[f"brier_{d}d" for d in BRIER_AT_DAYS]), block="device",
    )

    def __init__(self, n_estimators: int = 100, learning_rate: float = 0.1, max_depth: int = 2, min_samples_leaf: int = 50,
                 subsample: float = 0.5, random_state: int = 0):
        self.n_estimators, self.learning_rate, self.max_depth = n_estimators, learning_rate, max_depth
        self.min_samples_leaf, self.subsample, self.random_state = min_samples_leaf, subsample, random_state

    def fit(self, X, y=None):
        from sksurv.ensemble import GradientBoostingSurvivalAnalysis

        arr = _matrix(X, "m19")
        duration, event = _targets(y, arr.shape[0], "m19")
        if not event.any():
            raise InputError("m19: no training row has an observed failure; simulate longer or more assets")
        self.model_ = GradientBoostingSurvivalAnalysis(
            loss="coxph", n_estimators=self.n_estimators, learning_rate=self.learning_rate, max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, subsample=self.subsample, random_state=self.random_state,
        ).fit(arr, _surv(duration, event))
        self.n_features_in_ = arr.shape[1]
        return self

    def predict(self, X):
        arr = _matrix(X, "m19")
        surv = self.model_.predict_survival_function(arr, return_array=True)
        return survival_frame(_survival_on_grid(self.model_.unique_times_, surv), index=getattr(X, "index", None))

    def baseline(self):
        return KaplanMeierByAge()

    # ------------------------------------------------------------------ judging
    @staticmethod
    def _brier_parts(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
        """Per row and grid day, the IPCW Brier term [1] (n, grid), and the grid days it counts (grid,)."""
        duration, event = _targets(y_true, len(y_true), "m19 evaluate")
        S = _prediction(y_pred, SURVIVAL_COLUMNS, len(duration))
        G = censoring_survival(duration, event)
        g_at_grid = G(GRID_DAYS)
        g_at_event = G(duration - 1e-9)  # G just before the row's own time
        died = (duration[:, None] <= GRID_DAYS[None, :]) & event[:, None]
        alive = duration[:, None] > GRID_DAYS[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = (np.where(died, S ** 2 / np.where(g_at_event > 0, g_at_event, np.inf)[:, None], 0.0)
                     + np.where(alive, (1 - S) ** 2 / np.where(g_at_grid > 0, g_at_grid, np.inf)[None, :], 0.0))
        return terms, g_at_grid >= MIN_CENSORING_SURVIVAL

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        """Integrated Brier score (primary) and Brier at 91 / 182 days [1] (IPCW), Harrell's
        concordance between assets at the same issue time [1] (``meta['ts']``), counts."""
        terms, counted = self._brier_parts(y_true, y_pred)
        duration, event = _targets(y_true, len(y_true), "m19 evaluate")
        out = {"integrated_brier": float(terms[:, counted].mean()) if counted.any() else float("nan"),
               "ibs_last_day": float(GRID_DAYS[counted][-1]) if counted.any() else float("nan"),
               "n_rows": float(len(duration)), "n_events": float(event.sum())}
        for d in BRIER_AT_DAYS:
            k = int(np.searchsorted(GRID_DAYS, d))
            out[f"brier_{d}d"] = float(terms[:, k].mean()) if k < len(GRID_DAYS) and counted[k] else float("nan")
        risk = _prediction(y_pred, ("risk",), len(duration))[:, 0]
        conc, comp = _pair_counts(duration, event, risk, _issue_times(meta, len(duration)))
        out["concordance"] = float(conc.sum() / comp.sum()) if comp.sum() > 0 else float("nan")
        return out

    def bootstrap_terms(self, y_true, y_pred, meta=None):
        """Per row: its Brier terms summed over the counted grid days and the number of those days;
        the censoring distribution stays the whole test set's (the resampled rows reuse its weights)."""
        terms, counted = self._brier_parts(y_true, y_pred)
        rows = np.column_stack([terms[:, counted].sum(axis=1), np.full(len(terms), counted.sum(), float)])

        def combine(sums: np.ndarray) -> np.ndarray:
            sums = np.atleast_2d(np.asarray(sums, float))
            with np.errstate(invalid="ignore", divide="ignore"):
                return sums[:, 0] / sums[:, 1]
        return rows, combine

    def supplementary_metrics(self, dataset, ev, *, n_replicates: int, seed: int) -> dict[str, float]:
        """Concordance of the model and each baseline on the same rows, with paired asset-block
        bootstrap intervals of each and of the model's difference to each (see :func:`concordance_intervals`)."""
        names = {"model": "model"}
        names.update({name: getattr(type(bl), "key", type(bl).__name__.lower()) for name, bl in ev.fitted_baselines.items()})
        preds = {names[k]: v for k, v in {"model": ev.predictions["model"], **ev.ladder_predictions}.items() if k in names}
        return concordance_intervals(dataset.y_test, preds, dataset.meta_test, n_replicates=n_replicates, seed=seed)

    def figures(self, dataset, predictions) -> dict[str, Any]:
        import plotly.graph_objects as go

        curve = asset_survival_curve(predictions["model"], dataset)
        fig = go.Figure()
        fig.add_scatter(x=[0.0, *GRID_DAYS], y=[1.0, *curve["survival"]], mode="lines", line_shape="hv", name="model S(t)")
        if "baseline" in predictions:
            base = asset_survival_curve(predictions["baseline"], dataset, device_id=curve["device_id"])
            fig.add_scatter(x=[0.0, *GRID_DAYS], y=[1.0, *base["survival"]], mode="lines", line_shape="hv",
                            name="Kaplan-Meier of its age band", line={"dash": "dot"})
        kind = "drawn failure" if curve["event"] else "censored (end of the run)"
        fig.add_vline(x=curve["duration_days"], line_dash="dash", annotation_text=kind)
        fig.update_layout(title=f"m19 survival of {curve['device_id']} from {curve['issued_at']:%Y-%m-%d} and its true time to failure",
                          xaxis_title="days from the issue time", yaxis_title="P(still running)")
        return {"m19_survival_curve": fig}


KaplanMeierByAge.spec = RemainingUsefulLife.spec


def _prediction(y_pred, columns, n: int) -> np.ndarray:
    if not isinstance(y_pred, pd.DataFrame) or not set(columns) <= set(y_pred.columns):
        raise InputError(f"m19 evaluate: the predictions must be a frame with {', '.join(columns[:3])}... (predict's output)")
    arr = y_pred[list(columns)].to_numpy(float)
    if len(arr) != n:
        raise InputError(f"m19 evaluate: {len(arr)} predictions for {n} rows")
    return arr


def _issue_times(meta, n: int) -> np.ndarray:
    if meta is None or "ts" not in meta:
        raise InputError("m19 evaluate: meta must carry the issue time ts of each row (the dataset's meta_test)")
    ts = np.asarray(pd.to_datetime(meta["ts"], utc=True).astype("int64") if isinstance(meta, pd.DataFrame) else meta["ts"])
    if len(ts) != n:
        raise InputError(f"m19 evaluate: meta has {len(ts)} issue times for {n} rows")
    return ts


def censoring_survival(duration: np.ndarray, event: np.ndarray):
    """``G(t)``: the reverse Kaplan-Meier estimate of P(censoring time > t) [1] of the rows, as a function of t [days]."""
    from sksurv.nonparametric import kaplan_meier_estimator

    if event.all():
        return lambda t: np.ones_like(np.asarray(t, float))
    times, surv = kaplan_meier_estimator(~event, duration)

    def G(t):
        idx = np.searchsorted(times, np.asarray(t, float), side="right") - 1
        return np.where(idx >= 0, surv[np.clip(idx, 0, None)], 1.0)
    return G


def _pair_counts(duration, event, risk, issued, blocks=None, n_blocks: int = 1):
    """Harrell's concordant and comparable pairs between rows of the same issue time: (n_blocks, n_blocks)
    sums by the blocks of the shorter-lived row (first index) and the other (``blocks`` None: one block).
    A pair is comparable when the shorter time is an event; concordant when its risk is higher (ties 1/2)."""
    blocks = np.zeros(len(duration), int) if blocks is None else np.asarray(blocks)
    conc, comp = np.zeros((n_blocks, n_blocks)), np.zeros((n_blocks, n_blocks))
    order = np.argsort(issued, kind="stable")
    bounds = np.flatnonzero(np.diff(issued[order])) + 1
    for rows in np.split(order, bounds):
        t, e, r, b = duration[rows], event[rows], risk[rows], blocks[rows]
        comparable = (t[:, None] < t[None, :]) & e[:, None]
        score = np.where(r[:, None] > r[None, :], 1.0, np.where(r[:, None] == r[None, :], 0.5, 0.0)) * comparable
        i, j = np.nonzero(comparable)
        np.add.at(comp, (b[i], b[j]), 1.0)
        np.add.at(conc, (b[i], b[j]), score[i, j])
    return conc, comp


def concordance_intervals(y_true, predictions: dict[str, pd.DataFrame], meta, *, n_replicates: int = 1000,
                          seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """Harrell's concordance of each predictor (between assets at the same issue time) with paired
    asset-block bootstrap intervals.

    A replicate draws assets with replacement (counts ``c``); a pair of rows of assets a and b counts
    ``c_a c_b`` times, so each replicate's concordance is ``c' K c / c' P c`` from the (assets x assets)
    sums of concordant ``K`` and comparable ``P`` pairs: exact and fast.

    Returns
    -------
    dict of str to float
        ``concordance_<name>`` for every predictor (``model`` and the baselines' keys), and with
        replicates ``ci_concordance_<name>_{low,high}`` and ``ci_concordance_diff_<name>_{value,low,high}``
        (model - baseline; above 0 favours the model).
    """
    from ...evaluation import block_counts, percentile_interval

    duration, event = _targets(y_true, len(y_true), "m19 concordance")
    issued = _issue_times(meta, len(duration))
    codes, counts = block_counts(np.asarray(meta["device_id"]), max(int(n_replicates), 1), seed)
    g = counts.shape[1]
    out, reps = {}, {}
    for name, pred in predictions.items():
        risk = _prediction(pred, ("risk",), len(duration))[:, 0]
        K, P = _pair_counts(duration, event, risk, issued, codes, g)
        out[f"concordance_{name}"] = float(K.sum() / P.sum()) if P.sum() > 0 else float("nan")
        with np.errstate(invalid="ignore", divide="ignore"):
            reps[name] = np.einsum("bi,ij,bj->b", counts, K, counts) / np.einsum("bi,ij,bj->b", counts, P, counts)
    if n_replicates <= 0:
        return out
    for name, r in reps.items():
        out[f"ci_concordance_{name}_low"], out[f"ci_concordance_{name}_high"] = percentile_interval(r, level)
        if name != "model" and "model" in reps:
            lo, hi = percentile_interval(reps["model"] - r, level)
            out.update({f"ci_concordance_diff_{name}_value": out["concordance_model"] - out[f"concordance_{name}"],
                        f"ci_concordance_diff_{name}_low": lo, f"ci_concordance_diff_{name}_high": hi})
    return out


def asset_survival_curve(predictions: pd.DataFrame, dataset, device_id: str | None = None) -> dict[str, Any]:
    """One test asset's predicted survival curve at its first test issue time and its true time to failure.

    Parameters
    ----------
    predictions : a predictor's output on ``dataset.X_test`` (:data:`RUL_OUTPUTS`).
    dataset : the m19 dataset (its ``y_test`` and ``meta_test``).
    device_id : the asset; default the test asset whose first test row has the earliest observed failure.

    Returns
    -------
    dict
        device_id, issued_at [UTC], grid_days [days], survival [1] on the grid, median_days, p10_days,
        p90_days [days], duration_days [days] (true time to the drawn failure, or to the end of the run)
        and event (False: censored).
    """
    meta = dataset.meta_test.reset_index(drop=True)
    y = dataset.y_test.reset_index(drop=True)
    first = meta.assign(_row=np.arange(len(meta))).sort_values("ts", kind="stable").groupby("device_id")["_row"].first()
    if device_id is None:
        cand = y.loc[first.to_numpy()]
        cand = cand[cand["event"]] if cand["event"].any() else cand
        device_id = str(meta.loc[cand["duration_days"].idxmin(), "device_id"])
    if device_id not in first.index:
        raise InputError(f"m19 survival curve: {device_id!r} is not a test asset ({', '.join(map(str, first.index[:5]))}...)")
    row = int(first[device_id])
    pred = predictions.reset_index(drop=True).iloc[row]
    return {"device_id": device_id, "issued_at": pd.Timestamp(meta.loc[row, "ts"]), "grid_days": GRID_DAYS.copy(),
            "survival": pred[list(SURVIVAL_COLUMNS)].to_numpy(float),
            **{k: float(pred[k]) for k in ("median_days", "p10_days", "p90_days")},
            "duration_days": float(y.loc[row, "duration_days"]), "event": bool(y.loc[row, "event"])}


# --------------------------------------------------------------------------- serving


def serve_rul(est, observations, readings) -> pd.DataFrame:
    """How the inference engine serves this model (role ``asset_rul``): each inverter at the end of its
    latest day of readings.

    Parameters
    ----------
    est : the fitted :class:`RemainingUsefulLife` (or the baseline that serves in its place).
    observations : the inverters' asset observations (polars or pandas: ts [UTC], device_id,
        heatsink_temp_c, ambient_temp_c [degC], age_years [years], rating_kva [kW]); 30 days or more.
    readings : their ``pv`` readings at the same instants (ts, device_id, ac_power [W], inverter_efficiency [1]).

    Returns
    -------
    DataFrame
        One row per inverter: ``device_id``, ``issued_at`` [UTC], ``median_days``, ``p10_days``,
        ``p90_days``, ``rmst_days`` [days], ``risk`` and the survival ``s_<d>d`` [1] at :data:`GRID_DAYS`.
    """
    import polars as pl

    from ...datasets.maintenance.remaining_useful_life import join_readings, rul_daily_features

    as_pl = lambda f: f if isinstance(f, pl.DataFrame) else pl.from_pandas(f)  # noqa: E731 - local shorthand
    daily = rul_daily_features(join_readings(as_pl(observations), as_pl(readings)))
    latest = daily.sort("device_id", "ts").group_by("device_id", maintain_order=True).agg(pl.all().last())
    latest = latest.drop_nulls(list(RUL_INPUT_COLUMNS))
    if latest.height == 0:
        raise InputError("m19 serving: no inverter has a day of readings with production; pass at least a day of daylight readings")
    pred = est.predict(latest.select(list(RUL_INPUT_COLUMNS)).to_pandas())
    head = latest.select("device_id", pl.col("ts").alias("issued_at")).to_pandas()
    return pd.concat([head, pred.reset_index(drop=True)], axis=1)


#: how the inference engine serves m19 (role ``asset_rul``)
SERVING = serve_rul
