"""m20 PV health index: 0-100 with a component breakdown, judged against the twin's hidden health.

One row per device and local day. Inputs (:data:`HEALTH_INPUT_COLUMNS`, built from pv readings by
:func:`gridtwin_lib.datasets.maintenance.health_index.daily_features`): performance ratio and DC ratio
against pvlib's expected output at the measured irradiance and temperature, the inverter's measured
efficiency (relative to nominal) and availability, the 95th percentile of the module temperature,
and the battery's usable capacity estimated
from its state-of-charge swings (relative to nominal); the performance ratio, DC ratio and battery
capacity also relative to the device's own commissioning days (``*_vs_commissioning``). Truth (``y``, :data:`HEALTH_TRUTH_COLUMNS`):
the twin's hidden health and its parts (:func:`gridtwin_lib.datasets.maintenance.health_index.hidden_health`).

The model (:class:`HealthIndex`) is one **monotone** (isotonic) map per component, then a
non-negative weighted sum:

============  ===========================================  ======================================
component     input (direction)                            calibrated to (training truth)
============  ===========================================  ======================================
power         ``dc_vs_commissioning`` (increasing)         the array's share of nominal capacity
inverter      ``efficiency_ratio * availability`` (incr.)  the inverter's share of nominal
battery       ``battery_capacity_vs_commissioning`` (inc.) the battery's usable share
temperature   ``module_temp_p95_c`` (decreasing)           the overall hidden health
============  ===========================================  ======================================

``health_index = sum_c weight_c * component_c`` with each ``component_c`` in 0-100 and the weights
(``weights_``, non-negative, summing to 1) fitted by non-negative least squares of the hidden
health on the four components: the breakdown adds up to the index exactly, and a component that
says nothing about health (temperature, in this twin: its derating is reversible) gets the
weight the data give it, possibly none.

Baselines: :class:`FixedWeightedScore`, the reference system's fixed weighted score (power 40 %,
temperature, battery and inverter efficiency 20 % each, with fixed normalisations), and
:class:`PerformanceRatioIndex` (the performance ratio alone, the first number a practitioner looks at).

Metrics: ``spearman`` (primary): rank correlation of the index with the hidden health over the
held-out device-days; ``spearman_<component>``: of each component with its truth; ``decline_fraction``:
the share of decline episodes (days before a failure or during a progressive fault on which the
hidden health falls, ``meta_test["decline_episode"]``) over which the index declines too (Kendall
tau of the index against the day < 0).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ...errors import InputError
from ..base import Baseline, GridModel, ModelSpec, input_matrix

HEALTH_INPUT_COLUMNS = pd.Index(["performance_ratio", "dc_ratio", "efficiency_ratio", "availability", "module_temp_p95_c",
                                 "battery_capacity_ratio", "performance_vs_commissioning",
                                 "dc_vs_commissioning", "battery_capacity_vs_commissioning"])
HEALTH_TRUTH_COLUMNS: tuple[str, ...] = ("health", "truth_power", "truth_inverter", "truth_battery")
COMPONENTS: tuple[str, ...] = ("power", "temperature", "battery", "inverter")
HEALTH_OUTPUTS: tuple[str, ...] = ("health_index", *[f"component_{c}" for c in COMPONENTS])
HEALTH_LAYOUT = ("m20 inputs per device-day: performance_ratio, dc_ratio, efficiency_ratio, availability [1], "
                 "module_temp_p95_c [degC], battery_capacity_ratio, performance_vs_commissioning, "
                 "dc_vs_commissioning, battery_capacity_vs_commissioning [1] "
                 "(datasets.maintenance.health_index.daily_features)")
#: the reference system's fixed weights (power first, the three others equal)
REFERENCE_WEIGHTS = {"power": 0.4, "temperature": 0.2, "battery": 0.2, "inverter": 0.2}
#: module temperature [degC] below which the reference scores temperature 100, and where it reaches 0
#: (85 degC: the qualification limit of IEC 61215's thermal tests)
TEMP_OK_C, TEMP_ZERO_C = 45.0, 85.0

_COL = {c: HEALTH_INPUT_COLUMNS.get_loc(c) for c in HEALTH_INPUT_COLUMNS}


def _matrix(X, who: str) -> np.ndarray:
    return input_matrix(X, HEALTH_INPUT_COLUMNS, who, HEALTH_LAYOUT)


def _out(components: dict[str, np.ndarray], weights: dict[str, float], index=None) -> pd.DataFrame:
    """Outputs [0-100]: the components and their weighted sum."""
    comp = {c: np.clip(np.asarray(components[c], float), 0.0, 100.0) for c in COMPONENTS}
    total = sum(weights[c] * comp[c] for c in COMPONENTS)
    return pd.DataFrame({"health_index": total, **{f"component_{c}": comp[c] for c in COMPONENTS}}, index=index)


def _component_inputs(arr: np.ndarray) -> dict[str, np.ndarray]:
    """The one input of each component's monotone map."""
    return {"power": arr[:, _COL["dc_vs_commissioning"]],
            "inverter": arr[:, _COL["efficiency_ratio"]] * arr[:, _COL["availability"]],
            "battery": arr[:, _COL["battery_capacity_vs_commissioning"]],
            "temperature": arr[:, _COL["module_temp_p95_c"]]}


