"""The baseline ladder of a registry entry judged on one dataset, for the model tests.

Every class of the entry's ``baselines`` tuple is fitted on the training rows only and
scored with the model's own ``evaluate`` on the same held-out rows as the model (what
:func:`gridtwin_lib.models.base.fit_and_evaluate` does for the first baseline). Import it
into a test module: ``from ladder import ladder_scores``.
"""

from __future__ import annotations

import pandas as pd

from gridtwin_lib.models import registry
from gridtwin_lib.models.base import GridModel, better


def ladder_scores(model: GridModel, dataset, *, fit_model: bool = True) -> tuple[float, dict[str, float]]:
    """(model's primary metric, {baseline class name: its primary metric}) on ``dataset.X_test``."""
    entry = registry.get(model.spec.model_id)
    key = model.spec.primary_metric
    if fit_model:
        model.fit(dataset.X_train, dataset.y_train)
    scores = {}
    for cls in entry.baseline_classes():
        assert isinstance(getattr(cls, "name", None), str) and cls.name, f"{cls.__name__} has no human name"
        baseline = cls().fit(dataset.X_train, dataset.y_train)
        batch = baseline.predict(dataset.X_test)
        # what the engine does when the baseline serves: one reading at a time, same columns as the model
        one = baseline.predict(dataset.X_test.iloc[[len(batch) // 2]])
        assert list(one.columns) == list(batch.columns) and set(model.spec.output_units) <= set(batch.columns), cls.__name__
        pd.testing.assert_frame_equal(one.reset_index(drop=True), batch.iloc[[len(batch) // 2]].reset_index(drop=True),
                                      check_exact=False, rtol=1e-12, obj=cls.__name__)  # BLAS may differ by an ulp
        scores[cls.__name__] = model.evaluate(dataset.y_test, batch, dataset.meta_test)[key]
    return model.evaluate(dataset.y_test, model.predict(dataset.X_test), dataset.meta_test)[key], scores


def strongest(model: GridModel, scores: dict[str, float]) -> tuple[str, float]:
    """The best baseline of ``scores`` on the model's primary metric (ties: the first in the tuple)."""
    gib = model.spec.greater_is_better
    best = None
    for name, value in scores.items():
        if best is None or better(value, best[1], gib):
            best = (name, value)
    return best
