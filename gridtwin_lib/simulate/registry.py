"""Scenario registry shared by every twin: parameters as data, validated before any run.

A twin module registers its scenarios with :func:`register`. Each scenario
declares its parameters (default, unit, valid range, description), so
``gridtwin simulate --list`` can print them, ``--set key=value`` overrides are
checked against them, and a physically impossible value is refused with one
clear line *before* anything is simulated or written.

A scenario's ``run`` is a generator of :class:`SimChunk`: measurements per
record kind (canonical columns, see :mod:`gridtwin_lib.schema`) and truth tables
(event logs, hidden states). :func:`gridtwin_lib.simulate.run_scenario` writes
each chunk to the store as it comes, so memory stays bounded for long runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from ..errors import SimulationError


@dataclass(frozen=True)
class Param:
    """One scenario parameter: default, unit, and the range that is physically possible."""

    default: Any
    unit: str
    description: str
    min: float | None = None
    max: float | None = None
    choices: tuple[Any, ...] | None = None
    min_exclusive: bool = False

    def check(self, scenario: str, name: str, value: Any) -> Any:
        """Coerce ``value`` to the default's type and check its range; raise SimulationError."""
        kind = type(self.default)
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                value = value.lower() in ("true", "1", "yes")
            elif kind in (int, float) and not isinstance(value, bool):
                value = kind(float(value)) if kind is int else float(value)
            elif kind is str:
                value = str(value)
        except (TypeError, ValueError):
            raise SimulationError(
                f"{scenario}: parameter {name}={value!r} is not a {kind.__name__}; {self.range_text()}"
            ) from None
        if self.choices is not None and value not in self.choices:
            raise SimulationError(f"{scenario}: parameter {name}={value!r} is not allowed; {self.range_text()}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            too_low = self.min is not None and (value <= self.min if self.min_exclusive else value < self.min)
            too_high = self.max is not None and value > self.max
            if too_low or too_high:
                raise SimulationError(f"{scenario}: parameter {name}={value} [{self.unit}] is out of range; {self.range_text()}")
        return value

    def range_text(self) -> str:
        if self.choices is not None:
            return "valid values: " + ", ".join(map(str, self.choices))
        lo = "-inf" if self.min is None else f"{self.min:g}"
        hi = "inf" if self.max is None else f"{self.max:g}"
        bracket = "(" if self.min_exclusive else "["
        return f"valid range {bracket}{lo}, {hi}] {self.unit}".rstrip()


@dataclass
class SimChunk:
    """One piece of a run: measurements by record kind and truth tables by name."""

    measurements: dict[str, pl.DataFrame] = field(default_factory=dict)
    truth: dict[str, pl.DataFrame] = field(default_factory=dict)


@dataclass(frozen=True)
class RunSpec:
    """The common arguments of every run (after validation)."""

    start: datetime  # UTC
    duration_s: float
    resolution_s: float
    seed: int
    devices: int
    chunk_s: float = 86_400.0  # yield a chunk at least every this many simulated seconds

    @property
    def n_steps(self) -> int:
        return int(round(self.duration_s / self.resolution_s))


RunFn = Callable[[RunSpec, dict[str, Any]], Iterator[SimChunk]]


@dataclass(frozen=True)
class Scenario:
    name: str
    twin: str  # grid, meter, waveforms, ageing, solar, feeder
    description: str
    params: dict[str, Param]
    run: RunFn
    min_resolution_s: float = 1.0
    max_resolution_s: float = 3600.0

    def resolve(self, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            raise SimulationError(
                f"{self.name}: unknown parameter {unknown[0]!r}; this scenario takes "
                + (", ".join(sorted(self.params)) or "no parameters")
                + " (see `gridtwin simulate --list`)"
            )
        values = {k: p.default for k, p in self.params.items()}
        for k, v in overrides.items():
            values[k] = self.params[k].check(self.name, k, v)
        return values


SCENARIOS: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    if scenario.name in SCENARIOS:
        raise ValueError(f"scenario {scenario.name!r} is registered twice")
    SCENARIOS[scenario.name] = scenario
    return scenario
