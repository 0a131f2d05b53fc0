"""PV + battery asset twin built on pvlib, with failure scenarios (record kind ``pv``).

Chain, per device and step (timestamps are UTC; pvlib handles the solar geometry):

Weather
    ``weather=clearsky``: Ineichen clear sky (``pvlib.location.Location.get_clearsky``, Linke
    turbidity from pvlib's climatology) at ``latitude``/``longitude``/``altitude``; ambient
    temperature ``mean_temp_c + 6 cos(2 pi (doy - 15) / 365.25) * hemisphere + 5 cos(2 pi (h - 15) / 24)``
    (solar local hour ``h``), wind 1-5 m/s and humidity 40-90 % from smooth random walks.
    ``weather=tmy3``: pvlib's bundled TMY3 file (Greensboro NC, 723170TYA.CSV; its own site
    replaces latitude/longitude) interpolated in hour of year (GHI, DNI, DHI, dry bulb, wind,
    humidity), so the clear-sky index below multiplies measured-year irradiance.
Clouds
    clear-sky index ``k = 1 - cloudiness * logistic(2 z)`` with ``z`` an AR(1) process of
    persistence ``cloud_persistence_h`` (shared by every device of the site); ``GHI = k GHI_cs``,
    beam ``DNI = kb DNI_cs`` with ``kb = clip((k - 0.3) / 0.7, 0, 1)**2``, diffuse closes the
    balance ``DHI = GHI - DNI cos(zenith)``. ``cloudiness = 0`` gives the plain clear sky.
PV
    POA ``pvlib.irradiance.get_total_irradiance`` (isotropic, albedo 0.2), cell temperature
    ``pvlib.temperature.faiman``, DC ``pvlib.pvsystem.pvwatts_dc(poa (1 - soiling), T, pdc0 d, gamma_pdc)``
    (``d`` = degradation factor), AC ``pvlib.inverter.pvwatts`` times the inverter health factor,
    capped by thermal derating above 40 degC ambient (linearly to 60 % at 50 degC).
    String voltage ``V = v_mp_stc (1 + beta_v (T - 25)) (1 + 0.05 ln(G / 1000))`` while producing,
    current ``I = P_dc / V``.
Battery
    Self-consumption policy against a household load (``load_kw`` mean, evening peak): charge
    from PV surplus, discharge to cover the deficit, within ``battery_kw`` and ``soc_min``-``soc_max``,
    one-way efficiency ``sqrt(round_trip_efficiency)``; the usable capacity is
    ``battery_kwh * battery_health``. ``ac_power`` is the PV inverter's output only.
Measurements add Gaussian sensor noise of ``sensor_noise_pct`` (relative) to power, voltage,
current and irradiance, 0.3 K to temperatures.

Failure scenarios (``onset_h`` hours after start; they hit the first
``ceil(affected_fraction * devices)`` devices): ``pv_high_temp`` heat wave (+``heat_delta_c``
for ``duration_h``, derating), ``pv_degradation`` (potential-induced degradation,
``pdc0`` loses ``rate_pct_per_day``), ``pv_inverter_fault`` (IGBT over-temperature trips: during
daylight each hour trips with probability 0.25 for 15-90 min, AC = 0), ``pv_battery_failure``
(cell failure: capacity fades ``rate_pct_per_day``; the BMS isolates the pack below 50 %
health), ``pv_soiling`` (dust: loss grows ``rate_pct_per_day`` until a rain event, rate
``rain_per_day``, washes it), ``pv_critical_failure`` (DC-link capacitor: inverter
efficiency falls 15 % over ``duration_h`` as a precursor, then the inverter fails, AC = 0).
Truth: ``events`` (ts start, end, device_id, type, cause, severity 0-1) and ``pv_state``
(hidden per step: soiling_loss, degradation_factor, inverter_health, true_efficiency,
battery_health, battery_isolated).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pvlib

from ..physics.solar import pv_power
from .registry import Param, RunSpec, Scenario, SimChunk, register

BLOCK_S = 86_400.0  # internal block: one simulated day
TMY3_FILE = Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"
DERATE_START_C, DERATE_FULL_C, DERATE_MIN = 40.0, 50.0, 0.6
ISOLATION_HEALTH = 0.5


# --------------------------------------------------------------------------- the physical chain


def clear_sky_weather(times: pd.DatetimeIndex, latitude: float, longitude: float, altitude: float) -> pd.DataFrame:
    """Ineichen clear-sky ghi, dni, dhi [W/m2] and solar apparent_zenith, azimuth [deg] at UTC ``times``."""
    location = pvlib.location.Location(latitude, longitude, tz="UTC", altitude=altitude)
    sky = location.get_clearsky(times, model="ineichen")
    sun = location.get_solarposition(times)
    return sky.assign(apparent_zenith=sun["apparent_zenith"], azimuth=sun["azimuth"])


def plane_of_array(weather: pd.DataFrame, tilt_deg: float, azimuth_deg: float) -> np.ndarray:
    """Plane-of-array global irradiance [W/m2] (pvlib isotropic model, albedo 0.2).

    ``weather`` needs ghi, dni, dhi [W/m2], apparent_zenith and azimuth [deg].
    """
    poa = pvlib.irradiance.get_total_irradiance(
        tilt_deg, azimuth_deg, weather["apparent_zenith"], weather["azimuth"],
        weather["dni"], weather["ghi"], weather["dhi"], albedo=0.2,
    )["poa_global"]
    return poa.fillna(0.0).clip(lower=0.0).to_numpy()


@lru_cache(maxsize=1)
def _tmy3() -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    data, meta = pvlib.iotools.read_tmy3(str(TMY3_FILE), coerce_year=1990, map_variables=True)
    utc = data.index.tz_convert("UTC")
    hour_of_year = ((utc - pd.Timestamp("1990-01-01", tz="UTC")).total_seconds().to_numpy() / 3600) % 8760
    order = np.argsort(hour_of_year)
    columns = ("ghi", "dni", "dhi", "temp_air", "wind_speed", "relative_humidity")
    return hour_of_year[order], {c: data[c].to_numpy(float)[order] for c in columns}, meta


def tmy3_weather(times: pd.DatetimeIndex) -> pd.DataFrame:
    """pvlib's bundled TMY3 year interpolated at UTC ``times`` by hour of year, plus solar position."""
    hours, values, meta = _tmy3()
    start_of_year = pd.to_datetime(times.year.astype(str) + "-01-01").tz_localize("UTC")
    position = ((times - start_of_year).total_seconds().to_numpy() / 3600) % 8760
    frame = pd.DataFrame({c: np.interp(position, hours, v, period=8760) for c, v in values.items()}, index=times)
    sun = pvlib.location.Location(meta["latitude"], meta["longitude"], tz="UTC", altitude=meta["altitude"]).get_solarposition(times)
    return frame.assign(apparent_zenith=sun["apparent_zenith"], azimuth=sun["azimuth"])


