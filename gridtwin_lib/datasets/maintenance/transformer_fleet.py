"""Reading the transformer-fleet twin's asset observations, and the asset and time splits and the
replacement counter that the equipment-failure, overload-risk and remaining-useful-life (inverter)
datasets share.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from ...errors import InputError
from ...store import Store


def iso_utc(t: datetime) -> str:
    """ISO 8601 text of ``t`` in UTC."""
    return t.astimezone(UTC).isoformat()


def fleet_observations(store: Store, source: str, model: str, start=None, end=None) -> pl.DataFrame:
    """The observable columns of ``source``'s asset observations in [start, end), by device and time."""
    obs = store.scan_truth("asset_observations", source=source, start=start, end=end).collect()
    if obs.height == 0:
        hint = "the model's simulations in conf/base/models/maintenance/"
        raise InputError(f"{model}: no asset_observations from source {source!r} in {store.root} in [{start}, {end}); "
                         f"simulate the transformer_fleet twin first (see {hint})")
    need = {"ts", "device_id", "load_pu_measured", "top_oil_temp_c", "ambient_temp_c", "age_years"}
    if not need <= set(obs.columns):
        raise InputError(f"{model}: source {source!r} lacks {sorted(need - set(obs.columns))[:3]}; use a transformer_fleet source")
    return obs.select(sorted(need)).sort("device_id", "ts")


def replacement_unit(age: str = "age_years", age_min: str = "age_min") -> pl.Expr:
    """The unit number of each daily row (0, then +1 at each replacement), per ``device_id`` in day order.

    A replacement shows as a calendar age that drops: the day's minimum ``age_min`` below the previous
    day's last ``age``, or the day's last age below its minimum. Rolling and cumulative windows restart with it.
    """
    prev_age = pl.col(age).shift(1).over("device_id")
    return (((pl.col(age_min) < prev_age - 1e-6) | (pl.col(age) < pl.col(age_min) - 1e-6))
            .fill_null(False).cast(pl.Int32).cum_sum().over("device_id").alias("unit"))


def asset_split(devices: list[str], fraction: float, seed: int, model: str) -> set[str]:
    """A seeded draw of ``fraction`` of the ``devices`` held out as test assets."""
    if not 0 < fraction < 1:
        raise InputError(f"{model}: test_asset_fraction must be in (0, 1), got {fraction}")
    devices = sorted(devices)
    n_test = int(round(fraction * len(devices)))
    if n_test < 1 or n_test >= len(devices):
        raise InputError(f"{model}: {len(devices)} assets cannot be split {fraction:.0%} test / rest train; simulate more devices")
    rng = np.random.default_rng(seed)
    return set(rng.choice(devices, n_test, replace=False).tolist())


def time_cut(lo: datetime, hi: datetime, test_fraction: float, model: str, unit: timedelta) -> datetime:
    """The chronological cut at ``1 - test_fraction`` of [lo, hi], floored to whole ``unit``s after ``lo``."""
    if not 0 < test_fraction < 1:
        raise InputError(f"{model}: test_fraction must be in (0, 1), got {test_fraction}")
    cut = lo + (hi - lo) * (1 - test_fraction)
    return lo + unit * math.floor((cut - lo) / unit)
