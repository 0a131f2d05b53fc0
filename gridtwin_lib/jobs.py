"""Data preparation for the model notebooks (notebook ``00_data``): the UCI data ingested and
every simulator run the registry's models need, as their configuration lists them
(``conf/base/models/<module>/<model>.yaml``, per pipeline size).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from .fileio import write_text
from .store import Store


def prepare_data(size: str = "full", store: Store | None = None, ingest_uci: bool = True,
                 echo: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Everything the model notebooks read: the UCI data and the twins' runs their datasets list.

    A simulation whose source already holds the same run (same arguments, recorded in
    ``<store>/_simulations.json``) is not repeated; one recorded with other arguments is
    an error (the store would mix two runs under one source) unless removed first.
    """
    from . import simulate as sim
    from .models import registry

    say = echo or (lambda _msg: None)
    store = store or Store()
    registry.check_configuration()
    runs = registry.simulations(size)
    result: dict[str, Any] = {"store": str(store.root), "size": size, "ingest": [], "simulate": [], "skipped": []}
    t0 = time.perf_counter()
    if ingest_uci:
        from .ingest import ingest_uci as _ingest_uci

        summary = _ingest_uci(store=store)
        say(f"UCI household data: {summary}")
        result["ingest"].append(summary.to_dict())
    ledger_path = store.root / "_simulations.json"
    ledger: dict[str, Any] = json.loads(ledger_path.read_text()) if ledger_path.exists() else {}
    for i, run in enumerate(runs, 1):
        source = run.get("source") or f"sim:{run['scenario']}"
        spec = json.loads(json.dumps(run, sort_keys=True, default=str))
        if source in ledger:
            if ledger[source] == spec:
                say(f"[{i}/{len(runs)}] {source}: already in the store, skipped")
                result["skipped"].append(source)
                continue
            raise ValueError(
                f"{store.root}: source {source} holds another run ({ledger[source]}); remove that store "
                "(make clean) or use a separate workspace (GRIDTWIN_WORKSPACE) for this size")
        s = sim.run_scenario(**{k: v for k, v in run.items()}, store=store, progress=False)
        say(f"[{i}/{len(runs)}] {s}")
        result["simulate"].append(s.to_dict())
        ledger[source] = spec
        write_text(ledger_path, json.dumps(ledger, indent=1, sort_keys=True))
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result
