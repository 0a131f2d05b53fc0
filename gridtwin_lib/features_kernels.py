"""Compiled (Numba) kernels of the feature catalog, shared by both executors.

The batch executor (:func:`gridtwin_lib.features.compute`) runs the per-reading and
calendar kernels over every row of a frame; the incremental executor
(:mod:`gridtwin_lib.features_incremental`) runs the very same row functions on one
reading at a time, so a per-reading or calendar feature has exactly one definition.
The window update kernel (running sums, monotonic deques) is the incremental
executor's alone: the batch executor computes windows from prefix sums over frames.

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


@nb.njit(cache=True, error_model="numpy")
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


@nb.njit(cache=True, error_model="numpy")
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


@nb.njit(cache=True, error_model="numpy")
def calendar_rows(local_us, first_day, holiday, sunrise_s, sunset_s, month, doy_angle, out):
    """:func:`calendar_row` for every time; ``out`` is features x readings."""
    row_out = np.empty(out.shape[0])
    for r in range(local_us.shape[0]):
        k = local_us[r] // _DAY_US - first_day
        calendar_row(local_us[r], k, holiday, sunrise_s, sunset_s, month, doy_angle, row_out)
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
