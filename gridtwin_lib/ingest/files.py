"""CSV and Parquet files with a column mapping."""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from ..config import Site
from ..store import Store
from .core import ColumnMapping, IngestError, IngestSummary, ingest_frame


def load_mapping(path: str | Path) -> ColumnMapping:
    """Read a YAML (or JSON) mapping file; see README, "Column mappings"."""
    path = Path(path)
    if not path.exists():
        raise IngestError(f"{path}: mapping file not found; pass an existing YAML file with --mapping")
    try:
        spec = yaml.safe_load(path.read_text())
        return ColumnMapping.from_dict(spec)
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError) as exc:
        raise IngestError(f"{path}: not a valid column mapping ({exc!s}); see README 'Column mappings'") from None


def read_csv_raw(path: Path, separator: str = ",") -> pl.DataFrame:
    """Every column as text, so bad values can be kept verbatim in the rejects."""
    _check_file(path)
    try:
        return pl.read_csv(path, separator=separator, infer_schema=False, truncate_ragged_lines=False)
    except pl.exceptions.NoDataError:
        raise IngestError(f"{path}: the file is empty; nothing to ingest") from None
    except pl.exceptions.ComputeError as exc:
        first = str(exc).strip().splitlines()[0]
        if "utf-8" in first.lower() or "utf8" in first.lower():
            raise IngestError(
                f"{path}: not UTF-8 text ({first}; Latin-1 or Windows-1252?); re-encode it, e.g. "
                f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`"
            ) from None
        raise IngestError(f"{path}: not a readable {separator!r}-separated file ({first}); check the separator with --separator") from None


def original_lines(path: Path, rows: int) -> pl.Series | None:
    """Each data row's line exactly as in the file (for the rejects' ``raw``), or None when
    lines and rows do not pair up (quoted line breaks, blank lines)."""
    lines = path.read_bytes().decode("utf-8").splitlines()
    if len(lines) != rows + 1:
        return None
    return pl.Series("raw", lines[1:], dtype=pl.String)


def read_parquet_raw(path: Path) -> pl.DataFrame:
    _check_file(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{path}: not a readable Parquet file, truncated or corrupt ({exc}); re-export or re-copy it") from None
    return pl.from_arrow(table)


def ingest_file(
    path: str | Path,
    mapping: ColumnMapping,
    source: str | None = None,
    store: Store | None = None,
    site: Site | None = None,
    separator: str = ",",
    dry_run: bool = False,
) -> IngestSummary:
    """Ingest one CSV or Parquet file (chosen by extension) through ``mapping``."""
    started = time.perf_counter()
    path = Path(path)
    store = store or Store()
    source = source or f"file:{path.stem}"
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            raw = read_parquet_raw(path)
            return ingest_frame(raw, mapping, source, store, str(path), site=site, separator=None, line_offset=0,
                                dry_run=dry_run, started=started)
        raw = read_csv_raw(path, separator)
        return ingest_frame(raw, mapping, source, store, str(path), site=site, separator=separator, dry_run=dry_run,
                            started=started, raw_lines=lambda: original_lines(path, raw.height))
    except pl.exceptions.PolarsError as exc:  # a case no check foresaw: still one line, nothing written
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IngestError(f"{path}: cannot be ingested ({type(exc).__name__}: {first}); check the mapping's columns and their types") from None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise IngestError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise IngestError(f"{path}: is a directory; pass a file")
    if path.stat().st_size == 0:
        raise IngestError(f"{path}: the file is empty; nothing to ingest")
