"""Alerts judged like models (gridtwin_lib.alert_quality): matching, counts, the threshold sweep."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from gridtwin_lib import alert_quality as aq
from gridtwin_lib.alerts import AlertBook, TruthMatch, load_rules
from gridtwin_lib.errors import InputError

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def _t(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _alerts(rows):
    return pl.DataFrame([{"device_id": d, "first_utc": _t(a), "last_utc": _t(b)} for d, a, b in rows],
                        schema={"device_id": pl.String, "first_utc": pl.Datetime("us", "UTC"), "last_utc": pl.Datetime("us", "UTC")})


def _events(rows):
    return pl.DataFrame([{"device_id": d, "ts": _t(a), "end": _t(b), "type": k} for d, a, b, k in rows],
                        schema={"device_id": pl.String, "ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "type": pl.String})


def _rules(tmp_path, threshold=0.5, horizon_s=600, levels=None):
    levels = levels or f"[{{severity: HIGH, above: {threshold}}}]"
    p = tmp_path / "rules.yaml"
    p.write_text(f"""merge_gap_s: 300
rules:
  - id: risk
    raised_by: rule test
    input: scores
    column: p
    levels: {levels}
    message: "p = {{value:.2f}}"
    action: look
    truth: {{table: events, types: [sag], horizon_s: {horizon_s}, tolerance_s: 0}}
