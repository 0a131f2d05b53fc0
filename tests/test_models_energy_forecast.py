"""m09 load_forecast: builders (UCI-like and simulated feeder), model, baselines, scoring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cloudpickle
import numpy as np
import pandas as pd
import polars as pl
import pytest
from ladder import ladder_scores, strongest

from gridtwin_lib.datasets.energy import load_forecast as dsm
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import digest, fit_and_evaluate
from gridtwin_lib.models.energy.load_forecast import (
    LAG_COLS,
    OBS_COLS,
    ONESTEP_COLS,
    OUT_COLS,
    LoadForecast,
    NaiveLoad,
    SeasonalETSLoad,
    onestep_comparison,
    onestep_table,
    seasonal_naive_scale,
)
from gridtwin_lib.schema import flag_mask
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

TINY = dict(lstm_units=8, lstm_epochs=2, onestep_units=4, onestep_epochs=1, prophet_yearly=False, random_state=3)
UTC1 = timedelta(hours=1)


# --------------------------------------------------------------------------- fixtures


def _uci_like_store(root) -> tuple[Store, pd.Series]:
    """One-minute household readings, source "uci", 2009-11-01 .. 2010-01-15 local (UTC+1).

    Known defects: 2009-12-10 12:00-13:00 local flagged imputed; 2009-12-11 15:00-16:00
    only 20 minutes stored; 2009-12-12 03:00-04:00 40 minutes stored (still valid).
    Returns the store and the true minute series [kW] (local naive index).
    """
    rng = np.random.default_rng(0)
    local = pd.date_range("2009-11-01", "2010-01-15", freq="min", inclusive="left")
    hour = local.hour.to_numpy() + local.minute.to_numpy() / 60
    kw = 0.4 + 1.2 * np.exp(-((hour - 20) / 2.5) ** 2) + 0.6 * (local.dayofweek.to_numpy() >= 5) + 0.1 * rng.random(len(local))
    flags = np.zeros(len(local), np.uint32)
    flags[(local >= "2009-12-10 12:00") & (local < "2009-12-10 13:00")] = flag_mask("soft.suspected_imputed")
    keep = ~(((local >= "2009-12-11 15:20") & (local < "2009-12-11 16:00"))
             | ((local >= "2009-12-12 03:40") & (local < "2009-12-12 04:00")))
    ts = (local - UTC1).tz_localize("UTC")
    df = pl.DataFrame({"ts": ts[keep], "source": "uci", "device_id": "uci-sceaux-household",
                       "power": kw[keep] * 1000.0, "voltage": 235.0, "quality_flags": flags[keep]})
    store = Store(root)
    store.write("meter", df)
    return store, pd.Series(kw, index=local)


@pytest.fixture(scope="module")
def uci(tmp_path_factory):
    store, truth = _uci_like_store(tmp_path_factory.mktemp("uci") / "store")
    data = dsm.load_forecast_uci(store, train_start="2009-11-08", split="2010-01-01")
    return store, truth, data


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("sim") / "store")
    run = registry.get("m09_load_forecast").simulation_runs("smoke")[0]
    run_scenario(**run, store=store, progress=False)
    data = dsm.load_forecast_sim(store, source=run["source"], test_days=7)
    return store, data


@pytest.fixture(scope="module", params=["lstm", "prophet"])
def single(sim, request):
    """A model fitted with one algorithm only (the champion is then that one)."""
    _, data = sim
    return data, LoadForecast(algorithm=request.param, **TINY).fit(data.X_train, data.y_train)


@pytest.fixture(scope="module")
def fitted(sim):
    _, data = sim
    model, bl, ev = fit_and_evaluate(LoadForecast(**TINY), data)
    return data, model, bl, ev


# --------------------------------------------------------------------------- builders


def test_uci_layout_split_and_quality_treatment(uci):
    _, truth, data = uci
    assert list(data.X_train.columns) == ["issue_time_local", "holiday", *LAG_COLS, *OBS_COLS]
    assert list(data.y_train.columns) == OUT_COLS
    train_t, test_t = data.X_train["issue_time_local"], data.X_test["issue_time_local"]
    assert (train_t.dt.hour == 0).all() and (test_t.dt.hour == 0).all()
    assert train_t.max() + pd.Timedelta(hours=24) <= test_t.min() == pd.Timestamp("2010-01-01")
    assert train_t.min() == pd.Timestamp("2009-11-08") and len(data.X_test) == 14  # 1..14 January
    hourly = truth.resample("h").mean()

    def row(day):
        i = np.flatnonzero(train_t == pd.Timestamp(day))[0]
        return data.X_train.iloc[i], data.y_train.iloc[i]

    x, y = row("2009-12-10")
    assert np.isnan(y["load_kw_h12"])  # imputed minutes are not labels
    assert y["load_kw_h11"] == pytest.approx(hourly["2009-12-10 11:00"])
    x, y = row("2009-12-11")
    assert x["lag_kw_012"] == pytest.approx(hourly["2009-12-09 12:00"])  # input filled from 24 h earlier
    assert x["lag_kw_013"] == pytest.approx(hourly["2009-12-10 11:00"])
    assert np.isnan(y["load_kw_h15"])  # 20 of 60 minutes
    assert x["obs_kw_h15"] == pytest.approx(hourly["2009-12-10 15:00"])
    x, y = row("2009-12-12")
    assert y["load_kw_h03"] == pytest.approx(truth["2009-12-12 03:00":"2009-12-12 03:39"].mean())  # 40 of 60 minutes
    assert x["lag_kw_168"] == pytest.approx(hourly["2009-12-05 00:00"])
    assert x["lag_kw_001"] == pytest.approx(hourly["2009-12-11 23:00"])
    # French holidays: Christmas and New Year
    hol = dict(zip(pd.concat([train_t, test_t]), pd.concat([data.X_train["holiday"], data.X_test["holiday"]])))
    assert hol[pd.Timestamp("2009-12-25")] == 1 and hol[pd.Timestamp("2010-01-01")] == 1 and hol[pd.Timestamp("2009-12-24")] == 0
    assert data.meta_test["mase_scale_kw"].iloc[0] == pytest.approx(seasonal_naive_scale(data.X_train, data.y_train))
    np.testing.assert_allclose(data.meta_test["persist24_kw_h05"], data.X_test["lag_kw_019"])


def test_builder_inputs_do_not_look_ahead(uci, tmp_path):
    """Changing every reading from a cut on leaves every input and label before the cut unchanged."""
    store, _, data = uci
    cut_local = datetime(2009, 12, 20, 13)
    readings = store.scan("meter", source="uci").collect()
    changed = readings.with_columns(
        pl.when(pl.col("ts") >= (cut_local - UTC1).replace(tzinfo=UTC)).then(pl.col("power") * 3 + 500)
        .otherwise(pl.col("power")).alias("power"))
    other = Store(tmp_path / "other")
    other.write("meter", changed)
    data2 = dsm.load_forecast_uci(other, train_start="2009-11-08", split="2010-01-01")
    X1, X2 = data.X_train.set_index("issue_time_local"), data2.X_train.set_index("issue_time_local")
    for day in X1.index:
        known = [c for c in LAG_COLS if day - pd.Timedelta(hours=int(c[-3:])) < cut_local]
        known += [c for c in OBS_COLS if day + pd.Timedelta(hours=int(c[-2:])) < cut_local]
        pd.testing.assert_series_equal(X1.loc[day, known], X2.loc[day, known])
    assert not np.allclose(X1.loc[pd.Timestamp("2009-12-22"), LAG_COLS[:10]], X2.loc[pd.Timestamp("2009-12-22"), LAG_COLS[:10]])


def test_sim_labels_come_from_truth_and_split_is_chronological(sim):
    store, data = sim
    assert data.X_train["issue_time_local"].max() < data.X_test["issue_time_local"].min()
    assert len(data.X_test) == 7 and data.n_train >= 14
    truth = store.scan_truth("meter_state", source=dsm.SIM_SOURCE).collect().to_pandas()
    local = truth["ts"].dt.tz_localize(None) + pd.Timedelta(hours=10)
    feeder = truth.groupby([local.dt.floor("h"), "device_id"])["power_true_w"].mean().groupby(level=0).sum() / 1000
    day = data.X_test["issue_time_local"].iloc[2]
    expected = feeder.loc[day:day + pd.Timedelta(hours=23)].to_numpy()
    np.testing.assert_allclose(data.y_test.iloc[2].to_numpy(), expected, rtol=1e-9)
    # inputs are the delivered readings, not the truth
    assert not np.allclose(data.X_test.iloc[3][["obs_kw_h00", "obs_kw_h01"]].to_numpy(float), expected[:2])


def test_missing_source_and_empty_window_raise_input_errors(tmp_path, uci):
    with pytest.raises(InputError, match="gridtwin ingest uci"):
        dsm.load_forecast_uci(Store(tmp_path / "empty"))
    with pytest.raises(InputError, match="simulate"):
        dsm.load_forecast_sim(Store(tmp_path / "empty"))
    store, _, _ = uci
    with pytest.raises(InputError, match="test window is empty"):
        dsm.load_forecast_uci(store, train_start="2009-11-08", split="2010-03-01")
    with pytest.raises(InputError, match="train_start < split"):
        dsm.load_forecast_uci(store, train_start="2010-01-01", split="2009-12-01")


# --------------------------------------------------------------------------- model


def test_fit_and_evaluate_scores_model_and_baseline_on_the_same_rows(fitted):
    data, model, bl, ev = fitted
    assert ev.n_test == data.n_test == 7
    assert ev.test_rows_digest == digest(data.X_test)
    pm, pb = ev.predictions["model"], ev.predictions["baseline"]
    assert list(pm.columns) == list(pb.columns) == [*OUT_COLS, *ONESTEP_COLS] == list(model.spec.output_units)
    assert set(model.spec.output_units.values()) == {"kW"}
    assert np.isfinite(pm.to_numpy()).all() and (pm.to_numpy() >= 0).all()
    for key in ("mase", "mae_kw", "rmse_kw", "onestep_rmse_kw", "onestep_mae_kw", "lag24_mase"):
        assert np.isfinite(ev.metrics[key]) and np.isfinite(ev.baseline_metrics[key])
    assert ev.metrics["n_hours_scored"] == ev.baseline_metrics["n_hours_scored"] == 7 * 24
    assert ev.metrics["lag24_mase"] == ev.baseline_metrics["lag24_mase"]  # a reference, not the model
    assert model.algorithm_ in ("prophet", "lstm")
    assert set(model.validation_mase_) == {"prophet", "lstm", "seasonal_naive"}
    assert model.validation_mase_[model.algorithm_] == min(model.validation_mase_["prophet"], model.validation_mase_["lstm"])
    assert pd.Timestamp(model.validation_range_[1]) <= data.X_test["issue_time_local"].min()
    assert set(ev.figures) == {"forecast_last_days", "mae_by_hour", "daily_mae"}


def test_model_beats_every_baseline_of_its_ladder_on_the_simulated_feeder(fitted):
    """Day-ahead MASE on the held-out week: below the strongest of seasonal naive, yesterday's
    load, the same-hour mean of the last 7 days, the linear regression on the last week and
    statsforecast's AutoETS with a daily season, by 0.02."""
    data, model, _, _ = fitted
    mase, scores = ladder_scores(model, data, fit_model=False, per_reading=False)
    assert set(scores) == {"NaiveLoad", "YesterdayLoad", "SameHourMean7d", "LinearARLoad", "SeasonalETSLoad"}
    name, best = strongest(model, scores)
    assert mase < best - 0.02, (mase, scores)


