"""m01 voltage anomaly and m04 phase imbalance: interface, splits, scoring, no look-ahead."""

from __future__ import annotations

from datetime import timedelta

import cloudpickle
import numpy as np
import pandas as pd
import polars as pl
import pytest
from ladder import ladder_scores, strongest

from gridtwin_lib import features
from gridtwin_lib.datasets import common as D_c
from gridtwin_lib.datasets.monitoring import phase_imbalance as D_pi
from gridtwin_lib.datasets.monitoring import voltage_anomaly as D_va
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import digest, fit_and_evaluate
from gridtwin_lib.models.monitoring import phase_imbalance as M_pi
from gridtwin_lib.models.monitoring import voltage_anomaly as M_va
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def m01_store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("m01") / "store")
    run_scenario("mixed", duration="1d", resolution="1s", seed=11, devices=1, source=D_va.M01_SOURCE, store=store, progress=False)
    return store


@pytest.fixture(scope="module")
def m01_data(m01_store):
    return D_va.voltage_anomaly(m01_store, test_days=0.3)


@pytest.fixture(scope="module")
def m01_fitted(m01_data):
    return M_va.VoltageAnomaly(n_estimators=30, random_state=3).fit(m01_data.X_train)


@pytest.fixture(scope="module")
def m04_store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("m04") / "store")
    for run in ({**run, "devices": 2} for run in registry.get("m04_phase_imbalance").simulation_runs("smoke")):
        run_scenario(**run, store=store, progress=False)
    return store


@pytest.fixture(scope="module")
def m04_data(m04_store):
    return D_pi.phase_imbalance(m04_store, holdout_devices=1)


# --------------------------------------------------------------------------- m01


def test_m01_predicts_a_score_and_a_flag_per_reading(m01_data, m01_fitted):
    out = m01_fitted.predict(m01_data.X_test)
    assert list(out.columns) == list(M_va.VoltageAnomaly.spec.output_units)
    assert len(out) == m01_data.n_test
    assert out["is_anomaly"].dtype == bool
    assert ((out["anomaly_score"] > 0) & (out["anomaly_score"] <= 1)).all()
    # the flag is the score above the fitted threshold (the training contamination quantile)
    assert (out["is_anomaly"] == (out["anomaly_score"] > m01_fitted.threshold_)).all()
    assert m01_data.y_train is None  # never trained on labels


def test_m01_model_and_baseline_are_scored_on_the_same_rows(m01_data):
    model, baseline, ev = fit_and_evaluate(M_va.VoltageAnomaly(n_estimators=30), m01_data)
    assert isinstance(baseline, M_va.EN50160VoltageRule)
    assert ev.n_test == m01_data.n_test
    assert ev.test_rows_digest == digest(m01_data.X_test)
    for metrics in (ev.metrics, ev.baseline_metrics):
        assert {"event_f1", "event_pr_auc", "median_delay_s", "event_recall"} <= set(metrics)
    assert ev.metrics["n_target_events"] == ev.baseline_metrics["n_target_events"] > 0
    assert set(ev.figures) == {"pr_curve", "recall_by_event_type", "timeline"}


def test_m01_is_judged_on_injected_drivers_only(m01_data):
    events = m01_data.meta_test["events"]
    targets = events[events["role"] == "target"]
    assert len(targets) >= 10 and set(targets["type"]) <= set(M_va.DRIVER_EVENT_TYPES)
    # threshold crossings of the input channels are no targets: their windows are left out of precision
    crossings = events[events["type"].isin(M_va.OTHER_DISTURBANCE_TYPES)]
    assert (crossings["role"] != "target").all()


def test_m01_beats_the_strongest_rule_of_its_ladder(m01_data):
    """The forest must beat every rule of the ladder (EN 50160 voltage and multi-channel limits, current
    step, their union, robust z-scores) on the drivers of the held-out range by 0.15 event-F1."""
    model = M_va.VoltageAnomaly(n_estimators=30, random_state=3)
    f1, scores = ladder_scores(model, m01_data)
    assert list(scores)[0] == "EN50160VoltageRule" and len(scores) == 5
    name, best = strongest(model, scores)
    print(f"\nm01 event_f1: model {f1:.3f}; ladder {scores}")
    assert f1 > best + 0.15, (f1, scores)
    # the multi-channel rule sees more than the voltage-only rule: a fairer, stronger baseline
    assert scores["EN50160MultiChannelRule"] > scores["EN50160VoltageRule"]


