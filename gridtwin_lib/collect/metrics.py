"""Prometheus metrics of the collector: ``GET /metrics`` (text exposition format).

Added to an app from :func:`~.app.create_app` by :func:`with_metrics` (``gridtwin collect``
does), without touching its handlers:

``gridtwin_collector_requests_total{method, path, status}``  requests answered; 4xx and 5xx by
    ``status`` (e.g. ``sum(rate(gridtwin_collector_requests_total{status=~"5.."}[5m]))``)
``gridtwin_collector_request_seconds{method, path}``  latency histogram, request received to
    response started (the 2xx of a POST includes the durable log commit)
``gridtwin_collector_log_queue_rows``        rows handed to the log writer, not yet committed
``gridtwin_collector_log_commits_total``     log transactions (one fsync each)
``gridtwin_collector_log_last_commit_age_seconds``  since the last commit
``gridtwin_collector_uncompacted_rows{kind}``  committed to the log, not yet in the store (log lag)
``gridtwin_collector_compaction_age_seconds``  since the last compaction run (compaction lag)
``gridtwin_collector_compaction_failing``    1 while the last compaction failed
``gridtwin_collector_mqtt_messages_total{stage}``  MQTT messages received / committed / acknowledged

``path`` is the route's template (unknown paths are ``other``), so scanners cannot blow up
the label set. Each app has its own registry: several collectors in one process (tests) do
not share counters.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .compact import read_status

METRICS_PATH = "/metrics"
#: request latency buckets [s]: a durable single-reading POST takes ~1-20 ms
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class _StateCollector:
    """Gauges read from the running collector at scrape time (log, compaction, MQTT bridge)."""

    def __init__(self, app):
        self.app = app

    def describe(self):
        return []

    def collect(self):
        collector = getattr(self.app.state, "collector", None)
        if collector is None:  # not started (or stopped): nothing to report
            return
        now = time.time()
        wal = collector.wal
        yield GaugeMetricFamily("gridtwin_collector_log_queue_rows", "Rows handed to the log writer, not yet committed",
                                value=wal.queue_depth)
        yield CounterMetricFamily("gridtwin_collector_log_commits", "Write-ahead log transactions (one fsync each)",
                                  value=wal.commits)
        if wal.last_commit is not None:
            yield GaugeMetricFamily("gridtwin_collector_log_last_commit_age_seconds", "Seconds since the last log commit",
                                    value=now - wal.last_commit)
        uncompacted = GaugeMetricFamily("gridtwin_collector_uncompacted_rows",
                                        "Rows committed to the log and not yet compacted into the store", labels=["kind"])
        for kind, rows in wal.uncompacted().items():
            uncompacted.add_metric([kind], rows)
        yield uncompacted
        status = read_status(Path(collector.collector_dir))
        if status.get("last_run"):
            yield GaugeMetricFamily("gridtwin_collector_compaction_age_seconds", "Seconds since the last compaction run",
                                    value=now - float(status["last_run"]))
        yield GaugeMetricFamily("gridtwin_collector_compaction_failing", "1 while the last compaction run failed",
                                value=1.0 if status.get("error") else 0.0)
        bridge = getattr(self.app.state, "mqtt", None)
        if bridge is not None:
            messages = CounterMetricFamily("gridtwin_collector_mqtt_messages", "MQTT messages by stage", labels=["stage"])
            messages.add_metric(["received"], bridge.received)
            messages.add_metric(["committed"], bridge.committed)
            messages.add_metric(["acknowledged"], bridge.acknowledged)
            yield messages


class _RequestMetrics:
    """Pure ASGI middleware: count and time every HTTP request by route template and status."""

    def __init__(self, app, fastapi_app, requests: Counter, latency: Histogram):
        self.app, self.fastapi_app = app, fastapi_app
        self.requests, self.latency = requests, latency
        self._templates = None

    def _template(self, path: str) -> str:
        if self._templates is None:
            self._templates = {getattr(r, "path", None) for r in self.fastapi_app.routes} - {None}
        return path if path in self._templates else "other"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                path = self._template(scope["path"])
                self.latency.labels(scope["method"], path).observe(time.perf_counter() - start)
                self.requests.labels(scope["method"], path, str(message["status"])).inc()
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except Exception:
            path = self._template(scope["path"])
            self.requests.labels(scope["method"], path, "500").inc()
            raise


def with_metrics(app):
    """``app`` with ``GET /metrics`` and the request middleware; returns it.

    Parameters
    ----------
    app : fastapi.FastAPI
        The collector app from :func:`~.app.create_app` (optionally wrapped by ``with_mqtt``).
    """
    from fastapi.responses import Response

    registry = CollectorRegistry(auto_describe=False)
    requests = Counter("gridtwin_collector_requests", "HTTP requests answered", ["method", "path", "status"],
                       registry=registry)
    latency = Histogram("gridtwin_collector_request_seconds", "HTTP request latency, received to response started [s]",
                        ["method", "path"], buckets=LATENCY_BUCKETS, registry=registry)
    registry.register(_StateCollector(app))
    app.state.metrics_registry = registry

    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(METRICS_PATH, metrics, methods=["GET"], include_in_schema=False)
    app.add_middleware(_RequestMetrics, fastapi_app=app, requests=requests, latency=latency)
    return app
