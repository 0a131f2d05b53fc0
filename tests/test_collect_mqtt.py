"""MQTT ingestion against a real Mosquitto broker: per-device keys, QoS 1 acknowledged only
after the log commit, duplicates by (device, boot, seq), rejects kept as over HTTP.

The broker is the one at 127.0.0.1:1883 when it answers; otherwise ``mosquitto`` is started
on a free loopback port if installed; otherwise the tests skip (and fail under CI=true).
The collector runs in process (its lifespan with the MQTT bridge), each test with its own
log, device names and MQTT client ids, so tests sharing a broker do not see each other's data.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridtwin_lib.collect.app import create_app
from gridtwin_lib.collect.devices import DeviceRegistry
from gridtwin_lib.collect.mqtt import BrokerUrl, topic_for, with_mqtt

_T0 = 1_763_000_000.0
WAIT_S = 30  # upper bound for a broker round trip; never reached when things work


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1.0).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> str:
    if _reachable("127.0.0.1", 1883):
        yield "mqtt://127.0.0.1:1883"
        return
    binary = shutil.which("mosquitto") or (os.path.exists("/usr/sbin/mosquitto") and "/usr/sbin/mosquitto")
    if not binary:
        reason = "no MQTT broker at 127.0.0.1:1883 and no mosquitto binary (apt-get install mosquitto)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if _reachable("127.0.0.1", port):
                break
            if proc.poll() is not None:
                pytest.fail(f"mosquitto exited with {proc.returncode} on port {port}")
            threading.Event().wait(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Device:
    """A publishing device: MQTT 5 client with its key as user property, results on a response topic."""

    def __init__(self, url: str, name: str, key: str):
        b = BrokerUrl.parse(url)
        self.name, self.key = name, key
        self.results: list[dict] = []
        self._got = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:10]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.response_topic = f"test/{uuid.uuid4().hex}/result"
        self.client.connect(b.host, b.port)
        self.client.loop_start()
        sub = threading.Event()
        self.client.on_subscribe = lambda *a: sub.set()
        self.client.subscribe(self.response_topic, qos=1)
        assert sub.wait(WAIT_S)

    def _on_message(self, client, userdata, message):
        with self._got:
            self.results.append(json.loads(message.payload))
            self._got.notify_all()

    def publish(self, payload, key: str | None = "own", suffix: str = "readings", topic_device: str | None = None):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.response_topic
        key = self.key if key == "own" else key
        if key is not None:
            props.UserProperty = ("api-key", key)
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.client.publish(topic_for(topic_device or self.name, suffix), body, qos=1, properties=props)

    def result(self, n: int) -> dict:
        """The n-th result (1-based) the collector published back."""
        with self._got:
            assert self._got.wait_for(lambda: len(self.results) >= n, WAIT_S), "no result from the collector"
            return self.results[n - 1]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def reading(seq: int, ts: float, **values) -> dict:
    payload = {"v": 1, "seq": seq, "boot": 1, "voltage": 230.0, "current": 0.5, "power": 100.0, "energy": 12.5,
               "frequency": 50.0, "pf": 0.9, "ts": ts}
    payload.update(values)
    return payload


def logged(collector_dir: Path, table: str = "readings_meter") -> list[tuple]:
    with sqlite3.connect(collector_dir / "wal.sqlite") as conn:
        return conn.execute(f"SELECT device_id, boot, seq, voltage FROM {table} ORDER BY id").fetchall() \
            if table == "readings_meter" else conn.execute(f"SELECT device_id, boot, seq FROM {table} ORDER BY id").fetchall()


def logged_rejects(collector_dir: Path) -> list[tuple]:
    with sqlite3.connect(collector_dir / "wal.sqlite") as conn:
        return conn.execute("SELECT device_id, rule, location FROM rejects ORDER BY id").fetchall()


def run_collector(tmp_path: Path, broker: str, body, names=("m1",)):
    """Run ``body(app, devices)`` inside a collector with the MQTT bridge; devices by name."""
    collector_dir = tmp_path / "collector"
    registry = DeviceRegistry(collector_dir)
    suffix = uuid.uuid4().hex[:8]
    keys = {n: (f"{n}-{suffix}", registry.add(f"{n}-{suffix}")) for n in names}
    registry.close()
    app = with_mqtt(create_app(tmp_path / "store", collector_dir, compact_interval_s=3600), broker,
                    client_id=f"gridtwin-test-{suffix}", session_expiry_s=60)

    async def main():
        async with app.router.lifespan_context(app):
            devices = {n: Device(broker, full, key) for n, (full, key) in keys.items()}
            try:
                return await body(app, devices)
            finally:
                for d in devices.values():
                    d.close()

    return asyncio.run(main()), collector_dir


def _record_acks(bridge) -> list[list[tuple]]:
    """Wrap the bridge's PUBACK: each ack records what the log file holds at that moment."""
    seen, real_ack = [], bridge.client.ack

    def ack(mid, qos):
        seen.append(logged(bridge.collector.collector_dir))
        return real_ack(mid, qos)

    bridge.client.ack = ack
    return seen


