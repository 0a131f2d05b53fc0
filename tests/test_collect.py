"""The HTTP collector against a real uvicorn server on a free loopback port.

One server per module (started as ``python -m gridtwin_lib.cli_collect collect``, rate limit
a burst of 100 requests per device refilled at 1/s, so any client outpaces it and no test
but the 429 one reaches it); the kill -9 test starts its own. Stored rows
are checked after an in-process compaction, which is file-locked against the server's own
and idempotent, so the tests never wait for the background task.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gridtwin_lib.cli_collect import collect_app, devices_app
from gridtwin_lib.collect.app import create_app, terminate
from gridtwin_lib.collect.compact import SOURCE, Compactor
from gridtwin_lib.collect.devices import DeviceRegistry
from gridtwin_lib.collect.payloads import GRID_PAYLOAD_NAMES
from gridtwin_lib.collect.wal import TABLES, WriteAheadLog
from gridtwin_lib.schema import flag_mask
from gridtwin_lib.simulate import simulate
from gridtwin_lib.store import Store

ENERGY, GRID = "/api/energy-data/", "/api/grid/data"
FUZZ_DEVICES = 3  # per endpoint, so 150 fuzzed requests stay within each device's burst of 100
DEVICES = ("meter-a", "grid-1", "grid-thd", "gone", "burst", "dup", "meter-000", "meter-001", "junk", "clash", "grid-idle",
           *(f"fuzz-{e}{k}" for e in "eg" for k in range(FUZZ_DEVICES)))
runner = CliRunner()


@dataclass
class Server:
    url: str
    store_root: Path
    collector_dir: Path
    proc: subprocess.Popen
    keys: dict[str, str] = field(default_factory=dict)

    def client(self, device: str | None = None, **kw) -> httpx.Client:
        headers = {"X-API-Key": self.keys[device]} if device else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, **kw)

    def compact(self):
        compactor = Compactor(self.store_root, self.collector_dir)
        try:
            return compactor.run()
        finally:
            compactor.close()

    def stored(self, kind: str, device: str) -> pl.DataFrame:
        self.compact()
        return Store(self.store_root).scan(kind, device_id=device).collect()

    def rejects(self, kind: str, device: str) -> pl.DataFrame:
        self.compact()
        return Store(self.store_root).scan_rejects(kind).filter(pl.col("device_id") == device).collect()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(store_root: Path, collector_dir: Path, *options: str) -> tuple[subprocess.Popen, str]:
    """Start ``gridtwin collect`` on a free loopback port and wait until /health answers."""
    port = _free_port()
    log = open(collector_dir.parent / f"server-{port}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridtwin_lib.cli_collect", "collect", "--host", "127.0.0.1", "--port", str(port),
         "--store", str(store_root), "--collector-dir", str(collector_dir), "--compact-interval", "0.5", *options],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited with {proc.returncode}: {Path(log.name).read_text()[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("collector did not start within 30 s")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM: uvicorn finishes requests, the log is drained and compacted once more (not killed)."""
    assert terminate(proc, timeout_s=60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after shutdown


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("collect")
    store_root, collector_dir = base / "store", base / "collector"
    registry = DeviceRegistry(collector_dir)
    keys = {name: registry.add(name) for name in DEVICES}
    registry.close()
    proc, url = _start(store_root, collector_dir, "--rate", "1", "--burst", "100")
    yield Server(url, store_root, collector_dir, proc, keys)
    _stop(proc)


_T0 = 1_763_000_000.0  # 2025-11-13, Unix seconds: distinct per test through an offset


def reading(seq: int, ts: float | None = None, **values) -> dict:
    payload = {"v": 1, "seq": seq, "boot": 1, "voltage": 230.0, "current": 0.5, "power": 100.0, "energy": 12.5,
               "frequency": 50.0, "pf": 0.9}
    if ts is not None:
        payload["ts"] = ts
    payload.update(values)
    return payload


def grid_reading(ts: float, **values) -> dict:
    payload = {name: 1.0 for name in GRID_PAYLOAD_NAMES.values()}
    payload.update({f"voltage_{p}": 230.0 for p in "abc"}, frequency=50.0, timestamp=ts)
    payload.update(values)
    return payload


# --------------------------------------------------------------------------- status codes


def test_a_good_reading_is_acknowledged_and_stored(server):
    with server.client("meter-a") as c:
        r = c.post(ENERGY, json=reading(1, _T0, device_id="meter-a"))
    assert r.status_code == 200
    assert r.json() == {"accepted": 1, "stored": 1, "duplicates": [], "rejected": []}
    stored = server.stored("meter", "meter-a").filter(pl.col("ts").dt.epoch("s") == int(_T0))
    assert stored.select("source", "voltage", "power_factor", "energy", "quality_flags").row(0) == (SOURCE, 230.0, 0.9, 12.5, 0)


def test_missing_and_wrong_keys_get_401_and_store_nothing(server):
    ts = _T0 + 100
    key = server.keys["meter-a"]
    wrong_secret = key.split(".")[0] + ".not-the-secret"
    for headers in ({}, {"X-API-Key": ""}, {"X-API-Key": "garbage"}, {"X-API-Key": wrong_secret}):
        r = httpx.post(server.url + ENERGY, json=reading(100, ts), headers=headers)
        assert r.status_code == 401, headers
        assert r.json()["rejected"][0]["rule"] == "auth.key"
    assert server.stored("meter", "meter-a").filter(pl.col("ts").dt.epoch("s") == int(ts)).height == 0


def test_a_revoked_device_gets_403_from_its_next_request(server):
    with server.client("gone") as c:
        assert c.post(ENERGY, json=reading(1, _T0 + 200)).status_code == 200  # key now cached by the server
        result = runner.invoke(devices_app, ["revoke", "gone", "--collector-dir", str(server.collector_dir)])
        assert result.exit_code == 0, result.output
        r = c.post(ENERGY, json=reading(2, _T0 + 201))
    assert r.status_code == 403
    assert r.json()["rejected"][0]["rule"] == "auth.revoked"
    assert server.stored("meter", "gone")["ts"].dt.epoch("s").to_list() == [int(_T0 + 200)]


@pytest.mark.parametrize("body, rule, field_name", [
    (reading(300, _T0 + 300, voltage=400.0), "hard.voltage_range", "voltage"),
    (reading(301, _T0 + 301, pf=1.2), "hard.power_factor_range", "pf"),
    (reading(302, _T0 + 302, current=-1), "hard.current_non_negative", "current"),
    (reading(303, _T0 + 303, frequency=80), "hard.frequency_range", "frequency"),
    (reading(304, _T0 + 304, energy="lots"), "hard.value_parseable", "energy"),
    (reading(305, "2025-11-13T10:00:00"), "hard.timestamp_parseable", "ts"),
    (reading(306, time.time() + 3600), "hard.timestamp_not_future", "ts"),
    (reading(307, _T0 + 307, v=2), "hard.payload_parseable", "v"),
    (reading(308, _T0 + 308, device_id="someone-else"), "hard.device_id_matches_key", "device_id"),
    # JSON types are strict: no clock-less 1970, no booleans or text read as numbers (issue 14, item 5)
    (reading(309, 0), "hard.timestamp_plausible", "ts"),
    (reading(310, True), "hard.timestamp_parseable", "ts"),
    (reading(311, "230"), "hard.timestamp_parseable", "ts"),
    (reading(312, _T0 + 312, voltage=True), "hard.value_parseable", "voltage"),
    (reading(313, _T0 + 313, voltage="230"), "hard.value_parseable", "voltage"),
    (reading(314, _T0 + 314, power=1e400), "hard.value_finite", "power"),
    (reading(318, _T0 + 318, voltage=float("nan")), "hard.value_finite", "voltage"),  # a NaN literal: JSON has none
    (reading(True, _T0 + 315), "hard.payload_parseable", "seq"),
    # physically impossible readings (issue 14, item 5): refused at the API, never acknowledged then dropped
    (reading(316, _T0 + 316, current=1e308), "hard.current_range", "current"),
    (reading(317, _T0 + 317, voltage=230.0, current=5.0, power=1e5), "hard.power_within_apparent", "power"),
    ([], "hard.payload_parseable", None),
    ("{not json", "hard.payload_parseable", None),
])
def test_payloads_failing_hard_limits_get_422_with_field_and_rule(server, body, rule, field_name):
    with server.client("meter-a") as c:
        r = c.post(ENERGY, content=body if isinstance(body, str) else json.dumps(body))
    assert r.status_code == 422
    got = r.json()
    assert (got["accepted"], got["stored"]) == (0, 0)
    assert [(x["rule"], x["field"]) for x in got["rejected"]] == [(rule, field_name)]


def test_422_stores_no_measurement_and_keeps_the_reject_with_its_rule(server):
    with server.client("meter-a") as c:
        assert c.post(ENERGY, json=reading(400, _T0 + 400, voltage=999.0)).status_code == 422
    assert server.stored("meter", "meter-a").filter(pl.col("ts").dt.epoch("s") == int(_T0 + 400)).height == 0
    rejects = server.rejects("meter", "meter-a").filter(pl.col("raw").str.contains("999"))
    assert rejects.select("rule", "source").rows() == [("hard.voltage_range", SOURCE)]
    assert rejects["location"][0].startswith("wal:") and "/api/energy-data/[0]" in rejects["location"][0]


def test_a_body_over_the_limit_gets_413(server):
    big = [reading(i, _T0 + 500 + i) for i in range(40_000)]  # ~5 MB > 4 MiB
    with server.client("meter-a") as c:
        r = c.post(ENERGY, content=json.dumps(big))
    assert r.status_code == 413
    assert server.stored("meter", "meter-a").filter(pl.col("ts").dt.epoch("s").is_between(_T0 + 500, _T0 + 40_500)).height == 0


def test_too_many_requests_get_429_with_retry_after_and_are_not_stored(server):
    async def until_limited() -> dict[int, httpx.Response]:
        """Waves of 40 concurrent requests until the bucket (100, refilled at 1/s) is empty."""
        responses: dict[int, httpx.Response] = {}
        async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": server.keys["burst"]}, timeout=30.0,
                                     limits=httpx.Limits(max_connections=40)) as c:
            for wave in range(50):
                seqs = range(wave * 40, wave * 40 + 40)
                got = await asyncio.gather(*[c.post(ENERGY, json=reading(i, _T0 + 10_000 + i)) for i in seqs])
                responses.update(zip(seqs, got))
                if any(r.status_code == 429 for r in got):
                    return responses
        return responses

    responses = asyncio.run(until_limited())
    ok = {i for i, r in responses.items() if r.status_code == 200}
    limited = [r for r in responses.values() if r.status_code == 429]
    assert len(ok) + len(limited) == len(responses)
    assert limited and all(int(r.headers["Retry-After"]) >= 1 for r in limited)
    assert limited[0].json()["rejected"][0]["rule"] == "rate.limit"
    stored = server.stored("meter", "burst")["ts"].dt.epoch("s").to_list()
    assert sorted(stored) == sorted(int(_T0 + 10_000 + i) for i in ok)


