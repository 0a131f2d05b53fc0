"""The feature catalog on Spark: the same :func:`gridtwin_lib.features.compute`, per device-chunk.

The store's Parquet files are read by Spark; each device's readings are cut into
time chunks (``chunk``, aligned to the Unix epoch) and every chunk also receives
the readings of the previous ``reach`` (the longest window) as overlap. Spark
groups by ``(device_id, chunk)`` and hands each group, as one Arrow table, to
:func:`compute_chunk`, which calls ``features.compute`` with ``rows`` choosing the
chunk's own readings: the overlap only feeds their windows. So

* the values equal those of the local executor (``features.compute`` on the whole
  frame) up to the last bits of the prefix-sum statistics (where sums start);
* a Python worker holds one device-chunk (chunk + overlap) at a time, whatever the
  size of the fleet or of a device's history;
* there is no second implementation of any feature.

Arrow all the way (``applyInArrow``): Spark's Arrow batches become Polars frames
without a pandas round trip. Spark has no unsigned integers, so unsigned columns
(``quality_flags``, counts) come out as signed 64-bit integers with the same values.

Local mode needs Java 17 (``apt-get install default-jdk-headless``); on a cluster,
the same job is submitted with ``spark-submit`` (see the README).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from . import features
from .config import SITES, Site, default_site
from .fileio import atomic_write
from .schema import polars_schema
from .store import Store, as_utc

#: default chunk length: one day of a device per task group
DEFAULT_CHUNK = "1d"
_CHUNK_COLUMN = "_chunk"

#: ``spark.sql.execution.arrow.maxBytesPerBatch``: Spark 4 bounds each Arrow batch sent to a
#: Python worker by bytes (64 MB by default) as well as by rows, and checks the bytes after
#: *every row* by walking all the batch's vectors; in ``bench_spark.py`` that check was 18 % of
#: the JVM's samples (Java Flight Recorder). Int.MaxValue is the value for which Spark skips the
#: check, so batches are bounded by ``maxRecordsPerBatch`` (10,000 rows) alone.
ARROW_BATCH_BYTES_UNCHECKED = str(2**31 - 1)


def session(master: str = "local[2]", app_name: str = "gridtwin", shuffle_partitions: int | None = None, **conf: str):
    """A SparkSession configured for the feature job (UTC session time zone, Arrow on).

    Parameters
    ----------
    master : Spark master URL (``local[2]``, ``spark://host:7077``, ``yarn``...); ignored when
        a session already exists, and under ``spark-submit`` (its ``--master`` wins).
    app_name : application name shown in the Spark UI.
    shuffle_partitions : ``spark.sql.shuffle.partitions`` (default: Spark's).
    conf : further Spark settings (dots written as ``__``: ``spark__ui__enabled="false"``).

    Returns
    -------
    pyspark.sql.SparkSession
    """
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (SparkSession.builder.appName(app_name)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.execution.arrow.maxBytesPerBatch", ARROW_BATCH_BYTES_UNCHECKED)
               # workers forked from a daemon that imported the library already (see spark_daemon)
               .config("spark.python.daemon.module", "gridtwin_lib.spark_daemon"))
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # set by spark-submit, whose --master and conf then apply
        builder = builder.master(master)
        if master.startswith("local"):  # on a cluster, PYSPARK_PYTHON names the nodes' environment
            builder = builder.config("spark.executorEnv.PYSPARK_PYTHON", sys.executable)
    if shuffle_partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    for key, value in conf.items():
        builder = builder.config(key.replace("__", "."), value)
    return builder.getOrCreate()


def _signed(frame: pl.DataFrame) -> pl.DataFrame:
    """Unsigned integer columns as Int64 (Spark has no unsigned types; values are kept)."""
    unsigned = [n for n, t in frame.schema.items() if t in (pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)]
    return frame.with_columns(pl.col(unsigned).cast(pl.Int64)) if unsigned else frame


def compute_chunk(table: pa.Table, kind: str, windows: tuple[str, ...], site: Site, chunk_start_us: int,
                  signed: bool = True) -> pa.Table:
    """Features of one device-chunk: the rows at or after ``chunk_start_us`` (µs since epoch, UTC);
    earlier rows are the overlap that feeds their windows. Called by Spark for each group.

    Parameters
    ----------
    table : readings of one device (chunk + overlap), canonical columns (any order).
    kind, windows, site : as for :func:`gridtwin_lib.features.compute`.
    chunk_start_us : first instant of the chunk [µs since 1970-01-01 UTC].
    signed : unsigned integer columns as Int64 (for a Spark schema); False keeps the local dtypes.

    Returns
    -------
    pyarrow.Table : inputs and features of the chunk's own rows, sorted by time.
    """
    out = chunk_features(table, kind, windows, site, chunk_start_us)
    return (_signed(out) if signed else out).to_arrow()


def chunk_features(table: pa.Table, kind: str, windows: tuple[str, ...], site: Site, chunk_start_us: int) -> pl.DataFrame:
    """:func:`compute_chunk` as a Polars frame with the local executor's dtypes (for a worker
    that writes it itself)."""
    schema = polars_schema(kind)
    frame = pl.from_arrow(table)
    frame = frame.select(pl.col(c).cast(t) for c, t in schema.items() if c in frame.columns)
    start = pl.lit(chunk_start_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return features.compute(frame.sort("ts"), kind, windows, site, rows=pl.col("ts") >= start)


def output_schema(kind: str, windows: tuple[str, ...], site: Site) -> tuple[object, pa.Schema]:
    """The Spark schema of the feature table and the Arrow schema each group returns
    (computed from two synthetic readings)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    schema = polars_schema(kind)
    probe = pl.DataFrame({c: [None, None] for c in schema}, schema=schema).with_columns(
        pl.Series("ts", [0, 1_000_000]).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        pl.lit("probe").alias("source"), pl.lit("probe").alias("device_id"))
    sample = _signed(features.compute(probe, kind, windows, site)).to_arrow().schema
    # Spark reads Arrow strings (large or not) as StringType
    sample = pa.schema([f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f for f in sample])
    return from_arrow_schema(sample), sample


def compute(
    spark,
    files: Iterable[str | Path],
    kind: str = "three_phase",
    windows: tuple[str, ...] = features.DEFAULT_WINDOWS,
    site: Site | None = None,
    chunk: str = DEFAULT_CHUNK,
    device_id: str | None = None,
    start=None,
    end=None,
):
    """The feature catalog over Parquet ``files`` of canonical ``kind`` records, as a Spark DataFrame.

    Parameters
    ----------
    spark : a SparkSession (see :func:`session`).
    files : Parquet files (e.g. :meth:`Store.files`); paths must be readable by every executor.
    kind, windows, site : as for :func:`gridtwin_lib.features.compute`.
    chunk : time chunk per task group (``s``, ``m``, ``h``, ``d``); memory bound per worker.
    device_id, start, end : only this device, readings in ``[start, end)`` (UTC), applied
        before computing, as the local executor does.

    Returns
    -------
    pyspark.sql.DataFrame : one row per reading, the local executor's columns (unsigned
        integers as signed 64-bit).
    """
    site = site or default_site()
    windows = tuple(windows)
    df = chunked(spark, files, kind, windows, chunk, device_id, start, end)
    out_schema, arrow_schema = output_schema(kind, windows, site)
    chunk_us = features.window_us(chunk)

    def per_group(key, table):  # no annotations: pyspark cannot read postponed (string) hints
        chunk_start = key[1].as_py() * chunk_us
        if pa.compute.max(table["ts"]).value < chunk_start:  # only overlap (the device's data ended)
            return arrow_schema.empty_table()
        out = compute_chunk(table, kind, windows, site, chunk_start)
        return out.select(arrow_schema.names).cast(arrow_schema)

    return df.groupBy("device_id", _CHUNK_COLUMN).applyInArrow(per_group, out_schema)


def write(
    spark,
    files: Iterable[str | Path],
    out: str | Path,
    kind: str = "three_phase",
    windows: tuple[str, ...] = features.DEFAULT_WINDOWS,
    site: Site | None = None,
    chunk: str = DEFAULT_CHUNK,
    device_id: str | None = None,
    start=None,
    end=None,
) -> dict[str, int]:
    """Compute like :func:`compute` and write the feature table to directory ``out``: each
    Python worker writes its device-chunk's Parquet file itself (``part-<device>-<chunk>.parquet``,
    Polars' writer), so the wide feature table never goes back through the JVM. A retried
    task rewrites the same file. ``out`` must be reachable by every executor (shared storage
    on a cluster); it is written in place (the CLI writes to a temporary directory and renames).

    Returns
    -------
    dict : ``rows`` written and ``files`` (one per device-chunk with readings of its own).
    """
    from urllib.parse import quote

    from pyspark.sql.types import LongType, StringType, StructField, StructType

    site = site or default_site()
    windows = tuple(windows)
    out = str(out)
    Path(out).mkdir(parents=True, exist_ok=True)
    chunk_us = features.window_us(chunk)
    df = chunked(spark, files, kind, windows, chunk, device_id, start, end)
    summary = StructType([StructField("path", StringType()), StructField("rows", LongType())])

    def per_group(key, table):  # no annotations: pyspark cannot read postponed (string) hints
        device, index = key[0].as_py(), key[1].as_py()
        if pa.compute.max(table["ts"]).value < index * chunk_us:  # only overlap (the device's data ended)
            return pa.table({"path": pa.array([], pa.string()), "rows": pa.array([], pa.int64())})
        frame = chunk_features(table, kind, windows, site, index * chunk_us)
        path = f"{out}/part-{quote(device, safe='')}-{index}.parquet"
        with atomic_write(path, fsync=False) as tmp:  # the job's output directory appears whole (cli_scale)
            frame.write_parquet(tmp)
        return pa.table({"path": [path], "rows": pa.array([frame.height], pa.int64())})

    written = df.groupBy("device_id", _CHUNK_COLUMN).applyInArrow(per_group, summary).collect()
    return {"rows": sum(r["rows"] for r in written), "files": len(written)}


def chunked(spark, files: Iterable[str | Path], kind: str, windows: tuple[str, ...], chunk: str = DEFAULT_CHUNK,
            device_id: str | None = None, start=None, end=None):
    """The readings with a ``_chunk`` column (chunk index since the epoch): each reading once
    in its own chunk and once more in every later chunk its window reach covers (overlap).
    ``groupBy("device_id", "_chunk").count()`` gives the rows a worker holds at a time."""
    from pyspark.sql import functions as F

    chunk_us = features.window_us(chunk)
    reach_us = max((features.window_us(w) for w in windows), default=0)
    paths = [str(f) for f in files]
    if not paths:
        raise ValueError(f"no Parquet files of kind {kind!r} to compute features for; ingest or simulate first")
    df = spark.read.parquet(*paths).select(*list(polars_schema(kind)))
    if device_id is not None:
        df = df.filter(F.col("device_id") == device_id)
    for bound, keep in ((start, lambda t: F.col("ts") >= t), (end, lambda t: F.col("ts") < t)):
        if bound is not None:
            df = df.filter(keep(F.lit(as_utc(bound))))
    last_us = last_instant_us(paths)
    if last_us is not None and end is not None:
        last_us = min(last_us, int(as_utc(end).timestamp() * 1_000_000) - 1)
    return with_chunks(df, chunk_us, reach_us, None if last_us is None else last_us // chunk_us)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def last_instant_us(paths: Iterable[str | Path]) -> int | None:
    """The latest ``ts`` [µs since epoch] of Parquet ``paths``, from their footers' statistics
    (nothing is read but the footers); None when a file has none."""
    import pyarrow.parquet as pq

    last = None
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        column = meta.schema.to_arrow_schema().get_field_index("ts")
        if column < 0:
            return None
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            if stats is None or not stats.has_min_max:
                return None
            value = stats.max
            if isinstance(value, datetime):  # exact integer µs; a timestamp without a zone is UTC, as the store's are
                value_us = (value.replace(tzinfo=value.tzinfo or UTC) - _EPOCH) // timedelta(microseconds=1)
            else:
                value_us = int(value)
            last = value_us if last is None else max(last, value_us)
    return last


def with_chunks(df, chunk_us: int, reach_us: int, last_chunk: int | None = None):
    """``df`` (a Spark DataFrame with ``ts``) with a ``_chunk`` column: each row once in its own
    chunk (index of its ``chunk_us``-long interval since the epoch) and once more in every later
    chunk whose first instant is at most ``reach_us`` after it (the overlap that feeds that
    chunk's windows or history). Shared by the feature and the scoring jobs.

    Parameters
    ----------
    df : pyspark.sql.DataFrame with a timestamp column ``ts``.
    chunk_us : chunk length [µs].
    reach_us : how far back a chunk's first reading looks [µs].
    last_chunk : the chunk of the latest reading, if known: no overlap is copied past it (a
        chunk holding overlap only would be shuffled and handed to a worker for nothing).
    """
    from pyspark.sql import functions as F

    ts_us = F.unix_micros(F.col("ts"))
    last = F.floor((ts_us + reach_us) / chunk_us)
    if last_chunk is not None:
        last = F.least(last, F.lit(int(last_chunk)))
    chunks = F.sequence(F.floor(ts_us / chunk_us), last).cast("array<long>")
    return df.withColumn(_CHUNK_COLUMN, F.explode(chunks))


def store_files(store: Store, kind: str, source: str | list[str] | None = None, start=None, end=None) -> list[Path]:
    """The store's Parquet files of ``kind`` and ``source`` whose date partitions meet ``[start, end)``."""
    files = store.measurement_files(kind, source, start, end)
    if not files:
        raise ValueError(f"no {kind} measurements in {store.root} for source={source}; ingest or simulate first")
    return files


def compute_store(
    spark,
    store: Store,
    kind: str = "three_phase",
    source: str | list[str] | None = None,
    windows: tuple[str, ...] = features.DEFAULT_WINDOWS,
    site: Site | str | None = None,
    chunk: str = DEFAULT_CHUNK,
    start=None,
    end=None,
    device_id: str | None = None,
):
    """:func:`compute` over the store's ``kind`` files of ``source`` (date partitions outside
    ``[start, end)`` are not read)."""
    site = SITES[site] if isinstance(site, str) else site
    return compute(spark, store_files(store, kind, source, start, end), kind, windows, site, chunk, device_id, start, end)
