"""The collector's write-ahead log: a reading is acknowledged only once it is on disk here.

One SQLite file (``wal.sqlite`` in the collector directory) in WAL journal mode with
``synchronous=FULL``: a committed transaction has been fsync'd, so neither ``kill -9`` nor a
power cut loses it. Tables:

* ``readings_<kind>`` (``meter``, ``three_phase``): ``id`` (monotone), ``device_id``,
  ``boot``, ``seq``, ``ts_us`` (UTC microseconds) and the kind's value columns; a
  ``UNIQUE (device_id, boot, seq)`` constraint makes a repeated delivery a no-op, and a
  unique index on ``(device_id, ts_us)`` (the store's key: it keeps one reading per device
  and instant) makes the log agree with the store. A row whose instant the device already
  used is a *duplicate* when it is the same reading (same boot and seq, or the same values)
  and a *conflict* otherwise: it is not logged, a ``hard.timestamp_conflict`` reject is, and
  :meth:`WriteAheadLog.append` reports it as ``None`` so the device is told.
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
import json
import logging
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from .payloads import GRID, METER

log = logging.getLogger("gridtwin.collect.wal")

#: kind -> (table, value columns in row order after device_id, boot, seq, ts_us)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "meter": ("readings_meter", METER.value_fields),
    "three_phase": ("readings_three_phase", GRID.value_fields),
}
KEY_COLUMNS = ("device_id", "boot", "seq", "ts_us")
REJECT_COLUMNS = ("kind", "device_id", "ts_us", "rule", "detail", "location", "raw")
_MAX_GROUP_ROWS = 100_000  # rows written in one transaction at most
CONFLICT_DETAIL = "this device already sent a different reading for this ts (other seq and values); the store keeps one reading per device and instant"


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
    _add_new_value_columns(conn)
    for table, _ in TABLES.values():
        try:
            conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_device_ts ON {table} (device_id, ts_us)")
        except sqlite3.IntegrityError:  # a log written before the index: it already holds same-instant rows
            log.warning("%s holds several readings for one (device, ts); same-instant conflicts are not detected "
                        "until it is compacted and moved away", table)


def _add_new_value_columns(conn: sqlite3.Connection) -> None:
    """A log written before a payload gained a value column (e.g. ``thd_v``) gets it, empty for the old rows.

    The collector and its compaction child may both arrive here on an old log: the one that loses the
    race finds the column there.
    """
    for table, values in TABLES.values():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name in values:
            if name not in have:
                try:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} REAL")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):
                        raise


@dataclass
class _Item:
    kind: str
    rows: list[tuple]
    rejects: list[tuple]
    future: Future
    locations: list[str] | None = None
    inserted: list[bool | None] = field(default_factory=list)


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

    async def append(self, kind: str, rows: list[tuple], rejects: list[tuple] = (),
                     locations: list[str] | None = None) -> list[bool | None]:
        """Write rows (and rejects) durably; per row True (new), False (duplicate) or None (conflict).

        A conflict (a different reading at an instant the device already used) is not logged
        as a reading; its ``hard.timestamp_conflict`` reject is, located by ``locations``
        (one per row, e.g. the request path and index).
        """
        loop = asyncio.get_running_loop()
        return await asyncio.wrap_future(self._submit(kind, rows, rejects, locations), loop=loop)

    def append_sync(self, kind: str, rows: list[tuple], rejects: list[tuple] = (),
                    locations: list[str] | None = None) -> list[bool | None]:
        """:meth:`append` for callers without an event loop (tests, tools)."""
        return self._submit(kind, rows, rejects, locations).result()

    def _submit(self, kind, rows, rejects, locations=None) -> Future:
        if kind not in TABLES:
            raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(TABLES)}")
        future: Future = Future()
        self.submitted_rows += len(rows)
        self._queue.put(_Item(kind, list(rows), list(rejects), future, locations))
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
            conflicts = []
            for kind in {item.kind for item in group}:
                conflicts += _insert_readings(conn, kind, [item for item in group if item.kind == kind])
            rejects = [r for item in group for r in item.rejects] + conflicts
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


def _insert_readings(conn: sqlite3.Connection, kind: str, items: list[_Item]) -> list[tuple]:
    """INSERT OR IGNORE every row; mark each row new, duplicate or conflict (first occurrence wins).

    Returns the reject rows of the conflicts.
    """
    table, values = TABLES[kind]
    columns = (*KEY_COLUMNS, *values)
    rows = [row for item in items for row in item.rows]
    if not rows:
        return []
    last_before = conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
    changes = conn.total_changes
    conn.executemany(f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows)
    if conn.total_changes - changes == len(rows):
        for item in items:
            item.inserted = [True] * len(item.rows)
        return []
    new_rows = set(conn.execute(
        f"SELECT {', '.join(columns)} FROM {table} WHERE id > ?", (last_before,)).fetchall())
    at_ts = f"SELECT boot, seq, {', '.join(values)} FROM {table} WHERE device_id = ? AND ts_us = ?"
    conflicts = []
    for item in items:
        flags: list[bool | None] = []
        for k, row in enumerate(item.rows):
            if row in new_rows:
                new_rows.discard(row)
                flags.append(True)
                continue
            device, boot, seq, ts_us, *vals = row
            existing = conn.execute(at_ts, (device, ts_us)).fetchone()
            if existing is None or existing[:2] == (boot, seq) or _same_values(existing[2:], vals):
                flags.append(False)  # the same reading again (or its seq was logged at another ts)
                continue
            flags.append(None)
            where = item.locations[k] if item.locations else "wal"
            raw = json.dumps(dict(zip(columns, row)), default=str)
            conflicts.append((kind, device, ts_us, "hard.timestamp_conflict",
                              f"{CONFLICT_DETAIL}; logged: boot={existing[0]} seq={existing[1]}", where, raw))
        item.inserted = flags
    return conflicts


def _same_values(a, b) -> bool:
    return all(x == y or (x is None and y is None) for x, y in zip(a, b))


def _notify(group: list[_Item], error: BaseException | None) -> None:
    for item in group:
        if error is None:
            item.future.set_result(item.inserted)
        else:
            item.future.set_exception(error)
