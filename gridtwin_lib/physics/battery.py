"""Battery site physics: one prosumer's battery, connection and tariff; the day-ahead LP dispatch,
the rule dispatch, the re-simulation of a schedule on the actual day, and the day's cost.

Arrays are (days, 24) in local clock hours unless said otherwise. Units: kW (power, averaged over
the hour, so kW x 1 h = kWh), kWh (state of charge), €/kWh (prices), €/kW per day (peak charge).
The LP is solved with HiGHS through :func:`scipy.optimize.linprog`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from ..errors import InputError
from ..units import HOURS_PER_DAY

HOURS = HOURS_PER_DAY
#: columns of a schedule (all kW except soc_kwh [kWh, end of hour])
SCHEDULE_COLUMNS = ("grid_import_kw", "pv_curtailed_kw", "battery_charge_kw", "battery_discharge_kw", "soc_kwh")
_TOL = 1e-6


@dataclass(frozen=True)
class BatterySite:
    """Battery, connection and tariff of one prosumer, shared by the LP, the rule and the re-simulation.

    Build it with :meth:`from_params` (which checks the values); fields are in the units the
    dispatch works in.

    Attributes
    ----------
    eta : float
        One-way efficiency [1] (square root of the round-trip efficiency).
    e_max : float
        Usable capacity [kWh].
    p_max : float
        Charge and discharge power limit [kW].
    s_min, s_max : float
        State-of-charge bounds [kWh].
    s0 : float or ndarray
        State of charge at the start of the day (or of the horizon) [kWh].
    imp_lim, exp_lim : float
        Import limit (soft in the LP, at ``penalty``) and export limit [kW].
    feed_in : float
        Price paid for exported energy [€/kWh].
    peak_charge : float
        Demand charge on the day's highest import [€/kW per day].
    terminal : float or None
        Value of energy left in the battery at midnight [€/kWh]; None: the day's cheapest price.
    penalty : float
        Cost of import above ``imp_lim`` in the LP [€/kWh].
    """

    eta: float
    e_max: float
    p_max: float
    s_min: float
    s_max: float
    s0: float | np.ndarray
    imp_lim: float
    exp_lim: float
    feed_in: float
    peak_charge: float
    terminal: float | None
    penalty: float

    @classmethod
    def from_params(cls, *, battery_kwh: float, battery_kw: float, round_trip_efficiency: float, soc_min_frac: float,
                    soc_max_frac: float, soc_init_frac: float, import_limit_kw: float, export_limit_kw: float,
                    feed_in_per_kwh: float, peak_charge_per_kw_day: float, terminal_value_per_kwh: float | None,
                    overload_penalty_per_kwh: float, execution: str = "realtime") -> BatterySite:
        """The site of a dispatch model's battery parameters, checked.

        Parameters
        ----------
        battery_kwh : float
            Capacity [kWh].
        battery_kw : float
            Power limit [kW].
        round_trip_efficiency : float
            Round-trip efficiency in (0, 1] [1].
        soc_min_frac, soc_max_frac, soc_init_frac : float
            SoC bounds and start as fractions of the capacity [1]; ``0 <= min <= init <= max <= 1``.
        import_limit_kw, export_limit_kw : float
            Connection limits [kW].
        feed_in_per_kwh : float
            Feed-in tariff [€/kWh].
        peak_charge_per_kw_day : float
            Demand charge [€/kW per day].
        terminal_value_per_kwh : float or None
            Value of stored energy at midnight [€/kWh]; None: the day's cheapest price.
        overload_penalty_per_kwh : float
            Penalty on import above the limit [€/kWh].
        execution : {"realtime", "setpoints"}
            How the dispatch model executes a plan (only checked here).

        Returns
        -------
        BatterySite

        Raises
        ------
        InputError
            A value outside its range (the message names it).
        """
        if not 0 < round_trip_efficiency <= 1:
            raise InputError(f"battery site: round_trip_efficiency must be in (0, 1] (got {round_trip_efficiency})")
        if not 0 <= soc_min_frac <= soc_init_frac <= soc_max_frac <= 1:
            raise InputError("battery site: need 0 <= soc_min_frac <= soc_init_frac <= soc_max_frac <= 1")
        if battery_kwh < 0 or battery_kw < 0 or import_limit_kw <= 0 or export_limit_kw < 0:
            raise InputError("battery site: battery_kwh, battery_kw, export_limit_kw must be >= 0 and import_limit_kw > 0")
        if execution not in ("realtime", "setpoints"):
            raise InputError(f"battery site: execution must be 'realtime' (plan + real-time layer) or 'setpoints' (got {execution!r})")
        e_max = float(battery_kwh)
        return cls(eta=float(np.sqrt(round_trip_efficiency)), e_max=e_max, p_max=float(battery_kw),
                   s_min=soc_min_frac * e_max, s_max=soc_max_frac * e_max, s0=soc_init_frac * e_max,
                   imp_lim=float(import_limit_kw), exp_lim=float(export_limit_kw), feed_in=float(feed_in_per_kwh),
                   peak_charge=float(peak_charge_per_kw_day), terminal=terminal_value_per_kwh,
                   penalty=float(overload_penalty_per_kwh))

    def with_soc(self, soc_kwh: float | np.ndarray) -> BatterySite:
        """The same site starting from ``soc_kwh`` [kWh] (a scalar, or one value per day/row)."""
        return replace(self, s0=soc_kwh)

    def terminal_value(self, price: np.ndarray) -> np.ndarray:
        """Value of energy left in the battery at midnight [€/kWh], per day.

        Parameters
        ----------
        price : ndarray, shape (days, 24)
            Import price [€/kWh].

        Returns
        -------
        ndarray, shape (days,)
            ``terminal`` if set, else the day's cheapest price [€/kWh].
        """
        return price.min(axis=1) if self.terminal is None else np.full(price.shape[0], float(self.terminal))


def day_cost(site: BatterySite, grid_kw: np.ndarray, soc_end: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Cost of each day [€]: energy bought - feed-in sold + peak charge x max import, plus the change
    of stored energy at midnight: a deficit costs ``v / eta`` per kWh (refilling it), a surplus is
    worth ``v * eta`` (what it displaces), ``v`` = :meth:`BatterySite.terminal_value`.

    Parameters
    ----------
    site : BatterySite
        Tariff, efficiency and starting SoC ``s0`` [kWh].
    grid_kw : ndarray, shape (days, 24)
        Realised grid import [kW] per hour, negative = export.
    soc_end : ndarray, shape (days,)
        State of charge at midnight [kWh].
    price : ndarray, shape (days, 24)
        Import price [€/kWh].

    Returns
    -------
    ndarray, shape (days,)
        Cost [€/day].
    """
    imp, exp = np.clip(grid_kw, 0, None), np.clip(-grid_kw, 0, None)
    v = site.terminal_value(price)
    return ((price * imp).sum(axis=1) - site.feed_in * exp.sum(axis=1) + site.peak_charge * imp.max(axis=1)
            + v / site.eta * np.clip(site.s0 - soc_end, 0, None) - v * site.eta * np.clip(soc_end - site.s0, 0, None))