def test_a_failed_log_commit_gets_503_and_stores_nothing(tmp_path):
    """In process (a disk error cannot be caused in the server subprocess): the device must retry."""
    key = DeviceRegistry(tmp_path / "c").add("m1")
    app = create_app(tmp_path / "s", tmp_path / "c", compact_interval_s=3600)

    async def post_with_broken_disk():
        async with app.router.lifespan_context(app):
            async def broken(*_args, **_kw):
                raise OSError(28, "No space left on device")

            app.state.collector.wal.append = broken
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://collector") as c:
                return await c.post(ENERGY, json=reading(1, _T0), headers={"X-API-Key": key})

    r = asyncio.run(post_with_broken_disk())
    assert r.status_code == 503 and r.json()["rejected"][0]["rule"] == "wal.commit"
    assert Store(tmp_path / "s").scan("meter").collect().height == 0


# --------------------------------------------------------------------------- batches and duplicates


def test_a_batch_with_bad_rows_stores_the_good_ones_and_reports_the_bad_by_index(server):
    base = _T0 + 2000
    batch = [reading(2000 + i, base + i) for i in range(6)]
    batch[1]["voltage"] = 301.0
    batch[3] = {"v": 1, "seq": 2003, "ts": base + 3, "pf": "n/a"}
    batch[4] = "not an object"
    with server.client("meter-a") as c:
        r = c.post(ENERGY, json=batch)
    assert r.status_code == 207
    got = r.json()
    assert (got["accepted"], got["stored"], got["duplicates"]) == (3, 3, [])
    assert [(x["index"], x["rule"], x["field"]) for x in got["rejected"]] == [
        (1, "hard.voltage_range", "voltage"), (3, "hard.value_parseable", "pf"), (4, "hard.payload_parseable", None)]
    stored = server.stored("meter", "meter-a").filter(pl.col("ts").dt.epoch("s").is_between(base, base + 5))
    assert sorted(stored["ts"].dt.epoch("s").to_list()) == [int(base), int(base + 2), int(base + 5)]


