"""``spark-submit bin/gridtwin-spark.py ...``: the cluster entry point, run in local mode.

The same file a cluster runs (README "Spark"): spark-submit starts the driver with its own
``--master`` (which must win over the CLI's default), the executors' Python is
``PYSPARK_PYTHON``. Scores an empty workspace's registry (no champions: every reading gets
its typed errors) so the test needs no training. Needs Java (skip, or failure under CI=true).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gridtwin_lib import spark_scoring
from gridtwin_lib.store import Store

ROOT = Path(__file__).resolve().parents[1]


def test_spark_submit_runs_the_cli_file(tmp_path):
    submit = Path(sys.executable).with_name("spark-submit")
    if (shutil.which("java") is None and not os.environ.get("JAVA_HOME")) or not submit.exists():
        reason = "Java or spark-submit not found (apt-get install default-jdk-headless; pyspark in the venv)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    rng = np.random.default_rng(1)
    t0 = datetime(2025, 6, 30, 23, 30, tzinfo=UTC)
    n = 720
    frame = pl.DataFrame({
        "ts": [t0 + timedelta(seconds=5 * k) for k in range(n)] * 2, "source": "sim:submit",
        "device_id": ["dev-0"] * n + ["dev-1"] * n,
        **{f"{q}_{p}": base + rng.normal(0, 1, 2 * n) for q, base in (("v", 230.0), ("i", 10.0)) for p in "abc"},
        "frequency": 50 + rng.normal(0, 0.01, 2 * n),
    }).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    store = Store(tmp_path / "store")
    store.write("three_phase", frame)
    out = tmp_path / "scores"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "GRIDTWIN_HOME": str(tmp_path / "home"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("GRIDTWIN_WORKSPACE", None)
    cmd = [str(submit), "--master", "local[1]", "--conf", "spark.ui.enabled=false", str(ROOT / "bin" / "gridtwin-spark.py"),
           "score", "--engine", "spark", "--from-store", "--store", str(store.root), "--out", str(out),
           "--start", "2025-07-01T00:00", "--end", "2025-07-01T00:30", "--chunk", "1h", "--json", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["master"] == "local[1]"  # spark-submit's master, not the CLI's default local[2]
    scores, errors = spark_scoring.read_scores(out)
    assert summary["readings"] == scores.height == 2 * 360  # the 30 minutes from 00:00, both devices
    assert scores["ts"].min() == datetime(2025, 7, 1, tzinfo=UTC) and errors.height > 0
