"""m17 PV anomaly detection: faults of a PV + battery asset from its telemetry, judged by events.

One row per pv reading (15-min telemetry of the solar twin), built by
:func:`gridtwin_lib.datasets.maintenance.pv_anomaly.pv_anomaly_features`: the raw telemetry
(:data:`RAW_COLUMNS`) and residuals against a healthy plant under the **measured** irradiance and
weather (:func:`gridtwin_lib.physics.solar.expected_ac_power`: the twin's pvlib chain) with trailing
statistics of the device's own past (:data:`RESIDUAL_COLUMNS`). Output per reading: ``score``
(1, higher = more likely a fault) and ``flag``; a detected event is a run of flagged readings of a
device (flags closer than ``merge_gap_s`` join).

The model is a gradient-boosting classifier (scikit-learn's HistGradientBoosting) on the residual
features, trained on the fault intervals of the training runs: the catalogue asks for an
IsolationForest "or better", and labelled faults exist in training. The ladder, all judged by
:func:`event_scores` on the same held-out devices: :class:`PerformanceRatioRule` (AC power below
``pr_threshold`` of the expected power in daylight: the practitioner's first check),
:class:`RawTelemetryIsolationForest` (the reference system's method: an IsolationForest on the raw
telemetry) and :class:`ResidualIsolationForest` (the catalogue's algorithm on m17's residuals).

How it is judged (event level, per device of the held-out runs):

* target events: the twin's fault intervals (``events``: inverter trip, inverter degradation and
  failure, soiling, degradation, battery capacity fade and isolation, high temperature) with at
  least one reading inside (a trip shorter than the sampling step can fall between two readings:
  it is counted apart, ``n_unobservable_events``);
* recall: share of target events with a flagged reading in ``[start, end + tolerance_s)``;
* precision: share of flagged readings that lie inside some fault window ``[start, end +
  tolerance_s)`` of their device (point precision: with event recall, the "composite F1" of Garg
  et al., 2021). A precision over runs of flags would reward flagging everything (one run per
  device, true on every faulty device); with point precision a detector that flags every reading
  scores the share of readings in fault windows. The runs' own precision is reported apart
  (``run_precision``, ``false_events_per_device_day``: runs with no flag in a fault window);
* ``event_f1`` = 2 P R / (P + R) (primary); ``median_delay_h``: first flag in the window minus the
  fault's start, over detected events (and per fault type).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...errors import InputError
from ..base import Baseline, GridModel, ModelSpec, input_matrix

#: raw pv telemetry (kind ``pv``): W, V, A, W/m2, degC, degC, 1, %, m/s, %
RAW_COLUMNS: tuple[str, ...] = ("ac_power", "dc_voltage", "dc_current", "irradiance", "module_temperature",
                                "ambient_temperature", "inverter_efficiency", "battery_soc", "wind_speed", "humidity")
#: residuals against the expected healthy output and trailing statistics of the device's past
RESIDUAL_COLUMNS: tuple[str, ...] = (
    "expected_ac_kw",          # [kW] healthy AC power for the measured irradiance and weather
    "daylight",                # 1 when the expected AC power is at least 5 % of the inverter rating
    "performance_ratio",       # [1] AC / expected AC (1 at night)
    "pr_vs_own",               # [1] performance ratio / the device's best 24-h daylight mean of the last 10 days
    "dc_power_ratio",          # [1] measured V I / expected DC power (1 at night)
    "efficiency_ratio",        # [1] inverter efficiency / pvwatts efficiency at the expected DC power (1 when off)
    "module_temp_residual_c",  # [K] module temperature minus the Faiman cell temperature
    "pr_drop_10d",             # [1] highest 24-h daylight performance ratio of the last 10 days minus today's
    "ambient_anomaly_c",       # [K] ambient temperature minus its mean of the last 7 days
    "soc_swing_ratio",         # [1] mean |SoC step| of the last 24 h / its lowest of the last 10 days (a faded pack swings faster)
    "soc_range_6h_pct",        # [%] SoC range of the last 6 h (0 when the pack is isolated)
)
INPUT_COLUMNS = pd.Index([*RAW_COLUMNS, *RESIDUAL_COLUMNS])
OUTPUTS: tuple[str, ...] = ("score", "flag")
LAYOUT = ("m17 inputs: the raw pv telemetry and its residual features per reading "
          "(datasets.maintenance.pv_anomaly.pv_anomaly_features)")
_RAW = [INPUT_COLUMNS.get_loc(c) for c in RAW_COLUMNS]
_RESID = [INPUT_COLUMNS.get_loc(c) for c in RESIDUAL_COLUMNS]
#: what the classifier reads: the residuals without the levels that also tell one array's rating from another
#: (its DC rating spreads by a few % across the fleet): the performance ratio against the device's own past instead
MODEL_COLUMNS: tuple[str, ...] = tuple(c for c in RESIDUAL_COLUMNS if c not in ("performance_ratio", "dc_power_ratio"))
_MODEL = [INPUT_COLUMNS.get_loc(c) for c in MODEL_COLUMNS]
_PR, _DAY = INPUT_COLUMNS.get_loc("performance_ratio"), INPUT_COLUMNS.get_loc("daylight")
HOUR_S = 3600.0


def _matrix(X, who: str) -> np.ndarray:
    return input_matrix(X, INPUT_COLUMNS, who, LAYOUT)


def _out(score: np.ndarray, flag: np.ndarray, X) -> pd.DataFrame:
    return pd.DataFrame({"score": np.asarray(score, float), "flag": np.asarray(flag, bool)}, index=getattr(X, "index", None))


def _labels(y, n: int, who: str) -> np.ndarray:
    if y is None:
        raise InputError(f"{who}: fit needs y (1 for a reading inside a fault interval of the twin's events, else 0)")
    arr = np.asarray(y, float).ravel()
    if arr.shape != (n,) or not np.isin(arr, (0.0, 1.0)).all():
        raise InputError(f"{who}: y must be {n} labels in {{0, 1}} (the dataset's y_train)")
    if np.unique(arr).size < 2:
        raise InputError(f"{who}: the training runs hold no fault or only faults; configure runs with faults and "
                         "unaffected devices (affected_fraction < 1)")
    return arr.astype(int)


def _subsample(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Row positions of at most ``max_rows`` of ``n`` training rows (a seeded random subsample, in order)."""
    if n <= max_rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))


