"""Compaction: committed write-ahead-log rows into the Parquet store, idempotently.

Each run reads the log rows after the table's watermark, sends them through
:func:`~gridtwin_lib.ingest.core.ingest_frame` (the same canonicalisation and
:func:`~gridtwin_lib.schema.validate` as every other ingest; readings are stored under
source ``collector``, soft-rule flags set, rows failing a rule go to the rejects dataset),
writes the log's own rejects (refused at the API) to the rejects dataset, fsyncs the new
Parquet files and their directories, and only then advances the watermark.

Crash safety: a crash after the store write and before the watermark leaves the rows in
the log; the next run writes them again and :meth:`Store.write` (keyed on source, device,
ts) stores none of them twice. Rejects are not keyed by the store, so their ``location``
carries the log id (``wal:<id>:...``) and the first run of each process skips ids already
in the rejects dataset. One compactor at a time per collector directory (``flock``).

The collector runs :func:`watch` in a child process (``python -m gridtwin_lib.collect.compact``):
reading the log back into Python objects costs about 2.5 us per row, which in the server's
process would hold the GIL the request handlers need. The child writes its state to
``compaction.json`` (read by ``/health``), runs once more on SIGTERM, and exits by itself when
its parent is gone (``kill -9``), so a restarted collector never finds two watchers.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ..fileio import file_lock, fsync_parents, fsync_path, write_text
from ..ingest.core import ingest_frame
from ..schema import POLARS_TS
from ..store import Store, WriteResult
from .payloads import GRID, METER
from .wal import REJECT_COLUMNS, TABLES, connect, create_tables

SOURCE = "collector"
STATUS_FILE = "compaction.json"
_SPECS = {"meter": METER, "three_phase": GRID}
_BATCH_ROWS = 200_000  # log rows per ingest_frame call


@dataclass
class CompactionResult:
    """Rows moved by one run, per kind: ``read`` = written + duplicates + rejected."""

    read: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    api_rejects: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}

    def __str__(self) -> str:
        kinds = ", ".join(
            f"{k}: read {self.read[k]:,}, written {self.written.get(k, 0):,}, duplicate {self.duplicates.get(k, 0):,}, "
            f"rejected {self.rejected.get(k, 0):,}" for k in self.read
        ) or "nothing to compact"
        return f"{kinds}; API rejects {self.api_rejects:,}; {self.seconds:.2f} s"


class DurableStore(Store):
    """A :class:`Store` whose writes are on disk (files and directory entries) when they return."""

    def write(self, kind: str, df: pl.DataFrame, durable: bool = True) -> WriteResult:
        result = super().write(kind, df, durable=True)
        fsync_parents(result.files, self.root)
        return result

    def write_rejects(self, kind: str, df: pl.DataFrame) -> WriteResult:
        result = super().write_rejects(kind, df)
        for path in result.files:
            fsync_path(path)
        fsync_parents(result.files, self.root)
        return result


class Compactor:
    """Moves committed log rows of ``collector_dir/wal.sqlite`` into ``store``."""

    def __init__(self, store: Store | str | Path | None, collector_dir: str | Path, source: str = SOURCE):
        root = store.root if isinstance(store, Store) else store
        self.store = DurableStore(root)
        self.directory = Path(collector_dir)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.source = source
        self._conn = connect(self.directory / "wal.sqlite")
        create_tables(self._conn)
        self._lock = threading.Lock()
        self._rejects_checked = False
        self.last_run: float | None = None  # Unix seconds of the last successful run
        self.last_error: str | None = None

    def close(self) -> None:
        self._conn.close()

    def run(self, batch_rows: int = _BATCH_ROWS) -> CompactionResult:
        """Compact everything committed so far; safe to call again at any time."""
        t0 = time.perf_counter()
        result = CompactionResult()
        with self._lock, file_lock(self.directory / ".compact.lock"):
            try:
                for kind in TABLES:
                    while self._compact_readings(kind, batch_rows, result) == batch_rows:
                        pass
                while self._compact_rejects(batch_rows, result) == batch_rows:
                    pass
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._rejects_checked = False  # rejects may be stored and not marked: check again
                raise
        self.last_error = None
        self.last_run = time.time()
        result.seconds = time.perf_counter() - t0
        return result

    def _watermark(self, table: str) -> int:
        row = self._conn.execute("SELECT last_id FROM watermarks WHERE name = ?", (table,)).fetchone()
        return row[0] if row else 0

    def _advance(self, table: str, last_id: int) -> None:
        """Record that rows up to ``last_id`` are in the store (only ever forwards)."""
        self._conn.execute(
            "INSERT INTO watermarks (name, last_id) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
            (table, last_id),
        )

    def _compact_readings(self, kind: str, limit: int, result: CompactionResult) -> int:
        table, values = TABLES[kind]
        spec = _SPECS[kind]
        names = [spec.mapping.columns[v].column for v in values]  # the mapping's source column names
        rows = self._conn.execute(
            f"SELECT id, device_id, ts_us, {', '.join(values)} FROM {table} WHERE id > ? ORDER BY id LIMIT ?",
            (self._watermark(table), limit),
        ).fetchall()
        if not rows:
            return 0
        schema = {"id": pl.Int64, "device_id": pl.String, "ts_us": pl.Int64, **{n: pl.Float64 for n in names}}
        frame = pl.DataFrame(rows, schema=schema, orient="row")
        raw = frame.select("device_id", pl.col("ts_us").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts"), *names)
        summary = ingest_frame(raw, spec.mapping, self.source, self.store, f"wal:{table}", line_numbers=frame["id"],
                               check_unit_plausibility=False, dedupe_rejects=False)
        self._advance(table, rows[-1][0])
        for name, n in (("read", summary.read), ("written", summary.written), ("duplicates", summary.duplicates),
                        ("rejected", summary.rejected)):
            getattr(result, name)[kind] = getattr(result, name).get(kind, 0) + n
        return len(rows)

    def _compact_rejects(self, limit: int, result: CompactionResult) -> int:
        rows = self._conn.execute(
            f"SELECT id, {', '.join(REJECT_COLUMNS)} FROM rejects WHERE id > ? ORDER BY id LIMIT ?",
            (self._watermark("rejects"), limit),
        ).fetchall()
        if not rows:
            return 0
        frame = pl.DataFrame(rows, schema={"id": pl.Int64, **dict.fromkeys(REJECT_COLUMNS, pl.String), "ts_us": pl.Int64},
                             orient="row")
        frame = frame.with_columns(
            (pl.lit("wal:") + pl.col("id").cast(pl.String) + pl.lit(":") + pl.col("location")).alias("location"),
            pl.col("ts_us").cast(pl.Datetime("us")).dt.replace_time_zone("UTC").cast(POLARS_TS).alias("ts"),
            pl.lit(self.source).alias("source"),
        )
        for (kind,), part in frame.partition_by("kind", as_dict=True).items():
            if not self._rejects_checked:  # a crash may have stored these before the watermark moved
                seen = self.store.scan_rejects(kind).filter(pl.col("source") == self.source).select("location").collect()
                part = part.filter(~pl.col("location").is_in(seen["location"].implode()))
            self.store.write_rejects(kind, part.drop("id", "ts_us", "kind"))
            result.api_rejects += part.height
        self._rejects_checked = True
        self._advance("rejects", rows[-1][0])
        return len(rows)


def write_status(directory: Path, last_run: float | None, error: str | None, result: CompactionResult | None) -> None:
    """Record the watcher's state for ``/health`` (atomic replace)."""
    status = {"last_run": last_run, "error": error, "pid": os.getpid(), "last_result": result.to_dict() if result else None}
    write_text(directory / STATUS_FILE, json.dumps(status), fsync=False)  # a status, not data: no flush


