"""m19 remaining_useful_life: the targets are the twin's drawn failures (right-censored at the end of
the observation, or at the cut for training rows), the features are causal, assets are held out, the
metrics are right on hand-made cases, the engine serves one curve per inverter, and on a seeded
inverter fleet the model's quality is pinned against its ladder (see the quality test's docstring)."""

from __future__ import annotations

import pickle
from datetime import timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from ladder import ladder_scores
from sklearn.base import clone

from gridtwin_lib.datasets.maintenance import remaining_useful_life as drul
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import fit_and_evaluate
from gridtwin_lib.models.maintenance.remaining_useful_life import (
    GRID_DAYS,
    RUL_INPUT_COLUMNS,
    RUL_OUTPUTS,
    SURVIVAL_COLUMNS,
    KaplanMeierByAge,
    RemainingUsefulLife,
    UncensoredPointRegressor,
    asset_survival_curve,
    concordance_intervals,
    quantile_days,
    serve_rul,
    survival_frame,
)
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

ENTRY = registry.get(RemainingUsefulLife.spec.model_id)
PARAMS = ENTRY.parameters("smoke")
SOURCE = PARAMS["source"]
BUILDER_KEYS = ("source", "issue_every_days", "test_fraction", "test_asset_fraction", "seed")
MODEL_KEYS = ("n_estimators", "learning_rate", "max_depth", "min_samples_leaf", "subsample")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """The configured smoke-size inverter fleet (its seed and accelerated-life settings)."""
    store = Store(tmp_path_factory.mktemp("m19") / "store")
    (run,) = ENTRY.simulation_runs("smoke")
    run_scenario(**run, store=store, progress=False)
    return store


@pytest.fixture(scope="module")
def data(store):
    return drul.remaining_useful_life(store, **{k: PARAMS[k] for k in BUILDER_KEYS})


@pytest.fixture(scope="module")
def fitted(data):
    return fit_and_evaluate(RemainingUsefulLife(**{k: PARAMS[k] for k in MODEL_KEYS}), data, seed=3)


def test_targets_are_the_twins_drawn_failures_censored_at_the_end_of_observation(store, data):
    """An event row ends at a failure of its asset in the truth table ``failures``; a censored test row
    at the end of the run; a censored training row at the cut (a failure after the cut is not known)."""
    failures = store.scan_truth("failures", source=SOURCE).collect()
    run_end = store.scan_truth("lifetimes", source=SOURCE).collect()["end"].max()
    cut = pd.Timestamp(data.split["train"][1])
    for meta, y, censor_at in ((data.meta_train, data.y_train, cut), (data.meta_test, data.y_test, run_end)):
        ends = pd.to_datetime(meta["ts"], utc=True) + pd.to_timedelta(y["duration_days"], unit="D")
        drawn = set(zip(failures["device_id"], pd.to_datetime(failures["ts"].to_numpy(), utc=True), strict=True))
        ev = y["event"].to_numpy()
        assert ev.any() and (~ev).any()
        assert all((d, e.round("s")) in drawn for d, e in zip(meta["device_id"][ev], ends[ev], strict=True))
        assert (ends[~ev].round("s") == pd.Timestamp(censor_at)).all()
        assert (ends[ev] <= pd.Timestamp(censor_at)).all()
    # the first failure after each row's issue time, not a later one: no failure of the asset in between
    row = data.meta_test[data.y_test["event"].to_numpy()].iloc[0]
    dur = float(data.y_test[data.y_test["event"]].iloc[0]["duration_days"])
    between = failures.filter((pl.col("device_id") == row["device_id"]) & (pl.col("ts") > row["ts"])
                              & (pl.col("ts") < row["ts"] + timedelta(days=dur) - timedelta(seconds=1)))
    assert between.height == 0


def test_split_holds_out_assets_and_later_issue_times(data):
    train_assets, test_assets = set(data.meta_train["device_id"]), set(data.meta_test["device_id"])
    assert not train_assets & test_assets and test_assets == set(data.split["test_assets"])
    cut = pd.Timestamp(data.split["train"][1])
    assert pd.to_datetime(data.meta_train["ts"], utc=True).max() < cut <= pd.to_datetime(data.meta_test["ts"], utc=True).min()
    # one issue time for every asset on the same midnights (the concordance compares assets at one time)
    assert (pd.to_datetime(data.meta_test["ts"], utc=True).dt.hour == 0).all()
    assert data.meta_test.groupby("ts")["device_id"].nunique().max() > 10
    assert list(data.X_train.columns) == list(RUL_INPUT_COLUMNS)
    assert not {"capacitor_wear", "fan_failed", "health", "hazard_per_day", "median_life_constant_hazard_days"} & set(data.X_train.columns)