def test_the_collector_acknowledges_a_reading_only_once_it_is_on_disk(tmp_path, broker):
    async def body(app, devices):
        d = devices["m1"]
        acks = _record_acks(app.state.mqtt)
        d.publish(reading(1, _T0))
        assert await asyncio.to_thread(d.result, 1) == {"status": 200, "accepted": 1, "stored": 1, "duplicates": [],
                                                        "rejected": []}
        # read from the file when the PUBACK went out, not from the bridge's memory
        assert acks == [[(d.name, 1, 1, 230.0)]]

    run_collector(tmp_path, broker, body)


def test_a_failed_commit_is_not_acknowledged_and_the_broker_delivers_it_again_after_a_restart(tmp_path, broker):
    """The log fails: no PUBACK, nothing stored; the next collector (same session) gets the
    message again and stores it once, along with what was published while it was away."""
    collector_dir = tmp_path / "collector"
    registry = DeviceRegistry(collector_dir)
    name = f"m-{uuid.uuid4().hex[:8]}"
    key = registry.add(name)
    registry.close()
    client_id = f"gridtwin-test-{uuid.uuid4().hex[:8]}"

    def app():
        return with_mqtt(create_app(tmp_path / "store", collector_dir, compact_interval_s=3600), broker,
                         client_id=client_id, session_expiry_s=60)

    async def run():
        d = Device(broker, name, key)
        try:
            first = app()
            async with first.router.lifespan_context(first):
                acks = _record_acks(first.state.mqtt)

                async def broken(*_args, **_kw):
                    raise OSError(28, "No space left on device")

                first.state.collector.wal.append = broken
                d.publish(reading(1, _T0 + 10))
                failed = await asyncio.to_thread(d.result, 1)
                assert failed["status"] == 503 and failed["rejected"][0]["rule"] == "wal.commit"
                assert acks == [] and logged(collector_dir) == []
            for k in (2, 3):  # published while no collector runs: the broker keeps them in the session
                await asyncio.to_thread(d.publish(reading(k, _T0 + 10 + k)).wait_for_publish, WAIT_S)
            second = app()
            async with second.router.lifespan_context(second):
                results = [await asyncio.to_thread(d.result, k) for k in (2, 3, 4)]
            assert all(r["status"] == 200 and r["stored"] == 1 for r in results)
            assert sorted(seq for _, _, seq, _ in logged(collector_dir)) == [1, 2, 3]
        finally:
            d.close()

    asyncio.run(run())


def test_duplicates_by_device_boot_and_seq_are_acknowledged_and_logged_once(tmp_path, broker):
    async def body(app, devices):
        d = devices["m1"]
        for k in range(1, 4):
            d.publish(reading(7, _T0 + 20))
            await asyncio.to_thread(d.result, k)  # one at a time: the first is the one stored
        d.publish([reading(7, _T0 + 20), reading(8, _T0 + 21)])
        await asyncio.to_thread(d.result, 4)
        assert logged(app.state.collector.collector_dir) == [(d.name, 1, 7, 230.0), (d.name, 1, 8, 230.0)]
        assert [d.result(k)["stored"] for k in range(1, 5)] == [1, 0, 0, 1]
        assert d.result(4)["duplicates"] == [0]

    run_collector(tmp_path, broker, body)


