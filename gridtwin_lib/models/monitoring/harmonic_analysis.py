"""m02 harmonic_analysis: IEEE 1159 disturbance class of a 10-cycle voltage window.

Input (``predict``, ``fit``, ``spectrum``): one row per window, 640 instantaneous phase
voltage samples [V] at 3.2 kHz (64 samples per cycle of 50 Hz, 10 cycles, 0.2 s), as a
DataFrame with columns ``v_000`` .. ``v_639`` (oldest sample first) or a float array
(n, 640). The window must start on a sample of the 3.2 kHz clock; it need not start on a
zero crossing.

Why FFT features: the classes differ in *where* their energy sits. Harmonics sit on
exact multiples of 50 Hz of the whole-window FFT (bin ``10 h``); sags, swells,
interruptions and flicker modulate the fundamental and spread it into the neighbouring
bins and into the per-cycle fundamental; an oscillatory transient is a 300-900 Hz burst
localised in one or two cycles; a notch repeats every cycle, so it survives in the
per-cycle spectrum at high orders but cancels in the cycle-to-cycle difference. The
RandomForest learns the class boundaries from these features, including how they move
with the noise floor (which it also sees), so one forest serves 20-40 dB SNR.

THD and h2..h15 are reported straight from the whole-window FFT (:meth:`spectrum`,
IEC 61000-4-7 style: a 10-cycle window puts harmonic h exactly on bin 10 h).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from ...config import NOMINAL_VOLTAGE_V
from ...errors import InputError
from .._trees import forest_proba
from ..base import Baseline, GridModel, ModelSpec, input_matrix

V_NOMINAL = NOMINAL_VOLTAGE_V  # [V] RMS, phase to neutral
SAMPLES_PER_CYCLE = 64
CYCLES = 10
N_SAMPLES = SAMPLES_PER_CYCLE * CYCLES  # 640
SAMPLE_COLUMNS = [f"v_{k:03d}" for k in range(N_SAMPLES)]
HARMONICS = tuple(range(2, 16))  # h2..h15
CLASSES = (
    "normal", "sag", "swell", "interruption", "harmonics", "flicker",
    "oscillatory_transient", "notch", "sag_harmonics", "swell_harmonics",
)
SNR_LEVELS_DB = (20.0, 30.0, 40.0)
_SAMPLE_INDEX = pd.Index(SAMPLE_COLUMNS)
_BINS = np.arange(N_SAMPLES // 2 + 1)  # whole-window FFT bins, 5 Hz each
_NONHARM = (_BINS % CYCLES) != 0
# non-harmonic bins lo..hi-1 of each band of fft_features, and the 1000-1600 Hz noise-floor bins
_NONHARMONIC_BINS = {(lo, hi): _BINS[_NONHARM & (lo <= _BINS) & (hi > _BINS)]
                     for lo, hi in ((1, 8), (8, 13), (13, 20), (20, 60), (60, 190), (190, N_SAMPLES // 2 + 1))}
_FLOOR_BINS = _BINS[200:320][_NONHARM[200:320]]


# --------------------------------------------------------------------------- FFT


def _as_windows(X) -> np.ndarray:
    """Windows as float64 (n, 640) [V]; refuse anything else with one clear line."""
    arr = input_matrix(X, _SAMPLE_INDEX, "m02", "640 samples v_000..v_639 [V] (10 cycles at 3.2 kHz)", any_names=True)
    return arr


def _spectrum_arrays(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fundamental RMS [V], h2..h15 [% of fundamental], THD [%] from the whole-window FFT."""
    mag = np.abs(np.fft.rfft(v, axis=1)) * (2.0 / N_SAMPLES)  # peak amplitude per 5 Hz bin
    fund = mag[:, CYCLES]
    safe = np.where(fund > 0, fund, np.nan)
    h = mag[:, [CYCLES * k for k in HARMONICS]] / safe[:, None] * 100.0
    thd = np.sqrt((h**2).sum(axis=1))
    return fund / math.sqrt(2.0), h, thd


