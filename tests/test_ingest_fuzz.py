"""Hypothesis on the file readers: whatever a CSV or Parquet file holds, ingest either refuses
it with one line (IngestError, nothing written) or stores only finite, validated readings with
counts that add up; never another exception. Bounded: a few dozen files per test."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridtwin_lib.ingest import Column, ColumnMapping, IngestError, ingest_file
from gridtwin_lib.store import Store

MAPPING = ColumnMapping("meter", {"voltage": Column("V", "V"), "current": Column("I", "A"), "power": Column("P", "kW")},
                        ["time"], timezone="Europe/Paris", device_id="m1")

_times = st.sampled_from(["2024-10-27 02:30:00", "2024-03-31 02:30:00", "2024-06-01 12:00:00", "not-a-date", "", "0",
                          "1e20", "2024-06-01T12:00:00+02:00"]) | st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S"))
_numbers = st.sampled_from(["nan", "inf", "-Infinity", "1e309", "?", "", "abc", "1,5", " 230 ", "true"]) | st.floats().map(repr)
_rows = st.lists(st.tuples(_times, _numbers, _numbers, _numbers), min_size=0, max_size=8)
_settings = settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def _check(path: Path, root: Path) -> None:
    store = Store(root)
    try:
        s = ingest_file(path, MAPPING, store=store)
    except IngestError as exc:
        assert "\n" not in str(exc)
        assert not (root / "measurements").exists()
        return
    assert s.read == s.accepted + s.rejected and s.accepted == s.written + s.duplicates
    if s.written:
        df = store.scan("meter").collect()
        for col in ("voltage", "current", "power"):
            assert all(math.isfinite(v) for v in df[col].drop_nulls())
        assert df["ts"].null_count() == 0


@_settings
@given(rows=_rows)
def test_any_csv_is_refused_in_one_line_or_stored_finite(rows):
    tmp = Path(tempfile.mkdtemp())
    try:
        path = tmp / "in.csv"
        path.write_text("time,V,I,P\n" + "".join(",".join(r) + "\n" for r in rows))
        _check(path, tmp / "store")
    finally:
        shutil.rmtree(tmp)


_column = st.one_of(
    st.lists(st.floats(), min_size=3, max_size=3),
    st.lists(st.integers(-2**63, 2**63 - 1), min_size=3, max_size=3),
    st.lists(st.text(max_size=6), min_size=3, max_size=3),
    st.lists(st.lists(st.floats(), max_size=2), min_size=3, max_size=3),
    st.lists(st.none(), min_size=3, max_size=3),
)


@_settings
@given(time=_column, v=_column, i=_column, p=_column)
def test_any_parquet_is_refused_in_one_line_or_stored_finite(time, v, i, p):
    tmp = Path(tempfile.mkdtemp())
    try:
        path = tmp / "in.parquet"
        pl.DataFrame({"time": time, "V": v, "I": i, "P": p}, strict=False).write_parquet(path)
        _check(path, tmp / "store")
    finally:
        shutil.rmtree(tmp)