def test_features_are_causal(store):
    """Rows issued before a cut are identical when every reading after the cut is dropped."""
    full = drul.rul_daily_features(drul.inverter_readings(store, SOURCE))
    cut = full["ts"].min() + timedelta(days=60)
    part = drul.rul_daily_features(drul.inverter_readings(store, SOURCE, end=cut - timedelta(days=1)))
    a = full.filter(pl.col("ts") < cut).sort("device_id", "ts").select(list(RUL_INPUT_COLUMNS))
    b = part.filter(pl.col("ts") < cut).sort("device_id", "ts").select(list(RUL_INPUT_COLUMNS))
    assert a.height == b.height > 0
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy())


def test_quantiles_of_a_known_curve_and_the_outputs():
    """An exponential survival with a 100-day median: median 100 d, 10th percentile 15.2 d, 90th 332 d
    (linear between weekly grid days), and a curve that never reaches 0.1 reads "at least 364 days"."""
    rate = np.log(2) / 100
    S = np.exp(-rate * GRID_DAYS)[None, :]
    np.testing.assert_allclose(quantile_days(S, 0.5), [100.0], atol=1.0)
    np.testing.assert_allclose(quantile_days(S, 0.9), [-np.log(0.9) / rate], atol=1.0)
    np.testing.assert_allclose(quantile_days(S, 0.1), [-np.log(0.1) / rate], atol=2.0)
    flat = np.full((1, len(GRID_DAYS)), 0.8)
    assert quantile_days(flat, 0.1)[0] == GRID_DAYS[-1]
    out = survival_frame(np.vstack([S, flat]))
    assert list(out.columns) == list(RUL_OUTPUTS) and (out["p10_days"] <= out["median_days"]).all()
    assert (out["median_days"] <= out["p90_days"]).all() and out["risk"].iloc[0] > out["risk"].iloc[1]


def _toy(n_assets=30, seed=0):
    rng = np.random.default_rng(seed)
    ts = np.repeat(pd.to_datetime(["2025-01-01", "2025-02-01"], utc=True), n_assets)
    dev = np.tile([f"inv{k:03d}" for k in range(n_assets)], 2)
    dur = rng.uniform(5, 300, 2 * n_assets)
    event = rng.random(2 * n_assets) < 0.6
    return pd.DataFrame({"duration_days": dur, "event": event}), pd.DataFrame({"device_id": dev, "ts": ts})


def test_concordance_and_brier_on_hand_made_cases():
    """Risk in the order of the true times gives concordance 1, the reverse 0; a curve that drops
    to 0 at each row's own event time and stays 1 for the censored scores a lower Brier than any
    constant curve; the bootstrap terms reproduce the integrated Brier score."""
    y, meta = _toy()
    model = RemainingUsefulLife()
    S_true = (GRID_DAYS[None, :] < y["duration_days"].to_numpy()[:, None]) | ~y["event"].to_numpy()[:, None]
    oracle = survival_frame(S_true.astype(float), risk=-y["duration_days"].to_numpy())
    reverse = survival_frame(np.full((len(y), len(GRID_DAYS)), 0.5), risk=y["duration_days"].to_numpy())
    mo, mr = model.evaluate(y, oracle, meta), model.evaluate(y, reverse, meta)
    assert mo["concordance"] == 1.0 and mr["concordance"] == 0.0
    assert mo["integrated_brier"] < mr["integrated_brier"]
    terms, combine = model.bootstrap_terms(y, reverse, meta)
    assert combine(terms.sum(axis=0))[0] == pytest.approx(mr["integrated_brier"], rel=1e-12)
    with pytest.raises(InputError, match="issue time"):
        model.evaluate(y, oracle, None)