def test_m01_ladder_rules_flag_at_their_limits():
    X = pd.DataFrame({c: np.zeros(5) for c in M_va.M01_INPUT_COLUMNS})
    X["i_mean_15m"] = 10.0
    X.loc[1, "v_unbalance_pct"] = 2.5        # above the EN 50160 unbalance limit (2 %)
    X.loc[2, "freq_dev_hz"] = -0.6           # outside 50 Hz +- 0.5 Hz
    X.loc[3, "thd_v_pct"] = 8.5              # above 8 % THD
    X.loc[4, "i_max_a"] = 16.0               # a 60 % current step over the 15-min mean
    X.loc[:3, "i_max_a"] = 10.0
    multi = M_va.EN50160MultiChannelRule().fit(X).predict(X)["is_anomaly"].tolist()
    step = M_va.CurrentStepRule().fit(X).predict(X)["is_anomaly"].tolist()
    both = M_va.MultiChannelAndCurrentStepRule().fit(X).predict(X)["is_anomaly"].tolist()
    assert multi == [False, True, True, True, False] and step == [False] * 4 + [True] and both == [False] + [True] * 4


def test_m01_split_is_chronological(m01_data):
    train_max = m01_data.meta_train["ts"].max()
    test_min = pd.Timestamp(int(m01_data.meta_test["ts_us"].min()), unit="us", tz="UTC")
    assert train_max < test_min
    assert pd.Timestamp(m01_data.split["train"][1]) <= test_min
    assert pd.Timestamp(m01_data.split["train"][0]) < pd.Timestamp(m01_data.split["test"][0])


def test_m01_prediction_at_t_ignores_later_readings(m01_store, m01_fitted):
    frame = m01_store.scan("three_phase", source=D_va.M01_SOURCE).collect().head(3 * 3600)
    t = frame["ts"][2 * 3600]
    later = pl.col("ts") > t
    changed = frame.with_columns(
        pl.when(later).then(pl.col("v_a") * 0.5).otherwise(pl.col("v_a")).alias("v_a"),
        pl.when(later).then(pl.col("frequency") + 0.4).otherwise(pl.col("frequency")).alias("frequency"),
        pl.when(later).then(pl.col("i_b") * 3.0).otherwise(pl.col("i_b")).alias("i_b"),
    )

    def predict(f):
        feats = features.compute(f, "three_phase", windows=("1m", "15m"))
        return feats["ts"].to_numpy(), m01_fitted.predict(feats.select(M_va.M01_INPUT_COLUMNS).to_pandas())

    ts0, p0 = predict(frame)
    ts1, p1 = predict(changed)
    upto = ts0 <= np.datetime64(t.replace(tzinfo=None))
    assert np.array_equal(ts0, ts1) and upto.sum() == 2 * 3600 + 1
    np.testing.assert_array_equal(p0["anomaly_score"].to_numpy()[upto], p1["anomaly_score"].to_numpy()[upto])
    assert not np.array_equal(p0["anomaly_score"].to_numpy()[~upto], p1["anomaly_score"].to_numpy()[~upto])


def test_m01_day_chunked_features_equal_one_pass(m01_store):
    lo, hi, _ = D_c.time_range(m01_store, D_va.M01_SOURCE)
    cols = M_va.M01_INPUT_COLUMNS
    stop = hi + timedelta(microseconds=1)
    chunked = D_c.features_by_day(m01_store, D_va.M01_SOURCE, lo + timedelta(hours=6), stop, ("1m", "15m"), cols)
    whole = features.compute(m01_store.scan("three_phase", source=D_va.M01_SOURCE).collect(), "three_phase", windows=("1m", "15m"))
    whole = whole.filter(pl.col("ts") >= lo + timedelta(hours=6)).select("ts", "device_id", *cols)
    assert chunked.height == whole.height and chunked["ts"].equals(whole["ts"])
    for c in cols:
        np.testing.assert_allclose(chunked[c].to_numpy(), whole[c].to_numpy(), rtol=1e-5, atol=1e-6, err_msg=c)  # float sums from another origin


def test_m01_survives_cloudpickle(m01_data, m01_fitted):
    again = cloudpickle.loads(cloudpickle.dumps(m01_fitted))
    pd.testing.assert_frame_equal(again.predict(m01_data.X_test), m01_fitted.predict(m01_data.X_test))