def test_a_duplicate_boot_and_seq_is_acknowledged_and_stored_once(server):
    base = _T0 + 3000
    with server.client("dup") as c:
        first = c.post(ENERGY, json=[reading(1, base), reading(2, base + 10)])
        again = c.post(ENERGY, json=[reading(2, base + 10), reading(3, base + 20), reading(3, base + 20)])
        retried_without_ts = c.post(ENERGY, json=reading(3, age_ms=5000))  # same (boot, seq): a duplicate
        new_boot = c.post(ENERGY, json=reading(1, base + 30, boot=2))  # same seq after a reboot: new
    assert first.json()["stored"] == 2
    assert (again.status_code, again.json()["stored"], again.json()["duplicates"]) == (200, 1, [0, 2])
    assert (retried_without_ts.status_code, retried_without_ts.json()["duplicates"]) == (200, [0])
    assert new_boot.json()["stored"] == 1
    stored = server.stored("meter", "dup")
    assert sorted(stored["ts"].dt.epoch("s").to_list()) == [int(base + k) for k in (0, 10, 20, 30)]


def test_an_impossible_grid_power_is_refused_at_the_api(server):
    with server.client("grid-1") as c:
        r = c.post(GRID, json=grid_reading(_T0 + 4100, active_power_a=1e6, current_a=5.0))  # 1e9 W: hard.power_range
    assert r.status_code == 422
    assert [(x["rule"], x["field"]) for x in r.json()["rejected"]] == [("hard.power_within_apparent", "active_power_a")]
    assert "active_power_a=1e+06 exceeds" in r.json()["rejected"][0]["detail"]


