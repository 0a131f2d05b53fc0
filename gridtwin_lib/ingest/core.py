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

import math
import time
from collections.abc import Callable
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
    consumption_only : the meter only imports (a household meter): negative active power
        is flagged (``soft.negative_consumption``).
    """

    kind: str
    columns: dict[str, Column]
    timestamp: list[str] = field(default_factory=lambda: ["timestamp"])
    timestamp_format: str | None = None
    timezone: str = "UTC"
    device_column: str | None = None
    device_id: str | None = None
    consumption_only: bool = False

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> ColumnMapping:
        """Build from the YAML/JSON mapping-file form (see README, "Column mappings").

        Unknown keys are refused (a misspelt ``timezone`` must not silently mean UTC);
        the ``ValueError`` names the key and the allowed ones.
        """
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ValueError("a mapping is a YAML mapping with at least 'kind' and 'columns'")
        _only(spec, {"kind", "timestamp", "device", "columns", "consumption_only"}, "mapping")
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
            consumption_only=bool(spec.get("consumption_only", False)),
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
    hits_by_rule: dict[str, int] = field(default_factory=dict)  # rows each rule hit (hard and soft)
    rejects_already_stored: int = 0  # rejects of an earlier ingest of the same input, not stored again
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
            + ("; rows per rule: " + ", ".join(f"{k} {v:,}" for k, v in self.hits_by_rule.items()) if self.hits_by_rule else "")
        )


def check_column_types(raw: pl.DataFrame, mapping: ColumnMapping, where: str) -> None:
    """Refuse mapped columns that hold lists, structs or bytes: no value or time can be read from them."""
    used = [*(c.column for c in mapping.columns.values()), *mapping.timestamp]
    for name in used:
        dtype = raw.schema[name]
        if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
            raise IngestError(
                f"{where}: column {name!r} holds {dtype} values, not numbers, text or times; "
                "flatten it (one value per cell) or map another column"
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
    """UTC timestamps for every row of ``raw`` (null where unparseable); see :func:`resolve_timestamps`."""
    return resolve_timestamps(raw, mapping, where)[0]


#: Unix seconds beyond this (year 5138) are no time a meter reported [s]
_MAX_EPOCH_S = 1e11


def resolve_timestamps(raw: pl.DataFrame, mapping: ColumnMapping, where: str) -> tuple[pl.Series, pl.Series]:
    """UTC timestamps for every row of ``raw`` and, where one is null for a named reason, the rule.

    Naive local times go through :func:`localise`; Unix seconds that are NaN, infinite or
    beyond year 5138 are unparseable (null), not an overflow.
    """
    cols = mapping.timestamp
    dtype = raw.schema[cols[0]]
    no_rule = pl.Series("_ts_rule", [None] * raw.height, dtype=pl.String)
    devices = raw[mapping.device_column].cast(pl.String) if mapping.device_column else None
    if len(cols) == 1 and isinstance(dtype, pl.Datetime):
        c = raw[cols[0]]
        if dtype.time_zone is None:
            return localise(c, mapping.timezone, devices)
        return c.dt.convert_time_zone("UTC").cast(POLARS_TS).alias("ts"), no_rule
    if len(cols) == 1 and dtype.is_numeric():  # unix epoch seconds
        seconds = raw[cols[0]].cast(pl.Float64)
        us = pl.select(
            pl.when(seconds.is_finite() & (seconds.abs() < _MAX_EPOCH_S)).then((seconds * 1e6).round()).cast(pl.Int64)
        ).to_series()
        return us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts"), no_rule

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
        return parsed.cast(POLARS_TS).alias("ts"), no_rule
    if text.null_count() == text.len() or not text.str.len_bytes().max():
        return pl.Series("ts", [None] * text.len(), dtype=POLARS_TS), no_rule
    parsed = text.str.to_datetime(mapping.timestamp_format, strict=False, time_unit="us")
    return localise(parsed, mapping.timezone, devices)


def localise(naive: pl.Series, zone: str, devices: pl.Series | None = None) -> tuple[pl.Series, pl.Series]:
    """Naive local times in ``zone`` -> UTC, the autumn fold taken from the row order.

    Parameters
    ----------
    naive
        Local wall-clock times without zone, in the order the source holds them.
    zone
        IANA zone name.
    devices
        Device of each row (the order is read per device), or None for one device.

    Returns
    -------
    (ts, rule)
        UTC times; and per row ``hard.timestamp_nonexistent`` (a time in the spring gap),
        ``hard.timestamp_ambiguous`` (a repeated-hour time whose pass the order cannot
        tell) or null.

    Within one device and day, the repeated hour's rows are on the *second* pass (the later
    instant) when they come after the local time stepped back (02:50 then 02:00), or when
    they are the second of two rows with the same local time (an hourly series, or a file
    sorted by local time). A repeated-hour time seen once with no step back is ambiguous.
    """
    offset = _fixed_offset(zone)
    no_rule = pl.Series("_ts_rule", [None] * naive.len(), dtype=pl.String)
    if offset is not None:  # UTC or Etc/GMT±N: plain arithmetic, no per-value zone lookup
        return (naive.dt.replace_time_zone("UTC") - offset).cast(POLARS_TS).alias("ts"), no_rule
    frame = pl.DataFrame({
        "naive": naive,
        "early": naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null"),
        "late": naive.dt.replace_time_zone(zone, ambiguous="latest", non_existent="null"),
        "dev": devices if devices is not None else pl.Series([""] * naive.len(), dtype=pl.String),
    })
    frame = frame.with_columns(
        (pl.col("naive").is_not_null() & pl.col("early").is_null()).alias("gap"),
        (pl.col("early") != pl.col("late")).fill_null(False).alias("fold"),
    )
    if not frame["fold"].any():
        ts = frame["early"]
        rule = pl.select(pl.when(frame["gap"]).then(pl.lit("hard.timestamp_nonexistent"))).to_series()
        return ts.dt.convert_time_zone("UTC").cast(POLARS_TS).alias("ts"), rule.cast(pl.String).alias("_ts_rule")
    window = ["dev", "day"]
    folded = (
        frame.with_row_index("_i").filter("fold").with_columns(pl.col("naive").dt.date().alias("day"))
        .with_columns((pl.col("naive") < pl.col("naive").shift(1)).fill_null(False).over(window).alias("back"))
        .with_columns(
            pl.col("back").cum_sum().over(window).alias("passes"),
            pl.col("back").any().over(window).alias("stepped"),
            pl.int_range(pl.len()).over([*window, "naive"]).alias("occurrence"),
            pl.len().over([*window, "naive"]).alias("seen"),
        )
        .select("_i", pl.when(pl.col("stepped")).then(pl.when(pl.col("passes") <= 1).then(pl.col("passes")))
                .when(pl.col("seen") == 2).then(pl.col("occurrence")).alias("second_pass"))
    )
    second = pl.Series([None] * naive.len(), dtype=pl.Int64).scatter(folded["_i"], folded["second_pass"].cast(pl.Int64))
    frame = frame.with_columns(second.alias("second_pass"))
    out = frame.select(
        pl.when(pl.col("fold") & (pl.col("second_pass") == 1)).then(pl.col("late"))
        .when(pl.col("fold") & pl.col("second_pass").is_null()).then(None)
        .otherwise(pl.col("early")).dt.convert_time_zone("UTC").cast(POLARS_TS).alias("ts"),
        pl.when(pl.col("gap")).then(pl.lit("hard.timestamp_nonexistent"))
        .when(pl.col("fold") & pl.col("second_pass").is_null()).then(pl.lit("hard.timestamp_ambiguous"))
        .otherwise(None).cast(pl.String).alias("_ts_rule"),
    )
    return out["ts"], out["_ts_rule"]


def timestamp_details(raw: pl.DataFrame, mapping: ColumnMapping, ts: pl.Series, ts_rule: pl.Series) -> pl.Series:
    """Why each null ``ts`` is null, naming the source text (null where ``ts`` is set).

    The detail of a ``hard.timestamp_*`` reject: the column(s), the text as read and what it
    is not (ISO 8601, the mapping's format, Unix seconds, a time that happened once). A
    reader that parses times itself may give its own in a ``_ts_detail`` column of ``raw``.
    """
    cols = mapping.timestamp
    label = "+".join(cols)
    if "_ts_detail" in raw.columns:
        return raw["_ts_detail"].cast(pl.String).alias("_ts_detail")
    dtype = raw.schema[cols[0]]
    numeric = len(cols) == 1 and dtype.is_numeric()
    if len(cols) == 1 and not isinstance(dtype, pl.String):
        text = raw.select(pl.col(cols[0]).cast(pl.String).alias("t")).to_series()
    else:
        text = raw.select(pl.concat_str([pl.col(c).cast(pl.String) for c in cols], separator=" ").str.strip_chars().alias("t")).to_series()
    if numeric:
        expected = f"is not Unix seconds within +-{_MAX_EPOCH_S:g} s"
    elif mapping.timestamp_format:
        expected = f"does not match {mapping.timestamp_format!r}"
    else:
        expected = "is not an ISO 8601 time"
    shown = pl.lit(f"{label}=") + (pl.col("t") if numeric else pl.lit("'") + pl.col("t") + pl.lit("'"))
    zone = mapping.timezone
    return pl.DataFrame({"ts": ts, "rule": ts_rule, "t": text}).select(
        pl.when(pl.col("ts").is_not_null()).then(None)
        .when(pl.col("rule") == "hard.timestamp_nonexistent").then(shown + pl.lit(f" is in {zone}'s spring-forward gap"))
        .when(pl.col("rule") == "hard.timestamp_ambiguous")
        .then(shown + pl.lit(f" is in {zone}'s repeated hour and the row order cannot tell which pass"))
        .when(pl.col("t").is_null() | (pl.col("t") == "")).then(pl.lit(f"{label} is empty"))
        .otherwise(shown + pl.lit(f" {expected}"))
        .alias("_ts_detail")
    ).to_series()


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
    check_column_types(raw, mapping, where)
    ts, ts_rule = resolve_timestamps(raw, mapping, where)
    exprs: list[pl.Expr] = [pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")]
    exprs.append(pl.lit(ts).alias("ts"))
    exprs.append(pl.lit(ts_rule).alias("_ts_rule"))
    exprs.append(pl.lit(timestamp_details(raw, mapping, ts, ts_rule)).alias("_ts_detail"))
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
    raw_lines: pl.Series | Callable[[], pl.Series | None] | None = None,
    extra_flags: pl.Series | None = None,
    check_unit_plausibility: bool = True,
    dedupe_rejects: bool = True,
) -> IngestSummary:
    """Canonicalise, validate and store one raw frame; return its summary.

    ``line_offset`` turns a row index into a line number of the input (2 for a
    CSV with a header). ``extra_rejects`` are rows a reader already refused
    (unparseable JSON lines, say); they are stored and counted too. ``started``
    is the reader's ``time.perf_counter()`` at its start, so ``seconds`` covers
    reading too. ``line_numbers`` and ``raw_lines`` (one per raw row) give
    readers whose rows are not consecutive lines (NDJSON with skipped lines) the
    exact location and verbatim text for the rejects (a callable is called only when there
    are rejects; it may return None when lines and rows do not pair up). ``extra_flags`` (UInt32
    bits of :data:`~gridtwin_lib.schema.SOFT_RULE_BITS`, one per raw row) are
    soft flags the reader found itself. ``check_unit_plausibility`` refuses a mapping
    whose power unit makes most rows impossible (:func:`check_units`); the collector's
    compaction turns it off (its units are the API's, and one odd batch must not stop it).
    ``dedupe_rejects`` stores a reject only if the same (source, location, rule, raw) is not
    stored yet, so re-ingesting adds none; compaction, which tracks its own, turns it off.
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
        if check_unit_plausibility:  # a mapping-level check: off for the collector's log, whose units are fixed
            check_units(canonical, mapping, where)
        result = validate(canonical, mapping.kind, site=site, now=now, consumption_only=mapping.consumption_only)
        accepted, conflicts = split_conflicts(result.accepted)
        summary.read = raw.height
        summary.accepted = accepted.height
        summary.flagged = int((accepted["quality_flags"] > 0).sum()) if accepted.height else 0
        summary.missing_values = result.missing_values
        summary.hits_by_rule = result.hits
        if conflicts.height:
            summary.hits_by_rule = dict(sorted({**result.hits, "hard.timestamp_conflict": conflicts.height}.items()))
        rejected = pl.concat([result.rejected, conflicts], how="diagonal_relaxed") if conflicts.height else result.rejected
        if rejected.height:
            rej = rejected
            line = (
                pl.lit(line_numbers).gather(pl.col("_row")) if line_numbers is not None
                else pl.col("_row").cast(pl.Int64) + line_offset
            )
            lines = raw_lines() if callable(raw_lines) else raw_lines
            text = lines.gather(rej["_row"]) if lines is not None else raw_text(raw, rej["_row"], separator)
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
        new_rejects = _not_yet_stored(store, mapping.kind, source, all_rejects) if dedupe_rejects else all_rejects
        summary.rejects_already_stored = all_rejects.height - new_rejects.height
        all_rejects = new_rejects
    if dry_run:
        if accepted is not None and accepted.height:
            summary.duplicates = _would_be_duplicates(store, mapping.kind, source, accepted)
            summary.written = accepted.height - summary.duplicates
    else:
        if accepted is not None and accepted.height:
            written = store.write(mapping.kind, accepted)
            summary.written, summary.duplicates = written.written, written.duplicates
        if all_rejects is not None and all_rejects.height:
            store.write_rejects(mapping.kind, all_rejects)
    summary.seconds = time.perf_counter() - t0
    return summary


_REJECT_KEY = ["source", "location", "rule", "raw"]


def _not_yet_stored(store: Store, kind: str, source: str, rejects: pl.DataFrame) -> pl.DataFrame:
    """Rejects not already in the store from an earlier ingest of the same input (same source,
    location, rule and text): re-ingesting a file adds no rejects."""
    existing = store.scan_rejects(kind).filter(pl.col("source") == source).select(_REJECT_KEY).collect()
    if not existing.height:
        return rejects
    key = rejects.select(pl.col(c).cast(pl.String) for c in _REJECT_KEY)
    fresh = key.with_row_index("_i").join(existing.with_columns(pl.all().cast(pl.String)), on=_REJECT_KEY, how="anti", nulls_equal=True)
    return rejects[fresh["_i"].to_list()] if fresh.height != rejects.height else rejects


def _would_be_duplicates(store: Store, kind: str, source: str, accepted: pl.DataFrame) -> int:
    """What :meth:`Store.write` would count as duplicates, without writing (``--dry-run``)."""
    keys = accepted.select("device_id", "ts")
    unique = keys.unique()
    lo, hi = keys["ts"].min(), keys["ts"].max()
    existing = (
        store.scan(kind, source=source).filter(pl.col("ts").is_between(lo, hi)).select("device_id", "ts").collect()
        if source in store.sources(kind) else keys.clear()
    )
    return accepted.height - unique.join(existing, on=["device_id", "ts"], how="anti").height


def split_conflicts(accepted: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep the first of several different readings of one device at one instant; refuse the rest.

    Identical repeats stay (the store counts them as duplicates); a repeat with other values
    would be dropped silently by the store's key, so it goes to the rejects as
    ``hard.timestamp_conflict``.

    Returns
    -------
    (kept, conflicts)
        ``conflicts`` has the input's columns plus ``rule`` and ``detail``.
    """
    key = ["device_id", "ts"]
    if accepted.height < 2 or not accepted.select(pl.struct(key).is_duplicated().any()).item():
        return accepted, accepted.clear().with_columns(pl.lit(None, pl.String).alias("rule"), pl.lit(None, pl.String).alias("detail"))
    values = [c for c in accepted.columns if c not in (*key, "_row", "source", "quality_flags")]
    first = [pl.col(c).first().over(key) for c in values]
    differs = [~pl.col(c).eq_missing(f) for c, f in zip(values, first)]
    changed = pl.concat_str([pl.when(d).then(pl.lit(f"{c}=") + pl.col(c).cast(pl.String) + pl.lit(" vs ") + f.cast(pl.String))
                             for c, d, f in zip(values, differs, first)], separator=", ", ignore_nulls=True)
    marked = accepted.with_columns(
        pl.any_horizontal(differs).alias("_conflict"),
        pl.concat_str([pl.lit("hard.timestamp_conflict: another row of this device at this ts was kept; "), changed]).alias("detail"),
    )
    conflicts = marked.filter("_conflict").with_columns(pl.lit("hard.timestamp_conflict").alias("rule")).drop("_conflict")
    return marked.filter(~pl.col("_conflict")).drop("_conflict", "detail"), conflicts


#: a power column is mis-scaled when most rows imply a power factor outside this range
_PF_LOW, _PF_HIGH, _MIN_APPARENT_VA, _MIN_ROWS = 0.02, 1.1, 100.0, 3


def check_units(canonical: pl.DataFrame, mapping: ColumnMapping, where: str) -> None:
    """Refuse a power mapping whose unit makes most readings impossible (kW mapped as W).

    For each (P, V, I) the mapping provides, rows with V*I >= 100 VA give an implied power
    factor |P|/(V*I); when more than half of them lie below 0.02 or above 1.1, the power
    column is off by a unit prefix, and the error names the unit that would fit.
    """
    groups = [g for g in (("power", "voltage", "current"), *((f"p_{p}", f"v_{p}", f"i_{p}") for p in "abc"))
              if all(c in mapping.columns for c in g)]
    for p, v, i in groups:
        ratio = canonical.select(
            (pl.col(p).abs() / (pl.col(v) * pl.col(i))).filter((pl.col(v) * pl.col(i)) >= _MIN_APPARENT_VA).alias("r")
        )["r"].drop_nulls().drop_nans()
        ratio = ratio.filter(ratio.is_finite())
        if ratio.len() < _MIN_ROWS:
            continue
        low, high = (ratio < _PF_LOW).mean(), (ratio > _PF_HIGH).mean()
        if max(low, high) <= 0.5:
            continue
        median = float(ratio.median())
        factor = 10.0 ** (3 * round(math.log10(0.9 / median) / 3)) if median > 0 else None  # nearest power of 1000
        col = mapping.columns[p]
        unit = units.lookup(col.unit, field_by_name(mapping.kind, p).dimension)
        fit = [u.symbol for u in units.units_of(unit.dimension) if factor and math.isclose(u.scale, unit.scale * factor, rel_tol=1e-9)]
        if fit:
            hint = f"is it in {fit[0]}? set its unit to {fit[0]}"
        elif factor:
            hint = f"its values look ~{factor:g}x off; check its unit"
        else:
            hint = "it reads 0 while current flows; check that it is the active power column"
        raise IngestError(
            f"{where}: {p} <- {col.column} ({col.unit}): {max(low, high):.0%} of {ratio.len():,} rows imply a power factor "
            f"|P|/(V*I) {'below ' + format(_PF_LOW, 'g') if low > high else 'above ' + format(_PF_HIGH, 'g')} "
            f"(median {median:.3g}); {hint}"
        )
