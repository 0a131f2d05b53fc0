"""m11 power-flow optimisation: a day-ahead linear programme (HiGHS through
:func:`scipy.optimize.linprog`) scheduling grid import, PV curtailment and battery
charge/discharge of one prosumer for 24 hours, minimising energy cost + a daily peak (demand)
charge. Not fitted. Judged by re-simulating each schedule against the *actual* day
(:func:`resimulate`). Baseline :class:`RuleDispatch`.

Units: kW, kWh, € (``eur``); hours are local clock hours.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linprog
from sklearn.base import BaseEstimator

from ...errors import InputError
from ..base import Dataset, GridModel, ModelSpec

SCHEDULE_COLUMNS = ("grid_import_kw", "pv_curtailed_kw", "battery_charge_kw", "battery_discharge_kw", "soc_kwh")
FORECAST_COLUMNS = ("load_kw", "pv_kw", "price_per_kwh")
HOURS = 24
_TOL = 1e-6


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


class _Site:
    """Battery, connection and tariff parameters shared by the LP, the rule and the re-simulation."""

    def __init__(self, m: "PowerFlowOptimization"):
        if not 0 < m.round_trip_efficiency <= 1:
            raise InputError(f"m11: round_trip_efficiency must be in (0, 1] (got {m.round_trip_efficiency})")
        if not 0 <= m.soc_min_frac <= m.soc_init_frac <= m.soc_max_frac <= 1:
            raise InputError("m11: need 0 <= soc_min_frac <= soc_init_frac <= soc_max_frac <= 1")
        if m.battery_kwh < 0 or m.battery_kw < 0 or m.import_limit_kw <= 0 or m.export_limit_kw < 0:
            raise InputError("m11: battery_kwh, battery_kw, export_limit_kw must be >= 0 and import_limit_kw > 0")
        self.eta = float(np.sqrt(m.round_trip_efficiency))  # one way
        self.e_max, self.p_max = float(m.battery_kwh), float(m.battery_kw)
        self.s_min, self.s_max = m.soc_min_frac * self.e_max, m.soc_max_frac * self.e_max
        self.s0 = m.soc_init_frac * self.e_max
        self.imp_lim, self.exp_lim = float(m.import_limit_kw), float(m.export_limit_kw)
        self.feed_in, self.peak_charge = float(m.feed_in_per_kwh), float(m.peak_charge_per_kw_day)
        self.terminal = m.terminal_value_per_kwh
        self.penalty = float(m.overload_penalty_per_kwh)
        if m.execution not in ("realtime", "setpoints"):
            raise InputError(f"m11: execution must be 'realtime' (plan + real-time layer) or 'setpoints' (got {m.execution!r})")

    def terminal_value(self, price: np.ndarray) -> np.ndarray:
        """€/kWh of energy left in the battery at midnight (per day): the day's cheapest price by default."""
        return price.min(axis=1) if self.terminal is None else np.full(price.shape[0], float(self.terminal))


def day_cost(site: _Site, grid_kw: np.ndarray, soc_end: np.ndarray, price: np.ndarray) -> np.ndarray:
    """€ per day: energy bought - feed-in sold + peak charge x max import, plus the change of
    stored energy at midnight: a deficit costs ``v / eta`` per kWh (refilling it), a surplus is
    worth ``v * eta`` (what it displaces), ``v`` = :meth:`_Site.terminal_value`."""
    imp, exp = np.clip(grid_kw, 0, None), np.clip(-grid_kw, 0, None)
    v = site.terminal_value(price)
    return ((price * imp).sum(axis=1) - site.feed_in * exp.sum(axis=1) + site.peak_charge * imp.max(axis=1)
            + v / site.eta * np.clip(site.s0 - soc_end, 0, None) - v * site.eta * np.clip(soc_end - site.s0, 0, None))


