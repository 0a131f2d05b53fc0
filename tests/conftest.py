"""Shared fixtures: a fresh store per test and the sample input files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gridtwin_lib.ingest import Column, ColumnMapping
from gridtwin_lib.store import Store

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "store")


@pytest.fixture
def uci_sample() -> Path:
    """UCI original text format, 200 rows, 3 all-missing (``?``) minutes."""
    return DATA / "uci_original_sample.txt"


@pytest.fixture
def three_phase_sample() -> Path:
    """Two devices, kV/kW/kvar columns, ISO timestamps with +11:00; see test_ingest_files for its rows."""
    return DATA / "three_phase_sample.csv"


@pytest.fixture
def firmware_sample() -> Path:
    """Firmware NDJSON, 22 lines; see test_ingest_firmware for its rows."""
    return DATA / "firmware_sample.ndjson"


@pytest.fixture
def three_phase_mapping() -> ColumnMapping:
    """Mapping of three_phase_sample.csv (voltages in kV, powers in kW/kvar)."""
    cols = {}
    for p in "abc":
        cols[f"v_{p}"] = Column(f"U{p}_kV", "kV")
        cols[f"i_{p}"] = Column(f"I{p}_A", "A")
        cols[f"p_{p}"] = Column(f"P{p}_kW", "kW")
        cols[f"q_{p}"] = Column(f"Q{p}_kvar", "kvar")
    cols["frequency"] = Column("freq_Hz", "Hz")
    return ColumnMapping("three_phase", cols, ["timestamp"], device_column="meter_id")


@pytest.fixture
def stored_files():
    """A function listing every file under a store's root except the writer lock."""

    def files(store: Store) -> list[Path]:
        if not store.root.exists():
            return []
        return sorted(p for p in store.root.rglob("*") if p.is_file() and p.name != ".lock")

    return files


@pytest.fixture(scope="session")
def smoke_home(tmp_path_factory):
    """The smoke pipeline run once per session in a throw-away project home.

    Returns ``(home, result)``; with ``GRIDTWIN_TEST_SMOKE_HOME`` set, that finished run's home and no result (to
    iterate on the dashboards without running the pipeline again). Tests that need a store with simulated data and a registry
    with champions (notebooks, dashboards, the daily report) share it instead of paying
    again; use ``smoke_workspace`` to point the library at it for one test.
    """
    from gridtwin_lib import pipeline

    reuse = os.environ.get("GRIDTWIN_TEST_SMOKE_HOME")  # iterate on dashboards against a finished run's home
    if reuse:
        return Path(reuse), None
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(ROOT / "notebooks", home / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(ROOT / "pipelines", home / "pipelines")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRIDTWIN_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("GRIDTWIN_WORKSPACE", raising=False)
        result = pipeline.run("smoke", jobs=2, echo=print)
    return home, result


@pytest.fixture
def smoke_workspace(smoke_home, monkeypatch):
    """``smoke_home`` with GRIDTWIN_HOME / GRIDTWIN_WORKSPACE set for this test only."""
    home, _ = smoke_home
    monkeypatch.setenv("GRIDTWIN_HOME", str(home))
    monkeypatch.setenv("GRIDTWIN_WORKSPACE", "smoke")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return smoke_home
