"""The Parquet store: idempotent writes, no partial files, pruning, SQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pyarrow.parquet as pq
import pytest

DAY0 = datetime(2024, 6, 1, tzinfo=UTC)


def _meter_rows(days: int = 3, per_day: int = 4, devices=("m1", "m2")) -> pl.DataFrame:
    """``per_day`` readings 10 s apart per device on each of ``days`` days from 2024-06-01 (V, W).

    Sampled faster than once a minute, so the store partitions the source by day.
    """
    rows = [
        {"ts": DAY0 + timedelta(days=d, seconds=10 * h), "source": "test", "device_id": dev, "voltage": 230.0 + h, "power": 100.0 * d}
        for d in range(days) for h in range(per_day) for dev in devices
    ]
    return pl.DataFrame(rows)


def test_write_scan_round_trip_and_idempotence(store):
    df = _meter_rows()
    first = store.write("meter", df)
    assert (first.written, first.duplicates, len(first.files)) == (24, 0, 3)  # one file per date
    again = store.write("meter", pl.concat([df, df.head(2)]))
    assert (again.written, again.duplicates, again.files) == (0, 26, [])
    got = store.scan("meter").collect()
    assert got.height == 24 and got["quality_flags"].to_list() == [0] * 24
    assert got.select("ts", "device_id", "voltage").sort("device_id", "ts").equals(df.select("ts", "device_id", "voltage").sort("device_id", "ts"))
    assert pq.read_schema(first.files[0]).field("voltage").metadata[b"unit"] == b"V"


def test_scan_prunes_dates_and_filters_devices(store):
    store.write("meter", _meter_rows())
    day0_file = next((store.root / "measurements" / "kind=meter" / "source=test" / "date=2024-06-01").glob("*.parquet"))
    day0_file.write_bytes(b"not parquet")  # opening this partition would fail
    start, end = DAY0 + timedelta(days=1), DAY0 + timedelta(days=2, seconds=25)
    got = store.scan("meter", device_id="m2", start=start, end=end).collect()
    assert got["device_id"].unique().to_list() == ["m2"]
    assert got["ts"].min() == start and got["ts"].max() == DAY0 + timedelta(days=2, seconds=20)
    assert got.height == 7
    with pytest.raises(pl.exceptions.PolarsError):  # the pruned partition is really unreadable
        store.scan("meter").collect()


def test_crash_mid_write_leaves_no_partial_file(store, monkeypatch):
    real = pq.write_table
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", flaky)
    with pytest.raises(OSError, match="simulated"):
        store.write("meter", _meter_rows(days=3))
    assert len(calls) == 3
    assert list((store.root / "measurements").rglob("*.parquet")) == []
    monkeypatch.setattr(pq, "write_table", real)

    orphan = store.root / "_staging" / "deadbeef" / "part-x.parquet"  # as a killed writer would leave it
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"partial")
    assert store.write("meter", _meter_rows(days=3)).written == 24
    assert [p for p in (store.root / "_staging").rglob("*") if p.is_file()] == []
    assert store.scan("meter").collect().height == 24


def test_sql_summary_and_rejects(store):
    store.write("meter", _meter_rows(days=2))
    assert store.sql("SELECT count(*) FROM meter").item() == 16
    assert store.sql("SELECT count(*) FROM three_phase").item() == 0
    summary = store.summary()
    assert summary.select("kind", "source", "rows", "devices").rows() == [("meter", "test", 16, 2)]
    store.write_rejects("meter", pl.DataFrame({
        "source": ["test"], "device_id": ["m1"], "ts": [DAY0], "location": ["f.csv:7"],
        "rule": ["hard.voltage_range"], "detail": ["hard.voltage_range"], "raw": ["2024-06-01,400"],
    }))
    rej = store.scan_rejects("meter").collect()
    assert rej.select("kind", "rule", "location", "raw").rows() == [("meter", "hard.voltage_range", "f.csv:7", "2024-06-01,400")]
    assert store.sql("SELECT rule FROM rejects").item() == "hard.voltage_range"


def test_truth_is_kept_apart(store):
    store.write_truth("events", pl.DataFrame({"ts": [DAY0], "source": ["sim:sag"], "event": ["sag"]}))
    assert store.kinds() == [] and store.truth_tables() == ["events"]
    assert store.scan_truth("events").collect()["event"].to_list() == ["sag"]


def test_truth_tables_with_different_columns_read_as_their_union(store):
    t = datetime(2025, 1, 1, tzinfo=UTC)
    store.write_truth("events", pl.DataFrame({"ts": [t], "source": ["sim:a"], "type": ["sag"], "magnitude": [0.7]}))
    store.write_truth("events", pl.DataFrame({"ts": [t], "source": ["sim:b"], "type": ["soiling"], "asset": ["pv-1"]}))
    events = store.scan_truth("events").collect().sort("source")
    assert set(events.columns) >= {"type", "magnitude", "asset"}
    assert events["magnitude"].to_list() == [0.7, None] and events["asset"].to_list() == [None, "pv-1"]
    assert store.scan_truth("events", source="sim:b").collect().height == 1


def test_slow_sources_are_partitioned_by_month_and_keep_that_layout(store):
    minutes = pl.DataFrame({
        "ts": pl.datetime_range(DAY0, DAY0 + timedelta(days=45), "1m", eager=True, time_zone="UTC"),
        "source": "slow", "device_id": "house", "voltage": 231.0,
    })
    first = store.write("meter", minutes)
    assert sorted(f.parent.name for f in first.files) == ["date=2024-06-01", "date=2024-07-01"]
    base = store.root / "measurements" / "kind=meter" / "source=slow"
    assert json.loads((base / "_partitioning.json").read_text())["period"] == "month"
    # a later burst of 1 s readings still goes to the monthly partition, and re-writes dedupe against it
    burst = minutes.head(3).with_columns(pl.col("ts") + timedelta(seconds=1))
    assert {f.parent.name for f in store.write("meter", burst).files} == {"date=2024-06-01"}
    assert store.write("meter", minutes).written == 0
    july = store.scan("meter", source="slow", start=DAY0 + timedelta(days=35), end=DAY0 + timedelta(days=36)).collect()
    assert july.height == 1440