def solve_day_lp(site: _Site, load, pv, price) -> tuple[dict[str, np.ndarray], float]:
    """One day's LP (HiGHS). Variables per hour: import, export, curtailment, charge, discharge,
    SoC (end of hour), import overload slack; plus the day's peak import. Returns the schedule
    arrays and the solver's wall time [s]."""
    T = HOURS
    n = 7 * T + 1
    imp, exp, cur, ch, dis, soc, slk = (np.arange(k * T, (k + 1) * T) for k in range(7))
    peak = 7 * T
    r = np.arange(T)
    eq_rows = np.concatenate([r, r, r, r, r, T + r, T + r, T + r, T + r[1:]])
    eq_cols = np.concatenate([imp, exp, cur, ch, dis, soc, ch, dis, soc[:-1]])
    eq_vals = np.concatenate([np.ones(T), -np.ones(T), -np.ones(T), -np.ones(T), np.ones(T),
                              np.ones(T), -site.eta * np.ones(T), np.ones(T) / site.eta, -np.ones(T - 1)])
    A_eq = sparse.csr_matrix((eq_vals, (eq_rows, eq_cols)), shape=(2 * T, n))
    b_eq = np.concatenate([load - pv, [site.s0], np.zeros(T - 1)])
    ub_rows = np.concatenate([r, r, T + r, T + r])
    ub_cols = np.concatenate([imp, np.full(T, peak), imp, slk])
    ub_vals = np.concatenate([np.ones(T), -np.ones(T), np.ones(T), -np.ones(T)])
    A_ub = sparse.csr_matrix((ub_vals, (ub_rows, ub_cols)), shape=(2 * T, n))
    b_ub = np.concatenate([np.zeros(T), np.full(T, site.imp_lim)])
    lo, hi = np.zeros(n), np.full(n, np.inf)
    hi[exp], hi[cur], hi[ch], hi[dis] = site.exp_lim, pv, site.p_max, site.p_max
    lo[soc], hi[soc] = site.s_min, site.s_max
    lo[soc[-1]] = max(site.s_min, site.s0)  # end the day at least as full as it started
    c = np.zeros(n)
    c[imp], c[exp], c[slk], c[peak] = price, -site.feed_in, site.penalty, site.peak_charge
    c[ch] = c[dis] = 1e-4  # tie-break: no needless cycling
    c[soc[-1]] -= site.terminal_value(price[None, :])[0] * site.eta  # value of energy kept (see day_cost)
    t0 = time.perf_counter()
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=np.column_stack([lo, hi]), method="highs")
    elapsed = time.perf_counter() - t0
    if res.status != 0:
        raise RuntimeError(f"m11: HiGHS did not solve a day (status {res.status}: {res.message})")
    x = res.x
    out = {"grid_import_kw": x[imp] - x[exp], "pv_curtailed_kw": x[cur], "battery_charge_kw": x[ch],
           "battery_discharge_kw": x[dis], "soc_kwh": x[soc]}
    return out, elapsed


def rule_dispatch(site: _Site, load: np.ndarray, pv: np.ndarray, price: np.ndarray) -> dict[str, np.ndarray]:
    """The rule, hour by hour on (days, 24) arrays: charge from PV surplus; discharge to cover the
    load in the peak-price hours (price = the day's highest); PV beyond the export limit is curtailed.
    It is causal: each hour uses only that hour's values, so run on actual data it is a real-time
    controller."""
    days = load.shape[0]
    soc = np.full(days, site.s0)
    out = {k: np.zeros((days, HOURS)) for k in SCHEDULE_COLUMNS}
    is_peak = price >= price.max(axis=1, keepdims=True) - 1e-9
    for h in range(HOURS):
        surplus = pv[:, h] - load[:, h]
        ch = np.where(surplus > 0, np.minimum.reduce([np.clip(surplus, 0, None), np.full(days, site.p_max),
                                                      (site.s_max - soc) / site.eta]), 0.0)
        dis = np.where((surplus < 0) & is_peak[:, h], np.minimum.reduce([-surplus, np.full(days, site.p_max),
                                                                          (soc - site.s_min) * site.eta]), 0.0)
        ch, dis = np.clip(ch, 0, None), np.clip(dis, 0, None)
        net = load[:, h] - pv[:, h] + ch - dis
        cur = np.minimum(pv[:, h], np.clip(-site.exp_lim - net, 0, None))
        soc = soc + site.eta * ch - dis / site.eta
        for k, v in zip(SCHEDULE_COLUMNS, (net + cur, cur, ch, dis, soc)):
            out[k][:, h] = v
    return out


