"""m16 optimal dispatch: a fast learned stand-in for the day-ahead LP.

``OptimalDispatch``
    SVR mapping the state at a clock hour (SoC, hour, the next 24 h of load/PV/price forecast) to
    the battery power [kW, positive = discharge, negative = charge] that the day-ahead LP's LP
    (:func:`gridtwin_lib.physics.battery.solve_day_lp`, a 24 h rolling horizon from the current SoC)
    would apply in that hour. Baseline: the day-ahead LP's :func:`~gridtwin_lib.physics.battery.rule_dispatch`
    on the same forecast hour. Judged by executing the set-points hour by hour on the ACTUAL
    days with the day-ahead LP's :func:`~gridtwin_lib.physics.battery.resimulate` (set-points mode: physics and
    the safety layer only) and costing them with :func:`~gridtwin_lib.physics.battery.day_cost`;
    regret [€/day] vs the LP's own set-points executed the same way.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from ...errors import InputError
from ...physics.battery import HOURS, BatterySite, day_cost, resimulate, rule_dispatch, solve_day_lp
from ..base import AdviceEffects, Baseline, Dataset, GridModel, ModelSpec, input_matrix
from ..energy.power_flow_optimization import PowerFlowOptimization

# --------------------------------------------------------------------------- m16 optimal dispatch

AHEAD = tuple(range(HOURS))
M16_COLUMNS = pd.Index(["soc_kwh", "hour_sin", "hour_cos",
                        *[f"load_kw_{k:02d}" for k in AHEAD], *[f"pv_kw_{k:02d}" for k in AHEAD], *[f"price_{k:02d}" for k in AHEAD]])


def dispatch_features(soc_kwh: np.ndarray, hour: np.ndarray, load_f: np.ndarray, pv_f: np.ndarray, price: np.ndarray) -> pd.DataFrame:
    """State at the start of a local hour h: SoC [kWh], hour on the clock circle, and the next 24 h of
    the day's forecast (load, PV [kW], price [€/kWh]) from h on; hours past midnight repeat the same
    clock hour of the day's forecast (made before the day: no look-ahead). Arrays: per row, and
    (rows, 24) for the day's forecasts."""
    hour = np.asarray(hour, int)
    idx = (hour[:, None] + np.arange(HOURS)[None, :]) % HOURS
    take = lambda a: np.take_along_axis(np.asarray(a, float), idx, axis=1)  # noqa: E731
    data = np.column_stack([soc_kwh, np.sin(2 * np.pi * hour / HOURS), np.cos(2 * np.pi * hour / HOURS), take(load_f), take(pv_f), take(price)])
    return pd.DataFrame(data, columns=M16_COLUMNS)


def lp_setpoint(site: BatterySite, soc_kwh: float, load_f: np.ndarray, pv_f: np.ndarray, price: np.ndarray) -> tuple[float, float]:
    """The optimiser: the day-ahead LP's LP over the next 24 h (arrays starting at the current hour) from the current
    SoC; returns the first hour's battery power [kW, positive = discharge] and the solve time [s]."""
    sched, secs = solve_day_lp(site.with_soc(float(soc_kwh)), load_f, pv_f, price)
    return float(sched["battery_discharge_kw"][0] - sched["battery_charge_kw"][0]), secs


def execute(site: BatterySite, battery_kw: np.ndarray, load: np.ndarray, pv: np.ndarray, price: np.ndarray) -> dict[str, np.ndarray]:
    """Play (days, 24) battery set-points [kW, + = discharge] on the actual days with the day-ahead LP's
    :func:`resimulate` (set-points mode: power/SoC physics and the safety layer)."""
    sched = {"battery_charge_kw": np.clip(-battery_kw, 0, None), "battery_discharge_kw": np.clip(battery_kw, 0, None),
             "grid_import_kw": load - pv + np.clip(-battery_kw, 0, None) - np.clip(battery_kw, 0, None)}
    return resimulate(site, sched, load, pv, price, realtime=False)


def _m16_X(X, who):
    return input_matrix(X, M16_COLUMNS, who, "dispatch_features() columns (soc_kwh, hour_sin, hour_cos, load_kw_00.., pv_kw_00.., price_00..)")


def _m16_frame(bkw, X: np.ndarray, index, secs, site: BatterySite) -> pd.DataFrame:
    # expected cost of the coming hour at the set-point, on the forecast
    net = X[:, 3] - X[:, 3 + HOURS] - bkw
    cost = X[:, 3 + 2 * HOURS] * np.clip(net, 0, None) - site.feed_in * np.clip(-net, 0, None)
    return pd.DataFrame({"battery_kw": bkw, "expected_cost_eur": cost, "compute_time_s": np.full(len(bkw), secs)}, index=index)


