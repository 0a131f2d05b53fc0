"""Benchmark: the per-reading path's frame shortcuts against the calls they replace, same run.

For one reading (the inference engine's ``score_one``, a live poll's device), each line times the
project's way and the plain Polars / pandas way it replaced, best of ``--repeat`` rounds of
``--n`` calls, in µs per call:

* a reading's 115 feature columns: :func:`gridtwin_lib.small_frames.float_columns` (Polars'
  native float constructor) vs ``pl.DataFrame([pl.Series(name, values, nan_to_null=True) ...])``;
* one reading as a frame: :func:`gridtwin_lib.inference.admission.as_frame` (the row constructor)
  vs a frame of one-element columns (``strict=False``), as it did before;
* a Polars expression on one row (``select`` of three columns) vs the native calls
  (``get_column`` into a frame): what planning an expression costs whatever the rows;
* a Series method Polars runs as an expression (``dt.epoch("us")``) vs a native ``cast``;
* a one-row pandas output from a dict of columns vs from a float block with a kept column index
  (:func:`gridtwin_lib.small_frames.column_index`).

Usage: ``.venv/bin/python tests/benchmarks/bench_small_frames.py [--n 2000] [--repeat 5] [--json]``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from _common import best_of, report  # noqa: E402


def _us_per_call(fn, n: int, repeat: int) -> float:
    """Best of ``repeat`` rounds of ``n`` calls (after one warm-up call), µs per call."""
    fn()
    return best_of(lambda: [fn() for _ in range(n)], repeat)[0] / n * 1e6


def main() -> None:
    from gridtwin_lib.inference.admission import as_frame
    from gridtwin_lib.small_frames import column_index, float_columns

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="calls per round")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; the best is reported")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    result: dict[str, object] = {}

    def pair(label: str, ours, theirs) -> None:
        a, b = _us_per_call(ours, args.n, args.repeat), _us_per_call(theirs, args.n, args.repeat)
        result[f"{label} [µs]: ours / replaced (ratio)"] = f"{a:.1f} / {b:.1f} ({b / a:.1f}x)"

    names = [f"feature_{k}" for k in range(115)]
    values = rng.standard_normal((1, 115))
    values[0, ::9] = np.nan
    pair("115 feature columns of one reading", lambda: float_columns(names, values),
         lambda: pl.DataFrame([pl.Series(n, values[:, k], nan_to_null=True) for k, n in enumerate(names)]))

    reading = {"ts": datetime(2025, 1, 6, tzinfo=UTC), "device_id": "grid-000", **{f"{q}_{p}": float(rng.random())
               for q in "vipq" for p in "abc"}, "frequency": 50.0, "thd_v": 2.1, "quality_flags": 0}
    pair("one reading as a frame", lambda: as_frame(reading),
         lambda: pl.DataFrame({k: [v] for k, v in reading.items()}, strict=False))

    wide = pl.DataFrame({n: values[:, k] for k, n in enumerate(names)})
    pair("three columns of a 115-column row", lambda: pl.DataFrame([wide.get_column(c) for c in names[:3]]),
         lambda: wide.select(names[:3]))
    ts = pl.Series("ts", [datetime(2025, 1, 6, tzinfo=UTC)], dtype=pl.Datetime("us", "UTC"))
    pair("a timestamp as µs since the epoch", lambda: ts.cast(pl.Int64).to_numpy(), lambda: ts.dt.epoch("us").to_numpy())

    p = np.array([0.2])
    cols = ("p_disturbance_30min", "stability_score", "p_member_rf", "p_member_xgb", "p_member_logit")
    block = np.array([[0.2, 80.0, np.nan, np.nan, np.nan]])
    pair("a one-row model output (pandas)", lambda: pd.DataFrame(block.copy(), columns=column_index(cols), copy=False),
         lambda: pd.DataFrame({cols[0]: p, cols[1]: 100 * (1 - p), **{c: np.full(1, np.nan) for c in cols[2:]}}))
    report(result, args.json)


if __name__ == "__main__":
    main()
