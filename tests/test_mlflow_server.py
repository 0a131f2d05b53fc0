"""MLflow on a server: a PostgreSQL-backed tracking server, a one-model pipeline step
against it, and the champion read back through the registry and the inference engine.

The server runs on a free 127.0.0.1 port with a throw-away PostgreSQL database and a
temporary artifact directory (tests/services.py skips or, under CI=true, fails when
PostgreSQL is absent).
"""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from services import postgres_database, postgres_server  # noqa: F401

from gridtwin_lib import mlflow_server, notebook, tracking
from gridtwin_lib.datasets.monitoring import harmonic_analysis as dsm
from gridtwin_lib.inference import Engine
from gridtwin_lib.models import registry
from gridtwin_lib.models.monitoring.harmonic_analysis import HarmonicAnalysis
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

MODEL = "m02_harmonic_analysis"


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


def test_model_run_registered_on_postgres_server_and_champion_read_back(server, tmp_path):
    proc, uri, backend, artifacts = server
    assert tracking.tracking_uri() == uri
    store = Store(tmp_path / "store")
    for run in registry.get("m02_harmonic_analysis").simulation_runs("smoke"):  # the smoke pipeline's m02 data
        run_scenario(**run, store=store, progress=False)
    ds = dsm.harmonic_analysis(store, test_fraction=0.3)
    mlflow_server.wait_ready(proc, uri, log=tmp_path / "server.log")

    # what notebooks/10_monitoring.ipynb does for m02, registering at once (no pipeline manifest)
    result = notebook.train(HarmonicAnalysis(random_state=7, n_estimators=30), ds, seed=7)
    assert result.run.beats_baseline and result.run.champion, result.run.champion_reason

    # the registry lives in PostgreSQL ...
    engine = sa.create_engine(backend)
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM registered_models")).scalars().all()
        alias = conn.execute(sa.text("SELECT version FROM registered_model_aliases WHERE name = :n AND alias = 'champion'"),
                             {"n": f"gridtwin.{MODEL}"}).scalar()
    engine.dispose()
    assert names == [f"gridtwin.{MODEL}"] and str(alias) == result.run.registered_version
    # ... the artifacts in the server's directory, served to the client over HTTP
    assert any(p.name == "MLmodel" for p in artifacts.rglob("MLmodel"))

    # the registry helpers and the inference engine read the champion back from the server
    assert tracking.champion_version(f"gridtwin.{MODEL}").version == result.run.registered_version
    board = tracking.leaderboard()
    assert board.set_index("model_id").loc[MODEL, "champion_version"] is not None
    served = Engine.from_registry([MODEL])
    assert MODEL in served.estimators and MODEL not in served.missing
    x = ds.X_test.head(20)
    assert np.array_equal(np.asarray(served.estimators[MODEL].predict(x)), np.asarray(result.model.predict(x)))


def test_server_refuses_non_postgres_backend():
    with pytest.raises(mlflow_server.ServerError, match="PostgreSQL-backed"):
        mlflow_server.ensure_database("sqlite:///x.db")