def test_concordance_bootstrap_is_exact_per_replicate():
    """A replicate's concordance from the asset-pair sums, ``c' K c / c' P c``, is Harrell's concordance
    recomputed on the resampled rows (each drawn asset's rows repeated as often as it is drawn)."""
    from gridtwin_lib.evaluation import block_counts
    from gridtwin_lib.models.maintenance.remaining_useful_life import _issue_times, _pair_counts

    y, meta = _toy(seed=2)
    risk = np.random.default_rng(3).normal(size=len(y))
    pred = {"model": survival_frame(np.ones((len(y), len(GRID_DAYS))), risk=risk),
            "other": survival_frame(np.ones((len(y), len(GRID_DAYS))), risk=-y["duration_days"].to_numpy())}
    out = concordance_intervals(y, pred, meta, n_replicates=200, seed=11)
    assert out["concordance_other"] == 1.0 and out["ci_concordance_diff_other_high"] < 0  # the oracle wins
    assert out["ci_concordance_model_low"] < out["concordance_model"] < out["ci_concordance_model_high"]
    codes, counts = block_counts(meta["device_id"].to_numpy(), 3, 11)
    K, P = _pair_counts(y["duration_days"].to_numpy(), y["event"].to_numpy(), risk, _issue_times(meta, len(y)), codes, counts.shape[1])
    for c in counts:
        rows = np.concatenate([np.repeat(np.flatnonzero(codes == b), int(k)) for b, k in enumerate(c)])
        again = concordance_intervals(y.iloc[rows].reset_index(drop=True), {"model": pred["model"].iloc[rows].reset_index(drop=True)},
                                      meta.iloc[rows].reset_index(drop=True), n_replicates=0)
        assert again["concordance_model"] == pytest.approx(float(c @ K @ c / (c @ P @ c)), rel=1e-12)


def test_uncensored_regressor_trains_on_observed_failures_only(data):
    reg = UncensoredPointRegressor(n_estimators=20).fit(data.X_train, data.y_train)
    assert reg.regressor_.n_features_in_ == len(RUL_INPUT_COLUMNS)
    assert reg.regressor_.train_score_.shape == (20,)
    assert len(reg.regressor_.estimators_) == 20
    pred = reg.predict(data.X_test)
    s = pred[list(SURVIVAL_COLUMNS)].to_numpy()
    assert set(np.unique(s)) <= {0.0, 1.0}  # a point: certainty before and after it
    # only event rows are used: the same fit on the event rows alone is identical
    ev = data.y_train["event"].to_numpy()
    alone = UncensoredPointRegressor(n_estimators=20).fit(data.X_train[ev], data.y_train[ev])
    np.testing.assert_allclose(alone.predict(data.X_test)["risk"], pred["risk"])


def test_bad_targets_are_refused_in_one_line(data):
    with pytest.raises(InputError, match="duration_days"):
        RemainingUsefulLife().fit(data.X_train, data.y_train["duration_days"])
    bad = data.y_train.assign(duration_days=0.0)
    with pytest.raises(InputError, match="positive"):
        KaplanMeierByAge().fit(data.X_train, bad)


def test_model_is_a_conform_estimator_on_its_layout(data):
    """clone keeps the parameters; a refit, a pickled copy, shuffled and subset inputs give the same rows."""
    est = RemainingUsefulLife(n_estimators=10)
    fitted = clone(est).fit(data.X_train, data.y_train)
    assert fitted.get_params() == est.get_params()
    pred = fitted.predict(data.X_test)
    pd.testing.assert_frame_equal(clone(est).fit(data.X_train, data.y_train).predict(data.X_test), pred)
    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(fitted)).predict(data.X_test), pred)
    perm = np.random.default_rng(1).permutation(len(data.X_test))
    X = data.X_test.iloc[perm].reset_index(drop=True)
    pd.testing.assert_frame_equal(fitted.predict(X), pred.iloc[perm].reset_index(drop=True), check_exact=False, rtol=1e-9)
    s = pred[list(SURVIVAL_COLUMNS)].to_numpy()
    assert (np.diff(s, axis=1) <= 1e-12).all() and ((s >= 0) & (s <= 1)).all()


