"""Voltage unbalance of a three-phase supply: the two definitions GridTwin uses.

``voltage_unbalance_factor_pct`` (VUF)
    IEC 61000-4-30 / EN 50160 / IEC 61000-2-12: negative- over positive-sequence voltage,
    ``VUF = |V2| / |V1| x 100 %``, from complex phasors (symmetrical components, Fortescue).
    EN 50160 limits the 10-min mean to 2 % in LV networks. Needs phase angles: used where the
    phasors are known (the phase-balancing feeder model).
``voltage_unbalance_rate_pct`` (LVUR)
    Magnitude-only "line voltage unbalance rate" (NEMA MG 1 / IEEE 112 style, on phase
    voltages): ``max |V_k - mean(V)| / mean(V) x 100 %``. The canonical record carries RMS
    magnitudes only, so the grid twin's ``unbalance`` events and the PQ index use this one.

For a balanced system both are 0; for small unbalance they agree in order of magnitude but
not in value (a pure phase-angle error shows in the VUF only).
"""

from __future__ import annotations

import numpy as np

#: Fortescue operator a = exp(j 2 pi / 3) (a 120° rotation)
ALPHA = np.exp(2j * np.pi / 3)


def symmetrical_components(v_a, v_b, v_c) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zero-, positive- and negative-sequence components of three phasors (Fortescue).

    Parameters
    ----------
    v_a, v_b, v_c : complex array_like
        Phase voltage phasors [V] (any common shape); b lags a by 120° in a positive-sequence system.

    Returns
    -------
    v0, v1, v2 : complex ndarray
        ``(Va + Vb + Vc) / 3``, ``(Va + a Vb + a² Vc) / 3``, ``(Va + a² Vb + a Vc) / 3`` [V].
    """
    v_a, v_b, v_c = (np.asarray(x) for x in (v_a, v_b, v_c))
    v0 = (v_a + v_b + v_c) / 3
    v1 = (v_a + ALPHA * v_b + ALPHA ** 2 * v_c) / 3
    v2 = (v_a + ALPHA ** 2 * v_b + ALPHA * v_c) / 3
    return v0, v1, v2


def voltage_unbalance_factor_pct(v_a, v_b, v_c) -> np.ndarray:
    """Voltage unbalance factor ``|V2| / |V1| x 100`` [%] (IEC 61000-4-30, EN 50160).

    Parameters
    ----------
    v_a, v_b, v_c : complex array_like
        Phase voltage phasors [V].

    Returns
    -------
    ndarray
        VUF [%], 0 for a balanced positive-sequence set.
    """
    _, v1, v2 = symmetrical_components(v_a, v_b, v_c)
    return 100.0 * np.abs(v2) / np.abs(v1)


def voltage_unbalance_rate_pct(v_phases) -> np.ndarray:
    """Magnitude-only unbalance ``max_k |V_k - mean V| / mean V x 100`` [%] (LVUR).

    Parameters
    ----------
    v_phases : array_like, shape (3, ...)
        RMS phase voltages [V], phases along the first axis.

    Returns
    -------
    ndarray, shape (...)
        LVUR [%]; 0 where every phase is 0 V (the mean is floored at 1e-9 V).
    """
    v = np.asarray(v_phases, float)
    mean_v = v.mean(axis=0)
    lvur = np.maximum(v.max(axis=0) - mean_v, mean_v - v.min(axis=0))
    return lvur / np.maximum(mean_v, 1e-9) * 100.0
