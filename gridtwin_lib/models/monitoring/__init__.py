"""Monitoring models: one module per model (see gridtwin_lib.models.registry).

Old import paths kept for gridtwin_lib/dashboards (owned by another branch); remove once it imports the
per-model modules. Names are read lazily (PEP 562), so importing the package costs nothing.
"""

from __future__ import annotations

import importlib

#: old name -> the module that defines it now
_MOVED = {'TARGET_EVENT_TYPES': 'gridtwin_lib.models.monitoring.voltage_anomaly'}


def __getattr__(name: str):
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
