"""The feature catalog: one definition per feature, serving training and serving alike.

Three groups, for ``three_phase`` records (a subset for single-phase ``meter``):

* **per reading**: phase averages and deviations from nominal, NEMA voltage and
  current unbalance, P/Q/S per phase and total, power factor per phase and total,
  lagging/leading, frequency deviation, soft-flag indicators;
* **trailing windows** (default 1 min, 15 min, 1 h): mean, std, min, max,
  least-squares slope (RoCoF for frequency), soft-flag counts, reading count;
* **calendar**: local hour and weekday, weekend, public holiday (``holidays``
  package, Australian by default), month, day-of-year cycle, daylight (pvlib
  sunrise/sunset at the site).

Windows are by *time*, not row count (``rolling_*_by`` on ``ts``) and closed on
the right: the value at t uses readings in (t − w, t] only, so nothing after t
leaks in (a test changes every later value and checks). Gaps shorten a window's
reading count (``n_<w>``) rather than stretching it.

Phase angles between phases are not measured by the canonical record, so
unbalance is the NEMA ratio on magnitudes (max deviation from the mean / mean)
and the neutral-current estimate assumes ideal 120° voltage phasors.

Everything is a pure function of one frame (rows of one or many devices), with
no global state, so the same functions can run per partition elsewhere.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from functools import lru_cache, partial

import numpy as np
import polars as pl

from .config import Site, default_site
from .schema import SOFT_RULE_BITS

DEFAULT_WINDOWS: tuple[str, ...] = ("1m", "15m", "1h")
_PHASES = ("a", "b", "c")


@dataclass(frozen=True)
class Feature:
    """One catalog entry: the single description used by docs, CLI and code."""

    name: str
    unit: str
    formula: str
    window: str | None
    group: str  # reading | window | calendar
    kinds: tuple[str, ...]

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------- per reading


def _reading_table(kind: str, thd: bool) -> tuple[Feature, ...]:
    """The per-reading features of ``kind`` in catalog order; their values come from the
    compiled row functions of :mod:`.features_kernels` (one per kind), which both the batch
    and the incremental executor run."""
    return tuple(Feature(name, unit, formula, None, "reading", (kind,))
                 for name, unit, formula in _READING_SPEC[kind] if thd or name != "thd_v_pct")


_COMMON_READING = [
    ("freq_dev_hz", "Hz", "frequency - f_nom"),
    ("freq_dev_abs_hz", "Hz", "|frequency - f_nom|"),
    ("flag_voltage", "bool", "1 when quality_flags has soft.voltage_en50160"),
    ("flag_frequency", "bool", "1 when quality_flags has soft.frequency_band"),
]
#: (name, unit, formula) per kind, in the order of the kernels' outputs
_READING_SPEC: dict[str, list[tuple[str, str, str]]] = {
    "three_phase": [
        ("v_mean_v", "V", "(v_a + v_b + v_c) / 3"),
        *[(f"v_{ph}_dev_pct", "%", f"100 (v_{ph} - V_nom) / V_nom") for ph in _PHASES],
        ("v_mean_dev_pct", "%", "100 (v_mean - V_nom) / V_nom"),
        ("v_max_abs_dev_pct", "%", "max over phases of |v_x - V_nom| / V_nom * 100"),
        ("v_spread_v", "V", "max(v) - min(v) over phases"),
        ("v_unbalance_pct", "%", "NEMA: 100 max|v_x - v_mean| / v_mean (magnitudes only)"),
        ("i_mean_a", "A", "(i_a + i_b + i_c) / 3"),
        ("i_max_a", "A", "max(i_a, i_b, i_c)"),
        ("i_unbalance_pct", "%", "NEMA: 100 max|i_x - i_mean| / i_mean (0 when no current)"),
        # neutral current: phasor sum of the phase currents, voltage phasors assumed at
        # 0, -120, +120 deg; cos(phi) = p/s and sin(phi) = q/s, so no trigonometry per row
        ("i_neutral_est_a", "A", "|sum_x i_x e^{j(theta_x - phi_x)}|, theta = 0/-120/+120 deg, phi_x = atan2(q_x, p_x)"),
        ("p_total_w", "W", "p_a + p_b + p_c"),
        ("q_total_var", "var", "q_a + q_b + q_c"),
        *[(f"s_{ph}_va", "VA", f"sqrt(p_{ph}^2 + q_{ph}^2)") for ph in _PHASES],
        ("s_total_va", "VA", "s_a + s_b + s_c (arithmetic apparent power)"),
        *[(f"pf_{ph}", "1", f"|p_{ph}| / s_{ph} (null when s = 0)") for ph in _PHASES],
        ("pf_total", "1", "|p_total| / s_total (arithmetic)"),
        ("pf_lagging", "bool", "1 when q_total > 0 (inductive), else 0"),
        *[(f"p_share_{ph}", "1", f"p_{ph} / p_total (null when p_total = 0)") for ph in _PHASES],
        ("vi_consistency", "1", "sum_x v_x i_x / s_total: 1 when V, I, P and Q agree"),
        ("thd_v_pct", "%", "thd_v as measured"),
        *_COMMON_READING,
    ],
    "meter": [
        ("v_dev_pct", "%", "100 (voltage - V_nom) / V_nom"),
        ("v_abs_dev_pct", "%", "|voltage - V_nom| / V_nom * 100"),
        ("s_vi_va", "VA", "voltage * current"),
        ("p_w", "W", "power"),
        ("pf_est", "1", "measured power_factor, else |power| / (voltage current)"),
        ("q_var", "var", "reactive_power as measured"),
        ("pf_lagging", "bool", "1 when reactive_power > 0, else 0 (null when not measured)"),
        *_COMMON_READING,
    ],
}
_BOOL_FEATURES = {"pf_lagging", "flag_voltage", "flag_frequency"}


def feature_dtypes(names) -> dict[str, pl.DataType]:
    """The batch executor's dtype of each feature in ``names``: Int8 flags, small-int calendar
    fields, Float64 otherwise (what another executor casts its float values to)."""
    return {n: pl.Int8 if n in _BOOL_FEATURES else _CALENDAR_DTYPES.get(n, pl.Float64) for n in names}


def reading_kernel(kind: str):
    """(row function, batch function, input names, output names) of ``kind``'s per-reading kernel."""
    from . import features_kernels as fk

    if kind == "three_phase":
        return fk.three_phase_row, fk.three_phase_rows, fk.THREE_PHASE_INPUTS, fk.THREE_PHASE_OUTPUTS
    return fk.meter_row, fk.meter_rows, fk.METER_INPUTS, fk.METER_OUTPUTS


