"""Asset-ageing twins with failures: distribution transformers (IEC 60076-7) and PV inverters.

Transformer thermal model (IEC 60076-7:2018, clause 8.2.3, difference-equation solution),
``Dt`` in minutes, ``K`` load [pu of rating], ``theta_a`` ambient [degC]::

    D theta_o  = Dt / (k11 tau_o) * ([(1 + K^2 R) / (1 + R)]^x * d_theta_or - (theta_o - theta_a))
    D dtheta_h1 = Dt / (k22 tau_w) * (k21 * d_theta_hr * K^y - dtheta_h1)
    D dtheta_h2 = Dt / (tau_o / k22) * ((k21 - 1) * d_theta_hr * K^y - dtheta_h2)
    theta_h = theta_o + dtheta_h1 - dtheta_h2

Defaults (:class:`ThermalParams`) are the standard's ONAN distribution-transformer values
x = 0.8, y = 1.6, R = 5, k11 = 1, k21 = 1, k22 = 2, tau_o = 180 min, tau_w = 4 min, with a
top-oil rise d_theta_or = 52 K and hot-spot gradient d_theta_hr = H g_r = 26 K, so rated
load at 20 degC ambient gives the 98 degC reference hot spot. Each equation is a first-order
recursion, run with :func:`scipy.signal.lfilter` on sub-steps of at most a quarter of the
smallest time constant (the standard asks for ``Dt <= tau / 2``). Relative ageing rate
(non-thermally-upgraded paper) ``V = 2^((theta_h - 98) / 6)``; loss of life ``L = sum V Dt``.

Fleet (``devices`` assets ``tx000``...): calendar age ~ U(age_min_years, age_max_years), consumed
equivalent life at start = age x U(0.2, 0.8), typical daily peak loading ~ U(load_min_pu, load_max_pu).
Load ``K = peak * daily shape (max 1) * seasonal * (1 + AR(1) noise)`` with *overload days* (per asset,
``overload_days_per_year``, x U(1.2, 1.5)) and fleet-wide *heat waves* (``heatwaves_per_year``,
3-5 days, ambient + U(6, 12) K, load x 1.1), both logged in truth table ``stress_events``.

Failure hazard [1/h], three causes (the ``cause`` of a failure is drawn in proportion to them):

* ``insulation_ageing``: Weibull-type (shape ``weibull_shape``, scale ``weibull_scale_years``) in
  the equivalent age ``A`` [years at V = 1], per calendar year: ``h = (b / eta) (A / eta)^(b - 1)``,
  so hot running raises it through ``A`` and a cool unit's hazard grows slowly;
* ``hot_spot_overtemperature``: ``thermal_hazard_per_h * 2^((theta_h - 140) / 6)`` above 120 degC
  (bubbling / mechanical-strength risk of IEC 60076-7 emergency loading);
* ``external_damage`` (lightning, animals, third parties): ``external_rate_per_year``.

A failed unit is replaced at once by a new one (age and consumed life 0); telemetry goes on.
Failure times come from the integrated hazard crossing an Exp(1) threshold (exact for an
inhomogeneous Poisson process at the step resolution).

PV inverter fleet (``inverter_fleet``): same hazard machinery; heatsink temperature
``T = ambient + 25 K * P / P_rated (+ 15 K after a fan failure)``; DC-link capacitor wear at
``2^((T - 70) / 10) / capacitor_life_years`` (10 K rule); fans fail by Weibull on operating time
(a stress event, not an outage); efficiency ``eta0 - degradation_pct_per_year * age - 2 % * wear
- 1 % * fan_failed``. Causes: ``capacitor_wearout`` (Weibull shape 5 on wear), ``igbt_thermal``
(``2^((T - 85) / 10)`` per 1000 h above 75 degC), ``external_damage``.

Outputs. Measurements: transformers ``three_phase`` at the LV terminals (balanced, ``I = K I_rated``,
``V = 230 (1 - 0.03 K)``, PF 0.95, 0.5 % sensor noise); inverters ``pv``. Truth tables:
``asset_observations`` -- **observable sensor readings, safe as model inputs** (measured load,
top-oil / heatsink temperature, ambient, calendar age, rating); ``asset_state`` -- hidden
(hot spot, ageing rate, consumed life, health = Weibull reliability ``exp(-(A/eta)^b)``,
``median_life_constant_hazard_days`` = ``ln 2 / (day's mean hazard)``, the median life if that day's
hazard persisted, capped at 1e5 days -- *not* the time to the failure the twin draws; hazard per day);
``failures`` (ts, device_id, asset_type, cause, age_years, consumed_life_years);
``stress_events`` (ts, end, device_id, type, magnitude);
``lifetimes`` -- one row per unit and observed life: ts (observed from: the run's start or the
replacement instant [UTC]), end (the drawn failure, or the end of the run [UTC]), device_id, asset_type,
unit (0 = the unit in place at the start, then 1, 2... after each replacement), failed (the drawn
failure is in the run), censored (``not failed``: the unit outlives the run, right-censored at its
end), cause (null when censored), age_at_start_years, observed_days (``end - ts`` [days]). The true
time to the next drawn failure of an asset at t is ``end - t`` of the row whose [ts, end) holds t,
an event when ``failed`` and censored otherwise (the remaining-useful-life dataset reads it so). Failed units' rows come
with their failure's block, the censored ones in a last chunk at the end of the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy.signal import lfilter

from ..config import NOMINAL_VOLTAGE_V
from .registry import Param, RunSpec, Scenario, SimChunk, register

BLOCK_S = 86_400.0
HOURS_PER_YEAR = 8766.0
V_NOMINAL = NOMINAL_VOLTAGE_V  # [V]
POWER_FACTOR = 0.95
SENSOR_NOISE = 0.005
MAX_MEDIAN_LIFE_DAYS = 1e5  # cap of median_life_constant_hazard_days [days]


@dataclass(frozen=True)
class ThermalParams:
    """IEC 60076-7 thermal parameters (defaults: ONAN distribution transformer)."""

    x: float = 0.8  # oil exponent
    y: float = 1.6  # winding exponent
    R: float = 5.0  # load-loss / no-load-loss ratio at rated current
    k11: float = 1.0
    k21: float = 1.0
    k22: float = 2.0
    tau_o_min: float = 180.0  # oil time constant [min]
    tau_w_min: float = 4.0  # winding time constant [min]
    d_theta_or: float = 52.0  # top-oil rise at rated load [K]
    d_theta_hr: float = 26.0  # hot-spot to top-oil gradient at rated load, H g_r [K]

    def max_substep_min(self) -> float:
        """Largest sub-step [min]: a quarter of the smallest time constant of the three equations."""
        return 0.25 * min(self.k11 * self.tau_o_min, self.k22 * self.tau_w_min, self.tau_o_min / self.k22)


@dataclass
class ThermalState:
    """Top-oil temperature [degC] and the two hot-spot rise terms [K] per asset."""

    top_oil: np.ndarray
    rise_1: np.ndarray
    rise_2: np.ndarray


def steady_state(load_pu: np.ndarray, ambient_c: np.ndarray, tp: ThermalParams = ThermalParams()) -> ThermalState:
    """The ultimate state for constant load [pu] and ambient [degC]."""
    load_pu, ambient_c = np.asarray(load_pu, float), np.asarray(ambient_c, float)
    top_oil = ambient_c + ((1 + load_pu**2 * tp.R) / (1 + tp.R)) ** tp.x * tp.d_theta_or
    gradient = tp.d_theta_hr * load_pu**tp.y
    return ThermalState(top_oil, tp.k21 * gradient, (tp.k21 - 1) * gradient)


def ageing_rate(hot_spot_c: np.ndarray) -> np.ndarray:
    """Relative ageing rate of non-thermally-upgraded paper, ``2^((theta_h - 98) / 6)`` [1]."""
    return np.exp2((np.asarray(hot_spot_c) - 98.0) / 6.0)


def thermal_response(
    load_pu: np.ndarray, ambient_c: np.ndarray, step_s: float, tp: ThermalParams = ThermalParams(),
    state: ThermalState | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, ThermalState]:
    """Run the difference equations over steps (rows) for assets (columns).

    ``load_pu`` [pu] and ``ambient_c`` [degC] are held over each step of ``step_s`` [s], which
    is split into equal sub-steps no longer than :meth:`ThermalParams.max_substep_min`.
    Returns top-oil and hot-spot temperature [degC] at the end of each step, the mean
    relative ageing rate over each step [1], and the final state (pass it to continue).
    Without ``state`` the run starts in the steady state of the first row.
    """
    load = np.atleast_2d(np.asarray(load_pu, float).T).T if np.ndim(load_pu) == 1 else np.asarray(load_pu, float)
    ambient = np.broadcast_to(np.asarray(ambient_c, float).reshape(load.shape[0], -1), load.shape)
    substeps = max(1, math.ceil(step_s / 60 / tp.max_substep_min()))
    dt_min = step_s / 60 / substeps
    state = state or steady_state(load[0], ambient[0], tp)
    k = np.repeat(load, substeps, axis=0)
    ta = np.repeat(ambient, substeps, axis=0)

    def recursion(gain: float, drive: np.ndarray, previous: np.ndarray) -> np.ndarray:
        # y[n] = (1 - gain) y[n-1] + gain drive[n]
        return lfilter([gain], [1.0, gain - 1.0], drive, axis=0, zi=((1 - gain) * previous)[None, :])[0]

    top_oil = recursion(dt_min / (tp.k11 * tp.tau_o_min), ta + ((1 + k**2 * tp.R) / (1 + tp.R)) ** tp.x * tp.d_theta_or, state.top_oil)
    gradient = tp.d_theta_hr * k**tp.y
    rise_1 = recursion(dt_min / (tp.k22 * tp.tau_w_min), tp.k21 * gradient, state.rise_1)
    rise_2 = recursion(dt_min / (tp.tau_o_min / tp.k22), (tp.k21 - 1) * gradient, state.rise_2)
    hot_spot = top_oil + rise_1 - rise_2
    mean_v = ageing_rate(hot_spot).reshape(load.shape[0], substeps, -1).mean(axis=1)
    last = slice(substeps - 1, None, substeps)
    return top_oil[last], hot_spot[last], mean_v, ThermalState(top_oil[-1], rise_1[-1], rise_2[-1])


# --------------------------------------------------------------------------- failures


class _Hazards:
    """Weibull-in-equivalent-age hazard plus extra hazards; failed assets are replaced."""

    def __init__(self, rng: np.random.Generator, equivalent_age: np.ndarray, calendar_age_years: np.ndarray, shape: float, scale: float):
        self.rng = rng
        self.age = equivalent_age.astype(float)  # [equivalent years]
        self.calendar = calendar_age_years.astype(float)  # [years] at the start of the next step
        self.shape, self.scale = shape, scale
        self.cumulative = np.zeros_like(self.age)
        self.threshold = rng.exponential(size=self.age.shape)

    def advance(self, ageing_years: np.ndarray, extra: np.ndarray, step_h: float, causes: tuple[str, ...]):
        """Consume ``ageing_years`` (steps, assets) and per-hour ``extra`` hazards (steps, assets, causes-1).

        Returns equivalent age and calendar age (steps, assets), hazard per hour and a list
        of failures ``(step, asset, cause, calendar_age, equivalent_age)``.
        """
        n, d = ageing_years.shape
        age_out, calendar_out, hazard_out = np.empty((n, d)), np.empty((n, d)), np.empty((n, d))
        failures = []
        b, eta = self.shape, self.scale
        for j in range(d):
            start = 0
            while start < n:
                age = self.age[j] + np.cumsum(ageing_years[start:, j])
                calendar = self.calendar[j] + step_h / HOURS_PER_YEAR * np.arange(1, n - start + 1)
                weibull = (b / eta) * (age / eta) ** (b - 1) / HOURS_PER_YEAR
                parts = np.column_stack([weibull, extra[start:, j]])
                hazard = parts.sum(axis=1)
                cumulative = self.cumulative[j] + np.cumsum(hazard * step_h)
                age_out[start:, j], calendar_out[start:, j], hazard_out[start:, j] = age, calendar, hazard
                crossed = np.flatnonzero(cumulative >= self.threshold[j])
                if crossed.size == 0:
                    self.age[j], self.calendar[j], self.cumulative[j] = age[-1], calendar[-1], cumulative[-1]
                    break
                k = crossed[0]
                cause = causes[self.rng.choice(len(causes), p=parts[k] / parts[k].sum())]
                failures.append((start + k, j, cause, calendar[k], age[k]))
                self.age[j], self.calendar[j], self.cumulative[j] = 0.0, 0.0, 0.0
                self.threshold[j] = self.rng.exponential()
                start += k + 1
        return age_out, calendar_out, hazard_out, failures

    def health_and_median_life(self, age: np.ndarray, hazard_per_h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weibull reliability at the equivalent age [0-1] and median life [days] if the day's mean
        hazard persisted (a constant-hazard figure, not the time to the drawn failure)."""
        health = np.exp(-((age / self.scale) ** self.shape))
        median_life = np.minimum(math.log(2) / np.maximum(hazard_per_h.mean(axis=0) * 24, 1e-12), MAX_MEDIAN_LIFE_DAYS)
        return health, np.broadcast_to(median_life, age.shape)


