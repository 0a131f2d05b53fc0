"""What every reader shares: column mappings, canonicalisation, validation, the write.

A reader's only job is to turn its source into a *raw frame* (source columns as
read, usually strings) plus a :class:`ColumnMapping`. :func:`ingest_frame` does
the rest the same way for every source:

raw frame -> canonical columns in SI units -> :func:`~gridtwin_lib.schema.validate`
-> measurements (+ flags) and rejects (with rule and original text) -> store.

Everything that can fail for the whole input (unknown column, wrong unit, mixed
timezones, an empty file) fails before anything is written.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from .. import units
from ..config import Site
from ..errors import IngestError
from ..schema import POLARS_TS, field_by_name, validate, value_fields
from ..store import Store

NA_VALUES = ("", "?", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
_OFFSET_RE = r"(?:Z|[+-]\d{2}:?\d{2})$"


@dataclass(frozen=True)
class Column:
    """Where a canonical field comes from: a source column and the unit it is in."""

    column: str
    unit: str


@dataclass
class ColumnMapping:
    """How a source's columns become a record kind's canonical fields.

    Attributes
    ----------
    kind : ``three_phase``, ``meter`` or ``pv``.
    columns : canonical field -> :class:`Column` (source column and its unit).
    timestamp : source column(s) holding the time; several are joined with a space
        (the UCI text file has separate ``Date`` and ``Time``).
    timestamp_format : strftime format, or ``None`` to accept ISO 8601.
    timezone : IANA zone for timestamps without an offset (ignored when the text
        carries its own offset; a file mixing both is refused).
    device_column / device_id : a column naming the device, or one device for all rows.
    """

    kind: str
    columns: dict[str, Column]
    timestamp: list[str] = field(default_factory=lambda: ["timestamp"])
    timestamp_format: str | None = None
    timezone: str = "UTC"
    device_column: str | None = None
    device_id: str | None = None

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> "ColumnMapping":
        """Build from the YAML/JSON mapping-file form (see README, "Column mappings").

        Unknown keys are refused (a misspelt ``timezone`` must not silently mean UTC);
        the ``ValueError`` names the key and the allowed ones.
        """
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ValueError("a mapping is a YAML mapping with at least 'kind' and 'columns'")
        _only(spec, {"kind", "timestamp", "device", "columns"}, "mapping")
        ts = spec.get("timestamp") or {}
        if isinstance(ts, str):
            ts = {"columns": [ts]}
        _only(ts, {"columns", "format", "timezone"}, "timestamp")
        ts_columns = ts.get("columns", ["timestamp"])
        cols = {}
        for name, c in (spec.get("columns") or {}).items():
            if isinstance(c, str):
                source, _, unit = c.partition(":")
                c = {"column": source, "unit": unit or None}
            _only(c, {"column", "unit"}, f"columns.{name}")
            cols[name] = Column(c["column"], c.get("unit") or field_by_name(spec["kind"], name).unit)
        device = spec.get("device") or {}
        _only(device, {"column", "id"}, "device")
        return cls(
            kind=spec["kind"],
            columns=cols,
            timestamp=[ts_columns] if isinstance(ts_columns, str) else list(ts_columns),
            timestamp_format=ts.get("format"),
            timezone=ts.get("timezone", "UTC"),
            device_column=device.get("column"),
            device_id=device.get("id"),
        )


def _only(section: Any, allowed: set[str], where: str) -> None:
    if not isinstance(section, dict):
        raise ValueError(f"'{where}' must be a mapping of {', '.join(sorted(allowed))}")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in '{where}'; allowed: {', '.join(sorted(allowed))}")


@dataclass
class IngestSummary:
    """Counts of one ingest; ``read = accepted + rejected`` and ``accepted = written + duplicates``."""

    source: str
    kind: str
    read: int = 0
    accepted: int = 0
    flagged: int = 0
    rejected: int = 0
    duplicates: int = 0
    written: int = 0
    missing_values: dict[str, int] = field(default_factory=dict)
    rejected_by_rule: dict[str, int] = field(default_factory=dict)
    devices: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows_per_second"] = round(self.rows_per_second, 1)
        return d

    def __str__(self) -> str:
        missing = sum(self.missing_values.values())
        return (
            f"{self.source} ({self.kind}): read {self.read:,}, accepted {self.accepted:,} "
            f"(flagged {self.flagged:,}), rejected {self.rejected:,}, duplicate {self.duplicates:,}, "
            f"written {self.written:,}; missing values {missing:,}; {self.devices} device(s) "
            f"{self.first_ts} .. {self.last_ts}; {self.seconds:.2f} s"
        )


def check_mapping(mapping: ColumnMapping, available: list[str], where: str) -> None:
    """Refuse a mapping that names unknown fields, absent columns or wrong units."""
    known = {f.name for f in value_fields(mapping.kind)}
    for name, col in mapping.columns.items():
        if name not in known:
            raise IngestError(f"{where}: {name!r} is not a {mapping.kind} field; use one of {', '.join(sorted(known))}")
        if col.column not in available:
            raise IngestError(
                f"{where}: column {col.column!r} (mapped to {name}) is not in the input; "
                f"its columns are {', '.join(available)}; fix the mapping"
            )
        dim = field_by_name(mapping.kind, name).dimension
        try:
            units.lookup(col.unit, dim)
        except ValueError as exc:
            raise IngestError(f"{where}: {name} <- {col.column}: {exc}") from None
    for col in mapping.timestamp:
        if col not in available:
            raise IngestError(
                f"{where}: timestamp column {col!r} is not in the input; its columns are {', '.join(available)}; "
                "set the mapping's timestamp columns"
            )
    if mapping.device_column and mapping.device_column not in available:
        raise IngestError(f"{where}: device column {mapping.device_column!r} is not in the input; fix the mapping")
    if not mapping.columns:
        raise IngestError(f"{where}: the mapping maps no value column; add at least one under 'columns'")
    try:
        ZoneInfo(mapping.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise IngestError(
            f"{where}: unknown timezone {mapping.timezone!r}; use an IANA name such as UTC, Europe/Paris or Australia/Sydney"
        ) from None


def parse_timestamps(raw: pl.DataFrame, mapping: ColumnMapping, where: str) -> pl.Series:
    """UTC timestamps for every row of ``raw`` (null where unparseable)."""
    cols = mapping.timestamp
    dtype = raw.schema[cols[0]]
    if len(cols) == 1 and isinstance(dtype, pl.Datetime):
        c = raw[cols[0]]
        if dtype.time_zone is None:
            c = c.dt.replace_time_zone(mapping.timezone, ambiguous="earliest", non_existent="null")
        return c.dt.convert_time_zone("UTC").cast(POLARS_TS).alias("ts")
    if len(cols) == 1 and dtype.is_numeric():  # unix epoch seconds
        seconds = raw[cols[0]].cast(pl.Float64)
        return (seconds * 1e6).round().cast(pl.Int64).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts")

    parts = [pl.col(c).cast(pl.String) for c in cols]
    text = raw.select(pl.concat_str(parts, separator=" ").str.strip_chars().alias("t")).to_series()
    has_offset = text.str.contains(_OFFSET_RE)
    aware = int(has_offset.sum())
    if aware:
        # text without an offset counts as naive only if it looks like a date: "not-a-date" is just unparseable
        is_naive = ~has_offset & text.str.contains(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")
        naive = int(is_naive.sum())
        if naive:
            raise IngestError(
                f"{where}: mixed timezones: {aware:,} timestamps carry a UTC offset (e.g. {text.filter(has_offset)[0]!r}) and "
                f"{naive:,} do not (e.g. {text.filter(is_naive)[0]!r}); export all with an offset or all in one zone "
                "and name it with --timezone"
            )
        parsed = text.str.replace(r"Z$", "+00:00").str.to_datetime(
            mapping.timestamp_format, strict=False, time_zone="UTC", time_unit="us"
        )
        return parsed.cast(POLARS_TS).alias("ts")
    if text.null_count() == text.len() or not text.str.len_bytes().max():
        return pl.Series("ts", [None] * text.len(), dtype=POLARS_TS)
    parsed = text.str.to_datetime(mapping.timestamp_format, strict=False, time_unit="us")
    offset = _fixed_offset(mapping.timezone)
    if offset is not None:  # UTC or Etc/GMT±N: plain arithmetic, no per-value zone lookup
        return (parsed.dt.replace_time_zone("UTC") - offset).cast(POLARS_TS).alias("ts")
    return (
        parsed.dt.replace_time_zone(mapping.timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC").cast(POLARS_TS).alias("ts")
    )


def _fixed_offset(zone: str) -> timedelta | None:
    """The UTC offset of a zone that never changes it (UTC, Etc/*), else None."""
    if zone != "UTC" and not zone.startswith("Etc/"):
        return None
    try:
        return ZoneInfo(zone).utcoffset(datetime(2000, 1, 1))
    except (ZoneInfoNotFoundError, ValueError):
        return None


def canonicalise(raw: pl.DataFrame, mapping: ColumnMapping, source: str, where: str) -> pl.DataFrame:
    """Raw source frame -> canonical columns in SI units, plus ``_row`` and ``_parse_error``."""
    check_mapping(mapping, raw.columns, where)
    exprs: list[pl.Expr] = [pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")]
    exprs.append(pl.lit(parse_timestamps(raw, mapping, where)).alias("ts"))
    exprs.append(pl.lit(source).alias("source"))
    if mapping.device_column:
        exprs.append(pl.col(mapping.device_column).cast(pl.String).alias("device_id"))
    else:
        exprs.append(pl.lit(mapping.device_id or "default").alias("device_id"))

    # Fast path: a plain cast. Only cells that come out null although the text was
    # not (" 1.5", "?", "abc") are looked at again, one row subset, below.
    suspects: list[pl.Expr] = []
    for name, col in mapping.columns.items():
        src = pl.col(col.column)
        value = src.cast(pl.Float64, strict=False)
        if raw.schema[col.column] == pl.String:
            suspects.append(value.is_null() & src.is_not_null())
        exprs.append(_to_si(value, mapping, name, col).alias(name))
    exprs.append((pl.any_horizontal(suspects) if suspects else pl.lit(False)).alias("_suspect"))
    out = raw.select(exprs).with_columns(pl.lit(None, pl.String).alias("_parse_error"))
    if not out["_suspect"].any():
        return out.drop("_suspect")

    rows = out.filter("_suspect")["_row"]
    sub = raw[rows.to_list()]
    fixes: list[pl.Expr] = [pl.lit(rows).alias("_row")]
    errors: list[pl.Expr] = []
    for name, col in mapping.columns.items():
        if raw.schema[col.column] != pl.String:
            continue
        text = pl.col(col.column).str.strip_chars()
        is_na = text.is_null() | text.is_in(NA_VALUES)
        value = pl.when(is_na).then(None).otherwise(text).cast(pl.Float64, strict=False)
        fixes.append(_to_si(value, mapping, name, col).alias(name))
        errors.append(pl.when(~is_na & value.is_null()).then(pl.lit(f"{col.column}=") + text))
    fixes.append(pl.concat_str(errors, separator="; ", ignore_nulls=True).alias("_parse_error"))
    fixed = sub.select(fixes).with_columns(
        pl.when(pl.col("_parse_error") == "").then(None).otherwise(pl.col("_parse_error")).alias("_parse_error")
    )
    return out.drop("_suspect").update(fixed, on="_row")


def _to_si(value: pl.Expr, mapping: ColumnMapping, name: str, col: Column) -> pl.Expr:
    unit = units.lookup(col.unit, field_by_name(mapping.kind, name).dimension)
    if unit.scale != 1.0 or unit.offset != 0.0:
        value = value * unit.scale + unit.offset
    return value


def raw_text(raw: pl.DataFrame, rows: pl.Series, separator: str | None) -> pl.Series:
    """The original text of ``rows``: the line as read for delimited text, else JSON."""
    picked = raw[rows.to_list()] if rows.len() else raw.head(0)
    if separator is not None and all(t == pl.String for t in picked.dtypes):
        return picked.select(pl.concat_str(pl.all().fill_null(""), separator=separator)).to_series()
    return picked.select(pl.struct(pl.all()).struct.json_encode()).to_series()


def ingest_frame(
    raw: pl.DataFrame,
    mapping: ColumnMapping,
    source: str,
    store: Store,
    where: str,
    site: Site | None = None,
    separator: str | None = None,
    line_offset: int = 2,
    extra_rejects: pl.DataFrame | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    started: float | None = None,
    line_numbers: pl.Series | None = None,
    raw_lines: pl.Series | None = None,
    extra_flags: pl.Series | None = None,
) -> IngestSummary:
    """Canonicalise, validate and store one raw frame; return its summary.

    ``line_offset`` turns a row index into a line number of the input (2 for a
    CSV with a header). ``extra_rejects`` are rows a reader already refused
    (unparseable JSON lines, say); they are stored and counted too. ``started``
    is the reader's ``time.perf_counter()`` at its start, so ``seconds`` covers
    reading too. ``line_numbers`` and ``raw_lines`` (one per raw row) give
    readers whose rows are not consecutive lines (NDJSON with skipped lines) the
    exact location and verbatim text for the rejects. ``extra_flags`` (UInt32
    bits of :data:`~gridtwin_lib.schema.SOFT_RULE_BITS`, one per raw row) are
    soft flags the reader found itself.
    """
    t0 = started if started is not None else time.perf_counter()
    if raw.height == 0 and (extra_rejects is None or extra_rejects.height == 0):
        raise IngestError(f"{where}: the input holds no data rows; check the file (is it the right one, or was it truncated?)")
    canonical = canonicalise(raw, mapping, source, where) if raw.height else None
    if canonical is not None and extra_flags is not None:
        canonical = canonical.with_columns(extra_flags.alias("_extra_flags"))
    summary = IngestSummary(source=source, kind=mapping.kind)
    rejects: list[pl.DataFrame] = []
    if canonical is not None:
        result = validate(canonical, mapping.kind, site=site, now=now)
        accepted = result.accepted
        summary.read = raw.height
        summary.accepted = accepted.height
        summary.flagged = result.flagged
        summary.missing_values = result.missing_values
        if result.rejected.height:
            rej = result.rejected
            line = (
                pl.lit(line_numbers).gather(pl.col("_row")) if line_numbers is not None
                else pl.col("_row").cast(pl.Int64) + line_offset
            )
            text = raw_lines.gather(rej["_row"]) if raw_lines is not None else raw_text(raw, rej["_row"], separator)
            rejects.append(
                rej.select(
                    "source", "device_id", "ts", "rule", "detail",
                    pl.concat_str([pl.lit(f"{where}:"), line.cast(pl.String)]).alias("location"),
                ).with_columns(text.alias("raw"))
            )
        if accepted.height:
            summary.devices = accepted["device_id"].n_unique()
            summary.first_ts = str(accepted["ts"].min())
            summary.last_ts = str(accepted["ts"].max())
    else:
        accepted = None
    if extra_rejects is not None and extra_rejects.height:
        summary.read += extra_rejects.height
        rejects.append(extra_rejects.with_columns(pl.lit(source).alias("source")))
    all_rejects = pl.concat(rejects, how="diagonal_relaxed") if rejects else None
    if all_rejects is not None:
        summary.rejected = all_rejects.height
        summary.rejected_by_rule = dict(all_rejects.group_by("rule").len().sort("rule").iter_rows())
    if not dry_run:
        if accepted is not None and accepted.height:
            written = store.write(mapping.kind, accepted)
            summary.written, summary.duplicates = written.written, written.duplicates
        if all_rejects is not None:
            store.write_rejects(mapping.kind, all_rejects)
    summary.seconds = time.perf_counter() - t0
    return summary
