"""The model registry: the one place that lists GridTwin's models.

Each :class:`ModelEntry` names a model's catalogue module, its estimator and baselines, its
dataset builder, and how it is served (a per-reading
:class:`~gridtwin_lib.models.serving.ServingAdapter`, or the ``role`` of the engine entry point
that serves it). Pipelines, notebooks, the inference engine, the CLI,
alerts, advice and the model comparison read this registry; none lists model ids of its own.

Its parameters and the simulations its dataset needs, per pipeline size, are configuration:
``conf/base/models/<module>/<spec_name>.yaml`` (read by :mod:`gridtwin_lib.settings`);
:meth:`ModelEntry.parameters` and :meth:`ModelEntry.simulation_runs` return them.

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

from .. import settings
from ..errors import InputError
from .base import MODULES

#: pipeline sizes (each model's configuration has parameters and simulations per size)
SIZES = settings.SIZES
#: the engine entry points that serve models other than per reading (see gridtwin_lib.inference.Engine)
ROLES = ("waveforms", "asset_failure", "asset_overload", "day_ahead_load", "day_plan", "segments", "phase_move", "dispatch",
         "pv_anomaly", "pv_forecast", "asset_rul", "pv_health")


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
    simulations : only for a model with no configuration file: ``"package.module:SIMULATIONS"``,
        a ``{size: [run_scenario kwargs]}`` dict (None: the builder needs no simulation).
    defaults : only for a model with no configuration file: its full-size parameters. A catalogue
        model's parameters and simulations are in ``conf/base/models/<module>/<spec_name>.yaml``
        (see :meth:`parameters`); each parameter goes to the dataset builder or the estimator,
        whichever accepts it (``gridtwin_lib.notebook.route``).
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

    def configuration(self) -> settings.ModelConf | None:
        """Its file of the configuration folder (``models/<module>/<spec_name>.yaml``), or None."""
        return settings.model(self.module, self.spec_name)

    def parameters(self, size: str = "full") -> dict[str, Any]:
        """Its parameters for a pipeline of ``size`` (configuration file, else ``defaults``)."""
        conf = self.configuration()
        if conf is not None:
            return conf.parameters(size)
        if size not in SIZES:
            raise InputError(f"pipeline size {size!r} is not one of {', '.join(SIZES)}")
        return dict(self.defaults)

    def simulation_runs(self, size: str) -> list[dict[str, Any]]:
        """The simulator runs (``simulate.run_scenario`` keyword arguments) of ``size``."""
        conf = self.configuration()
        if conf is not None:
            return conf.simulations(size)
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


def _entry(model_id: str, module: str, name: str, estimator: str, baselines: tuple[str, ...], **kw) -> ModelEntry:
    """An entry whose estimator module, dataset module, builder and configuration file are all called ``name``."""
    kw.setdefault("dataset", _d(module, name))
    return ModelEntry(id=model_id, spec_name=name, module=module, estimator=_m(module, name, estimator),
                      baselines=tuple(_m(module, name, b) for b in baselines), simulations=None, **kw)


_CATALOGUE: tuple[ModelEntry, ...] = (
    # ------------------------------------------------------------------ monitoring
    _entry("m01_voltage_anomaly", "monitoring", "voltage_anomaly", "VoltageAnomaly",
           ("EN50160VoltageRule", "EN50160MultiChannelRule", "CurrentStepRule", "MultiChannelAndCurrentStepRule", "RobustZScore"),
           serving=_m("monitoring", "voltage_anomaly", "SERVING")),
    _entry("m02_harmonic_analysis", "monitoring", "harmonic_analysis", "HarmonicAnalysis", ("RmsThdRules", "FftLogistic"),
           role="waveforms", serving=_m("monitoring", "harmonic_analysis", "SERVING")),
    _entry("m03_frequency_stability", "monitoring", "frequency_stability", "FrequencyStability", ("PersistenceAndAR", "LinearAR"),
           serving=_m("monitoring", "frequency_stability", "SERVING")),
    _entry("m04_phase_imbalance", "monitoring", "phase_imbalance", "PhaseImbalance", ("UnbalanceSeverityRule", "PhaseAwareRule", "DesignLogistic"),
           serving=_m("monitoring", "phase_imbalance", "SERVING")),
    # ------------------------------------------------------------------ maintenance
    _entry("m05_equipment_failure", "maintenance", "equipment_failure", "EquipmentFailure",
           ("AgeLoadingLogistic", "EquivalentAgeLogistic", "AllInputsLogistic"),
           role="asset_failure", serving=_m("maintenance", "equipment_failure", "SERVING")),
    _entry("m06_overload_risk", "maintenance", "overload_risk", "OverloadRisk", ("PersistenceClass", "LoadTrendRule", "YesterdayPeakRule", "InputLogistic"),
           role="asset_overload", serving=_m("maintenance", "overload_risk", "SERVING")),
    _entry("m07_power_quality_index", "maintenance", "power_quality_index", "PowerQualityIndex", ("PersistencePQ", "RecentMeanPQ", "LinearPQ"),
           serving=_m("maintenance", "power_quality_index", "SERVING")),
    _entry("m08_voltage_sag", "maintenance", "voltage_sag", "VoltageSag", ("HourlySagRate", "RecentEventsLogistic", "DesignLogistic"),
           serving=_m("maintenance", "voltage_sag", "SERVING")),
    # ------------------------------------------------------------------ energy
    _entry("m09_load_forecast", "energy", "load_forecast", "LoadForecast",
           ("NaiveLoad", "YesterdayLoad", "SameHourMean7d", "LinearARLoad", "SeasonalETSLoad"),
           dataset=_d("energy", "load_forecast", "load_forecast_uci"), dataset_prefix="uci_",
           variants=(Variant("sim", _d("energy", "load_forecast", "load_forecast_sim"), "sim_"),), role="day_ahead_load", serving=_m("energy", "load_forecast", "SERVING")),
    _entry("m10_energy_loss", "energy", "energy_loss", "EnergyLoss", ("FixedLossFactor", "QuadraticLossFactor", "LinearOnHeadReadings"),
           serving=_m("energy", "energy_loss", "SERVING")),
    _entry("m11_power_flow_optimization", "energy", "power_flow_optimization", "PowerFlowOptimization",
           ("RuleDispatch", "SelfConsumptionRule", "TimeOfUseRule"),
           role="day_plan", serving=_m("energy", "power_flow_optimization", "SERVING")),
    _entry("m12_demand_response", "energy", "demand_response", "DemandResponse", ("CalendarGrouping", "RawProfileKMeans", "PeakShareBands"), role="segments"),
    # ------------------------------------------------------------------ decision
    _entry("m13_reactive_power_compensation", "decision", "reactive_power_compensation", "ReactivePowerCompensation",
           ("PowerFactorCorrection", "LinearSurrogate", "MedianSetpoint"), serving=_m("decision", "reactive_power_compensation", "SERVING"),
           advice=_m("decision", "reactive_power_compensation", "advice_effects")),
    _entry("m14_load_balancing", "decision", "load_balancing", "LoadBalancing", ("LargestLoadHeuristic", "BruteForceExpected"),
           role="phase_move", advice=_m("decision", "load_balancing", "advice_effects")),
    _entry("m15_grid_stability", "decision", "grid_stability", "GridStability", ("Climatology", "BestSingleMember", "RegimeBaseRate"),
           serving=_m("decision", "grid_stability", "SERVING")),
    _entry("m16_optimal_dispatch", "decision", "optimal_dispatch", "OptimalDispatch", ("RuleSetpoint", "LinearSetpoint"),
           role="dispatch", serving=_m("decision", "optimal_dispatch", "SERVING"),
           advice=_m("decision", "optimal_dispatch", "advice_effects"), uses=("m11_power_flow_optimization",)),
    # ------------------------------------------------------------------ solar asset health (catalogue module: maintenance)
    _entry("m17_pv_anomaly", "maintenance", "pv_anomaly", "PvAnomaly",
           ("PerformanceRatioRule", "RawTelemetryIsolationForest", "ResidualIsolationForest"),
           role="pv_anomaly", serving=_m("maintenance", "pv_anomaly", "SERVING")),
    _entry("m18_pv_forecast", "maintenance", "pv_forecast", "PvForecast",
           ("SmartPersistence", "PowerPersistence", "SeasonalNaive", "IndexRegressionToMean"),
           role="pv_forecast", serving=_m("maintenance", "pv_forecast", "SERVING")),
    _entry("m19_remaining_useful_life", "maintenance", "remaining_useful_life", "RemainingUsefulLife",
           ("KaplanMeierByAge", "UncensoredPointRegressor", "CoxLinear"),
           role="asset_rul", serving=_m("maintenance", "remaining_useful_life", "SERVING")),
    _entry("m20_health_index", "maintenance", "health_index", "HealthIndex", ("FixedWeightedScore", "PerformanceRatioIndex"),
           role="pv_health", serving=_m("maintenance", "health_index", "SERVING")),
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
        raise InputError(f"pipeline size {size!r} is not one of {', '.join(SIZES)}")
    runs: dict[str, dict[str, Any]] = {}
    for model_id in model_ids or ids():
        for run in get(model_id).simulation_runs(size):
            runs.setdefault(run.get("source") or f"sim:{run['scenario']}", run)
    return list(runs.values())


def simulation_of(source: str) -> dict[str, Any] | None:
    """The configured simulator run (``simulate.run_scenario`` keyword arguments) that writes ``source``: its
    scenario and overrides say what the readings do not carry (e.g. a PV plant's position and ratings); None
    when no configured run writes it."""
    for size in SIZES:
        for run in simulations(size):
            if run.get("source") == source:
                return dict(run)
    return None


def check_configuration() -> None:
    """Every model file of the configuration folder belongs to a registered model (a misspelt
    file name would otherwise be ignored); :class:`~gridtwin_lib.errors.InputError` if not."""
    known = {(e.module, e.spec_name) for e in _ENTRIES.values()}
    for module, name, path in settings.model_files():
        if (module, name) not in known:
            names = ", ".join(sorted(f"{m}/{n}" for m, n in known))
            raise InputError(f"{path}: no registered model is {module}/{name}; rename the file to one of: {names}")


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
           "by_role", "module_of", "simulations", "check_configuration"]