# --------------------------------------------------------------------------- helpers


def _p(default, unit, description, lo=None, hi=None, exclusive=False) -> Param:
    return Param(default, unit, description, min=lo, max=hi, min_exclusive=exclusive)


def _utc_series(start, seconds: np.ndarray) -> pl.Series:
    values = np.datetime64(start.replace(tzinfo=None), "us") + (np.asarray(seconds) * 1e6).astype("timedelta64[us]")
    return pl.Series("ts", values).dt.replace_time_zone("UTC")


def _long(ts: pl.Series, devices: list[str], **columns: np.ndarray) -> pl.DataFrame:
    """(steps, devices) arrays to a long frame ordered by time, then device."""
    n, d = len(ts), len(devices)
    frame = pl.DataFrame({"device_id": np.tile(devices, n), **{k: np.asarray(v).ravel() for k, v in columns.items()}})
    return frame.insert_column(0, pl.Series("ts", ts.to_numpy().repeat(d)).dt.replace_time_zone("UTC"))


def _local_hour(seconds: np.ndarray, start, utc_offset_h: float) -> np.ndarray:
    return (seconds / 3600 + start.hour + start.minute / 60 + utc_offset_h) % 24


def _day_of_year(seconds: np.ndarray, start) -> np.ndarray:
    return (start.timetuple().tm_yday - 1 + seconds / 86_400) % 365.25


