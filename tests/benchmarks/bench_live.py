"""Benchmark: the live path end to end, loopback only, bounded in count and time.

N simulated three-phase devices (``--devices``, default 100) send readings at a total
``--rate`` (default 1,000 readings/s) for ``--seconds``: half post single readings over HTTP to
the collector (``POST /api/grid/data``, their own API key), half publish them over MQTT (QoS 1,
the device key as user property, topic ``gridtwin/<device>/grid``, a response topic for the
collector's answer). The collector (its own
process, with ``--mqtt``) acknowledges a reading once it is committed to its write-ahead log; the
live scorer (``gridtwin live``, its own process, the registry's served models) scores it and
pushes it to a WebSocket subscriber in this process.

Measured, all on this process's clock: **reading acknowledged** (HTTP 200 received; over MQTT the
collector's answer received, which it publishes once the reading is in its log: the broker's
PUBACK to a publisher only says that the broker has it) **→ its score pushed** (the subscriber received it), p50 / p99 / max; and every
reading counted through each stage: sent, acknowledged, logged (rows in the log), scored (the
scorer's count), pushed (distinct readings received) and pushed twice (must be 0). The same
readings' scoring time alone is in the scorer's ``/metrics`` (``gridtwin_live_poll_seconds``).

Latency percentiles leave out readings acknowledged in the first ``--warmup`` seconds (first
model calls, empty histories; their p99 is printed apart); every reading is counted.

The served models come from the project's registry (after ``make run``), or ``--home``'s (e.g.
a smoke pipeline's project home with ``--workspace smoke``). The broker is 127.0.0.1:1883 when
one listens there, else a ``mosquitto`` started on a free port.

    .venv/bin/python tests/benchmarks/bench_live.py [--devices 100] [--rate 1000] [--seconds 20] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import report
from bench_collect import RawClient, _cpu_s, _free_port

from gridtwin_lib.collect.app import terminate
from gridtwin_lib.collect.devices import DeviceRegistry

GRID = "/api/grid/data"
MAX_READINGS = 200_000  # hard cap whatever --seconds and --rate say
DRAIN_S = 30.0  # after the load: wait this long at most for the last pushes


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
        return True
    except OSError:
        return False


def _broker(base: Path) -> tuple[str, subprocess.Popen | None]:
    if _reachable(1883):
        return "mqtt://127.0.0.1:1883", None
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        sys.exit("no MQTT broker at 127.0.0.1:1883 and no mosquitto binary (apt-get install mosquitto)")
    port = _free_port()
    conf = base / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if _reachable(port):
            return f"mqtt://127.0.0.1:{port}", proc
        time.sleep(0.05)
    sys.exit("mosquitto did not start")


def _wait_http(url: str, proc: subprocess.Popen, what: str, timeout_s: float = 120.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit(f"{what} did not answer /health within {timeout_s:.0f} s")


def _payload(device: int, k: int, ts: float) -> dict:
    """A plausible three-phase reading: 230 V ± a slow swing, balanced currents, 2-3 % voltage THD."""
    swing = ((k + 7 * device) % 600) / 600.0
    return {"device_id": f"live{device:03d}", "seq": k, "ts": ts,
            **{f"voltage_{p}": 229.0 + 3.0 * swing + 0.2 * j for j, p in enumerate("abc")},
            **{f"current_{p}": 12.0 + swing for p in "abc"}, "frequency": 50.0 + 0.02 * (swing - 0.5),
            **{f"active_power_{p}": 2600.0 + 200 * swing for p in "abc"},
            **{f"reactive_power_{p}": 400.0 for p in "abc"}, "voltage_thd": 2.0 + swing}


class Subscriber:
    """The WebSocket subscriber: arrival time of each reading's score, by (device, ts)."""

    def __init__(self, url: str):
        self.url, self.arrived, self.twice, self.messages = url, {}, 0, 0

    async def run(self, ready: asyncio.Event, stop: asyncio.Event) -> None:
        import websockets

        async with websockets.connect(self.url, max_size=None, ping_interval=None) as ws:
            ready.set()
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                now = time.perf_counter()
                m = json.loads(text)
                if m.get("type") != "score":
                    continue
                self.messages += 1
                key = (m["device_id"], round(_iso_s(m["ts"]) * 1000))
                if key in self.arrived:
                    self.twice += 1
                else:
                    self.arrived[key] = now