def harmonic_spectrum(X) -> pd.DataFrame:
    """THD and h2..h15 of each window from its FFT (see :meth:`HarmonicAnalysis.spectrum`)."""
    v = _as_windows(X)
    fund_rms, h, thd = _spectrum_arrays(v)
    out = pd.DataFrame(h, columns=[f"h{k}" for k in HARMONICS])
    out.insert(0, "thd_pct", thd)
    out.insert(0, "fundamental_v", fund_rms)
    if isinstance(X, pd.DataFrame):
        out.index = X.index
    return out


def _median_rows(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=1)`` of a 2-D array, bit for bit, without np.median's per-call overhead
    (~25 us, ten calls per reading): the mean of the middle one or two sorted values."""
    m = a.shape[1]
    s = np.sort(a, axis=1)
    med = s[:, m // 2].copy() if m % 2 else (s[:, m // 2 - 1] + s[:, m // 2]) / 2.0
    nan_rows = np.isnan(s[:, -1])  # NaN sorts last; np.median returns NaN for such rows
    if nan_rows.any():
        med[nan_rows] = np.nan
    return med


def _sliding_rms_pu(x: np.ndarray, width: int) -> np.ndarray:
    """RMS over every ``width``-sample window [pu of nominal RMS]; ``x`` in pu of nominal peak."""
    c = np.cumsum(np.concatenate([np.zeros((x.shape[0], 1)), x**2], axis=1), axis=1)
    return np.sqrt(np.clip((c[:, width:] - c[:, :-width]) / width, 0, None) * 2.0)


def fft_features(X) -> pd.DataFrame:
    """The feature table of the classifier (one row per window, dimensionless or pu).

    pu is relative to the nominal peak ``230 sqrt(2)`` V (RMS features: to 230 V).
    """
    values, names = _feature_matrix(_as_windows(X))
    return pd.DataFrame(values, columns=names)


def _feature_matrix(v: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """:func:`fft_features` of validated windows ``v`` (n, 640) [V] as a float64 matrix (no
    DataFrame: a few hundred microseconds less per reading), non-finite values set to 0."""
    x = v / (V_NOMINAL * math.sqrt(2.0))
    n = x.shape[0]
    f: dict[str, np.ndarray] = {}
    eps = 1e-9

    # whole window: 5 Hz bins, harmonic h on bin 10 h
    mag = np.abs(np.fft.rfft(x, axis=1)) * (2.0 / N_SAMPLES)
    pw = mag**2
    fund = mag[:, CYCLES] + eps
    f["fund_pu"] = mag[:, CYCLES]
    h = mag[:, [CYCLES * k for k in HARMONICS]] / fund[:, None]
    for k, col in zip(HARMONICS, h.T):
        f[f"h{k}"] = col
    f["thd"] = np.sqrt((h**2).sum(axis=1))
    f["thd_odd"] = np.sqrt((h[:, 1::2] ** 2).sum(axis=1))
    f["thd_even"] = np.sqrt((h[:, 0::2] ** 2).sum(axis=1))
    high_orders = [CYCLES * k for k in range(16, 32)]
    f["h16_31"] = np.sqrt(pw[:, high_orders].sum(axis=1)) / fund

    def band(lo, hi):  # RMS of the non-harmonic bins lo..hi-1 relative to the fundamental
        return np.sqrt(pw[:, _NONHARMONIC_BINS[(lo, hi)]].sum(axis=1)) / fund

    f["side_near"] = band(8, 13)  # 40-60 Hz: slow envelope (long sag / swell)
    f["side_flicker"] = np.sqrt(band(1, 8) ** 2 + band(13, 20) ** 2)  # 5-35 / 65-95 Hz sidebands
    f["inter_100_300"] = band(20, 60)
    f["inter_300_950"] = band(60, 190)
    f["inter_950_1600"] = band(190, N_SAMPLES // 2 + 1)
    floor = _median_rows(mag[:, _FLOOR_BINS]) + eps
    f["noise_floor_db"] = 20 * np.log10(floor / fund)
    f["inter_300_950_over_floor"] = np.log((band(60, 190) * fund + eps) / floor)

    # sliding RMS: sag / swell / interruption depth and fluctuation
    rms1 = _sliding_rms_pu(x, SAMPLES_PER_CYCLE)
    rms_half = _sliding_rms_pu(x, SAMPLES_PER_CYCLE // 2)
    f["rms_mean"] = rms1.mean(axis=1)
    f["rms_min"], f["rms_max"] = rms1.min(axis=1), rms1.max(axis=1)
    f["rms_p10"], f["rms_p90"] = np.percentile(rms1, [10, 90], axis=1)
    f["rms_std"] = rms1.std(axis=1)
    f["rms_half_min"], f["rms_half_max"] = rms_half.min(axis=1), rms_half.max(axis=1)
    below, above = rms1 < 0.9, rms1 > 1.1
    f["frac_below_0p9"], f["frac_above_1p1"] = below.mean(axis=1), above.mean(axis=1)
    # envelope modulation (flicker): half-cycle RMS, detrended, its 10-25 Hz share
    half = np.sqrt((x.reshape(n, 2 * CYCLES, SAMPLES_PER_CYCLE // 2) ** 2).mean(axis=2) * 2.0)
    env = half - half.mean(axis=1, keepdims=True)
    env_spec = np.abs(np.fft.rfft(env, axis=1))  # 20 values at 100 Hz: 5 Hz bins
    f["env_10_25hz"] = env_spec[:, 2:6].sum(axis=1) / (env_spec[:, 1:].sum(axis=1) + eps)
    f["env_std"] = env.std(axis=1)
    sign_changes = np.abs(np.diff(np.sign(env), axis=1)).sum(axis=1) / 2
    f["env_crossings"] = sign_changes

    # per cycle: fundamental and distortion of each cycle
    xc = x.reshape(n, CYCLES, SAMPLES_PER_CYCLE)
    fc = np.abs(np.fft.rfft(xc, axis=2)) * (2.0 / SAMPLES_PER_CYCLE)  # (n, 10, 33): bin k = order k
    fund_c = fc[:, :, 1] + eps
    srt = np.sort(fund_c, axis=1)
    for k in (0, 1, 2, 5, 7, 8, 9):
        f[f"cycle_fund_sorted_{k}"] = srt[:, k]
    f["cycle_fund_std"] = fund_c.std(axis=1)
    hf_c = np.sqrt((fc[:, :, 6:] ** 2).sum(axis=2)) / fund_c  # orders 6-32 per cycle
    lo_c = np.sqrt((fc[:, :, 2:6] ** 2).sum(axis=2)) / fund_c  # orders 2-5 per cycle
    f["cycle_hf_max"], f["cycle_hf_med"] = hf_c.max(axis=1), _median_rows(hf_c)
    f["cycle_hf_ratio"] = f["cycle_hf_max"] / (f["cycle_hf_med"] + eps)
    f["cycle_lo_med"] = _median_rows(lo_c)
    f["cycle_orders_16_32"] = _median_rows(np.sqrt((fc[:, :, 16:] ** 2).sum(axis=2)) / fund_c)

    # cycle-to-cycle difference: periodic content (harmonics, notches) cancels,
    # what changes (transients, event edges, flicker) and the noise remain
    d = xc[:, 1:, :] - xc[:, :-1, :]
    fd = np.abs(np.fft.rfft(d, axis=2)) * (2.0 / SAMPLES_PER_CYCLE)
    d_fund = fd[:, :, 1]
    d_hf = np.sqrt((fd[:, :, 6:19] ** 2).sum(axis=2))  # 300-900 Hz
    d_top = np.sqrt((fd[:, :, 19:] ** 2).sum(axis=2)) + eps  # above 950 Hz: mostly noise
    f["diff_fund_max"], f["diff_fund_med"] = d_fund.max(axis=1), _median_rows(d_fund)
    d_hf_med = _median_rows(d_hf)
    f["diff_hf_max"], f["diff_hf_med"] = d_hf.max(axis=1), d_hf_med
    f["diff_hf_max_over_noise"] = np.log((d_hf.max(axis=1) + eps) / _median_rows(d_top))
    f["diff_hf_max_over_med"] = np.log((d_hf.max(axis=1) + eps) / (d_hf_med + eps))

    # sample to sample: steps of notches and transients against the noise
    dx = np.abs(np.diff(x, axis=1))
    med = _median_rows(dx) + eps
    f["step_max"] = dx.max(axis=1)
    f["step_p99_over_med"] = np.percentile(dx, 99, axis=1) / med
    f["step_max_over_med"] = dx.max(axis=1) / med
    d2 = np.abs(np.diff(x, n=2, axis=1))
    f["curv_max_over_med"] = d2.max(axis=1) / (_median_rows(d2) + eps)
    values = np.empty((n, len(f)))
    for j, col in enumerate(f.values()):
        values[:, j] = col
    values[~np.isfinite(values)] = 0.0
    return values, list(f)


def _labels(y) -> np.ndarray:
    if isinstance(y, pd.DataFrame):
        y = y["label"]
    arr = np.asarray(y).astype(str)
    unknown = sorted(set(arr) - set(CLASSES))
    if unknown:
        raise InputError(f"m02: unknown class labels {unknown[:3]}; labels must be IEEE 1159 classes {', '.join(CLASSES)}")
    return arr


# --------------------------------------------------------------------------- model


class HarmonicAnalysis(GridModel):
    """FFT features + RandomForest: IEEE 1159 class of a 10-cycle window, plus THD [%].

    ``predict(X)`` returns a DataFrame with ``label`` (one of :data:`CLASSES`) and
    ``thd_pct`` [% of fundamental, h2..h15, from the FFT]; ``spectrum(X)`` the full
    h2..h15 spectrum. ``y`` for ``fit``: the class labels (Series/array of str).

    Parameters
    ----------
    n_estimators, max_features, min_samples_leaf, class_weight : int, str or float, int, str or None
        Passed to :class:`sklearn.ensemble.RandomForestClassifier`.
    n_jobs : int
        Threads of the forest.
    random_state : int
        Seed of the forest.

    Attributes
    ----------
    forest_ : RandomForestClassifier
        Fitted on the FFT features ``feature_names_`` (THD [%], h2..h15 [% of fundamental], RMS [pu]).
    classes_ : ndarray of str
        The IEEE 1159 classes seen in training.
    """

    spec = ModelSpec(
        model_id="m02_harmonic_analysis",
        module="monitoring",
        algorithm="FFT features + RandomForest",
        baseline="threshold rules on RMS and THD (IEEE 1159 magnitudes)",
        target="IEEE 1159 disturbance class of a 10-cycle waveform window (waveform twin's label)",
        primary_metric="macro_f1",
        greater_is_better=True,
        output_units={"label": "IEEE 1159 class", "thd_pct": "%"},
        secondary_metrics=("macro_f1_snr20", "macro_f1_snr30", "macro_f1_snr40", "accuracy", "thd_mae_pct"),
    )

    def __init__(self, n_estimators: int = 300, max_features: str | float = "sqrt", min_samples_leaf: int = 1,
                 class_weight: str | None = None, n_jobs: int = 2, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y):
        features = fft_features(X)
        labels = _labels(y)
        if len(labels) != len(features):
            raise InputError(f"m02: {len(features)} windows but {len(labels)} labels; pass one label per window")
        self.forest_ = RandomForestClassifier(
            n_estimators=self.n_estimators, max_features=self.max_features, min_samples_leaf=self.min_samples_leaf,
            class_weight=self.class_weight, n_jobs=self.n_jobs, random_state=self.random_state,
        ).fit(features.to_numpy(), labels)
        self.feature_names_ = list(features.columns)
        self.classes_ = self.forest_.classes_
        self.__dict__.pop("_flat_forests", None)
        return self

    def _proba(self, features: np.ndarray) -> np.ndarray:
        """Forest class fractions of a feature matrix: small batches (single readings) through the
        verified NumPy walk of :func:`._trees.forest_proba`, large ones through scikit-learn."""
        return forest_proba(self, self.forest_, features)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, len(classes_)), columns in the order of ``classes_``."""
        return self._proba(_feature_matrix(_as_windows(X))[0])

    def predict(self, X) -> pd.DataFrame:
        v = _as_windows(X)
        proba = self._proba(_feature_matrix(v)[0])
        label = self.forest_.classes_.take(np.argmax(proba, axis=1), axis=0)
        _, _, thd = _spectrum_arrays(v)
        out = pd.DataFrame({"label": label.astype(str), "thd_pct": thd})
        if isinstance(X, pd.DataFrame):
            out.index = X.index
        return out

    def spectrum(self, X) -> pd.DataFrame:
        """fundamental_v [V RMS], thd_pct [%], h2..h15 [% of fundamental] of each window from its FFT."""
        return harmonic_spectrum(X)

    def feature_importances(self) -> pd.Series:
        return pd.Series(self.forest_.feature_importances_, index=self.feature_names_).sort_values(ascending=False)

    def baseline(self) -> RmsThdRules:
        return RmsThdRules()

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns __dict__ itself
        state.pop("_flat_forests", None)  # derived from forest_, rebuilt on first use
        return state

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        return score_classes(y_true, y_pred, meta)

    def figures(self, dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        return pq_figures(dataset, predictions)


class RmsThdRules(Baseline):
    """Baseline: IEEE 1159 threshold rules on the sliding one-cycle RMS and the THD.

    interruption if min RMS < 0.1 pu; sag if < 0.9 pu; swell if max RMS > 1.1 pu (either
    with THD > ``thd_limit_pct`` -> the ``_harmonics`` variant); harmonics if THD > limit;
    flicker if the per-cycle RMS varies by more than ``flicker_range_pu`` inside the 0.9-1.1 band;
    else normal. Transients and notches are invisible to RMS and THD rules (-> normal, or
    harmonics when a notch raises the THD). Nothing is learned: ``fit`` only checks input.
    """

    name = "IEEE 1159 rules on RMS and THD"

    def __init__(self, thd_limit_pct: float = 5.0, flicker_range_pu: float = 0.04):
        self.thd_limit_pct = thd_limit_pct
        self.flicker_range_pu = flicker_range_pu

    def fit(self, X, y=None):
        _as_windows(X)
        self.fitted_ = True
        return self

    def predict(self, X) -> pd.DataFrame:
        v = _as_windows(X)
        x = v / (V_NOMINAL * math.sqrt(2.0))
        rms = _sliding_rms_pu(x, SAMPLES_PER_CYCLE)
        lo, hi = rms.min(axis=1), rms.max(axis=1)
        per_cycle = np.sqrt((x.reshape(x.shape[0], CYCLES, SAMPLES_PER_CYCLE) ** 2).mean(axis=2) * 2.0)
        fluctuation = per_cycle.max(axis=1) - per_cycle.min(axis=1)
        _, _, thd = _spectrum_arrays(v)
        distorted = thd > self.thd_limit_pct
        label = np.select(
            [lo < 0.1, (lo < 0.9) & distorted, lo < 0.9, (hi > 1.1) & distorted, hi > 1.1, distorted,
             fluctuation > self.flicker_range_pu],
            ["interruption", "sag_harmonics", "sag", "swell_harmonics", "swell", "harmonics", "flicker"],
            default="normal",
        )
        out = pd.DataFrame({"label": label.astype(str), "thd_pct": thd})
        if isinstance(X, pd.DataFrame):
            out.index = X.index
        return out


class FftLogistic(Baseline):
    """m02 ladder: multinomial logistic regression (standardised, L2) on the model's own FFT
    features (:func:`fft_features`): the linear classifier a practitioner fits before a forest.
    Output like :class:`HarmonicAnalysis` (``label``, and ``thd_pct`` [%] from the FFT)."""

    name = "logistic regression on the FFT features"

    def __init__(self, C: float = 1.0, max_iter: int = 2000):
        self.C = C
        self.max_iter = max_iter

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        features, labels = fft_features(X), _labels(y)
        if len(labels) != len(features):
            raise InputError(f"m02: {len(features)} windows but {len(labels)} labels; pass one label per window")
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter))
        self.model_.fit(features.to_numpy(), labels)
        return self

    def predict(self, X) -> pd.DataFrame:
        v = _as_windows(X)
        label = self.model_.predict(_feature_matrix(v)[0])
        _, _, thd = _spectrum_arrays(v)
        out = pd.DataFrame({"label": label.astype(str), "thd_pct": thd})
        if isinstance(X, pd.DataFrame):
            out.index = X.index
        return out


