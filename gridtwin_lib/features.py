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
from dataclasses import asdict, dataclass
from functools import lru_cache

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


def _reading_frame(df: pl.DataFrame, kind: str, site: Site) -> list[pl.Series]:
    """The per-reading features of every row of ``df`` (NaN from the kernel becomes null)."""
    _row, rows_fn, inputs, outputs = reading_kernel(kind)
    x = np.empty((len(inputs), df.height))  # column-major: one contiguous row per input
    for k, name in enumerate(inputs):
        x[k] = df[name].cast(pl.Float64).to_numpy() if name in df.columns else np.nan
    out = np.empty((len(outputs), df.height))
    rows_fn(x, *kernel_constants(site), out)
    names = set(f.name for f in _reading_table(kind, "thd_v" in df.columns))
    frame = pl.DataFrame([pl.Series(name, out[k]) for k, name in enumerate(outputs) if name in names])
    frame = frame.fill_nan(None).with_columns(pl.col(n).cast(pl.Int8) for n in _BOOL_FEATURES if n in names)
    return frame.get_columns()


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


def _window_start_index(ts_us: np.ndarray, device_codes: np.ndarray, window_us: int) -> np.ndarray:
    """For each row i, the first row j of its device with ts_j > ts_i - window (so (t-w, t])."""
    span = int(ts_us.max() - ts_us.min()) + window_us + 1 if ts_us.size else 1
    key = (ts_us - (ts_us.min() if ts_us.size else 0)) + device_codes.astype(np.int64) * span
    return np.searchsorted(key, key - window_us, side="right")


_SEGMENT_ROWS = 1 << 16  # rows per segment: keeps running sums small and temporaries in cache


@dataclass
class _Base:
    """One base column of the window statistics, as float64 with NaN where missing."""

    stem: str
    stats: tuple[str, ...]
    x: np.ndarray
    valid: np.ndarray | None  # 1.0/0.0 per row; None when nothing is missing
    empty: bool = False  # the channel is absent (e.g. no frequency on a household meter)


def _prepare_bases(frame: pl.DataFrame, kind: str) -> list[_Base]:
    bases = []
    for base, stem, _unit, stats in _WINDOW_SPECS[kind]:
        if not set(stats) & {"mean", "std", "slope", "sum"}:
            continue
        x = frame[base].cast(pl.Float64).to_numpy()
        missing = np.isnan(x)
        if not missing.any():
            bases.append(_Base(stem, stats, x, None))
        else:
            bases.append(_Base(stem, stats, x, (~missing).astype(np.float64), empty=bool(missing.all())))
    return bases


def _prefix(values: np.ndarray) -> np.ndarray:
    out = np.empty(values.size + 1)
    out[0] = 0.0
    np.cumsum(values, out=out[1:])
    return out


