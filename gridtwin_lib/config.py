"""Where GridTwin keeps things: project root, data store, reports, MLflow; what a site is.

Every path can be overridden from the environment so that notebooks run by
Papermill (which changes the working directory), CI and scheduled jobs all find
the same store:

``GRIDTWIN_HOME``   project root (default: the checkout that holds this package,
                    else the current directory)
``GRIDTWIN_STORE``  canonical Parquet store (default ``$GRIDTWIN_HOME/data/store``)
``GRIDTWIN_SITE``   name of the default site profile (default: ``default_site`` of ``conf/base/sites.yaml``)
``GRIDTWIN_CONF``   the configuration folder (sites, tariffs, model parameters; see :mod:`gridtwin_lib.settings`)
``GRIDTWIN_WORKSPACE``  a named, separate store, registry and reports (e.g. ``smoke``):
                    ``data/workspaces/<name>/{store,reports}`` and ``mlruns/workspaces/<name>``, so
                    small test runs never mix with the real data or move its champions
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """Project root: ``$GRIDTWIN_HOME``, else the checkout holding this package."""
    env = os.environ.get("GRIDTWIN_HOME")
    if env:
        return Path(env).expanduser().resolve()
    checkout = _PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").exists():
        return checkout
    return Path.cwd().resolve()


def data_dir() -> Path:
    return project_root() / "data"


def workspace() -> str | None:
    name = os.environ.get("GRIDTWIN_WORKSPACE") or None
    if name is not None and not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"GRIDTWIN_WORKSPACE={name!r}: use letters, digits, '-' or '_'")
    return name


def store_dir() -> Path:
    env = os.environ.get("GRIDTWIN_STORE")
    if env:
        return Path(env).expanduser().resolve()
    ws = workspace()
    return data_dir() / "workspaces" / ws / "store" if ws else data_dir() / "store"


def reports_dir() -> Path:
    ws = workspace()
    return data_dir() / "workspaces" / ws / "reports" if ws else data_dir() / "reports"


def mlruns_dir() -> Path:
    ws = workspace()
    return project_root() / "mlruns" / "workspaces" / ws if ws else project_root() / "mlruns"


#: nominal phase-to-neutral voltage of an LV supply [V] (EN 50160 / IEC 60038: 230 V) and nominal frequency [Hz];
#: the defaults of :class:`Site`, and the reference of models and twins that are not tied to one site
NOMINAL_VOLTAGE_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0


@dataclass(frozen=True)
class Site:
    """Where a measurement point is: drives calendar features and nominal values.

    Attributes
    ----------
    timezone : IANA name used for local hour, weekday and holidays.
    country, subdivision : ``holidays`` package codes (e.g. ``"AU"``, ``"NSW"``).
    latitude_deg, longitude_deg : site position [°], used for daylight.
    nominal_voltage_v : phase-to-neutral nominal voltage [V].
    nominal_frequency_hz : nominal system frequency [Hz].
    """

    name: str
    timezone: str
    country: str
    subdivision: str | None
    latitude_deg: float
    longitude_deg: float
    nominal_voltage_v: float = NOMINAL_VOLTAGE_V
    nominal_frequency_hz: float = NOMINAL_FREQUENCY_HZ


def __getattr__(name: str):
    """``SITES`` (name -> :class:`Site`) and ``SOURCE_SITES`` (source -> site name), read from the
    configuration folder's ``sites.yaml`` when first asked for (:mod:`gridtwin_lib.settings`)."""
    from . import settings

    if name == "SITES":
        return settings.sites()
    if name == "SOURCE_SITES":
        return settings.source_sites()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_site() -> Site:
    """The site of ``$GRIDTWIN_SITE``, else ``default_site`` of the configuration's ``sites.yaml``."""
    from . import settings

    sites = settings.sites()
    name = os.environ.get("GRIDTWIN_SITE") or settings.default_site_name()
    if name not in sites:
        raise KeyError(f"GRIDTWIN_SITE={name!r} is not a known site; choose one of {sorted(sites)}")
    return sites[name]


def site_for_source(source: str | None) -> Site:
    """The site profile of a source: its known site (``sources`` of ``sites.yaml``), else :func:`default_site`."""
    from . import settings

    name = settings.source_sites().get(source or "")
    return settings.sites()[name] if name else default_site()
