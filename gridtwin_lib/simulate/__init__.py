"""Digital twins that produce measurements *and* the ground truth behind them.

Twins (one module each, all registering scenarios in :data:`SCENARIOS`):

``grid``       three-phase measurement point / LV feeder head: load, voltage drop,
               swing-equation frequency, events with causal precursors
``meter``      ESP8266 + PZEM-004T meter as its firmware reports it
``waveforms``  10-cycle power-quality waveform windows (IEEE 1159 classes)
``ageing``     transformer (IEC 60076-7 thermal model) and inverter fleets with failures
``solar``      PV + battery asset (pvlib) with failure scenarios
``feeder``     reference LV network run as a power-flow time series (pandapower)

:func:`run_scenario` validates everything first, then streams chunks into the
store: measurements under source ``sim:<scenario>``, truth tables apart
(:meth:`gridtwin_lib.store.Store.write_truth`).
"""

from __future__ import annotations

import importlib
import math
import re
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
from tqdm.auto import tqdm

from ..config import Site
from ..schema import validate
from ..store import Store, as_utc
from .registry import SCENARIOS, Param, RunSpec, Scenario, SimChunk, SimulationError, register

_TWIN_MODULES = ("grid", "meter", "waveforms", "ageing", "solar", "feeder")
for _name in _TWIN_MODULES:
    importlib.import_module(f"{__name__}.{_name}")

