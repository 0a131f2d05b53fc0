"""Three-phase measurement point / LV feeder head twin (record kind ``three_phase``).

Model, per device and per step of length ``dt`` [s] (all vectorised with NumPy):

Load
    ``N`` single-phase customers are dealt to phases a, b, c (seeded shuffle); each has a
    mean demand ``mean_customer_kw * lognormal(0, customer_spread)``. A phase's demand is
    ``sum(customer means) * shape(t) * trend(t) + OU noise`` whose standard deviation is
    ``load_noise_pct`` % of ``sqrt(sum(customer means**2))`` (independent customers add
    in quadrature) with time constant ``load_noise_tau_s``. ``shape(t)`` is the product of

    * daily (local hour h): ``0.35 + 0.30 g(h, 7.5, 1.5) + 0.60 g(h, 19, 2.2) + 0.10 g(h, 13, 3)``
      with ``g(h, c, w) = exp(-((h - c) / w)**2)``, morning peak shifted to 9 h on weekends;
    * weekly: 1.08 on Saturday and Sunday, else 1;
    * seasonal (day of year d): ``1 + 0.12 cos(4 pi (d - 15) / 365.25)`` (mid-summer and
      mid-winter peaks, so it suits either hemisphere).

    With ``load_profile=uci`` the ``sum(customer means) * shape(t)`` term is replaced by real
    demand: each customer replays a day of the UCI household's measured minute series
    (same weekday, same season after ``uci_season_shift_days``), scaled to its own mean
    (:mod:`gridtwin_lib.simulate.profiles`); trend and OU noise are added as before.

    PV per phase is ``pv_kw_per_phase * max(0, sin(pi (h - 6) / 12))**1.5`` times the cloud
    attenuation; clouds arrive with a hazard that peaks in the afternoon.

Power and voltage (per phase, every row)
    Load PF angle ``phi = arccos(power_factor)`` (lagging, Q > 0); PV at unity PF. Net
    ``P = P_load - P_pv`` [W], ``Q`` [var]. Voltage through the Thevenin source impedance
    uses the usual drop approximation ``V = E - (R P + X Q) / E`` (not the exact phasor),
    floored at 0.1 E. ``S = hypot(P, Q)``, ``I = S / V``. Sags, swells and interruptions
    force V towards a target for the part of the step they cover; the load then behaves as
    constant impedance (P, Q scale with ``(V_new / V)**2``).

Measurements
    ``V`` and ``I`` carry a bounded multiplicative sensor error (uniform ±0.1 %); P and Q
    are computed from the measured V and I and the true angle, so
    ``P**2 + Q**2 == (V I)**2`` holds in every row to float precision.

Frequency
    Swing equation with governor, per unit on the system base::

        2H dw/dt = dPm - dPe - D w          Tg dPm/dt = -w / R - dPm

    driven by the system imbalance ``dPe`` [pu]: OU load noise, generator trips (decaying
    with AGC time constant), AGC-drift episodes, a deterministic ``load_step_pu`` and the
    area's PV shortfall times ``renewable_share``. The linear system is discretised exactly
    (zero-order hold, :func:`scipy.signal.cont2discrete`) at the step ``dt`` and run with
    :func:`scipy.signal.lfilter`; the discrete poles are ``exp(lambda dt)``, so it is stable at
    any resolution without sub-steps. A load step up gives a negative RoCoF and nadir.

Events (truth table ``events``)
    *Drivers* are drawn from hazards that depend on the simulated state: motor starts
    (hazard ~ load shape and its upward ramp), upstream sags (base rate x loading plus a
    self-exciting term after each motor start, memory ``motor_memory_s``), locked-rotor
    overcurrents (after motor starts), faults (x loading), generator trips, AGC drift,
    clouds (``pv_drop``) and harmonic resonance (x loading). Drivers are logged with their
    own type (``motor_start``, ``fault``, ``gen_trip``, ``frequency_drift``, ``pv_drop``,
    ``load_step``); they may be invisible at coarse resolution, where an event shorter than
    a step only moves the step's value by the fraction of the step it covers.
    *Disturbances* are logged from the measured values with the definitions of EN 50160 /
    IEC 61000-4-30, so a logged interval always shows in the measurements:
    ``sag`` (0.05 <= V < 0.9 pu, shorter than 60 s; ``undervoltage`` if longer), ``swell``
    (V > 1.1 pu), ``interruption`` (all phases < 0.05 pu), ``overcurrent`` (I > pickup),
    ``overload`` (V I > phase rating), ``frequency_excursion`` (outside 49.85-50.15 Hz),
    ``unbalance`` (max deviation from mean phase voltage > 2 %), ``harmonics`` (THD > 8 %).
    Their ``cause`` is the driver active at the interval's start. ``severity`` is a
    number in [0, 1] (sag: depth ``1 - retained``; swell: ``(V - 1.1 pu) / 0.4``;
    overload / overcurrent: excess over the limit, clipped at 100 %; frequency:
    ``|deviation| / 1 Hz``; unbalance: ``LVUR / 10 %``; harmonics: ``THD / 20 %``; fault and
    interruption: 1). ``magnitude`` is the physical extreme in the unit named by ``unit``.

Randomness: ``np.random.default_rng(seed + device_index)`` for the customers, and one
stream per (``seed + device_index``, day block, process) for everything else, so the output
does not depend on ``RunSpec.chunk_s``: the twin works in blocks of one simulated day and
slices them into chunks of at most ``chunk_s``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy.signal import cont2discrete, lfilter, ss2tf

from ..config import NOMINAL_FREQUENCY_HZ, NOMINAL_VOLTAGE_V
from ..physics.unbalance import voltage_unbalance_rate_pct
from .profiles import HouseholdProfiles, local_midnight_epoch
from .registry import Param, RunSpec, Scenario, SimChunk, register

V_NOMINAL = NOMINAL_VOLTAGE_V  # [V] phase to neutral
F_NOMINAL = NOMINAL_FREQUENCY_HZ  # [Hz]
SENSOR_ERROR = 1e-3  # bounded relative error of V and I, uniform
FREQUENCY_ERROR_HZ = 1e-3  # bounded absolute frequency error [Hz]
THD_ERROR_PCT = 0.05  # bounded absolute THD error [%]
BLOCK_S = 86_400.0  # internal block: one simulated day
FREQ_BAND_HZ = (49.85, 50.15)
PHASES = ("a", "b", "c")
UNBALANCE_CAUSES = (
    "single_phase_overload_a", "single_phase_overload_b", "single_phase_overload_c",
    "open_conductor", "high_resistance_conductor", "unbalanced_pv",
)

# cause ids painted per step; 0 means "the disturbance's default cause"
CAUSES = (
    "", "motor_start", "upstream_fault", "locked_rotor", "phase_to_ground_fault", "protection_trip",
    "gen_trip", "agc_drift", "load_step", "pv_drop", "harmonic_resonance", *UNBALANCE_CAUSES,
)
CAUSE_ID = {name: k for k, name in enumerate(CAUSES)}

# random stream ids (one generator each per device and block)
_S_LOAD, _S_SYSTEM, _S_SENSOR, _S_CLOUD, _S_MOTOR, _S_SAG, _S_OC, _S_FAULT, _S_TRIP, _S_DRIFT, _S_HARM, _S_SOURCE = range(12)


# --------------------------------------------------------------------------- parameters


def _p(default, unit, description, lo=None, hi=None, exclusive=False) -> Param:
    return Param(default, unit, description, min=lo, max=hi, min_exclusive=exclusive)


BASE_PARAMS: dict[str, Param] = {
    "customers": _p(60, "", "single-phase customers on the feeder", 1, 5000),
    "mean_customer_kw": _p(1.0, "kW", "mean demand of a customer", 0, 50, True),
    "customer_spread": _p(0.35, "1", "lognormal sigma of customer mean demand", 0, 2),
    "load_noise_pct": _p(25.0, "%", "fluctuation of one customer's demand (OU sigma)", 0, 200),
    "load_noise_tau_s": _p(300.0, "s", "correlation time of demand fluctuation", 0, 86_400, True),
    "load_scale": _p(1.0, "1", "multiplier on every customer's demand", 0, 10, True),
    "load_trend_pct_per_day": _p(0.0, "%/d", "linear demand growth over the run (heatwave)", -20, 50),
    "load_profile": Param("synthetic", "", "customer demand: the synthetic shape, or real UCI household days (see simulate.profiles)",
                          choices=("synthetic", "uci")),
    "uci_season_shift_days": _p(182, "d", "with load_profile=uci: shift of the UCI (northern) calendar; 182 suits the "
                                "default southern-hemisphere site, 0 a northern one", 0, 365),
    "power_factor": _p(0.95, "1", "load power factor (lagging)", 0, 1, True),
    "source_voltage_v": _p(236.0, "V", "Thevenin source EMF per phase", 180, 280),
    "source_r_ohm": _p(0.04, "ohm", "source resistance per phase", 0, 5),
    "source_x_ohm": _p(0.03, "ohm", "source reactance per phase", 0, 5),
    "phase_rating_kva": _p(100.0, "kVA", "rating per phase (overload limit)", 0, 10_000, True),
    "overcurrent_pickup_a": _p(650.0, "A", "overcurrent protection pickup", 0, 100_000, True),
    "utc_offset_h": _p(10.0, "h", "local time offset from UTC for the load shape", -12, 14),
    "inertia_h_s": _p(4.0, "s", "system inertia constant H", 0, 30, True),
    "damping_pu": _p(1.0, "pu", "load damping D", 0, 20),
    "droop_pu": _p(0.05, "pu", "governor droop R", 0, 1, True),
    "governor_tau_s": _p(3.0, "s", "governor-turbine time constant", 0, 120, True),
    "agc_tau_s": _p(180.0, "s", "AGC restoring time constant of a generation loss", 1, 7200),
    "system_noise_pu": _p(0.006, "pu", "sigma of system load noise", 0, 0.2),
    "pv_kw_per_phase": _p(0.0, "kW", "installed PV per phase", 0, 5000),
    "renewable_share": _p(0.0, "1", "share of system imbalance that follows local PV shortfall", 0, 1),
    "clouds_per_h": _p(0.5, "1/h", "cloud arrival hazard at its afternoon peak", 0, 3600),
    "motor_starts_per_h": _p(0.5, "1/h", "motor start hazard at mean load shape", 0, 3600),
    "motor_kw": _p(3.0, "kW", "median rated power of a starting motor", 0, 1000),
    "motor_memory_s": _p(900.0, "s", "decay time of sag / stall hazard after a motor start", 1, 86_400),
    "sags_per_h": _p(0.01, "1/h", "upstream sag hazard at full loading", 0, 3600),
    "sag_excitation_per_h": _p(0.2, "1/h", "added sag hazard right after a motor start", 0, 3600),
    "stall_per_h": _p(0.0, "1/h", "added locked-rotor overcurrent hazard right after a motor start", 0, 3600),
    "faults_per_h": _p(0.0, "1/h", "fault hazard at full loading", 0, 3600),
    "gen_trips_per_h": _p(0.02, "1/h", "generator trip hazard", 0, 3600),
    "gen_trip_pu": _p(0.03, "pu", "median size of a generator trip", 0, 1),
    "drifts_per_h": _p(0.0, "1/h", "AGC drift episode hazard", 0, 3600),
    "drift_pu_per_h": _p(0.05, "pu/h", "imbalance ramp rate during an AGC drift", 0, 10),
    "load_step_pu": _p(0.0, "pu", "deterministic system load step (positive = more load)", -1, 1),
    "load_step_at_s": _p(0.0, "s", "time of the load step after start", 0, None),
    "harmonics_per_h": _p(0.0, "1/h", "harmonic resonance hazard at full loading", 0, 3600),
    "thd_base_pct": _p(2.0, "%", "background voltage THD", 0, 6),
}

PHASE_UNBALANCE_PARAMS: dict[str, Param] = {
    "cause": Param("single_phase_overload_a", "", "cause of unbalance", choices=UNBALANCE_CAUSES),
    "onset_fraction": _p(0.25, "1", "fraction of the run before the cause starts", 0, 1),
    "unbalance_strength": _p(1.0, "1", "strength of the cause (1 = typical)", 0, 5, True),
}


def _params(**defaults: Any) -> dict[str, Param]:
    out = {k: (replace(p, default=defaults.pop(k)) if k in defaults else p) for k, p in BASE_PARAMS.items()}
    assert not defaults, f"unknown grid parameters {sorted(defaults)}"
    return out


# --------------------------------------------------------------------------- state


@dataclass
class _Effect:
    """A drawn event's action on steps [s0, s1) (global step indices)."""

    kind: str  # "load" (extra P, Q), "voltage" (target V), "thd" (target THD)
    phases: tuple[int, ...]
    s0: int
    s1: int
    value: tuple[float, float] | float  # (P [W], Q [var]) for load, V [V] or THD [%]
    fraction: float  # part of each step covered (coarse steps average a short event)
    cause: int


