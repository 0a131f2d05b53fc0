"""m13 reactive power compensation: a fast learned stand-in for a loss-minimising optimiser.

``ReactivePowerCompensation`` (m13)
    Keras MLP mapping what the feeder head measures (P, Q, V, I at the three transformer
    terminals of the CIGRE LV feeder, before compensation) to the loss-minimising reactive
    set-point ``q_setpoint_kvar`` [kvar, positive = injection] of the feeder's PV inverters, and
    the loss reduction it buys [kW] (a second output). The set-point is shared by the 15 PV
    inverters in proportion to each load's nominal kW (:func:`distribute_q`) and applied through
    the ``q_setpoint_kvar`` hook of :func:`gridtwin_lib.physics.powerflow.solve`.
    The optimiser it imitates (:func:`optimise_q`): a bounded 1-D search over the set-point in
    ``q_bounds_kvar`` with AC power flows: three grid points, a quadratic model of the losses
    and linear models of the extreme bus voltages (EN 50160 limits 0.90-1.10 pu), the vertex
    clipped to the voltage-feasible interval (or, where none is, the set-point that violates the limits
    least), then up to two local re-fits; the best evaluated point by losses + a penalty on voltage
    violations wins. Baseline: the textbook power-factor correction at the feeder head,
    ``Q = P (tan φ1 - tan φ_target)`` with ``cos φ_target = 0.95``; ladder: a linear surrogate and
    one fixed set-point.
    Where limits bind: the feeder run has stressed days (PV export at noon lifting the residential
    buses to 1.10 pu, a heavy evening pulling the far buses to 0.90 pu), on which the optimum is
    absorption against the voltage rise or a set-point bound (:func:`limits_bind`); on normal
    states it is the smooth bottom of the loss curve, nearly linear in the readings.
    Judged by re-running the power flow at each predicted set-point (memoised): regret [kW] of the
    optimiser's objective (losses + penalty x violation) against the optimiser's set-point, on all
    rows and on the rows where a limit binds or not; voltage violations; speed-up.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd

from ...errors import InputError
from ...physics.powerflow import CIGRE_SUBNETS, shared_feeder, voltage_violation_pu
from .. import _keras
from ..base import AdviceEffects, Baseline, Dataset, GridModel, ModelSpec, input_matrix
from ..energy.energy_loss import HEAD_FEATURES, feeder_head_rows, serve_feeder_head
from ..serving import ServingAdapter

# --------------------------------------------------------------------------- m13 reactive power compensation

SUBNETS = tuple(sorted(CIGRE_SUBNETS))  # ("C", "I", "R"): the column order of feeder_head_frame
#: feeder_head_frame() columns the m13 models read (A, W, var, V per transformer)
M13_COLUMNS = pd.Index([f"{s}_{f}" for f in sorted(HEAD_FEATURES) for s in SUBNETS]).sort_values()
Q_BOUNDS_KVAR = (-100.0, 500.0)
#: EN 50160: supply voltage within +-10 % of nominal
V_LIMITS_PU = (0.90, 1.10)
PF_TARGET = 0.95
#: the optimiser's price of a voltage violation [kW per pu]; regret is judged on the same objective
VIOLATION_PENALTY_KW_PER_PU = 1000.0
#: an optimum this close to a voltage limit [pu] or a set-point bound [kvar] sits on it (the limit binds)
BINDING_TOL_PU, BINDING_TOL_KVAR = 0.0025, 0.5


def feeder_state(local_hour: float, load_kw: float, pv_kw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-load P [kW], Q [kvar] and PV [kW] of the feeder twin for one step (:meth:`~gridtwin_lib.physics.powerflow.CigreFeeder.load_state`)."""
    return shared_feeder().load_state(local_hour, load_kw, pv_kw)


def distribute_q(q_total_kvar: float) -> np.ndarray:
    """The feeder set-point [kvar] shared among the PV inverters in proportion to nominal load."""
    return shared_feeder().distribute_q(q_total_kvar)


