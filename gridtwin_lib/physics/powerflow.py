"""AC power flow of the CIGRE LV reference feeder (pandapower), and a memoising wrapper with an explicit cache.

Network (``pandapower.networks.create_cigre_network_lv()``): one 20 kV slack bus feeding three
20/0.4 kV transformers, one per sub-network of :data:`CIGRE_SUBNETS` (residential ``R``,
industrial ``I``, commercial ``C``); 44 buses, 37 LV lines, 15 loads, 686.6 kW nominal demand.
:func:`reference_network` adds one PV generator (0 kW) per load bus. pandapower is imported on
first use (it takes seconds to import), so importing this module is cheap.

Units: kW, kvar, A, pu (bus voltage magnitude), local clock hours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandapower as pp

#: the CIGRE LV benchmark's sub-networks, in the order of its transformers (``net.trafo``):
#: residential, industrial, commercial; a load's sub-network is the first letter of its name
CIGRE_SUBNETS = ("R", "I", "C")


def reference_network() -> pp.pandapowerNet:
    """The CIGRE LV benchmark with one PV generator (0 kW) per load bus, named ``PV <load>``.

    Returns
    -------
    pandapowerNet
        A fresh network (callers may change its injections).
    """
    import pandapower as pp
    import pandapower.networks as pn

    net = pn.create_cigre_network_lv()
    for load in net.load.itertuples():
        pp.create_sgen(net, load.bus, p_mw=0.0, q_mvar=0.0, name=f"PV {load.name.removeprefix('Load ')}")
    return net


def solve(net: pp.pandapowerNet, load_p_kw, load_q_kvar, pv_kw, q_setpoint_kvar=None) -> dict[str, Any]:
    """One AC power flow of ``net`` (from :func:`reference_network`) for the given injections.

    Parameters
    ----------
    net : pandapowerNet
        From :func:`reference_network`; its load and sgen tables are overwritten.
    load_p_kw, load_q_kvar, pv_kw : array_like, shape (loads,)
        Load P [kW] and Q [kvar] and PV P [kW] at each load bus, in ``net.load`` order.
    q_setpoint_kvar : array_like, shape (loads,), optional
        Reactive set-points of the PV inverters [kvar] (positive = injection); None: 0.

    Returns
    -------
    dict
        converged, bus_vm_pu [pu], line_loading_percent [%], line_pl_kw, trafo_pl_kw, losses_kw [kW],
        ext_grid_p_kw [kW], ext_grid_q_kvar [kvar] and per transformer (:data:`CIGRE_SUBNETS` order)
        lv_p_kw / lv_q_kvar (delivered to the LV side), lv_vm_pu [pu] and lv_i_a [A].
    """
    import pandapower as pp

    net.load["p_mw"] = np.asarray(load_p_kw, float) / 1000
    net.load["q_mvar"] = np.asarray(load_q_kvar, float) / 1000
    net.sgen["p_mw"] = np.asarray(pv_kw, float) / 1000
    net.sgen["q_mvar"] = 0.0 if q_setpoint_kvar is None else np.asarray(q_setpoint_kvar, float) / 1000
    pp.runpp(net, numba=False)
    line_pl = net.res_line["pl_mw"].to_numpy() * 1000
    trafo_pl = net.res_trafo["pl_mw"].to_numpy() * 1000
    lv_bus = net.trafo["lv_bus"].to_numpy()
    return {
        "converged": bool(net.converged),
        "bus_vm_pu": net.res_bus["vm_pu"].to_numpy().copy(),
        "line_loading_percent": net.res_line["loading_percent"].to_numpy().copy(),
        "line_pl_kw": line_pl,
        "trafo_pl_kw": trafo_pl,
        "losses_kw": float(line_pl.sum() + trafo_pl.sum()),
        "ext_grid_p_kw": float(net.res_ext_grid["p_mw"].sum() * 1000),
        "ext_grid_q_kvar": float(net.res_ext_grid["q_mvar"].sum() * 1000),
        "lv_p_kw": -net.res_trafo["p_lv_mw"].to_numpy() * 1000,
        "lv_q_kvar": -net.res_trafo["q_lv_mvar"].to_numpy() * 1000,
        "lv_vm_pu": net.res_bus["vm_pu"].to_numpy()[lv_bus],
        "lv_i_a": net.res_trafo["i_lv_ka"].to_numpy() * 1000,
    }


def run_time_series(net: pp.pandapowerNet, load_p_kw, load_q_kvar, pv_kw, q_setpoint_kvar=None) -> list[dict[str, Any]]:
    """:func:`solve` for every row of (steps, loads) arrays [kW], [kvar]; one result per step."""
    load_p_kw, load_q_kvar, pv_kw = (np.atleast_2d(x) for x in (load_p_kw, load_q_kvar, pv_kw))
    return [
        solve(net, load_p_kw[k], load_q_kvar[k], pv_kw[k], None if q_setpoint_kvar is None else np.atleast_2d(q_setpoint_kvar)[k])
        for k in range(load_p_kw.shape[0])
    ]


def load_profile(subnet: str, local_hour: np.ndarray) -> np.ndarray:
    """Daily shape (peak about 1) of a load of one sub-network.

    Parameters
    ----------
    subnet : {"R", "I", "C"}
        Residential (evening peak), industrial (two shifts) or commercial (office hours).
    local_hour : ndarray
        Local clock hour [h], 0 <= h < 24.

    Returns
    -------
    ndarray
        The shape [1], same shape as ``local_hour``.
    """
    g = lambda centre, width: np.exp(-(((local_hour - centre) / width) ** 2))  # noqa: E731
    if subnet == "R":
        return 0.35 + 0.3 * g(7.5, 1.5) + 0.65 * g(19, 2.2)
    if subnet == "C":
        return 0.25 + 0.75 * ((local_hour >= 8) & (local_hour < 18)) * (0.9 + 0.1 * g(13, 2))
    return 0.4 + 0.6 * ((local_hour >= 6) & (local_hour < 22))


def voltage_violation_pu(vmin_pu: float, vmax_pu: float, v_limits_pu: tuple[float, float]) -> float:
    """How far the extreme bus voltages lie outside ``v_limits_pu`` [pu] (0 inside the band).

    Parameters
    ----------
    vmin_pu, vmax_pu : float
        Lowest and highest bus voltage [pu].
    v_limits_pu : (float, float)
        Lower and upper limit [pu] (EN 50160: 0.90, 1.10).

    Returns
    -------
    float
        ``max(0, lo - vmin) + max(0, vmax - hi)`` [pu].
    """
    return max(0.0, v_limits_pu[0] - vmin_pu) + max(0.0, vmax_pu - v_limits_pu[1])


class CigreFeeder:
    """The CIGRE LV feeder as a function of (local hour, total load, total PV, var set-point), memoised.

    The network is built on first use (not pickled). Every :meth:`power_flow` result is kept in
    :attr:`cache`, keyed by the rounded state, so the optimiser's repeated evaluations and the
    judging of predicted set-points cost one AC power flow each. The cache is this object's own:
    make a new :class:`CigreFeeder` (or call :meth:`clear`) for a fresh one; :func:`shared_feeder`
    is the one instance the models share within a process.

    Attributes
    ----------
    cache : dict
        ``(hour, load_kw, pv_kw, q_kvar)`` rounded to 4, 6, 6, 3 decimals -> (losses [kW], min, max bus vm [pu]).
    hits, misses : int
        Cache hits and power flows run.
    """

    def __init__(self):
        self.cache: dict[tuple[float, float, float, float], tuple[float, float, float]] = {}
        self.hits = 0
        self.misses = 0
        self._net: dict[str, Any] | None = None

    def __getstate__(self):
        return {"cache": {}, "hits": 0, "misses": 0, "_net": None}

    def network(self) -> dict[str, Any]:
        """The network and its per-load arrays: ``net``, ``nominal_kw`` [kW], ``tan_phi`` [1], ``subnet``."""
        if self._net is None:
            net = reference_network()
            self._net = {
                "net": net,
                "nominal_kw": net.load["p_mw"].to_numpy() * 1000,
                "tan_phi": net.load["q_mvar"].to_numpy() / net.load["p_mw"].to_numpy(),
                "subnet": net.load["name"].str.removeprefix("Load ").str[0].to_numpy(),
            }
        return self._net

    def load_state(self, local_hour: float, load_kw: float, pv_kw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-load P [kW], Q [kvar] and PV [kW] for one step, from the feeder twin's truth totals.

        Loads follow the daily profiles of their sub-network scaled to ``load_kw`` (the twin's per-load
        noise is not recorded), PV is shared in proportion to nominal load (as the twin draws it),
        Q keeps each load's power factor.

        Parameters
        ----------
        local_hour : float
            Local clock hour [h].
        load_kw, pv_kw : float
            Total load and PV of the feeder [kW].

        Returns
        -------
        p_kw, q_kvar, pv_kw : ndarray, shape (15,)
        """
        n = self.network()
        shape = np.array([float(load_profile(s, np.array([local_hour]))[0]) for s in n["subnet"]]) * n["nominal_kw"]
        p = shape * (load_kw / shape.sum())
        pv = n["nominal_kw"] * (pv_kw / n["nominal_kw"].sum())
        return p, p * n["tan_phi"], pv

    def distribute_q(self, q_total_kvar: float) -> np.ndarray:
        """The feeder var set-point [kvar] shared among the PV inverters in proportion to nominal load [kvar]."""
        w = self.network()["nominal_kw"]
        return q_total_kvar * w / w.sum()

    def power_flow(self, local_hour: float, load_kw: float, pv_kw: float, q_kvar: float) -> tuple[float, float, float]:
        """(losses [kW], min bus vm [pu], max bus vm [pu]) of one AC power flow, memoised in :attr:`cache`.

        Parameters
        ----------
        local_hour : float
            Local clock hour [h].
        load_kw, pv_kw : float
            Total load and PV of the feeder [kW].
        q_kvar : float
            Total var set-point of the PV inverters [kvar], positive = injection.

        Returns
        -------
        losses_kw, vmin_pu, vmax_pu : float
            Line + transformer losses [kW]; extreme LV bus voltages [pu] (the 20 kV slack excluded).

        Raises
        ------
        RuntimeError
            The power flow did not converge.
        """
        key = (round(float(local_hour), 4), round(float(load_kw), 6), round(float(pv_kw), 6), round(float(q_kvar), 3))
        hit = self.cache.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        p, q, pv = self.load_state(local_hour, load_kw, pv_kw)
        r = solve(self.network()["net"], p, q, pv, q_setpoint_kvar=self.distribute_q(q_kvar))
        if not r["converged"]:
            raise RuntimeError(f"CIGRE feeder: power flow did not converge (hour {local_hour}, load {load_kw} kW, q {q_kvar} kvar)")
        vm = r["bus_vm_pu"][1:]  # bus 0 is the 20 kV slack
        self.misses += 1
        self.cache[key] = out = (float(r["losses_kw"]), float(vm.min()), float(vm.max()))
        return out

    def clear(self) -> None:
        """Forget every cached power flow."""
        self.cache.clear()
        self.hits = self.misses = 0


_SHARED = CigreFeeder()


def shared_feeder() -> CigreFeeder:
    """The process-wide :class:`CigreFeeder` the models share (one network, one cache)."""
    return _SHARED
