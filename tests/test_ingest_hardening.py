"""Issue 14 on the file ingest path: time around clock changes, finite numbers, physics,
one-line errors and rejects that are a faithful record. Each test feeds one of the inputs the
issue found wrong."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest
from typer.testing import CliRunner

from gridtwin_lib.ingest import Column, ColumnMapping, IngestError, ingest_file, ingest_uci
from gridtwin_lib.schema import decode_flags

runner = CliRunner()


def _csv(tmp_path, text: str, name: str = "in.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _meter(zone: str = "UTC", **columns) -> ColumnMapping:
    cols = columns or {"voltage": Column("V", "V")}
    return ColumnMapping("meter", cols, ["time"], timezone=zone, device_id="m1")


# --------------------------------------------------------------------------- item 2: time, done right


def _local_series(start: datetime, minutes: list[int]) -> list[str]:
    return [(start + timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S") for m in minutes]


# wall clock of a 10-minute series through the autumn change: the repeated hour appears twice
_AUTUMN = {
    "Europe/Paris": datetime(2024, 10, 27, 1, 40),  # 03:00 CEST -> 02:00 CET
    "Australia/Sydney": datetime(2024, 4, 7, 1, 40),  # 03:00 AEDT -> 02:00 AEST
}


@pytest.mark.parametrize("zone", list(_AUTUMN))
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_repeated_autumn_hour_is_resolved_by_row_order_not_counted_as_duplicates(tmp_path, store, zone, fmt):
    wall = _local_series(_AUTUMN[zone], [0, 10, *range(20, 80, 10), *range(20, 80, 10), 80, 90])  # 01:40 .. 02:50 twice .. 03:10
    frame = pl.DataFrame({"time": wall, "V": [230.0 + k for k in range(len(wall))]})
    if fmt == "csv":
        path = tmp_path / "autumn.csv"
        frame.write_csv(path)
    else:  # naive datetime column, as a logger exports it
        path = tmp_path / "autumn.parquet"
        frame.with_columns(pl.col("time").str.to_datetime()).write_parquet(path)
    s = ingest_file(path, _meter(zone), store=store)
    assert (s.read, s.accepted, s.duplicates, s.rejected) == (len(wall), len(wall), 0, 0)
    ts = store.scan("meter").collect().sort("ts")["ts"]
    assert ts.diff().drop_nulls().unique().to_list() == [timedelta(minutes=10)]  # one gap-free UTC series
    assert store.scan("meter").collect().sort("ts")["voltage"].to_list() == frame["V"].to_list()  # file order = time order


def test_a_repeated_hour_time_the_order_cannot_place_is_rejected_as_ambiguous(tmp_path, store):
    # hourly: 02:00 twice is resolved (first, then second pass); 02:30 seen once cannot be placed
    path = _csv(tmp_path, "time,V\n2024-10-27 01:00:00,230\n2024-10-27 02:00:00,231\n2024-10-27 02:00:00,232\n"
                          "2024-10-27 02:30:00,233\n2024-10-27 03:00:00,234\n")
    s = ingest_file(path, _meter("Europe/Paris"), store=store)
    assert (s.accepted, s.duplicates, s.rejected_by_rule) == (4, 0, {"hard.timestamp_ambiguous": 1})
    utc = store.scan("meter").collect().sort("ts")["ts"].dt.strftime("%H:%M").to_list()
    assert utc == ["23:00", "00:00", "01:00", "02:00"]


def test_a_time_in_the_spring_gap_has_its_own_rule(tmp_path, store):
    path = _csv(tmp_path, "time,V\n2024-03-31 01:30:00,230\n2024-03-31 02:30:00,231\n2024-03-31 03:30:00,232\n")
    s = ingest_file(path, _meter("Europe/Paris"), store=store)
    assert (s.accepted, s.rejected_by_rule) == (2, {"hard.timestamp_nonexistent": 1})
    rej = store.scan_rejects().collect().row(0, named=True)
    assert rej["raw"] == "2024-03-31 02:30:00,231"


# --------------------------------------------------------------------------- item 3: finite numbers only


def test_nan_is_missing_and_infinities_and_unit_overflow_are_refused(tmp_path, store):
    mapping = _meter(voltage=Column("V", "V"), power=Column("P", "kW"))
    rows = ["2024-06-01 00:00:00,230,nan", "2024-06-01 00:01:00,230,inf", "2024-06-01 00:02:00,230,Infinity",
            "2024-06-01 00:03:00,230,1e309", "2024-06-01 00:04:00,230,1e308", "2024-06-01 00:05:00,230,-inf",
            "2024-06-01 00:06:00,230,0.1"]
    path = _csv(tmp_path, "time,V,P\n" + "\n".join(rows) + "\n")
    s = ingest_file(path, mapping, store=store)
    assert (s.accepted, s.rejected_by_rule) == (2, {"hard.value_finite": 5})  # 1e308 kW overflows to inf W
    assert s.missing_values == {"power": 1}  # the NaN, stored as null
    stored = store.scan("meter").collect().sort("ts")
    assert stored["power"].to_list() == [None, pytest.approx(100.0)]
    detail = store.scan_rejects().collect().filter(pl.col("raw").str.ends_with("1e308"))["detail"][0]
    assert "power=inf" in detail and "not finite" in detail


# --------------------------------------------------------------------------- item 5: physics


def _power_file(tmp_path, watts: list[float]):
    rows = [f"2024-06-01 00:{k:02d}:00,230,5,{w}" for k, w in enumerate(watts)]
    return _csv(tmp_path, "time,V,I,P\n" + "\n".join(rows) + "\n")


def test_a_kw_column_mapped_as_w_fails_with_one_line_naming_the_unit(tmp_path, store, stored_files):
    path = _power_file(tmp_path, [1.15, 1.02, 0.98, 1.1])  # kW values: 1,150 W at 230 V x 5 A
    mapping = _meter(voltage=Column("V", "V"), current=Column("I", "A"), power=Column("P", "W"))
    with pytest.raises(IngestError) as err:
        ingest_file(path, mapping, store=store)
    assert "\n" not in str(err.value) and "is it in kW? set its unit to kW" in str(err.value)
    assert stored_files(store) == []
    ok = ingest_file(path, _meter(voltage=Column("V", "V"), current=Column("I", "A"), power=Column("P", "kW")), store=store)
    assert ok.accepted == 4


def test_a_w_column_mapped_as_mw_fails_naming_w(tmp_path, store):
    path = _power_file(tmp_path, [1150, 1020, 980, 1100])
    with pytest.raises(IngestError, match="is it in W\\? set its unit to W"):
        ingest_file(path, _meter(voltage=Column("V", "V"), current=Column("I", "A"), power=Column("P", "MW")), store=store)


def test_single_impossible_readings_are_rejected_with_the_values_and_limit(tmp_path, store):
    path = _power_file(tmp_path, [1000, 1100, 9000, 1050])  # 9 kW at 230 V x 5 A = 1,150 VA
    mapping = _meter(voltage=Column("V", "V"), current=Column("I", "A"), power=Column("P", "W"))
    s = ingest_file(path, mapping, store=store)
    assert (s.accepted, s.rejected_by_rule) == (3, {"hard.power_within_apparent": 1})
    assert s.hits_by_rule["hard.power_within_apparent"] == 1 and "rows per rule: hard.power_within_apparent 1" in str(s)
    detail = store.scan_rejects().collect()["detail"][0]
    assert detail.startswith("hard.power_within_apparent: power=9000.0 exceeds (1+0.15)*voltage*current+50=")


def test_a_current_of_1e308_a_is_refused(tmp_path, store):
    path = _csv(tmp_path, "time,V,I\n2024-06-01 00:00:00,230,1e308\n2024-06-01 00:01:00,230,5\n")
    s = ingest_file(path, _meter(voltage=Column("V", "V"), current=Column("I", "A")), store=store)
    assert (s.accepted, s.rejected_by_rule) == (1, {"hard.current_range": 1})


def test_negative_power_on_the_consumption_only_uci_meter_is_flagged(tmp_path, store, uci_sample):
    lines = uci_sample.read_text().splitlines()
    fields = lines[1].split(";")
    fields[2] = "-" + fields[2]  # -4,216 W on a household import meter
    lines[1] = ";".join(fields)
    path = _csv(tmp_path, "\n".join(lines) + "\n", "household_power_consumption.txt")
    s = ingest_uci(path, store=store)
    assert s.hits_by_rule.get("soft.negative_consumption") == 1
    row = store.scan("meter").collect().filter(pl.col("power") < 0).row(0, named=True)
    assert "soft.negative_consumption" in decode_flags(row["quality_flags"])


# --------------------------------------------------------------------------- item 6: one line, never a traceback


def _parquet(tmp_path, frame: pl.DataFrame):
    path = tmp_path / "in.parquet"
    frame.write_parquet(path)
    return path


def test_epoch_seconds_holding_nan_or_1e20_are_unparseable_rows_not_a_traceback(tmp_path, store):
    path = _parquet(tmp_path, pl.DataFrame({"time": [1.7e9, float("nan"), 1e20, 1.7e9 + 60], "V": [230.0] * 4}))
    s = ingest_file(path, _meter(), store=store)
    assert (s.accepted, s.rejected_by_rule) == (2, {"hard.timestamp_parseable": 2})


def test_a_list_typed_column_is_one_line_and_writes_nothing(tmp_path, store, stored_files):
    path = _parquet(tmp_path, pl.DataFrame({"time": ["2024-06-01T00:00:00Z"], "V": [[230.0, 231.0]]}))
    with pytest.raises(IngestError) as err:
        ingest_file(path, _meter(), store=store)
    assert "\n" not in str(err.value) and "'V' holds List(Float64) values" in str(err.value)
    assert stored_files(store) == []


def test_a_latin1_csv_is_told_so_not_to_check_the_separator(tmp_path, store):
    path = tmp_path / "latin1.csv"
    path.write_bytes("time,V,Ort\n2024-06-01 00:00:00,230,Zürich\n".encode("latin-1"))
    with pytest.raises(IngestError, match="not UTF-8 text") as err:
        ingest_file(path, _meter(), store=store)
    assert "separator" not in str(err.value)


# --------------------------------------------------------------------------- item 7: rejects as a record


def test_reingesting_a_file_adds_no_rejects(store, three_phase_sample, three_phase_mapping):
    for _ in range(3):
        s = ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store)
        assert s.rejected == 5
    assert store.scan_rejects().collect().height == 5
    assert s.rejects_already_stored == 5


def test_raw_is_the_original_line_not_a_padded_one(tmp_path, store):
    path = _csv(tmp_path, "time;V;I\n2024-06-01 00:00:00;230;5\ngarbage\n2024-06-01 00:02:00;230;5\n")
    ingest_file(path, _meter(voltage=Column("V", "V"), current=Column("I", "A")), store=store, separator=";")
    assert store.scan_rejects().collect()["raw"].to_list() == ["garbage"]


def test_conflicting_readings_at_one_timestamp_go_to_rejects_with_their_own_rule(tmp_path, store):
    path = _csv(tmp_path, "time,V\n2024-06-01 00:00:00,230\n2024-06-01 00:00:00,231\n"
                          "2024-06-01 00:01:00,232\n2024-06-01 00:01:00,232\n")
    s = ingest_file(path, _meter(), store=store)
    assert (s.accepted, s.written, s.duplicates, s.rejected_by_rule) == (3, 2, 1, {"hard.timestamp_conflict": 1})
    rej = store.scan_rejects().collect().row(0, named=True)
    assert (rej["raw"], rej["location"].rsplit(":", 1)[1]) == ("2024-06-01 00:00:00,231", "3")
    assert "voltage=231.0 vs 230.0" in rej["detail"]


# --------------------------------------------------------------------------- item 8: the smaller ones


def test_dry_run_counts_the_duplicates_a_real_run_would_find(store, three_phase_sample, three_phase_mapping):
    first = ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store, dry_run=True)
    assert (first.written, first.duplicates) == (35, 1)  # line 33 repeats line 32
    ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store)
    again = ingest_file(three_phase_sample, three_phase_mapping, source="csv", store=store, dry_run=True)
    assert (again.written, again.duplicates) == (0, 36)


def test_the_cli_exits_2_when_every_row_was_rejected(tmp_path):
    from gridtwin_lib.cli import app

    path = _csv(tmp_path, "time,V\n2024-06-01 00:00:00,400\n2024-06-01 00:01:00,500\n")
    result = runner.invoke(app, ["ingest", "file", str(path), "--kind", "meter", "--map", "voltage=V", "--timestamp", "time",
                                 "--store", str(tmp_path / "store")])
    assert result.exit_code == 2
    assert "all 2 rows were rejected (hard.voltage_range 2)" in result.output


def test_a_timestamp_reject_names_the_text_and_what_it_is_not(tmp_path, store):
    """Item 7: ``detail`` says which value broke which rule, also for the timestamp rules
    (it once only repeated the rule name)."""
    path = _csv(tmp_path, "time,V\n2024-10-27 01:00:00,230\nnot-a-date,231\n,232\n2024-03-31 02:30:00,233\n"
                          "2024-10-27 02:30:00,234\n2024-10-27 03:00:00,235\n")
    ingest_file(path, _meter("Europe/Paris"), store=store)
    detail = dict(store.scan_rejects().collect().select(pl.col("location").str.extract(r":(\d+)$"), "detail").iter_rows())
    assert detail["3"] == "hard.timestamp_parseable: time='not-a-date' is not an ISO 8601 time"
    assert detail["4"] == "hard.timestamp_parseable: time is empty"
    assert detail["5"] == "hard.timestamp_nonexistent: time='2024-03-31 02:30:00' is in Europe/Paris's spring-forward gap"
    assert detail["6"] == ("hard.timestamp_ambiguous: time='2024-10-27 02:30:00' is in Europe/Paris's repeated hour "
                           "and the row order cannot tell which pass")


def test_a_timestamp_reject_names_the_format_or_epoch_limit_it_broke(tmp_path, store):
    path = _csv(tmp_path, "day,clock,V\n01/06/2024,00:00:00,230\n2024-06-01,00:01:00,231\n")
    mapping = ColumnMapping("meter", {"voltage": Column("V", "V")}, ["day", "clock"], timestamp_format="%d/%m/%Y %H:%M:%S",
                            device_id="m1")
    ingest_file(path, mapping, store=store)
    assert store.scan_rejects().collect()["detail"].to_list() == [
        "hard.timestamp_parseable: day+clock='2024-06-01 00:01:00' does not match '%d/%m/%Y %H:%M:%S'"]
    epoch = _parquet(tmp_path, pl.DataFrame({"time": [1.7e9, 1e20], "V": [230.0, 231.0]}))
    ingest_file(epoch, _meter(), store=store)
    assert store.scan_rejects().collect().filter(pl.col("location").str.contains("parquet"))["detail"].to_list() == [
        "hard.timestamp_parseable: time=1e+20 is not Unix seconds within +-1e+11 s"]


def test_a_firmware_timestamp_reject_names_the_value(tmp_path, store):
    from gridtwin_lib.ingest.firmware import ingest_ndjson

    lines = ['{"v":1,"device_id":"d1","ts":1732300000,"voltage":230}', '{"v":1,"device_id":"d1","ts":"230","voltage":230}',
             '{"v":1,"device_id":"d1","ts":1e20,"voltage":230}', '{"v":1,"device_id":"d1","ts":"2024-11-22T18:28:10","voltage":230}']
    path = tmp_path / "fw.ndjson"
    path.write_text("\n".join(lines) + "\n")
    ingest_ndjson(path, store=store)
    assert store.scan_rejects().collect().sort("location")["detail"].to_list() == [
        'hard.timestamp_parseable: ts="230" is neither Unix seconds nor ISO 8601 text with a UTC offset',
        "hard.timestamp_parseable: ts=1e+20 is neither Unix seconds nor ISO 8601 text with a UTC offset",
        'hard.timestamp_parseable: ts="2024-11-22T18:28:10" is neither Unix seconds nor ISO 8601 text with a UTC offset',
    ]


def test_a_reactive_power_beyond_the_apparent_power_is_rejected(tmp_path, store):
    path = _csv(tmp_path, "time,V,I,Q\n2024-06-01 00:00:00,230,5,500\n2024-06-01 00:01:00,230,5,5000\n")
    mapping = _meter(voltage=Column("V", "V"), current=Column("I", "A"), reactive_power=Column("Q", "var"))
    s = ingest_file(path, mapping, store=store)
    assert (s.accepted, s.rejected_by_rule) == (1, {"hard.reactive_within_apparent": 1})
    assert store.scan_rejects().collect()["detail"][0].startswith("hard.reactive_within_apparent: reactive_power=5000.0 exceeds")


def test_a_power_factor_that_disagrees_with_p_and_s_is_flagged(tmp_path, store):
    # 230 V x 5 A = 1,150 VA: P 1,035 W is a power factor of 0.9; a reported 0.5 is not it
    rows = ["2024-06-01 00:00:00,230,5,1035,0.9", "2024-06-01 00:01:00,230,5,1035,0.5", "2024-06-01 00:02:00,230,0.1,5,0.2"]
    path = _csv(tmp_path, "time,V,I,P,PF\n" + "\n".join(rows) + "\n")
    mapping = _meter(voltage=Column("V", "V"), current=Column("I", "A"), power=Column("P", "W"),
                     power_factor=Column("PF", "1"))
    s = ingest_file(path, mapping, store=store)
    assert (s.accepted, s.hits_by_rule) == (3, {"soft.power_factor_mismatch": 1})  # 23 VA: too small to judge
    flags = store.scan("meter").collect().sort("ts")["quality_flags"].to_list()
    assert [decode_flags(f) for f in flags] == [[], ["soft.power_factor_mismatch"], []]


def test_a_lone_implausibly_small_power_is_flagged_not_refused(tmp_path, store):
    """One row implying a power factor of 0.001 is kept with a flag; most rows so is a unit mistake (above)."""
    path = _power_file(tmp_path, [1000, 1.15, 1100, 1050])
    s = ingest_file(path, _meter(voltage=Column("V", "V"), current=Column("I", "A"), power=Column("P", "W")), store=store)
    assert (s.accepted, s.hits_by_rule) == (4, {"soft.power_factor_implausible": 1})


def test_a_three_phase_kw_column_mapped_as_mw_fails_naming_kw(store, three_phase_sample, three_phase_mapping, stored_files):
    """Issue 14, item 5: a three-phase P mapped in MW (P >> V*I per phase)."""
    cols = dict(three_phase_mapping.columns)
    cols |= {f"p_{p}": Column(f"P{p}_kW", "MW") for p in "abc"}
    mapping = ColumnMapping("three_phase", cols, three_phase_mapping.timestamp, device_column=three_phase_mapping.device_column)
    with pytest.raises(IngestError) as err:
        ingest_file(three_phase_sample, mapping, store=store)
    assert "\n" not in str(err.value) and "p_a <- Pa_kW (MW)" in str(err.value) and "set its unit to kW" in str(err.value)
    assert stored_files(store) == []


def _bad_inputs(tmp_path) -> dict[str, tuple[list[str], str]]:
    """Issue 14's whole-file inputs: (CLI arguments, what the one line says)."""
    listed = _parquet(tmp_path, pl.DataFrame({"time": ["2024-06-01T00:00:00Z"], "V": [[230.0, 231.0]]}))
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("time,V,Ort\n2024-06-01 00:00:00,230,Zürich\n".encode("latin-1"))
    kw = _power_file(tmp_path, [1.15, 1.02, 0.98, 1.1])
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(listed.read_bytes()[:100])
    empty = _csv(tmp_path, "", "empty.csv")
    meter = ["--kind", "meter", "--timestamp", "time", "--map", "voltage=V"]
    return {
        "list column": ([str(listed), *meter], "holds List(Float64) values"),
        "latin-1": ([str(latin1), *meter], "not UTF-8 text"),
        "kW as W": ([str(kw), *meter, "--map", "current=I", "--map", "power=P:W"], "set its unit to kW"),
        "truncated parquet": ([str(truncated), *meter], "truncated or corrupt"),
        "empty file": ([str(empty), *meter], "empty"),
    }