COMMON_PARAMS: dict[str, Param] = {
    "age_min_years": _p(1.0, "years", "youngest asset at the start", 0, 80),
    "age_max_years": _p(40.0, "years", "oldest asset at the start", 0, 80),
    "load_min_pu": _p(0.5, "pu", "lowest typical daily peak loading of an asset", 0.05, 2),
    "load_max_pu": _p(1.0, "pu", "highest typical daily peak loading of an asset", 0.05, 2),
    "mean_ambient_c": _p(18.0, "degC", "annual mean ambient temperature", -30, 40),
    "seasonal_amplitude_c": _p(6.0, "K", "seasonal ambient swing (peak mid-January: southern hemisphere)", -20, 20),
    "utc_offset_h": _p(10.0, "h", "local time offset from UTC for the daily cycles", -12, 14),
    "heatwaves_per_year": _p(3.0, "1/year", "rate of fleet-wide heat waves", 0, 50),
    "external_rate_per_year": _p(0.005, "1/year", "hazard of external damage per asset", 0, 1),
}
TRANSFORMER_PARAMS: dict[str, Param] = {
    **COMMON_PARAMS,
    "rating_kva": _p(400.0, "kVA", "transformer rating", 10, 5000),
    "overload_days_per_year": _p(6.0, "1/year", "rate of overload days per asset", 0, 365),
    "weibull_shape": _p(4.0, "1", "Weibull shape of insulation failure in equivalent age", 1, 10),
    "weibull_scale_years": _p(30.0, "years", "Weibull scale in equivalent years at V = 1", 1, 200),
    "thermal_hazard_per_h": _p(0.002, "1/h", "hazard at a 140 degC hot spot (zero below 120 degC)", 0, 1),
}
INVERTER_PARAMS: dict[str, Param] = {
    **COMMON_PARAMS,
    "age_max_years": _p(12.0, "years", "oldest asset at the start", 0, 40),
    "rated_kw": _p(5.0, "kW", "inverter AC rating", 0.5, 1000),
    "eta0": _p(0.97, "1", "efficiency of a new inverter", 0.8, 0.995),
    "degradation_pct_per_year": _p(0.3, "%/year", "efficiency decline per year of age", 0, 5),
    "capacitor_life_years": _p(15.0, "years", "DC-link capacitor life at 70 degC", 1, 50),
    "fan_life_years": _p(8.0, "years", "Weibull scale of fan life (shape 2.5)", 0.5, 40),
}


