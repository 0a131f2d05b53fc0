"""ESP8266 + PZEM-004T household meter twin (record kind ``meter``), as its firmware reports it.

One reading per step of the run (``--resolution 10s`` is the firmware's default
interval). Physics: a customer load ``base_kw * size * shape(t)`` plus OU noise and appliance
bursts (hazard ``appliances_per_h * shape / 0.7``); supply voltage ``source_voltage_v`` with a
slow OU wander minus the drop over ``source_r_ohm``; frequency 50 Hz plus OU noise; power
factor falls at light load (``pf = 0.55 + 0.43 * P / (P + 300 W)``).

Customer types
    Each meter is one customer of a type it keeps for the whole run, assigned from the run's
    seed in the proportions ``share_<type>`` (normalised; counts by largest remainder, then
    shuffled, so 30 meters at the default equal shares give 8, 8, 7, 7):

    * ``day_worker``: out on weekdays; morning peak (~6:45), large evening peak (~19 h),
      low midday; weekends later and broader (close to the grid twin's household shape).
    * ``home_all_day``: retired / working from home: broad 9-17 h daytime load with a lunch
      bump, morning and evening peaks.
    * ``offpeak_water_heater``: a day-worker household (x 0.8) with an electric storage water
      heater on a controlled off-peak circuit: a block of ~3 h (longer after heavy use) that
      starts at the meter's switch time (22:30, 23:00 or 23:30 local).
    * ``small_business``: weekdays open ~7:30-18 h (a block), low base load evenings and
      Sundays; some open Saturday mornings.

    Shapes are in local time (``utc_offset_h``) and scaled to a weekly mean of 0.7, so
    ``base_kw`` keeps its meaning for every type. Variability that keeps the types from being
    trivially separable: per meter a size factor (lognormal, sigma 0.3), a clock shift
    (sd 0.6 h) and component amplitudes (lognormal, sigma 0.25); per meter and local day
    amplitudes (lognormal, sigma ``day_variability``), a time jitter (sd 2 h x
    ``day_variability``) and the heater's run time; irregular days with probability
    ``irregular_day_prob`` (households ``away``: base load only, or ``home``: a home-all-day
    shape; businesses ``closed``); a weather index shared by all meters (smooth, std 1,
    cold > 0) adding heating (mornings/evenings) or cooling (afternoons; business: opening
    hours) load of ``weather_sensitivity`` per unit; the grid twin's seasonal factor
    ``1 + 0.12 cos(4 pi (doy - 15) / 365.25)``.
    Truth: table ``customer_types``, one row per meter at ``ts`` = run start: ``device_id``,
    ``customer_type``, ``size_factor`` [1], ``time_shift_h`` [h], ``heater_start_h`` [h local,
    null unless water heater], ``opens_saturday`` (null unless business),
    ``mean_kw_nominal`` [kW, shape only, without bursts and weather] and
    ``peak_share_nominal`` [1, share of a nominal week's energy in local 17-21 h, the demand-response model's default
    peak window]; table ``customer_days``, one row per meter and local day at its local
    midnight (the run start for the first): ``customer_type``, ``day_kind`` (``regular``,
    ``away``, ``home``, ``closed``) and ``weather_index`` [1].

The PZEM-004T's resolution is applied to what is sent: 0.1 V, 0.001 A, 0.1 W, 1 Wh for
the energy counter (sent in kWh, so rounded down to 0.001 kWh), 0.1 Hz, 0.01 PF.
``reactive_power`` is computed by the firmware as ``sqrt((V I)^2 - P^2)`` from the rounded
values [var]. The energy counter is the sensor's own and is monotone.

Failures and transport
    * A failed PZEM read returns NaN, which the firmware sends as **0 in every field**
      (energy too). Isolated failures have probability ``read_fail_prob``; sensor fault
      episodes (loose wire) come with hazard ``sensor_faults_per_day``. Truth:
      ``meter_state.read_failed`` per reading and ``events`` rows of type ``sensor_fault``.
    * WiFi outages (hazard ``outages_per_day``, lognormal duration) buffer readings in a
      ring of ``buffer_readings``; older ones are lost (gaps). On reconnect the firmware
      sends the current reading first, then the buffer oldest-first (out of order).
    * An unacknowledged HTTP post is retried after 2-5 s (probability ``retry_prob``):
      the reading is delivered twice.

Measurement rows are emitted in delivery order, duplicates included; truth table
``deliveries`` has ``ts`` (reading time), ``delivered_at``, ``attempt`` and ``status``
(``live``, ``buffered``, ``retry``, ``lost``; ``delivered_at`` is null when lost).
Randomness: one stream per (``seed + device_index``, day block, process), per
(``seed + device_index``, local day) for the day's customer behaviour, per ``seed`` for the
type assignment and the weather, so the output does not depend on ``RunSpec.chunk_s``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

import numpy as np
import polars as pl
from scipy.signal import lfilter

from ..errors import SimulationError
from .registry import Param, RunSpec, Scenario, SimChunk, register

BLOCK_S = 86_400.0
_TS = pl.Datetime("us", "UTC")
_S_LOAD, _S_SUPPLY, _S_FAIL, _S_WIFI, _S_RETRY, _S_DAY, _S_TYPE, _S_CUSTOMER, _S_WEATHER = range(9)
_DAY_KEY = 1_000_000  # added to local day numbers so seed sequences stay non-negative

CUSTOMER_TYPES = ("day_worker", "home_all_day", "offpeak_water_heater", "small_business")
SHAPE_MEAN = 0.7  # weekly mean of every type's nominal shape (as the grid twin's load_shape)

PARAMS: dict[str, Param] = {
    "base_kw": Param(0.6, "kW", "mean household demand", min=0, max=20, min_exclusive=True),
    "appliances_per_h": Param(1.5, "1/h", "appliance switch-on hazard at mean shape", min=0, max=360),
    "source_voltage_v": Param(238.0, "V", "supply EMF", min=180, max=280),
    "source_r_ohm": Param(0.3, "ohm", "service line resistance", min=0, max=5),
    "utc_offset_h": Param(10.0, "h", "local time offset from UTC", min=-12, max=14),
    "initial_energy_kwh": Param(1234.5, "kWh", "energy counter at the start", min=0, max=9_999_999),
    "read_fail_prob": Param(0.002, "1", "probability that a single PZEM read fails (sent as zeros)", min=0, max=1),
    "sensor_faults_per_day": Param(0.2, "1/d", "hazard of a sensor fault episode", min=0, max=1000),
    "outages_per_day": Param(2.0, "1/d", "hazard of a WiFi outage", min=0, max=1000),
    "outage_median_s": Param(300.0, "s", "median WiFi outage length", min=0, max=86_400, min_exclusive=True),
    "buffer_readings": Param(60, "", "readings the firmware buffers during an outage", min=0, max=80),
    "retry_prob": Param(0.01, "1", "probability that a post is retried (duplicate delivery)", min=0, max=1),
    **{f"share_{t}": Param(0.25, "1", f"relative share of {t} customers (shares are normalised)", min=0, max=1) for t in CUSTOMER_TYPES},
    "day_variability": Param(0.2, "1", "day-to-day spread of a customer's load shape (lognormal sigma of amplitudes)", min=0, max=1),
    "irregular_day_prob": Param(0.05, "1", "probability that a customer's day is irregular (away, home, closed)", min=0, max=1),
    "weather_sensitivity": Param(0.25, "1", "heating/cooling load per unit of the shared weather index (x shape units)", min=0, max=2),
}


# --------------------------------------------------------------------------- customer types


@dataclass(frozen=True)
class _Customer:
    """Fixed for the whole run: type and the meter's own habits."""

    ctype: str
    size: float = 1.0  # x base_kw
    shift_h: float = 0.0  # clock shift of the peaks [h]
    amp: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # morning/open, evening, midday, heater
    heater_start_h: float = 23.0  # local hour the off-peak circuit switches on (22-24)
    opens_saturday: bool = False


