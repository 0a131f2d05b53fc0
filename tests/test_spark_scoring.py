"""Batch scoring on Spark (local mode) equals the local ``Engine.score`` on the same readings.

The champions are *probes* (as in tests/test_inference.py): deterministic functions of the
input row the engine builds, so equal outputs prove equal model inputs. The data: two
devices and one feeder's three transformer meters, unaligned, gappy (a missing 7-minute
stretch each, dropouts), one device at 1 s (m03 needs 100 consecutive seconds), a null
phase voltage; 1-hour chunks, shorter than the engine's 90-minute history, so a reading is
overlap for two later chunks; the range crosses a day (and store partition) boundary.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from spark_session import spark  # noqa: F401  (the fixture)

from gridtwin_lib import inference, spark_scoring
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import ModelSpec
from gridtwin_lib.models.maintenance.power_quality_index import M07_INPUT_COLUMNS
from gridtwin_lib.models.maintenance.voltage_sag import M08_INPUT_COLUMNS
from gridtwin_lib.models.monitoring.frequency_stability import INPUT_COLUMNS as M03_INPUT_COLUMNS
from gridtwin_lib.models.monitoring.phase_imbalance import M04_INPUT_COLUMNS
from gridtwin_lib.models.monitoring.voltage_anomaly import M01_INPUT_COLUMNS
from gridtwin_lib.store import Store

SOURCE = "sim:spark_scoring"
T0 = datetime(2025, 6, 30, 23, 10, tzinfo=UTC)
HOURS = 2.5


class Probe:
    """Stands in for a champion: output = a fixed weighted sum of the input row (``columns``
    None: every column of the row, in name order)."""

    def __init__(self, model_id: str, output: str, columns=None):
        self.spec = ModelSpec(model_id, registry.module_of(model_id), "probe", "none", "none", "x", True, {output: "1"})
        self.columns_ = None if columns is None else list(columns)
        self.output = output

    def predict(self, X):
        cols = sorted(X.columns) if self.columns_ is None else self.columns_
        A = np.asarray(X[cols], float)
        return pd.DataFrame({self.output: np.nan_to_num(A, nan=-7.0) @ (np.cos(np.arange(A.shape[1]) * 0.7) + 1.5)})


# the workers unpickle the probes: ship this module's code with them (it is not importable there)
from pyspark import cloudpickle  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def probes() -> dict:
    spec = {
        "m01_voltage_anomaly": ("anomaly_score", M01_INPUT_COLUMNS),
        "m03_frequency_stability": ("p_excursion", M03_INPUT_COLUMNS),
        "m04_phase_imbalance": ("cause_code", M04_INPUT_COLUMNS),
        "m07_power_quality_index": ("pq_index_next", M07_INPUT_COLUMNS),
        "m08_voltage_sag": ("p_sag_15m", M08_INPUT_COLUMNS),
        "m10_energy_loss": ("losses_kw", None),  # the feeder head: the three meters at one instant
        "m15_grid_stability": ("p_disturbance_30min", ["v_mean_v", "v_unbalance_pct", "i_mean_a", "v_std_1h"]),
    }
    return {m: Probe(m, out, cols) for m, (out, cols) in spec.items()}


def readings(seed: int = 11) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    devices = [("dev-0", 1.0, 0.0), ("dev-1", 5.0, 2.0), ("feeder0_R", 5.0, 0.0), ("feeder0_I", 5.0, 0.0), ("feeder0_C", 5.0, 0.0)]
    feeder_keep = None
    for d, (device, step_s, offset_s) in enumerate(devices):
        n = int(HOURS * 3600 / step_s)
        ts = [T0 + timedelta(seconds=offset_s + k * step_s) for k in range(n)]
        keep = rng.random(n) > (0.002 if step_s == 1 else 0.05)
        gap = int(rng.integers(0, n - 500))
        keep[gap:gap + int(420 / step_s)] = False
        if device.startswith("feeder"):  # the feeder's meters share most instants (the head needs all three)
            feeder_keep = keep if feeder_keep is None else feeder_keep | (rng.random(n) < 0.02)
            keep = feeder_keep
        load = 1 + 0.3 * np.sin(np.arange(n) * step_s / 1800) + rng.normal(0, 0.05, n)
        cols = {"ts": ts, "source": SOURCE, "device_id": device}
        for p, shift in zip("abc", (0.0, 1.0, -1.0)):
            cols[f"v_{p}"] = 230 + shift - 3 * load + rng.normal(0, 1.5, n)
            cols[f"i_{p}"] = 10 * load + rng.normal(0, 0.5, n)
            cols[f"p_{p}"] = 2200 * load + rng.normal(0, 50, n)
            cols[f"q_{p}"] = 300 * load + rng.normal(0, 20, n)
        cols["frequency"] = 50 + 0.02 * np.sin(np.arange(n) * step_s / 300 + d) + rng.normal(0, 0.005, n)
        cols["thd_v"] = 2 + rng.gamma(2, 0.3, n)
        frames.append(pl.DataFrame(cols).filter(pl.Series(keep)))
    out = pl.concat(frames).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    # a reading without a phase voltage: a typed error on that reading, the same on both engines
    return out.with_columns(pl.when(pl.int_range(pl.len()) == 4321).then(None).otherwise(pl.col("v_a")).alias("v_a"))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    st = Store(tmp_path_factory.mktemp("spark_scoring") / "store")
    st.write("three_phase", readings())
    return st


def local_scores(store: Store, start=None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``Engine.score`` on every device at once (one call), rows from ``start`` on."""
    frame = store.scan("three_phase").collect()
    batch = inference.Engine(probes()).score(frame)
    keep = pl.lit(True) if start is None else pl.col("ts") >= start
    return (spark_scoring.ordered(batch.frame.filter(keep).drop("row").sort("device_id", "ts")),
            batch.errors.filter(keep).drop("row").sort("device_id", "ts", "code", "model_id"))


