"""Power-quality waveform windows (IEEE 1159 disturbance classes) for the harmonic-analysis model.

A window is 10 cycles of a 50 Hz phase voltage (230 V RMS nominal) sampled at 3.2 kHz:
64 samples per cycle, 640 samples, 0.2 s. Each class follows the usual parametric
definitions of the PQ-classification literature (IEEE 1159 magnitudes), with the start
phase ``phi`` uniform in [0, 2 pi), the event onset uniform inside the window and
``A = 230 sqrt(2)`` [V]:

=====================  =====================================================================
class                  definition (``s(t) = sin(w t + phi)``, ``u`` = 1 inside the event)
=====================  =====================================================================
normal                 ``A m s``, m ~ U(0.95, 1.05)
sag                    ``A (1 - (1 - m) u) s``, retained m ~ U(0.1, 0.9), 1-9 cycles
swell                  same with m ~ U(1.1, 1.8)
interruption           same with m ~ U(0, 0.1)
harmonics              ``A (s + sum_h a_h sin(h (w t + phi) + psi_h))`` over h = 3, 5, 7, 9, 11, 13,
                       THD ~ U(5, 20) % split at random over the orders (weights ~ 1/h)
flicker                ``A (1 + lam sin(2 pi f_f t)) s``, lam ~ U(0.05, 0.2), f_f ~ U(8, 25) Hz
oscillatory_transient  ``A s + b A exp(-(t - t1) / tau) sin(2 pi f_n (t - t1)) u``, b ~ U(0.1, 0.8),
                       f_n ~ U(300, 900) Hz, tau ~ U(8, 40) ms
notch                  once per cycle the voltage is pulled towards zero by depth k ~ U(0.1, 0.4)
                       of the peak over a width of 0.03-0.06 cycle (2-4 samples)
sag_harmonics          sag times the harmonic waveform (THD 5-20 %)
swell_harmonics        swell times the harmonic waveform
=====================  =====================================================================

Label columns: ``magnitude_pu`` is the class's defining magnitude (retained RMS for sag /
swell / interruption and their harmonic variants, ``m`` for normal, 1 for harmonics, the
modulation depth ``lam`` for flicker, ``b`` for a transient, ``k`` for a notch);
``duration_cycles`` is the event length (transient: its time constant) or 10 for
window-long phenomena; ``thd_true_pct`` is the THD of the injected harmonic set (0 for
classes without one). Gaussian noise is added at ``snr_db`` relative to the mean power of
the clean window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl

from ..config import NOMINAL_FREQUENCY_HZ, NOMINAL_VOLTAGE_V
from .registry import Param, RunSpec, Scenario, SimChunk, register

F_NOMINAL = NOMINAL_FREQUENCY_HZ  # [Hz]
V_RMS = NOMINAL_VOLTAGE_V  # [V]
SAMPLES_PER_CYCLE = 64
CYCLES = 10
SAMPLE_RATE = F_NOMINAL * SAMPLES_PER_CYCLE  # 3200 Hz
N_SAMPLES = SAMPLES_PER_CYCLE * CYCLES  # 640
CLASSES = (
    "normal", "sag", "swell", "interruption", "harmonics", "flicker",
    "oscillatory_transient", "notch", "sag_harmonics", "swell_harmonics",
)
HARMONIC_ORDERS = np.array([3, 5, 7, 9, 11, 13])
_T = np.arange(N_SAMPLES) / SAMPLE_RATE  # [s]
_W = 2 * math.pi * F_NOMINAL  # [rad/s]


def _event_mask(rng: np.random.Generator, n: int, min_cycles: float, max_cycles: float) -> tuple[np.ndarray, np.ndarray]:
    """Event indicator (n, 640) with a random onset and a duration [cycles] that fits the window."""
    duration = rng.uniform(min_cycles, max_cycles, n)
    onset = rng.uniform(0, CYCLES - duration)
    cycles = _T * F_NOMINAL
    inside = (cycles >= onset[:, None]) & (cycles < (onset + duration)[:, None])
    return inside.astype(float), duration


def _harmonic_part(rng: np.random.Generator, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic content (n, 640) relative to a unit fundamental, and its THD [%]."""
    n = phi.size
    thd = rng.uniform(5, 20, n)
    weights = rng.uniform(0, 1, (n, HARMONIC_ORDERS.size)) / HARMONIC_ORDERS
    amplitudes = weights / np.linalg.norm(weights, axis=1, keepdims=True) * (thd[:, None] / 100)
    psi = rng.uniform(0, 2 * math.pi, (n, HARMONIC_ORDERS.size))
    angle = HARMONIC_ORDERS[None, :, None] * (_W * _T[None, None, :] + phi[:, None, None]) + psi[:, :, None]
    return np.einsum("nh,nht->nt", amplitudes, np.sin(angle)), thd