def power_flow(local_hour: float, load_kw: float, pv_kw: float, q_kvar: float) -> tuple[float, float, float]:
    """(losses_kw, min bus vm_pu, max bus vm_pu) of one AC power flow, memoised (:meth:`~gridtwin_lib.physics.powerflow.CigreFeeder.power_flow`)."""
    return shared_feeder().power_flow(local_hour, load_kw, pv_kw, q_kvar)


def optimise_q(local_hour: float, load_kw: float, pv_kw: float, q_bounds=Q_BOUNDS_KVAR, v_limits=V_LIMITS_PU,
               penalty_kw_per_pu: float = VIOLATION_PENALTY_KW_PER_PU) -> dict[str, float]:
    """The optimiser: loss-minimising feeder var set-point [kvar] within ``q_bounds`` under voltage limits.

    Evaluates 0 kvar, mid-range and the upper bound, fits losses(q) by a parabola and the extreme
    bus voltages by lines, evaluates the vertex clipped to the feasible interval, and twice more
    re-fits on the three points nearest the latest vertex (stopping when it moves < 2 kvar). When no set-point
    meets both limits (PV export lifting the far buses over 1.10 pu even at full absorption, or an evening
    load pulling them under 0.90 pu even at full injection), the vertex is the set-point whose fitted
    voltages violate them least (a bound, or a limit's edge). Objective of the pick:
    losses + ``penalty_kw_per_pu`` x voltage violation [pu]. Returns q_opt_kvar, losses_opt_kw,
    losses_noq_kw (at 0 kvar), vmin/vmax at the optimum, violation_pu, n_power_flows, solve_s.
    """
    t0 = time.perf_counter()
    lo, hi = float(q_bounds[0]), float(q_bounds[1])
    pts = {q: power_flow(local_hour, load_kw, pv_kw, q) for q in sorted({0.0, max(lo, 0.0) + (hi - max(lo, 0.0)) / 2, hi})}

    def vertex(centre):
        qs = np.array(sorted(pts, key=lambda x: abs(x - centre))[:3])  # the three points nearest the estimate
        L = np.array([pts[q][0] for q in qs])
        c2, c1, _ = np.polyfit(qs, L, 2)
        q = -c1 / (2 * c2) if c2 > 1e-12 else (hi if c1 < 0 else lo)
        a, b = lo, hi
        lines, edges = {}, [lo, hi]
        for col, lim, sign in ((1, v_limits[0], 1), (2, v_limits[1], -1)):
            s, i = lines[col] = np.polyfit(qs, [pts[x][col] for x in qs], 1)
            if abs(s) > 1e-12:  # sign * (i + s q - lim) >= 0
                edge = (lim - i) / s
                edges.append(float(np.clip(edge, lo, hi)))
                if sign * s > 0:
                    a = max(a, edge)
                else:
                    b = min(b, edge)
        if a > b:  # infeasible everywhere: the least violation of the fitted (convex, piecewise linear) voltages
            a = b = min(edges, key=lambda x: voltage_violation_pu(np.polyval(lines[1], x), np.polyval(lines[2], x), v_limits))
        return float(np.clip(q, a, b))

    centre = min(pts, key=lambda x: pts[x][0])
    for _ in range(2):
        q = round(vertex(centre), 3)
        if min(abs(q - x) for x in pts) <= 2.0:
            break
        pts[q] = power_flow(local_hour, load_kw, pv_kw, q)
        centre = q
    obj = {q: v[0] + penalty_kw_per_pu * voltage_violation_pu(v[1], v[2], v_limits) for q, v in pts.items()}
    best = min(obj, key=obj.get)
    L, vmin, vmax = pts[best]
    return {"q_opt_kvar": best, "losses_opt_kw": L, "losses_noq_kw": pts[0.0][0], "vmin_opt_pu": vmin, "vmax_opt_pu": vmax,
            "violation_opt_pu": voltage_violation_pu(vmin, vmax, v_limits), "n_power_flows": float(len(pts)),
            "solve_s": time.perf_counter() - t0}