def read_status(directory: Path) -> dict:
    try:
        return json.loads((directory / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return {"last_run": None, "error": None}


def watch(store_root: Path | None, collector_dir: Path, interval_s: float, parent_pid: int | None = None) -> None:
    """Compact every ``interval_s`` until SIGTERM/SIGINT (then once more) or until the parent dies."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    compactor = Compactor(store_root, collector_dir)
    try:
        while True:
            try:
                result = compactor.run()
                write_status(compactor.directory, compactor.last_run, None, result)
            except Exception as exc:  # noqa: BLE001 - the rows stay in the log; retried next round
                write_status(compactor.directory, compactor.last_run, compactor.last_error, None)
                print(f"compaction failed: {exc}", flush=True)
            if stop.is_set():
                return  # the run above was the final one
            stop.wait(interval_s)
            if parent_pid is not None and os.getppid() != parent_pid:
                return  # orphaned by a crash: the restarted collector starts its own watcher
    finally:
        compactor.close()


def main() -> None:
    ap = argparse.ArgumentParser(description="Compact the collector's write-ahead log into the store, repeatedly.")
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--collector-dir", type=Path, required=True)
    ap.add_argument("--every", type=float, default=2.0, help="seconds between runs")
    ap.add_argument("--parent", type=int, default=None, help="exit when this process is no longer the parent")
    args = ap.parse_args()
    watch(args.store, args.collector_dir, args.every, args.parent)


if __name__ == "__main__":
    main()
