"""Benchmark: the paired block bootstrap's vectorised paths against the plain loop on the same draws.

For each metric, a synthetic test set of ``--rows`` rows in ``--blocks`` blocks (a model and
two baselines, as a ladder), B = ``--replicates``: the vectorised replicates
(:func:`gridtwin_lib.evaluation.fast_replicates`, one draw matrix for all three predictors) and a
loop that resamples the rows and calls scikit-learn on each replicate (on ``--loop-replicates``
of the same draws, scaled to B). 20,000 rows is the size of the largest ranking test set (m15). Both results are compared (they must agree to 1e-9) and timed
in the same run.

    .venv/bin/python tests/benchmarks/bench_bootstrap.py [--rows 20000] [--blocks 300] [--replicates 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score, average_precision_score, f1_score, mean_absolute_error, roc_auc_score

from gridtwin_lib.evaluation import block_counts, fast_replicates, resample_rows

METRICS = {
    "mae": (mean_absolute_error, "value"),
    "macro_f1": (lambda a, b: f1_score(a, b, average="macro"), "label"),
    "roc_auc": (roc_auc_score, "score"),
    "average_precision": (average_precision_score, "score"),
    "ari": (adjusted_rand_score, "label"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--blocks", type=int, default=300)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--loop-replicates", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.rows
    ids = rng.integers(0, args.blocks, n)
    y_bin, y_cls, y_val = rng.integers(0, 2, n), rng.integers(0, 5, n), rng.normal(size=n)
    preds = {
        "value": [y_val + rng.normal(0, s, n) for s in (0.5, 0.8, 1.0)],
        "label": [np.where(rng.random(n) < q, y_cls, rng.integers(0, 5, n)) for q in (0.7, 0.5, 0.4)],
        "score": [rng.random(n) + s * y_bin for s in (0.5, 0.3, 0.1)],
    }
    truth = {"value": y_val, "label": y_cls, "score": y_bin}
    t0 = time.perf_counter()
    codes, counts = block_counts(ids, args.replicates, seed=1)
    draw_s = time.perf_counter() - t0
    rows = [np.flatnonzero(codes == k) for k in range(counts.shape[1])]
    out = []
    for metric, (ref, kind) in METRICS.items():
        y = truth[kind]
        t0 = time.perf_counter()
        fast = [fast_replicates(metric, y, p, codes, counts) for p in preds[kind]]
        fast_s = time.perf_counter() - t0
        k = args.loop_replicates
        t0 = time.perf_counter()
        loop = [np.array([ref(y[idx], p[idx]) for idx in (resample_rows(c, rows) for c in counts[:k])]) for p in preds[kind]]
        loop_s = (time.perf_counter() - t0) * args.replicates / k
        err = max(float(np.max(np.abs(f[:k] - lo))) for f, lo in zip(fast, loop, strict=True))
        out.append({"metric": metric, "rows": n, "blocks": int(counts.shape[1]), "replicates": args.replicates,
                    "predictors": 3, "vectorised_s": round(fast_s, 3), "loop_s_estimated": round(loop_s, 1),
                    "speed_up": round(loop_s / fast_s, 1), "max_abs_difference": err})
    if args.json:
        print(json.dumps({"draw_s": draw_s, "results": out}))
        return
    print(f"draws: {args.replicates} x {counts.shape[1]} blocks in {draw_s * 1000:.1f} ms")
    for r in out:
        print(f"{r['metric']:<18} vectorised {r['vectorised_s']:>7.3f} s   loop (est.) {r['loop_s_estimated']:>8.1f} s   "
              f"x{r['speed_up']:<7} max |diff| {r['max_abs_difference']:.1e}")


if __name__ == "__main__":
    main()
