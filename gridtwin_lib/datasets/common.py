"""Helpers the grid-reading dataset builders share: the three_phase features of a source computed
day by day (identical to one pass, memory bounded), its time range, and the chronological cut.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import polars as pl

from ..errors import InputError
from ..features import compute, window_us
from ..store import Store

KIND = "three_phase"



def iso_utc(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def require_source(store: Store, source: str, model: str, scenario_hint: str) -> None:
    if source not in store.sources(KIND):
        raise InputError(f"{model}: no {KIND} measurements from source {source!r} in {store.root}; simulate them first, "
                         f"e.g. run_scenario({scenario_hint}, source={source!r}) (see the model's simulations in conf/base/models/)")


def time_range(store: Store, source: str, start=None, end=None) -> tuple[datetime, datetime, int]:
    """First and last reading [UTC] and the number of readings of ``source`` in [start, end)."""
    r = store.scan(KIND, source=source, start=start, end=end).select(
        pl.col("ts").min().alias("lo"), pl.col("ts").max().alias("hi"), pl.len().alias("n")).collect()
    return r["lo"][0], r["hi"][0], int(r["n"][0])


def features_by_day(store: Store, source: str, start: datetime, end: datetime, windows: tuple[str, ...],
                    columns: tuple[str, ...], site=None, stride: int = 1) -> pl.DataFrame:
    """``features.compute`` on [start, end) of one source, one day at a time with a leading
    margin as long as the longest window (values identical to one pass over all data, memory
    bounded). Returns ts, device_id and ``columns``; ``stride`` > 1 keeps every stride-th
    reading of each device *after* the features are computed (windows still see every reading).
    """
    margin = timedelta(microseconds=max(window_us(w) for w in windows))
    parts = []
    day = start
    while day < end:
        nxt = min(end, day + timedelta(days=1))
        frame = store.scan(KIND, source=source, start=day - margin, end=nxt).collect()
        if frame.height:
            f = compute(frame, KIND, windows=windows, site=site, keep_inputs=True)
            f = f.filter(pl.col("ts") >= day)
            missing = [c for c in columns if c not in f.columns]
            if missing:
                raise InputError(f"source {source!r} lacks what the features {missing[:4]} need (thd_v? frequency?); "
                                 "use a grid-twin three_phase source")
            f = f.select("ts", "device_id", *columns)
            if stride > 1:
                f = f.filter((pl.int_range(pl.len()).over("device_id") % stride) == 0)
            parts.append(f)
        day = nxt
    if not parts:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "device_id": pl.String, **{c: pl.Float64 for c in columns}})
    return pl.concat(parts, how="vertical_relaxed").sort("device_id", "ts")


def float_frame(df: pl.DataFrame, columns) -> pd.DataFrame:
    """``columns`` of ``df`` as float64, in a pandas frame."""
    return df.select([pl.col(c).cast(pl.Float64) for c in columns]).to_pandas()


def iso_or_none(t) -> str | None:
    return None if t is None or pd.isna(t) else pd.Timestamp(t).isoformat()


def source_span(store: Store, source: str, model: str) -> tuple[datetime, datetime]:
    """First and last reading [UTC] of ``source``; InputError naming ``model`` when it has none."""
    if source not in store.sources(KIND):
        raise InputError(f"{model}: no {KIND} measurements from source {source!r} in {store.root}; simulate them first "
                         f"(see the model's simulations in conf/base/models/)")
    r = store.scan(KIND, source=source).select(pl.col("ts").min().alias("lo"), pl.col("ts").max().alias("hi"),
                                               pl.len().alias("n")).collect()
    if int(r["n"][0]) == 0:
        raise InputError(f"{model}: source {source!r} has no readings")
    return r["lo"][0], r["hi"][0]


def round_cut(los, his, test_fraction: float, round_s: int) -> datetime:
    """The instant at ``1 - test_fraction`` of [min(los), max(his)], floored to ``round_s`` seconds [UTC]."""
    lo, hi = min(los), max(his)
    cut = lo + (hi - lo) * (1.0 - test_fraction)
    epoch = int(cut.timestamp()) // round_s * round_s
    return datetime.fromtimestamp(epoch, tz=UTC)