def assert_same_scores(spark_frame: pl.DataFrame, local: pl.DataFrame) -> None:
    """Same rows, columns, status and nulls; outputs equal to 1e-9 of their scale (the window
    statistics' prefix sums start at another row: their last bits differ)."""
    assert spark_frame.columns == local.columns
    assert spark_frame.select("device_id", "ts", "status").equals(local.select("device_id", "ts", "status"))
    for name, dtype in local.schema.items():
        a, b = local[name], spark_frame[name]
        assert a.null_count() == b.null_count(), name
        if dtype.is_float():
            scale = max(float(np.nanmax(np.abs(a.to_numpy()))), 1.0) if a.null_count() < a.len() else 1.0
            np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=0, atol=1e-9 * scale, equal_nan=True, err_msg=name)
        else:
            assert b.equals(a), name


def test_spark_scores_equal_the_local_engine(spark, store, tmp_path):
    local, local_errors = local_scores(store)
    for m in ("m01_voltage_anomaly.anomaly_score", "m03_frequency_stability.p_excursion", "m10_energy_loss.losses_kw",
              "m07_power_quality_index.pq_index_next", "m15_grid_stability.p_disturbance_30min"):
        assert local[m].drop_nulls().len() > 100, m  # real outputs, not nulls on both sides
    assert set(local_errors["code"]) >= {"missing_field", "insufficient_history", "no_champion"}

    champions = spark_scoring.Champions(probes())
    summary = spark_scoring.write(spark, spark_scoring.readings(spark, store), tmp_path / "out", champions, chunk="1h")
    scores, errors = spark_scoring.read_scores(tmp_path / "out")

    assert_same_scores(scores, local)
    assert_frame_equal(errors, local_errors)
    assert summary["rows"].sum() == scores.height == store.scan("three_phase").collect().height
    assert summary["error_rows"].sum() == errors.height

    # each engine call held one scoring unit's chunk plus its 90-minute overlap, no more
    frame = store.scan("three_phase").collect()
    hist_us, chunk_us = int(inference.HISTORY.total_seconds() * 1e6), 3_600_000_000
    unit = pl.when(pl.col("device_id").str.contains(spark_scoring.FEEDER_METER)).then(
        pl.lit("feeder:") + pl.col("device_id").str.replace(spark_scoring.FEEDER_METER, "")).otherwise(pl.lit("device:") + pl.col("device_id"))
    us = pl.col("ts").dt.epoch("us")
    expected = (frame.with_columns(unit.alias("unit"), pl.int_ranges(us // chunk_us, (us + hist_us) // chunk_us + 1).alias("chunk"))
                .explode("chunk").group_by("unit", "chunk").agg(pl.len().alias("expected")))
    held = summary.join(expected, on=["unit", "chunk"], how="left")
    assert held["held_rows"].equals(held["expected"].cast(pl.Int64).alias("held_rows"))
    assert held["unit"].n_unique() == 3  # dev-0, dev-1 and the feeder's three meters together
    assert held["held_rows"].max() < frame.filter(pl.col("device_id") == "dev-0").height


def test_spark_scores_from_a_start_use_the_earlier_readings_as_history(spark, store, tmp_path):
    start = T0 + timedelta(minutes=75)  # mid-chunk: the 23:00 and 00:00 chunks hold the history only
    local, local_errors = local_scores(store, start)
    df = spark_scoring.readings(spark, store, [SOURCE], start=start)
    summary = spark_scoring.write(spark, df, tmp_path / "out", spark_scoring.Champions(probes()), chunk="1h", start=start)
    scores, errors = spark_scoring.read_scores(tmp_path / "out")
    assert scores["ts"].min() >= start and summary["rows"].sum() == local.height
    assert_same_scores(scores, local)
    assert_frame_equal(errors, local_errors)


def test_cli_score_engine_spark(spark, store, tmp_path, monkeypatch):
    """``gridtwin score --engine spark`` on the registry's champions: none registered in this
    empty workspace, so readings get their no_champion errors, through the CLI's path."""
    from typer.testing import CliRunner

    from gridtwin_lib.cli import app

    monkeypatch.setenv("GRIDTWIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("GRIDTWIN_WORKSPACE", raising=False)
    out = tmp_path / "scores"
    base = ["score", "--from-store", "--store", str(store.root), "--json", "--no-progress", "--engine", "spark"]
    refused = CliRunner().invoke(app, [*base, "--out", str(out), "--alerts", str(tmp_path / "a.csv")])
    assert refused.exit_code == 2 and "--alerts" in refused.output and not out.exists()
    refused = CliRunner().invoke(app, [*base, "--out", str(out), "--source", "sim:nope"])
    assert refused.exit_code == 2 and "sim:nope" in refused.output and not out.exists()

    result = CliRunner().invoke(app, [*base, "--out", str(out), "--start", "2025-07-01T00:30", "--end", "2025-07-01T01:00",
                                      "--chunk", "1h"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    scores, errors = spark_scoring.read_scores(out)
    expected = store.scan("three_phase", start="2025-07-01T00:30", end="2025-07-01T01:00").collect().height
    assert summary["readings"] == scores.height == expected > 0
    assert set(summary["missing_champions"]) == set(registry.ids())
    assert summary["status"] == dict(scores.group_by("status").len().iter_rows()) and sum(summary["status"].values()) == expected
    assert set(errors["code"]) >= {"no_champion"} and summary["errors"]["no_champion:m01_voltage_anomaly"] > 0
    assert not (tmp_path / "scores.tmp").exists()