def test_grid_data_stores_three_phase_readings_in_si_units_with_soft_flags(server):
    base = _T0 + 4000
    batch = [grid_reading(base, active_power_a=1500.0, current_a=10.0, reactive_power_b=-200.0, average=1.0),
             grid_reading(base + 1, voltage_b=260.0),
             grid_reading(base + 2, current_c=-0.1)]
    with server.client("grid-1") as c:
        r = c.post(GRID, json=batch)
        single = c.post(GRID, json=grid_reading(base + 3, frequency=70.0))
    assert r.status_code == 207
    assert [(x["index"], x["rule"], x["field"]) for x in r.json()["rejected"]] == [(2, "hard.current_non_negative", "current_c")]
    assert (single.status_code, single.json()["rejected"][0]["rule"]) == (422, "hard.frequency_range")
    stored = server.stored("three_phase", "grid-1").sort("ts")
    assert stored.height == 2
    assert stored.select("p_a", "q_b", "v_b").rows() == [(1500.0, -200.0, 230.0), (1.0, 1.0, 260.0)]
    assert stored["quality_flags"].to_list() == [0, flag_mask("soft.voltage_en50160")]


def test_a_grid_reading_carries_its_voltage_thd_when_the_meter_measures_it(server):
    """``voltage_thd`` [%] is optional: stored as ``thd_v`` (empty when not sent), over 8 % flagged (EN 50160),
    over 100 % refused."""
    base = _T0 + 4200
    without = grid_reading(base + 1)
    del without["voltage_thd"]
    with server.client("grid-thd") as c:
        r = c.post(GRID, json=[grid_reading(base, voltage_thd=3.5), without, grid_reading(base + 2, voltage_thd=9.0)])
        impossible = c.post(GRID, json=grid_reading(base + 3, voltage_thd=150.0))
    assert (r.status_code, r.json()["stored"]) == (200, 3)
    assert impossible.status_code == 422
    assert [(x["rule"], x["field"]) for x in impossible.json()["rejected"]] == [("hard.thd_range", "voltage_thd")]
    stored = server.stored("three_phase", "grid-thd").sort("ts")
    assert stored["thd_v"].to_list() == [3.5, None, 9.0]
    assert stored["quality_flags"].to_list() == [0, 0, flag_mask("soft.thd_en50160")]


def test_a_log_written_before_the_thd_column_gets_it_and_keeps_its_rows(tmp_path):
    """A collector upgraded in place opens its old log: the column is added (empty for the old rows), new rows
    carry THD, and compaction stores both."""
    values = TABLES["three_phase"][1]
    old = [v for v in values if v != "thd_v"]
    physical = {"v": 230.0, "i": 1.0, "f": 50.0, "p": 100.0, "q": 10.0}
    row = [physical[v[0]] for v in old]
    with sqlite3.connect(tmp_path / "wal.sqlite") as conn:
        conn.execute(f"CREATE TABLE readings_three_phase (id INTEGER PRIMARY KEY, device_id TEXT NOT NULL, boot INTEGER NOT NULL,"
                     f" seq INTEGER, ts_us INTEGER NOT NULL, {', '.join(f'{v} REAL' for v in old)}, UNIQUE (device_id, boot, seq))")
        conn.execute(f"INSERT INTO readings_three_phase (device_id, boot, seq, ts_us, {', '.join(old)}) "
                     f"VALUES ('before', 0, 1, {int(_T0 * 1e6)}, {', '.join('?' * len(old))})", row)
    wal = WriteAheadLog(tmp_path)
    new = dict(zip(old, row), thd_v=2.5)
    assert wal.append_sync("three_phase", [("after", 0, 1, int(_T0 * 1e6) + 1_000_000, *(new[v] for v in values))]) == [True]
    wal.close()
    compactor = Compactor(tmp_path / "store", tmp_path)
    compactor.run()
    compactor.close()
    stored = Store(tmp_path / "store").scan("three_phase").collect().sort("ts")
    assert stored.select("device_id", "v_a", "thd_v").rows() == [("before", 230.0, None), ("after", 230.0, 2.5)]


def test_a_grid_reading_without_timestamp_gets_the_receipt_time(server):
    before = time.time()
    payload = grid_reading(0.0)
    del payload["timestamp"]
    with server.client("grid-1") as c:
        assert c.post(GRID, json=payload).status_code == 200
    ts = server.stored("three_phase", "grid-1")["ts"].dt.epoch("us").max() / 1e6
    assert before - 1 <= ts <= time.time() + 1


# --------------------------------------------------------------------------- health, docs, CLI


def test_health_reports_store_queue_and_times(server):
    with server.client("meter-a") as c:
        assert c.post(ENERGY, json=reading(5000, _T0 + 5000)).status_code == 200
    for _ in range(600):  # the compaction child's first run follows its start-up (imports)
        body = httpx.get(server.url + "/health").json()
        if body["last_compaction"] is not None and body["uncompacted"]["meter"] == 0:
            break
        time.sleep(0.05)
    assert body["status"] == "ok" and body["store_writable"] is True and body["compaction_error"] is None
    assert body["queue_depth"] == 0 and body["uncompacted"] == {"meter": 0, "three_phase": 0}
    assert body["last_write"] is not None and body["last_compaction"] >= body["last_write"]


