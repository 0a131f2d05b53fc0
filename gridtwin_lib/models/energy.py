"""Energy models m10-m12 (m09 lives in :mod:`.energy_forecast`).

``EnergyLoss`` (m10)
    Technical losses [kW] of the CIGRE LV reference feeder from what the feeder head
    measures: ordinary least squares on physical regressors (I², P², Q² per transformer),
    because Joule losses are quadratic in the currents. Truth: the twin's AC power flow.
``PowerFlowOptimization`` (m11)
    Day-ahead linear programme (HiGHS through :func:`scipy.optimize.linprog`) scheduling
    grid import, PV curtailment and battery charge/discharge of one prosumer for 24 hours,
    minimising energy cost + a daily peak (demand) charge. Not fitted. Judged by
    re-simulating each schedule against the *actual* day (:func:`resimulate`).
``DemandResponse`` (m12)
    KMeans on normalised daily load profiles; archetypes ordered by their share of energy
    in the peak window, each with its flexible kWh in that window.

Units: kW, kWh, kvar, A, V, € (``eur``); hours are local clock hours.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.linear_model import LinearRegression
from sklearn.metrics import adjusted_rand_score, mean_absolute_error, r2_score

from ..errors import InputError
from ..physics.battery import HOURS, SCHEDULE_COLUMNS, BatterySite, day_cost, resimulate, rule_dispatch, solve_day_lp
from .base import Dataset, GridModel, ModelSpec

# --------------------------------------------------------------------------- m10 energy loss

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

    def score(self, y_true, y_pred, meta=None) -> dict[str, float]:
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


class FixedLossFactor(BaseEstimator):
    """Baseline of m10: losses [kW] = k x power through the feeder head [kW] (Σ|P| of the transformers).

    ``k`` is the energy-weighted loss factor of the training period (Σ losses / Σ delivered),
    the "x % of delivered energy" a utility books when it has no loss model.
    """

    def fit(self, X, y=None):
        self.subnets_ = _head_subnets(X)
        delivered = _delivered_kw(X, self.subnets_)
        self.loss_factor_ = float(_loss_frame(y).sum() / delivered.sum())
        return self

    def predict(self, X):
        return pd.DataFrame({"losses_kw": self.loss_factor_ * _delivered_kw(X, self.subnets_)}, index=X.index)


# --------------------------------------------------------------------------- m11 power-flow optimisation

FORECAST_COLUMNS = ("load_kw", "pv_kw", "price_per_kwh")


def _days(X, what: str) -> dict[str, np.ndarray]:
    """(days, 24) arrays of load_kw, pv_kw, price_per_kwh from 24 consecutive rows per day."""
    if isinstance(X, np.ndarray):
        X = pd.DataFrame(np.asarray(X, float), columns=list(FORECAST_COLUMNS))
    if not isinstance(X, pd.DataFrame):
        raise InputError(f"{what}: X must be a DataFrame with columns {list(FORECAST_COLUMNS)}")
    missing = [c for c in FORECAST_COLUMNS if c not in X.columns]
    if missing:
        raise InputError(f"{what}: X lacks columns {missing}; give 24 hourly rows per day of {list(FORECAST_COLUMNS)}")
    if len(X) == 0 or len(X) % HOURS:
        raise InputError(f"{what}: X has {len(X)} rows; give whole days of 24 hourly rows (local 00:00 to 23:00)")
    out = {c: X[c].to_numpy(float).reshape(-1, HOURS) for c in FORECAST_COLUMNS}
    if not all(np.isfinite(v).all() for v in out.values()):
        raise InputError(f"{what}: X holds missing values; forecasts must be complete for every hour")
    if (out["load_kw"] < 0).any() or (out["pv_kw"] < 0).any():
        raise InputError(f"{what}: load_kw and pv_kw must be >= 0 (load is consumption, pv is generation)")
    return out


def _schedule_arrays(y_pred) -> dict[str, np.ndarray]:
    if not isinstance(y_pred, pd.DataFrame):
        y_pred = pd.DataFrame(np.asarray(y_pred, float)[:, : len(SCHEDULE_COLUMNS)], columns=list(SCHEDULE_COLUMNS))
    return {k: y_pred[k].to_numpy(float).reshape(-1, HOURS) for k in SCHEDULE_COLUMNS}


def _schedule_frame(days: dict[str, np.ndarray], index, solve_s: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({k: days[k].ravel() for k in SCHEDULE_COLUMNS}, index=index)
    frame["solve_time_s"] = np.repeat(solve_s, HOURS)
    return frame


class _DispatchParams(BaseEstimator):
    """Parameters shared by the LP and its rule baseline (units: kWh, kW, €/kWh, €/kW per day)."""

    def __init__(self, battery_kwh: float = 8.0, battery_kw: float = 3.0, round_trip_efficiency: float = 0.9,
                 soc_min_frac: float = 0.1, soc_max_frac: float = 0.95, soc_init_frac: float = 0.5,
                 import_limit_kw: float = 7.0, export_limit_kw: float = 2.5, feed_in_per_kwh: float = 0.06,
                 peak_charge_per_kw_day: float = 0.25, terminal_value_per_kwh: float | None = None,
                 overload_penalty_per_kwh: float = 10.0, execution: str = "realtime"):
        self.battery_kwh = battery_kwh
        self.battery_kw = battery_kw
        self.round_trip_efficiency = round_trip_efficiency
        self.soc_min_frac = soc_min_frac
        self.soc_max_frac = soc_max_frac
        self.soc_init_frac = soc_init_frac
        self.import_limit_kw = import_limit_kw
        self.export_limit_kw = export_limit_kw
        self.feed_in_per_kwh = feed_in_per_kwh
        self.peak_charge_per_kw_day = peak_charge_per_kw_day
        self.terminal_value_per_kwh = terminal_value_per_kwh
        self.overload_penalty_per_kwh = overload_penalty_per_kwh
        self.execution = execution

    def battery_site(self) -> BatterySite:
        """The checked :class:`~gridtwin_lib.physics.battery.BatterySite` of these parameters."""
        return BatterySite.from_params(**self.get_params(deep=False))


class PowerFlowOptimization(_DispatchParams, GridModel):
    """Day-ahead 24 h schedule of a prosumer (household load + PV + battery) by linear programming.

    ``predict(X)``: X = 24 hourly rows per day (local 00:00..23:00) of the *forecast*
    ``load_kw`` [kW], ``pv_kw`` [kW] and the tariff ``price_per_kwh`` [€/kWh]; returns the
    schedule per row: ``grid_import_kw`` [kW] (negative = export), ``pv_curtailed_kw``,
    ``battery_charge_kw``, ``battery_discharge_kw`` [kW], ``soc_kwh`` [kWh, end of hour] and
    ``solve_time_s`` [s] (HiGHS wall time of the row's day). Objective per day [€]:
    Σ price·import - feed_in·export + peak_charge·max(import) - η·v·(SoC_end - SoC_start) with
    ``v`` = ``terminal_value_per_kwh`` (default: the day's cheapest price; see :func:`day_cost`),
    subject to the energy balance, battery power and SoC limits (SoC starts every day at
    ``soc_init_frac`` and must end at least there), import <= ``import_limit_kw`` (soft, at
    ``overload_penalty_per_kwh``) and export <= ``export_limit_kw`` (curtailing PV if needed).
    Nothing is learned: ``fit`` only checks the parameters.

    Judging (:meth:`score`): every schedule is played against the actual day by
    :func:`resimulate` (``execution="realtime"``: the plan plus a fixed real-time layer that only
    sees the current hour; ``"setpoints"``: the battery set-points verbatim) and costed by
    :func:`day_cost`. The reference is the rule run in real time on the actual day (it needs no
    forecast); the perfect-foresight LP on the actual day is the upper bound.
    """

    spec = ModelSpec(
        model_id="m11_power_flow_optimization",
        module="energy",
        algorithm="linear programming (HiGHS via scipy.optimize.linprog), day-ahead on a forecast",
        baseline="rule: charge on PV surplus, discharge in the peak-price hours, planned on the same forecast and executed the same way",
        target="24 h schedule of grid import, PV curtailment and battery charge/discharge; judged by re-simulation on the actual day",
        primary_metric="cost_saving_vs_rule",
        greater_is_better=True,
        output_units={"grid_import_kw": "kW", "pv_curtailed_kw": "kW", "battery_charge_kw": "kW",
                      "battery_discharge_kw": "kW", "soc_kwh": "kWh", "solve_time_s": "s"},
        secondary_metrics=("violations", "perfect_foresight_saving", "share_of_perfect_saving", "cost_eur_per_day",
                           "rule_cost_eur_per_day", "peak_import_kw", "override_hours", "solve_time_s"),
    )

    def fit(self, X=None, y=None):
        """No-op (an optimiser learns nothing); checks the parameters."""
        self.battery_site()
        return self

    def predict(self, X):
        site = self.battery_site()
        d = _days(X, "m11 predict")
        days, solve_s = {k: [] for k in SCHEDULE_COLUMNS}, []
        for k in range(d["load_kw"].shape[0]):
            sched, secs = solve_day_lp(site, d["load_kw"][k], d["pv_kw"][k], d["price_per_kwh"][k])
            for key in SCHEDULE_COLUMNS:
                days[key].append(sched[key])
            solve_s.append(secs)
        arrays = {k: np.vstack(v) for k, v in days.items()}
        return _schedule_frame(arrays, getattr(X, "index", None), np.asarray(solve_s))

    def baseline(self):
        return RuleDispatch(**self.get_params())

    def input_example(self, X):
        return X.head(HOURS) if isinstance(X, pd.DataFrame) else X[:HOURS]

    # ---------------------------------------------------------------- evaluation

    def evaluate_days(self, y_true, y_pred, meta) -> dict[str, Any]:
        """Per-day costs [€] of the schedule, the real-time rule and the perfect-foresight LP, all
        re-simulated on the actual load and PV (``y_true``) with the prices in ``meta``."""
        site = self.battery_site()
        actual = _days(pd.DataFrame({"load_kw": np.asarray(y_true["load_kw"], float), "pv_kw": np.asarray(y_true["pv_kw"], float),
                                     "price_per_kwh": np.asarray(meta["price_per_kwh"], float)}), "m11 score")
        load, pv, price = actual["load_kw"], actual["pv_kw"], actual["price_per_kwh"]
        rt = self.execution == "realtime"
        realised = resimulate(site, _schedule_arrays(y_pred), load, pv, price, rt)
        rule = resimulate(site, rule_dispatch(site, load, pv, price), load, pv, price, rt)
        perfect = {k: [] for k in SCHEDULE_COLUMNS}
        for k in range(load.shape[0]):
            sched, _ = solve_day_lp(site, load[k], pv[k], price[k])
            for key in SCHEDULE_COLUMNS:
                perfect[key].append(sched[key])
        perfect = resimulate(site, {k: np.vstack(v) for k, v in perfect.items()}, load, pv, price, rt)
        return {
            "load": load, "pv": pv, "price": price, "realised": realised, "rule": rule, "perfect": perfect,
            "cost": day_cost(site, realised["grid_import_kw"], realised["soc_kwh"][:, -1], price),
            "rule_cost": day_cost(site, rule["grid_import_kw"], rule["soc_kwh"][:, -1], price),
            "perfect_cost": day_cost(site, perfect["grid_import_kw"], perfect["soc_kwh"][:, -1], price),
        }

    def score(self, y_true, y_pred, meta=None) -> dict[str, float]:
        """Cost saving vs the rule run in real time on the actual days (the rule needs no forecast),
        both re-simulated on the same actual days; the perfect-foresight LP is the upper bound."""
        if meta is None or "price_per_kwh" not in meta:
            raise InputError("m11 score: meta must carry price_per_kwh for every row")
        ev = self.evaluate_days(y_true, y_pred, meta)
        total, rule_total, perfect_total = ev["cost"].sum(), ev["rule_cost"].sum(), ev["perfect_cost"].sum()
        saving = (rule_total - total) / abs(rule_total) if rule_total else float("nan")
        perfect_saving = (rule_total - perfect_total) / abs(rule_total) if rule_total else float("nan")
        solve = np.asarray(y_pred["solve_time_s"], float)[::HOURS] if isinstance(y_pred, pd.DataFrame) and "solve_time_s" in y_pred else np.zeros(1)
        r = ev["realised"]
        return {
            "cost_saving_vs_rule": float(saving),
            "violations": float(r["violation"].sum()),
            "perfect_foresight_saving": float(perfect_saving),
            "share_of_perfect_saving": float(saving / perfect_saving) if perfect_saving > 0 else float("nan"),
            "cost_eur_per_day": float(ev["cost"].mean()),
            "rule_cost_eur_per_day": float(ev["rule_cost"].mean()),
            "perfect_cost_eur_per_day": float(ev["perfect_cost"].mean()),
            "days_cheaper_than_rule_pct": float(100 * np.mean(ev["cost"] < ev["rule_cost"] - 1e-9)),
            "peak_import_kw": float(np.clip(r["grid_import_kw"], 0, None).max(axis=1).mean()),
            "curtailed_kwh_per_day": float(r["pv_curtailed_kw"].sum(axis=1).mean()),
            "override_hours": float(r["override"].sum()),
            "solve_time_s": float(solve.mean()),
            "solve_time_max_s": float(solve.max()),
            "n_days": float(ev["load"].shape[0]),
        }

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        evs = {name: self.evaluate_days(dataset.y_test, pred, dataset.meta_test) for name, pred in predictions.items()}
        first = next(iter(evs.values()))
        dates = (pd.Series(dataset.meta_test["date"]).to_numpy()[::HOURS] if "date" in dataset.meta_test
                 else np.arange(first["load"].shape[0]))
        daily = go.Figure()
        daily.add_trace(go.Scatter(x=dates, y=np.cumsum(first["rule_cost"] - first["perfect_cost"]), name="perfect foresight (upper bound)",
                                   line={"dash": "dot", "color": "grey"}))
        for name, ev in evs.items():
            daily.add_trace(go.Scatter(x=dates, y=np.cumsum(ev["rule_cost"] - ev["cost"]), name=name))
        daily.update_layout(title="m11: cumulative saving vs the real-time rule (re-simulated on actual days)",
                            yaxis_title="cumulative saving [€]")
        # one typical test day: the day of median saving of the model
        ev = evs.get("model", first)
        k = int(np.argsort(ev["rule_cost"] - ev["cost"])[len(ev["cost"]) // 2])
        hours = np.arange(HOURS)
        day = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=("power [kW]", "state of charge [kWh]"))
        fc = dataset.X_test[["load_kw", "pv_kw"]].to_numpy(float).reshape(-1, HOURS, 2)[k] if isinstance(dataset.X_test, pd.DataFrame) else None
        day.add_trace(go.Scatter(x=hours, y=ev["load"][k], name="actual load", line={"color": "black"}), 1, 1)
        day.add_trace(go.Scatter(x=hours, y=ev["pv"][k], name="actual PV", line={"color": "orange"}), 1, 1)
        if fc is not None:
            day.add_trace(go.Scatter(x=hours, y=fc[:, 0], name="forecast load", line={"color": "black", "dash": "dot"}), 1, 1)
            day.add_trace(go.Scatter(x=hours, y=fc[:, 1], name="forecast PV", line={"color": "orange", "dash": "dot"}), 1, 1)
        for name, e in (*evs.items(), ("real-time rule", {"realised": first["rule"]})):
            day.add_trace(go.Scatter(x=hours, y=e["realised"]["grid_import_kw"][k], name=f"grid import, {name}"), 1, 1)
            day.add_trace(go.Scatter(x=hours, y=e["realised"]["soc_kwh"][k], name=f"SoC, {name}"), 2, 1)
        day.update_layout(title=f"m11: test day {dates[k]} re-simulated (median-saving day of the model)")
        return {"cumulative_saving": daily, "example_day": day}


class RuleDispatch(_DispatchParams):
    """Baseline of m11: :func:`rule_dispatch` applied to the rows it is given (the same forecast
    the LP sees), returning a schedule in the LP's format. Same parameters as the LP."""

    def fit(self, X=None, y=None):
        self.battery_site()
        return self

    def predict(self, X):
        d = _days(X, "m11 rule")
        sched = rule_dispatch(self.battery_site(), d["load_kw"], d["pv_kw"], d["price_per_kwh"])
        return _schedule_frame(sched, getattr(X, "index", None), np.zeros(d["load_kw"].shape[0]))


# --------------------------------------------------------------------------- m12 demand response

PROFILE_COLUMNS = tuple(f"h{h:02d}" for h in range(HOURS))
CALENDAR_COLUMNS = ("weekday", "month")


def _profiles(X, what: str) -> np.ndarray:
    if not isinstance(X, pd.DataFrame):
        raise InputError(f"{what}: X must be a DataFrame with columns {PROFILE_COLUMNS[0]}..{PROFILE_COLUMNS[-1]} [kW]")
    missing = [c for c in PROFILE_COLUMNS if c not in X.columns]
    if missing:
        raise InputError(f"{what}: X lacks hourly columns {missing[:3]}...; one row per day, h00..h23 = mean kW of each local hour")
    P = X[list(PROFILE_COLUMNS)].to_numpy(float)
    if not np.isfinite(P).all() or (P < 0).any():
        raise InputError(f"{what}: daily profiles must be complete and >= 0 kW")
    return P


def _shape(P: np.ndarray) -> np.ndarray:
    """Normalised profile: each hour's share of the day's energy (rows sum to 1)."""
    return P / np.maximum(P.sum(axis=1, keepdims=True), 1e-9)


def _archetype_table(P: np.ndarray, labels: np.ndarray, peak: np.ndarray) -> pd.DataFrame:
    """Per label: days, mean daily kWh, peak share, flexible kWh in the peak window.

    Flexible kWh = Σ over peak hours of max(0, P_h - mean off-peak P) x 1 h on the archetype's mean
    profile [kW]: the energy that would have to move out of the peak window to flatten it to
    the archetype's off-peak level.
    """
    rows = []
    for lab in np.unique(labels):
        mean = P[labels == lab].mean(axis=0)
        share = float(mean[peak].sum() / max(mean.sum(), 1e-9))
        flex = float(np.clip(mean[peak] - mean[~peak].mean(), 0, None).sum())
        rows.append({"label": lab, "n_days": int((labels == lab).sum()), "daily_kwh": float(mean.sum()),
                     "peak_share": share, "flexible_kwh": flex, "profile_kw": mean})
    return pd.DataFrame(rows)


def _peak_mask(peak_hours) -> np.ndarray:
    a, b = int(peak_hours[0]), int(peak_hours[1])
    if not (0 <= a < 24 and 0 < b <= 24 and a != b):
        raise InputError(f"m12: peak_hours must be (start, end) local hours, e.g. (17, 21) (got {peak_hours})")
    h = np.arange(HOURS)
    return (h >= a) & (h < b) if a < b else (h >= a) | (h < b)


def _mean_pairwise_ari(labelings: list[np.ndarray]) -> float:
    pairs = list(itertools.combinations(range(len(labelings)), 2))
    if not pairs:
        return float("nan")
    return float(np.mean([adjusted_rand_score(labelings[i], labelings[j]) for i, j in pairs]))


def _dr_frame(index, archetype, table: pd.DataFrame, stability: float) -> pd.DataFrame:
    by = table.set_index("archetype") if len(table) else None
    share = by["peak_share"].reindex(archetype).to_numpy() if by is not None else np.full(len(archetype), np.nan)
    flex = by["flexible_kwh"].reindex(archetype).to_numpy() if by is not None else np.full(len(archetype), np.nan)
    return pd.DataFrame({"archetype": archetype.astype(int), "peak_share": share, "flexible_kwh": flex,
                         "bootstrap_ari": np.full(len(archetype), stability)}, index=index)


class DemandResponse(GridModel):
    """Load archetypes: KMeans on normalised daily profiles, ordered by peak share.

    X: one row per (customer, day) with ``h00..h23`` = mean demand of each local hour [kW]
    (``weekday``, ``month`` are ignored here; the calendar baseline uses them). Profiles are
    divided by their daily energy, so archetypes are about *when* energy is used, not how much.
    Archetype 0 has the largest share of its energy in ``peak_hours`` (local, [start, end)).
    ``predict`` returns per row: ``archetype``, its ``peak_share`` [1] and ``flexible_kwh``
    [kWh/day in the peak window, see :func:`_archetype_table`], and ``bootstrap_ari`` [1]: the
    mean ARI between ``n_bootstrap`` refits on resampled training days, labelling the rows given.
    """

    spec = ModelSpec(
        model_id="m12_demand_response",
        module="energy",
        algorithm="KMeans on normalised daily load profiles",
        baseline="calendar grouping (weekday/weekend x season)",
        target="load archetypes ordered by peak share, flexible kWh in the peak window; judged by recovery of the twin's customer types",
        primary_metric="ari",
        greater_is_better=True,
        output_units={"archetype": "1", "peak_share": "1", "flexible_kwh": "kWh", "bootstrap_ari": "1"},
        secondary_metrics=("bootstrap_stability", "n_archetypes", "n_labelled"),
    )

    def __init__(self, n_clusters: int = 4, peak_hours: tuple[int, int] = (17, 21), n_bootstrap: int = 10,
                 n_init: int = 10, random_state: int = 0):
        self.n_clusters = n_clusters
        self.peak_hours = peak_hours
        self.n_bootstrap = n_bootstrap
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X, y=None):
        P = _profiles(X, "m12 fit")
        if len(P) < self.n_clusters:
            raise InputError(f"m12: {len(P)} training days for {self.n_clusters} clusters; simulate more days or devices")
        S = _shape(P)
        self.peak_mask_ = _peak_mask(self.peak_hours)
        km = KMeans(self.n_clusters, n_init=self.n_init, random_state=self.random_state).fit(S)
        table = _archetype_table(P, km.labels_, self.peak_mask_)
        order = table.sort_values("peak_share", ascending=False)["label"].to_numpy()
        self.relabel_ = np.empty(self.n_clusters, int)
        self.relabel_[order] = np.arange(len(order))
        self.centers_ = km.cluster_centers_[order]
        self.archetypes_ = table.assign(archetype=self.relabel_[table["label"]]).sort_values("archetype").drop(columns="label").reset_index(drop=True)
        rng = np.random.default_rng(self.random_state)
        self.bootstrap_centers_ = []
        for b in range(self.n_bootstrap):
            idx = rng.integers(0, len(S), len(S))
            kb = KMeans(self.n_clusters, n_init=self.n_init, random_state=self.random_state + 1 + b).fit(S[idx])
            self.bootstrap_centers_.append(kb.cluster_centers_)
        return self

    @staticmethod
    def _nearest(S: np.ndarray, centers: np.ndarray) -> np.ndarray:
        return ((S[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)

    def predict(self, X):
        S = _shape(_profiles(X, "m12 predict"))
        archetype = self._nearest(S, self.centers_)
        stability = _mean_pairwise_ari([self._nearest(S, c) for c in self.bootstrap_centers_])
        return _dr_frame(X.index, archetype, self.archetypes_, stability)

    def baseline(self):
        return CalendarGrouping(peak_hours=self.peak_hours)

    def score(self, y_true, y_pred, meta=None) -> dict[str, float]:
        arch = np.asarray(y_pred["archetype"] if isinstance(y_pred, pd.DataFrame) else y_pred).ravel()
        stab = float(np.nanmean(y_pred["bootstrap_ari"])) if isinstance(y_pred, pd.DataFrame) else float("nan")
        labelled = 0 if y_true is None else int(pd.Series(np.asarray(y_true, dtype=object).ravel()).notna().sum())
        if labelled:
            yt = pd.Series(np.asarray(y_true, dtype=object).ravel())
            ok = yt.notna().to_numpy()
            ari = float(adjusted_rand_score(yt[ok].astype(str), arch[ok]))
        else:  # the twin records no customer type: ARI cannot be computed, and is not invented
            ari = float("nan")
        return {"ari": ari, "bootstrap_stability": stab, "n_archetypes": float(len(np.unique(arch))), "n_labelled": float(labelled)}

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        import plotly.graph_objects as go

        figs = {}
        if hasattr(self, "archetypes_"):
            prof = go.Figure()
            for row in self.archetypes_.itertuples():
                prof.add_trace(go.Scatter(x=list(range(HOURS)), y=row.profile_kw,
                                          name=f"A{row.archetype}: peak share {row.peak_share:.2f}, flex {row.flexible_kwh:.2f} kWh, {row.n_days} days"))
            a, b = self.peak_hours
            prof.add_vrect(x0=a - 0.5, x1=b - 0.5, fillcolor="red", opacity=0.08, line_width=0)
            prof.update_layout(title="m12: archetype mean profiles (training days; shaded = peak window)",
                               xaxis_title="local hour", yaxis_title="mean demand [kW]")
            figs["archetype_profiles"] = prof
        pred = predictions.get("model")
        if isinstance(pred, pd.DataFrame):
            if dataset.y_test is not None and pd.Series(np.asarray(dataset.y_test, dtype=object)).notna().any():
                other, title = pd.Series(np.asarray(dataset.y_test, dtype=object), name="customer type"), "customer type"
            else:
                base = predictions.get("baseline")
                other, title = pd.Series(np.asarray(base["archetype"]), name="calendar group"), "calendar group (no customer types in truth)"
            tab = pd.crosstab(pd.Series(pred["archetype"].to_numpy(), name="archetype"), other.reset_index(drop=True))
            figs["archetype_vs_truth"] = go.Figure(go.Heatmap(z=tab.to_numpy(), x=[str(c) for c in tab.columns],
                                                              y=[f"A{i}" for i in tab.index], colorscale="Blues"))
            figs["archetype_vs_truth"].update_layout(title=f"m12: test days, archetype vs {title}")
        return figs


def _season(month: np.ndarray) -> np.ndarray:
    """0 = Dec-Feb, 1 = Mar-May, 2 = Jun-Aug, 3 = Sep-Nov (a grouping; hemisphere does not matter)."""
    return (np.asarray(month, int) % 12) // 3


class CalendarGrouping(BaseEstimator):
    """Baseline of m12: group days by (weekday/weekend, season), ordered by the group's peak share.

    Needs ``weekday`` (0 = Monday) and ``month`` columns. Deterministic, so its bootstrap ARI is 1.
    """

    def __init__(self, peak_hours: tuple[int, int] = (17, 21)):
        self.peak_hours = peak_hours

    @staticmethod
    def _group(X) -> np.ndarray:
        missing = [c for c in CALENDAR_COLUMNS if c not in X.columns]
        if missing:
            raise InputError(f"m12 calendar baseline: X lacks {missing}")
        return 2 * _season(X["month"].to_numpy()) + (X["weekday"].to_numpy(int) >= 5)

    def fit(self, X, y=None):
        P = _profiles(X, "m12 calendar fit")
        g = self._group(X)
        table = _archetype_table(P, g, _peak_mask(self.peak_hours)).sort_values("peak_share", ascending=False)
        self.order_ = {int(lab): k for k, lab in enumerate(table["label"])}
        self.archetypes_ = table.assign(archetype=[self.order_[int(v)] for v in table["label"]]).drop(columns="label").reset_index(drop=True)
        return self

    def predict(self, X):
        g = self._group(X)
        nxt = len(self.order_)
        arch = np.array([self.order_.get(int(v), nxt + int(v)) for v in g])  # unseen groups get their own label
        return _dr_frame(X.index, arch, self.archetypes_, 1.0)


__all__ = [
    "EnergyLoss", "FixedLossFactor", "feeder_head_frame", "HEAD_FEATURES",
    "PowerFlowOptimization", "RuleDispatch", "resimulate", "rule_dispatch", "solve_day_lp", "day_cost",
    "SCHEDULE_COLUMNS", "FORECAST_COLUMNS", "DemandResponse", "CalendarGrouping", "PROFILE_COLUMNS",
]

from .energy_forecast import LoadForecast  # m09  # noqa: E402,F401
