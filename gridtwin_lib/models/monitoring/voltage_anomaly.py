"""m01 voltage anomaly: IsolationForest on load-independent deviations of one feature row.
Both models read the feature frame of :func:`gridtwin_lib.features.compute` (kind
``three_phase``; windows ``1m`` and ``15m``), so an inference engine can serve them
with the one feature implementation. Derived inputs below (ratios, differences) are
pure functions of one feature row, never of later rows.

How m01 is judged, and why
--------------------------
The grid twin logs two kinds of events (``gridtwin_lib/simulate/grid.py``):
*drivers* it injects (``motor_start``, ``fault``, ``gen_trip``, ``frequency_drift``,
``pv_drop``, ``load_step``) and *disturbances* it detects on the measured values
(``sag`` = some phase below 0.9 pu, ``swell`` above 1.1 pu, ``undervoltage``,
``interruption``, ``unbalance``, ``overcurrent``, ``overload``,
``frequency_excursion``, ``harmonics``). ``sag``/``swell``/``undervoltage``/
``interruption`` *are* the EN 50160 baseline rule (|dV| > 10 %) applied to the
measurements, so the baseline finds them by construction. m01 is therefore scored on
*target* events (roles set by ``gridtwin_lib.datasets.monitoring.voltage_anomaly``):

* every driver starting in the test range, except one drawn while a rule-defined
  interval is already open (a motor start during an outage cannot be told apart).

The other disturbances (:data:`OTHER_DISTURBANCE_TYPES`: unbalance, overcurrent,
frequency excursion, harmonics) are threshold crossings of m01's own input channels: a
limit rule on those channels (:class:`EN50160MultiChannelRule`) finds them by
construction, so by default they are not targets (the builder's ``target_types``; with
them included, one that overlaps a rule-defined interval is role ``cooccurring``, left
out, its recall reported apart).

Baseline ladder (all judged by :func:`event_scores` on the same rows): the catalogue's
:class:`EN50160VoltageRule`, :class:`EN50160MultiChannelRule`, :class:`CurrentStepRule`,
their union :class:`MultiChannelAndCurrentStepRule`, and :class:`RobustZScore`.

Rule-defined readings are neither hits nor false alarms; recall on them is reported
(``recall_rule_defined``: 1 for the baseline by construction). The twin does not log
its harmonic-resonance, locked-rotor and upstream-sag drivers as events, so those are
known only through their detected disturbances (a weakness of the truth, not of m01).

Event-level scores (same function for model and baseline):

* recall: share of target events with at least one flagged reading in
  ``[start, end + tolerance_s)``;
* precision: share of flagged readings that lie near a target event's onset
  (``y_true`` = 1: ``[start, min(end, start + onset_s) + tolerance_s)``) among flagged
  readings that lie near an onset or outside every event window (``y_true`` = 0); flags
  inside rule-defined windows or later in a long event (``y_true`` = -1) are left out. It
  is point precision, so flagging everything cannot score well (the "composite F1" of
  Garg et al., 2021); with no counted flag at all it is taken as 1 (no false alarm);
* ``event_f1`` = 2 P R / (P + R); ``event_pr_auc``: area under (recall, precision)
  while the score threshold sweeps from the highest score down to flagging everything;
* ``median_delay_s``: first flagged reading minus event start, over detected events.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from ...config import NOMINAL_VOLTAGE_V
from .._trees import FlatTrees
from ..base import Baseline, Dataset, GridModel, ModelSpec, feature_array, feature_frame
from ..serving import ServingAdapter, columns_scorer

V_NOMINAL_V = NOMINAL_VOLTAGE_V  # [V] the feature catalogue's default site nominal (EN 50160 reference)

# --------------------------------------------------------------------------- m01

#: event types the twin injects (causal drivers)
DRIVER_EVENT_TYPES: tuple[str, ...] = ("motor_start", "fault", "gen_trip", "frequency_drift", "pv_drop", "load_step")
#: detected disturbances whose definition is NOT the |dV| > 10 % rule
OTHER_DISTURBANCE_TYPES: tuple[str, ...] = ("unbalance", "overcurrent", "overload", "frequency_excursion", "harmonics")
#: what m01 (and its baseline) is scored on
TARGET_EVENT_TYPES: tuple[str, ...] = DRIVER_EVENT_TYPES + OTHER_DISTURBANCE_TYPES
#: detected by the baseline rule itself: excluded from precision, reported apart
RULE_DEFINED_EVENT_TYPES: tuple[str, ...] = ("sag", "swell", "undervoltage", "interruption")

#: feature-catalogue columns m01 reads (``features.compute(..., windows=("1m", "15m"))``)
M01_INPUT_COLUMNS: tuple[str, ...] = (
    "v_a", "v_b", "v_c", "v_max_abs_dev_pct", "v_unbalance_pct", "v_std_1m",
    "i_max_a", "i_mean_15m", "i_std_1m", "p_total_std_1m", "p_total_slope_15m",
    "freq_dev_hz", "freq_mean_1m", "freq_std_1m", "rocof_1m", "thd_v_pct",
)


#: columns of the m01 design matrix, in order
M01_DESIGN_COLUMNS: tuple[str, ...] = (
    "v_min_dev_pct", "v_max_dev_pct", "v_std_1m_pct", "v_unbalance_pct", "i_jump_rel", "i_std_1m_rel", "p_std_1m_rel",
    "p_change_15m_rel", "freq_dev_hz", "freq_mean_1m_dev_hz", "freq_std_1m_hz", "rocof_1m_hz_s", "thd_v_pct",
)
_M01_COL = {name: k for k, name in enumerate(M01_INPUT_COLUMNS)}


def _m01_design_array(A: np.ndarray) -> np.ndarray:
    """Load-independent deviations, all from one feature row.

    ``A``: float array (n, 16), the columns :data:`M01_INPUT_COLUMNS` in order; returns
    (n, 13), the columns :data:`M01_DESIGN_COLUMNS`. Units: % of nominal voltage, 1 (ratios
    to the trailing 15-min current / apparent power), Hz, Hz/s, %. Voltages are compared
    with nominal, not with a trailing mean, whose window would still hold an
    interruption's zeros after the supply returns. Element-wise NumPy only (no pandas):
    a one-reading call costs microseconds, and every row is computed on its own.
    """
    T = A.T  # rows of T are the input columns (contiguous when A came from a DataFrame block)
    c = lambda name: T[_M01_COL[name]]  # noqa: E731
    i15 = np.maximum(c("i_mean_15m"), 1.0)
    s15 = np.maximum(3.0 * V_NOMINAL_V * c("i_mean_15m"), 1e3)  # apparent-power proxy [VA]
    v_min = np.minimum(np.minimum(c("v_a"), c("v_b")), c("v_c"))
    v_max = np.maximum(np.maximum(c("v_a"), c("v_b")), c("v_c"))
    # column-major, as the frame of the former pandas design was: IsolationForest takes each
    # tree's feature subset as a column copy, much faster from contiguous columns
    Z = np.empty((A.shape[0], len(M01_DESIGN_COLUMNS)), order="F")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        Z[:, 0] = 100.0 * (v_min - V_NOMINAL_V) / V_NOMINAL_V
        Z[:, 1] = 100.0 * (v_max - V_NOMINAL_V) / V_NOMINAL_V
        Z[:, 2] = 100.0 * c("v_std_1m") / V_NOMINAL_V
        Z[:, 3] = c("v_unbalance_pct")
        Z[:, 4] = (c("i_max_a") - c("i_mean_15m")) / i15
        Z[:, 5] = c("i_std_1m") / i15
        Z[:, 6] = c("p_total_std_1m") / s15
        Z[:, 7] = c("p_total_slope_15m") * 900.0 / s15
        Z[:, 8] = c("freq_dev_hz")
        Z[:, 9] = c("freq_mean_1m") - 50.0
        Z[:, 10] = c("freq_std_1m")
        Z[:, 11] = c("rocof_1m")
        Z[:, 12] = c("thd_v_pct")
    return Z


def _m01_design(X: pd.DataFrame) -> pd.DataFrame:
    """:func:`_m01_design_array` of a feature frame, as a frame (columns :data:`M01_DESIGN_COLUMNS`)."""
    A, index = feature_array(X, M01_INPUT_COLUMNS)
    return pd.DataFrame(_m01_design_array(A), columns=list(M01_DESIGN_COLUMNS), index=index)


#: up to this many rows, m01 scores with :func:`_flat_score` (all trees at once, NumPy);
#: above, with ``IsolationForest.score_samples`` (one compiled pass per tree), whose fixed
#: cost per call (~10 ms for 200 trees) no longer matters there.
_M01_FLAT_MAX_ROWS = 256


def _flatten_forest(forest: IsolationForest, n_features: int) -> dict[str, Any] | None:
    """All trees of a fitted IsolationForest as flat node arrays, for :func:`_flat_score`.

    Per node: the input column it splits on (mapped through the tree's feature subset),
    its threshold, its two children (a leaf points to itself, so a fixed number of steps
    reaches every leaf), and the path-length term ``depth + c(n_leaf_samples) - 1``
    that ``IsolationForest`` adds per tree. Returns None (fall back to scikit-learn) when
    the forest does not expose what is needed or the result does not reproduce
    ``score_samples`` exactly on probe rows.
    """
    try:
        from sklearn.ensemble._iforest import _average_path_length

        subsample = forest._max_features != n_features  # as IsolationForest._compute_chunked_score_samples
        trees = FlatTrees([e.tree_ for e in forest.estimators_], n_features,
                          forest.estimators_features_ if subsample else None)
        # per node, the same element-wise expression as sklearn's _parallel_compute_tree_depths
        value = np.concatenate([forest._decision_path_lengths[t] + forest._average_path_length_per_tree[t] - 1.0
                                for t in range(len(forest.estimators_))]).astype(np.float64)
        flat = {"trees": trees, "value": value,
                "denominator": len(forest.estimators_) * _average_path_length([forest._max_samples])}
    except (AttributeError, ImportError, IndexError, TypeError, ValueError):
        return None
    # probe: rows spread over and beyond the training range must score exactly as sklearn does
    rng = np.random.default_rng(0)
    probe = rng.normal(0.0, 3.0, size=(64, n_features)) * rng.choice([0.01, 1.0, 100.0], size=(64, n_features))
    probe[:3] = np.array([0.0, 1e40, -1e40])[:, None]  # zeros, float32 overflow to +-inf
    try:
        with np.errstate(over="ignore"):
            ok = all(np.array_equal(_flat_score(flat, probe[k:k + m]), -forest.score_samples(probe[k:k + m]))
                     for k, m in ((0, 64), (5, 1)))
    except (IndexError, ValueError):
        ok = False
    return flat if ok else None


def _flat_score(flat: dict[str, Any], Z: np.ndarray) -> np.ndarray:
    """``-IsolationForest.score_samples(Z)`` for finite float64 ``Z`` (n, n_features), bit for bit.

    Walks all trees at once, one level per step, on float32-rounded inputs compared with
    the float64 thresholds (as sklearn's compiled ``Tree.apply``); sums the trees' path
    terms in tree order (``cumsum``: the same sequence of additions as sklearn's
    ``depths += ...``); the same final expression. ``Z`` must hold no NaN (sklearn sends
    NaN down a learned side; m01 fills non-finite inputs before).
    """
    node = flat["trees"].leaf_nodes(Z)
    depths = np.cumsum(flat["value"][node], axis=1)[:, -1]
    denominator = flat["denominator"]
    return 2 ** (-np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0))


class VoltageAnomaly(GridModel):
    """m01: IsolationForest anomaly score per 1-s reading, never trained on labels.

    Input: the ``features.compute`` frame (columns :data:`M01_INPUT_COLUMNS`; V, A, W, Hz).
    Output: ``anomaly_score`` (1; the isolation score in (0, 1], higher = more anomalous)
    and ``is_anomaly`` (score above the ``1 - contamination`` quantile of the training
    scores). Why an IsolationForest: no labels are needed, and it isolates readings that
    are extreme in *any* channel (current jumps, frequency, THD, unbalance), where the
    EN 50160 rule only looks at the voltage magnitude.

    Parameters
    ----------
    n_estimators, max_samples, max_features : int, int or float, float
        Passed to :class:`sklearn.ensemble.IsolationForest`.
    contamination : float
        Share of training readings flagged (0-0.5); sets ``threshold_``.
    max_train_rows : int
        Training readings kept at most (random subsample).
    random_state : int
        Seed of the subsample and the forest.

    Attributes
    ----------
    forest_ : IsolationForest
        The fitted forest on the design columns ``feature_names_``.
    fill_ : ndarray
        Training median per design column, used for NaN/inf inputs.
    threshold_ : float
        Anomaly score (1) above which ``is_anomaly`` is set.
    """

    spec: ClassVar[ModelSpec] = ModelSpec(
        model_id="m01_voltage_anomaly",
        module="monitoring",
        algorithm="IsolationForest",
        baseline="EN 50160 rule |dV| > 10 % of nominal",
        target="anomaly score per reading, scored against the grid twin's injected drivers (motor start, fault, "
               "generator trip, frequency drift, PV drop, load step; threshold crossings of the input channels left out)",
        primary_metric="event_f1",
        greater_is_better=True,
        output_units={"anomaly_score": "1", "is_anomaly": "bool"},
        secondary_metrics=("event_pr_auc", "median_delay_s", "event_recall", "point_precision", "false_alarms_per_day"),
    )
    input_columns: ClassVar[tuple[str, ...]] = M01_INPUT_COLUMNS

    def __init__(self, n_estimators: int = 200, max_samples: int | float = 256, max_features: float = 0.5,
                 contamination: float = 0.04, max_train_rows: int = 200_000, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.contamination = contamination
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def _design(self, X) -> np.ndarray:
        Z = _m01_design_array(feature_array(X, self.input_columns)[0])
        return np.where(np.isfinite(Z), Z, self.fill_)

    def fit(self, X, y=None):
        """Fit on training readings (``y`` is ignored: unsupervised)."""
        if not 0 < self.contamination < 0.5:
            raise ValueError(f"contamination must be in (0, 0.5), got {self.contamination}")
        Z = _m01_design_array(feature_array(X, self.input_columns)[0])
        rng = np.random.default_rng(self.random_state)
        if Z.shape[0] > self.max_train_rows:
            Z = Z[np.sort(rng.choice(Z.shape[0], self.max_train_rows, replace=False))]
        with np.errstate(all="ignore"):
            fill = np.nanmedian(np.where(np.isfinite(Z), Z, np.nan), axis=0)
        self.fill_ = np.nan_to_num(fill, nan=0.0)
        Z = np.where(np.isfinite(Z), Z, self.fill_)
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, max_samples=self.max_samples,
                                       max_features=self.max_features, random_state=self.random_state, n_jobs=1).fit(Z)
        train_score = -self.forest_.score_samples(Z)
        self.threshold_ = float(np.quantile(train_score, 1.0 - self.contamination))
        self.feature_names_ = list(M01_DESIGN_COLUMNS)
        self.flat_forest_ = _flatten_forest(self.forest_, Z.shape[1])
        return self

    def _flat(self) -> dict[str, Any] | None:
        """The flattened forest (built on first use for a model fitted before it existed)."""
        try:
            return self.flat_forest_
        except AttributeError:
            self.flat_forest_ = _flatten_forest(self.forest_, len(self.fill_))
            return self.flat_forest_

    def predict(self, X) -> pd.DataFrame:
        A, index = feature_array(X, self.input_columns)
        Z = _m01_design_array(A)
        Z = np.where(np.isfinite(Z), Z, self.fill_)
        flat = self._flat() if Z.shape[0] <= _M01_FLAT_MAX_ROWS else None
        score = _flat_score(flat, Z) if flat is not None else -self.forest_.score_samples(Z)
        return pd.DataFrame({"anomaly_score": score, "is_anomaly": score > self.threshold_}, index=index)

    def baseline(self):
        return EN50160VoltageRule()

    def input_example(self, X):
        return feature_frame(X, self.input_columns).loc[:, list(self.input_columns)].head(5)

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        return event_scores(y_true, y_pred, meta)

    def bootstrap_terms(self, y_true, y_pred, meta=None):
        """Per-row terms of ``event_f1`` for the vectorised bootstrap (see :func:`event_f1_terms`)."""
        return event_f1_terms(y_true, y_pred, meta)

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        return _m01_figures(dataset, predictions)


class EN50160VoltageRule(Baseline):
    """Baseline of m01: a reading is anomalous when some phase deviates > 10 % from nominal.

    Input: the feature frame (``v_max_abs_dev_pct`` [%]); output like :class:`VoltageAnomaly`:
    ``anomaly_score`` = max phase |V - V_nom| / V_nom [pu], ``is_anomaly`` = score > 0.10.
    """

    name = "EN 50160 rule |dV| > 10 % of nominal"

    def __init__(self, limit_pct: float = 10.0):
        self.limit_pct = limit_pct

    def fit(self, X, y=None):
        return self

    def predict(self, X) -> pd.DataFrame:
        dev = feature_frame(X, M01_INPUT_COLUMNS)["v_max_abs_dev_pct"].to_numpy(dtype=float)
        dev = np.nan_to_num(dev, nan=0.0)
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame({"anomaly_score": dev / 100.0, "is_anomaly": dev > self.limit_pct}, index=index)


#: EN 50160 limits of the channels the multi-channel rule watches: supply voltage +-10 % of nominal,
#: voltage unbalance 2 %, frequency 50 Hz +-1 % (+-0.5 Hz), voltage THD 8 %
EN50160_LIMITS: dict[str, float] = {"v_max_abs_dev_pct": 10.0, "v_unbalance_pct": 2.0, "freq_dev_hz": 0.5, "thd_v_pct": 8.0}


def _rule_output(score: np.ndarray, flag: np.ndarray, X) -> pd.DataFrame:
    index = X.index if isinstance(X, pd.DataFrame) else None
    return pd.DataFrame({"anomaly_score": score, "is_anomaly": flag}, index=index)


def _limit_multiples(X) -> np.ndarray:
    """Per reading, max over the EN 50160 channels of |value| / limit (1 = at a limit; NaN -> 0)."""
    A, _ = feature_array(X, M01_INPUT_COLUMNS)
    ratios = [np.abs(A[:, _M01_COL[c]]) / limit for c, limit in EN50160_LIMITS.items()]
    return np.nan_to_num(np.max(ratios, axis=0), nan=0.0, posinf=1e6)


def _current_step(X) -> np.ndarray:
    """Per reading, the largest phase current above its trailing 15-min mean, relative to that mean (1; NaN -> 0)."""
    return np.nan_to_num(_m01_design_array(feature_array(X, M01_INPUT_COLUMNS)[0])[:, 4], nan=0.0, posinf=1e6)


class EN50160MultiChannelRule(Baseline):
    """m01 ladder: the EN 50160 limits on every channel the meter reports, not only the voltage.

    A reading is anomalous when any of :data:`EN50160_LIMITS` is exceeded: |dV| > 10 % of
    nominal, voltage unbalance > 2 %, |f - 50 Hz| > 0.5 Hz, THD > 8 %. Output like
    :class:`VoltageAnomaly`: ``anomaly_score`` = the largest multiple of a limit (1; 1 = at
    the limit), ``is_anomaly`` = score > 1. Learns nothing.
    """

    name = "EN 50160 multi-channel limit rule"

    def fit(self, X, y=None):
        feature_array(X, M01_INPUT_COLUMNS)
        return self

    def predict(self, X) -> pd.DataFrame:
        score = _limit_multiples(X)
        return _rule_output(score, score > 1.0, X)


class CurrentStepRule(Baseline):
    """m01 ladder: a current step rule, as protection relays and motor-start detectors use.

    ``anomaly_score`` = (largest phase current - its trailing 15-min mean) / that mean (1);
    ``is_anomaly`` = score > ``step_rel`` (default 0.5: a 50 % step). Learns nothing.
    """

    name = "current step > 50 % of the 15-min mean"

    def __init__(self, step_rel: float = 0.5):
        self.step_rel = step_rel

    def fit(self, X, y=None):
        feature_array(X, M01_INPUT_COLUMNS)
        return self

    def predict(self, X) -> pd.DataFrame:
        score = _current_step(X)
        return _rule_output(score, score > self.step_rel, X)


class MultiChannelAndCurrentStepRule(CurrentStepRule):
    """m01 ladder: :class:`EN50160MultiChannelRule` OR :class:`CurrentStepRule` (whose parameter and checks it
    shares).

    ``anomaly_score`` = max(limit multiple, current step / ``step_rel``) (1; 1 = at a limit),
    ``is_anomaly`` = score > 1. Learns nothing.
    """

    name = "EN 50160 multi-channel + current step rule"

    def predict(self, X) -> pd.DataFrame:
        score = np.maximum(_limit_multiples(X), _current_step(X) / self.step_rel)
        return _rule_output(score, score > 1.0, X)


class RobustZScore(Baseline):
    """m01 ladder: the largest robust z-score over m01's own 13 design columns.

    Fitted on the training readings (unsupervised, like the model): per design column the
    median and the scaled median absolute deviation (``scipy.stats.median_abs_deviation``,
    ``scale="normal"``). ``anomaly_score`` = max over columns of |x - median| / MAD (1);
    ``is_anomaly`` = score above its ``1 - contamination`` training quantile (the model's
    flag rate). The textbook per-channel statistical detector, on the model's inputs.
    """

    name = "robust z-score (median/MAD) on the design columns"

    def __init__(self, contamination: float = 0.04, max_train_rows: int = 200_000, random_state: int = 0):
        self.contamination = contamination
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def _z(self, X) -> np.ndarray:
        Z = _m01_design_array(feature_array(X, M01_INPUT_COLUMNS)[0])
        Z = np.where(np.isfinite(Z), Z, self.median_)
        return np.max(np.abs(Z - self.median_) / self.mad_, axis=1)

    def fit(self, X, y=None):
        from scipy.stats import median_abs_deviation

        Z = _m01_design_array(feature_array(X, M01_INPUT_COLUMNS)[0])
        if Z.shape[0] > self.max_train_rows:
            rng = np.random.default_rng(self.random_state)
            Z = Z[np.sort(rng.choice(Z.shape[0], self.max_train_rows, replace=False))]
        Z = np.where(np.isfinite(Z), Z, np.nan)
        with np.errstate(all="ignore"):
            self.median_ = np.nan_to_num(np.nanmedian(Z, axis=0), nan=0.0)
            mad = median_abs_deviation(Z, axis=0, scale="normal", nan_policy="omit")
        # a column that never moves in training (MAD 0): scale by its mean absolute deviation, else 1
        spread = np.nanmean(np.abs(Z - self.median_), axis=0)
        self.mad_ = np.where(mad > 1e-12, mad, np.where(np.nan_to_num(spread) > 1e-12, spread, 1.0))
        train_z = np.max(np.abs(np.where(np.isfinite(Z), Z, self.median_) - self.median_) / self.mad_, axis=1)
        self.threshold_ = float(np.quantile(train_z, 1.0 - self.contamination))
        return self

    def predict(self, X) -> pd.DataFrame:
        score = self._z(X)
        return _rule_output(score, score > self.threshold_, X)


# ---- event-level scoring


def _prediction_columns(y_pred) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(y_pred, pd.DataFrame):
        return y_pred["anomaly_score"].to_numpy(dtype=float), y_pred["is_anomaly"].to_numpy(dtype=bool)
    arr = np.asarray(y_pred, dtype=float)
    return arr[:, 0], arr[:, 1] > 0.5


class _EventIndex:
    """Event windows of the test rows, precomputed once for many thresholds.

    ``y_true``: per row 1 inside a target window, -1 inside another event window only,
    0 elsewhere. ``meta``: dict with ``ts_us`` (int64 epoch µs per row, rows grouped by
    device and sorted by time), ``device_id`` (per row), ``events`` (DataFrame: ts_us,
    end_us, device_id, type, role in {"target", "rule", "cooccurring", "ignore"}),
    ``tolerance_s``, ``merge_gap_s``, ``device_days``.
    """

    ROLES = ("target", "rule", "cooccurring")

    def __init__(self, y_true, meta: dict[str, Any]):
        self.label = np.asarray(y_true, dtype=np.int8)
        ts = np.asarray(meta["ts_us"], dtype=np.int64)
        dev = np.asarray(meta["device_id"])
        ev = meta["events"]
        tol_us = int(round(float(meta.get("tolerance_s", 60.0)) * 1e6))
        self.n = ts.size
        self.duration_days = float(meta.get("device_days") or max(1e-9, _span_days(ts, dev)))
        self.row_ts = ts
        acc = {r: ([], [], [], []) for r in self.ROLES}  # start row, stop row, start ts, type
        for d in np.unique(dev):
            rows = np.flatnonzero(dev == d)
            lo, hi = int(rows[0]), int(rows[-1]) + 1
            if hi - lo != rows.size:
                raise ValueError("m01 scoring: rows must be grouped by device (sorted by device_id, ts)")
            t = ts[lo:hi]
            e = ev[ev["device_id"] == d]
            for role, (starts, stops, ets, types) in acc.items():
                sel = e[e["role"] == role]
                if sel.empty:
                    continue
                s0 = sel["ts_us"].to_numpy(np.int64)
                starts.extend((lo + np.searchsorted(t, s0, "left")).tolist())
                stops.extend((lo + np.searchsorted(t, sel["end_us"].to_numpy(np.int64) + tol_us, "left")).tolist())
                ets.extend(s0.tolist())
                types.extend(sel["type"].tolist())
        self.windows = {r: (np.asarray(v[0], np.int64), np.asarray(v[1], np.int64), np.asarray(v[2], np.int64),
                            np.asarray(v[3], dtype=object)) for r, v in acc.items()}
        self.ev_start, self.ev_stop, self.ev_ts, self.ev_type = self.windows["target"]

    def detected(self, flag: np.ndarray, start=None, stop=None) -> np.ndarray:
        start = self.ev_start if start is None else start
        stop = self.ev_stop if stop is None else stop
        cs = np.concatenate([[0], np.cumsum(flag, dtype=np.int64)])
        return (cs[np.maximum(stop, start)] - cs[start]) > 0

    def precision(self, flag: np.ndarray) -> float:
        hit = int((flag & (self.label == 1)).sum())
        miss = int((flag & (self.label == 0)).sum())
        return hit / (hit + miss) if hit + miss else float("nan")

    def delays_s(self, flag: np.ndarray, det: np.ndarray) -> np.ndarray:
        if not det.any():
            return np.empty(0)
        idx = np.flatnonzero(flag)
        first = idx[np.searchsorted(idx, self.ev_start[det], "left")]
        return (self.row_ts[first] - self.ev_ts[det]) / 1e6

    def false_alarms(self, flag: np.ndarray, merge_gap_s: float) -> int:
        """Runs of flagged normal readings (label 0), merged when closer than ``merge_gap_s``."""
        idx = np.flatnonzero(flag & (self.label == 0))
        if idx.size == 0:
            return 0
        t = self.row_ts[idx]
        new = np.diff(t) > merge_gap_s * 1e6
        new |= np.diff(idx) <= 0  # device boundary safety
        return int(1 + new.sum())

    def curve(self, score: np.ndarray, n_thresholds: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, recall, precision) for flags ``score >= threshold``, recall increasing."""
        finite = score[np.isfinite(score)]
        levels = 1.0 - np.logspace(-5.5, 0.0, n_thresholds)
        th = np.unique(np.quantile(finite, np.clip(levels, 0, 1)))[::-1] if finite.size else np.array([np.inf])
        rec, prec = np.empty(th.size), np.empty(th.size)
        n_ev = max(1, self.ev_start.size)
        for k, t in enumerate(th):
            flag = score >= t
            rec[k] = self.detected(flag).sum() / n_ev
            p = self.precision(flag)
            prec[k] = 1.0 if math.isnan(p) else p
        return th, rec, prec


def event_f1_terms(y_true, y_pred, meta: dict[str, Any]) -> tuple[np.ndarray, Any]:
    """``event_f1`` as a function of per-row additive counts, so that a block bootstrap resamples
    events with the rows they start on.

    Returns ``(terms, combine)``: ``terms`` (n, 4) counts per test row the target events detected
    and the target events whose onset falls on that row (an event starting after its device's
    last reading on that device's last row), and the flagged readings counted as hits
    (``y_true`` = 1) and as misses (``y_true`` = 0); ``combine(sums)`` (B × 4 → B) gives recall,
    point precision and F1 exactly as :func:`event_scores` does on the full sample.
    """
    idx = _event_index(y_true, meta)
    _, flag = _prediction_columns(y_pred)
    det = idx.detected(flag)
    dev = np.asarray(meta["device_id"])
    onset = np.minimum(idx.ev_start, idx.n - 1)
    # an event after its device's last reading is found at the next device's first row: move it back
    ends = {d: int(np.flatnonzero(dev == d)[-1]) for d in np.unique(dev)}
    ev = meta["events"]
    target_dev = np.concatenate([ev.loc[(ev["device_id"] == d) & (ev["role"] == "target"), "device_id"].to_numpy()
                                 for d in np.unique(dev)]) if idx.ev_start.size else np.empty(0, dtype=object)
    for k, d in enumerate(target_dev):
        onset[k] = min(onset[k], ends[d])
    terms = np.zeros((idx.n, 4))
    np.add.at(terms[:, 0], onset, det.astype(float))
    np.add.at(terms[:, 1], onset, 1.0)
    terms[:, 2] = flag & (idx.label == 1)
    terms[:, 3] = flag & (idx.label == 0)

    def combine(sums: np.ndarray) -> np.ndarray:
        sums = np.atleast_2d(np.asarray(sums, float))
        detected, events, hits, misses = sums.T
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(events > 0, detected / events, np.nan)
            precision = np.where(hits + misses > 0, hits / (hits + misses), 1.0)
            f1 = 2 * precision * recall / (precision + recall)
        return np.where(np.isfinite(f1) & (precision + recall > 0), f1, 0.0)

    return terms, combine


def _span_days(ts: np.ndarray, dev: np.ndarray) -> float:
    total = 0.0
    for d in np.unique(dev):
        t = ts[dev == d]
        total += (t.max() - t.min()) / 86_400e6 if t.size else 0.0
    return total


def _average_precision(rec: np.ndarray, prec: np.ndarray) -> float:
    """Sum of (R_k - R_{k-1}) P_k with R_0 = 0, thresholds from high to low."""
    r = np.maximum.accumulate(rec)
    return float(np.sum(np.diff(np.concatenate([[0.0], r])) * prec))


def _event_index(y_true, meta: dict[str, Any] | None) -> _EventIndex:
    """The test rows' event index, built once per ``meta`` (kept in it: every rung of the ladder and every
    bootstrap call scores the same rows)."""
    if meta is None or "events" not in meta:
        raise ValueError("m01 scoring needs meta with the test rows' ts_us, device_id and the events table")
    idx = meta.get("_index")
    if idx is None or idx.n != len(y_true):
        idx = _EventIndex(y_true, meta)
        meta["_index"] = idx
    return idx


def event_scores(y_true, y_pred, meta: dict[str, Any]) -> dict[str, float]:
    """Event-level scores of m01-style predictions (see the module docstring)."""
    idx = _event_index(y_true, meta)
    score, flag = _prediction_columns(y_pred)
    det = idx.detected(flag)
    n_ev = idx.ev_start.size
    recall = det.sum() / n_ev if n_ev else float("nan")
    precision = idx.precision(flag)
    p0 = 1.0 if math.isnan(precision) else precision  # every flag in an ignored window: no false alarm
    f1 = 2 * p0 * recall / (p0 + recall) if (p0 + recall) > 0 else 0.0
    _, rec_c, prec_c = idx.curve(score)
    delays = idx.delays_s(flag, det)
    out = {
        "event_f1": float(f1),
        "event_pr_auc": _average_precision(rec_c, prec_c),
        "event_recall": float(recall),
        "point_precision": float(precision),
        "median_delay_s": float(np.median(delays)) if delays.size else float("nan"),
        "false_alarms_per_day": idx.false_alarms(flag, float(meta.get("merge_gap_s", 10.0))) / max(idx.duration_days, 1e-9),
        "flagged_fraction": float(flag.mean()) if flag.size else float("nan"),
        "n_target_events": float(n_ev),
    }
    for family, types in (("drivers", DRIVER_EVENT_TYPES), ("other_disturbances", OTHER_DISTURBANCE_TYPES)):
        m = np.isin(idx.ev_type, types)
        out[f"recall_{family}"] = float(det[m].mean()) if m.any() else float("nan")
    for t in TARGET_EVENT_TYPES:
        m = idx.ev_type == t
        if m.any():
            out[f"recall_{t}"] = float(det[m].mean())
    for role, key in (("rule", "recall_rule_defined"), ("cooccurring", "recall_cooccurring_disturbances")):
        start, stop = idx.windows[role][:2]
        if start.size:
            out[key] = float(idx.detected(flag, start, stop).mean())
    return out


def _m01_figures(dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
    import plotly.graph_objects as go

    meta, y = dataset.meta_test, dataset.y_test
    idx = meta.get("_index") or _EventIndex(y, meta)
    figs = {}
    pr = go.Figure()
    bars = go.Figure()
    for name, pred in predictions.items():
        score, flag = _prediction_columns(pred)
        _, rec, prec = idx.curve(score)
        pr.add_trace(go.Scatter(x=rec, y=prec, mode="lines+markers", name=f"{name} (AP {_average_precision(rec, prec):.2f})",
                                line_shape="hv"))
        det = idx.detected(flag)
        types = [t for t in TARGET_EVENT_TYPES if (idx.ev_type == t).any()]
        bars.add_trace(go.Bar(x=types, y=[det[idx.ev_type == t].mean() for t in types], name=name,
                              text=[int((idx.ev_type == t).sum()) for t in types]))
    pr.update_layout(title="m01 event-level precision-recall (test range)", xaxis_title="event recall",
                     yaxis_title="point precision", yaxis_range=[0, 1.02], xaxis_range=[0, 1.02])
    bars.update_layout(title="m01 recall per event type at the operating threshold (bar text: events)",
                       yaxis_title="recall", barmode="group", yaxis_range=[0, 1.05])
    figs["pr_curve"] = pr
    figs["recall_by_event_type"] = bars
    # a timeline: the test day of the first device with the most target events
    X = dataset.X_test
    ts = pd.to_datetime(np.asarray(meta["ts_us"]), unit="us", utc=True)
    dev = np.asarray(meta["device_id"])
    if len(ts):
        d0 = dev[0]
        rows = np.flatnonzero(dev == d0)
        t0 = ts[rows[0]]
        win = rows[(ts[rows] >= t0 + pd.Timedelta(hours=12)) & (ts[rows] < t0 + pd.Timedelta(hours=18))]
        if win.size == 0:
            win = rows[: min(rows.size, 21_600)]
        step = max(1, win.size // 5000)
        win_s = win[::step]
        tl = go.Figure()
        tl.add_trace(go.Scatter(x=ts[win_s], y=np.asarray(X["v_max_abs_dev_pct"])[win_s], name="max |dV| [% of nominal]",
                                yaxis="y1", line=dict(width=1)))
        for name, pred in predictions.items():
            score, flag = _prediction_columns(pred)
            hits = win[flag[win]]
            tl.add_trace(go.Scatter(x=ts[hits], y=np.full(hits.size, 1.0 if name == "model" else 0.9), mode="markers",
                                    name=f"{name} alarms", yaxis="y2", marker=dict(size=5)))
        ev, t_us = meta["events"], np.asarray(meta["ts_us"])
        ev = ev[(ev["device_id"] == d0) & (ev["ts_us"] <= t_us[win[-1]]) & (ev["end_us"] >= t_us[win[0]])]
        for r in ev.itertuples():
            colour = "rgba(220,50,50,0.25)" if r.role == "target" else "rgba(120,120,120,0.2)"
            x1 = max(r.end_us, r.ts_us + 2_000_000)  # at least 2 s wide, to be visible
            tl.add_vrect(x0=pd.Timestamp(r.ts_us, unit="us", tz="UTC"), x1=pd.Timestamp(x1, unit="us", tz="UTC"),
                         fillcolor=colour, line_width=0)
        tl.update_layout(title=f"m01 six hours of {d0}: target events red, rule-defined grey; alarms as markers",
                         yaxis=dict(title="max |dV| [%]"), yaxis2=dict(overlaying="y", side="right", range=[0, 1.1], showticklabels=False))
        figs["timeline"] = tl
    return figs


# --------------------------------------------------------------------------- serving

#: how the inference engine serves m01: the columns of the reading's feature row
SERVING = ServingAdapter(score=columns_scorer(M01_INPUT_COLUMNS), outputs=("anomaly_score", "is_anomaly"))
