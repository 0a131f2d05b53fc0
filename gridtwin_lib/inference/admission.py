"""Admission of readings into the engine: any layout in, canonical three_phase readings out,
every reading that cannot be scored (missing field, hard limit, unknown device, duplicate, out
of order) with its typed error."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import pandas as pd
import polars as pl

from .. import schema
from ..errors import InputError
from ..models.serving import error_row
from ..small_frames import SMALL_ROWS

REQUIRED = ("ts", "device_id", "v_a", "v_b", "v_c", "i_a", "i_b", "i_c")


def as_frame(readings) -> pl.DataFrame:
    """Readings given as a polars or pandas frame, a mapping or an iterable of mappings, as a polars frame."""
    if isinstance(readings, pl.DataFrame):
        return readings
    if isinstance(readings, pd.DataFrame):
        return pl.from_pandas(readings)
    if isinstance(readings, Mapping):
        readings = [readings]
    rows = list(readings)
    if not rows:
        return pl.DataFrame()
    if len(rows) == 1:  # one reading (score_one, a live device): the row constructor is ~9x faster and types alike
        try:
            return pl.DataFrame(rows)
        except (pl.exceptions.PolarsError, TypeError, ValueError):
            pass
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame({k: [r.get(k) for r in rows] for k in keys}, strict=False)


def canonical(df: pl.DataFrame) -> pl.DataFrame:
    """Cast to the three_phase schema (ts to UTC; text timestamps parsed), keep ``row``."""
    ts = df["ts"]
    if ts.dtype != schema.POLARS_TS:
        if ts.dtype == pl.String:
            ts = ts.str.to_datetime(time_zone="UTC", strict=False)
        elif isinstance(ts.dtype, pl.Datetime):
            ts = ts.dt.replace_time_zone("UTC") if ts.dtype.time_zone is None else ts.dt.convert_time_zone("UTC")
        df = df.with_columns(ts.cast(schema.POLARS_TS).alias("ts"))
    # every field in storage order, typed (numbers leniently: text that is no number is null); column by
    # column, as a select of a few readings would spend longer planning than casting
    have, numeric, n = set(df.columns), _numeric_fields(), df.height
    cols = []
    for name, dtype in schema.polars_schema("three_phase").items():
        if name in have:
            col = df.get_column(name)
            cols.append(col if col.dtype == dtype else col.cast(dtype, strict=name not in numeric))
        else:
            default = {"quality_flags": 0, "source": "inference"}.get(name)
            cols.append(pl.Series(name, [default], dtype=dtype).new_from_index(0, n) if n else pl.Series(name, [], dtype=dtype))
    return pl.DataFrame([*cols, df.get_column("row")])


@functools.cache
def _numeric_fields() -> frozenset[str]:
    return frozenset(f.name for f in schema.value_fields("three_phase"))


def admit(df: pl.DataFrame, errors: list[dict], *, site, devices: frozenset[str] | None,
          last_us: Mapping[str, int]) -> pl.DataFrame:
    """The readings of ``df`` (with its ``row``) that may be scored, by device, time and ``row``; every
    other one gets its error.

    Parameters
    ----------
    df : readings, any layout; ``row`` is each reading's input position.
    errors : list the errors are appended to (:func:`~gridtwin_lib.models.serving.error_row`).
    site : :class:`~gridtwin_lib.config.Site` whose hard limits apply.
    devices : the only device ids accepted, or None for any.
    last_us : device -> its last scored (or held) reading [µs since the epoch, UTC]; a reading not after it is out of order.
    """
    absent = [c for c in REQUIRED if c not in df.columns]
    if absent:
        msg = f"reading lacks field(s) {', '.join(absent)}; send canonical three_phase fields ({', '.join(REQUIRED)})"
        errors.extend(error_row(r, "missing_field", msg) for r in df.select("row", *[c for c in ("ts", "device_id") if c in df.columns]).iter_rows(named=True))
        return df.clear()
    try:
        df = canonical(df)
    except (InputError, pl.exceptions.PolarsError, ValueError) as exc:
        msg = f"readings could not be read as three_phase fields: {str(exc).splitlines()[0]}"
        errors.extend(error_row(r, "missing_field", msg) for r in df.select("row").iter_rows(named=True))
        return df.clear()
    if any(df[c].null_count() for c in REQUIRED):
        nulls = df.select("row", "ts", "device_id", pl.concat_str(
            [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in REQUIRED], separator=",", ignore_nulls=True).alias("_null"))
        bad = nulls.filter(pl.col("_null") != "")
        errors.extend(error_row(r, "missing_field", f"field(s) {r['_null']} are null; the reading needs every phase's voltage and current")
                      for r in bad.iter_rows(named=True))
        df = df.filter(~pl.col("row").is_in(bad["row"].implode()))
    if df.height:
        v = schema.validate(df, "three_phase", site=site)
        for r in v.rejected.iter_rows(named=True):
            errors.append(error_row(r, "hard_limit", f"outside hard limits ({r['detail']}): {_rule_text(r['rule'])}"))
        df = v.accepted
    if devices is not None and df.height:
        unknown = df.filter(~pl.col("device_id").is_in(list(devices)))
        errors.extend(error_row(r, "unknown_device", f"device {r['device_id']!r} is not one the engine serves; register it "
                                                "(gridtwin devices add) or score without a device list") for r in unknown.iter_rows(named=True))
        df = df.filter(pl.col("device_id").is_in(list(devices)))
    if df.height == 0:
        return df
    if df.height > 1:
        df = _by_device_and_time(df)
    # by device and time from here: each device's readings are one run
    ts = df["ts"].cast(pl.Int64).to_numpy()
    run = df["device_id"].rle_id().to_numpy() if df.height > 1 else np.zeros(1, np.uint32)
    repeated = np.concatenate([[False], (run[1:] == run[:-1]) & (ts[1:] == ts[:-1])])  # its device and instant again
    if repeated.any():
        mask = pl.Series(repeated)
        errors.extend(error_row(r, "duplicate", "a reading of this device at this instant is already in the batch")
                      for r in df.filter(mask).iter_rows(named=True))
        df, ts, run = df.filter(~mask), ts[~repeated], run[~repeated]
    starts = np.flatnonzero(np.concatenate([[True], run[1:] != run[:-1]]))
    ids = df["device_id"].gather(starts).to_list() if len(starts) > 64 else [df["device_id"][int(k)] for k in starts]
    if not any(d in last_us for d in ids):
        return df
    # each reading against its device's last held instant (none: the earliest instant there is)
    floor = np.iinfo(np.int64).min
    last = np.repeat(np.array([last_us.get(d, floor) for d in ids], dtype=np.int64), np.diff(np.append(starts, len(ts))))
    old = ts <= last
    if not old.any():
        return df
    mask = pl.Series(old)
    errors.extend(error_row(r, "out_of_order", f"older than this device's last scored reading ({r['_last']:%Y-%m-%d %H:%M:%S}); "
                                          "send each device's readings in time order")
                  for r in df.filter(mask).with_columns(pl.Series("_last", last[old]).cast(schema.POLARS_TS)).iter_rows(named=True))
    return df.filter(~mask)


def _by_device_and_time(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` sorted by ``device_id``, ``ts`` and ``row``; a live poll's few readings with NumPy (a
    Polars sort costs more to plan than to run there), a large batch with Polars' threads."""
    if df.height > SMALL_ROWS:
        return df.sort("device_id", "ts", "row")
    _, device_rank = np.unique(np.array(df["device_id"].to_list(), dtype=object), return_inverse=True)
    order = np.lexsort((df["row"].to_numpy(), df["ts"].cast(pl.Int64).to_numpy(), device_rank))  # last key first
    return df if (order[1:] > order[:-1]).all() else df[pl.Series(order)]


def _rule_text(name: str | None) -> str:
    for rule in schema.rules_for("three_phase", "hard"):
        if rule.name == name:
            return rule.description
    return "" if name is None else name


__all__ = ["REQUIRED", "as_frame", "canonical", "admit"]