def limits_bind(q_opt_kvar, vmin_pu, vmax_pu, q_bounds=Q_BOUNDS_KVAR, v_limits=V_LIMITS_PU) -> np.ndarray:
    """Rows whose optimum sits on a limit: the set-point at a bound, or a bus voltage at or beyond a limit.

    Parameters
    ----------
    q_opt_kvar : array_like
        The optimiser's set-points [kvar].
    vmin_pu, vmax_pu : array_like
        Lowest and highest bus voltage at those set-points [pu].
    q_bounds : (float, float)
        Set-point bounds [kvar].
    v_limits : (float, float)
        Voltage limits [pu].

    Returns
    -------
    ndarray of bool
        True where ``q_opt_kvar`` is within :data:`BINDING_TOL_KVAR` of a bound or an extreme
        voltage within :data:`BINDING_TOL_PU` of a limit (or past it): rows where the optimum is
        not simply the bottom of the loss curve, which a smooth fit of the readings misses.
    """
    q, lo, hi = np.asarray(q_opt_kvar, float), np.asarray(vmin_pu, float), np.asarray(vmax_pu, float)
    at_bound = (q <= q_bounds[0] + BINDING_TOL_KVAR) | (q >= q_bounds[1] - BINDING_TOL_KVAR)
    at_limit = (lo <= v_limits[0] + BINDING_TOL_PU) | (hi >= v_limits[1] - BINDING_TOL_PU)
    return at_bound | at_limit


