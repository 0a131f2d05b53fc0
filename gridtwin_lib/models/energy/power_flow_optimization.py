"""m11 power-flow optimisation: a day-ahead linear programme (HiGHS through
:func:`scipy.optimize.linprog`) scheduling grid import, PV curtailment and battery
charge/discharge of one prosumer for 24 hours, minimising energy cost + a daily peak (demand)
charge. Not fitted. Judged by re-simulating each schedule against the *actual* day
(:func:`resimulate`). Baseline :class:`RuleDispatch`.

Units: kW, kWh, € (``eur``); hours are local clock hours.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ...errors import InputError
from ...physics.battery import (
    HOURS,
    SCHEDULE_COLUMNS,
    BatterySite,
    day_cost,
    greedy_dispatch,
    resimulate,
    rule_dispatch,
    solve_day_lp,
)
from ..base import Baseline, Dataset, GridModel, ModelSpec

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

    Parameters
    ----------
    battery_kwh, battery_kw : float
        Battery energy [kWh] and power [kW] ratings.
    round_trip_efficiency : float
        Round-trip efficiency (1).
    soc_min_frac, soc_max_frac, soc_init_frac : float
        State-of-charge bounds and start, as fractions of ``battery_kwh``.
    import_limit_kw, export_limit_kw : float
        Grid connection limits [kW].
    feed_in_per_kwh : float
        Feed-in tariff [€/kWh].
    peak_charge_per_kw_day : float
        Demand charge [€/kW per day] on the day's import peak.
    terminal_value_per_kwh : float or None
        Value [€/kWh] of the energy left at midnight (None: the day's cheapest price).
    overload_penalty_per_kwh : float
        Penalty [€/kWh] of import above the limit in the re-simulation.
    execution : {"realtime", "setpoints"}
        Re-simulate the plan with the real-time layer over it, or its set-points alone.

    Nothing is learned (no fitted attributes): ``fit`` checks the site (:meth:`battery_site`);
    ``predict`` solves the LP per day.
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

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
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

    def bootstrap_blocks(self, dataset):
        """Bootstrap blocks: the day (24 consecutive test rows), whatever the number of test days,
        since the per-day costs of ``bootstrap_terms`` sit on each day's first row."""
        return "day", np.arange(dataset.n_test) // HOURS

    def bootstrap_terms(self, y_true, y_pred, meta=None):
        """Per-row terms of the cost saving vs the rule for the vectorised bootstrap.

        Returns ``(terms, combine)``: ``terms`` (n, 2) holds each day's re-simulated cost [€] of
        the schedule and of the real-time rule on the first row (00:00) of that day, zeros on the
        other 23 rows (the bootstrap block is the day, so a day's rows are drawn together);
        ``combine(sums)`` is ``(rule - schedule) / |rule|``, i.e. ``evaluate``'s
        ``cost_saving_vs_rule`` on any resample of days.
        """
        if meta is None or "price_per_kwh" not in meta:
            raise InputError("m11 score: meta must carry price_per_kwh for every row")
        ev = self.evaluate_days(y_true, y_pred, meta)
        terms = np.zeros((len(ev["cost"]) * HOURS, 2))
        terms[::HOURS, 0] = ev["cost"]
        terms[::HOURS, 1] = ev["rule_cost"]

        def combine(sums: np.ndarray) -> np.ndarray:
            sums = np.atleast_2d(np.asarray(sums, float))
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(sums[:, 1] != 0, (sums[:, 1] - sums[:, 0]) / np.abs(sums[:, 1]), np.nan)

        return terms, combine

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


class _RuleSchedule(_DispatchParams, Baseline):
    """What m11's rule baselines share: the LP's parameters (``for_model``), nothing to learn, and
    a schedule in the LP's format from :meth:`schedule` on the same forecast the LP sees."""

    what = "m11 rule"

    @classmethod
    def for_model(cls, model):
        return cls(**model.get_params())

    def fit(self, X=None, y=None):
        self.battery_site()
        return self

    def schedule(self, d: dict[str, np.ndarray]):  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, X):
        d = _days(X, self.what)
        return _schedule_frame(self.schedule(d), getattr(X, "index", None), np.zeros(d["load_kw"].shape[0]))


class RuleDispatch(_RuleSchedule):
    """Baseline of m11: :func:`rule_dispatch` applied to the rows it is given (the same forecast
    the LP sees), returning a schedule in the LP's format. Same parameters as the LP."""

    name = "rule: charge on PV surplus, discharge in the peak-price hours"

    def schedule(self, d):
        return rule_dispatch(self.battery_site(), d["load_kw"], d["pv_kw"], d["price_per_kwh"])


class SelfConsumptionRule(_RuleSchedule):
    """Ladder baseline of m11: the factory default of home batteries, maximise self-consumption:
    charge from the PV surplus, discharge whenever the load exceeds PV (any hour), on the same
    forecast the LP sees; schedule in the LP's format. Same parameters as the LP."""

    name = "self-consumption rule (charge on PV surplus, discharge whenever load > PV)"

    what = "m11 self-consumption rule"

    def schedule(self, d):
        always = np.ones_like(d["load_kw"], bool)
        return greedy_dispatch(self.battery_site(), d["load_kw"], d["pv_kw"], always, ~always)


class TimeOfUseRule(_RuleSchedule):
    """Ladder baseline of m11: time-of-use arbitrage: charge from the grid in the night window of the
    day's cheapest-price hours (those before the first dearer hour) and from any PV surplus,
    discharge to cover the load in every hour dearer than the cheapest (planned on the same forecast
    as the LP); schedule in the LP's format. Same parameters as the LP."""

    name = "time-of-use rule (grid-charge in the cheapest hours, discharge in the dearer ones)"

    what = "m11 time-of-use rule"

    def schedule(self, d):
        price = d["price_per_kwh"]
        cheapest = price <= price.min(axis=1, keepdims=True) + 1e-9
        # grid-charge in the night window of cheapest hours that precedes the day's first dearer hour
        night = cheapest & (np.arange(HOURS)[None, :] < np.argmax(~cheapest, axis=1)[:, None])
        return greedy_dispatch(self.battery_site(), d["load_kw"], d["pv_kw"], ~cheapest, night)


# --------------------------------------------------------------------------- serving


def serve_plan(est, load_kw: np.ndarray, pv_kw: np.ndarray, price_per_kwh: np.ndarray):
    """How the inference engine serves this model (role ``day_plan``).

    Parameters
    ----------
    est : the fitted :class:`PowerFlowOptimization`, or None (the LP with its default site is
        solved all the same: it needs no fit).
    load_kw, pv_kw : 24 hourly forecasts [kW]; price_per_kwh : 24 hourly prices [€/kWh].

    Returns
    -------
    ``(solve, soc0_kwh)``: a function solving the day's LP (the engine runs it under a time
    limit) and the battery's initial state of charge [kWh].
    """
    lp = est if est is not None else PowerFlowOptimization()
    X = pd.DataFrame({"day": 0, "hour": np.arange(HOURS), "load_kw": load_kw, "pv_kw": pv_kw, "price_per_kwh": price_per_kwh})
    return (lambda: lp.predict(X)), float(lp.battery_site().s0)


SERVING = serve_plan
