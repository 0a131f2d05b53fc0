"""Wall time of the ``full`` pipeline, per notebook, from an empty workspace.

Runs in the ``bench`` workspace (``data/workspaces/bench``, ``mlruns/workspaces/bench``),
emptied first, so the real store and registry are untouched and every simulation runs.
With ``--sequential`` it runs a second time with ``--jobs 1`` for comparison (about twice
as long). Usage: ``python tests/benchmarks/bench_pipeline.py [--jobs 2] [--sequential] [--json]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import report  # noqa: E402


def _fresh_run(jobs: int) -> dict[str, float]:
    from gridtwin_lib import config, pipeline

    os.environ["GRIDTWIN_WORKSPACE"] = "bench"
    shutil.rmtree(config.store_dir().parent, ignore_errors=True)
    shutil.rmtree(config.mlruns_dir(), ignore_errors=True)
    result = pipeline.run("full", jobs=jobs, echo=print)
    times = {s.name: s.seconds for s in result.steps}
    times["total"] = result.seconds
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sequential", action="store_true", help="also run with --jobs 1")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, object] = {}
    for jobs in [args.jobs] + ([1] if args.sequential and args.jobs != 1 else []):
        for name, seconds in _fresh_run(jobs).items():
            out[f"jobs={jobs} {name} [s]"] = f"{seconds:.1f}"
    report(out, args.json)


if __name__ == "__main__":
    main()
