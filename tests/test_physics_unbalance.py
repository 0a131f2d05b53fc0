"""Voltage unbalance: VUF (|V2|/|V1|) and the magnitude-only LVUR against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from gridtwin_lib.models.decision.load_balancing import feeder_state
from gridtwin_lib.physics.unbalance import (
    ALPHA,
    symmetrical_components,
    voltage_unbalance_factor_pct,
    voltage_unbalance_rate_pct,
)

BALANCED = (230.0 + 0j, 230.0 * ALPHA ** 2, 230.0 * ALPHA)  # a, b lagging 120°, c leading 120°


def test_balanced_system_has_no_unbalance():
    v0, v1, v2 = symmetrical_components(*BALANCED)
    assert abs(v0) < 1e-12 and abs(v2) < 1e-12 and abs(v1) == pytest.approx(230.0)
    assert voltage_unbalance_factor_pct(*BALANCED) == pytest.approx(0.0, abs=1e-12)
    assert voltage_unbalance_rate_pct(np.abs(BALANCED)) == pytest.approx(0.0, abs=1e-12)


def test_one_phase_lower_by_10_v():
    """|Va| = |Vb| = 230 V, |Vc| = 220 V at 120°: V1 = 680/3 V, V2 = -10 a²/3 V, so VUF = 10/680;
    mean 226.67 V, largest deviation 6.67 V, so LVUR = 6.67 / 226.67 = 2/68."""
    v = (230.0 + 0j, 230.0 * ALPHA ** 2, 220.0 * ALPHA)
    assert voltage_unbalance_factor_pct(*v) == pytest.approx(100 * 10 / 680)
    assert voltage_unbalance_rate_pct(np.abs(v)) == pytest.approx(100 * 2 / 68)


def test_open_phase_gives_50_percent_vuf():
    """Vc = 0: V1 = (1 + 1)/3, V2 = (1 + a)/3 with |1 + a| = 1, so VUF = 50 %."""
    assert voltage_unbalance_factor_pct(1.0 + 0j, ALPHA ** 2, 0j) == pytest.approx(50.0)


def test_vuf_ignores_zero_sequence_and_scale_but_lvur_sees_only_magnitudes():
    v = np.array([230.0 + 0j, 225.0 * ALPHA ** 2, 228.0 * ALPHA])
    base = voltage_unbalance_factor_pct(*v)
    assert voltage_unbalance_factor_pct(*(v + 12.0 - 5j)) == pytest.approx(base)  # a common (zero-sequence) shift
    assert voltage_unbalance_factor_pct(*(2.0 * v)) == pytest.approx(base)
    twisted = (230.0 + 0j, 230.0 * ALPHA ** 2 * np.exp(0.05j), 230.0 * ALPHA)  # angle error only
    assert voltage_unbalance_factor_pct(*twisted) > 1.0 and voltage_unbalance_rate_pct(np.abs(twisted)) == pytest.approx(0.0, abs=1e-9)


def test_lvur_is_vectorised_and_zero_when_every_phase_is_out():
    v = np.array([[230.0, 0.0, 240.0], [230.0, 0.0, 230.0], [230.0, 0.0, 220.0]])  # (phases, steps)
    np.testing.assert_allclose(voltage_unbalance_rate_pct(v), [0.0, 0.0, 100 * 10 / 230])


def test_m14_feeder_model_reports_the_vuf_of_its_phasors():
    """Three equal loads at the feeder end: all on phase a, a clear unbalance; one per phase, none."""
    loads = np.full((2, 3), 5.0)
    pos = np.full(3, 300.0)
    one_phase = feeder_state(loads, np.array([0, 0, 0]), pos)["vuf_pct"]
    spread = feeder_state(loads, np.array([0, 1, 2]), pos)["vuf_pct"]
    assert (one_phase > 0.5).all() and np.allclose(spread, 0.0, atol=1e-9)