# --------------------------------------------------------------------------- scenarios


def _p(default, unit, description, lo=None, hi=None, exclusive=False) -> Param:
    return Param(default, unit, description, min=lo, max=hi, min_exclusive=exclusive)


BASE_PARAMS: dict[str, Param] = {
    "weather": Param("clearsky", "", "clear-sky model at the site, or pvlib's bundled TMY3 year (its own site)", choices=("clearsky", "tmy3")),
    "latitude": _p(-33.87, "deg", "site latitude (default Sydney)", -90, 90),
    "longitude": _p(151.21, "deg", "site longitude (default Sydney)", -180, 180),
    "altitude": _p(40.0, "m", "site altitude", -400, 6000),
    "mean_temp_c": _p(18.0, "degC", "annual mean ambient temperature (clearsky weather)", -30, 40),
    "cloudiness": _p(0.3, "1", "depth of cloud attenuation of the clear-sky index (0 = clear)", 0, 0.95),
    "cloud_persistence_h": _p(2.0, "h", "correlation time of the clear-sky index", 0, 48, True),
    "pv_kw": _p(6.6, "kW", "DC rating of the array at STC", 0, 1000, True),
    "fleet_spread_pct": _p(5.0, "%", "device-to-device spread of the DC rating", 0, 30),
    "tilt_deg": _p(30.0, "deg", "array tilt from horizontal", 0, 90),
    "azimuth_deg": _p(0.0, "deg", "array azimuth clockwise from north (0 = north-facing, southern hemisphere)", 0, 360),
    "gamma_pdc": _p(-0.0037, "1/K", "DC power temperature coefficient", -0.01, 0),
    "inverter_kw": _p(5.0, "kW", "inverter AC rating", 0, 1000, True),
    "eta_inv_nom": _p(0.96, "1", "inverter nominal efficiency", 0.5, 0.995),
    "v_mp_stc": _p(380.0, "V", "string maximum-power voltage at STC", 50, 1500),
    "beta_v": _p(-0.0035, "1/K", "relative temperature coefficient of the string voltage", -0.01, 0),
    "battery_kwh": _p(10.0, "kWh", "battery nominal capacity", 0, 1000),
    "battery_kw": _p(5.0, "kW", "battery charge/discharge power limit", 0, 1000),
    "round_trip_efficiency": _p(0.9, "1", "battery round-trip efficiency", 0.5, 1.0),
    "soc_min": _p(10.0, "%", "lowest state of charge the policy uses", 0, 50),
    "soc_max": _p(95.0, "%", "highest state of charge the policy uses", 50, 100),
    "load_kw": _p(0.8, "kW", "mean household load the battery serves", 0, 100),
    "sensor_noise_pct": _p(0.5, "%", "relative Gaussian noise of power, voltage, current, irradiance", 0, 10),
}
FAULT_PARAMS: dict[str, Param] = {
    "onset_h": _p(24.0, "h", "fault onset, hours after the start of the run", 0, 87_600),
    "affected_fraction": _p(0.5, "1", "share of devices the fault hits (at least one)", 0, 1, True),
}