class _M16Params(BaseEstimator):
    def battery_site(self) -> BatterySite:
        """The day-ahead LP's battery site for ``m11_params`` (its defaults for the rest)."""
        return PowerFlowOptimization(**(self.m11_params or {})).battery_site()


class OptimalDispatch(_M16Params, GridModel):
    """Next-hour battery power [kW, positive = discharge] as an SVR surrogate of the day-ahead LP's LP.

    Input: :func:`dispatch_features` columns. Output: ``battery_kw`` (clipped to the battery's
    power), ``expected_cost_eur`` [€, the coming hour's energy cost at that set-point on the
    forecast: price x import - feed-in x export] and ``compute_time_s`` [s per row].
    ``m11_params``: the battery/tariff parameters of :class:`PowerFlowOptimization` (must match the
    dataset's). Pipeline: StandardScaler + SVR (RBF).

    Parameters
    ----------
    C, epsilon, gamma : float, float [kW], str or float
        Passed to :class:`sklearn.svm.SVR` (RBF kernel).
    m11_params : dict or None
        Battery and tariff parameters of the day-ahead LP it imitates (None: its defaults).

    Attributes
    ----------
    svr_ : Pipeline
        Standard scaling and the fitted SVR.
    """

    spec = ModelSpec(
        model_id="m16_optimal_dispatch",
        module="decision",
        algorithm="SVR (RBF) surrogate of m11's rolling-horizon LP",
        baseline="m11 rule dispatch (charge on PV surplus, discharge in peak-price hours) on the same forecast hour",
        target="first-hour battery power [kW] of m11's LP solved from each hour on; judged by re-simulation on actual days",
        primary_metric="cost_regret_eur_per_day",
        greater_is_better=False,
        output_units={"battery_kw": "kW", "expected_cost_eur": "EUR", "compute_time_s": "s"},
        secondary_metrics=("cost_eur_per_day", "lp_cost_eur_per_day", "violations", "dispatch_mae_kw", "speed_up"),
    )

    def __init__(self, C: float = 3.0, epsilon: float = 0.05, gamma: str | float = "scale", m11_params: dict | None = None):
        self.C = C
        self.epsilon = epsilon
        self.gamma = gamma
        self.m11_params = m11_params

    def fit(self, X, y=None):
        if y is None:
            raise InputError("m16: y (the LP's first-hour battery_kw) is required to fit")
        A = _m16_X(X, "m16 fit")
        yy = np.asarray(y["battery_kw"] if isinstance(y, pd.DataFrame) else y, float).ravel()
        self.svr_ = make_pipeline(StandardScaler(), SVR(C=self.C, epsilon=self.epsilon, gamma=self.gamma)).fit(A, yy)
        return self

    def predict(self, X):
        t0 = time.perf_counter()
        A = _m16_X(X, "m16 predict")
        site = self.battery_site()
        b = np.clip(self.svr_.predict(A), -site.p_max, site.p_max)
        return _m16_frame(b, A, getattr(X, "index", None), (time.perf_counter() - t0) / len(A), site)

    def baseline(self):
        return RuleSetpoint(m11_params=self.m11_params)

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        if meta is None or not {"actual_load_kw", "actual_pv_kw", "price_per_kwh"} <= set(meta.columns):
            raise InputError("m16 score: meta must carry actual_load_kw, actual_pv_kw, price_per_kwh per row (whole days, hours 0..23)")
        n = len(meta)
        if n % HOURS:
            raise InputError(f"m16 score: {n} rows is not whole days of 24 hours")
        site = self.battery_site()
        rs = lambda c: meta[c].to_numpy(float).reshape(-1, HOURS)  # noqa: E731
        load, pv, price = rs("actual_load_kw"), rs("actual_pv_kw"), rs("price_per_kwh")
        lp = np.asarray(y_true["battery_kw"] if isinstance(y_true, pd.DataFrame) else y_true, float).reshape(-1, HOURS)
        pred = np.asarray(y_pred["battery_kw"], float).reshape(-1, HOURS)

        def cost(b):
            r = execute(site, b, load, pv, price)
            return day_cost(site, r["grid_import_kw"], r["soc_kwh"][:, -1], price), r

        c_pred, r_pred = cost(pred)
        c_lp, _ = cost(lp)
        t_pred = float(np.mean(y_pred["compute_time_s"])) if "compute_time_s" in y_pred else float("nan")
        t_lp = float(meta["solve_s"].mean()) if "solve_s" in meta else float("nan")
        return {
            "cost_regret_eur_per_day": float(np.mean(c_pred - c_lp)),
            "cost_eur_per_day": float(c_pred.mean()),
            "lp_cost_eur_per_day": float(c_lp.mean()),
            "violations": float(r_pred["violation"].sum()),
            "dispatch_mae_kw": float(np.mean(np.abs(pred - lp))),
            "speed_up": t_lp / t_pred if t_pred > 0 else float("nan"),
            "n_days": float(load.shape[0]),
        }

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        import plotly.graph_objects as go

        lp = dataset.y_test["battery_kw"].to_numpy(float)
        sc = go.Figure()
        for name, pred in predictions.items():
            sc.add_trace(go.Scatter(x=lp, y=np.asarray(pred["battery_kw"], float), mode="markers", name=name, marker={"size": 3, "opacity": 0.5}))
        sc.update_layout(title="m16: battery set-point vs the LP (test hours; + = discharge)", xaxis_title="LP [kW]", yaxis_title="predicted [kW]")
        hours = np.arange(HOURS)
        prof = go.Figure([go.Scatter(x=hours, y=lp.reshape(-1, HOURS).mean(0), name="LP", line={"color": "black"})])
        for name, pred in predictions.items():
            prof.add_trace(go.Scatter(x=hours, y=np.asarray(pred["battery_kw"], float).reshape(-1, HOURS).mean(0), name=name))
        prof.update_layout(title="m16: mean battery power by local hour (test days)", xaxis_title="local hour", yaxis_title="kW (+ = discharge)")
        return {"dispatch_scatter": sc, "dispatch_by_hour": prof}


