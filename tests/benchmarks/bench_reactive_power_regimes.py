"""The reactive-power surrogate where voltage limits bind and where they do not, and what it costs.

Simulates the model's configured feeder runs of one size (stressed and normal days) into a
temporary store, builds its dataset (the optimiser labels every state), fits the model and its
ladder on the training hours and judges all on the held-out hours (``fit_and_evaluate``, paired
block bootstrap). Prints the share of states whose optimum sits on a limit (a set-point bound
or a bus at 0.90 / 1.10 pu), the regret [kW] of each predictor on all, binding and free rows,
the intervals of model − baseline, and the wall and CPU time [s] of dataset and fit+evaluate.
Usage: ``python tests/benchmarks/bench_reactive_power_regimes.py [--size full|smoke] [--seed 0] [--json]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import report  # noqa: E402

MODEL = "m13_reactive_power_compensation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="full", choices=("full", "smoke"))
    parser.add_argument("--seed", type=int, default=0, help="the estimator's random_state and the bootstrap's seed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from gridtwin_lib.models import registry
    from gridtwin_lib.models.base import fit_and_evaluate
    from gridtwin_lib.notebook import route
    from gridtwin_lib.simulate import run_scenario
    from gridtwin_lib.store import Store

    entry = registry.get(MODEL)
    store = Store(Path(tempfile.mkdtemp(prefix="bench_rpc_")) / "store")
    for run in entry.simulation_runs(args.size):
        run_scenario(**run, store=store, progress=False)
    builder, cls = entry.dataset_builder(), entry.estimator_class()
    build_kw, model_kw = route(entry.parameters(args.size), builder, cls, prefix=f"{MODEL}: ")
    w0, c0 = time.perf_counter(), time.process_time()
    ds = builder(store, **build_kw)
    w1, c1 = time.perf_counter(), time.process_time()
    _, _, ev = fit_and_evaluate(cls(random_state=args.seed, **model_kw), ds, seed=args.seed)
    w2, c2 = time.perf_counter(), time.process_time()

    out = {"size": args.size, "n_train": ds.n_train, "n_test": ds.n_test,
           "binding_share_train": round(ds.params["binding_share_train"], 3),
           "binding_share_test": round(ds.params["binding_share_test"], 3),
           "dataset_wall_s": round(w1 - w0, 1), "dataset_cpu_s": round(c1 - c0, 1),
           "fit_evaluate_wall_s": round(w2 - w1, 1), "fit_evaluate_cpu_s": round(c2 - c1, 1)}
    for name, m in {"model": ev.metrics, **ev.ladder}.items():
        out[f"regret_kw[{name}] all / binding / free"] = " / ".join(
            f"{m[k]:.4g}" for k in ("regret_kw", "regret_binding_kw", "regret_free_kw"))
    u = ev.uncertainty
    out["model regret_kw [95 % interval]"] = u.model.text()
    for name, diff in u.differences.items():
        out[f"model - {name} [95 % interval]"] = diff.text()
    report(out, args.json)


if __name__ == "__main__":
    main()
