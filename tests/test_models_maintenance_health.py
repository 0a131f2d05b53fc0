"""m20 health_index: the truth is the twin's hidden state (apart from the features), the split holds out
devices and later days, the breakdown adds up to the index, and on the configured smoke runs (seeded)
the learned index ranks device-days by hidden health better than the reference's fixed weighted score
with a device-bootstrap interval that excludes zero, and declines before every failure the test holds."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import polars as pl
import pytest
from ladder import ladder_scores

from gridtwin_lib.datasets.maintenance import health_index as dhi
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import fit_and_evaluate
from gridtwin_lib.models.maintenance.health_index import (
    COMPONENTS,
    HEALTH_INPUT_COLUMNS,
    HEALTH_OUTPUTS,
    REFERENCE_WEIGHTS,
    FixedWeightedScore,
    HealthIndex,
    PerformanceRatioIndex,
)
from gridtwin_lib.physics.solar import expected_ac_power
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

ENTRY = registry.get(HealthIndex.spec.model_id)
PARAMS = ENTRY.parameters("smoke")
PLANT = PARAMS["plant"]
BUILDER_KEYS = ("sources", "plant", "utc_offset_h", "test_fraction", "test_device_every", "pv_share", "battery_min_pv_kw",
                "reference_days", "decline_days")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """The configured smoke runs (seven scenarios, four devices each, 20 days), with their seeds."""
    store = Store(tmp_path_factory.mktemp("m20") / "store")
    for run in ENTRY.simulation_runs("smoke"):
        run_scenario(**run, store=store, progress=False)
    return store


@pytest.fixture(scope="module")
def data(store):
    return dhi.health_index(store, **{k: PARAMS[k] for k in BUILDER_KEYS})


@pytest.fixture(scope="module")
def fitted(data):
    return fit_and_evaluate(HealthIndex(min_component_weight=PARAMS["min_component_weight"]), data, seed=3)


def test_expected_power_is_the_twins_healthy_output_at_the_measured_weather(tmp_path):
    """Without sensor noise or fleet spread, a healthy device's true AC power is the physics function's at
    its measured irradiance, ambient temperature and wind (clouds included): a PR of 1 means healthy."""
    store = Store(tmp_path / "store")
    run_scenario("pv_normal", duration="2d", resolution="30m", seed=7, devices=1, store=store, progress=False, source="sim:m20_clean",
                 overrides={**PLANT, "sensor_noise_pct": 0.0, "fleet_spread_pct": 0.0})
    pv = store.scan("pv", source="sim:m20_clean").sort("ts").collect().to_pandas()
    truth = store.scan_truth("pv_state", source="sim:m20_clean").sort("ts").collect().to_pandas()
    exp = expected_ac_power(pv["irradiance"], pv["ambient_temperature"], pv["wind_speed"],
                            pv_kw=PLANT["pv_kw"], inverter_kw=PLANT["inverter_kw"])
    np.testing.assert_allclose(exp["ac_kw"], truth["true_ac_power"].to_numpy() / 1000.0, rtol=1e-6, atol=1e-9)
    assert exp["ac_kw"].max() > 2.0 and (exp["ac_kw"] == 0).any()


def test_hidden_health_is_the_twins_state_by_its_documented_formula():
    """Daylight means of the hidden columns: array = degradation x (1 - soiling), inverter = its health
    (0 while off), battery = health x not isolated (all day); health = 0.75 array x inverter + 0.25 battery."""
    ts = pd.date_range("2025-01-06 14:00", periods=24, freq="h")  # one Sydney local day (UTC+10)
    n = len(ts)
    inverter = np.where(np.arange(n) % 2 == 0, 1.0, 0.0)  # off every other hour
    state = pl.DataFrame({"ts": ts.to_numpy(), "device_id": ["pv000"] * n, "soiling_loss": [0.1] * n, "degradation_factor": [0.9] * n,
                          "inverter_health": inverter, "true_efficiency": [0.96] * n, "battery_health": [0.6] * n,
                          "battery_isolated": np.arange(n) >= n // 2, "true_ac_power": [1.0] * n}).with_columns(
        pl.col("ts").dt.cast_time_unit("us").dt.replace_time_zone("UTC"))
    out = dhi.hidden_health(state, latitude=-33.87, longitude=151.21, utc_offset_h=10.0, pv_share=0.75)
    assert len(out) == 1
    row = out.iloc[0]
    assert row["truth_power"] == pytest.approx(0.81)
    assert 0.3 < row["truth_inverter"] < 0.7  # daylight hours only: about half of them off
    assert row["truth_battery"] == pytest.approx(0.3)  # 0.6 for half the day, isolated (0) the other half
    assert row["health"] == pytest.approx(0.75 * 0.81 * row["truth_inverter"] + 0.25 * 0.3)


def test_truth_is_kept_apart_from_the_features(data, store):
    """y holds the hidden state only, X the reading features only; the hidden state of a test row is the
    twin's own pv_state aggregate, and the features need no truth table."""
    assert list(data.X_test.columns) == list(HEALTH_INPUT_COLUMNS)
    assert not set(data.X_test.columns) & set(data.y_test.columns)
    source = PARAMS["sources"][1]  # degradation
    readings = store.scan("pv", source=source).collect()
    feats = dhi.daily_features(readings, PLANT, utc_offset_h=PARAMS["utc_offset_h"], reference_days=PARAMS["reference_days"])
    truth = dhi.hidden_health(store.scan_truth("pv_state", source=source).collect(), latitude=PLANT["latitude"],
                              longitude=PLANT["longitude"], utc_offset_h=PARAMS["utc_offset_h"])
    last = feats["date"].max()
    degraded = truth[(truth["device_id"] == "pv000") & (truth["date"] == last)]["truth_power"].iloc[0]
    healthy = truth[(truth["device_id"] == "pv003") & (truth["date"] == last)]["truth_power"].iloc[0]
    assert healthy == 1.0 and degraded < 0.9
    # the DC ratio against the device's own commissioning days follows the hidden degradation
    f = feats.set_index(["device_id", "date"])
    assert f.loc[("pv000", last), "dc_vs_commissioning"] == pytest.approx(degraded, abs=0.04)
    assert f.loc[("pv003", last), "dc_vs_commissioning"] == pytest.approx(1.0, abs=0.04)


