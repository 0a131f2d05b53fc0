"""Dataset of m11 (power-flow optimisation), built from the store.

``power_flow_optimization`` (m11)
    Load: the real UCI household (source ``uci``, kind ``meter``; ingest it first with
    ``gridtwin ingest uci`` or :func:`gridtwin_lib.ingest.uci.ingest_uci`). It is real demand
    with real day-to-day surprises, which is what a day-ahead schedule has to survive. PV: the solar twin (``pv_normal``) run at
    the UCI site (Sceaux, 48.78 N) for one year, paired with UCI days by calendar day (month,
    day), so PV weather repeats every year. Hours are local (UCI clock, UTC+1).
    Foresight: the schedule of day D sees only a forecast made at midnight before D:
    ``load_forecast`` ``mean_7d`` (mean of the same hour over D-7..D-1, default), ``last_week``
    (same hour of D-7) or ``previous_day``; ``pv_forecast`` ``mean_7d`` (default) or
    ``previous_day``. ``y`` is the actual load and PV of D, used only to re-simulate.
    Tariff (time of use, local hours): off-peak ``price_offpeak`` €/kWh in ``offpeak_hours``,
    peak ``price_peak`` in ``peak_hours``, shoulder ``price_shoulder`` otherwise; each left None
    comes from the configuration's default tariff (``conf/base/tariffs.yaml``). Feed-in, demand
    charge and battery are model parameters.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.energy.power_flow_optimization import FORECAST_COLUMNS, HOURS

#: the solar-twin run it reads by default: the UCI house's PV plant (runs per size:
#: ``conf/base/models/energy/power_flow_optimization.yaml``; the plant: ``pv_plants`` of ``conf/base/sites.yaml``)
PV_SOURCE = "sim:m11_pv"
UCI = "uci"


def __getattr__(name: str):
    """``PV_AT_SCEAUX``: the UCI house's PV plant as solar-twin parameters, from the configuration
    (``sources.uci.pv_plant`` of ``sites.yaml``); read when first asked for."""
    if name == "PV_AT_SCEAUX":
        from ... import settings

        return settings.pv_plant(settings.source_profile(UCI).pv_plant)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: builders that also need the UCI data ingested (``gridtwin ingest uci``): not a simulation
NEEDS_UCI = ("power_flow_optimization",)


def _iso(x) -> str:
    return pd.Timestamp(x).isoformat()


# --------------------------------------------------------------------------- m11


def _hourly_local(lf: pl.LazyFrame, value: pl.Expr, tz: str) -> pl.DataFrame:
    """Mean of ``value`` per local clock hour -> columns date, hour, value, n."""
    return (
        lf.select(pl.col("ts").dt.convert_time_zone(tz).dt.truncate("1h").alias("t"), value.alias("value"))
        .drop_nulls("value")
        .group_by("t").agg(pl.col("value").mean(), pl.len().alias("n"))
        .select(pl.col("t").dt.date().alias("date"), pl.col("t").dt.hour().cast(pl.Int32).alias("hour"), "value", "n")
        .collect()
    )


def _complete_days(hourly: pl.DataFrame) -> dict[date, np.ndarray]:
    """{date: 24 hourly values} for days with all 24 local hours."""
    full = hourly.group_by("date").agg(pl.len().alias("k")).filter(pl.col("k") == HOURS)["date"]
    rows = hourly.filter(pl.col("date").is_in(full.implode())).sort("date", "hour")
    vals = rows["value"].to_numpy().reshape(-1, HOURS)
    return dict(zip(rows["date"].to_list()[::HOURS], vals))


def tou_price(hours: np.ndarray, offpeak: float, shoulder: float, peak: float,
              peak_hours=(17, 21), offpeak_hours=(23, 7)) -> np.ndarray:
    """Time-of-use price [€/kWh] of local clock hours; windows are [start, end) and may wrap midnight."""
    def inside(window):
        a, b = window
        return (hours >= a) & (hours < b) if a < b else (hours >= a) | (hours < b)
    return np.where(inside(peak_hours), peak, np.where(inside(offpeak_hours), offpeak, shoulder)).astype(float)


def _forecast(get, day: date, how: str, what: str) -> np.ndarray | None:
    """Forecast of ``day`` from days strictly before it (``get(d)`` -> 24 values or None)."""
    lags = {"previous_day": [1], "last_week": [7], "mean_7d": list(range(1, 8))}
    if how not in lags:
        raise InputError(f"m11 dataset: {what} forecast {how!r} is not one of {sorted(lags)}")
    past = [get(day - timedelta(days=k)) for k in lags[how]]
    return None if any(p is None for p in past) else np.mean(past, axis=0)


def power_flow_optimization(
    store, *, load_source: str = UCI, pv_source: str = PV_SOURCE, timezone_name: str = "Etc/GMT-1",
    train_start: str = "2009-01-01", test_start: str = "2010-01-01", test_end: str = "2010-11-25",
    load_forecast: str = "mean_7d", pv_forecast: str = "mean_7d", pv_scale: float = 1.0,
    price_offpeak: float | None = None, price_shoulder: float | None = None, price_peak: float | None = None,
    peak_hours: tuple[int, int] | None = None, offpeak_hours: tuple[int, int] | None = None,
) -> Dataset:
    """Days of forecast (X) and actual (y) household load and PV, 24 local hours per day.

    X: ``load_kw``, ``pv_kw`` (forecasts made before the day) and ``price_per_kwh`` [€/kWh];
    y: actual ``load_kw``, ``pv_kw``; meta: date, hour, price_per_kwh, forecast columns.
    Train days in [train_start, test_start), test days in [test_start, test_end] (dates, local).
    Needs the UCI data ingested (``gridtwin ingest uci``) when ``load_source='uci'``.
    Prices [€/kWh] and hour windows [h] left None are the default tariff's (``conf/base/tariffs.yaml``).
    """
    from ... import settings

    tariff = settings.tariff()
    price_offpeak = tariff.offpeak if price_offpeak is None else price_offpeak
    price_shoulder = tariff.shoulder if price_shoulder is None else price_shoulder
    price_peak = tariff.peak if price_peak is None else price_peak
    peak_hours = tariff.peak_hours if peak_hours is None else tuple(peak_hours)
    offpeak_hours = tariff.offpeak_hours if offpeak_hours is None else tuple(offpeak_hours)
    d_train, d_test, d_end = (date.fromisoformat(str(x)) for x in (train_start, test_start, test_end))
    if not d_train < d_test <= d_end:
        raise InputError(f"m11 dataset: need train_start < test_start <= test_end (got {train_start}, {test_start}, {test_end})")
    t0 = datetime.combine(d_train - timedelta(days=9), datetime.min.time(), tzinfo=UTC)
    t1 = datetime.combine(d_end + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    meter = store.scan("meter", source=load_source, start=t0, end=t1)
    valid = pl.col("voltage").is_null() | (pl.col("voltage") > 0)  # firmware sends zeros on a failed read
    load = _complete_days(_hourly_local(meter.filter(valid), pl.col("power") / 1000.0, timezone_name))
    if not load:
        how = "ingest it with `gridtwin ingest uci`" if load_source == UCI else f"simulate it (run_scenario(..., source={load_source!r}))"
        raise InputError(f"m11 dataset: no complete days of meter readings of source {load_source!r} between {t0.date()} and {t1.date()} "
                         f"in {store}; {how}")
    pv_lf = store.scan("pv", source=pv_source)
    first = pv_lf.select(pl.col("device_id").min()).collect()
    if first.height == 0 or first.item() is None:
        raise InputError(f"m11 dataset: no pv readings of source {pv_source!r} in {store}; simulate them first, e.g. "
                         f"run_scenario('pv_normal', source={pv_source!r}, ...): the runs of conf/base/models/energy/power_flow_optimization.yaml")
    pv_days = _complete_days(_hourly_local(pv_lf.filter(pl.col("device_id") == first.item()),
                                           pl.col("ac_power") / 1000.0 * pv_scale, timezone_name))
    by_calendar: dict[tuple[int, int], np.ndarray] = {}
    for d in sorted(pv_days):
        by_calendar.setdefault((d.month, d.day), pv_days[d])

    def pv_of(d: date):
        return by_calendar.get((d.month, min(d.day, 28) if d.month == 2 and d.day == 29 else d.day))

    hours = np.arange(HOURS)
    price = tou_price(hours, price_offpeak, price_shoulder, price_peak, peak_hours, offpeak_hours)
    rows = []
    for day in (d_train + timedelta(days=k) for k in range((d_end - d_train).days + 1)):
        actual_pv = pv_of(day)
        if day not in load or actual_pv is None:
            continue
        f_load = _forecast(load.get, day, load_forecast, "load")
        f_pv = _forecast(pv_of, day, pv_forecast, "pv")
        if f_load is not None and f_pv is not None:
            rows.append((day, f_load, f_pv, load[day], actual_pv))
    if not rows:
        raise InputError(f"m11 dataset: no day in {train_start}..{test_end} has actual load, PV for its calendar day and 7 days of "
                         f"history; check that {load_source!r} covers the range and {pv_source!r} covers those calendar days")
    dates = np.repeat([r[0].isoformat() for r in rows], HOURS)
    frame = pd.DataFrame({
        "date": dates, "hour": np.tile(hours, len(rows)),
        "load_kw": np.concatenate([r[1] for r in rows]), "pv_kw": np.concatenate([r[2] for r in rows]),
        "price_per_kwh": np.tile(price, len(rows)),
        "actual_load_kw": np.concatenate([r[3] for r in rows]), "actual_pv_kw": np.concatenate([r[4] for r in rows]),
    })
    is_test = frame["date"] >= d_test.isoformat()
    train, test = frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)

    def parts(f):
        X = f[list(FORECAST_COLUMNS)]
        y = f[["actual_load_kw", "actual_pv_kw"]].rename(columns={"actual_load_kw": "load_kw", "actual_pv_kw": "pv_kw"})
        meta = f[["date", "hour", "price_per_kwh"]].assign(forecast_load_kw=f["load_kw"], forecast_pv_kw=f["pv_kw"])
        return X, y, meta

    Xtr, ytr, mtr = parts(train)
    Xte, yte, mte = parts(test)
    span = lambda f: [f["date"].min(), f["date"].max()] if len(f) else [None, None]  # noqa: E731
    return Dataset(
        name="m11_power_flow_optimization", X_train=Xtr, y_train=ytr, X_test=Xte, y_test=yte, meta_train=mtr, meta_test=mte,
        split={"train": span(train), "test": span(test), "timezone": timezone_name},
        params={"load_source": load_source, "pv_source": pv_source, "load_forecast": load_forecast, "pv_forecast": pv_forecast,
                "pv_scale": pv_scale, "price_offpeak_per_kwh": price_offpeak, "price_shoulder_per_kwh": price_shoulder,
                "price_peak_per_kwh": price_peak, "peak_hours": list(peak_hours), "offpeak_hours": list(offpeak_hours)},
        description=(f"household load {load_source} + PV {pv_source} by calendar day; forecasts load={load_forecast}, pv={pv_forecast} "
                     "from days before; actuals only for re-simulation"),
    )