def _truth(y, n: int, who: str) -> pd.DataFrame:
    if y is None:
        raise InputError(f"{who}: fit needs y (the twin's hidden health: {', '.join(HEALTH_TRUTH_COLUMNS)})")
    frame = y if isinstance(y, pd.DataFrame) else pd.DataFrame(np.asarray(y, float))
    if list(frame.columns) != list(HEALTH_TRUTH_COLUMNS):
        if not set(HEALTH_TRUTH_COLUMNS) <= set(frame.columns):
            raise InputError(f"{who}: y must have the columns {', '.join(HEALTH_TRUTH_COLUMNS)} [1] (the dataset's y)")
        frame = frame[list(HEALTH_TRUTH_COLUMNS)]
    if len(frame) != n or not np.isfinite(frame.to_numpy(float)).all():
        raise InputError(f"{who}: y must be {n} rows of finite {', '.join(HEALTH_TRUTH_COLUMNS)} [1] (the dataset's y)")
    return frame


class _MonotoneMap:
    """Isotonic regression of a share [0, 1] on one input [1 or degC].

    An isotonic fit is flat outside its training range, so a fault that goes further than training
    saw would stop lowering the score. For a share that is 0 when its input is 0 (``through_origin``:
    no DC power, no conversion, no usable capacity), inputs below the training range go linearly
    from the fit's lowest value to 0 at input 0; elsewhere the fit is clipped at its ends.
    """

    def __init__(self, increasing: bool, through_origin: bool):
        self.increasing, self.through_origin = increasing, through_origin

    def fit(self, x: np.ndarray, y: np.ndarray) -> _MonotoneMap:
        from sklearn.isotonic import IsotonicRegression

        self.iso_ = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=self.increasing, out_of_bounds="clip").fit(x, y)
        self.x_min_ = float(x.min())
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        out = self.iso_.predict(x)
        if self.through_origin and self.x_min_ > 0:
            below = x < self.x_min_
            out[below] = float(self.iso_.predict([self.x_min_])[0]) * np.clip(x[below], 0, None) / self.x_min_
        return np.clip(out, 0.0, 1.0)


