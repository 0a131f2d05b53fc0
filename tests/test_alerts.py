"""Alerts: thresholds from configuration, severities, merging of repeats, bad rule files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridtwin_lib import alerts
from gridtwin_lib.errors import InputError

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def scores(values: list[float | None], device: str = "d1", step_s: float = 1.0, column: str = "m08_voltage_sag.p_sag_15m",
           start: datetime = T0) -> pl.DataFrame:
    return pl.DataFrame({"ts": [start + timedelta(seconds=k * step_s) for k in range(len(values))],
                         "device_id": device, column: values}, schema_overrides={column: pl.Float64})


def test_default_rules_load_and_cover_models_and_rules():
    rs = alerts.load_rules()
    ids = {r.id for r in rs.rules}
    assert {"supply_interruption", "voltage_band", "frequency_band", "m01_anomaly", "m05_failure_risk"} <= ids
    assert rs.merge_gap_s == 900
    assert all(lv.severity in alerts.SEVERITIES for r in rs.rules for lv in r.levels)


def test_levels_pick_the_first_matching_severity():
    table = alerts.raise_alerts(scores([0.1, 0.45, 0.8, 0.2]))
    assert table.height == 1  # one episode: 3 firings within the merge gap
    row = table.row(0, named=True)
    assert row["severity"] == "HIGH" and row["count"] == 2 and row["raised_by"] == "m08_voltage_sag"
    assert row["value"].startswith("0.8") and "p = 0.80" in row["message"]
    assert row["first_utc"] == T0 + timedelta(seconds=1) and row["last_utc"] == T0 + timedelta(seconds=2)
    assert row["suggested_action"]


def test_repeats_merge_within_the_gap_and_split_after_it():
    near = pl.concat([scores([0.9] * 5), scores([0.9] * 5, start=T0 + timedelta(minutes=10))])
    assert alerts.raise_alerts(near)["count"].to_list() == [10]
    far = pl.concat([scores([0.9] * 5), scores([0.9] * 5, start=T0 + timedelta(minutes=30))])
    t = alerts.raise_alerts(far).sort("first_utc")
    assert t["count"].to_list() == [5, 5] and t["status"].to_list() == ["closed", "open"]
    # devices never merge with each other
    two = pl.concat([scores([0.9] * 3, device="a"), scores([0.9] * 3, device="b")])
    assert sorted(alerts.raise_alerts(two)["device_id"].to_list()) == ["a", "b"]


def test_the_book_keeps_alerts_open_across_calls():
    book = alerts.AlertBook(alerts.load_rules())
    for k in range(4):  # a stream of 4 batches of one minute each
        book.update(scores=scores([0.5] * 60, start=T0 + timedelta(minutes=k)))
    t = book.table()
    assert t.height == 1 and t["count"][0] == 240 and t["severity"][0] == "MEDIUM" and t["status"][0] == "open"
    book.update(scores=scores([0.0] * 60, start=T0 + timedelta(minutes=30)))
    assert book.table()["status"].to_list() == ["closed"]


def test_thresholds_are_configuration(tmp_path):
    custom = tmp_path / "rules.yaml"
    custom.write_text("""
merge_gap_s: 60
rules:
  - id: sag
    raised_by: m08_voltage_sag
    input: scores
    column: m08_voltage_sag.p_sag_15m
    levels: [{severity: CRITICAL, above: 0.05}]
    message: "p={value:.2f}"
    action: "act"
""")
    data = scores([0.1, 0.1])
    assert alerts.raise_alerts(data)["severity"].to_list() == []  # below the default 0.4
    t = alerts.raise_alerts(data, rules=custom)
    assert t["severity"].to_list() == ["CRITICAL"] and t["message"][0] == "p=0.10"


CATEGORICAL_RULES = """
merge_gap_s: 900
rules:
  - id: supply_interruption
    raised_by: rule
    input: scores
    column: v_mean_dev_pct
    levels: [{severity: CRITICAL, below: -95.0}]
    message: "interruption {value:.0f} %"
    action: "act"
  - id: m01_anomaly
    raised_by: m01_voltage_anomaly
    input: scores
    column: m01_voltage_anomaly.is_anomaly
    levels: [{severity: MEDIUM, equals: true}]
    message: "anomaly"
    action: "act"
  - id: m04_unbalance
    raised_by: m04_phase_imbalance
    input: scores
    column: m04_phase_imbalance.cause
    levels:
      - {severity: HIGH, equals: open_conductor}
      - {severity: MEDIUM, equals: high_resistance_conductor}
      - {severity: LOW, not_in: [balanced, open_conductor, high_resistance_conductor]}
    message: "cause {value}"
    action: "act"