def _window_stats(
    bases: list[_Base], ts_us: np.ndarray, starts: dict[str, np.ndarray], rows: range, out: dict[str, np.ndarray]
) -> None:
    """Fill ``out`` for ``rows`` with every window's count, sum, mean, std and slope.

    A window sum over rows j..i is ``P[i + 1] - P[j]`` of a prefix sum P. Prefix
    sums are built per segment of rows (plus the longest window's reach back),
    with time relative to the segment's first row and values relative to the
    first valid value the segment reaches back to. Both origins lie at or before
    every row they serve, so the result at t is computed from readings up to t
    only (bit for bit), and the sums stay small enough for the slope's
    ``n Σtx − Σt Σx``: global running sums of t·x lose digits over millions of rows.
    Segments start at multiples of ``_SEGMENT_ROWS``, whatever the frame's length.
    """
    from .features_kernels import SLOPE_DEGENERATE  # imported on use: Numba loads in ~0.5 s

    longest = max(starts, key=lambda w: window_us(w))
    with np.errstate(invalid="ignore", divide="ignore"):
        for a in range(rows.start, rows.stop, _SEGMENT_ROWS):
            z = min(a + _SEGMENT_ROWS, rows.stop)
            lo = int(starts[longest][a])
            tl = (ts_us[lo:z] - ts_us[a]) * 1e-6
            p_t, p_tt = _prefix(tl), _prefix(tl * tl)
            prefixes: list[tuple[float, dict[str, np.ndarray]] | None] = []
            for b in bases:
                if b.empty:
                    prefixes.append(None)
                    continue
                x = b.x[lo:z]
                if b.valid is None:
                    centre = 0.0 if "sum" in b.stats else float(x[0])
                    xc = x - centre
                else:
                    first = int(np.argmax(b.valid[lo:z])) if b.valid[lo:z].any() else 0
                    centre = 0.0 if "sum" in b.stats or np.isnan(x[first]) else float(x[first])
                    xc = np.where(b.valid[lo:z] > 0, x - centre, 0.0)
                p = {"x": _prefix(xc)}
                if b.valid is not None:
                    p["n"] = _prefix(b.valid[lo:z])
                if "std" in b.stats:
                    p["xx"] = _prefix(xc * xc)
                if "slope" in b.stats:
                    p["tx"] = _prefix(tl * xc)
                    if b.valid is not None:
                        tv = tl * b.valid[lo:z]
                        p["t"], p["tt"] = _prefix(tv), _prefix(tv * tl)
                prefixes.append((centre, p))
            hi = slice(a - lo + 1, z - lo + 1)
            for w, start in starts.items():
                j = start[a:z] - lo
                n = np.arange(a + 1, z + 1, dtype=np.float64) - start[a:z]
                out[f"n_{w}"][a:z] = n
                st, stt = p_t[hi] - p_t[j], p_tt[hi] - p_tt[j]
                for b, prepared in zip(bases, prefixes):
                    if prepared is None:
                        for stat in set(b.stats) & {"mean", "std", "slope", "sum"}:
                            out[_window_name(b.stem, stat, w)][a:z] = np.nan
                        continue
                    centre, p = prepared
                    sx = p["x"][hi] - p["x"][j]
                    if "sum" in b.stats:
                        out[_window_name(b.stem, "sum", w)][a:z] = sx
                        continue
                    nx = n if b.valid is None else p["n"][hi] - p["n"][j]
                    if "mean" in b.stats:
                        out[_window_name(b.stem, "mean", w)][a:z] = sx / nx + centre
                    if "std" in b.stats:
                        var = (p["xx"][hi] - p["xx"][j] - sx * sx / nx) / (nx - 1)
                        np.maximum(var, 0.0, out=var)
                        var[nx < 2] = np.nan
                        out[_window_name(b.stem, "std", w)][a:z] = np.sqrt(var)
                    if "slope" in b.stats:
                        bt, btt = (st, stt) if b.valid is None else (p["t"][hi] - p["t"][j], p["tt"][hi] - p["tt"][j])
                        den = nx * btt - bt * bt
                        slope = (nx * (p["tx"][hi] - p["tx"][j]) - bt * sx) / den
                        slope[(nx < 2) | (den <= SLOPE_DEGENERATE * nx * btt)] = np.nan
                        out[_window_name(b.stem, "slope", w)][a:z] = slope


