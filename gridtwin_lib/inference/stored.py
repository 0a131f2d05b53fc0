"""Scores at rest: what the served models said about every stored three-phase reading.

A dashboard or a report should read a model's outputs, not load the model and score on every page
view (loading the frequency network alone imports TensorFlow for seconds). :func:`refresh`
(``gridtwin scores refresh``, the ``then`` step of the pipelines) scores each three-phase source of
the store with the :class:`~gridtwin_lib.inference.Engine` of every per-reading model, as one
continuous stream per source (each device's windows warm across days), and writes::

    <store>/scores/kind=three_phase/source=<source>/date=<UTC day>/part-0.parquet
    <store>/scores/kind=three_phase/source=<source>/_manifest.json

Each row holds ``ts``, ``device_id``, the engine's ``status``, every ``<model_id>.<output>`` and the
computed features the alert rules check (:data:`~gridtwin_lib.inference.ALERT_FEATURES`; the readings'
own fields stay in the store). Scores are
derived data: they sit beside measurements and truth, never in them, and the manifest says what
served each model (``<version>:<serves>``, :func:`gridtwin_lib.tracking.served_keys`).

A reader (:func:`read`) gets stored scores only while they are current: every model asked for
is still served by the version the manifest records. Whether every reading asked for has a
stored row is the caller's join (readings the collector added since the last refresh have none);
the dashboards then score on load, as before (:func:`gridtwin_lib.dashboards.score_range`).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

from ..fileio import atomic_write, file_lock, write_text
from ..store import Store, as_utc
from .engine import ALERT_FEATURES, HISTORY, Engine
from .streams import score_stream

KIND = "three_phase"
MANIFEST = "_manifest.json"
KEYS = ("ts", "device_id", "status")


def scores_dir(store: Store) -> Path:
    """Where ``store``'s scores live (``<store>/scores/kind=three_phase``)."""
    return Path(store.root) / "scores" / f"kind={KIND}"


def _source_dir(store: Store, source: str) -> Path:
    return scores_dir(store) / f"source={quote(source, safe='')}"


def manifest(store: Store, source: str) -> dict[str, Any] | None:
    """The manifest of ``source``'s stored scores, or None when none are stored."""
    path = _source_dir(store, source) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def readings_count(store: Store, source: str) -> int:
    """Stored three-phase readings of ``source`` (Parquet metadata: no column is read)."""
    files = store.measurement_files(KIND, source)
    return int(pl.scan_parquet(files).select(pl.len()).collect().item()) if files else 0


def is_current(store: Store, source: str, served: dict[str, str | None]) -> bool:
    """True when ``source``'s stored scores were made by what serves each model of ``served`` now and cover
    as many readings as the store holds."""
    kept = manifest(store, source)
    return (kept is not None and all(kept["served"].get(m) == key for m, key in served.items())
            and kept["readings"] == readings_count(store, source))


def read(store: Store, source: str, served: dict[str, str | None], *, device_id: str | None = None,
         start: datetime | None = None, end: datetime | None = None) -> tuple[pl.DataFrame, dict[str, str]] | None:
    """Stored scores of ``source`` in [start, end) (UTC; ``device_id`` or every device) with the
    outputs of the models in ``served`` (model id -> its current :func:`~gridtwin_lib.tracking.served_keys`
    key), and why each model without outputs has none; None when no current scores are stored.

    The frame has ``ts``, ``device_id``, ``status``, the models' ``<model_id>.<output>`` columns and
    the alert features; a model whose served version differs from the manifest's makes the whole
    answer None (mixing versions in one view would be wrong)."""
    kept = manifest(store, source)
    if kept is None or any(kept["served"].get(m) != key for m, key in served.items()):
        return None
    base = _source_dir(store, source)
    d0 = as_utc(start).date() if start is not None else None
    d1 = as_utc(end).date() if end is not None else None
    files = [f for day in sorted(base.glob("date=*"))
             if (d0 is None or day.name[5:] >= d0.isoformat()) and (d1 is None or day.name[5:] <= d1.isoformat())
             for f in sorted(day.glob("*.parquet"))]
    wanted = [c for c in kept["columns"] if c.split(".", 1)[0] in served] + [c for c in kept["features"]]
    if not files:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "device_id": pl.String, "status": pl.String}), {}
    lf = pl.scan_parquet(files).select(*KEYS, *wanted)
    if device_id is not None:
        lf = lf.filter(pl.col("device_id") == device_id)
    if start is not None:
        lf = lf.filter(pl.col("ts") >= as_utc(start))
    if end is not None:
        lf = lf.filter(pl.col("ts") < as_utc(end))
    missing = {m: kept["missing"].get(m, "no outputs stored") for m in served
               if not any(c.startswith(f"{m}.") for c in kept["columns"])}
    return lf.collect(), missing