@dataclass
class _Runs:
    """Intervals where a mask holds, stitched across blocks."""

    lowest: bool
    open: tuple[int, float, int] | None = None  # start step, extreme, cause id

    def feed(self, mask: np.ndarray, values: np.ndarray, causes: np.ndarray, k0: int, final: bool) -> list[tuple[int, int, float, int]]:
        """Completed runs as (start step, end step, extreme, cause id); open ones carry on."""
        edges = np.diff(mask.astype(np.int8), prepend=0, append=0)
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        out = []
        if self.open is not None and not (starts.size and starts[0] == 0):
            out.append((self.open[0], k0, self.open[1], self.open[2]))
            self.open = None
        reduce = np.minimum if self.lowest else np.maximum
        for s, e in zip(starts.tolist(), ends.tolist()):
            extreme = float(reduce.reduce(values[s:e]))
            start, cause = k0 + s, int(causes[s])
            if s == 0 and self.open is not None:
                start, cause = self.open[0], self.open[2]
                extreme = float(reduce(extreme, self.open[1]))
                self.open = None
            if e == mask.size and not final:
                self.open = (start, extreme, cause)
            else:
                out.append((start, k0 + e, extreme, cause))
        return out


@dataclass
class _Device:
    """Everything one device carries from block to block."""

    index: int
    device_id: str
    phase_mean_kw: np.ndarray
    phase_noise_kw: np.ndarray
    households: HouseholdProfiles | None
    zi_load: np.ndarray
    zi_source: np.ndarray
    zi_system: np.ndarray
    zi_trip: np.ndarray
    zi_freq: np.ndarray
    zi_motor: np.ndarray
    effects: list[_Effect] = field(default_factory=list)
    clouds: list[tuple[int, int, float]] = field(default_factory=list)  # s0, s1, depth
    drifts: list[tuple[int, int, float]] = field(default_factory=list)  # s0, s1, rate pu/step
    busy_until: dict[str, int] = field(default_factory=dict)
    runs: dict[tuple[str, str], _Runs] = field(default_factory=dict)
    ids: pl.Series | None = None  # device_id column of a full block (see _GridRun._ids)


@dataclass
class _BlockSteps:
    """The steps [k0, k1) of one device's day block, their clock, and the block's event log."""

    dev: _Device
    block: int
    k0: int
    k1: int
    final: bool
    start_epoch: float
    dt: float
    utc_offset_h: float
    unbalance_mask: Any  # callable: steps -> 1.0 where the scenario's unbalance cause is active
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self):
        self.n = self.k1 - self.k0
        self.steps = np.arange(self.k0, self.k1)
        self.epoch = self.start_epoch + self.steps * self.dt
        self.shape, self.hour = _shape_and_hour(_local_days(self.epoch, self.utc_offset_h))
        self.cause_unb = self.unbalance_mask(self.steps)

    def log(self, kind, s0, s1, cause, severity, phase, magnitude, unit) -> None:
        """Record an event on steps [s0, s1); severity is clipped to [0, 1]."""
        self.events.append(dict(step=s0, end_step=s1, type=kind, cause=cause, severity=float(min(1.0, max(0.0, severity))),
                                phase=phase, magnitude=float(magnitude), unit=unit))