def _minmax_exprs(kind: str, windows: tuple[str, ...], by_device: bool, step_us: int | None) -> list[pl.Expr]:
    """Rolling min/max. On a gap-free series with a fixed step, a time window is a
    fixed number of rows and the cheaper row-based kernel gives identical values."""
    exprs = []
    for w in windows:
        for base, stem, _unit, stats in _WINDOW_SPECS[kind]:
            for stat in ("min", "max"):
                if stat not in stats:
                    continue
                if step_us:
                    rows = max(1, -(-window_us(w) // step_us))  # readings in (t-w, t]
                    e = getattr(pl.col(base), f"rolling_{stat}")(rows, min_samples=1)
                else:
                    e = getattr(pl.col(base), f"rolling_{stat}_by")("ts", window_size=w)
                exprs.append((e.over("device_id") if by_device else e).alias(_window_name(stem, stat, w)))
    return exprs


def _regular_step_us(ts_us: np.ndarray, codes: np.ndarray) -> int | None:
    """The common step of every device's series, or None if any gap or jitter exists."""
    if ts_us.size < 2:
        return None
    same_device = codes[1:] == codes[:-1]
    steps = np.diff(ts_us)[same_device]
    if steps.size == 0 or steps.min() <= 0 or steps.min() != steps.max():
        return None
    return int(steps[0])


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


def _local_microseconds(ts_us: np.ndarray, tz: str) -> np.ndarray:
    """UTC epoch [us] -> local wall-clock epoch [us], converting one instant per quarter hour."""
    first = int(ts_us.min()) // _BUCKET_US * _BUCKET_US
    bucket = (ts_us - first) // _BUCKET_US
    buckets = int(bucket.max()) + 1
    # consecutive single readings fall in the same quarter hour: a few buckets are cached
    offsets = (_cached_utc_offsets_us if buckets <= 4 else _utc_offsets_us)(tz, first, buckets)
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


def _calendar_columns(ts_us: np.ndarray, site: Site) -> pl.DataFrame:
    """Calendar features by the calendar kernel on local time (no per-row timezone work)."""
    from .features_kernels import CALENDAR_OUTPUTS, calendar_rows

    if ts_us.size == 0:
        return pl.DataFrame(schema={f.name: pl.Float64 for f in _calendar_catalog("three_phase")})
    local_us = _local_microseconds(ts_us, site.timezone)
    day = np.floor_divide(local_us, 86_400_000_000)
    first_day, last_day = int(day.min()), int(day.max())
    out = np.empty((len(CALENDAR_OUTPUTS), ts_us.size))
    calendar_rows(local_us, first_day, *day_table(site, first_day, last_day), out)
    return pl.DataFrame([pl.Series(name, out[k]) for k, name in enumerate(CALENDAR_OUTPUTS)]).with_columns(
        pl.col(name).cast(dtype) for name, dtype in _CALENDAR_DTYPES.items())


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
    by_device = df["device_id"].n_unique() > 1
    ts_us = df["ts"].dt.epoch("us").to_numpy()
    if by_device or not (ts_us[1:] > ts_us[:-1]).all():  # one device in strict time order is sorted already
        df = df.sort(["device_id", "ts"])
        ts_us = df["ts"].dt.epoch("us").to_numpy()
    columns = set(df.columns)
    reading = None  # per-reading features: the compiled kernel of features_kernels
    codes = df["device_id"].rank("dense").cast(pl.Int64).to_numpy() if by_device else np.zeros(df.height, np.int64)
    starts = {w: _window_start_index(ts_us, codes, window_us(w)) for w in windows}
    chosen = None
    if rows is not None:
        chosen = np.flatnonzero(df.with_columns(rows.fill_null(False).alias("_chosen"))["_chosen"].to_numpy())
        reach = int(np.sum(chosen - starts[max(windows, key=window_us)][chosen] + 1)) if windows and chosen.size else 0
        if not reach or reach > _REACH_PER_ROW * df.height:  # cheaper to compute every row and keep the chosen ones
            return compute(df, kind, windows, site, keep_inputs)[chosen]
    if chosen is None:
        out = _all_rows(df, kind, windows, site, reading, ts_us, codes, by_device, starts)
    else:
        out = _chosen_rows(df, kind, windows, site, reading, ts_us, starts, chosen)
    names = [f.name for f in catalog(kind, windows, thd="thd_v" in columns)]
    inputs = list(df.columns) if keep_inputs else ["ts", "device_id"]
    have = set(out.columns)
    return out[[*inputs, *[n for n in names if n in have and n not in inputs]]]


def _all_rows(df, kind, windows, site, reading, ts_us, codes, by_device, starts) -> pl.DataFrame:
    """Every feature of every row of ``df`` (sorted by device and time)."""
    base = df.with_columns(_reading_frame(df, kind, site))
    minmax = _minmax_exprs(kind, windows, by_device, _regular_step_us(ts_us, codes))
    minmax_names = {e.meta.output_name() for e in minmax}
    stats = {f.name: np.empty(base.height) for f in _window_catalog(kind, windows) if f.name not in minmax_names}
    bases = _prepare_bases(base, kind)
    if base.height < _PARALLEL_MIN_ROWS:
        _window_stats(bases, ts_us, starts, range(base.height), stats)
        parts = [base, pl.DataFrame(stats).fill_nan(None), base.select(minmax), _calendar_columns(ts_us, site)]
        return pl.concat(parts, how="horizontal")
    half = (base.height // 2 // _SEGMENT_ROWS + 1) * _SEGMENT_ROWS
    with ThreadPoolExecutor(max_workers=3) as pool:
        # Polars computes rolling min/max while NumPy (which releases the GIL)
        # computes the calendar and the prefix-sum statistics, two row ranges at once.
        minmax_future = pool.submit(base.select, minmax)
        calendar_future = pool.submit(_calendar_columns, ts_us, site)
        parts = [pool.submit(_window_stats, bases, ts_us, starts, r, stats)
                 for r in (range(0, min(half, base.height)), range(min(half, base.height), base.height)) if len(r)]
        for f in parts:
            f.result()
        sums = pl.DataFrame(stats).fill_nan(None)
        return pl.concat([base, sums, minmax_future.result(), calendar_future.result()], how="horizontal")


def _chosen_rows(df, kind, windows, site, reading, ts_us, starts, chosen: np.ndarray) -> pl.DataFrame:
    """Every feature of the rows ``chosen`` (positions in ``df``, ascending), from the rows
    their longest window reaches only: the window bases on those, the other per-reading
    features on the chosen rows, the window statistics of the chosen rows' runs."""
    longest = max(windows, key=window_us)
    # rows some chosen row's longest window reaches: +1 where a reach starts, -1 after it ends
    mark = np.zeros(df.height + 1, np.int64)
    np.add.at(mark, starts[longest][chosen], 1)
    np.add.at(mark, chosen + 1, -1)
    context = np.flatnonzero(np.cumsum(mark[:-1]) > 0)
    ctx = df[context]
    ctx = ctx.with_columns(_reading_frame(ctx, kind, site))
    at = np.searchsorted(context, chosen)  # chosen rows' positions in ctx
    ts_ctx = ts_us[context]
    starts_ctx = {w: np.searchsorted(context, s[context]) for w, s in starts.items()}
    minmax_names = {_window_name(stem, stat, w) for w in windows for _b, stem, _u, stats in _WINDOW_SPECS[kind]
                    for stat in ("min", "max") if stat in stats}
    stats = {f.name: np.full(ctx.height, np.nan) for f in _window_catalog(kind, windows) if f.name not in minmax_names}
    bases = _prepare_bases(ctx, kind)
    run_edges = np.flatnonzero(np.diff(at) != 1) + 1  # consecutive chosen rows form one run
    for run in np.split(at, run_edges):
        _window_stats(bases, ts_ctx, starts_ctx, range(int(run[0]), int(run[-1]) + 1), stats)
    own = ctx[at]
    sums = pl.DataFrame([pl.Series(k, v[at], nan_to_null=True) for k, v in stats.items()])
    minmax = _minmax_at(ctx, kind, windows, starts_ctx, at)
    return pl.concat([own, sums, minmax, _calendar_columns(ts_us[chosen], site)], how="horizontal")


def _minmax_at(frame: pl.DataFrame, kind: str, windows: tuple[str, ...], starts: dict[str, np.ndarray],
               at: np.ndarray) -> pl.DataFrame:
    """Window min/max at rows ``at`` with Polars' rolling semantics: nulls are skipped,
    a NaN in the window gives NaN, a window without a value gives null."""
    columns = {}  # base -> (values padded for min and max, running count of present values)
    for base, _stem, _unit, stats in _WINDOW_SPECS[kind]:
        if {"min", "max"} & set(stats) and base not in columns:
            x = frame[base].cast(pl.Float64).to_numpy()
            present = ~frame[base].is_null().to_numpy() if frame[base].has_nulls() else np.ones(x.size, bool)
            low, high = (np.append(np.where(present, x, fill), fill) for fill in (np.inf, -np.inf))
            columns[base] = ({"min": low, "max": high}, np.concatenate([[0], np.cumsum(present)]))
    out = {}
    for w in windows:
        lo = starts[w][at]
        bounds = np.column_stack([lo, at + 1]).ravel()  # reduceat pairs [lo, at + 1)
        for base, stem, _unit, stats in _WINDOW_SPECS[kind]:
            if base not in columns:
                continue
            padded, has = columns[base]
            empty = (has[at + 1] - has[lo]) == 0
            for stat in ("min", "max"):
                if stat not in stats:
                    continue
                reduce = np.minimum if stat == "min" else np.maximum
                value = reduce.reduceat(padded[stat], bounds)[::2]
                value[empty] = np.nan
                out[_window_name(stem, stat, w)] = (value, empty)
    frame_out = pl.DataFrame({k: v for k, (v, _) in out.items()})
    nulls = [pl.when(pl.lit(pl.Series(empty))).then(None).otherwise(pl.col(k)).alias(k) for k, (_, empty) in out.items() if empty.any()]
    return frame_out.with_columns(nulls) if nulls else frame_out
