"""The PQ index lives in physics.pq (models re-use it); nominal values are parameters with config defaults."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridtwin_lib import config
from gridtwin_lib.models.maintenance import power_quality_index
from gridtwin_lib.physics import pq

T0 = pd.Timestamp("2025-01-06 00:00:00", tz="UTC")


def window(v=230.0, f=50.0, thd=0.0, n=600) -> pd.DataFrame:
    ts = T0 + pd.to_timedelta(np.arange(n), unit="s")
    return pd.DataFrame({"ts": ts, "device_id": "d1", "v_a": v, "v_b": v, "v_c": v, "frequency": f, "thd_v": thd})


def test_models_use_the_one_definition():
    assert power_quality_index.pq_index is pq.pq_index and power_quality_index.pq_window_table is pq.pq_window_table


def test_voltage_deviation_is_relative_to_the_given_nominal():
    w = window(v=230.0)
    at_230 = pq.pq_window_table(w).to_pandas()
    assert config.NOMINAL_VOLTAGE_V == 230.0
    assert at_230["v_dev_pct"].iloc[0] == pytest.approx(0.0) and at_230["pq_index"].iloc[0] == pytest.approx(100.0)
    at_240 = pq.pq_window_table(w, nominal_voltage_v=240.0).to_pandas()
    assert at_240["v_dev_pct"].iloc[0] == pytest.approx(100 * 10 / 240)
    # sub-score 100 (1 - 4.17 / 10) = 58.3; index = 0.5 mean + 0.5 min of (58.3, 100, 100, 100, 100)
    s = 100 * (1 - (100 * 10 / 240) / 10)
    assert at_240["pq_index"].iloc[0] == pytest.approx(0.5 * (s + 400) / 5 + 0.5 * s)


def test_frequency_deviation_is_relative_to_the_given_nominal():
    w = window(f=60.0)
    assert pq.pq_window_table(w, nominal_frequency_hz=60.0).to_pandas()["freq_dev_hz"].iloc[0] == pytest.approx(0.0)
    assert pq.pq_window_table(w).to_pandas()["freq_dev_hz"].iloc[0] == pytest.approx(10.0)