def test_split_holds_out_devices_and_later_days(data):
    mt, mtr = data.meta_test, data.meta_train
    assert not set(mt["device_id"]) & set(mtr["device_id"])
    assert mtr["date"].max() < mt["date"].min()
    assert set(mt["scenario"]) == set(mtr["scenario"]) and len(set(mt["scenario"])) == 7
    # both healthy and faulty devices are held out: the hidden health varies in the test rows of a fault scenario
    deg = data.y_test[mt["scenario"].to_numpy() == "pv_degradation"]["health"]
    assert deg.max() == 1.0 and deg.min() < 0.95


def test_decline_episodes_are_days_before_failures_on_which_the_hidden_health_falls(data):
    mt, y = data.meta_test, data.y_test
    episodes = [e for e in mt["decline_episode"].unique() if e]
    assert len(episodes) >= 3
    for e in episodes:
        sel = (mt["decline_episode"] == e).to_numpy()
        days, health = mt.loc[sel, "day"].to_numpy(), y.loc[sel, "health"].to_numpy()
        assert len(days) >= 3 and np.corrcoef(days, health)[0, 1] < 0
    assert set(mt.loc[mt["decline_episode"] != "", "scenario"]) <= {"pv_degradation", "pv_battery_failure", "pv_critical_failure"}


def test_the_breakdown_adds_up_to_the_index(fitted, data):
    model = fitted[0]
    out = model.predict(data.X_test)
    assert list(out.columns) == list(HEALTH_OUTPUTS)
    assert ((out.to_numpy() >= 0) & (out.to_numpy() <= 100)).all()
    assert sum(model.weights_.values()) == pytest.approx(1.0) and min(model.weights_.values()) >= 0
    total = sum(model.weights_[c] * out[f"component_{c}"] for c in COMPONENTS)
    np.testing.assert_allclose(out["health_index"], total, rtol=1e-12)
    # each component map is monotone in its input: a lower DC ratio never raises the power component
    lower = data.X_test.assign(dc_vs_commissioning=data.X_test["dc_vs_commissioning"] * 0.8)
    assert (model.predict(lower)["component_power"] <= out["component_power"] + 1e-9).all()
    assert (model.predict(lower)["component_power"] < out["component_power"]).any()


def test_reference_score_is_the_fixed_weighted_formula(data):
    X = data.X_test
    out = FixedWeightedScore().fit(data.X_train).predict(X)
    power = 100 * np.clip(X["performance_ratio"], 0, 1)
    temperature = 100 * np.clip((85 - X["module_temp_p95_c"]) / 40, 0, 1)
    np.testing.assert_allclose(out["component_power"], power)
    np.testing.assert_allclose(out["component_temperature"], temperature)
    expected = sum(REFERENCE_WEIGHTS[c] * out[f"component_{c}"] for c in COMPONENTS)
    np.testing.assert_allclose(out["health_index"], expected)
    assert sum(REFERENCE_WEIGHTS.values()) == pytest.approx(1.0)


