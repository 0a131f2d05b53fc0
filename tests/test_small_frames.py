"""The per-reading path's shortcuts equal what Polars' public, slower calls give.

The engine builds a reading's ~115 feature columns through Polars' native float constructor
(:mod:`gridtwin_lib.small_frames`), one reading's frame through the row constructor
(:func:`gridtwin_lib.inference.admission.as_frame`) and orders a poll's readings with NumPy; each
must give what the public calls give, on any values, or a Polars release changed something under them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from polars.testing import assert_frame_equal

from gridtwin_lib import small_frames
from gridtwin_lib.inference.admission import _by_device_and_time, as_frame, canonical

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from([0.0, 1.0, -0.0, np.nan])


@pytest.mark.skipif(not small_frames._NATIVE, reason="this Polars has no native float constructor; the public one serves")
@settings(max_examples=60, deadline=None)
@given(data=st.data(), rows=st.integers(0, 5), cols=st.integers(1, 12))
def test_native_float_columns_equal_the_public_constructor(data, rows, cols):
    values = data.draw(arrays(np.float64, (rows, cols), elements=FLOATS))
    kinds = data.draw(st.lists(st.sampled_from([pl.Float64, pl.Int8, pl.Int16]), min_size=cols, max_size=cols))
    # integer columns hold what the executor casts: small whole numbers or missing
    for k, dtype in enumerate(kinds):
        if dtype != pl.Float64:
            values[:, k] = np.where(np.isfinite(values[:, k]), np.round(np.clip(values[:, k], -100, 100)), np.nan)
    names = [f"c{k}" for k in range(cols)]
    beside = data.draw(st.none() | st.just(pl.DataFrame({"row": np.arange(rows, dtype=np.int64)})))
    fast = small_frames.float_columns(names, values, kinds, beside=beside, native=True)
    public = small_frames.float_columns(names, values, kinds, beside=beside, native=False)
    assert_frame_equal(fast, public)
    assert fast.schema == public.schema
    assert fast.null_count().row(0) == public.null_count().row(0)  # NaN became null in both


def test_float_columns_refuse_mismatched_names():
    with pytest.raises(ValueError, match="2 names for 3 columns"):
        small_frames.float_columns(["a", "b"], np.zeros((1, 3)))


VALUES = (st.none() | st.booleans() | st.integers(-2**40, 2**40) | FLOATS | st.text(max_size=5)
          | st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]) | st.none()))


@settings(max_examples=150, deadline=None)
@given(reading=st.dictionaries(st.sampled_from(["ts", "device_id", "v_a", "i_b", "thd_v", "quality_flags", "note"]), VALUES, min_size=1))
def test_one_reading_frames_as_many_readings_do(reading):
    """One mapping goes through the row constructor; the same as the column-wise path of a batch."""
    general = pl.DataFrame({k: [v] for k, v in reading.items()}, strict=False)
    one = as_frame(reading)
    assert one.schema == general.schema
    assert_frame_equal(one, general)


def test_canonical_types_and_orders_one_reading_column_by_column():
    reading = {"v_a": "231.5", "ts": datetime(2025, 1, 6, 1, tzinfo=timezone(timedelta(hours=1))), "device_id": 7,
               "v_b": 230, "v_c": None, "i_a": 1.0, "i_b": 2.0, "i_c": 3.0, "row": 0}
    out = canonical(pl.DataFrame([reading]))
    assert out.columns[:3] == ["ts", "source", "device_id"] and out.columns[-1] == "row"
    assert out["ts"][0] == datetime(2025, 1, 6, tzinfo=UTC)
    assert out["source"][0] == "inference" and out["quality_flags"][0] == 0
    assert out["device_id"][0] == "7" and out["v_a"][0] == 231.5 and out["v_b"][0] == 230.0 and out["v_c"][0] is None
    assert out["frequency"][0] is None  # absent optional fields are null
    assert canonical(pl.DataFrame([reading]).clear()).height == 0


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.tuples(st.sampled_from(["b", "a", "a_R", "é", "B"]), st.integers(0, 5)), min_size=2, max_size=40))
def test_a_poll_is_ordered_by_device_time_and_row_as_polars_sorts(keys):
    t0 = datetime(2025, 1, 6, tzinfo=UTC)
    df = pl.DataFrame({"device_id": [d for d, _ in keys], "ts": [t0 + timedelta(seconds=s) for s, _ in enumerate(keys)],
                       "row": np.arange(len(keys), dtype=np.int64)})
    df = df.with_columns(pl.Series("ts", [t0 + timedelta(seconds=k) for _, k in keys], dtype=pl.Datetime("us", "UTC")))
    assert_frame_equal(_by_device_and_time(df), df.sort("device_id", "ts", "row"))


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.tuples(st.sampled_from(["b", "a", "a_R", "é", "B"]), st.integers(0, 5)), min_size=0, max_size=40))
def test_the_stability_design_orders_a_poll_as_polars_sorts(keys):
    from gridtwin_lib.models.decision.grid_stability import design_order

    t0 = datetime(2025, 1, 6, tzinfo=UTC)
    df = pl.DataFrame({"ts": pl.Series([t0 + timedelta(seconds=k) for _, k in keys], dtype=pl.Datetime("us", "UTC")),
                       "device_id": pl.Series([d for d, _ in keys], dtype=pl.String),
                       "row": np.random.default_rng(len(keys)).permutation(len(keys)).astype(np.int64)})
    np.testing.assert_array_equal(design_order(df), design_order(df, numpy_max_rows=-1) if df.height else np.zeros(0, np.int64))
