"""m02 harmonic_analysis: dataset from the store, FFT spectrum, model vs RMS/THD rules."""

from __future__ import annotations

import math

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from ladder import ladder_scores, strongest

from gridtwin_lib.datasets.monitoring import harmonic_analysis as dsm_ha
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import _trees as trees
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import digest, fit_and_evaluate
from gridtwin_lib.models.monitoring import harmonic_analysis as mpq
from gridtwin_lib.models.monitoring.harmonic_analysis import (
    CLASSES,
    SAMPLE_COLUMNS,
    HarmonicAnalysis,
    RmsThdRules,
    fft_features,
    harmonic_spectrum,
)
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.simulate.waveforms import generate_windows
from gridtwin_lib.store import Store

A = 230.0 * math.sqrt(2.0)
T = np.arange(640) / 3200.0


@pytest.fixture(scope="module")
def pq_store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("m02") / "store")
    for run in registry.get("m02_harmonic_analysis").simulation_runs("smoke"):
        run_scenario(**run, store=store, progress=False)
    return store


@pytest.fixture(scope="module")
def dataset(pq_store):
    return dsm_ha.harmonic_analysis(pq_store, test_fraction=0.3)


@pytest.fixture(scope="module")
def fitted(dataset):
    return fit_and_evaluate(HarmonicAnalysis(n_estimators=60, random_state=1), dataset)


def test_dataset_is_chronological_and_holds_every_snr(dataset):
    assert list(dataset.X_train.columns) == SAMPLE_COLUMNS
    assert dataset.meta_train["ts"].max() < dataset.meta_test["ts"].min()
    assert sorted(dataset.meta_test["snr_db"].unique()) == [20.0, 30.0, 40.0]
    assert sorted(dataset.meta_train["snr_db"].unique()) == [20.0, 30.0, 40.0]
    assert set(dataset.y_train) <= set(CLASSES) and set(dataset.y_test) <= set(CLASSES)
    assert dataset.n_train + dataset.n_test == 3 * 10 * 20
    assert dataset.split["train"][1] < dataset.split["test"][0]  # ISO strings of one timezone sort by time
    # inputs are the stored samples of the right window: the FFT THD matches the injected one
    harm = (dataset.meta_test["thd_true_pct"] > 0).to_numpy()
    thd = harmonic_spectrum(dataset.X_test[harm])["thd_pct"].to_numpy()
    assert np.median(np.abs(thd - dataset.meta_test["thd_true_pct"].to_numpy()[harm])) < 1.5


def test_spectrum_reports_injected_harmonics_exactly():
    x, labels = generate_windows(8, math.inf, seed=3, classes=["harmonics"])
    spec = HarmonicAnalysis().spectrum(pd.DataFrame(x, columns=SAMPLE_COLUMNS))
    assert list(spec.columns) == ["fundamental_v", "thd_pct", *[f"h{k}" for k in range(2, 16)]]
    np.testing.assert_allclose(spec["thd_pct"], labels["thd_true_pct"].to_numpy(), rtol=1e-3)
    np.testing.assert_allclose(spec["fundamental_v"], 230.0, rtol=1e-3)
    assert (spec[["h2", "h4", "h6", "h8", "h10", "h12", "h14", "h15"]].to_numpy() < 1e-3).all()  # only odd 3..13 injected
    sine = A * np.sin(2 * np.pi * 50 * T) + 0.1 * A * np.sin(2 * np.pi * 250 * T)
    one = harmonic_spectrum(sine[None, :])
    assert one["h5"].iloc[0] == pytest.approx(10.0, rel=1e-6) and one["thd_pct"].iloc[0] == pytest.approx(10.0, rel=1e-6)


def test_rules_baseline_on_textbook_windows():
    s = np.sin(2 * np.pi * 50 * T + 0.3)
    windows = np.stack([
        A * s,  # normal
        A * s * np.where((T > 0.04) & (T < 0.12), 0.5, 1.0),  # sag to 0.5 pu for 4 cycles
        A * s * np.where((T > 0.04) & (T < 0.12), 1.4, 1.0),  # swell
        A * s * np.where((T > 0.04) & (T < 0.12), 0.02, 1.0),  # interruption
        A * (s + 0.12 * np.sin(3 * (2 * np.pi * 50 * T + 0.3))),  # harmonics, THD 12 %
    ])
    pred = RmsThdRules().fit(windows).predict(windows)
    assert pred["label"].tolist() == ["normal", "sag", "swell", "interruption", "harmonics"]