""")
    return load_rules(p)


def test_an_alert_is_explained_by_an_event_inside_its_window_and_the_lead_time_is_onset_minus_first_firing():
    truth = TruthMatch("events", ("sag",), horizon_s=900, tolerance_s=0)
    alerts = _alerts([("d1", 0, 5), ("d1", 60, 61), ("d2", 0, 5), ("d3", 0, 100)])
    events = _events([("d1", 12, 13, "sag"),   # 12 min after the first alert was raised: inside the 15-min horizon
                      ("d1", 200, 201, "sag"),  # nobody warned
                      ("d2", -10, -1, "sag"),   # ended before d2's alert, tolerance 0: not explained
                      ("d3", 50, 51, "sag")])   # d3's alert was open over it (caught) but raised 50 min before (not explained)
    a, e = aq.match(alerts, events, truth)
    assert a["explained"].to_list() == [True, False, False, False]
    assert e["caught"].to_list() == [True, False, False, True]
    assert e["lead_s"][0] == pytest.approx(12 * 60)
    assert a["open_s"].to_list() == [300.0, 60.0, 300.0, 6000.0]
    # with no horizon the first alert no longer explains the later sag
    a0, _ = aq.match(alerts, events, TruthMatch("events", ("sag",), horizon_s=0, tolerance_s=0))
    assert a0["explained"].to_list() == [False, False, False, False]


def test_a_diagnosis_is_right_only_when_it_names_the_cause_and_weak_events_can_be_left_out():
    alerts = _alerts([("d1", 0, 5), ("d1", 0, 5)]).with_columns(pl.Series("value", ["open_conductor", "unbalanced_pv"]))
    events = _events([("d1", 1, 2, "unbalance")]).with_columns(pl.lit(0.3).alias("severity"), pl.lit("open_conductor").alias("cause"))
    a, e = aq.match(alerts, events, TruthMatch("events", ("unbalance",), same_cause=True))
    assert a["explained"].to_list() == [True, False]
    a, _ = aq.match(alerts, events, TruthMatch("events", ("unbalance",)))
    assert a["explained"].to_list() == [True, True]


def test_min_severity_keeps_only_the_events_the_rule_is_meant_for(store):
    store.write_truth("events", pl.DataFrame({
        "ts": [_t(5), _t(6)], "end": [_t(5.5), _t(6.5)], "device_id": ["d1", "d1"], "type": ["frequency_excursion"] * 2,
        "severity": [0.2, 0.6], "cause": ["gen_trip", "gen_trip"], "source": "sim:x"}))
    cov = aq.Coverage(pl.DataFrame({"source": ["sim:x"], "device_id": ["d1"], "start": [_t(0)], "end": [_t(60)]}))
    ev = aq.truth_events(store, TruthMatch("events", ("frequency_excursion",), min_severity=0.5), cov)
    assert ev["ts"].to_list() == [_t(6)]


def test_episodes_merge_firings_exactly_as_the_alert_book_does(tmp_path):
    rules = _rules(tmp_path)
    ts = [0, 1, 2, 9, 10, 30, 31]  # minutes; gap 5 min: three alerts on d1
    scores = pl.DataFrame({"device_id": ["d1"] * len(ts) + ["d2"] * 2, "source": "sim:x",
                           "ts": [_t(m) for m in ts] + [_t(0), _t(1)], "p": [0.9] * len(ts) + [0.1, 0.9]})
    book = AlertBook(rules)
    book.update(scores=scores)
    want = book.table().select("device_id", "first_utc", "last_utc", "count").sort("device_id", "first_utc")
    from gridtwin_lib.alerts import firings

    got = aq.episodes(firings(scores, rules.rules[0]), rules.merge_gap_s).sort("device_id", "first_utc")
    assert got.select("device_id", "first_utc", "last_utc").equals(want.select("device_id", "first_utc", "last_utc"))
    assert got["count"].cast(pl.Int64).to_list() == want["count"].to_list() == [3, 2, 2, 1]


def test_judge_counts_precision_recall_and_alerts_per_device_day(tmp_path):
    rules = _rules(tmp_path, levels="[{severity: HIGH, above: 0.8}, {severity: MEDIUM, above: 0.5}]")
    # d1: a HIGH alert at 0-1 min before a sag at 5 min (explained), a MEDIUM at 100 min (false);
    # d2: nothing fires, one sag missed. One scored day on each of two devices.
    scores = pl.DataFrame({"device_id": ["d1", "d1", "d1", "d2", "d2"], "source": "sim:x",
                           "ts": [_t(0), _t(1), _t(100), _t(0), _t(24 * 60)], "p": [0.9, 0.9, 0.6, 0.1, 0.1]})
    cov = aq.Coverage(pl.DataFrame({"source": ["sim:x"] * 2, "device_id": ["d1", "d2"], "start": [_t(0)] * 2,
                                    "end": [_t(24 * 60)] * 2}))
    from gridtwin_lib.alerts import raise_alerts

    alerts = raise_alerts(scores, rules=rules)
    events = {"risk": _events([("d1", 5, 6, "sag"), ("d2", 50, 51, "sag")])}
    table = aq.judge(alerts, events, rules, cov, by_severity=True)
    row = {r["severity"]: r for r in table.iter_rows(named=True)}
    assert row["all"]["alerts"] == 2 and row["all"]["explained"] == 1 and row["all"]["precision"] == 0.5
    assert row["all"]["events"] == 2 and row["all"]["caught"] == 1 and row["all"]["recall"] == 0.5
    assert row["all"]["alerts_per_device_day"] == pytest.approx(1.0)
    assert row["all"]["alarm_share"] == pytest.approx(60 / (2 * 86_400))  # the HIGH alert was open 1 min, the MEDIUM 0
    assert row["all"]["median_lead_s"] == pytest.approx(300.0)
    assert row["HIGH"]["precision"] == 1.0 and row["MEDIUM"]["precision"] == 0.0
    assert row["HIGH"]["recall"] == 0.5  # HIGH or worse caught d1's sag


def test_a_higher_threshold_raises_fewer_alerts_and_the_pick_reaches_the_precision_asked_for(tmp_path):
    rules = _rules(tmp_path, horizon_s=0)
    # p is high inside each sag (explained), medium on noise an hour away from any sag
    rows, evs = [], []
    for k in range(6):
        base = k * 120
        evs.append(("d1", base + 10, base + 12, "sag"))
        rows += [(_t(base + 10.5), 0.85 if k == 0 else 0.95), (_t(base + 60), 0.6 + 0.05 * k)]
    scores = pl.DataFrame({"device_id": "d1", "source": "sim:x", "ts": [r[0] for r in rows], "p": [r[1] for r in rows]})
    cov = aq.Coverage.of_scores(scores)
    curve = aq.tradeoff(scores, rules.rules[0], _events(evs), cov, rules.merge_gap_s, thresholds=[0.5, 0.7, 0.9])
    assert curve["alerts"].to_list() == [12, 9, 5]
    assert curve["precision"].to_list() == pytest.approx([0.5, 6 / 9, 1.0])
    assert curve["recall"].to_list() == pytest.approx([1.0, 1.0, 5 / 6])
    assert aq.pick_threshold(curve, 0.9) == 0.9
    assert aq.pick_threshold(curve, 0.6) == 0.7  # catches all six with fewer alerts than 0.5
    assert aq.pick_threshold(curve.filter(pl.col("threshold") < 0.8), 0.9) is None


def test_truth_events_come_from_the_store_for_the_scored_devices_and_types_only(store):
    store.write_truth("events", pl.DataFrame({
        "ts": [_t(5), _t(6), _t(7), _t(3000)], "end": [_t(5.5), _t(6.5), _t(7.5), _t(3001)],
        "device_id": ["d1", "d1", "d9", "d1"], "type": ["sag", "motor_start", "sag", "sag"], "source": "sim:x"}))
    cov = aq.Coverage(pl.DataFrame({"source": ["sim:x"], "device_id": ["d1"], "start": [_t(0)], "end": [_t(60)]}))
    ev = aq.truth_events(store, TruthMatch("events", ("sag",), horizon_s=0), cov)
    assert ev["ts"].to_list() == [_t(5)]  # not the motor start, not device d9, not the sag two days later
    assert aq.truth_events(store, TruthMatch("failures"), cov).height == 0  # no such truth table: no events, no error
    ongoing = aq.Coverage(pl.DataFrame({"source": ["sim:x"], "device_id": ["d1"], "start": [_t(3000.5)], "end": [_t(3100)]}))
    assert aq.truth_events(store, TruthMatch("events", ("sag",)), ongoing)["ts"].to_list() == [_t(3000)]  # began before, still on
    later = aq.Coverage(pl.DataFrame({"source": ["sim:x"], "device_id": ["d1"], "start": [_t(90_000)], "end": [_t(90_060)]}))
    assert aq.truth_events(store, TruthMatch("events", ("sag",)), later).height == 0  # no truth file in that range


@pytest.mark.parametrize("truth, says", [
    ("{types: [sag]}", "'table' name"),
    ("{table: events, types: sag}", "truth.types must be a list"),
    ("{table: events, horizon_s: -1}", "truth.horizon_s must be a number"),
    ("{table: events, horizn_s: 5}", "unknown key(s) horizn_s"),
    ("{table: events, min_severity: 2}", "truth.min_severity must be a number in [0, 1]"),
    ("{table: events, same_cause: yes please}", "truth.same_cause must be true or false"),
])
def test_a_bad_truth_entry_gets_one_line_naming_the_rule(tmp_path, truth, says):
    p = tmp_path / "bad.yaml"
    p.write_text(f"""rules:
  - {{id: r1, raised_by: rule x, input: scores, column: c, levels: [{{severity: HIGH, above: 1}}], message: m, action: a,
      truth: {truth}}}
""")
    with pytest.raises(InputError) as exc:
        load_rules(p)
    msg = str(exc.value)
    assert "\n" not in msg and "(r1)" in msg and says in msg


def test_every_default_rule_but_the_measured_overload_names_its_truth():
    rules = load_rules()
    assert {r.id for r in rules.rules if r.truth is None} == {"m06_overload"}
