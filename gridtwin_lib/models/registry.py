"""The model registry: the one place that lists GridTwin's models.

Each :class:`ModelEntry` names a model's catalogue module, its estimator and baselines, its
dataset builder, the simulations that builder needs, its default parameters, and how it is
served (a per-reading :class:`~gridtwin_lib.models.serving.ServingAdapter`, or the ``role`` of
the engine entry point that serves it). Pipelines, notebooks, the inference engine, the CLI,
alerts, advice and the model comparison read this registry; none lists model ids of its own.

Classes and functions are named by ``"package.module:attribute"`` paths and imported only when
asked for, so reading the registry never imports TensorFlow, Prophet or pandapower.

Adding a model is one new module (estimator, baselines, serving adapter) plus one entry:
:func:`register` it (in a test or a session), or list ``"package.module:ENTRY"`` paths in the
environment variable ``GRIDTWIN_MODELS`` (comma-separated) so every process (Papermill
kernels included) registers them on import.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import InputError
from .base import MODULES

#: the engine entry points that serve models other than per reading (see gridtwin_lib.inference.Engine)
#: sizes of the simulation sets (each dataset module's SIMULATIONS has one list per size)
SIZES = ("full", "smoke")
ROLES = ("waveforms", "asset_failure", "asset_overload", "day_ahead_load", "day_plan", "segments", "phase_move", "dispatch")


def load(path: str) -> Any:
    """The attribute named by ``"package.module:attribute"``."""
    module, _, attr = path.partition(":")
    if not attr:
        raise ValueError(f"{path!r} is not a 'package.module:attribute' path")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Variant:
    """A secondary dataset a model is also trained and judged on, without being registered.

    Parameters
    ----------
    name : suffix of the result (e.g. ``"sim"``).
    dataset : ``"package.module:function"`` of its builder.
    prefix : the entry's parameters named ``<prefix>...`` go to this builder (prefix stripped).
    """

    name: str
    dataset: str
    prefix: str


@dataclass(frozen=True)
class ModelEntry:
    """One model of the catalogue.

    Parameters
    ----------
    id : model id, e.g. ``"m07_power_quality_index"`` (the estimator's ``spec.model_id``).
    spec_name : the catalogue's name of the model (``../shared/spec/models.md``).
    module : catalogue module, one of :data:`gridtwin_lib.models.base.MODULES`.
    estimator : ``"package.module:Class"`` of the estimator.
    baselines : ``"package.module:Class"`` of its baselines (the first is the one ``baseline()`` returns).
    dataset : ``"package.module:function"`` of its dataset builder ``builder(store, **params)``.
    simulations : ``"package.module:SIMULATIONS"``, a ``{size: [run_scenario kwargs]}`` dict
        (None: the builder needs no simulation).
    defaults : parameters of the full-size run: each goes to the dataset builder or the
        estimator, whichever accepts it (``gridtwin_lib.notebook.route``).
    dataset_prefix : only the parameters named ``<prefix>...`` go to the builder (besides the
        estimator's); see ``variants``.
    variants : secondary datasets (:class:`Variant`) trained and judged but not registered.
    serving : ``"package.module:SERVING"``, how the engine serves it: a per-reading
        :class:`~gridtwin_lib.models.serving.ServingAdapter` when ``role`` is None, else the
        function the entry point of ``role`` calls (its signature is the role's; see
        :class:`gridtwin_lib.inference.on_demand.OnDemandScoring`). None: ``est.predict`` as is.
    role : the engine entry point that serves it when it is not per reading (one of :data:`ROLES`).
    advice : ``"package.module:function"`` ``(model, baseline, dataset) -> DataFrame`` of the
        day-by-day outcomes of acting on its advice (decision models), or None.
    uses : ids of models whose work this one builds on (e.g. a surrogate of another's optimiser).
    """

    id: str
    spec_name: str
    module: str
    estimator: str
    baselines: tuple[str, ...]
    dataset: str
    simulations: str | None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    dataset_prefix: str = ""
    variants: tuple[Variant, ...] = ()
    serving: str | None = None
    role: str | None = None
    advice: str | None = None
    uses: tuple[str, ...] = ()

    def __post_init__(self):
        if self.module not in MODULES:
            raise ValueError(f"{self.id}: module {self.module!r} is not one of {MODULES}")
        if self.role is not None and self.role not in ROLES:
            raise ValueError(f"{self.id}: role {self.role!r} is not one of {ROLES}")
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def registered_name(self) -> str:
        """Name of the model in the MLflow registry."""
        return f"gridtwin.{self.id}"

    def estimator_class(self) -> type:
        return load(self.estimator)

    def baseline_classes(self) -> tuple[type, ...]:
        return tuple(load(b) for b in self.baselines)

    def dataset_builder(self):
        return load(self.dataset)

    def simulation_runs(self, size: str) -> list[dict[str, Any]]:
        """The simulator runs (``simulate.run_scenario`` keyword arguments) of ``size``."""
        if self.simulations is None:
            return []
        return [dict(run) for run in load(self.simulations).get(size, [])]

    def serving_adapter(self):
        """What ``serving`` names (a ServingAdapter, or the role's function), or None."""
        return None if self.serving is None else load(self.serving)

    def advice_effects(self):
        return None if self.advice is None else load(self.advice)


def _m(module: str, name: str, attr: str) -> str:
    return f"gridtwin_lib.models.{module}.{name}:{attr}"


def _d(module: str, name: str, attr: str | None = None) -> str:
    return f"gridtwin_lib.datasets.{module}.{name}:{attr or name}"


def _entry(model_id: str, module: str, name: str, estimator: str, baselines: tuple[str, ...], defaults: dict[str, Any],
           **kw) -> ModelEntry:
    """An entry whose estimator module, dataset module and builder are all called ``name``."""
    kw.setdefault("dataset", _d(module, name))
    kw.setdefault("simulations", _d(module, name, "SIMULATIONS"))
    return ModelEntry(id=model_id, spec_name=name, module=module, estimator=_m(module, name, estimator),
                      baselines=tuple(_m(module, name, b) for b in baselines), defaults=defaults, **kw)


_CATALOGUE: tuple[ModelEntry, ...] = (
    # ------------------------------------------------------------------ monitoring
    _entry("m01_voltage_anomaly", "monitoring", "voltage_anomaly", "VoltageAnomaly",
           ("EN50160VoltageRule", "EN50160MultiChannelRule", "CurrentStepRule", "MultiChannelAndCurrentStepRule", "RobustZScore"),
           dict(source="sim:m01_mixed", test_days=3.0, train_stride=5, tolerance_s=60.0, onset_s=60.0, merge_gap_s=10.0,
                n_estimators=200, max_samples=256, max_features=0.5, contamination=0.04),
           serving=_m("monitoring", "voltage_anomaly", "SERVING")),
    _entry("m02_harmonic_analysis", "monitoring", "harmonic_analysis", "HarmonicAnalysis", ("RmsThdRules", "FftLogistic"),
           dict(sources=["sim:m02_pq_snr20", "sim:m02_pq_snr30", "sim:m02_pq_snr40"], test_fraction=0.3, n_estimators=300),
           role="waveforms", serving=_m("monitoring", "harmonic_analysis", "SERVING")),
    _entry("m03_frequency_stability", "monitoring", "frequency_stability", "FrequencyStability", ("PersistenceAndAR", "LinearAR"),
           dict(sources=["sim:m03_frequency_drift"], test_days=1.0, train_stride_s=3, test_stride_s=2, units=32, block_s=5,
                epochs=8, learning_rate=0.001),
           serving=_m("monitoring", "frequency_stability", "SERVING")),
    _entry("m04_phase_imbalance", "monitoring", "phase_imbalance", "PhaseImbalance", ("UnbalanceSeverityRule", "PhaseAwareRule", "DesignLogistic"),
           dict(sources=[f"sim:m04_{c}_{k}" for c in ("balanced", "single_phase_overload_a", "single_phase_overload_b",
                                                       "single_phase_overload_c", "open_conductor", "high_resistance_conductor",
                                                       "unbalanced_pv") for k in (0, 1)],
                test_fraction=0.35, pv_active_kw=3.0, holdout_devices=1, max_depth=6, min_samples_leaf=100),
           serving=_m("monitoring", "phase_imbalance", "SERVING")),
    # ------------------------------------------------------------------ maintenance
    _entry("m05_equipment_failure", "maintenance", "equipment_failure", "EquipmentFailure",
           ("AgeLoadingLogistic", "EquivalentAgeLogistic", "AllInputsLogistic"),
           dict(test_fraction=0.5, test_asset_fraction=0.5), role="asset_failure", serving=_m("maintenance", "equipment_failure", "SERVING")),
    _entry("m06_overload_risk", "maintenance", "overload_risk", "OverloadRisk", ("PersistenceClass", "LoadTrendRule", "YesterdayPeakRule", "InputLogistic"),
           dict(test_fraction=0.3, max_train_rows=8000), role="asset_overload", serving=_m("maintenance", "overload_risk", "SERVING")),
    _entry("m07_power_quality_index", "maintenance", "power_quality_index", "PowerQualityIndex", ("PersistencePQ", "RecentMeanPQ", "LinearPQ"),
           dict(test_fraction=0.3, epochs=200), serving=_m("maintenance", "power_quality_index", "SERVING")),
    _entry("m08_voltage_sag", "maintenance", "voltage_sag", "VoltageSag", ("HourlySagRate", "RecentEventsLogistic", "DesignLogistic"),
           dict(test_fraction=0.3, n_estimators=200), serving=_m("maintenance", "voltage_sag", "SERVING")),
    # ------------------------------------------------------------------ energy
    _entry("m09_load_forecast", "energy", "load_forecast", "LoadForecast", ("NaiveLoad", "YesterdayLoad", "SameHourMean7d", "LinearARLoad"),
           dict(uci_source="uci", uci_train_start="2007-01-01", uci_split="2010-01-01", uci_test_end=None, uci_utc_offset_h=1.0,
                uci_site="fr_sceaux", sim_source="sim:m09_meter_feeder", sim_test_days=28, sim_utc_offset_h=10.0,
                algorithm="auto", validation_fraction=0.1, prophet_history_days=730, prophet_yearly=None, lstm_units=32,
                lstm_epochs=30, lstm_stride_h=24, onestep_epochs=6),
           dataset=_d("energy", "load_forecast", "load_forecast_uci"), dataset_prefix="uci_",
           variants=(Variant("sim", _d("energy", "load_forecast", "load_forecast_sim"), "sim_"),), role="day_ahead_load", serving=_m("energy", "load_forecast", "SERVING")),
    _entry("m10_energy_loss", "energy", "energy_loss", "EnergyLoss", ("FixedLossFactor", "QuadraticLossFactor", "LinearOnHeadReadings"),
           dict(source="sim:m10_feeder", test_fraction=0.3, regressors=["i2"]), serving=_m("energy", "energy_loss", "SERVING")),
    _entry("m11_power_flow_optimization", "energy", "power_flow_optimization", "PowerFlowOptimization",
           ("RuleDispatch", "SelfConsumptionRule", "TimeOfUseRule"),
           dict(load_source="uci", pv_source="sim:m11_pv", train_start="2009-01-01", test_start="2010-01-01",
                test_end="2010-11-25", load_forecast="mean_7d", pv_forecast="mean_7d", battery_kwh=8.0, battery_kw=3.0,
                peak_charge_per_kw_day=0.25),
           role="day_plan", serving=_m("energy", "power_flow_optimization", "SERVING")),
    _entry("m12_demand_response", "energy", "demand_response", "DemandResponse", ("CalendarGrouping", "RawProfileKMeans", "PeakShareBands"),
           dict(source="sim:m12_meters", timezone_name="Etc/GMT-10", test_days=7, require_labels=False, n_clusters=4,
                n_bootstrap=10),
           role="segments"),
    # ------------------------------------------------------------------ decision
    _entry("m13_reactive_power_compensation", "decision", "reactive_power_compensation", "ReactivePowerCompensation",
           ("PowerFactorCorrection", "LinearSurrogate", "MedianSetpoint"), dict(test_fraction=0.3, epochs=150),
           serving=_m("decision", "reactive_power_compensation", "SERVING"),
           advice=_m("decision", "reactive_power_compensation", "advice_effects")),
    _entry("m14_load_balancing", "decision", "load_balancing", "LoadBalancing", ("LargestLoadHeuristic", "BruteForceExpected"),
           dict(test_days=10), role="phase_move", advice=_m("decision", "load_balancing", "advice_effects")),
    _entry("m15_grid_stability", "decision", "grid_stability", "GridStability", ("Climatology", "BestSingleMember", "RegimeBaseRate"),
           dict(test_fraction=0.3), serving=_m("decision", "grid_stability", "SERVING")),
    _entry("m16_optimal_dispatch", "decision", "optimal_dispatch", "OptimalDispatch", ("RuleSetpoint", "LinearSetpoint"),
           dict(train_start="2009-03-01", test_start="2009-09-01", test_end="2009-10-31"), role="dispatch", serving=_m("decision", "optimal_dispatch", "SERVING"),
           advice=_m("decision", "optimal_dispatch", "advice_effects"), uses=("m11_power_flow_optimization",)),
)

_ENTRIES: dict[str, ModelEntry] = {e.id: e for e in _CATALOGUE}


def register(entry: ModelEntry, *, replace: bool = False) -> ModelEntry:
    """Add ``entry`` (a new model) to the registry; ``replace=True`` overwrites an entry of the same id."""
    if not isinstance(entry, ModelEntry):
        raise TypeError(f"register() takes a ModelEntry, got {type(entry).__name__}")
    if entry.id in _ENTRIES and not replace:
        raise ValueError(f"model {entry.id!r} is already registered; pass replace=True to overwrite it")
    _ENTRIES[entry.id] = entry
    return entry


def unregister(model_id: str) -> ModelEntry:
    """Remove a model from the registry and return its entry."""
    if model_id not in _ENTRIES:
        raise KeyError(f"model {model_id!r} is not registered")
    return _ENTRIES.pop(model_id)


def get(model_id: str) -> ModelEntry:
    """The entry of ``model_id``; :class:`~gridtwin_lib.errors.InputError` naming the known ids otherwise."""
    try:
        return _ENTRIES[model_id]
    except KeyError:
        raise InputError(f"unknown model id {model_id!r}; known: {', '.join(_ENTRIES)}") from None


def entries(module: str | None = None) -> tuple[ModelEntry, ...]:
    """Every entry (of one catalogue ``module``), in catalogue order."""
    return tuple(e for e in _ENTRIES.values() if module is None or e.module == module)


def ids(module: str | None = None) -> tuple[str, ...]:
    """Every model id (of one catalogue ``module``), in catalogue order."""
    return tuple(e.id for e in entries(module))


def reading_ids() -> tuple[str, ...]:
    """The models the engine runs on every reading (those with a serving adapter)."""
    return tuple(e.id for e in _ENTRIES.values() if e.serving is not None and e.role is None)


def by_role(role: str) -> ModelEntry | None:
    """The entry served by the engine entry point ``role`` (see :data:`ROLES`), or None."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {ROLES}")
    return next((e for e in _ENTRIES.values() if e.role == role), None)


def module_of(model_id: str) -> str:
    """Catalogue module of ``model_id``."""
    return get(model_id).module


def simulations(size: str, model_ids: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The simulator runs the datasets of ``model_ids`` (all if None) need, one per source (first wins)."""
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {SIZES}")
    runs: dict[str, dict[str, Any]] = {}
    for model_id in model_ids or ids():
        for run in get(model_id).simulation_runs(size):
            runs.setdefault(run.get("source") or f"sim:{run['scenario']}", run)
    return list(runs.values())


def _load_extensions() -> None:
    """Register the entries listed in ``GRIDTWIN_MODELS`` ("package.module:ENTRY,...")."""
    for path in filter(None, (p.strip() for p in os.environ.get("GRIDTWIN_MODELS", "").split(","))):
        try:
            entry = load(path)
        except (ImportError, AttributeError, ValueError) as exc:
            raise InputError(f"GRIDTWIN_MODELS: {path!r} could not be loaded ({exc}); "
                             "give 'package.module:ENTRY' paths of ModelEntry objects") from None
        register(entry, replace=True)


_load_extensions()

__all__ = ["ModelEntry", "Variant", "ROLES", "SIZES", "load", "register", "unregister", "get", "entries", "ids", "reading_ids",
           "by_role", "module_of", "simulations"]
