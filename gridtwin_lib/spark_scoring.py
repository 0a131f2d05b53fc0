"""Batch scoring on Spark with the same serving code: :meth:`Engine.score` per device-chunk.

The store's ``three_phase`` Parquet files are read by Spark; readings are grouped by
*scoring unit* (a device; the transformer meters ``<feeder>_<R|I|C>`` of one feeder
together, since the feeder models read them at the same instant) and cut into time chunks
(``chunk``, aligned to the Unix epoch). Each chunk also receives the readings of the
previous :data:`~gridtwin_lib.inference.HISTORY` (90 min: what the engine holds per device,
enough for every window and lag its adapters read) as overlap. ``applyInArrow`` hands each
(unit, chunk) group to :func:`score_group`, which

1. takes the :class:`~gridtwin_lib.inference.Engine` of this job from a per-Python-worker
   cache (built once per worker from the champions the driver loaded and broadcast),
2. forgets the previous group's history (:meth:`Engine.reset`),
3. calls :meth:`Engine.score` on overlap + chunk in one batch, exactly as the local engine
   scores a whole frame, and keeps the chunk's own readings.

So the scores equal those of the local ``Engine.score`` on every device at once (to the
float rounding of the prefix-sum window statistics), a Python worker holds one unit-chunk
(chunk + overlap) at a time, and there is no second implementation of any model input.

Each worker writes its unit-chunk's scores and errors as Parquet files itself
(``scores/part-<unit>-<chunk>.parquet``, ``errors/part-...``): the wide score table never
goes back through the JVM (see :mod:`gridtwin_lib.spark_features`). Executors need no access
to MLflow: the champions travel with the job.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from . import features
from .config import Site
from .errors import InputError
from .fileio import atomic_write
from .inference import HISTORY, Engine
from .inference.results import ERROR_SCHEMA
from .models import registry
from .models.energy.energy_loss import FEEDER_SUBNETS
from .schema import polars_schema
from .spark_features import _CHUNK_COLUMN, DEFAULT_CHUNK, with_chunks
from .store import Store, as_utc

_UNIT_COLUMN = "_unit"
#: a feeder's transformer meters are scored together (the feeder models read them at one instant)
FEEDER_METER = "_(" + "|".join(FEEDER_SUBNETS) + ")$"
#: the Engine of the running job in this Python worker (job token -> Engine); one entry at a time
_WORKER_ENGINES: dict[str, Engine] = {}
#: the columns of :func:`write`'s summary, one row per unit-chunk
SUMMARY_FIELDS = ("unit", "chunk", "held_rows", "rows", "error_rows", "ok", "partial", "error")


@dataclass(frozen=True)
class Champions:
    """The fitted models a scoring job serves, loaded once on the driver and broadcast.

    Parameters
    ----------
    estimators : fitted :class:`~gridtwin_lib.models.base.GridModel` by model id.
    missing : model id -> why it has no estimator (readings get ``no_champion`` errors).
    site : site of the readings (nominal values, calendar features); default site if None.
    token : identifies the job's engine in each worker's cache.
    """

    estimators: Mapping[str, Any]
    missing: Mapping[str, str] = field(default_factory=dict)
    site: Site | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def from_registry(cls, model_ids: Iterable[str] | None = None, alias: str = "champion",
                      site: Site | None = None) -> Champions:
        """Each model's ``@alias`` version, loaded by :meth:`Engine.from_registry` (the same
        loading and the same ``missing`` reasons as the local engine)."""
        engine = Engine.from_registry(model_ids, alias=alias, site=site)
        return cls(engine.estimators, engine.missing, engine.site)

    def engine(self) -> Engine:
        """A fresh :class:`Engine` on these estimators."""
        return Engine(self.estimators, missing=self.missing, site=self.site)


def _worker_engine(token: str, payload) -> Engine:
    """This worker's Engine for job ``token``, built from the broadcast ``payload`` on first use."""
    engine = _WORKER_ENGINES.get(token)
    if engine is None:
        from pyspark import cloudpickle

        _WORKER_ENGINES.clear()  # an earlier job's models are not kept
        engine = _WORKER_ENGINES[token] = cloudpickle.loads(payload.value).engine()
    return engine