def test_keys_are_checked_per_device_and_topic(tmp_path, broker):
    """No key, a wrong key, and another device's topic: acknowledged, refused, nothing stored."""

    async def body(app, devices):
        a, b = devices["m1"], devices["m2"]
        a.publish(reading(1, _T0 + 30), key=None)
        a.publish(reading(2, _T0 + 31), key="abc.def")
        a.publish(reading(3, _T0 + 32), topic_device=b.name)
        rules = [(await asyncio.to_thread(a.result, k))["rejected"][0]["rule"] for k in (1, 2, 3)]
        assert sorted(rules) == ["auth.key", "auth.key", "auth.topic"]
        assert logged(app.state.collector.collector_dir) == []
        b.publish(reading(4, _T0 + 33))
        assert (await asyncio.to_thread(b.result, 1))["stored"] == 1
        assert logged(app.state.collector.collector_dir) == [(b.name, 1, 4, 230.0)]

    run_collector(tmp_path, broker, body, names=("m1", "m2"))


def test_bad_items_are_rejected_by_rule_and_kept_good_ones_stored(tmp_path, broker):
    async def body(app, devices):
        d = devices["m1"]
        d.publish([reading(1, _T0 + 40), reading(2, _T0 + 41, voltage=999.0), reading(3, _T0 + 42)])
        result = await asyncio.to_thread(d.result, 1)
        assert result["status"] == 207 and result["stored"] == 2
        assert [(r["index"], r["field"]) for r in result["rejected"]] == [(1, "voltage")]
        d.publish(b"not json")
        assert (await asyncio.to_thread(d.result, 2))["status"] == 422
        coll = app.state.collector.collector_dir
        assert [seq for _, _, seq, _ in logged(coll)] == [1, 3]
        rejects = logged_rejects(coll)
        assert len(rejects) == 2 and all(dev == d.name and loc.startswith(f"mqtt:{topic_for(d.name)}") for dev, _, loc in rejects)

    run_collector(tmp_path, broker, body)


def test_issue_14_bounds_hold_over_mqtt_too(tmp_path, broker):
    """The item cap (413 before any parse), one reject row per rule for a junk batch, and a new
    seq at a used ts refused (hard.timestamp_conflict), not acknowledged and then dropped."""
    from gridtwin_lib.collect.app import MAX_ITEMS

    async def body(app, devices):
        d = devices["m1"]
        coll = app.state.collector.collector_dir
        d.publish(b"[" + b",".join([b"{}"] * (MAX_ITEMS + 1)) + b"]")
        capped = await asyncio.to_thread(d.result, 1)
        assert (capped["status"], capped["rejected"][0]["rule"]) == (413, "size.items")
        assert logged_rejects(coll) == []
        d.publish([{}] * (MAX_ITEMS - 1) + [reading(1, _T0 + 60, voltage=999.0)])
        junk = await asyncio.to_thread(d.result, 2)
        assert junk["status"] == 422 and len(junk["rejected"]) == MAX_ITEMS
        assert sorted(rule for _, rule, _ in logged_rejects(coll)) == ["hard.payload_parseable", "hard.voltage_range"]
        d.publish(reading(2, _T0 + 61))
        assert (await asyncio.to_thread(d.result, 3))["stored"] == 1
        d.publish(reading(3, _T0 + 61, voltage=231.0))
        clash = await asyncio.to_thread(d.result, 4)
        assert (clash["status"], clash["stored"], clash["rejected"][0]["rule"]) == (422, 0, "hard.timestamp_conflict")
        assert logged(coll) == [(d.name, 1, 2, 230.0)]
        assert [rule for _, rule, _ in logged_rejects(coll)][-1] == "hard.timestamp_conflict"

    run_collector(tmp_path, broker, body)


def test_grid_topic_takes_three_phase_readings(tmp_path, broker):
    from gridtwin_lib.collect.payloads import GRID_PAYLOAD_NAMES

    async def body(app, devices):
        d = devices["g1"]
        payload = {name: 1.0 for name in GRID_PAYLOAD_NAMES.values()}
        payload.update({f"voltage_{p}": 230.0 for p in "abc"}, frequency=50.0, timestamp=_T0 + 50, seq=1, boot=2)
        d.publish(payload, suffix="grid")
        assert (await asyncio.to_thread(d.result, 1))["stored"] == 1
        assert logged(app.state.collector.collector_dir, "readings_three_phase") == [(d.name, 2, 1)]

    run_collector(tmp_path, broker, body, names=("g1",))