"""


def test_categorical_and_boolean_rules_and_ordering(tmp_path):
    """equals / not_in levels on a category, a boolean level (a missing value raises nothing), most severe first.
    Own rules: the shipped ones are tuned (conf/base/alerts.yaml) and may drop a level this test needs."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(CATEGORICAL_RULES)
    frame = pl.DataFrame({
        "ts": [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)], "device_id": ["x", "y", "z"],
        "m04_phase_imbalance.cause": ["balanced", "open_conductor", "unbalanced_pv"],
        "m01_voltage_anomaly.is_anomaly": [True, False, None],
        "v_mean_dev_pct": [0.0, -99.0, 0.0],
    })
    t = alerts.raise_alerts(frame, rules=rules)
    got = {(r["rule"], r["device_id"]): r["severity"] for r in t.iter_rows(named=True)}
    assert got == {("m04_unbalance", "y"): "HIGH", ("m04_unbalance", "z"): "LOW", ("m01_anomaly", "x"): "MEDIUM",
                   ("supply_interruption", "y"): "CRITICAL"}
    assert t["severity"].to_list() == ["CRITICAL", "HIGH", "MEDIUM", "LOW"]  # most severe first
    assert alerts.counts(t) == {"CRITICAL": 1, "HIGH": 1, "MEDIUM": 1, "LOW": 1}


def test_asset_alerts():
    assets = pl.DataFrame({"device_id": ["t1", "t2"], "ts": [T0, T0], "m05_equipment_failure.p_fail_7d": [0.6, 0.05],
                           "m06_overload_risk.p_gt100": [0.1, 0.3]})
    t = alerts.raise_alerts(assets=assets)
    assert {(r["rule"], r["device_id"], r["severity"]) for r in t.iter_rows(named=True)} == {
        ("m05_failure_risk", "t1", "CRITICAL"), ("m06_overload", "t2", "MEDIUM")}


def test_rules_on_pv_outputs_read_only_the_pv_frame(tmp_path):
    """A rule whose input is ``pv`` fires on the solar-asset outputs and ignores a per-reading frame that happens
    to carry the same column."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("""
rules:
  - id: pv_low
    raised_by: rule on PV output
    input: pv
    column: pr
    levels: [{severity: HIGH, below: 0.5}]
    message: "performance ratio {value:.2f}"
    action: "inspect"
""")
    frame = scores([0.3, 0.9], column="pr")
    assert alerts.raise_alerts(frame, rules=rules).height == 0
    t = alerts.raise_alerts(pv=frame, rules=rules)
    assert t.select("rule", "severity", "message").rows() == [("pv_low", "HIGH", "performance ratio 0.30")]


@pytest.mark.parametrize("text, fragment", [
    ("rules: 3", "'rules' list"),
    ("rules:\n  - {id: a}", "missing raised_by"),
    ("rules:\n  - {id: a, raised_by: r, input: nowhere, column: c, levels: [], message: m, action: x}", "input must be one of"),
    ("rules:\n  - {id: a, raised_by: r, input: scores, column: c, levels: [{severity: URGENT, above: 1}], message: m, action: x}",
     "severity in CRITICAL"),
    ("merge_gap_s: -1\nrules: []", "merge_gap_s"),
    ("rules: [", "not valid YAML"),
])
def test_bad_rule_files_fail_with_one_line(tmp_path, text, fragment):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(InputError, match=fragment) as err:
        alerts.load_rules(p)
    assert str(p) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError, match="no such file"):
        alerts.load_rules(tmp_path / "absent.yaml")


def _rule_values(rule) -> list:
    """Values at, just beyond and just within every level of ``rule``, and missing ones."""
    out: list = [None]
    for lv in rule.levels:
        args = lv.arg if lv.op == "not_in" else [lv.arg]
        for a in args:
            out.append(a)
            if isinstance(a, (int, float)) and not isinstance(a, bool):
                out += [a + 1e-9, a - 1e-9, a * 2 + 1, a / 2 - 1, float("nan")]
    if any(lv.op == "not_in" for lv in rule.levels):
        out.append("something_else")
    return out


@pytest.mark.parametrize("rule", alerts.load_rules().rules, ids=lambda r: r.id)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_poll_screened_for_firings_agrees_with_the_rule_expressions(rule, data):
    """A live poll's rows are screened with NumPy before the rule expressions run; the screen says
    "nothing fires" exactly when the expressions find no firing."""
    values = data.draw(st.lists(st.sampled_from(_rule_values(rule)), min_size=1, max_size=6))
    args = [a for lv in rule.levels for a in (lv.arg if lv.op == "not_in" else [lv.arg])]
    numeric = [v for v in values if v is not None]
    if any(isinstance(a, str) for a in args):  # the column the rule reads is text
        dtype, values = pl.String, [None if v is None else str(v) for v in values]
    elif all(isinstance(a, bool) for a in args):
        dtype = pl.Boolean
    else:
        dtype = pl.Float64
    frame = scores([None] * len(values)).with_columns(pl.Series(rule.column, values, dtype=dtype))
    screened = alerts._screen(frame, rule)
    limit = alerts._SCREEN_ROWS
    try:
        alerts._SCREEN_ROWS = -1  # the expressions alone
        fired = bool(alerts._fired(frame, [rule]))
    finally:
        alerts._SCREEN_ROWS = limit
    # the screen may only send a frame on to the expressions that fire nothing when it cannot tell (NaN, text)
    assert screened == fired or (screened and not fired and (dtype == pl.String or any(v != v for v in numeric)))
    assert bool(alerts._fired(frame, [rule])) == fired