def ordered(scores: pl.DataFrame) -> pl.DataFrame:
    """Score columns in one order whatever the models that scored: ts, device_id, status, the
    copied features, then ``<model_id>.<output>`` by registry order and name (the engine appends
    the outputs of models without rows last, so its order varies between calls)."""
    rank = {m: k for k, m in enumerate(registry.reading_ids())}
    models = [c for c in scores.columns if c.split(".", 1)[0] in rank]
    rest = [c for c in scores.columns if c not in models]
    return scores.select(*rest, *sorted(models, key=lambda c: (rank[c.split(".", 1)[0]], c)))


def score_group(engine: Engine, table: pa.Table, first_us: int, with_features: Iterable[str] = ()) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Scores and errors of one unit-chunk: the readings at or after ``first_us``; the earlier
    ones are the overlap that fills the engine's history.

    Parameters
    ----------
    engine : the engine; its history is reset first (a group is scored on its own).
    table : readings of one scoring unit (chunk + overlap), canonical three_phase columns.
    first_us : first instant to keep [µs since 1970-01-01 UTC].
    with_features : as for :meth:`Engine.score`.

    Returns
    -------
    (scores, errors) : polars frames without the engine's input position ``row`` (rows are
        identified by ``device_id`` and ``ts``), sorted by device and time.
    """
    engine.reset()
    frame = pl.from_arrow(table)
    frame = frame.select([c for c in polars_schema("three_phase") if c in frame.columns]).sort("device_id", "ts")
    batch = engine.score(frame, with_features=with_features)
    first = pl.lit(first_us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    scores = ordered(batch.frame.filter(pl.col("ts") >= first).drop("row").sort("device_id", "ts"))
    errors = batch.errors.filter(pl.col("ts") >= first).drop("row").sort("device_id", "ts", "code", "model_id")
    return scores, errors


def readings(spark, store: Store, sources: list[str] | None = None, start=None, end=None):
    """The store's three_phase readings of ``sources`` (all if None) in ``[start - HISTORY, end)``
    as a Spark DataFrame; device ids are prefixed ``<source>/`` when several sources are scored
    (as :func:`gridtwin_lib.inference.readings_from_store` does)."""
    from pyspark.sql import functions as F

    known = store.sources("three_phase")
    srcs = list(sources or known)
    unknown = [s for s in srcs if s not in known]
    if unknown:
        raise InputError(f"source {unknown[0]!r} has no three_phase readings in {store}; `gridtwin store summary` lists them")
    lo = None if start is None else as_utc(start) - HISTORY
    files = store.measurement_files("three_phase", srcs, lo, end)
    if not files:
        raise InputError(f"no three_phase readings of {', '.join(srcs)} in {store}; ingest or simulate first")
    df = spark.read.parquet(*[str(f) for f in files]).select(*list(polars_schema("three_phase")))
    df = df.filter(F.col("source").isin(srcs))
    if lo is not None:
        df = df.filter(F.col("ts") >= F.lit(lo))
    if end is not None:
        df = df.filter(F.col("ts") < F.lit(as_utc(end)))
    if len(srcs) > 1:
        df = df.withColumn("device_id", F.concat(F.col("source"), F.lit("/"), F.col("device_id")))
    return df


def chunked(df, chunk: str = DEFAULT_CHUNK):
    """Readings with their scoring unit (``_unit``) and ``_chunk`` (overlap: :data:`HISTORY`).
    ``groupBy("_unit", "_chunk").count()`` gives the rows a worker holds at a time."""
    from pyspark.sql import functions as F

    device = F.col("device_id")
    unit = F.when(device.rlike(FEEDER_METER), F.concat(F.lit("feeder:"), F.regexp_replace(device, FEEDER_METER, "")))
    df = df.withColumn(_UNIT_COLUMN, unit.otherwise(F.concat(F.lit("device:"), device)))
    return with_chunks(df, features.window_us(chunk), int(HISTORY.total_seconds() * 1e6))


def write(spark, df, out: str | Path, champions: Champions, chunk: str = DEFAULT_CHUNK, start=None,
          with_features: Iterable[str] = ()) -> pl.DataFrame:
    """Score readings ``df`` (see :func:`readings`) through ``champions`` on Spark and write
    ``out/scores/`` and ``out/errors/`` (one Parquet file per unit-chunk, written by the
    worker; ``out`` must be reachable by every executor, and is written in place).

    Parameters
    ----------
    spark : a SparkSession (:func:`gridtwin_lib.spark_features.session`).
    df : canonical three_phase readings with ``ts`` and ``device_id``.
    out : output directory.
    champions : the fitted models (:meth:`Champions.from_registry`).
    chunk : time chunk per task group (``s``, ``m``, ``h``, ``d``): the memory bound of a worker.
    start : first instant scored (UTC); earlier readings only fill the history.
    with_features : readings fields or features copied into the scores (as for :meth:`Engine.score`).

    Returns
    -------
    polars.DataFrame : one row per unit-chunk scored (:data:`SUMMARY_FIELDS`): ``held_rows``
        handed to the engine in that call (chunk + overlap), ``rows`` scored, ``error_rows``,
        and the status counts.
    """
    from urllib.parse import quote

    from pyspark import cloudpickle
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    out = str(out)
    for sub in ("scores", "errors"):
        Path(out, sub).mkdir(parents=True, exist_ok=True)
    chunk_us = features.window_us(chunk)
    first_us = None if start is None else int(as_utc(start).timestamp() * 1_000_000)
    extra = tuple(with_features)
    payload = spark.sparkContext.broadcast(cloudpickle.dumps(champions))
    token = champions.token
    types = {"unit": StringType(), "chunk": LongType()}
    summary = StructType([StructField(n, types.get(n, LongType())) for n in SUMMARY_FIELDS])
    empty = pa.table({n: pa.array([], pa.string() if n == "unit" else pa.int64()) for n in SUMMARY_FIELDS})

    def per_group(key, table):  # no annotations: pyspark cannot read postponed (string) hints
        unit, index = key[0].as_py(), key[1].as_py()
        first = index * chunk_us if first_us is None else max(index * chunk_us, first_us)
        if pa.compute.max(table["ts"]).value < first:  # only overlap (the unit's data ended, or before start)
            return empty
        scores, errors = score_group(_worker_engine(token, payload), table, first, extra)
        name = f"part-{quote(unit, safe='')}-{index}.parquet"
        for frame, sub in ((scores, "scores"), (errors, "errors")):
            with atomic_write(f"{out}/{sub}/{name}", fsync=False) as tmp:  # the job's directory appears whole (cli_scale)
                frame.write_parquet(tmp)
        status = scores["status"].value_counts()
        counts = dict(zip(status["status"].to_list(), status["count"].to_list()))
        return pa.table({"unit": [unit], "chunk": pa.array([index], pa.int64()), "held_rows": pa.array([table.num_rows], pa.int64()),
                         "rows": pa.array([scores.height], pa.int64()), "error_rows": pa.array([errors.height], pa.int64()),
                         **{s: pa.array([counts.get(s, 0)], pa.int64()) for s in ("ok", "partial", "error")}})

    groups = chunked(df, chunk).groupBy(_UNIT_COLUMN, _CHUNK_COLUMN).applyInArrow(per_group, summary)
    rows = groups.collect()
    payload.unpersist()
    return pl.DataFrame([r.asDict() for r in rows], schema={n: pl.String if n == "unit" else pl.Int64 for n in SUMMARY_FIELDS})


def read_scores(out: str | Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The scores and errors a :func:`write` left in ``out``, sorted by device and time."""
    out = Path(out)
    frames = []
    for sub, schema in (("scores", None), ("errors", {k: v for k, v in ERROR_SCHEMA.items() if k != "row"})):
        parts = sorted((out / sub).glob("*.parquet"))
        frame = pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed") if parts else pl.DataFrame(schema=schema)
        frames.append(frame.sort("device_id", "ts", *(["code", "model_id"] if sub == "errors" else [])))
    return frames[0], frames[1]


__all__ = ["Champions", "ordered", "score_group", "readings", "chunked", "write", "read_scores", "FEEDER_METER"]