class PerformanceRatioRule(Baseline):
    """Named baseline of m17: a daylight reading whose AC power is below ``pr_threshold`` of the
    power a healthy plant gives for the measured irradiance and weather (pvlib) is a fault.

    ``score`` = 1 - performance ratio (0 at night).

    Parameters
    ----------
    pr_threshold : float
        Performance ratio [1] below which a daylight reading is flagged.
    """

    name = "performance-ratio rule vs pvlib expected"
    spec = None  # set below

    def __init__(self, pr_threshold: float = 0.8):
        self.pr_threshold = pr_threshold

    def fit(self, X, y=None):
        _matrix(X, "m17 performance-ratio rule")
        if not 0 < self.pr_threshold < 1:
            raise InputError(f"m17 performance-ratio rule: pr_threshold must be in (0, 1), got {self.pr_threshold}")
        return self

    def predict(self, X):
        arr = _matrix(X, "m17 performance-ratio rule")
        score = np.where(arr[:, _DAY] > 0.5, 1.0 - arr[:, _PR], 0.0)
        return _out(score, score > 1.0 - self.pr_threshold, X)


class _IsolationForestOn(Baseline):
    """An IsolationForest on some input columns; flags the ``contamination`` share of training scores."""

    columns: ClassVar[list[int]] = []

    def __init__(self, contamination: float = 0.05, n_estimators: int = 100, max_train_rows: int = 100_000,
                 random_state: int = 0):
        self.contamination = contamination
        self.n_estimators = n_estimators
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def fit(self, X, y=None):
        from sklearn.ensemble import IsolationForest

        if not 0 < self.contamination < 0.5:
            raise InputError(f"m17 {self.name}: contamination must be in (0, 0.5), got {self.contamination}")
        Z = _matrix(X, f"m17 {self.name}")[:, self.columns]
        Z = Z[_subsample(Z.shape[0], self.max_train_rows, self.random_state)]
        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.random_state, n_jobs=1).fit(Z)
        self.threshold_ = float(np.quantile(-self.forest_.score_samples(Z), 1.0 - self.contamination))
        return self

    def predict(self, X):
        score = -self.forest_.score_samples(_matrix(X, f"m17 {self.name}")[:, self.columns])
        return _out(score, score > self.threshold_, X)