def _class_windows(label: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Clean windows [pu of peak] of one class with their label values."""
    phi = rng.uniform(0, 2 * math.pi, n)
    s = np.sin(_W * _T[None, :] + phi[:, None])
    ones, full = np.ones(n), np.full(n, float(CYCLES))
    thd = np.zeros(n)
    base = label.removesuffix("_harmonics")
    if base in ("sag", "swell", "interruption"):
        lo, hi = {"sag": (0.1, 0.9), "swell": (1.1, 1.8), "interruption": (0.0, 0.1)}[base]
        magnitude = rng.uniform(lo, hi, n)
        inside, duration = _event_mask(rng, n, 1.0, 9.0)
        envelope = 1 - (1 - magnitude[:, None]) * inside
        if label.endswith("_harmonics"):
            harmonics, thd = _harmonic_part(rng, phi)
            s = s + harmonics
        wave = envelope * s
    elif label == "normal":
        magnitude, duration = rng.uniform(0.95, 1.05, n), full
        wave = magnitude[:, None] * s
    elif label == "harmonics":
        harmonics, thd = _harmonic_part(rng, phi)
        magnitude, duration = ones, full
        wave = s + harmonics
    elif label == "flicker":
        magnitude, duration = rng.uniform(0.05, 0.2, n), full
        f_flicker = rng.uniform(8, 25, n)
        wave = (1 + magnitude[:, None] * np.sin(2 * math.pi * f_flicker[:, None] * _T[None, :])) * s
    elif label == "oscillatory_transient":
        magnitude = rng.uniform(0.1, 0.8, n)
        f_ring, tau = rng.uniform(300, 900, n), rng.uniform(0.008, 0.040, n)
        onset = rng.uniform(0, 0.8 * CYCLES / F_NOMINAL, n)
        since = _T[None, :] - onset[:, None]
        ring = np.exp(-np.clip(since, 0, None) / tau[:, None]) * np.sin(2 * math.pi * f_ring[:, None] * since)
        wave = s + magnitude[:, None] * ring * (since >= 0)
        duration = tau * F_NOMINAL
    elif label == "notch":
        magnitude = rng.uniform(0.1, 0.4, n)
        width = rng.uniform(0.03, 0.06, n)  # [cycles]
        position = rng.uniform(0, 1 - width, n)  # within each cycle
        in_cycle = (_T * F_NOMINAL) % 1.0
        notch = (in_cycle >= position[:, None]) & (in_cycle < (position + width)[:, None])
        wave = s - np.sign(s) * np.minimum(np.abs(s), magnitude[:, None]) * notch
        duration = full
    else:
        raise ValueError(f"unknown waveform class {label!r}; choose from {', '.join(CLASSES)}")
    return wave, {"magnitude_pu": magnitude, "duration_cycles": duration, "start_phase_rad": phi, "thd_true_pct": thd}


def generate_windows(
    n_per_class: int, snr_db: float, seed: int, classes: tuple[str, ...] | list[str] | None = None
) -> tuple[np.ndarray, pl.DataFrame]:
    """Labelled 10-cycle voltage windows: samples (n, 640) float32 [V] and a label frame.

    ``snr_db`` [dB] sets Gaussian noise relative to each clean window's mean power
    (``math.inf`` for none). Windows are shuffled; ``window_id`` is the row index.
    Label columns: window_id, label, magnitude_pu, duration_cycles, start_phase_rad [rad],
    snr_db [dB], thd_true_pct [%].
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1 (got {n_per_class})")
    if not (snr_db > 0):
        raise ValueError(f"snr_db must be > 0 dB (got {snr_db})")
    classes = tuple(classes or CLASSES)
    rng = np.random.default_rng(seed)
    waves, labels = [], []
    for label in classes:
        wave, values = _class_windows(label, n_per_class, rng)
        waves.append(wave)
        labels.append(pl.DataFrame({"label": [label] * n_per_class, **values}))
    clean = np.concatenate(waves) * V_RMS * math.sqrt(2)
    if math.isfinite(snr_db):
        noise_power = np.mean(clean**2, axis=1, keepdims=True) / 10 ** (snr_db / 10)
        clean = clean + rng.standard_normal(clean.shape) * np.sqrt(noise_power)
    order = rng.permutation(clean.shape[0])
    frame = pl.concat(labels)[order].with_columns(pl.lit(float(snr_db)).alias("snr_db"))
    frame = frame.with_row_index("window_id").with_columns(pl.col("window_id").cast(pl.Int64))
    columns = ["window_id", "label", "magnitude_pu", "duration_cycles", "start_phase_rad", "snr_db", "thd_true_pct"]
    return clean[order].astype(np.float32), frame.select(columns)


def _run(run: RunSpec, p: dict[str, Any]) -> Iterator[SimChunk]:
    samples, labels = generate_windows(p["n_per_class"], p["snr_db"], run.seed)
    offsets = (labels["window_id"].to_numpy() * run.resolution_s * 1e6).astype("timedelta64[us]")
    ts = pl.Series("ts", np.datetime64(run.start.replace(tzinfo=None), "us") + offsets).dt.replace_time_zone("UTC")
    labels = labels.with_columns(ts.alias("ts"))
    per_chunk = max(1, int(run.chunk_s // run.resolution_s))
    for first in range(0, labels.height, per_chunk):
        part = labels.slice(first, per_chunk)
        block = samples[first : first + part.height]
        long = pl.DataFrame({
            "ts": np.repeat(part["ts"].to_numpy(), N_SAMPLES),
            "window_id": np.repeat(part["window_id"].to_numpy(), N_SAMPLES),
            "sample": np.tile(np.arange(N_SAMPLES, dtype=np.int32), part.height),
            "volts": block.ravel(),
        }).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
        yield SimChunk(truth={"waveform_windows": part, "waveform_samples": long})


register(Scenario(
    "pq_waveforms",
    twin="waveforms",
    description="labelled 10-cycle 50 Hz voltage windows (3.2 kHz) of the 10 IEEE 1159 classes for the harmonic-analysis model; "
    "one window every resolution step from start, truth tables waveform_windows and waveform_samples",
    params={
        "n_per_class": Param(100, "", "windows per class", 1, 20_000),
        "snr_db": Param(30.0, "dB", "signal-to-noise ratio of the additive Gaussian noise", 10.0, 80.0),
    },
    run=_run,
    min_resolution_s=0.2,
    max_resolution_s=3600.0,
))
