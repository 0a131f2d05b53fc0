"""GridTwin models: one interface (:mod:`.base`), one file per catalogue module.

``monitoring`` (m01–m04), ``maintenance`` (m05–m08), ``energy`` (m09–m12),
``decision`` (m13–m16). Import the module you need; TensorFlow and Prophet are
imported lazily inside the models that use them.
"""

from .base import Dataset, Evaluation, GridModel, ModelSpec, fit_and_evaluate

__all__ = ["Dataset", "Evaluation", "GridModel", "ModelSpec", "fit_and_evaluate"]
