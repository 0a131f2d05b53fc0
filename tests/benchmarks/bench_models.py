"""Per-reading inference through the registered champions, and the scheduled models' fit/solve times.

Reads the MLflow registry that ``make run`` filled (or ``GRIDTWIN_WORKSPACE``'s). For each
per-reading model (m01 voltage anomaly, m02 harmonic analysis, m03 frequency stability,
m04 phase imbalance, m10 energy loss) it takes the input example logged with the
champion (real held-out rows) and measures:

* one reading after warm-up through the fitted estimator: p50 / p99 latency [ms];
* the same reading through MLflow's ``pyfunc`` wrapper (schema enforcement): the
  alternative measured in the same run;
* batched throughput [readings/s] on 10,000 rows (the example rows tiled).

The scheduled models (m09, m11, m12) report the fit / solve times their runs logged.
Usage: ``python tests/benchmarks/bench_models.py [--json] [--n 2000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import report  # noqa: E402

PER_READING = ("m01_voltage_anomaly", "m02_harmonic_analysis", "m03_frequency_stability",
               "m04_phase_imbalance", "m10_energy_loss")
SCHEDULED = ("m09_load_forecast", "m11_power_flow_optimization", "m12_demand_response")


def _latencies_ms(fn, x, n: int) -> np.ndarray:
    for _ in range(20):  # warm-up
        fn(x)
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        fn(x)
        out[i] = time.perf_counter() - t0
    return out * 1e3


def _tile(example, rows: int):
    if isinstance(example, pd.DataFrame):
        reps = -(-rows // len(example))
        return pd.concat([example] * reps, ignore_index=True).iloc[:rows]
    arr = np.asarray(example)
    reps = -(-rows // len(arr))
    return np.concatenate([arr] * reps)[:rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--n", type=int, default=2000, help="timed single-reading calls per model")
    ap.add_argument("--batch", type=int, default=10_000)
    args = ap.parse_args()

    import mlflow

    from gridtwin_lib import tracking

    warnings.filterwarnings("ignore")
    c = tracking.client()
    result: dict[str, object] = {}
    singles = []
    for model_id in PER_READING:
        name = f"gridtwin.{model_id}"
        version = tracking.champion_version(name, c)
        if version is None:
            result[f"{model_id}"] = "no champion (run `make run` first)"
            continue
        uri = f"models:/{name}@{tracking.CHAMPION}"
        pyfunc = mlflow.pyfunc.load_model(uri)
        estimator = pyfunc.unwrap_python_model().estimator
        example = mlflow.models.Model.load(uri).load_input_example(mlflow.artifacts.download_artifacts(uri))
        one = example.iloc[:1] if isinstance(example, pd.DataFrame) else np.asarray(example)[:1]
        lat = _latencies_ms(estimator.predict, one, args.n)
        lat_pyfunc = _latencies_ms(pyfunc.predict, one, max(200, args.n // 5))
        batch = _tile(example, args.batch)
        t0 = time.perf_counter()
        estimator.predict(batch)
        rate = args.batch / (time.perf_counter() - t0)
        p50, p99 = np.percentile(lat, [50, 99])
        singles.append(lat)
        result[f"{model_id} one reading p50 / p99 [ms]"] = f"{p50:.2f} / {p99:.2f}"
        result[f"{model_id} via pyfunc p50 [ms]"] = f"{np.percentile(lat_pyfunc, 50):.2f}"
        result[f"{model_id} batched [readings/s]"] = f"{rate:,.0f}"
    if singles:
        chain = np.sum([s[: min(map(len, singles))] for s in singles], axis=0)
        result["all per-reading champions, one reading p50 / p99 [ms]"] = (
            f"{np.percentile(chain, 50):.2f} / {np.percentile(chain, 99):.2f}")
    for model_id in SCHEDULED:
        version = tracking.champion_version(f"gridtwin.{model_id}", c)
        if version is None:
            runs = c.search_runs(
                [e.experiment_id for e in c.search_experiments()],
                filter_string=f"tags.`gridtwin.model_id` = '{model_id}'", order_by=["attributes.start_time DESC"],
                max_results=1)
            run = runs[0] if runs else None
        else:
            run = c.get_run((version.tags or {}).get("gridtwin.run_id") or version.run_id)
        if run is None:
            result[model_id] = "no run (run `make run` first)"
            continue
        m = run.data.metrics
        result[f"{model_id} fit [s]"] = f"{m.get('time/fit_s', float('nan')):.2f}"
        result[f"{model_id} predict test range [s]"] = f"{m.get('time/predict_s', float('nan')):.2f}"
    report(result, args.json)


if __name__ == "__main__":
    main()
