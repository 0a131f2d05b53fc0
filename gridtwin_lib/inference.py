"""One inference engine for the 16 champions: readings in, typed scores out.

The :class:`Engine` loads each model's champion from the MLflow registry once
(:meth:`Engine.from_registry`) and serves it through **the same input code the
dataset builders use for training** (``features.compute``, ``feeder_head_frame``,
``m07_window_rows``, ``frequency_grid``, ``grid_stability_design``,
``m05_daily_features``, ``m06_features``, ``forecast_input``): there is no second
feature implementation to drift, and ``tests/test_inference.py`` proves parity.

What each entry point scores
----------------------------
:meth:`Engine.score` -- canonical ``three_phase`` readings (ts [UTC], device_id,
v_a..c [V], i_a..c [A]; optional p_a..c [W], q_a..c [var], frequency [Hz], thd_v [%]),
one or many devices, one reading (:meth:`Engine.score_one`), a window or a batch.
Per reading it runs the per-reading models:

==========  ==============================================  =====================
module      model and output columns                        needs
==========  ==============================================  =====================
monitoring  m01 anomaly_score [1], is_anomaly [bool]        15 min of history
monitoring  m03 f_t+1..f_t+10 [Hz], p_excursion [1]         100 s at whole seconds
monitoring  m04 cause [class]                               15 min of history
maintenance m07 pq_index_next [0-100]: index forecast of    three closed 10-min
            the current 10-min window, issued when the      windows
            previous one closed
maintenance m08 p_sag_15m [1]                               1 h of history
decision    m15 p_disturbance_30min [1], stability_score    1 h of history
energy      m10 losses_kw [kW]                              feeder-head meters
decision    m13 q_setpoint_kvar [kvar], expected_loss_      ``<feeder>_<R|I|C>``
            reduction_kw [kW]                               at the same instant
==========  ==============================================  =====================

History is **per device**: the engine keeps each device's last
:data:`HISTORY` of accepted readings, so consecutive calls continue a stream and
one device's readings never enter another's windows. The output columns are
``<model_id>.<output>``; :attr:`ScoreBatch.units` gives their units.

A call with a few readings on held history (a stream, :meth:`Engine.score_one`)
computes the features of those readings alone (``features.compute(rows=...)``:
the same code on the readings their windows reach), and m07's forecast is kept
per device until its 10-min window closes (the reading that closes it computes
the next one, and is slower); small inputs walk the forests with NumPy
(``models._trees``). A batch computes every row's features at once. Both give the
same outputs, to float rounding; ``Engine(incremental=False)`` is the reference
path that recomputes everything on every call (``tests/benchmarks/bench_inference.py``).

Other inputs have their own entry points (same champions, same input code):
:meth:`Engine.score_assets` (m05 failure risk, m06 overload class per transformer),
:meth:`Engine.score_waveforms` (m02 IEEE 1159 class of 10-cycle windows),
:meth:`Engine.forecast_day` (m09 day-ahead load), :meth:`Engine.plan_day` (m11
LP schedule with a solver time limit, m16 surrogate set-point, and m16's reference
LP), :meth:`Engine.balance` (m14 phase move, time-limited) and
:meth:`Engine.segment` (m12 archetypes). :func:`score_day` runs a stored day through
all of them for the daily report and the dashboards.

Bad input never stops a batch: each problem is a :class:`ReadingError` with a code
(``missing_field``, ``hard_limit``, ``unknown_device``, ``out_of_order``,
``duplicate``, ``no_champion``, ``insufficient_history``, ``missing_input``,
``model_error``) on that reading; the other readings are scored.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from . import features as F
from . import schema
from .config import Site, default_site
from .errors import InputError

MODEL_IDS: tuple[str, ...] = (
    "m01_voltage_anomaly", "m02_harmonic_analysis", "m03_frequency_stability", "m04_phase_imbalance",
    "m05_equipment_failure", "m06_overload_risk", "m07_power_quality_index", "m08_voltage_sag",
    "m09_load_forecast", "m10_energy_loss", "m11_power_flow_optimization", "m12_demand_response",
    "m13_reactive_power_compensation", "m14_load_balancing", "m15_grid_stability", "m16_optimal_dispatch",
)
MODULE_OF: dict[str, str] = {
    **dict.fromkeys(MODEL_IDS[0:4], "monitoring"), **dict.fromkeys(MODEL_IDS[4:8], "maintenance"),
    **dict.fromkeys(MODEL_IDS[8:12], "energy"), **dict.fromkeys(MODEL_IDS[12:16], "decision"),
}
#: models :meth:`Engine.score` runs on every reading (grid devices; m10/m13 on feeder heads)
READING_MODELS: tuple[str, ...] = (
    "m01_voltage_anomaly", "m03_frequency_stability", "m04_phase_imbalance", "m07_power_quality_index",
    "m08_voltage_sag", "m15_grid_stability", "m10_energy_loss", "m13_reactive_power_compensation",
)
FEEDER_MODELS = ("m10_energy_loss", "m13_reactive_power_compensation")
#: readings fields and features the default alert rules check (EN 50160 voltage, frequency, THD)
ALERT_FEATURES = ("v_a", "v_b", "v_c", "frequency", "v_mean_dev_pct", "v_max_abs_dev_pct", "freq_dev_hz", "thd_v_pct")
GRID_WINDOWS = ("1m", "15m", "1h")  # the union of the per-reading models' feature windows
HISTORY = timedelta(minutes=90)  # 1 h of features + the two closed 10-min windows m07 lags on
#: a call whose new readings are at least this share of the rows it windows (with the held
#: history) computes every row's features; fewer readings get theirs alone (features.compute rows=)
_BATCH_SHARE = 4
REQUIRED = ("ts", "device_id", "v_a", "v_b", "v_c", "i_a", "i_b", "i_c")
ERROR_CODES = ("missing_field", "hard_limit", "unknown_device", "out_of_order", "duplicate", "no_champion",
               "insufficient_history", "missing_input", "model_error")
_ERROR_SCHEMA = {"row": pl.Int64, "ts": pl.Datetime("us", "UTC"), "device_id": pl.String, "code": pl.String,
                 "model_id": pl.String, "message": pl.String}


@dataclass(frozen=True)
class ReadingError:
    """Why one reading (``row``: its position in the input) or one model on it was not scored."""

    row: int
    code: str  # one of ERROR_CODES
    message: str
    model_id: str | None = None
    ts: datetime | None = None
    device_id: str | None = None


@dataclass
class ReadingScore:
    """One reading's outputs, a section per module: ``{model_id: {output: value}}``.

    A model absent from every section did not apply to the reading (e.g. m10 on a
    device that is not a feeder head) or failed; failures are in ``errors``.
    """

    ts: datetime | None
    device_id: str | None
    status: str  # "ok" (every applicable model scored), "partial" or "error" (nothing scored)
    monitoring: dict[str, dict[str, Any]] = field(default_factory=dict)
    maintenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    energy: dict[str, dict[str, Any]] = field(default_factory=dict)
    decision: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[ReadingError] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("ts", "device_id", "status", "monitoring", "maintenance", "energy", "decision")}
        out["ts"] = self.ts.isoformat() if self.ts else None
        out["errors"] = [{"code": e.code, "model_id": e.model_id, "message": e.message} for e in self.errors]
        return out


@dataclass
class ScoreBatch:
    """Scores of a batch: ``frame`` has one row per input reading, in input order (``row``),
    with ``ts``, ``device_id``, ``status`` and ``<model_id>.<output>`` columns; ``errors`` one
    row per problem; ``units`` the unit of every output column."""

    frame: pl.DataFrame
    errors: pl.DataFrame
    units: dict[str, str]

    def __len__(self) -> int:
        return self.frame.height

    def records(self) -> Iterator[ReadingScore]:
        by_row: dict[int, list[ReadingError]] = {}
        for e in self.errors.iter_rows(named=True):
            by_row.setdefault(e["row"], []).append(ReadingError(e["row"], e["code"], e["message"], e["model_id"], e["ts"], e["device_id"]))
        outputs = [c for c in self.frame.columns if "." in c]
        for r in self.frame.iter_rows(named=True):
            rec = ReadingScore(r["ts"], r["device_id"], r["status"], errors=by_row.get(r["row"], []), units=self.units)
            for col in outputs:
                if r[col] is None:
                    continue
                model_id, out = col.split(".", 1)
                getattr(rec, MODULE_OF[model_id]).setdefault(model_id, {})[out] = r[col]
            yield rec


@dataclass
class OnDemand:
    """Result of an optimiser run on demand: ``status`` is "ok", "time_limit" (no answer
    within ``time_limit_s``) or "error"; ``result`` is None unless ok."""

    model_id: str
    status: str
    result: Any
    seconds: float
    time_limit_s: float
    message: str = ""


def _on_demand(model_id: str, fn, time_limit_s: float) -> OnDemand:
    """Run ``fn()`` with a wall-clock limit; report when the limit was hit instead of waiting."""
    pool = cf.ThreadPoolExecutor(max_workers=1)
    t0 = time.perf_counter()
    future = pool.submit(fn)
    try:
        result = future.result(timeout=time_limit_s)
        return OnDemand(model_id, "ok", result, time.perf_counter() - t0, time_limit_s)
    except cf.TimeoutError:
        return OnDemand(model_id, "time_limit", None, time.perf_counter() - t0, time_limit_s,
                        f"{model_id}: no solution within {time_limit_s:g} s; raise the limit or shrink the problem")
    except Exception as exc:  # noqa: BLE001 - reported, never raised: the caller keeps going
        return OnDemand(model_id, "error", None, time.perf_counter() - t0, time_limit_s, f"{model_id}: {exc}")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class Engine:
    """The 16 champions behind one object (see the module docstring).

    Parameters
    ----------
    estimators : fitted :class:`~gridtwin_lib.models.base.GridModel` by model id.
    missing : model id -> why it has no estimator (e.g. no champion in the registry);
        readings get a ``no_champion`` error for those models.
    devices : if given, the only device ids accepted (others: ``unknown_device``);
        ``None`` accepts any device and warms its history up from nothing.
    site : site of the readings (nominal values, calendar features); default site if None.
    time_limit_s : wall-clock limit of each on-demand optimisation [s].
    incremental : True (default): a call with few readings per held history computes the
        features of those readings only (``features.compute(rows=...)``) and m07 reuses each
        device's forecast until its 10-min window closes. False: every call recomputes the
        features of every held reading and m07's forecast, as the engine first did: the
        reference the tests and ``tests/benchmarks/bench_inference.py`` compare with (same
        outputs, to float rounding).
    """

    def __init__(self, estimators: Mapping[str, Any], *, missing: Mapping[str, str] | None = None,
                 devices: Iterable[str] | None = None, site: Site | None = None, time_limit_s: float = 10.0,
                 incremental: bool = True):
        unknown = sorted(set(estimators) - set(MODEL_IDS))
        if unknown:
            raise ValueError(f"unknown model ids {unknown}; known: {', '.join(MODEL_IDS)}")
        self.estimators = dict(estimators)
        self.missing = {m: (missing or {}).get(m, "not loaded") for m in MODEL_IDS if m not in self.estimators}
        self.devices = None if devices is None else frozenset(devices)
        self.site = site or default_site()
        self.time_limit_s = float(time_limit_s)
        self.incremental = bool(incremental)
        self._history: dict[str, pl.DataFrame] = {}
        # device -> (start of its latest reading's 10-min window, m07 forecast for it or None when
        # it has no history): the forecast changes only when a window closes
        self._m07_forecasts: dict[str, tuple[int, float | None]] = {}
        self.units = {f"{m}.{out}": unit for m, est in self.estimators.items() for out, unit in est.spec.output_units.items()}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_registry(cls, model_ids: Iterable[str] = MODEL_IDS, *, alias: str = "champion", progress: bool = False,
                      **kwargs) -> Engine:
        """Load each model's ``@alias`` version from the registry of the current workspace once.

        A model without that alias (or that fails to load) is recorded in ``missing``, with
        the reason, instead of failing the engine.
        """
        from . import tracking

        client = tracking.client()
        estimators, missing = {}, {}
        ids = list(model_ids)
        it = ids
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(ids, desc="loading champions", unit="model")
        from mlflow.exceptions import MlflowException

        def aliased(name: str):
            try:
                return client.get_model_version_by_alias(name, alias)
            except MlflowException:
                return None

        for model_id in it:
            name = f"gridtwin.{model_id}"
            try:
                if aliased(name) is None:
                    missing[model_id] = f"no @{alias} version of {name} in {tracking.tracking_uri()}; run the pipeline that trains it"
                    continue
                estimators[model_id] = tracking.load_estimator(f"models:/{name}@{alias}")
            except Exception as exc:  # noqa: BLE001 - a broken model must not take the others down
                missing[model_id] = f"{name}@{alias} could not be loaded: {str(exc).splitlines()[0][:200]}"
        return cls(estimators, missing=missing, **kwargs)

    def reset(self, device_id: str | None = None) -> None:
        """Forget the history of one device (or of all)."""
        if device_id is None:
            self._history.clear()
            self._m07_forecasts.clear()
        else:
            self._history.pop(device_id, None)
            self._m07_forecasts.pop(device_id, None)

    def history(self, device_id: str) -> pl.DataFrame | None:
        """The accepted readings of ``device_id`` the engine still holds (at most :data:`HISTORY`)."""
        return self._history.get(device_id)

    # ------------------------------------------------------------------ per reading
    def score_one(self, reading: Mapping[str, Any]) -> ReadingScore:
        """One reading (a mapping of canonical field names) -> its :class:`ReadingScore`."""
        return next(self.score([dict(reading)]).records())

    def score(self, readings: pl.DataFrame | pd.DataFrame | Iterable[Mapping[str, Any]],
              with_features: Iterable[str] = ()) -> ScoreBatch:
        """Score canonical three_phase readings through every per-reading champion.

        Readings of a device must come in time order across calls (older ones are
        ``out_of_order``); within a batch they may be interleaved across devices and
        in any order. ``with_features``: readings fields or feature-catalogue columns to
        copy into the result (e.g. :data:`ALERT_FEATURES` for the rule checks of
        :mod:`gridtwin_lib.alerts`).
        """
        df = _as_frame(readings)
        n = df.height
        df = df.with_columns(pl.int_range(n, dtype=pl.Int64).alias("row"))
        errors: list[dict] = []
        ok = self._admit(df, errors)
        out = pl.DataFrame({"row": np.arange(n, dtype=np.int64)})
        parts: list[pl.DataFrame] = []
        if ok.height:
            frame, new_rows = self._with_history(ok)
            if not self.incremental or ok.height * _BATCH_SHARE >= frame.height:  # a batch: every row's features at once
                feats = F.compute(frame, "three_phase", windows=GRID_WINDOWS, site=self.site, keep_inputs=True)
                new = feats.filter(pl.col("row") >= 0)
            else:  # a few readings on held history: the same features, computed for them alone
                feats = None
                new = F.compute(frame, "three_phase", windows=GRID_WINDOWS, site=self.site, keep_inputs=True,
                                rows=pl.col("row") >= 0)
            held = _Held(frame, feats)
            for model_id in READING_MODELS:
                part = self._score_model(model_id, new, held, errors)
                if part is not None:
                    parts.append(part)
            extra = [c for c in dict.fromkeys(with_features) if c in new.columns and c not in ("row", "ts", "device_id")]
            if extra:
                parts.insert(0, new.select("row", *extra))
            self._keep_history(frame)
        # one lazy plan joins every part: a single collect instead of one per join
        joined = out.lazy()
        for p in parts:
            joined = joined.join(p.lazy(), on="row", how="left")
        have = {c for p in parts for c in p.columns}
        absent = [pl.lit(None, dtype=pl.Float64 if out_name not in _TEXT_OUTPUTS else pl.String).alias(f"{model_id}.{out_name}")
                  for model_id in READING_MODELS for out_name in self._outputs(model_id) if f"{model_id}.{out_name}" not in have]
        if absent:
            joined = joined.with_columns(absent)
        err = pl.DataFrame(errors, schema=_ERROR_SCHEMA) if errors else pl.DataFrame(schema=_ERROR_SCHEMA)
        status = _status(n, err, ok["row"].to_numpy() if ok.height else np.empty(0, np.int64))
        ident = df.lazy().select("row", pl.col("ts") if "ts" in df.columns else pl.lit(None, pl.Datetime("us", "UTC")).alias("ts"),
                                 pl.col("device_id").cast(pl.String) if "device_id" in df.columns else pl.lit(None, pl.String).alias("device_id"))
        result = ident.with_columns(pl.Series("status", status, dtype=pl.String)).join(joined, on="row", how="left").sort("row").collect()
        return ScoreBatch(result, err.sort("row", "code") if err.height > 1 else err, dict(self.units))

    def _outputs(self, model_id: str) -> list[str]:
        est = self.estimators.get(model_id)
        if est is not None:
            return [o for o in est.spec.output_units if o not in _DROPPED_OUTPUTS.get(model_id, ())]
        return list(_DEFAULT_OUTPUTS.get(model_id, ()))

    def _admit(self, df: pl.DataFrame, errors: list[dict]) -> pl.DataFrame:
        """The readings that may be scored; every other one gets its error."""
        absent = [c for c in REQUIRED if c not in df.columns]
        if absent:
            msg = f"reading lacks field(s) {', '.join(absent)}; send canonical three_phase fields ({', '.join(REQUIRED)})"
            errors.extend(_err(r, "missing_field", msg) for r in df.select("row", *[c for c in ("ts", "device_id") if c in df.columns]).iter_rows(named=True))
            return df.clear()
        try:
            df = _canonical(df)
        except (InputError, pl.exceptions.PolarsError, ValueError) as exc:
            msg = f"readings could not be read as three_phase fields: {str(exc).splitlines()[0]}"
            errors.extend(_err(r, "missing_field", msg) for r in df.select("row").iter_rows(named=True))
            return df.clear()
        nulls = df.select("row", "ts", "device_id", pl.concat_str(
            [pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in REQUIRED], separator=",", ignore_nulls=True).alias("_null"))
        bad = nulls.filter(pl.col("_null") != "")
        errors.extend(_err(r, "missing_field", f"field(s) {r['_null']} are null; the reading needs every phase's voltage and current")
                      for r in bad.iter_rows(named=True))
        if bad.height:
            df = df.filter(~pl.col("row").is_in(bad["row"].implode()))
        if df.height:
            v = schema.validate(df, "three_phase", site=self.site)
            for r in v.rejected.iter_rows(named=True):
                errors.append(_err(r, "hard_limit", f"outside hard limits ({r['detail']}): {_rule_text(r['rule'])}"))
            df = v.accepted
        if self.devices is not None and df.height:
            unknown = df.filter(~pl.col("device_id").is_in(list(self.devices)))
            errors.extend(_err(r, "unknown_device", f"device {r['device_id']!r} is not one the engine serves; register it "
                                                    "(gridtwin devices add) or score without a device list") for r in unknown.iter_rows(named=True))
            df = df.filter(pl.col("device_id").is_in(list(self.devices)))
        if df.height == 0:
            return df
        if df.height > 1:
            df = df.sort("device_id", "ts", "row")
            dup = df.filter(pl.col("ts") == pl.col("ts").shift(1).over("device_id"))
            errors.extend(_err(r, "duplicate", "a reading of this device at this instant is already in the batch") for r in dup.iter_rows(named=True))
            if dup.height:
                df = df.filter(~pl.col("row").is_in(dup["row"].implode()))
        last = pl.DataFrame({"device_id": list(self._history), "_last": [h["ts"].max() for h in self._history.values()]},
                            schema={"device_id": pl.String, "_last": pl.Datetime("us", "UTC")})
        df = df.join(last, on="device_id", how="left")
        old = df.filter(pl.col("ts") <= pl.col("_last"))
        errors.extend(_err(r, "out_of_order", f"older than this device's last scored reading ({r['_last']:%Y-%m-%d %H:%M:%S}); "
                                              "send each device's readings in time order") for r in old.iter_rows(named=True))
        return df.filter(pl.col("_last").is_null() | (pl.col("ts") > pl.col("_last"))).drop("_last")

    def _with_history(self, ok: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        held = [self._history[d] for d in ok["device_id"].unique().to_list() if d in self._history]
        frame = pl.concat([*held, ok], how="vertical_relaxed") if held else ok
        return frame.sort("device_id", "ts"), ok

    def _keep_history(self, frame: pl.DataFrame) -> None:
        kept = frame.filter(pl.col("ts") > pl.col("ts").max().over("device_id") - HISTORY).with_columns(pl.lit(-1, dtype=pl.Int64).alias("row"))
        for (device,), part in kept.partition_by("device_id", as_dict=True).items():
            self._history[device] = part

    # one method per family of inputs; each returns a frame keyed by "row" or None
    def _score_model(self, model_id: str, new: pl.DataFrame, held: _Held, errors: list[dict]) -> pl.DataFrame | None:
        applies = held.feeder_rows(new) if model_id in FEEDER_MODELS else new
        if applies.height == 0:
            return None
        est = self.estimators.get(model_id)
        if est is None:
            reason = self.missing.get(model_id, "not loaded")
            errors.extend(_err(r, "no_champion", reason, model_id) for r in applies.select("row", "ts", "device_id").iter_rows(named=True))
            return None
        try:
            return _SCORERS[model_id](self, est, model_id, applies, held, errors)
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the batch
            msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}" if str(exc) else type(exc).__name__
            errors.extend(_err(r, "model_error", msg, model_id) for r in applies.select("row", "ts", "device_id").iter_rows(named=True))
            return None

    # ------------------------------------------------------------------ other inputs
    def score_assets(self, observations: pl.DataFrame, *, utc_offset_h: float = 10.0) -> pl.DataFrame:
        """m05 and m06 for each asset at its latest observation.

        ``observations``: transformer observations (ts, device_id, load_pu_measured [pu],
        top_oil_temp_c, ambient_temp_c [°C], age_years [a]), as many days as available
        (m05's rolling features use up to 30). Returns one row per asset: ``device_id``,
        ``ts`` (of the inputs), ``m05_equipment_failure.p_fail_7d`` [1] and ``.alarm``,
        ``m06_overload_risk.load_class`` and its class probabilities [1], each null with a
        ``*_status`` reason when the champion is missing.
        """
        from .datasets.maintenance.equipment_failure import m05_daily_features
        from .datasets.maintenance.overload_risk import m06_features
        from .models.maintenance.equipment_failure import M05_INPUT_COLUMNS
        from .models.maintenance.overload_risk import M06_INPUT_COLUMNS

        if observations.height == 0:
            raise InputError("score_assets: no observations; simulate or ingest a transformer fleet first")
        obs = observations.sort("device_id", "ts")
        out = obs.group_by("device_id").agg(pl.col("ts").max()).sort("device_id")
        m05 = self.estimators.get("m05_equipment_failure")
        if m05 is not None:
            daily = m05_daily_features(obs).sort("device_id", "ts").group_by("device_id").agg(pl.all().last())
            pred = m05.predict(daily.select(list(M05_INPUT_COLUMNS)).to_pandas())
            out = out.join(pl.from_pandas(pred.add_prefix("m05_equipment_failure.")).with_columns(daily["device_id"]), on="device_id", how="left")
        else:
            out = out.with_columns(pl.lit(self.missing["m05_equipment_failure"]).alias("m05_equipment_failure.status"))
        m06 = self.estimators.get("m06_overload_risk")
        if m06 is not None:
            f = m06_features(obs, utc_offset_h).sort("device_id", "ts").group_by("device_id").agg(pl.all().last())
            pred = m06.predict(f.select(list(M06_INPUT_COLUMNS)).to_pandas())
            out = out.join(pl.from_pandas(pred.add_prefix("m06_overload_risk.")).with_columns(f["device_id"]), on="device_id", how="left")
        else:
            out = out.with_columns(pl.lit(self.missing["m06_overload_risk"]).alias("m06_overload_risk.status"))
        return out

    def score_waveforms(self, windows: pd.DataFrame) -> pd.DataFrame:
        """m02: IEEE 1159 class and THD [%] of 10-cycle windows (columns ``v_000..v_639`` [V])."""
        est = self._require("m02_harmonic_analysis")
        from .models.monitoring.harmonic_analysis import SAMPLE_COLUMNS

        pred = est.predict(windows[list(SAMPLE_COLUMNS)])
        keep = [c for c in ("ts", "window_id", "source") if c in windows.columns]
        return pd.concat([windows[keep].reset_index(drop=True), pred.add_prefix("m02_harmonic_analysis.").reset_index(drop=True)], axis=1)

    def forecast_day(self, meter_readings: pl.DataFrame, day: date, *, utc_offset_h: float = 1.0,
                     site: str | None = "fr_sceaux") -> pd.DataFrame:
        """m09: the 24 hourly loads [kW] of local ``day`` from meter readings before it
        (:func:`~gridtwin_lib.datasets.energy_forecast.meter_load` rows). Columns: hour
        (local start), load_kw."""
        from .datasets.energy.load_forecast import forecast_input
        from .models.energy.load_forecast import OUT_COLS

        est = self._require("m09_load_forecast")
        row = forecast_input(meter_readings, day, utc_offset_h=utc_offset_h, site=site)
        pred = est.predict(row)
        start = pd.Timestamp(datetime(day.year, day.month, day.day))
        return pd.DataFrame({"hour": pd.date_range(start, periods=24, freq="h"),
                             "load_kw": pred[list(OUT_COLS)].to_numpy(float)[0]})

    def plan_day(self, load_kw: np.ndarray, pv_kw: np.ndarray, price_per_kwh: np.ndarray, *, soc_kwh: float | None = None,
                 time_limit_s: float | None = None) -> dict[str, Any]:
        """A day's plan from forecasts (24 hourly values each: load, PV [kW], price [€/kWh]).

        ``m11``: the HiGHS LP schedule (an :class:`OnDemand`, limited to ``time_limit_s``);
        ``m16``: the surrogate's battery set-point for the first hour [kW] and its expected
        cost, with the LP's first-hour set-point as its reference.
        """
        from .models.energy.power_flow_optimization import PowerFlowOptimization

        limit = self.time_limit_s if time_limit_s is None else float(time_limit_s)
        load, pv, price = (np.asarray(a, float).reshape(-1) for a in (load_kw, pv_kw, price_per_kwh))
        if not load.size == pv.size == price.size == 24:
            raise InputError(f"plan_day: need 24 hourly values of load, PV and price (got {load.size}, {pv.size}, {price.size})")
        X = pd.DataFrame({"day": 0, "hour": np.arange(24), "load_kw": load, "pv_kw": pv, "price_per_kwh": price})
        m11 = self.estimators.get("m11_power_flow_optimization")
        lp = m11 if m11 is not None else PowerFlowOptimization()
        plan = _on_demand("m11_power_flow_optimization", lambda: lp.predict(X), limit)
        out: dict[str, Any] = {"m11_power_flow_optimization": plan, "lp_is_champion": m11 is not None}
        m16 = self.estimators.get("m16_optimal_dispatch")
        if m16 is not None:
            from .models.decision.optimal_dispatch import dispatch_features

            soc = float(soc_kwh) if soc_kwh is not None else float(lp._site().s0)
            feats = dispatch_features(np.array([soc]), np.array([0]), load[None, :], pv[None, :], price[None, :])
            t0 = time.perf_counter()
            sp = m16.predict(feats)
            out["m16_optimal_dispatch"] = {**{k: float(v) for k, v in sp.iloc[0].items()}, "seconds": time.perf_counter() - t0}
            if plan.status == "ok":
                first = plan.result.iloc[0]
                out["m16_reference_battery_kw"] = float(first["battery_discharge_kw"] - first["battery_charge_kw"])
        else:
            out["m16_optimal_dispatch"] = {"status": "no_champion", "message": self.missing.get("m16_optimal_dispatch", "")}
        return out

    def balance(self, X: pd.DataFrame, *, time_limit_s: float | None = None) -> OnDemand:
        """m14: the recommended phase move for a feeder (rows as built by
        :func:`gridtwin_lib.datasets.decision.load_balancing`), limited to ``time_limit_s``."""
        est = self._require("m14_load_balancing")
        return _on_demand("m14_load_balancing", lambda: est.predict(X), self.time_limit_s if time_limit_s is None else float(time_limit_s))

    def segment(self, X) -> pd.DataFrame:
        """m12: archetype, peak share and flexible energy [kWh] per customer (rows as built by
        :func:`gridtwin_lib.datasets.energy.demand_response`)."""
        return self._require("m12_demand_response").predict(X)

    def _require(self, model_id: str):
        est = self.estimators.get(model_id)
        if est is None:
            raise InputError(f"{model_id}: {self.missing.get(model_id, 'not loaded')}")
        return est


# ---------------------------------------------------------------------- scorers of the per-reading models
_TEXT_OUTPUTS = {"cause", "label"}
_DROPPED_OUTPUTS = {"m13_reactive_power_compensation": ("compute_time_s",)}
_DEFAULT_OUTPUTS = {
    "m01_voltage_anomaly": ("anomaly_score", "is_anomaly"),
    "m03_frequency_stability": (*[f"f_t+{h}" for h in range(1, 11)], "p_excursion"),
    "m04_phase_imbalance": ("cause",),
    "m07_power_quality_index": ("pq_index_next",),
    "m08_voltage_sag": ("p_sag_15m",),
    "m15_grid_stability": ("p_disturbance_30min", "stability_score"),
    "m10_energy_loss": ("losses_kw",),
    "m13_reactive_power_compensation": ("q_setpoint_kvar", "expected_loss_reduction_kw"),
}


@dataclass
class _Held:
    """What a scorer sees besides the new readings' features: the readings of their devices
    (held history, ``row`` -1, then the new ones; by device and time) and the features of all
    of them when a batch computed those anyway (None when only the new rows' were)."""

    readings: pl.DataFrame
    features: pl.DataFrame | None
    _feeder: dict[str, Any] = field(default_factory=dict)  # the feeder meters' rows and head frame of this call

    def feeder_rows(self, new: pl.DataFrame) -> pl.DataFrame:
        """:func:`_feeder_rows` of ``new``, found once for m10 and m13."""
        if "rows" not in self._feeder:
            self._feeder["rows"] = _feeder_rows(new)
        return self._feeder["rows"]

    def head_frame(self, feeder_rows: pl.DataFrame) -> pd.DataFrame:
        """``feeder_head_frame`` of the feeder meters' rows, built once for m10 and m13."""
        from .models.energy.energy_loss import HEAD_FEATURES, feeder_head_frame

        if "head" not in self._feeder:
            self._feeder["head"] = feeder_head_frame(feeder_rows.select("ts", "device_id", *HEAD_FEATURES).to_pandas())
        return self._feeder["head"]


def _prefixed(model_id: str, rows: np.ndarray, pred: pd.DataFrame, drop=()) -> pl.DataFrame:
    """``pred``'s columns as ``<model_id>.<output>`` (NaN as null, as ``pl.from_pandas``) and ``row``."""
    cols = [pl.Series(f"{model_id}.{c}", pred[c].to_numpy(), nan_to_null=True) for c in pred.columns if c not in drop]
    return pl.DataFrame([*cols, pl.Series("row", rows, dtype=pl.Int64)])


def _float_frame(frame: pl.DataFrame, cols: list[str]) -> pd.DataFrame:
    """``frame``'s ``cols`` as one float64 block (null as NaN), as ``to_pandas`` gives them,
    without its per-column conversion (~3 ms for m15's 150 columns of one reading)."""
    part = frame[cols]
    if all(dtype.is_numeric() for dtype in part.dtypes):  # one NumPy conversion, no cast expressions to plan
        return pd.DataFrame(part.to_numpy().astype(np.float64, copy=False), columns=cols)
    return pd.DataFrame(frame.select([pl.col(c).cast(pl.Float64) for c in cols]).to_numpy(), columns=cols)


def _columns_scorer(columns_of):
    """A scorer for models whose inputs are feature-catalogue columns of the reading itself."""

    def score(engine, est, model_id, new, held, errors):
        cols = list(columns_of(est))
        X = _float_frame(new, cols)
        rows = new["row"].to_numpy()
        if model_id == "m08_voltage_sag":  # trained on complete rows only (no interruption minutes)
            ok = X.notna().all(axis=1).to_numpy()
            _missing_input(errors, new.filter(pl.Series(~ok)), model_id, "a 1m/15m/1h feature is undefined (supply interruption?)")
            X, rows = X[ok], rows[ok]
            if not len(rows):
                return None
        return _prefixed(model_id, rows, est.predict(X))

    return score


def _score_m15(engine, est, model_id, new, held, errors):
    from .datasets.decision.grid_stability import grid_stability_design

    # the training design is built in (ts, device) order: carry-forward follows the same order
    ordered = new.sort("ts", "device_id", "row") if new.height > 1 else new
    cols = list(est.columns_)
    X = _float_frame(ordered, cols)
    if ordered.height > 1:  # one reading has nothing to carry forward: the same design without the group-by
        X.insert(0, "device_id", ordered["device_id"].to_numpy())
    return _prefixed(model_id, ordered["row"].to_numpy(), est.predict(grid_stability_design(X, cols)))


def _score_m03(engine, est, model_id, new, held, errors):
    from .datasets.monitoring.frequency_stability import frequency_grid
    from .models.monitoring.frequency_stability import HISTORY as N_HIST
    from .models.monitoring.frequency_stability import INPUT_COLUMNS

    rows, hist, skipped = [], [], []
    for (device,), part in held.readings.select("ts", "device_id", "frequency", "row").partition_by("device_id", as_dict=True).items():
        us = part["ts"].dt.epoch("us").to_numpy()
        whole = us % 1_000_000 == 0
        grid, f = frequency_grid(us[whole], part["frequency"].filter(pl.Series(whole)))
        sec0 = grid[0] if grid.size else 0
        row = part["row"].to_numpy()
        new_row = row >= 0
        # each new whole-second reading's window is f[k - N_HIST + 1 .. k], k its second on the grid
        k = us // 1_000_000 - sec0
        ok = new_row & whole & (k >= N_HIST - 1)
        gaps = np.concatenate([[0], np.cumsum(~np.isfinite(f))])  # non-finite values up to each second
        ok[ok] = gaps[k[ok] + 1] == gaps[k[ok] + 1 - N_HIST]
        skipped.append(row[new_row & ~ok])
        if ok.any():
            rows.append(row[ok])
            hist.append(np.lib.stride_tricks.sliding_window_view(f, N_HIST)[k[ok] - N_HIST + 1])
    skipped = np.concatenate(skipped) if skipped else np.empty(0, np.int64)
    if skipped.size:
        _missing_input(errors, new.filter(pl.col("row").is_in(skipped.tolist())), model_id,
                       f"needs the last {N_HIST} one-second frequencies of this device (whole-second readings, no gap)",
                       code="insufficient_history")
    if not rows:
        return None
    return _prefixed(model_id, np.concatenate(rows), est.predict(pd.DataFrame(np.vstack(hist), columns=INPUT_COLUMNS)))


def _score_m07(engine, est, model_id, new, held, errors):
    """m07's forecast for each reading's 10-min window, issued when the previous window closed:
    kept per device, so only a device's first reading in a window computes it."""
    from .models.maintenance.power_quality_index import WINDOW_S

    window_us = WINDOW_S * 1_000_000
    devices = new["device_id"].to_list()
    windows = (new["ts"].dt.epoch("us").to_numpy() // window_us * window_us).tolist()
    cached = [engine._m07_forecasts.get(d, (None, None)) if engine.incremental else (None, None) for d in devices]
    hit = np.array([c[0] == w for c, w in zip(cached, windows)], dtype=bool)
    value = np.array([c[1] if h and c[1] is not None else np.nan for c, h in zip(cached, hit)], dtype=float)
    if not hit.all():
        # a forecast for window W needs readings in W-1, W-2 and W-3 (m07_rows makes a missing
        # window a NaN row, which has no forecast): skip the build when one of them is empty
        keys = set(zip((d for d, h in zip(devices, hit) if not h), (w for w, h in zip(windows, hit) if not h)))
        possible = _m07_windows_held(held.readings, keys, window_us)
        todo = np.array([not h and (d, w) in possible for d, w, h in zip(devices, windows, hit)], dtype=bool)
        computed = _m07_forecasts(engine, est, new.filter(pl.Series(todo)), held) if todo.any() else {}
        for k in np.flatnonzero(~hit):
            value[k] = computed.get((devices[k], windows[k]), np.nan)
        for d, w in zip(devices, windows):  # keep each device's latest window (readings come in time order)
            kept = engine._m07_forecasts.get(d)
            if kept is None or w > kept[0]:
                forecast = computed.get((d, w), np.nan)
                engine._m07_forecasts[d] = (w, float(forecast) if np.isfinite(forecast) else None)
    miss = np.isnan(value)
    if miss.any():
        _missing_input(errors, new.filter(pl.Series(miss)), model_id,
                       "needs the three closed 10-min windows before this reading's window, with valid PQ quantities",
                       code="insufficient_history")
    if miss.all():
        return None
    return _prefixed(model_id, new["row"].to_numpy()[~miss], pd.DataFrame({"pq_index_next": value[~miss]}))


def _m07_windows_held(readings: pl.DataFrame, keys: set[tuple[str, int]], window_us: int) -> set[tuple[str, int]]:
    """The (device, window start [us]) of ``keys`` whose device holds readings in each of the
    three windows before that window."""
    starts = readings.select("device_id", (pl.col("ts").dt.epoch("us") // window_us * window_us).alias("w")).unique()
    held = set(zip(starts["device_id"].to_list(), starts["w"].to_list()))
    return {(d, w) for d, w in keys if all((d, w - k * window_us) in held for k in (1, 2, 3))}


def _m07_forecasts(engine, est, new: pl.DataFrame, held: _Held) -> dict[tuple[str, int], float]:
    """(device, window start [us since epoch]) -> m07 forecast for each window of ``new``'s
    readings that has one, from the training builder's rows (``m07_window_rows``, ``m07_rows``)
    of the three closed windows before it."""
    from .datasets.maintenance.power_quality_index import m07_rows, m07_window_rows
    from .models.maintenance.power_quality_index import M07_FEATURES, M07_INPUT_COLUMNS, WINDOW_S

    step = timedelta(seconds=WINDOW_S)
    first = new["ts"].min()
    since = datetime.fromtimestamp(int(first.timestamp()) // WINDOW_S * WINDOW_S, tz=timezone.utc) - 3 * step
    mine = pl.col("device_id").is_in(new["device_id"].unique().implode())
    readings = held.readings.filter(mine)
    raw = readings.select([c for c in readings.columns if c in set(schema.polars_schema("three_phase")) | {"row"}])
    if held.features is not None:
        feats = held.features.filter(mine)
    else:  # the features of each window's last reading are all the builder keeps
        window = pl.col("ts").dt.truncate(f"{WINDOW_S}s")
        last = (window != window.shift(-1).over("device_id")).fill_null(True)
        feats = F.compute(readings, "three_phase", windows=GRID_WINDOWS, site=engine.site, keep_inputs=False,
                          rows=last & (pl.col("ts") >= since))
    win, ft = m07_window_rows(raw, since, engine.site, features=feats.select("ts", "device_id", *M07_FEATURES))
    table = m07_rows(win, ft)
    cols = list(M07_INPUT_COLUMNS)
    X = table[cols].astype(float)
    ok = np.isfinite(X.to_numpy()).all(axis=1)
    if not ok.any():
        return {}
    table = table[ok]
    # the window each forecast is for: the one after window k
    target = ((pd.to_datetime(table["window_start"], utc=True) + step - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)).to_numpy()
    value = est.predict(X[ok]).iloc[:, 0].to_numpy(float)
    return dict(zip(zip(table["device_id"].astype(str), target.tolist()), value.tolist()))


def _feeder_rows(new: pl.DataFrame) -> pl.DataFrame:
    from .models.decision.reactive_power_compensation import SUBNETS

    return new.filter(pl.col("device_id").str.extract(r"_([A-Za-z]+)$", 1).is_in(list(SUBNETS)))


def _score_feeder(engine, est, model_id, new, held, errors):
    rows = new.select("row", "ts", "device_id", pl.col("device_id").str.replace(r"_[A-Za-z]+$", "").alias("feeder"))
    head = held.head_frame(new)
    if head.empty:
        _missing_input(errors, new, model_id, "needs every transformer meter of the feeder (<feeder>_R, _I, _C) at the same instant")
        return None
    cols = [c for c in head.columns if c not in ("feeder", "ts")]
    pred = est.predict(head[cols]).reset_index(drop=True)
    pred = pred.drop(columns=[c for c in _DROPPED_OUTPUTS.get(model_id, ()) if c in pred.columns])
    ts_us = (pd.to_datetime(head["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
    keyed = pl.DataFrame([pl.Series("feeder", head["feeder"].astype(str).to_numpy(), dtype=pl.String),
                          pl.Series("ts", ts_us.to_numpy(), dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
                          *[pl.Series(f"{model_id}.{c}", pred[c].to_numpy(), nan_to_null=True) for c in pred.columns]])
    joined = rows.join(keyed, on=["feeder", "ts"], how="left")
    first = f"{model_id}.{pred.columns[0]}"
    if joined[first].null_count():
        lost = joined.filter(pl.col(first).is_null())
        _missing_input(errors, lost, model_id, "needs every transformer meter of the feeder (<feeder>_R, _I, _C) at the same instant")
        joined = joined.filter(pl.col(first).is_not_null())
    return joined.drop("ts", "device_id", "feeder")


def _m01_columns(est):
    from .models.monitoring.voltage_anomaly import M01_INPUT_COLUMNS

    return M01_INPUT_COLUMNS


def _m04_columns(est):
    from .models.monitoring.phase_imbalance import M04_INPUT_COLUMNS

    return M04_INPUT_COLUMNS


def _m08_columns(est):
    from .models.maintenance.voltage_sag import M08_INPUT_COLUMNS

    return M08_INPUT_COLUMNS


_SCORERS = {
    "m01_voltage_anomaly": _columns_scorer(_m01_columns),
    "m04_phase_imbalance": _columns_scorer(_m04_columns),
    "m08_voltage_sag": _columns_scorer(_m08_columns),
    "m15_grid_stability": _score_m15,
    "m03_frequency_stability": _score_m03,
    "m07_power_quality_index": _score_m07,
    "m10_energy_loss": _score_feeder,
    "m13_reactive_power_compensation": _score_feeder,
}


# ---------------------------------------------------------------------- helpers
def _as_frame(readings) -> pl.DataFrame:
    if isinstance(readings, pl.DataFrame):
        return readings
    if isinstance(readings, pd.DataFrame):
        return pl.from_pandas(readings)
    if isinstance(readings, Mapping):
        readings = [readings]
    rows = list(readings)
    if not rows:
        return pl.DataFrame()
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame({k: [r.get(k) for r in rows] for k in keys}, strict=False)


def _canonical(df: pl.DataFrame) -> pl.DataFrame:
    """Cast to the three_phase schema (ts to UTC; text timestamps parsed), keep ``row``."""
    ts = df["ts"]
    if ts.dtype == pl.String:
        ts = ts.str.to_datetime(time_zone="UTC", strict=False)
    elif isinstance(ts.dtype, pl.Datetime):
        ts = ts.dt.replace_time_zone("UTC") if ts.dtype.time_zone is None else ts.dt.convert_time_zone("UTC")
    df = df.with_columns(ts.cast(pl.Datetime("us", "UTC")).alias("ts"))
    if "source" not in df.columns:
        df = df.with_columns(pl.lit("inference").alias("source"))
    numeric = [f.name for f in schema.value_fields("three_phase") if f.name in df.columns]
    df = df.with_columns([pl.col(c).cast(pl.Float64, strict=False) for c in numeric])
    return schema.conform(df, "three_phase").with_columns(df["row"])


def _err(r: Mapping[str, Any], code: str, message: str, model_id: str | None = None) -> dict:
    return {"row": int(r["row"]), "ts": r.get("ts"), "device_id": None if r.get("device_id") is None else str(r.get("device_id")),
            "code": code, "model_id": model_id, "message": message}


def _missing_input(errors: list[dict], rows: pl.DataFrame, model_id: str, why: str, code: str = "missing_input") -> None:
    errors.extend(_err(r, code, f"{model_id}: {why}", model_id) for r in rows.select("row", "ts", "device_id").iter_rows(named=True))


def _rule_text(name: str | None) -> str:
    for rule in schema.rules_for("three_phase", "hard"):
        if rule.name == name:
            return rule.description
    return "" if name is None else name


def _status(n: int, errors: pl.DataFrame, admitted: np.ndarray) -> list[str]:
    status = np.full(n, "error", dtype=object)
    status[admitted] = "ok"
    if errors.height:
        model_err = errors.filter(pl.col("model_id").is_not_null())["row"].unique().to_numpy()
        model_err = model_err[np.isin(model_err, admitted)]
        status[model_err] = "partial"
    return status.tolist()


# ---------------------------------------------------------------------- a stored day through every champion
@dataclass
class DayScores:
    """A day of the store through every champion (:func:`score_day`)."""

    day: date
    readings: pl.DataFrame  # per-reading scores (ScoreBatch.frame plus source)
    errors: pl.DataFrame
    units: dict[str, str]
    assets: pl.DataFrame | None  # m05/m06 per asset
    waveforms: pd.DataFrame | None  # m02 per window of the day
    forecast: pd.DataFrame | None  # m09: tomorrow's hourly load [kW]
    plan: dict[str, Any] | None  # m11 / m16 for tomorrow
    pq_summary: pl.DataFrame  # EN 50160 checks per device
    notes: list[str]
    missing: dict[str, str]
    alerts: pl.DataFrame | None = None  # gridtwin_lib.alerts.raise_alerts of readings and assets


def latest_day(store, kind: str = "three_phase", sources: Iterable[str] | None = None) -> date:
    """The most recent UTC day holding readings of ``kind`` (over ``sources`` or all)."""
    lf = store.scan(kind) if sources is None else pl.concat([store.scan(kind, source=s) for s in sources], how="vertical_relaxed")
    last = lf.select(pl.col("ts").max()).collect().item()
    if last is None:
        raise InputError(f"no {kind} readings in {store}; simulate or ingest some first (make run)")
    return last.date()


def score_day(store, day: date | str | None = None, *, engine: Engine | None = None, sources: Iterable[str] | None = None,
              progress: bool = False, max_devices: int | None = None, alert_rules=None) -> DayScores:
    """Score one UTC day of the store through every champion.

    ``day`` None scores **each source's own most recent day** (simulated runs cover
    different periods; in a live store they coincide), ``DayScores.day`` being the latest
    of them. Grid readings of the day (with the preceding :data:`HISTORY` to warm each
    device's windows up) go through :meth:`Engine.score`; transformer observations
    through :meth:`Engine.score_assets` (as of their latest data up to the day's end);
    waveform windows of the day through m02; the household meter data (UCI, else the meter
    twin) give tomorrow's m09 forecast, which with a PV forecast and the tariff gives the
    m11/m16 plan. Each part that has no data or no champion adds a line to ``notes``
    instead of failing. ``alert_rules``: a path or :class:`~gridtwin_lib.alerts.RuleSet`.
    """
    from tqdm.auto import tqdm

    engine = engine or Engine.from_registry(progress=progress)
    srcs = list(sources) if sources is not None else store.sources("three_phase")
    fixed = as_date(day) if day is not None else None
    days = {s: fixed or latest_day(store, "three_phase", [s]) for s in srcs if fixed or store.scan("three_phase", source=s).head(1).collect().height}
    if not days:
        raise InputError(f"no three_phase readings of {srcs or 'any source'} in {store}; simulate or ingest some first (make run)")
    day = fixed or max(days.values())
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    end = start + timedelta(days=1)
    notes: list[str] = []
    if fixed is None and len(set(days.values())) > 1:
        notes.append("each source scored on its own most recent day: " + ", ".join(f"{s} {d}" for s, d in sorted(days.items())))
    frames, errs = [], []
    for src, d in tqdm(sorted(days.items()), desc="scoring", unit="source", disable=not progress):
        s0 = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
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
        if warm.height:
            eng.score(warm)  # history only: the day's outputs start at midnight
        batch = eng.score(today, with_features=ALERT_FEATURES)
        frames.append(batch.frame.with_columns(pl.lit(src).alias("source"), pl.lit(d).alias("day")))
        errs.append(batch.errors.with_columns(pl.lit(src).alias("source")))
    readings = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    errors = pl.concat(errs, how="diagonal_relaxed") if errs else pl.DataFrame(schema=_ERROR_SCHEMA)
    if not frames:
        notes.append(f"no three_phase readings on {day}")

    assets = _assets_as_of(store, engine, end, notes)

    waveforms = None
    try:
        wins = [s for s in store.truth_sources("waveform_windows")
                if store.scan_truth("waveform_windows", source=s, start=start, end=end).select(pl.len()).collect().item()]
        if wins and "m02_harmonic_analysis" in engine.estimators:
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
    from .alerts import raise_alerts

    alerts = raise_alerts(readings if readings.height else None, assets, rules=alert_rules)
    return DayScores(day, readings, errors, engine.units, assets, waveforms, forecast, plan, pq, notes, dict(engine.missing), alerts)


def _assets_as_of(store, engine: Engine, end: datetime, notes: list[str]) -> pl.DataFrame | None:
    """m05/m06 per asset of every transformer-fleet source, at its last observation before ``end``
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
    """Tomorrow's m09 forecast for the household meter with the most recent data, and its plan."""
    from .datasets.energy.power_flow_optimization import PV_AT_SCEAUX, tou_price
    from .datasets.energy.load_forecast import meter_load

    meters = store.sources("meter")
    if not meters:
        notes.append("no household meter data: no load forecast or plan (ingest UCI: gridtwin ingest uci)")
        return None, None
    src = "uci" if "uci" in meters else meters[0]
    last = store.scan("meter", source=src).select(pl.col("ts").max()).collect().item()
    if "m09_load_forecast" not in engine.estimators:
        notes.append(f"m09_load_forecast: {engine.missing.get('m09_load_forecast')}")
        return None, None
    lf = store.scan("meter", source=src, start=last - timedelta(days=9))
    readings = meter_load(lf).collect()
    offset = 1.0 if src == "uci" else 10.0
    tomorrow = (last + timedelta(hours=offset)).date() + timedelta(days=1)
    fc = engine.forecast_day(readings, tomorrow, utc_offset_h=offset, site="fr_sceaux" if src == "uci" else None)
    fc.insert(0, "source", src)
    hours = np.arange(24)
    pv = clear_sky_pv_kw(tomorrow, PV_AT_SCEAUX) if src == "uci" else np.zeros(24)
    price = tou_price(hours, 0.16, 0.22, 0.34)  # the m11 dataset's default tariff
    plan = engine.plan_day(fc["load_kw"].to_numpy(), pv, price)
    plan["pv_kw"], plan["price_per_kwh"] = pv, price
    notes.append(f"load forecast for {tomorrow} from meter source {src!r} (data until {last:%Y-%m-%d %H:%M} UTC); "
                 f"PV is a clear-sky forecast of the m11 site ({PV_AT_SCEAUX['pv_kw']:g} kWp); tariff: the m11 time-of-use prices")
    return fc, plan


def clear_sky_pv_kw(day: date, site: Mapping[str, float]) -> np.ndarray:
    """Hourly clear-sky AC power [kW] of the m11 site's PV (pvlib, UTC+1 clock), capped by its
    inverter: a stand-in for a weather forecast, an upper bound on a cloudy day."""
    import pvlib

    times = pd.date_range(pd.Timestamp(day), periods=24, freq="h", tz="Etc/GMT-1") + pd.Timedelta(minutes=30)
    loc = pvlib.location.Location(site["latitude"], site["longitude"], altitude=site["altitude"])
    cs = loc.get_clearsky(times)
    sun = loc.get_solarposition(times)
    poa = pvlib.irradiance.get_total_irradiance(site["tilt_deg"], site["azimuth_deg"], sun["apparent_zenith"],
                                                sun["azimuth"], cs["dni"], cs["ghi"], cs["dhi"])
    dc_kw = poa["poa_global"].to_numpy() / 1000.0 * float(site["pv_kw"]) * 0.86  # temperature and system losses
    return np.clip(dc_kw, 0.0, float(site["inverter_kw"]))


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


def as_date(day: date | str) -> date:
    if isinstance(day, datetime):
        return day.date()
    if isinstance(day, date):
        return day
    try:
        return date.fromisoformat(str(day))
    except ValueError:
        raise InputError(f"day {day!r} is not a date; write e.g. 2024-01-07") from None


def read_readings(path) -> pl.DataFrame:
    """Canonical three_phase readings from a Parquet, CSV or NDJSON file (by extension)."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; pass a Parquet, CSV or NDJSON file of three_phase readings")
    readers = {".parquet": pl.read_parquet, ".csv": lambda f: pl.read_csv(f, try_parse_dates=True),
               ".ndjson": pl.read_ndjson, ".jsonl": pl.read_ndjson}
    reader = readers.get(p.suffix.lower())
    if reader is None:
        raise InputError(f"{p}: unknown extension {p.suffix!r}; use .parquet, .csv or .ndjson "
                         "(other layouts: `gridtwin ingest file` first, then --from-store)")
    try:
        df = reader(p)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise InputError(f"{p}: could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if df.height == 0:
        raise InputError(f"{p}: no rows")
    return df


def readings_from_store(store, sources: Iterable[str] | None, start, end) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stored three_phase readings of ``sources`` (all if empty) in [start, end), and the
    :data:`HISTORY` before ``start`` to warm each device's windows up (score it first)."""
    from .store import _as_utc

    lo, hi = _as_utc(start), _as_utc(end)
    if lo >= hi:
        raise InputError(f"start {lo:%Y-%m-%d %H:%M} must be before end {hi:%Y-%m-%d %H:%M}")
    srcs = list(sources or store.sources("three_phase"))
    known = set(store.sources("three_phase"))
    unknown = [s for s in srcs if s not in known]
    if unknown:
        raise InputError(f"source {unknown[0]!r} has no three_phase readings in {store}; `gridtwin store summary` lists them")
    frames = [store.scan("three_phase", source=s, start=lo - HISTORY, end=hi).collect() for s in srcs]
    raw = pl.concat([f for f in frames if f.height], how="vertical_relaxed") if any(f.height for f in frames) else pl.DataFrame()
    if raw.height == 0 or raw.filter(pl.col("ts") >= lo).height == 0:
        raise InputError(f"no three_phase readings of {', '.join(srcs) if len(srcs) < 4 else f'{len(srcs)} sources'} "
                         f"in [{lo:%Y-%m-%d %H:%M}, {hi:%Y-%m-%d %H:%M}) UTC")
    # the same device id in two sources is two devices: prefix ids when several sources are scored
    if len(srcs) > 1:
        raw = raw.with_columns((pl.col("source") + "/" + pl.col("device_id")).alias("device_id"))
    return raw.filter(pl.col("ts") < lo), raw.filter(pl.col("ts") >= lo)


def score_stream(engine: Engine, readings: pl.DataFrame, *, chunk_rows: int = 50_000, progress: bool = False,
                 with_features: Iterable[str] = ()) -> ScoreBatch:
    """Score a large frame in time-ordered chunks (bounded memory, a progress bar), continuing
    each device's history from chunk to chunk; rows keep their input position in ``row``."""
    from tqdm.auto import tqdm

    if chunk_rows < 1:
        raise InputError(f"chunk_rows must be >= 1 (got {chunk_rows})")
    df = _as_frame(readings)
    n = df.height
    if "ts" in df.columns:
        order = df.with_columns(pl.int_range(n, dtype=pl.Int64).alias("_in_row")).sort("ts", nulls_last=True, maintain_order=True)
    else:
        order = df.with_columns(pl.int_range(n, dtype=pl.Int64).alias("_in_row"))
    frames, errors = [], []
    with tqdm(total=n, desc="scoring", unit="reading", disable=not progress) as bar:
        for k in range(0, n, chunk_rows):
            chunk = order.slice(k, chunk_rows)
            b = engine.score(chunk.drop("_in_row"), with_features=with_features)
            back = chunk["_in_row"].to_numpy()
            frames.append(b.frame.with_columns(pl.Series("row", back[b.frame["row"].to_numpy()], dtype=pl.Int64)))
            if b.errors.height:
                errors.append(b.errors.with_columns(pl.Series("row", back[b.errors["row"].to_numpy()], dtype=pl.Int64)))
            bar.update(chunk.height)
    frame = pl.concat(frames, how="diagonal_relaxed").sort("row") if frames else pl.DataFrame()
    err = pl.concat(errors).sort("row", "code") if errors else pl.DataFrame(schema=_ERROR_SCHEMA)
    return ScoreBatch(frame, err, dict(engine.units))


def write_scores(batch: ScoreBatch, out) -> dict[str, str]:
    """Write ``batch.frame`` to ``out`` (.parquet with the units in the schema metadata, or
    .csv) and the errors next to it (``<name>.errors.<ext>``); both appear at once or not at all."""
    import json
    import os
    from pathlib import Path

    import pyarrow.parquet as pq

    out = Path(out)
    ext = out.suffix.lower()
    if ext not in (".parquet", ".csv"):
        raise InputError(f"{out}: use a .parquet or .csv output file")
    if not out.parent.exists():
        raise InputError(f"{out.parent}: no such directory; create it or choose another --out")
    err_path = out.with_name(out.name[: -len(ext)] + ".errors" + ext)
    tmp = [out.with_name(f".{out.name}.tmp"), err_path.with_name(f".{err_path.name}.tmp")]
    try:
        for frame, path in ((batch.frame, tmp[0]), (batch.errors, tmp[1])):
            if ext == ".csv":
                frame.write_csv(path)
            else:
                table = frame.to_arrow()
                meta = {**(table.schema.metadata or {}), b"gridtwin.units": json.dumps(batch.units).encode()}
                pq.write_table(table.replace_schema_metadata(meta), path)
        os.replace(tmp[0], out)
        os.replace(tmp[1], err_path)
    finally:
        for t in tmp:
            t.unlink(missing_ok=True)
    return {"scores": str(out), "errors": str(err_path)}


def warm_up(engine: Engine) -> None:
    """Touch lazily built fast paths (flat forests, NumPy networks) so the first real reading is not slow."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
        rows = [dict(ts=t0 + timedelta(seconds=k), device_id="warm-up", v_a=230.0, v_b=230.0, v_c=230.0, i_a=10.0, i_b=10.0,
                     i_c=10.0, p_a=2200.0, p_b=2200.0, p_c=2200.0, q_a=200.0, q_b=200.0, q_c=200.0, frequency=50.0, thd_v=2.0)
                for k in range(120)]
        engine.score(rows)
        engine.reset("warm-up")


__all__ = ["Engine", "ScoreBatch", "ReadingScore", "ReadingError", "OnDemand", "DayScores", "score_day", "latest_day",
           "pq_summary", "warm_up", "read_readings", "readings_from_store", "score_stream", "write_scores", "clear_sky_pv_kw",
           "as_date", "ALERT_FEATURES", "MODEL_IDS", "READING_MODELS", "MODULE_OF", "HISTORY", "ERROR_CODES"]
