"""Datasets of the energy-flow models, one module per model.

Old import paths kept for gridtwin_lib/dashboards (owned by another branch); remove once it imports the
per-model modules. Names are read lazily (PEP 562), so importing the package costs nothing.
"""

from __future__ import annotations

import importlib

#: old name -> the module that defines it now
_MOVED = {'PV_AT_SCEAUX': 'gridtwin_lib.datasets.energy.power_flow_optimization', 'tou_price': 'gridtwin_lib.datasets.energy.power_flow_optimization', 'demand_response': 'gridtwin_lib.datasets.energy.demand_response'}


def __getattr__(name: str):
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
