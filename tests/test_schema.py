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