def _fleet_draws(rng: np.random.Generator, p: dict[str, Any], d: int) -> tuple[np.ndarray, np.ndarray]:
    age = rng.uniform(min(p["age_min_years"], p["age_max_years"]), max(p["age_min_years"], p["age_max_years"]), d)
    load = rng.uniform(min(p["load_min_pu"], p["load_max_pu"]), max(p["load_min_pu"], p["load_max_pu"]), d)
    return age, load


class _Fleet:
    """Shared calendar, weather and stress-event machinery of both fleets."""

    asset_type = ""
    prefix = ""

    def __init__(self, run: RunSpec, p: dict[str, Any]):
        self.run, self.p = run, p
        self.devices = [f"{self.prefix}{k:03d}" for k in range(run.devices)]
        self.rng0 = np.random.default_rng([run.seed, 0])
        self.age0, self.mean_load = _fleet_draws(self.rng0, p, run.devices)
        self.ambient_offset = self.rng0.normal(0, 1.0, run.devices)
        self.noise_state = np.zeros(run.devices)
        self.heatwave_until_s, self.heatwave_delta = -1.0, 0.0
        # the unit each asset has now: its number, observed-from instant and calendar age then (truth ``lifetimes``)
        self.unit = np.zeros(run.devices, int)
        self.unit_from = [run.start] * run.devices
        self.unit_age_at_start = self.age0.copy()

    def _calendar(self, t_s: np.ndarray, rng: np.random.Generator, stress: list[dict[str, Any]]):
        """Ambient [degC] (steps, assets) and the heat-wave load factor (steps, 1)."""
        p, start = self.p, self.run.start
        if t_s[0] >= self.heatwave_until_s and rng.random() < p["heatwaves_per_year"] / 365.25:
            length_s = rng.uniform(3, 5) * 86_400
            self.heatwave_until_s, self.heatwave_delta = t_s[0] + length_s, rng.uniform(6, 12)
            stress.append({"ts": start + timedelta(seconds=float(t_s[0])), "end": start + timedelta(seconds=float(t_s[0] + length_s)),
                           "device_id": "fleet", "type": "heat_wave", "magnitude": self.heatwave_delta})
        heat = (t_s < self.heatwave_until_s)[:, None]
        hour, doy = _local_hour(t_s, start, p["utc_offset_h"]), _day_of_year(t_s, start)
        ambient = (p["mean_ambient_c"] + p["seasonal_amplitude_c"] * np.cos(2 * math.pi * (doy - 15) / 365.25)
                   + 5 * np.cos(2 * math.pi * (hour - 15) / 24))[:, None] + self.ambient_offset + heat * self.heatwave_delta
        return ambient, np.where(heat, 1.1, 1.0), hour, doy

    def _noise(self, n: int, rng: np.random.Generator, tau_h: float = 3.0, sigma: float = 0.08) -> np.ndarray:
        phi = math.exp(-self.run.resolution_s / 3600 / tau_h)
        shocks = rng.standard_normal((n, self.run.devices)) * sigma * math.sqrt(1 - phi**2)
        out = lfilter([1.0], [1.0, -phi], shocks, axis=0, zi=(phi * self.noise_state)[None, :])[0]
        self.noise_state = out[-1]
        return out

    def _failures_frame(self, failures, t_s, asset_type: str) -> pl.DataFrame:
        rows = [{"ts": self.run.start + timedelta(seconds=float(t_s[k])), "device_id": self.devices[j], "asset_type": asset_type,
                 "cause": cause, "age_years": float(calendar), "consumed_life_years": float(age)} for k, j, cause, calendar, age in failures]
        schema = {"ts": pl.Datetime("us", "UTC"), "device_id": pl.String, "asset_type": pl.String, "cause": pl.String,
                  "age_years": pl.Float64, "consumed_life_years": pl.Float64}
        return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


