"""Dashboard 02's solar view (gridtwin_lib.dashboards.solar) on a small TMY3 store and a fitted m18,
without a browser: the forecast sees only readings before its issue time, the measured hours are the
store's hourly means, times are the plant's local standard time, and the plant is the simulation's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from gridtwin_lib.dashboards import MissingData, solar
from gridtwin_lib.datasets.maintenance import pv_forecast as dpv
from gridtwin_lib.inference import Engine
from gridtwin_lib.models import registry
from gridtwin_lib.models.maintenance.pv_forecast import PvForecast
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

ENTRY = registry.get(PvForecast.spec.model_id)
PARAMS = ENTRY.parameters("full")
SOURCE = PARAMS["source"]


@pytest.fixture(scope="module")
def pv_store(tmp_path_factory):
    """The configured TMY3 plant over 40 days, and m18 fitted on it."""
    store = Store(tmp_path_factory.mktemp("solar") / "store")
    (run,) = ENTRY.simulation_runs("full")
    run_scenario(**{**run, "duration": "40d"}, store=store, progress=False)
    keep = {k: v for k, v in PARAMS.items() if k != "alpha"}
    data = dpv.pv_forecast(store, **keep)
    return store, PvForecast(alpha=PARAMS["alpha"]).fit(data.X_train, data.y_train)


@pytest.fixture
def page_data(pv_store, monkeypatch):
    """The view reads this store and serves the fitted model; the spy keeps what the forecast was given."""
    store, est = pv_store
    monkeypatch.setenv("GRIDTWIN_STORE", str(store.root))
    given = []

    class Spy(Engine):
        def forecast_pv(self, readings, *args, **kwargs):
            given.append(readings)
            return super().forecast_pv(readings, *args, **kwargs)

    monkeypatch.setattr(solar, "engine", lambda ids: Spy({ENTRY.id: est}))
    return store, given


def test_forecast_sees_only_readings_before_its_issue_time_and_actuals_are_hourly_means(page_data):
    store, given = page_data
    day = solar.forecast_days(SOURCE)[3]
    device = solar.pv_devices(SOURCE)[0]
    frame = solar.forecast_against_actual(SOURCE, device, day, 9)

    off = pd.Timedelta(hours=PARAMS["utc_offset_h"])
    issued = pd.Timestamp(day.year, day.month, day.day, 9, tz="UTC") - off
    assert given and given[-1]["ts"].max() <= issued  # a reading at the issue time closes the issue hour
    assert list(frame["lead_h"]) == [1, 2, 3, 4, 5, 6]
    # local standard time: the first target hour starts at the issue hour on the clock of the plant
    assert frame["hour"].iloc[0] == pd.Timestamp(day.year, day.month, day.day, 9)
    readings = (store.scan("pv", source=SOURCE, device_id=device, start=issued, end=issued + pd.Timedelta(hours=7)).collect()
                .filter((pl.col("ts") > issued) & (pl.col("ts") <= issued + pd.Timedelta(hours=6))))
    lead = (pl.col("ts") - issued - pl.duration(microseconds=1)).dt.total_hours() + 1  # the hour (issued + k - 1, issued + k]
    means = (readings.group_by(lead.alias("k"))
             .agg((pl.col("ac_power").mean() / 1000).alias("kw")).sort("k"))
    np.testing.assert_allclose(frame["actual_kw"].to_numpy(), means["kw"].to_numpy(), rtol=1e-9)
    # the clear sky bounds what a clear day gives, within the inverter's rating
    assert (frame["clear_sky_kw"] <= solar.plant_of(SOURCE)["inverter_kw"] + 1e-9).all()
    assert np.isfinite(frame["forecast_kw"]).all() and (frame["forecast_kw"] >= 0).all()


def test_a_night_issue_time_is_a_message_not_a_forecast(page_data):
    day = solar.forecast_days(SOURCE)[3]
    with pytest.raises(MissingData, match="no forecast issued at 02:00"):
        solar.forecast_against_actual(SOURCE, solar.pv_devices(SOURCE)[0], day, 2)


def test_the_plant_is_the_simulations_and_an_unknown_source_says_so():
    plant = solar.plant_of(SOURCE)
    assert plant.items() >= PARAMS["plant"].items() and "gamma_pdc" in plant  # the run's overrides on the twin's defaults
    with pytest.raises(MissingData, match="no configured simulation writes"):
        solar.plant_of("sim:nobody")


def test_zones_are_named_by_their_offset():
    assert [solar.zone_label(h) for h in (-5.0, 0.0, 10.0, 5.5)] == ["UTC−5", "UTC+0", "UTC+10", "UTC+5:30"]


def test_the_figure_draws_clear_sky_measured_and_forecast(page_data):
    day = solar.forecast_days(SOURCE)[3]
    frame = solar.forecast_against_actual(SOURCE, solar.pv_devices(SOURCE)[0], day, 10)
    fig = solar.forecast_figure(frame, "inv", "UTC−5")
    assert [t.name for t in fig.data] == ["clear sky", "measured", "forecast"]
    assert "UTC−5" in fig.layout.xaxis.title.text
