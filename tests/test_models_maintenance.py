"""m05 equipment_failure (XGBoost) and m06 overload_risk (calibrated RBF SVM): datasets from the
transformer-fleet twin, split grouped by asset and chronological, no look-ahead, model vs baseline."""

from __future__ import annotations

from datetime import timedelta

import cloudpickle
import numpy as np
import pandas as pd
import polars as pl
import pytest
from ladder import ladder_scores, strongest

from gridtwin_lib.datasets.maintenance import equipment_failure as dsm_ef
from gridtwin_lib.datasets.maintenance import overload_risk as dsm_or
from gridtwin_lib.datasets.maintenance import transformer_fleet as dsm_tf
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import digest, fit_and_evaluate
from gridtwin_lib.models.maintenance.equipment_failure import (
    M05_INPUT_COLUMNS,
    AgeLoadingLogistic,
    EquipmentFailure,
    failure_scores,
    lead_times_days,
)
from gridtwin_lib.models.maintenance.overload_risk import (
    M06_INPUT_COLUMNS,
    LoadTrendRule,
    OverloadRisk,
    PersistenceClass,
    YesterdayPeakRule,
    loading_class,
)
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("m05m06") / "store")
    for run in [*registry.get("m05_equipment_failure").simulation_runs("smoke"), *registry.get("m06_overload_risk").simulation_runs("smoke")]:
        run_scenario(**run, store=store, progress=False)
    return store


@pytest.fixture(scope="module")
def m05_data(store):
    return dsm_ef.equipment_failure(store)


@pytest.fixture(scope="module")
def m06_data(store):
    return dsm_or.overload_risk(store)


@pytest.fixture(scope="module")
def m05_fitted(m05_data):
    return fit_and_evaluate(EquipmentFailure(n_estimators=150, random_state=1), m05_data)


@pytest.fixture(scope="module")
def m06_fitted(m06_data):
    return fit_and_evaluate(OverloadRisk(max_train_rows=1500, random_state=1), m06_data)


@pytest.fixture(scope="module")
def ladder_store(tmp_path_factory) -> Store:
    """Larger fleets than the smoke runs, for the ladder tests: m05 200 days x 60 transformers (about
    ten test failures), m06 30 days x 20 transformers at 15 min (about 5,000 test rows)."""
    store = Store(tmp_path_factory.mktemp("m05m06_ladder") / "store")
    for model_id, duration, devices in (("m05_equipment_failure", "200d", 60), ("m06_overload_risk", "30d", 20)):
        for run in registry.get(model_id).simulation_runs("full"):  # the configured runs, resized
            run_scenario(**{**run, "duration": duration, "devices": devices}, store=store, progress=False)
    return store


def _grouped_and_chronological(ds):
    test_assets = set(ds.split["test_assets"])
    assert set(ds.meta_test["device_id"]) <= test_assets
    assert not set(ds.meta_train["device_id"]) & test_assets
    assert ds.meta_train["ts"].max() < ds.meta_test["ts"].min()
    assert ds.split["train"][1] < ds.split["test"][0]


def test_m05_dataset_shapes_labels_and_split(store, m05_data):
    ds = m05_data
    assert list(ds.X_train.columns) == list(M05_INPUT_COLUMNS) == list(ds.X_test.columns)
    assert ds.y_train.sum() > 0 and ds.y_test.sum() > 0 and set(np.unique(ds.y_train)) == {0, 1}
    _grouped_and_chronological(ds)
    # training labels never look past the cut
    cut = pd.Timestamp(ds.split["test"][0])
    assert (pd.to_datetime(ds.meta_train["ts"], utc=True) + timedelta(days=7) <= cut).all()
    # labels = a truth failure of the same asset in [t, t + 7 d)
    failures = store.scan_truth("failures", source=dsm_ef.M05_SOURCE).collect().to_pandas()
    ts = pd.to_datetime(ds.meta_test["ts"], utc=True)
    for k in np.flatnonzero(ds.y_test)[:20]:
        f = failures[(failures.device_id == ds.meta_test["device_id"][k])]
        assert ((f.ts >= ts[k]) & (f.ts < ts[k] + timedelta(days=7))).any()


def test_m05_features_are_causal(store, m05_data):
    """Features of day rows before a cut are identical when later observations are dropped."""
    full = dsm_ef.m05_daily_features(dsm_tf.fleet_observations(store, dsm_ef.M05_SOURCE, "m05"))
    cut = full["ts"].min() + timedelta(days=40)
    part = dsm_ef.m05_daily_features(dsm_tf.fleet_observations(store, dsm_ef.M05_SOURCE, "m05", end=cut - timedelta(days=1)))
    a = full.filter(pl.col("ts") < cut).sort("device_id", "ts").select(M05_INPUT_COLUMNS)
    b = part.filter(pl.col("ts") < cut).sort("device_id", "ts").select(M05_INPUT_COLUMNS)
    assert a.height == b.height > 0
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy())
    assert "median_life_constant_hazard_days" not in m05_data.X_train.columns and "consumed_life_years" not in m05_data.X_train.columns


