"""Training and evaluation datasets, built from the store (measurements + truth).

This is the one place where ground truth meets measurements: each builder reads
measurements and features, reads labels from ``store.truth``, splits them
chronologically and returns a :class:`gridtwin_lib.models.base.Dataset`. Models
never read the store themselves.
"""

from __future__ import annotations

import importlib
from typing import Any

#: dataset modules, in catalogue order; each has SIMULATIONS = {"full": [...], "smoke": [...]}
MODULES = ("monitoring", "monitoring_pq", "monitoring_frequency", "maintenance", "maintenance_pq", "energy_forecast",
           "energy", "decision", "decision_surrogates")
SIZES = ("full", "smoke")


def simulations(size: str = "full", modules: tuple[str, ...] = MODULES) -> list[dict[str, Any]]:
    """The simulator runs the datasets of ``modules`` need, one per source (first wins)."""
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {SIZES}")
    runs: dict[str, dict[str, Any]] = {}
    for name in modules:
        mod = importlib.import_module(f"{__name__}.{name}")
        for run in getattr(mod, "SIMULATIONS", {}).get(size, []):
            key = run.get("source") or f"sim:{run['scenario']}"
            runs.setdefault(key, dict(run))
    return list(runs.values())
