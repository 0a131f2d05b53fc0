"""Validation rules: hard limits at their boundaries, soft flags, the future check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtwin_lib.schema import (
    POLARS_TS,
    arrow_schema,
    conform,
    decode_flags,
    flag_mask,
    validate,
)

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _meter(**columns) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    return pl.DataFrame({
        "ts": pl.Series([NOW - timedelta(minutes=1)] * n, dtype=POLARS_TS), "source": ["t"] * n, "device_id": ["d"] * n, **columns,
    })


@pytest.mark.parametrize(
    "column, values, accepted, rule",
    [
        ("voltage", [0.0, 300.0, 300.1, -0.1], [True, True, False, False], "hard.voltage_range"),
        ("frequency", [45.0, 44.99, 65.0, 65.01], [True, False, True, False], "hard.frequency_range"),
        ("power_factor", [0.0, 1.0, 1.01, -0.01], [True, True, False, False], "hard.power_factor_range"),
        ("current", [0.0, -0.001], [True, False], "hard.current_non_negative"),
        ("energy", [0.0, -1.0], [True, False], "hard.energy_non_negative"),
    ],
)
def test_hard_limits_are_inclusive(column, values, accepted, rule):
    v = validate(_meter(**{column: values}), "meter", now=NOW)
    assert v.accepted[column].to_list() == [x for x, ok in zip(values, accepted) if ok]
    assert v.rejected["rule"].to_list() == [rule] * accepted.count(False)


def test_three_phase_voltage_boundary_names_the_rule():
    df = pl.DataFrame({
        "ts": pl.Series([NOW] * 2, dtype=POLARS_TS), "source": ["t"] * 2, "device_id": ["d"] * 2,
        "v_a": [300.0, 230.0], "v_b": [230.0, 300.1], "v_c": [230.0, 230.0],
    })
    v = validate(df, "three_phase", now=NOW)
    assert v.accepted["v_a"].to_list() == [300.0]
    assert v.rejected.select("rule", "detail").row(0) == ("hard.voltage_range", "hard.voltage_range: v_b=300.1 outside [0, 300]")


def test_future_timestamps():
    ts = [NOW + timedelta(minutes=5), NOW + timedelta(minutes=5, microseconds=1)]
    df = _meter(voltage=[230.0, 230.0]).with_columns(pl.Series("ts", ts, dtype=POLARS_TS))
    v = validate(df, "meter", now=NOW)
    assert v.accepted.height == 1 and v.rejected["rule"].to_list() == ["hard.timestamp_not_future"]


def test_soft_limits_flag_and_keep():
    v = validate(_meter(voltage=[200.0, 230.0, 230.0, 260.0], frequency=[50.0, 48.5, 49.5, 51.5]), "meter", now=NOW)
    assert v.rejected.height == 0 and v.flagged == 3
    assert [decode_flags(m) for m in v.accepted["quality_flags"]] == [
        ["soft.voltage_en50160"], ["soft.frequency_band"], [], ["soft.voltage_en50160", "soft.frequency_band"],
    ]
    assert flag_mask("soft.voltage_en50160", "soft.frequency_band") == v.accepted["quality_flags"][3]


def test_nulls_are_missing_not_violations():
    v = validate(_meter(voltage=[None, 230.0], frequency=[None, None]), "meter", now=NOW)
    assert v.rejected.height == 0
    assert v.missing_values == {"voltage": 1, "frequency": 2}


def test_unparseable_timestamp_is_rejected():
    df = _meter(voltage=[230.0]).with_columns(pl.lit(None, POLARS_TS).alias("ts"))
    assert validate(df, "meter", now=NOW).rejected["rule"].to_list() == ["hard.timestamp_parseable"]


def test_conform_orders_types_and_fills():
    out = conform(_meter(voltage=[230.0]).select("device_id", "voltage", "ts", "source"), "meter")
    assert out.columns == arrow_schema("meter").names
    assert out["power"].to_list() == [None] and out["quality_flags"].to_list() == [0]


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-50, max_value=400, allow_nan=False))
def test_voltage_accepted_iff_within_hard_range(volts):
    v = validate(_meter(voltage=[volts]), "meter", now=NOW)
    assert (v.accepted.height == 1) == (0.0 <= volts <= 300.0)


def _edge_values(kind: str) -> list[float]:
    """Each rule's bounds (at the site's nominal values) and just beyond them."""
    from gridtwin_lib import schema
    from gridtwin_lib.config import default_site

    out = [0.0, 1.0, 50.0, 230.0]
    for rule in schema.rules_for(kind):
        for bound in rule.bounds(default_site()):
            if bound is not None:
                out += [bound, bound * (1 + 1e-9) + 1e-9, bound * (1 - 1e-9) - 1e-9]
    return out


@pytest.mark.parametrize("kind", ["three_phase", "meter", "pv"])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_small_frames_are_validated_as_the_polars_path_does(kind, data):
    """Up to ``NUMPY_MAX_ROWS`` rows are screened with NumPy (the inference engine's readings, a live poll);
    accepted rows, flags, rejects, hit counts and missing counts equal the Polars path's, with
    nulls, NaN, infinities, values at and just beyond every bound, future and unset clocks."""
    from gridtwin_lib import schema
    from gridtwin_lib.config import default_site

    n = data.draw(st.integers(1, 6))
    # most frames break no hard rule (NumPy decides them); the others fall back to the Polars path
    clean = data.draw(st.integers(0, 9)) < 7
    missing = st.one_of(st.none(), st.just(float("nan")))
    wild = st.one_of(missing, st.sampled_from([float("inf"), -float("inf")]), st.sampled_from(_edge_values(kind)),
                     st.floats(-2e6, 2e6, allow_nan=False))

    def allowed(f) -> st.SearchStrategy:
        """Values no hard rule refuses (soft bounds crossed often): small powers keep |P| <= V*I*1.15 + 50."""
        if f.dimension in ("power", "reactive_power"):
            return st.floats(-50.0, 50.0)
        lo, hi = -50.0, 1e4
        for rule in schema.rules_for(kind, "hard"):
            if f.name in rule.columns:
                lo = lo if rule.min is None else max(lo, rule.bounds(default_site())[0])
                hi = hi if rule.max is None else min(hi, rule.bounds(default_site())[1])
        edges = [v for v in _edge_values(kind) if lo <= v <= hi]  # at the bounds, hard and soft
        return st.one_of(missing, st.sampled_from(edges), st.floats(lo, min(hi, lo + 300.0)))

    ts = st.just(NOW - timedelta(minutes=1)) if clean else st.one_of(
        st.just(NOW - timedelta(minutes=1)), st.sampled_from([NOW + timedelta(minutes=6), datetime(1999, 12, 31, tzinfo=UTC), None]))
    columns = {"ts": pl.Series(data.draw(st.lists(ts, min_size=n, max_size=n)), dtype=POLARS_TS), "source": ["t"] * n,
               "device_id": [f"d{k}" for k in range(n)]}
    for f in schema.value_fields(kind):
        if data.draw(st.booleans()) or f.name in ("voltage", "v_a", "i_a", "p_a"):
            value = allowed(f) if clean else wild
            columns[f.name] = pl.Series(data.draw(st.lists(value, min_size=n, max_size=n)), dtype=pl.Float64)
    if data.draw(st.booleans()):  # canonical readings carry it (replaced by the rules' flags); raw ones may not
        columns["quality_flags"] = pl.Series([0] * n, dtype=pl.UInt32)
    if data.draw(st.booleans()):
        columns["_extra_flags"] = pl.Series(data.draw(st.lists(st.sampled_from([None, 0, 16]), min_size=n, max_size=n)), dtype=pl.UInt32)
    df = pl.DataFrame(columns)
    consumption_only = data.draw(st.booleans())
    small = validate(df, kind, now=NOW, consumption_only=consumption_only)
    limit = schema.NUMPY_MAX_ROWS
    try:
        schema.NUMPY_MAX_ROWS = 0
        reference = validate(df, kind, now=NOW, consumption_only=consumption_only)
    finally:
        schema.NUMPY_MAX_ROWS = limit
    assert small.accepted.equals(reference.accepted), (small.accepted, reference.accepted)
    assert small.rejected.equals(reference.rejected)
    assert (small.flagged, small.missing_values, small.hits) == (reference.flagged, reference.missing_values, reference.hits)
