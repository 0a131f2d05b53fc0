"""The PQ index (:func:`pq_index`, :func:`pq_window_table`), defined once here on measured
three-phase readings of one 10-minute window (the EN 50160 / IEC 61000-4-30 aggregation
interval). Five quantities, each mapped to a 0-100 sub-score against its EN 50160 limit:

=================  ===========================================================  =====  ========
quantity           definition on the window's readings                           unit   limit L
=================  ===========================================================  =====  ========
``v_dev_pct``      max over phases of ``|mean(v_x) - 230 V| / 230 V * 100``          %      10
``unbalance_pct``  mean of the per-reading unbalance ``max|v_x - v_mean| / v_mean``  %      2
``thd_pct``        mean of the measured voltage THD ``thd_v``                        %      8
``freq_dev_hz``    max of ``|mean f over each 10 s block - 50 Hz|``                  Hz     0.5
``rvc_pct``        flicker-like short-term variation: 95th percentile, over the     %      3
                   window's consecutive-reading steps, of the largest phase step
                   ``|v_x[k] - v_x[k-1]| / 230 V * 100``
=================  ===========================================================  =====  ========

Limits: EN 50160 (LV) supply voltage within ±10 % of U_n for 10-min means; negative-sequence
unbalance up to 2 % (here the magnitude-only unbalance of :mod:`gridtwin_lib.features`, as the
canonical record has no phase angles); THD up to 8 %; frequency 50 Hz ±1 % (10-s means);
rapid voltage changes are "generally below 5 %"; 3 % is used as a stricter flicker proxy
(IEC 61000-3-3 d_max 3.3 %) because the 1-s record cannot give Pst (IEC 61000-4-15).

Sub-score ``s = 100 * clip(1 - x / L, 0, 1)``: 100 for an ideal supply (x = 0), 0 at or beyond
the limit. Index ``= 0.5 * mean(s) + 0.5 * min(s)``: an ideal window scores 100; any limit
violation (one sub-score 0) caps the index at 40 (the mean of the other four is at most 80),
so the worst quantity dominates, as EN 50160 compliance is decided per quantity, while the
mean keeps the index sensitive to every quantity. A window whose frequency or THD readings
are all missing (supply interrupted) scores 0 on those quantities.

Voltage quantities are relative to ``nominal_voltage_v`` (default :data:`gridtwin_lib.config.NOMINAL_VOLTAGE_V`,
230 V) and the frequency to ``nominal_frequency_hz`` (default 50 Hz).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

from ..config import NOMINAL_FREQUENCY_HZ, NOMINAL_VOLTAGE_V
from ..errors import InputError

WINDOW_S = 600  # [s] the 10-min aggregation interval
FREQ_BLOCK_S = 10  # [s] frequency is judged on 10-s means (EN 50160)
#: (quantity, unit, EN 50160 limit)
PQ_LIMITS: dict[str, tuple[str, float]] = {
    "v_dev_pct": ("%", 10.0),
    "unbalance_pct": ("%", 2.0),
    "thd_pct": ("%", 8.0),
    "freq_dev_hz": ("Hz", 0.5),
    "rvc_pct": ("%", 3.0),
}
PQ_QUANTITIES = tuple(PQ_LIMITS)
SUBSCORES = tuple(f"s_{q}" for q in PQ_QUANTITIES)


# --------------------------------------------------------------------------- the PQ index


def subscores(quantities: pd.DataFrame) -> pd.DataFrame:
    """Sub-scores ``s_<quantity> = 100 clip(1 - x / L, 0, 1)`` and ``pq_index`` of quantity rows.

    NaN quantities (no readings of that kind in the window) score 0.
    """
    out = pd.DataFrame(index=quantities.index)
    for q, (_, limit) in PQ_LIMITS.items():
        x = quantities[q].to_numpy(dtype=float)
        s = 100.0 * np.clip(1.0 - np.abs(x) / limit, 0.0, 1.0)
        out[f"s_{q}"] = np.where(np.isfinite(x), s, 0.0)
    s = out[list(SUBSCORES)].to_numpy()
    out["pq_index"] = 0.5 * s.mean(axis=1) + 0.5 * s.min(axis=1)
    return out


def pq_window_table(readings: pl.DataFrame | pd.DataFrame, window_s: int = WINDOW_S,
                    nominal_voltage_v: float = NOMINAL_VOLTAGE_V, nominal_frequency_hz: float = NOMINAL_FREQUENCY_HZ) -> pl.DataFrame:
    """The five quantities, sub-scores and index of every (device, clock-aligned window).

    ``readings``: canonical ``three_phase`` rows (ts [UTC], device_id, v_a, v_b, v_c [V],
    frequency [Hz], thd_v [%]). Returns one row per device and window: ``device_id``,
    ``window_start``, ``n`` (readings), the quantities of :data:`PQ_LIMITS`, ``s_*`` and
    ``pq_index``, sorted by device and window.
    """
    df = pl.from_pandas(readings) if isinstance(readings, pd.DataFrame) else readings
    need = {"ts", "device_id", "v_a", "v_b", "v_c", "frequency", "thd_v"}
    missing = sorted(need - set(df.columns))
    if missing:
        raise InputError(f"pq index: readings lack columns {missing}; pass canonical three_phase records")
    if df.height == 0:
        raise InputError("pq index: no readings in the window")
    vn = nominal_voltage_v
    v = [pl.col(f"v_{p}") for p in "abc"]
    v_mean = (v[0] + v[1] + v[2]) / 3
    every = f"{int(window_s)}s"
    df = df.sort("device_id", "ts").with_columns(
        pl.col("ts").dt.truncate(every).alias("window_start"),
        pl.col("ts").dt.truncate(f"{FREQ_BLOCK_S}s").alias("_fblock"),
        (pl.max_horizontal([(vx - v_mean).abs() for vx in v]) / v_mean * 100).alias("_unb"),
        pl.max_horizontal([(vx - vx.shift(1).over("device_id")).abs() for vx in v]).alias("_step"),
    )
    # the first reading of a window has no step inside the window
    df = df.with_columns(pl.when(pl.col("window_start") == pl.col("window_start").shift(1).over("device_id"))
                         .then(pl.col("_step")).otherwise(None).alias("_step"))
    fblocks = (df.group_by("device_id", "window_start", "_fblock")
               .agg(pl.col("frequency").mean().alias("_f10"))
               .group_by("device_id", "window_start")
               .agg(((pl.col("_f10") - nominal_frequency_hz).abs().max()).alias("freq_dev_hz")))
    agg = df.group_by("device_id", "window_start").agg(
        pl.len().alias("n"),
        (pl.max_horizontal([(vx.mean() - vn).abs() for vx in v]) / vn * 100).alias("v_dev_pct"),
        pl.col("_unb").mean().alias("unbalance_pct"),
        pl.col("thd_v").mean().alias("thd_pct"),
        (pl.col("_step").quantile(0.95, "linear") / vn * 100).fill_null(0.0).alias("rvc_pct"),
    ).join(fblocks, on=["device_id", "window_start"], how="left").sort("device_id", "window_start")
    agg = agg.select("device_id", "window_start", "n", *PQ_QUANTITIES)
    q = agg.select(PQ_QUANTITIES).to_pandas().astype(float)
    return pl.concat([agg, pl.from_pandas(subscores(q))], how="horizontal")


def pq_index(readings: pl.DataFrame | pd.DataFrame) -> float:
    """The PQ index (0-100, 100 = ideal supply) of ONE 10-min window of one device's readings.

    See the module docstring for the five EN 50160 quantities, their limits, the sub-score
    ``100 clip(1 - x / L, 0, 1)`` and the combination ``0.5 mean + 0.5 min``. The readings
    are taken as one window whatever their clock alignment.
    """
    df = pl.from_pandas(readings) if isinstance(readings, pd.DataFrame) else readings
    if df.height == 0:
        raise InputError("pq index: no readings in the window")
    if "device_id" in df.columns and df["device_id"].n_unique() > 1:
        raise InputError("pq index: readings of several devices; pass one device's window (or use pq_window_table)")
    span = (df["ts"].max() - df["ts"].min()).total_seconds()
    t0 = df["ts"].min()
    df = df.with_columns(pl.lit("one").alias("device_id"), (pl.col("ts") - t0 + pl.lit(pd.Timestamp(0, tz="UTC"))).alias("ts"))
    table = pq_window_table(df, window_s=int(max(WINDOW_S, span + 1)) * 10)
    return float(table["pq_index"][0])
