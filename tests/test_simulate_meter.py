"""Property tests of the ESP8266 + PZEM-004T meter twin and its customer types."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtwin_lib.datasets.energy.demand_response import (
    customer_types as read_customer_types,
)
from gridtwin_lib.simulate import SimulationError, prepare, run_scenario, simulate
from gridtwin_lib.simulate.meter import CUSTOMER_TYPES
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


# --------------------------------------------------------------------------- customer types


def _hourly_profiles(out, utc_offset_h=10.0):
    """Mean true power per (meter, local hour) [W] and each meter's type."""
    state = out.truth["meter_state"].with_columns(
        ((pl.col("ts").dt.hour() + int(utc_offset_h)) % 24).alias("hour"))
    prof = state.group_by("device_id", "hour").agg(pl.col("power_true_w").mean()).sort("device_id", "hour")
    types = dict(out.truth["customer_types"].select("device_id", "customer_type").iter_rows())
    devices = prof["device_id"].unique(maintain_order=True).to_list()
    return np.stack([prof.filter(pl.col("device_id") == d)["power_true_w"].to_numpy() for d in devices]), [types[d] for d in devices]


def test_customer_types_follow_the_seed_and_the_shares():
    a = _run("meter", 3, "15m", "2d", devices=10).truth["customer_types"]
    b = _run("meter", 3, "15m", "2d", devices=10).truth["customer_types"]
    assert a.equals(b)
    assert a["device_id"].to_list() == [f"meter-{k:03d}" for k in range(10)]
    assert (a["ts"] == a["ts"][0]).all()  # the run start
    counts = a["customer_type"].value_counts()
    assert set(counts["customer_type"]) == set(CUSTOMER_TYPES) and sorted(counts["count"]) == [2, 2, 3, 3]  # largest remainder
    others = [_run("meter", s, "15m", "1d", devices=10).truth["customer_types"]["customer_type"].to_list() for s in range(4, 8)]
    assert any(o != a["customer_type"].to_list() for o in others)
    only = simulate("meter", duration="1d", resolution="15m", seed=3, devices=4,
                    overrides={f"share_{t}": float(t == "small_business") for t in CUSTOMER_TYPES})
    assert set(only.truth["customer_types"]["customer_type"]) == {"small_business"}
    assert only.truth["customer_types"]["opens_saturday"].is_not_null().all()
    assert only.truth["customer_types"]["heater_start_h"].is_null().all()


def test_types_have_distinct_daily_shapes_and_peak_shares():
    out = _run("meter", 11, "15m", "14d", devices=12)
    prof, types = _hourly_profiles(out)
    r = np.corrcoef(prof)
    t = np.array(types)
    same, off = t[:, None] == t[None, :], ~np.eye(t.size, dtype=bool)
    within, between = r[same & off].mean(), r[~same].mean()
    assert within > 0.75 and between < 0.35, (within, between)
    local = np.arange(24)
    by_type = {k: prof[t == k].mean(axis=0) for k in CUSTOMER_TYPES}
    assert by_type["small_business"][(local >= 9) & (local < 17)].mean() > 2.5 * by_type["small_business"][local < 5].mean()
    assert by_type["offpeak_water_heater"][local < 2].mean() > 1.5 * by_type["day_worker"][local < 2].mean()
    assert by_type["day_worker"][[18, 19]].mean() > 1.5 * by_type["day_worker"][[11, 12]].mean()
    share = dict(out.truth["customer_types"].group_by("customer_type").agg(pl.col("peak_share_nominal").mean()).iter_rows())
    assert share["day_worker"] > share["home_all_day"] > max(share["offpeak_water_heater"], share["small_business"])


def test_customer_days_mark_irregular_days():
    out = _run("meter", 5, "1h", "5d", devices=4)
    days = out.truth["customer_days"]
    assert days.height == 4 * 6  # the run starts at 10:00 local: 6 local days, the first at the run start
    assert days.select(pl.struct("device_id", "ts").is_duplicated().any()).item() is False
    assert set(days["day_kind"]) <= {"regular", "away", "home", "closed"}
    assert days.group_by("ts").agg(pl.col("weather_index").n_unique())["weather_index"].max() == 1  # shared weather
    odd = simulate("meter", duration="5d", resolution="1h", seed=5, devices=4, overrides={"irregular_day_prob": 1.0})
    assert "regular" not in set(odd.truth["customer_days"]["day_kind"])


def test_types_are_chunk_size_independent():
    spec, run, params = prepare("meter", duration="30h", resolution="10min", seed=2, devices=3)
    a = [c.truth for c in spec.run(run, params)]
    b = [c.truth for c in spec.run(dataclasses.replace(run, chunk_s=3600.0), params)]
    for table in ("customer_types", "customer_days", "meter_state"):
        ta = pl.concat([t[table] for t in a if table in t])
        tb = pl.concat([t[table] for t in b if table in t])
        assert ta.equals(tb), table


def test_customer_types_reach_the_store_and_the_m12_reader(tmp_path):
    store = Store(tmp_path / "store")
    run_scenario("meter", duration="1d", resolution="15m", seed=8, devices=5, store=store, progress=False, source="sim:t_types")
    table = store.scan_truth("customer_types", source="sim:t_types").collect()
    assert table.height == 5 and set(table["source"]) == {"sim:t_types"}
    assert {"ts", "device_id", "customer_type", "size_factor", "peak_share_nominal"} <= set(table.columns)
    assert read_customer_types(store, "sim:t_types") == dict(table.select("device_id", "customer_type").iter_rows())


def test_all_zero_shares_are_refused_before_writing(tmp_path):
    with pytest.raises(SimulationError, match="share_"):
        run_scenario("meter", duration="1h", resolution="10s", overrides={f"share_{t}": 0 for t in CUSTOMER_TYPES},
                     store=Store(tmp_path / "s"), progress=False)
    assert not any(tmp_path.rglob("*.parquet"))
    with pytest.raises(SimulationError, match=r"share_day_worker.*\[0, 1\]"):
        run_scenario("meter", duration="1h", resolution="10s", overrides={"share_day_worker": 2},
                     store=Store(tmp_path / "s"), progress=False)
