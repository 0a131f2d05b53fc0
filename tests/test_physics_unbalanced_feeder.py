"""The independent unbalanced power flow (pandapower ``runpp_3ph``) that judges phase moves: a
balanced feeder has no unbalance, it agrees in direction with the simplified feeder model that
ranks the moves without being that model, batched copies give the single-copy answer, and the
cache serves a repeated day without a new flow."""

from __future__ import annotations

import numpy as np
import pytest

from gridtwin_lib.models.decision.load_balancing import evaluate_moves, feeder_state
from gridtwin_lib.physics.unbalanced_feeder import UnbalancedFeeder, build_network, solve_copies

POS = np.array([50, 50, 50, 200, 200, 200.0])
LOADS = np.full((3, 6), 2.0)  # three hours, 2 kW per customer
BALANCED = np.array([0, 1, 2, 0, 1, 2])
ALL_ON_A = np.zeros(6, int)


@pytest.fixture(scope="module")
def flow():
    return UnbalancedFeeder()


def test_balanced_feeder_has_no_unbalance(flow):
    r = flow.day(LOADS, POS, [BALANCED])
    assert np.allclose(r["vuf_end_pct"], 0.0, atol=1e-8) and np.allclose(r["vuf_worst_pct"], 0.0, atol=1e-8)
    assert (r["loss_kw"] > 0).all()


def test_an_obviously_balancing_move_reduces_unbalance_in_both_models(flow):
    """Everyone on phase a; moving the far customer 3 to b helps more than moving the near customer 0,
    in the simplified model and in the unbalanced power flow; the two give different values (not one function)."""
    maps = [ALL_ON_A, np.array([1, 0, 0, 0, 0, 0]), np.array([0, 0, 0, 1, 0, 0])]
    r = flow.day(LOADS, POS, maps)
    vuf = r["vuf_end_pct"].mean(axis=1)
    simple = np.array([feeder_state(LOADS, m, POS)["vuf_pct"].mean() for m in maps])
    assert vuf[0] > 0.2 and simple[0] > 0.2
    assert vuf[0] > vuf[1] > vuf[2] and simple[0] > simple[1] > simple[2]
    assert r["loss_kw"][0].sum() > r["loss_kw"][2].sum()
    assert not np.allclose(vuf, simple, rtol=0.05)  # reactance, transformer, constant-power loads
    table = evaluate_moves(LOADS, ALL_ON_A, POS, np.array([[0, 0, 1], [3, 0, 1]]))
    assert np.all(np.sign(table["unbalance_reduction_pp"]) == np.sign(vuf[0] - vuf[1:]))


def test_batched_copies_give_the_single_copy_flow():
    """Copies in one network are independent islands: each copy's answer is its own, whatever its neighbours carry."""
    net1, end1, line1 = build_network(POS, 1)
    net3, end3, line3 = build_network(POS, 3)
    one = solve_copies(net1, end1, line1, LOADS[:1] * 1.5, ALL_ON_A[None])
    three = solve_copies(net3, end3, line3, np.vstack([LOADS[0], LOADS[0] * 1.5, np.zeros(6)]),
                         np.vstack([BALANCED, ALL_ON_A, BALANCED]))
    assert three["vuf_end_pct"][1] == pytest.approx(one["vuf_end_pct"][0], rel=1e-6)
    assert three["loss_kw"][1] == pytest.approx(one["loss_kw"][0], rel=1e-6)
    assert three["vuf_end_pct"][0] == pytest.approx(0.0, abs=1e-8) and three["loss_kw"][2] == pytest.approx(0.0, abs=1e-9)


def test_a_repeated_day_is_served_from_the_cache():
    flow = UnbalancedFeeder(batch=48)
    first = flow.day(LOADS, POS, [ALL_ON_A, BALANCED])
    solved = flow.flows
    again = flow.day(LOADS, POS, [BALANCED, ALL_ON_A])
    assert flow.flows == solved == 2 * len(LOADS)
    np.testing.assert_array_equal(again["vuf_end_pct"], first["vuf_end_pct"][::-1])
