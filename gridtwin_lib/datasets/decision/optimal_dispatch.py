"""Dataset of m16 (optimal dispatch).

``optimal_dispatch`` (m16)
    The day-ahead LP's days (:func:`gridtwin_lib.datasets.energy.power_flow_optimization.power_flow_optimization`:
    UCI load, the LP's PV twin, forecasts made before each day, TOU tariff). For every (day, hour) the state is the SoC
    reached by executing the LP's own set-points on the actual day so far (the LP's ``resimulate``);
    the label is the first-hour battery power of the LP solved over the next 24 h from that SoC
    on the forecast (:func:`~gridtwin_lib.models.decision.optimal_dispatch.lp_setpoint`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...models.base import Dataset
from ...models.decision import optimal_dispatch as M
from ...models.energy.power_flow_optimization import PowerFlowOptimization
from ...physics.battery import HOURS, BatterySite
from ..energy import power_flow_optimization as E

#: builders that also need the UCI data ingested (``gridtwin ingest uci``): not a simulation. Its simulator
#: runs are the day plan's (``conf/base/models/decision/optimal_dispatch.yaml``)
NEEDS_UCI = ("optimal_dispatch",)
#: m16 date ranges (local days) by default; per size: its configuration file
M16_FULL = {"train_start": "2009-03-01", "test_start": "2009-09-01", "test_end": "2009-10-31"}



def _iso(x) -> str:
    return pd.Timestamp(x).isoformat()



def _lp_trajectories(site: BatterySite, fc: dict[str, np.ndarray], actual: dict[str, np.ndarray]):
    """Run the LP in the loop on whole days: per hour, solve from the SoC reached so far on the actual day."""
    days = fc["load_kw"].shape[0]
    plan = np.zeros((days, HOURS))
    soc = np.full((days, HOURS), site.s0)
    secs = np.zeros((days, HOURS))
    for h in range(HOURS):
        if h:
            soc[:, h] = M.execute(site, plan, actual["load_kw"], actual["pv_kw"], actual["price_per_kwh"])["soc_kwh"][:, h - 1]
        lf, pf, pr = (np.roll(fc[k], -h, axis=1) for k in ("load_kw", "pv_kw", "price_per_kwh"))
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