def test_cli_refuses_a_bad_broker_url_or_an_unreachable_broker_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from gridtwin_lib.cli_collect import collect_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    for url, expected in ((f"mqtt://127.0.0.1:{closed_port}", "cannot reach the MQTT broker"),
                          ("http://example", "is not like mqtt://")):
        r = CliRunner().invoke(collect_app, ["--mqtt", url, "--store", str(tmp_path / "s"),
                                             "--collector-dir", str(tmp_path / "c")])
        assert r.exit_code == 2 and expected in r.output


def _firmware_publisher(out: Path) -> Path:
    """The firmware's host program (test_main.cpp's --mqtt-publish) built with g++, no sanitizers."""
    firmware = Path(__file__).resolve().parents[1] / "firmware"
    cxx = shutil.which("g++")
    if cxx is None:
        pytest.skip("g++ not found: the firmware end-to-end test needs a C++17 compiler")
    binary = out / "gridtwin_host_tests"
    sources = sorted(str(p) for p in (firmware / "test" / "host").glob("*.cpp"))
    proc = subprocess.run([cxx, "-std=c++17", "-O0", "-fno-exceptions", "-fno-rtti",
                           f"-I{firmware / 'lib' / 'gridtwin_core' / 'src'}", f"-I{firmware / 'test' / 'host'}",
                           *sources, "-o", str(binary)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return binary


def test_the_firmware_core_publishes_through_the_broker_into_the_collectors_log(tmp_path, broker):
    """The C++ core's MqttUplink (over a POSIX socket instead of WiFiClient) publishes a single
    reading and a backlog batch; the collector logs all of them under the device's name."""
    binary = _firmware_publisher(tmp_path)
    b = BrokerUrl.parse(broker)

    async def body(app, devices):
        d = devices["esp"]
        proc = await asyncio.to_thread(subprocess.run, [str(binary), "--mqtt-publish", b.host, str(b.port), d.name,
                                                         d.key, "6"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.strip() == "delivered 6 pending 0", proc.stdout + proc.stderr
        coll = app.state.collector.collector_dir
        for _ in range(WAIT_S * 20):  # the broker acknowledged the device; the collector commits right after
            if len(logged(coll)) >= 6:
                break
            await asyncio.sleep(0.05)
        rows = logged(coll)
        assert [(dev, boot, seq) for dev, boot, seq, _ in rows] == [(d.name, 77, k) for k in range(6)]
        assert [v for *_, v in rows] == pytest.approx([230.1, 230.2, 230.3, 230.4, 230.5, 230.6])

    run_collector(tmp_path, broker, body, names=("esp",))


def test_gridtwin_collect_with_mqtt_serves_both_paths_and_counts_them_in_metrics(tmp_path, broker):
    """The CLI as a user runs it: `gridtwin collect --mqtt URL`, one reading over each path."""
    import sys

    import httpx

    collector_dir = tmp_path / "collector"
    registry = DeviceRegistry(collector_dir)
    name = f"cli-{uuid.uuid4().hex[:8]}"
    key = registry.add(name)
    registry.close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "gridtwin_lib.cli_collect", "collect", "--port", str(port),
                             "--store", str(tmp_path / "store"), "--collector-dir", str(collector_dir), "--mqtt", broker],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    device = None
    try:
        for _ in range(WAIT_S * 20):  # until the server (and so its MQTT subscription) is up
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                threading.Event().wait(0.05)
        r = httpx.post(url + "/api/energy-data/", json=reading(1, _T0 + 70), headers={"X-API-Key": key}, timeout=30)
        assert r.status_code == 200
        device = Device(broker, name, key)
        device.publish(reading(2, _T0 + 71))
        assert device.result(1)["stored"] == 1
        text = httpx.get(url + "/metrics", timeout=30).text
        assert 'gridtwin_collector_requests_total{method="POST",path="/api/energy-data/",status="200"} 1.0' in text
        assert 'gridtwin_collector_mqtt_messages_total{stage="committed"} 1.0' in text
        assert [seq for _, _, seq, _ in logged(collector_dir)] == [1, 2]
    finally:
        if device is not None:
            device.close()
        from gridtwin_lib.collect.app import terminate

        terminate(proc, timeout_s=60)
        log.close()
