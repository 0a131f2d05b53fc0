"""The field data path's collector: authenticated HTTP ingest, a durable log, compaction.

Devices post readings to :func:`.app.create_app`'s endpoints with their key
(:mod:`.devices`); each accepted reading is committed to a write-ahead log (:mod:`.wal`,
SQLite WAL mode, full sync, group commit) before the answer, then compacted into the
Parquet store through the shared ingest path (:mod:`.compact`). :func:`serve` runs it.
"""

from .app import RateLimit, create_app
from .compact import CompactionResult, Compactor
from .devices import DeviceRegistry, collector_dir
from .server import serve
from .wal import WriteAheadLog

__all__ = ["RateLimit", "create_app", "Compactor", "CompactionResult", "DeviceRegistry", "collector_dir", "serve", "WriteAheadLog"]
