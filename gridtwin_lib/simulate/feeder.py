"""Reference LV feeder run as a power-flow time series (pandapower CIGRE LV benchmark).

Network (``pandapower.networks.create_cigre_network_lv()``): one 20 kV slack bus (``Bus 0``)
feeding three 20/0.4 kV transformers -- residential ``R`` (500 kVA, buses R1-R18, 16 lines,
6 loads), industrial ``I`` (150 kVA, I1-I2, 1 line, 1 load) and commercial ``C`` (300 kVA,
C1-C20, 20 lines, 7 loads): 44 buses, 37 LV lines, 15 loads, 686.6 kW nominal demand. The
model is balanced (positive sequence), so the three-phase measurements at each transformer's
LV terminals carry P/3, Q/3 and the same voltage and current on every phase.

Time series: each load follows a daily profile by sub-network (residential evening peak,
commercial office hours, industrial two shifts) times its nominal power, ``load_scale`` and
lognormal per-load noise; its Q keeps the network's power factor. Optional rooftop PV at
every load bus: ``pv_share`` x the load's nominal kW as kWp, a clear-sky bell between 6 and 19 h
local time times a clear-sky index drawn per step (``cloudiness``), at unity power factor.

Stressed days (``stress_every_days`` = n > 0: local day ``stress_first_day`` of the run, counted
from the day it starts in, and every n-th local day after it): PV is sized ``stress_pv_share`` instead of ``pv_share`` (export at noon
lifts the residential buses toward 1.10 pu), and every load is multiplied by a bump of peak
``stress_evening_scale`` around 19 h local (width 4 h: a cold or EV-charging evening that
pulls the far buses toward 0.90 pu). The other days are normal; the random draws are the same
either way, so a run with ``stress_every_days = 0`` is the unstressed run, bit for bit.

Every step is one :func:`pandapower.runpp` (about 40 ms), so keep the resolution coarse.

Measurements: ``three_phase`` per transformer (device ``<feeder>_<R|I|C>``). Truth tables:
``feeder_buses`` (ts, device_id, bus, vm_pu), ``feeder_lines`` (ts, device_id, line,
loading_percent, pl_kw) and ``feeder_losses`` (ts, device_id, losses_kw = sum of line and
transformer ``pl_mw``, line_losses_kw, trafo_losses_kw, load_kw, pv_kw, ext_grid_kw).
``devices`` independent copies of the feeder are simulated (``feeder0``, ``feeder1``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from ..physics.powerflow import CIGRE_SUBNETS, load_profile, reference_network, run_time_series
from .registry import Param, RunSpec, Scenario, SimChunk, register

LV_KV = 0.4
SUBNETS = CIGRE_SUBNETS


PARAMS = {
    "load_scale": Param(1.0, "1", "multiplier on every load's nominal power", 0, 3, min_exclusive=True),
    "load_noise_pct": Param(10.0, "%", "lognormal spread of each load around its profile", 0, 100),
    "pv_share": Param(0.5, "kWp/kW", "rooftop PV size per kW of nominal load at the same bus", 0, 5),
    "cloudiness": Param(0.3, "1", "depth of random cloud attenuation of PV (0 = clear)", 0, 0.95),
    "utc_offset_h": Param(10.0, "h", "local time offset from UTC for the daily profiles", -12, 14),
    "stress_every_days": Param(0, "d", "every n-th local day is stressed (PV export at noon, heavy evening load); 0 = none", 0, 365),
    "stress_first_day": Param(0, "d", "the first stressed local day (0 = the day the run starts in)", 0, 365),
    "stress_pv_share": Param(3.0, "kWp/kW", "rooftop PV size per kW of nominal load on stressed days", 0, 5),
    "stress_evening_scale": Param(2.2, "1", "peak multiplier on every load around 19 h local on stressed days", 1, 3),
}

#: centre and width [h, local] of the heavy-evening bump of stressed days (the residential evening peak)
STRESS_EVENING_H, STRESS_WIDTH_H = 19.0, 4.0


def stressed_days(hours_since_start: np.ndarray, start_local_hour: float, every: int, first: int = 0) -> np.ndarray:
    """Whether each step falls on a stressed local day.

    Parameters
    ----------
    hours_since_start : ndarray
        Time since the run's start [h].
    start_local_hour : float
        Local clock hour of the run's start [h]; local day 0 is the day it falls in.
    every : int
        Every n-th local day from ``first`` (first, first + n, ...) is stressed; 0: none.
    first : int
        The first stressed local day.

    Returns
    -------
    ndarray of bool
    """
    if every <= 0:
        return np.zeros(np.shape(hours_since_start), dtype=bool)
    day = np.floor((np.asarray(hours_since_start, float) + start_local_hour) / 24).astype(int) - first
    return (day >= 0) & (day % every == 0)


def _run(run: RunSpec, p: dict[str, Any]) -> Iterator[SimChunk]:
    net = reference_network()
    nominal_p = net.load["p_mw"].to_numpy() * 1000
    tan_phi = net.load["q_mvar"].to_numpy() / net.load["p_mw"].to_numpy()
    subnet = net.load["name"].str.removeprefix("Load ").str[0].to_numpy()
    bus_names = net.bus["name"].tolist()
    line_names = net.line["name"].tolist()
    steps_per_chunk = max(1, int(run.chunk_s // run.resolution_s))
    for c0 in range(0, run.n_steps, steps_per_chunk):
        steps = np.arange(c0, min(run.n_steps, c0 + steps_per_chunk))
        seconds = steps * run.resolution_s
        hour = (seconds / 3600 + run.start.hour + run.start.minute / 60 + p["utc_offset_h"]) % 24
        start_local_h = (run.start.hour + run.start.minute / 60 + p["utc_offset_h"]) % 24
        stressed = stressed_days(seconds / 3600, start_local_h, p["stress_every_days"], p["stress_first_day"])
        evening = np.where(stressed, 1 + (p["stress_evening_scale"] - 1) * np.exp(-(((hour - STRESS_EVENING_H) / STRESS_WIDTH_H) ** 2)), 1.0)
        pv_share = np.where(stressed, p["stress_pv_share"], p["pv_share"])
        ts = [run.start + timedelta(seconds=float(s)) for s in seconds]
        measurements, buses, lines, losses = [], [], [], []
        for d in range(run.devices):
            rng = np.random.default_rng([run.seed, d, c0])
            shape = np.column_stack([load_profile(s, hour) for s in subnet])
            load_p = nominal_p * p["load_scale"] * shape * rng.lognormal(0, p["load_noise_pct"] / 100, shape.shape)
            load_p = load_p * evening[:, None]
            sun = np.clip(np.sin(math.pi * (hour - 6) / 13), 0, None) ** 1.5
            clear_index = 1 - p["cloudiness"] * rng.random(len(steps))
            pv = (sun * clear_index)[:, None] * nominal_p * pv_share[:, None]
            feeder = f"feeder{d}"
            for k, result in enumerate(run_time_series(net, load_p, load_p * tan_phi, pv)):
                v = result["lv_vm_pu"] * LV_KV * 1000 / math.sqrt(3)
                for t, name in enumerate(SUBNETS):
                    row = {"ts": ts[k], "device_id": f"{feeder}_{name}", "frequency": 50.0}
                    for ph in "abc":
                        row |= {f"v_{ph}": v[t], f"i_{ph}": result["lv_i_a"][t], f"p_{ph}": result["lv_p_kw"][t] * 1000 / 3,
                                f"q_{ph}": result["lv_q_kvar"][t] * 1000 / 3}
                    measurements.append(row)
                buses.append(pl.DataFrame({"ts": [ts[k]] * len(bus_names), "device_id": feeder, "bus": bus_names, "vm_pu": result["bus_vm_pu"]}))
                lines.append(pl.DataFrame({"ts": [ts[k]] * len(line_names), "device_id": feeder, "line": line_names,
                                           "loading_percent": result["line_loading_percent"], "pl_kw": result["line_pl_kw"]}))
                losses.append({"ts": ts[k], "device_id": feeder, "losses_kw": result["losses_kw"],
                               "line_losses_kw": float(result["line_pl_kw"].sum()), "trafo_losses_kw": float(result["trafo_pl_kw"].sum()),
                               "load_kw": float(load_p[k].sum()), "pv_kw": float(pv[k].sum()), "ext_grid_kw": result["ext_grid_p_kw"]})
        utc = pl.col("ts").cast(pl.Datetime("us", "UTC"))
        yield SimChunk(
            measurements={"three_phase": pl.DataFrame(measurements).with_columns(utc)},
            truth={
                "feeder_buses": pl.concat(buses).with_columns(utc),
                "feeder_lines": pl.concat(lines).with_columns(utc),
                "feeder_losses": pl.DataFrame(losses).with_columns(utc),
            },
        )


register(Scenario(
    "feeder_timeseries", "feeder",
    "CIGRE LV benchmark feeder (pandapower) as a power-flow time series with daily load profiles and rooftop PV",
    PARAMS, _run, min_resolution_s=300.0, max_resolution_s=3600.0,
))
