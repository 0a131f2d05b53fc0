"""Compiled (Numba) kernels of the feature catalog, shared by both executors.

The batch executor (:func:`gridtwin_lib.features.compute`) runs the per-reading and
calendar kernels over every row of a frame; the incremental executor
(:mod:`gridtwin_lib.features_incremental`) runs the very same row functions on one
reading at a time, so a per-reading or calendar feature has exactly one definition.
Windows are computed two ways, each suited to its executor: the incremental one
updates running sums and monotonic deques reading by reading (:func:`window_update`);
the batch one takes prefix sums over segments of a frame (:func:`window_sums`) and
van Herk/Gil-Werman blocks down whole columns (:func:`window_extremum_blocks`; monotonic
deques, :func:`window_extremum`, where a column holds NaN values). Tests hold them equal.
Batch kernels release the GIL, so the batch executor runs them on two threads.

Missing values are NaN throughout (the executors turn NaN back into null). The
per-reading functions follow Polars' null rules that the catalog documents:
horizontal max/min skip missing phases, arithmetic propagates them, a ``when``
whose condition is missing takes the ``otherwise`` branch, and a division by zero
or by a missing value is missing.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

#: inputs of the per-reading kernels, in order (quality_flags as float64)
THREE_PHASE_INPUTS = ("v_a", "v_b", "v_c", "i_a", "i_b", "i_c", "p_a", "p_b", "p_c",
                      "q_a", "q_b", "q_c", "frequency", "quality_flags", "thd_v")
METER_INPUTS = ("voltage", "current", "power", "power_factor", "reactive_power", "frequency", "quality_flags")
#: outputs of the per-reading kernels, in catalog order (thd_v_pct dropped when THD is not measured)
THREE_PHASE_OUTPUTS = (
    "v_mean_v", "v_a_dev_pct", "v_b_dev_pct", "v_c_dev_pct", "v_mean_dev_pct", "v_max_abs_dev_pct",
    "v_spread_v", "v_unbalance_pct", "i_mean_a", "i_max_a", "i_unbalance_pct", "i_neutral_est_a",
    "p_total_w", "q_total_var", "s_a_va", "s_b_va", "s_c_va", "s_total_va", "pf_a", "pf_b", "pf_c",
    "pf_total", "pf_lagging", "p_share_a", "p_share_b", "p_share_c", "vi_consistency", "thd_v_pct",
    "freq_dev_hz", "freq_dev_abs_hz", "flag_voltage", "flag_frequency",
)
METER_OUTPUTS = ("v_dev_pct", "v_abs_dev_pct", "s_vi_va", "p_w", "pf_est", "q_var", "pf_lagging",
                 "freq_dev_hz", "freq_dev_abs_hz", "flag_voltage", "flag_frequency")
CALENDAR_OUTPUTS = ("hour", "minute_of_day", "hour_sin", "hour_cos", "weekday", "is_weekend", "is_holiday",
                    "month", "doy_sin", "doy_cos", "is_daylight")

_NAN = np.nan
_COS = (math.cos(0.0), math.cos(-2 * math.pi / 3), math.cos(-4 * math.pi / 3))
_SIN = (math.sin(0.0), math.sin(-2 * math.pi / 3), math.sin(-4 * math.pi / 3))
_COS0, _COS1, _COS2 = _COS
_SIN0, _SIN1, _SIN2 = _SIN
_DAY_US = 86_400_000_000
_MINUTE_ANGLE = 2 * math.pi / 1440


@nb.njit(cache=True, error_model="numpy", inline="always")
def _hmax(a, b, c):
    """Polars' max_horizontal: missing values skipped, missing when all are."""
    out = _NAN
    for x in (a, b, c):
        if not math.isnan(x) and (math.isnan(out) or x > out):
            out = x
    return out


@nb.njit(cache=True, error_model="numpy", inline="always")
def _hmin(a, b, c):
    out = _NAN
    for x in (a, b, c):
        if not math.isnan(x) and (math.isnan(out) or x < out):
            out = x
    return out


@nb.njit(cache=True, error_model="numpy", inline="always")
def _div(num, den):
    """``num / den``, missing when ``den`` is 0 or missing."""
    if den != 0.0 and not math.isnan(den):
        return num / den
    return _NAN