@dataclass
class _Load:
    p_w: np.ndarray  # (3, n) net active power per phase [W] (PV and effects are applied in place)
    q_var: np.ndarray  # (3, n) reactive power per phase [var]
    demand_sum_kw: np.ndarray  # (n,) demand of the three phases [kW]
    loading: np.ndarray  # (n,) demand / (3 x phase rating) [pu]


@dataclass
class _PV:
    clear: np.ndarray  # (n,) clear-sky shape [0-1]
    attenuation: np.ndarray | None  # (n,) cloud transmission, None: no cloud in the block
    phase_w: np.ndarray  # (n,) PV per phase [W]
    extra_w: np.ndarray | None  # (n,) extra single-phase PV on phase a [W] (unbalanced_pv)


@dataclass
class _Effects:
    cause_v: np.ndarray  # (3, n) cause ids painted on the voltage
    cause_i: np.ndarray  # (3, n) cause ids painted on the current
    v_targets: list  # (effect, lo, hi[, weight]) voltage targets active in the block
    thd_target: np.ndarray | None  # (n,) THD target [%], NaN where none; None: no THD event
    cause_thd: np.ndarray  # (n,) cause ids of THD


@dataclass
class _Voltage:
    emf: np.ndarray  # (n,) source EMF [V]
    v: np.ndarray  # (3, n) true phase voltage [V]
    s_va: np.ndarray  # (3, n) apparent power [VA]
    i: np.ndarray  # (3, n) true current [A]
    cos_phi: np.ndarray  # (3, n)
    sin_phi: np.ndarray  # (3, n)


@dataclass
class _Measured:
    ts: pl.Series
    v: np.ndarray  # (3, n) measured V [V]
    i: np.ndarray  # (3, n) measured I [A]
    s: np.ndarray  # (3, n) measured V x I [VA]
    f: np.ndarray  # (n,) measured frequency [Hz], NaN when all phases are out
    thd: np.ndarray  # (n,) measured THD [%]
    v_max: np.ndarray  # (n,) highest measured phase voltage [V]
    out_all: np.ndarray  # (n,) every phase below 0.05 pu
    any_out: bool


def _ou_coeffs(tau_s: float, dt: float) -> tuple[float, float]:
    """Exact OU discretisation: x[k+1] = a x[k] + b eps, stationary sigma 1."""
    a = math.exp(-dt / tau_s)
    return a, math.sqrt(max(0.0, 1 - a * a))


def _swing_filter(p: dict[str, Any], dt: float) -> tuple[np.ndarray, np.ndarray]:
    """(b, a) of the ZOH-discretised swing + governor system, input dPe [pu] -> dw [pu]."""
    h2, d, r, tg = 2 * p["inertia_h_s"], p["damping_pu"], p["droop_pu"], p["governor_tau_s"]
    a_c = np.array([[-d / h2, 1 / h2], [-1 / (r * tg), -1 / tg]])
    b_c = np.array([[-1 / h2], [0.0]])
    ad, bd, cd, dd, _ = cont2discrete((a_c, b_c, np.array([[1.0, 0.0]]), np.array([[0.0]])), dt, method="zoh")
    num, den = ss2tf(ad, bd, cd, dd)
    return num[0], den


def _new_device(index: int, run: RunSpec, p: dict[str, Any], order: int) -> _Device:
    rng = np.random.default_rng(run.seed + index)
    n = p["customers"]
    means = p["mean_customer_kw"] * rng.lognormal(0.0, p["customer_spread"], n)
    phase = rng.permutation(np.arange(n) % 3)
    phase_mean = np.array([means[phase == k].sum() for k in range(3)])
    phase_noise = np.array([math.sqrt((means[phase == k] ** 2).sum()) for k in range(3)]) * p["load_noise_pct"] / 100
    households = None
    if p["load_profile"] == "uci":
        households = HouseholdProfiles.draw(
            rng, means, phase, run.start, p["utc_offset_h"], season_shift_days=int(p["uci_season_shift_days"])
        )
    return _Device(
        index=index, device_id=f"grid-{index:03d}", phase_mean_kw=phase_mean, phase_noise_kw=phase_noise,
        households=households,
        zi_load=np.zeros((3, 1)), zi_source=np.zeros(1), zi_system=np.zeros(1), zi_trip=np.zeros(1),
        zi_freq=np.zeros(order), zi_motor=np.zeros(1),
    )


# --------------------------------------------------------------------------- load shape


def _local_days(epoch_s: np.ndarray, utc_offset_h: float) -> np.ndarray:
    return (epoch_s + utc_offset_h * 3600.0) / 86_400.0


def _gauss(hour: np.ndarray, centre: np.ndarray | float, width: float) -> np.ndarray:
    """``exp(-((hour - centre) / width)**2)`` in one temporary."""
    g = np.subtract(hour, centre)
    g /= width
    np.square(g, out=g)
    np.negative(g, out=g)
    return np.exp(g, out=g)


