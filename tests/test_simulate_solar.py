"""The PV + battery twin: equal to pvlib called directly on a clear day, faults visible, limits kept."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pvlib
import pytest

from gridtwin_lib.simulate import SCENARIOS, SimulationError, prepare, simulate

CLEAR = {"cloudiness": 0.0, "sensor_noise_pct": 0.0, "fleet_spread_pct": 0.0}


def test_clear_sky_ac_power_equals_pvlib_directly():
    m = simulate("pv_normal", duration="2d", resolution="15m", seed=3, overrides=CLEAR).measurements["pv"]
    times = pd.DatetimeIndex(m["ts"].to_numpy()).tz_localize("UTC")
    location = pvlib.location.Location(-33.87, 151.21, tz="UTC", altitude=40.0)
    sky = location.get_clearsky(times, model="ineichen")
    sun = location.get_solarposition(times)
    poa = pvlib.irradiance.get_total_irradiance(30.0, 0.0, sun["apparent_zenith"], sun["azimuth"], sky["dni"], sky["ghi"], sky["dhi"], albedo=0.2)["poa_global"].fillna(0).clip(lower=0).to_numpy()
    cell = pvlib.temperature.faiman(poa, m["ambient_temperature"].to_numpy(), m["wind_speed"].to_numpy())
    pdc = pvlib.pvsystem.pvwatts_dc(poa, cell, 6600.0, -0.0037)
    pac = np.clip(pvlib.inverter.pvwatts(pdc, 5000.0 / 0.96, 0.96), 0, None)
    twin = m["ac_power"].to_numpy()
    assert pac.max() > 3000  # a real summer day in Sydney
    np.testing.assert_allclose(twin, pac, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(m["irradiance"].to_numpy(), poa, rtol=1e-9)


def test_measurements_keep_physical_limits_and_battery_policy():
    m = simulate("pv_normal", duration="3d", resolution="10m", seed=1, devices=3).measurements["pv"]
    assert m["battery_soc"].is_between(10.0 - 1e-9, 95.0 + 1e-9).all()
    assert m["battery_soc"].max() > 80 and m["battery_soc"].min() < 20  # it cycles
    eff = m["inverter_efficiency"].drop_nulls()
    assert eff.is_between(0, 1).all() and eff.median() > 0.9
    night = m.filter(pl.col("irradiance") == 0)
    assert night.height > 0 and (night["ac_power"] == 0).all()
    assert (m["ac_power"] <= 5000 * 1.03).all()


def test_same_seed_same_output():
    a = simulate("pv_soiling", duration="2d", resolution="30m", seed=9, devices=2)
    b = simulate("pv_soiling", duration="2d", resolution="30m", seed=9, devices=2)
    assert a.measurements["pv"].equals(b.measurements["pv"])


@pytest.mark.parametrize("scenario", ["pv_degradation", "pv_critical_failure", "pv_soiling", "pv_battery_failure"])
def test_faults_lower_output_of_affected_devices_only(scenario):
    overrides = {**CLEAR, "onset_h": 24.0}
    if scenario == "pv_soiling":
        overrides |= {"rain_per_day": 0.0, "rate_pct_per_day": 5.0}
    if scenario in ("pv_battery_failure", "pv_degradation"):
        overrides |= {"rate_pct_per_day": 20.0}  # fast enough to show through the inverter's clipping
    out = simulate(scenario, duration="4d", resolution="30m", seed=2, devices=2, overrides=overrides)
    m, state = out.measurements["pv"], out.truth["pv_state"]
    late = m.filter(pl.col("ts") >= m["ts"].min() + pd.Timedelta(days=3))
    energy = late.group_by("device_id").agg(pl.col("ac_power").sum()).sort("device_id")["ac_power"].to_numpy()
    if scenario == "pv_battery_failure":
        hit = state.filter(pl.col("device_id") == "pv000")
        assert hit["battery_isolated"].any() and hit["battery_health"].min() < 0.5
        assert state.filter(pl.col("device_id") == "pv001")["battery_health"].min() == 1.0
    else:
        assert energy[0] < 0.97 * energy[1]
    events = out.truth["events"]
    assert events.height >= 1 and set(events["device_id"]) == {"pv000"}
    assert (events["end"] >= events["ts"]).all()


def test_inverter_trips_are_logged_and_zero_the_output():
    out = simulate("pv_inverter_fault", duration="3d", resolution="5m", seed=4, devices=1, overrides={"onset_h": 0.0, **CLEAR})
    m, events = out.measurements["pv"], out.truth["events"]
    assert events.height > 0 and set(events["type"]) == {"inverter_trip"}
    trip = events.row(0, named=True)
    inside = m.filter((pl.col("ts") >= trip["ts"]) & (pl.col("ts") < trip["end"]))
    assert (inside["ac_power"] == 0).all() and (inside["dc_voltage"] > 0).any()  # open-circuit string voltage


def test_tmy3_weather_runs_and_high_temp_heats_modules():
    m = simulate("pv_normal", duration="2d", resolution="1h", seed=0, overrides={"weather": "tmy3"}).measurements["pv"]
    assert m["ac_power"].max() > 0
    hot = simulate("pv_high_temp", duration="3d", resolution="1h", seed=0, devices=2, overrides={"onset_h": 24.0, **CLEAR}).measurements["pv"]
    peak = hot.group_by("device_id").agg(pl.col("module_temperature").max()).sort("device_id")["module_temperature"]
    assert peak[0] > peak[1] + 8


def test_scenarios_registered_and_params_checked():
    names = {n for n, s in SCENARIOS.items() if s.twin == "solar"}
    assert names == {"pv_normal", "pv_high_temp", "pv_degradation", "pv_inverter_fault", "pv_battery_failure", "pv_soiling", "pv_critical_failure"}
    with pytest.raises(SimulationError, match="latitude"):
        prepare("pv_normal", resolution="15m", overrides={"latitude": 95})
    with pytest.raises(SimulationError, match="resolution"):
        prepare("pv_normal", resolution="1s")