def test_openapi_documents_both_payloads_and_the_key(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {ENERGY, GRID, "/health"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert schemas["EnergyReading"]["properties"]["voltage"]["anyOf"][0]["maximum"] == 300.0
    assert schemas["GridReading"]["properties"]["current_a"]["anyOf"][0]["minimum"] == 0.0
    assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    assert httpx.get(server.url + "/docs").status_code == 200


def test_devices_cli_adds_lists_and_revokes(tmp_path):
    where = ["--collector-dir", str(tmp_path / "c")]
    added = runner.invoke(devices_app, ["add", "esp8266-3c71bf", *where, "--json"])
    assert added.exit_code == 0, added.output
    key = json.loads(added.output)["key"]
    listed = runner.invoke(devices_app, ["list", *where, "--json"])
    assert [d["name"] for d in json.loads(listed.output)] == ["esp8266-3c71bf"]
    assert key not in listed.output and key.split(".")[1] not in (tmp_path / "c" / "devices.sqlite").read_bytes().decode("latin-1")
    again = runner.invoke(devices_app, ["add", "esp8266-3c71bf", *where])
    assert again.exit_code == 2 and "already registered" in again.output
    assert runner.invoke(devices_app, ["add", "bad name!", *where]).exit_code == 2
    assert runner.invoke(devices_app, ["revoke", "nobody", *where]).exit_code == 2
    revoked = runner.invoke(devices_app, ["revoke", "esp8266-3c71bf", *where, "--json"])
    assert json.loads(revoked.output)["revoked"] is True
    registry = DeviceRegistry(tmp_path / "c")
    assert registry.authenticate(key).status == "revoked"
    assert registry.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")).status == "unknown"


def test_compact_cli_is_idempotent(tmp_path):
    wal = WriteAheadLog(tmp_path / "c")
    wal.append_sync("meter", [("m1", 0, 1, int(_T0 * 1e6), 230.0, 1.0, 230.0, 5.0, 50.0, 1.0)])
    wal.close()
    args = ["compact", "--store", str(tmp_path / "s"), "--collector-dir", str(tmp_path / "c"), "--json"]
    first = runner.invoke(collect_app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["written"] == {"meter": 1}
    assert json.loads(runner.invoke(collect_app, args).output)["read"] == {}
    assert Store(tmp_path / "s").scan("meter").collect().height == 1


# --------------------------------------------------------------------------- durability


def test_a_crash_between_store_write_and_watermark_duplicates_nothing(tmp_path, monkeypatch):
    wal = WriteAheadLog(tmp_path / "c")
    rows = [("m1", 0, k, int((_T0 + k) * 1e6), 230.0, 1.0, 230.0, 5.0 + k, 50.0, 1.0) for k in range(50)]
    wal.append_sync("meter", rows, [("meter", "m1", None, "hard.voltage_range", "too high", "test[0]", "{}")])
    wal.close()
    store = Store(tmp_path / "s")

    def crash_before(tables: set[str]):
        """A compactor that dies just before moving the watermark of ``tables``."""
        compactor = Compactor(tmp_path / "s", tmp_path / "c")
        advance = compactor._advance

        def dying(table, last_id):
            if table in tables:
                raise OSError("power cut")
            advance(table, last_id)

        monkeypatch.setattr(compactor, "_advance", dying)
        with pytest.raises(OSError):
            compactor.run()
        compactor.close()

    crash_before({"readings_meter", "rejects"})  # readings stored, nothing marked
    assert store.scan("meter").collect().height == 50
    crash_before({"rejects"})  # readings again (all duplicates), rejects stored, not marked
    assert store.scan_rejects("meter").collect().height == 1
    restarted = Compactor(tmp_path / "s", tmp_path / "c")
    again = restarted.run()
    assert again.read == {} and again.api_rejects == 0  # the reject was already there: skipped
    assert store.scan("meter").collect().height == 50
    assert store.scan_rejects("meter").collect().height == 1
    assert restarted.run().read == {}


def test_kill_9_under_load_loses_no_acknowledged_reading_and_stores_none_twice(tmp_path):
    store_root, collector_dir = tmp_path / "store", tmp_path / "collector"
    registry = DeviceRegistry(collector_dir)
    keys = {f"load-{k}": registry.add(f"load-{k}") for k in range(3)}
    registry.close()
    proc, url = _start(store_root, collector_dir, "--rate", "0")
    acked: set[tuple[str, int]] = set()
    sent: set[tuple[str, int]] = set()
    lock, stop = threading.Lock(), threading.Event()

    def send(device: str, batch_size: int):
        seq = 0
        with httpx.Client(base_url=url, headers={"X-API-Key": keys[device]}, timeout=5.0) as c:
            while not stop.is_set():
                batch = [reading(seq + i, _T0 + seq + i) for i in range(batch_size)]
                with lock:
                    sent.update((device, seq + i) for i in range(batch_size))
                try:
                    r = c.post(ENERGY, json=batch if batch_size > 1 else batch[0])
                except httpx.TransportError:
                    return  # the server is gone: this request was never acknowledged
                if r.status_code == 200:
                    with lock:
                        acked.update((device, seq + i) for i in range(batch_size))
                seq += batch_size

    threads = [threading.Thread(target=send, args=(device, size)) for device, size in zip(keys, (1, 1, 25))]
    try:
        for t in threads:
            t.start()
        time.sleep(2.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 100  # the load really ran

    proc, url = _start(store_root, collector_dir, "--rate", "0")  # recovery compaction at startup
    try:
        with httpx.Client(base_url=url, headers={"X-API-Key": keys["load-0"]}) as c:  # a device re-sends after no ack
            r = c.post(ENERGY, json=[reading(0, _T0), reading(1, _T0 + 1)])
    finally:
        _stop(proc)
    assert r.status_code == 200 and r.json()["duplicates"] == [0, 1]
    stored = Store(store_root).scan("meter").collect()
    got = [(d, int(t) - int(_T0)) for d, t in stored.select("device_id", pl.col("ts").dt.epoch("s")).iter_rows()]
    assert len(got) == len(set(got)), "a reading was stored twice"
    assert acked <= set(got), f"{len(acked - set(got))} acknowledged readings lost"
    assert set(got) <= sent


# --------------------------------------------------------------------------- the meter twin's deliveries


def _twin_payloads() -> tuple[dict[str, list[dict]], set[tuple[str, int]]]:
    """The meter twin's deliveries (outages, retries, out of order) as firmware payloads per device."""
    out = simulate("meter_outages", duration="6h", resolution="10s", seed=11, devices=2,
                   overrides={"outages_per_day": 48.0, "retry_prob": 0.05})
    m = out.measurements["meter"]
    failed = out.truth["meter_state"].filter(pl.col("read_failed")).select("device_id", "ts").with_columns(pl.lit(True).alias("failed"))
    start_us = m["ts"].dt.epoch("us").min()
    m = m.with_row_index("order").join(failed, on=["device_id", "ts"], how="left").sort("order")
    payloads: dict[str, list[dict]] = {}
    for row in m.iter_rows(named=True):
        ts_us = row["ts"].timestamp() * 1e6
        p = {"v": 1, "device_id": row["device_id"], "boot": 7, "seq": int((ts_us - start_us) // 10_000_000), "ts": row["ts"].isoformat()}
        values = {k: row[k] for k in ("voltage", "current", "power", "energy", "frequency")} | {"pf": row["power_factor"]}
        p |= {k: None for k in values} | {"sensor_error": True} if row["failed"] else values
        payloads.setdefault(row["device_id"], []).append(p)
    readings = set(m.select("device_id", pl.col("ts").dt.epoch("us")).iter_rows())
    assert m.height > len(readings)  # the stream does repeat deliveries
    return payloads, readings


def test_the_meter_twins_outage_and_duplicate_stream_is_stored_once_per_reading(server):
    payloads, readings = _twin_payloads()
    duplicates = 0
    for device, items in payloads.items():
        with server.client(device) as c:
            for k in range(0, len(items), 30):  # the firmware's batches of <= 30, in delivery order
                r = c.post(ENERGY, json=items[k:k + 30])
                assert r.status_code == 200, r.text
                duplicates += len(r.json()["duplicates"])
    assert duplicates == sum(map(len, payloads.values())) - len(readings)
    stored = pl.concat([server.stored("meter", device) for device in payloads])
    got = list(stored.select("device_id", pl.col("ts").dt.epoch("us")).iter_rows())
    assert len(got) == len(set(got)) and set(got) == readings
    assert stored["voltage"].null_count() == stored["frequency"].null_count() > 0  # failed reads: nulls, not zeros
    assert stored["voltage"].min() > 0


# --------------------------------------------------------------------------- fuzzing


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
_energy_keys = ["v", "device_id", "seq", "boot", "ts", "timestamp", "age_ms", "sensor_error", "voltage", "current",
                "power", "energy", "frequency", "pf", "power_factor"]
_grid_keys = ["device_id", "seq", "boot", "timestamp", "ts", "age_ms", *GRID_PAYLOAD_NAMES.values()]


def _bodies(keys: list[str]):
    item = st.dictionaries(st.sampled_from(keys) | st.text(max_size=6), _json_values, max_size=len(keys))
    as_json = st.one_of(item, st.lists(item, max_size=5), _json_values).map(lambda v: json.dumps(v).encode())
    return as_json | st.binary(max_size=64)


@pytest.mark.parametrize("path, name, keys", [(ENERGY, "fuzz-e", _energy_keys), (GRID, "fuzz-g", _grid_keys)])
def test_fuzzed_bodies_never_get_a_5xx(server, path, name, keys):
    statuses = []
    clients = [server.client(f"{name}{k}") for k in range(FUZZ_DEVICES)]
    try:

        @settings(max_examples=150, deadline=None, database=None)
        @given(body=_bodies(keys))
        def check(body):
            r = clients[len(statuses) % FUZZ_DEVICES].post(path, content=body)
            statuses.append(r.status_code)
            assert r.status_code < 500, (body, r.text)
            assert set(r.json()) == {"accepted", "stored", "duplicates", "rejected"}

        check()
    finally:
        for c in clients:
            c.close()
    assert 422 in statuses and 429 not in statuses


# --------------------------------------------------------------------------- bounded work per request (issue 14)


def _log_rejects(server: Server, device: str) -> int:
    import sqlite3
    with sqlite3.connect(server.collector_dir / "wal.sqlite") as conn:
        return conn.execute("SELECT count(*) FROM rejects WHERE device_id = ?", (device,)).fetchone()[0]


def test_a_body_with_more_objects_than_the_cap_gets_413_before_any_item_is_parsed(server):
    """1.4 M ``{}`` once took 48 s and 3.5 M reject rows; now the byte count refuses it at once."""
    from gridtwin_lib.collect.app import MAX_ITEMS
    before = _log_rejects(server, "junk")
    with server.client("junk") as c:
        r = c.post(ENERGY, content=b"[" + b",".join([b"{}"] * 200_000) + b"]")
    assert r.status_code == 413
    assert r.json()["rejected"] == [{"index": None, "field": None, "rule": "size.items",
                                     "detail": f"200,000 objects in one body, at most {MAX_ITEMS:,}; send smaller batches"}]
    assert _log_rejects(server, "junk") == before  # nothing parsed, nothing logged


def test_a_batch_of_junk_items_is_answered_per_item_but_logged_as_one_row_per_rule(server):
    from gridtwin_lib.collect.app import MAX_ITEMS
    junk = [{}] * (MAX_ITEMS - 2) + [reading(1, _T0 + 7000, voltage=999.0), reading(2, _T0 + 7001, voltage=999.0)]
    before = _log_rejects(server, "junk")
    with server.client("junk") as c:
        r = c.post(ENERGY, json=junk)
    assert r.status_code == 422
    assert len(r.json()["rejected"]) == MAX_ITEMS  # the device still learns every bad index
    assert _log_rejects(server, "junk") - before == 2  # payload_parseable x 998, voltage_range x 2
    rows = server.rejects("meter", "junk").filter(pl.col("rule") == "hard.voltage_range")
    assert rows.height == 1 and rows["detail"][0].startswith(f"2 items (indices {MAX_ITEMS - 2},{MAX_ITEMS - 1})")
    assert json.loads(rows["raw"][0])["voltage"] == 999.0  # the first such item, verbatim


def test_another_devices_post_is_answered_while_a_junk_batch_is_being_validated(tmp_path, monkeypatch):
    """Fairness by ordering, not by time: the flood's validation is held open until the
    neighbour's answer has arrived; on the event loop (the old code) the neighbour could only
    be answered after the flood, so its answer would come second."""
    from gridtwin_lib.collect import app as app_module

    registry = DeviceRegistry(tmp_path / "c")
    flood_key, neighbour_key = registry.add("flood"), registry.add("neighbour")
    registry.close()
    flood_started, neighbour_answered = threading.Event(), threading.Event()
    real_parse = app_module.parse_body

    def slow_for_the_flood(spec, body, device, received_us):
        if device == "flood":
            flood_started.set()
            neighbour_answered.wait(timeout=10)  # the old code blocks the loop here: the wait runs out
        return real_parse(spec, body, device, received_us)

    monkeypatch.setattr(app_module, "parse_body", slow_for_the_flood)
    app = create_app(tmp_path / "s", tmp_path / "c", compact_interval_s=3600)
    finished: list[str] = []

    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://collector") as c:
                async def post(name, key, body):
                    r = await c.post(ENERGY, content=body, headers={"X-API-Key": key})
                    finished.append(name)
                    if name == "neighbour":
                        neighbour_answered.set()
                    return r

                flood = asyncio.create_task(post("flood", flood_key, b"[" + b",".join([b"{}"] * 1000) + b"]"))
                await asyncio.to_thread(flood_started.wait, 10)
                neighbour = await post("neighbour", neighbour_key, json.dumps(reading(1, _T0)).encode())
                return neighbour, await flood

    neighbour, flood = asyncio.run(run())
    assert (neighbour.status_code, flood.status_code) == (200, 422)
    assert finished == ["neighbour", "flood"]


def test_a_new_seq_at_a_used_ts_is_refused_not_acknowledged_and_dropped(server):
    """The log's key is the store's: 38 acknowledged, 37 stored can no longer happen."""
    base = _T0 + 8000
    with server.client("clash") as c:
        first = c.post(ENERGY, json=[reading(1, base), reading(2, base + 1)])
        clash = c.post(ENERGY, json=[reading(3, base, voltage=231.0), reading(4, base + 2)])
        same_again = c.post(ENERGY, json=reading(5, base + 1))  # new seq, same values: the same reading
    assert first.json()["stored"] == 2
    assert clash.status_code == 207
    body = clash.json()
    assert (body["accepted"], body["stored"]) == (1, 1)
    assert [(x["index"], x["rule"], x["field"]) for x in body["rejected"]] == [(0, "hard.timestamp_conflict", "ts")]
    assert (same_again.status_code, same_again.json()["duplicates"]) == (200, [0])
    stored = server.stored("meter", "clash")
    acknowledged_new = first.json()["stored"] + body["stored"] + same_again.json()["stored"]
    assert stored.height == acknowledged_new == 3
    assert stored.filter(pl.col("ts").dt.epoch("s") == int(base))["voltage"].to_list() == [230.0]
    rejects = server.rejects("meter", "clash")
    assert rejects["rule"].to_list() == ["hard.timestamp_conflict"]
    assert json.loads(rejects["raw"][0])["voltage"] == 231.0


# --------------------------------------------------------------------------- smaller items (issue 14, item 8)


def test_a_device_name_with_a_trailing_newline_is_refused(tmp_path):
    from gridtwin_lib.errors import InputError

    registry = DeviceRegistry(tmp_path / "c")
    try:
        with pytest.raises(InputError, match="not valid"):
            registry.add("meter-1\n")
    finally:
        registry.close()


def test_a_client_disconnecting_mid_body_is_not_an_application_error(tmp_path):
    key = DeviceRegistry(tmp_path / "c").add("m1")
    app = create_app(tmp_path / "s", tmp_path / "c", compact_interval_s=3600)
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": b'[{"v": 1, "seq": 1', "more_body": True}, {"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": ENERGY, "raw_path": ENERGY.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"x-api-key", key.encode()), (b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def run():
        async with app.router.lifespan_context(app):
            await app(scope, receive, send)  # the old code raised ClientDisconnect here (an ASGI traceback)

    asyncio.run(run())
    assert sent[0]["status"] == 400
    assert Store(tmp_path / "s").scan("meter").collect().height == 0


@pytest.mark.parametrize("host, warns", [("127.0.0.1", False), ("::1", False), ("localhost", False),
                                         ("0.0.0.0", True), ("192.168.1.5", True)])
def test_binding_beyond_loopback_says_so(host, warns):
    from gridtwin_lib.collect.server import exposure_warning

    message = exposure_warning(host)
    assert (message is not None) == warns
    if warns:
        assert "\n" not in message and host in message and "TLS" in message


@pytest.mark.parametrize("host, warns", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_serve_prints_the_exposure_warning_before_it_binds(tmp_path, monkeypatch, capsys, host, warns):
    """End to end for item 8: the warning is printed by serve() (uvicorn.run stubbed: nothing binds)."""
    import uvicorn

    from gridtwin_lib.collect.server import serve

    bound: list[str] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: bound.append(kw["host"]))
    serve(host, 0, tmp_path / "s", tmp_path / "c")
    err = capsys.readouterr().err
    assert bound == [host]
    assert (host in err and "TLS" in err) if warns else err == ""


def test_collect_runs_on_the_c_stack_by_default_and_on_the_plain_one_when_asked(tmp_path, monkeypatch):
    """uvloop and httptools are dependencies, so ``auto`` means them; ``--loop asyncio --http h11`` reaches uvicorn
    as given (the benchmark's comparison), and an unknown value is refused before anything starts."""
    import uvicorn
    import uvloop
    from uvicorn.loops.auto import auto_loop_factory
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.append((kw["loop"], kw["http"])))
    where = ["--store", str(tmp_path / "s"), "--collector-dir", str(tmp_path / "c")]
    runner = CliRunner()
    assert runner.invoke(collect_app, where).exit_code == 0
    assert runner.invoke(collect_app, [*where, "--loop", "asyncio", "--http", "h11"]).exit_code == 0
    assert seen == [("auto", "auto"), ("asyncio", "h11")]
    bad = runner.invoke(collect_app, [*where, "--loop", "tokio"])
    assert bad.exit_code == 2 and "tokio" in bad.output and len(seen) == 2
    # what auto resolves to here: the C implementations, installed with GridTwin
    assert AutoHTTPProtocol is HttpToolsProtocol
    loop = auto_loop_factory()()
    assert isinstance(loop, uvloop.Loop)
    loop.close()


def test_compaction_is_not_stopped_by_readings_whose_power_looks_mis_scaled(server):
    """The file ingest's unit check ("is it in kW?") is per mapping; the API's units are fixed, so
    a feeder at near-zero net power (P 1 W at 230 V x 1 A, every row) is stored, not a failed compaction."""
    with server.client("grid-idle") as c:
        r = c.post(GRID, json=[grid_reading(_T0 + 9000 + k) for k in range(5)])
    assert r.status_code == 200
    assert server.stored("three_phase", "grid-idle").height == 5
