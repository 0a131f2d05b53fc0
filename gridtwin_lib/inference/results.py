"""What the inference engine returns: per-reading scores, typed errors, on-demand results."""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from ..models import registry

ERROR_CODES = ("missing_field", "hard_limit", "unknown_device", "out_of_order", "duplicate", "no_champion",
               "insufficient_history", "missing_input", "model_error")
ERROR_SCHEMA = {"row": pl.Int64, "ts": pl.Datetime("us", "UTC"), "device_id": pl.String, "code": pl.String,
                "model_id": pl.String, "message": pl.String}


@dataclass(frozen=True)
class ReadingError:
    """Why one reading (``row``: its position in the input) or one model on it was not scored."""

    row: int
    code: str  # one of ERROR_CODES
    message: str
    model_id: str | None = None
    ts: datetime | None = None
    device_id: str | None = None


@dataclass
class ReadingScore:
    """One reading's outputs, a section per module: ``{model_id: {output: value}}``.

    A model absent from every section did not apply to the reading (e.g. a feeder model on a
    device that is not a feeder head) or failed; failures are in ``errors``.
    """

    ts: datetime | None
    device_id: str | None
    status: str  # "ok" (every applicable model scored), "partial" or "error" (nothing scored)
    monitoring: dict[str, dict[str, Any]] = field(default_factory=dict)
    maintenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    energy: dict[str, dict[str, Any]] = field(default_factory=dict)
    decision: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[ReadingError] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("ts", "device_id", "status", "monitoring", "maintenance", "energy", "decision")}
        out["ts"] = self.ts.isoformat() if self.ts else None
        out["errors"] = [{"code": e.code, "model_id": e.model_id, "message": e.message} for e in self.errors]
        return out


@dataclass
class ScoreBatch:
    """Scores of a batch: ``frame`` has one row per input reading, in input order (``row``),
    with ``ts``, ``device_id``, ``status`` and ``<model_id>.<output>`` columns; ``errors`` one
    row per problem; ``units`` the unit of every output column."""

    frame: pl.DataFrame
    errors: pl.DataFrame
    units: dict[str, str]

    def __len__(self) -> int:
        return self.frame.height

    def records(self) -> Iterator[ReadingScore]:
        by_row: dict[int, list[ReadingError]] = {}
        for e in self.errors.iter_rows(named=True):
            by_row.setdefault(e["row"], []).append(ReadingError(e["row"], e["code"], e["message"], e["model_id"], e["ts"], e["device_id"]))
        outputs = [c for c in self.frame.columns if "." in c]
        for r in self.frame.iter_rows(named=True):
            rec = ReadingScore(r["ts"], r["device_id"], r["status"], errors=by_row.get(r["row"], []), units=self.units)
            for col in outputs:
                if r[col] is None:
                    continue
                model_id, out = col.split(".", 1)
                getattr(rec, registry.module_of(model_id)).setdefault(model_id, {})[out] = r[col]
            yield rec


@dataclass
class OnDemand:
    """Result of an optimiser run on demand: ``status`` is "ok", "time_limit" (no answer
    within ``time_limit_s``) or "error"; ``result`` is None unless ok."""

    model_id: str
    status: str
    result: Any
    seconds: float
    time_limit_s: float
    message: str = ""


def on_demand(model_id: str, fn, time_limit_s: float) -> OnDemand:
    """Run ``fn()`` with a wall-clock limit; report when the limit was hit instead of waiting."""
    pool = cf.ThreadPoolExecutor(max_workers=1)
    t0 = time.perf_counter()
    future = pool.submit(fn)
    try:
        result = future.result(timeout=time_limit_s)
        return OnDemand(model_id, "ok", result, time.perf_counter() - t0, time_limit_s)
    except cf.TimeoutError:
        return OnDemand(model_id, "time_limit", None, time.perf_counter() - t0, time_limit_s,
                        f"{model_id}: no solution within {time_limit_s:g} s; raise the limit or shrink the problem")
    except Exception as exc:  # noqa: BLE001 - reported, never raised: the caller keeps going
        return OnDemand(model_id, "error", None, time.perf_counter() - t0, time_limit_s, f"{model_id}: {exc}")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def status_column(n: int, errors: list[dict], admitted: np.ndarray) -> list[str]:
    """Per input row: "ok" (admitted, no model error), "partial" (admitted, a model failed) or "error";
    ``errors`` as the engine collects them (:func:`~gridtwin_lib.models.serving.error_row`)."""
    status = np.full(n, "error", dtype=object)
    status[admitted] = "ok"
    model_err = np.fromiter({e["row"] for e in errors if e["model_id"] is not None}, dtype=np.int64)
    if model_err.size:
        status[model_err[np.isin(model_err, admitted)]] = "partial"
    return status.tolist()


__all__ = ["ReadingError", "ReadingScore", "ScoreBatch", "OnDemand", "on_demand", "status_column", "ERROR_CODES", "ERROR_SCHEMA"]
