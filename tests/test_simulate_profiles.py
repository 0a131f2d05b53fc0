"""Real household profiles for the grid twin: UCI days replayed per customer."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from gridtwin_lib.simulate.profiles import (
    HouseholdProfiles,
    local_midnight_epoch,
    uci_series,
)

START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday


def _draw(seed=0, n=30, shift=0):
    rng = np.random.default_rng(seed)
    means = rng.lognormal(0.0, 0.3, n)
    phase = np.arange(n) % 3
    return means, phase, HouseholdProfiles.draw(rng, means, phase, START, 0.0, season_shift_days=shift)


def test_each_customer_replays_a_real_day_of_the_same_weekday_and_season():
    series = uci_series()
    assert series.days >= 1400 and abs(float(series.kw.mean()) - 1.09) < 0.01  # the UCI house's mean, kW
    _, _, prof = _draw()
    days = series.first_day + prof.start_minute // 1440
    sim_day = np.datetime64("2025-01-06")
    assert np.all((days - sim_day).astype(int) % 7 == 0)  # same weekday
    doy = (days - days.astype("datetime64[Y]")).astype(int)
    assert np.all(np.minimum(np.abs(doy - 5), 366 - np.abs(doy - 5)) <= 14)  # around 6 January


def test_phase_demand_is_the_sum_of_scaled_customer_slices():
    means, phase, prof = _draw()
    seconds = np.arange(0, 86_400, 60.0)
    demand = prof.phase_demand_kw(seconds)
    series = uci_series()
    c = int(np.flatnonzero(phase == 1)[0])
    alone = HouseholdProfiles(phase=np.array([1]), scale=prof.scale[[c]], start_minute=prof.start_minute[[c]])
    expected = means[c] / series.kw.mean() * series.kw[prof.start_minute[c]: prof.start_minute[c] + 1440]
    assert np.allclose(alone.phase_demand_kw(seconds)[1], expected)
    assert np.all(demand >= 0) and demand.shape == (3, 1440)
    # many customers: the phase's daily mean is near the sum of their means (winter days run high)
    assert 0.6 < demand[0].mean() / means[phase == 0].sum() < 2.0


def test_same_seed_same_days_and_season_shift_moves_them():
    a, b = _draw(seed=5)[2], _draw(seed=5)[2]
    assert np.array_equal(a.start_minute, b.start_minute)
    summer = _draw(seed=5, shift=182)[2]
    days = uci_series().first_day + summer.start_minute // 1440
    months = days.astype("datetime64[M]").astype(int) % 12 + 1
    assert set(months) <= {6, 7, 8}


def test_local_midnight():
    assert local_midnight_epoch(datetime(2025, 1, 6, 5, tzinfo=UTC), 10.0) == datetime(2025, 1, 5, 14, tzinfo=UTC).timestamp()