class FixedWeightedScore(Baseline):
    """Named baseline of m20: the reference system's fixed weighted score, nothing learned.

    ``100 * (0.4 power + 0.2 temperature + 0.2 battery + 0.2 inverter)`` with power = the
    performance ratio clipped to [0, 1], temperature = 1 below 45 degC module temperature (95th
    percentile of the day) falling linearly to 0 at 85 degC, battery = the estimated usable capacity
    relative to nominal clipped to [0, 1], inverter = the measured efficiency relative to nominal
    clipped to [0, 1]. The weights are the reference's as the issue describes its score (power first,
    the other three equal); the normalisations are the plain ones such a score uses.
    """

    name = "reference fixed weighted score"
    spec = None  # set below

    def fit(self, X, y=None):
        _matrix(X, "m20 fixed weighted score")
        return self

    def predict(self, X):
        arr = _matrix(X, "m20 fixed weighted score")
        temp = arr[:, _COL["module_temp_p95_c"]]
        comps = {"power": 100 * np.clip(arr[:, _COL["performance_ratio"]], 0, 1),
                 "temperature": 100 * np.clip((TEMP_ZERO_C - temp) / (TEMP_ZERO_C - TEMP_OK_C), 0, 1),
                 "battery": 100 * np.clip(arr[:, _COL["battery_capacity_ratio"]], 0, 1),
                 "inverter": 100 * np.clip(arr[:, _COL["efficiency_ratio"]], 0, 1)}
        return _out(comps, REFERENCE_WEIGHTS, getattr(X, "index", None))


class PerformanceRatioIndex(Baseline):
    """m20 ladder: the performance ratio against the device's own commissioning days alone (clipped
    to [0, 1], times 100) as the index and as every component (no breakdown: what a PR monitor shows)."""

    name = "performance ratio alone"

    def fit(self, X, y=None):
        _matrix(X, "m20 performance ratio")
        return self

    def predict(self, X):
        arr = _matrix(X, "m20 performance ratio")
        pr = 100 * np.clip(arr[:, _COL["performance_vs_commissioning"]], 0, 1)
        return _out(dict.fromkeys(COMPONENTS, pr), {"power": 1.0, "temperature": 0.0, "battery": 0.0, "inverter": 0.0},
                    getattr(X, "index", None))


