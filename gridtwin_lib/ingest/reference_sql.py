"""The reference 3-tier system's relational schema (REMHART), read and written.

The reference system keeps one row per instant in ``datetime_table`` and one row
per instant and quantity in five measurement tables that point to it::

    datetime_table(id PK, timestamp DATETIME(6) NOT NULL, is_simulation BOOL,
                   simulation_id, simulation_name, simulation_scenario)
    voltage_table(id PK, timestamp_id FK, phaseA, phaseB, phaseC, average)     [V]
    current_table(id PK, timestamp_id FK, phaseA, phaseB, phaseC, average)     [A]
    frequency_table(id PK, timestamp_id FK, frequency_value)                   [Hz]
    active_power_table(id PK, timestamp_id FK, phaseA, phaseB, phaseC, total)  [W]
    reactive_power_table(id PK, timestamp_id FK, phaseA, phaseB, phaseC, total)[var]

It has no device column: one database is one measurement point (``device_id``).
Timestamps are naive; ``timezone`` says which zone they are in.

:func:`ingest_reference_sql` reads it into ``three_phase`` records with one
SELECT (``datetime_table`` LEFT JOIN the five tables, so an instant missing a
quantity gets nulls, which stay null). ``average`` and ``total`` are derived and
not read. Rows with ``is_simulation`` true are stored under the source
``<source>:sim:<simulation_scenario>`` (``unnamed`` when the scenario is null),
measured rows under ``<source>``; the returned summary adds up all of them.
A reject's ``location`` is ``<url>:<n>``, the 1-based row of that source's part
of the result; its ``raw`` JSON carries ``datetime_id`` (``datetime_table.id``).
An instant with several rows in one measurement table yields one record per
combination; the store keeps the first and counts the rest as duplicates.

:func:`export_reference_sql` writes stored ``three_phase`` records back into that
schema, so store -> SQL -> store reproduces the values.

Tested against SQLite, PostgreSQL 15 (``postgresql+psycopg://``) and MariaDB
10.11 (``mysql+pymysql://``), all through the same SQLAlchemy Core code.

Types and time zones: values are ``DOUBLE`` (``DOUBLE PRECISION`` on
PostgreSQL), so a round trip is exact. ``timestamp`` is ``DATETIME(6)`` on
MySQL/MariaDB and ``TIMESTAMP WITHOUT TIME ZONE`` on PostgreSQL: neither
carries a zone, so the convention is that the column holds **wall-clock time
in** ``timezone`` (default UTC, which is also what we recommend: no
ambiguous hour at the end of daylight saving). The server's or session's time
zone never shifts these values (MySQL only converts ``TIMESTAMP`` columns).
A column that is zone-aware anyway (``timestamptz``) is converted to
``timezone`` on reading.

Large tables are streamed: the SELECT runs with a server-side cursor
(``stream_results``; psycopg's named cursor, PyMySQL's ``SSCursor``) and is
validated and stored ``chunk_rows`` rows at a time, so memory stays bounded
by one chunk. A failure in the middle of a stream leaves the chunks already
stored in the store; the store's dedupe makes the re-run complete it. Export
inserts ``chunk_rows`` instants per batch in one transaction.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from ..store import Store
from .core import Column, ColumnMapping, IngestError, IngestSummary, ingest_frame

metadata = sa.MetaData()

_TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
#: rows per streamed read and per export batch (memory bound)
DEFAULT_CHUNK_ROWS = 50_000
_PHASES = ("phaseA", "phaseB", "phaseC")

datetime_table = sa.Table(
    "datetime_table", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("timestamp", _TIMESTAMP, nullable=False, index=True),
    sa.Column("is_simulation", sa.Boolean, default=False),
    sa.Column("simulation_id", sa.String(64)),
    sa.Column("simulation_name", sa.String(255)),
    sa.Column("simulation_scenario", sa.String(255)),
)


def _measurement_table(name: str, values: tuple[str, ...]) -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("timestamp_id", sa.Integer, sa.ForeignKey("datetime_table.id"), nullable=False, index=True),
        *(sa.Column(v, sa.Double) for v in values),  # sa.Float is 4-byte FLOAT on MySQL
    )


voltage_table = _measurement_table("voltage_table", (*_PHASES, "average"))  # V
current_table = _measurement_table("current_table", (*_PHASES, "average"))  # A
frequency_table = _measurement_table("frequency_table", ("frequency_value",))  # Hz
active_power_table = _measurement_table("active_power_table", (*_PHASES, "total"))  # W
reactive_power_table = _measurement_table("reactive_power_table", (*_PHASES, "total"))  # var

#: measurement table -> (canonical field prefix, unit, derived column)
_PHASE_TABLES = {
    voltage_table: ("v", "V", "average"),
    current_table: ("i", "A", "average"),
    active_power_table: ("p", "W", "total"),
    reactive_power_table: ("q", "var", "total"),
}


def reference_mapping(device_id: str = "reference-site", timezone: str = "UTC") -> ColumnMapping:
    """How the joined SELECT's columns (``<table>_<column>``) become ``three_phase`` fields."""
    columns = {
        f"{prefix}_{p[-1].lower()}": Column(f"{table.name}_{p}", unit)
        for table, (prefix, unit, _) in _PHASE_TABLES.items()
        for p in _PHASES
    }
    columns["frequency"] = Column("frequency_table_frequency_value", "Hz")
    return ColumnMapping("three_phase", columns, ["timestamp"], None, timezone, device_id=device_id)


