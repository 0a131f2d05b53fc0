"""m17's decision threshold from the training runs alone: the classifier fitted on the even-numbered
devices of the configured full-size training runs, its event F1 on the odd-numbered ones (each half
holds faulty and healthy devices: the faults hit the first half of a run's devices) at thresholds
0.5-0.995. The held-out runs are not read. The configured ``threshold`` is the best of this table.

Run: PYTHONPATH=$PWD nice -n 10 .venv/bin/python tests/benchmarks/bench_pv_anomaly_threshold.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from gridtwin_lib.datasets.maintenance.pv_anomaly import _epoch_us, _rows, fault_labels
from gridtwin_lib.models import registry
from gridtwin_lib.models.maintenance.pv_anomaly import INPUT_COLUMNS, PvAnomaly, event_scores
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995)


def main() -> None:
    entry = registry.get("m17_pv_anomaly")
    params = entry.parameters("full")
    store = Store(Path(tempfile.mkdtemp()) / "store")
    for run in entry.simulation_runs("full"):
        if run["source"] in params["train_sources"]:
            run_scenario(**run, store=store, progress=False)
    rows, events = _rows(store, params["train_sources"], params["plant"])
    ts, device = _epoch_us(rows["ts"]), rows["device_id"].to_numpy()
    y = fault_labels(ts, device, events)
    odd = np.array([int(d.rsplit("pv", 1)[1]) % 2 == 1 for d in device])
    model = PvAnomaly(max_iter=params["max_iter"], max_train_rows=params["max_train_rows"])
    model.fit(rows.loc[~odd, list(INPUT_COLUMNS)], y[~odd])
    score = model.predict(rows.loc[odd, list(INPUT_COLUMNS)].reset_index(drop=True))["score"].to_numpy()
    meta = {"ts_us": ts[odd], "device_id": device[odd], "events": events,
            "merge_gap_s": params["merge_gap_s"], "tolerance_s": params["tolerance_s"]}
    print(f"{'threshold':>9} {'event_f1':>8} {'point_precision':>15} {'event_recall':>12}")
    for th in THRESHOLDS:
        s = event_scores(y[odd], pd.DataFrame({"score": score, "flag": score > th}), meta)
        print(f"{th:>9} {s['event_f1']:>8.3f} {s['point_precision']:>15.3f} {s['event_recall']:>12.3f}")


if __name__ == "__main__":
    main()
