"""CSV/Parquet ingest through a column mapping: counts, units, rejects, bad input.

three_phase_sample.csv (41 data rows, two devices, line = row + 2):
line 5 400 V, line 8 -2.10 A, line 11 70 Hz, line 14 ``abc``, line 17 ``not-a-date``
(hard rejects); line 20 200 V and line 23 48.5 Hz (soft flags); line 26 49.5 Hz
(inside the ±2 % band, not flagged); line 29 empty q_c (missing); line 33 repeats line 32.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from gridtwin_lib.ingest import Column, ColumnMapping, IngestError, ingest_file
from gridtwin_lib.schema import decode_flags

HARD_REJECTS = {
    5: "hard.voltage_range", 8: "hard.current_non_negative", 11: "hard.frequency_range",
    14: "hard.value_parseable", 17: "hard.timestamp_parseable",
}


def test_counts_add_up_and_units_are_converted(store, three_phase_sample, three_phase_mapping):
    s = ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store)
    assert (s.read, s.accepted, s.rejected, s.duplicates, s.written, s.flagged) == (41, 36, 5, 1, 35, 2)
    assert s.read == s.accepted + s.rejected and s.accepted == s.written + s.duplicates
    assert s.missing_values == {"q_c": 1}
    assert s.rejected_by_rule == {rule: 1 for rule in HARD_REJECTS.values()}
    assert s.devices == 2
    first = store.scan("three_phase", device_id="tx-sub-07").collect().row(0, named=True)
    # line 2: 2024-03-01T23:50:00+11:00,tx-sub-07,0.2343 kV,...,Pa 10.792 kW...
    line2 = three_phase_sample.read_text().splitlines()[1].split(",")
    assert first["ts"].isoformat() == "2024-03-01T12:50:00+00:00"
    assert first["v_a"] == pytest.approx(float(line2[2]) * 1000)  # kV -> V
    assert first["p_a"] == pytest.approx(float(line2[9]) * 1000)  # kW -> W
    assert first["q_a"] == pytest.approx(float(line2[12]) * 1000)  # kvar -> var
    assert first["i_a"] == pytest.approx(float(line2[5]))


def test_rejects_keep_rule_raw_text_and_location(store, three_phase_sample, three_phase_mapping):
    ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store)
    lines = three_phase_sample.read_text().splitlines()
    rejects = store.scan_rejects("three_phase").collect().sort("location")
    got = {int(loc.rsplit(":", 1)[1]): (rule, raw) for loc, rule, raw in rejects.select("location", "rule", "raw").iter_rows()}
    assert got == {n: (rule, lines[n - 1]) for n, rule in HARD_REJECTS.items()}
    assert rejects["location"].str.starts_with(str(three_phase_sample)).all()
    assert "Ic_A=abc" in rejects.filter(pl.col("rule") == "hard.value_parseable")["detail"][0]


def test_soft_limits_keep_the_row_and_flag_it(store, three_phase_sample, three_phase_mapping):
    ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store)
    df = store.scan("three_phase").collect()
    flags = {round(f, 1): decode_flags(m) for f, m in df.select("frequency", "quality_flags").iter_rows()}
    assert flags[48.5] == ["soft.frequency_band"]
    assert flags[49.5] == []  # 49-51 Hz band (nominal ±2 %)
    low = df.filter(pl.col("v_b") < 207)
    assert low["v_b"].to_list() == [pytest.approx(200.0)]
    assert decode_flags(low["quality_flags"][0]) == ["soft.voltage_en50160"]
    assert df.filter(pl.col("q_c").is_null()).height == 1  # empty cell stays null


def test_reingest_adds_nothing(store, three_phase_sample, three_phase_mapping):
    ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store)
    again = ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store)
    assert (again.written, again.duplicates) == (0, 36)
    assert store.scan("three_phase").collect().height == 35


def test_parquet_gives_the_same_rows_as_csv(tmp_path, store, three_phase_sample, three_phase_mapping):
    pq_path = tmp_path / "three_phase.parquet"
    pl.read_csv(three_phase_sample, infer_schema=False).write_parquet(pq_path)
    s = ingest_file(pq_path, three_phase_mapping, source="pq", store=store)
    assert (s.read, s.accepted, s.rejected, s.written) == (41, 36, 5, 35)
    csv_store_rows = ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store).written
    a = store.scan("three_phase", source="pq").collect().drop("source")
    b = store.scan("three_phase", source="csv").collect().drop("source")
    assert csv_store_rows == 35 and a.equals(b)


def test_unparseable_timestamp_is_rejected_in_a_naive_file(tmp_path, store):
    path = tmp_path / "naive.csv"
    path.write_text("time,V\n2024-03-01 10:00:00,230.1\nnot-a-date,230.2\n2024-03-01 10:02:00,230.3\n")
    m = ColumnMapping("meter", {"voltage": Column("V", "V")}, ["time"], timezone="Australia/Sydney", device_id="m1")
    s = ingest_file(path, m, store=store)
    assert (s.accepted, s.rejected_by_rule) == (2, {"hard.timestamp_parseable": 1})
    rej = store.scan_rejects().collect().row(0, named=True)
    assert (rej["raw"], rej["location"]) == ("not-a-date,230.2", f"{path}:3")
    assert store.scan("meter").collect()["ts"][0].isoformat() == "2024-02-29T23:00:00+00:00"  # AEDT = UTC+11


def _truncated_parquet(tmp_path):
    path = tmp_path / "cut.parquet"
    pl.DataFrame({"timestamp": ["2024-03-01T10:00:00+11:00"] * 1000, "Ua_kV": ["0.23"] * 1000}).write_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _csv(tmp_path, text, name="in.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


V_ONLY = ColumnMapping("three_phase", {"v_a": Column("Ua_kV", "kV")}, ["timestamp"], device_id="d")
BAD_INPUTS = {
    "missing file": (lambda t, s: (t / "nope.csv", V_ONLY), "file not found"),
    "unknown column": (lambda t, s: (s, ColumnMapping("three_phase", {"v_a": Column("U_phase_a", "kV")}, ["timestamp"])), "'U_phase_a'"),
    "wrong unit": (lambda t, s: (s, ColumnMapping("three_phase", {"v_a": Column("Ua_kV", "A")}, ["timestamp"])), "not a unit of voltage"),
    "empty file": (lambda t, s: (_csv(t, ""), V_ONLY), "empty"),
    "header only": (lambda t, s: (_csv(t, "timestamp,Ua_kV\n"), V_ONLY), "no data rows"),
    "truncated parquet": (lambda t, s: (_truncated_parquet(t), V_ONLY), "Parquet"),
    "mixed timezones": (
        lambda t, s: (_csv(t, "timestamp,Ua_kV\n2024-03-01T10:00:00+11:00,0.23\n2024-03-01 10:01:00,0.23\n"), V_ONLY),
        "mixed timezones",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_error_and_writes_nothing(case, tmp_path, store, three_phase_sample, stored_files):
    make, expected = BAD_INPUTS[case]
    path, mapping = make(tmp_path, three_phase_sample)
    with pytest.raises(IngestError) as err:
        ingest_file(path, mapping, store=store)
    message = str(err.value)
    assert "\n" not in message and expected in message
    assert stored_files(store) == []


def test_sql_over_ingested_rows(store, three_phase_sample, three_phase_mapping):
    ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store)
    per_device = store.sql("SELECT device_id, count(*) AS n FROM three_phase GROUP BY device_id ORDER BY device_id")
    assert per_device.rows() == [("tx-sub-07", 18), ("tx-sub-12", 17)]


def _yaml_mapping(tmp_path, extra: str = "") -> Path:
    lines = ["kind: three_phase", "timestamp: {columns: [timestamp], timezone: UTC}", "device: {column: meter_id}", "columns:"]
    for p in "abc":
        lines += [f"  v_{p}: {{column: U{p}_kV, unit: kV}}", f"  i_{p}: I{p}_A:A", f"  p_{p}: P{p}_kW:kW", f"  q_{p}: Q{p}_kvar:kvar"]
    lines += ["  frequency: freq_Hz"]  # no unit: the field's own (Hz)
    path = tmp_path / "map.yaml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_yaml_mapping_file_equals_the_programmatic_mapping(tmp_path, three_phase_mapping):
    from gridtwin_lib.ingest import load_mapping

    assert load_mapping(_yaml_mapping(tmp_path)) == three_phase_mapping


@pytest.mark.parametrize("typo", ["timezon: UTC", "colums: {}"])
def test_a_misspelt_mapping_key_is_refused_not_ignored(tmp_path, store, three_phase_sample, typo, stored_files):
    from gridtwin_lib.ingest import load_mapping

    text = _yaml_mapping(tmp_path).read_text()
    bad = tmp_path / "bad.yaml"
    if typo.startswith("timezon"):
        bad.write_text(text.replace("timezone: UTC", "timezon: UTC"))
    else:
        bad.write_text(text + typo + "\n")
    with pytest.raises(IngestError, match=r"unknown key '(timezon|colums)'") as err:
        ingest_file(three_phase_sample, load_mapping(bad), store=store)
    assert "\n" not in str(err.value) and stored_files(store) == []
