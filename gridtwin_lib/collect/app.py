"""The collector's HTTP API (FastAPI): devices post readings, the store receives them.

Endpoints (OpenAPI at ``/docs``, ``/openapi.json``):

``POST /api/energy-data/``  firmware payload v1 (kind ``meter``), one object or an array
``POST /api/grid/data``     reference-system three-phase payload (kind ``three_phase``)
``GET  /health``            store writable, queue depth, uncompacted rows, last write and compaction

Each POST needs ``X-API-Key``. Order of checks, each refusal storing nothing:
401 missing or unknown key -> 403 revoked device -> 429 over the device's token bucket
(``Retry-After`` in s) -> 413 body over ``max_body_bytes`` -> 413 more than ``max_items``
objects (counted from the bytes, before anything is parsed) -> validation (of a large body in a
worker thread, so that a large batch never holds up another device's request). Then:

* every item valid: **200** ``{"accepted": n, "stored": k, "duplicates": [indices], "rejected": []}``
  (``duplicates``: items whose (device, boot, seq) was already logged; acknowledged, not
  stored again);
* some items invalid: **207** with the same body, ``rejected`` listing
  ``{"index", "field", "rule", "detail"}`` per bad item; the good items are stored;
* nothing valid (bad JSON, a bad single object, every item bad, empty array): **422** with
  ``rejected``; no measurement is stored.

Refused items (207/422) are kept in the store's rejects dataset, as every ingest path keeps
its rejects: one row per request and rule, whose ``detail`` counts the items and names their
indices (the first few) and whose ``raw`` is the first such item verbatim; so a batch of junk
costs a handful of rows, not one per item. A reading whose ``ts`` that device already used
for a different reading (another ``seq``, other values) is refused with
``hard.timestamp_conflict``: the store keeps one reading per (device, ts), so it is never
acknowledged and then dropped. A 2xx is sent only after the items are committed to the
write-ahead log (:mod:`.wal`); if that commit fails the answer is **503** and the device
must retry. A child process compacts the log into the Parquet store every
``compact_interval_s`` and once more at shutdown (:mod:`.compact`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from pydantic import TypeAdapter
from starlette.requests import ClientDisconnect

from .. import config
from .compact import Compactor, read_status
from .devices import AuthResult, DeviceRegistry, key_digest, verify_secret
from .devices import collector_dir as default_collector_dir
from .payloads import GRID, METER, PayloadSpec, Reject, parse_body
from .wal import CONFLICT_DETAIL as _CONFLICT_DETAIL
from .wal import WriteAheadLog

log = logging.getLogger("gridtwin.collect")

ENERGY_PATH = "/api/energy-data/"
GRID_PATH = "/api/grid/data"
MAX_BODY_BYTES = 4 * 1024 * 1024
#: objects per body at most: the firmware flushes <= 30 per request, a gateway a few hundred
MAX_ITEMS = 1_000
#: bodies of at most this many objects and bytes are validated on the event loop (microseconds each, less
#: than a hop to a thread and back); larger ones in a worker thread, so a large batch never holds up another request
INLINE_PARSE_ITEMS, INLINE_PARSE_BYTES = 8, 4096
_REJECT_INDICES_SHOWN = 20  # item indices named in a summarised reject row's detail
_FAILED_KEYS_MAX = 10_000


@dataclass(frozen=True)
class RateLimit:
    """Per-device token bucket: ``per_second`` requests sustained, ``burst`` at once.

    The firmware posts every 10 s and flushes an outage's buffer in batches of <= 30, so the
    default leaves a wide margin; a reference-system gateway posting each second fits too.
    """

    per_second: float = 10.0
    burst: float = 50.0


class _Buckets:
    def __init__(self, limit: RateLimit):
        self.limit = limit
        self._state: dict[str, tuple[float, float]] = {}  # device -> (tokens, monotonic time)

    def take(self, device: str) -> float:
        """0 when the request may pass, else the seconds until a token is there."""
        now = time.monotonic()
        tokens, then = self._state.get(device, (self.limit.burst, now))
        tokens = min(self.limit.burst, tokens + (now - then) * self.limit.per_second)
        if tokens >= 1.0:
            self._state[device] = (tokens - 1.0, now)
            return 0.0
        self._state[device] = (tokens, now)
        return (1.0 - tokens) / self.limit.per_second


class Collector:
    """What one running collector holds: device registry, write-ahead log, rate limits."""

    def __init__(self, store_root: Path, collector_dir: Path, rate_limit: RateLimit | None, group_commit: bool):
        self.store_root, self.collector_dir = store_root, collector_dir
        self.registry = DeviceRegistry(collector_dir)
        self.wal = WriteAheadLog(collector_dir, group_commit=group_commit)
        self.buckets = _Buckets(rate_limit) if rate_limit else None
        self._verifying: dict[bytes, asyncio.Future] = {}  # key digest -> scrypt in progress
        self._failed: set[bytes] = set()  # key digests that failed scrypt

    async def authenticate(self, key: str | None) -> AuthResult:
        """Check a key; scrypt runs off the event loop, once per key however many requests wait for it.

        Keys that failed are remembered (bounded), so repeating a wrong key costs no scrypt.
        """
        result, pending = self.registry.lookup(key)
        if result is not None:
            return result
        digest = key_digest(key)
        if digest in self._failed:
            return AuthResult("unknown")
        task = self._verifying.get(digest)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(verify_secret, *pending))
            self._verifying[digest] = task
            task.add_done_callback(lambda _: self._verifying.pop(digest, None))
        if await asyncio.shield(task):
            return self.registry.remember(key)
        if len(self._failed) >= _FAILED_KEYS_MAX:
            self._failed.clear()
        self._failed.add(digest)
        return AuthResult("unknown")


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type="application/json", headers=headers)


def refusal_body(rule: str, detail: str) -> dict[str, Any]:
    """The API's answer when a whole body is refused for one reason."""
    return {"accepted": 0, "stored": 0, "duplicates": [], "rejected": [
        {"index": None, "field": None, "rule": rule, "detail": detail}]}


