"""The live scorer: every three-phase reading the collector acknowledges, scored on arrival and pushed.

The collector acknowledges a reading once it is committed to its write-ahead log
(:mod:`gridtwin_lib.collect.wal`: one SQLite file, append-only, ids increasing), over HTTP and
MQTT alike. :class:`LiveScorer` tails that log's three-phase table by id with its own watermark
(the compactor's is untouched), scores each new batch through the inference :class:`Engine`
(one call per poll for every device in it; per-device history is the engine's, so windows
continue across polls), feeds the scores to the alert rules (one :class:`~gridtwin_lib.alerts.AlertBook`
kept across polls) and returns one message per reading plus one per alert opened, made more
severe or closed. :func:`create_app` serves them over a WebSocket (``/ws/scores``), with
``/health`` and Prometheus ``/metrics``; ``gridtwin live`` runs it.

**Exactly once.** A poll reads the rows after the watermark in id order, scores them once and
moves the watermark past them before the next poll, so within a run every acknowledged
reading is scored and pushed once. The watermark is saved (``live_scorer.json`` beside the
log) after each batch is handed to the subscribers (at the start of the next poll, or at
shutdown); after a crash between the two, a restart pushes that batch again (at least once
across crashes, never skipped). A restart resumes at the
saved watermark and first hands the engine the log's last :data:`~gridtwin_lib.inference.engine.HISTORY`
before it (:meth:`Engine.hold <gridtwin_lib.inference.Engine.hold>`: the log is append-only), so the
devices' windows continue where they were instead of starting empty; alerts open afresh.

**Not here:** readings refused by the collector (they never reach the log) and meter readings
(no per-reading model scores them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from fastapi import WebSocket, WebSocketDisconnect

from ..alerts import AlertBook, RuleSet, load_rules
from ..collect.wal import TABLES
from ..fileio import write_text
from .engine import ALERT_FEATURES, HISTORY

TABLE, VALUES = TABLES["three_phase"]
WATERMARK_FILE = "live_scorer.json"
STARTS = ("saved", "end", "start")  # where a scorer begins: the saved watermark (else the log's end), the end, the start
WS_PATH = "/ws/scores"
#: messages a subscriber may have waiting; a subscriber that falls further behind is disconnected
#: (close code 1013) rather than silently missing messages
SUBSCRIBER_QUEUE = 50_000


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z")
    return v


@dataclass
class Poll:
    """What one poll did: the messages to push and the figures the metrics report."""

    messages: list[dict[str, Any]]
    readings: int = 0
    first_id: int | None = None
    last_id: int | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)  # severity -> alerts opened or raised this poll
    seconds: float = 0.0  # reading the log + scoring + alerts
    newest_ts: datetime | None = None


def check_log(collector_dir: str | Path, start: str = "saved") -> Path:
    """The collector's log in ``collector_dir``; ValueError / FileNotFoundError, in one line, when
    ``start`` is not a known start or there is no log."""
    if start not in STARTS:
        raise ValueError(f"start {start!r}: choose {', '.join(STARTS)}")
    log = Path(collector_dir) / "wal.sqlite"
    if not log.exists():
        raise FileNotFoundError(f"{log}: no collector log here; start `gridtwin collect` first or give its --collector-dir")
    return log


class LiveScorer:
    """Tail the collector's log and score what arrives (see the module docstring).

    Parameters
    ----------
    engine : the inference engine (e.g. ``Engine.from_registry()``); its history is per device.
    collector_dir : the collector's directory (``wal.sqlite`` and the scorer's watermark).
    start : ``"saved"`` (default): after the saved watermark, or at the log's end when none is
        saved; ``"end"``: only readings logged from now on; ``"start"``: the whole log.
    rules : alert rules (default: :func:`gridtwin_lib.alerts.load_rules`).
    batch_rows : rows scored per poll at most (a backlog is worked off in such batches).
    warm : hand the engine the readings logged in the :data:`~gridtwin_lib.inference.engine.HISTORY`
        before the starting point (default), so windows continue across a restart; ``warmed`` says how many.
    """

    def __init__(self, engine, collector_dir: str | Path, *, start: str = "saved", rules: RuleSet | None = None,
                 batch_rows: int = 5_000, warm: bool = True):
        self.log_path = check_log(collector_dir, start)
        self.engine = engine
        self.collector_dir = Path(collector_dir)
        self.watermark_path = self.collector_dir / WATERMARK_FILE
        self.batch_rows = int(batch_rows)
        self.book = AlertBook(rules or load_rules())
        self._conn = sqlite3.connect(self.log_path, check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA query_only=ON")
        saved = self._saved() if start == "saved" else None
        self.last_id = saved if saved is not None else (0 if start == "start" else self.log_end())
        self.scored = 0
        self._alerted: dict[tuple, str] = {}  # open alert key -> severity last pushed
        logged = {row[1] for row in self._conn.execute(f"PRAGMA table_info({TABLE})")}
        self._values = [v for v in VALUES if v in logged]  # a log from before thd_v, its collector not yet restarted
        self._columns = ["id", "device_id", "ts_us", *self._values]
        self._schema = {"id": pl.Int64, "device_id": pl.String, "ts_us": pl.Int64, **{v: pl.Float64 for v in self._values}}
        self.warmed = self._warm() if warm and self.last_id > 0 else 0

    #: rows of the log read at a time when warming up (backwards from the watermark)
    WARM_CHUNK_ROWS = 100_000

    def _warm(self) -> int:
        """Hand the engine the readings logged before the watermark that its windows reach: the log is read
        backwards by id (arrival order) until a whole chunk is older than the newest reading less
        :data:`~gridtwin_lib.inference.engine.HISTORY`."""
        history_us, chunk_rows = HISTORY // timedelta(microseconds=1), self.WARM_CHUNK_ROWS
        parts, cutoff, hi = [], None, self.last_id
        while hi > 0:
            rows = self._conn.execute(f"SELECT {', '.join(self._columns)} FROM {TABLE} WHERE id > ? AND id <= ? ORDER BY id",
                                      (hi - chunk_rows, hi)).fetchall()
            hi -= chunk_rows
            if not rows:
                continue
            part = pl.DataFrame(rows, schema=self._schema, orient="row")
            cutoff = int(part["ts_us"].max()) - history_us if cutoff is None else cutoff
            parts.append(part.filter(pl.col("ts_us") >= cutoff))
            if int(part["ts_us"].max()) < cutoff:
                break
        if not parts:
            return 0
        return self.engine.hold(self._readings(pl.concat(parts[::-1])))

    def _readings(self, log: pl.DataFrame) -> pl.DataFrame:
        """Rows of the log as canonical readings; THD only when some row has it (see :meth:`poll`)."""
        values = [v for v in self._values if v != "thd_v" or log["thd_v"].null_count() < log.height]
        # column by column: a select's plan costs more than a poll's few readings
        return pl.DataFrame([log["ts_us"].cast(pl.Datetime("us", "UTC")).alias("ts"), log["device_id"], *(log[v] for v in values)])

    def close(self) -> None:
        self._conn.close()

    def _saved(self) -> int | None:
        if not self.watermark_path.exists():
            return None
        return int(json.loads(self.watermark_path.read_text())["last_id"])

    def log_end(self) -> int:
        """The newest id in the log (0 when empty)."""
        return int(self._conn.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}").fetchone()[0])

    def backlog(self) -> int:
        """Readings logged and not yet scored."""
        return max(0, self.log_end() - self.last_id)

    def save(self) -> None:
        """Persist the watermark (after the poll's messages are handed to the subscribers)."""
        write_text(self.watermark_path, json.dumps({"last_id": self.last_id}) + "\n", fsync=False)

    # ------------------------------------------------------------------ one poll
    def poll(self, save_first: bool = False) -> Poll:
        """Score the readings logged after the watermark (at most ``batch_rows``) and move it past them.

        ``save_first``: :meth:`save` the watermark before (the service's loop saves the batch it has just
        handed to the subscribers this way: one call to its worker thread per poll, not two)."""
        if save_first:
            self.save()
        t0 = time.perf_counter()
        rows = self._conn.execute(
            f"SELECT {', '.join(self._columns)} FROM {TABLE} WHERE id > ? ORDER BY id LIMIT ?",
            (self.last_id, self.batch_rows)).fetchall()
        if not rows:
            return Poll([])
        log = pl.DataFrame(rows, schema=self._schema, orient="row")
        # THD only when some reading of the batch has it: a batch without it is scored as readings without THD
        # (the power-quality forecast skips them), not as readings whose THD is unknown
        batch = self.engine.score(self._readings(log), with_features=ALERT_FEATURES)
        scored = batch.frame.with_columns(log["id"].alias("id"))
        messages = self._score_messages(scored, batch.errors, log["id"])
        alert_messages, raised = self._alert_messages(scored)
        messages.extend(alert_messages)
        self.last_id = int(rows[-1][0])
        self.scored += len(rows)
        statuses = dict(scored.group_by("status").len().iter_rows())
        return Poll(messages, len(rows), int(rows[0][0]), self.last_id, statuses, raised,
                    time.perf_counter() - t0, scored["ts"].max())

    def _score_messages(self, scored: pl.DataFrame, errors: pl.DataFrame, ids: pl.Series) -> list[dict]:
        errs: dict[int, list[dict]] = {}
        if errors.height:
            for e in errors.select("row", "code", "model_id", "message").iter_rows(named=True):
                errs.setdefault(e["row"], []).append({k: e[k] for k in ("code", "model_id", "message")})
        out = []
        score_cols = [c for c in scored.columns if c not in ("row", "id", "ts", "device_id", "status")]
        for r in scored.iter_rows(named=True):
            out.append({"type": "score", "id": r["id"], "device_id": r["device_id"], "ts": _json_value(r["ts"]),
                        "status": r["status"], "scores": {c: _json_value(r[c]) for c in score_cols},
                        "errors": errs.get(r["row"], [])})
        return out

    def _alert_messages(self, scored: pl.DataFrame) -> tuple[list[dict], dict[str, int]]:
        """Alerts opened, made more severe or closed by this poll's scores (an open alert that merely
        fires again is not pushed again)."""
        self.book.update(scores=scored)
        out, raised = [], {}
        for key, row in self.book.pop_closed():  # first: an alert closed and opened again in one poll is both
            self._alerted.pop(key, None)
            out.append({"type": "alert", "event": "closed", **{k: _json_value(v) for k, v in row.items()}})
        for key, row in self.book.open_alerts().items():
            before = self._alerted.get(key)
            if before == row["severity"]:
                continue
            self._alerted[key] = row["severity"]
            out.append({"type": "alert", "event": "opened" if before is None else "raised",
                        **{k: _json_value(v) for k, v in row.items()}})
            raised[row["severity"]] = raised.get(row["severity"], 0) + 1
        return out, raised


# ---------------------------------------------------------------------- the service
class Subscribers:
    """WebSocket subscribers, each with its own bounded queue and optional device filter."""

    def __init__(self, capacity: int = SUBSCRIBER_QUEUE):
        self.capacity = capacity
        self._subs: dict[int, tuple[asyncio.Queue, frozenset[str] | None]] = {}
        self.dropped = 0  # subscribers disconnected for falling behind

    def add(self, devices: Iterable[str] | None) -> tuple[int, asyncio.Queue]:
        q: asyncio.Queue = asyncio.Queue(self.capacity)
        key = id(q)
        self._subs[key] = (q, frozenset(devices) if devices else None)
        return key, q

    def remove(self, key: int) -> None:
        self._subs.pop(key, None)

    def __len__(self) -> int:
        return len(self._subs)

    def publish(self, messages: list[dict]) -> None:
        """Queue ``messages`` for every subscriber (its devices only); a full queue ends that subscriber."""
        if not messages or not self._subs:
            return
        text = [(m.get("device_id"), json.dumps(m, separators=(",", ":"))) for m in messages]
        for key, (q, devices) in list(self._subs.items()):
            try:
                for device, t in text:
                    if devices is None or device in devices:
                        q.put_nowait(t)
            except asyncio.QueueFull:
                self.dropped += 1
                self._subs.pop(key, None)
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)  # tells the socket to close: it fell behind


