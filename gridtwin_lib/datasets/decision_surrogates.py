"""Datasets of the decision surrogates m13 and m16.

``reactive_power_compensation`` (m13)
    Feeder twin (``feeder_timeseries``, source ``sim:m13_feeder``). X: the uncompensated
    feeder-head readings (``three_phase`` at the three transformers) through
    :func:`gridtwin_lib.features.compute` and m10's
    :func:`~gridtwin_lib.models.energy.feeder_head_frame`. The operating state of each step is
    rebuilt from the truth table ``feeder_losses`` (load_kw, pv_kw totals; see
    :func:`~gridtwin_lib.models.decision_surrogates.feeder_state`), and the label is what the
    optimiser :func:`~gridtwin_lib.models.decision_surrogates.optimise_q` (AC power flows of the
    same network) picks for it. PV output is not an input: the twin records it only as truth.
``optimal_dispatch`` (m16)
    m11's days (:func:`gridtwin_lib.datasets.energy.power_flow_optimization`: UCI load, ``sim:m11_pv``
    PV, forecasts made before each day, TOU tariff). For every (day, hour) the state is the SoC
    reached by executing the LP's own set-points on the actual day so far (m11's ``resimulate``);
    the label is the first-hour battery power of m11's LP solved over the next 24 h from that SoC
    on the forecast (:func:`~gridtwin_lib.models.decision_surrogates.lp_setpoint`).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from ..errors import InputError
from ..models import decision_surrogates as M
from ..models.base import Dataset
from ..models.energy import HOURS, PowerFlowOptimization
from ..physics.battery import BatterySite
from . import energy as E

M13_SOURCE = "sim:m13_feeder"
_M11_PV = [s for s in E.SIMULATIONS["full"] if s["source"] == E.M11_PV_SOURCE]
_M11_PV_SMOKE = [s for s in E.SIMULATIONS["smoke"] if s["source"] == E.M11_PV_SOURCE]

SIMULATIONS = {
    # sim:m11_pv is m11's run spec (same source): running it twice into one store is skipped by the caller or harmless
    "full": [{"scenario": "feeder_timeseries", "duration": "6d", "resolution": "1h", "seed": 1313, "devices": 1,
              "overrides": {}, "source": M13_SOURCE}, *_M11_PV],
    "smoke": [{"scenario": "feeder_timeseries", "duration": "1d", "resolution": "1h", "seed": 1313, "devices": 1,
               "overrides": {}, "source": M13_SOURCE}, *_M11_PV_SMOKE],
}
NEEDS_UCI = ("optimal_dispatch",)
#: m16 date ranges (local days) for full and smoke size
M16_FULL = {"train_start": "2009-03-01", "test_start": "2009-09-01", "test_end": "2009-10-31"}
M16_SMOKE = {"train_start": "2009-01-14", "test_start": "2009-01-29", "test_end": "2009-02-03"}


def _iso(x) -> str:
    return pd.Timestamp(x).isoformat()


def reactive_power_compensation(store, *, source: str = M13_SOURCE, test_fraction: float = 0.3, utc_offset_h: float = 10.0,
                                q_bounds_kvar: tuple[float, float] = M.Q_BOUNDS_KVAR, v_limits_pu: tuple[float, float] = M.V_LIMITS_PU,
                                start: datetime | str | None = None, end: datetime | str | None = None) -> Dataset:
    """Feeder-head readings -> the optimiser's var set-point [kvar] and loss reduction [kW].

    ``utc_offset_h`` must be the twin's (local hour of its load profiles, default 10).
    y: q_opt_kvar, loss_reduction_kw, losses_opt_kw, losses_noq_kw, violation_opt_pu;
    meta: ts, feeder, local_hour, load_kw, pv_kw (the state), solve_s, n_power_flows, v limits.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"m13 dataset: test_fraction must be in (0, 1) (got {test_fraction})")
    if not q_bounds_kvar[0] <= 0 <= q_bounds_kvar[1] or not v_limits_pu[0] < 1 < v_limits_pu[1]:
        raise InputError(f"m13 dataset: q_bounds_kvar must contain 0 and v_limits_pu 1.0 (got {q_bounds_kvar}, {v_limits_pu})")
    data, _ = E.feeder_states(store, source, "m13", resolution="1h", start=start, end=end)
    data = data.drop(columns=["losses_kw"])  # the state only: the optimiser re-solves each one
    if len(data) < 4:
        raise InputError(f"m13 dataset: {len(data)} feeder states in {source!r}; simulate at least a few hours")
    ts = pd.to_datetime(data["ts"], utc=True)
    data["local_hour"] = (ts.dt.hour + ts.dt.minute / 60 + utc_offset_h) % 24
    opt = pd.DataFrame([M.optimise_q(h, lk, pk, q_bounds_kvar, v_limits_pu)
                        for h, lk, pk in zip(data["local_hour"], data["load_kw"], data["pv_kw"])])
    data = pd.concat([data, opt], axis=1)
    data["loss_reduction_kw"] = data["losses_noq_kw"] - data["losses_opt_kw"]
    data["v_min_pu"], data["v_max_pu"] = v_limits_pu
    times = np.sort(data["ts"].unique())
    cut = times[int(np.floor((1 - test_fraction) * times.size))]
    train, test = data[data["ts"] < cut], data[data["ts"] >= cut]
    ycols = ["q_opt_kvar", "loss_reduction_kw", "losses_opt_kw", "losses_noq_kw", "violation_opt_pu"]
    mcols = ["ts", "feeder", "local_hour", "load_kw", "pv_kw", "solve_s", "n_power_flows", "v_min_pu", "v_max_pu"]
    part = lambda f, c: f[c].reset_index(drop=True)  # noqa: E731
    return Dataset(
        name="m13_reactive_power_compensation",
        X_train=part(train, list(M.M13_COLUMNS)), y_train=part(train, ycols), X_test=part(test, list(M.M13_COLUMNS)), y_test=part(test, ycols),
        meta_train=part(train, mcols), meta_test=part(test, mcols),
        split={"train": [_iso(train["ts"].min()), _iso(train["ts"].max())], "test": [_iso(test["ts"].min()), _iso(test["ts"].max())],
               "feeders": sorted(data["feeder"].unique().tolist())},
        params={"source": source, "test_fraction": test_fraction, "utc_offset_h": utc_offset_h, "q_bounds_kvar": list(q_bounds_kvar),
                "v_limits_pu": list(v_limits_pu), "power_flows": int(data["n_power_flows"].sum())},
        description="uncompensated feeder-head I, P, Q, V -> loss-minimising PV-inverter var set-point (power-flow 1-D search) under voltage limits",
    )