def solve_day_lp(site: BatterySite, load, pv, price) -> tuple[dict[str, np.ndarray], float]:
    """One day's LP (HiGHS): the cheapest schedule under the energy balance, battery and SoC limits.

    Variables per hour: import, export, curtailment, charge, discharge, SoC (end of hour), import
    overload slack; plus the day's peak import. Objective [€]: Σ price·import - feed_in·export +
    penalty·slack + peak_charge·peak - eta·v·SoC_end (see :func:`day_cost`). The SoC starts at
    ``site.s0`` and must end at least there.

    Parameters
    ----------
    site : BatterySite
    load, pv, price : ndarray, shape (24,)
        Forecast load [kW], PV [kW] and import price [€/kWh] per hour.

    Returns
    -------
    schedule : dict of str to ndarray, shape (24,)
        :data:`SCHEDULE_COLUMNS`: grid_import_kw (negative = export), pv_curtailed_kw,
        battery_charge_kw, battery_discharge_kw [kW] and soc_kwh [kWh, end of hour].
    seconds : float
        The solver's wall time [s].

    Raises
    ------
    RuntimeError
        HiGHS did not solve the day.
    """
    T = HOURS
    n = 7 * T + 1
    imp, exp, cur, ch, dis, soc, slk = (np.arange(k * T, (k + 1) * T) for k in range(7))
    peak = 7 * T
    r = np.arange(T)
    eq_rows = np.concatenate([r, r, r, r, r, T + r, T + r, T + r, T + r[1:]])
    eq_cols = np.concatenate([imp, exp, cur, ch, dis, soc, ch, dis, soc[:-1]])
    eq_vals = np.concatenate([np.ones(T), -np.ones(T), -np.ones(T), -np.ones(T), np.ones(T),
                              np.ones(T), -site.eta * np.ones(T), np.ones(T) / site.eta, -np.ones(T - 1)])
    A_eq = sparse.csr_matrix((eq_vals, (eq_rows, eq_cols)), shape=(2 * T, n))
    b_eq = np.concatenate([load - pv, [site.s0], np.zeros(T - 1)])
    ub_rows = np.concatenate([r, r, T + r, T + r])
    ub_cols = np.concatenate([imp, np.full(T, peak), imp, slk])
    ub_vals = np.concatenate([np.ones(T), -np.ones(T), np.ones(T), -np.ones(T)])
    A_ub = sparse.csr_matrix((ub_vals, (ub_rows, ub_cols)), shape=(2 * T, n))
    b_ub = np.concatenate([np.zeros(T), np.full(T, site.imp_lim)])
    lo, hi = np.zeros(n), np.full(n, np.inf)
    hi[exp], hi[cur], hi[ch], hi[dis] = site.exp_lim, pv, site.p_max, site.p_max
    lo[soc], hi[soc] = site.s_min, site.s_max
    lo[soc[-1]] = max(site.s_min, site.s0)  # end the day at least as full as it started
    c = np.zeros(n)
    c[imp], c[exp], c[slk], c[peak] = price, -site.feed_in, site.penalty, site.peak_charge
    c[ch] = c[dis] = 1e-4  # tie-break: no needless cycling
    c[soc[-1]] -= site.terminal_value(price[None, :])[0] * site.eta  # value of energy kept (see day_cost)
    t0 = time.perf_counter()
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=np.column_stack([lo, hi]), method="highs")
    elapsed = time.perf_counter() - t0
    if res.status != 0:
        raise RuntimeError(f"day-ahead LP: HiGHS did not solve a day (status {res.status}: {res.message})")
    x = res.x
    out = {"grid_import_kw": x[imp] - x[exp], "pv_curtailed_kw": x[cur], "battery_charge_kw": x[ch],
           "battery_discharge_kw": x[dis], "soc_kwh": x[soc]}
    return out, elapsed