@nb.njit(cache=True, error_model="numpy", inline="always")
def _positive(x):
    """1.0 when x > 0, 0.0 otherwise, missing when x is."""
    if math.isnan(x):
        return _NAN
    return 1.0 if x > 0.0 else 0.0


@nb.njit(cache=True, error_model="numpy", inline="always")
def _flag(flags, bit):
    if math.isnan(flags):
        return _NAN
    return 1.0 if (np.int64(flags) & bit) > 0 else 0.0


@nb.njit(cache=True, error_model="numpy", inline="always")
def _neutral_part(i, p, q, s):
    """(I cos phi, I sin phi) of one phase; cos phi = p/s, sin phi = q/s, (I, 0) when s is not > 0."""
    if s > 0.0:
        return i * p / s, i * q / s
    return i, 0.0


@nb.njit(cache=True, error_model="numpy")
def three_phase_row(x, vn, fn, vbit, fbit, out):
    """The per-reading three-phase features of one reading ``x`` (THREE_PHASE_INPUTS) into ``out``."""
    va, vb, vc, ia, ib, ic = x[0], x[1], x[2], x[3], x[4], x[5]
    pa, pb, pc, qa, qb, qc, f = x[6], x[7], x[8], x[9], x[10], x[11], x[12]
    v_mean = (va + vb + vc) / 3
    out[0] = v_mean
    out[1] = (va - vn) / vn * 100
    out[2] = (vb - vn) / vn * 100
    out[3] = (vc - vn) / vn * 100
    out[4] = (v_mean - vn) / vn * 100
    out[5] = _hmax(abs(va - vn), abs(vb - vn), abs(vc - vn)) / vn * 100
    out[6] = _hmax(va, vb, vc) - _hmin(va, vb, vc)
    out[7] = _hmax(abs(va - v_mean), abs(vb - v_mean), abs(vc - v_mean)) / v_mean * 100
    i_mean = (ia + ib + ic) / 3
    out[8] = i_mean
    out[9] = _hmax(ia, ib, ic)
    if i_mean > 0.0:
        out[10] = _hmax(abs(ia - i_mean), abs(ib - i_mean), abs(ic - i_mean)) / i_mean * 100
    else:
        out[10] = 0.0
    sa, sb, sc = math.sqrt(pa * pa + qa * qa), math.sqrt(pb * pb + qb * qb), math.sqrt(pc * pc + qc * qc)
    re, im = 0.0, 0.0
    a, b = _neutral_part(ia, pa, qa, sa)
    re, im = re + a * _COS0 + b * _SIN0, im + a * _SIN0 - b * _COS0
    a, b = _neutral_part(ib, pb, qb, sb)
    re, im = re + a * _COS1 + b * _SIN1, im + a * _SIN1 - b * _COS1
    a, b = _neutral_part(ic, pc, qc, sc)
    re, im = re + a * _COS2 + b * _SIN2, im + a * _SIN2 - b * _COS2
    out[11] = math.sqrt(re * re + im * im)
    p_tot, q_tot, s_tot = pa + pb + pc, qa + qb + qc, sa + sb + sc
    out[12], out[13] = p_tot, q_tot
    out[14], out[15], out[16], out[17] = sa, sb, sc, s_tot
    out[18], out[19], out[20] = _div(abs(pa), sa), _div(abs(pb), sb), _div(abs(pc), sc)
    out[21] = _div(abs(p_tot), s_tot)
    out[22] = _positive(q_tot)
    out[23], out[24], out[25] = _div(pa, p_tot), _div(pb, p_tot), _div(pc, p_tot)
    out[26] = _div(va * ia + vb * ib + vc * ic, s_tot)
    out[27] = x[14]
    out[28] = f - fn
    out[29] = abs(f - fn)
    out[30] = _flag(x[13], vbit)
    out[31] = _flag(x[13], fbit)


@nb.njit(cache=True, error_model="numpy")
def meter_row(x, vn, fn, vbit, fbit, out):
    """The per-reading meter features of one reading ``x`` (METER_INPUTS) into ``out``."""
    v, i, p, pf, q, f = x[0], x[1], x[2], x[3], x[4], x[5]
    out[0] = (v - vn) / vn * 100
    out[1] = abs(v - vn) / vn * 100
    s_vi = v * i
    out[2] = s_vi
    out[3] = p
    out[4] = pf if not math.isnan(pf) else _div(abs(p), s_vi)
    out[5] = q
    out[6] = _positive(q)
    out[7] = f - fn
    out[8] = abs(f - fn)
    out[9] = _flag(x[6], vbit)
    out[10] = _flag(x[6], fbit)


