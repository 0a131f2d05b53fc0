"""The configuration folder, read once and checked: sites, PV plants, tariffs, and each model's
parameters and simulator runs per pipeline size.

Layout (Kedro's ``conf/base`` + ``conf/local`` idea)::

    conf/
      base/                              the defaults, kept in the repository
        alerts.yaml                      alert rules (read by gridtwin_lib.alerts; local/ replaces it whole)
        sites.yaml                       sites, sources with a known site and clock, PV plants
        tariffs.yaml                     electricity tariffs
        models/<module>/<name>.yaml      one file per registry model: parameters, sizes, simulations
      local/                             optional, not committed: same file names, read over base

A file of ``local/`` (except ``alerts.yaml``, replaced whole) is merged into its ``base/`` namesake key by key (mappings merge, any other
value replaces); a ``local/`` file with no ``base/`` namesake is an error, so a misspelt file
name cannot be ignored silently.

Where the folder is, first found:

1. ``$GRIDTWIN_CONF`` (a folder holding ``base/``),
2. ``$GRIDTWIN_HOME/conf``,
3. ``conf/`` of the checkout that holds this package (the repository),
4. ``<sys.prefix>/share/gridtwin/conf`` (a non-editable install ships ``conf/base`` there).

Every problem (missing file, unknown key, wrong type, unknown site or plant) raises
:class:`~gridtwin_lib.errors.InputError` with one line naming the file and the key.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from . import config
from .errors import InputError

ENV = "GRIDTWIN_CONF"
#: pipeline sizes; ``full`` is a model's ``parameters`` as written, other sizes change some of them
SIZES = ("full", "smoke")
_NUMBER = (int, float)


def conf_dir() -> Path:
    """The configuration folder in use (see the module docstring for the search order)."""
    env = os.environ.get(ENV)
    if env:
        path = Path(env).expanduser().resolve()
        if not (path / "base").is_dir():
            raise InputError(f"{ENV}={env}: no {path / 'base'} folder; point it at a folder holding base/ (e.g. the repository's conf/)")
        return path
    home = os.environ.get("GRIDTWIN_HOME")
    candidates = ([Path(home).expanduser().resolve() / "conf"] if home else []) + [
        Path(__file__).resolve().parent.parent / "conf", Path(sys.prefix) / "share" / "gridtwin" / "conf"]
    for path in candidates:
        if (path / "base").is_dir():
            return path
    raise InputError(f"no configuration folder found (looked in {', '.join(map(str, candidates))}); "
                     f"set {ENV} to a folder holding base/ (the repository's conf/)")


def reload() -> None:
    """Forget what was read (after editing a file in a running session)."""
    for cached in (_read, _checked_sites, _sites):
        cached.cache_clear()


# ----------------------------------------------------------------------------- reading
def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return over


@cache
def _read(root: str, relative: str) -> tuple[Any, str]:
    """``base/<relative>`` merged with ``local/<relative>``; the document and where it came from."""
    base, local = Path(root) / "base" / relative, Path(root) / "local" / relative
    if not base.is_file():
        if local.is_file():
            raise InputError(f"{local}: no {base} to override; check the file name (local/ only changes files of base/)")
        raise InputError(f"{base}: no such file; restore it from the repository (git checkout conf/base)")
    doc = _load_yaml(base)
    where = str(base)
    if local.is_file():
        doc = _merge(doc, _load_yaml(local))
        where = f"{base} (+ {local})"
    return doc, where


def _document(relative: str) -> tuple[Any, str]:
    doc, where = _read(str(conf_dir()), relative)
    return copy.deepcopy(doc), where


def conf_file(relative: str) -> Path:
    """``local/<relative>`` if there is one (it replaces the whole file), else ``base/<relative>``; for
    files read elsewhere as a whole (the alert rules, :func:`gridtwin_lib.alerts.default_rules`)."""
    root = conf_dir()
    local = root / "local" / relative
    return local if local.is_file() else root / "base" / relative


def _check_local_names() -> None:
    """Every ``local/`` file overrides a ``base/`` file (a misspelt name is an error, not ignored)."""
    root = conf_dir()
    for path in sorted((root / "local").rglob("*.yaml")) if (root / "local").is_dir() else []:
        if not (root / "base" / path.relative_to(root / "local")).is_file():
            raise InputError(f"{path}: no {root / 'base' / path.relative_to(root / 'local')} to override; "
                             "check the file name (local/ only changes files of base/)")


# ----------------------------------------------------------------------------- checking
def _mapping(value: Any, where: str, key: str, allowed: Mapping[str, Any] | None = None,
             required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``value`` as a mapping with string keys; with ``allowed``, only those keys, each of its type(s)."""
    if value is None:
        value = {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InputError(f"{where}: {key} must be a mapping of names to values, got {type(value).__name__}; fix the file")
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise InputError(f"{where}: unknown key {key}.{unknown[0]}; allowed: {', '.join(allowed)}")
        for k, kinds in allowed.items():
            if k in value and value[k] is not None and not _is(value[k], kinds):
                raise InputError(f"{where}: {key}.{k} must be {_name(kinds)}, got {type(value[k]).__name__} {value[k]!r}")
    missing = [k for k in required if value.get(k) is None]
    if missing:
        raise InputError(f"{where}: {key}.{missing[0]} is missing; add it")
    return value


def _is(value: Any, kinds: Any) -> bool:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return not (isinstance(value, bool) and bool not in kinds) and isinstance(value, kinds)


def _name(kinds: Any) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list", dict: "a mapping"}
    return " or ".join(dict.fromkeys(names[k] for k in kinds if not (k is int and float in kinds)))


# ----------------------------------------------------------------------------- sites and PV plants
_SITE_KEYS = {"timezone": str, "country": str, "subdivision": str, "latitude_deg": _NUMBER, "longitude_deg": _NUMBER,
              "nominal_voltage_v": _NUMBER, "nominal_frequency_hz": _NUMBER}
_SOURCE_KEYS = {"site": str, "utc_offset_h": _NUMBER, "pv_plant": str}


@dataclass(frozen=True)
class SourceProfile:
    """What is known about a source.

    Attributes
    ----------
    site : name of its site (a key of :func:`sites`), or None for the default site.
    utc_offset_h : its meter clock [h from UTC] (fixed offset, no daylight saving).
    pv_plant : name of its PV plant (a key of ``pv_plants`` in ``sites.yaml``), or None.
    """

    site: str | None
    utc_offset_h: float
    pv_plant: str | None


def _sites_document() -> tuple[dict[str, Any], str]:
    return _checked_sites(str(conf_dir()))


@cache
def _checked_sites(root: str) -> tuple[dict[str, Any], str]:
    doc, where = _read(root, "sites.yaml")
    doc = copy.deepcopy(doc)
    doc = _mapping(doc, where, "sites.yaml", {"default_site": str, "sites": dict, "sources": dict, "other_sources": dict,
                                              "pv_plants": dict}, required=("default_site", "sites", "other_sources"))
    for name, site in doc["sites"].items():
        _mapping(site, where, f"sites.{name}", _SITE_KEYS, required=("timezone", "country", "latitude_deg", "longitude_deg"))
    if doc["default_site"] not in doc["sites"]:
        raise InputError(f"{where}: default_site {doc['default_site']!r} is not one of the sites ({', '.join(doc['sites'])})")
    plants = _mapping(doc.get("pv_plants"), where, "pv_plants")
    for name, plant in plants.items():
        plant = _mapping(plant, where, f"pv_plants.{name}", required=("site",))
        for k, v in plant.items():
            if k != "site" and not _is(v, _NUMBER):
                raise InputError(f"{where}: pv_plants.{name}.{k} must be a number (a solar-twin parameter), got {v!r}")
        _known(plant["site"], doc["sites"], where, f"pv_plants.{name}.site")
    for name, src in _mapping(doc.get("sources"), where, "sources").items():
        src = _mapping(src, where, f"sources.{name}", _SOURCE_KEYS, required=("utc_offset_h",))
        if src.get("site") is not None:
            _known(src["site"], doc["sites"], where, f"sources.{name}.site")
        if src.get("pv_plant") is not None:
            _known(src["pv_plant"], plants, where, f"sources.{name}.pv_plant")
    _mapping(doc["other_sources"], where, "other_sources", {"utc_offset_h": _NUMBER}, required=("utc_offset_h",))
    return doc, where


def _known(name: Any, known: Mapping[str, Any], where: str, key: str) -> None:
    if name not in known:
        raise InputError(f"{where}: {key} {name!r} is not defined; known: {', '.join(known) or 'none'}")


def sites() -> dict[str, config.Site]:
    """Site profiles by name (``sites.yaml``)."""
    return dict(_sites(str(conf_dir())))


@cache
def _sites(root: str) -> dict[str, config.Site]:
    doc, _ = _checked_sites(root)
    return {name: config.Site(name, s["timezone"], s["country"], s.get("subdivision"), float(s["latitude_deg"]),
                              float(s["longitude_deg"]), float(s.get("nominal_voltage_v", config.NOMINAL_VOLTAGE_V)),
                              float(s.get("nominal_frequency_hz", config.NOMINAL_FREQUENCY_HZ)))
            for name, s in doc["sites"].items()}


def default_site_name() -> str:
    """Name of the site of sources with no known site (``default_site`` of ``sites.yaml``)."""
    return _sites_document()[0]["default_site"]


def source_sites() -> dict[str, str]:
    """Sources whose site is known: source -> site name."""
    doc, _ = _sites_document()
    return {name: s["site"] for name, s in (doc.get("sources") or {}).items() if s.get("site")}


def source_profile(source: str) -> SourceProfile:
    """Site, meter clock and PV plant of ``source`` (``sources`` of ``sites.yaml``, else ``other_sources``)."""
    doc, _ = _sites_document()
    known = (doc.get("sources") or {}).get(source)
    if known is None:
        return SourceProfile(None, float(doc["other_sources"]["utc_offset_h"]), None)
    return SourceProfile(known.get("site"), float(known["utc_offset_h"]), known.get("pv_plant"))


def pv_plant(name: str) -> dict[str, float]:
    """A PV plant as solar-twin parameters: ``latitude``, ``longitude`` [°] of its site, then its own values."""
    doc, where = _sites_document()
    plants = doc.get("pv_plants") or {}
    _known(name, plants, where, "PV plant")
    plant = dict(plants[name])
    site = doc["sites"][plant.pop("site")]
    return {"latitude": float(site["latitude_deg"]), "longitude": float(site["longitude_deg"]), **plant}


# ----------------------------------------------------------------------------- tariffs
@dataclass(frozen=True)
class Tariff:
    """A time-of-use tariff.

    Attributes
    ----------
    name : its key in ``tariffs.yaml``.
    offpeak, shoulder, peak : prices [€/kWh].
    peak_hours, offpeak_hours : local clock hours [start, end) [h]; a window may wrap midnight.
    """

    name: str
    offpeak: float
    shoulder: float
    peak: float
    peak_hours: tuple[int, int]
    offpeak_hours: tuple[int, int]


def tariff(name: str | None = None) -> Tariff:
    """The tariff ``name`` of ``tariffs.yaml`` (its ``default`` if None)."""
    doc, where = _document("tariffs.yaml")
    doc = _mapping(doc, where, "tariffs.yaml", {"default": str, "tariffs": dict}, required=("default", "tariffs"))
    name = name or doc["default"]
    _known(name, doc["tariffs"], where, "tariff")
    keys = {"offpeak": _NUMBER, "shoulder": _NUMBER, "peak": _NUMBER, "peak_hours": list, "offpeak_hours": list}
    t = _mapping(doc["tariffs"][name], where, f"tariffs.{name}", keys, required=tuple(keys))
    for k in ("peak_hours", "offpeak_hours"):
        if len(t[k]) != 2 or not all(_is(h, int) and 0 <= h <= 24 for h in t[k]):
            raise InputError(f"{where}: tariffs.{name}.{k} must be [start, end] local hours in 0..24, got {t[k]!r}")
    return Tariff(name, float(t["offpeak"]), float(t["shoulder"]), float(t["peak"]), tuple(t["peak_hours"]),
                  tuple(t["offpeak_hours"]))


# ----------------------------------------------------------------------------- models
_RUN_KEYS = {"scenario": str, "duration": (str, int, float), "resolution": (str, int, float), "seed": int, "devices": int,
             "overrides": dict, "source": str, "pv_plant": str, "start": (str, date)}


@dataclass(frozen=True)
class ModelConf:
    """One model's configuration file (``models/<module>/<name>.yaml``).

    Attributes
    ----------
    path : where it was read (base, and local when there is one).
    base_parameters : the full-size parameters (``parameters``).
    size_changes : size -> the parameters that size changes (``sizes``).
    runs : size -> simulator runs (``simulations``), PV plants resolved, or the ``module/name`` of
        the model whose runs it shares.
    """

    path: str
    base_parameters: Mapping[str, Any]
    size_changes: Mapping[str, Mapping[str, Any]]
    runs: Mapping[str, list[dict[str, Any]]] | str

    def parameters(self, size: str = "full") -> dict[str, Any]:
        """The parameters of ``size``: ``parameters`` with that size's changes."""
        _check_size(size)
        return copy.deepcopy({**self.base_parameters, **self.size_changes.get(size, {})})

    def simulations(self, size: str = "full") -> list[dict[str, Any]]:
        """The simulator runs of ``size`` (``simulate.run_scenario`` keyword arguments)."""
        _check_size(size)
        if isinstance(self.runs, str):
            module, _, name = self.runs.partition("/")
            shared = model(module, name)
            if shared is None or isinstance(shared.runs, str):
                raise InputError(f"{self.path}: simulations {self.runs!r} names no model file with runs of its own; "
                                 "give runs, or the module/name of a model that has them")
            return shared.simulations(size)
        return copy.deepcopy(self.runs.get(size, []))


def _check_size(size: str) -> None:
    if size not in SIZES:
        raise InputError(f"pipeline size {size!r} is not one of {', '.join(SIZES)}")


def model_files() -> list[tuple[str, str, Path]]:
    """``(module, name, path)`` of every model file of ``base/`` (``local/`` names checked against them)."""
    _check_local_names()
    base = conf_dir() / "base" / "models"
    return [(p.parent.name, p.stem, p) for p in sorted(base.glob("*/*.yaml"))]


def model(module: str, name: str) -> ModelConf | None:
    """The configuration of the model ``name`` of catalogue ``module``, or None if it has no file."""
    relative = f"models/{module}/{name}.yaml"
    root = conf_dir()
    if not (root / "base" / relative).is_file():
        if (root / "local" / relative).is_file():
            _document(relative)  # raises: a local file without its base
        return None
    doc, where = _document(relative)
    doc = _mapping(doc, where, name, {"parameters": dict, "sizes": dict, "simulations": (dict, str)})
    params = _mapping(doc.get("parameters"), where, "parameters")
    changes = _mapping(doc.get("sizes"), where, "sizes")
    for size, changed in changes.items():
        if size not in SIZES or size == "full":
            raise InputError(f"{where}: unknown key sizes.{size}; allowed: {', '.join(s for s in SIZES if s != 'full')}")
        changed = _mapping(changed, where, f"sizes.{size}")
        unknown = sorted(set(changed) - set(params))
        if unknown:
            raise InputError(f"{where}: sizes.{size}.{unknown[0]} changes no parameter of `parameters`; "
                             "add it to `parameters` (its full-size value) or fix the spelling")
        changes[size] = changed
    runs = doc.get("simulations") or {}
    if isinstance(runs, dict):
        runs = _mapping(runs, where, "simulations")
        out: dict[str, list[dict[str, Any]]] = {}
        for size, listed in runs.items():
            if size not in SIZES:
                raise InputError(f"{where}: unknown key simulations.{size}; allowed: {', '.join(SIZES)}")
            if not isinstance(listed, list):
                raise InputError(f"{where}: simulations.{size} must be a list of runs, got {type(listed).__name__}")
            out[size] = [_run(r, where, f"simulations.{size}[{i}]") for i, r in enumerate(listed)]
        runs = out
    return ModelConf(where, params, changes, runs)


def _run(run: Any, where: str, key: str) -> dict[str, Any]:
    run = dict(_mapping(run, where, key, _RUN_KEYS, required=("scenario",)))
    if isinstance(run.get("start"), date):  # YAML reads an unquoted 2024-11-04 as a date
        run["start"] = run["start"].isoformat()
    if "start" in run:
        try:
            datetime.fromisoformat(run["start"])
        except ValueError:
            raise InputError(f"{where}: {key}.start {run['start']!r} is not an ISO 8601 date or time "
                             "(e.g. 2024-11-04 or '2024-11-04T06:00+00:00')") from None
    plant = run.pop("pv_plant", None)
    if plant is not None:
        try:
            run["overrides"] = {**pv_plant(plant), **(run.get("overrides") or {})}
        except InputError as exc:
            raise InputError(f"{where}: {key}.pv_plant: {exc}") from None
    return run


__all__ = ["ENV", "SIZES", "ModelConf", "SourceProfile", "Tariff", "conf_dir", "conf_file", "default_site_name", "model", "model_files",
           "pv_plant", "reload", "sites", "source_profile", "source_sites", "tariff"]