def _refusal(status: int, rule: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, refusal_body(rule, detail), headers)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than ``limit`` bytes (checked while streaming).

    Raises :class:`ClientDisconnect` when the client goes away mid-body.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def count_items(body: bytes) -> int:
    """Upper bound of the objects in a body, from its bytes: every item is one flat JSON object.

    A ``{`` inside a string is counted too, so the bound errs towards refusing; no payload
    field holds one.
    """
    return body.count(b"{")


def summarise_rejects(kind: str, device: str, rejects: list, where: str, suffix: str = "") -> list[tuple]:
    """Log rows for a request's refused items: one per rule, counting the items, the first verbatim.

    Bounded by the number of rules however many items a request holds.
    """
    by_rule: dict[str, list] = {}
    for r in rejects:
        by_rule.setdefault(r.rule, []).append(r)
    rows = []
    for rule, group in by_rule.items():
        first = group[0]
        if len(group) == 1:
            detail, location = first.detail, f"{where}[{first.index}]{suffix}"
        else:
            shown = ",".join(str(r.index) for r in group[:_REJECT_INDICES_SHOWN])
            more = ",..." if len(group) > _REJECT_INDICES_SHOWN else ""
            detail = f"{len(group):,} items (indices {shown}{more}); first: {first.detail}"
            location = f"{where}[{shown}{more}]{suffix}"
        rows.append((kind, device, None, rule, detail, location, first.raw))
    return rows


async def _ingest(request: Request, spec: PayloadSpec, path: str) -> Response:
    collector: Collector = request.app.state.collector
    auth = await collector.authenticate(request.headers.get("x-api-key"))
    if auth.status == "unknown":
        return _refusal(401, "auth.key", "missing or unknown X-API-Key; register the device with `gridtwin devices add NAME`",
                        {"WWW-Authenticate": "ApiKey"})
    device = auth.device
    if auth.status == "revoked":
        return _refusal(403, "auth.revoked", f"device {device!r} is revoked; register it again under a new name")
    if collector.buckets is not None:
        wait_s = collector.buckets.take(device)
        if wait_s:
            return _refusal(429, "rate.limit", f"device {device!r} is over its rate limit; retry after {wait_s:.2f} s",
                            {"Retry-After": str(max(1, math.ceil(wait_s)))})
    try:
        body = await _read_body(request, request.app.state.max_body_bytes)
    except ClientDisconnect:  # nobody to answer; nothing was read, nothing is stored
        log.info("device %r disconnected before its body was complete; nothing stored", device)
        return Response(status_code=400)
    if body is None:
        return _refusal(413, "size.body", f"body over {request.app.state.max_body_bytes:,} bytes; send smaller batches")
    try:
        status, answer = await accept_body(collector, spec, body, device, path, request.app.state.max_items)
    except Exception as exc:  # disk full, I/O error: not stored, the device must retry
        log.exception("write-ahead log commit failed")
        return _refusal(503, "wal.commit", f"not stored ({type(exc).__name__}); retry later")
    return _json(status, answer)