class RawTelemetryIsolationForest(_IsolationForestOn):
    """m17 ladder: the reference system's method, an IsolationForest on the raw telemetry
    (:data:`RAW_COLUMNS`), unsupervised; flags the ``contamination`` share of training readings."""

    name = "IsolationForest on raw telemetry"
    columns: ClassVar[list[int]] = _RAW


class ResidualIsolationForest(_IsolationForestOn):
    """m17 ladder: the catalogue's IsolationForest on m17's residual features (:data:`RESIDUAL_COLUMNS`)."""

    name = "IsolationForest on residuals"
    columns: ClassVar[list[int]] = _RESID


class PvAnomaly(GridModel):
    """m17: probability that a pv reading lies in a fault interval, from its residual features.

    A :class:`sklearn.ensemble.HistGradientBoostingClassifier` on :data:`MODEL_COLUMNS`
    (residuals against the expected healthy output, not the raw telemetry: a cloud lowers power
    and irradiance together and leaves the performance ratio at 1). The performance ratio and the
    slow faults are read against the device's own past (``pr_vs_own``, ``pr_drop_10d``,
    ``soc_swing_ratio``), not as levels: a level
    (a day's performance ratio, the battery's swing) also tells one household or one array's
    rating from another, and a classifier on few training devices learns which devices were
    faulty rather than what a fault looks like. Why supervised: the training
    runs carry the twin's fault intervals, and an unsupervised forest also isolates the healthy
    extremes (clear noons, cold mornings) that a labelled classifier learns to ignore.

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization : int, float, int, int, float
        Passed to the classifier (large leaves: a leaf must hold many readings, so of several devices).
    threshold : float
        Probability [1] above which a reading is flagged (high: the labels of a slow fault start at its
        onset, long before it shows, so readings that look healthy carry moderate probabilities; the
        configured value is the best event F1 on a device split of the training runs).
    max_train_rows : int
        Training readings kept at most (random subsample).
    random_state : int
        Seed of the subsample and the classifier.

    Attributes
    ----------
    classifier_ : HistGradientBoostingClassifier
        Fitted on :data:`MODEL_COLUMNS`.
    """

    spec: ClassVar[ModelSpec] = ModelSpec(
        model_id="m17_pv_anomaly", module="maintenance",
        algorithm="gradient boosting (HistGradientBoosting) on residuals against pvlib's expected output",
        baseline="performance-ratio rule vs pvlib expected",
        target="PV fault intervals of the solar twin (inverter trip/degradation/failure, soiling, degradation, "
               "battery fade/isolation, high temperature) on held-out devices, judged by events",
        primary_metric="event_f1", greater_is_better=True, output_units={"score": "1", "flag": "bool"},
        secondary_metrics=("point_precision", "event_recall", "median_delay_h", "run_precision", "false_events_per_device_day"),
        block="device",
    )

    def __init__(self, max_iter: int = 200, learning_rate: float = 0.1, max_leaf_nodes: int = 15,
                 min_samples_leaf: int = 200, l2_regularization: float = 1.0, threshold: float = 0.98,
                 max_train_rows: int = 60_000, random_state: int = 0):
        self.max_iter = max_iter
        self.min_samples_leaf = min_samples_leaf
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.l2_regularization = l2_regularization
        self.threshold = threshold
        self.max_train_rows = max_train_rows
        self.random_state = random_state

    def fit(self, X, y=None):
        from sklearn.ensemble import HistGradientBoostingClassifier

        if not 0 < self.threshold < 1:
            raise InputError(f"m17: threshold must be a probability in (0, 1), got {self.threshold}")
        arr = _matrix(X, "m17")
        label = _labels(y, arr.shape[0], "m17")
        keep = _subsample(arr.shape[0], self.max_train_rows, self.random_state)
        Z, label = arr[keep][:, _MODEL], label[keep]
        self.classifier_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter, learning_rate=self.learning_rate, max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization, early_stopping=False, random_state=self.random_state).fit(Z, label)
        self.n_features_in_ = arr.shape[1]
        return self

    def predict(self, X):
        score = self.classifier_.predict_proba(_matrix(X, "m17")[:, _MODEL])[:, 1]
        return _out(score, score > self.threshold, X)

    def baseline(self):
        return PerformanceRatioRule()

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        return event_scores(y_true, y_pred, meta)

    def bootstrap_terms(self, y_true, y_pred, meta=None):
        return event_f1_terms(y_true, y_pred, meta)

    def figures(self, dataset, predictions) -> dict[str, Any]:
        import plotly.graph_objects as go

        idx = _event_index(dataset.y_test, dataset.meta_test)
        types = sorted(set(idx.ev_type.tolist()))
        recall, delay = go.Figure(), go.Figure()
        for name, pred in predictions.items():
            det, first = idx.detected(_flags(pred))
            recall.add_bar(x=types, y=[det[idx.ev_type == t].mean() for t in types], name=name,
                           text=[int((idx.ev_type == t).sum()) for t in types])
            d = (idx.row_ts[first[det]] - idx.ev_ts[det]) / 3.6e9
            delay.add_box(x=idx.ev_type[det], y=d, name=name)
        recall.update_layout(title="m17 recall per fault type on the held-out devices (bar text: events)",
                             yaxis_title="event recall", barmode="group", yaxis_range=[0, 1.05])
        delay.update_layout(title="m17 detection delay per fault type (detected events)", yaxis_title="delay [h]",
                            boxmode="group")
        return {"m17_recall_by_fault_type": recall, "m17_delay_by_fault_type": delay}


