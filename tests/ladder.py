"""The baseline ladder of a registry entry judged on one dataset, for the model tests.

Every class of the entry's ``baselines`` tuple is built for the model (``for_model`` when the
class has it, so that a baseline takes the model's settings), fitted on the training rows only
and scored with the model's own ``evaluate`` on the same held-out rows as the model (what
:func:`gridtwin_lib.models.base.fit_and_evaluate` does for the whole ladder). Import it into a
test module: ``from ladder import ladder_scores, strongest``.
"""

from __future__ import annotations

import pandas as pd

from gridtwin_lib.models import registry
from gridtwin_lib.models.base import GridModel, better


def ladder_scores(model: GridModel, dataset, *, fit_model: bool = True, metric: str | None = None,
                  per_reading: bool = True) -> tuple[float, dict[str, float]]:
    """(model's metric, {baseline class name: its metric}) on ``dataset``'s test rows.

    ``metric``: the primary metric unless given. ``per_reading``: the engine serves the model reading by
    reading, so each baseline must also give, for one row alone, what it gives for that row in the batch
    (what the engine does when the baseline serves); False for the models served on demand (days,
    feeders, customers)."""
    key = metric or model.spec.primary_metric
    if fit_model:
        model.fit(dataset.X_train, dataset.y_train)
    scores = {}
    for cls in registry.get(model.spec.model_id).baseline_classes():
        assert isinstance(getattr(cls, "name", None), str) and cls.name, f"{cls.__name__} has no human name"
        baseline = cls.for_model(model) if hasattr(cls, "for_model") else cls()
        baseline.fit(dataset.X_train, dataset.y_train)
        batch = baseline.predict(dataset.X_test)
        if per_reading:
            one = baseline.predict(dataset.X_test.iloc[[len(batch) // 2]])
            assert list(one.columns) == list(batch.columns) and set(model.spec.output_units) <= set(batch.columns), cls.__name__
            pd.testing.assert_frame_equal(one.reset_index(drop=True), batch.iloc[[len(batch) // 2]].reset_index(drop=True),
                                          check_exact=False, rtol=1e-12, obj=cls.__name__)  # BLAS may differ by an ulp
        scores[cls.__name__] = model.evaluate(dataset.y_test, batch, dataset.meta_test)[key]
    value = model.evaluate(dataset.y_test, model.predict(dataset.X_test), dataset.meta_test)[key]
    # one line per ladder (shown with pytest -s): the figures of the report
    print(f"\nLADDER {model.spec.model_id} {key} (n_test={dataset.n_test}): model {value:.4g}; "
          + "; ".join(f"{name} {v:.4g}" for name, v in scores.items()))
    return value, scores


def strongest(model: GridModel, scores: dict[str, float]) -> tuple[str, float]:
    """The best baseline of ``scores`` on the model's primary metric (ties: the first in the tuple)."""
    best = None
    for name, value in scores.items():
        if best is None or better(value, best[1], model.spec.greater_is_better):
            best = (name, value)
    return best