def ingest_reference_sql(
    url: str = "sqlite:///reference.db",
    store: Store | None = None,
    source: str = "reference_sql",
    device_id: str = "reference-site",
    timezone: str = "UTC",
    since: datetime | str | None = None,
    dry_run: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> IngestSummary:
    """Ingest a reference-system database at SQLAlchemy ``url``.

    Parameters
    ----------
    url : SQLAlchemy URL, e.g. ``postgresql+psycopg://user@host/db``.
    store : the store to write into (default: the project's).
    source, device_id : labels of the stored records (the schema has no device).
    timezone : zone of the database's naive timestamps (see the module notes).
    since : read only instants at or after this (inclusive; naive = in ``timezone``);
        with nothing newer an empty summary is returned instead of failing.
    dry_run : validate and count, write nothing.
    chunk_rows : rows read, validated and stored at a time (memory bound).

    Returns
    -------
    IngestSummary : counts summed over every chunk and source.
    """
    if chunk_rows < 1:
        raise IngestError(f"chunk_rows={chunk_rows}: must be at least 1")
    started = time.perf_counter()
    store = store or Store()
    where = _redact(url)
    engine = _engine(url, where, must_exist=True)
    d = datetime_table
    selected = [d.c.id.label("datetime_id"), d.c.timestamp, d.c.is_simulation, d.c.simulation_scenario]
    joined = d
    for table in (*_PHASE_TABLES, frequency_table):
        selected += [c.label(f"{table.name}_{c.name}") for c in table.c if c.name not in ("id", "timestamp_id", "average", "total")]
        joined = joined.outerjoin(table, table.c.timestamp_id == d.c.id)
    stmt = sa.select(*selected).select_from(joined).order_by(d.c.timestamp, d.c.id)
    if since is not None:
        stmt = stmt.where(d.c.timestamp >= _naive(since, timezone))
    mapping = reference_mapping(device_id, timezone)
    overrides = {c.column: pl.Float64 for c in mapping.columns.values()}
    overrides |= {"datetime_id": pl.Int64, "simulation_scenario": pl.String}
    parts: list[IngestSummary] = []
    rows_seen: dict[str, int] = {}  # source -> rows of its part so far (reject locations)
    try:
        with engine.connect() as conn:
            missing = [t for t in metadata.tables if not sa.inspect(conn).has_table(t)]
            if missing:
                raise IngestError(
                    f"{where}: no table {', '.join(missing)}; this is not a reference-system database "
                    "(create one with export_reference_sql or point the URL at the right database)"
                )
            if conn.dialect.name == "postgresql":
                # the cursor is read to the end: plan for all rows, not the first 10 %, and skip JIT
                # (a table without statistics gets a huge estimate that JIT-compiles for seconds)
                conn.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
                conn.exec_driver_sql("SET LOCAL jit = off")
            streaming = conn.execution_options(stream_results=True, yield_per=chunk_rows)
            batches = pl.read_database(stmt, streaming, iter_batches=True, batch_size=chunk_rows, schema_overrides=overrides)
            for raw in batches:
                if raw.height:
                    parts += _ingest_chunk(raw, mapping, source, timezone, store, where, rows_seen, dry_run)
    except sa.exc.DBAPIError as exc:
        raise IngestError(f"{where}: cannot read the database ({_first_line(exc.orig)}); check the URL, credentials and that the server is up") from None
    finally:
        engine.dispose()
    if not parts:
        if since is not None:
            return IngestSummary(source=source, kind="three_phase")
        raise IngestError(f"{where}: datetime_table holds no rows; nothing to ingest (is it the right database?)")
    return _merge(parts, source, started)


def _ingest_chunk(raw: pl.DataFrame, mapping: ColumnMapping, source: str, timezone: str, store: Store, where: str,
                  rows_seen: dict[str, int], dry_run: bool) -> list[IngestSummary]:
    """Validate and store one streamed chunk, split by measured / simulated source."""
    ts = raw.schema["timestamp"]
    if isinstance(ts, pl.Datetime) and ts.time_zone is not None:  # a zone-aware column: to wall-clock in ``timezone``
        raw = raw.with_columns(pl.col("timestamp").dt.convert_time_zone(timezone).dt.replace_time_zone(None))
    elif ts != pl.Datetime("us"):
        raw = raw.with_columns(pl.col("timestamp").cast(pl.Datetime("us")))
    raw = raw.with_columns(
        pl.when(pl.col("is_simulation").cast(pl.Boolean).fill_null(False))  # MySQL BOOL is TINYINT
        .then(pl.lit(f"{source}:sim:") + pl.col("simulation_scenario").fill_null("unnamed"))
        .otherwise(pl.lit(source))
        .alias("_source")
    )
    out = []
    for (part_source,), part in raw.partition_by("_source", as_dict=True, maintain_order=True).items():
        offset = rows_seen.get(part_source, 0)
        out.append(ingest_frame(part.drop("_source"), mapping, part_source, store, where, line_offset=1 + offset, dry_run=dry_run))
        rows_seen[part_source] = offset + part.height
    return out


def export_reference_sql(
    store: Store,
    url: str,
    source: str | list[str] | None = None,
    device_id: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    timezone: str = "UTC",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """Write stored ``three_phase`` records into the reference schema at ``url``; return rows inserted.

    Creates the tables if absent. ``average`` (V, A) and ``total`` (W, var) are
    computed from the phases present; a quantity with every phase null gets no
    row, so it reads back as null. A source ``<x>:sim:<scenario>`` is written with
    ``is_simulation`` true. Instants already in the database (same timestamp and
    scenario) are skipped, so exporting twice inserts once. Timestamps are written
    naive in ``timezone``. The selection must hold one device (the schema has no
    device column): pass ``device_id`` otherwise. Rows go in batches of
    ``chunk_rows`` instants, all in one transaction (all or nothing).
    """
    df = store.scan("three_phase", source=source, device_id=device_id, start=start, end=end).collect()
    where = _redact(url)
    devices = df["device_id"].unique().to_list()
    if len(devices) > 1:
        raise IngestError(
            f"{where}: the selection holds {len(devices)} devices ({', '.join(sorted(devices)[:5])}) but the reference "
            "schema has no device column; pass device_id to export one"
        )
    scenario = pl.col("source").str.split_exact(":sim:", 1).struct.field("field_1")
    df = df.with_columns(
        pl.col("ts").dt.convert_time_zone(timezone).dt.replace_time_zone(None).alias("timestamp"),
        scenario.alias("simulation_scenario"),
        scenario.is_not_null().alias("is_simulation"),
    ).unique(["timestamp", "simulation_scenario"], keep="first", maintain_order=True)
    engine = _engine(url, where, must_exist=False)
    try:
        metadata.create_all(engine)
        if df.height == 0:
            return 0
        with engine.begin() as conn:
            d = datetime_table
            existing = pl.DataFrame(
                conn.execute(
                    sa.select(d.c.timestamp, d.c.simulation_scenario).where(
                        d.c.timestamp.between(df["timestamp"].min(), df["timestamp"].max())
                    )
                ).all(),
                schema={"timestamp": pl.Datetime("us"), "simulation_scenario": pl.String},
                orient="row",
            )
            df = df.join(existing, on=["timestamp", "simulation_scenario"], how="anti", nulls_equal=True)
            if df.height == 0:
                return 0
            first_id = (conn.execute(sa.select(sa.func.max(d.c.id))).scalar() or 0) + 1
            df = df.with_columns(pl.int_range(first_id, first_id + df.height).alias("timestamp_id"))
            for chunk in df.iter_slices(chunk_rows):
                _insert_chunk(conn, chunk)
        if engine.dialect.name == "postgresql":  # fresh statistics, so the ingest's join gets a sane plan
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE " + ", ".join(t.name for t in metadata.sorted_tables))
        return df.height
    except sa.exc.DBAPIError as exc:
        raise IngestError(f"{where}: cannot write the database ({_first_line(exc.orig)}); check the URL, credentials and permissions") from None
    finally:
        engine.dispose()


def _insert_chunk(conn: sa.Connection, df: pl.DataFrame) -> None:
    """Insert one batch of instants (``timestamp_id`` assigned) into the six tables."""
    conn.execute(
        sa.insert(datetime_table),
        df.select(pl.col("timestamp_id").alias("id"), "timestamp", "is_simulation", "simulation_scenario").to_dicts(),
    )
    for table, (prefix, _, derived) in _PHASE_TABLES.items():
        phases = [pl.col(f"{prefix}_{p[-1].lower()}") for p in _PHASES]
        combine = pl.mean_horizontal(phases) if derived == "average" else pl.sum_horizontal(phases)
        rows = df.filter(pl.any_horizontal([c.is_not_null() for c in phases])).select(
            "timestamp_id", *(c.alias(p) for c, p in zip(phases, _PHASES)), combine.alias(derived)
        )
        if rows.height:
            conn.execute(sa.insert(table), rows.to_dicts())
    freq = df.filter(pl.col("frequency").is_not_null()).select("timestamp_id", pl.col("frequency").alias("frequency_value"))
    if freq.height:
        conn.execute(sa.insert(frequency_table), freq.to_dicts())


_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


def _engine(url: str, where: str, must_exist: bool) -> sa.Engine:
    try:
        parsed = sa.make_url(url)
        if parsed.drivername in _DEFAULT_DRIVERS:  # the maintained pure-Python drivers this project installs
            parsed = parsed.set(drivername=_DEFAULT_DRIVERS[parsed.drivername])
        engine = sa.create_engine(parsed)
    except (sa.exc.NoSuchModuleError, ImportError) as exc:  # NoSuchModuleError is an ArgumentError
        raise IngestError(f"{where}: no SQLAlchemy dialect or driver for it ({exc}); install the driver or fix the URL") from None
    except sa.exc.ArgumentError:
        raise IngestError(f"{where}: not a database URL; use e.g. sqlite:///path/to.db or mysql+pymysql://user:pw@host/db") from None
    db = parsed.database
    if (must_exist and parsed.get_backend_name() == "sqlite" and db and db != ":memory:" and not db.startswith("file:")
            and not Path(db).is_file()):
        engine.dispose()
        raise IngestError(f"{where}: SQLite database file not found; check the path (three slashes + relative, four + absolute)")
    return engine


def _merge(parts: list[IngestSummary], source: str, started: float) -> IngestSummary:
    out = IngestSummary(source=source, kind="three_phase")
    for s in parts:
        for name in ("read", "accepted", "flagged", "rejected", "duplicates", "written"):
            setattr(out, name, getattr(out, name) + getattr(s, name))
        for target, counts in ((out.missing_values, s.missing_values), (out.rejected_by_rule, s.rejected_by_rule)):
            for key, n in counts.items():
                target[key] = target.get(key, 0) + n
        out.devices = max(out.devices, s.devices)
    firsts = [s.first_ts for s in parts if s.first_ts]
    lasts = [s.last_ts for s in parts if s.last_ts]
    out.first_ts, out.last_ts = (min(firsts), max(lasts)) if firsts else (None, None)
    out.seconds = time.perf_counter() - started
    return out


def _naive(value: datetime | str, timezone: str) -> datetime:
    value = datetime.fromisoformat(value) if isinstance(value, str) else value
    return value.astimezone(ZoneInfo(timezone)).replace(tzinfo=None) if value.tzinfo else value


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", str(url))


def _first_line(exc: BaseException | None) -> str:
    return (str(exc).strip().splitlines() or ["unknown error"])[0]