SCENARIO_PARAMS: dict[str, dict[str, Param]] = {
    "pv_normal": {},
    "pv_high_temp": {
        "heat_delta_c": _p(12.0, "K", "ambient temperature rise of the heat wave", 0, 30, True),
        "duration_h": _p(72.0, "h", "length of the heat wave", 0, 8760, True),
    },
    "pv_degradation": {"rate_pct_per_day": _p(0.5, "%/day", "loss of DC rating per day after onset", 0, 20, True)},
    "pv_inverter_fault": {},
    "pv_battery_failure": {"rate_pct_per_day": _p(5.0, "%/day", "battery capacity fade per day after onset", 0, 100, True)},
    "pv_soiling": {
        "rate_pct_per_day": _p(1.0, "%/day", "soiling loss accumulation per day", 0, 20, True),
        "rain_per_day": _p(0.1, "1/day", "rate of cleaning rain events", 0, 10),
    },
    "pv_critical_failure": {"duration_h": _p(12.0, "h", "precursor (efficiency decline) before the inverter fails", 0, 8760, True)},
}
DESCRIPTIONS = {
    "pv_normal": "PV + battery asset (pvlib chain, stochastic clouds), no faults",
    "pv_high_temp": "heat wave: hot modules, lower DC power, inverter thermal derating",
    "pv_degradation": "potential-induced degradation: DC rating declines after onset",
    "pv_inverter_fault": "intermittent inverter trips (IGBT over-temperature) after onset",
    "pv_battery_failure": "battery cell failure: capacity fade, then BMS isolation",
    "pv_soiling": "dust accumulation washed off by random rain events",
    "pv_critical_failure": "DC-link capacitor failure: efficiency-decline precursor, then the inverter fails",
}
MAX_SOILING_LOSS = 0.6
TRIP_RATE_PER_H, TRIP_MIN_S, TRIP_MAX_S = 0.25, 900.0, 5400.0
CRITICAL_EFFICIENCY_LOSS = 0.15


def _utc(start, seconds: np.ndarray) -> np.ndarray:
    return np.datetime64(start.replace(tzinfo=None), "us") + (seconds * 1e6).astype("timedelta64[us]")


def _event(start, t0_s, t1_s, device, kind, cause, severity) -> dict[str, Any]:
    return {
        "ts": start + timedelta(seconds=float(t0_s)), "end": start + timedelta(seconds=float(t1_s)),
        "device_id": device, "type": kind, "cause": cause, "severity": float(np.clip(severity, 0, 1)),
    }