# --------------------------------------------------------------------------- scoring


def _pred_labels(y_pred) -> np.ndarray:
    if isinstance(y_pred, pd.DataFrame):
        return y_pred["label"].to_numpy().astype(str)
    return np.asarray(y_pred).astype(str)


def score_classes(y_true, y_pred, meta=None) -> dict[str, float]:
    """macro-F1 (all rows and per SNR level when ``meta`` has ``snr_db``), accuracy and,
    where ``meta`` has ``thd_true_pct`` and ``y_pred`` a ``thd_pct``, the MAE [%] of the
    FFT THD on windows with injected harmonics."""
    yt, yp = _labels(y_true), _pred_labels(y_pred)
    labels = [c for c in CLASSES if c in set(yt) | set(yp)]
    out = {
        "macro_f1": f1_score(yt, yp, labels=labels, average="macro", zero_division=0),
        "accuracy": accuracy_score(yt, yp),
    }
    if meta is not None and "snr_db" in meta:
        snr = np.asarray(meta["snr_db"], dtype=float)
        for level in SNR_LEVELS_DB:
            sel = np.isclose(snr, level)
            if sel.any():
                out[f"macro_f1_snr{level:g}"] = f1_score(yt[sel], yp[sel], labels=labels, average="macro", zero_division=0)
    if meta is not None and "thd_true_pct" in meta and isinstance(y_pred, pd.DataFrame) and "thd_pct" in y_pred:
        true_thd = np.asarray(meta["thd_true_pct"], dtype=float)
        sel = true_thd > 0
        if sel.any():
            out["thd_mae_pct"] = float(np.mean(np.abs(y_pred["thd_pct"].to_numpy()[sel] - true_thd[sel])))
    return {k: float(v) for k, v in out.items()}


