"""Dataset of m02 harmonic_analysis: labelled 10-cycle waveform windows from the store.

The waveform twin (scenario ``pq_waveforms``) writes its windows to two truth tables:
``waveform_windows`` (one row per window: ts, window_id, label, snr_db, thd_true_pct...)
and ``waveform_samples`` (640 rows per window: ts, window_id, sample, volts). The
samples are the model's input (they are what a PQ recorder would measure; the canonical
measurement kinds have no waveform record, so the twin keeps them with its truth), the
label is the class from ``waveform_windows``.

One run per SNR level (20, 30, 40 dB), each with its own seed (the same seed would give
the same clean windows at every SNR) and its own source. The runs share one timeline
(window k at ``start + k * resolution``), so the chronological split - train windows
strictly before test windows - leaves every SNR level in both parts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...errors import InputError
from ...models.base import Dataset
from ...models.monitoring.harmonic_analysis import N_SAMPLES, SAMPLE_COLUMNS

#: the waveform-twin runs it reads by default (runs per size: ``conf/base/models/monitoring/harmonic_analysis.yaml``)
PQ_SOURCES = ("sim:m02_pq_snr20", "sim:m02_pq_snr30", "sim:m02_pq_snr40")


def waveform_windows(store, source: str) -> pd.DataFrame:
    """The waveform twin's windows of ``source``: ts, window_id, label and metadata, and the
    samples ``v_000..v_639`` [V]. Shared by training and serving (m02)."""
    w = store.scan_truth("waveform_windows", source=source).collect()
    if w.height == 0:
        raise InputError(
            f"m02 dataset: no waveform windows of source {source!r} in {store}; simulate them first, "
            f"e.g. run_scenario('pq_waveforms', source={source!r}, ...) (conf/base/models/monitoring/harmonic_analysis.yaml)"
        )
    s = store.scan_truth("waveform_samples", source=source).select("window_id", "sample", "volts").collect()
    s = s.sort("window_id", "sample")
    ids = s["window_id"].to_numpy()
    n_win = s.height // N_SAMPLES
    if s.height != n_win * N_SAMPLES or not np.array_equal(ids[::N_SAMPLES], np.unique(ids)) \
            or not (s["sample"].to_numpy().reshape(n_win, N_SAMPLES) == np.arange(N_SAMPLES)).all():
        raise InputError(f"m02 dataset: waveform samples of {source!r} are incomplete (not 640 per window); "
                         "re-simulate the source into an empty store")
    block = pd.DataFrame(s["volts"].to_numpy().reshape(n_win, N_SAMPLES), columns=SAMPLE_COLUMNS)
    block["window_id"] = ids[::N_SAMPLES]
    w = w.sort("window_id").to_pandas()
    merged = w.merge(block, on="window_id", how="inner", validate="one_to_one")
    if len(merged) != len(w):
        raise InputError(f"m02 dataset: {len(w) - len(merged)} windows of {source!r} have no samples; re-simulate it")
    return merged


def harmonic_analysis(store, *, sources: list[str] | tuple[str, ...] = PQ_SOURCES, test_fraction: float = 0.3) -> Dataset:
    """Windows of ``sources`` split by time: the last ``test_fraction`` of the timeline is the test.

    X: DataFrame ``v_000..v_639`` [V]; y: Series of class labels; meta_*: ts, source,
    window_id, snr_db [dB], thd_true_pct [%], magnitude_pu, duration_cycles. Rows are
    ordered by (ts, source).
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"m02 dataset: test_fraction must be in (0, 1) (got {test_fraction})")
    sources = [sources] if isinstance(sources, str) else list(sources)
    if not sources:
        raise InputError("m02 dataset: no sources given; pass e.g. sources=['sim:m02_pq_snr20', ...]")
    windows = [waveform_windows(store, source) for source in sources]
    frame = pd.concat(windows, ignore_index=True).sort_values(["ts", "source", "window_id"], kind="stable")
    frame = frame.reset_index(drop=True)
    ts = frame["ts"]
    cut = ts.quantile(1.0 - test_fraction, interpolation="higher")
    train, test = frame[ts < cut], frame[ts >= cut]
    meta_cols = ["ts", "source", "window_id", "snr_db", "thd_true_pct", "magnitude_pu", "duration_cycles"]

    def part(df: pd.DataFrame):
        return (df[SAMPLE_COLUMNS].reset_index(drop=True), df["label"].reset_index(drop=True),
                df[meta_cols].reset_index(drop=True))

    X_train, y_train, meta_train = part(train)
    X_test, y_test, meta_test = part(test)
    iso = lambda t: pd.Timestamp(t).isoformat()  # noqa: E731
    split = {"train": [iso(train["ts"].min()), iso(train["ts"].max())] if len(train) else [None, None],
             "test": [iso(test["ts"].min()), iso(test["ts"].max())] if len(test) else [None, None],
             "rule": "by window time; every SNR source split at the same instant"}
    return Dataset(
        name="m02_harmonic_analysis",
        X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
        meta_train=meta_train, meta_test=meta_test, split=split,
        params={"sources": sources, "test_fraction": test_fraction},
        description="10-cycle 50 Hz voltage windows [V] (3.2 kHz) of the waveform twin; label = IEEE 1159 class; "
                    f"SNR levels {sorted(frame['snr_db'].unique().tolist())} dB",
    )


#: SNR levels [dB] of :func:`snr_curve`: below, inside and above the training levels 20-40 dB
SNR_CURVE_DB: tuple[float, ...] = (1.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0)


def snr_curve(estimators: dict, snr_db: tuple[float, ...] = SNR_CURVE_DB, n_per_class: int = 30, seed: int = 900) -> pd.DataFrame:
    """Macro-F1 of fitted m02-style estimators against SNR, on fresh windows of the waveform twin.

    Out of distribution on purpose: SNR levels outside the training range 20-40 dB (the twin
    refuses 0 dB, so the sweep starts at 1 dB) and disturbance parameters drawn with another
    seed than any training run. ``estimators``: name -> fitted estimator with ``predict(samples)``
    returning a ``label`` column (the model and its baselines). Returns one row per
    (estimator, snr_db) with ``macro_f1`` and ``n_windows``; every estimator sees the same windows.
    """
    from sklearn.metrics import f1_score

    from ...models.monitoring.harmonic_analysis import CLASSES
    from ...simulate.waveforms import generate_windows

    if not estimators:
        raise InputError("m02 snr_curve: no estimator given; pass {'model': fitted, ...}")
    rows = []
    for k, level in enumerate(snr_db):
        samples, labels = generate_windows(n_per_class, float(level), seed + k)
        X = pd.DataFrame(np.asarray(samples, dtype=float), columns=SAMPLE_COLUMNS)
        y = labels["label"].to_numpy().astype(str)
        present = [c for c in CLASSES if c in set(y)]
        for name, est in estimators.items():
            pred = est.predict(X)["label"].to_numpy().astype(str)
            rows.append({"estimator": name, "snr_db": float(level), "n_windows": int(len(y)),
                         "macro_f1": float(f1_score(y, pred, labels=present, average="macro", zero_division=0))})
    return pd.DataFrame(rows)