def test_fit_predict_shapes_and_units(fitted, dataset):
    model, _, _ = fitted
    pred = model.predict(dataset.X_test)
    assert list(pred.columns) == list(HarmonicAnalysis.spec.output_units)
    assert len(pred) == dataset.n_test and set(pred["label"]) <= set(CLASSES)
    assert (pred["thd_pct"] >= 0).all() and (pred["thd_pct"] < 100).all()
    # array input gives the same answer; a row's class does not depend on the other rows
    np.testing.assert_array_equal(model.predict(dataset.X_test.to_numpy())["label"], pred["label"])
    np.testing.assert_array_equal(model.predict(dataset.X_test.iloc[5:9])["label"], pred["label"].iloc[5:9])
    proba = model.predict_proba(dataset.X_test.iloc[:4])
    assert proba.shape == (4, len(model.classes_)) and np.allclose(proba.sum(axis=1), 1.0)


def test_fit_and_evaluate_scores_model_and_baseline_on_the_same_rows(fitted, dataset):
    _, baseline, ev = fitted
    assert isinstance(baseline, RmsThdRules)
    assert ev.n_test == dataset.n_test and ev.test_rows_digest == digest(dataset.X_test)
    for metrics in (ev.metrics, ev.baseline_metrics):
        assert {"macro_f1", "macro_f1_snr20", "macro_f1_snr30", "macro_f1_snr40", "accuracy", "thd_mae_pct"} <= set(metrics)
    # the FFT THD is close to the injected one (model and rules report the same FFT value)
    assert ev.metrics["thd_mae_pct"] == ev.baseline_metrics["thd_mae_pct"] < 0.5
    assert set(ev.figures) == {"confusion_matrix", "macro_f1_by_snr", "f1_per_class"}


def test_model_beats_the_strongest_baseline_of_its_ladder(fitted, dataset):
    """The forest must beat the IEEE 1159 RMS/THD rules by 0.3 macro-F1 and a logistic regression on
    its own FFT features on held-out windows. Honest finding on this small data: the second gap is
    thin (0.984 vs 0.971, two or three of 180 windows), not a margin an interval would confirm."""
    model = fitted[0]
    f1, scores = ladder_scores(model, dataset, fit_model=False)
    print(f"\nm02 macro_f1: model {f1:.3f}; ladder {scores}")
    assert list(scores) == ["RmsThdRules", "FftLogistic"]
    assert strongest(model, scores)[0] == "FftLogistic"
    assert f1 > scores["RmsThdRules"] + 0.3 and f1 > scores["FftLogistic"], (f1, scores)


def test_macro_f1_falls_with_snr_outside_the_training_range(fitted, dataset):
    """Out of distribution: fresh windows at 1-40 dB (trained at 20-40 dB). The curve is reported, and
    it must fall: the model at 1 dB is far below itself at 40 dB."""
    model = fitted[0]
    rules = RmsThdRules().fit(dataset.X_train)
    curve = dsm_ha.snr_curve({"model": model, "rules": rules}, snr_db=(1.0, 10.0, 40.0), n_per_class=8)
    print("\nm02 macro-F1 against SNR:\n" + curve.pivot(index="snr_db", columns="estimator", values="macro_f1").round(3).to_string())
    assert len(curve) == 6 and (curve["n_windows"] == 80).all()
    f1 = curve[curve["estimator"] == "model"].set_index("snr_db")["macro_f1"]
    assert f1[40.0] > f1[1.0] + 0.3
    with pytest.raises(InputError, match="no estimator"):
        dsm_ha.snr_curve({})


def test_cloudpickle_round_trip(fitted, dataset):
    model, _, _ = fitted
    again = cloudpickle.loads(cloudpickle.dumps(model))
    pd.testing.assert_frame_equal(again.predict(dataset.X_test), model.predict(dataset.X_test))