def pq_figures(dataset, predictions: dict[str, Any]) -> dict[str, Any]:
    """Confusion matrix of the model; macro-F1 per SNR and F1 per class, model vs baseline."""
    import plotly.graph_objects as go

    yt = _labels(dataset.y_test)
    figs: dict[str, Any] = {}
    model = _pred_labels(predictions["model"])
    cm = confusion_matrix(yt, model, labels=list(CLASSES))
    figs["confusion_matrix"] = go.Figure(go.Heatmap(z=cm, x=list(CLASSES), y=list(CLASSES), colorscale="Blues",
                                                    text=cm, texttemplate="%{text}"))
    figs["confusion_matrix"].update_layout(title="m02 confusion matrix (test windows, all SNR)",
                                           xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed")
    snr = np.asarray(dataset.meta_test["snr_db"], dtype=float) if dataset.meta_test is not None else None
    fig_snr, fig_cls = go.Figure(), go.Figure()
    for name, pred in predictions.items():
        yp = _pred_labels(pred)
        if snr is not None:
            levels = sorted(set(snr))
            f1s = [f1_score(yt[snr == s], yp[snr == s], labels=list(CLASSES), average="macro", zero_division=0) for s in levels]
            fig_snr.add_bar(x=[f"{s:g} dB" for s in levels], y=f1s, name=name)
        per_class = f1_score(yt, yp, labels=list(CLASSES), average=None, zero_division=0)
        fig_cls.add_bar(x=list(CLASSES), y=per_class, name=name)
    fig_snr.update_layout(title="macro-F1 by SNR", yaxis_title="macro-F1", yaxis_range=[0, 1], barmode="group")
    fig_cls.update_layout(title="F1 per class", yaxis_title="F1", yaxis_range=[0, 1], barmode="group")
    if snr is not None:
        figs["macro_f1_by_snr"] = fig_snr
    figs["f1_per_class"] = fig_cls
    return figs


# --------------------------------------------------------------------------- serving


def serve_waveforms(est, windows: pd.DataFrame) -> pd.DataFrame:
    """How the inference engine serves this model (role ``waveforms``): ``predict`` of the
    windows' samples (columns :data:`SAMPLE_COLUMNS` [V]), one row per window."""
    return est.predict(windows[list(SAMPLE_COLUMNS)])


SERVING = serve_waveforms