def test_m05_fit_evaluate_same_rows_and_units(m05_data, m05_fitted):
    model, base, ev = m05_fitted
    assert ev.n_test == m05_data.n_test and ev.test_rows_digest == digest(m05_data.X_test)
    pred = ev.predictions["model"]
    assert list(pred.columns) == list(EquipmentFailure.spec.output_units)
    assert pred["p_fail_7d"].between(0, 1).all() and pred["alarm"].dtype == bool
    for metrics in (ev.metrics, ev.baseline_metrics):
        assert {"pr_auc", "brier", "median_lead_days", "failures_alarmed"} <= set(metrics)
    assert isinstance(base, AgeLoadingLogistic)
    assert 1 <= len(model.figures(m05_data, ev.predictions)) <= 3


def test_m05_lead_time_and_scores_by_hand():
    ts = pd.date_range("2025-01-01", periods=10, freq="D", tz="UTC").to_numpy()
    meta = {"ts": ts, "device_id": np.array(["a"] * 10), "horizon_days": 7.0,
            "failures": pd.DataFrame({"ts": [pd.Timestamp("2025-01-09", tz="UTC")], "device_id": ["a"]})}
    alarm = np.zeros(10, bool)
    alarm[[0, 4, 6]] = True  # day 0 is outside [f - 7 d, f); first alarm in the window: Jan 5 -> 4 days ahead
    leads, n = lead_times_days(alarm, meta)
    assert n == 1 and leads.tolist() == [4.0]
    y = np.array([0, 0, 1, 1, 1, 1, 1, 1, 0, 0])
    s = failure_scores(y, pd.DataFrame({"p_fail_7d": y * 0.9 + 0.05, "alarm": alarm}), meta)
    assert s["pr_auc"] == pytest.approx(1.0) and s["brier"] == pytest.approx(0.0025) and s["median_lead_days"] == 4.0


def test_m05_pickle_round_trip_and_input_errors(m05_data, m05_fitted):
    model = m05_fitted[0]
    again = cloudpickle.loads(cloudpickle.dumps(model))
    X = m05_data.X_test.head(50)
    pd.testing.assert_frame_equal(model.predict(X), again.predict(X))
    pd.testing.assert_frame_equal(model.predict(X.to_numpy()), model.predict(X))
    with pytest.raises(InputError):
        model.predict(X.drop(columns="age_years"))
    with pytest.raises(InputError):
        model.predict(X.assign(load_mean_1d=np.nan))


def test_m06_dataset_labels_are_next_hour_max_from_truth(store, m06_data):
    ds = m06_data
    assert list(ds.X_test.columns) == list(M06_INPUT_COLUMNS)
    _grouped_and_chronological(ds)
    assert set(np.unique(ds.y_train)) == {0, 1, 2}
    state = store.scan_truth("asset_state", source=dsm_or.M06_SOURCE).select("ts", "device_id", "load_pu").collect().to_pandas()
    ts = pd.to_datetime(ds.meta_test["ts"], utc=True)
    rng = np.random.default_rng(0)
    for k in rng.choice(ds.n_test, 15, replace=False):
        s = state[(state.device_id == ds.meta_test["device_id"][k]) & (state.ts > ts[k]) & (state.ts <= ts[k] + timedelta(hours=1))]
        assert len(s) == 4  # 15-min readings: the next hour has four
        assert loading_class([s.load_pu.max()])[0] == ds.y_test[k]
        assert ds.meta_test["max_next_pu"][k] == pytest.approx(s.load_pu.max())


def test_m06_features_are_causal(store):
    obs = dsm_tf.fleet_observations(store, dsm_or.M06_SOURCE, "m06")
    cut = obs["ts"].min() + timedelta(days=3)
    a = dsm_or.m06_features(obs, 10.0).filter(pl.col("ts") < cut).select(M06_INPUT_COLUMNS)
    b = dsm_or.m06_features(obs.filter(pl.col("ts") < cut), 10.0).select(M06_INPUT_COLUMNS)
    assert a.height == b.height > 0
    np.testing.assert_allclose(a.fill_null(-1).to_numpy(), b.fill_null(-1).to_numpy())


