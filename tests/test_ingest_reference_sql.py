"""The reference system's relational schema (REMHART) on SQLite: ingest, export, round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
import sqlalchemy as sa

from gridtwin_lib.ingest import IngestError
from gridtwin_lib.ingest.reference_sql import (
    active_power_table,
    current_table,
    datetime_table,
    export_reference_sql,
    frequency_table,
    ingest_reference_sql,
    metadata,
    reactive_power_table,
    voltage_table,
)
from gridtwin_lib.store import Store

T0 = datetime(2025, 3, 3, 9, 0, 0, 250000)  # naive, as the reference system stores it


@pytest.fixture
def reference_db(tmp_path) -> str:
    """12 instants at 1 s: id 4 lacks a frequency row, id 7 has 400 V on phase A,
    ids 11-12 are a simulation run (scenario ``voltage_sag``)."""
    url = f"sqlite:///{tmp_path / 'remhart.db'}"
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        for k in range(1, 13):
            sim = k > 10
            conn.execute(sa.insert(datetime_table).values(
                id=k, timestamp=T0 + timedelta(seconds=k), is_simulation=sim,
                simulation_id="run-1" if sim else None, simulation_scenario="voltage_sag" if sim else None,
            ))
            v = [230.0 + k / 10, 231.0, 229.5] if k != 7 else [400.0, 231.0, 229.5]
            conn.execute(sa.insert(voltage_table).values(timestamp_id=k, phaseA=v[0], phaseB=v[1], phaseC=v[2], average=sum(v) / 3))
            conn.execute(sa.insert(current_table).values(timestamp_id=k, phaseA=10.0, phaseB=11.0, phaseC=12.5, average=11.1667))
            if k != 4:
                conn.execute(sa.insert(frequency_table).values(timestamp_id=k, frequency_value=50.01))
            conn.execute(sa.insert(active_power_table).values(timestamp_id=k, phaseA=2300.0, phaseB=2530.0, phaseC=2868.75, total=7698.75))
            conn.execute(sa.insert(reactive_power_table).values(timestamp_id=k, phaseA=400.0, phaseB=-120.5, phaseC=310.0, total=589.5))
    engine.dispose()
    return url


def test_ingest_counts_and_sources(store, reference_db):
    s = ingest_reference_sql(reference_db, store=store, device_id="site-1")
    assert (s.read, s.accepted, s.rejected, s.written, s.duplicates) == (12, 11, 1, 11, 0)
    assert s.rejected_by_rule == {"hard.voltage_range": 1}
    assert s.missing_values == {"frequency": 1}
    assert store.sources("three_phase") == ["reference_sql", "reference_sql:sim:voltage_sag"]
    assert store.scan("three_phase", source="reference_sql:sim:voltage_sag").collect().height == 2
    rej = store.scan_rejects().collect().row(0, named=True)
    assert '"datetime_id":7' in rej["raw"] and rej["rule"] == "hard.voltage_range"


def test_values_and_missing_table_rows(store, reference_db):
    ingest_reference_sql(reference_db, store=store, device_id="site-1")
    df = store.scan("three_phase", source="reference_sql").collect()
    first = df.row(0, named=True)
    assert first["ts"] == datetime(2025, 3, 3, 9, 0, 1, 250000, tzinfo=UTC)
    assert (first["v_a"], first["i_c"], first["p_c"], first["q_b"], first["frequency"]) == (230.1, 12.5, 2868.75, -120.5, 50.01)
    assert df.filter(pl.col("frequency").is_null())["ts"].to_list() == [datetime(2025, 3, 3, 9, 0, 4, 250000, tzinfo=UTC)]


def test_timezone_and_since(store, reference_db):
    s = ingest_reference_sql(reference_db, store=store, timezone="Australia/Sydney", since="2025-03-03T09:00:10")
    assert s.read == 3  # ids 10-12
    assert store.scan("three_phase").collect()["ts"].min() == datetime(2025, 3, 2, 22, 0, 10, 250000, tzinfo=UTC)
    assert ingest_reference_sql(reference_db, store=store, since="2030-01-01T00:00:00").read == 0


def test_reingest_adds_nothing(store, reference_db):
    ingest_reference_sql(reference_db, store=store)
    again = ingest_reference_sql(reference_db, store=store)
    assert (again.written, again.duplicates) == (0, 11)


def test_round_trip_store_sql_store(tmp_path, store, reference_db):
    ingest_reference_sql(reference_db, store=store, device_id="site-1")
    out_url = f"sqlite:///{tmp_path / 'export.db'}"
    assert export_reference_sql(store, out_url) == 11
    assert export_reference_sql(store, out_url) == 0  # instants already there are skipped
    back = Store(tmp_path / "back")
    s = ingest_reference_sql(out_url, store=back, device_id="site-1")
    assert (s.read, s.written) == (11, 11)
    for source in ("reference_sql", "reference_sql:sim:voltage_sag"):
        assert back.scan("three_phase", source=source).collect().equals(store.scan("three_phase", source=source).collect())
    engine = sa.create_engine(out_url)
    with engine.connect() as conn:
        v_avg, p_total = conn.execute(
            sa.select(voltage_table.c.average, active_power_table.c.total)
            .join(active_power_table, active_power_table.c.timestamp_id == voltage_table.c.timestamp_id)
            .order_by(voltage_table.c.timestamp_id)
        ).first()
        n_freq = conn.execute(sa.select(sa.func.count()).select_from(frequency_table)).scalar()
    engine.dispose()
    assert v_avg == pytest.approx((230.1 + 231.0 + 229.5) / 3) and p_total == pytest.approx(7698.75)
    assert n_freq == 10  # the instant without frequency gets no row, so it reads back as null


def test_export_refuses_several_devices(tmp_path, store):
    rows = pl.DataFrame({
        "ts": [datetime(2025, 1, 1, tzinfo=UTC)] * 2, "source": ["x", "x"], "device_id": ["a", "b"], "v_a": [230.0, 231.0],
    })
    store.write("three_phase", rows)
    with pytest.raises(IngestError, match="2 devices"):
        export_reference_sql(store, f"sqlite:///{tmp_path / 'e.db'}")
    assert export_reference_sql(store, f"sqlite:///{tmp_path / 'e.db'}", device_id="b") == 1


@pytest.mark.parametrize(
    "make_url, expected",
    [
        (lambda t: "not a url", "not a database URL"),
        (lambda t: "nosuchdb://u:secret@h/db", "no SQLAlchemy dialect"),
        (lambda t: f"sqlite:///{t / 'missing.db'}", "not found"),
        (lambda t: _empty_sqlite(t), "no table datetime_table"),
        (lambda t: _text_file(t), "cannot read the database"),
    ],
    ids=["invalid url", "unknown dialect", "missing file", "no tables", "not a database"],
)
def test_bad_input(tmp_path, store, stored_files, make_url, expected):
    url = make_url(tmp_path)
    with pytest.raises(IngestError) as err:
        ingest_reference_sql(url, store=store)
    message = str(err.value)
    assert "\n" not in message and expected in message and "secret" not in message
    assert stored_files(store) == []
    assert not (tmp_path / "missing.db").exists()  # reading never creates a database


def _empty_sqlite(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE other (x INTEGER)"))
    engine.dispose()
    return url


def _text_file(tmp_path) -> str:
    path = tmp_path / "notes.db"
    path.write_text("this is not a database\n" * 100)
    return f"sqlite:///{path}"


def test_nan_is_missing_and_infinities_are_refused_from_sql_too(tmp_path, store):
    """The SQL reader holds the finite-number rule of the file readers (issue 14, item 3): a NaN frequency is a
    missing value stored as null and counted, an infinite active power is refused with its own rule."""
    url = f"sqlite:///{tmp_path / 'nan.db'}"
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        for k, (freq, p_a) in enumerate([(50.0, 2300.0), (float("nan"), 2300.0), (50.0, float("inf"))], start=1):
            conn.execute(sa.insert(datetime_table).values(id=k, timestamp=T0 + timedelta(seconds=k), is_simulation=False))
            conn.execute(sa.insert(voltage_table).values(timestamp_id=k, phaseA=230.0, phaseB=231.0, phaseC=229.5, average=230.2))
            conn.execute(sa.insert(current_table).values(timestamp_id=k, phaseA=10.0, phaseB=11.0, phaseC=12.5, average=11.2))
            conn.execute(sa.insert(frequency_table).values(timestamp_id=k, frequency_value=freq))
            conn.execute(sa.insert(active_power_table).values(timestamp_id=k, phaseA=p_a, phaseB=2530.0, phaseC=2868.75, total=7698.75))
            conn.execute(sa.insert(reactive_power_table).values(timestamp_id=k, phaseA=400.0, phaseB=-120.5, phaseC=310.0, total=589.5))
    engine.dispose()
    s = ingest_reference_sql(url, store=store, device_id="site-1")
    assert (s.accepted, s.rejected_by_rule) == (2, {"hard.value_finite": 1})
    assert s.missing_values == {"frequency": 1}
    assert store.scan("three_phase").collect().sort("ts")["frequency"].to_list() == [50.0, None]
