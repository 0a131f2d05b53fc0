"""The canonical Parquet store: measurements, truth and rejects, kept apart.

Layout (hive-style directories, one Parquet file per write and partition)::

    <root>/measurements/kind=<kind>/source=<source>/date=<YYYY-MM-DD>/part-<txid>.parquet
    <root>/truth/table=<table>/source=<source>/date=<YYYY-MM-DD>/part-<txid>.parquet
    <root>/rejects/kind=<kind>/source=<source>/date=<ingest date>/part-<txid>.parquet

Guarantees
----------
* **Idempotent**: a measurement is identified by (kind, source, device_id, ts);
  writing one that is already stored adds nothing and is counted as a duplicate.
* **No partial files**: a write stages every file under ``_staging/`` and only
  then renames them into place (an atomic ``rename`` on POSIX). A process that
  dies before the renames leaves nothing visible; one that dies during them
  leaves only whole files, and re-running the same write completes it (the
  dedupe makes the re-run safe). Orphaned staging directories are removed by the
  next write.
* **One writer at a time** per store (an advisory ``flock`` on ``<root>/.lock``).

Truth (the simulators' event logs and hidden states) is written with
:meth:`Store.write_truth` and read with :meth:`Store.scan_truth` only; the
measurement API never returns it, so a model cannot read it by accident.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote, unquote

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from . import config
from .fileio import file_lock
from .schema import POLARS_TS, arrow_schema, conform, polars_schema

_WRITE_THREADS = 2
_MONTHLY_FROM_STEP_S = 60.0  # median sampling step from which a source is partitioned by month
_DICTIONARY_COLUMNS = ["source", "device_id", "kind", "rule"]

REJECTS_SCHEMA = {
    "ingested_at": POLARS_TS,
    "kind": pl.String,
    "source": pl.String,
    "device_id": pl.String,
    "ts": POLARS_TS,
    "location": pl.String,
    "rule": pl.String,
    "detail": pl.String,
    "raw": pl.String,
}


@dataclass
class WriteResult:
    """What a write did: rows added, rows already present, files committed."""

    written: int = 0
    duplicates: int = 0
    files: list[Path] = field(default_factory=list)


class Store:
    """A Parquet store under ``root`` (default ``data/store`` of the project)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else config.store_dir()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ------------------------------------------------------------------ writing

    def write(self, kind: str, df: pl.DataFrame, durable: bool = False) -> WriteResult:
        """Add canonical measurements of ``kind``; rows already stored are skipped.

        ``df`` must hold ``ts``, ``source`` and ``device_id`` and any subset of the
        kind's value fields; it is conformed to the schema (absent fields are null).
        """
        df = conform(df, kind)
        return self._write_keyed(
            area_dir=self.root / "measurements" / f"kind={kind}",
            df=df,
            time_column="ts",
            key=("source", "device_id", "ts"),
            schema=arrow_schema(kind),
            durable=durable,
        )

    def write_truth(
        self,
        table: str,
        df: pl.DataFrame,
        time_column: str = "ts",
        key: tuple[str, ...] | None = None,
        durable: bool = False,
    ) -> WriteResult:
        """Add ground-truth rows (event logs, hidden states) to truth table ``table``.

        ``df`` needs ``source`` and ``time_column`` (UTC datetimes). ``key``
        (default: every column) identifies a row for the idempotent dedupe.
        """
        _check_name(table, "truth table")
        for col in ("source", time_column):
            if col not in df.columns:
                raise ValueError(f"truth table {table!r} needs a {col!r} column")
        return self._write_keyed(
            area_dir=self.root / "truth" / f"table={table}",
            df=df,
            time_column=time_column,
            key=tuple(key) if key else tuple(df.columns),
            schema=None,
            durable=durable,
        )

    def write_rejects(self, kind: str, df: pl.DataFrame) -> WriteResult:
        """Keep rejected rows with their rule, detail and original text (never deduped)."""
        if df.height == 0:
            return WriteResult()
        now = datetime.now(UTC)
        df = df.with_columns(pl.lit(now).cast(POLARS_TS).alias("ingested_at"), pl.lit(kind).alias("kind"))
        df = df.select([pl.col(c).cast(t) if c in df.columns else pl.lit(None, t).alias(c) for c, t in REJECTS_SCHEMA.items()])
        df = df.with_columns(pl.col("source").fill_null("unknown"), pl.lit(now.date()).alias("_date"))
        with self._lock(), self._transaction() as tx:
            for (source, day), part in df.partition_by(["source", "_date"], as_dict=True).items():
                tx.add(self.root / "rejects" / f"kind={kind}" / _part_dir(source, day), part.drop("_date").to_arrow())
            return WriteResult(written=df.height, files=tx.commit())

    def _write_keyed(self, area_dir, df, time_column, key, schema, durable) -> WriteResult:
        if df.height == 0:
            return WriteResult()
        with self._lock():  # the partition layout is read and recorded under the lock too
            before = df.height
            periods, markers = self._periods(area_dir, df, time_column)
            monthly = [src for src, period in periods.items() if period == "month"]
            day = pl.col(time_column).dt.date()
            if monthly:
                month = pl.col(time_column).dt.month_start().dt.date()
                day = pl.when(pl.col("source").is_in(monthly)).then(month).otherwise(day)
            df = df.with_columns(day.alias("_date"))

            # Sort once (stable, so the first of equal keys stays first); duplicates are
            # then adjacent, which is cheaper to find than a hash-based unique(). The usual
            # write (one source, one device, already in time order) skips the sort.
            labels = ["source", *(["device_id"] if "device_id" in df.columns else [])]
            constant = [c for c in labels if df[c].n_unique() == 1]
            t = df[time_column]
            in_order = len(constant) == len(labels) and not t.has_nulls() and t.is_sorted()
            # other key columns (truth tables) only stay adjacent when no two rows share a time
            if in_order and (set(key) <= {*labels, time_column} or _strictly_increasing(t)):
                varying = [c for c in key if c not in constant]
            else:
                order = ["source", "_date", *labels[1:], time_column]
                order += [c for c in key if c not in order]
                df = df.sort(order, maintain_order=True, nulls_last=True)
                varying = list(key)
            same_as_previous = pl.all_horizontal([pl.col(c).eq_missing(pl.col(c).shift(1)) for c in varying])
            df = df.filter(~same_as_previous)
            in_batch_dupes = before - df.height
            bounds = df.group_by(["source", "_date"], maintain_order=True).len()

            existing = self._existing_keys(area_dir, [(src, day) for src, day, _ in bounds.iter_rows()], key)
            stored_dupes = 0
            if existing is not None:
                n = df.height
                df = df.join(existing, on=list(key), how="anti", nulls_equal=True, maintain_order="left")
                stored_dupes = n - df.height
                bounds = df.group_by(["source", "_date"], maintain_order=True).len()
            # one Arrow conversion; partitions are zero-copy slices of the sorted table
            table = df.drop("_date").to_arrow()
            table = table.select(schema.names).cast(schema) if schema is not None else table
            with self._transaction(durable=durable) as tx:
                for marker, text in markers.items():
                    tx.add_marker(marker, text)
                offset = 0
                for source, day, n in bounds.iter_rows():
                    tx.add(area_dir / _part_dir(source, day), table.slice(offset, n))
                    offset += n
                files = tx.commit()
        written = before - in_batch_dupes - stored_dupes
        return WriteResult(written=written, duplicates=in_batch_dupes + stored_dupes, files=files)

    def _periods(self, area_dir: Path, df: pl.DataFrame, time_column: str) -> tuple[dict[str, str], dict[Path, str]]:
        """Each source's partition period: recorded on its first write, then fixed.

        Sources sampled at least a minute apart get one partition per month (a day of
        one-minute data is only 1,440 rows, too small a Parquet file to be worth its
        overhead); faster ones get one per day. ``date=`` names the period's first day.
        Returns the periods and the markers to record for sources seen the first time.
        """
        periods, markers = {}, {}
        for source in df["source"].unique().to_list():
            src_dir = area_dir / f"source={quote(str(source), safe='')}"
            recorded = _source_period(src_dir)
            if recorded is None and src_dir.exists() and any(src_dir.glob("date=*")):
                recorded = "day"  # written before layouts were recorded: it is daily
                markers[src_dir / "_partitioning.json"] = json.dumps({"period": "day", "median_step_s": None})
            if recorded is None:
                rows = df.filter(pl.col("source") == source)
                by = ["device_id"] if "device_id" in rows.columns else []
                diff = pl.col(time_column).diff()
                steps = rows.sort([*by, time_column]).select(
                    ((diff.over(by) if by else diff).dt.total_microseconds() * 1e-6).alias("step")
                )["step"]
                step = steps.filter(steps > 0).median()
                recorded = "month" if step is not None and step >= _MONTHLY_FROM_STEP_S else "day"
                markers[src_dir / "_partitioning.json"] = json.dumps({"period": recorded, "median_step_s": step})
            periods[source] = recorded
        return periods, markers

    def _existing_keys(self, area_dir: Path, partitions, key) -> pl.DataFrame | None:
        files = [f for s, d in partitions for f in _files_in(area_dir / _part_dir(s, d))]
        if not files:
            return None
        return pl.scan_parquet(files).select(list(key)).collect()

    @contextmanager
    def _lock(self):
        with file_lock(self.root / ".lock"):
            yield

    @contextmanager
    def _transaction(self, durable: bool = False):
        staging_root = self.root / "_staging"
        if staging_root.exists():  # orphans of a crashed writer; we hold the lock
            shutil.rmtree(staging_root, ignore_errors=True)
        tx = _Transaction(self.root, staging_root / uuid.uuid4().hex, durable)
        try:
            yield tx
        finally:
            shutil.rmtree(tx.staging, ignore_errors=True)

    # ------------------------------------------------------------------ reading

    def scan(
        self,
        kind: str,
        source: str | list[str] | None = None,
        device_id: str | list[str] | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
    ) -> pl.LazyFrame:
        """Measurements of ``kind`` as a Polars LazyFrame, sorted by device and time.

        ``start`` is inclusive and ``end`` exclusive (UTC). Partitions outside the
        date range and other sources are not opened.
        """
        files = self.measurement_files(kind, source, start, end)
        if not files:
            return pl.LazyFrame(schema=polars_schema(kind))
        lf = pl.scan_parquet(files)
        return _filter(lf, "ts", device_id, start, end).sort(["device_id", "ts"])

    def scan_truth(
        self,
        table: str,
        source: str | list[str] | None = None,
        time_column: str = "ts",
        start: datetime | str | None = None,
        end: datetime | str | None = None,
    ) -> pl.LazyFrame:
        """Ground truth of ``table``: for labels and evaluation, never for features."""
        _check_name(table, "truth table")
        files = self._select_files(self.root / "truth" / f"table={table}", source, start, end)
        if not files:
            return pl.LazyFrame()
        # twins log different columns under one table name (grid and solar `events`):
        # the union of columns, null where a file lacks one
        by_schema: dict[tuple, list[Path]] = {}
        for f in files:
            by_schema.setdefault(tuple(pq.read_schema(f).names), []).append(f)
        parts = [pl.scan_parquet(group) for group in by_schema.values()]
        lf = parts[0] if len(parts) == 1 else pl.concat(parts, how="diagonal_relaxed")
        return _filter(lf, time_column, None, start, end)

    def scan_rejects(self, kind: str | None = None) -> pl.LazyFrame:
        kinds = [kind] if kind else self.kinds("rejects")
        files = [f for k in kinds for f in self._select_files(self.root / "rejects" / f"kind={k}", None, None, None)]
        return pl.scan_parquet(files) if files else pl.LazyFrame(schema=REJECTS_SCHEMA)

    def kinds(self, area: str = "measurements") -> list[str]:
        base = self.root / area
        if not base.exists():
            return []
        return sorted(p.name.split("=", 1)[1] for p in base.iterdir() if p.is_dir() and "=" in p.name)

    def truth_tables(self) -> list[str]:
        return self.kinds("truth")

    def sources(self, kind: str) -> list[str]:
        base = self.root / "measurements" / f"kind={kind}"
        if not base.exists():
            return []
        return sorted(unquote(p.name.split("=", 1)[1]) for p in base.iterdir() if p.name.startswith("source="))

    def truth_sources(self, table: str) -> list[str]:
        """Sources that wrote truth ``table``."""
        _check_name(table, "truth table")
        base = self.root / "truth" / f"table={table}"
        if not base.exists():
            return []
        return sorted(unquote(p.name.split("=", 1)[1]) for p in base.iterdir() if p.name.startswith("source="))

    def measurement_files(self, kind: str, source: str | None = None, start: datetime | str | None = None,
                          end: datetime | str | None = None) -> list[Path]:
        """The Parquet files that may hold ``kind`` measurements of ``source`` in [start, end).

        Partition pruning only (by source and date): callers filter rows themselves. For
        engines that read files directly (Spark).
        """
        return self._select_files(self.root / "measurements" / f"kind={kind}", source, start, end)

    def _select_files(self, base: Path, source, start, end) -> list[Path]:
        if not base.exists():
            return []
        wanted = None if source is None else {quote(s, safe="") for s in ([source] if isinstance(source, str) else source)}
        d0 = as_utc(start).date() if start is not None else None
        d1 = as_utc(end).date() if end is not None else None
        files: list[Path] = []
        for src_dir in sorted(base.iterdir()):
            if not src_dir.name.startswith("source=") or (wanted is not None and src_dir.name[7:] not in wanted):
                continue
            monthly = _source_period(src_dir) == "month"
            for day_dir in sorted(src_dir.iterdir()):
                if not day_dir.name.startswith("date="):
                    continue
                first = date.fromisoformat(day_dir.name[5:])
                last = _month_end(first) if monthly else first
                if (d0 is not None and last < d0) or (d1 is not None and first > d1):
                    continue
                files.extend(_files_in(day_dir))
        return files

    # ------------------------------------------------------------------ SQL

    def duckdb(self):
        """A DuckDB connection with one view per dataset.

        Views: ``three_phase``, ``meter``, ``pv`` (measurements), ``rejects`` and
        ``truth_<table>`` for each truth table.
        """
        import duckdb

        con = duckdb.connect()
        for kind in ("three_phase", "meter", "pv"):
            files = self._select_files(self.root / "measurements" / f"kind={kind}", None, None, None)
            if files:
                con.execute(f"CREATE VIEW {kind} AS SELECT * FROM read_parquet({_sql_list(files)})")
            else:
                con.register(f"_empty_{kind}", pl.DataFrame(schema=polars_schema(kind)).to_arrow())
                con.execute(f"CREATE VIEW {kind} AS SELECT * FROM _empty_{kind}")
        rejects = self.scan_rejects().collect().to_arrow()
        con.register("rejects", rejects)
        for table in self.truth_tables():
            files = self._select_files(self.root / "truth" / f"table={table}", None, None, None)
            if files:
                con.execute(f"CREATE VIEW truth_{table} AS SELECT * FROM read_parquet({_sql_list(files)}, union_by_name=true)")
        return con

    def sql(self, query: str) -> pl.DataFrame:
        """Run DuckDB SQL over the store and return a Polars frame."""
        con = self.duckdb()
        try:
            return con.sql(query).pl()
        finally:
            con.close()

    def summary(self) -> pl.DataFrame:
        """Rows, devices and time span per kind and source."""
        frames = []
        for kind in self.kinds():
            lf = self.scan(kind)
            frames.append(
                lf.group_by("source")
                .agg(
                    pl.len().alias("rows"),
                    pl.col("device_id").n_unique().alias("devices"),
                    pl.col("ts").min().alias("first"),
                    pl.col("ts").max().alias("last"),
                    (pl.col("quality_flags") > 0).sum().alias("flagged"),
                )
                .with_columns(pl.lit(kind).alias("kind"))
                .collect()
            )
        if not frames:
            return pl.DataFrame(schema={"kind": pl.String, "source": pl.String, "rows": pl.UInt32})
        return pl.concat(frames).select("kind", "source", "rows", "devices", "first", "last", "flagged").sort("kind", "source")


