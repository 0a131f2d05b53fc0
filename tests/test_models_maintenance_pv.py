"""m18 pv_forecast: the clear-sky power is the twin's, the inputs never see the targets' hours,
the split is chronological, the metric counts daylight targets only, and on a seeded TMY3 run the
ridge of the clear-sky index beats smart persistence with an interval that excludes zero."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import polars as pl
import pvlib
import pytest
from ladder import ladder_scores

from gridtwin_lib.datasets.maintenance import pv_forecast as dpv
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import fit_and_evaluate
from gridtwin_lib.models.maintenance.pv_forecast import (
    HORIZONS,
    PV_INPUT_COLUMNS,
    PV_OUTPUTS,
    PowerPersistence,
    PvForecast,
    SmartPersistence,
    skill_by_hour,
)
from gridtwin_lib.physics.solar import clear_sky_ac_power
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.simulate.solar import TMY3_FILE
from gridtwin_lib.store import Store

ENTRY = registry.get(PvForecast.spec.model_id)
PARAMS = ENTRY.parameters("full")
PLANT = PARAMS["plant"]
SOURCE = PARAMS["source"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """The configured TMY3 run, 120 days long (January to early May), with its seed."""
    store = Store(tmp_path_factory.mktemp("m18") / "store")
    (run,) = ENTRY.simulation_runs("full")
    run_scenario(**{**run, "duration": "120d"}, store=store, progress=False)
    return store


@pytest.fixture(scope="module")
def data(store):
    keep = {k: v for k, v in PARAMS.items() if k != "alpha"}
    return dpv.pv_forecast(store, **{**keep, "test_fraction": 0.3})


@pytest.fixture(scope="module")
def fitted(data):
    return fit_and_evaluate(PvForecast(**{"alpha": PARAMS["alpha"]}), data, seed=3)


def test_clear_sky_power_is_the_twins_under_a_clear_sky(tmp_path):
    """With no clouds, noise or fleet spread, the twin's true AC power is the physics function's
    (same pvlib chain) at the twin's own ambient temperature and wind."""
    store = Store(tmp_path / "store")
    plant = {"latitude": -33.87, "longitude": 151.21, "altitude": 40.0, "tilt_deg": 30.0, "azimuth_deg": 0.0,
             "pv_kw": 6.6, "inverter_kw": 5.0}
    run_scenario("pv_normal", duration="2d", resolution="15m", seed=5, devices=1, store=store, progress=False, source="sim:clear",
                 overrides={**plant, "weather": "clearsky", "cloudiness": 0.0, "sensor_noise_pct": 0.0, "fleet_spread_pct": 0.0})
    pv = store.scan("pv", source="sim:clear").sort("ts").collect().to_pandas()
    truth = store.scan_truth("pv_state", source="sim:clear").sort("ts").collect().to_pandas()
    times = pd.DatetimeIndex(pv["ts"])
    expected = clear_sky_ac_power(times, **plant, temp_air_c=pv["ambient_temperature"].to_numpy(),
                                  wind_speed_m_s=pv["wind_speed"].to_numpy())
    np.testing.assert_allclose(truth["true_ac_power"].to_numpy() / 1000.0, expected, rtol=1e-6, atol=1e-9)
    assert expected.max() > 3.0 and (expected == 0).any()  # a real day and a real night


def test_the_configured_plant_stands_where_the_tmy3_weather_was_measured():
    _, meta = pvlib.iotools.read_tmy3(str(TMY3_FILE), map_variables=True)
    assert (PLANT["latitude"], PLANT["longitude"], PLANT["altitude"]) == (meta["latitude"], meta["longitude"], meta["altitude"])
    assert PARAMS["utc_offset_h"] == meta["TZ"]
    assert PLANT["weather"] == "tmy3" and PLANT["cloudiness"] == 0.0  # measured clouds only
    for size in registry.SIZES:  # the run and the builder see one plant; one TMY3 year at most (no repeated weather)
        for run in ENTRY.simulation_runs(size):
            assert run["overrides"] == PLANT and run["source"] == SOURCE
            assert pd.Timedelta(run["duration"]) <= pd.Timedelta(days=365)