def _shape_and_hour(local_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`load_shape` from local days, and the local hour [h] it used."""
    day = np.floor(local_days)
    hour = local_days - day  # == local_days % 1.0 (exact)
    hour *= 24.0
    week = day + 3.0  # 1970-01-01 was a Thursday
    weekend = (week - 7.0 * np.floor(week / 7.0)) >= 5.0  # (day + 3) % 7 >= 5, exact for whole days
    any_weekend = bool(weekend.any())
    daily = _gauss(hour, 7.5 + 1.5 * weekend if any_weekend else 7.5, 1.5)
    daily *= 0.30
    daily += 0.35
    g = _gauss(hour, 19.0, 2.2)
    g *= 0.60
    daily += g
    g = _gauss(hour, 13.0, 3.0)
    g *= 0.10
    daily += g
    if any_weekend:
        np.multiply(daily, 1.08, out=daily, where=weekend)
    # seasonal: 1 + 0.12 cos(4 pi ((d % 365.25) - 15) / 365.25)
    season = np.divide(local_days, 365.25, out=g)
    np.floor(season, out=season)
    season *= -365.25
    season += local_days  # local_days % 365.25
    season -= 15.0
    season *= 4 * np.pi / 365.25
    np.cos(season, out=season)
    season *= 0.12
    season += 1.0
    daily *= season
    return daily, hour


def load_shape(epoch_s: np.ndarray, utc_offset_h: float) -> np.ndarray:
    """Dimensionless daily x weekly x seasonal demand shape (mean ~0.7) at UTC epoch seconds [s].

    daily (local hour h) ``0.35 + 0.30 g(h, 7.5 or 9 at weekends, 1.5) + 0.60 g(h, 19, 2.2) + 0.10 g(h, 13, 3)``
    with ``g(h, c, w) = exp(-((h - c) / w)**2)``, x 1.08 on Saturday and Sunday,
    x ``1 + 0.12 cos(4 pi ((d % 365.25) - 15) / 365.25)`` (local day d).
    """
    return _shape_and_hour(_local_days(np.asarray(epoch_s, dtype=float), utc_offset_h))[0]


def _pv_of_hour(hour: np.ndarray) -> np.ndarray:
    """``max(0, sin(pi (h - 6) / 12))**1.5`` at local hour h [h]."""
    x = hour - 6.0
    x *= np.pi / 12.0
    np.sin(x, out=x)
    np.maximum(x, 0.0, out=x)
    root = np.sqrt(x)
    x *= root  # x**1.5
    return x


def clear_sky_pv(epoch_s: np.ndarray, utc_offset_h: float) -> np.ndarray:
    """Clear-sky PV output as a fraction of installed power (0 at night)."""
    hour = ((np.asarray(epoch_s, dtype=float) + utc_offset_h * 3600.0) / 3600.0) % 24.0
    return _pv_of_hour(hour)


# --------------------------------------------------------------------------- the run


def _draw(rng: np.random.Generator, hazard_per_s: np.ndarray | float, dt: float, n: int | None = None) -> np.ndarray:
    """Step indices where an event starts, given a hazard [1/s] per step (or one for all ``n`` steps).

    A step fires when a uniform draw falls below ``1 - exp(-hazard dt)``. That probability
    never exceeds ``hazard dt``, so the exact test runs only on the few draws below
    ``2 hazard dt``; the outcome is the same as testing every step.
    """
    if np.ndim(hazard_per_s) == 0:
        if not hazard_per_s > 0:
            return np.empty(0, np.int64)
        u = rng.random(n)
        return np.flatnonzero(u < -np.expm1(-float(hazard_per_s) * dt))
    u = rng.random(hazard_per_s.size)
    cand = np.flatnonzero(u < hazard_per_s * (2.0 * dt))
    if cand.size:
        cand = cand[u[cand] < -np.expm1(-hazard_per_s[cand] * dt)]
    return cand


def _steps(duration_s: np.ndarray | float, dt: float) -> np.ndarray:
    """Whole steps an event of ``duration_s`` [s] occupies (at least one)."""
    return np.maximum(1, np.round(np.asarray(duration_s) / dt)).astype(np.int64)


class _GridRun:
    """One run of the grid twin: per-device state, block generation, detection."""

    def __init__(self, run: RunSpec, p: dict[str, Any], unbalance_cause: str | None):
        self.run, self.p, self.dt = run, p, run.resolution_s
        self.unbalance_cause = unbalance_cause
        self.onset_step = int(round(p.get("onset_fraction", 0.0) * run.n_steps)) if unbalance_cause else None
        self.block_steps = max(1, int(BLOCK_S // self.dt))
        self.b_freq, self.a_freq = _swing_filter(p, self.dt)
        self.start_epoch = run.start.timestamp()
        self.start_us = int(round(self.start_epoch * 1e6))
        self.dt_us = int(round(self.dt * 1e6))
        self.devices = [_new_device(d, run, p, self.a_freq.size - 1) for d in range(run.devices)]
        self.local_midnight_epoch = local_midnight_epoch(run.start, p["utc_offset_h"])

    def chunks(self) -> Iterator[SimChunk]:
        n_steps = self.run.n_steps
        steps_per_chunk = max(1, int(self.run.chunk_s // self.dt))
        n_dev = len(self.devices)
        for block, k0 in enumerate(range(0, n_steps, self.block_steps)):
            k1 = min(n_steps, k0 + self.block_steps)
            parts = [self._block(dev, block, k0, k1, final=k1 == n_steps) for dev in self.devices]
            meas = pl.concat([m for m, _, _ in parts]) if n_dev > 1 else parts[0][0]
            events = pl.concat([e for _, e, _ in parts]).sort("ts", "device_id", "type", maintain_order=True)
            state = pl.concat([s for _, _, s in parts])
            if n_dev > 1:
                meas, state = meas.sort("ts", "device_id", maintain_order=True), state.sort("ts", "device_id", maintain_order=True)
            for c0 in range(k0, k1, steps_per_chunk):
                c1 = min(k1, c0 + steps_per_chunk)
                lo, hi = self._ts(c0), self._ts(c1)
                # every device has one row per step, so the rows of steps [c0, c1) are one slice
                rows = meas if (c0 == k0 and c1 == k1) else meas.slice((c0 - k0) * n_dev, (c1 - c0) * n_dev)
                # events are logged when they end: one that began in an earlier block goes in the block's first chunk
                yield SimChunk(
                    measurements={"three_phase": rows},
                    truth={"events": _between(events, lo if c0 > k0 else None, hi if c1 < k1 else None), "grid_state": _between(state, lo, hi)},
                )

    def _ts(self, step: int):
        return self.run.start + timedelta(microseconds=step * self.dt_us)

    def _rng(self, dev: _Device, block: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.run.seed + dev.index, block, stream])

    def _block(self, dev: _Device, block: int, k0: int, k1: int, final: bool):
        """One day block of one device: measurements, events and hidden state of steps [k0, k1).

        The steps run in the physical order: demand, PV and clouds, drawn drivers, their load
        effects, the voltage at the feeder head, the swing equation, THD, the sensors, then the
        disturbances read off the measured values.
        """
        b = _BlockSteps(dev, block, k0, k1, final, self.start_epoch, self.dt, self.p["utc_offset_h"], self._unbalance_mask)
        load = self._demand(b)
        pv = self._pv_and_clouds(b, load)
        excitation = self._drivers(b, load)
        self._draw_sags(dev, block, k0, b.n, load.loading, excitation, b.log)
        self._draw_overcurrents(dev, block, k0, b.n, load.loading, excitation)
        self._draw_faults(dev, block, k0, b.n, load.loading, b.log)
        self._draw_harmonics(dev, block, k0, b.n, load.loading)
        fx = self._apply_effects(b, load)
        volt = self._voltage(b, load, fx)
        imbalance, f_true, cause_f = self._swing_equation(b, pv)
        thd = self._thd(b, pv, fx)
        meas, m = self._measure(b, volt, f_true, thd)
        self._detect(dev, k0, final, m.v, m.i, m.s, m.f, m.thd, m.out_all, m.any_out, m.v_max,
                     fx.cause_v, fx.cause_i, cause_f, fx.cause_thd, b.cause_unb, b.log)
        state = self._hidden_state(b, load, pv, volt, imbalance, f_true, m.ts)
        return meas, self._events_frame(dev, b.events), state

    # ------------------------------------------------------------------ the steps of a block

    def _demand(self, b: _BlockSteps) -> _Load:
        """Demand per phase: customer means (or replayed households) x shape x trend + OU noise [W, var]."""
        p, dt, dev, n, steps = self.p, self.dt, b.dev, b.n, b.steps
        a, bb = _ou_coeffs(p["load_noise_tau_s"], dt)
        eps = self._rng(dev, b.block, _S_LOAD).standard_normal((3, n))
        noise, dev.zi_load = lfilter([bb], [1.0, -a], eps, axis=1, zi=dev.zi_load)
        if p["load_trend_pct_per_day"] != 0.0:
            trend = p["load_scale"] * (1.0 + p["load_trend_pct_per_day"] / 100.0 * steps * dt / 86_400.0)
        else:
            trend = p["load_scale"] * 1.0
        if dev.households is not None:  # real household days, replayed per customer
            demand_kw = dev.households.phase_demand_kw(b.epoch - self.local_midnight_epoch)
        else:
            demand_kw = np.multiply.outer(dev.phase_mean_kw, b.shape)
        demand_kw *= trend
        noise *= dev.phase_noise_kw[:, None]
        demand_kw += noise
        if self.unbalance_cause and self.unbalance_cause.startswith("single_phase_overload"):
            ph = PHASES.index(self.unbalance_cause[-1])
            demand_kw[ph] *= 1.0 + 1.5 * p["unbalance_strength"] * b.cause_unb
        np.maximum(demand_kw, np.multiply.outer(0.05 * dev.phase_mean_kw, b.shape, out=noise), out=demand_kw)
        tan_phi = math.tan(math.acos(p["power_factor"]))
        p_w = demand_kw * 1e3
        q_var = p_w * tan_phi
        demand_sum_kw = demand_kw.sum(axis=0)
        loading = demand_sum_kw / (3 * p["phase_rating_kva"])
        np.maximum(loading, 0.0, out=loading)
        return _Load(p_w, q_var, demand_sum_kw, loading)

    def _pv_and_clouds(self, b: _BlockSteps, load: _Load) -> _PV:
        """Clear-sky PV per phase, clouds drawn with an afternoon-peaking hazard; nets PV off ``load.p_w``."""
        p, dt, dev, n, k0, k1 = self.p, self.dt, b.dev, b.n, b.k0, b.k1
        pv_clear = _pv_of_hour(b.hour)
        rng = self._rng(dev, b.block, _S_CLOUD)
        if p["clouds_per_h"] > 0:
            cloud_hazard = _gauss(b.hour, 15.0, 3.0)
            cloud_hazard *= 0.7
            cloud_hazard += 0.3
            cloud_hazard *= p["clouds_per_h"] / 3600.0
            for s in _draw(rng, cloud_hazard, dt):
                depth = rng.uniform(0.5, 0.85)
                s1 = k0 + s + int(_steps(rng.exponential(900.0), dt))
                if pv_clear[s] > 0.1 and p["pv_kw_per_phase"] > 0 and k0 + s >= dev.busy_until.get("cloud", 0):
                    b.log("pv_drop", k0 + s, s1, "cloud", depth, "abc", depth * pv_clear[s] * 3 * p["pv_kw_per_phase"], "kW")
                dev.clouds.append((k0 + s, s1, depth))
                dev.busy_until["cloud"] = max(dev.busy_until.get("cloud", 0), s1)
        attenuation = None  # None: no cloud in this block (all ones)
        for s0, s1, depth in dev.clouds:
            lo, hi = max(s0, k0) - k0, min(s1, k1) - k0
            if hi > lo:
                if attenuation is None:
                    attenuation = np.ones(n)
                attenuation[lo:hi] = np.minimum(attenuation[lo:hi], 1.0 - depth)
        dev.clouds = [c for c in dev.clouds if c[1] > k1]
        pv_phase_w = p["pv_kw_per_phase"] * 1e3 * pv_clear
        if attenuation is not None:
            pv_phase_w *= attenuation
        pv_extra_w = None
        p_w = load.p_w
        if self.unbalance_cause == "unbalanced_pv":  # new single-phase installations, all on phase a
            pv_extra_w = 30e3 * p["unbalance_strength"] * pv_clear
            if attenuation is not None:
                pv_extra_w *= attenuation
            pv_extra_w *= b.cause_unb
            p_w[0] -= pv_phase_w + pv_extra_w
            p_w[1:] -= pv_phase_w
        elif p["pv_kw_per_phase"] > 0:
            p_w -= pv_phase_w
        return _PV(pv_clear, attenuation, pv_phase_w, pv_extra_w)

    def _drivers(self, b: _BlockSteps, load: _Load) -> np.ndarray:
        """Motor starts (hazard ~ load shape and its upward ramp) as load effects; returns the
        self-exciting sag / stall excitation they leave behind (memory ``motor_memory_s``)."""
        p, dt, dev, n, k0 = self.p, self.dt, b.dev, b.n, b.k0
        shape = b.shape
        if n > 1:
            ramp = np.gradient(shape, dt)
            ramp *= 3600.0
            np.maximum(ramp, 0.0, out=ramp)
        else:
            ramp = np.zeros(n)
        rng = self._rng(dev, b.block, _S_MOTOR)
        impulses = np.zeros(n)
        if p["motor_starts_per_h"] > 0:
            motor_hazard = ramp * 5.0
            motor_hazard += 1.0
            motor_hazard *= p["motor_starts_per_h"] / 3600.0 * shape / 0.7
            starts = _draw(rng, motor_hazard, dt)
        else:
            starts = np.empty(0, np.int64)
        for s in starts:
            kw = p["motor_kw"] * rng.lognormal(0.0, 0.4)
            three = rng.random() < 0.3
            phases = (0, 1, 2) if three else (int(rng.integers(3)),)
            inrush_s, run_s = rng.uniform(2.0, 8.0), rng.exponential(900.0)
            s_inrush = 6.0 * kw * 1e3 / 0.8 / len(phases)
            g0 = k0 + int(s)
            dev.effects.append(_Effect("load", phases, g0, g0 + int(_steps(inrush_s, dt)), (0.35 * s_inrush, 0.937 * s_inrush), min(1.0, inrush_s / dt), CAUSE_ID["motor_start"]))
            run_kw = kw * 1e3 / len(phases)
            dev.effects.append(_Effect("load", phases, g0, g0 + int(_steps(run_s, dt)), (run_kw, run_kw * 0.62), 1.0, 0))
            b.log("motor_start", g0, g0 + int(_steps(inrush_s, dt)), "load_ramp" if ramp[s] > 0.05 else "demand", kw / p["phase_rating_kva"], "abc" if three else PHASES[phases[0]], kw, "kW")
            impulses[s] += 1.0
        decay = math.exp(-dt / p["motor_memory_s"])
        excitation, dev.zi_motor = lfilter([1.0], [1.0, -decay], impulses, zi=dev.zi_motor)
        return excitation

    def _apply_effects(self, b: _BlockSteps, load: _Load) -> _Effects:
        """Add the active load effects to ``load`` (in place); collect voltage targets and THD targets."""
        k0, k1, n = b.k0, b.k1, b.n
        p_w, q_var = load.p_w, load.q_var
        cause_v = np.zeros((3, n), np.int16)
        cause_i = np.zeros((3, n), np.int16)
        v_targets = []
        thd_target = None  # None: no THD effect in this block (all NaN)
        cause_thd = np.zeros(n, np.int16)
        for eff in b.dev.effects:
            lo, hi = max(eff.s0, k0) - k0, min(eff.s1, k1) - k0
            if hi <= lo:
                continue
            if eff.kind == "load":
                for ph in eff.phases:
                    p_w[ph, lo:hi] += eff.value[0] * eff.fraction
                    q_var[ph, lo:hi] += eff.value[1] * eff.fraction
                    if eff.cause:
                        cause_v[ph, lo:hi] = eff.cause
                        cause_i[ph, lo:hi] = eff.cause
            elif eff.kind == "voltage":
                v_targets.append((eff, lo, hi))
            else:
                if thd_target is None:
                    thd_target = np.full(n, np.nan)
                thd_target[lo:hi] = eff.value
                cause_thd[lo:hi] = eff.cause
        b.dev.effects = [e for e in b.dev.effects if e.s1 > k1]
        return _Effects(cause_v, cause_i, v_targets, thd_target, cause_thd)

    def _voltage(self, b: _BlockSteps, load: _Load, fx: _Effects) -> _Voltage:
        """Head voltage through the Thevenin source ``V = max(E - (R P + X Q) / E, 0.1 E)``, then the
        voltage events (constant-impedance load); S, I and the angle of every phase and step."""
        p, dt, dev, n, steps = self.p, self.dt, b.dev, b.n, b.steps
        p_w, q_var, cause_v, cause_unb = load.p_w, load.q_var, fx.cause_v, b.cause_unb
        a, bb = _ou_coeffs(3600.0, dt)
        eps = self._rng(dev, b.block, _S_SOURCE).standard_normal(n)
        emf, dev.zi_source = lfilter([bb], [1.0, -a], eps, zi=dev.zi_source)
        emf *= 0.005
        emf += 1.0
        emf *= p["source_voltage_v"]
        r = p["source_r_ohm"]
        if self.unbalance_cause == "high_resistance_conductor":
            r = np.full((3, n), p["source_r_ohm"])
            r[1] *= 1.0 + 3.0 * p["unbalance_strength"] * cause_unb * np.clip((steps - (self.onset_step or 0)) / max(1, self.run.n_steps - (self.onset_step or 0)), 0.05, 1.0)
        # v = max(emf - (r P + x Q) / emf, 0.1 emf)
        v = p_w * r
        v += q_var * p["source_x_ohm"]
        v /= emf
        np.subtract(emf, v, out=v)
        np.maximum(v, 0.1 * emf, out=v)
        v_targets = fx.v_targets
        if self.unbalance_cause == "open_conductor":
            v_open = V_NOMINAL * 0.45 * (1.0 - 0.1 * min(1.0, p["unbalance_strength"]))
            v_targets.append((_Effect("voltage", (2,), 0, 0, v_open, 1.0, CAUSE_ID["open_conductor"]), 0, n, cause_unb))
        for item in v_targets:
            eff, lo, hi = item[:3]
            weight = eff.fraction * (item[3][lo:hi] if len(item) > 3 else 1.0)
            for ph in eff.phases:
                v_new = v[ph, lo:hi] * (1.0 - weight) + eff.value * weight
                v_old = v[ph, lo:hi]
                scale = np.divide(v_new, v_old, out=np.zeros_like(v_new), where=v_old > 0) ** 2
                p_w[ph, lo:hi] *= scale
                q_var[ph, lo:hi] *= scale
                v[ph, lo:hi] = v_new
                touched = np.asarray(weight) > 0 if np.ndim(weight) else np.ones(hi - lo, bool)
                cause_v[ph, lo:hi][touched] = eff.cause
        if self.unbalance_cause and self.unbalance_cause != "open_conductor":
            mark = cause_unb > 0
            cause_v[:, mark] = np.where(cause_v[:, mark] == 0, CAUSE_ID[self.unbalance_cause], cause_v[:, mark])
        # S = hypot(P, Q); I = S / V (0 where V is 0); cos, sin of the angle arctan2(Q, P)
        s_va = p_w * p_w
        s_va += q_var * q_var
        np.sqrt(s_va, out=s_va)
        dead = v <= 1e-9
        if dead.any():
            i = s_va / np.where(dead, 1.0, v)
            i[dead] = 0.0
        else:
            i = s_va / v
        with np.errstate(invalid="ignore", divide="ignore"):
            cos_phi = p_w / s_va
            sin_phi = q_var / s_va
        if not s_va.all():  # arctan2(0, 0) = 0
            zero = s_va == 0.0
            cos_phi[zero] = 1.0
            sin_phi[zero] = 0.0
        return _Voltage(emf, v, s_va, i, cos_phi, sin_phi)

    def _swing_equation(self, b: _BlockSteps, pv: _PV) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """System imbalance [pu] (OU noise, generator trips, AGC drift, load step, PV shortfall) through
        the discretised swing equation with governor; returns (imbalance, true frequency [Hz], cause ids)."""
        p, dt, dev, n, k0, k1, steps = self.p, self.dt, b.dev, b.n, b.k0, b.k1, b.steps
        rng = self._rng(dev, b.block, _S_SYSTEM)
        a, bb = _ou_coeffs(60.0, dt)
        imbalance, dev.zi_system = lfilter([bb * p["system_noise_pu"]], [1.0, -a], rng.standard_normal(n), zi=dev.zi_system)
        cause_f = np.zeros(n, np.int16)
        trip_impulse = np.zeros(n)
        rng = self._rng(dev, b.block, _S_TRIP)
        for s in _draw(rng, p["gen_trips_per_h"] / 3600.0, dt, n):
            size = p["gen_trip_pu"] * rng.lognormal(0.0, 0.5)
            trip_impulse[s] += size
            end = k0 + s + int(_steps(3 * p["agc_tau_s"], dt))
            b.log("gen_trip", k0 + s, end, "generator_trip", size / 0.1, None, size, "pu")
            cause_f[s:end - k0] = CAUSE_ID["gen_trip"]
        agc = math.exp(-dt / p["agc_tau_s"])
        trips, dev.zi_trip = lfilter([1.0], [1.0, -agc], trip_impulse, zi=dev.zi_trip)
        imbalance += trips
        rng = self._rng(dev, b.block, _S_DRIFT)
        for s in _draw(rng, p["drifts_per_h"] / 3600.0, dt, n):
            length = int(_steps(rng.uniform(600.0, 3600.0), dt))
            sign = 1.0 if rng.random() < 0.5 else -1.0
            dev.drifts.append((k0 + int(s), k0 + int(s) + length, sign * p["drift_pu_per_h"] * dt / 3600.0))
            b.log("frequency_drift", k0 + int(s), k0 + int(s) + length, "agc_drift", p["drift_pu_per_h"] * length * dt / 3600.0 / 0.1, None, p["drift_pu_per_h"] * length * dt / 7200.0, "pu")
        drift = None
        for s0, s1, rate in dev.drifts:
            lo, hi = max(s0, k0), min(s1, k1)
            if hi > lo:
                if drift is None:
                    drift = np.zeros(n)
                half = (s1 - s0) / 2.0
                drift[lo - k0:hi - k0] += rate * (half - np.abs(np.arange(lo, hi) - s0 - half))
                cause_f[lo - k0:hi - k0] = CAUSE_ID["agc_drift"]
        dev.drifts = [d for d in dev.drifts if d[1] > k1]
        if drift is not None:
            imbalance += drift
        step_at = int(round(p["load_step_at_s"] / dt))
        if p["load_step_pu"] != 0.0:
            imbalance += p["load_step_pu"] * (steps >= step_at)
            if k0 <= step_at < k1:
                b.log("load_step", step_at, step_at + 1, "load_step", abs(p["load_step_pu"]) / 0.1, None, p["load_step_pu"], "pu")
            cause_f[(steps >= step_at) & (steps < step_at + int(_steps(3 * p["agc_tau_s"], dt)))] = CAUSE_ID["load_step"]
        if p["renewable_share"] > 0 and pv.attenuation is not None:  # no cloud, no shortfall
            shortfall = pv.clear * (1.0 - pv.attenuation)
            imbalance += p["renewable_share"] * shortfall
            cause_f[(shortfall > 0.05) & (cause_f == 0)] = CAUSE_ID["pv_drop"]
        f_true, dev.zi_freq = lfilter(self.b_freq, self.a_freq, imbalance, zi=dev.zi_freq)
        f_true += 1.0
        f_true *= F_NOMINAL  # F_NOMINAL (1 + dw)
        return imbalance, f_true, cause_f

    def _thd(self, b: _BlockSteps, pv: _PV, fx: _Effects) -> np.ndarray:
        """Voltage THD [%]: background following the load shape and PV, or the harmonic events' level."""
        p = self.p
        thd = b.shape / 1.1
        np.clip(thd, 0.0, 1.5, out=thd)
        thd *= 0.4
        thd += 0.6
        thd *= p["thd_base_pct"]
        if p["pv_kw_per_phase"] > 0:
            thd += pv.clear
        if fx.thd_target is None:
            np.minimum(thd, 7.5, out=thd)
        else:
            thd = np.where(np.isnan(fx.thd_target), np.minimum(thd, 7.5), fx.thd_target)
        return thd

    def _measure(self, b: _BlockSteps, volt: _Voltage, f_true: np.ndarray, thd: np.ndarray) -> tuple[pl.DataFrame, _Measured]:
        """Sensor errors on V, I, f and THD; P and Q from the measured V, I and the true angle."""
        dev, n, steps = b.dev, b.n, b.steps
        rng = self._rng(dev, b.block, _S_SENSOR)
        err = rng.uniform(-1.0, 1.0, (8, n))
        v_m = err[0:3]
        v_m *= SENSOR_ERROR
        v_m += 1.0
        v_m *= volt.v
        i_m = err[3:6]
        i_m *= SENSOR_ERROR
        i_m += 1.0
        i_m *= volt.i
        s_m = v_m * i_m
        p_m = volt.cos_phi
        p_m *= s_m
        q_m = volt.sin_phi
        q_m *= s_m
        v_max = v_m.max(axis=0)
        out_all = v_max < 0.05 * V_NOMINAL  # every phase out
        any_out = bool(out_all.any())
        f_m = err[6]
        f_m *= FREQUENCY_ERROR_HZ
        f_m += f_true
        thd_m = err[7]
        thd_m *= THD_ERROR_PCT
        thd_m += thd
        np.maximum(thd_m, 0.0, out=thd_m)
        if any_out:
            f_m[out_all] = np.nan
            thd_m[out_all] = np.nan
        ts = pl.Series("ts", self.start_us + steps * self.dt_us, dtype=pl.Datetime("us", "UTC"))
        meas = pl.DataFrame([
            ts, self._ids(dev, n),
            pl.Series("v_a", v_m[0]), pl.Series("v_b", v_m[1]), pl.Series("v_c", v_m[2]),
            pl.Series("i_a", i_m[0]), pl.Series("i_b", i_m[1]), pl.Series("i_c", i_m[2]),
            pl.Series("frequency", f_m, nan_to_null=any_out),
            pl.Series("p_a", p_m[0]), pl.Series("p_b", p_m[1]), pl.Series("p_c", p_m[2]),
            pl.Series("q_a", q_m[0]), pl.Series("q_b", q_m[1]), pl.Series("q_c", q_m[2]),
            pl.Series("thd_v", thd_m, nan_to_null=any_out),
        ])
        return meas, _Measured(ts, v_m, i_m, s_m, f_m, thd_m, v_max, out_all, any_out)

    def _hidden_state(self, b: _BlockSteps, load: _Load, pv: _PV, volt: _Voltage, imbalance: np.ndarray,
                      f_true: np.ndarray, ts: pl.Series) -> pl.DataFrame:
        """Truth ``grid_state``: one row per minute (or per step when coarser)."""
        p, dt, n, k0 = self.p, self.dt, b.n, b.k0
        every = max(1, int(round(60.0 / dt)))
        pick = np.arange((-k0) % every, n, every)  # steps % every == 0
        pv_phase_w, pv_extra_w = pv.phase_w, pv.extra_w
        pv_w = pv_phase_w[pick] if pv_extra_w is None else pv_phase_w[pick] + pv_extra_w[pick]
        pv_w = pv_w + pv_phase_w[pick]
        pv_w += pv_phase_w[pick]
        v = volt.v
        return pl.DataFrame({
            "ts": ts.gather(pick), "device_id": pl.repeat(b.dev.device_id, pick.size, eager=True),
            "source_emf_v": volt.emf[pick], "load_kw": load.demand_sum_kw[pick], "pv_kw": pv_w / 1e3,
            "loading_pu": volt.s_va[:, pick].max(axis=0) / (p["phase_rating_kva"] * 1e3),
            "system_imbalance_pu": imbalance[pick], "frequency_true_hz": f_true[pick],
            "v_true_a": v[0, pick], "v_true_b": v[1, pick], "v_true_c": v[2, pick],
            "unbalance_cause": np.where(b.cause_unb[pick] > 0, self.unbalance_cause or "balanced", "balanced"),
        })

    def _ids(self, dev: _Device, n: int) -> pl.Series:
        """The device_id column of n rows (cached: the same for every full block)."""
        ids = dev.ids
        if ids is None or ids.len() != n:
            ids = dev.ids = pl.repeat(dev.device_id, n, eager=True).alias("device_id")
        return ids

    def _unbalance_mask(self, steps: np.ndarray) -> np.ndarray:
        """1.0 where the scenario's unbalance cause is active, else 0.0."""
        if not self.unbalance_cause:
            return np.zeros(steps.size)
        return (steps >= self.onset_step).astype(float)

    def _draw_sags(self, dev, block, k0, n, loading, excitation, log) -> None:
        p, dt = self.p, self.dt
        if not (p["sags_per_h"] > 0 or p["sag_excitation_per_h"] > 0):
            return  # zero hazard: nothing to draw
        hazard = p["sags_per_h"] / 3600.0 * np.clip(loading, 0.1, None) + p["sag_excitation_per_h"] / 3600.0 * excitation
        rng = self._rng(dev, block, _S_SAG)
        for s in _draw(rng, hazard, dt):
            duration_s = rng.lognormal(math.log(3.0), 0.8)
            retained = rng.uniform(0.4, 0.88)
            phases = (0, 1, 2) if rng.random() < 0.3 else (int(rng.integers(3)),)
            g0 = k0 + int(s)
            if g0 < dev.busy_until.get("sag", 0):
                continue
            cause = "motor_start" if excitation[s] > 0.05 else "upstream_fault"
            g1 = g0 + int(_steps(duration_s, dt))
            dev.busy_until["sag"] = g1
            dev.effects.append(_Effect("voltage", phases, g0, g1, retained * V_NOMINAL, min(1.0, duration_s / dt), CAUSE_ID[cause]))

    def _draw_overcurrents(self, dev, block, k0, n, loading, excitation) -> None:
        p, dt = self.p, self.dt
        if not p["stall_per_h"] > 0:
            return  # zero hazard: nothing to draw
        hazard = p["stall_per_h"] / 3600.0 * (excitation + 0.05 * loading)
        rng = self._rng(dev, block, _S_OC)
        for s in _draw(rng, hazard, dt):
            duration_s = rng.uniform(2.0, 10.0)
            extra_a = p["overcurrent_pickup_a"] * rng.uniform(1.3, 2.5)
            ph = int(rng.integers(3))
            g0 = k0 + int(s)
            if g0 < dev.busy_until.get("oc", 0):
                continue
            g1 = g0 + int(_steps(duration_s, dt))
            dev.busy_until["oc"] = g1
            s_va = V_NOMINAL * extra_a
            dev.effects.append(_Effect("load", (ph,), g0, g1, (0.3 * s_va, 0.954 * s_va), min(1.0, duration_s / dt), CAUSE_ID["locked_rotor"]))

    def _draw_faults(self, dev, block, k0, n, loading, log) -> None:
        p, dt = self.p, self.dt
        if not p["faults_per_h"] > 0:
            return  # zero hazard: nothing to draw
        hazard = p["faults_per_h"] / 3600.0 * (0.5 + loading)
        rng = self._rng(dev, block, _S_FAULT)
        for s in _draw(rng, hazard, dt):
            ph = int(rng.integers(3))
            fault_s = rng.uniform(0.5, 3.0)  # time-graded clearing
            retained = rng.uniform(0.05, 0.5)
            swell = rng.uniform(1.12, 1.25)
            outage_s = rng.uniform(1800.0, 7200.0) if rng.random() < 0.2 else rng.lognormal(math.log(30.0), 0.5)
            g0 = k0 + int(s)
            if g0 < dev.busy_until.get("fault", 0):
                continue
            g1 = g0 + 1
            g2 = g1 + int(_steps(outage_s, dt))
            dev.busy_until["fault"] = g2
            frac = min(1.0, fault_s / dt)
            others = tuple(k for k in range(3) if k != ph)
            dev.effects.append(_Effect("voltage", (ph,), g0, g1, retained * V_NOMINAL, frac, CAUSE_ID["phase_to_ground_fault"]))
            dev.effects.append(_Effect("voltage", others, g0, g1, swell * V_NOMINAL, frac, CAUSE_ID["phase_to_ground_fault"]))
            dev.effects.append(_Effect("voltage", (0, 1, 2), g1, g2, 0.0, min(1.0, outage_s / dt), CAUSE_ID["protection_trip"]))
            log("fault", g0, g2, "phase_to_ground", 1.0, PHASES[ph], retained, "pu")

    def _draw_harmonics(self, dev, block, k0, n, loading) -> None:
        p, dt = self.p, self.dt
        if not p["harmonics_per_h"] > 0:
            return  # zero hazard: nothing to draw
        rng = self._rng(dev, block, _S_HARM)
        for s in _draw(rng, p["harmonics_per_h"] / 3600.0 * np.clip(loading, 0.05, None), dt):
            duration_s = rng.uniform(60.0, 1800.0)
            level = rng.uniform(8.5, 15.0)
            g0 = k0 + int(s)
            if g0 < dev.busy_until.get("thd", 0):
                continue
            g1 = g0 + int(_steps(duration_s, dt))
            dev.busy_until["thd"] = g1
            dev.effects.append(_Effect("thd", (0, 1, 2), g0, g1, level, 1.0, CAUSE_ID["harmonic_resonance"]))

    def _detect(self, dev, k0, final, v_m, i_m, s_m, f_m, thd_m, out_all, any_out, v_max, cause_v, cause_i, cause_f, cause_thd, cause_unb, log) -> None:
        """Log disturbances where the measured values cross the EN 50160 / IEC limits.

        Each check first asks a cheap question (a per-phase extreme): when no step can cross
        the limit and no interval is open from the previous block, the check logs nothing.
        """
        p, dt = self.p, self.dt
        rating = p["phase_rating_kva"] * 1e3
        pickup = p["overcurrent_pickup_a"]

        def feed(key, lowest, maybe, mask, values, causes):
            """Completed runs; mask, values, causes are callables, evaluated only when needed."""
            runs = dev.runs.get(key)
            if runs is None:
                runs = dev.runs[key] = _Runs(lowest)
            if runs.open is None and not maybe:
                return []
            return runs.feed(mask(), values(), causes(), k0, final)

        v_lo, v_hi = v_m.min(axis=1) / V_NOMINAL, v_m.max(axis=1) / V_NOMINAL
        i_hi, s_hi = i_m.max(axis=1), s_m.max(axis=1)
        for k, ph in enumerate(PHASES):
            def vpu(k=k):
                return v_m[k] / V_NOMINAL

            def ck(k=k):
                return cause_v[k]

            for s0, s1, low, c in feed(("sag", ph), True, v_lo[k] < 0.9, lambda k=k: (lambda x: (x >= 0.05) & (x < 0.9))(v_m[k] / V_NOMINAL), vpu, ck):
                kind = "sag" if (s1 - s0) * dt < 60.0 else "undervoltage"
                log(kind, s0, s1, CAUSES[c] or "high_load", 1.0 - low, ph, low, "pu")
            for s0, s1, high, c in feed(("swell", ph), False, v_hi[k] > 1.1, lambda k=k: v_m[k] / V_NOMINAL > 1.1, vpu, ck):
                log("swell", s0, s1, CAUSES[c] or "voltage_rise", (high - 1.1) / 0.4, ph, high, "pu")
            for s0, s1, high, c in feed(("overcurrent", ph), False, i_hi[k] > pickup, lambda k=k: i_m[k] > pickup, lambda k=k: i_m[k], lambda k=k: cause_i[k]):
                log("overcurrent", s0, s1, CAUSES[c] or "high_load", high / pickup - 1.0, ph, high, "A")
            for s0, s1, high, c in feed(("overload", ph), False, s_hi[k] > rating, lambda k=k: s_m[k] > rating, lambda k=k: s_m[k] / rating, lambda k=k: cause_i[k]):
                log("overload", s0, s1, CAUSES[c] or "load_trend", high - 1.0, ph, high, "pu")
        for s0, s1, _, c in feed(("interruption", "abc"), True, any_out, lambda: out_all, lambda: v_max, lambda: cause_v.max(axis=0)):
            log("interruption", s0, s1, CAUSES[c] or "unknown", 1.0, "abc", 0.0, "pu")
        f_maybe = True if any_out else bool(f_m.min() < FREQ_BAND_HZ[0] or f_m.max() > FREQ_BAND_HZ[1])
        for s0, s1, extreme, c in feed(("frequency", ""), False, f_maybe, lambda: (f_m < FREQ_BAND_HZ[0]) | (f_m > FREQ_BAND_HZ[1]),
                                       lambda: np.abs(np.nan_to_num(f_m - F_NOMINAL, nan=0.0)), lambda: cause_f):
            log("frequency_excursion", s0, s1, CAUSES[c] or "load_noise", extreme, None, extreme, "Hz")
        # LVUR = max |V_k - mean V| / mean V [%] (0 when all phases are out)
        lvur = voltage_unbalance_rate_pct(v_m)
        if any_out:
            lvur[out_all] = 0.0
        def default_unb():
            return np.where(cause_unb > 0, CAUSE_ID.get(self.unbalance_cause or "", 0), cause_v.max(axis=0)).astype(np.int16)

        for s0, s1, high, c in feed(("unbalance", "abc"), False, bool(lvur.max() > 2.0), lambda: lvur > 2.0, lambda: lvur, default_unb):
            log("unbalance", s0, s1, CAUSES[c] or "load", high / 10.0, "abc", high, "%")
        thd_v = np.nan_to_num(thd_m) if any_out else thd_m
        for s0, s1, high, c in feed(("harmonics", "abc"), False, bool(thd_v.max() > 8.0), lambda: thd_v > 8.0, lambda: thd_v, lambda: cause_thd):
            log("harmonics", s0, s1, CAUSES[c] or "nonlinear_load", high / 20.0, "abc", high, "%")

    def _events_frame(self, dev: _Device, events: list[dict[str, Any]]) -> pl.DataFrame:
        schema = {"ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "device_id": pl.String, "type": pl.String,
                  "cause": pl.String, "severity": pl.Float64, "phase": pl.String, "magnitude": pl.Float64, "unit": pl.String}
        if not events:
            return pl.DataFrame(schema=schema)
        frame = pl.DataFrame(events)
        def to_ts(col):
            return (pl.lit(self.start_us) + pl.col(col) * self.dt_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")

        return frame.select(
            to_ts("step").alias("ts"), to_ts("end_step").alias("end"), pl.lit(dev.device_id).alias("device_id"),
            "type", "cause", "severity", pl.col("phase").cast(pl.String), "magnitude", "unit",
        ).sort("ts", "type", maintain_order=True)


def _between(df: pl.DataFrame, lo, hi) -> pl.DataFrame:
    """Rows with lo <= ts < hi (None: no bound)."""
    mask = pl.lit(True)
    if lo is not None:
        mask = mask & (pl.col("ts") >= lo)
    if hi is not None:
        mask = mask & (pl.col("ts") < hi)
    return df.filter(mask)


# --------------------------------------------------------------------------- scenarios


def _runner(unbalance: bool = False):
    def run(spec: RunSpec, params: dict[str, Any]) -> Iterator[SimChunk]:
        """Generate the scenario chunk by chunk."""
        yield from _GridRun(spec, params, params["cause"] if unbalance else None).chunks()
    return run


_SCENARIOS = {
    "normal": ("balanced residential feeder, background events only", {}),
    "peak_load": ("heatwave: demand grows day by day until phases overload", dict(load_scale=1.6, load_trend_pct_per_day=8.0, customers=120, motor_starts_per_h=2.0)),
    "voltage_sag": ("frequent motor starts that precede upstream sags", dict(motor_starts_per_h=4.0, sags_per_h=0.2, sag_excitation_per_h=6.0, motor_kw=15.0)),
    "overcurrent": ("motor starts that stall (locked rotor) and trip the overcurrent pickup", dict(motor_starts_per_h=3.0, stall_per_h=4.0, motor_kw=15.0)),
    "frequency_drift": ("AGC drift episodes and generator trips move the system frequency", dict(drifts_per_h=0.3, gen_trips_per_h=0.3, gen_trip_pu=0.05, system_noise_pu=0.008)),
    "renewable_intermittency": ("high PV with clouds; area PV shortfall drives frequency", dict(pv_kw_per_phase=40.0, clouds_per_h=3.0, renewable_share=0.05)),
    "fault": ("phase-to-ground faults: sag on the faulted phase, swell on the others, then a trip", dict(faults_per_h=0.2)),
    "harmonic_distortion": ("harmonic resonance episodes above the EN 50160 THD limit", dict(harmonics_per_h=0.5, thd_base_pct=3.0)),
    "mixed": ("motor starts, sags, stalls, faults, trips, clouds and harmonics on one timeline", dict(
        motor_starts_per_h=2.0, sags_per_h=0.05, sag_excitation_per_h=3.0, stall_per_h=1.0, faults_per_h=0.03,
        gen_trips_per_h=0.1, pv_kw_per_phase=15.0, clouds_per_h=1.0, renewable_share=0.05, harmonics_per_h=0.1, drifts_per_h=0.05,
    )),
}

for _name, (_description, _defaults) in _SCENARIOS.items():
    register(Scenario(_name, "grid", _description, _params(**_defaults), _runner()))

register(Scenario(
    "phase_unbalance", "grid",
    "one unbalance cause (parameter cause) starts after onset_fraction of the run; label in grid_state.unbalance_cause",
    {**_params(customers=90, source_r_ohm=0.08), **PHASE_UNBALANCE_PARAMS}, _runner(unbalance=True),
))
