"""The incremental executor equals the batch executor, reading by reading, on irregular,
gappy, multi-device streams with missing values; its state stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridtwin_lib import features
from gridtwin_lib.config import SITES
from gridtwin_lib.features_incremental import IncrementalFeatures
from gridtwin_lib.schema import conform

SYDNEY = SITES["au_sydney"]
T0 = datetime(2025, 4, 5, 13, 0, tzinfo=UTC)  # 6 Apr 2025 03:00 AEDT -> AEST: a DST change inside the streams
#: steps [s] between a device's readings: jitter, exactly a window's length, just under and over it, gaps over 1 h
STEPS = [1, 1, 1, 2, 3, 7, 59, 60, 61, 899, 900, 901, 3599, 3600, 3601, 7200]


def _stream(kind: str, steps_per_device: list[list[int]], seed: int, missing: float) -> pl.DataFrame:
    """Readings of several devices with the given steps, some values missing, flags set at random."""
    rng = np.random.default_rng(seed)
    frames = []
    for d, steps in enumerate(steps_per_device):
        seconds = np.cumsum([d * 0.5, *steps])  # devices interleave without equal times
        n = len(seconds)
        cols: dict = {"ts": [T0 + timedelta(seconds=float(s)) for s in seconds], "source": "test", "device_id": f"dev-{d}"}
        if kind == "three_phase":
            for k, ph in enumerate("abc"):
                v = 230 + rng.normal(0, 4, n)
                i = np.abs(20 + 5 * k + rng.normal(0, 3, n))
                pf = rng.uniform(0.8, 1.0, n)
                cols[f"v_{ph}"], cols[f"i_{ph}"] = v, i
                cols[f"p_{ph}"], cols[f"q_{ph}"] = v * i * pf, v * i * np.sqrt(1 - pf**2) * rng.choice([-1, 1], n)
            cols["thd_v"] = rng.uniform(0, 6, n)
            nullable = ["q_a", "frequency", "thd_v", "i_b"]
        else:
            cols["voltage"] = 230 + rng.normal(0, 4, n)
            cols["current"] = np.abs(5 + rng.normal(0, 2, n))
            cols["power"] = cols["voltage"] * cols["current"] * rng.uniform(0.7, 1.0, n)
            cols["power_factor"] = rng.uniform(0.7, 1.0, n)
            cols["reactive_power"] = rng.normal(0, 100, n)
            nullable = ["power_factor", "reactive_power", "frequency"]
        cols["frequency"] = 50 + rng.normal(0, 0.05, n)
        frame = pl.DataFrame(cols).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")))
        frame = frame.with_columns(
            [pl.when(pl.Series(rng.random(n) < missing)).then(None).otherwise(pl.col(c)).alias(c) for c in nullable]
            + [pl.Series("quality_flags", rng.choice([0, 1, 2, 3], n).astype(np.uint32))]
        )
        frames.append(frame)
    return conform(pl.concat(frames, how="diagonal_relaxed"), kind)


def _assert_equal_reading_by_reading(kind: str, df: pl.DataFrame, **options) -> None:
    batch = features.compute(df, kind=kind, site=SYDNEY, keep_inputs=False)
    inc = IncrementalFeatures(kind, site=SYDNEY, **options)
    assert inc.names == batch.columns[2:]
    expected = {(r[1], r[0]): r[2:] for r in batch.rows()}
    arrival = df.sort("ts")  # every device's readings in time order, devices interleaved
    for reading in arrival.iter_rows(named=True):
        got = inc.update(reading["device_id"], reading["ts"], reading)
        want = np.array([np.nan if v is None else float(v) for v in expected[(reading["device_id"], reading["ts"])]])
        missing = np.isnan(want)
        mismatch = missing != np.isnan(got)
        assert not mismatch.any(), f"null differs at {reading['ts']} {reading['device_id']}: " + ", ".join(
            f"{inc.names[k]} batch {want[k]} incremental {got[k]}" for k in np.flatnonzero(mismatch))
        close = np.isclose(got, want, rtol=1e-6, atol=1e-6) | missing
        assert close.all(), f"values differ at {reading['ts']} {reading['device_id']}: " + ", ".join(
            f"{inc.names[k]} batch {want[k]!r} incremental {got[k]!r}" for k in np.flatnonzero(~close))


_devices = st.lists(st.lists(st.sampled_from(STEPS), min_size=1, max_size=60), min_size=1, max_size=3)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_devices, seed=st.integers(0, 2**31), missing=st.sampled_from([0.0, 0.1, 0.5]),
       capacity=st.sampled_from([2, 64]), rebase_every=st.sampled_from([5, 4096]))
def test_three_phase_incremental_equals_batch(steps, seed, missing, capacity, rebase_every):
    """Small rings (growth) and frequent rebasing included: neither may change a value."""
    df = _stream("three_phase", steps, seed, missing)
    _assert_equal_reading_by_reading("three_phase", df, capacity=capacity, rebase_every=rebase_every)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=_devices, seed=st.integers(0, 2**31), missing=st.sampled_from([0.0, 0.3]))
def test_meter_incremental_equals_batch(steps, seed, missing):
    df = _stream("meter", steps, seed, missing)
    _assert_equal_reading_by_reading("meter", df, capacity=4)


def test_long_regular_stream_equals_batch_without_drift():
    """Two hours of 1 s readings: rebased sums stay within tolerance of the batch's prefix sums."""
    df = _stream("three_phase", [[1] * 7200], seed=3, missing=0.01)
    _assert_equal_reading_by_reading("three_phase", df, rebase_every=1000)