DEFAULT_START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)?\s*$")
_UNIT_S = {"ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}

__all__ = [
    "SCENARIOS", "Param", "RunSpec", "Scenario", "SimChunk", "SimulationError", "SimulationSummary",
    "parse_duration", "list_scenarios", "run_parameters", "run_scenario", "simulate", "register",
]


def parse_duration(text: str | float | int, what: str = "duration") -> float:
    """``"7d"``, ``"1h"``, ``"90s"``, ``"250ms"`` or a number of seconds -> seconds (> 0)."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = _DURATION_RE.match(str(text))
        if not m:
            raise SimulationError(f"{what} {text!r} is not a duration; write e.g. 90s, 15m, 6h, 7d or 2w")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise SimulationError(f"{what} must be > 0 (got {text!r}); write e.g. 90s, 15m, 6h, 7d")
    return seconds


def list_scenarios() -> list[dict[str, Any]]:
    """Every scenario with its parameters, defaults, units and ranges (for --list)."""
    return [
        {
            "name": s.name,
            "twin": s.twin,
            "description": s.description,
            "resolution_s": [s.min_resolution_s, s.max_resolution_s],
            "params": {
                k: {"default": p.default, "unit": p.unit, "range": p.range_text(), "description": p.description}
                for k, p in s.params.items()
            },
        }
        for s in SCENARIOS.values()
    ]


@dataclass
class SimulationSummary:
    scenario: str
    source: str
    rows: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    truth_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "source": self.source, "rows": self.rows, "flagged": self.flagged,
            "rejected": self.rejected, "truth_rows": self.truth_rows,
            "seconds": round(self.seconds, 3), "params": self.params,
        }

    def __str__(self) -> str:
        rows = ", ".join(
            f"{k} {v:,} (flagged {self.flagged.get(k, 0):,}, rejected {self.rejected.get(k, 0):,})" for k, v in self.rows.items()
        ) or "no measurements"
        truth = ", ".join(f"{k} {v:,}" for k, v in self.truth_rows.items()) or "none"
        return f"{self.source}: {rows}; truth: {truth}; {self.seconds:.1f} s"


def run_parameters(run: dict[str, Any]) -> dict[str, Any]:
    """Every parameter a configured run (``run_scenario`` keyword arguments) simulates with: its scenario's
    defaults with the run's ``overrides`` (e.g. a PV plant's position and ratings, which its readings do not carry)."""
    if run.get("scenario") not in SCENARIOS:
        raise SimulationError(f"unknown scenario {run.get('scenario')!r}; choose one of {', '.join(sorted(SCENARIOS))}")
    return SCENARIOS[run["scenario"]].resolve(dict(run.get("overrides") or {}))


def prepare(
    scenario: str,
    duration: str | float = "1d",
    resolution: str | float = "1s",
    seed: int = 0,
    devices: int = 1,
    overrides: dict[str, Any] | None = None,
    start: datetime | date | str | None = None,
) -> tuple[Scenario, RunSpec, dict[str, Any]]:
    """Validate a run request completely; raise :class:`SimulationError` on the first problem.
    ``start`` may be a datetime, a date (its midnight) or ISO 8601 text (a model's configuration
    gives it so); UTC when it has no zone."""
    if scenario not in SCENARIOS:
        raise SimulationError(f"unknown scenario {scenario!r}; choose one of {', '.join(sorted(SCENARIOS))} (gridtwin simulate --list)")
    spec = SCENARIOS[scenario]
    duration_s = parse_duration(duration, "duration")
    resolution_s = parse_duration(resolution, "resolution")
    if not spec.min_resolution_s <= resolution_s <= spec.max_resolution_s:
        raise SimulationError(
            f"{scenario}: resolution {resolution_s:g} s is out of range; valid range [{spec.min_resolution_s:g}, {spec.max_resolution_s:g}] s"
        )
    if resolution_s > duration_s:
        raise SimulationError(f"{scenario}: resolution ({resolution_s:g} s) is longer than the duration ({duration_s:g} s)")
    if int(devices) < 1:
        raise SimulationError(f"{scenario}: devices must be >= 1 (got {devices})")
    params = spec.resolve(overrides or {})
    if isinstance(start, str):
        try:
            start = as_utc(start)
        except ValueError:
            raise SimulationError(f"{scenario}: start {start!r} is not an ISO 8601 date or time (e.g. 2024-11-04 or 2024-11-04T06:00+00:00)") from None
    elif isinstance(start, datetime):
        start = as_utc(start)  # UTC when it has no zone, as for text (not the machine's local time)
    elif isinstance(start, date):
        start = datetime(start.year, start.month, start.day, tzinfo=UTC)
    elif start is not None:
        raise SimulationError(f"{scenario}: start must be a date, a time or ISO 8601 text (e.g. 2024-11-04), not {type(start).__name__}")
    start = start or DEFAULT_START
    return spec, RunSpec(start, duration_s, resolution_s, int(seed), int(devices)), params


def simulate(scenario: str, **kwargs) -> SimChunk:
    """Run a scenario in memory and return all of it as one chunk (for notebooks and tests).

    This is the twin's raw output, before validation; :func:`run_scenario`
    validates it exactly as ingestion validates real data.
    """
    spec, run, params = prepare(scenario, **kwargs)
    out = SimChunk()
    for chunk in spec.run(run, params):
        for kind, df in chunk.measurements.items():
            out.measurements[kind] = pl.concat([out.measurements[kind], df]) if kind in out.measurements else df
        for name, df in chunk.truth.items():
            out.truth[name] = pl.concat([out.truth[name], df], how="diagonal_relaxed") if name in out.truth else df
    source = f"sim:{scenario}"
    out.measurements = {k: _with_source(v, source) for k, v in out.measurements.items()}
    out.truth = {k: _with_source(v, source) for k, v in out.truth.items()}
    return out


def run_scenario(
    scenario: str,
    duration: str | float = "1d",
    resolution: str | float = "1s",
    seed: int = 0,
    devices: int = 1,
    overrides: dict[str, Any] | None = None,
    start: datetime | str | None = None,
    store: Store | None = None,
    progress: bool = True,
    site: Site | None = None,
    source: str | None = None,
) -> SimulationSummary:
    """Simulate, validate and write to the store chunk by chunk (memory stays bounded).

    Measurements pass the same :func:`~gridtwin_lib.schema.validate` as ingested
    data (``site`` gives the nominal values); rejected rows go to the rejects
    dataset with their rule. Truth tables are written apart. ``source`` (default
    ``sim:<scenario>``) names the run in the store, so one scenario can be stored
    twice with different parameters (it must start with ``sim:``).
    """
    spec, run, params = prepare(scenario, duration, resolution, seed, devices, overrides, start)
    if source is not None and not source.startswith("sim:"):
        raise SimulationError(f"source {source!r} must start with 'sim:' so simulated data is never mistaken for measured data")
    store = store or Store()
    source = source or f"sim:{scenario}"
    summary = SimulationSummary(scenario, source, params=params)
    t0 = time.perf_counter()
    total = max(1, math.ceil(run.duration_s / run.chunk_s))

    def write(chunk: SimChunk) -> None:
        for kind, df in chunk.measurements.items():
            # the same validation as ingestion: hard limits reject, soft limits flag
            checked = validate(_with_source(df, source), kind, site=site)
            res = store.write(kind, checked.accepted)
            summary.rows[kind] = summary.rows.get(kind, 0) + res.written
            summary.flagged[kind] = summary.flagged.get(kind, 0) + checked.flagged
            if checked.rejected.height:
                store.write_rejects(kind, _as_rejects(checked.rejected, source))
                summary.rejected[kind] = summary.rejected.get(kind, 0) + checked.rejected.height
        for name, df in chunk.truth.items():
            if df.height:
                store.write_truth(name, _with_source(df, source))
                summary.truth_rows[name] = summary.truth_rows.get(name, 0) + df.height

    # The twin generates chunk k+1 while chunk k is validated and written (NumPy and
    # Arrow release the GIL); at most two chunks wait, so memory stays bounded.
    with tqdm(total=total, desc=source, unit="chunk", disable=not progress, leave=False) as bar, \
            ThreadPoolExecutor(max_workers=1) as writer:
        pending: deque[Future] = deque()
        for chunk in spec.run(run, params):
            pending.append(writer.submit(write, chunk))
            while len(pending) > 2 or (pending and pending[0].done()):
                pending.popleft().result()
                bar.update(1)
        while pending:
            pending.popleft().result()
            bar.update(1)
    summary.seconds = time.perf_counter() - t0
    return summary


def _as_rejects(rejected: pl.DataFrame, source: str) -> pl.DataFrame:
    values = [c for c in rejected.columns if c not in ("source", "device_id", "ts", "rule", "detail")]
    return rejected.select(
        "source", "device_id", "ts", "rule", "detail",
        pl.lit(source).alias("location"),
        pl.struct(values).struct.json_encode().alias("raw"),
    )


def _with_source(df: pl.DataFrame, source: str) -> pl.DataFrame:
    return df.with_columns(pl.lit(source).alias("source"))
