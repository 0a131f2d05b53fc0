"""The CIGRE feeder wrapper: explicit cache (hits identical, new states recompute), state rebuild, subnets."""

from __future__ import annotations

import numpy as np
import pytest

from gridtwin_lib.models.decision import reactive_power_compensation
from gridtwin_lib.physics.powerflow import CIGRE_SUBNETS, CigreFeeder, shared_feeder, voltage_violation_pu


@pytest.fixture(scope="module")
def feeder():
    return CigreFeeder()


def test_subnets_are_the_transformers_in_network_order(feeder):
    net = feeder.network()["net"]
    lv_names = net.bus.loc[net.trafo["lv_bus"], "name"].tolist()
    assert [name.removeprefix("Bus ")[0] for name in lv_names] == list(CIGRE_SUBNETS)
    assert set(feeder.network()["subnet"]) == set(CIGRE_SUBNETS)


def test_load_state_keeps_the_totals_and_power_factor(feeder):
    p, q, pv = feeder.load_state(19.0, 300.0, 40.0)
    assert p.sum() == pytest.approx(300.0) and pv.sum() == pytest.approx(40.0)
    np.testing.assert_allclose(q / p, feeder.network()["tan_phi"])
    assert feeder.distribute_q(150.0).sum() == pytest.approx(150.0)


def test_cache_hit_returns_the_identical_result_without_a_power_flow(feeder):
    feeder.clear()
    first = feeder.power_flow(12.0, 250.0, 60.0, 0.0)
    assert (feeder.hits, feeder.misses) == (0, 1)
    again = feeder.power_flow(12.0, 250.0 + 1e-9, 60.0, 0.0)  # same state after rounding
    assert again == first and (feeder.hits, feeder.misses) == (1, 1)


def test_a_different_load_or_set_point_recomputes(feeder):
    feeder.clear()
    light = feeder.power_flow(12.0, 150.0, 0.0, 0.0)
    heavy = feeder.power_flow(12.0, 450.0, 0.0, 0.0)
    compensated = feeder.power_flow(12.0, 450.0, 0.0, 100.0)
    assert feeder.misses == 3 and feeder.hits == 0 and len(feeder.cache) == 3
    assert heavy[0] > 2 * light[0]  # Joule losses grow with the square of the current
    assert heavy[1] < light[1]  # more load, lower voltages
    assert compensated[0] < heavy[0]  # local var support cuts the reactive current


def test_caches_are_per_object_and_models_share_one(feeder):
    other = CigreFeeder()
    assert other.cache == {} and other.cache is not feeder.cache
    shared = shared_feeder()
    assert shared is shared_feeder()
    before = shared.misses + shared.hits
    reactive_power_compensation.power_flow(8.0, 200.0, 10.0, 0.0)
    assert shared.misses + shared.hits == before + 1


def test_voltage_violation_is_the_distance_outside_the_band():
    assert voltage_violation_pu(0.95, 1.05, (0.9, 1.1)) == 0.0
    assert voltage_violation_pu(0.85, 1.12, (0.9, 1.1)) == pytest.approx(0.05 + 0.02)