LIFETIME_SCHEMA = {"ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "device_id": pl.String, "asset_type": pl.String,
                   "unit": pl.Int32, "failed": pl.Boolean, "censored": pl.Boolean, "cause": pl.String,
                   "age_at_start_years": pl.Float64, "observed_days": pl.Float64}


def _lifetime_row(fleet: _Fleet, j: int, end, cause: str | None) -> dict[str, Any]:
    return {"ts": fleet.unit_from[j], "end": end, "device_id": fleet.devices[j], "asset_type": fleet.asset_type,
            "unit": int(fleet.unit[j]), "failed": cause is not None, "censored": cause is None, "cause": cause,
            "age_at_start_years": float(fleet.unit_age_at_start[j]), "observed_days": (end - fleet.unit_from[j]).total_seconds() / 86_400}


def _closed_lifetimes(fleet: _Fleet, failures, t_s: np.ndarray) -> pl.DataFrame:
    """The lifetimes ended by this block's failures (a replacement unit starts at each failure's instant)."""
    rows = []
    for k, j, cause, *_ in sorted(failures, key=lambda f: f[0]):
        end = fleet.run.start + timedelta(seconds=float(t_s[k]))
        rows.append(_lifetime_row(fleet, j, end, cause))
        fleet.unit[j] += 1
        fleet.unit_from[j], fleet.unit_age_at_start[j] = end, 0.0
    return pl.DataFrame(rows, schema=LIFETIME_SCHEMA, orient="row") if rows else pl.DataFrame(schema=LIFETIME_SCHEMA)