def resimulate(site: _Site, schedule: dict[str, np.ndarray], load: np.ndarray, pv: np.ndarray,
               price: np.ndarray | None = None, realtime: bool = True) -> dict[str, np.ndarray]:
    """Play a day-ahead schedule against the ACTUAL day (arrays (days, 24)); the plan is not revised.

    The battery takes the planned set-point (charge - discharge), limited by physics (power,
    SoC). With ``realtime`` a fixed real-time layer, using only the current hour's measured load
    and PV, executes the plan the way a site controller would: it never discharges into export;
    it holds the import at the planned level in the peak-price hours and at the plan's daily
    peak otherwise, cutting planned charging first, then discharging extra; and it stores PV
    that would be exported. Then, always, a safety layer: above the import limit it cuts
    charging, then discharges; beyond the export limit it cuts discharging, charges, then
    curtails PV. The grid takes the rest. The same function judges every schedule (LP, rule).
    Returns the realised arrays, ``override`` (hours the battery did not do what was planned)
    and ``violation`` (hours outside a limit: import, export, SoC, battery power, curtailment).
    """
    days = load.shape[0]
    soc = np.full(days, site.s0)
    keys = (*SCHEDULE_COLUMNS, "override", "violation")
    out = {k: np.zeros((days, HOURS)) for k in keys}
    plan = schedule["battery_charge_kw"] - schedule["battery_discharge_kw"]
    planned_grid = schedule["grid_import_kw"]
    planned_peak = np.clip(planned_grid, 0, None).max(axis=1)
    is_peak = (np.zeros((days, HOURS), bool) if price is None
               else price >= price.max(axis=1, keepdims=True) - 1e-9)
    p_max = np.full(days, site.p_max)
    for h in range(HOURS):
        b = plan[:, h]
        room, stored = (site.s_max - soc) / site.eta, (soc - site.s_min) * site.eta
        ch = np.clip(np.minimum.reduce([np.clip(b, 0, None), p_max, room]), 0, None)
        dis = np.clip(np.minimum.reduce([np.clip(-b, 0, None), p_max, stored]), 0, None)
        ch0, dis0 = ch.copy(), dis.copy()
        base = load[:, h] - pv[:, h]
        if realtime:
            dis = np.minimum(dis, np.clip(base, 0, None))  # no discharging into export
            target = np.where(is_peak[:, h], np.clip(planned_grid[:, h], 0, None), planned_peak)
            over = np.clip(base + ch - dis - target, 0, None)
            cut = np.minimum(ch, over)
            ch, over = ch - cut, over - cut
            dis = dis + np.clip(np.minimum.reduce([over, site.p_max - dis, stored - dis]), 0, None)
            spill = np.clip(-(base + ch - dis), 0, None)  # would be exported: store it
            ch = ch + np.where(dis > 0, 0.0, np.clip(np.minimum.reduce([spill, site.p_max - ch, room - ch]), 0, None))
        over = np.clip(base + ch - dis - site.imp_lim, 0, None)  # safety: import limit
        cut = np.minimum(ch, over)
        ch, over = ch - cut, over - cut
        dis = dis + np.clip(np.minimum.reduce([over, site.p_max - dis, stored - dis]), 0, None)
        under = np.clip(-site.exp_lim - (base + ch - dis), 0, None)  # safety: export limit
        cut = np.minimum(dis, under)
        dis, under = dis - cut, under - cut
        extra = np.clip(np.minimum.reduce([under, site.p_max - ch, room - ch]), 0, None)
        ch, under = ch + extra, under - extra
        cur = np.minimum(pv[:, h], under)
        net = base + cur + ch - dis
        soc = soc + site.eta * ch - dis / site.eta
        bad = ((net > site.imp_lim + _TOL) | (net < -site.exp_lim - _TOL) | (soc < site.s_min - _TOL) | (soc > site.s_max + _TOL)
               | (ch > site.p_max + _TOL) | (dis > site.p_max + _TOL) | (cur > pv[:, h] + _TOL) | ((ch > _TOL) & (dis > _TOL)))
        moved = (np.abs(ch - ch0) > 1e-6) | (np.abs(dis - dis0) > 1e-6)
        for k, v in zip(keys, (net, cur, ch, dis, soc, moved, bad)):
            out[k][:, h] = v
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

    def _site(self) -> _Site:
        return _Site(self)

    def fit(self, X=None, y=None):
        """No-op (an optimiser learns nothing); checks the parameters."""
        self._site()
        return self

    def predict(self, X):
        site = self._site()
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
        site = self._site()
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
        _Site(self)
        return self

    def predict(self, X):
        d = _days(X, "m11 rule")
        sched = rule_dispatch(_Site(self), d["load_kw"], d["pv_kw"], d["price_per_kwh"])
        return _schedule_frame(sched, getattr(X, "index", None), np.zeros(d["load_kw"].shape[0]))


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
    return (lambda: lp.predict(X)), float(lp._site().s0)


SERVING = serve_plan
