"""Battery site physics: parameter checks, the LP's limits and energy balance, day_cost by hand, LP vs rule."""

from __future__ import annotations

import numpy as np
import pytest

from gridtwin_lib.errors import InputError
from gridtwin_lib.physics.battery import BatterySite, day_cost, resimulate, rule_dispatch, solve_day_lp

PARAMS = dict(battery_kwh=8.0, battery_kw=3.0, round_trip_efficiency=0.81, soc_min_frac=0.1, soc_max_frac=0.95,
              soc_init_frac=0.5, import_limit_kw=7.0, export_limit_kw=1.0, feed_in_per_kwh=0.05,
              peak_charge_per_kw_day=0.25, terminal_value_per_kwh=None, overload_penalty_per_kwh=10.0)
HOURS = np.arange(24)
LOAD = 0.6 + 2.0 * np.exp(-((HOURS - 19) / 2.0) ** 2)
PV = 4.0 * np.clip(np.sin(np.pi * (HOURS - 6) / 13), 0, None)
PRICE = np.where((HOURS >= 17) & (HOURS < 21), 0.34, np.where((HOURS >= 7) & (HOURS < 22), 0.22, 0.16))


def site(**kw) -> BatterySite:
    return BatterySite.from_params(**{**PARAMS, **kw})


def test_site_converts_fractions_and_efficiency():
    s = site()
    assert s.eta == pytest.approx(0.9)  # one way = sqrt(round trip)
    assert (s.s_min, s.s0, s.s_max) == pytest.approx((0.8, 4.0, 7.6))
    moved = s.with_soc(2.0)
    assert moved.s0 == 2.0 and s.s0 == 4.0 and moved.p_max == s.p_max


@pytest.mark.parametrize("bad, words", [
    (dict(round_trip_efficiency=1.2), "round_trip_efficiency"),
    (dict(soc_init_frac=0.05), "soc_min_frac <= soc_init_frac"),
    (dict(import_limit_kw=0.0), "import_limit_kw > 0"),
    (dict(execution="later"), "execution"),
])
def test_bad_parameters_are_refused_with_one_clear_line(bad, words):
    with pytest.raises(InputError, match=words):
        site(**bad)


def test_lp_respects_limits_and_balances_energy_and_soc():
    s = site()
    sched, seconds = solve_day_lp(s, LOAD, PV, PRICE)
    assert seconds > 0
    imp, cur, ch, dis, soc = (sched[k] for k in ("grid_import_kw", "pv_curtailed_kw", "battery_charge_kw", "battery_discharge_kw", "soc_kwh"))
    # power balance every hour: grid + PV used + discharge = load + charge
    np.testing.assert_allclose(imp + PV - cur + dis - ch, LOAD, atol=1e-6)
    # SoC dynamics with the one-way efficiency, from s0
    np.testing.assert_allclose(soc, s.s0 + np.cumsum(s.eta * ch - dis / s.eta), atol=1e-6)
    assert (soc >= s.s_min - 1e-6).all() and (soc <= s.s_max + 1e-6).all() and soc[-1] >= s.s0 - 1e-6
    assert (ch <= s.p_max + 1e-6).all() and (dis <= s.p_max + 1e-6).all() and (np.minimum(ch, dis) < 1e-6).all()
    assert imp.min() >= -s.exp_lim - 1e-6 and imp.max() <= s.imp_lim + 1e-6
    assert (cur >= -1e-9).all() and (cur <= PV + 1e-6).all()
    assert cur.sum() > 0  # 4 kW of PV, 1 kW export, 3 kW battery: some PV must be curtailed


def test_without_a_battery_the_grid_takes_the_net_load():
    s = site(battery_kwh=0.0, battery_kw=0.0, export_limit_kw=10.0)
    sched, _ = solve_day_lp(s, LOAD, PV, PRICE)
    np.testing.assert_allclose(sched["grid_import_kw"], LOAD - PV, atol=1e-6)
    assert np.abs(sched["battery_charge_kw"]).max() < 1e-9 and np.abs(sched["pv_curtailed_kw"]).max() < 1e-9


def test_day_cost_matches_a_hand_computation():
    s = site()  # eta 0.9, s0 4 kWh, feed-in 0.05 €/kWh, peak charge 0.25 €/kW/day
    price = np.full((1, 24), 0.2)
    grid = np.concatenate([np.full(12, 1.0), np.full(12, -0.5)])[None, :]
    # bought 12 kWh x 0.2 = 2.4; sold 6 kWh x 0.05 = 0.3; peak 1 kW x 0.25 = 0.25
    # ends 1 kWh below s0: refilling costs v / eta = 0.2 / 0.9 per kWh; 2 kWh above: worth v * eta = 0.18 per kWh
    assert day_cost(s, grid, np.array([3.0]), price)[0] == pytest.approx(2.4 - 0.3 + 0.25 + 0.2 / 0.9)
    assert day_cost(s, grid, np.array([6.0]), price)[0] == pytest.approx(2.4 - 0.3 + 0.25 - 2 * 0.2 * 0.9)
    fixed = site(terminal_value_per_kwh=0.1)
    assert day_cost(fixed, grid, np.array([3.0]), price)[0] == pytest.approx(2.4 - 0.3 + 0.25 + 0.1 / 0.9)


def test_lp_is_never_worse_than_the_rule_on_the_same_day():
    """With perfect foresight the LP is the optimum of the cost day_cost measures: the rule cannot beat it."""
    s = site()
    for shift in (0.0, 0.5, 1.5):
        load, price = LOAD + shift, PRICE[None, :]
        sched, _ = solve_day_lp(s, load, PV, PRICE)
        rule = rule_dispatch(s, load[None, :], PV[None, :], price)
        lp = {k: v[None, :] for k, v in sched.items()}
        lp_real = resimulate(s, lp, load[None, :], PV[None, :], price, realtime=False)
        np.testing.assert_allclose(lp_real["grid_import_kw"], lp["grid_import_kw"], atol=1e-6)  # the plan is feasible as is
        c_lp = day_cost(s, lp["grid_import_kw"], lp["soc_kwh"][:, -1], price)[0]
        c_rule = day_cost(s, rule["grid_import_kw"], rule["soc_kwh"][:, -1], price)[0]
        assert c_lp <= c_rule + 1e-3


def test_rule_charges_from_surplus_only_and_keeps_soc_in_bounds():
    s = site(export_limit_kw=10.0)
    r = rule_dispatch(s, LOAD[None, :], PV[None, :], PRICE[None, :])
    surplus = PV - LOAD
    assert (r["battery_charge_kw"][0][surplus <= 0] == 0).all()
    assert (r["soc_kwh"] >= s.s_min - 1e-9).all() and (r["soc_kwh"] <= s.s_max + 1e-9).all()