def _with_edge_values(X: pd.DataFrame, columns) -> pd.DataFrame:
    """A copy with non-finite, zero and float32-overflowing values in a few rows."""
    X = X.copy()
    for row, (col, value) in enumerate(zip(columns, [np.nan, np.inf, -np.inf, 0.0, 1e40, -1e40, np.nan, 0.0])):
        X.iloc[row, X.columns.get_loc(col)] = value
    return X


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # the 1e40 inputs
def test_m01_one_reading_equals_its_row_of_a_batch(m01_data, m01_fitted):
    X = m01_data.X_test.iloc[:: max(1, m01_data.n_test // 400)].iloc[:400]
    X = _with_edge_values(X, ["v_a", "thd_v_pct", "freq_dev_hz", "i_mean_15m", "i_max_a", "p_total_slope_15m", "v_std_1m", "v_c"])
    assert len(X) > M_va._M01_FLAT_MAX_ROWS  # the batch takes scikit-learn's score_samples, one row the flat walk
    batch = m01_fitted.predict(X)
    ones = pd.concat([m01_fitted.predict(X.iloc[[i]]) for i in range(len(X))])
    pd.testing.assert_frame_equal(ones, batch, check_exact=True)
    # the flat walk of all trees reproduces scikit-learn bit for bit, also on small batches and array input
    Z = m01_fitted._design(X)
    assert m01_fitted.flat_forest_ is not None
    np.testing.assert_array_equal(M_va._flat_score(m01_fitted.flat_forest_, Z), -m01_fitted.forest_.score_samples(Z))
    arr = X[list(M_va.M01_INPUT_COLUMNS)].to_numpy()
    pd.testing.assert_frame_equal(m01_fitted.predict(arr[:50]), batch.iloc[:50].reset_index(drop=True), check_exact=True)
    # a model pickled before the flat forest existed builds it on first use
    older = cloudpickle.loads(cloudpickle.dumps(m01_fitted))
    del older.flat_forest_
    pd.testing.assert_frame_equal(older.predict(X.iloc[:7]), batch.iloc[:7], check_exact=True)
    assert older.flat_forest_ is not None


def test_en50160_rule_flags_more_than_ten_percent():
    X = pd.DataFrame({c: [0.0, 0.0, 0.0] for c in M_va.M01_INPUT_COLUMNS})
    X["v_max_abs_dev_pct"] = [9.9, 10.1, 100.0]
    out = M_va.EN50160VoltageRule().fit(X).predict(X)
    assert out["is_anomaly"].tolist() == [False, True, True]
    np.testing.assert_allclose(out["anomaly_score"], [0.099, 0.101, 1.0])


def _events(rows):
    return pd.DataFrame(rows, columns=["ts_us", "end_us", "device_id", "type"]).assign(cause="x")


def test_m01_event_scores_on_a_hand_made_case():
    s = 1_000_000
    ts = np.arange(100) * s
    dev = np.array(["d"] * 100)
    ev = _events([(10 * s, 15 * s, "d", "motor_start"), (50 * s, 52 * s, "d", "gen_trip"), (80 * s, 82 * s, "d", "sag")])
    ev["role"] = D_va._event_roles(ev, M_va.TARGET_EVENT_TYPES, split_us=0)
    assert ev["role"].tolist() == ["target", "target", "rule"]
    y = D_va._window_labels(ts, dev, ev, tolerance_s=5.0, onset_s=60.0)
    assert y[10:20].tolist() == [1] * 10 and y[9] == 0 and y[20] == 0 and y[80:87].tolist() == [-1] * 7
    meta = {"ts_us": ts, "device_id": dev, "events": ev, "tolerance_s": 5.0, "merge_gap_s": 10.0}
    flag = np.zeros(100, bool)
    flag[[12, 30, 81]] = True  # a hit 2 s into event 1, a false alarm, a flag inside the sag (left out)
    r = M_va.event_scores(y, pd.DataFrame({"anomaly_score": flag.astype(float), "is_anomaly": flag}), meta)
    assert r["event_recall"] == 0.5 and r["point_precision"] == 0.5 and r["event_f1"] == pytest.approx(0.5)
    assert r["median_delay_s"] == 2.0 and r["recall_rule_defined"] == 1.0
    assert r["recall_motor_start"] == 1.0 and r["recall_gen_trip"] == 0.0
    # flagging everything: full recall, precision = share of onset readings among counted ones
    everything = np.ones(100, bool)
    r = M_va.event_scores(y, pd.DataFrame({"anomaly_score": np.ones(100), "is_anomaly": everything}), meta)
    assert r["event_recall"] == 1.0 and r["point_precision"] == pytest.approx((y == 1).sum() / (y >= 0).sum())


def test_m01_roles_leave_out_what_the_rule_defines():
    s = 1_000_000
    ev = _events([
        (100 * s, 104 * s, "d", "sag"),
        (100 * s, 104 * s, "d", "unbalance"),        # the sag's own LVUR crossing
        (300 * s, 303 * s, "d", "unbalance"),        # an unbalance without a sag: a target
        (100 * s, 101 * s, "d", "fault"),            # a driver that starts the sag: a target
        (1000 * s, 9000 * s, "d", "interruption"),
        (2000 * s, 2005 * s, "d", "motor_start"),    # drawn during the outage
        (10 * s, 20 * s, "d", "motor_start"),        # before the test range
    ])
    roles = D_va._event_roles(ev, M_va.TARGET_EVENT_TYPES, split_us=50 * s)
    assert roles.tolist() == ["rule", "cooccurring", "target", "target", "rule", "cooccurring", "ignore"]


def test_m01_builder_refuses_a_missing_source_or_an_empty_window(m01_store, tmp_path):
    with pytest.raises(InputError, match="simulate them first"):
        D_va.voltage_anomaly(Store(tmp_path / "empty"))
    with pytest.raises(InputError, match="no readings"):
        D_va.voltage_anomaly(m01_store, start="2030-01-01", end="2030-01-02")
    with pytest.raises(InputError, match="test_days"):
        D_va.voltage_anomaly(m01_store, test_days=5.0)


# --------------------------------------------------------------------------- m04


def test_m04_split_is_chronological_grouped_by_device_and_keeps_every_cause(m04_data):
    mt, mr = m04_data.meta_test, m04_data.meta_train
    assert mr["ts"].max() < mt["ts"].min()
    assert set(mr["device_id"]) == {"grid-000"} and set(mt["device_id"]) == {"grid-001"}
    assert set(m04_data.y_train) == set(m04_data.y_test) == set(M_pi.UNBALANCE_CLASSES)
    # night rows of the PV run are balanced: the PV injects nothing there
    pv = mt[mt["unbalance_cause"] == "unbalanced_pv"]
    assert (pv.loc[pv["pv_kw"] < 3.0, "label"] == "balanced").all() and (pv["label"] == "unbalanced_pv").any()


def test_m04_tree_beats_the_severity_rule_and_exports_rules(m04_data):
    model, baseline, ev = fit_and_evaluate(M_pi.PhaseImbalance(min_samples_leaf=10), m04_data)
    assert ev.n_test == m04_data.n_test and ev.test_rows_digest == digest(m04_data.X_test)
    assert isinstance(baseline, M_pi.UnbalanceSeverityRule)
    pred = model.predict(m04_data.X_test)
    assert list(pred.columns) == ["cause"] and set(pred["cause"]) <= set(M_pi.UNBALANCE_CLASSES)
    assert model.tree_.get_depth() <= 6
    assert "class: open_conductor" in model.rules_ and "|---" in model.rules_
    assert ev.metrics["macro_f1"] > ev.baseline_metrics["macro_f1"] + 0.3
    assert set(ev.figures) == {"confusion", "feature_importance", "f1_by_cause"}


def test_m04_ladder_the_tree_beats_the_rules_but_not_the_logistic_regression(m04_data):
    """Honest finding on this small data (seeded): the depth-6 tree beats the severity bands and the
    phase-aware rule by a wide margin, but a multinomial logistic regression on the same design
    columns beats the tree; the gate then serves the logistic regression. If the tree improves
    past it, this test fails on purpose: turn it round."""
    model = M_pi.PhaseImbalance(min_samples_leaf=10)
    f1, scores = ladder_scores(model, m04_data)
    print(f"\nm04 macro_f1: model {f1:.3f}; ladder {scores}")
    assert list(scores) == ["UnbalanceSeverityRule", "PhaseAwareRule", "DesignLogistic"]
    assert f1 > scores["PhaseAwareRule"] + 0.15 and scores["PhaseAwareRule"] > scores["UnbalanceSeverityRule"] + 0.2
    assert strongest(model, scores)[0] == "DesignLogistic"
    assert scores["DesignLogistic"] > f1 + 0.02


def test_m04_phase_aware_rule_names_the_phase():
    X = pd.DataFrame({c: np.zeros(4) for c in M_pi.M04_INPUT_COLUMNS})
    X[["v_a", "v_b", "v_c", "v_mean_v"]] = 230.0
    X[["i_a", "i_b", "i_c", "i_mean_a"]] = 10.0
    X.loc[1, ["i_a", "i_b", "i_c"]] = [10.0, 18.0, 8.0]       # phase b carries 50 % of the current
    X.loc[2, ["v_a", "v_b", "v_c"]] = [240.0, 240.0, 120.0]   # phase c far below the phase mean
    X.loc[3, ["v_a", "v_b", "v_c"]] = [233.0, 229.0, 229.0]   # phase a pushed up while its current drops
    X.loc[3, ["i_a", "i_b", "i_c"]] = [5.0, 12.0, 13.0]
    X["v_mean_v"] = X[["v_a", "v_b", "v_c"]].mean(axis=1)
    X["i_mean_a"] = X[["i_a", "i_b", "i_c"]].mean(axis=1)
    rule = M_pi.PhaseAwareRule(search=False).fit(X, ["balanced"] * 4)
    assert rule.predict(X)["cause"].tolist() == ["balanced", "single_phase_overload_b", "open_conductor", "unbalanced_pv"]


def test_m04_refuses_deep_trees_and_survives_cloudpickle(m04_data):
    with pytest.raises(ValueError, match="max_depth"):
        M_pi.PhaseImbalance(max_depth=7).fit(m04_data.X_train, m04_data.y_train)
    model = M_pi.PhaseImbalance(max_depth=4).fit(m04_data.X_train, m04_data.y_train)
    again = cloudpickle.loads(cloudpickle.dumps(model))
    pd.testing.assert_frame_equal(again.predict(m04_data.X_test), model.predict(m04_data.X_test))
    # per-reading: a row's prediction does not depend on the other rows
    one = model.predict(m04_data.X_test.iloc[[17]])
    assert one["cause"].iloc[0] == model.predict(m04_data.X_test)["cause"].iloc[17]


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # the 1e40 inputs
def test_m04_one_reading_equals_its_row_of_a_batch_and_the_tree_predict(m04_data):
    model = M_pi.PhaseImbalance(min_samples_leaf=10).fit(m04_data.X_train, m04_data.y_train)
    X = m04_data.X_test.iloc[:: max(1, m04_data.n_test // 300)]
    X = _with_edge_values(X, ["v_a", "i_b", "v_mean_v", "i_mean_a", "pf_c", "v_c", "v_unbalance_pct", "i_c"])
    X.iloc[4, X.columns.get_loc("pf_c")] = X.iloc[5, X.columns.get_loc("v_c")] = 1e30  # finite in float32
    batch = model.predict(X)
    ones = pd.concat([model.predict(X.iloc[[i]]) for i in range(len(X))])
    pd.testing.assert_frame_equal(ones, batch, check_exact=True)
    # the same classes as DecisionTreeClassifier.predict on the filled design (non-finite -> training median)
    design = M_pi._m04_design(X).replace([np.inf, -np.inf], np.nan).fillna(model.fill_)
    assert list(design.columns) == model.feature_names_
    np.testing.assert_array_equal(batch["cause"].to_numpy(), model.tree_.predict(design.to_numpy()))
    np.testing.assert_array_equal(model.predict_proba(X), model.tree_.predict_proba(design.to_numpy()))
    # a model pickled before the cached arrays existed rebuilds them
    older = cloudpickle.loads(cloudpickle.dumps(model))
    del older.fill_values_, older.leaf_class_
    pd.testing.assert_frame_equal(older.predict(X), batch, check_exact=True)
    # beyond float32, scikit-learn refuses the input, and so does the model
    huge = X.iloc[[0]].assign(pf_a=1e40)
    with pytest.raises(ValueError, match="too large"):
        model.predict(huge)


def test_m04_cause_scores_match_a_hand_count():
    r = M_pi.cause_scores(np.array(["a", "a", "b", "b"]), pd.DataFrame({"cause": ["a", "b", "b", "c"]}))
    assert r["accuracy"] == 0.5 and r["f1_a"] == pytest.approx(2 / 3) and r["f1_b"] == pytest.approx(0.5)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.5) / 2)


def test_m04_builder_refuses_missing_sources_and_one_sided_classes(m04_store, tmp_path):
    with pytest.raises(InputError, match="simulate them first"):
        D_pi.phase_imbalance(Store(tmp_path / "empty"))
    # without the balanced and the PV runs (whose nights are balanced), "balanced" is pre-onset only
    causes_only = [s for s in D_pi.M04_SOURCES if "balanced" not in s]
    with pytest.raises(InputError, match="one side of the cut"):
        D_pi.phase_imbalance(m04_store, sources=causes_only, holdout_devices=0)
    with pytest.raises(InputError, match="holdout_devices"):
        D_pi.phase_imbalance(m04_store, holdout_devices=2)
    with pytest.raises(InputError, match="no readings"):
        D_pi.phase_imbalance(m04_store, start="2030-01-01", end="2030-01-02")


def test_simulations_and_params_are_well_formed():
    from gridtwin_lib.simulate import prepare

    for size in ("full", "smoke"):
        sources = [r["source"] for r in [*registry.get("m01_voltage_anomaly").simulation_runs(size), *registry.get("m04_phase_imbalance").simulation_runs(size)]]
        assert len(sources) == len(set(sources)) and all(s.startswith("sim:m0") for s in sources)
        for run in [*registry.get("m01_voltage_anomaly").simulation_runs(size), *registry.get("m04_phase_imbalance").simulation_runs(size)]:
            args = {k: v for k, v in run.items() if k != "source"}
            prepare(**args)  # valid scenario, durations and overrides
        assert set(D_pi.M04_SOURCES) <= set(sources)


def test_m01_bootstrap_terms_reproduce_event_f1_and_take_the_terms_path(m01_data):
    """(a) per-row counts (detected events and events on their onset row, hit and miss flags)
    give evaluate's event F1 on the full sample for the model and every rule; (b) the bootstrap
    uses them (method "terms"), so events are resampled with their rows and the point value lies
    inside its own interval."""
    model, _, ev = fit_and_evaluate(M_va.VoltageAnomaly(n_estimators=30, random_state=3), m01_data, n_replicates=200)
    for pred in [ev.predictions["model"], *ev.ladder_predictions.values()]:
        terms, combine = model.bootstrap_terms(m01_data.y_test, pred, m01_data.meta_test)
        assert terms.shape == (m01_data.n_test, 4)
        assert terms[:, 1].sum() == model.evaluate(m01_data.y_test, pred, m01_data.meta_test)["n_target_events"] > 0
        want = model.evaluate(m01_data.y_test, pred, m01_data.meta_test)["event_f1"]
        assert combine(terms.sum(axis=0, keepdims=True))[0] == pytest.approx(want, rel=1e-9, abs=1e-12)
    unc = ev.uncertainty
    assert unc.method == "terms" and unc.n_replicates == 200
    assert unc.model.low - 1e-12 <= unc.model.value <= unc.model.high + 1e-12


@pytest.mark.parametrize("n_classes, scaled", [(2, True), (3, True), (4, False)])
def test_flat_logistic_equals_scikit_learn_and_falls_back_where_it_cannot(n_classes, scaled):
    """The NumPy evaluation of logistic regressions (m04's and m08's ladders on a few readings)
    gives scikit-learn's probabilities and classes; rows with NaN, large batches and other
    pipelines go to scikit-learn itself."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    from gridtwin_lib.models import _linear

    rng = np.random.default_rng(n_classes)
    X = rng.normal(5.0, 3.0, (400, 6))
    y = np.array(["low", "mid", "high", "top"])[:n_classes][np.digitize(X[:, 0] + rng.normal(0, 1, 400), [3, 5, 7])[:, None] % n_classes].ravel()
    model = (make_pipeline(StandardScaler(), LogisticRegression()) if scaled else LogisticRegression()).fit(X, y)
    assert _linear.FlatLogistic.verified(model) is not None
    for rows in (X[:1], X[:7], X[:_linear.FLAT_MAX_ROWS + 1]):
        np.testing.assert_allclose(_linear.logistic_proba(model, rows), model.predict_proba(rows), rtol=1e-12, atol=1e-12)
        assert np.array_equal(_linear.logistic_predict(model, rows), model.predict(rows))
    other = make_pipeline(MinMaxScaler(), LogisticRegression()).fit(X, y)
    assert _linear.FlatLogistic.verified(other) is None
    np.testing.assert_array_equal(_linear.logistic_proba(other, X[:3]), other.predict_proba(X[:3]))
    gap = X[:2].copy()
    gap[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):  # as scikit-learn refuses it, not a silent number
        _linear.logistic_proba(model, gap)