@dataclass(frozen=True)
class _Day:
    """A customer's behaviour on one local day."""

    amp: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    jitter_h: float = 0.0
    heater_h: float = 3.0  # heater run time [h] that starts the evening before (or at midnight)
    kind: str = "regular"  # regular, away, home, closed
    weather: float = 0.0


def _g(h, c, w):
    return np.exp(-(((h - c) / w) ** 2))


def _block(h, a, b, ramp):
    """Smooth 0-1 block on [a, b) local hours with logistic edges of width ``ramp`` [h]."""
    return 1.0 / ((1.0 + np.exp(-(h - a) / ramp)) * (1.0 + np.exp(-(b - h) / ramp)))


def _type_shape(c: _Customer, weekday: int, h: np.ndarray, today: _Day, tomorrow: _Day, sens: float) -> np.ndarray:
    """Un-normalised shape of one local day at local hours ``h`` (0-24)."""
    s = c.shift_h + today.jitter_h
    a = np.asarray(c.amp) * np.asarray(today.amp)
    wx = today.weather
    if c.ctype == "small_business":
        x = np.full(h.shape, 0.18)
        if today.kind == "closed" or weekday == 6 or (weekday == 5 and not c.opens_saturday):
            return x + 0.03 * _g(h, 12.0, 4.0)
        opening = _block(h, 8.5 + s, 13.0 + s, 0.5) if weekday == 5 else _block(h, 7.5 + s, 18.0 + s, 0.5)
        x = x + (0.7 if weekday == 5 else 1.0) * a[0] * opening + 0.15 * a[2] * _g(h, 12.5 + s, 1.0)
        return x + sens * 0.6 * abs(wx) * opening
    weekend = weekday >= 5
    if today.kind == "away":
        x = np.full(h.shape, 0.22)
    elif c.ctype == "home_all_day" or today.kind == "home":
        x = (0.30 + 0.25 * a[0] * _g(h, 7.75 + s + 0.75 * weekend, 1.5) + 0.35 * a[2] * _block(h, 9.5 + s, 16.5 + s, 1.0)
             + 0.25 * a[2] * _g(h, 12.5 + s, 1.2) + 0.60 * a[1] * _g(h, 18.25 + s, 2.0))
    elif weekend:
        x = 1.05 * (0.30 + 0.30 * a[0] * _g(h, 8.75 + s, 1.6) + 0.30 * a[2] * _g(h, 13.0 + s, 3.0)
                    + 0.70 * a[1] * _g(h, 18.75 + s, 2.2))
    else:
        x = 0.30 + 0.35 * a[0] * _g(h, 6.75 + s, 1.1) + 0.80 * a[1] * _g(h, 19.0 + s, 2.0) + 0.06 * a[2] * _g(h, 13.0 + s, 3.0)
    if today.kind != "away":
        x = x + sens * (max(wx, 0.0) * (0.4 * _g(h, 7.0 + s, 1.5) + 0.8 * _g(h, 20.0 + s, 3.0)) + max(-wx, 0.0) * 0.7 * _g(h, 16.0, 3.0))
    if c.ctype == "offpeak_water_heater":
        st = c.heater_start_h - 24.0  # today's run began yesterday evening (or at midnight)
        x = 0.8 * x + 1.8 * a[3] * (_block(h, st, st + today.heater_h, 0.1)
                                    + _block(h, c.heater_start_h, c.heater_start_h + tomorrow.heater_h, 0.1))
    return x