def test_linear_ar_baseline_is_causal_and_learns_the_series():
    """AR(24) + lag-168 on a noiseless periodic series forecasts it (one-step and day-ahead), and
    changing the target day's later hours never changes an earlier hour's one-step forecast."""
    X, y = _periodic_rows(40)
    from gridtwin_lib.models.energy.load_forecast import LinearARLoad

    b = LinearARLoad().fit(X.iloc[:30], y.iloc[:30])
    p = b.predict(X.iloc[30:])
    np.testing.assert_allclose(p[ONESTEP_COLS].to_numpy(), y.iloc[30:].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(p[OUT_COLS].to_numpy(), y.iloc[30:].to_numpy(), atol=0.05)
    changed = X.iloc[30:].copy()
    changed[OBS_COLS[10:]] = changed[OBS_COLS[10:]] * 5
    q = b.predict(changed)
    pd.testing.assert_frame_equal(q[ONESTEP_COLS[:11]], p[ONESTEP_COLS[:11]])
    pd.testing.assert_frame_equal(q[OUT_COLS], p[OUT_COLS])


def _periodic_rows(days: int, noise_kw: float = 0.0, weekly_kw: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Day-ahead rows (168 lags, the day's 23 observed hours) of a daily + weekly periodic load [kW]."""
    t = np.arange((days + 7) * 24)
    load = 1.0 + 0.5 * np.sin(2 * np.pi * t / 24) + weekly_kw * np.sin(2 * np.pi * t / 168)
    load = load + noise_kw * np.random.default_rng(seed).standard_normal(len(t))
    rows, ys = [], []
    for d in range(7, days + 7):
        h0 = d * 24
        rows.append([*load[h0 - np.arange(1, 169)], *load[h0:h0 + 23]])
        ys.append(load[h0:h0 + 24])
    X = pd.DataFrame(rows, columns=[*LAG_COLS, *OBS_COLS])
    X.insert(0, "holiday", 0.0)
    X.insert(0, "issue_time_local", pd.date_range("2010-01-08", periods=days, freq="D"))
    return X, pd.DataFrame(ys, columns=OUT_COLS)


def test_statsforecast_baseline_forecasts_every_test_hour_from_the_past_only(sim):
    """AutoETS (statsforecast) fitted on the training rows forecasts all 24 hours of every test day;
    its forecasts do not move when the future changes (the target day's own hours, the labels,
    later rows), one row alone gets its batch forecast, and it is a forecaster, not a constant."""
    _, data = sim
    b = SeasonalETSLoad().fit(data.X_train, data.y_train)
    assert b.form_.startswith("ETS(")
    p = b.predict(data.X_test)
    assert list(p.columns) == [*OUT_COLS, *ONESTEP_COLS] and len(p) == data.n_test
    day = p[OUT_COLS].to_numpy()
    assert np.isfinite(day).all() and (day >= 0).all()
    np.testing.assert_array_equal(p[ONESTEP_COLS].to_numpy(), day)  # no intraday update
    future = data.X_test.copy()
    future[OBS_COLS] = future[OBS_COLS] * 3 + 1  # the target day's own measurements
    pd.testing.assert_frame_equal(b.predict(future), p)
    later = data.X_test.copy()
    later.loc[later.index[3:], LAG_COLS] = later.loc[later.index[3:], LAG_COLS] * 3 + 1  # what follows day 3's issue
    pd.testing.assert_frame_equal(b.predict(later).iloc[:3], p.iloc[:3])
    refit = SeasonalETSLoad().fit(data.X_train, data.y_train * 0 + 5.0)  # it is fitted on the inputs, not the labels
    pd.testing.assert_frame_equal(refit.predict(data.X_test), p)
    one = b.predict(data.X_test.iloc[[4]])
    pd.testing.assert_frame_equal(one, p.iloc[[4]])
    pd.testing.assert_frame_equal(cloudpickle.loads(cloudpickle.dumps(b)).predict(data.X_test), p)  # as logged to serve
    assert np.ptp(day, axis=1).min() > 0  # a daily shape, not a flat line

    X, y = _periodic_rows(40, noise_kw=0.05, weekly_kw=0.0)  # a daily season in noise: what it models
    q = SeasonalETSLoad().fit(X.iloc[:30], y.iloc[:30]).predict(X.iloc[30:])
    err = np.abs(q[OUT_COLS].to_numpy() - y.iloc[30:].to_numpy()).mean()
    naive = np.abs(X.iloc[30:][[f"lag_kw_{168 - h:03d}" for h in range(24)]].to_numpy() - y.iloc[30:].to_numpy()).mean()
    assert err < naive, (err, naive)  # smoothing the season beats last week's noisy copy of it
    with pytest.raises(InputError, match="ets_model"):
        SeasonalETSLoad(ets_model="XYZ").fit(X, y)
    with pytest.raises(InputError, match="too few"):
        SeasonalETSLoad().fit(X.head(1).assign(**{c: np.nan for c in LAG_COLS[24:]}), y.head(1))  # 47 hours


def test_onestep_table_compares_head_persistence_and_ar_on_identical_hours(fitted):
    """The run's one-step metrics: the head, persistence (previous hour) and AR(24) + lag-168 on the
    same hours, each RMSE recomputed here from the ladder's own predictions; the differences are
    model - reference with intervals around them; a forecast missing for an hour drops that hour
    for all three."""
    data, _, _, ev = fitted
    m = ev.metrics
    names = dict(zip(map(type, ev.fitted_baselines.values()), ev.fitted_baselines, strict=True))
    from gridtwin_lib.models.energy.load_forecast import LinearARLoad

    Y = data.y_test.to_numpy(float)
    one = {"model": ev.predictions["model"][ONESTEP_COLS].to_numpy(float),
           "persistence": ev.ladder_predictions[names[NaiveLoad]][ONESTEP_COLS].to_numpy(float),
           "ar24_168": ev.ladder_predictions[names[LinearARLoad]][ONESTEP_COLS].to_numpy(float)}
    np.testing.assert_array_equal(one["persistence"][:, 1:], data.X_test[OBS_COLS].to_numpy(float))
    mask = np.isfinite(Y) & np.logical_and.reduce([np.isfinite(v) for v in one.values()])
    assert m["onestep_n_hours_compared"] == mask.sum() == 7 * 24
    for k, v in one.items():
        assert m[f"onestep_rmse_kw_{k}"] == pytest.approx(np.sqrt(np.mean((Y[mask] - v[mask]) ** 2)), rel=1e-12)
        assert m[f"ci_onestep_rmse_kw_{k}_low"] <= m[f"onestep_rmse_kw_{k}"] <= m[f"ci_onestep_rmse_kw_{k}_high"]
    for k in ("persistence", "ar24_168"):
        d = m[f"ci_onestep_diff_{k}_value"]
        assert d == pytest.approx(m["onestep_rmse_kw_model"] - m[f"onestep_rmse_kw_{k}"], rel=1e-12)
        assert m[f"ci_onestep_diff_{k}_low"] <= d <= m[f"ci_onestep_diff_{k}_high"]
    table = onestep_table(m)
    assert list(table.index) == ["one-step head (LSTM)", "persistence (previous hour)", "AR(24) + lag-168 (least squares)"]
    assert table["hours"].eq(7 * 24).all() and table["rmse_kw"].notna().all()

    gap = {k: v.copy() for k, v in one.items()}
    gap["ar24_168"][2, 5:9] = np.nan  # an hour the AR cannot forecast is left out for every forecaster
    out = onestep_comparison(data.y_test, gap, n_replicates=0)
    keep = mask.copy()
    keep[2, 5:9] = False
    assert out["onestep_n_hours_compared"] == keep.sum() == 7 * 24 - 4 and not any(k.startswith("ci_") for k in out)
    assert out["onestep_rmse_kw_persistence"] == pytest.approx(np.sqrt(np.mean((Y[keep] - one["persistence"][keep]) ** 2)))


def test_baseline_is_the_lagged_load():
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.random((3, len(LAG_COLS) + len(OBS_COLS))), columns=[*LAG_COLS, *OBS_COLS])
    X.insert(0, "holiday", 0.0)
    X.insert(0, "issue_time_local", pd.date_range("2010-01-04", periods=3, freq="D"))
    p = NaiveLoad().fit(X).predict(X)
    np.testing.assert_array_equal(p["load_kw_h00"], X["lag_kw_168"])
    np.testing.assert_array_equal(p["load_kw_h23"], X["lag_kw_145"])
    np.testing.assert_array_equal(NaiveLoad(24).fit(X).predict(X)["load_kw_h23"], X["lag_kw_001"])
    np.testing.assert_array_equal(p["onestep_kw_h00"], X["lag_kw_001"])
    np.testing.assert_array_equal(p["onestep_kw_h07"], X["obs_kw_h06"])
    with pytest.raises(InputError):
        NaiveLoad(25).fit(X)


def test_predictions_do_not_look_ahead(single):
    data, model = single
    X = data.X_test.copy()
    base = model.predict(X)
    changed = X.copy()
    changed[OBS_COLS] = changed[OBS_COLS] * 5 + 3  # the target day's own measurements
    p = model.predict(changed)
    pd.testing.assert_frame_equal(p[OUT_COLS], base[OUT_COLS])  # day-ahead never reads them
    later = X.copy()
    later[OBS_COLS[10:]] = later[OBS_COLS[10:]] * 5 + 3  # hours 10..22 change
    p = model.predict(later)
    pd.testing.assert_frame_equal(p[ONESTEP_COLS[:11]], base[ONESTEP_COLS[:11]])  # hours 0..10 use data up to h-1
    assert not np.allclose(p["onestep_kw_h11"], base["onestep_kw_h11"])
    without = X.drop(columns=OBS_COLS)
    p = model.predict(without)
    pd.testing.assert_frame_equal(p[OUT_COLS], base[OUT_COLS])
    assert p["onestep_kw_h00"].notna().all() and p["onestep_kw_h05"].isna().all()


def test_cloudpickle_round_trip(single):
    data, model = single
    algorithm = model.algorithm
    assert model.algorithm_ == algorithm and set(model.validation_mase_) == {algorithm, "seasonal_naive"}
    assert (model.prophet_ is None) == (algorithm == "lstm") and (model.lstm_ is None) == (algorithm == "prophet")
    again = cloudpickle.loads(cloudpickle.dumps(model))
    pd.testing.assert_frame_equal(again.predict(data.X_test), model.predict(data.X_test))
    assert again.get_params() == model.get_params()


def test_bad_parameters_and_inputs_raise_input_errors(sim):
    _, data = sim
    with pytest.raises(InputError, match="algorithm"):
        LoadForecast(algorithm="arima").fit(data.X_train, data.y_train)
    with pytest.raises(InputError, match="too few"):
        LoadForecast(**TINY).fit(data.X_train.head(10), data.y_train.head(10))
    with pytest.raises(InputError, match="lacks"):
        LoadForecast(**TINY).fit(data.X_train.drop(columns=["lag_kw_100"]), data.y_train)
    with pytest.raises(InputError, match="not fitted"):
        LoadForecast().predict(data.X_test)


def test_mase_scale_by_hand():
    days = 10
    load = np.arange(days * 24, dtype=float) % 7 + (np.arange(days * 24) >= 24 * 8) * 2.0  # kW
    X = pd.DataFrame(np.nan, index=range(days), columns=LAG_COLS)  # the scale reads labels only
    X.insert(0, "holiday", 0.0)
    X.insert(0, "issue_time_local", pd.date_range("2010-01-01", periods=days, freq="D"))
    y = pd.DataFrame(load.reshape(days, 24), columns=OUT_COLS)
    expected = np.mean(np.abs(load[168:] - load[:-168]))
    assert seasonal_naive_scale(X, y) == pytest.approx(expected)
    y.iloc[8, 5] = np.nan  # a missing label drops its pair, it is not filled
    keep = np.ones(days * 24 - 168, bool)
    keep[8 * 24 + 5 - 168] = False
    assert seasonal_naive_scale(X, y) == pytest.approx(np.mean(np.abs(load[168:] - load[:-168])[keep]))
    with pytest.raises(InputError, match="8 days"):
        seasonal_naive_scale(X.head(7), y.head(7))


def test_mase_bootstrap_terms_reproduce_evaluate_and_take_the_terms_path(sim):
    """(a) per-row |error| sums and scored-hour counts give evaluate's MASE on the full sample,
    also with hours masked out (NaN truth); (b) the bootstrap uses them (method "terms") and the
    point value lies inside its own interval."""
    _, data = sim
    model, _, ev = fit_and_evaluate(LoadForecast(algorithm="prophet", **TINY), data, n_replicates=200)
    y_masked = data.y_test.copy()
    y_masked.iloc[::5, ::3] = np.nan
    for y in (data.y_test, y_masked):
        for pred in [ev.predictions["model"], *ev.ladder_predictions.values()]:
            terms, combine = model.bootstrap_terms(y, pred, data.meta_test)
            want = model.evaluate(y, pred, data.meta_test)["mase"]
            assert np.isfinite(want) and combine(terms.sum(axis=0, keepdims=True))[0] == pytest.approx(want, rel=1e-9)
    unc = ev.uncertainty
    assert unc.method == "terms" and unc.n_replicates == 200
    assert unc.model.low - 1e-12 <= unc.model.value <= unc.model.high + 1e-12
