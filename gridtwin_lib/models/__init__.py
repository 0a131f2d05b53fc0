"""GridTwin models: one interface (:mod:`.base`), one module per model, one registry.

Each model's module (estimator, baselines, serving adapter) sits in the folder of its
catalogue module: ``monitoring``, ``maintenance``, ``energy``, ``decision``; the registry
(:mod:`.registry`) lists them all. Import the module you need; TensorFlow and Prophet are
imported lazily inside the models that use them.
"""

from .base import Dataset, Evaluation, GridModel, ModelSpec, fit_and_evaluate

__all__ = ["Dataset", "Evaluation", "GridModel", "ModelSpec", "fit_and_evaluate"]
