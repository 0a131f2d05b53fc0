"""The feeder twin: power-flow losses, energy balance, voltages, measurements at the transformers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from gridtwin_lib.physics.powerflow import reference_network, solve
from gridtwin_lib.simulate import SimulationError, prepare, simulate


@pytest.fixture(scope="module")
def run():
    return simulate("feeder_timeseries", duration="1d", resolution="1h", seed=4, overrides={"pv_share": 1.0})


def test_network_is_the_documented_cigre_lv_benchmark():
    net = reference_network()
    assert (len(net.bus), len(net.line), len(net.load), len(net.trafo), len(net.sgen)) == (44, 37, 15, 3, 15)
    assert net.load["p_mw"].sum() * 1000 == pytest.approx(686.6)


def test_solve_losses_and_energy_balance():
    net = reference_network()
    rng = np.random.default_rng(0)
    p = net.load["p_mw"].to_numpy() * 1000 * rng.uniform(0.2, 1.2, 15)
    q = p * 0.3
    pv = rng.uniform(0, 30, 15)
    result = solve(net, p, q, pv)
    assert result["converged"]
    assert result["losses_kw"] >= 0 and (result["line_pl_kw"] >= -1e-9).all()
    assert result["losses_kw"] == pytest.approx(result["line_pl_kw"].sum() + result["trafo_pl_kw"].sum())
    assert result["ext_grid_p_kw"] == pytest.approx(p.sum() - pv.sum() + result["losses_kw"], rel=1e-6, abs=1e-3)
    assert result["bus_vm_pu"].min() > 0.85 and result["bus_vm_pu"].max() < 1.1


def test_reactive_set_point_changes_losses():
    net = reference_network()
    p = net.load["p_mw"].to_numpy() * 1000
    q = net.load["q_mvar"].to_numpy() * 1000
    base = solve(net, p, q, np.zeros(15))
    compensated = solve(net, p, q, np.zeros(15), q_setpoint_kvar=q)  # local var support cancels the load's Q
    assert compensated["losses_kw"] < base["losses_kw"]
    assert abs(compensated["ext_grid_q_kvar"]) < abs(base["ext_grid_q_kvar"])


def test_time_series_truth_tables_are_consistent(run):
    losses, lines, buses = run.truth["feeder_losses"], run.truth["feeder_lines"], run.truth["feeder_buses"]
    assert losses.height == 24 and lines.height == 24 * 37 and buses.height == 24 * 44
    assert (losses["losses_kw"] >= 0).all()
    line_sum = lines.group_by("ts").agg(pl.col("pl_kw").sum()).sort("ts")["pl_kw"].to_numpy()
    np.testing.assert_allclose(losses.sort("ts")["line_losses_kw"].to_numpy(), line_sum, rtol=1e-9)
    balance = losses["load_kw"] - losses["pv_kw"] + losses["losses_kw"] - losses["ext_grid_kw"]
    assert balance.abs().max() < 1e-3
    assert buses["vm_pu"].is_between(0.85, 1.1).all()
    assert losses["pv_kw"].max() > 0 and losses["pv_kw"].min() == 0


def test_measurements_are_the_transformer_flows(run):
    m = run.measurements["three_phase"].sort("ts", "device_id")
    assert m.height == 24 * 3 and set(m["device_id"]) == {"feeder0_R", "feeder0_I", "feeder0_C"}
    np.testing.assert_allclose(m["p_a"].to_numpy(), m["p_c"].to_numpy())
    assert m["v_a"].is_between(200, 245).all() and (m["i_a"] >= 0).all()
    delivered = m.group_by("ts").agg((pl.col("p_a") * 3).sum()).sort("ts")["p_a"].to_numpy() / 1000
    losses = run.truth["feeder_losses"].sort("ts")
    expected = losses["load_kw"] - losses["pv_kw"] + losses["line_losses_kw"]  # LV side: no transformer losses
    np.testing.assert_allclose(delivered, expected.to_numpy(), rtol=1e-6, atol=1e-3)


def test_stressed_days_leave_the_other_days_alone():
    """Local day 0 (from 10 h) stressed, day 1 normal: day 1 is the unstressed run bit for bit; day 0
    has more PV at noon and more load in the evening, and its buses reach the EN 50160 limits."""
    kw = {"duration": "36h", "resolution": "1h", "seed": 4}
    plain = simulate("feeder_timeseries", **kw).truth["feeder_losses"].sort("ts")
    stress = simulate("feeder_timeseries", overrides={"stress_every_days": 2, "stress_pv_share": 3.0, "stress_evening_scale": 2.2},
                      **kw)
    st = stress.truth["feeder_losses"].sort("ts")
    local_h = np.arange(plain.height) + 10.0  # UTC+10, the run starts at 00 UTC
    normal, day0 = local_h >= 24, local_h < 24
    assert st.filter(pl.Series(normal)).equals(plain.filter(pl.Series(normal)))
    noon, evening = day0 & (local_h % 24 >= 11) & (local_h % 24 <= 14), day0 & (local_h % 24 >= 18) & (local_h % 24 <= 20)
    ratio_pv = st["pv_kw"].to_numpy()[noon] / plain["pv_kw"].to_numpy()[noon]
    np.testing.assert_allclose(ratio_pv, 3.0 / 0.5)  # same clouds, 6x the PV
    assert (st["load_kw"].to_numpy()[evening] > 1.8 * plain["load_kw"].to_numpy()[evening]).all()
    vm = stress.truth["feeder_buses"]
    assert vm["vm_pu"].max() > 1.10 and vm["vm_pu"].min() < 0.90


def test_parameters_checked():
    with pytest.raises(SimulationError, match="resolution"):
        prepare("feeder_timeseries", resolution="1s")
    with pytest.raises(SimulationError, match="pv_share"):
        prepare("feeder_timeseries", resolution="1h", overrides={"pv_share": -1})