def test_m06_fit_evaluate_baseline_and_round_trip(m06_data, m06_fitted):
    model, base, ev = m06_fitted
    assert ev.n_test == m06_data.n_test and ev.test_rows_digest == digest(m06_data.X_test)
    pred = ev.predictions["model"]
    assert list(pred.columns) == list(OverloadRisk.spec.output_units)
    np.testing.assert_allclose(pred[["p_lt80", "p_80_100", "p_gt100"]].sum(axis=1), 1.0, atol=1e-9)
    assert model.n_train_rows_ <= 1500
    assert {"macro_f1", "recall_gt100", "accuracy"} <= set(ev.metrics)
    # persistence is the class of the current measured load
    bl = PersistenceClass().fit(m06_data.X_test).predict(m06_data.X_test)
    np.testing.assert_array_equal(bl["load_class"], loading_class(m06_data.X_test["load_pu"]))
    assert ev.baseline_metrics["macro_f1"] == pytest.approx(model.evaluate(m06_data.y_test, bl)["macro_f1"])
    again = cloudpickle.loads(cloudpickle.dumps(model))
    X = m06_data.X_test.head(40)
    pd.testing.assert_frame_equal(model.predict(X), again.predict(X))
    assert len(model.figures(m06_data, ev.predictions)) >= 1
    with pytest.raises(InputError):
        model.predict(X.iloc[:, :5].to_numpy())


def test_m05_ladder_xgboost_does_not_beat_its_strongest_logistic_baseline(ladder_store):
    """Honest finding, stable over the eight splits we tried (three fleet sizes, three asset draws): the
    XGBoost never beats the strongest of its logistic baselines (age and loading; estimated equivalent
    age; all 27 inputs) on PR-AUC; which baseline is strongest varies with the split. The gate then
    serves that baseline. If XGBoost ever beats all three here, this test fails on purpose: turn it round."""
    ds = dsm_ef.equipment_failure(ladder_store)
    assert ds.meta_test["failures"].shape[0] >= 8  # failures in the test range, not one
    model = EquipmentFailure(n_estimators=150, random_state=1)
    pr_auc, scores = ladder_scores(model, ds)
    print(f"\nm05 pr_auc (base rate {ds.y_test.mean():.3f}): model {pr_auc:.3f}; ladder {scores}")
    assert list(scores) == ["AgeLoadingLogistic", "EquivalentAgeLogistic", "AllInputsLogistic"]
    assert strongest(model, scores)[1] >= pr_auc, (pr_auc, scores)


def test_m06_ladder_svm_beats_the_rules_not_the_logistic_regression(ladder_store):
    """The SVM must beat every rule of its ladder (persistence of the class, the load trend carried one
    hour ahead, the same hour yesterday) by 0.04 macro-F1 on held-out assets and hours. Honest finding:
    a multinomial logistic regression on the same 14 inputs is as good or better (ahead by 0.03 on this
    split, behind by 0.02 on another), so the SVM's edge over it is not established; the test checks
    that the SVM is not ahead of it by more than 0.02."""
    ds = dsm_or.overload_risk(ladder_store)
    model = OverloadRisk(max_train_rows=3000, random_state=1)
    f1, scores = ladder_scores(model, ds)
    print(f"\nm06 macro_f1: model {f1:.3f}; ladder {scores}")
    assert list(scores) == ["PersistenceClass", "LoadTrendRule", "YesterdayPeakRule", "InputLogistic"]
    rules = {k: v for k, v in scores.items() if k != "InputLogistic"}
    assert f1 > max(rules.values()) + 0.04, (f1, scores)
    assert scores["LoadTrendRule"] > scores["PersistenceClass"]  # the trend carries information persistence lacks
    assert f1 < scores["InputLogistic"] + 0.02, (f1, scores)


def test_m06_rules_by_hand():
    X = pd.DataFrame(np.zeros((3, len(M06_INPUT_COLUMNS))), columns=list(M06_INPUT_COLUMNS))
    X["load_pu"] = [0.7, 0.9, 0.75]
    X["load_lag4"] = [0.7, 0.7, 0.6]       # rising by 0.2 and 0.15 pu in the last hour
    X["load_max_next1h_yday"] = [1.05, 0.5, 0.5]
    assert LoadTrendRule().fit(X).predict(X)["load_class"].tolist() == [0, 2, 1]
    assert YesterdayPeakRule().fit(X).predict(X)["load_class"].tolist() == [2, 1, 0]


def test_input_errors_on_missing_source_and_window(tmp_path, store):
    empty = Store(tmp_path / "empty")
    with pytest.raises(InputError, match="no asset_observations"):
        dsm_ef.equipment_failure(empty)
    with pytest.raises(InputError, match="no asset_observations"):
        dsm_or.overload_risk(empty)
    with pytest.raises(InputError):
        dsm_or.overload_risk(store, start="2001-01-01", end="2001-01-02")
    with pytest.raises(InputError, match="test_asset_fraction"):
        dsm_ef.equipment_failure(store, test_asset_fraction=1.5)
    with pytest.raises(InputError, match="finer resolution"):
        dsm_or.overload_risk(store, source=dsm_ef.M05_SOURCE)  # hourly readings
