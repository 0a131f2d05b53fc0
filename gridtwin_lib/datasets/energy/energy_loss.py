"""Dataset of m10 (energy loss), built from the store.

``energy_loss`` (m10)
    Feeder twin (``feeder_timeseries``): the ``three_phase`` readings at the three transformer
    terminals of each feeder go through :func:`gridtwin_lib.features.compute` and
    :func:`~gridtwin_lib.models.energy.feeder_head_frame`; the label is ``losses_kw`` of the truth
    table ``feeder_losses`` (line + transformer losses of the AC power flow).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import polars as pl

from ... import features
from ...errors import InputError
from ...models.base import Dataset
from ...models.energy.energy_loss import feeder_head_frame

#: the feeder run it reads by default (runs per size: ``conf/base/models/energy/energy_loss.yaml``)
M10_SOURCE = "sim:m10_feeder"


def _iso(x) -> str:
    return pd.Timestamp(x).isoformat()


# --------------------------------------------------------------------------- m10


def feeder_states(store, source: str, who: str, *, resolution: str = "30m", start=None, end=None):
    """Feeder-head measurements (``feeder_head_frame`` of ``features.compute``) joined with the feeder
    twin's state per (feeder, ts): ``losses_kw``, ``load_kw``, ``pv_kw`` from truth ``feeder_losses``.

    Shared by this dataset (losses as labels) and the reactive-power dataset (states to optimise). Returns (data, head) where
    ``head`` holds the model inputs; raises one clear line when the source is missing or not a feeder run.
    """
    raw = store.scan("three_phase", source=source, start=start, end=end).collect()
    if raw.height == 0:
        raise InputError(f"{who} dataset: no three_phase readings of source {source!r} in {store}; simulate the feeder first, "
                         f"e.g. run_scenario('feeder_timeseries', source={source!r}, resolution={resolution!r}, ...)")
    truth = store.scan_truth("feeder_losses", source=source, start=start, end=end).collect()
    if truth.height == 0:
        raise InputError(f"{who} dataset: truth table feeder_losses has no rows for {source!r}; the source is not a feeder_timeseries run")
    head = feeder_head_frame(features.compute(raw, "three_phase", windows=("1h",), keep_inputs=False).to_pandas())
    lab = truth.select("ts", pl.col("device_id").alias("feeder"), "losses_kw", "load_kw", "pv_kw").to_pandas()
    data = head.merge(lab, on=["feeder", "ts"], how="inner", validate="one_to_one").sort_values(["ts", "feeder"]).reset_index(drop=True)
    return data, head


def energy_loss(store, *, source: str = M10_SOURCE, test_fraction: float = 0.3,
                start: datetime | str | None = None, end: datetime | str | None = None) -> Dataset:
    """Feeder-head readings -> technical losses [kW], split by time (last ``test_fraction`` = test).

    X: :func:`feeder_head_frame` columns ``<R|I|C>_<i_mean_a|p_total_w|q_total_var|v_mean_v>``
    (A, W, var, V) per (feeder, ts); y: ``losses_kw`` [kW] from ``feeder_losses``; meta: ts,
    feeder, and the truth's load_kw / pv_kw (for plots only).
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"m10 dataset: test_fraction must be in (0, 1) (got {test_fraction})")
    data, head = feeder_states(store, source, "m10", resolution="30m", start=start, end=end)
    if data.empty:
        raise InputError(f"m10 dataset: feeder readings and feeder_losses of {source!r} share no timestamps; re-simulate into an empty store")
    times = np.sort(data["ts"].unique())
    if times.size < 4:
        raise InputError(f"m10 dataset: only {times.size} time steps in {source!r}; simulate at least a few hours")
    cut = times[int(np.floor((1 - test_fraction) * times.size))]
    train, test = data[data["ts"] < cut], data[data["ts"] >= cut]
    xcols = [c for c in head.columns if c not in ("feeder", "ts")]
    meta_cols = ["ts", "feeder", "load_kw", "pv_kw"]
    return Dataset(
        name="m10_energy_loss",
        X_train=train[xcols].reset_index(drop=True), y_train=train["losses_kw"].reset_index(drop=True),
        X_test=test[xcols].reset_index(drop=True), y_test=test["losses_kw"].reset_index(drop=True),
        meta_train=train[meta_cols].reset_index(drop=True), meta_test=test[meta_cols].reset_index(drop=True),
        split={"train": [_iso(train["ts"].min()), _iso(train["ts"].max())], "test": [_iso(test["ts"].min()), _iso(test["ts"].max())],
               "feeders": sorted(data["feeder"].unique().tolist())},
        params={"source": source, "test_fraction": test_fraction},
        description="feeder-head I, P, Q, V per transformer (features.compute) -> AC power-flow losses [kW] of the CIGRE LV feeder",
    )
