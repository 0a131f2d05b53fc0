"""m03 frequency_stability: dataset from the grid twin, LSTM forecast, persistence and AR baselines."""

from __future__ import annotations

from datetime import timedelta

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from ladder import ladder_scores, strongest

from gridtwin_lib.datasets.monitoring import frequency_stability as dsm_fs
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import digest, fit_and_evaluate
from gridtwin_lib.models.monitoring import frequency_stability as mfr_fs
from gridtwin_lib.models.monitoring.frequency_stability import (
    FORECAST_COLUMNS,
    HISTORY,
    HORIZON,
    INPUT_COLUMNS,
    FrequencyStability,
    LinearAR,
    Persistence,
    PersistenceAndAR,
)
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

SOURCE = dsm_fs.FREQ_SOURCES[0]


@pytest.fixture(scope="module")
def freq_store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("m03") / "store")
    run = {**registry.get("m03_frequency_stability").simulation_runs("smoke")[0], "duration": "4h", "seed": 32}  # seed 32: a drift leaves the band in hour 3
    run_scenario(**run, store=store, progress=False)
    return store


@pytest.fixture(scope="module")
def dataset(freq_store):
    return dsm_fs.frequency_stability(freq_store, test_days=1 / 24, train_stride_s=5, test_stride_s=5)


@pytest.fixture(scope="module")
def fitted(dataset):
    model = FrequencyStability(units=8, dense_units=8, block_s=10, epochs=2, batch_size=128, random_state=3)
    return fit_and_evaluate(model, dataset)


def test_split_is_chronological_and_no_row_straddles_the_cut(dataset):
    assert list(dataset.X_train.columns) == INPUT_COLUMNS
    assert list(dataset.y_train.columns) == [*FORECAST_COLUMNS, "excursion"]
    cut = pd.Timestamp(dataset.split["cut"])
    last_train_reading = dataset.meta_train["ts"].max() + timedelta(seconds=HORIZON)
    first_test_reading = dataset.meta_test["ts"].min() - timedelta(seconds=HISTORY - 1)
    assert last_train_reading < cut <= first_test_reading
    assert dataset.split["train"][1] < dataset.split["test"][0]
    assert dataset.meta_train["ts"].is_monotonic_increasing and dataset.meta_test["ts"].is_monotonic_increasing
    np.testing.assert_array_equal(dataset.meta_test["f_t"], dataset.X_test["f_t"])