class HealthIndex(GridModel):
    """m20: a learned 0-100 health index of a PV + battery asset per device and day, with its breakdown.

    One isotonic regression per component (see the module docstring: its input, its direction, the
    truth it is calibrated to), then weights ``weights_`` by non-negative least squares of the hidden
    health on the components, normalised to sum to 1, so ``health_index = sum(weights_[c] * component_c)``.

    Parameters
    ----------
    min_component_weight : float
        Floor of each weight before normalisation [1] (0: a component may drop out of the index;
        it is still reported in the breakdown).

    Attributes
    ----------
    calibrators_ : dict of str to _MonotoneMap
        The monotone map of each component (input -> share of nominal [1]): isotonic, and linear
        to 0 at input 0 below the training range (power, inverter, battery).
    weights_ : dict of str to float
        The weight of each component in the index [1], summing to 1.
    """

    spec: ClassVar[ModelSpec] = ModelSpec(
        model_id="m20_health_index", module="maintenance",
        algorithm="isotonic calibration per component (power, temperature, battery, inverter) + non-negative weights",
        baseline="the reference system's fixed weighted score",
        target="the solar twin's hidden health per device-day (share of nominal delivered capacity, battery apart)",
        primary_metric="spearman", greater_is_better=True, output_units=dict.fromkeys(HEALTH_OUTPUTS, "0-100"),
        secondary_metrics=("decline_fraction", "spearman_power", "spearman_inverter", "spearman_battery"), block="device",
    )

    def __init__(self, min_component_weight: float = 0.0):
        self.min_component_weight = min_component_weight

    def fit(self, X, y=None):
        from scipy.optimize import nnls

        arr = _matrix(X, "m20")
        truth = _truth(y, arr.shape[0], "m20")
        if not 0 <= float(self.min_component_weight) < 1 / len(COMPONENTS):
            raise InputError(f"m20: min_component_weight must be in [0, {1 / len(COMPONENTS)}), got {self.min_component_weight}")
        inputs = _component_inputs(arr)
        targets = {"power": "truth_power", "inverter": "truth_inverter", "battery": "truth_battery", "temperature": "health"}
        self.calibrators_ = {c: _MonotoneMap(increasing=c != "temperature", through_origin=c != "temperature").fit(inputs[c], truth[targets[c]].to_numpy(float))
                             for c in COMPONENTS}
        # the deficits add up: 1 - health = sum_c w_c (1 - component_c) (a healthy asset scores 100)
        deficits = 1 - np.column_stack([self.calibrators_[c].predict(inputs[c]) for c in COMPONENTS])
        w, _ = nnls(deficits, 1 - truth["health"].to_numpy(float))
        w = np.maximum(w, float(self.min_component_weight))
        w = w / w.sum() if w.sum() > 0 else np.full(len(COMPONENTS), 1 / len(COMPONENTS))
        self.weights_ = {c: float(v) for c, v in zip(COMPONENTS, w, strict=True)}
        self.n_features_in_ = arr.shape[1]
        return self

    def predict(self, X):
        arr = _matrix(X, "m20")
        inputs = _component_inputs(arr)
        comps = {c: 100 * self.calibrators_[c].predict(inputs[c]) for c in COMPONENTS}
        return _out(comps, self.weights_, getattr(X, "index", None))

    def baseline(self):
        return FixedWeightedScore()

    # ------------------------------------------------------------------ judging
    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        """Spearman of the index with the hidden health (primary), of each component with its truth,
        and the share of decline episodes over which the index declines (Kendall tau < 0)."""
        truth = _truth(y_true, len(y_true), "m20 evaluate").to_numpy(float)
        if isinstance(y_pred, pd.DataFrame):
            pred = (y_pred if list(y_pred.columns) == list(HEALTH_OUTPUTS) else y_pred[list(HEALTH_OUTPUTS)]).to_numpy(float)
        else:
            pred = np.asarray(y_pred, float)
        out = {"spearman": _spearman(pred[:, 0], truth[:, 0]), "n_device_days": float(len(truth))}
        for c in ("power", "inverter", "battery"):
            out[f"spearman_{c}"] = _spearman(pred[:, HEALTH_OUTPUTS.index(f"component_{c}")], truth[:, HEALTH_TRUTH_COLUMNS.index(f"truth_{c}")])
        if meta is not None and "decline_episode" in meta and "day" in meta:
            declines = np.array(list(_declines(pred[:, 0], meta).values()), float)
            out["n_decline_episodes"] = float(len(declines))
            out["decline_fraction"] = float(np.mean(declines)) if declines.size else float("nan")
        return out

    def supplementary_metrics(self, dataset, ev, *, n_replicates: int, seed: int) -> dict[str, float]:
        """The decline before failures against each baseline, with a paired bootstrap by episode (each
        episode is one held-out device): ``decline_fraction_diff_<Baseline>`` (model − baseline, share
        of episodes [1]) and its ``_low``/``_high`` 95 % percentile bounds when ``n_replicates`` > 0."""
        from ...evaluation import block_counts, percentile_interval

        meta = dataset.meta_test
        if meta is None or "decline_episode" not in meta:
            return {}
        model = _declines(np.asarray(ev.predictions["model"]["health_index"], float), meta)
        if not model:
            return {}
        names = list(model)
        m = np.array([model[e] for e in names], float)
        codes, counts = block_counts(np.array(names), max(int(n_replicates), 1), seed)
        out = {}
        for name, fitted in ev.fitted_baselines.items():
            base = _declines(np.asarray(ev.ladder_predictions[name]["health_index"], float), meta)
            diff = m - np.array([base[e] for e in names], float)
            key = f"decline_fraction_diff_{type(fitted).__name__}"
            out[key] = float(diff.mean())
            if n_replicates > 0:
                per_block = np.bincount(codes, weights=diff, minlength=counts.shape[1])
                low, high = percentile_interval(counts @ per_block / counts.sum(axis=1))
                out[f"{key}_low"], out[f"{key}_high"] = float(low), float(high)
        return out

    def figures(self, dataset, predictions) -> dict[str, Any]:
        import plotly.graph_objects as go

        truth = dataset.y_test["health"].to_numpy()
        scatter = go.Figure()
        for name, pred in (("model", predictions["model"]), ("reference score", predictions["baseline"])):
            scatter.add_scatter(x=truth, y=pred["health_index"], mode="markers", name=name, opacity=0.6,
                                text=dataset.meta_test["device_id"] + " " + dataset.meta_test["date"].astype(str))
        scatter.update_layout(title="m20 health index against the twin's hidden health (held-out device-days)",
                              xaxis_title="hidden health [1]", yaxis_title="index [0-100]")
        return {"m20_index_vs_hidden_health": scatter}