class RuleSetpoint(_M16Params, Baseline):
    """Baseline: the day-ahead LP's :func:`rule_dispatch` for the coming hour on its forecast, from the row's SoC.

    The rule needs the day's peak price: the maximum of the 24 prices ahead (the same tariff day)."""

    name = "rule dispatch (charge on PV surplus, discharge in the peak-price hours)"

    def __init__(self, m11_params: dict | None = None):
        self.m11_params = m11_params

    @classmethod
    def for_model(cls, model):
        return cls(m11_params=model.m11_params)

    def fit(self, X=None, y=None):
        self.battery_site()
        return self

    def predict(self, X):
        t0 = time.perf_counter()
        A = _m16_X(X, "m16 rule")
        site = self.battery_site()
        price = A[:, 3 + 2 * HOURS:]
        # hour "0" of each row is the coming hour; the rest of the row only sets the day's peak price
        sched = rule_dispatch(site.with_soc(A[:, 0]), A[:, 3:3 + HOURS], A[:, 3 + HOURS:3 + 2 * HOURS], price)
        b = sched["battery_discharge_kw"][:, 0] - sched["battery_charge_kw"][:, 0]
        return _m16_frame(b, A, getattr(X, "index", None), (time.perf_counter() - t0) / len(A), site)


class LinearSetpoint(_M16Params, Baseline):
    """Ladder baseline of m16: the linear surrogate of the LP on the model's inputs: ridge
    regression (scikit-learn, standardised inputs) of the LP's first-hour battery power [kW] on
    :func:`dispatch_features`, clipped to the battery's power; fitted on training rows.

    Parameters
    ----------
    alpha : float
        L2 penalty of the ridge regression.
    m11_params : dict or None
        Battery and tariff parameters of the day-ahead LP (None: its defaults).
    """

    name = "linear surrogate on the same inputs (ridge)"

    def __init__(self, alpha: float = 1.0, m11_params: dict | None = None):
        self.alpha = alpha
        self.m11_params = m11_params

    @classmethod
    def for_model(cls, model):
        return cls(m11_params=model.m11_params)

    def fit(self, X, y=None):
        from sklearn.linear_model import Ridge

        if y is None:
            raise InputError("m16 linear surrogate: y (the LP's first-hour battery_kw) is required to fit")
        A = _m16_X(X, "m16 linear surrogate fit")
        yy = np.asarray(y["battery_kw"] if isinstance(y, pd.DataFrame) else y, float).ravel()
        self.ridge_ = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha)).fit(A, yy)
        return self

    def predict(self, X):
        t0 = time.perf_counter()
        A = _m16_X(X, "m16 linear surrogate predict")
        site = self.battery_site()
        b = np.clip(self.ridge_.predict(A), -site.p_max, site.p_max)
        return _m16_frame(b, A, getattr(X, "index", None), (time.perf_counter() - t0) / len(A), site)


# --------------------------------------------------------------------------- closed loop