def rule_dispatch(site: BatterySite, load: np.ndarray, pv: np.ndarray, price: np.ndarray) -> dict[str, np.ndarray]:
    """The rule, hour by hour on (days, 24) arrays: charge from PV surplus; discharge to cover the
    load in the peak-price hours (price = the day's highest); PV beyond the export limit is curtailed.
    It is causal: each hour uses only that hour's values, so run on actual data it is a real-time
    controller. (:func:`greedy_dispatch` with the peak-price hours as discharge hours.)"""
    return greedy_dispatch(site, load, pv, price >= price.max(axis=1, keepdims=True) - 1e-9)


def greedy_dispatch(site: BatterySite, load: np.ndarray, pv: np.ndarray, discharge_hours: np.ndarray,
                    grid_charge_hours: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """A greedy battery rule on (days, 24) arrays [kW], in the LP's schedule format.

    Every hour: charge from the PV surplus; in ``grid_charge_hours`` (bool, (days, 24); default none)
    also charge from the grid up to the import limit; in ``discharge_hours`` (bool, (days, 24))
    discharge to cover the load not covered by PV (never into export). Grid charging is spread evenly
    over the charging hours left, so that it does not set a new daily import peak. Power and SoC limits
    of ``site`` (``s0`` [kWh] a float or one per day); PV beyond the export limit is curtailed. Each hour
    reads only that hour's values and the masks (causal).
    """
    days = load.shape[0]
    if grid_charge_hours is None:
        grid_charge_hours = np.zeros(load.shape, dtype=bool)
    soc = np.broadcast_to(np.asarray(site.s0, dtype=float), (days,)).copy()
    out = {k: np.zeros((days, HOURS)) for k in SCHEDULE_COLUMNS}
    p_max = np.full(days, site.p_max)
    for h in range(HOURS):
        surplus = pv[:, h] - load[:, h]
        room = (site.s_max - soc) / site.eta
        # grid charging spread evenly over the charging hours left (a flat night-time import, not a new daily peak)
        left = np.maximum(grid_charge_hours[:, h:].sum(axis=1), 1)
        from_grid = np.where(grid_charge_hours[:, h], np.clip(np.minimum(room / left, site.imp_lim - np.clip(-surplus, 0, None)), 0, None), 0.0)
        ch = np.clip(np.minimum.reduce([np.clip(surplus, 0, None) + from_grid, p_max, room]), 0, None)
        dis = np.where((surplus < 0) & discharge_hours[:, h] & ~grid_charge_hours[:, h],
                       np.minimum.reduce([-surplus, p_max, (soc - site.s_min) * site.eta]), 0.0)
        dis = np.clip(dis, 0, None)
        net = load[:, h] - pv[:, h] + ch - dis
        cur = np.minimum(pv[:, h], np.clip(-site.exp_lim - net, 0, None))
        soc = soc + site.eta * ch - dis / site.eta
        for k, v in zip(SCHEDULE_COLUMNS, (net + cur, cur, ch, dis, soc)):
            out[k][:, h] = v
    return out


def resimulate(site: BatterySite, schedule: dict[str, np.ndarray], load: np.ndarray, pv: np.ndarray,
               price: np.ndarray | None = None, realtime: bool = True) -> dict[str, np.ndarray]:
    """Play a day-ahead schedule against the ACTUAL day (arrays (days, 24)); the plan is not revised.

    The battery takes the planned set-point (charge - discharge), limited by physics (power,
    SoC). With ``realtime`` a fixed real-time layer, using only the current hour's measured load
    and PV, executes the plan the way a site controller would: it never discharges into export;
    it holds the import at the planned level in the peak-price hours and at the plan's daily
    peak otherwise, cutting planned charging first, then discharging extra; and it stores PV
    that would be exported. Then, always, a safety layer: above the import limit it cuts
    charging, then discharges; beyond the export limit it cuts discharging, charges, then
    curtails PV. The grid takes the rest. The same function judges every schedule (LP, rule).
    Returns the realised arrays, ``override`` (hours the battery did not do what was planned)
    and ``violation`` (hours outside a limit: import, export, SoC, battery power, curtailment).
    """
    days = load.shape[0]
    soc = np.full(days, site.s0)
    keys = (*SCHEDULE_COLUMNS, "override", "violation")
    out = {k: np.zeros((days, HOURS)) for k in keys}
    plan = schedule["battery_charge_kw"] - schedule["battery_discharge_kw"]
    planned_grid = schedule["grid_import_kw"]
    planned_peak = np.clip(planned_grid, 0, None).max(axis=1)
    is_peak = (np.zeros((days, HOURS), bool) if price is None
               else price >= price.max(axis=1, keepdims=True) - 1e-9)
    p_max = np.full(days, site.p_max)
    for h in range(HOURS):
        b = plan[:, h]
        room, stored = (site.s_max - soc) / site.eta, (soc - site.s_min) * site.eta
        ch = np.clip(np.minimum.reduce([np.clip(b, 0, None), p_max, room]), 0, None)
        dis = np.clip(np.minimum.reduce([np.clip(-b, 0, None), p_max, stored]), 0, None)
        ch0, dis0 = ch.copy(), dis.copy()
        base = load[:, h] - pv[:, h]
        if realtime:
            dis = np.minimum(dis, np.clip(base, 0, None))  # no discharging into export
            target = np.where(is_peak[:, h], np.clip(planned_grid[:, h], 0, None), planned_peak)
            over = np.clip(base + ch - dis - target, 0, None)
            cut = np.minimum(ch, over)
            ch, over = ch - cut, over - cut
            dis = dis + np.clip(np.minimum.reduce([over, site.p_max - dis, stored - dis]), 0, None)
            spill = np.clip(-(base + ch - dis), 0, None)  # would be exported: store it
            ch = ch + np.where(dis > 0, 0.0, np.clip(np.minimum.reduce([spill, site.p_max - ch, room - ch]), 0, None))
        over = np.clip(base + ch - dis - site.imp_lim, 0, None)  # safety: import limit
        cut = np.minimum(ch, over)
        ch, over = ch - cut, over - cut
        dis = dis + np.clip(np.minimum.reduce([over, site.p_max - dis, stored - dis]), 0, None)
        under = np.clip(-site.exp_lim - (base + ch - dis), 0, None)  # safety: export limit
        cut = np.minimum(dis, under)
        dis, under = dis - cut, under - cut
        extra = np.clip(np.minimum.reduce([under, site.p_max - ch, room - ch]), 0, None)
        ch, under = ch + extra, under - extra
        cur = np.minimum(pv[:, h], under)
        net = base + cur + ch - dis
        soc = soc + site.eta * ch - dis / site.eta
        bad = ((net > site.imp_lim + _TOL) | (net < -site.exp_lim - _TOL) | (soc < site.s_min - _TOL) | (soc > site.s_max + _TOL)
               | (ch > site.p_max + _TOL) | (dis > site.p_max + _TOL) | (cur > pv[:, h] + _TOL) | ((ch > _TOL) & (dis > _TOL)))
        moved = (np.abs(ch - ch0) > 1e-6) | (np.abs(dis - dis0) > 1e-6)
        for k, v in zip(keys, (net, cur, ch, dis, soc, moved, bad)):
            out[k][:, h] = v
    return out