class _Transaction:
    """Files staged under one directory, renamed into place by :meth:`commit`."""

    def __init__(self, root: Path, staging: Path, durable: bool):
        self.root, self.staging, self.durable = root, staging, durable
        self.txid = staging.name[:12]
        self._pending: list[tuple[Path, pa.Table]] = []
        self._markers: dict[Path, str] = {}

    def add(self, final_dir: Path, table: pa.Table) -> None:
        self._pending.append((final_dir, table))

    def add_marker(self, path: Path, text: str) -> None:
        """A small file (the partition layout) written just before the data becomes visible."""
        self._markers[path] = text

    def commit(self) -> list[Path]:
        self.staging.mkdir(parents=True, exist_ok=True)
        staged: list[tuple[Path, Path]] = []
        for k, (final_dir, _) in enumerate(self._pending):
            name = f"part-{self.txid}-{k:05d}.parquet"
            staged.append((self.staging / name, final_dir / name))

        def _write(job):
            (tmp, _), (_, table) = job
            pq.write_table(table, tmp, compression="snappy", use_dictionary=_DICTIONARY_COLUMNS)
            if self.durable:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())

        with ThreadPoolExecutor(_WRITE_THREADS) as pool:
            list(pool.map(_write, zip(staged, self._pending)))
        # every file is complete on disk: record the layout, then make the data visible
        for path, text in self._markers.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.staging / (path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        for tmp, final in staged:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        return [final for _, final in staged]


def _source_period(src_dir: Path) -> str | None:
    marker = src_dir / "_partitioning.json"
    return json.loads(marker.read_text())["period"] if marker.exists() else None


def _month_end(first: date) -> date:
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1)


def _strictly_increasing(t: pl.Series) -> bool:
    steps = t.diff().drop_nulls()
    return steps.len() == 0 or steps.dt.total_microseconds().min() > 0


def _part_dir(source: str, day: date) -> Path:
    return Path(f"source={quote(str(source), safe='')}") / f"date={day.isoformat()}"


def _files_in(directory: Path) -> list[Path]:
    if not directory.exists():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".parquet" and not p.name.startswith((".", "_")))


def as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _filter(lf: pl.LazyFrame, time_column: str, device_id, start, end) -> pl.LazyFrame:
    if device_id is not None:
        ids = [device_id] if isinstance(device_id, str) else list(device_id)
        lf = lf.filter(pl.col("device_id").is_in(ids))
    if start is not None:
        lf = lf.filter(pl.col(time_column) >= pl.lit(as_utc(start)).cast(POLARS_TS))
    if end is not None:
        lf = lf.filter(pl.col(time_column) < pl.lit(as_utc(end)).cast(POLARS_TS))
    return lf


def _sql_list(files: list[Path]) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"


def _check_name(name: str, what: str) -> None:
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"{what} name {name!r} must be letters, digits and underscores")
