"""The collector's write-ahead log: a reading is acknowledged only once it is on disk here.

One SQLite file (``wal.sqlite`` in the collector directory) in WAL journal mode with
``synchronous=FULL``: a committed transaction has been fsync'd, so neither ``kill -9`` nor a
power cut loses it. Tables:

* ``readings_<kind>`` (``meter``, ``three_phase``): ``id`` (monotone), ``device_id``,
  ``boot``, ``seq``, ``ts_us`` (UTC microseconds) and the kind's value columns; a
  ``UNIQUE (device_id, boot, seq)`` constraint makes a repeated delivery a no-op (rows
  without ``seq`` are never duplicates here; the store's (source, device, ts) key still is).
* ``rejects``: refused rows with rule, detail and verbatim text, bound for the store's
  rejects dataset.
* ``watermarks``: per table, the last ``id`` compacted into the Parquet store
  (:mod:`.compact`). Rows are never updated or deleted: the log is append-only.

**Group commit**: requests hand their rows to one writer thread through a queue. The writer
takes everything queued, writes it in one transaction, commits (one fsync for the whole
group), then resolves each request's future. While it commits, the event loop keeps
accepting requests, which form the next group. ``group_commit=False`` commits each request
on its own (the benchmark's comparison).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from .payloads import GRID, METER

#: kind -> (table, value columns in row order after device_id, boot, seq, ts_us)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "meter": ("readings_meter", METER.value_fields),
    "three_phase": ("readings_three_phase", GRID.value_fields),
}
KEY_COLUMNS = ("device_id", "boot", "seq", "ts_us")
REJECT_COLUMNS = ("kind", "device_id", "ts_us", "rule", "detail", "location", "raw")
_MAX_GROUP_ROWS = 100_000  # rows written in one transaction at most


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the log's durability settings (autocommit; transactions are explicit)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def create_tables(conn: sqlite3.Connection) -> None:
    for table, values in TABLES.values():
        cols = ", ".join(f"{v} REAL" for v in values)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, boot INTEGER NOT NULL,"
            f" seq INTEGER, ts_us INTEGER NOT NULL, {cols}, UNIQUE (device_id, boot, seq))"
        )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS rejects (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, device_id TEXT, ts_us INTEGER,"
        " rule TEXT NOT NULL, detail TEXT, location TEXT, raw TEXT)"
    )
    conn.execute("CREATE TABLE IF NOT EXISTS watermarks (name TEXT PRIMARY KEY, last_id INTEGER NOT NULL)")


@dataclass
class _Item:
    kind: str
    rows: list[tuple]
    rejects: list[tuple]
    future: Future
    inserted: list[bool] = field(default_factory=list)


class WriteAheadLog:
    """Durable, deduplicating append of readings; one writer thread, group commit."""

    def __init__(self, directory: str | Path, group_commit: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "wal.sqlite"
        self.group_commit = group_commit
        conn = connect(self.path)
        create_tables(conn)
        conn.close()
        self._read = connect(self.path)  # for health queries, from the event loop thread
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.submitted_rows = 0  # written by submitters only
        self.committed_rows = 0  # written by the writer thread only
        self.commits = 0
        self.last_commit: float | None = None  # Unix seconds
        self._thread = threading.Thread(target=self._run, name="gridtwin-wal-writer", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ appending

    async def append(self, kind: str, rows: list[tuple], rejects: list[tuple] = ()) -> list[bool]:
        """Write rows (and rejects) durably; returns per row whether it was new (False: duplicate)."""
        loop = asyncio.get_running_loop()
        return await asyncio.wrap_future(self._submit(kind, rows, rejects), loop=loop)

    def append_sync(self, kind: str, rows: list[tuple], rejects: list[tuple] = ()) -> list[bool]:
        """:meth:`append` for callers without an event loop (tests, tools)."""
        return self._submit(kind, rows, rejects).result()

    def _submit(self, kind, rows, rejects) -> Future:
        if kind not in TABLES:
            raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(TABLES)}")
        future: Future = Future()
        self.submitted_rows += len(rows)
        self._queue.put(_Item(kind, list(rows), list(rejects), future))
        return future

    @property
    def queue_depth(self) -> int:
        """Rows handed to the writer and not yet committed."""
        return self.submitted_rows - self.committed_rows

    def uncompacted(self) -> dict[str, int]:
        """Rows per kind committed to the log but not yet in the Parquet store."""
        out = {}
        for kind, (table, _) in TABLES.items():
            last = self._read.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
            mark = self._read.execute("SELECT last_id FROM watermarks WHERE name = ?", (table,)).fetchone()
            out[kind] = last - (mark[0] if mark else 0)
        return out

    def close(self) -> None:
        """Commit everything queued, then stop the writer."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._read.close()

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        conn = connect(self.path)
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                break
            group, n = [item], len(item.rows)
            while self.group_commit and n < _MAX_GROUP_ROWS:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
                n += len(nxt.rows)
            batches = [group] if self.group_commit else [[g] for g in group]
            for batch in batches:
                self._commit(conn, batch)
        conn.close()

    def _commit(self, conn: sqlite3.Connection, group: list[_Item]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for kind in {item.kind for item in group}:
                _insert_readings(conn, kind, [item for item in group if item.kind == kind])
            rejects = [r for item in group for r in item.rejects]
            if rejects:
                conn.executemany(f"INSERT INTO rejects ({', '.join(REJECT_COLUMNS)}) VALUES ({', '.join('?' * len(REJECT_COLUMNS))})", rejects)
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - every waiting request must learn it was not stored
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the transaction is gone either way; the writer must live on
            self.committed_rows += sum(len(item.rows) for item in group)
            _notify(group, exc)
            return
        self.committed_rows += sum(len(item.rows) for item in group)
        self.commits += 1
        self.last_commit = time.time()
        _notify(group, None)


def _insert_readings(conn: sqlite3.Connection, kind: str, items: list[_Item]) -> None:
    """INSERT OR IGNORE every row; mark each item's rows new or duplicate (first occurrence wins)."""
    table, values = TABLES[kind]
    columns = (*KEY_COLUMNS, *values)
    rows = [row for item in items for row in item.rows]
    if not rows:
        return
    last_before = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
    changes = conn.total_changes
    conn.executemany(f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)
    if conn.total_changes - changes == len(rows):
        for item in items:
            item.inserted = [True] * len(item.rows)
        return
    new_keys = set(conn.execute(f"SELECT device_id, boot, seq FROM {table} WHERE id > ?", (last_before,)).fetchall())
    for item in items:
        flags = []
        for row in item.rows:
            key = row[:3]
            if row[2] is None:
                flags.append(True)
            elif key in new_keys:
                new_keys.discard(key)
                flags.append(True)
            else:
                flags.append(False)
        item.inserted = flags


def _notify(group: list[_Item], error: BaseException | None) -> None:
    for item in group:
        if error is None:
            item.future.set_result(item.inserted)
        else:
            item.future.set_exception(error)
