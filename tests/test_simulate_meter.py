"""Property tests of the ESP8266 + PZEM-004T meter twin."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

from gridtwin_lib.simulate import SimulationError, prepare, run_scenario, simulate
from gridtwin_lib.store import Store

SETTINGS = settings(max_examples=10, deadline=None)
cases = st.tuples(st.sampled_from(["meter", "meter_outages"]), st.integers(0, 10_000), st.sampled_from(["10s", "1s", "60s"]))


def _run(name, seed, resolution, duration="1d", devices=1):
    return simulate(name, duration=duration, resolution=resolution, seed=seed, devices=devices)


@SETTINGS
@given(cases)
def test_energy_counter_is_monotone_and_zeros_are_marked(case):
    name, seed, resolution = case
    out = _run(name, seed, resolution)
    m = out.measurements["meter"].unique(["device_id", "ts"]).sort("ts")
    zeros = (m["voltage"] == 0) & (m["energy"] == 0)
    energy = m.filter(~zeros)["energy"].to_numpy()
    assert (np.diff(energy) >= 0).all()
    failed = out.truth["meter_state"].filter(pl.col("read_failed"))["ts"]
    assert set(m.filter(zeros)["ts"].to_list()) <= set(failed.to_list())


@SETTINGS
@given(cases)
def test_readings_have_the_sensor_resolution(case):
    m = _run(*case).measurements["meter"]
    for col, step in [("voltage", 0.1), ("current", 0.001), ("power", 0.1), ("energy", 0.001), ("frequency", 0.1), ("power_factor", 0.01)]:
        x = m[col].to_numpy() / step
        np.testing.assert_allclose(x, np.round(x), atol=1e-6)
    ok = m.filter(pl.col("voltage") > 0)
    assert ok["power_factor"].is_between(0, 1).all()


@SETTINGS
@given(st.integers(0, 10_000))
def test_deliveries_are_out_of_order_with_duplicates_and_gaps(seed):
    out = _run("meter_outages", seed, "10s", "2d")
    m, d = out.measurements["meter"], out.truth["deliveries"]
    delivered = d.filter(pl.col("delivered_at").is_not_null()).sort("delivered_at")
    assert m.height == delivered.height  # one row per delivery, in delivery order
    assert m["ts"].to_list() == delivered["ts"].to_list()
    assert m.select(pl.struct("device_id", "ts").is_duplicated().any()).item()
    assert (m["ts"].diff().dt.total_seconds() < 0).any()
    assert (d["status"] == "lost").any()
    assert (out.truth["events"]["type"] == "wifi_outage").any()


def test_store_dedupes_duplicate_deliveries(tmp_path):
    store = Store(tmp_path / "store")
    summary = run_scenario("meter_outages", duration="1d", resolution="10s", seed=4, store=store, progress=False)
    stored = store.scan("meter").collect()
    assert stored.height == summary.rows["meter"]
    assert stored.select(pl.struct("device_id", "ts").is_duplicated().sum()).item() == 0
    d = store.scan_truth("deliveries").collect()
    # failed sensor reads arrive as zeros: 0 Hz breaks the hard frequency limit, so the
    # store keeps them as rejects (with their rule), exactly as it would for a real meter
    rejects = store.scan_rejects("meter").collect()
    assert set(rejects["rule"]) <= {"hard.frequency_range"}
    assert stored.height + rejects["ts"].n_unique() == d.filter(pl.col("status") != "lost")["ts"].n_unique()


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 1000), st.sampled_from([600.0, 3600.0, 5 * 3600.0]))
def test_same_seed_same_output_and_chunk_size_independent(seed, chunk_s):
    spec, run, params = prepare("meter_outages", duration="30h", resolution="10s", seed=seed, devices=2)
    a = pl.concat([c.measurements["meter"] for c in spec.run(run, params)])
    b = pl.concat([c.measurements["meter"] for c in spec.run(dataclasses.replace(run, chunk_s=chunk_s), params)])
    assert a.equals(b)
    spec, run, params = prepare("meter_outages", duration="30h", resolution="10s", seed=seed + 1, devices=2)
    c = pl.concat([c.measurements["meter"] for c in spec.run(run, params)])
    assert not a.equals(c)


@pytest.mark.parametrize("overrides, words", [
    ({"read_fail_prob": 1.5}, ["read_fail_prob", "[0, 1]"]),
    ({"source_r_ohm": -1}, ["source_r_ohm", "[0, 5] ohm"]),
    ({"outage_median_s": 0}, ["outage_median_s", "(0, 86400] s"]),
    ({"bogus": 1}, ["unknown parameter 'bogus'"]),
])
def test_bad_parameters_are_refused_before_writing(tmp_path, overrides, words):
    with pytest.raises(SimulationError) as err:
        run_scenario("meter", duration="1h", resolution="10s", overrides=overrides, store=Store(tmp_path / "s"), progress=False)
    assert all(w in str(err.value) for w in words)
    assert not any(tmp_path.rglob("*.parquet"))
