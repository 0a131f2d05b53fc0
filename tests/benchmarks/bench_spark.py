"""Benchmark: the feature catalog on a simulated meter fleet, Spark ``local[2]`` vs the local executor.

Both read the same Parquet store, compute the same catalog (``features.compute``) and
write a Parquet feature table (Spark: ``spark_features.write``, each worker writing its
device-chunks' files, since sending the wide table back through the JVM's row format
and Parquet writer cost more than the features themselves); rows/s = input readings / wall time, best of ``--repeat``,
measured in the same run. Spark's session start and first Python-worker start are
warmed up before timing (a long-lived cluster pays them once). Also reported:

* ``largest_group_rows``: the most readings one Spark task group (one device-chunk with
  its overlap) holds, the memory bound of a Python worker, vs the fleet's rows;
* ``spark_shuffle_only_s``: read + chunking + shuffle with a trivial count instead of the
  features (the count is partly aggregated before the shuffle, so this is a lower bound of
  Spark's own share);
* CPU seconds per run (mean over the timed repeats): ``local_cpu_s`` (this process), and for
  Spark ``spark_jvm_cpu_s`` (the JVM: reading, shuffle, sort, Arrow conversion) and
  ``spark_python_cpu_s`` (the Python workers: features and writing). On 2 cores both engines
  are CPU-bound, so these say where Spark's extra time goes.

    .venv/bin/python tests/benchmarks/bench_spark.py [--meters 200] [--hours 24] [--step-s 10]
        [--chunk 1d] [--master local[2]] [--repeat 2] [--conf KEY=VALUE ...] [--json]

The issue's fleet (10,000 meters, one day at 10 s: 86 M readings) is the same command with
``--meters 10000`` on a cluster (``--master spark://...``, the store on shared storage).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import psutil
from _common import best_of, report

from gridtwin_lib import features, spark_features
from gridtwin_lib.config import SITES
from gridtwin_lib.schema import conform
from gridtwin_lib.store import Store

WINDOWS = features.DEFAULT_WINDOWS
SITE = SITES["au_sydney"]


def simulated_fleet(meters: int, hours: float, step_s: float, seed: int = 0) -> pl.DataFrame:
    """``meters`` single-phase meters from 2025-03-03 00:00 UTC: a daily load cycle per meter, noise, 1 % dropouts."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / step_s)
    t = np.arange(n) * step_s
    start = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp() * 1e6)
    scale = rng.uniform(0.3, 3.0, meters)[:, None]
    load = scale * (1 + 0.5 * np.sin(2 * np.pi * (t / 3600 - 7) / 24))[None, :] + rng.gamma(1, 0.1, (meters, n))
    current = load * 4.3
    voltage = 232 - 0.3 * current + rng.normal(0, 0.8, (meters, n))
    pf = np.clip(0.95 + rng.normal(0, 0.02, (meters, n)), 0.5, 1)
    keep = rng.random((meters, n)) > 0.01
    frame = pl.DataFrame({
        "ts": (start + np.tile(t, meters) * 1e6).astype(np.int64)[keep.ravel()],
        "device_id": np.repeat([f"meter-{m:05d}" for m in range(meters)], n)[keep.ravel()],
        "voltage": voltage.ravel()[keep.ravel()],
        "current": current.ravel()[keep.ravel()],
        "power": (voltage * current * pf).ravel()[keep.ravel()],
        "reactive_power": (voltage * current * np.sqrt(1 - pf**2)).ravel()[keep.ravel()],
        "power_factor": pf.ravel()[keep.ravel()],
        "frequency": 50 + rng.normal(0, 0.01, keep.sum()),
    }).with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")), pl.lit("sim:fleet").alias("source"))
    return conform(frame, "meter")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds [user + system] so far of this process (``self``), of the Spark JVM it started
    (``jvm``) and of the JVM's Python workers (``python``: the worker daemon's forks, which Spark
    reuses from task to task, so none exits between two readings)."""
    me = psutil.Process()
    seconds = {"self": sum(me.cpu_times()[:2]), "jvm": 0.0, "python": 0.0}
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
            seconds["jvm" if "java" in child.name() else "python"] += times.user + times.system
        except psutil.Error:  # ended between listing and reading
            continue
    return seconds


def timed_cpu(fn, repeat: int) -> tuple[float, object, dict[str, float]]:
    """:func:`best_of` and the mean CPU seconds per call of each process group (:func:`cpu_seconds`)."""
    before = cpu_seconds()
    best, result = best_of(fn, repeat)
    after = cpu_seconds()
    return best, result, {k: (after[k] - before[k]) / repeat for k in before}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=200)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--step-s", type=float, default=10.0)
    ap.add_argument("--chunk", default="1d")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="a Spark setting over the session's (repeatable), e.g. to measure one of them: "
                         "--conf spark.sql.execution.arrow.maxBytesPerBatch=64m")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    conf = dict(item.split("=", 1) for item in args.conf)

    work = Path(tempfile.mkdtemp(prefix="bench_spark_"))
    try:
        store = Store(work / "store")
        store.write("meter", simulated_fleet(args.meters, args.hours, args.step_s))
        rows = store.scan("meter").select(pl.len()).collect().item()

        def local() -> int:
            table = features.compute(store.scan("meter").collect(), "meter", WINDOWS, SITE)
            table.write_parquet(work / "local.parquet")
            return table.height

        cores = args.master.removeprefix("local[").removesuffix("]")
        spark = spark_features.session(args.master, "gridtwin-bench", shuffle_partitions=2 * int(cores) if cores.isdigit() else None,
                                       spark__ui__enabled="false", **{k.replace(".", "__"): v for k, v in conf.items()})
        files = store.measurement_files("meter")
        counter = iter(range(1_000_000))

        def on_spark() -> int:
            out = work / f"spark-{next(counter)}"
            return spark_features.write(spark, files, out, "meter", WINDOWS, SITE, args.chunk)["rows"]

        def shuffle_only() -> int:
            return spark_features.chunked(spark, files, "meter", WINDOWS, args.chunk).groupBy("device_id", "_chunk").count().count()

        on_spark()  # warm-up: JVM code paths and the Python workers' imports
        local_s, local_rows, local_cpu = timed_cpu(local, args.repeat)
        spark_s, spark_rows, spark_cpu = timed_cpu(on_spark, args.repeat)
        shuffle_s, _ = best_of(shuffle_only, args.repeat)
        groups = spark_features.chunked(spark, files, "meter", WINDOWS, args.chunk).groupBy("device_id", "_chunk").count()
        largest = groups.agg({"count": "max"}).collect()[0][0]
        n_groups = groups.count()
        spark.stop()
        assert local_rows == spark_rows == rows, (local_rows, spark_rows, rows)
        report({
            "meters": args.meters, "hours": args.hours, "step_s": args.step_s, "readings": rows, "conf": conf,
            "features": len(features.catalog("meter", WINDOWS)), "master": args.master, "chunk": args.chunk,
            "local_s": round(local_s, 2), "local_rows_per_s": round(rows / local_s),
            "spark_s": round(spark_s, 2), "spark_rows_per_s": round(rows / spark_s),
            "spark_vs_local": round(local_s / spark_s, 2),
            "local_cpu_s": round(local_cpu["self"], 2),
            "spark_jvm_cpu_s": round(spark_cpu["jvm"], 2), "spark_python_cpu_s": round(spark_cpu["python"], 2),
            "spark_shuffle_only_s": round(shuffle_s, 2),
            "task_groups": n_groups, "largest_group_rows": largest,
        }, args.json)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
