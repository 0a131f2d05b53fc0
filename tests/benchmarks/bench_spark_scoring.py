"""Benchmark: batch scoring through the registry's champions, Spark ``local[2]`` vs the local engine.

Both score the same three_phase readings of a simulated fleet from the same Parquet store
through the same champions (``Engine.from_registry`` of the current registry: run
``make run`` first, or point ``MLFLOW_TRACKING_URI`` at a registry with champions) and
write Parquet:

* local: what ``gridtwin score --from-store`` does, ``score_stream`` (``Engine.score`` on
  50,000-reading time-ordered chunks, history carried between them), one scores file;
* Spark: ``spark_scoring.write`` (``Engine.score`` per device-chunk with 90 min of overlap,
  one Engine per Python worker, each worker writing its files).

rows/s = readings / wall time, best of ``--repeat``, in the same run; Spark's session, its
Python workers and their engines are warmed up first (a long-lived cluster pays them once).
The run also checks that both give the same scores (rows, status, outputs to 1e-6 of their
scale) and reports the largest engine call on Spark (readings held: one device-chunk with
its overlap).

    .venv/bin/python tests/benchmarks/bench_spark_scoring.py [--devices 20] [--hours 3] [--step-s 1]
        [--chunk 1h] [--master local[2]] [--repeat 2] [--json]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime

import numpy as np
import polars as pl
from _common import best_of, report

from gridtwin_lib import inference, spark_features, spark_scoring
from gridtwin_lib.schema import conform
from gridtwin_lib.store import Store

SOURCE = "sim:score_fleet"


def simulated_fleet(devices: int, hours: float, step_s: float, seed: int = 0) -> pl.DataFrame:
    """``devices`` three-phase meters from 2025-03-03 00:00 UTC: a load cycle, noise, 0.5 % dropouts."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / step_s)
    t = np.arange(n) * step_s
    start = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp() * 1e6)
    load = rng.uniform(0.5, 2.0, devices)[:, None] * (1 + 0.4 * np.sin(2 * np.pi * t / 86400))[None, :]
    keep = (rng.random((devices, n)) > 0.005).ravel()
    cols = {"ts": (start + np.tile(t, devices) * 1e6).astype(np.int64),
            "device_id": np.repeat([f"meter-{d:05d}" for d in range(devices)], n)}
    for p, shift in zip("abc", (0.0, 1.0, -1.0)):
        current = 10 * load * (1 + 0.05 * shift) + rng.gamma(2, 0.2, (devices, n))
        cols[f"v_{p}"] = (231 + shift - 0.2 * current + rng.normal(0, 0.8, (devices, n))).ravel()
        cols[f"i_{p}"] = current.ravel()
        cols[f"p_{p}"] = (cols[f"v_{p}"] * current.ravel() * 0.95)
        cols[f"q_{p}"] = (cols[f"v_{p}"] * current.ravel() * 0.31)
    cols["frequency"] = 50 + 0.02 * np.sin(np.tile(t, devices) / 600) + rng.normal(0, 0.005, devices * n)
    cols["thd_v"] = 2 + rng.gamma(2, 0.3, devices * n)
    frame = pl.DataFrame({k: v[keep] for k, v in cols.items()})
    frame = frame.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.lit(SOURCE).alias("source"))
    return conform(frame, "three_phase")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--hours", type=float, default=3.0)
    ap.add_argument("--step-s", type=float, default=1.0)
    ap.add_argument("--chunk", default="1h")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    champions = spark_scoring.Champions.from_registry()
    if not champions.estimators:
        raise SystemExit("no champions in the registry; run `make run` or set MLFLOW_TRACKING_URI")
    work = tempfile.mkdtemp(prefix="bench_spark_scoring_")
    try:
        store = Store(f"{work}/store")
        store.write("three_phase", simulated_fleet(args.devices, args.hours, args.step_s))
        readings = store.scan("three_phase").collect()
        rows = readings.height
        engine = champions.engine()
        engine.warm_up()

        def local() -> pl.DataFrame:
            engine.reset()
            batch = inference.score_stream(engine, readings, chunk_rows=50_000)
            inference.write_scores(batch, f"{work}/local.parquet")
            return batch.frame

        cores = args.master.removeprefix("local[").removesuffix("]")
        spark = spark_features.session(args.master, "gridtwin-bench-scoring", shuffle_partitions=2 * int(cores) if cores.isdigit() else None,
                                       spark__ui__enabled="false")
        counter = iter(range(1_000_000))

        def on_spark() -> pl.DataFrame:
            out = f"{work}/spark-{next(counter)}"
            return spark_scoring.write(spark, spark_scoring.readings(spark, store), out, champions, args.chunk)

        on_spark()  # warm-up: JVM code paths, the Python workers' imports and engines
        local_s, local_frame = best_of(local, args.repeat)
        spark_s, summary = best_of(on_spark, args.repeat)
        spark.stop()
        scores, _ = spark_scoring.read_scores(f"{work}/spark-{next(counter) - 1}")
        expected = spark_scoring.ordered(local_frame.drop("row").sort("device_id", "ts"))
        assert scores.height == expected.height == rows, (scores.height, expected.height, rows)
        assert scores["status"].equals(expected["status"])
        worst = 0.0
        for name, dtype in expected.schema.items():
            if dtype.is_float() and expected[name].null_count() < rows:
                a, b = expected[name].to_numpy(), scores[name].to_numpy()
                scale = max(float(np.nanmax(np.abs(a))), 1.0)
                assert (np.isnan(a) == np.isnan(b)).all(), name
                worst = max(worst, float(np.nanmax(np.abs(a - b))) / scale)
        assert worst < 1e-6, worst
        report({
            "devices": args.devices, "hours": args.hours, "step_s": args.step_s, "readings": rows,
            "champions_loaded": len(champions.estimators), "master": args.master, "chunk": args.chunk,
            "local_s": round(local_s, 2), "local_rows_per_s": round(rows / local_s),
            "spark_s": round(spark_s, 2), "spark_rows_per_s": round(rows / spark_s),
            "spark_vs_local": round(local_s / spark_s, 2),
            "task_groups": summary.height, "largest_call_rows": int(summary["held_rows"].max()),
            "max_output_difference_rel": worst,
        }, args.json)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
