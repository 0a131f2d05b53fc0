"""The day orchestration behind the daily report: a stored day through every champion.

:func:`score_day` runs a day of the store through the inference engine
(:class:`~gridtwin_lib.inference.Engine`): grid readings per reading, transformer observations
through the asset models, waveform windows through the waveform model, and the household meter
data into tomorrow's load forecast and plan, and the PV fleets and inverter fleets through the solar-asset
models (:mod:`gridtwin_lib.inference.solar_assets`). :func:`pq_summary` gives the EN 50160 checks of the
day per device. :mod:`gridtwin_lib.report` shapes the result into the daily report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from . import schema
from .errors import InputError
from .inference import ALERT_FEATURES, HISTORY, Engine
from .inference.results import ERROR_SCHEMA
from .inference.streams import as_date, latest_day
from .models import registry


@dataclass
class DayScores:
    """A day of the store through every champion (:func:`score_day`)."""

    day: date
    readings: pl.DataFrame  # per-reading scores (ScoreBatch.frame plus source)
    errors: pl.DataFrame
    units: dict[str, str]
    assets: pl.DataFrame | None  # the asset models per asset
    waveforms: pd.DataFrame | None  # the waveform model per window of the day
    forecast: pd.DataFrame | None  # the day-ahead load model: tomorrow's hourly load [kW]
    plan: dict[str, Any] | None  # the day plan and dispatch set-point for tomorrow (Engine.plan_day)
    pq_summary: pl.DataFrame  # EN 50160 checks per device
    notes: list[str]
    missing: dict[str, str]
    alerts: pl.DataFrame | None = None  # gridtwin_lib.alerts.raise_alerts of readings, assets, inverters and pv
    serving: list[str] | None = None  # what serves each model, in words (Engine.serving_lines)
    pv: pl.DataFrame | None = None  # PV fleets: fault flags of the day's readings and the day's health index (source column)
    inverters: pl.DataFrame | None = None  # inverter fleets: remaining life per inverter at its latest day (source column)

    @property
    def all_assets(self) -> pl.DataFrame | None:
        """Transformers and inverters in one frame (the alert rules' ``assets`` input)."""
        parts = [f for f in (self.assets, self.inverters) if f is not None and f.height]
        return pl.concat(parts, how="diagonal_relaxed") if parts else None


def score_day(store, day: date | str | None = None, *, engine: Engine | None = None, sources: Iterable[str] | None = None,
              progress: bool = False, max_devices: int | None = None, alert_rules=None, days_back: int = 0) -> DayScores:
    """Score one UTC day of the store through every champion.

    ``day`` None scores **each source's own most recent day** (simulated runs cover
    different periods; in a live store they coincide), ``DayScores.day`` being the latest
    of them. Grid readings of the day (with the preceding :data:`HISTORY` to warm each
    device's windows up) go through :meth:`Engine.score`; transformer observations
    through :meth:`Engine.score_assets` (as of their latest data up to the day's end);
    waveform windows of the day through the waveform model; the household meter data (UCI,
    else the meter twin) give tomorrow's load forecast, which with a PV forecast and the tariff
    gives the day plan and the dispatch set-point (models found by role in the registry). Each part that has no data or no champion adds a line to ``notes``
    instead of failing. ``alert_rules``: a path or :class:`~gridtwin_lib.alerts.RuleSet`.
    ``days_back``: with ``day`` None, score each source's day that many days before its most
    recent one (e.g. tune alert thresholds on one day, judge them on the next).
    """
    from tqdm.auto import tqdm

    engine = engine or Engine.from_registry(progress=progress)
    srcs = list(sources) if sources is not None else store.sources("three_phase")
    fixed = as_date(day) if day is not None else None
    if days_back < 0:
        raise InputError(f"days_back must be >= 0 (got {days_back})")
    days = {s: fixed or latest_day(store, "three_phase", [s]) - timedelta(days=days_back)
            for s in srcs if fixed or store.scan("three_phase", source=s).head(1).collect().height}
    if not days:
        raise InputError(f"no three_phase readings of {srcs or 'any source'} in {store}; simulate or ingest some first (make run)")
    day = fixed or max(days.values())
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    notes: list[str] = []
    if fixed is None and len(set(days.values())) > 1:
        notes.append("each source scored on its own most recent day: " + ", ".join(f"{s} {d}" for s, d in sorted(days.items())))
    frames, errs = [], []
    for src, d in tqdm(sorted(days.items()), desc="scoring", unit="source", disable=not progress):
        s0 = datetime(d.year, d.month, d.day, tzinfo=UTC)
        raw = store.scan("three_phase", source=src, start=s0 - HISTORY, end=s0 + timedelta(days=1)).collect()
        if raw.height == 0 or raw["ts"].max() < s0:
            continue
        if max_devices is not None:
            keep = sorted(raw["device_id"].unique().to_list())[:max_devices]
            raw = raw.filter(pl.col("device_id").is_in(keep))
        warm = raw.filter(pl.col("ts") < s0)
        today = raw.filter(pl.col("ts") >= s0)
        eng = Engine(engine.estimators, missing=engine.missing, site=engine.site, time_limit_s=engine.time_limit_s,
                     incremental=engine.incremental)
        eng.serving = dict(engine.serving)  # what serves each model (the model, or its baseline when the gate refused it)
        if warm.height:
            eng.score(warm)  # history only: the day's outputs start at midnight
        batch = eng.score(today, with_features=ALERT_FEATURES)
        frames.append(batch.frame.with_columns(pl.lit(src).alias("source"), pl.lit(d).alias("day")))
        errs.append(batch.errors.with_columns(pl.lit(src).alias("source")))
    readings = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    errors = pl.concat(errs, how="diagonal_relaxed") if errs else pl.DataFrame(schema=ERROR_SCHEMA)
    if not frames:
        notes.append(f"no three_phase readings on {day}")

    assets = _assets_as_of(store, engine, end, notes)

    waveforms = None
    try:
        wins = [s for s in store.truth_sources("waveform_windows")
                if store.scan_truth("waveform_windows", source=s, start=start, end=end).select(pl.len()).collect().item()]
        classifier = registry.by_role("waveforms")
        if wins and classifier is not None and classifier.id in engine.estimators:
            from .datasets.monitoring.harmonic_analysis import waveform_windows

            w = pd.concat([waveform_windows(store, s) for s in wins], ignore_index=True)
            w = w[(pd.to_datetime(w["ts"], utc=True) >= pd.Timestamp(start)) & (pd.to_datetime(w["ts"], utc=True) < pd.Timestamp(end))]
            waveforms = engine.score_waveforms(w) if len(w) else None
    except InputError as exc:
        notes.append(str(exc))

    forecast, plan = None, None
    try:
        forecast, plan = _tomorrow(store, engine, notes)
    except InputError as exc:
        notes.append(str(exc))
    pq = pq_summary(store, start, end, srcs)
    pv, inverters = _solar(store, engine, notes)
    from .alerts import raise_alerts

    out = DayScores(day, readings, errors, engine.units, assets, waveforms, forecast, plan, pq, notes, dict(engine.missing),
                    None, engine.serving_lines(), pv, inverters)
    out.alerts = raise_alerts(readings if readings.height else None, out.all_assets, rules=alert_rules, pv=pv)
    return out


def _solar(store, engine: Engine, notes: list[str]) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """The solar-asset models on each PV fleet's most recent UTC day (fault flags of the day's readings, the day's
    health index; the fleets the models were configured on) and on each inverter fleet at its latest day (remaining
    life); models without a champion add a note."""
    from .inference import solar_assets as sa

    pv_parts = []
    fleets = set(sa.fleet_sources()) if all(registry.by_role(r) for r in (sa.HEALTH_ROLE, sa.ANOMALY_ROLE)) else set()
    for src in sorted(fleets & set(store.sources("pv"))):
        last = store.scan("pv", source=src).select(pl.col("ts").max()).collect().item()
        day_start = datetime(last.year, last.month, last.day, tzinfo=UTC)
        try:
            daily, flags, missing = sa.fleet_outputs(store, engine, src, anomaly_days=(last - day_start).total_seconds() / 86_400)
        except InputError as exc:
            notes.append(f"PV fleet {src}: {exc}")
            continue
        notes.extend(m for m in missing if m not in notes)
        if daily is not None and len(daily):
            daily = daily[daily["date"] == daily["date"].max()]
        frame = sa.pv_alert_frame(daily, flags, src)
        if frame is not None:
            pv_parts.append(frame)
    inverter_parts = []
    if registry.by_role(sa.RUL_ROLE) is not None:
        for src in sa.inverter_fleets(store):
            try:
                rul = sa.fleet_remaining_life(store, engine, src)
            except InputError as exc:
                notes.append(f"inverters of {src}: {exc}")
                continue
            inverter_parts.append(pl.from_pandas(rul.rename(columns={"issued_at": "ts"})).with_columns(
                pl.lit(src).alias("source"), pl.col("ts").cast(pl.Datetime("us", "UTC"))))
    pv = pl.concat(pv_parts, how="diagonal_relaxed") if pv_parts else None
    inverters = pl.concat(inverter_parts, how="diagonal_relaxed") if inverter_parts else None
    return pv, inverters


def _assets_as_of(store, engine: Engine, end: datetime, notes: list[str]) -> pl.DataFrame | None:
    """The asset models per asset of every transformer-fleet source, at its last observation before ``end``
    (fleets are simulated over their own years: each is scored as of its own latest data)."""
    parts = []
    for src in store.truth_sources("asset_observations"):
        last = store.scan_truth("asset_observations", source=src, end=end).select(pl.col("ts").max()).collect().item()
        if last is None:
            continue
        obs = store.scan_truth("asset_observations", source=src, start=last - timedelta(days=31), end=last + timedelta(seconds=1)).collect()
        need = ("ts", "device_id", "load_pu_measured", "top_oil_temp_c", "ambient_temp_c", "age_years")
        if not set(need) <= set(obs.columns):
            continue
        try:
            parts.append(engine.score_assets(obs.select(need)).with_columns(pl.lit(src).alias("source")))
        except InputError as exc:
            notes.append(f"assets of {src}: {exc}")
    if not parts:
        notes.append("no transformer observations: asset risk not scored")
        return None
    return pl.concat(parts, how="diagonal_relaxed")


def _tomorrow(store, engine: Engine, notes: list[str]):
    """Tomorrow's load forecast for the household meter with the most recent data, and its plan."""
    from . import settings
    from .datasets.energy.load_forecast import meter_load
    from .datasets.energy.power_flow_optimization import tou_price

    meters = store.sources("meter")
    if not meters:
        notes.append("no household meter data: no load forecast or plan (ingest UCI: gridtwin ingest uci)")
        return None, None
    src = "uci" if "uci" in meters else meters[0]
    last = store.scan("meter", source=src).select(pl.col("ts").max()).collect().item()
    forecaster = registry.by_role("day_ahead_load")
    if forecaster is None or forecaster.id not in engine.estimators:
        notes.append(f"{forecaster.id}: {engine.missing.get(forecaster.id)}" if forecaster else "no day-ahead load model registered")
        return None, None
    lf = store.scan("meter", source=src, start=last - timedelta(days=9))
    readings = meter_load(lf).collect()
    meter = settings.source_profile(src)  # its clock, holiday site and PV plant (conf/base/sites.yaml)
    offset = meter.utc_offset_h
    tomorrow = (last + timedelta(hours=offset)).date() + timedelta(days=1)
    fc = engine.forecast_day(readings, tomorrow, utc_offset_h=offset, site=meter.site)
    fc.insert(0, "source", src)
    hours = np.arange(24)
    plant = settings.pv_plant(meter.pv_plant) if meter.pv_plant else None
    pv = clear_sky_pv_kw(tomorrow, plant) if plant else np.zeros(24)
    tariff = settings.tariff()  # the day-plan dataset's default tariff (conf/base/tariffs.yaml)
    price = tou_price(hours, tariff.offpeak, tariff.shoulder, tariff.peak, tariff.peak_hours, tariff.offpeak_hours)
    plan = engine.plan_day(fc["load_kw"].to_numpy(), pv, price)
    plan["pv_kw"], plan["price_per_kwh"] = pv, price
    pv_note = (f"PV is a clear-sky forecast of its plant {meter.pv_plant} ({plant['pv_kw']:g} kWp)" if plant
               else "no PV plant configured for it (sources in conf/base/sites.yaml): PV 0")
    notes.append(f"load forecast for {tomorrow} from meter source {src!r} (data until {last:%Y-%m-%d %H:%M} UTC); "
                 f"{pv_note}; tariff {tariff.name} (time-of-use prices, conf/base/tariffs.yaml)")
    return fc, plan


def clear_sky_pv_kw(day: date, site: Mapping[str, float]) -> np.ndarray:
    """Hourly clear-sky AC power [kW] of a PV plant (UTC+1 clock, the value at each half hour):
    a stand-in for a weather forecast, an upper bound on a cloudy day.

    Parameters
    ----------
    day : the local day (24 hours from its midnight, UTC+1).
    site : the plant as a solar-twin parameter set (latitude, longitude [deg], altitude [m],
        tilt_deg, azimuth_deg [deg], pv_kw [kWp], inverter_kw [kW], mean_temp_c [°C]; e.g. a plant
        of ``conf/base/sites.yaml`` as :func:`gridtwin_lib.settings.pv_plant` gives it); the other
        parameters take the solar twin's defaults.

    Returns
    -------
    24 AC powers [kW], through the solar twin's pvlib chain (:mod:`gridtwin_lib.simulate.solar`:
    Ineichen clear sky, isotropic plane of array, Faiman cell temperature, PVWatts DC and inverter).
    """
    from .simulate import solar

    defaults = {name: p.default for name, p in solar.BASE_PARAMS.items()}
    p = {**defaults, **site}
    times = pd.date_range(pd.Timestamp(day), periods=24, freq="h", tz="Etc/GMT-1") + pd.Timedelta(minutes=30)
    weather = solar.clear_sky_weather(times.tz_convert("UTC"), p["latitude"], p["longitude"], p["altitude"])
    poa = solar.plane_of_array(weather, p["tilt_deg"], p["azimuth_deg"])
    still_air_ms = 1.0  # [m/s] the twin's calmest wind: the warmest cells, a conservative bound
    power = solar.pv_power(poa, np.full(24, float(p["mean_temp_c"])), np.full(24, still_air_ms), float(p["pv_kw"]) * 1000.0,
                           float(p["gamma_pdc"]), float(p["inverter_kw"]) * 1000.0, float(p["eta_inv_nom"]))
    return power["pac"] / 1000.0


def pq_summary(store, start: datetime, end: datetime, sources: Iterable[str] | None = None) -> pl.DataFrame:
    """EN 50160 checks of [start, end) per (source, device): readings, share outside the
    voltage band (±10 %), the frequency band (49.5-50.5 Hz, 99.5 % of the year rule applied
    to the day) and the THD limit (8 %), from the soft-rule flags every stored reading carries."""
    rows = []
    bits = {name: schema.flag_mask(name) for name in ("soft.voltage_en50160", "soft.frequency_band", "soft.thd_en50160")}
    for src in (sources if sources is not None else store.sources("three_phase")):
        lf = store.scan("three_phase", source=src, start=start, end=end)
        agg = lf.group_by("device_id").agg(
            pl.len().alias("readings"),
            *[((pl.col("quality_flags") & mask) > 0).mean().mul(100).alias(f"pct_{name.split('.')[1]}") for name, mask in bits.items()],
            pl.col("thd_v").mean().alias("thd_mean_pct"),
        ).collect()
        if agg.height:
            rows.append(agg.with_columns(pl.lit(src).alias("source")))
    if not rows:
        return pl.DataFrame()
    out = pl.concat(rows, how="diagonal_relaxed")
    return out.with_columns(
        (pl.col("pct_voltage_en50160") <= 5.0).alias("voltage_ok"),  # EN 50160: 95 % of 10-min means within ±10 %
        (pl.col("pct_frequency_band") <= 0.5).alias("frequency_ok"),
        (pl.col("pct_thd_en50160") <= 5.0).alias("thd_ok"),
    ).sort("source", "device_id")


__all__ = ["DayScores", "score_day", "pq_summary", "clear_sky_pv_kw", "latest_day", "as_date"]
