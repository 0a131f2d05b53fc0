"""The inference engine: readings in, typed scores out, for every per-reading model of the registry.

The :class:`Engine` loads each model's champion from the MLflow registry once
(:meth:`Engine.from_registry`) and serves it through **the same input code the dataset
builders use for training**: each per-reading model's serving adapter
(:class:`~gridtwin_lib.models.serving.ServingAdapter`, in the model's own module, named by its
:mod:`registry <gridtwin_lib.models.registry>` entry) builds the model's input from
``features.compute`` rows and the device's held history. There is no second feature
implementation to drift, and ``tests/test_inference.py`` proves parity.

:meth:`Engine.score` takes canonical ``three_phase`` readings (ts [UTC], device_id, v_a..c [V],
i_a..c [A]; optional p_a..c [W], q_a..c [var], frequency [Hz], thd_v [%]), one or many devices,
one reading (:meth:`Engine.score_one`), a window or a batch, and runs every per-reading model
(:func:`~gridtwin_lib.models.registry.reading_ids`) on each reading. The output columns are
``<model_id>.<output>``; :attr:`ScoreBatch.units` gives their units.

History is **per device**: the engine keeps each device's last :data:`HISTORY` of accepted
readings, so consecutive calls continue a stream and one device's readings never enter another's
windows; an adapter may keep per-device state across calls (:meth:`Engine.state`).

A call with a few readings on held history (a stream, :meth:`Engine.score_one`, the live
scorer) takes those readings' features from the catalog's **incremental executor**
(:class:`~gridtwin_lib.features_incremental.IncrementalFeatures`: per-device window state,
O(1) per reading, built from the device's held history the first time it is needed); a batch
computes every row's features at once with the batch executor (``features.compute``) and lets
the incremental state of its devices go (rebuilt from history when next needed). Both executors
implement the one catalog and agree to float rounding, so both paths give the same outputs;
``Engine(incremental=False)`` is the reference path that recomputes everything on every call
(``tests/benchmarks/bench_inference.py``).

The models served otherwise (assets, waveforms, day-ahead forecast and plan, phase moves,
segments) have their own entry points (:class:`~gridtwin_lib.inference.on_demand.OnDemandScoring`).

Bad input never stops a batch: each problem is a :class:`ReadingError` with a code
(:data:`ERROR_CODES`) on that reading; the other readings are scored.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from .. import features as F
from ..config import Site, default_site
from ..features_incremental import IncrementalFeatures
from ..models import registry
from ..models.serving import Held, error_row, reading_keys, share_float_block
from ..small_frames import float_columns
from .admission import admit, as_frame
from .on_demand import OnDemandScoring
from .results import ERROR_SCHEMA, ReadingScore, ScoreBatch, status_column

#: readings fields and features the default alert rules check (EN 50160 voltage, frequency, THD)
ALERT_FEATURES = ("v_a", "v_b", "v_c", "frequency", "v_mean_dev_pct", "v_max_abs_dev_pct", "freq_dev_hz", "thd_v_pct")
HISTORY = timedelta(minutes=90)  # 1 h of features + the two closed 10-min windows a 10-min forecast lags on
#: a call whose new readings are at least this share of the rows it windows (with the held
#: history) computes every row's features; fewer readings get theirs alone (features.compute rows=)
_BATCH_SHARE = 4


class Engine(OnDemandScoring):
    """The registry's champions behind one object (see the module docstring).

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
        features of those readings only (``features.compute(rows=...)``) and adapters reuse
        their per-device state (e.g. a forecast kept until its 10-min window closes). False: every call recomputes the
        features of every held reading and every adapter's output, as the engine first did: the
        reference the tests and ``tests/benchmarks/bench_inference.py`` compare with (same
        outputs, to float rounding).
    """

    def __init__(self, estimators: Mapping[str, Any], *, missing: Mapping[str, str] | None = None,
                 devices: Iterable[str] | None = None, site: Site | None = None, time_limit_s: float = 10.0,
                 incremental: bool = True):
        known = registry.ids()
        unknown = sorted(set(estimators) - set(known))
        if unknown:
            raise ValueError(f"unknown model ids {unknown}; known: {', '.join(known)}")
        self.estimators = dict(estimators)
        self.missing = {m: (missing or {}).get(m, "not loaded") for m in known if m not in self.estimators}
        self.devices = None if devices is None else frozenset(devices)
        self.site = site or default_site()
        self.time_limit_s = float(time_limit_s)
        self.incremental = bool(incremental)
        self._history: dict[str, pl.DataFrame] = {}
        self._history_first_us: dict[str, int] = {}  # each device's oldest held reading [µs since the epoch]
        self._history_last_us: dict[str, int] = {}  # ... and its newest (admission refuses older readings)
        # model id -> what its serving adapter keeps across calls (e.g. per device forecasts)
        self._state: dict[str, dict[str, Any]] = {}
        # the per-reading models (registry order) with their adapters, and the union of their windows
        self._adapters = {m: registry.get(m).serving_adapter() for m in registry.reading_ids()}
        self._windows = tuple(dict.fromkeys(w for a in self._adapters.values() for w in a.windows))
        # the incremental executor's per-device state, and the devices whose state holds their whole held history
        self._features = IncrementalFeatures("three_phase", self._windows, self.site, thd=True, capacity=4096)
        self._features_ready: set[str] = set()
        self._layouts: dict[tuple[str, ...], tuple] = {}  # see _layout
        #: model id -> what serves it: "model" or "baseline:<name>" (set by from_registry)
        self.serving: dict[str, str] = {m: "model" for m in self.estimators}
        self.units = {f"{m}.{out}": unit for m, est in self.estimators.items() for out, unit in est.spec.output_units.items()}

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_registry(cls, model_ids: Iterable[str] | None = None, *, alias: str = "serving", progress: bool = False,
                      **kwargs) -> Engine:
        """Load what serves each model from the registry of the current workspace, once.

        ``alias`` ``serving`` (default): the model where it passed the champion gate, else the
        strongest baseline logged with its newest run (see :func:`gridtwin_lib.tracking.load_served`;
        a registry from before the gate: its ``champion``). Another alias (``champion``) loads
        that version's model. :attr:`serving` records what serves each model; :meth:`serving_lines`
        says it in words. A model with nothing to serve (or that fails to load) is recorded in
        ``missing``, with the reason, instead of failing the engine.
        """
        from .. import tracking

        client = tracking.client()
        estimators, missing, serving = {}, {}, {}
        ids = list(registry.ids() if model_ids is None else model_ids)
        it = ids
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(ids, desc="loading served models", unit="model")
        for model_id in it:
            name = f"gridtwin.{model_id}"
            try:
                est, serves, version = tracking.load_served(model_id, alias, c=client)
            except LookupError as exc:
                missing[model_id] = str(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - a broken model must not take the others down
                missing[model_id] = f"{name}@{alias} could not be loaded: {str(exc).splitlines()[0][:200]}"
                continue
            estimators[model_id] = est
            serving[model_id] = serves
        engine = cls(estimators, missing=missing, **kwargs)
        engine.serving = serving
        return engine

    def serving_lines(self) -> list[str]:
        """What serves each model, in words (e.g. "persistence serves; the LSTM did not beat it")."""
        from ..tracking import serving_text

        lines = []
        for model_id in registry.ids():
            if model_id in self.estimators:
                serves = self.serving.get(model_id, "model")
                lines.append(serving_text(model_id, serves, registry.get(model_id).estimator_class().spec.algorithm))
            elif model_id in self.missing:
                lines.append(f"{model_id.split('_')[0]}: nothing serves ({self.missing[model_id]})")
        return lines

    def reset(self, device_id: str | None = None) -> None:
        """Forget the history of one device (or of all)."""
        self._features.forget(device_id)
        if device_id is None:
            self._history.clear()
            self._history_first_us.clear()
            self._history_last_us.clear()
            self._state.clear()
            self._features_ready.clear()
        else:
            self._history.pop(device_id, None)
            self._history_first_us.pop(device_id, None)
            self._history_last_us.pop(device_id, None)
            self._features_ready.discard(device_id)
            for kept in self._state.values():
                kept.pop(device_id, None)

    #: the device id :meth:`warm_up` scores under (forgotten afterwards)
    WARM_UP_DEVICE = "__gridtwin_warm_up__"

    def warm_up(self, minutes: int = 40) -> float:
        """Run every served model once on synthetic readings of a device of its own, then forget it.

        A model's first calls build and verify its fast paths (flattened forests and networks checked
        against the library, compiled feature kernels, lazy imports): seconds that would otherwise
        fall on the first real readings after a start. ``minutes`` of 1 s readings (enough for the
        30 min the power-quality forecast needs) are scored as a batch, then three single readings
        after a 10-min window boundary take the incremental path. Nothing of the device is kept and
        every real device is scored as without the warm-up (tested). Returns the seconds it took."""
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        n = minutes * 60 + 3
        end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
        start = end - timedelta(minutes=end.minute % 10 + minutes)  # the single readings open a 10-min window
        ts = pl.datetime_range(start, start + timedelta(seconds=n - 1), "1s", time_zone="UTC", eager=True).cast(pl.Datetime("us", "UTC"))
        v = self.site.nominal_voltage_v * (1 + 0.01 * rng.standard_normal((n, 3)))
        i = 10 + rng.standard_normal((n, 3))
        phases = {f"v_{p}": v[:, k] for k, p in enumerate("abc")} | {f"i_{p}": i[:, k] for k, p in enumerate("abc")}
        phases |= {f"p_{p}": 0.95 * v[:, k] * i[:, k] for k, p in enumerate("abc")}
        phases |= {f"q_{p}": 0.3 * v[:, k] * i[:, k] for k, p in enumerate("abc")}
        readings = pl.DataFrame({"ts": ts, "device_id": self.WARM_UP_DEVICE, **phases,
                                 "frequency": self.site.nominal_frequency_hz + 0.02 * rng.standard_normal(n),
                                 "thd_v": 2.0 + 0.2 * rng.standard_normal(n)})
        devices, self.devices = self.devices, None  # an engine serving listed devices only would refuse it
        try:
            self.score(readings.head(n - 3), with_features=ALERT_FEATURES)
            for k in range(n - 3, n):
                self.score(readings.slice(k, 1), with_features=ALERT_FEATURES)
        finally:
            self.devices = devices
            self.reset(self.WARM_UP_DEVICE)
        return time.perf_counter() - t0

    def hold(self, readings: pl.DataFrame | pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Take ``readings`` as their devices' history without scoring them (e.g. a restarted live
        scorer's last readings), so the next readings of those devices are scored on full windows.

        They pass admission as scored readings do (a refused one is not held); each device keeps its
        last :data:`HISTORY`. Returns how many were held."""
        df = as_frame(readings)
        df = df.with_columns(pl.int_range(df.height, dtype=pl.Int64).alias("row"))
        ok = admit(df, [], site=self.site, devices=self.devices, last_us=self._history_last_us)
        if ok.height:
            _, ok, by_device = self._with_history(ok)
            self._keep_history(ok, by_device)
            for device in by_device:  # the incremental state is rebuilt from the held history when next needed
                self._features.forget(device)
                self._features_ready.discard(device)
        return ok.height

    def history(self, device_id: str) -> pl.DataFrame | None:
        """The accepted readings of ``device_id`` the engine still holds (at most :data:`HISTORY`)."""
        return self._history.get(device_id)

    def state(self, model_id: str) -> dict[str, Any]:
        """What ``model_id``'s serving adapter keeps across calls, by device id (cleared by :meth:`reset`)."""
        return self._state.setdefault(model_id, {})

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
        df = as_frame(readings)
        n = df.height
        df = (df.drop("row") if "row" in df.columns else df).hstack([pl.Series("row", np.arange(n, dtype=np.int64))])
        errors: list[dict] = []
        ok = admit(df, errors, site=self.site, devices=self.devices, last_us=self._history_last_us)
        parts: list[pl.DataFrame] = []
        if ok.height:
            parts_held, ok, by_device = self._with_history(ok)
            held_rows = sum(h.height for h, _, _ in by_device.values() if h is not None)
            feats = new = block = None
            if self.incremental and ok.height * _BATCH_SHARE < ok.height + held_rows:  # a few readings on held history
                new, block = self._new_features(ok) or (None, None)
            if new is None:  # a batch: every row's features at once
                feats = F.compute(_stack(parts_held), "three_phase", windows=self._windows, site=self.site, keep_inputs=True)
                new = feats.filter(pl.col("row") >= 0)
                for device in ok["device_id"].unique().to_list():  # their incremental state no longer holds all they hold
                    self._features.forget(device)
                    self._features_ready.discard(device)
            held = Held(lambda: _stack(parts_held), feats)
            if block is not None:
                share_float_block(held.cache, new, *block)
            for model_id in self._adapters:
                part = self._score_model(model_id, new, held, errors)
                if part is not None:
                    parts.append(part)
            extra = [c for c in dict.fromkeys(with_features) if c in new.columns and c not in ("row", "ts", "device_id")]
            if extra:
                parts.insert(0, new[["row", *extra]])
            self._keep_history(ok, by_device)
        have = {c for p in parts for c in p.columns}
        absent = [pl.Series(f"{model_id}.{out_name}", [None], pl.String if out_name in adapter.text_outputs else pl.Float64).new_from_index(0, n)
                  for model_id, adapter in self._adapters.items() for out_name in self._outputs(model_id)
                  if f"{model_id}.{out_name}" not in have] if n else []
        errors.sort(key=lambda e: (e["row"], e["code"]))
        err = pl.DataFrame(errors, schema=ERROR_SCHEMA) if errors else pl.DataFrame(schema=ERROR_SCHEMA)
        status = status_column(n, errors, ok["row"].to_numpy() if ok.height else np.empty(0, np.int64))
        result = pl.DataFrame([df["row"], df["ts"] if "ts" in df.columns else pl.Series("ts", [None] * n, pl.Datetime("us", "UTC")),
                               df["device_id"].cast(pl.String) if "device_id" in df.columns else pl.Series("device_id", [None] * n, pl.String),
                               pl.Series("status", status, dtype=pl.String)])
        # each part's columns laid beside the rows in input order (rows it did not score: null), no join
        result = result.hstack([c for p in parts for c in _in_input_order(p, n)])
        if absent:
            result = result.hstack(absent)
        return ScoreBatch(result, err, dict(self.units))

    def _outputs(self, model_id: str) -> list[str]:
        adapter = self._adapters[model_id]
        est = self.estimators.get(model_id)
        if est is not None:
            return [o for o in est.spec.output_units if o not in adapter.dropped_outputs]
        return list(adapter.outputs)

    def _with_history(self, ok: pl.DataFrame) -> tuple[list[pl.DataFrame], pl.DataFrame, dict[str, tuple[pl.DataFrame | None, int, int]]]:
        """The admitted readings with their devices' held history, by device and time, as frames to stack;
        the admitted readings by device and time; and per device (held, first, end) of its readings among those.

        ``ok`` is as :func:`~gridtwin_lib.inference.admission.admit` returns it, by device and time. Each
        device's held readings are sorted and end before its new ones (admission refuses older
        readings), so the frame is laid out device by device without sorting the history again."""
        ids = ok["device_id"].to_list()
        bounds = [0, *(np.flatnonzero(np.diff(ok["device_id"].rle_id().to_numpy())) + 1).tolist(), ok.height] if ok.height > 1 else [0, 1]
        by_device, parts = {}, []
        for lo, hi in zip(bounds[:-1], bounds[1:]):  # slices of one sorted frame: no partition, no copy
            held = self._history.get(ids[lo])
            by_device[ids[lo]] = (held, lo, hi)
            part = ok.slice(lo, hi - lo) if hi - lo < ok.height else ok
            parts += [held, part] if held is not None else [part]
        return parts, ok, by_device

    def _new_features(self, new: pl.DataFrame) -> tuple[pl.DataFrame, tuple[list[str], np.ndarray]] | None:
        """The features of the admitted readings ``new`` (by device and time) from the incremental executor,
        as the batch executor would return them (same columns, order and dtypes), with the float values
        of the inputs and features as (names, block) for the adapters; None when it cannot (the batch runs)."""
        inc = self._features
        ts_us = new["ts"].cast(pl.Int64).to_numpy()  # canonical: µs since the epoch
        inputs = self._inputs(new)
        devices = new["device_id"].to_list()
        seen = set(devices)
        out = np.empty((new.height, len(inc.names)))
        try:
            # a device whose state is not built (first seen, or after a batch) absorbs its held readings first,
            # as far back as the longest window reaches from its first new reading
            for device in seen - self._features_ready:
                held = self._history.get(device)
                if held is None:
                    continue
                held_us = held["ts"].cast(pl.Int64).to_numpy()
                first = int(np.searchsorted(held_us, ts_us[devices.index(device)] - inc.longest_window_us, side="right"))
                held = held.slice(first)
                inc.absorb(device, held_us[first:], self._inputs(held))
            for k, device in enumerate(devices):
                out[k] = inc.update_values(device, int(ts_us[k]), inputs[k])
        except ValueError:  # e.g. two readings of one device at one instant: the batch executor decides
            for device in seen:
                inc.forget(device)
                self._features_ready.discard(device)
            return None
        self._features_ready |= seen
        present, keep, dtypes, names = self._layout(tuple(new.columns))
        # flags and calendar fields typed as the batch executor types them
        feats = float_columns([inc.names[k] for k in keep], out[:, keep], dtypes, beside=new)
        return feats, (names, np.concatenate([inputs[:, present], out[:, keep]], axis=1))

    def _layout(self, columns: tuple[str, ...]) -> tuple[list[int], list[int], list[pl.DataType], list[str]]:
        """For readings with ``columns``: which inputs they hold, which features the executor adds (not
        already a column; ``thd_v_pct`` only with ``thd_v``) with their dtypes, and the names of both in
        that order; kept per layout of the readings (a stream's readings rarely change it)."""
        layout = self._layouts.get(columns)
        if layout is None:
            inc, have = self._features, set(columns)
            present = [j for j, name in enumerate(inc.inputs) if name in have]
            keep = [k for k, m in enumerate(inc.names) if m not in have and (m != "thd_v_pct" or "thd_v" in have)]
            dtypes = F.feature_dtypes(inc.names[k] for k in keep)
            layout = self._layouts[columns] = (present, keep, [dtypes[inc.names[k]] for k in keep],
                                               [inc.inputs[j] for j in present] + [inc.names[k] for k in keep])
        return layout

    def _inputs(self, readings: pl.DataFrame) -> np.ndarray:
        """``readings``' values in the incremental executor's input order, (n, inputs) float, NaN where absent."""
        inc = self._features
        present = self._layout(tuple(readings.columns))[0]
        inputs = np.full((readings.height, len(inc.inputs)), np.nan)
        for j in present:  # column by column: no select to plan for a few readings
            inputs[:, j] = readings.get_column(inc.inputs[j]).cast(pl.Float64).to_numpy()
        return inputs

    def _keep_history(self, ok: pl.DataFrame, by_device: dict[str, tuple[pl.DataFrame | None, int, int]]) -> None:
        """Keep the last :data:`HISTORY` of each device's readings (``row`` -1); ``ok`` and ``by_device``
        as :meth:`_with_history` returns them."""
        history_us = HISTORY // timedelta(microseconds=1)
        kept_new = ok.clone().replace_column(ok.get_column_index("row"), pl.Series("row", [-1], dtype=pl.Int64).new_from_index(0, ok.height))
        new_us = ok["ts"].cast(pl.Int64).to_numpy()  # by device and time
        for device, (held, lo, hi) in by_device.items():
            new = kept_new.slice(lo, hi - lo) if hi - lo < ok.height else kept_new
            readings = new if held is None else _stack([held, new])
            cutoff = int(new_us[hi - 1]) - history_us
            first_us = self._history_first_us.get(device) if held is not None else int(new_us[lo])
            if first_us is None or first_us <= cutoff:  # some readings fell out of the window: usually a few at the start
                us = readings["ts"].head(64).cast(pl.Int64).to_numpy()
                first = int(np.searchsorted(us, cutoff, side="right"))
                if first == len(us):  # more than 64 readings left the window: look at all of them
                    us = readings["ts"].cast(pl.Int64).to_numpy()
                    first = int(np.searchsorted(us, cutoff, side="right"))
                readings = readings.slice(first)
                first_us = int(us[first])
            # a device's chunks are merged now and then, at its own count (16-47): devices held at once
            # (a restart) do not all copy their history in the same call
            self._history[device] = readings.rechunk() if readings.n_chunks() > 16 + zlib.crc32(device.encode()) % 32 else readings
            self._history_first_us[device], self._history_last_us[device] = first_us, int(new_us[hi - 1])

    def _score_model(self, model_id: str, new: pl.DataFrame, held: Held, errors: list[dict]) -> pl.DataFrame | None:
        """One per-reading model through its serving adapter: a frame keyed by ``row``, or None."""
        adapter = self._adapters[model_id]
        applies = adapter.applies(new, held) if adapter.applies is not None else new
        if applies.height == 0:
            return None
        est = self.estimators.get(model_id)
        if est is None:
            reason = self.missing.get(model_id, "not loaded")
            errors.extend(error_row(r, "no_champion", reason, model_id) for r in reading_keys(applies))
            return None
        try:
            part = adapter.score(self, est, model_id, applies, held, errors)
            drop = [f"{model_id}.{c}" for c in adapter.dropped_outputs]
            return part.drop([c for c in drop if c in part.columns]) if part is not None and drop else part
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the batch
            msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}" if str(exc) else type(exc).__name__
            errors.extend(error_row(r, "model_error", msg, model_id) for r in reading_keys(applies))
            return None


def _in_input_order(part: pl.DataFrame, n: int) -> list[pl.Series]:
    """The columns of ``part`` (keyed by ``row``, each row at most once) but ``row``, as ``n`` values in row
    order, null where ``part`` has no row."""
    rows = part["row"].to_numpy()
    values = [s for s in part.get_columns() if s.name != "row"]
    if len(rows) == n and (rows[1:] > rows[:-1]).all():  # every reading, in input order (a stream's usual case)
        return values
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    index = pl.Series("index", position) if len(rows) == n else pl.Series("index", position).set(pl.Series(position < 0), None)
    return [s for s in part[index].get_columns() if s.name != "row"]  # one take of the frame (a null index: a null row)


def _stack(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """``frames`` one after the other, their chunks kept; the same schema (the usual case) needs no type resolution."""
    if len(frames) == 1:
        return frames[0]
    try:
        return frames[0].vstack(frames[1]) if len(frames) == 2 else pl.concat(frames, how="vertical", rechunk=False)
    except pl.exceptions.PolarsError:
        return pl.concat(frames, how="vertical_relaxed", rechunk=False)


__all__ = ["Engine", "ALERT_FEATURES", "HISTORY"]
