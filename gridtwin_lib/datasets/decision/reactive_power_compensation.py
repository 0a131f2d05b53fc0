"""Dataset of m13 (reactive power compensation).

``reactive_power_compensation`` (m13)
    Feeder twin (``feeder_timeseries``, source ``sim:m13_feeder``). X: the uncompensated
    feeder-head readings (``three_phase`` at the three transformers) through
    :func:`gridtwin_lib.features.compute` and the loss model's
    :func:`~gridtwin_lib.models.energy.energy_loss.feeder_head_frame`. The operating state of each step is
    rebuilt from the truth table ``feeder_losses`` (load_kw, pv_kw totals; see
    :func:`~gridtwin_lib.models.decision.reactive_power_compensation.feeder_state`), and the label is what the
    optimiser :func:`~gridtwin_lib.models.decision.reactive_power_compensation.optimise_q` (AC power flows of the
    same network) picks for it. PV output is not an input: the twin records it only as truth.
    The configured runs have stressed days (``stress_every_days``), so that on part of the states a
    voltage limit or a set-point bound binds; ``meta.binding`` marks those rows
    (:func:`~gridtwin_lib.models.decision.reactive_power_compensation.limits_bind`) and ``params``
    logs their share in training and test.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from ...errors import InputError
from ...models.base import Dataset
from ...models.decision import reactive_power_compensation as M
from ..energy import energy_loss as E

#: the feeder run it reads by default (runs per size: ``conf/base/models/decision/reactive_power_compensation.yaml``)
M13_SOURCE = "sim:m13_feeder"



def _iso(x) -> str:
    return pd.Timestamp(x).isoformat()


def reactive_power_compensation(store, *, source: str = M13_SOURCE, test_fraction: float = 0.3, utc_offset_h: float = 10.0,
                                q_bounds_kvar: tuple[float, float] = M.Q_BOUNDS_KVAR, v_limits_pu: tuple[float, float] = M.V_LIMITS_PU,
                                start: datetime | str | None = None, end: datetime | str | None = None) -> Dataset:
    """Feeder-head readings -> the optimiser's var set-point [kvar] and loss reduction [kW].

    ``utc_offset_h`` must be the twin's (local hour of its load profiles, default 10).
    y: q_opt_kvar, loss_reduction_kw, losses_opt_kw, losses_noq_kw, violation_opt_pu;
    meta: ts, feeder, local_hour, load_kw, pv_kw (the state), solve_s, n_power_flows, v limits,
    binding (the optimum sits on a voltage limit or a set-point bound).
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
    data["binding"] = M.limits_bind(data["q_opt_kvar"], data["vmin_opt_pu"], data["vmax_opt_pu"], q_bounds_kvar, v_limits_pu)
    times = np.sort(data["ts"].unique())
    cut = times[int(np.floor((1 - test_fraction) * times.size))]
    train, test = data[data["ts"] < cut], data[data["ts"] >= cut]
    ycols = ["q_opt_kvar", "loss_reduction_kw", "losses_opt_kw", "losses_noq_kw", "violation_opt_pu"]
    mcols = ["ts", "feeder", "local_hour", "load_kw", "pv_kw", "solve_s", "n_power_flows", "v_min_pu", "v_max_pu", "binding"]
    part = lambda f, c: f[c].reset_index(drop=True)  # noqa: E731
    return Dataset(
        name="m13_reactive_power_compensation",
        X_train=part(train, list(M.M13_COLUMNS)), y_train=part(train, ycols), X_test=part(test, list(M.M13_COLUMNS)), y_test=part(test, ycols),
        meta_train=part(train, mcols), meta_test=part(test, mcols),
        split={"train": [_iso(train["ts"].min()), _iso(train["ts"].max())], "test": [_iso(test["ts"].min()), _iso(test["ts"].max())],
               "feeders": sorted(data["feeder"].unique().tolist())},
        params={"source": source, "test_fraction": test_fraction, "utc_offset_h": utc_offset_h, "q_bounds_kvar": list(q_bounds_kvar),
                "v_limits_pu": list(v_limits_pu), "power_flows": int(data["n_power_flows"].sum()),
                "binding_share_train": float(train["binding"].mean()), "binding_share_test": float(test["binding"].mean())},
        description="uncompensated feeder-head I, P, Q, V -> loss-minimising PV-inverter var set-point (power-flow 1-D search) under voltage limits",
    )