def test_state_stays_under_one_megabyte_for_an_hour_of_one_second_readings():
    inc = IncrementalFeatures("three_phase", windows=("1m", "15m", "1h"), site=SYDNEY)
    x = np.array([230.0, 231, 229, 20, 21, 22, 4000, 4100, 4200, 500, 600, 700, 50.0, 0, 3.0])
    start = int(T0.timestamp()) * 1_000_000
    for k in range(2 * 3600):
        inc.update_values("d", start + k * 1_000_000, x)
    assert inc.state_bytes("d") <= 1_000_000
    assert inc.as_dict(inc.update_values("d", start + 7200 * 1_000_000, x))["n_1h"] == 3600


def test_readings_out_of_time_order_are_refused():
    inc = IncrementalFeatures("meter", site=SYDNEY)
    inc.update("m", T0, {"voltage": 230.0})
    with pytest.raises(ValueError, match="not after its last one"):
        inc.update("m", T0, {"voltage": 231.0})
    with pytest.raises(ValueError, match="no time zone"):
        inc.update("m", datetime(2025, 1, 1), {"voltage": 231.0})
    inc.update("other", T0, {"voltage": 231.0})  # devices are independent


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.sampled_from(STEPS), min_size=2, max_size=80), split=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**31), missing=st.sampled_from([0.0, 0.2]), capacity=st.sampled_from([2, 64]),
       rebase_every=st.sampled_from([5, 4096]))
def test_absorbing_history_leaves_the_state_reading_by_reading_updates_leave(steps, split, seed, missing, capacity, rebase_every):
    """``absorb`` (how the engine builds a device's state from its held history) followed by readings
    gives those readings exactly the features ``update_values`` on every reading gives them."""
    df = _stream("three_phase", [steps], seed, missing).sort("ts")
    ts_us = df["ts"].dt.epoch("us").to_numpy()
    one = IncrementalFeatures("three_phase", site=SYDNEY, capacity=capacity, rebase_every=rebase_every)
    x = np.column_stack([df[name].cast(pl.Float64).fill_null(np.nan).to_numpy() if name in df.columns else np.full(df.height, np.nan)
                         for name in one.inputs])
    k = int(split * (df.height - 1))
    for r in range(df.height):
        want = one.update_values("d", int(ts_us[r]), x[r])
    bulk = IncrementalFeatures("three_phase", site=SYDNEY, capacity=capacity, rebase_every=rebase_every)
    bulk.absorb("d", ts_us[:k], x[:k])
    for r in range(k, df.height):
        got = bulk.update_values("d", int(ts_us[r]), x[r])
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="strictly increasing"):
        bulk.absorb("d", ts_us[-1:], x[-1:])
