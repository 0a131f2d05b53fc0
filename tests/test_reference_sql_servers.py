"""The reference schema on real servers: PostgreSQL (psycopg) and MariaDB (PyMySQL).

store -> ``gridtwin export-sql`` -> server -> ``gridtwin ingest sql`` -> store reproduces
every value and instant (time zones included); large tables stream in bounded chunks;
bad URLs, credentials and databases fail with one line. Servers: see tests/services.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from services import mariadb_server, mariadb_url, postgres_server, postgres_url, server_url  # noqa: F401
from typer.testing import CliRunner

from gridtwin_lib.cli import app
from gridtwin_lib.ingest import reference_sql
from gridtwin_lib.ingest.reference_sql import (
    datetime_table,
    export_reference_sql,
    frequency_table,
    ingest_reference_sql,
)
from gridtwin_lib.schema import polars_schema
from gridtwin_lib.store import Store

runner = CliRunner()
T0 = datetime(2025, 6, 3, 23, 59, 58, 123456, tzinfo=UTC)  # crosses midnight UTC, microseconds


def readings(n: int, start: datetime = T0, source: str = "ref", step_s: float = 1.0, seed: int = 0) -> pl.DataFrame:
    """``n`` canonical three-phase readings of one device with full-precision values."""
    rng = np.random.default_rng(seed)
    schema = polars_schema("three_phase")
    data = {
        "ts": [start + timedelta(seconds=k * step_s) for k in range(n)],
        "source": [source] * n,
        "device_id": ["site-1"] * n,
    }
    for p in "abc":  # 17 significant digits (FLOAT would lose them), physically consistent: P² + Q² ≤ (V·I)²
        v, i = 230.0 + rng.normal(0, 1, n), 10.0 + rng.normal(0, 1, n)
        data[f"v_{p}"], data[f"i_{p}"] = v, i
        data[f"p_{p}"], data[f"q_{p}"] = 0.95 * v * i, 0.31 * v * i
    data["frequency"] = 50 + rng.normal(0, 0.01, n)
    frame = pl.DataFrame(data).with_columns(pl.col("ts").cast(schema["ts"]))
    return frame.with_columns(pl.lit(None, pl.Float64).alias("thd_v"), pl.lit(0, pl.UInt32).alias("quality_flags")).select(list(schema))


def cli(*args: str):
    return runner.invoke(app, list(args))


def test_round_trip_types_and_time_zone(server_url, tmp_path):
    measured = readings(30)
    # gaps the schema must keep: instant 5 without frequency, instant 6 without any reactive power
    measured = measured.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(None).otherwise(pl.col("frequency")).alias("frequency"),
        *(pl.when(pl.int_range(pl.len()) == 6).then(None).otherwise(pl.col(f"q_{p}")).alias(f"q_{p}") for p in "abc"),
    )
    simulated = readings(4, start=T0 + timedelta(hours=1), source="ref:sim:voltage_sag", seed=1)
    source_store = Store(tmp_path / "a")
    source_store.write("three_phase", pl.concat([measured, simulated]))

    # Sydney is UTC+10 in June: the naive column must hold Sydney wall-clock time
    out = cli("export-sql", server_url, "--timezone", "Australia/Sydney", "--store", str(source_store.root), "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["exported"] == 34
    assert cli("export-sql", server_url, "--timezone", "Australia/Sydney", "--store", str(source_store.root), "--json").output.count('"exported": 0') == 1

    engine = sa.create_engine(server_url)
    with engine.connect() as conn:
        first = conn.execute(sa.select(datetime_table.c.timestamp).order_by(datetime_table.c.id).limit(1)).scalar()
        n_freq = conn.execute(sa.select(sa.func.count()).select_from(frequency_table)).scalar()
    engine.dispose()
    assert first == datetime(2025, 6, 4, 9, 59, 58, 123456)  # naive, microseconds kept
    assert n_freq == 33

    back = Store(tmp_path / "b")
    dry = cli("ingest", "sql", server_url, "--timezone", "Australia/Sydney", "--store", str(back.root), "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.output)["read"] == 34, dry.output
    assert not (back.root / "measurements").exists()  # a dry run writes nothing
    got = cli("ingest", "sql", server_url, "--source", "ref", "--device-id", "site-1", "--timezone", "Australia/Sydney",
              "--store", str(back.root), "--json")
    assert got.exit_code == 0, got.output
    summary = json.loads(got.output)
    assert (summary["read"], summary["written"], summary["rejected"]) == (34, 34, 0)
    assert back.sources("three_phase") == ["ref", "ref:sim:voltage_sag"]
    for src in ("ref", "ref:sim:voltage_sag"):
        expected = source_store.scan("three_phase", source=src).collect().drop("quality_flags")
        actual = back.scan("three_phase", source=src).collect().select(expected.columns)
        assert actual.equals(expected), src  # exact: same instants (UTC), same doubles, same nulls


def test_large_table_streams_in_bounded_chunks(server_url, tmp_path, monkeypatch):
    n, chunk = 20_000, 3_000
    src = Store(tmp_path / "a")
    src.write("three_phase", readings(n, step_s=0.5))
    assert export_reference_sql(src, server_url, chunk_rows=chunk) == n

    heights = []
    real = reference_sql.ingest_frame

    def counting(raw, *args, **kwargs):
        heights.append(raw.height)
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(reference_sql, "ingest_frame", counting)
    back = Store(tmp_path / "b")
    summary = ingest_reference_sql(server_url, store=back, source="ref", device_id="site-1", chunk_rows=chunk)
    assert summary.written == n and summary.read == n
    assert len(heights) == -(-n // chunk) and max(heights) == chunk  # 7 chunks, none above the bound
    assert back.scan("three_phase").select(pl.len()).collect().item() == n


def test_missing_tables_one_line(server_url, tmp_path):
    out = cli("ingest", "sql", server_url, "--store", str(tmp_path / "s"))
    assert out.exit_code == 2
    assert "no table datetime_table" in out.output and len(out.output.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "measurements").exists()


@pytest.mark.parametrize("which", ["postgresql", "mariadb"])
def test_wrong_credentials_and_database_one_line(which, request, tmp_path):
    server: sa.URL = request.getfixturevalue("postgres_server" if which == "postgresql" else "mariadb_server")
    if which == "postgresql":
        wrong_user = server.set(username="gt_no_such_role")
    else:
        wrong_user = server.set(username="root", password="wrong-password")
    cases = {
        wrong_user: "cannot read the database",
        server.set(database="gt_no_such_database"): "cannot read the database",
        server.set(port=1): "cannot read the database",
    }
    for url, expected in cases.items():
        text = url.render_as_string(hide_password=False)
        out = cli("ingest", "sql", text, "--store", str(tmp_path / "s"))
        assert out.exit_code == 2, out.output
        assert expected in out.output and len(out.output.strip().splitlines()) == 1, out.output
        assert "wrong-password" not in out.output  # the password is redacted
    assert not (tmp_path / "s" / "measurements").exists()


@pytest.mark.parametrize("url, expected", [
    ("not a url", "not a database URL"),
    ("postgresql+nosuchdriver://u@127.0.0.1/test", "no SQLAlchemy dialect or driver"),
])
def test_bad_url_one_line(url, expected, tmp_path):
    out = cli("ingest", "sql", url, "--store", str(tmp_path / "s"))
    assert out.exit_code == 2 and expected in out.output and len(out.output.strip().splitlines()) == 1, out.output
