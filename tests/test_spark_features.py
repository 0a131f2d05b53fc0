"""The feature catalog on Spark (local mode) equals the local executor on the same rows.

Multi-device, gappy data; chunks shorter than the longest window, so a reading is
overlap for several later chunks. One Spark session for the test run
(tests/spark_session.py: 2 shuffle partitions, UI off). Needs Java (skipped with the reason without it, a failure
under CI=true).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from spark_session import spark  # noqa: F401  (the fixture)

from gridtwin_lib import features, spark_features
from gridtwin_lib.config import SITES
from gridtwin_lib.store import Store

WINDOWS = ("1m", "15m")
T0 = datetime(2025, 6, 30, 23, 40, tzinfo=UTC)  # crosses a day (and partition) boundary


def fleet(kind: str, devices: int = 3, hours: float = 1.0, step_s: float = 5.0, seed: int = 3) -> pl.DataFrame:
    """``devices`` devices, each with its own gaps (a missing 7-minute stretch and random dropouts)."""
    rng = np.random.default_rng(seed)
    frames = []
    n = int(hours * 3600 / step_s)
    for d in range(devices):
        t = T0 + timedelta(seconds=d * 1.5)  # devices not aligned with each other
        ts = [t + timedelta(seconds=k * step_s) for k in range(n)]
        keep = rng.random(n) > 0.1
        gap = int(rng.integers(0, n - 100))
        keep[gap:gap + int(420 / step_s)] = False
        cols = {"ts": ts, "source": "sim:fleet", "device_id": f"dev-{d}"}
        if kind == "three_phase":
            for p, shift in zip("abc", (0, 1, -1)):
                cols[f"v_{p}"] = 230 + shift + rng.normal(0, 2, n)
                cols[f"i_{p}"] = 10 + rng.normal(0, 1, n)
                cols[f"p_{p}"] = 2200 + rng.normal(0, 50, n)
                cols[f"q_{p}"] = 300 + rng.normal(0, 20, n)
            cols["frequency"] = 50 + rng.normal(0, 0.02, n)
        else:
            cols |= {"voltage": 230 + rng.normal(0, 2, n), "current": 5 + rng.normal(0, 1, n),
                     "power": 1100 + rng.normal(0, 30, n), "reactive_power": 100 + rng.normal(0, 10, n),
                     "frequency": 50 + rng.normal(0, 0.02, n)}
        frames.append(pl.DataFrame(cols).filter(pl.Series(keep)))
    out = pl.concat(frames).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    if kind == "three_phase":  # a null phase reading (missing value) must stay null
        out = out.with_columns(pl.when(pl.int_range(pl.len()) == 17).then(None).otherwise(pl.col("v_a")).alias("v_a"))
    return out


@pytest.mark.parametrize("kind", ["three_phase", "meter"])
def test_spark_features_equal_local_executor(spark, tmp_path, kind):
    store = Store(tmp_path / "store")
    store.write(kind, fleet(kind))
    site = SITES["au_sydney"]
    local = features.compute(store.scan(kind).collect(), kind, WINDOWS, site)
    assert local["v_mean_15m"].null_count() == 0  # real values, not nulls
    # 10-minute chunks, 15-minute reach: each reading is overlap for up to two later chunks
    result = spark_features.compute_store(spark, store, kind, windows=WINDOWS, site=site, chunk="10m")
    distributed = pl.from_arrow(result.toArrow()).sort(["device_id", "ts"])

    assert_same_features(distributed, local)


def test_no_task_group_holds_overlap_only(spark, tmp_path):
    """Overlap is copied into a later chunk only up to the chunk of the latest reading (from the
    files' footers), and within the ``end`` bound: no group is shuffled to a worker for nothing."""
    store = Store(tmp_path / "store")
    store.write("meter", fleet("meter"))
    files = store.measurement_files("meter")
    last = store.scan("meter").select(pl.col("ts").max()).collect().item()
    assert spark_features.last_instant_us(files) == int(last.timestamp() * 1_000_000)
    chunk_us = features.window_us("10m")
    for end in (None, T0 + timedelta(minutes=35)):
        groups = spark_features.chunked(spark, files, "meter", WINDOWS, "10m", end=end).groupBy("_chunk").count().collect()
        newest = (int((end or last + timedelta(microseconds=1)).timestamp() * 1_000_000) - 1) // chunk_us
        assert max(g["_chunk"] for g in groups) == newest


def assert_same_features(distributed: pl.DataFrame, local: pl.DataFrame) -> None:
    """Same rows, columns, nulls; floats equal to the last bits of the prefix sums, the rest exactly."""
    assert distributed.height == local.height  # every reading once: overlap rows are not returned twice
    assert distributed.columns == local.columns
    assert distributed.select("device_id", "ts").equals(local.select("device_id", "ts"))
    for name, dtype in local.schema.items():
        a, b = local[name], distributed[name]
        assert a.null_count() == b.null_count(), name
        if dtype.is_float():
            np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=name)
        else:
            assert b.cast(a.dtype).equals(a), name


def test_cli_engine_spark_writes_the_same_rows(spark, tmp_path):
    from typer.testing import CliRunner

    from gridtwin_lib.cli import app

    store = Store(tmp_path / "store")
    store.write("meter", fleet("meter", devices=2, hours=0.5))
    out = tmp_path / "features"
    args = ["features", "--kind", "meter", "--windows", "1m,15m", "--store", str(store.root), "--json"]
    refused = CliRunner().invoke(app, [*args, "--engine", "spark"])
    assert refused.exit_code == 2 and "--out" in refused.output
    result = CliRunner().invoke(app, [*args, "--engine", "spark", "--chunk", "10m", "--device", "dev-1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] > 0
    written = pl.read_parquet(out / "*.parquet").sort("ts")  # one file per device-chunk, written by the workers
    local = features.compute(store.scan("meter", device_id="dev-1").collect(), "meter", WINDOWS,
                             SITES["au_sydney"])
    assert written["device_id"].unique().to_list() == ["dev-1"] and len(list(out.glob("*.parquet"))) == 3  # 23:40-00:10 in 10-minute chunks
    assert written.schema == local.schema  # the workers keep the local dtypes (unsigned too)
    assert_same_features(written, local)
    assert not (tmp_path / "features.tmp").exists()


def test_last_instant_of_files_is_exact_and_utc_without_a_zone(tmp_path, monkeypatch):
    """Footer statistics as integer µs: a zone-less timestamp is UTC, not the machine's local time
    (set to Paris here, where reading it as local time would be an hour off)."""
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    last = datetime(2026, 3, 29, 1, 59, 59, 999_999)  # a DST change in Europe; the last µs of it
    paths = []
    for tz in (None, "UTC"):
        paths.append(tmp_path / f"ts_{tz}.parquet")
        pq.write_table(pa.table({"ts": pa.array([datetime(2026, 3, 29), last], pa.timestamp("us", tz))}), paths[-1])
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        got = [spark_features.last_instant_us([p]) for p in paths]
    finally:
        monkeypatch.undo()
        time.tzset()
    want = (last.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert got == [want, want]