def test_features_are_finite_for_all_classes_and_an_all_zero_window():
    x, _ = generate_windows(2, 20.0, seed=9)
    feats = fft_features(np.vstack([x, np.zeros((1, 640))]))
    assert np.isfinite(feats.to_numpy()).all() and len(feats) == 21


def test_missing_source_and_bad_input_are_refused(tmp_path, fitted):
    with pytest.raises(InputError, match="pq_waveforms"):
        dsm_ha.harmonic_analysis(Store(tmp_path / "empty"))
    model, _, _ = fitted
    with pytest.raises(InputError, match="640"):
        model.predict(np.zeros((3, 100)))
    bad = np.full((1, 640), np.nan)
    with pytest.raises(InputError, match="NaN"):
        model.predict(bad)
    with pytest.raises(InputError, match="test_fraction"):
        dsm_ha.harmonic_analysis(Store(tmp_path / "empty"), test_fraction=1.5)


def test_one_reading_predictions_equal_the_rows_of_a_batch(fitted, dataset, monkeypatch):
    model, _, _ = fitted
    X = dataset.X_test
    singles = pd.concat([model.predict(X.iloc[[i]]) for i in range(len(X))])  # NumPy walk of the forest
    monkeypatch.setattr(trees, "FLAT_MAX_ROWS", 0)  # the batch through scikit-learn (2 jobs)
    batch = model.predict(X)
    pd.testing.assert_index_equal(singles.index, batch.index)
    np.testing.assert_array_equal(singles["label"].to_numpy(), batch["label"].to_numpy())
    np.testing.assert_allclose(singles["thd_pct"].to_numpy(), batch["thd_pct"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(model.predict_proba(X.iloc[:1]), model.predict_proba(X)[:1], rtol=0, atol=1e-12)


def test_flat_forest_reproduces_scikit_learn(fitted, dataset):
    model, _, _ = fitted
    features = fft_features(dataset.X_test).to_numpy()
    flat = trees.FlatForest(model.forest_)
    np.testing.assert_allclose(flat.predict_proba(features), model.forest_.predict_proba(features), rtol=0, atol=1e-12)
    # with one job scikit-learn sums the trees in order, as the flat walk does: bit for bit
    single_job = cloudpickle.loads(cloudpickle.dumps(model.forest_)).set_params(n_jobs=1)
    np.testing.assert_array_equal(flat.predict_proba(features[:7]), single_job.predict_proba(features[:7]))
    # a feature exactly on a split threshold goes left, as in scikit-learn
    tree = model.forest_.estimators_[0].tree_
    on_split = np.zeros((1, features.shape[1]))
    on_split[0, tree.feature[0]] = np.float32(tree.threshold[0])
    np.testing.assert_array_equal(flat.predict_proba(on_split), single_job.predict_proba(on_split))


def test_median_rows_is_numpy_median_bit_for_bit():
    rng = np.random.default_rng(4)
    for width in (1, 2, 9, 10, 639):
        a = rng.lognormal(size=(5, width))
        np.testing.assert_array_equal(mpq._median_rows(a), np.median(a, axis=1))
    a = rng.normal(size=(3, 6))
    a[1, 2] = np.nan
    np.testing.assert_array_equal(mpq._median_rows(a), np.median(a, axis=1))


def test_frame_columns_out_of_order_are_read_by_name(fitted, dataset):
    model, _, _ = fitted
    X = dataset.X_test.iloc[:3]
    shuffled = X[SAMPLE_COLUMNS[::-1]]
    pd.testing.assert_frame_equal(model.predict(shuffled), model.predict(X))
    pd.testing.assert_frame_equal(fft_features(shuffled), fft_features(X))


def test_flat_forest_cache_is_not_pickled(fitted, dataset):
    model, _, _ = fitted
    model.predict(dataset.X_test.iloc[:1])
    assert "_flat_forests" in model.__dict__
    again = cloudpickle.loads(cloudpickle.dumps(model))
    assert "_flat_forests" not in again.__dict__ and "_flat_forests" in model.__dict__
    pd.testing.assert_frame_equal(again.predict(dataset.X_test.iloc[:2]), model.predict(dataset.X_test.iloc[:2]))
