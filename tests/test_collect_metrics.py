"""The collector's Prometheus /metrics: requests by route and status, latency, log and compaction lag."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gridtwin_lib.collect import app as app_module
from gridtwin_lib.collect.app import create_app
from gridtwin_lib.collect.compact import Compactor
from gridtwin_lib.collect.devices import DeviceRegistry
from gridtwin_lib.collect.metrics import with_metrics
from gridtwin_lib.store import Store

ENERGY = "/api/energy-data/"
_T0 = 1_763_000_000.0


def _samples(text: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_by_route_and_status_and_report_the_log(tmp_path, monkeypatch):
    # no compaction child: the log lag is then exactly what was posted, until compacted here
    monkeypatch.setattr(app_module, "_start_watcher", lambda *a: subprocess.Popen(["sleep", "600"]))
    key = DeviceRegistry(tmp_path / "c").add("m1")
    app = with_metrics(create_app(tmp_path / "s", tmp_path / "c", compact_interval_s=3600))
    reading = {"v": 1, "seq": 1, "boot": 1, "ts": _T0, "voltage": 230.0, "current": 0.5, "power": 100.0}

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://collector") as c:
                statuses = [
                    (await c.post(ENERGY, json=reading, headers={"X-API-Key": key})).status_code,
                    (await c.post(ENERGY, json=reading, headers={"X-API-Key": "nope.nope"})).status_code,
                    (await c.post(ENERGY, json={**reading, "voltage": 999.0}, headers={"X-API-Key": key})).status_code,
                    (await c.get("/no/such/path/123")).status_code,
                ]
                before = await c.get("/metrics")
                compactor = Compactor(tmp_path / "s", tmp_path / "c")
                try:
                    compactor.run()
                finally:
                    compactor.close()
                after = await c.get("/metrics")
                return statuses, before, after

    statuses, before, after = asyncio.run(scenario())
    assert statuses == [200, 401, 422, 404]
    assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
    m = _samples(before.text)
    def post(status):
        return m[("gridtwin_collector_requests_total", (("method", "POST"), ("path", ENERGY), ("status", status)))]

    assert (post("200"), post("401"), post("422")) == (1, 1, 1)
    assert m[("gridtwin_collector_requests_total", (("method", "GET"), ("path", "other"), ("status", "404")))] == 1
    assert m[("gridtwin_collector_request_seconds_count", (("method", "POST"), ("path", ENERGY)))] == 3
    assert m[("gridtwin_collector_log_commits_total", ())] >= 2  # the reading, then the reject
    assert m[("gridtwin_collector_log_queue_rows", ())] == 0
    assert m[("gridtwin_collector_uncompacted_rows", (("kind", "meter"),))] == 1
    a = _samples(after.text)
    assert a[("gridtwin_collector_uncompacted_rows", (("kind", "meter"),))] == 0
    assert Store(tmp_path / "s").scan("meter").collect().height == 1
    assert a[("gridtwin_collector_compaction_failing", ())] == 0