def _lp_trajectories(site: BatterySite, fc: dict[str, np.ndarray], actual: dict[str, np.ndarray]):
    """Run the LP in the loop on whole days: per hour, solve from the SoC reached so far on the actual day."""
    days = fc["load_kw"].shape[0]
    plan = np.zeros((days, HOURS))
    soc = np.full((days, HOURS), site.s0)
    secs = np.zeros((days, HOURS))
    for h in range(HOURS):
        if h:
            soc[:, h] = M.execute(site, plan, actual["load_kw"], actual["pv_kw"], actual["price_per_kwh"])["soc_kwh"][:, h - 1]
        roll = lambda a: np.roll(a, -h, axis=1)  # noqa: E731
        lf, pf, pr = roll(fc["load_kw"]), roll(fc["pv_kw"]), roll(fc["price_per_kwh"])
        for d in range(days):
            plan[d, h], secs[d, h] = M.lp_setpoint(site, soc[d, h], lf[d], pf[d], pr[d])
    return plan, soc, secs


def optimal_dispatch(store, *, m11_params: dict | None = None, train_start: str = M16_FULL["train_start"],
                     test_start: str = M16_FULL["test_start"], test_end: str = M16_FULL["test_end"], **m11_dataset) -> Dataset:
    """(day, hour) states -> the LP's first-hour battery power [kW, + = discharge].

    ``m11_dataset``: further keyword arguments of :func:`gridtwin_lib.datasets.energy.power_flow_optimization`
    (load/pv sources, forecasts, tariff); ``m11_params``: battery/site parameters of
    :class:`PowerFlowOptimization` (pass the same to the model). X: :func:`dispatch_features`;
    y: battery_kw; meta: date, hour, actual_load_kw, actual_pv_kw, price_per_kwh, solve_s.
    """
    base = E.power_flow_optimization(store, train_start=train_start, test_start=test_start, test_end=test_end, **m11_dataset)
    site = PowerFlowOptimization(**(m11_params or {})).battery_site()

    def build(X, y, meta):
        rs = lambda a: np.asarray(a, float).reshape(-1, HOURS)  # noqa: E731
        fc = {c: rs(X[c]) for c in ("load_kw", "pv_kw", "price_per_kwh")}
        act = {"load_kw": rs(y["load_kw"]), "pv_kw": rs(y["pv_kw"]), "price_per_kwh": fc["price_per_kwh"]}
        plan, soc, secs = _lp_trajectories(site, fc, act)
        hours = np.tile(np.arange(HOURS), plan.shape[0])
        rep = lambda a: np.repeat(a, HOURS, axis=0)  # noqa: E731
        feats = M.dispatch_features(soc.ravel(), hours, rep(fc["load_kw"]), rep(fc["pv_kw"]), rep(fc["price_per_kwh"]))
        m = pd.DataFrame({"date": meta["date"].to_numpy(), "hour": hours, "actual_load_kw": y["load_kw"].to_numpy(float),
                          "actual_pv_kw": y["pv_kw"].to_numpy(float), "price_per_kwh": meta["price_per_kwh"].to_numpy(float),
                          "solve_s": secs.ravel()})
        return feats, pd.DataFrame({"battery_kw": plan.ravel()}), m

    Xtr, ytr, mtr = build(base.X_train, base.y_train, base.meta_train)
    Xte, yte, mte = build(base.X_test, base.y_test, base.meta_test)
    return Dataset(
        name="m16_optimal_dispatch", X_train=Xtr, y_train=ytr, X_test=Xte, y_test=yte, meta_train=mtr, meta_test=mte,
        split=dict(base.split), params={**base.params, "m11_params": dict(m11_params or {}), "lp_solves": int(Xtr.shape[0] + Xte.shape[0])},
        description="state at each local hour (SoC on the LP's executed trajectory, 24 h forecast ahead) -> LP first-hour battery kW (+ = discharge)",
    )


__all__ = ["reactive_power_compensation", "optimal_dispatch", "SIMULATIONS", "NEEDS_UCI", "M13_SOURCE", "M16_FULL", "M16_SMOKE"]
