"""Dataset of m18 (PV forecast 1-6 h ahead), from the solar twin run on TMY3 weather.

The twin (``pv_normal``, ``weather: tmy3``, no synthetic clouds: ``cloudiness: 0``) replays pvlib's
bundled TMY3 year (Greensboro NC): its clouds are measured ones. The run is 365 days long, so
every calendar day of the TMY3 year appears once: a longer run would repeat the same weather
in the test range and leak it.

Hourly power ``P`` [kW] is the mean of the plant's ``ac_power`` readings in the hour ending at
each full hour (UTC), labelled by that end, so the value at t is known at t. The clear-sky power
``P_cs`` comes from :func:`gridtwin_lib.physics.solar.clear_sky_ac_power` with the plant's
parameters (``plant``: solar-twin parameters; its latitude, longitude and altitude must be the
weather's site) at the reference ambient ``reference_temp_c``, at the same instants.

One row per device and **daylight** issue time t (``P_cs(t)`` at least ``min_clear_sky_fraction``
of the inverter rating) with every input known at t (see
:data:`gridtwin_lib.models.maintenance.pv_forecast.PV_INPUT_COLUMNS`); y = ``P(t+1..t+6)`` [kW];
meta: ``device_id``, ``issued_at`` [UTC], ``date`` (local day of the issue, the bootstrap block),
``hour_h<h>`` (local standard hour of each target) and ``daylight_h<h>`` (``P_cs(t+h) > 0``: the
metric counts these targets only). Time split: test rows are issued on or after the local midnight
at ``1 - test_fraction`` of the span; training rows have all six targets before it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.maintenance.pv_forecast import HORIZONS, LAGS, PV_INPUT_COLUMNS, PV_OUTPUTS
from ...physics.solar import clear_sky_ac_power, clear_sky_index

#: the solar-twin run it reads (runs per size: ``conf/base/models/maintenance/pv_forecast.yaml``)
PV_SOURCE = "sim:m18_pv_tmy3"
#: the plant parameters the clear-sky power needs (the others of ``plant`` are the twin's own)
PLANT_KEYS = ("latitude", "longitude", "altitude", "tilt_deg", "azimuth_deg", "pv_kw", "inverter_kw", "gamma_pdc", "eta_inv_nom")
HOUR = pd.Timedelta(hours=1)


def _physical(plant: Mapping[str, Any]) -> dict[str, float]:
    missing = [k for k in PLANT_KEYS[:7] if k not in plant]
    if missing:
        raise InputError(f"m18 dataset: the plant lacks {', '.join(missing)} (solar-twin parameters of the plant)")
    return {k: float(plant[k]) for k in PLANT_KEYS if k in plant}


def hourly_power(readings: pl.DataFrame) -> pd.DataFrame:
    """Mean ``ac_power`` [W -> kW] per device and hour ending at a full hour (UTC): columns device_id, ts, p_kw."""
    end = (pl.col("ts") - pl.duration(microseconds=1)).dt.truncate("1h") + pl.duration(hours=1)
    hourly = (readings.drop_nulls("ac_power").group_by("device_id", end.alias("ts"))
              .agg((pl.col("ac_power").mean() / 1000.0).alias("p_kw")).sort("device_id", "ts"))
    return hourly.to_pandas()


def _shifted(a: np.ndarray, n: int, by: int) -> np.ndarray:
    """``a[i + by]`` for the first ``n`` positions i (NaN outside ``a``)."""
    idx = np.arange(n) + by
    ok = (idx >= 0) & (idx < len(a))
    return np.where(ok, a[np.clip(idx, 0, len(a) - 1)], np.nan)


def pv_forecast_rows(hourly: pd.DataFrame, plant: Mapping[str, Any], *, utc_offset_h: float,
                     min_clear_sky_fraction: float = 0.05, reference_temp_c: float = 20.0,
                     targets: bool = True) -> pd.DataFrame:
    """Inputs (``PV_INPUT_COLUMNS``), targets (``PV_OUTPUTS``, NaN when ``targets`` is False or
    not yet observed) and meta of every daylight issue time with complete inputs.

    Parameters
    ----------
    hourly : device_id, ts (UTC, end of the hour), p_kw [kW], as :func:`hourly_power` returns.
    plant : the plant's solar-twin parameters (latitude, longitude [deg], altitude [m], tilt_deg,
        azimuth_deg [deg], pv_kw, inverter_kw [kW], optionally gamma_pdc [1/K], eta_inv_nom [1]).
    utc_offset_h : the site's standard time [h from UTC] (local hour, day of year, day blocks).
    min_clear_sky_fraction : an issue time is daylight when ``P_cs(t)`` is at least this share of
        ``inverter_kw``; also the floor of the clear-sky index's denominator [1].
    reference_temp_c : ambient temperature of the clear-sky power [degC].
    targets : False at serving time (the rows' targets are the future).
    """
    phys = _physical(plant)
    floor_kw = float(min_clear_sky_fraction) * phys["inverter_kw"]
    parts = []
    for device, g in hourly.groupby("device_id", sort=True):
        ts = pd.DatetimeIndex(pd.to_datetime(g["ts"], utc=True))
        grid = pd.date_range(ts.min(), ts.max() + max(HORIZONS) * HOUR, freq="h")
        p = pd.Series(g["p_kw"].to_numpy(float), index=ts).reindex(grid).to_numpy()
        pcs = clear_sky_ac_power(grid, temp_air_c=reference_temp_c, **phys)
        k = clear_sky_index(p, pcs, floor_kw=floor_kw)  # NaN where the hour is missing
        n = len(grid) - max(HORIZONS)  # issue times with clear-sky power known at every lead time

        def shifted(a: np.ndarray, by: int, n: int = n) -> np.ndarray:
            return _shifted(a, n, by)

        cols: dict[str, np.ndarray] = {}
        for lag in LAGS:
            cols[f"p_kw_lag{lag}"] = shifted(p, -lag)
            cols[f"k_lag{lag}"] = shifted(k, -lag)
        cols["pcs_kw_lag0"] = pcs[:n]
        for h in HORIZONS:
            cols[f"pcs_kw_h{h}"] = shifted(pcs, h)
        for h in HORIZONS:
            cols[f"p_kw_yday_h{h}"] = shifted(p, h - 24)
        for h in HORIZONS:
            cols[f"k_yday_h{h}"] = shifted(k, h - 24)
        local = grid[:n] + pd.Timedelta(hours=utc_offset_h)
        hour = local.hour.to_numpy() + local.minute.to_numpy() / 60
        doy = local.dayofyear.to_numpy()
        cols.update(hour_sin=np.sin(2 * math.pi * hour / 24), hour_cos=np.cos(2 * math.pi * hour / 24),
                    doy_sin=np.sin(2 * math.pi * doy / 365.25), doy_cos=np.cos(2 * math.pi * doy / 365.25))
        frame = pd.DataFrame(cols)[list(PV_INPUT_COLUMNS)]
        for h, name in zip(HORIZONS, PV_OUTPUTS, strict=True):
            frame[name] = shifted(p, h) if targets else np.nan
        frame["device_id"] = str(device)
        frame["issued_at"] = grid[:n]
        frame["date"] = local.strftime("%Y-%m-%d")
        for h in HORIZONS:
            frame[f"hour_h{h}"] = ((local + h * HOUR).hour).astype(int)
            frame[f"daylight_h{h}"] = shifted(pcs, h) > 0
        # daylight issue times with at least one daylight target (the last light of a day forecasts the night)
        keep = (pcs[:n] >= floor_kw) & (_shifted(pcs, n, 1) > 0) & np.isfinite(frame[list(PV_INPUT_COLUMNS)].to_numpy()).all(axis=1)
        if targets:
            keep &= np.isfinite(frame[list(PV_OUTPUTS)].to_numpy()).all(axis=1)
        parts.append(frame[keep])
    if not parts:
        return pd.DataFrame(columns=[*PV_INPUT_COLUMNS, *PV_OUTPUTS, "device_id", "issued_at", "date"])
    return pd.concat(parts, ignore_index=True).sort_values(["issued_at", "device_id"], kind="stable").reset_index(drop=True)


def pv_forecast(store, *, source: str = PV_SOURCE, plant: Mapping[str, Any] | None = None, utc_offset_h: float = -5.0,
                test_fraction: float = 0.25, min_clear_sky_fraction: float = 0.05, reference_temp_c: float = 20.0) -> Dataset:
    """Train/test rows of m18 from the solar-twin run ``source`` (see the module docstring).

    Parameters
    ----------
    store : the :class:`~gridtwin_lib.store.Store` holding the run.
    source : the run's source (``sim:...``).
    plant : the run's plant (solar-twin parameters; its position must be the weather's site).
    utc_offset_h : the site's standard time [h from UTC] (TMY3 Greensboro: -5).
    test_fraction : share of the span (rounded to a local midnight) held out at its end.
    min_clear_sky_fraction, reference_temp_c : see :func:`pv_forecast_rows`.
    """
    if plant is None:
        raise InputError("m18 dataset: give the plant (solar-twin parameters: position, orientation, ratings)")
    if not 0 < test_fraction < 1:
        raise InputError(f"m18 dataset: test_fraction must be in (0, 1), got {test_fraction}")
    if source not in store.sources("pv"):
        raise InputError(f"m18 dataset: no pv measurements from source {source!r} in {store.root}; simulate them first "
                         "(the model's simulations in conf/base/models/maintenance/pv_forecast.yaml, notebook 00_data)")
    readings = store.scan("pv", source=source).select("ts", "device_id", "ac_power").collect()
    rows = pv_forecast_rows(hourly_power(readings), plant, utc_offset_h=utc_offset_h,
                            min_clear_sky_fraction=min_clear_sky_fraction, reference_temp_c=reference_temp_c)
    if rows.empty:
        raise InputError(f"m18 dataset: source {source!r} has no daylight hour with 24 h of history and 6 h ahead; simulate longer")
    offset = pd.Timedelta(hours=utc_offset_h)
    lo, hi = rows["issued_at"].min(), rows["issued_at"].max()
    cut = ((lo + (hi - lo) * (1 - test_fraction)) + offset).floor("D") - offset  # a local midnight [UTC]
    last_target = rows["issued_at"] + max(HORIZONS) * HOUR
    train, test = rows[last_target < cut], rows[rows["issued_at"] >= cut]
    meta_cols = ["device_id", "issued_at", "date", *[f"hour_h{h}" for h in HORIZONS], *[f"daylight_h{h}" for h in HORIZONS]]
    iso = lambda t: pd.Timestamp(t).isoformat()  # noqa: E731 - local shorthand
    return Dataset(
        name="pv_forecast",
        X_train=train[list(PV_INPUT_COLUMNS)].reset_index(drop=True), y_train=train[list(PV_OUTPUTS)].reset_index(drop=True),
        X_test=test[list(PV_INPUT_COLUMNS)].reset_index(drop=True), y_test=test[list(PV_OUTPUTS)].reset_index(drop=True),
        meta_test=test[meta_cols].reset_index(drop=True), meta_train=train[meta_cols].reset_index(drop=True),
        split={"train": [iso(lo), iso(cut)], "test": [iso(cut), iso(hi + max(HORIZONS) * HOUR)]},
        params={"source": source, "utc_offset_h": utc_offset_h, "test_fraction": test_fraction,
                "min_clear_sky_fraction": min_clear_sky_fraction, "reference_temp_c": reference_temp_c,
                **{f"plant_{k}": v for k, v in _physical(plant).items()}},
        description=(f"{source}: hourly AC power 1-6 h ahead from daylight issue times, {train['device_id'].nunique()} plant(s); "
                     f"train issued before {cut.date()}, test from then (local days); metric on daylight target hours"),
    )
