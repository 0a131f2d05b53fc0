"""Benchmark: validating a few readings, NumPy path against the Polars path, in the same run.

``schema.validate`` screens frames of at most ``schema.NUMPY_MAX_ROWS`` rows with NumPy when no
hard rule is broken (the inference engine's readings, a live poll); larger frames, and any frame
with a reject, go through the Polars expressions. For frames of 1, 40 and 1,000 canonical
three-phase rows (plausible values, a few soft flags), best-of-``--repeat`` mean time per call of
each path, the outputs checked equal first, and the ratio.

    .venv/bin/python tests/benchmarks/bench_validate.py [--repeat 5] [--calls 300] [--json]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
from _common import best_of, report

from gridtwin_lib import schema

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def readings(n: int, seed: int = 0) -> pl.DataFrame:
    """``n`` canonical three-phase readings of 10 devices, 1 s apart; about 1 in 20 below EN 50160's band."""
    rng = np.random.default_rng(seed)
    v = rng.normal(230.0, 4.0, (n, 3))
    v[rng.random(n) < 0.05] *= 0.85
    i = rng.uniform(5.0, 40.0, (n, 3))
    cols = {"ts": pl.Series([NOW - timedelta(seconds=n - k) for k in range(n)], dtype=schema.POLARS_TS),
            "source": ["bench"] * n, "device_id": [f"d{k % 10}" for k in range(n)]}
    for j, p in enumerate("abc"):
        cols |= {f"v_{p}": v[:, j], f"i_{p}": i[:, j], f"p_{p}": 0.9 * v[:, j] * i[:, j], f"q_{p}": 0.3 * v[:, j] * i[:, j]}
    cols |= {"frequency": rng.normal(50.0, 0.02, n), "thd_v": rng.uniform(1.0, 4.0, n)}
    return schema.conform(pl.DataFrame(cols), "three_phase")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--calls", type=int, default=300, help="calls per timing (frames of 1,000 rows: a tenth)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    limit = schema.NUMPY_MAX_ROWS
    out: dict = {"numpy_max_rows": limit}
    for n in (1, 40, 1_000):
        df = readings(n)
        calls = max(1, args.calls // (10 if n >= 1_000 else 1))

        def run(max_rows: int, df=df, calls=calls):
            schema.NUMPY_MAX_ROWS = max_rows
            try:
                for _ in range(calls):
                    v = schema.validate(df, "three_phase", now=NOW)
            finally:
                schema.NUMPY_MAX_ROWS = limit
            return v

        fast, polars_path = run(limit), run(0)
        if not (fast.accepted.equals(polars_path.accepted) and fast.hits == polars_path.hits):
            raise SystemExit(f"{n} rows: the NumPy and Polars paths disagree")
        t_numpy = best_of(lambda: run(limit), args.repeat)[0] / calls
        t_polars = best_of(lambda: run(0), args.repeat)[0] / calls
        out[f"rows_{n}_numpy_ms"] = round(1e3 * t_numpy, 3)
        out[f"rows_{n}_polars_ms"] = round(1e3 * t_polars, 3)
        out[f"rows_{n}_speedup"] = round(t_polars / t_numpy, 1)
    report(out, args.json)


if __name__ == "__main__":
    main()