def test_rows_hold_past_readings_and_future_targets(freq_store, dataset):
    raw = freq_store.scan("three_phase", source=SOURCE).select("ts", "frequency").collect().to_pandas()
    f = pd.Series(raw["frequency"].to_numpy(), index=raw["ts"])
    for row in (0, len(dataset.X_test) // 2, len(dataset.X_test) - 1):
        t = dataset.meta_test["ts"].iloc[row]
        past = f[t - timedelta(seconds=HISTORY - 1): t].to_numpy()
        future = f[t + timedelta(seconds=1): t + timedelta(seconds=HORIZON)].to_numpy()
        np.testing.assert_array_equal(dataset.X_test.iloc[row].to_numpy(), past)  # inputs: readings <= t only
        np.testing.assert_array_equal(dataset.y_test[FORECAST_COLUMNS].iloc[row].to_numpy(), future)


def test_excursion_label_from_truth_matches_the_measured_band(dataset):
    for y in (dataset.y_train, dataset.y_test):
        future = y[FORECAST_COLUMNS].to_numpy()
        outside = ((future < 49.85) | (future > 50.15)).any(axis=1)
        np.testing.assert_array_equal(y["excursion"].to_numpy(), outside.astype(int))
    assert dataset.y_train["excursion"].sum() > 0  # the scenario does leave the band


def test_fit_predict_shapes_units_and_row_independence(fitted, dataset):
    model, _, _ = fitted
    pred = model.predict(dataset.X_test)
    assert list(pred.columns) == list(FrequencyStability.spec.output_units)
    assert len(pred) == dataset.n_test
    assert pred["p_excursion"].between(0, 1).all()
    assert (pred[FORECAST_COLUMNS].sub(dataset.X_test["f_t"], axis=0).abs() < 1.0).all().all()  # Hz, near f_t
    # a row's forecast uses that row only (no look-ahead through the batch)
    some = model.predict(dataset.X_test.iloc[10:13])
    np.testing.assert_allclose(some.to_numpy(), pred.iloc[10:13].to_numpy(), rtol=1e-5, atol=1e-6)
    # 5 rows: the NumPy copy of the network (float32 round-off against the Keras batch)
    np.testing.assert_allclose(model.predict(dataset.X_test.to_numpy()[:5]).to_numpy(), pred.iloc[:5].to_numpy(),
                               rtol=1e-7, atol=1e-6)


def test_fit_and_evaluate_same_rows_and_both_baselines(fitted, dataset):
    _, baseline, ev = fitted
    assert isinstance(baseline, PersistenceAndAR)
    assert ev.n_test == dataset.n_test and ev.test_rows_digest == digest(dataset.X_test)
    for key in ("rmse_step10", "rmse_step1", "brier_excursion", "skill_rmse_step10"):
        assert key in ev.metrics and key in ev.baseline_metrics
    assert "brier_skill_vs_persistence" in ev.metrics  # NaN here: this short test range never leaves the band
    assert ev.skill == pytest.approx(ev.metrics["skill_rmse_step10"], rel=1e-9)
    assert {"ar_rmse_step10", "ar_brier_excursion"} <= set(ev.baseline_metrics)
    assert set(ev.figures) == {"rmse_by_horizon", "forecast_excerpt", "excursion_reliability"}


def test_ladder_lstm_against_persistence_and_the_linear_ar(fitted, dataset):
    """The LSTM must beat persistence at step 10 (skill > 5 %); against the linear AR fitted on its own
    (the strongest baseline), honest finding on this small data: the LSTM is no better (its frozen AR
    path plus a 2-epoch correction), so the gate serves the AR. If it ever beats the AR by more than
    1 %, this test fails on purpose: turn it round."""
    model = fitted[0]
    rmse, scores = ladder_scores(model, dataset, fit_model=False)
    print(f"\nm03 rmse_step10 [Hz]: model {rmse:.5f}; ladder {scores}")
    assert list(scores) == ["PersistenceAndAR", "LinearAR"]
    assert rmse < 0.95 * scores["PersistenceAndAR"], (rmse, scores)
    assert strongest(model, scores)[0] == "LinearAR"
    assert rmse > 0.99 * scores["LinearAR"], (rmse, scores)


def test_cloudpickle_round_trip_keeps_predictions(fitted, dataset):
    model, _, _ = fitted
    blob = cloudpickle.dumps(model)
    again = cloudpickle.loads(blob)
    assert isinstance(again.__getstate__()["model_"], bytes)
    np.testing.assert_array_equal(again.predict(dataset.X_test).to_numpy(), model.predict(dataset.X_test).to_numpy())


def test_persistence_and_ar_baselines():
    rng = np.random.default_rng(0)
    n = 6000
    f = np.empty(n)
    f[0] = 50.0
    for k in range(1, n):  # AR(1) around 50 Hz: mean-reverting, so AR must beat persistence
        f[k] = 50.0 + 0.8 * (f[k - 1] - 50.0) + rng.normal(0, 0.02)
    idx = np.arange(HISTORY - 1, n - HORIZON)
    X = pd.DataFrame(np.stack([f[i - HISTORY + 1: i + 1] for i in idx]), columns=INPUT_COLUMNS)
    fut = np.stack([f[i + 1: i + 1 + HORIZON] for i in idx])
    y = pd.DataFrame(fut, columns=FORECAST_COLUMNS).assign(excursion=((fut < 49.85) | (fut > 50.15)).any(axis=1).astype(int))
    half = len(X) // 2
    ar = LinearAR().fit(X[:half], y[:half])
    err_ar = ar.predict(X[half:])["f_t+10"] - y["f_t+10"][half:]
    err_p = Persistence().fit(X[:half]).predict(X[half:])["f_t+10"] - y["f_t+10"][half:]
    assert np.sqrt(np.mean(err_ar**2)) < 0.85 * np.sqrt(np.mean(err_p**2))
    probe = pd.DataFrame(np.full((2, HISTORY), 50.0), columns=INPUT_COLUMNS)
    probe.loc[1, "f_t"] = 49.80
    assert Persistence().fit(probe).predict(probe)["p_excursion"].tolist() == [0.0, 1.0]


def test_band_margin_weights():
    from gridtwin_lib.models.monitoring.frequency_stability import _margin_weights

    kernel, bias = _margin_weights()
    linear = np.zeros(HISTORY)
    linear[0] = (50.10 - 50.0) / 0.1  # f_t = 50.10 Hz
    delta = np.full(HORIZON, (50.20 - 50.10) / 0.05)  # every step forecast at 50.20 Hz
    margins = np.concatenate([linear, delta]) @ kernel + bias
    np.testing.assert_allclose(margins[:HORIZON], -0.5, atol=1e-6)  # 0.05 Hz above the upper edge
    np.testing.assert_allclose(margins[HORIZON:], 3.5, atol=1e-6)  # 0.35 Hz above the lower edge


def test_missing_source_wrong_resolution_and_bad_input_are_refused(tmp_path, fitted):
    with pytest.raises(InputError, match="frequency_drift"):
        dsm_fs.frequency_stability(Store(tmp_path / "empty"))
    coarse = Store(tmp_path / "coarse")
    run_scenario("frequency_drift", duration="2h", resolution="10s", seed=1, store=coarse, progress=False,
                 source="sim:m03_coarse")
    with pytest.raises(InputError, match="every whole second"):
        dsm_fs.frequency_stability(coarse, sources=["sim:m03_coarse"])
    model, _, _ = fitted
    with pytest.raises(InputError, match="100"):
        model.predict(np.full((2, 50), 50.0))
    nan_row = np.full((1, HISTORY), 50.0)
    nan_row[0, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        model.predict(nan_row)
    with pytest.raises(InputError, match="Hz"):
        model.predict(np.full((1, HISTORY), 50_000.0))  # mHz


def test_test_window_too_long_is_refused(freq_store):
    with pytest.raises(InputError, match="test_days"):
        dsm_fs.frequency_stability(freq_store, test_days=1.0)


def test_one_reading_predictions_equal_the_rows_of_a_batch(fitted, dataset):
    model, _, _ = fitted
    X = dataset.X_test.iloc[::7]
    assert len(X) > mfr_fs.NUMPY_MAX_ROWS  # the batch goes through Keras, single rows through NumPy
    batch = model.predict(X)
    singles = pd.concat([model.predict(X.iloc[[i]]) for i in range(len(X))])
    pd.testing.assert_index_equal(singles.index, batch.index)
    assert list(singles.columns) == list(batch.columns)
    # float32 network: forecasts [Hz] agree to ~1e-9 relative, probabilities to ~1e-7 absolute
    np.testing.assert_allclose(singles[FORECAST_COLUMNS].to_numpy(), batch[FORECAST_COLUMNS].to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(singles["p_excursion"].to_numpy(), batch["p_excursion"].to_numpy(), rtol=0, atol=1e-6)
    one = model.predict(X.to_numpy()[:1]).to_numpy()
    np.testing.assert_allclose(one, batch.iloc[:1].to_numpy(), rtol=1e-8, atol=1e-6)


def test_numpy_copy_of_the_network_matches_keras(fitted, dataset):
    model, _, _ = fitted
    inputs = model._inputs(mfr_fs._history(dataset.X_test))
    net = mfr_fs._NumpyNet.from_keras(model.model_, model._inputs(mfr_fs._CHECK_HISTORY))
    assert net is not None
    ours, theirs = net(inputs), model.model_.predict(inputs, verbose=0)
    for key in ("delta", "excursion"):
        np.testing.assert_allclose(ours[key], np.asarray(theirs[key]), rtol=0, atol=1e-5)
    # an unknown object, or a copy that disagrees with Keras, is refused (Keras then predicts)
    assert mfr_fs._NumpyNet.from_keras(object(), inputs) is None


def test_keras_predicts_when_the_numpy_copy_disagrees(fitted, dataset, monkeypatch):
    model, _, _ = fitted
    X = dataset.X_test.iloc[:1]
    expected = model.model_.predict(model._inputs(mfr_fs._history(X)), verbose=0)
    again = cloudpickle.loads(cloudpickle.dumps(model))
    monkeypatch.setattr(mfr_fs._NumpyNet, "__call__", lambda self, inputs: {
        "delta": np.zeros((len(inputs["linear"]), HORIZON), "float32"),
        "excursion": np.zeros((len(inputs["linear"]), 1), "float32")})
    pred = again.predict(X)
    assert again._numpy_net[1] is None
    np.testing.assert_array_equal(pred["p_excursion"].to_numpy(), np.asarray(expected["excursion"], float).ravel())


def test_numpy_cache_is_not_pickled(fitted, dataset):
    model, _, _ = fitted
    model.predict(dataset.X_test.iloc[:1])
    assert "_numpy_net" in model.__dict__
    state = model.__getstate__()
    assert "_numpy_net" not in state and "_numpy_net" in model.__dict__
    again = cloudpickle.loads(cloudpickle.dumps(model))
    np.testing.assert_array_equal(again.predict(dataset.X_test.iloc[:3]).to_numpy(),
                                  model.predict(dataset.X_test.iloc[:3]).to_numpy())


def test_linear_ar_probability_is_the_normal_cdf(dataset):
    from scipy.stats import norm

    ar = LinearAR().fit(dataset.X_train, dataset.y_train)
    pred = ar.predict(dataset.X_test)
    forecast, sigma = pred[FORECAST_COLUMNS].to_numpy(), np.maximum(ar.sigma_hz_, 1e-6)
    p = norm.cdf((49.85 - forecast) / sigma) + norm.sf((50.15 - forecast) / sigma)
    np.testing.assert_array_equal(pred["p_excursion"].to_numpy(), np.clip(p.max(axis=1), 0.0, 1.0))