async def accept_body(collector: Collector, spec: PayloadSpec, body: bytes, device: str, where: str,
                      max_items: int = MAX_ITEMS) -> tuple[int, dict[str, Any]]:
    """Validate an authenticated device's body and log it durably: (status, the API's answer).

    The one ingestion step behind every transport (HTTP here, MQTT in :mod:`.mqtt`): the item
    cap from the body's bytes, validation off the event loop, one reject row per rule, and the
    log's verdict per item (new, duplicate, or a conflicting reading at a used instant).

    Parameters
    ----------
    where : str
        Where the body came from (request path or MQTT topic); names reject locations.

    Raises
    ------
    Exception
        Whatever the write-ahead log raises when it cannot commit: nothing was stored.
    """
    n_items = count_items(body)
    if n_items > max_items:
        return 413, refusal_body("size.items", f"{n_items:,} objects in one body, at most {max_items:,}; "
                                  "send smaller batches")
    received_us = time.time_ns() // 1000
    if n_items <= INLINE_PARSE_ITEMS and len(body) <= INLINE_PARSE_BYTES:  # a few readings
        parsed = parse_body(spec, body, device, received_us)
    else:
        parsed = await asyncio.to_thread(parse_body, spec, body, device, received_us)
    received = datetime.fromtimestamp(received_us / 1e6, UTC).isoformat(timespec="milliseconds")
    rejects = summarise_rejects(spec.kind, device, parsed.rejects, where, f"@{received}")
    locations = [f"{where}[{i}]@{received}" for i in parsed.indices]
    outcome = await collector.wal.append(spec.kind, parsed.rows, rejects, locations=locations)
    duplicates = [i for i, new in zip(parsed.indices, outcome) if new is False]
    conflicts = [Reject(i, "hard.timestamp_conflict", "ts", _CONFLICT_DETAIL, "")
                 for i, new in zip(parsed.indices, outcome) if new is None]
    refused = sorted([*parsed.rejects, *conflicts], key=lambda r: r.index)
    accepted = len(parsed.rows) - len(conflicts)
    status = 422 if not accepted else 207 if refused else 200
    return status, {
        "accepted": accepted,
        "stored": accepted - len(duplicates),
        "duplicates": duplicates,
        "rejected": [r.to_dict() for r in refused],
    }


def _store_writable(root: Path) -> bool:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".health-"):
            return True
    except OSError:
        return False


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds") if ts else None


_RESPONSES = {
    200: {"description": "Every item logged durably (new or duplicate)."},
    207: {"description": "Good items logged durably; bad items listed in `rejected` by index."},
    401: {"description": "X-API-Key missing or unknown."},
    403: {"description": "The device is revoked."},
    413: {"description": "Body too large, or more objects than the collector takes in one request."},
    422: {"description": "Nothing valid: `rejected` names field and rule per item."},
    429: {"description": "Over the device's rate limit; see Retry-After [s]."},
    503: {"description": "The write-ahead log could not commit; nothing stored, retry."},
}


def _body_doc(spec: PayloadSpec) -> dict[str, Any]:
    name = spec.item.__name__
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"anyOf": [
        {"$ref": f"#/components/schemas/{name}"},
        {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}, "minItems": 1},
    ]}}}}, "security": [{"ApiKey": []}]}


