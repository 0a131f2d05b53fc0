"""Firmware NDJSON payloads (ESP8266 + PZEM-004T).

firmware_sample.ndjson, 22 lines: 1-3, 5, 12, 13, 14, 17-22 good (3: float ts,
5: ISO ts +10:00, 12: ISO ts Z, 13: 200 V soft flag, 14: null frequency, 17-22 carry
an unknown field); 4 repeats 2; 6 truncated JSON, 7 a JSON array, 8 no ts, 16 v=2
(payload rejects); 9 blank (skipped); 10 pf 1.01, 11 voltage "abc", 15 ISO ts
without offset (validation rejects).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import polars as pl
import pytest

from gridtwin_lib.ingest import IngestError
from gridtwin_lib.ingest.firmware import ingest_ndjson, parse_payload_lines
from gridtwin_lib.schema import decode_flags

REJECTS = {
    6: "hard.payload_parseable", 7: "hard.payload_parseable", 8: "hard.payload_parseable", 16: "hard.payload_parseable",
    10: "hard.power_factor_range", 11: "hard.value_parseable", 15: "hard.timestamp_parseable",
}


def _line(**fields) -> str:
    payload = {"v": 1, "device_id": "esp8266-3c71bf", "seq": 1, "ts": 1732300000, "voltage": 230.0, "current": 0.4,
               "power": 88.0, "energy": 12.0, "frequency": 50.0, "pf": 0.93}
    payload.update(fields)
    return json.dumps(payload)


def test_sample_counts_add_up(store, firmware_sample):
    s = ingest_ndjson(firmware_sample, store=store)
    assert (s.read, s.accepted, s.rejected, s.duplicates, s.written, s.flagged) == (21, 14, 7, 1, 13, 1)
    assert s.read == s.accepted + s.rejected and s.accepted == s.written + s.duplicates
    assert s.missing_values == {"frequency": 1}
    assert s.devices == 2
    assert store.sql("SELECT count(*) FROM meter").item() == 13


def test_rejects_keep_the_verbatim_line_and_its_number(store, firmware_sample):
    ingest_ndjson(firmware_sample, store=store)
    lines = firmware_sample.read_text().splitlines()
    rejects = store.scan_rejects("meter").collect()
    got = {int(loc.rsplit(":", 1)[1]): (rule, raw) for loc, rule, raw in rejects.select("location", "rule", "raw").iter_rows()}
    assert got == {n: (rule, lines[n - 1]) for n, rule in REJECTS.items()}
    details = dict(rejects.select(pl.col("location").str.extract(r":(\d+)$").cast(int), "detail").iter_rows())
    assert details[7] == "not a JSON object but a JSON list"
    assert details[16] == "payload version 2 is not 1"
    assert 'voltage="abc"' in details[11]


def test_timestamps_and_values(store, firmware_sample):
    ingest_ndjson(firmware_sample, store=store)
    df = store.scan("meter", device_id="esp8266-3c71bf").collect()
    ts = [t.isoformat() for t in df["ts"]]
    assert ts[:3] == ["2024-11-22T18:26:40+00:00", "2024-11-22T18:26:50+00:00", "2024-11-22T18:27:00.500000+00:00"]  # 3rd: float
    assert ts[-1] == "2024-11-22T19:27:10+00:00"  # "2024-11-23T05:27:10+10:00"
    first = df.row(0, named=True)
    assert (first["voltage"], first["current"], first["power"], first["energy"], first["frequency"], first["power_factor"]) == (
        229.8, 0.412, 88.1, 12.345, 50.0, 0.93,
    )
    flagged = df.filter(pl.col("quality_flags") > 0)
    assert flagged["voltage"].to_list() == [200.0]
    assert decode_flags(flagged["quality_flags"][0]) == ["soft.voltage_en50160"]
    other = store.scan("meter", device_id="esp8266-a4cf12").collect()
    assert other["ts"][0] == datetime(2024, 11, 22, 18, 26, 40, tzinfo=UTC)  # "...Z"


def test_reingest_adds_nothing(store, firmware_sample):
    ingest_ndjson(firmware_sample, store=store)
    again = ingest_ndjson(firmware_sample, store=store)
    assert (again.written, again.duplicates) == (0, 14)


def test_parse_payload_lines():
    raw, rejects = parse_payload_lines(
        [_line(ts="2024-11-22T18:26:40+00:00"), "", "not json", json.dumps({"v": 1, "ts": 1}), _line(voltage=None)],
        where="mem",
    )
    assert raw["line"].to_list() == [1, 5]
    assert raw["voltage"].to_list() == ["230.0", None]
    assert rejects.select("location", "rule", "raw").rows() == [
        ("mem:3", "hard.payload_parseable", "not json"),
        ("mem:4", "hard.payload_parseable", '{"v": 1, "ts": 1}'),
    ]


def test_power_factor_boundary(tmp_path, store):
    path = tmp_path / "pf.ndjson"
    path.write_text("\n".join([_line(ts=1732300000, pf=1.0), _line(ts=1732300010, pf=1.01), _line(ts=1732300020, pf=0.0)]) + "\n")
    s = ingest_ndjson(path, store=store)
    assert (s.accepted, s.rejected_by_rule) == (2, {"hard.power_factor_range": 1})


def test_future_timestamp_is_rejected(tmp_path, store):
    path = tmp_path / "future.ndjson"
    now = time.time()
    path.write_text(_line(ts=now + 600) + "\n" + _line(ts=now - 60) + "\n")
    s = ingest_ndjson(path, store=store)
    assert (s.accepted, s.rejected_by_rule) == (1, {"hard.timestamp_not_future": 1})
    assert store.scan_rejects().collect()["location"].to_list() == [f"{path}:1"]


@pytest.mark.parametrize("content", [b"", b"\n\n", None], ids=["empty", "blank lines", "missing"])
def test_bad_files(tmp_path, store, stored_files, content):
    path = tmp_path / "in.ndjson"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(IngestError) as err:
        ingest_ndjson(path, store=store)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert stored_files(store) == []


def test_non_utf8_line_is_a_payload_reject(tmp_path, store):
    path = tmp_path / "bytes.ndjson"
    path.write_bytes(_line().encode() + b"\n" + b'{"v":1,"device_id":"\xff"}\n')
    s = ingest_ndjson(path, store=store)
    assert (s.written, s.rejected_by_rule) == (1, {"hard.payload_parseable": 1})
