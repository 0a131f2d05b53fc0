"""The feature catalog: values checked by hand and against a naive reference, no look-ahead, gaps, devices."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtwin_lib import features
from gridtwin_lib.config import SITES
from gridtwin_lib.schema import conform, flag_mask

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)  # a Monday, 12:00 in Sydney (AEDT)
SYDNEY = SITES["au_sydney"]


def three_phase(seconds, seed=0, device="d1", **fixed) -> pl.DataFrame:
    """Plausible three-phase readings at the given offsets [s] from T0."""
    rng = np.random.default_rng(seed)
    n = len(seconds)
    cols = {"ts": [T0 + timedelta(seconds=float(s)) for s in seconds], "source": "test", "device_id": device}
    for k, ph in enumerate("abc"):
        v = 230 + rng.normal(0, 3, n)
        i = np.abs(20 + 5 * k + rng.normal(0, 2, n))
        pf = rng.uniform(0.85, 0.99, n)
        cols[f"v_{ph}"], cols[f"i_{ph}"] = v, i
        cols[f"p_{ph}"], cols[f"q_{ph}"] = v * i * pf, v * i * np.sqrt(1 - pf**2)
    cols["frequency"] = 50 + rng.normal(0, 0.05, n)
    cols.update(fixed)
    return conform(pl.DataFrame(cols).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC"))), "three_phase")


def test_catalog_has_more_than_80_documented_unique_features():
    cat = features.catalog("three_phase")
    names = [f.name for f in cat]
    assert len(cat) >= 80 and len(set(names)) == len(names)
    assert all(f.unit and f.formula for f in cat)
    assert {f.group for f in cat} == {"reading", "window", "calendar"}
    computed = features.compute(three_phase(range(0, 120, 5)), site=SYDNEY, keep_inputs=False)
    assert computed.columns == ["ts", "device_id", *names]
    meter = features.catalog("meter")
    assert len(meter) >= 30


def test_per_reading_values_by_hand():
    df = three_phase(
        [0],
        v_a=[230.0], v_b=[220.0], v_c=[240.0],
        i_a=[10.0], i_b=[0.0], i_c=[0.0],
        p_a=[3.0], p_b=[0.0], p_c=[0.0],
        q_a=[4.0], q_b=[0.0], q_c=[0.0],
        frequency=[49.9],
    )
    row = features.compute(df, site=SYDNEY).row(0, named=True)
    assert row["v_mean_v"] == pytest.approx(230.0)
    assert row["v_unbalance_pct"] == pytest.approx(10 / 230 * 100)  # NEMA: max deviation / mean
    assert row["v_b_dev_pct"] == pytest.approx(-10 / 230 * 100)
    assert row["v_spread_v"] == pytest.approx(20.0)
    assert row["s_a_va"] == pytest.approx(5.0) and row["pf_a"] == pytest.approx(0.6)
    assert row["pf_b"] is None  # no power on phase B: undefined, not invented
    assert row["pf_lagging"] == 1
    assert row["i_neutral_est_a"] == pytest.approx(10.0)  # only phase A loaded: all of it returns in the neutral
    assert row["i_unbalance_pct"] == pytest.approx((10 - 10 / 3) / (10 / 3) * 100)
    assert row["freq_dev_hz"] == pytest.approx(-0.1)


def test_balanced_unity_load_has_no_neutral_current():
    df = three_phase([0], i_a=[20.0], i_b=[20.0], i_c=[20.0], p_a=[4600.0], p_b=[4600.0], p_c=[4600.0],
                     q_a=[0.0], q_b=[0.0], q_c=[0.0])
    assert features.compute(df, site=SYDNEY)["i_neutral_est_a"][0] == pytest.approx(0.0, abs=1e-9)


def test_window_values_by_hand_with_a_gap():
    # readings at 0, 10, ..., 50 s, then a 10-minute gap, then one at 660 s
    seconds = [0, 10, 20, 30, 40, 50, 660]
    v = [230.0, 231.0, 232.0, 233.0, 234.0, 235.0, 240.0]
    f = [50.0, 50.01, 50.02, 50.03, 50.04, 50.05, 49.9]
    df = three_phase(seconds, v_a=v, v_b=v, v_c=v, frequency=f)
    out = features.compute(df, site=SYDNEY)
    at50 = out.row(5, named=True)
    assert at50["n_1m"] == 6
    assert at50["v_mean_1m"] == pytest.approx(232.5)
    assert at50["v_std_1m"] == pytest.approx(np.std(v[:6], ddof=1))
    assert at50["v_min_1m"] == 230.0 and at50["v_max_1m"] == 235.0
    assert at50["v_slope_1m"] == pytest.approx(0.1)  # 1 V per 10 s
    assert at50["rocof_1m"] == pytest.approx(0.001)  # 0.01 Hz per 10 s
    after_gap = out.row(6, named=True)
    assert after_gap["n_1m"] == 1 and after_gap["v_std_1m"] is None and after_gap["rocof_1m"] is None
    assert after_gap["v_mean_1m"] == pytest.approx(240.0)
    assert after_gap["n_15m"] == 7  # (660 - 900, 660] holds every reading: windows are by time, not rows


def test_window_is_open_on_the_left():
    # a reading exactly one window before t is outside (t - w, t]
    df = three_phase([0, 60])
    out = features.compute(df, site=SYDNEY)
    assert out["n_1m"].to_list() == [1, 1]
    assert out["n_15m"].to_list() == [1, 2]


def _naive(ts_s: np.ndarray, x: np.ndarray, w: float, i: int):
    inside = (ts_s > ts_s[i] - w) & (ts_s <= ts_s[i])
    xs, tw = x[inside], ts_s[inside]
    slope = np.polyfit(tw - tw[0], xs, 1)[0] if xs.size > 1 else None
    return xs.size, xs.mean(), (xs.std(ddof=1) if xs.size > 1 else None), xs.min(), xs.max(), slope


def test_windows_match_a_naive_reference_on_an_irregular_series():
    rng = np.random.default_rng(7)
    seconds = np.cumsum(rng.choice([1, 1, 2, 5, 30, 400], size=400)).astype(float)
    df = three_phase(seconds, seed=3)
    out = features.compute(df, site=SYDNEY)
    x = out["frequency"].to_numpy()
    for i in rng.choice(len(seconds), size=40, replace=False):
        for w, secs in (("1m", 60), ("15m", 900), ("1h", 3600)):
            n, mean, std, lo, hi, slope = _naive(seconds, x, secs, i)
            row = out.row(int(i), named=True)
            assert row[f"n_{w}"] == n
            assert row[f"freq_mean_{w}"] == pytest.approx(mean, abs=1e-9)
            assert row[f"freq_min_{w}"] == lo and row[f"freq_max_{w}"] == hi
            if std is None:
                assert row[f"freq_std_{w}"] is None and row[f"rocof_{w}"] is None
            else:
                assert row[f"freq_std_{w}"] == pytest.approx(std, rel=1e-6, abs=1e-9)
                assert row[f"rocof_{w}"] == pytest.approx(slope, rel=1e-5, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=1, max_value=298), seed=st.integers(0, 10_000))
def test_no_look_ahead(cut, seed):
    """Changing every value after row `cut` leaves every feature at rows <= cut unchanged."""
    rng = np.random.default_rng(seed)
    seconds = np.cumsum(rng.choice([1, 2, 3, 60], size=300)).astype(float)
    df = three_phase(seconds, seed=seed, quality_flags=rng.choice([0, 1, 2, 3], size=300).astype(np.uint32))
    future = three_phase(seconds, seed=seed + 1, quality_flags=rng.choice([0, 1, 2, 3], size=300).astype(np.uint32))
    changed = pl.concat([df.head(cut + 1), future.slice(cut + 1)])
    a = features.compute(df, site=SYDNEY).head(cut + 1)
    b = features.compute(changed, site=SYDNEY).head(cut + 1)
    value_columns = [c for c in a.columns if c in features.feature_names()]
    # identical bit for bit: every origin and centre the window sums use lies at or before t
    for c in value_columns:
        x, y = a[c].cast(pl.Float64).to_numpy(), b[c].cast(pl.Float64).to_numpy()
        assert np.array_equal(x, y, equal_nan=True), c


def test_window_extrema_equal_polars_rolling_on_regular_and_irregular_devices():
    """Min/max come from van Herk/Gil-Werman blocks on a regular series and from monotonic
    deques otherwise; both equal Polars' own rolling kernels exactly, with nulls, several
    devices and a frame large enough to run on two threads (row ranges cut inside devices)."""
    rng = np.random.default_rng(5)
    parts = []
    for k in range(3):  # regular, 1 s: the block kernel
        n = 20_000 + 997 * k
        parts.append(three_phase(np.arange(n, dtype=float), seed=k, device=f"regular{k}"))
    parts.append(three_phase(np.cumsum(rng.choice([1.0, 1.0, 2.0, 0.5, 90.0], size=12_000)), seed=9, device="gappy"))
    df = pl.concat(parts).with_columns(
        pl.when(pl.int_range(pl.len()) % 17 == 3).then(None).otherwise(pl.col("frequency")).alias("frequency"),
        pl.when(pl.int_range(pl.len()).is_between(5_000, 9_000)).then(None).otherwise(pl.col("p_a")).alias("p_a"))
    assert df.height > features._PARALLEL_MIN_ROWS
    out = features.compute(df, site=SYDNEY)
    extrema = [(base, stem, stat) for base, stem, _unit, stats in features._WINDOW_SPECS["three_phase"]
               for stat in stats if stat in ("min", "max")]
    ref = out.select("device_id", "ts", *[
        getattr(pl.col(base), f"rolling_{stat}_by")("ts", window_size=w).over("device_id").alias(f"{stem}_{stat}_{w}")
        for base, stem, stat in extrema for w in features.DEFAULT_WINDOWS])
    assert out["p_total_w"].null_count() > 0 and out["frequency"].null_count() > 0
    for c in ref.columns[2:]:
        assert out[c].equals(ref[c]), c


def test_devices_are_windowed_independently():
    a = three_phase(range(0, 600, 7), seed=1, device="a")
    b = three_phase(range(3, 600, 11), seed=2, device="b")
    both = features.compute(pl.concat([a, b]).sample(fraction=1.0, shuffle=True, seed=0), site=SYDNEY)
    alone = features.compute(a, site=SYDNEY)
    mine = both.filter(pl.col("device_id") == "a")
    for c in ["n_1m", "v_mean_15m", "p_total_max_1m", "freq_min_1h", "rocof_15m", "flag_voltage_count_1h"]:
        assert np.allclose(mine[c].cast(pl.Float64).to_numpy(), alone[c].cast(pl.Float64).to_numpy(), equal_nan=True), c


def test_soft_flag_counts():
    flags = [flag_mask("soft.voltage_en50160"), 0, flag_mask("soft.voltage_en50160", "soft.frequency_band")]
    out = features.compute(three_phase([0, 1, 2], quality_flags=pl.Series(flags, dtype=pl.UInt32)), site=SYDNEY)
    assert out["flag_voltage_count_1m"].to_list() == [1, 1, 2]
    assert out["flag_frequency_count_1m"].to_list() == [0, 0, 1]


def test_calendar_in_local_time_with_holidays_daylight_and_dst():
    stamps = [
        datetime(2025, 1, 27, 1, 0, tzinfo=UTC),   # 12:00 Mon 27 Jan AEDT: Australia Day (observed)
        datetime(2025, 1, 28, 14, 0, tzinfo=UTC),  # 01:00 Wed 29 Jan: night
        datetime(2025, 4, 5, 15, 30, tzinfo=UTC),  # 02:30 AEDT Sun 6 Apr, before DST ends at 03:00
        datetime(2025, 4, 5, 16, 30, tzinfo=UTC),  # 02:30 AEST: the repeated hour after DST ends
        datetime(2025, 4, 6, 2, 0, tzinfo=UTC),    # 12:00 AEST Sun 6 Apr
    ]
    df = three_phase(range(len(stamps))).with_columns(pl.Series("ts", stamps, dtype=pl.Datetime("us", "UTC")))
    cal = features.compute(df, site=SYDNEY)
    assert cal["hour"].to_list() == [12, 1, 2, 2, 12]
    assert cal["is_holiday"].to_list() == [1, 0, 0, 0, 0]
    assert cal["weekday"].to_list() == [1, 3, 7, 7, 7]
    assert cal["is_weekend"].to_list() == [0, 0, 1, 1, 1]
    assert cal["is_daylight"].to_list() == [1, 0, 0, 0, 1]
    assert cal["month"].to_list() == [1, 1, 4, 4, 4]
    assert cal["hour_sin"][0] == pytest.approx(math.sin(2 * math.pi * 720 / 1440), abs=1e-12)


def test_meter_subset_keeps_missing_channels_null():
    n = 30
    df = conform(
        pl.DataFrame({
            "ts": [T0 + timedelta(minutes=k) for k in range(n)], "source": "uci", "device_id": "house",
            "voltage": np.linspace(235, 240, n), "current": np.full(n, 4.0), "power": np.full(n, 900.0),
            "reactive_power": np.full(n, 100.0),
        }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC"))),
        "meter",
    )
    out = features.compute(df, "meter", ("15m", "1h"), SITES["fr_sceaux"])
    assert out["pf_est"][0] == pytest.approx(900 / (235 * 4))  # no measured PF: |P| / (V I)
    assert out["freq_dev_hz"].null_count() == n and out["freq_mean_1h"].null_count() == n  # no frequency channel
    assert out["v_slope_1h"][-1] == pytest.approx(5 / (29 * 60))  # V per s
    assert out["n_15m"][-1] == 15


def test_bad_window_is_refused():
    with pytest.raises(ValueError, match="window '5x'"):
        features.compute(three_phase([0, 1]), windows=("5x",), site=SYDNEY)


# ----------------------------------------------------------------- rows=: the chosen rows alone


def _assert_same_features(part: pl.DataFrame, ref: pl.DataFrame) -> None:
    """Same rows, columns, types, nulls and NaN; integers, flags and calendar exactly; floats
    to the last bits (Polars' kernels round a 1-row column and a long one differently, and
    prefix-sum statistics depend on where the sums start)."""
    assert part.columns == ref.columns and part.schema == ref.schema
    assert part.select("ts", "device_id").equals(ref.select("ts", "device_id"))
    for c in ref.columns:
        a, b = ref[c], part[c]
        assert a.is_null().to_list() == b.is_null().to_list(), c
        if not a.dtype.is_float():
            assert a.equals(b), c
            continue
        x, y = a.to_numpy().astype(float), b.to_numpy().astype(float)
        assert (np.isnan(x) == np.isnan(y)).all(), c
        prefix_sums = any(f"_{stat}_" in c for stat in ("mean", "std", "slope")) or c.startswith("rocof_")
        scale = max(1.0, float(np.nanmax(np.abs(x))) if np.isfinite(x).any() else 1.0)
        # a std of a flat window is sqrt(rounding noise): ~1e-6 of the column's scale, as in test_inference
        rtol, atol = (1e-7, 1e-6 * scale) if prefix_sums else (1e-13, 1e-13 * scale)
        np.testing.assert_allclose(y, x, rtol=rtol, atol=atol, equal_nan=True, err_msg=c)


def _irregular_two_devices() -> pl.DataFrame:
    """Two devices over 2 h with gaps, jitter, a missing frequency stretch, a null power and a
    zero-voltage interruption (NaN unbalance), interleaved."""
    rng = np.random.default_rng(11)
    parts = []
    for k, dev in enumerate(("d1", "d2")):
        seconds = np.cumsum(rng.choice([1.0, 1.0, 1.0, 2.0, 0.5, 40.0], size=3_000))
        df = three_phase(seconds, seed=k, device=dev)
        freq = df["frequency"].to_numpy().copy()
        freq[200:900] = np.nan
        zero = np.zeros(df.height, bool)
        zero[1500:1510] = True
        df = df.with_columns(pl.Series("frequency", freq, nan_to_null=True),
                             pl.when(pl.int_range(pl.len()) == 2_000).then(None).otherwise(pl.col("p_a")).alias("p_a"),
                             *[pl.when(pl.Series(zero)).then(0.0).otherwise(pl.col(f"v_{p}")).alias(f"v_{p}") for p in "abc"],
                             *[pl.when(pl.Series(zero)).then(0.0).otherwise(pl.col(f"i_{p}")).alias(f"i_{p}") for p in "abc"])
        parts.append(df)
    return pl.concat(parts).sort("ts").with_columns(pl.int_range(pl.len()).alias("k"))


@pytest.mark.parametrize("choose", ["last", "one_per_device", "scattered", "interruption"])
def test_chosen_rows_equal_the_whole_frame(choose):
    """compute(rows=...) computes the chosen rows from only the readings their windows reach:
    every value equals the whole-frame computation, on gaps, jitter, nulls and NaN."""
    df = _irregular_two_devices()
    full = features.compute(df, site=SYDNEY)
    order = full.with_row_index("pos")
    last_of = order.group_by("device_id").agg(pl.col("k").last())["k"]
    rows = {"last": pl.col("k") == df["k"].max(),
            "one_per_device": pl.col("k").is_in(last_of.implode()),
            "scattered": (pl.col("k") % 701) == 5,
            "interruption": pl.col("v_a") == 0.0}[choose]
    part = features.compute(df, site=SYDNEY, rows=rows)
    ref = full.filter(rows)
    assert part.height == ref.height > 0
    _assert_same_features(part, ref)


def test_chosen_rows_fall_back_to_the_whole_frame_when_they_reach_everything():
    """Many chosen rows (their windows would be scanned many times over): the whole frame is
    computed and the chosen rows kept; no chosen row gives an empty frame with every column."""
    df = _irregular_two_devices()
    full = features.compute(df, site=SYDNEY, keep_inputs=False)
    many = features.compute(df, site=SYDNEY, keep_inputs=False, rows=pl.col("k") >= 100)
    _assert_same_features(many, full.join(df.filter(pl.col("k") >= 100).select("ts", "device_id"), on=["ts", "device_id"], how="semi"))
    none = features.compute(df, site=SYDNEY, keep_inputs=False, rows=pl.lit(False))
    assert none.height == 0 and none.columns == full.columns


def test_min_max_follow_polars_null_and_nan_rules():
    """Window min/max of the chosen rows skip nulls, propagate NaN and are null without a value,
    as Polars' rolling kernels are."""
    seconds = np.arange(10.0)
    f = [None, None, 50.1, None, 49.9, 50.0, 50.2, None, None, None]
    df = three_phase(seconds).with_columns(pl.Series("frequency", f, dtype=pl.Float64),
                                           pl.Series("v_a", [230.0] * 5 + [0.0] * 5), pl.Series("v_b", [230.0] * 5 + [0.0] * 5),
                                           pl.Series("v_c", [231.0] * 5 + [0.0] * 5))
    full = features.compute(df, windows=("5s",), site=SYDNEY)
    one_by_one = pl.concat([features.compute(df, windows=("5s",), site=SYDNEY, rows=pl.col("ts") == df["ts"][k]) for k in range(10)])
    _assert_same_features(one_by_one, full)
    assert full["freq_min_5s"][0] is None
    # zero voltage: unbalance 0/0 is null (not NaN) like every undefined per-reading value,
    # so the window max skips it and keeps the last defined value
    assert full["v_unbalance_pct"][6] is None and full["v_unbalance_max_5s"][6] == full["v_unbalance_pct"][4]
    nan_frequency = df.with_columns(pl.Series("frequency", [50.0, float("nan")] + [50.0] * 8))
    assert math.isnan(features.compute(nan_frequency, windows=("5s",), site=SYDNEY)["freq_max_5s"][2])