@pytest.mark.parametrize("case", ["list column", "latin-1", "kW as W", "truncated parquet", "empty file"])
def test_the_cli_answers_each_bad_file_in_one_line_with_status_2_and_writes_nothing(tmp_path, case):
    from gridtwin_lib.cli import app

    args, message = _bad_inputs(tmp_path)[case]
    store = tmp_path / "store"
    result = runner.invoke(app, ["ingest", "file", *args, "--store", str(store)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    written = [p for p in store.rglob("*") if p.is_file() and p.name != ".lock"] if store.exists() else []
    assert written == []


def test_firmware_payloads_are_strict_about_types_and_device_names(tmp_path, store):
    """The NDJSON reader holds the collector's line (issue 14, items 5 and 8): a number sent as
    text is not a number, and a device_id the registry would refuse ("d1\\n") is no device."""
    from gridtwin_lib.ingest.firmware import ingest_ndjson

    lines = ['{"v":1,"device_id":"d1","ts":1732300000,"voltage":230}', '{"v":1,"device_id":"d1","ts":1732300010,"voltage":"230"}',
             '{"v":1,"device_id":"d1\\n","ts":1732300020,"voltage":230}', '{"v":1,"device_id":"d 1","ts":1732300030,"voltage":230}']
    path = tmp_path / "fw.ndjson"
    path.write_text("\n".join(lines) + "\n")
    s = ingest_ndjson(path, store=store)
    assert (s.accepted, s.rejected_by_rule) == (1, {"hard.payload_parseable": 2, "hard.value_parseable": 1})
    assert store.scan("meter").collect()["device_id"].to_list() == ["d1"]
    detail = store.scan_rejects().collect().sort("location")["detail"].to_list()
    assert detail[0] == 'hard.value_parseable: voltage="230"'
    assert detail[1].startswith("device_id 'd1\\n' is not a valid device name")


def test_a_grid_power_of_1e9_w_is_beyond_any_feeder_with_or_without_its_current(tmp_path, store):
    """Issue 14, item 5: grid P = 1e9 W at 230 V / 5 A; a file without the current still hits the magnitude rule."""
    path = _csv(tmp_path, "timestamp,Ua,Ia,Pa\n2024-06-01T00:00:00Z,230,5,1e9\n2024-06-01T00:01:00Z,230,5,1000\n")
    with_current = ColumnMapping("three_phase", {"v_a": Column("Ua", "V"), "i_a": Column("Ia", "A"), "p_a": Column("Pa", "W")},
                                 device_id="g1")
    s = ingest_file(path, with_current, store=store)
    assert (s.accepted, s.rejected, s.hits_by_rule) == (1, 1, {"hard.power_range": 1, "hard.power_within_apparent": 1})
    no_current = ColumnMapping("three_phase", {"v_a": Column("Ua", "V"), "p_a": Column("Pa", "W")}, device_id="g2")
    s = ingest_file(_csv(tmp_path, "timestamp,Ua,Pa\n2024-06-01T00:00:00Z,230,1e9\n2024-06-01T00:01:00Z,230,1000\n", "p.csv"),
                    no_current, store=store)
    assert (s.accepted, s.rejected_by_rule) == (1, {"hard.power_range": 1})
    detail = store.scan_rejects().collect().filter(pl.col("device_id") == "g2")["detail"].to_list()
    assert detail == ["hard.power_range: p_a=1000000000.0 outside [-3e+06, 3e+06]"]


def test_firmware_payloads_hold_the_finite_number_rule(tmp_path, store):
    """Issue 14, item 3 on the NDJSON path: NaN is missing, Infinity and 1e309 are refused."""
    from gridtwin_lib.ingest.firmware import ingest_ndjson

    lines = ['{"v":1,"device_id":"d1","ts":1732300000,"voltage":NaN}', '{"v":1,"device_id":"d1","ts":1732300010,"voltage":Infinity}',
             '{"v":1,"device_id":"d1","ts":1732300020,"power":1e309}', '{"v":1,"device_id":"d1","ts":1732300030,"power":-Infinity}']
    path = tmp_path / "fw.ndjson"
    path.write_text("\n".join(lines) + "\n")
    s = ingest_ndjson(path, store=store)
    assert (s.accepted, s.missing_values["voltage"], s.rejected_by_rule) == (1, 1, {"hard.value_finite": 3})
    assert store.scan("meter").collect()["voltage"].to_list() == [None]


def test_the_uci_reader_holds_the_finite_number_rule(tmp_path, store, uci_sample):
    """Issue 14, item 3 on the UCI path: ``nan`` is missing, ``inf`` and ``1e309`` (kW, so inf W) are refused."""
    lines = uci_sample.read_text().splitlines()
    for k, text in ((1, "inf"), (2, "nan"), (3, "1e309")):
        fields = lines[k].split(";")
        fields[2] = text
        lines[k] = ";".join(fields)
    path = _csv(tmp_path, "\n".join(lines[:5]) + "\n", "household_power_consumption.txt")
    s = ingest_uci(path, store=store)
    assert (s.accepted, s.rejected_by_rule, s.missing_values.get("power")) == (2, {"hard.value_finite": 2}, 1)
