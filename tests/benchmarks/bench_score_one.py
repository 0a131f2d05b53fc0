"""``Engine.score_one`` on a warm device, checkout against checkout in the same run.

Per checkout (``--checkout``, repeatable; e.g. an older commit's worktree and this one), a fresh
Python process with that checkout first on its path loads the per-reading models that serve in
the registry of ``--home`` (``--workspace``), warms one device of ``--source`` up with 2 h of its
readings through ``Engine.score`` (the engine then holds 90 min), scores ``--n`` further readings
one by one and reports p50 / p99 / max [ms] after ``--skip`` of them, and the status of the last.
Checkouts alternate ``--repeats`` times, so each sees the same machine; the best repeat's
figures are printed (the least disturbed, as the other benchmarks' best-of-N) with each checkout's
p50 and p99 ratio to the first checkout's.

Usage::

    .venv/bin/python tests/benchmarks/bench_score_one.py --home /path/to/project [--workspace smoke] \\
        --checkout /path/to/before --checkout . [--source sim:m08_mixed] [--n 600] [--repeats 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import report  # noqa: E402

RUN = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, polars as pl
from gridtwin_lib import inference
from gridtwin_lib.models import registry
from gridtwin_lib.store import Store
source, n, skip = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
engine = inference.Engine.from_registry(registry.reading_ids())
readings = Store().scan("three_phase", source=source).collect().sort("device_id", "ts")
readings = readings.filter(pl.col("device_id") == readings["device_id"][0])
warm, nxt = readings.head(7200), readings.slice(7200, n).to_dicts()
if len(nxt) < n:
    sys.exit(f"{source} has {readings.height} readings of its first device; need {7200 + n}")
engine.score(warm)
times = []
for r in nxt:
    t0 = time.perf_counter()
    rec = engine.score_one(r)
    times.append(time.perf_counter() - t0)
t = 1000 * np.array(times[skip:])
print(json.dumps({"p50_ms": float(np.percentile(t, 50)), "p99_ms": float(np.percentile(t, 99)), "max_ms": float(t.max()),
                  "status": rec.status, "models": sorted(engine.estimators)}))
"""


def run_once(checkout: Path, args) -> dict:
    env = {**os.environ, "GRIDTWIN_HOME": str(args.home.resolve()), "PYTHONPATH": str(checkout.resolve())}
    env.pop("MLFLOW_TRACKING_URI", None)
    if args.workspace:
        env["GRIDTWIN_WORKSPACE"] = args.workspace
    proc = subprocess.run([sys.executable, "-c", RUN, args.source, str(args.n), str(args.skip)], capture_output=True,
                          text=True, env=env, cwd="/tmp", timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"{checkout}: {(proc.stderr.strip().splitlines() or ['?'])[-1][:300]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="project home whose registry and store are used")
    ap.add_argument("--workspace", help="its workspace (e.g. smoke)")
    ap.add_argument("--checkout", type=Path, action="append", required=True, help="a checkout of the project (repeatable)")
    ap.add_argument("--source", default="sim:m08_mixed")
    ap.add_argument("--n", type=int, default=600, help="single readings scored per run")
    ap.add_argument("--skip", type=int, default=50, help="first readings left out of the figures (warm-up)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    best: dict[Path, dict] = {}
    for _ in range(args.repeats):
        for checkout in args.checkout:
            got = run_once(checkout, args)
            if checkout not in best or got["p99_ms"] < best[checkout]["p99_ms"]:
                best[checkout] = got
    first = best[args.checkout[0]]
    result = {"models": ", ".join(m.split("_")[0] for m in first["models"]), "source": args.source,
              "readings_timed": args.n - args.skip}
    for checkout, got in best.items():
        name = checkout.name or str(checkout)
        result[f"{name}: p50 / p99 / max [ms]"] = f"{got['p50_ms']:.2f} / {got['p99_ms']:.2f} / {got['max_ms']:.2f} ({got['status']})"
        if checkout != args.checkout[0]:
            result[f"{name}: speed-up p50 / p99 vs {args.checkout[0].name}"] = (
                f"{first['p50_ms'] / got['p50_ms']:.2f}x / {first['p99_ms'] / got['p99_ms']:.2f}x")
    report(result, args.json)


if __name__ == "__main__":
    main()