@nb.njit(cache=True, error_model="numpy", nogil=True)
def three_phase_rows(x, vn, fn, vbit, fbit, out):
    """:func:`three_phase_row` over every reading: ``x`` is inputs x readings, ``out`` features x
    readings (column-major both, so each column converts to a Series without a copy)."""
    row_in, row_out = np.empty(x.shape[0]), np.empty(out.shape[0])
    for r in range(x.shape[1]):
        for k in range(x.shape[0]):
            row_in[k] = x[k, r]
        three_phase_row(row_in, vn, fn, vbit, fbit, row_out)
        for k in range(out.shape[0]):
            out[k, r] = row_out[k]


@nb.njit(cache=True, error_model="numpy", nogil=True)
def meter_rows(x, vn, fn, vbit, fbit, out):
    """:func:`meter_row` over every reading, laid out as in :func:`three_phase_rows`."""
    row_in, row_out = np.empty(x.shape[0]), np.empty(out.shape[0])
    for r in range(x.shape[1]):
        for k in range(x.shape[0]):
            row_in[k] = x[k, r]
        meter_row(row_in, vn, fn, vbit, fbit, row_out)
        for k in range(out.shape[0]):
            out[k, r] = row_out[k]


# ----------------------------------------------------------------- calendar


@nb.njit(cache=True, error_model="numpy")
def calendar_row(local_us, k, holiday, sunrise_s, sunset_s, month, doy_angle, out):
    """Calendar features of one local wall-clock time [us] on day ``k`` of the day tables."""
    day = local_us // _DAY_US
    second_of_day = (local_us - day * _DAY_US) * 1e-6
    minute = np.int64(second_of_day // 60)
    angle = minute * _MINUTE_ANGLE
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    out[0] = second_of_day // 3600
    out[1] = minute
    out[2] = math.sin(angle)
    out[3] = math.cos(angle)
    out[4] = weekday + 1
    out[5] = 1.0 if weekday >= 5 else 0.0
    out[6] = holiday[k]
    out[7] = month[k]
    out[8] = math.sin(doy_angle[k])
    out[9] = math.cos(doy_angle[k])
    out[10] = 1.0 if (second_of_day >= sunrise_s[k] and second_of_day < sunset_s[k]) else 0.0


@nb.njit(cache=True, error_model="numpy", nogil=True)
def calendar_rows(local_us, first_day, holiday, sunrise_s, sunset_s, month, doy_angle, out):
    """:func:`calendar_row` for every time; ``out`` is features x readings.

    Every feature but daylight is a function of the local day and minute, so a reading in
    the same minute as the one before copies its features; daylight too unless sunrise or
    sunset falls within that minute (then :func:`calendar_row` is called again)."""
    row_out = np.empty(out.shape[0])
    last_minute = np.int64(-1)
    changes = False
    for r in range(local_us.shape[0]):
        t = local_us[r]
        minute = t // 60_000_000
        if minute != last_minute or changes:
            k = t // _DAY_US - first_day
            calendar_row(t, k, holiday, sunrise_s, sunset_s, month, doy_angle, row_out)
            start_s = (t - (t // _DAY_US) * _DAY_US) // 60_000_000 * 60.0
            changes = (start_s < sunrise_s[k] < start_s + 60.0) or (start_s < sunset_s[k] < start_s + 60.0)
            last_minute = minute
        for j in range(out.shape[0]):
            out[j, r] = row_out[j]


# ----------------------------------------------------------------- incremental windows
#
# Per-device state (see features_incremental.DeviceState):
#   ts[cap] int64, vals[cap, B] float64: ring of the readings the longest window holds
#   ctr int64: [count, since_rebase, t0_us, start_0 .. start_{W-1}] (start_w: counter of w's oldest reading)
#   sums[W, B, 6] float64: valid count, sum x, sum x^2, sum t, sum t^2, sum t x (x - centre, t - t0 [s])
#   centre[B] float64 (NaN until a value is seen)
#   dq[W * S, cap] int32: monotonic deques of ring positions, dqhl[W * S, 2] int64: head, tail counters

_NV, _SX, _SXX, _ST, _STT, _STX = 0, 1, 2, 3, 4, 5
#: a slope is undefined when n Σt² − (Σt)² is below this fraction of n Σt²: the times are
#: equal up to rounding (float64 keeps ~1e-16 of n Σt²). Relative to n Σt², so it depends on
#: the time origin: two readings 1 s apart stay defined up to ~18 days from the origin.
SLOPE_DEGENERATE = 1e-13
STAT_MEAN, STAT_STD, STAT_MIN, STAT_MAX, STAT_SLOPE, STAT_SUM, STAT_N = 0, 1, 2, 3, 4, 5, 6


@nb.njit(cache=True, error_model="numpy", inline="always")
def _accumulate(sums, w, b, xc, tl, sign):
    sums[w, b, _NV] += sign
    sums[w, b, _SX] += sign * xc
    sums[w, b, _SXX] += sign * xc * xc
    sums[w, b, _ST] += sign * tl
    sums[w, b, _STT] += sign * tl * tl
    sums[w, b, _STX] += sign * tl * xc


@nb.njit(cache=True, error_model="numpy")
def _rebase(ts, vals, ctr, sums, centre, longest, zero_centre):
    """Recompute every window's sums from the ring with fresh origins (bounds float drift)."""
    cap = ts.shape[0]
    count = ctr[0]
    first = ctr[3 + longest]
    if first < count:
        ctr[2] = ts[first % cap]
    n_bases = vals.shape[1]
    for b in range(n_bases):
        centre[b] = 0.0 if zero_centre[b] else _NAN
        if not zero_centre[b]:
            for k in range(first, count):
                v = vals[k % cap, b]
                if not math.isnan(v):
                    centre[b] = v
                    break
    sums[:] = 0.0
    for w in range(sums.shape[0]):
        for k in range(ctr[3 + w], count):
            pos = k % cap
            tl = (ts[pos] - ctr[2]) * 1e-6
            for b in range(n_bases):
                v = vals[pos, b]
                if not math.isnan(v):
                    _accumulate(sums, w, b, v - centre[b], tl, 1.0)
    ctr[1] = 0


@nb.njit(cache=True, error_model="numpy")
def window_update(t_us, x, ts, vals, ctr, sums, centre, dq, dqhl, win_us, longest, zero_centre,
                  mm_base, mm_is_max, prog, out, rebase_every):
    """Add one reading (time ``t_us``, base values ``x``) and write the window features to ``out``.

    Returns 0, or -1 without changing anything a retry would repeat when the ring is full
    (the caller grows the state and calls again). Each reading is added once and evicted
    once per window, each deque entry pushed and popped once: O(1) amortised per reading.
    """
    cap = ts.shape[0]
    n_windows = win_us.shape[0]
    n_bases = x.shape[0]
    n_slots = mm_base.shape[0]
    count = ctr[0]
    # evict what leaves each window: readings with ts <= t - w
    for w in range(n_windows):
        limit = t_us - win_us[w]
        k = ctr[3 + w]
        while k < count and ts[k % cap] <= limit:
            pos = k % cap
            tl = (ts[pos] - ctr[2]) * 1e-6
            for b in range(n_bases):
                v = vals[pos, b]
                if not math.isnan(v):
                    _accumulate(sums, w, b, v - centre[b], tl, -1.0)
            k += 1
        ctr[3 + w] = k
        for s in range(n_slots):
            d = w * n_slots + s
            while dqhl[d, 0] < dqhl[d, 1] and ts[dq[d, dqhl[d, 0] % cap]] <= limit:
                dqhl[d, 0] += 1
    if count - ctr[3 + longest] >= cap:
        return -1
    if ctr[3 + longest] == count:  # nothing left in any window: start afresh, exactly
        ctr[2] = t_us
        sums[:] = 0.0
        for b in range(n_bases):
            centre[b] = 0.0 if zero_centre[b] else _NAN
    # store and add the reading
    pos = count % cap
    ts[pos] = t_us
    tl = (t_us - ctr[2]) * 1e-6
    for b in range(n_bases):
        v = x[b]
        vals[pos, b] = v
        if math.isnan(v):
            continue
        if math.isnan(centre[b]):  # first value since the windows emptied: sums of b are all 0
            centre[b] = v
        for w in range(n_windows):
            _accumulate(sums, w, b, v - centre[b], tl, 1.0)
    for w in range(n_windows):
        for s in range(n_slots):
            v = x[mm_base[s]]
            if math.isnan(v):
                continue
            d = w * n_slots + s
            if mm_is_max[s]:
                while dqhl[d, 1] > dqhl[d, 0] and vals[dq[d, (dqhl[d, 1] - 1) % cap], mm_base[s]] <= v:
                    dqhl[d, 1] -= 1
            else:
                while dqhl[d, 1] > dqhl[d, 0] and vals[dq[d, (dqhl[d, 1] - 1) % cap], mm_base[s]] >= v:
                    dqhl[d, 1] -= 1
            dq[d, dqhl[d, 1] % cap] = pos
            dqhl[d, 1] += 1
    ctr[0] = count + 1
    ctr[1] += 1
    if ctr[1] >= rebase_every:
        _rebase(ts, vals, ctr, sums, centre, longest, zero_centre)
    # outputs
    for j in range(prog.shape[0]):
        w, b, stat, s = prog[j, 0], prog[j, 1], prog[j, 2], prog[j, 3]
        if stat == STAT_N:
            out[j] = ctr[0] - ctr[3 + w]
            continue
        if stat == STAT_MIN or stat == STAT_MAX:  # noqa: SIM109 - an == chain is what Numba compiles cheaply
            d = w * n_slots + s
            out[j] = vals[dq[d, dqhl[d, 0] % cap], mm_base[s]] if dqhl[d, 0] < dqhl[d, 1] else _NAN
            continue
        nv, sx = sums[w, b, _NV], sums[w, b, _SX]
        if stat == STAT_SUM:
            out[j] = sx
        elif stat == STAT_MEAN:
            out[j] = sx / nv + centre[b] if nv > 0 else _NAN
        elif stat == STAT_STD:
            if nv < 2:
                out[j] = _NAN
            else:
                var = (sums[w, b, _SXX] - sx * sx / nv) / (nv - 1)
                out[j] = math.sqrt(var) if var > 0.0 else 0.0
        else:  # slope
            st, stt = sums[w, b, _ST], sums[w, b, _STT]
            den = nv * stt - st * st
            if nv < 2 or den <= SLOPE_DEGENERATE * nv * stt:
                out[j] = _NAN
            else:
                out[j] = (nv * sums[w, b, _STX] - st * sx) / den
    return 0


@nb.njit(cache=True, error_model="numpy")
def window_updates(t_us, x, ts, vals, ctr, sums, centre, dq, dqhl, win_us, longest, zero_centre,
                   mm_base, mm_is_max, prog, out, rebase_every):
    """:func:`window_update` for each row of ``t_us`` (n,) and ``x`` (n, bases) in turn, the features of
    each overwriting ``out``. Returns how many rows were added: fewer than n when the ring filled (the
    caller grows the state and goes on from there)."""
    for r in range(t_us.shape[0]):
        if window_update(t_us[r], x[r], ts, vals, ctr, sums, centre, dq, dqhl, win_us, longest, zero_centre,
                         mm_base, mm_is_max, prog, out, rebase_every) < 0:
            return r
    return t_us.shape[0]


@nb.njit(cache=True, error_model="numpy")
def grow(ts, vals, ctr, dq, dqhl, longest, new_cap):
    """The ring and deques re-laid out at capacity ``new_cap`` (positions are counters mod cap)."""
    cap = ts.shape[0]
    first, count = ctr[3 + longest], ctr[0]
    ts2 = np.zeros(new_cap, np.int64)
    vals2 = np.full((new_cap, vals.shape[1]), np.nan)
    for k in range(first, count):
        ts2[k % new_cap] = ts[k % cap]
        vals2[k % new_cap] = vals[k % cap]
    dq2 = np.zeros((dq.shape[0], new_cap), np.int32)
    for d in range(dq.shape[0]):
        for e in range(dqhl[d, 0], dqhl[d, 1]):
            p = dq[d, e % cap]
            k = first + (p - first % cap) % cap  # the live counter at ring position p
            dq2[d, e % new_cap] = k % new_cap
    return ts2, vals2, dq2


# ----------------------------------------------------------------- batch windows
#
# The batch executor's window kernels. Rows are sorted by device and time; ``starts[w, i]``
# is the first row of row i's device inside window w of row i, so no window crosses a device.


@nb.njit(cache=True, nogil=True)
def window_starts(ts_us, codes, win_us, out):
    """``out[i]``: the first row j of row i's device with ts_j > ts_i - win_us, so that the
    window of row i is rows j..i, the readings in (t - w, t]. One forward pass."""
    j = 0
    for i in range(ts_us.shape[0]):
        limit = ts_us[i] - win_us
        while codes[j] != codes[i] or ts_us[j] <= limit:
            j += 1
        out[i] = j


_PX, _PN, _PXX, _PTX, _PT, _PTT = 0, 1, 2, 3, 4, 5


@nb.njit(cache=True, error_model="numpy", nogil=True)
def window_sums(x, rows, missing, empty, zero_centre, want, ts_us, starts, longest, prog, r0, r1, segment, out):
    """Window count, sum, mean, std and slope of rows ``r0..r1`` from prefix sums per segment.

    Base b is row ``rows[b]`` of ``x`` (any rows x readings block, e.g. the per-reading
    features), with NaN where a value is missing; ``missing[b]`` says whether base b
    has any, ``empty[b]`` whether it has nothing but; ``zero_centre[b]`` (counts) keeps values
    as they are; ``want[b]`` says which prefix sums b needs (bit 1: std, bit 2: slope).
    Each row of ``prog`` is one window w and base b: ``(w, b, mean, std, slope, sum)``, the
    last four being rows of ``out`` (-1 when not wanted; b = -1 writes the reading count
    of w to the ``mean`` row). The statistics of one window and base share one pass.

    A window sum over rows j..i is ``P[i + 1] - P[j]`` of a prefix sum P. Prefix sums are
    built per segment of ``segment`` rows from r0 (plus the longest window's reach back),
    with time relative to the segment's first row and values relative to the first valid
    value the segment reaches back to. Both origins lie at or before every row they serve,
    so the result at t depends on readings up to t only, and the sums stay small enough
    for the slope's ``n Σtx − Σt Σx``: global running sums of t·x lose digits over
    millions of rows.
    """
    n_b = rows.shape[0]
    for a in range(r0, r1, segment):
        z = min(a + segment, r1)
        lo = starts[longest, a]
        m = z - lo
        tl = np.empty(m)
        p_t = np.empty(m + 1)
        p_tt = np.empty(m + 1)
        p_t[0] = 0.0
        p_tt[0] = 0.0
        for k in range(m):
            tl[k] = (ts_us[lo + k] - ts_us[a]) * 1e-6
            p_t[k + 1] = p_t[k] + tl[k]
            p_tt[k + 1] = p_tt[k] + tl[k] * tl[k]
        pre = np.empty((n_b, 6, m + 1))
        centre = np.zeros(n_b)
        sx_, nx_, sxx_ = np.empty(z - a), np.empty(z - a), np.empty(z - a)
        stx_, st_, stt_ = np.empty(z - a), np.empty(z - a), np.empty(z - a)
        for b in range(n_b):
            if empty[b]:
                continue
            xb = x[rows[b]]
            c = 0.0
            if not zero_centre[b]:
                first = lo
                if missing[b]:
                    for k in range(lo, z):
                        if not math.isnan(xb[k]):
                            first = k
                            break
                c = 0.0 if math.isnan(xb[first]) else xb[first]
            centre[b] = c
            p = pre[b]
            p[_PX, 0] = 0.0  # prefix sums a base does not need are never touched (nor made resident)
            if missing[b]:
                p[_PN, 0] = 0.0
            if want[b] & 1:
                p[_PXX, 0] = 0.0
            if want[b] & 2:
                p[_PTX, 0] = 0.0
                p[_PT, 0] = 0.0
                p[_PTT, 0] = 0.0
            for k in range(m):
                v = xb[lo + k]
                valid = 1.0
                xc = v - c
                if missing[b] and math.isnan(v):
                    valid = 0.0
                    xc = 0.0
                p[_PX, k + 1] = p[_PX, k] + xc
                if missing[b]:
                    p[_PN, k + 1] = p[_PN, k] + valid
                if want[b] & 1:
                    p[_PXX, k + 1] = p[_PXX, k] + xc * xc
                if want[b] & 2:
                    p[_PTX, k + 1] = p[_PTX, k] + tl[k] * xc
                    tv = tl[k] * valid
                    p[_PT, k + 1] = p[_PT, k] + tv
                    p[_PTT, k + 1] = p[_PTT, k] + tv * tl[k]
        for g in range(prog.shape[0]):  # one window and base at a time: its branches go one way
            w, b, k_mean, k_std, k_slope, k_sum = prog[g, 0], prog[g, 1], prog[g, 2], prog[g, 3], prog[g, 4], prog[g, 5]
            start = starts[w]
            if b < 0:
                row = out[k_mean]
                for i in range(a, z):
                    row[i] = float(i + 1) - float(start[i])
                continue
            if empty[b]:
                for k in (k_mean, k_std, k_slope, k_sum):
                    if k >= 0:
                        out[k, a:z] = _NAN
                continue
            px, pn, pxx, ptx, pt, ptt = pre[b, _PX], pre[b, _PN], pre[b, _PXX], pre[b, _PTX], pre[b, _PT], pre[b, _PTT]
            if k_sum >= 0:
                row = out[k_sum]
                for i in range(a, z):
                    row[i] = px[i - lo + 1] - px[start[i] - lo]
            if k_mean < 0 and k_std < 0 and k_slope < 0:
                continue
            # first the window sums (gathers at each row's window start), then the statistics
            # from them in loops without gathers, which the compiler vectorises (divisions
            # and square roots four at a time)
            c = centre[b]
            has_missing = missing[b]
            for i in range(a, z):
                hi, j = i - lo + 1, start[i] - lo
                sx_[i - a] = px[hi] - px[j]
                nx_[i - a] = pn[hi] - pn[j] if has_missing else float(i + 1) - float(start[i])
                if k_std >= 0:
                    sxx_[i - a] = pxx[hi] - pxx[j]
                if k_slope >= 0:
                    stx_[i - a] = ptx[hi] - ptx[j]
                    if has_missing:
                        st_[i - a], stt_[i - a] = pt[hi] - pt[j], ptt[hi] - ptt[j]
                    else:
                        st_[i - a], stt_[i - a] = p_t[hi] - p_t[j], p_tt[hi] - p_tt[j]
            if k_mean >= 0:
                row = out[k_mean, a:z]
                for q in range(z - a):
                    row[q] = sx_[q] / nx_[q] + c
            if k_std >= 0:
                row = out[k_std, a:z]
                for q in range(z - a):
                    sx, nx = sx_[q], nx_[q]
                    var = (sxx_[q] - sx * sx / nx) / (nx - 1)
                    var = 0.0 if var < 0.0 else var
                    row[q] = _NAN if nx < 2 else math.sqrt(var)
            if k_slope >= 0:
                row = out[k_slope, a:z]
                for q in range(z - a):
                    sx, nx, bt, btt = sx_[q], nx_[q], st_[q], stt_[q]
                    den = nx * btt - bt * bt
                    slope = (nx * stx_[q] - bt * sx) / den
                    row[q] = _NAN if (nx < 2 or den <= SLOPE_DEGENERATE * nx * btt) else slope


@nb.njit(cache=True, nogil=True)
def window_extremum(x, nan_at, starts, is_max, r0, r1, out, present):
    """Window min or max of ``x`` at rows ``r0..r1`` with a monotonic deque, by Polars'
    rolling rules: NaN in ``x`` is a missing value and skipped, and a window without a value
    is NaN. When ``nan_at`` is given (not empty), a row where it is true holds a NaN that
    makes its windows NaN, and ``present`` tells those from windows without a value.
    ``starts`` is the window's start row of each row. Each row is
    pushed and popped once: O(1) amortised per row whatever the window's length."""
    first = starts[r0]
    dq = np.empty(r1 - first, np.int64)
    head, tail = 0, 0
    last_nan = -1
    check_nan = nan_at.shape[0] > 0
    for i in range(first, r1):
        v = x[i]
        if check_nan and nan_at[i]:
            last_nan = i
        elif not math.isnan(v):
            if is_max:
                while tail > head and x[dq[tail - 1]] <= v:
                    tail -= 1
            else:
                while tail > head and x[dq[tail - 1]] >= v:
                    tail -= 1
            dq[tail] = i
            tail += 1
        if i < r0:
            continue
        s = starts[i]
        while head < tail and dq[head] < s:
            head += 1
        if last_nan >= s:
            out[i] = _NAN
        elif head < tail:
            out[i] = x[dq[head]]
        else:
            out[i] = _NAN
        if check_nan:
            present[i] = last_nan >= s or head < tail


@nb.njit(cache=True, inline="always")
def _extreme(a, b, is_max):
    """The larger (smaller) of a and b, skipping a NaN (a missing value)."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    if is_max:
        return a if a >= b else b
    return a if a <= b else b


@nb.njit(cache=True, nogil=True)
def _suffix_extreme(x, device_firsts, lo, hi, is_max, suffix):
    """``suffix[k - lo]``: the extremum of x[k .. hi) within k's device, for k in lo..hi."""
    d = np.searchsorted(device_firsts, hi - 1, side="right") - 1  # device of the row k
    run = _NAN
    for k in range(hi - 1, lo - 1, -1):
        if k < device_firsts[d]:
            d -= 1
            run = _NAN
        run = _extreme(run, x[k], is_max)
        suffix[k - lo] = run


@nb.njit(cache=True, nogil=True)
def window_extremum_blocks(x, device_firsts, starts, size, is_max, r0, r1, out):
    """:func:`window_extremum` with a fixed handful of comparisons per row (van Herk/Gil-Werman).

    Rows are cut into blocks of ``size`` and at the first row of each device
    (``device_firsts``, ascending, starting with 0). A window of rows s..i is then either a
    block's beginning, taken by a running extremum from that beginning, or the end of the
    block before i's joined to that beginning: a suffix extremum at s with the running one
    at i. That holds for every window of a regular series when ``size`` is the longest
    window. On a gappy series, a window that lies inside its row's block without starting
    there is scanned: it is shorter than a block, and few rows have one (those after a gap,
    near the end of their block). A window without a value is NaN; values may not hold a NaN
    that is not missing (:func:`window_extremum` handles those). Holds one block of suffixes
    at a time.
    """
    if r1 <= r0:
        return
    suffix = np.empty(size)
    block = r0 // size * size  # first row of row i's block
    _suffix_extreme(x, device_firsts, max(block - size, 0), block, is_max, suffix[max(size - block, 0):])
    d = np.searchsorted(device_firsts, r0, side="right") - 1  # device of the row i
    next_device = device_firsts[d + 1] if d + 1 < device_firsts.shape[0] else x.shape[0]
    first = device_firsts[d]
    run = _NAN
    for i in range(max(block, first), r1):
        if i == block + size:  # the suffixes of the block just left serve the next one
            _suffix_extreme(x, device_firsts, block, i, is_max, suffix)
            block = i
        if i == next_device:
            d += 1
            first = next_device
            next_device = device_firsts[d + 1] if d + 1 < device_firsts.shape[0] else x.shape[0]
        if i == block or i == first:  # noqa: SIM109 - an == chain is what Numba compiles cheaply
            run = _NAN
        run = _extreme(run, x[i], is_max)
        if i < r0:
            continue
        s = starts[i]
        if s == max(block, first):
            out[i] = run
        elif block - size <= s < block:
            out[i] = _extreme(suffix[s - (block - size)], run, is_max)
        else:  # a short window inside i's block (after a gap): scanned, fewer than ``size`` readings
            v = _NAN
            for k in range(s, i + 1):
                v = _extreme(v, x[k], is_max)
            out[i] = v


@nb.njit(cache=True, nogil=True)
def validity_bits(block, bits, any_missing):
    """Arrow validity bitmaps of the rows of ``block``: bit i of row k is set unless
    block[k, i] is NaN. ``bits`` is (rows, ceil(readings / 64)) uint64 words, which on a
    little-endian machine lay the bits out least significant first, as Arrow's bytes do.
    ``any_missing[k]`` says whether row k has a NaN at all (its bitmap is then needed)."""
    n = block.shape[1]
    full = np.uint64(0xFFFFFFFFFFFFFFFF)
    for k in range(block.shape[0]):
        row = block[k]
        missing = False
        for word in range(bits.shape[1]):
            acc = np.uint64(0)
            first = word * 64
            if first + 64 <= n:
                for b in range(64):  # compares and shifts the compiler vectorises
                    v = row[first + b]
                    acc |= np.uint64(v == v) << np.uint64(b)
                missing |= acc != full
            else:
                for b in range(n - first):
                    v = row[first + b]
                    acc |= np.uint64(v == v) << np.uint64(b)
                missing |= acc != (np.uint64(1) << np.uint64(n - first)) - np.uint64(1)
            bits[k, word] = acc
        any_missing[k] = missing
