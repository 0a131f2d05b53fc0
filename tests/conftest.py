"""Shared fixtures: a fresh store per test and the sample input files."""

from __future__ import annotations

import os
import shutil
from collections import Counter
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


# ----------------------------------------------------------------------------- two workers (pytest-xdist)
#: modules whose tests share the smoke pipeline's home: one worker runs them, so the session fixture runs once
SMOKE_MODULES = {"test_dashboards", "test_inference", "test_smoke_pipeline"}
SPARK_MODULES = {"test_spark_features", "test_spark_scoring", "test_spark_submit"}  # one local Spark session


def worker_group(nodeid: str) -> str:
    """The group of tests one worker runs in turn: ``smoke``, ``spark``, else the test's module (its module
    fixtures are set up once, and its servers and broker topics never meet another run of the same module)."""
    module = nodeid.split("::", 1)[0].rpartition("/")[2].removesuffix(".py")
    return "smoke" if module in SMOKE_MODULES else "spark" if module in SPARK_MODULES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs two workers (``-n 2``); each takes whole groups (:func:`worker_group`) in collection
    order, the smoke group first: it is the longest chain (the pipeline, then the notebooks, the dashboards and
    the engine on its home), so one worker starts it at once while the other takes every other group.

    pytest-xdist's own ``--dist loadgroup`` cannot do this under pytest 9 (it renames node ids, which pytest 9
    derives from the collection tree instead), hence this scheduler.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    config.option.loadscopereorder = False  # keep the collection order (smoke first), not the largest group first
    return ByGroup(config, log)


def pytest_collection_modifyitems(config, items):
    """A test on the smoke home outside :data:`SMOKE_MODULES` would run the pipeline again on the other worker,
    and pytest-xdist runs only the first of several items sharing a node id: both refused, not left to
    pass silently. Under pytest-xdist the smoke group is put first (see :func:`pytest_xdist_make_scheduler`)."""
    twice = [nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1]
    if twice:
        raise pytest.UsageError(f"{twice[0]}: several tests share this node id, and pytest-xdist would run one; "
                                "give each its own name or parameter id")
    strays = [item.nodeid for item in items if "smoke_home" in item.fixturenames and worker_group(item.nodeid) != "smoke"]
    if strays:
        raise pytest.UsageError(f"{strays[0]} uses the smoke home outside tests/conftest.py SMOKE_MODULES; add its module there")
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: worker_group(item.nodeid) != "smoke")  # stable: each group keeps its order