def test_index_beats_the_reference_score_with_an_interval(fitted, data):
    """The quality regression: seeded smoke runs, held-out devices and later days."""
    model, named, ev = fitted
    assert isinstance(named, FixedWeightedScore) and ev.baseline_name == FixedWeightedScore.name
    unc = ev.uncertainty
    assert unc.block_kind == "device" and unc.n_blocks >= 10
    assert unc.favours_model(FixedWeightedScore.name), unc.differences[FixedWeightedScore.name]
    assert ev.primary >= 0.75
    value, scores = ladder_scores(HealthIndex(), data, per_reading=False)
    assert value == pytest.approx(ev.primary)
    assert set(scores) == {c.__name__ for c in ENTRY.baseline_classes()}
    assert value > max(scores.values())
    # monotone decline before failures: the index falls over every decline episode of the test
    assert ev.metrics["n_decline_episodes"] >= 3 and ev.metrics["decline_fraction"] == 1.0
    for name, fitted_baseline in ev.fitted_baselines.items():  # paired by episode, model - baseline
        key = f"decline_fraction_diff_{type(fitted_baseline).__name__}"
        assert ev.metrics[key] == pytest.approx(ev.metrics["decline_fraction"] - ev.ladder[name]["decline_fraction"])
        assert ev.metrics[f"{key}_low"] <= ev.metrics[key] <= ev.metrics[f"{key}_high"]


def test_evaluate_counts_declines_and_ranks(fitted, data):
    model, _, ev = fitted
    y, meta = data.y_test, data.meta_test
    perfect = pd.DataFrame({"health_index": 100 * y["health"], "component_power": 100 * y["truth_power"],
                            "component_temperature": 100.0, "component_battery": 100 * y["truth_battery"],
                            "component_inverter": 100 * y["truth_inverter"]})
    got = model.evaluate(y, perfect, meta)
    assert got["spearman"] == pytest.approx(1.0, abs=1e-4) and got["decline_fraction"] == 1.0  # x100 may merge near-ties
    assert got["spearman_battery"] == pytest.approx(1.0, abs=1e-4)
    rising = perfect.assign(health_index=meta["day"].to_numpy(float))
    assert model.evaluate(y, rising, meta)["decline_fraction"] == 0.0
    assert set(ev.figures) == {"m20_index_vs_hidden_health"}


def test_pickles_and_refuses_bad_input(fitted, data, tmp_path):
    model = fitted[0]
    again = cloudpickle.loads(cloudpickle.dumps(model))
    pd.testing.assert_frame_equal(again.predict(data.X_test), model.predict(data.X_test))
    with pytest.raises(InputError, match="m20"):
        model.predict(data.X_test.drop(columns=["dc_ratio"]))
    with pytest.raises(InputError, match="y"):
        HealthIndex().fit(data.X_train)
    with pytest.raises(InputError, match="no pv measurements"):
        dhi.health_index(Store(tmp_path / "empty"), plant=PLANT)
    with pytest.raises(InputError, match="lack"):
        dhi.daily_features(pl.DataFrame({"ts": [], "device_id": []}), PLANT, utc_offset_h=10.0)
    with pytest.raises(InputError, match="battery_kwh"):
        dhi.health_index(Store(tmp_path / "empty"), plant={"pv_kw": 5.0, "inverter_kw": 4.0})


def test_the_engine_serves_the_index_from_the_training_features(fitted, store, data):
    """``Engine.pv_health`` on a run's readings from commissioning gives, per device and day, what the
    model (or the reference score serving in its place) predicts on the dataset's rows."""
    from gridtwin_lib.inference import Engine

    source = PARAMS["sources"][2]  # battery failure
    readings = store.scan("pv", source=source).collect()
    key = data.meta_test["device_id"].str.startswith(source + "/").to_numpy()
    rows = data.meta_test[key]
    settings = {k: PARAMS[k] for k in ("utc_offset_h", "battery_min_pv_kw", "reference_days")}
    for est in (fitted[0], FixedWeightedScore().fit(data.X_train)):
        out = Engine({ENTRY.id: est}).pv_health(readings, PLANT, **settings)
        assert {f"{ENTRY.id}.{c}" for c in HEALTH_OUTPUTS} <= set(out.columns)
        served = out.assign(device_id=source + "/" + out["device_id"]).set_index(["device_id", "date"])
        expected = est.predict(data.X_test[key])
        got = served.loc[list(zip(rows["device_id"], rows["date"], strict=True)), [f"{ENTRY.id}.{c}" for c in HEALTH_OUTPUTS]]
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-9)
    assert isinstance(PerformanceRatioIndex().fit(data.X_train).predict(data.X_test.iloc[:2]), pd.DataFrame)