def test_inputs_never_see_the_target_hours(store):
    """Changing the weather after an issue time (every later hour's power) changes no input of the
    rows issued up to then, and does change their targets and the later rows' inputs."""
    readings = store.scan("pv", source=SOURCE).collect()
    hourly = dpv.hourly_power(readings)
    kw = {"utc_offset_h": PARAMS["utc_offset_h"], "min_clear_sky_fraction": PARAMS["min_clear_sky_fraction"]}
    rows = dpv.pv_forecast_rows(hourly, PLANT, **kw)
    t0 = rows["issued_at"].iloc[len(rows) // 2]
    later = pd.to_datetime(hourly["ts"], utc=True) > t0
    changed = hourly.assign(p_kw=np.where(later, hourly["p_kw"] * 0.3 + 0.7, hourly["p_kw"]))
    rows2 = dpv.pv_forecast_rows(changed, PLANT, **kw)
    assert rows["issued_at"].equals(rows2["issued_at"])
    before = (rows["issued_at"] <= t0).to_numpy()
    cols = list(PV_INPUT_COLUMNS)
    pd.testing.assert_frame_equal(rows.loc[before, cols], rows2.loc[before, cols])
    assert not np.allclose(rows.loc[before, list(PV_OUTPUTS)].tail(3), rows2.loc[before, list(PV_OUTPUTS)].tail(3))
    assert not np.allclose(rows.loc[~before, cols].to_numpy(), rows2.loc[~before, cols].to_numpy())


def test_split_is_chronological_and_rows_are_daylight(data):
    meta_train, meta = data.meta_train, data.meta_test
    cut = pd.Timestamp(data.split["test"][0])
    assert (meta_train["issued_at"] + pd.Timedelta(hours=max(HORIZONS)) < cut).all() and (meta["issued_at"] >= cut).all()
    assert not set(meta_train["date"]) & set(meta["date"])
    assert (data.X_test["pcs_kw_lag0"] >= PARAMS["min_clear_sky_fraction"] * PLANT["inverter_kw"]).all()
    assert list(data.X_train.columns) == list(PV_INPUT_COLUMNS) and list(data.y_test.columns) == list(PV_OUTPUTS)
    daylight = meta[[f"daylight_h{h}" for h in HORIZONS]].to_numpy()
    assert daylight.any(axis=1).all() and not daylight.all()  # the last lead times of the afternoon fall at night


def test_model_beats_smart_persistence_with_an_interval(fitted, data):
    model, named, ev = fitted
    assert isinstance(named, SmartPersistence) and ev.baseline_name == SmartPersistence.name
    unc = ev.uncertainty
    assert unc.method == "terms" and unc.block_kind == "day" and unc.n_blocks >= 20
    assert unc.favours_model(SmartPersistence.name), unc.differences[SmartPersistence.name]
    assert ev.skill > 0 and ev.skill == pytest.approx(1 - ev.primary / ev.baseline_primary)
    value, scores = ladder_scores(PvForecast(alpha=PARAMS["alpha"]), data)
    assert value == pytest.approx(ev.primary)
    # the sun's path matters: the persisted index beats the persisted power
    assert scores["SmartPersistence"] < scores["PowerPersistence"]
    assert set(scores) == {c.__name__ for c in ENTRY.baseline_classes()}


def test_metric_counts_daylight_targets_only(fitted, data):
    model, _, ev = fitted
    y = data.y_test
    night = ~data.meta_test[[f"daylight_h{h}" for h in HORIZONS]].to_numpy()
    wrong_at_night = y.where(~night, y + 5.0)
    assert model.evaluate(y, wrong_at_night, data.meta_test)["rmse_kw"] == 0.0
    assert model.evaluate(y, y + 1.0, data.meta_test)["rmse_kw"] == pytest.approx(1.0)
    with pytest.raises(InputError, match="daylight"):
        model.evaluate(y, y, None)
    table = skill_by_hour(y, ev.predictions["model"], ev.predictions["baseline"], data.meta_test)
    assert table["n_targets"].sum() == ev.metrics["n_targets"]
    row = table.iloc[len(table) // 2]
    assert row["skill"] == pytest.approx(1 - row["rmse_model_kw"] / row["rmse_smart_persistence_kw"])
    assert row["rmse_model_kw"] == pytest.approx(ev.metrics[f"rmse_at_{int(row['hour']):02d}h_kw"])
    assert set(ev.figures) == {"m18_skill_by_hour", "m18_rmse_by_lead_time"}


def test_baselines_are_what_they_say(data):
    X = data.X_test
    sp = SmartPersistence().fit(data.X_train).predict(X)
    np.testing.assert_allclose(sp["p_kw_h3"], np.clip(X["k_lag0"] * X["pcs_kw_h3"], 0, None))
    pp = PowerPersistence().fit(data.X_train).predict(X)
    assert (pp["p_kw_h6"] == X["p_kw_lag0"]).all()
    assert ((sp.to_numpy() >= 0) & np.isfinite(sp.to_numpy())).all()


def test_pickles_and_refuses_bad_input(fitted, data, tmp_path):
    model = fitted[0]
    again = cloudpickle.loads(cloudpickle.dumps(model))
    pd.testing.assert_frame_equal(again.predict(data.X_test), model.predict(data.X_test))
    with pytest.raises(InputError, match="m18"):
        model.predict(data.X_test.drop(columns=["k_lag0"]))
    with pytest.raises(InputError, match="y"):
        PvForecast().fit(data.X_train)
    with pytest.raises(InputError, match="no pv measurements"):
        dpv.pv_forecast(Store(tmp_path / "empty"), plant=PLANT)


def test_the_engine_serves_the_forecast_from_the_training_rows(fitted, store, data):
    """``Engine.forecast_pv`` issues at the latest hour of the readings it is given and gives what the
    model predicts on the dataset's row of that issue time; a baseline serving in its place works too."""
    from gridtwin_lib.inference import Engine

    model = fitted[0]
    issued = data.meta_test["issued_at"].iloc[40]
    readings = store.scan("pv", source=SOURCE).collect().filter(
        pl.col("ts") <= issued.to_pydatetime(), pl.col("ts") > (issued - pd.Timedelta(hours=30)).to_pydatetime())
    settings = {k: PARAMS[k] for k in ("min_clear_sky_fraction", "reference_temp_c")}
    for est in (model, SmartPersistence().fit(data.X_train)):
        out = Engine({ENTRY.id: est}).forecast_pv(readings, PLANT, utc_offset_h=PARAMS["utc_offset_h"], **settings)
        assert len(out) == 1 and out["issued_at"].iloc[0] == issued
        expected = est.predict(data.X_test.iloc[[40]]).to_numpy()[0]
        np.testing.assert_allclose(out[[f"{ENTRY.id}.{c}" for c in PV_OUTPUTS]].to_numpy()[0], expected, rtol=1e-9)
    two_am = issued.normalize() + pd.Timedelta(hours=2 - PARAMS["utc_offset_h"])  # 02:00 local standard time
    night = store.scan("pv", source=SOURCE).collect().filter(pl.col("ts") <= two_am.to_pydatetime())
    assert Engine({ENTRY.id: model}).forecast_pv(night, PLANT, utc_offset_h=PARAMS["utc_offset_h"]).empty
