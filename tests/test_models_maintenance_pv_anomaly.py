"""m17 pv_anomaly: the expected power is the twin's, features read only the past, truth comes from
the twin's events on held-out runs, the event F1 cannot be gamed by flagging everything, the engine
serves what the model predicts, and on the configured smoke runs the classifier on residuals beats
the reference system's IsolationForest on raw telemetry with an interval that excludes zero."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridtwin_lib.datasets.maintenance import pv_anomaly as dpa
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import fit_and_evaluate
from gridtwin_lib.models.maintenance.pv_anomaly import (
    INPUT_COLUMNS,
    PerformanceRatioRule,
    PvAnomaly,
    RawTelemetryIsolationForest,
    event_scores,
)
from gridtwin_lib.physics.solar import expected_ac_power
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

ENTRY = registry.get(PvAnomaly.spec.model_id)
PARAMS = ENTRY.parameters("smoke")
PLANT = PARAMS["plant"]
BUILDER_KEYS = ("plant", "train_sources", "test_sources", "merge_gap_s", "tolerance_s")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """The configured smoke runs (every pv_* scenario, a training and a held-out seed each)."""
    store = Store(tmp_path_factory.mktemp("m17") / "store")
    for run in ENTRY.simulation_runs("smoke"):
        run_scenario(**run, store=store, progress=False)
    return store


@pytest.fixture(scope="module")
def data(store):
    return dpa.pv_anomaly(store, **{k: PARAMS[k] for k in BUILDER_KEYS})


@pytest.fixture(scope="module")
def fitted(data):
    est = PvAnomaly(**{k: PARAMS[k] for k in ("max_iter", "max_train_rows", "threshold")})
    return fit_and_evaluate(est, data, seed=3)


def test_expected_power_is_the_twins_for_a_healthy_plant(tmp_path):
    """Without sensor noise or fleet spread, a healthy device's true AC power is the physics
    function's for its measured irradiance, ambient temperature and wind."""
    store = Store(tmp_path / "s")
    run_scenario("pv_normal", duration="2d", resolution="15m", seed=5, devices=2, store=store, progress=False,
                 overrides={**PLANT, "sensor_noise_pct": 0.0, "fleet_spread_pct": 0.0})
    pv = store.scan("pv").collect().to_pandas()
    state = store.scan_truth("pv_state").collect().to_pandas()
    both = pv.merge(state, on=["ts", "device_id"])
    exp = expected_ac_power(both["irradiance"], both["ambient_temperature"], both["wind_speed"], **PLANT)
    np.testing.assert_allclose(exp["ac_kw"], both["true_ac_power"] / 1000.0, rtol=1e-9, atol=1e-9)
    assert (exp["ac_kw"] > 1.0).any()


