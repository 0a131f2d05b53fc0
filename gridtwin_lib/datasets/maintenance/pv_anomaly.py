"""Dataset of m17 (PV anomaly detection), from solar-twin runs with injected faults.

Each configured run (``conf/base/models/maintenance/pv_anomaly.yaml``) is one ``pv_*`` scenario
with its own seed; a fault hits the first ``affected_fraction`` of its devices, so the other
devices of the same run (same sky) are negatives. The **runs** are split, not the time: the
training runs and the held-out runs (``train_sources``, ``test_sources``) have other seeds, so
the test devices, their skies and their fault draws are never seen in training.

Per reading (kind ``pv``), :func:`pv_anomaly_features` gives the raw telemetry
(:data:`~gridtwin_lib.models.maintenance.pv_anomaly.RAW_COLUMNS`) and residuals against what a
healthy plant gives for the **measured** irradiance and weather
(:func:`gridtwin_lib.physics.solar.expected_ac_power`, the twin's own pvlib chain), plus trailing
statistics of the device's own past readings (never later ones):
:data:`~gridtwin_lib.models.maintenance.pv_anomaly.RESIDUAL_COLUMNS`.

Truth is the twin's ``events`` table (fault intervals per device), stored apart from the
measurements: ``y`` is 1 for a reading inside any fault interval of its device. ``meta`` (a dict)
carries per test row ``ts_us`` and ``device_id`` (``<run>/<device>``, the bootstrap block) and the
test runs' ``events`` for the event-level scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ...errors import InputError
from ...models.base import Dataset
from ...models.maintenance.pv_anomaly import INPUT_COLUMNS, RAW_COLUMNS
from ...physics.solar import expected_ac_power

#: the plant parameters the expected power needs
PLANT_KEYS = ("pv_kw", "inverter_kw", "gamma_pdc", "eta_inv_nom")
#: a reading is daylight when the expected AC power is at least this share of the inverter rating
DAYLIGHT_FRACTION = 0.05


def _plant(plant: Mapping[str, Any] | None) -> dict[str, float]:
    if plant is None or any(k not in plant for k in PLANT_KEYS[:2]):
        raise InputError("m17: give the plant's ratings (solar-twin parameters pv_kw, inverter_kw [kW]; "
                         "optionally gamma_pdc [1/K], eta_inv_nom [1]), as in conf/base/models/maintenance/pv_anomaly.yaml")
    return {k: float(plant[k]) for k in PLANT_KEYS if k in plant}


def pv_anomaly_features(readings: pl.DataFrame | pd.DataFrame, plant: Mapping[str, Any]) -> pd.DataFrame:
    """Raw telemetry and residual features of every reading (see the module docstring).

    Parameters
    ----------
    readings : pv readings: ts [UTC], device_id and the columns of ``RAW_COLUMNS`` (ac_power [W],
        dc_voltage [V], dc_current [A], irradiance [W/m2, plane of array], module_temperature,
        ambient_temperature [degC], inverter_efficiency [1, null when not producing], battery_soc [%],
        wind_speed [m/s], humidity [%]). Trailing windows need the device's past: pass at least
        10 days before the readings to be scored.
    plant : the plant's ratings (pv_kw, inverter_kw [kW]; optionally gamma_pdc, eta_inv_nom).

    Returns
    -------
    DataFrame
        ts, device_id and ``INPUT_COLUMNS``, sorted by device and time, all finite.
    """
    phys = _plant(plant)
    frame = readings if isinstance(readings, pl.DataFrame) else pl.from_pandas(readings)
    missing = [c for c in ("ts", "device_id", *RAW_COLUMNS) if c not in frame.columns]
    if missing:
        raise InputError(f"m17 features: the pv readings lack {', '.join(missing)}; pass kind 'pv' readings "
                         "(store.scan('pv', ...)) with every telemetry column")
    frame = frame.select("ts", "device_id", *RAW_COLUMNS).sort("device_id", "ts")
    if frame.height == 0:
        raise InputError("m17 features: no pv readings; simulate or collect some first")
    irr = frame["irradiance"].fill_null(0.0).to_numpy()
    exp = expected_ac_power(irr, frame["ambient_temperature"].fill_null(20.0).to_numpy(),
                            frame["wind_speed"].fill_null(1.0).to_numpy(), **phys)
    ac_kw = frame["ac_power"].fill_null(0.0).to_numpy() / 1000.0
    dc_kw = (frame["dc_voltage"].fill_null(0.0) * frame["dc_current"].fill_null(0.0)).to_numpy() / 1000.0
    day = exp["ac_kw"] >= DAYLIGHT_FRACTION * phys["inverter_kw"]
    eff = frame["inverter_efficiency"].fill_null(np.nan).to_numpy().astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        pr = np.where(day, ac_kw / np.where(day, exp["ac_kw"], 1.0), np.nan)
        dc_ratio = np.where(day, dc_kw / np.where(exp["dc_kw"] > 0, exp["dc_kw"], 1.0), np.nan)
        eff_ratio = np.where(day & np.isfinite(eff) & (eff > 0), eff / exp["efficiency"], np.nan)
    resid = frame.with_columns(
        pl.Series("expected_ac_kw", exp["ac_kw"]),
        pl.Series("performance_ratio", pr, nan_to_null=True),
        pl.Series("dc_power_ratio", dc_ratio, nan_to_null=True),
        pl.Series("efficiency_ratio", eff_ratio, nan_to_null=True),
        pl.Series("module_temp_residual_c", frame["module_temperature"].to_numpy() - exp["cell_temp_c"], nan_to_null=True),
        pl.Series("daylight", day.astype(float)),
    ).with_columns(
        pl.col("battery_soc").diff().abs().fill_null(0.0).over("device_id").alias("soc_step_pct"),
    )
    by = {"by": "ts"}
    rolled = resid.with_columns(
        pl.col("performance_ratio").rolling_mean_by(window_size="1d", **by).over("device_id").alias("pr_24h"),
        (pl.col("ambient_temperature") - pl.col("ambient_temperature").rolling_mean_by(window_size="7d", **by).over("device_id"))
        .alias("ambient_anomaly_c"),
        pl.col("soc_step_pct").rolling_mean_by(window_size="1d", **by).over("device_id").alias("soc_step_24h_pct"),
        (pl.col("battery_soc").rolling_max_by(window_size="6h", **by).over("device_id")
         - pl.col("battery_soc").rolling_min_by(window_size="6h", **by).over("device_id")).alias("soc_range_6h_pct"),
    ).with_columns(
        pl.col("pr_24h").forward_fill().over("device_id").fill_null(1.0).alias("pr_24h"),
    ).with_columns(
        pl.col("pr_24h").rolling_max_by(window_size="10d", **by).over("device_id").alias("pr_best_10d"),
        (pl.col("soc_step_24h_pct") / pl.col("soc_step_24h_pct").rolling_min_by(window_size="10d", **by).over("device_id"))
        .alias("soc_swing_ratio"),
    ).with_columns(
        (pl.col("pr_best_10d") - pl.col("pr_24h")).alias("pr_drop_10d"),
        (pl.col("performance_ratio") / pl.col("pr_best_10d").clip(lower_bound=0.05)).fill_null(1.0).alias("pr_vs_own"),
    ).with_columns(
        pl.col("performance_ratio").fill_null(1.0), pl.col("dc_power_ratio").fill_null(1.0),
        pl.col("efficiency_ratio").fill_null(1.0), pl.col("inverter_efficiency").fill_null(0.0),
        pl.col("module_temp_residual_c").fill_null(0.0), pl.col("soc_swing_ratio").fill_nan(1.0).fill_null(1.0),
    )
    out = rolled.select("ts", "device_id", *INPUT_COLUMNS).to_pandas()
    values = out[list(INPUT_COLUMNS)]
    out[list(INPUT_COLUMNS)] = values.where(np.isfinite(values.to_numpy(float)), 0.0)
    return out


def _epoch_us(ts: pd.Series) -> np.ndarray:
    """Instants [UTC] as int64 microseconds since the epoch (whatever the frame's time unit)."""
    return pd.to_datetime(ts, utc=True).dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype(np.int64)


def fault_labels(ts_us: np.ndarray, device: np.ndarray, events: pd.DataFrame) -> np.ndarray:
    """1 for a reading inside ``[ts, end)`` of any event of its device, else 0 (int8)."""
    label = np.zeros(ts_us.size, np.int8)
    for d, ev in events.groupby("device_id"):
        rows = np.flatnonzero(device == d)
        if rows.size == 0:
            continue
        t = ts_us[rows]
        for s, e in zip(ev["ts_us"].to_numpy(np.int64), ev["end_us"].to_numpy(np.int64), strict=True):
            label[rows[np.searchsorted(t, s, "left"):np.searchsorted(t, e, "left")]] = 1
    return label


def _source_rows(store, source: str, plant: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features of one run (device_id becomes ``<run>/<device>``) and its events (ts_us, end_us, device_id, type)."""
    if source not in store.sources("pv"):
        raise InputError(f"m17 dataset: no pv measurements from source {source!r} in {store.root}; simulate them first "
                         "(the model's simulations in conf/base/models/maintenance/pv_anomaly.yaml, notebook 00_data)")
    run = source.removeprefix("sim:")
    rows = pv_anomaly_features(store.scan("pv", source=source).collect(), plant)
    rows["device_id"] = run + "/" + rows["device_id"].astype(str)
    truth = store.scan_truth("events", source=source).collect()
    if truth.height:
        ev = truth.select(pl.col("ts").dt.epoch("us").alias("ts_us"), pl.col("end").dt.epoch("us").alias("end_us"),
                          (pl.lit(run + "/") + pl.col("device_id")).alias("device_id"), "type").to_pandas()
    else:
        ev = pd.DataFrame({"ts_us": pd.Series(dtype="int64"), "end_us": pd.Series(dtype="int64"),
                           "device_id": pd.Series(dtype=object), "type": pd.Series(dtype=object)})
    return rows, ev


def _rows(store, sources: Sequence[str], plant) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts = [_source_rows(store, s, plant) for s in sources]
    rows = pd.concat([p[0] for p in parts], ignore_index=True).sort_values(["device_id", "ts"], kind="stable")
    return rows.reset_index(drop=True), pd.concat([p[1] for p in parts], ignore_index=True)


def pv_anomaly(store, *, plant: Mapping[str, Any] | None = None, train_sources: Sequence[str] = (),
               test_sources: Sequence[str] = (), merge_gap_s: float = 3600.0, tolerance_s: float = 3600.0) -> Dataset:
    """Train/test readings of m17 (see the module docstring).

    Parameters
    ----------
    store : the :class:`~gridtwin_lib.store.Store` holding the runs.
    plant : the runs' plant ratings (pv_kw, inverter_kw [kW], gamma_pdc [1/K], eta_inv_nom [1]).
    train_sources, test_sources : the runs (``sim:...``) of the training and the held-out devices.
    merge_gap_s : flagged readings closer than this [s] form one detected event.
    tolerance_s : a flag up to this long [s] after a fault interval's end still detects it.
    """
    phys = _plant(plant)
    if not train_sources or not test_sources:
        raise InputError("m17 dataset: give train_sources and test_sources (the solar-twin runs of each side)")
    overlap = set(train_sources) & set(test_sources)
    if overlap:
        raise InputError(f"m17 dataset: {sorted(overlap)} is both a training and a test run; the held-out devices must be unseen")
    train, ev_train = _rows(store, train_sources, phys)
    test, ev_test = _rows(store, test_sources, phys)
    labels = {}
    for name, rows, ev in (("train", train, ev_train), ("test", test, ev_test)):
        ts_us = _epoch_us(rows["ts"])
        labels[name] = (ts_us, fault_labels(ts_us, rows["device_id"].to_numpy(), ev))
    meta_test = {"ts_us": labels["test"][0], "device_id": test["device_id"].to_numpy(), "events": ev_test,
                 "merge_gap_s": float(merge_gap_s), "tolerance_s": float(tolerance_s)}
    iso = lambda t: pd.Timestamp(t).isoformat()  # noqa: E731 - local shorthand
    return Dataset(
        name="pv_anomaly",
        X_train=train[list(INPUT_COLUMNS)], y_train=pd.Series(labels["train"][1], name="fault"),
        X_test=test[list(INPUT_COLUMNS)], y_test=pd.Series(labels["test"][1], name="fault"),
        meta_test=meta_test, meta_train={"device_id": train["device_id"].to_numpy(), "events": ev_train},
        split={"train": [iso(train["ts"].min()), iso(train["ts"].max())], "test": [iso(test["ts"].min()), iso(test["ts"].max())],
               "train_runs": list(train_sources), "test_runs": list(test_sources)},
        params={"train_sources": ",".join(train_sources), "test_sources": ",".join(test_sources),
                "merge_gap_s": merge_gap_s, "tolerance_s": tolerance_s, **{f"plant_{k}": v for k, v in phys.items()}},
        description=(f"{len(train_sources)} training runs ({train['device_id'].nunique()} devices), {len(test_sources)} held-out "
                     f"runs ({test['device_id'].nunique()} devices, {len(ev_test)} fault intervals); every pv_* scenario"),
    )