FixedWeightedScore.spec = HealthIndex.spec


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (what ``scipy.stats.rankdata`` gives, faster)."""
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    counts = np.diff(np.r_[starts, len(a)])
    ranks = np.empty(len(a))
    ranks[order] = np.repeat(starts + (counts + 1) / 2, counts)
    return ranks


def _spearman(a, b) -> float:
    """Spearman's rank correlation [1] (average ranks for ties); NaN for a constant or a short input.
    Called once per bootstrap replicate, hence no scipy call overhead."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float(ra @ rb / np.sqrt((ra @ ra) * (rb @ rb)))


def _declines(index: np.ndarray, meta) -> dict[str, bool]:
    """Per decline episode of ``meta`` (3 days or more): does the index fall over its days (Kendall tau < 0)?"""
    episode = np.asarray(meta["decline_episode"], object)
    day = np.asarray(meta["day"], float)
    out = {}
    for ep in sorted(set(episode[episode != ""])):
        sel = episode == ep
        if np.unique(day[sel]).size >= 3:
            out[ep] = _kendall_sign(day[sel], index[sel]) < 0
    return out


def _kendall_sign(x, y) -> int:
    """The sign of Kendall's tau [1] (concordant minus discordant pairs): -1 when ``y`` declines with ``x``."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return int(np.sign(np.sum(np.sign(x[:, None] - x[None, :]) * np.sign(y[:, None] - y[None, :]))))


# --------------------------------------------------------------------------- serving


def serve_pv_health(est, readings, plant, *, utc_offset_h: float, battery_min_pv_kw: float = 2.0,
                    reference_days: int = 3) -> pd.DataFrame:
    """How the inference engine serves this model (role ``pv_health``): the index and its breakdown of
    every device and local day of ``readings``, from the training builder's features.

    Parameters
    ----------
    est : the fitted :class:`HealthIndex` (or the baseline that serves in its place).
    readings : pv readings (polars or pandas; the columns of
        :func:`gridtwin_lib.datasets.maintenance.health_index.daily_features`), from the devices'
        commissioning on (their first ``reference_days`` whole days are their reference).
    plant : the plant's solar-twin parameters (pv_kw, inverter_kw [kW], battery_kwh [kWh], ...).
    utc_offset_h, battery_min_pv_kw, reference_days : as the dataset's (its configuration).

    Returns
    -------
    DataFrame
        device_id, date (local day), ``health_index`` and ``component_<power|temperature|battery|inverter>`` [0-100].
    """
    import polars as pl

    from ...datasets.maintenance.health_index import daily_features

    frame = readings if isinstance(readings, pl.DataFrame) else pl.from_pandas(readings)
    feats = daily_features(frame, plant, utc_offset_h=utc_offset_h, battery_min_pv_kw=battery_min_pv_kw,
                           reference_days=reference_days)
    if feats.empty:
        return pd.DataFrame(columns=["device_id", "date", *HEALTH_OUTPUTS])
    out = est.predict(feats[list(HEALTH_INPUT_COLUMNS)].reset_index(drop=True))
    return pd.concat([feats[["device_id", "date"]].reset_index(drop=True), out[list(HEALTH_OUTPUTS)].reset_index(drop=True)], axis=1)


#: how the inference engine serves m20 (role ``pv_health``)
SERVING = serve_pv_health