def kernel_constants(site: Site) -> tuple[float, float, int, int]:
    """(V_nom [V], f_nom [Hz], voltage flag bit, frequency flag bit) the reading kernels take."""
    return (float(site.nominal_voltage_v), float(site.nominal_frequency_hz),
            1 << SOFT_RULE_BITS["soft.voltage_en50160"], 1 << SOFT_RULE_BITS["soft.frequency_band"])


def _reading_block(df: pl.DataFrame, kind: str, site: Site, pool: ThreadPoolExecutor | None = None,
                   also: tuple[str, ...] = ()) -> tuple[np.ndarray, dict[str, int]]:
    """The per-reading features of every row of ``df`` as one block (features x readings, NaN
    where missing), followed by the input columns of ``also`` that are not among them (the
    measured window bases), and the row of each name. The window kernels read their bases
    from this block, so the batch executor holds no second copy of them."""
    _row, rows_fn, inputs, outputs = reading_kernel(kind)
    x = np.empty((len(inputs), df.height))  # column-major: one contiguous row per input

    def fill(k: int, name: str) -> None:
        x[k] = df[name].cast(pl.Float64).to_numpy() if name in df.columns else np.nan

    _in_parallel(pool, [partial(fill, k, name) for k, name in enumerate(inputs)])
    extra = [name for name in also if name not in outputs]
    out = np.empty((len(outputs) + len(extra), df.height))
    constants = kernel_constants(site)
    kernel_rows = len(outputs)
    _in_parallel(pool, [partial(lambda r: rows_fn(x[:, r], *constants, out[:kernel_rows, r]), r) for r in _halves(df.height, pool)])
    for k, name in enumerate(extra, start=kernel_rows):
        out[k] = x[inputs.index(name)] if name in inputs else df[name].cast(pl.Float64).to_numpy()
    return out, {name: k for k, name in enumerate([*outputs, *extra])}


