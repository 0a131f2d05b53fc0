"""Readings in and scores out of the engine: files, the store, large frames in chunks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

import polars as pl

from ..errors import InputError
from ..fileio import atomic_write, read_frame
from .admission import as_frame
from .engine import HISTORY, Engine
from .results import ERROR_SCHEMA, ScoreBatch


def as_date(day: date | str) -> date:
    """``day`` (a date, datetime or ISO text) as a date; InputError for anything else."""
    if isinstance(day, datetime):
        return day.date()
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(str(day))
    except ValueError:
        raise InputError(f"day {day!r} is not a date; write e.g. 2024-01-07") from None


def latest_day(store, kind: str = "three_phase", sources: Iterable[str] | None = None) -> date:
    """The most recent UTC day holding readings of ``kind`` (over ``sources`` or all)."""
    lf = store.scan(kind) if sources is None else pl.concat([store.scan(kind, source=s) for s in sources], how="vertical_relaxed")
    last = lf.select(pl.col("ts").max()).collect().item()
    if last is None:
        raise InputError(f"no {kind} readings in {store}; simulate or ingest some first (make run)")
    return last.date()


def read_readings(path) -> pl.DataFrame:
    """Canonical three_phase readings from a Parquet, CSV or NDJSON file (by extension)."""
    return read_frame(path, "three_phase readings", " (other layouts: `gridtwin ingest file` first, then --from-store)")


def readings_from_store(store, sources: Iterable[str] | None, start, end) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stored three_phase readings of ``sources`` (all if empty) in [start, end), and the
    :data:`HISTORY` before ``start`` to warm each device's windows up (score it first)."""
    from ..store import as_utc

    lo, hi = as_utc(start), as_utc(end)
    if lo >= hi:
        raise InputError(f"start {lo:%Y-%m-%d %H:%M} must be before end {hi:%Y-%m-%d %H:%M}")
    srcs = list(sources or store.sources("three_phase"))
    known = set(store.sources("three_phase"))
    unknown = [s for s in srcs if s not in known]
    if unknown:
        raise InputError(f"source {unknown[0]!r} has no three_phase readings in {store}; `gridtwin store summary` lists them")
    frames = [store.scan("three_phase", source=s, start=lo - HISTORY, end=hi).collect() for s in srcs]
    raw = pl.concat([f for f in frames if f.height], how="vertical_relaxed") if any(f.height for f in frames) else pl.DataFrame()
    if raw.height == 0 or raw.filter(pl.col("ts") >= lo).height == 0:
        raise InputError(f"no three_phase readings of {', '.join(srcs) if len(srcs) < 4 else f'{len(srcs)} sources'} "
                         f"in [{lo:%Y-%m-%d %H:%M}, {hi:%Y-%m-%d %H:%M}) UTC")
    # the same device id in two sources is two devices: prefix ids when several sources are scored
    if len(srcs) > 1:
        raw = raw.with_columns((pl.col("source") + "/" + pl.col("device_id")).alias("device_id"))
    return raw.filter(pl.col("ts") < lo), raw.filter(pl.col("ts") >= lo)


def score_stream(engine: Engine, readings: pl.DataFrame, *, chunk_rows: int = 50_000, progress: bool = False,
                 with_features: Iterable[str] = ()) -> ScoreBatch:
    """Score a large frame in time-ordered chunks (bounded memory, a progress bar), continuing
    each device's history from chunk to chunk; rows keep their input position in ``row``."""
    from tqdm.auto import tqdm

    if chunk_rows < 1:
        raise InputError(f"chunk_rows must be >= 1 (got {chunk_rows})")
    df = as_frame(readings)
    n = df.height
    if "ts" in df.columns:
        order = df.with_columns(pl.int_range(n, dtype=pl.Int64).alias("_in_row")).sort("ts", nulls_last=True, maintain_order=True)
    else:
        order = df.with_columns(pl.int_range(n, dtype=pl.Int64).alias("_in_row"))
    frames, errors = [], []
    with tqdm(total=n, desc="scoring", unit="reading", disable=not progress) as bar:
        for k in range(0, n, chunk_rows):
            chunk = order.slice(k, chunk_rows)
            b = engine.score(chunk.drop("_in_row"), with_features=with_features)
            back = chunk["_in_row"].to_numpy()
            frames.append(b.frame.with_columns(pl.Series("row", back[b.frame["row"].to_numpy()], dtype=pl.Int64)))
            if b.errors.height:
                errors.append(b.errors.with_columns(pl.Series("row", back[b.errors["row"].to_numpy()], dtype=pl.Int64)))
            bar.update(chunk.height)
    frame = pl.concat(frames, how="diagonal_relaxed").sort("row") if frames else pl.DataFrame()
    err = pl.concat(errors).sort("row", "code") if errors else pl.DataFrame(schema=ERROR_SCHEMA)
    return ScoreBatch(frame, err, dict(engine.units))


def write_scores(batch: ScoreBatch, out) -> dict[str, str]:
    """Write ``batch.frame`` to ``out`` (.parquet with the units in the schema metadata, or
    .csv) and the errors next to it (``<name>.errors.<ext>``); both appear at once or not at all."""
    import json

    import pyarrow.parquet as pq

    out = Path(out)
    ext = out.suffix.lower()
    if ext not in (".parquet", ".csv"):
        raise InputError(f"{out}: use a .parquet or .csv output file")
    if not out.parent.exists():
        raise InputError(f"{out.parent}: no such directory; create it or choose another --out")
    err_path = out.with_name(out.name[: -len(ext)] + ".errors" + ext)
    with atomic_write(out, err_path) as tmp:
        for frame, path in ((batch.frame, tmp[0]), (batch.errors, tmp[1])):
            if ext == ".csv":
                frame.write_csv(path)
            else:
                table = frame.to_arrow()
                meta = {**(table.schema.metadata or {}), b"gridtwin.units": json.dumps(batch.units).encode()}
                pq.write_table(table.replace_schema_metadata(meta), path)
    return {"scores": str(out), "errors": str(err_path)}


__all__ = ["as_date", "latest_day", "read_readings", "readings_from_store", "score_stream", "write_scores"]
