"""The engine's entry points for the models that are not served per reading.

Each entry point serves the registry model of one *role* (:data:`gridtwin_lib.models.registry.ROLES`)
through the serving function the model's module defines (the entry's ``serving``), so this
module names no model: it finds them with :func:`~gridtwin_lib.models.registry.by_role`.

===================  =============================  ==========================================
entry point          role(s)                        output
===================  =============================  ==========================================
score_assets         asset_failure, asset_overload  one row per transformer, ``<id>.<output>``
score_waveforms      waveforms                      one row per 10-cycle window
forecast_day         day_ahead_load                 24 hourly loads [kW]
forecast_pv          pv_forecast                    per PV plant, hourly AC power 1-6 h ahead [kW]
detect_pv_anomalies  pv_anomaly                     per PV reading, fault score and flag
remaining_life       asset_rul                      per PV inverter, remaining life [days] and survival curve
pv_health            pv_health                      per PV device and day, health index and components [0-100]
plan_day             day_plan, dispatch             the LP's schedule and the set-point
balance              phase_move                     the recommended phase move (time-limited)
segment              segments                       archetype per customer
===================  =============================  ==========================================
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ..errors import InputError
from ..models import registry
from .results import OnDemand, on_demand


def _role(role: str) -> registry.ModelEntry:
    entry = registry.by_role(role)
    if entry is None:
        raise InputError(f"no registered model serves {role!r}; see gridtwin_lib.models.registry")
    return entry


class OnDemandScoring:
    """Mixed into :class:`~gridtwin_lib.inference.Engine`: uses its ``estimators``, ``missing``
    and ``time_limit_s``."""

    estimators: dict[str, Any]
    missing: dict[str, str]
    time_limit_s: float
    serving: dict[str, str]

    def _serve(self, model_id: str, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` (a serving function); when a baseline serves ``model_id`` and the
        model's serving function cannot use it, one :class:`InputError` saying so (callers turn
        it into a note) instead of an arbitrary exception."""
        serves = getattr(self, "serving", {}).get(model_id, "model")
        if serves == "model":
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported as one line naming the baseline
            raise InputError(f"{model_id}: {serves.removeprefix('baseline:')} serves (the model did not beat it), but "
                             f"the model's serving function cannot use it: {type(exc).__name__}: {str(exc)[:200]}") from None

    def score_assets(self, observations: pl.DataFrame, *, utc_offset_h: float = 10.0) -> pl.DataFrame:
        """The asset models for each asset at its latest observation.

        Parameters
        ----------
        observations : transformer observations (ts, device_id, load_pu_measured [pu],
            top_oil_temp_c, ambient_temp_c [°C], age_years [a]), as many days as available.
        utc_offset_h : the fleet's local clock [h from UTC].

        Returns
        -------
        One row per asset: ``device_id``, ``ts`` (of the inputs) and ``<model_id>.<output>``
        columns of each asset model; a ``<model_id>.status`` reason instead when its champion
        is missing.
        """
        if observations.height == 0:
            raise InputError("score_assets: no observations; simulate or ingest a transformer fleet first")
        obs = observations.sort("device_id", "ts")
        out = obs.group_by("device_id").agg(pl.col("ts").max()).sort("device_id")
        for role in ("asset_failure", "asset_overload"):
            entry = registry.by_role(role)
            if entry is None:
                continue
            est = self.estimators.get(entry.id)
            if est is None:
                out = out.with_columns(pl.lit(self.missing.get(entry.id, "not loaded")).alias(f"{entry.id}.status"))
                continue
            part = self._serve(entry.id, entry.serving_adapter(), est, obs, utc_offset_h=utc_offset_h)
            part = part.rename({c: f"{entry.id}.{c}" for c in part.columns if c != "device_id"})
            out = out.join(part, on="device_id", how="left")
        return out

    def score_waveforms(self, windows: pd.DataFrame) -> pd.DataFrame:
        """The waveform model's class and THD [%] of 10-cycle windows (columns ``v_000..v_639`` [V])."""
        entry = _role("waveforms")
        pred = self._serve(entry.id, entry.serving_adapter(), self._require(entry.id), windows)
        keep = [c for c in ("ts", "window_id", "source") if c in windows.columns]
        return pd.concat([windows[keep].reset_index(drop=True), pred.add_prefix(f"{entry.id}.").reset_index(drop=True)], axis=1)

    def forecast_day(self, meter_readings: pl.DataFrame, day: date, *, utc_offset_h: float = 1.0,
                     site: str | None = "fr_sceaux") -> pd.DataFrame:
        """The 24 hourly loads [kW] of local ``day`` from meter readings before it
        (``datasets.energy.load_forecast.meter_load`` rows). Columns: hour (local start), load_kw."""
        entry = _role("day_ahead_load")
        load = self._serve(entry.id, entry.serving_adapter(), self._require(entry.id), meter_readings, day,
                           utc_offset_h=utc_offset_h, site=site)
        start = pd.Timestamp(datetime(day.year, day.month, day.day))
        return pd.DataFrame({"hour": pd.date_range(start, periods=24, freq="h"), "load_kw": load})

    def forecast_pv(self, readings, plant: dict[str, Any], *, utc_offset_h: float, **settings) -> pd.DataFrame:
        """Hourly AC power [kW] 1-6 h ahead of each PV device, issued at its latest full hour of
        ``readings`` (kind ``pv``: ts, device_id, ac_power [W]; at least the last 24 h).

        ``plant``: the plant's solar-twin parameters (position, orientation, ratings);
        ``utc_offset_h`` and ``settings`` (``min_clear_sky_fraction``, ``reference_temp_c``): as the
        model's dataset was built (its configuration). Columns: device_id, issued_at, ``<id>.p_kw_h1..6``.
        """
        entry = _role("pv_forecast")
        out = self._serve(entry.id, entry.serving_adapter(), self._require(entry.id), readings, plant,
                          utc_offset_h=utc_offset_h, **settings)
        return out.rename(columns={c: f"{entry.id}.{c}" for c in out.columns if c not in ("device_id", "issued_at")})

    def detect_pv_anomalies(self, readings, plant: dict[str, Any], **settings) -> pd.DataFrame:
        """Fault score [1] and flag of each PV reading (kind ``pv``: ts, device_id and the telemetry;
        include the 10 days before the readings to score: the residual features read the device's past).

        ``plant``: the plant's ratings (pv_kw, inverter_kw [kW]; optionally gamma_pdc, eta_inv_nom);
        ``settings``: ``since`` (only readings from then are returned). Columns: device_id, ts,
        ``<id>.score``, ``<id>.flag``; a detected event is a run of flagged readings of a device.
        """
        entry = _role("pv_anomaly")
        out = self._serve(entry.id, entry.serving_adapter(), self._require(entry.id), readings, plant, **settings)
        return out.rename(columns={c: f"{entry.id}.{c}" for c in out.columns if c not in ("device_id", "ts")})

    def remaining_life(self, observations, readings) -> pd.DataFrame:
        """Each PV inverter's remaining useful life at the end of its latest day of readings.

        Parameters
        ----------
        observations : the inverters' asset observations (ts [UTC], device_id, heatsink_temp_c,
            ambient_temp_c [degC], age_years [years], rating_kva [kW]), 30 days or more.
        readings : their ``pv`` readings (ts, device_id, ac_power [W], inverter_efficiency [1]).

        Returns
        -------
        One row per inverter: device_id, issued_at [UTC] and ``<id>.median_days``, ``<id>.p10_days``,
        ``<id>.p90_days`` (the 10th-90th percentile interval of the time to failure), ``<id>.rmst_days``
        [days], ``<id>.risk`` and the survival curve ``<id>.s_<d>d`` [1] at days 7, 14, ... 364 (a
        percentile at 364 days reads "at least 364 days").
        """
        entry = _role("asset_rul")
        out = self._serve(entry.id, entry.serving_adapter(), self._require(entry.id), observations, readings)
        return out.rename(columns={c: f"{entry.id}.{c}" for c in out.columns if c not in ("device_id", "issued_at")})

    def pv_health(self, readings, plant: dict[str, Any], **settings) -> pd.DataFrame:
        """The health index [0-100] of each PV device and local day of ``readings`` (kind ``pv``, from the
        devices' commissioning on: their first whole days are their reference), with its breakdown.

        ``plant``: the plant's solar-twin parameters (pv_kw, inverter_kw [kW], battery_kwh [kWh], ...);
        ``settings`` (``utc_offset_h``, ``battery_min_pv_kw``, ``reference_days``): as the model's dataset
        was built (its configuration). Columns: device_id, date, ``<id>.health_index`` and
        ``<id>.component_<power|temperature|battery|inverter>``; the index is the components' weighted sum.
        """
        entry = _role("pv_health")
        out = self._serve(entry.id, entry.serving_adapter(), self._require(entry.id), readings, plant, **settings)
        return out.rename(columns={c: f"{entry.id}.{c}" for c in out.columns if c not in ("device_id", "date")})

    def plan_day(self, load_kw: np.ndarray, pv_kw: np.ndarray, price_per_kwh: np.ndarray, *, soc_kwh: float | None = None,
                 time_limit_s: float | None = None) -> dict[str, Any]:
        """A day's plan from forecasts (24 hourly values each: load, PV [kW], price [€/kWh]).

        Returns a dict: ``<day_plan id>``: the LP schedule (an :class:`OnDemand`, limited to
        ``time_limit_s``; solved with default settings when the LP has no champion, then
        ``lp_is_champion`` is False); ``<dispatch id>``: the surrogate's first-hour battery
        set-point [kW] and expected cost, and ``<dispatch short id>_reference_battery_kw``: the
        LP's own first-hour set-point [kW].
        """
        limit = self.time_limit_s if time_limit_s is None else float(time_limit_s)
        load, pv, price = (np.asarray(a, float).reshape(-1) for a in (load_kw, pv_kw, price_per_kwh))
        if not load.size == pv.size == price.size == 24:
            raise InputError(f"plan_day: need 24 hourly values of load, PV and price (got {load.size}, {pv.size}, {price.size})")
        lp_entry = _role("day_plan")
        lp = self.estimators.get(lp_entry.id)
        solve, soc0 = self._serve(lp_entry.id, lp_entry.serving_adapter(), lp, load, pv, price)
        plan = on_demand(lp_entry.id, solve, limit)
        served = getattr(self, "serving", {}).get(lp_entry.id, "model")
        out: dict[str, Any] = {lp_entry.id: plan, "lp_is_champion": lp is not None and served == "model", "lp_served_by": served}
        sp_entry = registry.by_role("dispatch")
        if sp_entry is None:
            return out
        est = self.estimators.get(sp_entry.id)
        if est is None:
            out[sp_entry.id] = {"status": "no_champion", "message": self.missing.get(sp_entry.id, "")}
            return out
        soc = float(soc_kwh) if soc_kwh is not None else soc0
        out[sp_entry.id] = self._serve(sp_entry.id, sp_entry.serving_adapter(), est, soc, load, pv, price)
        if plan.status == "ok":
            first = plan.result.iloc[0]
            out[f"{sp_entry.id.split('_')[0]}_reference_battery_kw"] = float(first["battery_discharge_kw"] - first["battery_charge_kw"])
        return out

    def balance(self, X: pd.DataFrame, *, time_limit_s: float | None = None) -> OnDemand:
        """The recommended phase move for a feeder (rows as its dataset builder makes them),
        limited to ``time_limit_s`` [s]."""
        entry = _role("phase_move")
        est = self._require(entry.id)
        return on_demand(entry.id, lambda: self._serve(entry.id, est.predict, X),
                         self.time_limit_s if time_limit_s is None else float(time_limit_s))

    def segment(self, X) -> pd.DataFrame:
        """Archetype, peak share and flexible energy [kWh] per customer (rows as its dataset builder makes them)."""
        entry = _role("segments")
        return self._serve(entry.id, self._require(entry.id).predict, X)

    def _require(self, model_id: str):
        est = self.estimators.get(model_id)
        if est is None:
            raise InputError(f"{model_id}: {self.missing.get(model_id, 'not loaded')}")
        return est


__all__ = ["OnDemandScoring"]