def refresh(store: Store, *, sources: Iterable[str] | None = None, force: bool = False, progress: bool = False,
            engine: Engine | None = None, served: dict[str, str | None] | None = None,
            say=None) -> list[dict[str, Any]]:
    """Store the served models' scores of each three-phase source (all by default) whose stored
    scores are not current (:func:`is_current`), or of every one with ``force``.

    ``engine`` and ``served`` default to the registry's (:meth:`Engine.from_registry`,
    :func:`~gridtwin_lib.tracking.served_keys`); the engine is loaded only when a source needs
    scoring. Returns one summary per source: ``source``, ``status`` (``scored``, ``appended`` or
    ``current``), ``readings`` (scored now, or stored when current), ``seconds``.

    A source whose only change is readings after its stored ones (the collector's, as devices post) gets
    those alone scored and appended (``appended``), each device's windows warmed on the
    :data:`~gridtwin_lib.inference.HISTORY` before them, as a page scoring on load would; any other change
    (another version serves a model, readings inserted before the stored ones) scores the source again
    whole and swaps it in at once (a reader sees the old or the new scores, never a mix).
    """
    from .. import tracking
    from ..models import registry

    ids = list(registry.reading_ids())
    if served is None:
        served = tracking.served_keys(ids)
    known = store.sources(KIND)
    wanted = list(known if sources is None else sources)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        from ..errors import InputError

        raise InputError(f"source {unknown[0]!r} has no three_phase readings in {store}; `gridtwin store summary` lists them")
    out = []
    root = scores_dir(store)
    root.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    with file_lock(root / ".lock"):
        for source in tqdm(wanted, desc="storing scores", unit="source", disable=not progress):
            if not force and is_current(store, source, served):
                out.append({"source": source, "status": "current", "readings": manifest(store, source)["readings"], "seconds": 0.0})
                continue
            if engine is None:
                engine = Engine.from_registry(ids, progress=progress)
            t0 = time.perf_counter()
            n = None if force else _append_new(store, source, engine, served)
            status = "appended" if n is not None else "scored"
            if n is None:
                n = _score_source(store, source, engine, served)
            out.append({"source": source, "status": status, "readings": n, "seconds": round(time.perf_counter() - t0, 2)})
            if say is not None:
                say(f"{source}: {n:,} readings {status} in {out[-1]['seconds']} s")
    return out


def _append_new(store: Store, source: str, engine: Engine, served: dict[str, str | None]) -> int | None:
    """Score and append the readings after the stored ones; None when the change is anything else."""
    kept = manifest(store, source)
    if kept is None or kept["served"] != served or not kept.get("last_ts"):
        return None
    last = datetime.fromisoformat(kept["last_ts"])
    new = store.scan(KIND, source=source, start=last + timedelta(microseconds=1)).collect()
    if new.height == 0 or kept["readings"] + new.height != readings_count(store, source):
        return None  # readings were added among the stored ones too: score the source again
    first = new["ts"].min()
    engine.reset()
    warm = store.scan(KIND, source=source, start=first - HISTORY, end=first).collect()
    if warm.height:
        score_stream(engine, warm.sort("ts"))
    frame = score_stream(engine, new.sort("ts"), with_features=ALERT_FEATURES).frame
    frame = frame.select(*KEYS, *(pl.col(c) if c in frame.columns else pl.lit(None, pl.Float64).alias(c)
                                  for c in (*kept["columns"], *kept["features"])))
    base = _source_dir(store, source)
    name = f"part-{uuid.uuid4().hex[:12]}.parquet"
    for (day,), part in frame.group_by(pl.col("ts").dt.date().alias("day")):
        folder = base / f"date={day:%Y-%m-%d}"
        folder.mkdir(exist_ok=True)
        with atomic_write(folder / name) as tmp:
            part.write_parquet(tmp)
    write_text(base / MANIFEST, json.dumps({**kept, "readings": kept["readings"] + frame.height,
                                            "last_ts": frame["ts"].max().isoformat(),
                                            "appended_at": datetime.now(UTC).isoformat(timespec="seconds")}, indent=1))
    return frame.height


def _score_source(store: Store, source: str, engine: Engine, served: dict[str, str | None]) -> int:
    """Score ``source`` day by day (bounded memory) into a staging folder, then swap it in."""
    span = store.scan(KIND, source=source).select(pl.col("ts").min().alias("lo"), pl.col("ts").max().alias("hi")).collect()
    lo, hi = span["lo"].item(), span["hi"].item()
    staging = scores_dir(store) / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    engine.reset()  # each source is its own stream: device ids repeat across sources
    n, columns, features = 0, [], []
    try:
        day = datetime(lo.year, lo.month, lo.day, tzinfo=UTC) if lo is not None else None
        while day is not None and day <= hi:
            readings = store.scan(KIND, source=source, start=day, end=day + timedelta(days=1)).collect()
            if readings.height:
                batch = score_stream(engine, readings.sort("ts"), progress=False, with_features=ALERT_FEATURES)
                frame = batch.frame.drop("row")
                columns = [c for c in frame.columns if "." in c]
                features = [c for c in frame.columns if c in ALERT_FEATURES and c not in readings.columns]  # readings stay in the store
                part = staging / f"date={day:%Y-%m-%d}"
                part.mkdir()
                frame.select(*KEYS, *columns, *features).write_parquet(part / "part-0.parquet")
                n += frame.height
            day += timedelta(days=1)
        write_text(staging / MANIFEST, json.dumps({
            "source": source, "served": served, "missing": dict(engine.missing), "readings": n,
            "columns": columns, "features": features, "units": {c: engine.units.get(c) for c in columns},
            "last_ts": hi.isoformat() if hi is not None else None,
            "scored_at": datetime.now(UTC).isoformat(timespec="seconds")}, indent=1))
        target = _source_dir(store, source)
        old = target.with_name(f".old-{uuid.uuid4().hex}")
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return n


__all__ = ["refresh", "read", "is_current", "manifest", "scores_dir", "readings_count"]