PerformanceRatioRule.spec = PvAnomaly.spec


# --------------------------------------------------------------------------- event-level scoring


def _flags(y_pred) -> np.ndarray:
    if isinstance(y_pred, pd.DataFrame):
        return y_pred["flag"].to_numpy(dtype=bool)
    return np.asarray(y_pred, float)[:, 1] > 0.5


class _Events:
    """The fault windows of the test rows, found once per ``meta`` (rows grouped by device, time-sorted)."""

    def __init__(self, n: int, meta: dict[str, Any]):
        ts = np.asarray(meta["ts_us"], np.int64)
        dev = np.asarray(meta["device_id"])
        if ts.size != n or dev.size != n:
            raise InputError(f"m17 scoring: meta must hold ts_us and device_id for each of the {n} test rows (the dataset's meta_test)")
        tol_us = int(round(float(meta.get("tolerance_s", HOUR_S)) * 1e6))
        self.n, self.row_ts, self.merge_us = n, ts, int(round(float(meta.get("merge_gap_s", HOUR_S)) * 1e6))
        codes, first = np.unique(dev, return_index=True)
        self.device_code = np.searchsorted(codes, dev)
        if np.any(np.diff(self.device_code) < 0) or np.any((np.diff(ts) <= 0) & (np.diff(self.device_code) == 0)):
            raise InputError("m17 scoring: test rows must be grouped by device and sorted by time (as the dataset builds them)")
        self.device_days = sum(float(ts[dev == d].max() - ts[dev == d].min()) / 86_400e6 for d in codes)
        starts, stops, inside, ev_ts, types, last_row = [], [], [], [], [], []
        self.in_window = np.zeros(n, bool)
        events = meta["events"]
        for d, ev in events.groupby("device_id"):
            k = np.searchsorted(codes, d)
            if k >= codes.size or codes[k] != d:
                continue
            lo = int(first[k])
            hi = lo + int((self.device_code == k).sum())
            t = ts[lo:hi]
            s = ev["ts_us"].to_numpy(np.int64)
            e = ev["end_us"].to_numpy(np.int64)
            a = lo + np.searchsorted(t, s, "left")
            b = lo + np.searchsorted(t, e + tol_us, "left")
            for i, j in zip(a, b, strict=True):
                self.in_window[i:j] = True
            starts.append(a)
            stops.append(b)
            inside.append(lo + np.searchsorted(t, e, "left") > a)  # a reading inside [start, end)
            ev_ts.append(s)
            types.append(ev["type"].to_numpy(object))
            last_row.append(np.full(s.size, hi - 1))
        cat = (lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype))  # noqa: E731
        observable = cat(inside, bool)
        self.n_unobservable = int((~observable).sum())
        self.ev_start = cat(starts, np.int64)[observable]
        self.ev_stop = cat(stops, np.int64)[observable]
        self.ev_ts = cat(ev_ts, np.int64)[observable]
        self.ev_type = cat(types, object)[observable]
        self.ev_row = np.minimum(self.ev_start, cat(last_row, np.int64)[observable])  # where the bootstrap counts it

    def detected(self, flag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per target event: detected?, and the row of its first flag in the window (valid where detected)."""
        cs = np.concatenate([[0], np.cumsum(flag, dtype=np.int64)])
        det = cs[self.ev_stop] > cs[self.ev_start]
        idx = np.flatnonzero(flag)
        first = idx[np.minimum(np.searchsorted(idx, self.ev_start, "left"), max(idx.size - 1, 0))] if idx.size else self.ev_start
        return det, first

    def predicted(self, flag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detected events (runs of flags per device, joined across gaps up to ``merge_gap_s``):
        their first rows and whether each holds a flag inside a fault window."""
        idx = np.flatnonzero(flag)
        if idx.size == 0:
            return idx, np.empty(0, bool)
        new = np.ones(idx.size, bool)
        new[1:] = (np.diff(self.row_ts[idx]) > self.merge_us) | (np.diff(self.device_code[idx]) != 0)
        starts = np.flatnonzero(new)
        true = np.maximum.reduceat(self.in_window[idx].astype(np.int8), starts) > 0
        return idx[starts], true


def _event_index(y_true, meta: dict[str, Any] | None) -> _Events:
    if not isinstance(meta, dict) or "events" not in meta:
        raise InputError("m17 scoring needs meta with the test rows' ts_us, device_id and the events table (the dataset's meta_test)")
    n = len(y_true)
    idx = meta.get("_index")
    if idx is None or idx.n != n:
        idx = _Events(n, meta)
        meta["_index"] = idx
    return idx


def _f1(precision, recall):
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * precision * recall / (precision + recall)
    return np.where(np.isfinite(f1), f1, 0.0)


def event_scores(y_true, y_pred, meta: dict[str, Any]) -> dict[str, float]:
    """Event-level precision, recall, F1 and detection delays (see the module docstring)."""
    idx = _event_index(y_true, meta)
    flag = _flags(y_pred)
    det, first = idx.detected(flag)
    _, true = idx.predicted(flag)
    n_ev = idx.ev_start.size
    recall = det.sum() / n_ev if n_ev else float("nan")
    precision = (flag & idx.in_window).sum() / flag.sum() if flag.any() else 1.0  # no flag: no false alarm
    delays_h = (idx.row_ts[first[det]] - idx.ev_ts[det]) / 3.6e9
    out = {
        "event_f1": float(_f1(precision, recall)), "point_precision": float(precision), "event_recall": float(recall),
        "run_precision": float(true.mean()) if true.size else float("nan"),
        "median_delay_h": float(np.median(delays_h)) if delays_h.size else float("nan"),
        "false_events_per_device_day": float((~true).sum() / max(idx.device_days, 1e-9)),
        "n_detected_events": float(true.size), "n_target_events": float(n_ev),
        "n_unobservable_events": float(idx.n_unobservable), "flagged_fraction": float(flag.mean()),
    }
    types = idx.ev_type[det]
    for t in sorted(set(idx.ev_type.tolist())):
        m = idx.ev_type == t
        out[f"recall_{t}"] = float(det[m].mean())
        out[f"median_delay_{t}_h"] = float(np.median(delays_h[types == t])) if (types == t).any() else float("nan")
    return out


def event_f1_terms(y_true, y_pred, meta: dict[str, Any]) -> tuple[np.ndarray, Any]:
    """``event_f1`` from per-row additive counts, for the device-block bootstrap: per row the target
    events detected and the target events counted on their first row, the flag inside a fault
    window and the flag."""
    idx = _event_index(y_true, meta)
    flag = _flags(y_pred)
    det, _ = idx.detected(flag)
    terms = np.zeros((idx.n, 4))
    np.add.at(terms[:, 0], idx.ev_row, det.astype(float))
    np.add.at(terms[:, 1], idx.ev_row, 1.0)
    terms[:, 2] = flag & idx.in_window
    terms[:, 3] = flag

    def combine(sums: np.ndarray) -> np.ndarray:
        detected, events, hits, flagged = np.atleast_2d(np.asarray(sums, float)).T
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = np.where(events > 0, detected / events, np.nan)
            precision = np.where(flagged > 0, hits / flagged, 1.0)
        return _f1(precision, recall)

    return terms, combine


# --------------------------------------------------------------------------- serving


def serve_pv_anomaly(est, readings, plant, *, since=None) -> pd.DataFrame:
    """How the inference engine serves m17 (role ``pv_anomaly``): score and flag of each reading.

    Parameters
    ----------
    est : the fitted :class:`PvAnomaly` (or the baseline that serves in its place).
    readings : pv readings (polars or pandas; kind ``pv``: ts [UTC], device_id and the telemetry
        columns); the trailing features read the device's past, so include the 10 days before
        the readings to score.
    plant : the plant's ratings (pv_kw, inverter_kw [kW]; optionally gamma_pdc [1/K], eta_inv_nom [1]).
    since : only readings at or after this instant [UTC] are returned (the earlier ones are history).

    Returns
    -------
    DataFrame
        ``device_id``, ``ts``, ``score`` [1] and ``flag`` per reading, sorted by device and time.
    """
    from ...datasets.maintenance.pv_anomaly import pv_anomaly_features

    rows = pv_anomaly_features(readings, plant)
    if since is not None:
        rows = rows[pd.to_datetime(rows["ts"], utc=True) >= pd.Timestamp(since, tz="UTC" if pd.Timestamp(since).tz is None else None)]
        if rows.empty:
            raise InputError(f"m17 serving: no reading at or after since={since}; pass readings that reach it")
    rows = rows.reset_index(drop=True)
    out = est.predict(rows[list(INPUT_COLUMNS)])
    return pd.concat([rows[["device_id", "ts"]], out[list(OUTPUTS)].reset_index(drop=True)], axis=1)


#: how the inference engine serves m17 (role ``pv_anomaly``)
SERVING = serve_pv_anomaly

__all__ = ["INPUT_COLUMNS", "RAW_COLUMNS", "RESIDUAL_COLUMNS", "PerformanceRatioRule", "PvAnomaly",
           "RawTelemetryIsolationForest", "ResidualIsolationForest", "event_f1_terms", "event_scores", "serve_pv_anomaly"]