def _reading_frame(df: pl.DataFrame, kind: str, block: np.ndarray, pool: ThreadPoolExecutor | None = None) -> list[pl.Series]:
    """The per-reading features of :func:`_reading_block` as Series (NaN becomes null)."""
    outputs = reading_kernel(kind)[3]
    names = set(f.name for f in _reading_table(kind, "thd_v" in df.columns))
    keep = [k for k, name in enumerate(outputs) if name in names]
    series = _nan_as_null([outputs[k] for k in keep], block, keep, pool)
    return [s.cast(pl.Int8) if s.name in _BOOL_FEATURES else s for s in series]


def _nan_as_null(names: list[str], block: np.ndarray, rows: list[int] | None = None,
                 pool: ThreadPoolExecutor | None = None) -> list[pl.Series]:
    """Rows of ``block`` (features x readings) as Float64 Series with NaN as null, without
    copying the values: each Series is an Arrow array over the block's row and a validity
    bitmap, which is what keeps the batch executor's peak memory near its output's size."""
    from .features_kernels import validity_bits

    rows = list(range(block.shape[0])) if rows is None else rows
    bits = np.empty((block.shape[0], (block.shape[1] + 63) // 64), np.uint64)
    any_missing = np.empty(block.shape[0], np.bool_)
    parts = [slice(0, block.shape[0])] if pool is None else [slice(0, block.shape[0] // 2), slice(block.shape[0] // 2, None)]
    _in_parallel(pool, [partial(validity_bits, block[p], bits[p], any_missing[p]) for p in parts])
    return [_arrow_series(name, block[k], bits[k] if any_missing[k] else None) for name, k in zip(names, rows)]


def _arrow_series(name: str, values: np.ndarray, bits: np.ndarray | None) -> pl.Series:
    """A Float64 Series over ``values`` (contiguous, not copied) with an optional validity bitmap."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    buffers = [None if bits is None else pa.py_buffer(np.ascontiguousarray(bits, dtype=bits.dtype.newbyteorder("<")).view(np.uint8)),
               pa.py_buffer(values)]
    return pl.Series(name, pa.Array.from_buffers(pa.float64(), values.size, buffers))


def _halves(rows: int, pool: ThreadPoolExecutor | None, align: int = 1) -> list[slice]:
    """``range(rows)`` as one slice, or two (the first a multiple of ``align`` long) for a pool."""
    if pool is None or rows < 2 * align:
        return [slice(0, rows)]
    half = (rows // 2 // align + (align > 1)) * align
    return [slice(0, min(half, rows)), slice(min(half, rows), rows)] if half < rows else [slice(0, rows)]


def _in_parallel(pool: ThreadPoolExecutor | None, tasks: list) -> list:
    """Run the callables ``tasks`` (compiled kernels that release the GIL) on ``pool`` or in turn."""
    if pool is None:
        return [t() for t in tasks]
    return [f.result() for f in [pool.submit(t) for t in tasks]]


# ----------------------------------------------------------------- windows

#: (base column, name stem, unit, statistics) per kind; slopes are per second
_WINDOW_SPECS: dict[str, list[tuple[str, str, str, tuple[str, ...]]]] = {
    "three_phase": [
        ("v_mean_v", "v", "V", ("mean", "std", "min", "max", "slope")),
        ("v_unbalance_pct", "v_unbalance", "%", ("mean", "max")),
        ("i_mean_a", "i", "A", ("mean", "std", "max")),
        ("p_total_w", "p_total", "W", ("mean", "std", "max", "slope")),
        ("q_total_var", "q_total", "var", ("mean",)),
        ("pf_total", "pf_total", "1", ("mean",)),
        ("frequency", "freq", "Hz", ("mean", "std", "min", "max", "slope")),
        ("flag_voltage", "flag_voltage", "count", ("sum",)),
        ("flag_frequency", "flag_frequency", "count", ("sum",)),
    ],
    "meter": [
        ("voltage", "v", "V", ("mean", "std", "min", "max", "slope")),
        ("power", "p", "W", ("mean", "std", "max", "slope")),
        ("current", "i", "A", ("mean", "max")),
        ("frequency", "freq", "Hz", ("mean", "std", "slope")),
        ("flag_voltage", "flag_voltage", "count", ("sum",)),
    ],
}
_FORMULAS = {
    "mean": "mean of {b} over (t-{w}, t]",
    "std": "sample std of {b} over (t-{w}, t]",
    "min": "min of {b} over (t-{w}, t]",
    "max": "max of {b} over (t-{w}, t]",
    "slope": "least-squares slope of {b} against time over (t-{w}, t]",
    "sum": "readings with {b} = 1 over (t-{w}, t]",
}


def _window_name(stem: str, stat: str, window: str) -> str:
    if stem == "freq" and stat == "slope":
        return f"rocof_{window}"
    if stat == "sum":
        return f"{stem}_count_{window}"
    return f"{stem}_{stat}_{window}"


def _window_catalog(kind: str, windows: tuple[str, ...]) -> list[Feature]:
    feats = []
    for w in windows:
        for base, stem, unit, stats in _WINDOW_SPECS[kind]:
            for stat in stats:
                u = f"{unit}/s" if stat == "slope" else unit
                formula = _FORMULAS[stat].format(b=base, w=w)
                feats.append(Feature(_window_name(stem, stat, w), u, formula, w, "window", (kind,)))
        feats.append(Feature(f"n_{w}", "count", f"readings in (t-{w}, t] (gaps lower it)", w, "window", (kind,)))
    return feats


_WINDOW_UNITS_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}


def window_us(window: str) -> int:
    """``"15m"`` -> microseconds; windows are a whole number of s, m (minutes), h or d."""
    number, unit = window[:-1], window[-1:]
    if not number.isdigit() or unit not in _WINDOW_UNITS_US or int(number) <= 0:
        raise ValueError(f"window {window!r} is not a duration like 30s, 1m, 15m, 1h or 1d")
    return int(number) * _WINDOW_UNITS_US[unit]


def _window_starts(ts_us: np.ndarray, device_codes: np.ndarray, windows: tuple[str, ...],
                   pool: ThreadPoolExecutor | None = None) -> np.ndarray:
    """``starts[w, i]``: the first row j of row i's device with ts_j > ts_i - window w (so (t-w, t]).
    32-bit where the rows allow it: the table lives as long as the window kernels run."""
    from .features_kernels import window_starts

    codes = device_codes.astype(np.int64, copy=False)
    starts = np.empty((len(windows), ts_us.size), np.int32 if ts_us.size < 2**31 else np.int64)
    _in_parallel(pool, [partial(window_starts, ts_us, codes, window_us(w), starts[k]) for k, w in enumerate(windows)])
    return starts


def _device_firsts(device_codes: np.ndarray) -> np.ndarray:
    """The first row of each device (rows sorted by device), starting with 0."""
    if device_codes.size == 0:
        return np.zeros(1, np.int64)
    return np.flatnonzero(np.r_[True, device_codes[1:] != device_codes[:-1]]).astype(np.int64)


_SEGMENT_ROWS = 1 << 16  # rows per prefix-sum segment: keeps running sums small


@dataclass(frozen=True)
class _WindowPlan:
    """What the window kernels compute for one kind and set of windows, in catalog terms."""

    bases: tuple[str, ...]  # base columns, the rows of the kernels' input block
    zero_centre: np.ndarray  # per base: counted as is (soft-flag counts)
    want: np.ndarray  # per base: prefix sums needed beyond the count and sum (1 std, 2 slope)
    sum_names: tuple[str, ...]
    sum_prog: np.ndarray  # per window and base: window, base, rows of mean, std, slope, sum (-1: none)
    extrema: tuple[tuple[str, int, int, bool], ...]  # name, window, base, is_max


@lru_cache(maxsize=32)
def _window_plan(kind: str, windows: tuple[str, ...]) -> _WindowPlan:
    specs = _WINDOW_SPECS[kind]
    names, prog, extrema = [], [], []
    for w_index, w in enumerate(windows):
        for b, (_base, stem, _unit, stats) in enumerate(specs):
            rows = {}
            for stat in stats:
                name = _window_name(stem, stat, w)
                if stat in ("min", "max"):
                    extrema.append((name, w_index, b, stat == "max"))
                else:
                    rows[stat] = len(names)
                    names.append(name)
            if rows:
                prog.append((w_index, b, *(rows.get(stat, -1) for stat in ("mean", "std", "slope", "sum"))))
        prog.append((w_index, -1, len(names), -1, -1, -1))
        names.append(f"n_{w}")
    return _WindowPlan(
        bases=tuple(base for base, *_ in specs),
        zero_centre=np.array(["sum" in stats for *_, stats in specs]),
        want=np.array([("std" in stats) + 2 * ("slope" in stats) for *_, stats in specs], np.int64),
        sum_names=tuple(names), sum_prog=np.array(prog, np.int64).reshape(-1, 6), extrema=tuple(extrema))


def _window_columns(frame: pl.DataFrame, block: np.ndarray, row_of: dict[str, int], kind: str,
                    windows: tuple[str, ...], ts_us: np.ndarray, device_codes: np.ndarray, starts: np.ndarray,
                    runs: list[slice], pool: ThreadPoolExecutor | None, at: np.ndarray | None = None) -> list[pl.Series]:
    """Every window feature of ``frame`` (sorted by device and time; its bases are rows
    ``row_of`` of ``block``, from :func:`_reading_block`) at the rows of ``runs`` (all rows,
    or runs of chosen ones; ``at`` picks the chosen rows out).

    Counts, sums, means, standard deviations and slopes come from prefix sums per segment
    (:func:`.features_kernels.window_sums`); minima and maxima by Polars' rolling rules,
    from blocks (:func:`.features_kernels.window_extremum_blocks`), or from monotonic deques
    where a base holds NaN values (:func:`.features_kernels.window_extremum`). Row ranges
    and extrema run on the pool's two threads at once; the kernels release the GIL.
    """
    from .features_kernels import window_extremum, window_extremum_blocks, window_sums

    plan = _window_plan(kind, windows)
    n = frame.height
    rows = np.array([row_of[base] for base in plan.bases], np.int64)
    missing, empty = np.zeros(rows.size, np.bool_), np.zeros(rows.size, np.bool_)
    nan_at = []  # per base: rows holding a NaN (not a null), which Polars' min/max propagate
    for b, base in enumerate(plan.bases):
        nans = int(np.count_nonzero(np.isnan(block[rows[b]])))
        missing[b], empty[b] = nans > 0, n > 0 and nans == n
        column = frame[base]
        genuine_nan = nans > column.null_count()  # more NaN in the block than nulls in the column
        nan_at.append(column.is_nan().fill_null(False).to_numpy() if genuine_nan else np.zeros(0, np.bool_))
    longest = max(range(len(windows)), key=lambda k: window_us(windows[k]))
    alloc = np.empty if at is None else partial(np.full, fill_value=np.nan)  # rows outside the runs stay NaN
    sums, extreme = alloc((len(plan.sum_names), n)), alloc((len(plan.extrema), n))
    # which windows have no value: from NaN, except for a base holding NaN values (rare)
    present = {e: np.zeros(n, np.bool_) for e, (_name, _w, b, _m) in enumerate(plan.extrema) if nan_at[b].size}
    tasks = [partial(window_sums, block, rows, missing, empty, plan.zero_centre, plan.want, ts_us, starts, longest,
                     plan.sum_prog, r.start, r.stop, _SEGMENT_ROWS, sums) for r in runs if r.stop > r.start]
    device_firsts = _device_firsts(device_codes)
    sizes = [int(np.max(np.arange(n) - s)) + 1 if n else 1 for s in starts]  # longest window of each, in rows

    def extremum(e: int, r: slice) -> None:
        _name, w, b, is_max = plan.extrema[e]
        x = block[rows[b]]
        if e in present:  # a base holding NaN values: the deques tell them from missing ones
            window_extremum(x, nan_at[b], starts[w], is_max, r.start, r.stop, extreme[e], present[e])
        else:
            window_extremum_blocks(x, device_firsts, starts[w], sizes[w], is_max, r.start, r.stop, extreme[e])

    tasks += [partial(extremum, e, r) for e in range(len(plan.extrema)) for r in runs if r.stop > r.start]
    _in_parallel(pool, tasks)
    if at is not None:
        sums, extreme = sums[:, at], extreme[:, at]
        present = {e: p[at] for e, p in present.items()}
    series = _nan_as_null(list(plan.sum_names), sums, pool=pool) + _nan_as_null([name for name, *_rest in plan.extrema], extreme, pool=pool)
    for e, values in present.items():
        bits = None if values.all() else np.packbits(values, bitorder="little")
        series[len(plan.sum_names) + e] = _arrow_series(plan.extrema[e][0], extreme[e], bits)
    return series


# ----------------------------------------------------------------- calendar


def _calendar_catalog(kind: str) -> list[Feature]:
    spec = [
        ("hour", "h", "local hour 0-23"),
        ("minute_of_day", "min", "local minutes since midnight"),
        ("hour_sin", "1", "sin(2 pi minute_of_day / 1440)"),
        ("hour_cos", "1", "cos(2 pi minute_of_day / 1440)"),
        ("weekday", "1", "local ISO weekday, 1 = Monday"),
        ("is_weekend", "bool", "1 on Saturday and Sunday"),
        ("is_holiday", "bool", "1 on a public holiday of the site's country/subdivision (holidays package)"),
        ("month", "1", "local month 1-12"),
        ("doy_sin", "1", "sin(2 pi day_of_year / 365.25)"),
        ("doy_cos", "1", "cos(2 pi day_of_year / 365.25)"),
        ("is_daylight", "bool", "1 between local sunrise and sunset (pvlib SPA at the site)"),
    ]
    return [Feature(n, u, f, None, "calendar", (kind,)) for n, u, f in spec]


_BUCKET_US = 15 * 60 * 1_000_000  # UTC offsets change on quarter hours at most
_CACHED_BUCKETS = 1_000


def _local_microseconds(ts_us: np.ndarray, tz: str) -> np.ndarray:
    """UTC epoch [us] -> local wall-clock epoch [us], converting one instant per quarter hour."""
    first = int(ts_us.min()) // _BUCKET_US * _BUCKET_US
    bucket = (ts_us - first) // _BUCKET_US
    buckets = int(bucket.max()) + 1
    # consecutive single readings fall in the same quarter hour, and a fleet's device-chunks
    # (Spark) in the same days: spans up to about ten days are cached
    offsets = (_cached_utc_offsets_us if buckets <= _CACHED_BUCKETS else _utc_offsets_us)(tz, first, buckets)
    return ts_us + offsets[bucket]


def _utc_offsets_us(tz: str, first_us: int, buckets: int) -> np.ndarray:
    """UTC offset [us] of ``tz`` in each of ``buckets`` quarter hours from ``first_us``."""
    edges = pl.Series(first_us + np.arange(buckets, dtype=np.int64) * _BUCKET_US).cast(pl.Datetime("us", "UTC"))
    offsets = (edges.dt.convert_time_zone(tz).dt.replace_time_zone(None).dt.epoch("us") - edges.dt.epoch("us")).to_numpy()
    offsets.setflags(write=False)
    return offsets


_cached_utc_offsets_us = lru_cache(maxsize=256)(_utc_offsets_us)


_CALENDAR_DTYPES = {"hour": pl.Int8, "minute_of_day": pl.Int16, "weekday": pl.Int8, "is_weekend": pl.Int8,
                    "is_holiday": pl.Int8, "month": pl.Int8, "is_daylight": pl.Int8}


def day_table(site: Site, first_day: int, last_day: int) -> tuple[np.ndarray, ...]:
    """Per local day from ``first_day`` to ``last_day`` (days since 1970-01-01): holiday (0/1),
    sunrise and sunset [s after local midnight], month and day-of-year angle [rad], the
    inputs of the calendar kernel."""
    dates = np.arange(first_day, last_day + 1).astype("datetime64[D]")
    date_list = tuple(dates.astype(object))
    holiday = np.isin(dates, np.array(sorted(_holidays(site, date_list)), dtype="datetime64[D]")).astype(np.float64)
    sunrise_s, sunset_s = _sun_seconds(site, date_list)
    month_of = (dates.astype("datetime64[M]").astype(np.int64) % 12 + 1).astype(np.float64)
    doy_of = (dates - dates.astype("datetime64[Y]")).astype(np.int64) + 1
    return holiday, sunrise_s, sunset_s, month_of, doy_of * (2 * math.pi / 365.25)


def _calendar_columns(ts_us: np.ndarray, site: Site, pool: ThreadPoolExecutor | None = None) -> list[pl.Series]:
    """Calendar features by the calendar kernel on local time (no per-row timezone work)."""
    from .features_kernels import CALENDAR_OUTPUTS, calendar_rows

    if ts_us.size == 0:
        return [pl.Series(name, [], _CALENDAR_DTYPES.get(name, pl.Float64)) for name in CALENDAR_OUTPUTS]
    local_us = _local_microseconds(ts_us, site.timezone)
    day = np.floor_divide(local_us, 86_400_000_000)
    first_day, last_day = int(day.min()), int(day.max())
    tables = day_table(site, first_day, last_day)
    out = np.empty((len(CALENDAR_OUTPUTS), ts_us.size))
    _in_parallel(pool, [partial(lambda r: calendar_rows(local_us[r], first_day, *tables, out[:, r]), r)
                        for r in _halves(ts_us.size, pool)])
    # small integers are cast (copied, a fraction of the size); the float rows are copied
    # out so that the block is freed. NumPy does both without the GIL, on both threads.
    int_types = {pl.Int8: np.int8, pl.Int16: np.int16}
    columns = _in_parallel(pool, [partial(out[k].astype, int_types[_CALENDAR_DTYPES[name]]) if name in _CALENDAR_DTYPES
                                  else out[k].copy for k, name in enumerate(CALENDAR_OUTPUTS)])
    return [pl.Series(name, values) for name, values in zip(CALENDAR_OUTPUTS, columns)]


@lru_cache(maxsize=64)
def _holidays(site: Site, dates: tuple) -> frozenset:
    """Public holidays of the site's country/subdivision in the years of ``dates``."""
    import holidays

    years = sorted({d.year for d in dates})
    return frozenset(holidays.country_holidays(site.country, subdiv=site.subdivision, years=years).keys()) if years else frozenset()


@lru_cache(maxsize=64)
def _sun_seconds(site: Site, dates: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Local sunrise and sunset [s after local midnight] per date, from pvlib's SPA.

    Polar day/night (no sunrise) gives 0/86400 or 0/0 as appropriate.
    """
    import pandas as pd
    from pvlib.solarposition import sun_rise_set_transit_spa

    if not dates:
        return np.array([]), np.array([])
    idx = pd.DatetimeIndex(pd.to_datetime(list(dates))).tz_localize(site.timezone, nonexistent="shift_forward", ambiguous=False)
    sun = sun_rise_set_transit_spa(idx, site.latitude_deg, site.longitude_deg)
    midnight = idx.tz_localize(None)

    def seconds(col: str) -> np.ndarray:
        local = pd.DatetimeIndex(sun[col]).tz_convert(site.timezone).tz_localize(None)
        return np.asarray((local - midnight).total_seconds(), dtype=np.float64)

    return seconds("sunrise"), seconds("sunset")


# ----------------------------------------------------------------- public API


def catalog(kind: str = "three_phase", windows: tuple[str, ...] = DEFAULT_WINDOWS, thd: bool = True) -> list[Feature]:
    """Every feature of ``kind`` with its unit, formula and window, in output order."""
    if kind not in _WINDOW_SPECS:
        raise ValueError(f"features exist for kinds three_phase and meter, not {kind!r}")
    reading = list(_reading_table(kind, thd))
    return reading + _window_catalog(kind, tuple(windows)) + _calendar_catalog(kind)


def feature_names(kind: str = "three_phase", windows: tuple[str, ...] = DEFAULT_WINDOWS) -> list[str]:
    return [f.name for f in catalog(kind, windows)]


#: below this many rows, compute runs on one thread: starting a pool costs more than it saves
_PARALLEL_MIN_ROWS = 50_000
#: ``rows`` computes the chosen rows alone while the readings their windows reach, summed over
#: them, stay under this many times the frame's rows (min/max scan each reach once per window)
_REACH_PER_ROW = 4


def compute(
    frame: pl.DataFrame | pl.LazyFrame,
    kind: str = "three_phase",
    windows: tuple[str, ...] = DEFAULT_WINDOWS,
    site: Site | None = None,
    keep_inputs: bool = True,
    rows: pl.Expr | None = None,
) -> pl.DataFrame:
    """Add the feature catalog to canonical ``kind`` records.

    Rows are returned sorted by ``device_id`` and ``ts``. Each device is
    windowed on its own; no value at t depends on any reading after t.

    ``rows``: a boolean expression on ``frame`` choosing the rows to return; the
    others only feed the windows of the chosen ones (e.g. a device's held history
    when one new reading arrives). The same expressions and window arithmetic run on
    just the rows the chosen ones need, so the values equal those of the whole frame
    (to the last bits of the prefix-sum statistics, which depend on where the sums start).
    """
    site = site or default_site()
    windows = tuple(windows)
    for w in windows:
        window_us(w)
    if kind not in _WINDOW_SPECS:
        raise ValueError(f"features exist for kinds three_phase and meter, not {kind!r}")
    df = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    by_device = df.height > 0 and not (df["device_id"] == df["device_id"][0]).fill_null(False).all()
    ts_us = df["ts"].dt.epoch("us").to_numpy()
    if by_device or not (ts_us[1:] > ts_us[:-1]).all():  # one device in strict time order is sorted already
        df = df.sort(["device_id", "ts"])
        ts_us = df["ts"].dt.epoch("us").to_numpy()
    columns = set(df.columns)
    codes = df["device_id"].rank("dense").cast(pl.Int64).to_numpy() if by_device else np.zeros(df.height, np.int64)
    longest = max(range(len(windows)), key=lambda k: window_us(windows[k]))
    with ThreadPoolExecutor(max_workers=2) if df.height >= _PARALLEL_MIN_ROWS else nullcontext() as pool:
        starts = _window_starts(ts_us, codes, windows, pool)
        if rows is None:
            out = _all_rows(df, kind, windows, site, ts_us, codes, starts, pool)
        else:
            chosen = np.flatnonzero(df.with_columns(rows.fill_null(False).alias("_chosen"))["_chosen"].to_numpy())
            reach = int(np.sum(chosen - starts[longest][chosen] + 1)) if windows and chosen.size else 0
            if not reach or reach > _REACH_PER_ROW * df.height:  # cheaper to compute every row and keep the chosen ones
                every = compute(df, kind, windows, site, keep_inputs)
                consecutive = chosen.size and chosen[-1] - chosen[0] + 1 == chosen.size  # e.g. a chunk after its overlap
                return every.slice(int(chosen[0]), chosen.size) if consecutive else every[chosen]
            out = _chosen_rows(df, kind, windows, site, ts_us, codes, starts, longest, chosen)
    names = [f.name for f in catalog(kind, windows, thd="thd_v" in columns)]
    inputs = list(df.columns) if keep_inputs else ["ts", "device_id"]
    have = set(out.columns)
    return out[[*inputs, *[n for n in names if n in have and n not in inputs]]]


def _all_rows(df, kind, windows, site, ts_us, codes, starts, pool) -> pl.DataFrame:
    """Every feature of every row of ``df`` (sorted by device and time). The per-reading
    features come first (the window bases are among them); each step's kernels run on
    both of the pool's threads."""
    block, row_of = _reading_block(df, kind, site, pool, also=_window_plan(kind, windows).bases)
    base = df.with_columns(_reading_frame(df, kind, block, pool))
    calendar = _calendar_columns(ts_us, site, pool)
    windowed = _window_columns(base, block, row_of, kind, windows, ts_us, codes, starts,
                               _halves(df.height, pool, _SEGMENT_ROWS), pool)
    return base.with_columns(*windowed, *calendar)


def _chosen_rows(df, kind, windows, site, ts_us, codes, starts, longest, chosen: np.ndarray) -> pl.DataFrame:
    """Every feature of the rows ``chosen`` (positions in ``df``, ascending), from the rows
    their longest window reaches only: the per-reading features on those, the window
    features of the chosen rows' runs, the calendar of the chosen rows."""
    # rows some chosen row's longest window reaches: +1 where a reach starts, -1 after it ends
    mark = np.zeros(df.height + 1, np.int64)
    np.add.at(mark, starts[longest][chosen], 1)
    np.add.at(mark, chosen + 1, -1)
    context = np.flatnonzero(np.cumsum(mark[:-1]) > 0)
    ctx = df[context]
    block, row_of = _reading_block(ctx, kind, site, also=_window_plan(kind, windows).bases)
    ctx = ctx.with_columns(_reading_frame(ctx, kind, block))
    at = np.searchsorted(context, chosen)  # chosen rows' positions in ctx
    starts_ctx = np.searchsorted(context, starts[:, context])
    run_edges = np.flatnonzero(np.diff(at) != 1) + 1  # consecutive chosen rows form one run
    runs = [slice(int(run[0]), int(run[-1]) + 1) for run in np.split(at, run_edges)]
    windowed = _window_columns(ctx, block, row_of, kind, windows, ts_us[context], codes[context], starts_ctx, runs, None, at)
    return ctx[at].with_columns(*windowed, *_calendar_columns(ts_us[chosen], site))
