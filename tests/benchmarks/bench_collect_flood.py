"""Benchmark: a neighbour device's latency while another device floods the collector with junk.

One collector (its own process, loopback, no rate limit so the flood is not simply refused
with 429). A neighbour device posts single readings on a fixed schedule (open loop: latency
from each request's scheduled send time, so a stalled server cannot hide its queue) for
``--seconds``, first alone, then while a flood device posts the worst-case bodies back to back
on ``--flooders`` connections:

* ``items``: an array of ``max_items`` ``{}`` objects (the most per-item work the collector
  accepts: every item validated and refused, answered 422);
* ``bytes``: an array of ``{}`` just under the 4 MiB body limit (1.4 M items: the body that
  took 48 s and 2.5 GB on main at 0a361c2; now refused from its byte count with 413).

Figures: the neighbour's p50/p99 alone and under each flood, their ratio (same run, same
machine), the flood's answer time and how many flood requests were answered. Rounds alternate
between alone and flooded; the median round is printed.

``--src DIR`` runs the server from another source tree (e.g. ``git archive 0a361c2
gridtwin_lib | tar -x -C /tmp/orig``), to measure the code before the fix the same way.

    .venv/bin/python tests/benchmarks/bench_collect_flood.py [--seconds 3] [--rate 20] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import report
from bench_collect import RawClient, Reading, _free_port, _quantile

from gridtwin_lib.collect.app import MAX_BODY_BYTES, MAX_ITEMS, terminate
from gridtwin_lib.collect.devices import DeviceRegistry

ENERGY = "/api/energy-data/"


def _start(base: Path, src: str | None) -> tuple[subprocess.Popen, str, dict[str, str]]:
    store_root, collector_dir = base / "store", base / "collector"
    registry = DeviceRegistry(collector_dir)
    keys = {name: registry.add(name) for name in ("neighbour", "flood")}
    registry.close()
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": src} if src else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridtwin_lib.cli_collect", "collect", "--port", str(port), "--store", str(store_root),
         "--collector-dir", str(collector_dir), "--rate", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=src or None,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(1200):
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return proc, url, keys
        except httpx.TransportError:
            time.sleep(0.05)
    terminate(proc, timeout_s=10)
    raise RuntimeError("collector did not start within 60 s")


async def _neighbour(client: RawClient, gen: Reading, rate: float, seconds: float) -> list[float]:
    n = int(rate * seconds)
    latencies: list[float] = []

    async def one(scheduled: float):
        status, body = await client.post(ENERGY, gen.one())
        if status != 200:
            raise RuntimeError(f"neighbour got {status}: {body[:200]!r}")
        latencies.append(time.perf_counter() - scheduled)

    t0 = time.perf_counter()
    tasks = []
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return latencies


async def _phase(url: str, keys: dict[str, str], gen: Reading, body: bytes | None, args) -> dict:
    neighbour = RawClient(url, keys["neighbour"], 4)
    flooder = RawClient(url, keys["flood"], args.flooders)
    stop = asyncio.Event()
    flood_times: list[float] = []
    statuses: set[int] = set()

    async def flood():
        while not stop.is_set():
            t0 = time.perf_counter()
            status, _ = await flooder.post(ENERGY, body)
            flood_times.append(time.perf_counter() - t0)
            statuses.add(status)

    workers = [asyncio.create_task(flood()) for _ in range(args.flooders)] if body is not None else []
    if workers:
        await asyncio.sleep(0.2)  # the flood is under way before the neighbour starts
    latencies = await _neighbour(neighbour, gen, args.rate, args.seconds)
    stop.set()
    await asyncio.gather(*workers)
    await neighbour.aclose()
    await flooder.aclose()
    out = {"p50_ms": _quantile(latencies, 0.5) * 1e3, "p99_ms": _quantile(latencies, 0.99) * 1e3}
    if body is not None:
        out |= {"flood_answer_ms": statistics.median(flood_times) * 1e3, "flood_requests": len(flood_times),
                "flood_status": sorted(statuses)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="neighbour phase length [s]")
    ap.add_argument("--rate", type=float, default=20.0, help="neighbour requests per second")
    ap.add_argument("--flooders", type=int, default=2, help="concurrent flood connections")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (alone, items flood, bytes flood)")
    ap.add_argument("--src", default=None, help="source tree to run the server from (default: this one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    item_body = b"[" + b",".join([b"{}"] * MAX_ITEMS) + b"]"
    n_bytes = (MAX_BODY_BYTES - 2) // 3
    byte_body = b"[" + b",".join([b"{}"] * n_bytes) + b"]"
    with tempfile.TemporaryDirectory(prefix="gridtwin-flood-") as tmp:
        proc, url, keys = _start(Path(tmp), args.src)
        try:
            gen = Reading()
            rounds: dict[str, list[dict]] = {"alone": [], "items": [], "bytes": []}

            async def run():
                await _phase(url, keys, gen, None, argparse.Namespace(**{**vars(args), "seconds": 0.5}))  # warm-up
                for _ in range(args.repeat):
                    rounds["alone"].append(await _phase(url, keys, gen, None, args))
                    rounds["items"].append(await _phase(url, keys, gen, item_body, args))
                    rounds["bytes"].append(await _phase(url, keys, gen, byte_body, args))

            asyncio.run(run())
        finally:
            terminate(proc, timeout_s=60)

    def med(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in rounds[name]), 2)

    out = {
        "server_src": args.src or "this tree",
        "neighbour_alone_p50_ms": med("alone", "p50_ms"),
        "neighbour_alone_p99_ms": med("alone", "p99_ms"),
    }
    for name, items in (("items", MAX_ITEMS), ("bytes", n_bytes)):
        out |= {
            f"flood_{name}_objects": items,
            f"flood_{name}_status": sorted({s for r in rounds[name] for s in r["flood_status"]}),
            f"flood_{name}_answer_ms": med(name, "flood_answer_ms"),
            f"flood_{name}_requests_per_round": med(name, "flood_requests"),
            f"neighbour_{name}_p50_ms": med(name, "p50_ms"),
            f"neighbour_{name}_p99_ms": med(name, "p99_ms"),
            f"neighbour_{name}_p99_ratio": round(med(name, "p99_ms") / max(out["neighbour_alone_p99_ms"], 1e-9), 1),
        }
    report(out, args.json)


if __name__ == "__main__":
    main()
