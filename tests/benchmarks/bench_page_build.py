"""What a dashboard's kernel does before the browser sees anything: import the page's module and build the page.

``bench_dashboards.py`` times pages in a browser, where Voila's preheated kernels have already built them: it
shows what a visitor waits for on an idle server, not what each visit costs the server (every visit takes a
preheated kernel and starts a new one, which builds the page again) or what a visitor waits for when the pool
is empty. This benchmark times that build alone: per page and checkout, a fresh Python process (as a kernel)
imports ``gridtwin_lib.dashboards.<module>`` and calls ``page()`` over the project named by ``--home``; wall
time from process start to the page's widgets built, and the notes the page shows (a figure that could not be
drawn). Checkouts run alternately, page by page, so both see the same machine state.

Usage::

    .venv/bin/python tests/benchmarks/bench_page_build.py --home /path/to/project \\
        --checkout /path/to/before --checkout . --repeats 3 [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PAGES = {"01_realtime_monitoring": "monitoring", "02_predictive_maintenance": "maintenance", "03_energy_flow": "energy",
         "04_decision_making": "decision", "05_simulator": "simulator", "06_model_comparison": "comparison"}

BUILD = """
import importlib, json, re, sys, time
t0 = time.perf_counter()
module = importlib.import_module("gridtwin_lib.dashboards." + sys.argv[1])
page = module.page()
built = time.perf_counter() - t0
def walk(w):
    yield w
    for c in getattr(w, "children", ()) or ():
        yield from walk(c)
notes = [re.sub("<[^>]+>", " ", w.value)[:200] for w in walk(page)
         if isinstance(getattr(w, "value", None), str) and "gridtwin-missing" in w.value]
print(json.dumps({"built_s": built, "notes": notes}))
"""


def build_once(checkout: Path, home: Path, module: str) -> dict:
    env = {**os.environ, "GRIDTWIN_HOME": str(home), "PYTHONPATH": str(checkout)}
    env.pop("GRIDTWIN_WORKSPACE", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", BUILD, module], capture_output=True, text=True, env=env, cwd="/tmp", timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"wall_s": wall, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:300]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, **out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="project with the full pipeline's data/ and mlruns/")
    ap.add_argument("--checkout", type=Path, action="append", help="checkout whose gridtwin_lib builds the pages (repeatable)")
    ap.add_argument("--pages", nargs="+", default=list(PAGES))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    checkouts = [c.resolve() for c in (args.checkout or [Path(__file__).resolve().parents[2]])]
    runs: dict[str, dict[str, list[dict]]] = {str(c): {p: [] for p in args.pages} for c in checkouts}
    for page in args.pages:
        for _ in range(args.repeats):
            for c in checkouts:
                r = build_once(c, args.home.resolve(), PAGES[page])
                runs[str(c)][page].append(r)
                if not args.json:
                    print(f"{c.name} {page}: {r['wall_s']:.1f} s" + (f"  {r.get('error') or ''}" if r.get("error") else "")
                          + (f"  notes: {r['notes']}" if r.get("notes") else ""), file=sys.stderr)
    if args.json:
        print(json.dumps(runs))
        return
    for c in checkouts:
        print(f"\n{c}\n  {'page':<28}{'build [s], median (min-max)':>30}  notes")
        for page, rs in runs[str(c)].items():
            walls = [r["wall_s"] for r in rs]
            notes = sorted({n for r in rs for n in r.get("notes", [])} | {r["error"] for r in rs if r.get("error")})
            print(f"  {page:<28}{statistics.median(walls):>14.1f} ({min(walls):.1f}-{max(walls):.1f})      "
                  f"{'; '.join(notes)[:160]}")


if __name__ == "__main__":
    main()
