"""Clear-sky AC power of a PV plant: the reference of the clear-sky index that solar forecasts use.

The chain is the solar twin's (``gridtwin_lib.simulate.solar``) under a cloudless sky, called on
pvlib directly: Ineichen clear sky with pvlib's Linke-turbidity climatology, isotropic transposition
(albedo 0.2), Faiman cell temperature, PVWatts DC and inverter. ``clear_sky_index = P / P_cs`` then
takes the sun's path out of a power series, which is what makes a persisted index ("smart
persistence") a fair reference for forecasts hours ahead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pvlib


def clear_sky_ac_power(times: pd.DatetimeIndex, *, latitude: float, longitude: float, altitude: float,
                       tilt_deg: float, azimuth_deg: float, pv_kw: float, inverter_kw: float,
                       gamma_pdc: float = -0.0037, eta_inv_nom: float = 0.96,
                       temp_air_c: float | np.ndarray = 20.0, wind_speed_m_s: float | np.ndarray = 1.0) -> np.ndarray:
    """AC power of a plant under the clear sky [kW] at ``times``.

    Parameters
    ----------
    times : DatetimeIndex
        Instants (timezone-aware; UTC or any zone).
    latitude, longitude : float
        Site position [deg, north and east positive].
    altitude : float
        Site altitude [m].
    tilt_deg, azimuth_deg : float
        Array tilt from horizontal and azimuth clockwise from north [deg].
    pv_kw : float
        DC rating at STC [kW].
    inverter_kw : float
        Inverter AC rating [kW] (the output never exceeds it).
    gamma_pdc : float
        DC power temperature coefficient [1/K].
    eta_inv_nom : float
        Inverter nominal efficiency [1].
    temp_air_c : float or ndarray
        Ambient temperature [degC] (one value or one per instant).
    wind_speed_m_s : float or ndarray
        Wind speed [m/s] (one value or one per instant).

    Returns
    -------
    ndarray
        Clear-sky AC power [kW], 0 when the sun is down.
    """
    times = pd.DatetimeIndex(times)
    if times.tz is None:
        raise ValueError("clear_sky_ac_power: times must be timezone-aware (UTC)")
    location = pvlib.location.Location(latitude, longitude, tz="UTC", altitude=altitude)
    sky = location.get_clearsky(times, model="ineichen")
    sun = location.get_solarposition(times)
    poa = pvlib.irradiance.get_total_irradiance(tilt_deg, azimuth_deg, sun["apparent_zenith"], sun["azimuth"],
                                                sky["dni"], sky["ghi"], sky["dhi"], albedo=0.2)["poa_global"]
    poa = poa.fillna(0.0).clip(lower=0.0).to_numpy()
    pac = pv_power(poa, temp_air_c, wind_speed_m_s, pv_kw * 1000.0, gamma_pdc, inverter_kw * 1000.0, eta_inv_nom)["pac"]
    return np.nan_to_num(pac) / 1000.0


def pv_power(
    poa: np.ndarray, temp_air: np.ndarray, wind_speed: np.ndarray, pdc0_w: np.ndarray | float, gamma_pdc: float,
    inverter_ac_w: float, eta_inv_nom: float, soiling_loss: np.ndarray | float = 0.0,
) -> dict[str, np.ndarray]:
    """Cell temperature [degC] (faiman), DC [W] (pvwatts_dc) and AC power [W] (pvwatts inverter).

    The solar twin's chain (``gridtwin_lib.simulate.solar`` calls it). Arrays broadcast (steps,
    devices); ``poa`` [W/m2], ``temp_air`` [degC], ``wind_speed`` [m/s]; ``pdc0_w`` [W] is the DC
    rating, already degraded if it is; ``soiling_loss`` [1] the share of irradiance lost to dirt.
    """
    cell = np.asarray(pvlib.temperature.faiman(poa, temp_air, wind_speed))
    pdc = np.asarray(pvlib.pvsystem.pvwatts_dc(poa * (1 - soiling_loss), cell, pdc0_w, gamma_pdc))
    pac = np.asarray(pvlib.inverter.pvwatts(pdc, inverter_ac_w / eta_inv_nom, eta_inv_nom))
    return {"cell_temp": cell, "pdc": pdc, "pac": np.clip(pac, 0.0, None)}


def expected_ac_power(poa_w_m2, temp_air_c, wind_speed_m_s, *, pv_kw: float, inverter_kw: float,
                      gamma_pdc: float = -0.0037, eta_inv_nom: float = 0.96) -> dict[str, np.ndarray]:
    """What a healthy, clean plant produces for the **measured** irradiance and weather: the reference
    of a performance ratio and of the residuals of PV fault detection.

    Parameters
    ----------
    poa_w_m2 : array_like
        Measured plane-of-array irradiance [W/m2].
    temp_air_c, wind_speed_m_s : array_like
        Measured ambient temperature [degC] and wind speed [m/s].
    pv_kw, inverter_kw : float
        Nameplate DC rating at STC and inverter AC rating [kW].
    gamma_pdc, eta_inv_nom : float
        DC temperature coefficient [1/K] and inverter nominal efficiency [1].

    Returns
    -------
    dict of ndarray
        ``ac_kw`` and ``dc_kw`` [kW], ``cell_temp_c`` [degC] (Faiman) and ``efficiency`` [1]
        (AC / DC, NaN where the expected DC power is 0).
    """
    poa = np.clip(np.nan_to_num(np.asarray(poa_w_m2, float)), 0.0, None)
    power = pv_power(poa, np.asarray(temp_air_c, float), np.asarray(wind_speed_m_s, float), pv_kw * 1000.0, gamma_pdc,
                     inverter_kw * 1000.0, eta_inv_nom)
    pac, pdc = np.nan_to_num(power["pac"]), np.clip(np.nan_to_num(power["pdc"]), 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        efficiency = np.where(pdc > 0, pac / np.where(pdc > 0, pdc, 1.0), np.nan)
    return {"ac_kw": pac / 1000.0, "dc_kw": pdc / 1000.0, "cell_temp_c": power["cell_temp"], "efficiency": efficiency}


def clear_sky_index(power_kw, clear_sky_kw, *, floor_kw: float, k_max: float = 1.5) -> np.ndarray:
    """The clear-sky index ``P / P_cs`` [1], clipped to [0, ``k_max``].

    Parameters
    ----------
    power_kw : array_like
        AC power [kW].
    clear_sky_kw : array_like
        Clear-sky AC power at the same instants [kW].
    floor_kw : float
        Smallest clear-sky power divided by [kW] (near sunrise and sunset the ratio of two small
        numbers says nothing; below the floor the index tends to 0).
    k_max : float
        Upper clip [1] (cloud enhancement rarely exceeds 1.3-1.5).

    Returns
    -------
    ndarray
        Clear-sky index [1].
    """
    p = np.asarray(power_kw, float)
    cs = np.asarray(clear_sky_kw, float)
    return np.clip(p / np.maximum(cs, floor_kw), 0.0, k_max)


__all__ = ["clear_sky_ac_power", "clear_sky_index", "expected_ac_power", "pv_power"]