def _head_pq(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Feeder-head P [kW] and Q [kvar] (sums over transformers) from an M13_COLUMNS matrix."""
    cols = list(M13_COLUMNS)
    p = sum(A[:, cols.index(f"{s}_p_total_w")] for s in SUBNETS) / 1000
    q = sum(A[:, cols.index(f"{s}_q_total_var")] for s in SUBNETS) / 1000
    return p, q


def _m13_X(X, who: str) -> np.ndarray:
    return input_matrix(X, M13_COLUMNS, who, f"feeder_head_frame() columns {list(M13_COLUMNS)}")


def _m13_y(y) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(y, pd.DataFrame) or not {"q_opt_kvar", "loss_reduction_kw"} <= set(y.columns):
        raise InputError("m13: y must be a DataFrame with q_opt_kvar and loss_reduction_kw (datasets.decision.reactive_power_compensation)")
    return y["q_opt_kvar"].to_numpy(float), y["loss_reduction_kw"].to_numpy(float)


def _m13_frame(q, red, index, secs) -> pd.DataFrame:
    return pd.DataFrame({"q_setpoint_kvar": q, "expected_loss_reduction_kw": red, "compute_time_s": np.full(len(q), secs)}, index=index)


class ReactivePowerCompensation(GridModel):
    """Surrogate of the loss-minimising var set-point of the feeder (Keras MLP, two outputs).

    Input: :func:`gridtwin_lib.models.energy.feeder_head_frame` columns (``<C|I|R>_i_mean_a`` [A],
    ``_p_total_w`` [W], ``_q_total_var`` [var], ``_v_mean_v`` [V]), measured without compensation.
    Output: ``q_setpoint_kvar`` [kvar, positive = injection by the PV inverters, clipped to
    ``q_bounds_kvar``], ``expected_loss_reduction_kw`` [kW vs no compensation] and
    ``compute_time_s`` [s per row]. Inputs and targets are standardised; early stopping on the
    last ``validation_fraction`` of the training rows (chronological).

    Parameters
    ----------
    hidden : tuple of int
        Widths of the hidden layers.
    epochs, learning_rate : int, float
        Adam training with early stopping on the validation slice.
    validation_fraction : float
        Last share of the training states held out.
    q_bounds_kvar : tuple of float
        Set-point range [kvar] the output is clipped to.
    random_state : int
        Seed of Keras.

    Attributes
    ----------
    weights_ : list of ndarray
        The network's weights (run with NumPy at predict time).
    x_mean_, x_std_, y_mean_, y_std_ : ndarray
        Input and output standardisation (kW, kvar, V).
    n_epochs_ : int
        Epochs actually trained.
    """

    spec = ModelSpec(
        model_id="m13_reactive_power_compensation",
        module="decision",
        algorithm="Keras MLP (2 outputs) surrogate of a power-flow 1-D var optimisation",
        baseline="textbook correction at the feeder head Q = P (tan φ1 - tan φ_target), cos φ_target = 0.95",
        target="loss-minimising PV-inverter var set-point under voltage limits [kvar] from optimise_q() on the feeder twin's states",
        primary_metric="regret_kw",
        greater_is_better=False,
        output_units={"q_setpoint_kvar": "kvar", "expected_loss_reduction_kw": "kW", "compute_time_s": "s"},
        secondary_metrics=("voltage_violations", "regret_binding_kw", "regret_free_kw", "loss_regret_kw", "loss_reduction_kw",
                           "reduction_mae_kw", "setpoint_mae_kvar", "speed_up"),
    )

    def __init__(self, hidden: tuple[int, ...] = (32, 32), epochs: int = 150, learning_rate: float = 1e-2,
                 validation_fraction: float = 0.2, q_bounds_kvar: tuple[float, float] = Q_BOUNDS_KVAR, random_state: int = 0):
        self.hidden = hidden
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.q_bounds_kvar = q_bounds_kvar
        self.random_state = random_state

    def fit(self, X, y=None):
        if y is None:
            raise InputError("m13: y (the optimiser's set-points) is required to fit")
        A = _m13_X(X, "m13 fit")
        Y = np.column_stack(_m13_y(y))
        keras = _keras.import_keras()
        keras.utils.set_random_seed(int(self.random_state))
        self.x_mean_, self.x_std_ = A.mean(0), A.std(0) + 1e-9
        self.y_mean_, self.y_std_ = Y.mean(0), Y.std(0) + 1e-9
        Xs, Ys = (A - self.x_mean_) / self.x_std_, (Y - self.y_mean_) / self.y_std_
        net = keras.Sequential([keras.Input((A.shape[1],)), *[keras.layers.Dense(h, activation="relu") for h in self.hidden],
                                keras.layers.Dense(2)])
        net.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="mse")
        n_val = int(len(A) * self.validation_fraction) if len(A) >= 20 else 0
        cut = len(A) - n_val
        cb = [keras.callbacks.EarlyStopping(patience=30, restore_best_weights=True)] if n_val else []
        hist = net.fit(Xs[:cut], Ys[:cut], validation_data=(Xs[cut:], Ys[cut:]) if n_val else None, epochs=int(self.epochs),
                       batch_size=64, verbose=0, shuffle=True, callbacks=cb)
        self.n_epochs_ = len(hist.history["loss"])
        self.weights_ = [w.copy() for w in net.get_weights()]  # inference in NumPy: fast and picklable
        return self

    def _forward(self, Xs: np.ndarray) -> np.ndarray:
        h = Xs
        W = self.weights_
        for k in range(0, len(W) - 2, 2):
            h = np.maximum(h @ W[k] + W[k + 1], 0.0)
        return h @ W[-2] + W[-1]

    def predict(self, X):
        t0 = time.perf_counter()
        A = _m13_X(X, "m13 predict")
        out = self._forward((A - self.x_mean_) / self.x_std_) * self.y_std_ + self.y_mean_
        q = np.clip(out[:, 0], *self.q_bounds_kvar)
        red = out[:, 1]
        return _m13_frame(q, red, getattr(X, "index", None), (time.perf_counter() - t0) / len(A))

    def baseline(self):
        return PowerFactorCorrection(q_bounds_kvar=self.q_bounds_kvar)

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        """Re-run the power flow at every predicted set-point (same states, memoised).

        ``regret_kw`` is judged on the optimiser's objective: losses + :data:`VIOLATION_PENALTY_KW_PER_PU`
        x voltage violation [pu], minus the optimiser's; where neither violates a limit it is the loss
        regret (``loss_regret_kw``), and a set-point that buys lower losses by crossing a limit is not
        rewarded. With ``meta["binding"]`` (the dataset's :func:`limits_bind`), the regret is also
        given on the rows where a limit binds and on the others (NaN where there are none).
        """
        if meta is None or not {"local_hour", "load_kw", "pv_kw"} <= set(meta.columns):
            raise InputError("m13 score: meta must carry local_hour, load_kw, pv_kw per row (the operating state)")
        q_opt, _ = _m13_y(y_true)
        q = np.asarray(y_pred["q_setpoint_kvar"], float)
        vl = (float(meta["v_min_pu"].iloc[0]), float(meta["v_max_pu"].iloc[0])) if "v_min_pu" in meta else V_LIMITS_PU
        res = np.array([power_flow(h, lk, pk, qq) for h, lk, pk, qq in
                        zip(meta["local_hour"].to_numpy(float), meta["load_kw"].to_numpy(float), meta["pv_kw"].to_numpy(float), q)])
        losses, vmin, vmax = res[:, 0], res[:, 1], res[:, 2]
        achieved = y_true["losses_noq_kw"].to_numpy(float) - losses
        viol = np.array([voltage_violation_pu(a, b, vl) for a, b in zip(vmin, vmax)])
        opt_viol = y_true["violation_opt_pu"].to_numpy(float) if "violation_opt_pu" in y_true else np.zeros(len(q))
        t_pred = float(np.mean(y_pred["compute_time_s"])) if "compute_time_s" in y_pred else float("nan")
        t_opt = float(meta["solve_s"].mean()) if "solve_s" in meta else float("nan")
        loss_regret = losses - y_true["losses_opt_kw"].to_numpy(float)
        regret = loss_regret + VIOLATION_PENALTY_KW_PER_PU * (viol - opt_viol)
        binding = meta["binding"].to_numpy(bool) if "binding" in meta else np.zeros(len(q), bool)
        return {
            "regret_kw": float(np.mean(regret)),
            "regret_max_kw": float(np.max(regret)),
            "loss_regret_kw": float(np.mean(loss_regret)),
            "regret_binding_kw": float(np.mean(regret[binding])) if binding.any() else float("nan"),
            "regret_free_kw": float(np.mean(regret[~binding])) if (~binding).any() else float("nan"),
            "binding_rows": float(binding.sum()),
            "voltage_violations": float((viol > 1e-9).sum()),
            "voltage_violations_optimiser": float((opt_viol > 1e-9).sum()),
            "loss_reduction_kw": float(achieved.mean()),
            "optimal_loss_reduction_kw": float(y_true["loss_reduction_kw"].mean()),
            "reduction_mae_kw": float(np.mean(np.abs(np.asarray(y_pred["expected_loss_reduction_kw"], float) - achieved))),
            "setpoint_mae_kvar": float(np.mean(np.abs(q - q_opt))),
            "speed_up": t_opt / t_pred if t_pred > 0 else float("nan"),
        }

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        import plotly.graph_objects as go

        q_opt = dataset.y_test["q_opt_kvar"].to_numpy(float)
        sc = go.Figure()
        for name, pred in predictions.items():
            sc.add_trace(go.Scatter(x=q_opt, y=np.asarray(pred["q_setpoint_kvar"], float), mode="markers", name=name, marker={"size": 5}))
        lim = [float(min(q_opt.min(), 0)), float(q_opt.max()) * 1.05]
        sc.add_trace(go.Scatter(x=lim, y=lim, mode="lines", name="y = x", line={"dash": "dot", "color": "grey"}))
        sc.update_layout(title="m13: set-point vs the optimiser (test states)", xaxis_title="optimiser [kvar]", yaxis_title="predicted [kvar]")
        ts = dataset.meta_test["ts"] if "ts" in dataset.meta_test else np.arange(len(q_opt))
        series = go.Figure([go.Scatter(x=ts, y=q_opt, name="optimiser", line={"color": "black"})])
        for name, pred in predictions.items():
            series.add_trace(go.Scatter(x=ts, y=np.asarray(pred["q_setpoint_kvar"], float), name=name))
        series.update_layout(title="m13: var set-point over the test period", yaxis_title="q set-point [kvar]")
        return {"setpoint_scatter": sc, "setpoint_timeseries": series}


class PowerFactorCorrection(Baseline):
    """Baseline of m13: ``Q_c = P (tan φ1 - tan φ_target)`` at the feeder head, clipped to the bounds.

    P, Q = sums over the three transformers' measured P [kW], Q [kvar]; tan φ1 = Q/P; φ_target
    from ``pf_target`` (0.95, the usual tariff threshold). No compensation when P <= 0 (reverse
    flow). Its expected reduction is the textbook loss formula ``k (Q² - (Q - Q_c)²)`` with
    ``k`` [kW/kvar²] fitted by least squares on the training labels.
    """

    name = "textbook power-factor correction to cos phi 0.95"

    @classmethod
    def for_model(cls, model):
        return cls(q_bounds_kvar=model.q_bounds_kvar)

    def __init__(self, pf_target: float = PF_TARGET, q_bounds_kvar: tuple[float, float] = Q_BOUNDS_KVAR):
        self.pf_target = pf_target
        self.q_bounds_kvar = q_bounds_kvar

    def _q(self, A):
        p, q = _head_pq(A)
        tan_t = math.tan(math.acos(self.pf_target))
        qc = np.where(p > 0, p * (q / np.where(p > 0, p, 1.0) - tan_t), 0.0)
        return np.clip(np.clip(qc, 0, None), *self.q_bounds_kvar), q

    def fit(self, X, y=None):
        A = _m13_X(X, "m13 baseline fit")
        _, q = _head_pq(A)
        q_opt, red = _m13_y(y)
        g = q**2 - (q - q_opt) ** 2
        self.k_ = float((g @ red) / max(g @ g, 1e-12))
        return self

    def predict(self, X):
        t0 = time.perf_counter()
        A = _m13_X(X, "m13 baseline predict")
        qc, q = self._q(A)
        return _m13_frame(qc, self.k_ * (q**2 - (q - qc) ** 2), getattr(X, "index", None), (time.perf_counter() - t0) / len(A))


class LinearSurrogate(Baseline):
    """Ladder baseline of m13: ordinary least squares on the model's 12 inputs (scikit-learn
    ``LinearRegression``), one equation for the set-point [kvar] (clipped to the bounds) and one
    for the loss reduction [kW]: the linear surrogate of the optimiser, fitted on training rows."""

    name = "linear surrogate on the same inputs"

    def __init__(self, q_bounds_kvar: tuple[float, float] = Q_BOUNDS_KVAR):
        self.q_bounds_kvar = q_bounds_kvar

    @classmethod
    def for_model(cls, model):
        return cls(q_bounds_kvar=model.q_bounds_kvar)

    def fit(self, X, y=None):
        from sklearn.linear_model import LinearRegression

        if y is None:
            raise InputError("m13 linear surrogate: y (the optimiser's set-points) is required to fit")
        A = _m13_X(X, "m13 linear surrogate fit")
        self.lr_ = LinearRegression().fit(A, np.column_stack(_m13_y(y)))
        return self

    def predict(self, X):
        t0 = time.perf_counter()
        A = _m13_X(X, "m13 linear surrogate predict")
        out = self.lr_.predict(A)
        return _m13_frame(np.clip(out[:, 0], *self.q_bounds_kvar), out[:, 1], getattr(X, "index", None),
                          (time.perf_counter() - t0) / len(A))


class MedianSetpoint(Baseline):
    """Ladder baseline of m13: one fixed set-point for every state, the median of the optimiser's
    set-points over the training states [kvar], with their median loss reduction [kW]: what an
    operator configures once when the inverters take a constant var command."""

    name = "fixed set-point (training median of the optimiser)"

    def fit(self, X, y=None):
        if y is None:
            raise InputError("m13 fixed set-point: y (the optimiser's set-points) is required to fit")
        _m13_X(X, "m13 fixed set-point fit")
        q, red = _m13_y(y)
        self.q_kvar_, self.reduction_kw_ = float(np.median(q)), float(np.median(red))
        return self

    def predict(self, X):
        A = _m13_X(X, "m13 fixed set-point predict")
        return _m13_frame(np.full(len(A), self.q_kvar_), np.full(len(A), self.reduction_kw_), getattr(X, "index", None), 0.0)


# --------------------------------------------------------------------------- serving

#: how the inference engine serves m13: the feeder head's meters at the same instant (as the loss model)
SERVING = ServingAdapter(score=serve_feeder_head, outputs=("q_setpoint_kvar", "expected_loss_reduction_kw"),
                         dropped_outputs=("compute_time_s",), applies=feeder_head_rows)


# --------------------------------------------------------------------------- advice


def advice_effects(model, baseline, dataset: Dataset) -> AdviceEffects:
    """Per held-out day: feeder losses [kWh] with no var support, the PF-0.95 rule, the model's
    advice and the optimiser (AC power flow at each hourly state with the set-point applied);
    hours with a bus outside the voltage limits under each, and the optimiser's objective (losses
    + the violation penalty) [kWh]: where a limit binds, the optimiser gives up losses to keep it."""
    meta, y = dataset.meta_test.reset_index(drop=True), dataset.y_test.reset_index(drop=True)
    advice = np.asarray(model.predict(dataset.X_test)["q_setpoint_kvar"], float)
    rule = np.asarray(baseline.predict(dataset.X_test)["q_setpoint_kvar"], float)
    limits = (float(meta["v_min_pu"].iloc[0]), float(meta["v_max_pu"].iloc[0])) if "v_min_pu" in meta else V_LIMITS_PU
    step_h = _step_hours(meta["ts"])
    rows = []
    for k in range(len(meta)):
        state = (float(meta.at[k, "local_hour"]), float(meta.at[k, "load_kw"]), float(meta.at[k, "pv_kw"]))
        row = {"day": pd.Timestamp(meta.at[k, "ts"]).date()}
        for name, q in (("no_action", 0.0), ("rule", rule[k]), ("advice", advice[k]), ("optimiser", float(y.at[k, "q_opt_kvar"]))):
            losses, vmin, vmax = power_flow(*state, q)
            violation = voltage_violation_pu(vmin, vmax, limits)
            row[f"losses_{name}_kwh"] = losses * step_h
            row[f"violation_h_{name}"] = float(violation > 1e-9) * step_h
            row[f"objective_{name}_kwh"] = (losses + VIOLATION_PENALTY_KW_PER_PU * violation) * step_h
        rows.append(row)
    frame = pd.DataFrame(rows).groupby("day", as_index=False).sum()
    return AdviceEffects(frame, "var set-point", "feeder losses [kWh per day]", "losses_{}_kwh",
                         ("no_action", "rule", "advice", "optimiser"))


def _step_hours(ts: pd.Series) -> float:
    t = pd.to_datetime(ts).sort_values().drop_duplicates()
    return float(t.diff().median() / pd.Timedelta(hours=1)) if len(t) > 1 else 1.0


