"""The ageing twins: IEC 60076-7 thermal model (steady state, step response, ageing law) and the fleets."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from gridtwin_lib.simulate import SimulationError, prepare, simulate
from gridtwin_lib.simulate.ageing import (
    ThermalParams,
    ageing_rate,
    steady_state,
    thermal_response,
)


def test_rated_load_steady_state_is_98_degc_and_unit_ageing():
    # ONAN distribution defaults: 20 degC + 52 K top-oil rise + 26 K hot-spot gradient = 98 degC
    state = steady_state(np.array([1.0]), np.array([20.0]))
    assert state.top_oil[0] + state.rise_1[0] - state.rise_2[0] == pytest.approx(98.0)
    top_oil, hot_spot, v, _ = thermal_response(np.ones((24, 1)), np.full((24, 1), 20.0), 3600.0)
    np.testing.assert_allclose(top_oil, 72.0, atol=1e-9)
    np.testing.assert_allclose(hot_spot, 98.0, atol=1e-9)
    np.testing.assert_allclose(v, 1.0, atol=1e-9)


def test_ageing_rate_doubles_every_6_kelvin():
    theta = np.array([80.0, 86.0, 92.0, 98.0, 104.0, 110.0])
    np.testing.assert_allclose(ageing_rate(theta)[1:] / ageing_rate(theta)[:-1], 2.0)
    assert ageing_rate(np.array([98.0]))[0] == 1.0


def test_step_response_matches_the_standards_exponential_solution():
    # IEC 60076-7 clause 8.2.2 exponential equations for a load step, with the ONAF power-transformer
    # constants of the standard's examples (k11 = 0.5, k21 = 2, k22 = 2, tau_o = 150 min, tau_w = 7 min,
    # x = 0.8, y = 1.3); R = 6, d_theta_or = 38.3 K, d_theta_hr = 23 K.
    tp = ThermalParams(x=0.8, y=1.3, R=6.0, k11=0.5, k21=2.0, k22=2.0, tau_o_min=150.0, tau_w_min=7.0, d_theta_or=38.3, d_theta_hr=23.0)
    k0, k1, ambient = 0.6, 1.5, 25.0
    start = steady_state(np.array([k0]), np.array([ambient]), tp)
    # 10 s steps: the difference equations are explicit Euler, so they converge to the exponential
    # solution as Dt shrinks (at Dt = 1 min the transient still differs by up to 0.8 K)
    minutes = np.arange(1, 3601) / 6
    top_oil, hot_spot, _, _ = thermal_response(np.full((3600, 1), k1), np.full((3600, 1), ambient), 10.0, tp, state=start)
    ultimate = lambda k: ((1 + k**2 * tp.R) / (1 + tp.R)) ** tp.x * tp.d_theta_or  # noqa: E731
    f1 = 1 - np.exp(-minutes / (tp.k11 * tp.tau_o_min))
    f2 = tp.k21 * (1 - np.exp(-minutes / (tp.k22 * tp.tau_w_min))) - (tp.k21 - 1) * (1 - np.exp(-minutes / (tp.tau_o_min / tp.k22)))
    oil_expected = ambient + ultimate(k0) + (ultimate(k1) - ultimate(k0)) * f1
    gradient_0, gradient_1 = tp.d_theta_hr * k0**tp.y, tp.d_theta_hr * k1**tp.y
    hot_expected = oil_expected + gradient_0 + (gradient_1 - gradient_0) * f2
    np.testing.assert_allclose(top_oil[:, 0], oil_expected, atol=0.05)
    np.testing.assert_allclose(hot_spot[:, 0], hot_expected, atol=0.15)
    assert hot_spot[0, 0] < hot_spot[180, 0]  # the hot spot overshoots quickly (k21 = 2) ...
    assert hot_spot[-1, 0] == pytest.approx(ambient + ultimate(k1) + gradient_1, abs=0.5)  # ... and settles


def test_substeps_make_coarse_steps_agree_with_fine_ones():
    rng = np.random.default_rng(0)
    hourly = rng.uniform(0.3, 1.4, (48, 3))
    _, coarse, _, _ = thermal_response(hourly, np.full((48, 3), 25.0), 3600.0)
    _, fine, _, _ = thermal_response(np.repeat(hourly, 60, axis=0), np.full((48 * 60, 3), 25.0), 60.0)
    np.testing.assert_allclose(coarse, fine[59::60], atol=0.1)  # 2-min vs 1-min Euler sub-steps


def test_transformer_fleet_outputs_and_failures():
    out = simulate("transformer_fleet", duration="120d", resolution="1h", seed=3, devices=12,
                   overrides={"thermal_hazard_per_h": 0.5, "overload_days_per_year": 60.0, "load_max_pu": 1.2})
    m, truth = out.measurements["three_phase"], out.truth
    assert m.height == 120 * 24 * 12
    obs, state, failures = truth["asset_observations"], truth["asset_state"], truth["failures"]
    assert {"top_oil_temp_c", "load_pu_measured", "ambient_temp_c", "age_years"} <= set(obs.columns)
    assert not {"hot_spot_temp_c", "health", "median_life_constant_hazard_days"} & set(obs.columns)  # hidden state stays hidden
    assert state["hot_spot_temp_c"].max() > 120 and state["health"].is_between(0, 1).all()
    assert failures.height > 0
    assert set(failures["cause"]) <= {"insulation_ageing", "hot_spot_overtemperature", "external_damage"}
    # a failed unit is replaced: its consumed life restarts from zero
    row = failures.row(0, named=True)
    after = state.filter((pl.col("device_id") == row["device_id"]) & (pl.col("ts") > row["ts"])).sort("ts")
    assert after.height == 0 or after["consumed_life_years"][0] < row["consumed_life_years"]
    assert (truth["stress_events"]["type"].is_in(["overload_day", "heat_wave"])).all()


def test_same_seed_same_fleet_and_chunking_does_not_matter():
    a = simulate("transformer_fleet", duration="3d", resolution="1h", seed=5, devices=3)
    b = simulate("transformer_fleet", duration="3d", resolution="1h", seed=5, devices=3)
    assert a.truth["asset_state"].equals(b.truth["asset_state"])


def test_inverter_fleet_degrades_and_fails():
    out = simulate("inverter_fleet", duration="60d", resolution="1h", seed=1, devices=20,
                   overrides={"age_min_years": 10.0, "age_max_years": 12.0, "capacitor_life_years": 3.0})
    pv, state = out.measurements["pv"], out.truth["asset_state"]
    assert pv["inverter_efficiency"].drop_nulls().is_between(0.5, 1).all()
    assert state["true_efficiency"].max() < 0.97  # every unit is years into its efficiency decline
    assert out.truth["failures"].height > 0
    assert set(out.truth["failures"]["cause"]) <= {"capacitor_wearout", "igbt_thermal", "external_damage"}


def test_lifetimes_hold_each_drawn_failure_and_censor_the_rest_at_the_end_of_the_run():
    """Truth ``lifetimes``: every failure ends one unit's lifetime at its instant and starts the next unit
    there; every asset's last unit is censored at the end of the run; the spans tile the run."""
    out = simulate("inverter_fleet", duration="60d", resolution="1h", seed=1, devices=20,
                   overrides={"age_min_years": 10.0, "age_max_years": 12.0, "capacitor_life_years": 3.0})
    lifetimes, failures = out.truth["lifetimes"].sort("device_id", "unit"), out.truth["failures"]
    start, end = out.truth["asset_state"]["ts"].min(), out.truth["asset_state"]["ts"].max() + timedelta(hours=1)
    assert failures.height > 0 and lifetimes.height == 20 + failures.height
    failed = lifetimes.filter(pl.col("failed"))
    assert sorted(zip(failed["device_id"], failed["end"], strict=True)) == sorted(zip(failures["device_id"], failures["ts"], strict=True))
    assert (failed["cause"] == failures.sort("device_id", "ts")["cause"]).all() and not failed["censored"].any()
    last = lifetimes.group_by("device_id").agg(pl.all().last())
    assert last["censored"].all() and (last["end"] == end).all() and last["cause"].is_null().all()
    for _, unit in lifetimes.group_by("device_id"):
        assert unit["ts"][0] == start and (unit["ts"][1:] == unit["end"][:-1]).all()  # replaced at the failure's instant
        assert (unit["age_at_start_years"][1:] == 0).all()
    np.testing.assert_allclose(lifetimes["observed_days"], (lifetimes["end"] - lifetimes["ts"]).dt.total_seconds() / 86_400)
    # the renamed constant-hazard figure is hidden state, and it is not the time to the drawn failure
    assert "median_life_constant_hazard_days" in out.truth["asset_state"].columns and "rul_days" not in out.truth["asset_state"].columns


def test_impossible_parameters_are_refused():
    with pytest.raises(SimulationError, match="rating_kva"):
        prepare("transformer_fleet", resolution="1h", overrides={"rating_kva": -5})
    with pytest.raises(SimulationError, match="resolution"):
        prepare("transformer_fleet", resolution="1s")
    assert math.isfinite(ThermalParams().max_substep_min()) and ThermalParams().max_substep_min() <= 2.0
