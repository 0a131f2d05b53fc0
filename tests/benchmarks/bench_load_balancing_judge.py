"""The phase-move model judged by the unbalanced power flow: fit + evaluate seconds (wall and CPU) and
the ladder's regrets with their intervals at a configured size, and how often the bounded candidate
set holds the full brute-force best (every single move, every hour, under the same flow) on some rows.

Run (simulates the size's meter run into STORE once, then reuses it):
PYTHONPATH=$PWD nice -n 10 .venv/bin/python tests/benchmarks/bench_load_balancing_judge.py full /tmp/lb_store [ROWS, e.g. 0,5,10,15]
"""

from __future__ import annotations

import inspect
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from gridtwin_lib.models import registry
from gridtwin_lib.models.base import fit_and_evaluate
from gridtwin_lib.models.decision import load_balancing as M
from gridtwin_lib.physics.unbalanced_feeder import shared_unbalanced_feeder
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

size, root = sys.argv[1], Path(sys.argv[2])
rows = [int(x) for x in sys.argv[3].split(",")] if len(sys.argv) > 3 else []
entry = next(e for e in registry.entries() if e.estimator.endswith("load_balancing:LoadBalancing"))
store = Store(root)
if not (root / ".simulated").exists():
    for run in entry.simulation_runs(size):
        run_scenario(**run, store=store, progress=False)
    (root / ".simulated").write_text("ok")
builder = entry.dataset_builder()
params = entry.parameters(size)
ds = builder(store, **{k: v for k, v in params.items() if k in inspect.signature(builder).parameters})
import pandapower  # noqa: E402, F401  (its import, seconds, is shared with the other models of a pipeline)

t, c = time.perf_counter(), time.process_time()
model, _, ev = fit_and_evaluate(entry.estimator_class()(), ds)
print(f"{size}: {ds.n_test} feeder-days; fit_and_evaluate {time.perf_counter() - t:.1f} s wall, {time.process_time() - c:.1f} s CPU; "
      f"{shared_unbalanced_feeder().flows} feeder-hours solved")
u = ev.uncertainty
print(f"regret [pp of VUF] ({u.method}, {u.n_blocks} {u.block_kind} blocks): model {u.model.value:.4f} [{u.model.low:.4f}, {u.model.high:.4f}], "
      f"simplified_regret {ev.metrics['simplified_regret']:.4f}")
for name, iv in u.baselines.items():
    d = u.differences[name]
    print(f"  {name}: {iv.value:.4f} [{iv.low:.4f}, {iv.high:.4f}]; model - it {d.value:+.4f} [{d.low:+.4f}, {d.high:+.4f}]; "
          f"simplified_regret {ev.ladder[name]['simplified_regret']:.4f}")
print("gate:", ev.gate() if hasattr(ev, "gate") else "")

n, flow = ds.params["customers_per_feeder"], shared_unbalanced_feeder()
t = time.process_time()
for i in rows:
    ids, phases, pos, loads = M.unpack_row(pd.concat([ds.meta_test.iloc[i], ds.y_test.iloc[i]]), n)
    moves = M.candidate_moves(phases)
    simple = M.evaluate_moves(loads, phases, pos, moves, **model.feeder_params())["unbalance_reduction_pp"].to_numpy()
    maps = [phases] + [np.where(np.arange(n) == k, q, phases) for k, _, q in moves]
    vuf = flow.day(loads, pos, np.array(maps))["vuf_end_pct"].mean(axis=1)
    red = vuf[0] - vuf[1:]
    rank = int(np.flatnonzero(np.argsort(-simple, kind="stable") == np.argmax(red))[0]) + 1
    print(f"row {i}: full brute-force best {red.max():.4f} pp, rank {rank} of {len(moves)} under the simplified model on the realised loads")
if rows:
    print(f"full brute force of {len(rows)} rows: {time.process_time() - t:.1f} s CPU")
