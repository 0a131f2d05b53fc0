"""ESP8266 + PZEM-004T household meter twin (record kind ``meter``), as its firmware reports it.

One reading per step of the run (``--resolution 10s`` is the firmware's default
interval). Physics: a household load ``base_kw * shape(t)`` (the grid twin's
:func:`~gridtwin_lib.simulate.grid.load_shape`) plus OU noise and appliance bursts; supply
voltage ``source_voltage_v`` with a slow OU wander minus the drop over ``source_r_ohm``;
frequency 50 Hz plus OU noise; power factor falls at light load
(``pf = 0.55 + 0.43 * P / (P + 300 W)``).

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
Randomness: one stream per (``seed + device_index``, day block, process), so the output
does not depend on ``RunSpec.chunk_s``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy.signal import lfilter

from .grid import load_shape
from .registry import Param, RunSpec, Scenario, SimChunk, register

BLOCK_S = 86_400.0
_TS = pl.Datetime("us", "UTC")
_S_LOAD, _S_SUPPLY, _S_FAIL, _S_WIFI, _S_RETRY = range(5)

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
}


@dataclass
class _Meter:
    index: int
    device_id: str
    energy_wh: float
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
        self.meters = [_Meter(d, f"meter-{d:03d}", p["initial_energy_kwh"] * 1e3) for d in range(run.devices)]

    def _rng(self, m: _Meter, block: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.run.seed + m.index, block, stream])

    def chunks(self) -> Iterator[SimChunk]:
        n_steps = self.run.n_steps
        chunk_us = int(self.run.chunk_s * 1e6)
        for block, k0 in enumerate(range(0, n_steps, self.block_steps)):
            k1 = min(n_steps, k0 + self.block_steps)
            final = k1 == n_steps
            parts = [self._block(m, block, k0, k1, final) for m in self.meters]
            rows = pl.concat([r for r, _, _, _ in parts]).sort("_delivered_us", "device_id", maintain_order=True)
            truth = {
                "events": pl.concat([e for _, e, _, _ in parts]),
                "meter_state": pl.concat([s for _, _, s, _ in parts]),
                "deliveries": pl.concat([d for _, _, _, d in parts]),
            }
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
        shape = load_shape(epoch, p["utc_offset_h"])
        events: list[dict[str, Any]] = []

        # --- true load [W]
        rng = self._rng(m, block, _S_LOAD)
        noise, m.zi_noise = _ou(rng, n, 600.0, dt, m.zi_noise)
        starts = t[rng.random(n) < -np.expm1(-p["appliances_per_h"] / 3600.0 * shape / 0.7 * dt)]
        for s in starts:
            m.bursts.append((float(s), float(s + rng.uniform(60.0, 900.0)), float(rng.choice([0.8, 1.2, 2.0, 2.4]))))
        power_w = 1e3 * p["base_kw"] * shape * np.exp(0.3 * noise)
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
        to_us = lambda s: self.start_us + np.round(s * 1e6).astype(np.int64)
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
        return rows, self._events(m, events), state, deliveries

    def _events(self, m: _Meter, events: list[dict[str, Any]]) -> pl.DataFrame:
        to_ts = lambda s: (pl.lit(self.start_us) + (pl.col(s) * 1e6).round().cast(pl.Int64)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        schema = {"ts_s": pl.Float64, "end_s": pl.Float64, "type": pl.String, "cause": pl.String, "severity": pl.Float64, "magnitude": pl.Float64, "unit": pl.String}
        frame = pl.DataFrame(events, schema=schema)
        return frame.select(to_ts("ts_s").alias("ts"), to_ts("end_s").alias("end"), pl.lit(m.device_id).alias("device_id"),
                            "type", "cause", "severity", pl.lit(None, pl.String).alias("phase"), "magnitude", "unit")


def _run(spec: RunSpec, params: dict[str, Any]) -> Iterator[SimChunk]:
    """Generate meter readings in delivery order, chunk by chunk."""
    yield from _MeterRun(spec, params).chunks()


register(Scenario("meter", "meter", "ESP8266 + PZEM-004T household meter: quantised readings, zeros on read failure, WiFi gaps, retries", PARAMS, _run))
register(Scenario(
    "meter_outages", "meter", "the meter on a poor WiFi link with a flaky sensor",
    {**PARAMS, "outages_per_day": replace(PARAMS["outages_per_day"], default=24.0),
     "sensor_faults_per_day": replace(PARAMS["sensor_faults_per_day"], default=2.0),
     "retry_prob": replace(PARAMS["retry_prob"], default=0.05)},
    _run,
))