def create_app(scorer: LiveScorer, poll_s: float = 0.01, serving: list[str] | None = None):
    """The live scorer as an ASGI app: ``WS /ws/scores`` (``?device=`` to filter, repeatable),
    ``GET /health`` and ``GET /metrics``. The poll loop runs from startup to shutdown."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    m_readings = Counter("gridtwin_live_readings_scored", "Readings scored, by status", ["status"], registry=registry)
    m_alerts = Counter("gridtwin_live_alerts", "Alerts opened or made more severe, by severity", ["severity"], registry=registry)
    m_poll = Histogram("gridtwin_live_poll_seconds", "One poll: read the log, score, run the alert rules [s]",
                       buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5), registry=registry)
    m_backlog = Gauge("gridtwin_live_backlog_readings", "Readings in the collector's log not yet scored", registry=registry)
    m_lag = Gauge("gridtwin_live_reading_age_seconds", "Now minus the newest scored reading's timestamp", registry=registry)
    m_subs = Gauge("gridtwin_live_subscribers", "Connected WebSocket subscribers", registry=registry)
    m_dropped = Gauge("gridtwin_live_subscribers_dropped", "Subscribers disconnected for falling behind", registry=registry)
    subscribers = Subscribers()
    state: dict[str, Any] = {"error": None, "newest": None, "unsaved": False}

    async def run() -> None:
        while True:
            try:  # the watermark of the batch handed out last is saved before the next is read
                polled = await asyncio.to_thread(scorer.poll, state["unsaved"])
                state["unsaved"] = False
            except Exception as exc:  # noqa: BLE001 - reported on /health; the loop keeps trying
                state["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                await asyncio.sleep(1.0)
                continue
            state["error"] = None
            if not polled.readings:
                await asyncio.sleep(poll_s)
                continue
            subscribers.publish(polled.messages)
            state["unsaved"] = True
            m_poll.observe(polled.seconds)
            for status, n in polled.statuses.items():
                m_readings.labels(status).inc(n)
            for severity, n in polled.alerts.items():
                m_alerts.labels(severity).inc(n)
            state["newest"] = polled.newest_ts

    @asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if state["unsaved"]:
                scorer.save()
            scorer.close()

    app = FastAPI(title="GridTwin live scorer", description=__doc__.split("\n\n", 1)[1], version="1", lifespan=lifespan)
    app.state.scorer, app.state.subscribers = scorer, subscribers

    @app.websocket(WS_PATH)
    async def scores(ws: WebSocket):
        await ws.accept()
        key, q = subscribers.add(ws.query_params.getlist("device"))

        async def send() -> None:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                while (text := await q.get()) is not None:
                    await ws.send_text(text)
                await ws.close(code=1013, reason="subscriber fell behind; reconnect")

        sender = asyncio.create_task(send())
        try:  # a subscriber that leaves is noticed at once, not at the next message for its devices
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                while not sender.done() and (await ws.receive())["type"] != "websocket.disconnect":
                    pass
        finally:
            sender.cancel()
            subscribers.remove(key)

    @app.get("/health", summary="Watermark, backlog, subscribers, what serves each model")
    async def health() -> JSONResponse:
        backlog = await asyncio.to_thread(scorer.backlog)
        body = {"status": "ok" if state["error"] is None else "degraded", "error": state["error"],
                "last_id": scorer.last_id, "scored": scorer.scored, "backlog": backlog, "subscribers": len(subscribers),
                "newest_scored_ts": _json_value(state["newest"]), "serving": serving or []}
        return JSONResponse(body, status_code=200 if state["error"] is None else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        m_backlog.set(await asyncio.to_thread(scorer.backlog))
        m_subs.set(len(subscribers))
        m_dropped.set(subscribers.dropped)
        if state["newest"] is not None:
            m_lag.set(time.time() - state["newest"].timestamp())
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(scorer: LiveScorer, host: str = "127.0.0.1", port: int = 8090, poll_s: float = 0.01,
          serving: list[str] | None = None, log_level: str = "warning") -> None:
    """Serve until SIGINT/SIGTERM (one uvicorn worker: the engine's history lives in it)."""
    import uvicorn

    uvicorn.run(create_app(scorer, poll_s, serving), host=host, port=port, workers=1, log_level=log_level,
                timeout_graceful_shutdown=5)


__all__ = ["LiveScorer", "check_log", "STARTS", "Poll", "Subscribers", "create_app", "serve", "WS_PATH", "WATERMARK_FILE"]
