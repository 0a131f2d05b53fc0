"""The baseline ladder of a registry entry judged on one dataset, for the m09-m16 model tests.

Every class of the entry's ``baselines`` tuple is built for the model (``for_model`` when the
class has it, so that a baseline takes the model's settings), fitted on the training rows only
and scored with the model's own ``evaluate`` on the same held-out rows as the model.
"""

from __future__ import annotations

from gridtwin_lib.models import registry
from gridtwin_lib.models.base import GridModel, better


def ladder_scores(model: GridModel, dataset, *, fit_model: bool = True, metric: str | None = None) -> tuple[float, dict[str, float]]:
    """(model's metric, {baseline class name: its metric}) on ``dataset``'s test rows
    (``metric``: the primary metric unless given)."""
    key = metric or model.spec.primary_metric
    if fit_model:
        model.fit(dataset.X_train, dataset.y_train)
    scores = {}
    for cls in registry.get(model.spec.model_id).baseline_classes():
        baseline = cls.for_model(model) if hasattr(cls, "for_model") else cls()
        baseline.fit(dataset.X_train, dataset.y_train)
        scores[cls.__name__] = model.evaluate(dataset.y_test, baseline.predict(dataset.X_test), dataset.meta_test)[key]
    value = model.evaluate(dataset.y_test, model.predict(dataset.X_test), dataset.meta_test)[key]
    # one line per ladder (shown with pytest -s): the figures of the report
    print(f"\nLADDER {model.spec.model_id} {key} (n_test={dataset.n_test}): model {value:.4g}; "
          + "; ".join(f"{name} {v:.4g}" for name, v in scores.items()))
    return value, scores


def strongest(model: GridModel, scores: dict[str, float]) -> tuple[str, float]:
    """The best baseline of ``scores`` on the model's primary metric (ties: the first)."""
    best = None
    for name, value in scores.items():
        if best is None or better(value, best[1], model.spec.greater_is_better):
            best = (name, value)
    return best
