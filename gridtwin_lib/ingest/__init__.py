"""Ingestion: one reader per source, one shared path into the store.

Readers: CSV/Parquet files with a column mapping (:mod:`.files`), the UCI
household data (:mod:`.uci`), the reference 3-tier system's relational schema
(:mod:`.reference_sql`) and the ESP8266 firmware's NDJSON payloads
(:mod:`.firmware`). All of them end in :func:`.core.ingest_frame`.
"""

from .core import Column, ColumnMapping, IngestError, IngestSummary, ingest_frame
from .files import ingest_file, load_mapping
from .uci import ingest_uci

__all__ = [
    "Column", "ColumnMapping", "IngestError", "IngestSummary", "ingest_frame",
    "ingest_file", "load_mapping", "ingest_uci",
]