def _iso_s(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def _load(args, collector_url: str, broker_url: str, keys: dict[str, str], sub: Subscriber) -> dict:
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from gridtwin_lib.collect.mqtt import BrokerUrl, topic_for

    names = sorted(keys)
    http_devices = names[: len(names) // 2]
    mqtt_devices = names[len(names) // 2:]
    per_device_rate = args.rate / len(names)
    n_each = min(int(args.seconds * per_device_rate), MAX_READINGS // len(names))
    acked: dict[tuple[str, int], float] = {}
    sent = {"http": 0, "mqtt": 0}
    refused: list[str] = []
    loop = asyncio.get_running_loop()

    # MQTT: a reading counts as acknowledged when the collector's answer (published once it is in the log) comes
    # back on the response topic; the broker's PUBACK to the publisher only says the broker has it
    b = BrokerUrl.parse(broker_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-live-{os.getpid()}", protocol=mqtt.MQTTv5)
    response_topic = f"bench/{os.getpid()}/results"
    answered: dict[bytes, int] = {}
    published: dict[bytes, float] = {}  # correlation -> seconds into the load
    subscribed = asyncio.Event()

    def on_message(_c, _u, message):
        now = time.perf_counter()
        corr = message.properties.CorrelationData
        body = json.loads(message.payload)
        answered[corr] = body["status"]
        if corr != b"probe" and body["status"] == 200 and body.get("stored") == 1:
            device, ms = corr.decode().split("|")
            acked[(device, int(ms))] = now
        elif corr != b"probe":
            refused.append(f"mqtt {body['status']} {json.dumps(body)[:120]}")

    client.on_message = on_message
    client.on_subscribe = lambda *a: loop.call_soon_threadsafe(subscribed.set)
    client.connect(b.host, b.port)
    client.loop_start()
    client.subscribe(response_topic, qos=1)
    await asyncio.wait_for(subscribed.wait(), 30)

    def publish(device: str, body: bytes, key: str, corr: bytes):
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("api-key", key)
        props.ResponseTopic = response_topic
        props.CorrelationData = corr
        return client.publish(topic_for(device, "grid"), body, qos=1, properties=props)

    # the collector answers only once it subscribes: probe with a refused key (nothing stored) until it does
    for _ in range(60):
        publish(mqtt_devices[0], b"{}", "probe.invalid", b"probe")
        await asyncio.sleep(0.5)
        if b"probe" in answered:
            break
    else:
        sys.exit("the collector did not answer over MQTT within 30 s")
    clients = {d: RawClient(collector_url, keys[d], 1) for d in http_devices}
    t_start = time.time() - n_each / per_device_rate - 5  # readings stamped in the recent past, never the future
    perf0 = time.perf_counter()

    async def http_device(d: str, offset: float) -> None:
        idx = int(d[4:])
        for k in range(n_each):
            await asyncio.sleep(max(0.0, perf0 + offset + k / per_device_rate - time.perf_counter()))
            ts = round(t_start + k / per_device_rate, 3)
            body = json.dumps(_payload(idx, k, ts)).encode()
            sent["http"] += 1
            status, text = await clients[d].post(GRID, body)
            if status == 200:
                acked[(d, round(ts * 1000))] = time.perf_counter()
            else:
                refused.append(f"{status} {text[:120]!r}")

    async def mqtt_device(d: str, offset: float) -> None:
        idx = int(d[4:])
        for k in range(n_each):
            await asyncio.sleep(max(0.0, perf0 + offset + k / per_device_rate - time.perf_counter()))
            ts = round(t_start + k / per_device_rate, 3)
            corr = f"{d}|{round(ts * 1000)}".encode()
            publish(d, json.dumps(_payload(idx, k, ts)).encode(), keys[d], corr)
            published[corr] = time.perf_counter() - perf0
            sent["mqtt"] += 1

    spread = 1.0 / per_device_rate  # devices' send instants spread over one period
    tasks = [http_device(d, spread * i / len(names)) for i, d in enumerate(http_devices)]
    tasks += [mqtt_device(d, spread * (i + 0.5) / len(names)) for i, d in enumerate(mqtt_devices)]
    await asyncio.gather(*tasks)
    load_s = time.perf_counter() - perf0
    drain_end = time.perf_counter() + DRAIN_S
    while time.perf_counter() < drain_end and (len(sub.arrived) < len(acked) or len(answered) <= sent["mqtt"]):
        await asyncio.sleep(0.1)
    client.loop_stop()
    client.disconnect()
    for c in clients.values():
        await c.aclose()
    return {"acked": acked, "sent": sent, "refused": refused, "load_s": load_s, "n_each": n_each,
            "unanswered_mqtt": sent["mqtt"] + 1 - len(answered), "perf0": perf0,
            "unanswered_at_s": sorted(t for c, t in published.items() if c not in answered)}


def _quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--rate", type=float, default=1000.0, help="readings/s, all devices together")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warmup", type=float, default=5.0,
                    help="readings acknowledged in the first WARMUP s (models' first calls, empty histories) are "
                         "counted through every stage but left out of the latency percentiles")
    ap.add_argument("--home", type=Path, help="project home whose registry serves the models (default: this project)")
    ap.add_argument("--workspace", help="its workspace (e.g. smoke)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.devices < 2:
        sys.exit("--devices must be at least 2 (half over HTTP, half over MQTT)")

    env = dict(os.environ)
    if args.home:
        env["GRIDTWIN_HOME"] = str(args.home.resolve())
        env.pop("MLFLOW_TRACKING_URI", None)
    if args.workspace:
        env["GRIDTWIN_WORKSPACE"] = args.workspace
    base = Path(tempfile.mkdtemp(prefix="bench-live-"))
    procs: list[subprocess.Popen] = []
    try:
        broker_url, broker = _broker(base)
        if broker:
            procs.append(broker)
        collector_dir = base / "collector"
        registry = DeviceRegistry(collector_dir)
        keys = {f"live{k:03d}": registry.add(f"live{k:03d}") for k in range(args.devices)}
        registry.close()
        cport, lport = _free_port(), _free_port()
        collector = subprocess.Popen(
            [sys.executable, "-m", "gridtwin_lib.cli_collect", "collect", "--port", str(cport), "--store", str(base / "store"),
             "--collector-dir", str(collector_dir), "--rate", "1000000", "--burst", "1000000", "--mqtt", broker_url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        procs.append(collector)
        collector_url = f"http://127.0.0.1:{cport}"
        _wait_http(collector_url, collector, "the collector")
        live_log = base / "live.log"
        live = subprocess.Popen(
            [sys.executable, "-m", "gridtwin_lib.cli_collect", "live", "--port", str(lport), "--collector-dir",
             str(collector_dir), "--start", "end", "--json"],
            stdout=live_log.open("w"), stderr=subprocess.STDOUT, env=env)
        procs.append(live)
        live_url = f"http://127.0.0.1:{lport}"
        _wait_http(live_url, live, "the live scorer", timeout_s=300)
        info = json.loads(live_log.read_text().splitlines()[0])
        serving = [line for line in info["serving"] if "nothing serves" not in line]

        sub = Subscriber(f"ws://127.0.0.1:{lport}/ws/scores")

        async def run():
            ready, stop = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(sub.run(ready, stop))
            await asyncio.wait_for(ready.wait(), 30)
            try:
                return await _load(args, collector_url, broker_url, keys, sub)
            finally:
                stop.set()
                await task

        cpu0 = {name: _cpu_s(p.pid) for name, p in (("collector", collector), ("live", live))}
        self0, wall0 = time.process_time(), time.perf_counter()
        out = asyncio.run(run())
        wall = time.perf_counter() - wall0
        cpu = {name: round((_cpu_s(p.pid) - cpu0[name]) / wall, 2) for name, p in (("collector", collector), ("live", live))}
        cpu["this client"] = round((time.process_time() - self0) / wall, 2)
        health = httpx.get(live_url + "/health", timeout=10).json()
        metrics = httpx.get(live_url + "/metrics", timeout=10).text
    finally:
        for p in reversed(procs):
            terminate(p, timeout_s=30)
    with sqlite3.connect(collector_dir / "wal.sqlite") as conn:
        logged = conn.execute("SELECT count(*) FROM readings_three_phase").fetchone()[0]
        rejects = dict(conn.execute("SELECT rule, count(*) FROM rejects GROUP BY rule").fetchall())
        reject_example = conn.execute("SELECT rule, detail, location FROM rejects LIMIT 1").fetchone()
    acked = out["acked"]
    steady = out["perf0"] + args.warmup
    latency = [1000 * (sub.arrived[k] - t) for k, t in acked.items() if k in sub.arrived and t >= steady]
    warm = [1000 * (sub.arrived[k] - t) for k, t in acked.items() if k in sub.arrived and t < steady]
    sent = out["sent"]["http"] + out["sent"]["mqtt"]
    poll = [line for line in metrics.splitlines() if line.startswith("gridtwin_live_poll_seconds_")]
    poll_sum = float(next(line.split()[-1] for line in poll if line.startswith("gridtwin_live_poll_seconds_sum")))
    poll_n = float(next(line.split()[-1] for line in poll if line.startswith("gridtwin_live_poll_seconds_count")))
    result = {
        "devices (HTTP + MQTT)": f"{args.devices // 2} + {args.devices - args.devices // 2}",
        "offered_rate_readings_per_s": args.rate,
        "achieved_rate_readings_per_s": round(sent / out["load_s"], 1),
        "models_served": len(serving),
        "sent": sent,
        "acknowledged": len(acked),
        "logged": logged,
        "refused_by_the_collector": rejects,
        "scored": health["scored"],
        "pushed": len(sub.arrived),
        "pushed_twice": sub.twice,
        "acknowledged_not_pushed": sum(1 for k in acked if k not in sub.arrived),
        "refused_http": len(out["refused"]),
        "mqtt_without_answer": out["unanswered_mqtt"],
        "ack_to_push_p50_ms": round(_quantile(latency, 0.50), 1),
        "ack_to_push_p99_ms": round(_quantile(latency, 0.99), 1),
        "ack_to_push_max_ms": round(max(latency), 1) if latency else None,
        "latency_readings": len(latency),
        "warmup_ack_to_push_p99_ms": round(_quantile(warm, 0.99), 1),
        "scorer_polls": int(poll_n),
        "scorer_mean_poll_ms": round(1000 * poll_sum / poll_n, 1) if poll_n else None,
        "scorer_readings_per_poll": round(health["scored"] / poll_n, 1) if poll_n else None,
        "cpu_s_per_s (2 cores = 2.0)": " · ".join(f"{k} {v}" for k, v in cpu.items()),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if out["unanswered_at_s"]:
        at = out["unanswered_at_s"]
        result["mqtt_without_answer_published_at_s"] = f"{at[0]:.1f}-{at[-1]:.1f} s into the load"
    missing = sorted(k for k in acked if k not in sub.arrived)
    if missing:
        result["first_not_pushed"] = ", ".join(f"{d}@{ms}" for d, ms in missing[:3])
    if reject_example:
        result["first_reject"] = " | ".join(str(x)[:160] for x in reject_example)
    if out["refused"]:
        result["first_refusal"] = out["refused"][0]
    report(result, args.json)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
