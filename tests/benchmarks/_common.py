"""What the benchmarks share: best-of-N timing and printing the figures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Shortest wall time [s] of ``repeat`` calls (the least disturbed run) and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def report(result: dict[str, Any], as_json: bool) -> None:
    """One JSON document, or one aligned ``name value`` line per figure."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result)) + 2
    for name, value in result.items():
        print(f"{name:{width}s}{value}")