def create_app(
    store_root: str | os.PathLike | None = None,
    collector_dir: str | os.PathLike | None = None,
    rate_limit: RateLimit | None = RateLimit(),
    compact_interval_s: float = 2.0,
    group_commit: bool = True,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_items: int = MAX_ITEMS,
) -> FastAPI:
    """The collector as an ASGI app; files are opened and the compaction child started at startup.

    ``store_root`` defaults to the project's store, ``collector_dir`` to
    :func:`~gridtwin_lib.collect.devices.collector_dir`; ``rate_limit=None`` disables the
    per-device limit; ``group_commit=False`` commits each request on its own (for comparison);
    ``max_items`` bounds the objects per request (counted before parsing).
    """
    store_path = Path(store_root) if store_root is not None else config.store_dir()
    coll_path = Path(collector_dir) if collector_dir is not None else default_collector_dir()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        collector = Collector(store_path, coll_path, rate_limit, group_commit)
        app.state.collector = collector
        watcher = _start_watcher(store_path, coll_path, compact_interval_s)
        try:
            yield
        finally:
            await asyncio.to_thread(collector.wal.close)  # commit what is queued
            await asyncio.to_thread(_stop_watcher, watcher, collector)
            collector.registry.close()

    app = FastAPI(
        title="GridTwin collector",
        description=__doc__.split("\n\n", 1)[1],
        version="1",
        lifespan=lifespan,
    )
    app.state.max_body_bytes = max_body_bytes
    app.state.max_items = max_items

    @app.post(ENERGY_PATH, responses=_RESPONSES, openapi_extra=_body_doc(METER),
              summary="Firmware readings (payload v1): one object or an array")
    async def energy_data(request: Request) -> Response:
        return await _ingest(request, METER, ENERGY_PATH)

    @app.post(GRID_PATH, responses=_RESPONSES, openapi_extra=_body_doc(GRID),
              summary="Three-phase readings (reference system payload): one object or an array")
    async def grid_data(request: Request) -> Response:
        return await _ingest(request, GRID, GRID_PATH)

    @app.get("/health", summary="Store writable, queue depth, last write and compaction")
    async def health(request: Request) -> Response:
        collector: Collector = request.app.state.collector
        writable = _store_writable(collector.store_root)
        compaction = read_status(collector.collector_dir)
        body = {
            "status": "ok" if writable and not compaction.get("error") else "degraded",
            "store_writable": writable,
            "queue_depth": collector.wal.queue_depth,
            "uncompacted": collector.wal.uncompacted(),
            "commits": collector.wal.commits,
            "last_write": _iso(collector.wal.last_commit),
            "last_compaction": _iso(compaction.get("last_run")),
            "compaction_error": compaction.get("error"),
            "store": str(collector.store_root),
        }
        return _json(200 if writable else 503, body)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {})
            for spec in (METER, GRID):
                item = TypeAdapter(spec.item).json_schema(ref_template="#/components/schemas/{model}")
                components.setdefault("schemas", {}).update(item.pop("$defs", {}))
                components["schemas"][spec.item.__name__] = item
            components["securitySchemes"] = {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _start_watcher(store_root: Path, collector_dir: Path, interval_s: float) -> subprocess.Popen:
    """The compaction child process (see :func:`.compact.watch`); it compacts at once, recovering a crash's rows."""
    return subprocess.Popen([
        sys.executable, "-m", "gridtwin_lib.collect.compact", "--store", str(store_root),
        "--collector-dir", str(collector_dir), "--every", str(interval_s), "--parent", str(os.getpid()),
    ])


def terminate(proc: subprocess.Popen, timeout_s: float) -> int:
    """SIGTERM ``proc``, SIGKILL it after ``timeout_s``; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _stop_watcher(watcher: subprocess.Popen, collector: Collector) -> None:
    """SIGTERM the watcher (it compacts once more); compact here if it did not exit cleanly.

    It did not when it died earlier, was still starting (no handler yet: killed by the signal)
    or hangs.
    """
    if terminate(watcher, timeout_s=120) == 0:
        return
    compactor = Compactor(collector.store_root, collector.collector_dir)
    try:
        compactor.run()
    except Exception:
        log.exception("final compaction failed; the rows stay in the log for the next start")
    finally:
        compactor.close()
