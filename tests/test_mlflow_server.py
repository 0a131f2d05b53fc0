"""MLflow on a server: a PostgreSQL-backed tracking server, a (reduced) smoke pipeline run
against it through the real pipeline runner, and the champion read back through the
registry and the inference engine.

The pipeline is the smoke pipeline's ``10_monitoring`` notebook with the smoke parameters,
restricted to m02 (``only``), on the smoke simulation of m02's data, run by
:func:`gridtwin_lib.pipeline.run` (Papermill on the ``gridtwin`` kernel, the manifest, the
champion rule at the end of the pipeline): the whole smoke pipeline trains 20 models and
takes minutes, this one model in well under one. The server runs on a free 127.0.0.1 port
with a throw-away PostgreSQL database and a temporary artifact directory
(tests/services.py skips or, under CI=true, fails when PostgreSQL is absent).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from services import postgres_database, postgres_server  # noqa: F401

from gridtwin_lib import config, mlflow_server, pipeline, tracking
from gridtwin_lib.datasets.monitoring import harmonic_analysis as dsm
from gridtwin_lib.inference import Engine
from gridtwin_lib.models import registry
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

MODEL = "m02_harmonic_analysis"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def server(postgres_database, tmp_path, monkeypatch):
    """A running server; MLFLOW_TRACKING_URI points at it for this test only."""
    # the fresh database is migrated while the test prepares its data; the test waits before logging
    proc, uri = mlflow_server.start(postgres_database, artifacts=tmp_path / "artifacts", log=tmp_path / "server.log",
                                    wait=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("GRIDTWIN_HOME", str(tmp_path / "home"))  # nothing falls back to the project's mlruns
    monkeypatch.delenv("GRIDTWIN_WORKSPACE", raising=False)
    monkeypatch.delenv(tracking.MANIFEST_ENV, raising=False)
    monkeypatch.setitem(tracking._PNG_STATE, "ok", False)  # PNG figures need Chromium; not what is tested here
    monkeypatch.setitem(tracking._PNG_STATE, "reason", "skipped in this test")
    yield proc, uri, postgres_database, tmp_path / "artifacts"
    proc.terminate()
    proc.wait(timeout=30)


def server_smoke_pipeline(home: Path) -> Path:
    """The smoke pipeline's 10_monitoring step with its parameters, restricted to m02, in workspace ``server``."""
    smoke = yaml.safe_load((ROOT / "pipelines" / "smoke.yaml").read_text())
    reduced = {"description": "smoke pipeline, m02 only, against the MLflow server", "workspace": "server",
               "parameters": smoke["parameters"],  # size smoke: the model's configured smoke parameters
               "notebooks": [{"notebook": "10_monitoring.ipynb", "parameters": {"only": [MODEL]}}]}
    (home / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / "10_monitoring.ipynb", home / "notebooks")
    path = home / "pipelines" / "server_smoke.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(reduced, sort_keys=False))
    return path


def test_smoke_pipeline_registered_on_postgres_server_and_what_serves_read_back(server, tmp_path, monkeypatch):
    proc, uri, backend, artifacts = server
    home = tmp_path / "home"
    path = server_smoke_pipeline(home)
    monkeypatch.setenv("GRIDTWIN_WORKSPACE", "server")  # where the pipeline's notebook finds its store
    store = Store(config.store_dir())
    monkeypatch.delenv("GRIDTWIN_WORKSPACE")
    for run in registry.get(MODEL).simulation_runs("smoke"):  # what the smoke pipeline's 00_data simulates for m02
        run_scenario(**run, store=store, progress=False)
    # a fresh database is migrated first: slow on a loaded machine, so a generous wait
    mlflow_server.wait_ready(proc, uri, timeout_s=600, log=tmp_path / "server.log")

    result = pipeline.run(str(path), jobs=1, echo=None, timeout_s=600)
    assert result.status == "ok", result.error
    (step,) = result.steps
    (model_run,) = step.runs
    version = str(model_run["registered_version"])
    assert model_run["model_id"] == MODEL and version, model_run
    # the champion gate decided either way (on the smoke data the forest ties the FFT logistic): what it decided is
    # recorded on the server, and what serves follows it
    assert model_run["champion"] == model_run["gate_passed"], model_run["gate_reason"]
    assert model_run["serves"] == ("model" if model_run["champion"] else f"baseline:{model_run['strongest_baseline']}")
    assert tracking.tracking_uri() == uri  # the runner, its notebook's kernel and this test all used the server

    # the registry lives in PostgreSQL ...
    engine = sa.create_engine(backend)
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM registered_models")).scalars().all()
        aliases = dict(conn.execute(sa.text("SELECT alias, version FROM registered_model_aliases WHERE name = :n"),
                                    {"n": f"gridtwin.{MODEL}"}).all())
        runs = conn.execute(sa.text("SELECT count(*) FROM runs WHERE status = 'FINISHED'")).scalar()
    engine.dispose()
    assert names == [f"gridtwin.{MODEL}"] and runs >= 1
    assert str(aliases.get("serving")) == version and ("champion" in aliases) == model_run["champion"], aliases
    # ... the artifacts (model, baselines, executed notebook, report) in the server's directory, served over HTTP
    assert any(artifacts.rglob("MLmodel")) and any(artifacts.rglob("*.ipynb")) and any(artifacts.rglob("baselines/*.pkl"))
    assert not (home / "mlruns").exists()  # nothing fell back to a local store

    # the registry helpers and the inference engine read what serves back from the server
    champion = tracking.champion_version(f"gridtwin.{MODEL}")
    assert (champion is not None and str(champion.version) == version) == model_run["champion"]
    assert str(tracking.serving_version(f"gridtwin.{MODEL}").version) == version
    board = tracking.leaderboard().set_index("model_id")
    assert bool(pd.notna(board.loc[MODEL, "champion_version"])) == model_run["champion"]
    served = Engine.from_registry([MODEL])
    assert MODEL in served.estimators and MODEL not in served.missing, served.missing
    assert served.serving[MODEL] == model_run["serves"], served.serving
    ds = dsm.harmonic_analysis(store, test_fraction=0.3)
    assert len(served.estimators[MODEL].predict(ds.X_test.head(20))) == 20


def test_server_refuses_non_postgres_backend():
    with pytest.raises(mlflow_server.ServerError, match="PostgreSQL-backed"):
        mlflow_server.ensure_database("sqlite:///x.db")
