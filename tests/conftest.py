"""Shared fixtures: a fresh store per test and the sample input files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridtwin_lib.ingest import Column, ColumnMapping
from gridtwin_lib.store import Store

DATA = Path(__file__).parent / "data"


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