def test_fit_evaluate_same_rows_and_the_survival_curve_of_one_asset(data, fitted):
    model, base, ev = fitted
    assert ev.n_test == data.n_test and set(ev.ladder) == {b.name for b in (KaplanMeierByAge, UncensoredPointRegressor)} | {
        "Cox proportional hazards (linear)"}
    for key in ("concordance_model", "concordance_km_by_age", "ci_concordance_diff_km_by_age_low", "ci_concordance_diff_gbr_uncensored_high"):
        assert np.isfinite(ev.metrics[key]), key
    assert ev.uncertainty.block_kind == "device" and ev.uncertainty.n_blocks == len(data.split["test_assets"])
    curve = asset_survival_curve(ev.predictions["model"], data)
    assert curve["event"] and curve["duration_days"] > 0 and len(curve["survival"]) == len(GRID_DAYS)
    assert curve["p10_days"] <= curve["median_days"] <= curve["p90_days"]
    assert set(model.figures(data, {"model": ev.predictions["model"], "baseline": ev.predictions["baseline"]})) == {"m19_survival_curve"}


def test_engine_serves_one_curve_per_inverter(store, data, fitted):
    model, _, _ = fitted

    end = store.scan_truth("asset_observations", source=SOURCE).select(pl.col("ts").max()).collect().item()
    start = end - timedelta(days=40)
    obs = store.scan_truth("asset_observations", source=SOURCE, start=start).collect()
    pv = store.scan("pv", source=SOURCE, start=start).collect()
    out = serve_rul(model, obs, pv)
    assert len(out) == obs["device_id"].n_unique() and out["device_id"].is_unique
    assert (out["p10_days"] <= out["median_days"]).all() and (out["median_days"] <= out["p90_days"]).all()
    assert set(SURVIVAL_COLUMNS) <= set(out.columns) and (pd.to_datetime(out["issued_at"], utc=True) <= end + timedelta(days=1)).all()
    with pytest.raises(InputError, match="heatsink|observations"):
        serve_rul(model, pv, pv)
    # the engine's entry point serves the same rows, its columns prefixed by the model id; a baseline serves alike
    from gridtwin_lib.inference import Engine

    served = Engine({ENTRY.id: model}).remaining_life(obs, pv)
    np.testing.assert_allclose(served[f"{ENTRY.id}.median_days"], out["median_days"])
    assert list(served.columns[:2]) == ["device_id", "issued_at"] and f"{ENTRY.id}.s_364d" in served.columns
    km = KaplanMeierByAge().fit(data.X_train, data.y_train)
    assert Engine({ENTRY.id: km}).remaining_life(obs, pv)[f"{ENTRY.id}.p90_days"].notna().all()


def test_quality_against_the_ladder(data, fitted):
    """The quality pin on the seeded smoke-size fleet (held-out inverters, later issue times).

    Honest outcome: the gradient-boosted Cox model does NOT beat Kaplan-Meier by age band with an
    interval that excludes zero (its integrated Brier score is lower, the paired inverter-bootstrap
    interval of the difference straddles zero: with 40 held-out inverters and a handful of distinct
    failures in the test period, the age band already says most of what the distribution can be
    judged on). What is pinned: (1) what censoring-blind training costs: the model beats the reference
    system's gradient-boosting point regressor trained on the uncensored rows, interval of the
    integrated Brier difference entirely below zero, and ranks inverters better (concordance);
    (2) the model is no worse than Kaplan-Meier by age on the point integrated Brier score and
    keeps a concordance of at least 0.8 (Kaplan-Meier by age: about 0.85 on these rows)."""
    model, _, ev = fitted
    value, scores = ladder_scores(model, data, fit_model=False, per_reading=False)
    conc, conc_scores = ladder_scores(model, data, fit_model=False, metric="concordance", per_reading=False)
    unc = ev.uncertainty
    blind = unc.differences[UncensoredPointRegressor.name]
    assert blind.high < 0, blind  # (1) censoring-blind training costs, beyond the bootstrap's doubt
    assert conc > conc_scores["UncensoredPointRegressor"]
    assert value <= scores["KaplanMeierByAge"]  # (2) not worse than the named baseline's point value
    assert conc >= 0.8
    km = unc.differences[KaplanMeierByAge.name]
    print(f"\nm19 integrated Brier model - KM by age {km.value:+.4g} [{km.low:+.4g}, {km.high:+.4g}]; "
          f"model - uncensored regressor {blind.value:+.4g} [{blind.low:+.4g}, {blind.high:+.4g}]; gate: {ev.gate()[1]}")