def closed_loop(policy, X: pd.DataFrame, meta: pd.DataFrame, site: BatterySite) -> dict[str, np.ndarray]:
    """Run a set-point policy through the battery day by day from ITS OWN state of charge.

    Every held-out day starts at the site's initial SoC; at each hour h the policy sees the row's
    forecast features with ``soc_kwh`` replaced by the SoC its own earlier set-points reached on
    the actual day (:func:`execute`: physics and the safety layer), and its set-point is executed.
    ``policy``: anything with ``predict(X)`` returning ``battery_kw`` (the model, a baseline).
    ``X``, ``meta``: whole days of 24 rows (the builder's ``X_test``, ``meta_test``).

    Returns
    -------
    dict
        ``battery_kw`` (days, 24) set-points [kW, + = discharge] the policy chose, ``soc_kwh`` (days,
        24) SoC at the start of each hour [kWh], ``cost_eur`` (days,) cost of each actual day [€]
        (:func:`day_cost`), ``violations`` (number of hours outside a limit).
    """
    if len(X) % HOURS or len(meta) != len(X):
        raise InputError(f"m16 closed loop: {len(X)} rows of X and {len(meta)} of meta are not the same whole days of 24 hours")
    rs = lambda c: meta[c].to_numpy(float).reshape(-1, HOURS)  # noqa: E731
    load, pv, price = rs("actual_load_kw"), rs("actual_pv_kw"), rs("price_per_kwh")
    feats = X.reset_index(drop=True)
    days = load.shape[0]
    plan = np.zeros((days, HOURS))
    soc = np.full((days, HOURS), float(np.mean(site.s0)))
    for h in range(HOURS):
        if h:
            soc[:, h] = execute(site, plan, load, pv, price)["soc_kwh"][:, h - 1]
        rows = feats.iloc[np.arange(days) * HOURS + h].copy()
        rows["soc_kwh"] = soc[:, h]
        plan[:, h] = np.clip(np.asarray(policy.predict(rows)["battery_kw"], float), -site.p_max, site.p_max)
    r = execute(site, plan, load, pv, price)
    return {"battery_kw": plan, "soc_kwh": soc, "cost_eur": day_cost(site, r["grid_import_kw"], r["soc_kwh"][:, -1], price),
            "violations": float(r["violation"].sum())}


def closed_loop_costs(policies: dict[str, Any], dataset: Dataset, site: BatterySite) -> pd.DataFrame:
    """Cost of each held-out day [€] of each policy run in closed loop (:func:`closed_loop`), with
    the rolling-horizon LP (column ``lp``: the dataset's labels, which the builder made in closed
    loop from the LP's own SoC) and an idle battery (``idle``), all executed on the actual days."""
    meta = dataset.meta_test
    rs = lambda c: meta[c].to_numpy(float).reshape(-1, HOURS)  # noqa: E731
    load, pv, price = rs("actual_load_kw"), rs("actual_pv_kw"), rs("price_per_kwh")
    out = {name: closed_loop(p, dataset.X_test, meta, site)["cost_eur"] for name, p in policies.items()}
    for name, plan in (("lp", np.asarray(dataset.y_test["battery_kw"], float).reshape(-1, HOURS)), ("idle", np.zeros_like(load))):
        r = execute(site, plan, load, pv, price)
        out[name] = day_cost(site, r["grid_import_kw"], r["soc_kwh"][:, -1], price)
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- advice


def advice_effects(model, baseline, dataset: Dataset) -> AdviceEffects:
    """Per held-out day: cost [€] of the actual day with an idle battery, the rule and the model's
    advice each run in closed loop from their own state of charge (:func:`closed_loop`), and the
    rolling-horizon LP's (the dataset's labels, made the same way)."""
    meta = dataset.meta_test.reset_index(drop=True)
    costs = closed_loop_costs({"rule": baseline, "advice": model}, dataset, model.battery_site())
    days = pd.to_datetime(meta["date"] if "date" in meta else meta["ts"]).dt.date.to_numpy().reshape(-1, HOURS)[:, 0]
    out = pd.DataFrame({"day": days})
    for name in ("idle", "rule", "advice", "lp"):
        out[f"cost_{name}_eur"] = costs[name].to_numpy()
    return AdviceEffects(out, "battery dispatch", "cost of the actual day in closed loop [€]", "cost_{}_eur", ("idle", "rule", "advice", "lp"))


# --------------------------------------------------------------------------- serving


def serve_setpoint(est, soc_kwh: float, load_kw: np.ndarray, pv_kw: np.ndarray, price_per_kwh: np.ndarray) -> dict[str, float]:
    """How the inference engine serves this model (role ``dispatch``): the battery set-point of
    the first hour [kW] from the state of charge [kWh] and the 24 h forecasts (kW, €/kWh), with
    ``predict``'s other outputs and the seconds it took."""
    feats = dispatch_features(np.array([soc_kwh]), np.array([0]), load_kw[None, :], pv_kw[None, :], price_per_kwh[None, :])
    t0 = time.perf_counter()
    sp = est.predict(feats)
    return {**{k: float(v) for k, v in sp.iloc[0].items()}, "seconds": time.perf_counter() - t0}


SERVING = serve_setpoint