_WEEK_H = np.arange(0.0, 24.0, 1.0 / 60.0)


def _nominal_week(c: _Customer) -> np.ndarray:
    """Shape of a regular week at T = 0 (7 x 1440 minutes), un-normalised."""
    return np.stack([_type_shape(c, wd, _WEEK_H, _Day(), _Day(), 0.0) for wd in range(7)])


@cache
def _type_norm(ctype: str) -> float:
    """Divisor that gives the type's nominal shape a weekly mean of SHAPE_MEAN."""
    return float(_nominal_week(_Customer(ctype)).mean() / SHAPE_MEAN)


def _assign_types(shares: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Type index per meter: counts by largest remainder of ``shares * n``, in random order."""
    quota = shares / shares.sum() * n
    counts = np.floor(quota).astype(int)
    rest = n - counts.sum()
    if rest:
        order = np.lexsort((rng.random(quota.size), -(quota - counts)))  # ties broken at random
        counts[order[:rest]] += 1
    return rng.permutation(np.repeat(np.arange(shares.size), counts))


def _season(local_days: np.ndarray) -> np.ndarray:
    """The grid twin's ``1 + 0.12 cos(4 pi ((d % 365.25) - 15) / 365.25)`` (local day d)."""
    return 1.0 + 0.12 * np.cos(4 * np.pi * ((local_days % 365.25) - 15.0) / 365.25)


@dataclass
class _Meter:
    index: int
    device_id: str
    energy_wh: float
    customer: _Customer = field(default_factory=lambda: _Customer("day_worker"))
    days: dict[int, _Day] = field(default_factory=dict)  # cache of the local days in use
    zi_noise: np.ndarray = field(default_factory=lambda: np.zeros(1))
    zi_volt: np.ndarray = field(default_factory=lambda: np.zeros(1))
    zi_freq: np.ndarray = field(default_factory=lambda: np.zeros(1))
    bursts: list[tuple[float, float, float]] = field(default_factory=list)  # start, end [s], kW
    faults: list[tuple[float, float]] = field(default_factory=list)  # sensor fault [start, end) [s]
    outages: list[tuple[float, float]] = field(default_factory=list)  # WiFi [start, end) [s]
    pending: list[pl.DataFrame] = field(default_factory=list)  # rows delivered after the block


def _ou(rng, n, tau_s, dt, zi):
    a = math.exp(-dt / tau_s)
    return lfilter([math.sqrt(1 - a * a)], [1.0, -a], rng.standard_normal(n), zi=zi)


def _draw_intervals(rng, hazard_per_s, t, dt, median_s, sigma) -> list[tuple[float, float]]:
    """[start, end) times [s] of episodes starting with the given hazard [1/s] per step."""
    starts = t[rng.random(t.size) < -np.expm1(-hazard_per_s * dt)]
    return [(float(s), float(s + rng.lognormal(math.log(median_s), sigma))) for s in starts]


def _inside(t: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    """Index of the interval containing each time (-1 if none); intervals may overlap."""
    which = np.full(t.size, -1)
    for k, (a, b) in enumerate(intervals):
        which[(t >= a) & (t < b)] = k
    return which


class _MeterRun:
    def __init__(self, run: RunSpec, p: dict[str, Any]):
        self.run, self.p, self.dt = run, p, run.resolution_s
        self.block_steps = max(1, int(BLOCK_S // self.dt))
        self.start_us = int(round(run.start.timestamp() * 1e6))
        shares = np.array([p[f"share_{t}"] for t in CUSTOMER_TYPES], dtype=float)
        if not shares.sum() > 0:
            raise SimulationError("meter: every share_<type> is 0; give at least one customer type a positive share, "
                                  "e.g. --set share_day_worker=1")
        types = _assign_types(shares, run.devices, np.random.default_rng([run.seed, _S_TYPE]))
        self.meters = [_Meter(d, f"meter-{d:03d}", p["initial_energy_kwh"] * 1e3, customer=self._customer(d, CUSTOMER_TYPES[k]))
                       for d, k in enumerate(types)]
        w = np.random.default_rng([run.seed, _S_WEATHER])
        self.weather_coef = (w.uniform(3.0, 25.0, 4), w.uniform(0.0, 2 * np.pi, 4))  # periods [d], phases

    def _customer(self, index: int, ctype: str) -> _Customer:
        rng = np.random.default_rng([self.run.seed + index, _S_CUSTOMER])
        size, shift = float(rng.lognormal(0.0, 0.3)), float(rng.normal(0.0, 0.6))
        amp = tuple(float(a) for a in rng.lognormal(0.0, 0.25, 4))
        start = float(rng.choice([22.5, 23.0, 23.5]))
        saturday = bool(rng.random() < 0.4)
        return _Customer(ctype, size, shift, amp, start if ctype == "offpeak_water_heater" else 23.0,
                         saturday and ctype == "small_business")

    def _weather(self, day: int) -> float:
        """Weather index of a local day (std ~1, cold > 0), the same for every meter of the run."""
        periods, phases = self.weather_coef
        smooth = float(np.cos(2 * np.pi * day / periods + phases).sum()) / math.sqrt(2.0)
        return 0.8 * smooth + 0.6 * float(np.random.default_rng([self.run.seed, day + _DAY_KEY, _S_WEATHER]).standard_normal())

    def _day(self, m: _Meter, day: int) -> _Day:
        if day not in m.days:
            p = self.p
            rng = np.random.default_rng([self.run.seed + m.index, day + _DAY_KEY, _S_DAY])
            amp = tuple(float(a) for a in rng.lognormal(0.0, p["day_variability"], 4))
            jitter = float(rng.normal(0.0, 2.0 * p["day_variability"]))
            heater = float(3.0 * rng.lognormal(0.0, 0.3) * (1.15 if (day + 3) % 7 >= 5 else 1.0))
            irregular, u = rng.random() < p["irregular_day_prob"], rng.random()
            kind = "regular" if not irregular else ("closed" if m.customer.ctype == "small_business" else ("away" if u < 0.5 else "home"))
            m.days[day] = _Day(amp, jitter, min(heater, 7.0), kind, self._weather(day))
        return m.days[day]

    def _shape(self, m: _Meter, epoch: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Customer shape (weekly mean ~0.7 x size) at UTC epoch seconds, and the local days it covered."""
        local_s = epoch + self.p["utc_offset_h"] * 3600.0
        day_num = np.floor(local_s / 86_400.0).astype(np.int64)
        hour = (local_s - day_num * 86_400.0) / 3600.0
        shape = np.empty(epoch.size)
        days = []
        edges = np.flatnonzero(np.diff(day_num)) + 1
        for lo, hi in zip(np.r_[0, edges], np.r_[edges, epoch.size]):
            d = int(day_num[lo])
            today = self._day(m, d)
            shape[lo:hi] = _type_shape(m.customer, (d + 3) % 7, hour[lo:hi], today, self._day(m, d + 1), self.p["weather_sensitivity"])
            days.append(dict(day=d, kind=today.kind, weather=today.weather))
        for d in [d for d in m.days if d < int(day_num[0])]:
            del m.days[d]
        shape *= _season(local_s / 86_400.0) / _type_norm(m.customer.ctype)
        return shape, days

    def _customer_table(self) -> pl.DataFrame:
        rows = []
        peak = (_WEEK_H >= 17.0) & (_WEEK_H < 21.0)
        for m in self.meters:
            c = m.customer
            week = _nominal_week(c) / _type_norm(c.ctype)
            rows.append(dict(device_id=m.device_id, customer_type=c.ctype, size_factor=c.size, time_shift_h=c.shift_h,
                             heater_start_h=c.heater_start_h if c.ctype == "offpeak_water_heater" else None,
                             opens_saturday=c.opens_saturday if c.ctype == "small_business" else None,
                             mean_kw_nominal=self.p["base_kw"] * c.size * float(week.mean()),
                             peak_share_nominal=float(week[:, peak].sum() / week.sum())))
        schema = {"device_id": pl.String, "customer_type": pl.String, "size_factor": pl.Float64, "time_shift_h": pl.Float64,
                  "heater_start_h": pl.Float64, "opens_saturday": pl.Boolean, "mean_kw_nominal": pl.Float64, "peak_share_nominal": pl.Float64}
        frame = pl.DataFrame(rows, schema=schema)
        return frame.select(pl.lit(self.run.start).cast(_TS).alias("ts"), pl.all())

    def _rng(self, m: _Meter, block: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.run.seed + m.index, block, stream])

    def chunks(self) -> Iterator[SimChunk]:
        n_steps = self.run.n_steps
        chunk_us = int(self.run.chunk_s * 1e6)
        for block, k0 in enumerate(range(0, n_steps, self.block_steps)):
            k1 = min(n_steps, k0 + self.block_steps)
            final = k1 == n_steps
            parts = [self._block(m, block, k0, k1, final) for m in self.meters]
            rows = pl.concat([r for r, _, _, _, _ in parts]).sort("_delivered_us", "device_id", maintain_order=True)
            truth = {
                "events": pl.concat([e for _, e, _, _, _ in parts]),
                "meter_state": pl.concat([s for _, _, s, _, _ in parts]),
                "deliveries": pl.concat([d for _, _, _, d, _ in parts]),
                "customer_days": pl.concat([c for _, _, _, _, c in parts]),
            }
            if block == 0:
                truth["customer_types"] = self._customer_table()
            lo_us = self.start_us + int(round(k0 * self.dt * 1e6))
            hi_us = self.start_us + int(round(k1 * self.dt * 1e6))
            edges = list(range(lo_us, hi_us, chunk_us)) + [None]
            for c, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
                sel = pl.col("_delivered_us") >= (a if c else -(2**62))
                if b is not None:
                    sel = sel & (pl.col("_delivered_us") < b)
                yield SimChunk(
                    measurements={"meter": rows.filter(sel).drop("_delivered_us")},
                    truth=truth if c == 0 else {},
                )

    def _block(self, m: _Meter, block: int, k0: int, k1: int, final: bool):
        p, dt, n = self.p, self.dt, k1 - k0
        t = np.arange(k0, k1) * dt  # seconds since start
        t_end = k1 * dt
        epoch = self.start_us / 1e6 + t
        shape, days = self._shape(m, epoch)
        events: list[dict[str, Any]] = []

        # --- true load [W]
        rng = self._rng(m, block, _S_LOAD)
        noise, m.zi_noise = _ou(rng, n, 600.0, dt, m.zi_noise)
        starts = t[rng.random(n) < -np.expm1(-p["appliances_per_h"] / 3600.0 * shape / 0.7 * dt)]
        for s in starts:
            m.bursts.append((float(s), float(s + rng.uniform(60.0, 900.0)), float(rng.choice([0.8, 1.2, 2.0, 2.4]))))
        power_w = 1e3 * p["base_kw"] * m.customer.size * shape * np.exp(0.3 * noise)
        for a, b, kw in m.bursts:
            power_w[(t >= a) & (t < b)] += kw * 1e3
        m.bursts = [x for x in m.bursts if x[1] > t_end]
        pf = 0.55 + 0.43 * power_w / (power_w + 300.0)

        # --- supply
        rng = self._rng(m, block, _S_SUPPLY)
        wander, m.zi_volt = _ou(rng, n, 1800.0, dt, m.zi_volt)
        emf = p["source_voltage_v"] * (1.0 + 0.01 * wander)
        current = power_w / (pf * emf)
        voltage = emf - p["source_r_ohm"] * current
        current = power_w / (pf * voltage)
        fnoise, m.zi_freq = _ou(rng, n, 30.0, dt, m.zi_freq)
        frequency = 50.0 + 0.03 * fnoise
        energy_before = m.energy_wh + np.concatenate(([0.0], np.cumsum(power_w[:-1] * dt / 3600.0)))
        m.energy_wh = float(energy_before[-1] + power_w[-1] * dt / 3600.0)

        # --- sensor failures -> zeros
        rng = self._rng(m, block, _S_FAIL)
        isolated = rng.random(n) < p["read_fail_prob"]
        new_faults = _draw_intervals(rng, p["sensor_faults_per_day"] / 86_400.0, t, dt, 120.0, 1.0)
        for a, b in new_faults:
            events.append(dict(ts_s=a, end_s=b, type="sensor_fault", cause="pzem_read_error", severity=1.0, magnitude=b - a, unit="s"))
        m.faults += new_faults
        failed = isolated | (_inside(t, m.faults) >= 0)
        m.faults = [x for x in m.faults if x[1] > t_end]

        sent = {
            "voltage": np.floor(voltage * 10 + 0.5) / 10,
            "current": np.floor(current * 1000 + 0.5) / 1000,
            "power": np.floor(power_w * 10 + 0.5) / 10,
            "energy": np.floor(energy_before) / 1000.0,
            "frequency": np.floor(frequency * 10 + 0.5) / 10,
            "power_factor": np.floor(pf * 100 + 0.5) / 100,
        }
        sent["reactive_power"] = np.floor(np.sqrt(np.maximum(0.0, (sent["voltage"] * sent["current"]) ** 2 - sent["power"] ** 2)) * 10 + 0.5) / 10
        for k in sent:
            sent[k] = np.where(failed, 0.0, sent[k])

        # --- WiFi outages, buffering, retries
        rng = self._rng(m, block, _S_WIFI)
        new_outages = _draw_intervals(rng, p["outages_per_day"] / 86_400.0, t, dt, p["outage_median_s"], 1.0)
        for a, b in new_outages:
            events.append(dict(ts_s=a, end_s=b, type="wifi_outage", cause="wifi", severity=min(1.0, (b - a) / 3600.0), magnitude=b - a, unit="s"))
        m.outages += new_outages
        in_outage = _inside(t, m.outages)
        latency = rng.lognormal(math.log(0.15), 0.5, n)
        delivered = t + latency
        status = np.full(n, "live", dtype=object)
        for k in np.unique(in_outage[in_outage >= 0]):
            a, b = m.outages[k]
            back = math.ceil(b / dt) * dt  # first reading after reconnect
            idx = np.flatnonzero(in_outage == k)
            keep = idx[-p["buffer_readings"]:] if p["buffer_readings"] else idx[:0]
            status[idx] = "lost"
            status[keep] = "buffered"
            delivered[idx] = np.nan
            delivered[keep] = back + 0.5 + 0.1 * np.arange(1, keep.size + 1)
        m.outages = [x for x in m.outages if x[1] > t_end]
        rng = self._rng(m, block, _S_RETRY)
        retried = (rng.random(n) < p["retry_prob"]) & (status != "lost")
        retry_at = delivered + rng.uniform(2.0, 5.0, n)

        ts_us = self.start_us + np.round(t * 1e6).astype(np.int64)
        ts = pl.Series("ts", ts_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        frame = pl.DataFrame({"ts": ts, "device_id": pl.repeat(m.device_id, n, eager=True), **sent})
        ok = status != "lost"
        def to_us(s):
            return self.start_us + np.round(s * 1e6).astype(np.int64)

        rows = pl.concat([
            frame.filter(pl.Series(ok)).with_columns(pl.Series("_delivered_us", to_us(delivered[ok]))),
            frame.filter(pl.Series(retried)).with_columns(pl.Series("_delivered_us", to_us(retry_at[retried]))),
        ])
        rows = pl.concat([*m.pending, rows]).sort("_delivered_us", maintain_order=True)
        horizon = None if final else self.start_us + int(round(t_end * 1e6))
        if horizon is not None:
            m.pending = [rows.filter(pl.col("_delivered_us") >= horizon)]
            rows = rows.filter(pl.col("_delivered_us") < horizon)

        delivered_us = pl.Series("delivered_at", np.where(ok, to_us(np.nan_to_num(delivered)), 0)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        deliveries = pl.concat([
            pl.DataFrame({"ts": ts, "delivered_at": delivered_us, "device_id": m.device_id, "attempt": 1, "status": status.astype(str)})
            .with_columns(pl.when(pl.col("status") == "lost").then(None).otherwise(pl.col("delivered_at")).alias("delivered_at")),
            pl.DataFrame({"ts": ts.filter(pl.Series(retried)),
                          "delivered_at": pl.Series(to_us(retry_at[retried])).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
                          "device_id": m.device_id, "attempt": 2, "status": "retry"}),
        ]).with_columns(pl.col("attempt").cast(pl.Int32))
        state = pl.DataFrame({
            "ts": ts, "device_id": pl.repeat(m.device_id, n, eager=True), "voltage_true_v": voltage, "current_true_a": current,
            "power_true_w": power_w, "power_factor_true": pf, "energy_true_kwh": energy_before / 1e3, "read_failed": failed,
        })
        return rows, self._events(m, events), state, deliveries, self._days_table(m, days, k0, k1)

    def _days_table(self, m: _Meter, days: list[dict[str, Any]], k0: int, k1: int) -> pl.DataFrame:
        """``customer_days`` rows of the local days that start in this block (the first day: at the run start)."""
        off_us = int(round(self.p["utc_offset_h"] * 3600e6))
        lo_us = self.start_us + int(round(k0 * self.dt * 1e6))
        hi_us = self.start_us + int(round(k1 * self.dt * 1e6))
        rows = []
        for d in days:
            start_us = d["day"] * 86_400_000_000 - off_us
            if lo_us <= start_us < hi_us or (k0 == 0 and start_us <= lo_us):
                rows.append(dict(ts=max(start_us, self.start_us), device_id=m.device_id, customer_type=m.customer.ctype,
                                 day_kind=d["kind"], weather_index=d["weather"]))
        schema = {"ts": pl.Int64, "device_id": pl.String, "customer_type": pl.String, "day_kind": pl.String, "weather_index": pl.Float64}
        return pl.DataFrame(rows, schema=schema).with_columns(pl.col("ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))

    def _events(self, m: _Meter, events: list[dict[str, Any]]) -> pl.DataFrame:
        def to_ts(s):
            return (pl.lit(self.start_us) + (pl.col(s) * 1e6).round().cast(pl.Int64)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")

        schema = {"ts_s": pl.Float64, "end_s": pl.Float64, "type": pl.String, "cause": pl.String, "severity": pl.Float64, "magnitude": pl.Float64, "unit": pl.String}
        frame = pl.DataFrame(events, schema=schema)
        return frame.select(to_ts("ts_s").alias("ts"), to_ts("end_s").alias("end"), pl.lit(m.device_id).alias("device_id"),
                            "type", "cause", "severity", pl.lit(None, pl.String).alias("phase"), "magnitude", "unit")


def _run(spec: RunSpec, params: dict[str, Any]) -> Iterator[SimChunk]:
    """Generate meter readings in delivery order, chunk by chunk."""
    yield from _MeterRun(spec, params).chunks()


register(Scenario("meter", "meter", "ESP8266 + PZEM-004T customer meter (4 customer types): quantised readings, zeros on read failure, WiFi gaps, retries", PARAMS, _run))
register(Scenario(
    "meter_outages", "meter", "the meter on a poor WiFi link with a flaky sensor",
    {**PARAMS, "outages_per_day": replace(PARAMS["outages_per_day"], default=24.0),
     "sensor_faults_per_day": replace(PARAMS["sensor_faults_per_day"], default=2.0),
     "retry_prob": replace(PARAMS["retry_prob"], default=0.05)},
    _run,
))