def censored_lifetimes(fleet: _Fleet, end) -> pl.DataFrame:
    """The lifetimes still running at ``end`` (the end of the run [UTC]): right-censored there."""
    return pl.DataFrame([_lifetime_row(fleet, j, end, None) for j in range(len(fleet.devices))], schema=LIFETIME_SCHEMA, orient="row")


def _stress_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {"ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "device_id": pl.String, "type": pl.String, "magnitude": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


class _TransformerFleet(_Fleet):
    asset_type, prefix = "transformer", "tx"
    causes = ("insulation_ageing", "hot_spot_overtemperature", "external_damage")

    def __init__(self, run: RunSpec, p: dict[str, Any]):
        super().__init__(run, p)
        consumed = self.age0 * self.rng0.uniform(0.2, 0.8, run.devices)
        self.hazards = _Hazards(self.rng0, consumed, self.age0, p["weibull_shape"], p["weibull_scale_years"])
        self.thermal: ThermalState | None = None
        self.i_rated = p["rating_kva"] * 1000 / (3 * V_NOMINAL)

    def block(self, block: int, t_s: np.ndarray):
        p, run = self.p, self.run
        rng = np.random.default_rng([run.seed, 1 + block])
        stress: list[dict[str, Any]] = []
        ambient, heat_load, hour, doy = self._calendar(t_s, rng, stress)
        shape = 0.45 + 0.2 * np.exp(-(((hour - 8) / 2) ** 2)) + 0.55 * np.exp(-(((hour - 19) / 2.5) ** 2))  # peak 1
        seasonal = 1 + 0.12 * np.cos(4 * math.pi * (doy - 15) / 365.25)
        overload = np.ones(run.devices)
        for j in np.flatnonzero(rng.random(run.devices) < p["overload_days_per_year"] / 365.25):
            overload[j] = rng.uniform(1.2, 1.5)
            stress.append({"ts": run.start + timedelta(seconds=float(t_s[0])), "end": run.start + timedelta(seconds=float(t_s[-1] + run.resolution_s)),
                           "device_id": self.devices[j], "type": "overload_day", "magnitude": overload[j]})
        load = np.clip(self.mean_load * (shape * seasonal)[:, None] * heat_load * overload * (1 + self._noise(len(t_s), rng)), 0.02, None)

        top_oil, hot_spot, v, self.thermal = thermal_response(load, ambient, run.resolution_s, state=self.thermal)
        step_h = run.resolution_s / 3600
        thermal = p["thermal_hazard_per_h"] * np.exp2((hot_spot - 140) / 6) * (hot_spot > 120)
        external = np.full_like(thermal, p["external_rate_per_year"] / HOURS_PER_YEAR)
        age, calendar, hazard, failures = self.hazards.advance(v * step_h / HOURS_PER_YEAR, np.stack([thermal, external], axis=2), step_h, self.causes)
        health, median_life = self.hazards.health_and_median_life(age, hazard)

        ts = _utc_series(run.start, t_s)
        noisy = lambda x: x * (1 + SENSOR_NOISE * rng.standard_normal(x.shape))  # noqa: E731
        volts = noisy(V_NOMINAL * (1 - 0.03 * load))
        amps = noisy(load * self.i_rated)
        s_va = volts * amps
        phase = {}
        for ph in "abc":
            phase |= {f"v_{ph}": volts, f"i_{ph}": amps, f"p_{ph}": s_va * POWER_FACTOR, f"q_{ph}": s_va * math.sqrt(1 - POWER_FACTOR**2)}
        three_phase = _long(ts, self.devices, **phase, frequency=np.full(load.shape, 50.0))
        observations = _long(
            ts, self.devices, asset_type=np.full(load.shape, self.asset_type), load_pu_measured=amps / self.i_rated,
            top_oil_temp_c=top_oil + 0.5 * rng.standard_normal(load.shape), ambient_temp_c=ambient + 0.3 * rng.standard_normal(load.shape),
            age_years=calendar, rating_kva=np.full(load.shape, p["rating_kva"]),
        )
        state = _long(
            ts, self.devices, load_pu=load, top_oil_temp_c=top_oil, hot_spot_temp_c=hot_spot, ageing_rate=v,
            consumed_life_years=age, health=health, median_life_constant_hazard_days=median_life,
            hazard_per_day=hazard * 24,
        )
        truth = {"asset_observations": observations, "asset_state": state, "failures": self._failures_frame(failures, t_s, self.asset_type),
                 "stress_events": _stress_frame(stress), "lifetimes": _closed_lifetimes(self, failures, t_s)}
        return {"three_phase": three_phase}, truth


class _InverterFleet(_Fleet):
    asset_type, prefix = "inverter", "inv"
    causes = ("capacitor_wearout", "igbt_thermal", "external_damage")
    capacitor_shape = 5.0

    def __init__(self, run: RunSpec, p: dict[str, Any]):
        super().__init__(run, p)
        wear0 = self.age0 / p["capacitor_life_years"] * self.rng0.uniform(0.3, 0.9, run.devices)
        self.hazards = _Hazards(self.rng0, wear0, self.age0, self.capacitor_shape, 1.0)
        fan_hours = self.rng0.weibull(2.5, run.devices) * p["fan_life_years"] * HOURS_PER_YEAR
        self.fan_fails_at_age_h = np.maximum(fan_hours, 1.0)
        self.fan_failed = self.age0 * HOURS_PER_YEAR >= self.fan_fails_at_age_h

    def block(self, block: int, t_s: np.ndarray):
        p, run = self.p, self.run
        rng = np.random.default_rng([run.seed, 1 + block])
        stress: list[dict[str, Any]] = []
        ambient, _, hour, _ = self._calendar(t_s, rng, stress)
        clear_sky_index = rng.uniform(0.3, 1.0)
        sun = np.clip(np.sin(math.pi * (hour - 6) / 13), 0, None) ** 1.3
        irradiance = (1000 * sun * clear_sky_index)[:, None] * np.clip(1 + 0.5 * self._noise(len(t_s), rng), 0, 1.2)
        pac_rated = p["rated_kw"] * 1000
        available = np.clip(pac_rated * 1.1 * irradiance / 1000 * self.mean_load / max(self.mean_load.mean(), 1e-9), 0, pac_rated)

        step_h = run.resolution_s / 3600
        fan_failed = np.empty(available.shape, bool)
        calendar_now = self.hazards.calendar.copy()
        for k in range(len(t_s)):
            calendar_now = calendar_now + step_h / HOURS_PER_YEAR
            newly = ~self.fan_failed & (calendar_now * HOURS_PER_YEAR >= self.fan_fails_at_age_h)
            for j in np.flatnonzero(newly):
                stress.append({"ts": run.start + timedelta(seconds=float(t_s[k])), "end": run.start + timedelta(seconds=float(t_s[k])),
                               "device_id": self.devices[j], "type": "fan_failure", "magnitude": 1.0})
            self.fan_failed |= newly
            fan_failed[k] = self.fan_failed
        heatsink = ambient + 25 * available / pac_rated + 15 * fan_failed
        wear_rate = np.exp2((heatsink - 70) / 10) / (p["capacitor_life_years"] * HOURS_PER_YEAR)  # [rated lives / h]
        igbt = np.exp2((heatsink - 85) / 10) / 1000 * (heatsink > 75)
        external = np.full_like(igbt, p["external_rate_per_year"] / HOURS_PER_YEAR)
        wear, calendar, hazard, failures = self.hazards.advance(wear_rate * step_h, np.stack([igbt, external], axis=2), step_h, self.causes)
        for k, j, *_ in failures:  # the replacement unit has a new fan
            self.fan_failed[j] = False
            self.fan_fails_at_age_h[j] = max(rng.weibull(2.5) * p["fan_life_years"] * HOURS_PER_YEAR, 1.0)
            fan_failed[k + 1 :, j] = False
        efficiency = np.clip(p["eta0"] - p["degradation_pct_per_year"] / 100 * calendar - 0.02 * np.clip(wear, 0, 1) - 0.01 * fan_failed, 0.5, 1)
        pac = available
        pdc = np.where(pac > 0, pac / efficiency, 0.0)
        health, median_life = self.hazards.health_and_median_life(wear, hazard)

        ts = _utc_series(run.start, t_s)
        noisy = lambda x: x * (1 + SENSOR_NOISE * rng.standard_normal(x.shape))  # noqa: E731
        dc_voltage = np.where(pdc > 0, noisy(np.full(pdc.shape, 380.0)), 0.0)
        pac_m, pdc_m = noisy(pac), noisy(pdc)
        pv = _long(
            ts, self.devices, ac_power=pac_m, dc_voltage=dc_voltage, dc_current=np.where(dc_voltage > 0, pdc_m / np.maximum(dc_voltage, 1e-9), 0.0),
            irradiance=irradiance, ambient_temperature=ambient + 0.3 * rng.standard_normal(pac.shape),
            inverter_efficiency=np.where(pdc_m > 1, np.clip(pac_m / np.maximum(pdc_m, 1e-9), 0, 1), np.nan),
        ).with_columns(pl.col("inverter_efficiency").fill_nan(None))
        observations = _long(
            ts, self.devices, asset_type=np.full(pac.shape, self.asset_type), heatsink_temp_c=heatsink + 0.5 * rng.standard_normal(pac.shape),
            ambient_temp_c=ambient, age_years=calendar, rating_kva=np.full(pac.shape, p["rated_kw"]),
        )
        state = _long(
            ts, self.devices, true_efficiency=efficiency, capacitor_wear=wear, fan_failed=fan_failed, health=health,
            median_life_constant_hazard_days=median_life, hazard_per_day=hazard * 24,
        )
        truth = {"asset_observations": observations, "asset_state": state, "failures": self._failures_frame(failures, t_s, self.asset_type),
                 "stress_events": _stress_frame(stress), "lifetimes": _closed_lifetimes(self, failures, t_s)}
        return {"pv": pv}, truth


#: truth tables written whole with the first chunk of their block (not cut by the chunk's time range)
EVENT_TABLES = ("failures", "stress_events", "lifetimes")


def _runner(fleet_class):
    def run(spec: RunSpec, params: dict[str, Any]) -> Iterator[SimChunk]:
        fleet = fleet_class(spec, params)
        steps_per_block = max(1, int(round(BLOCK_S / spec.resolution_s)))
        steps_per_chunk = max(1, min(steps_per_block, int(spec.chunk_s // spec.resolution_s)))
        for block, k0 in enumerate(range(0, spec.n_steps, steps_per_block)):
            k1 = min(spec.n_steps, k0 + steps_per_block)
            measurements, truth = fleet.block(block, np.arange(k0, k1) * spec.resolution_s)
            for c0 in range(k0, k1, steps_per_chunk):
                lo = spec.start + timedelta(seconds=c0 * spec.resolution_s)
                hi = spec.start + timedelta(seconds=min(k1, c0 + steps_per_chunk) * spec.resolution_s)
                first = c0 == k0
                yield SimChunk(
                    measurements={k: v.filter(pl.col("ts").is_between(lo, hi, closed="left")) for k, v in measurements.items()},
                    truth={k: v if k in EVENT_TABLES and first else v.filter(pl.col("ts").is_between(lo, hi, closed="left"))
                           for k, v in truth.items() if first or k not in EVENT_TABLES},
                )
        yield SimChunk(truth={"lifetimes": censored_lifetimes(fleet, spec.start + timedelta(seconds=spec.n_steps * spec.resolution_s))})
    return run


register(Scenario(
    "transformer_fleet", "ageing",
    "distribution transformer fleet: IEC 60076-7 thermal model, ageing, stress events and failures (truth: failures, asset_state)",
    TRANSFORMER_PARAMS, _runner(_TransformerFleet), min_resolution_s=60.0, max_resolution_s=3600.0,
))
register(Scenario(
    "inverter_fleet", "ageing",
    "PV inverter fleet: efficiency decline, fan and DC-link capacitor wear, failures (truth: failures, asset_state)",
    INVERTER_PARAMS, _runner(_InverterFleet), min_resolution_s=60.0, max_resolution_s=3600.0,
))
