"""The waveform twin: shapes, class definitions (RMS, THD from the FFT), noise level, determinism."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from gridtwin_lib.simulate import SimulationError, prepare, simulate
from gridtwin_lib.simulate.waveforms import (
    CLASSES,
    N_SAMPLES,
    SAMPLES_PER_CYCLE,
    V_RMS,
    generate_windows,
)


def _cycle_rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt((x.reshape(x.shape[0], -1, SAMPLES_PER_CYCLE) ** 2).mean(axis=2))


def test_shapes_types_and_labels():
    x, labels = generate_windows(5, 30.0, seed=1)
    assert x.shape == (50, N_SAMPLES) and x.dtype == np.float32
    assert labels.columns == ["window_id", "label", "magnitude_pu", "duration_cycles", "start_phase_rad", "snr_db", "thd_true_pct"]
    assert sorted(labels["label"].unique()) == sorted(CLASSES)
    assert (labels.group_by("label").len()["len"] == 5).all()
    assert labels["window_id"].to_list() == list(range(50))


def test_same_seed_same_windows_other_seed_differs():
    a, la = generate_windows(3, 40.0, seed=7)
    b, lb = generate_windows(3, 40.0, seed=7)
    c, _ = generate_windows(3, 40.0, seed=8)
    np.testing.assert_array_equal(a, b)
    assert la.equals(lb)
    assert not np.array_equal(a, c)


def test_rms_matches_class_definition_without_noise():
    x, labels = generate_windows(40, math.inf, seed=3, classes=["normal", "sag", "swell", "interruption"])
    rms = _cycle_rms(x.astype(float)) / V_RMS
    for row, cycles in zip(labels.iter_rows(named=True), rms):
        m = row["magnitude_pu"]
        if row["label"] == "normal":
            np.testing.assert_allclose(cycles, m, rtol=1e-3)
        else:
            if row["duration_cycles"] >= 2:  # a whole cycle sits inside: its RMS is the retained voltage
                assert abs(cycles - m).min() < 1e-3
            # outside the event the voltage is nominal: no cycle is beyond both 1 pu and m
            assert cycles.min() >= min(m, 1.0) - 1e-3 and cycles.max() <= max(m, 1.0) + 1e-3
    sag = labels["label"] == "sag"
    assert labels.filter(sag)["magnitude_pu"].is_between(0.1, 0.9).all()
    assert labels.filter(labels["label"] == "swell")["magnitude_pu"].is_between(1.1, 1.8).all()
    assert (labels.filter(labels["label"] == "interruption")["magnitude_pu"] < 0.1).all()


def test_fft_thd_equals_true_thd_for_harmonics():
    x, labels = generate_windows(30, math.inf, seed=4, classes=["harmonics"])
    spectrum = np.abs(np.fft.rfft(x.astype(float), axis=1))
    fundamental = spectrum[:, 10]  # 10 cycles in the window: bin 10 is 50 Hz
    harmonics = spectrum[:, [10 * h for h in range(2, 16)]]
    thd = 100 * np.sqrt((harmonics**2).sum(axis=1)) / fundamental
    np.testing.assert_allclose(thd, labels["thd_true_pct"].to_numpy(), rtol=1e-4)
    assert labels["thd_true_pct"].is_between(5, 20).all()


def test_noise_power_matches_snr():
    clean, _ = generate_windows(20, math.inf, seed=5)
    noisy, _ = generate_windows(20, 20.0, seed=5)
    # same seed: the same clean windows (in another order), so the extra mean power is the noise's
    signal_power = (clean.astype(float) ** 2).mean()
    noise_power = (noisy.astype(float) ** 2).mean() - signal_power
    assert 10 * np.log10(signal_power / noise_power) == pytest.approx(20.0, abs=0.5)


def test_flicker_transient_notch_are_distinct_from_normal():
    x, labels = generate_windows(20, math.inf, seed=6, classes=["flicker", "oscillatory_transient", "notch"])
    rms = _cycle_rms(x.astype(float)) / V_RMS
    flicker = (labels["label"] == "flicker").to_numpy()
    assert (rms[flicker].max(axis=1) - rms[flicker].min(axis=1) > 0.02).all()
    transient = (labels["label"] == "oscillatory_transient").to_numpy()
    high_band = np.abs(np.fft.rfft(x[transient].astype(float), axis=1))[:, 60:190].sum(axis=1)  # 300-950 Hz
    assert (high_band > 0.05 * np.abs(np.fft.rfft(x[transient].astype(float), axis=1))[:, 10]).all()
    notch = (labels["label"] == "notch").to_numpy()
    assert (rms[notch] < 1.0).all()


def test_scenario_writes_labels_and_samples():
    out = simulate("pq_waveforms", duration="1h", resolution="1s", seed=2, overrides={"n_per_class": 3})
    windows, samples = out.truth["waveform_windows"], out.truth["waveform_samples"]
    assert windows.height == 30 and samples.height == 30 * N_SAMPLES
    assert windows["ts"].dtype == pl.Datetime("us", "UTC") and samples["ts"].dtype == pl.Datetime("us", "UTC")
    assert windows["ts"].is_sorted()
    with pytest.raises(SimulationError, match="snr_db"):
        prepare("pq_waveforms", overrides={"snr_db": 5})
