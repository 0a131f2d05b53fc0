"""Bootstrap seconds of m01, m09 and m11 with the model's bootstrap_terms vs without them (main's generic
path: per-block or per-replicate evaluate), same data, same run, B = 1000, seed 0.

Run: PYTHONPATH=$PWD nice -n 10 .venv/bin/python tests/benchmarks/bench_bootstrap_terms.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from gridtwin_lib.datasets.energy import load_forecast as dsm
from gridtwin_lib.datasets.energy import power_flow_optimization as D_pfo
from gridtwin_lib.datasets.monitoring import voltage_anomaly as D_va
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import GridModel, attach_uncertainty, fit_and_evaluate
from gridtwin_lib.models.energy import power_flow_optimization as M_pfo
from gridtwin_lib.models.energy.load_forecast import LoadForecast
from gridtwin_lib.models.monitoring import voltage_anomaly as M_va
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

tmp = Path(tempfile.mkdtemp())


def m01():
    s = Store(tmp / "m01")
    run_scenario("mixed", duration="1d", resolution="1s", seed=11, devices=1, source=D_va.M01_SOURCE, store=s, progress=False)
    return M_va.VoltageAnomaly(n_estimators=30, random_state=3), D_va.voltage_anomaly(s, test_days=0.3)


def m09():
    s = Store(tmp / "m09")
    run = dict(registry.get("m09_load_forecast").simulation_runs("smoke")[0])
    run_scenario(**run, store=s, progress=False)
    return LoadForecast(algorithm="prophet", lstm_units=8, lstm_epochs=2, onestep_units=4, onestep_epochs=1, prophet_yearly=False, random_state=3), dsm.load_forecast_sim(s, source=run["source"], test_days=7)


def m11():
    s = Store(tmp / "m11")
    run_scenario("meter", duration="12d", resolution="15m", seed=5, devices=1, overrides={"base_kw": 1.0, "outages_per_day": 0.0}, store=s, progress=False, source="sim:t_load")
    run_scenario("pv_normal", duration="13d", resolution="1h", seed=5, devices=1, overrides={}, store=s, progress=False, source="sim:t_pv")
    return M_pfo.PowerFlowOptimization(), D_pfo.power_flow_optimization(s, load_source="sim:t_load", pv_source="sim:t_pv", timezone_name="Etc/GMT-10", train_start="2025-01-14", test_start="2025-01-16", test_end="2025-01-17")


for name, make in (("m01", m01), ("m09", m09), ("m11", m11)):
    model, ds = make()
    model, _, ev = fit_and_evaluate(model, ds, bootstrap=False)
    attach_uncertainty(model, ds, ev, n_replicates=1000, seed=0)
    u1 = ev.uncertainty
    orig = type(model).bootstrap_terms
    type(model).bootstrap_terms = GridModel.bootstrap_terms  # main's behaviour: no terms
    attach_uncertainty(model, ds, ev, n_replicates=1000, seed=0)
    u0 = ev.uncertainty
    type(model).bootstrap_terms = orig
    for tag, u in (("before", u0), ("after", u1)):
        print(f"{name} {tag}: method={u.method} block={u.block_kind}x{u.n_blocks} B={u.n_replicates} seconds={u.seconds:.3f} "
              f"model={u.model.value:.4f} [{u.model.low:.4f}, {u.model.high:.4f}] note={u.note!r}", flush=True)