def _events_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {"ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "device_id": pl.String,
              "type": pl.String, "cause": pl.String, "severity": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


class _PvRun:
    """State carried across day blocks for one run of one scenario."""

    def __init__(self, scenario: str, run: RunSpec, p: dict[str, Any]):
        self.scenario, self.run, self.p = scenario, run, p
        rng = np.random.default_rng([run.seed, 0])
        d = run.devices
        self.devices = [f"pv{k:03d}" for k in range(d)]
        self.pdc0 = p["pv_kw"] * 1000 * np.clip(1 + p["fleet_spread_pct"] / 100 * rng.standard_normal(d), 0.5, 1.5)
        self.load_scale = rng.lognormal(0, 0.3, d)
        n_hit = math.ceil(p["affected_fraction"] * d) if scenario != "pv_normal" else 0
        self.affected = np.arange(d) < n_hit
        self.onset_s = p.get("onset_h", 0.0) * 3600
        self.end_s = run.n_steps * run.resolution_s
        self.cloud_z = 0.0
        self.soc = np.full(d, 50.0)
        self.last_clean_s = np.full(d, self.onset_s)
        self.trip_until_s = np.full(d, -np.inf)
        self.events: list[dict[str, Any]] = self._scheduled_events()

    def _scheduled_events(self) -> list[dict[str, Any]]:
        """Events whose timing is fixed by the parameters (logged in the first chunk)."""
        p, on, end = self.p, self.onset_s, self.end_s
        if on >= end:
            return []
        rows = []
        for dev in np.array(self.devices)[self.affected]:
            if self.scenario == "pv_high_temp":
                rows.append(_event(self.run.start, on, min(end, on + p["duration_h"] * 3600), dev, "high_temperature", "heat_wave", p["heat_delta_c"] / 20))
            elif self.scenario == "pv_degradation":
                loss = min(0.8, p["rate_pct_per_day"] / 100 * (end - on) / 86_400)
                rows.append(_event(self.run.start, on, end, dev, "degradation", "potential_induced_degradation", loss))
            elif self.scenario == "pv_battery_failure":
                rate = p["rate_pct_per_day"] / 100 / 86_400
                rows.append(_event(self.run.start, on, end, dev, "battery_capacity_fade", "cell_failure", min(0.8, rate * (end - on))))
                isolation = on + (1 - ISOLATION_HEALTH) / rate
                if isolation < end:
                    rows.append(_event(self.run.start, isolation, end, dev, "battery_isolation", "cell_failure", 1.0))
            elif self.scenario == "pv_critical_failure":
                failure = on + p["duration_h"] * 3600
                rows.append(_event(self.run.start, on, min(end, failure), dev, "inverter_degradation", "dc_link_capacitor_wear", CRITICAL_EFFICIENCY_LOSS))
                if failure < end:
                    rows.append(_event(self.run.start, failure, end, dev, "inverter_failure", "dc_link_capacitor_failure", 1.0))
        return rows

    def _weather(self, times: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
        p = self.p
        if p["weather"] == "tmy3":
            return tmy3_weather(times)
        weather = clear_sky_weather(times, p["latitude"], p["longitude"], p["altitude"])
        doy = times.dayofyear.to_numpy()
        solar_hour = (times.hour.to_numpy() + times.minute.to_numpy() / 60 + p["longitude"] / 15) % 24
        hemisphere = -1.0 if p["latitude"] < 0 else 1.0
        seasonal = -6 * hemisphere * np.cos(2 * math.pi * (doy - 15) / 365.25)
        walk = np.cumsum(rng.standard_normal((len(times), 2)), axis=0) / math.sqrt(max(len(times), 1))
        return weather.assign(
            temp_air=p["mean_temp_c"] + seasonal + 5 * np.cos(2 * math.pi * (solar_hour - 15) / 24),
            wind_speed=np.clip(3 + 1.5 * walk[:, 0], 1, 5),
            relative_humidity=np.clip(65 - 15 * np.cos(2 * math.pi * (solar_hour - 15) / 24) + 10 * walk[:, 1], 40, 90),
        )

    def _clouds(self, weather: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        if self.p["cloudiness"] == 0:
            return weather
        phi = math.exp(-self.run.resolution_s / (self.p["cloud_persistence_h"] * 3600))
        z = np.empty(len(weather))
        shocks = rng.standard_normal(len(weather)) * math.sqrt(1 - phi**2)
        for k, shock in enumerate(shocks):
            self.cloud_z = phi * self.cloud_z + shock
            z[k] = self.cloud_z
        index = 1 - self.p["cloudiness"] / (1 + np.exp(-2 * z))
        beam = np.clip((index - 0.3) / 0.7, 0, 1) ** 2
        ghi = weather["ghi"].to_numpy() * index
        dni = weather["dni"].to_numpy() * beam
        cos_zenith = np.clip(np.cos(np.radians(weather["apparent_zenith"].to_numpy())), 0, 1)
        return weather.assign(ghi=ghi, dni=dni, dhi=np.clip(ghi - dni * cos_zenith, 0, None))

    def block(self, block: int, k0: int, k1: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Measurements (kind ``pv``) and hidden state of steps ``k0``..``k1`` (one day block)."""
        p, run, scenario = self.p, self.run, self.scenario
        rng = np.random.default_rng([run.seed, 1 + block])
        dt = run.resolution_s
        t_s = np.arange(k0, k1) * dt  # seconds since start
        ts = _utc(run.start, t_s)
        times = pd.DatetimeIndex(ts).tz_localize("UTC")
        n, d = len(t_s), run.devices
        weather = self._clouds(self._weather(times, rng), rng)
        poa = plane_of_array(weather, p["tilt_deg"], p["azimuth_deg"])[:, None] * np.ones(d)
        since = np.clip(t_s[:, None] - self.onset_s, 0, None) * self.affected  # [s] after onset, 0 if unaffected
        active = (t_s[:, None] >= self.onset_s) & self.affected
        temp_air = np.repeat(weather["temp_air"].to_numpy()[:, None], d, axis=1)
        wind = np.repeat(weather["wind_speed"].to_numpy()[:, None], d, axis=1)

        degradation = np.ones((n, d))
        soiling = np.zeros((n, d))
        inverter_health = np.ones((n, d))
        battery_health = np.ones((n, d))
        inverter_off = np.zeros((n, d), bool)
        if scenario == "pv_high_temp":
            temp_air = temp_air + p["heat_delta_c"] * (active & (since < p["duration_h"] * 3600))
        elif scenario == "pv_degradation":
            degradation = np.clip(1 - p["rate_pct_per_day"] / 100 * since / 86_400, 0.2, 1)
        elif scenario == "pv_battery_failure":
            battery_health = np.clip(1 - p["rate_pct_per_day"] / 100 * since / 86_400, 0.2, 1)
        elif scenario == "pv_critical_failure":
            precursor = p["duration_h"] * 3600
            inverter_health = 1 - CRITICAL_EFFICIENCY_LOSS * np.clip(since / precursor, 0, 1)
            inverter_off = active & (since >= precursor)
        elif scenario == "pv_soiling":
            soiling = self._soiling(t_s, rng)
        elif scenario == "pv_inverter_fault":
            inverter_off = self._trips(t_s, poa, rng)

        power = pv_power(poa, temp_air, wind, self.pdc0 * degradation, p["gamma_pdc"], p["inverter_kw"] * 1000, p["eta_inv_nom"], soiling)
        pdc, cell = power["pdc"], power["cell_temp"]
        derate = 1 - (1 - DERATE_MIN) * np.clip((temp_air - DERATE_START_C) / (DERATE_FULL_C - DERATE_START_C), 0, 1)
        available = power["pac"] * inverter_health
        pac = np.where(inverter_off, 0.0, np.minimum(available, p["inverter_kw"] * 1000 * derate))
        # a derated inverter draws proportionally less DC (the array moves off its maximum power point)
        pdc = np.where(inverter_off, 0.0, pdc * np.where(available > 0, pac / np.maximum(available, 1e-9), 1.0))
        producing = pdc > 1.0
        efficiency = np.where(producing, pac / np.maximum(pdc, 1e-9), np.nan)
        log_g = np.log(np.clip(poa, 1, None) / 1000)
        v_mp = p["v_mp_stc"] * (1 + p["beta_v"] * (cell - 25)) * np.clip(1 + 0.05 * log_g, 0.5, 1.1)
        dc_voltage = np.where(producing, v_mp, np.where(poa > 20, 1.22 * v_mp, 0.0))  # open circuit when tripped
        dc_current = np.where(producing, pdc / np.maximum(dc_voltage, 1e-9), 0.0)

        soc, isolated = self._battery(t_s, pac, battery_health, rng)

        noise = p["sensor_noise_pct"] / 100
        temperature_noise_k = 0.3 if noise > 0 else 0.0

        def measured(x):
            return x * (1 + noise * rng.standard_normal(x.shape))

        def measured_temperature(x):
            return x + temperature_noise_k * rng.standard_normal(x.shape)

        frame = {
            "ts": np.repeat(ts, d),
            "device_id": np.tile(self.devices, n),
            "ac_power": np.clip(measured(pac), 0, None).ravel(),
            "dc_voltage": np.clip(measured(dc_voltage), 0, None).ravel(),
            "dc_current": np.clip(measured(dc_current), 0, None).ravel(),
            "irradiance": np.clip(measured(poa), 0, 1600).ravel(),
            "module_temperature": measured_temperature(cell).ravel(),
            "ambient_temperature": measured_temperature(temp_air).ravel(),
            "inverter_efficiency": np.clip(efficiency, 0, 1).ravel(),
            "battery_soc": soc.ravel(),
            "wind_speed": np.repeat(weather["wind_speed"].to_numpy(), d),
            "humidity": np.repeat(weather["relative_humidity"].to_numpy(), d),
        }
        measurements = pl.DataFrame(frame).with_columns(
            pl.col("ts").dt.replace_time_zone("UTC"), pl.col("inverter_efficiency").fill_nan(None)
        )
        state = pl.DataFrame({
            "ts": np.repeat(ts, d), "device_id": np.tile(self.devices, n),
            "soiling_loss": soiling.ravel(), "degradation_factor": degradation.ravel(),
            "inverter_health": np.where(inverter_off, 0.0, inverter_health).ravel(),
            "true_efficiency": np.nan_to_num(efficiency).ravel(), "battery_health": battery_health.ravel(),
            "battery_isolated": isolated.ravel(), "true_ac_power": pac.ravel(),
        }).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
        return measurements, state

    def _soiling(self, t_s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Soiling loss (steps, devices); a rain event cleans the whole site and closes the episode."""
        p, dt = self.p, self.run.resolution_s
        rain = rng.random(len(t_s)) < 1 - math.exp(-p["rain_per_day"] * dt / 86_400)
        loss = np.zeros((len(t_s), self.run.devices))
        rate = p["rate_pct_per_day"] / 100 / 86_400
        for k in range(len(t_s)):
            loss[k] = np.clip(rate * (t_s[k] - self.last_clean_s), 0, MAX_SOILING_LOSS) * self.affected * (t_s[k] >= self.onset_s)
            if rain[k] and t_s[k] > self.onset_s:
                for j in np.flatnonzero(self.affected & (loss[k] > 0)):
                    self.events.append(_event(self.run.start, self.last_clean_s[j], t_s[k], self.devices[j], "soiling", "dust_accumulation", loss[k, j] / MAX_SOILING_LOSS))
                self.last_clean_s[:] = t_s[k]
        return loss

    def close_open_episodes(self) -> None:
        """Log soiling episodes still running at the end of the run."""
        if self.scenario != "pv_soiling" or self.onset_s >= self.end_s:
            return
        loss = np.clip(self.p["rate_pct_per_day"] / 100 / 86_400 * (self.end_s - self.last_clean_s), 0, MAX_SOILING_LOSS)
        for j in np.flatnonzero(self.affected & (loss > 0)):
            self.events.append(_event(self.run.start, self.last_clean_s[j], self.end_s, self.devices[j], "soiling", "dust_accumulation", loss[j] / MAX_SOILING_LOSS))

    def _trips(self, t_s: np.ndarray, poa: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Inverter-off mask (steps, devices) of over-temperature trips during daylight."""
        dt = self.run.resolution_s
        p_trip = 1 - math.exp(-TRIP_RATE_PER_H * dt / 3600)
        off = np.zeros(poa.shape, bool)
        for k, now in enumerate(t_s):
            start = self.affected & (now >= self.onset_s) & (now >= self.trip_until_s) & (poa[k] > 200) & (rng.random(poa.shape[1]) < p_trip)
            for j in np.flatnonzero(start):
                length = rng.uniform(TRIP_MIN_S, TRIP_MAX_S)
                self.trip_until_s[j] = now + length
                self.events.append(_event(self.run.start, now, min(now + length, self.end_s), self.devices[j], "inverter_trip", "igbt_over_temperature", length / TRIP_MAX_S))
            off[k] = now < self.trip_until_s
        return off

    def _battery(self, t_s: np.ndarray, pac: np.ndarray, health: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """SoC [%] and isolation flag (steps, devices) under the self-consumption policy."""
        p, dt_h = self.p, self.run.resolution_s / 3600
        solar_hour = ((t_s / 3600 + self.run.start.hour + self.run.start.minute / 60 + p["longitude"] / 15) % 24)[:, None]
        shape = 0.6 + 0.5 * np.exp(-(((solar_hour - 19) / 2.5) ** 2)) + 0.3 * np.exp(-(((solar_hour - 7.5) / 1.5) ** 2))
        load = p["load_kw"] * 1000 * shape * self.load_scale * rng.lognormal(0, 0.2, pac.shape)
        one_way = math.sqrt(p["round_trip_efficiency"])
        soc = np.empty(pac.shape)
        isolated = health < ISOLATION_HEALTH
        for k in range(len(t_s)):
            capacity_wh = p["battery_kwh"] * 1000 * health[k]
            surplus = pac[k] - load[k]
            room_wh = np.clip(p["soc_max"] - self.soc, 0, None) / 100 * capacity_wh
            stored_wh = np.clip(self.soc - p["soc_min"], 0, None) / 100 * capacity_wh
            charge_w = np.minimum.reduce([np.clip(surplus, 0, None), np.full_like(surplus, p["battery_kw"] * 1000), room_wh / (one_way * dt_h)])
            discharge_w = np.minimum.reduce([np.clip(-surplus, 0, None), np.full_like(surplus, p["battery_kw"] * 1000), stored_wh * one_way / dt_h])
            delta_wh = (charge_w * one_way - discharge_w / one_way) * dt_h
            working = ~isolated[k] & (capacity_wh > 0)
            self.soc = np.where(working, self.soc + 100 * delta_wh / np.maximum(capacity_wh, 1e-9), self.soc)
            soc[k] = self.soc
        return soc, isolated


def _runner(scenario: str):
    def run(spec: RunSpec, params: dict[str, Any]) -> Iterator[SimChunk]:
        twin = _PvRun(scenario, spec, params)
        steps_per_block = max(1, int(round(BLOCK_S / spec.resolution_s)))
        steps_per_chunk = max(1, min(steps_per_block, int(spec.chunk_s // spec.resolution_s)))
        for block, k0 in enumerate(range(0, spec.n_steps, steps_per_block)):
            k1 = min(spec.n_steps, k0 + steps_per_block)
            measurements, state = twin.block(block, k0, k1)
            if k1 == spec.n_steps:
                twin.close_open_episodes()
            d = spec.devices
            for c0 in range(0, k1 - k0, steps_per_chunk):
                rows = slice(c0 * d, min(k1 - k0, c0 + steps_per_chunk) * d)
                events, twin.events = twin.events, []
                yield SimChunk(
                    measurements={"pv": measurements[rows]},
                    truth={"pv_state": state[rows], "events": _events_frame(events)},
                )
    return run


for _name, _extra in SCENARIO_PARAMS.items():
    _params = {**BASE_PARAMS, **({} if _name == "pv_normal" else FAULT_PARAMS), **_extra}
    register(Scenario(_name, "solar", DESCRIPTIONS[_name], _params, _runner(_name), min_resolution_s=60.0, max_resolution_s=3600.0))