def test_features_read_only_the_past(store):
    """A reading's features are the same whether or not later readings are passed."""
    readings = store.scan("pv", source=PARAMS["test_sources"][3]).collect()
    full = dpa.pv_anomaly_features(readings, PLANT)
    cut = readings["ts"].sort()[readings.height // 3]
    early = dpa.pv_anomaly_features(readings.filter(readings["ts"] < cut), PLANT)
    same = full[pd.to_datetime(full["ts"], utc=True) < pd.Timestamp(cut)].reset_index(drop=True)
    pd.testing.assert_frame_equal(early.reset_index(drop=True), same)
    assert np.isfinite(full[list(INPUT_COLUMNS)].to_numpy(float)).all()


def test_truth_is_the_twins_events_on_held_out_runs(data, store):
    train = {d.split("/")[0] for d in data.meta_train["device_id"]}
    test = {d.split("/")[0] for d in data.meta_test["device_id"]}
    assert train.isdisjoint(test) and len(test) == len(PARAMS["test_sources"])
    ev = data.meta_test["events"]
    assert set(ev["type"]) >= {"inverter_trip", "soiling", "degradation", "battery_capacity_fade", "high_temperature",
                               "inverter_failure"}
    # unaffected devices of a faulty run are negatives throughout; faulty devices are labelled in their windows only
    y = data.y_test.to_numpy()
    dev = data.meta_test["device_id"]
    faulty = set(ev["device_id"])
    assert y[~np.isin(dev, list(faulty))].sum() == 0
    assert 0.05 < y.mean() < 0.6
    with pytest.raises(InputError, match="both a training and a test run"):
        dpa.pv_anomaly(store, plant=PLANT, train_sources=PARAMS["train_sources"], test_sources=PARAMS["train_sources"][:1])


def test_flagging_everything_does_not_score_well(data, fitted):
    """Point precision: a detector that flags every reading finds every event but scores the share of
    readings in fault windows as precision, far below the model."""
    everything = pd.DataFrame({"score": np.ones(data.n_test), "flag": np.ones(data.n_test, bool)})
    nothing = everything.assign(flag=False)
    all_scores = event_scores(data.y_test, everything, data.meta_test)
    assert all_scores["event_recall"] == 1.0 and all_scores["event_f1"] < 0.6
    assert event_scores(data.y_test, nothing, data.meta_test)["event_f1"] == 0.0
    assert fitted[2].primary > all_scores["event_f1"] + 0.3


def test_model_beats_the_raw_telemetry_isolation_forest_with_an_interval(fitted):
    """Quality regression: on the held-out smoke runs the classifier on residuals beats the reference
    system's IsolationForest on raw telemetry and the strongest rung with device-block intervals above
    zero, beats every rung's point value, and finds at least 95 % of the fault events."""
    _, _, ev = fitted
    raw = ev.uncertainty.differences[RawTelemetryIsolationForest.name]
    assert raw.low > 0, raw
    passed, decision = ev.gate()  # and the strongest rung of the ladder, with an interval above zero
    assert passed, decision
    assert ev.primary > ev.baseline_primary  # the named baseline, the performance-ratio rule
    assert ev.primary >= 0.9 and ev.metrics["event_recall"] >= 0.95, ev.metrics
    for name, metrics in ev.ladder.items():
        assert ev.primary > metrics["event_f1"], (name, metrics["event_f1"], ev.primary)
    # the catalogue's named baseline is the performance-ratio rule
    assert next(iter(ev.ladder)) == PerformanceRatioRule.name
    print(f"\nm17 smoke: model {ev.primary:.3f}; " + "; ".join(f"{k} {v['event_f1']:.3f}" for k, v in ev.ladder.items())
          + "; differences " + "; ".join(f"{k} {iv.text('.3f')}" for k, iv in ev.uncertainty.differences.items()))


def test_engine_serves_what_the_model_predicts(fitted, data, store):
    from gridtwin_lib.inference import Engine

    model, baseline, _ = fitted
    source = PARAMS["test_sources"][3]
    readings = store.scan("pv", source=source).collect()
    run = source.removeprefix("sim:")
    rows = np.flatnonzero(np.char.startswith(data.meta_test["device_id"].astype(str), run + "/"))
    for est in (model, baseline):
        out = Engine({ENTRY.id: est}).detect_pv_anomalies(readings, PLANT)
        assert list(out.columns) == ["device_id", "ts", f"{ENTRY.id}.score", f"{ENTRY.id}.flag"]
        expect = est.predict(data.X_test.iloc[rows])
        np.testing.assert_allclose(out[f"{ENTRY.id}.score"].to_numpy(), expect["score"].to_numpy())
        assert (out[f"{ENTRY.id}.flag"].to_numpy() == expect["flag"].to_numpy()).all()
    since = readings["ts"].max()
    last = Engine({ENTRY.id: model}).detect_pv_anomalies(readings, PLANT, since=since)
    assert len(last) == readings["device_id"].n_unique()


def test_refuses_bad_input(fitted, data, store):
    model = fitted[0]
    with pytest.raises(InputError, match="lack battery_soc"):
        dpa.pv_anomaly_features(store.scan("pv", source=PARAMS["test_sources"][0]).collect().drop("battery_soc"), PLANT)
    with pytest.raises(InputError, match="pv_kw, inverter_kw"):
        dpa.pv_anomaly_features(store.scan("pv", source=PARAMS["test_sources"][0]).collect(), {"pv_kw": 5.0})
    with pytest.raises(InputError, match="only faults"):
        PvAnomaly().fit(data.X_train.head(50), np.zeros(50))
    with pytest.raises(InputError, match="lacks columns"):
        model.predict(data.X_test.drop(columns=["pr_vs_own"]))


def test_event_scores_by_hand():
    """Two devices, hourly readings: recall, point precision, delay and runs as counted by hand, and
    the bootstrap's per-row terms give the same F1."""
    from gridtwin_lib.models.maintenance.pv_anomaly import event_f1_terms

    t0 = pd.Timestamp("2025-01-01", tz="UTC").value // 1000
    hour = 3_600_000_000
    ts = np.concatenate([t0 + hour * np.arange(10), t0 + hour * np.arange(10)])
    dev = np.array(["a/pv0"] * 10 + ["a/pv1"] * 10)
    events = pd.DataFrame({"ts_us": [t0 + 2 * hour, t0 + 7 * hour, t0 + 4 * hour],
                           "end_us": [t0 + 4 * hour, t0 + 8 * hour, t0 + 5 * hour],
                           "device_id": ["a/pv0", "a/pv0", "a/pv1"], "type": ["x", "x", "y"]})
    flag = np.zeros(20, bool)
    flag[[3, 4]] = True   # pv0: event 1 found 1 h late (hour 3), hour 4 is inside its 1-h tolerance
    flag[[0]] = True      # pv0: a false alarm
    flag[[10 + 9]] = True  # pv1: a false alarm; its event (hour 4) is missed
    meta = {"ts_us": ts, "device_id": dev, "events": events, "merge_gap_s": 3600.0, "tolerance_s": 3600.0}
    pred = pd.DataFrame({"score": flag.astype(float), "flag": flag})
    y = np.zeros(20)
    s = event_scores(y, pred, meta)
    assert s["event_recall"] == pytest.approx(1 / 3) and s["point_precision"] == pytest.approx(2 / 4)
    assert s["median_delay_h"] == pytest.approx(1.0) and s["recall_y"] == 0.0
    assert s["n_detected_events"] == 3 and s["run_precision"] == pytest.approx(1 / 3)
    terms, combine = event_f1_terms(y, pred, meta)
    assert combine(terms.sum(axis=0))[0] == pytest.approx(s["event_f1"]) == pytest.approx(2 * 0.5 / 3 / (0.5 + 1 / 3))
