"""Property tests of the grid twin's physics, events, determinism and parameter checks."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridtwin_lib.simulate import (
    SCENARIOS,
    SimulationError,
    prepare,
    run_scenario,
    simulate,
)
from gridtwin_lib.simulate.grid import V_NOMINAL
from gridtwin_lib.store import Store

GRID = sorted(n for n, s in SCENARIOS.items() if s.twin == "grid")
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
runs = st.tuples(st.sampled_from(GRID), st.integers(0, 10_000), st.sampled_from(["1s", "5s", "60s"]))


def _run(name, seed, resolution, duration="6h", **overrides):
    return simulate(name, duration=duration, resolution=resolution, seed=seed, overrides=overrides)


@SETTINGS
@given(runs)
def test_power_triangle_holds_in_every_row(case):
    name, seed, resolution = case
    m = _run(name, seed, resolution).measurements["three_phase"]
    for ph in "abc":
        v, i, p, q = (m[f"{x}_{ph}"].to_numpy() for x in "vipq")
        np.testing.assert_allclose(p**2 + q**2, (v * i) ** 2, rtol=1e-9, atol=1e-6)
        assert (i >= 0).all() and (v >= 0).all()


@SETTINGS
@given(runs)
def test_sag_intervals_match_measured_voltage(case):
    name, seed, resolution = case
    out = _run(name, seed, resolution)
    m, ev = out.measurements["three_phase"], out.truth["events"]
    ts = m["ts"]
    low_types = ["sag", "undervoltage", "interruption"]
    for ph in "abc":
        v = m[f"v_{ph}"].to_numpy() / V_NOMINAL
        covered = np.zeros(m.height, bool)
        for row in ev.filter(pl.col("type").is_in(low_types) & pl.col("phase").is_in([ph, "abc"])).iter_rows(named=True):
            inside = ((ts >= row["ts"]) & (ts < row["end"])).to_numpy()
            covered |= inside
            if row["type"] == "sag":
                assert inside.any() and (v[inside] < 0.9).all()
        assert (v[~covered] >= 0.9).all()


def test_voltage_sag_scenario_has_sags_preceded_by_motor_starts():
    ev = simulate("voltage_sag", duration="2d", resolution="1s", seed=5).truth["events"]
    sags = ev.filter(pl.col("type") == "sag")
    assert sags.height > 5
    assert (sags["cause"] == "motor_start").sum() > 0
    assert (ev["type"] == "motor_start").sum() > 0


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.01, 0.2), st.sampled_from(["1s", "2s"]))
def test_frequency_falls_after_a_load_step_up(seed, step, resolution):
    base = _run("frequency_drift", seed, resolution, "1h", load_step_pu=0.0, load_step_at_s=1200.0)
    stepped = _run("frequency_drift", seed, resolution, "1h", load_step_pu=step, load_step_at_s=1200.0)
    f0 = base.measurements["three_phase"]["frequency"].to_numpy()
    f1 = stepped.measurements["three_phase"]["frequency"].to_numpy()
    dt = float(resolution[:-1])
    k = int(1200 / dt)
    response = f1 - f0  # linear system, same noise: the pure step response
    assert np.abs(response[:k]).max() < 1e-9
    window = response[k:k + int(60 / dt)]
    assert window.min() < -0.05 * step * 50 / 21  # nadir below zero, of the steady-state order
    assert response[k + 1] < 0  # RoCoF negative right after the step
    assert (stepped.truth["events"]["type"] == "load_step").sum() == 1


@settings(max_examples=6, deadline=None)
@given(st.sampled_from(GRID), st.integers(0, 1000))
def test_same_seed_same_output_and_other_seed_differs(name, seed):
    a = _run(name, seed, "10s", "1d")
    b = _run(name, seed, "10s", "1d")
    c = _run(name, seed + 1, "10s", "1d")
    assert a.measurements["three_phase"].equals(b.measurements["three_phase"])
    assert a.truth["events"].equals(b.truth["events"])
    assert not a.measurements["three_phase"].equals(c.measurements["three_phase"])


@settings(max_examples=6, deadline=None)
@given(st.sampled_from(GRID), st.integers(0, 1000), st.sampled_from([600.0, 3600.0, 7 * 3600.0, 86_400.0]))
def test_output_does_not_depend_on_chunk_size(name, seed, chunk_s):
    spec, run, params = prepare(name, duration="30h", resolution="5s", seed=seed, devices=2)
    parts = {}
    for size in (86_400.0, chunk_s):
        chunks = list(spec.run(dataclasses.replace(run, chunk_s=size), params))
        parts[size] = (
            pl.concat([c.measurements["three_phase"] for c in chunks]),
            pl.concat([c.truth["events"] for c in chunks]),
            pl.concat([c.truth["grid_state"] for c in chunks]),
        )
    for x, y in zip(parts[86_400.0], parts[chunk_s]):
        assert x.equals(y)


def test_chunks_span_at_most_chunk_s():
    spec, run, params = prepare("normal", duration="3h", resolution="1s", seed=0)
    for chunk in spec.run(dataclasses.replace(run, chunk_s=600.0), params):
        ts = chunk.measurements["three_phase"]["ts"]
        assert (ts.max() - ts.min()).total_seconds() < 600.0


@pytest.mark.parametrize("cause", SCENARIOS["phase_unbalance"].params["cause"].choices)
def test_phase_unbalance_causes_label_state_and_unbalance(cause):
    out = simulate("phase_unbalance", duration="2d", resolution="60s", seed=2, overrides={"cause": cause})
    state = out.truth["grid_state"]
    assert set(state["unbalance_cause"].unique()) == {"balanced", cause}
    ev = out.truth["events"].filter(pl.col("type") == "unbalance")
    assert (ev["cause"] == cause).any()


@pytest.mark.parametrize("name, event", [
    ("fault", "interruption"), ("fault", "swell"), ("overcurrent", "overcurrent"), ("peak_load", "overload"),
    ("frequency_drift", "frequency_excursion"), ("renewable_intermittency", "pv_drop"), ("harmonic_distortion", "harmonics"),
])
def test_each_scenario_produces_its_event(name, event):
    out = simulate(name, duration="3d", resolution="1s", seed=3)
    ev = out.truth["events"]
    assert (ev["type"] == event).sum() > 0
    if event == "harmonics":
        m = out.measurements["three_phase"]
        for row in ev.filter(pl.col("type") == "harmonics").iter_rows(named=True):
            assert (m.filter(pl.col("ts").is_between(row["ts"], row["end"], closed="left"))["thd_v"] > 8).all()


@pytest.mark.parametrize("overrides, words", [
    ({"source_r_ohm": -0.1}, ["source_r_ohm", "valid range [0, 5] ohm"]),
    ({"power_factor": 1.2}, ["power_factor", "(0, 1]"]),
    ({"power_factor": 0.0}, ["power_factor", "(0, 1]"]),
    ({"no_such": 1}, ["unknown parameter 'no_such'"]),
])
def test_bad_parameters_are_refused_before_writing(tmp_path, overrides, words):
    store = Store(tmp_path / "store")
    with pytest.raises(SimulationError) as err:
        run_scenario("mixed", duration="1h", resolution="1s", overrides=overrides, store=store, progress=False)
    assert all(w in str(err.value) for w in words)
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*.parquet"))


@pytest.mark.parametrize("kwargs, words", [
    ({"scenario": "nope"}, ["unknown scenario 'nope'"]),
    ({"scenario": "normal", "duration": 0}, ["duration must be > 0"]),
    ({"scenario": "normal", "duration": "-1h"}, ["duration"]),
    ({"scenario": "normal", "duration": "1h", "start": "last monday"}, ["start 'last monday'", "ISO 8601"]),
    ({"scenario": "normal", "duration": "1h", "start": 1730678400}, ["start must be a date, a time or ISO 8601 text", "not int"]),
])
def test_bad_run_arguments_are_refused(tmp_path, kwargs, words):
    store = Store(tmp_path / "store")
    with pytest.raises(SimulationError) as err:
        run_scenario(**kwargs, store=store, progress=False)
    assert all(w in str(err.value) for w in words)
    assert not any(tmp_path.rglob("*.parquet"))


def test_run_scenario_writes_measurements_and_truth(tmp_path):
    store = Store(tmp_path / "store")
    summary = run_scenario("mixed", duration="1d", resolution="10s", seed=1, devices=2, store=store, progress=False)
    assert summary.rows["three_phase"] == 2 * 8640
    assert store.scan("three_phase").collect().height == 2 * 8640
    assert store.scan_truth("events").collect().height == summary.truth_rows["events"]


def test_start_given_as_text_is_utc(tmp_path):
    """A model's configuration gives a run's start as ISO text (e.g. so that a two-year run ends before today)."""
    store = Store(tmp_path / "store")
    run_scenario("normal", duration="1h", resolution="10s", start="2024-11-04", store=store, progress=False)
    ts = store.scan("three_phase").select("ts").collect()["ts"]
    assert ts.min() == datetime(2024, 11, 4, tzinfo=UTC) and ts.max() < datetime(2024, 11, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize("start", [date(2024, 11, 4), datetime(2024, 11, 4), datetime(2024, 11, 4, 1, tzinfo=timezone(timedelta(hours=1)))])
def test_start_given_as_a_date_or_time_is_utc(start):
    """A date is its midnight UTC, a time without a zone is UTC (not the machine's local time)."""
    from gridtwin_lib.simulate import prepare

    _, run, _ = prepare("normal", duration="1h", start=start)
    assert run.start == datetime(2024, 11, 4, tzinfo=UTC)


def test_real_household_profiles_drive_the_load():
    """load_profile=uci: the same physics, a different (real) demand, still reproducible."""
    kw = dict(duration="2h", resolution="10s", seed=11, overrides={"load_profile": "uci", "customers": 30})
    real = simulate("normal", **kw).measurements["three_phase"]
    again = simulate("normal", **kw).measurements["three_phase"]
    synthetic = simulate("normal", duration="2h", resolution="10s", seed=11, overrides={"customers": 30}).measurements["three_phase"]
    assert real.equals(again)
    assert not np.allclose(real["p_a"].to_numpy(), synthetic["p_a"].to_numpy())
    for ph in "abc":
        s = real[f"v_{ph}"].to_numpy() * real[f"i_{ph}"].to_numpy()
        assert np.allclose(real[f"p_{ph}"].to_numpy() ** 2 + real[f"q_{ph}"].to_numpy() ** 2, s**2, rtol=1e-9)
