"""Fitted scikit-learn logistic regressions (alone or behind a ``StandardScaler``) evaluated
with NumPy for a few rows.

Why: scikit-learn's ``predict``/``predict_proba`` spend about 0.2 ms per call on input checks and
pipeline dispatch, whatever the row count; for one reading that is 50 times the arithmetic
itself. Here the scaler and the linear model are kept as arrays, ``(x - mean) / scale @ coef.T
+ intercept``, then the logistic (two classes) or the softmax (more), as scikit-learn computes
them. Like :mod:`._trees`, each model is checked against scikit-learn on probe rows the first
time it is used and served by scikit-learn if it differs; large batches always are.
"""

from __future__ import annotations

import weakref

import numpy as np

#: up to this many rows a linear model is evaluated with NumPy (as :data:`._trees.FLAT_MAX_ROWS`)
FLAT_MAX_ROWS = 256


class FlatLogistic:
    """A fitted ``LogisticRegression``, optionally after a ``StandardScaler`` in a ``Pipeline``, as arrays."""

    def __init__(self, model):
        steps = [s for _, s in model.steps] if hasattr(model, "steps") else [model]
        *before, last = steps
        if type(last).__name__ != "LogisticRegression" or len(before) > 1:
            raise ValueError("flat logistic: a LogisticRegression, optionally after one StandardScaler")
        n = int(last.coef_.shape[1])
        self.mean, self.scale = np.zeros(n), np.ones(n)
        if before:
            scaler = before[0]
            if type(scaler).__name__ != "StandardScaler":
                raise ValueError("flat logistic: only a StandardScaler may come before the regression")
            if scaler.with_mean:
                self.mean = np.asarray(scaler.mean_, dtype=np.float64)
            if scaler.with_std:
                self.scale = np.asarray(scaler.scale_, dtype=np.float64)
        self.coef = np.asarray(last.coef_, dtype=np.float64)
        self.intercept = np.asarray(last.intercept_, dtype=np.float64)
        self.classes = last.classes_
        self.model = model

    @classmethod
    def verified(cls, model, seed: int = 0) -> FlatLogistic | None:
        """The NumPy evaluation of ``model`` if it reproduces scikit-learn's probabilities (to 1e-12)
        and classes on probe rows around and far from the training mean, else None."""
        try:
            flat = cls(model)
        except (AttributeError, ValueError):
            return None
        rng = np.random.default_rng(seed)
        n = flat.coef.shape[1]
        probe = flat.mean + flat.scale * rng.normal(0.0, 1.0, (64, n)) * rng.choice([1e-3, 1.0, 10.0], size=(64, n))
        try:
            ok = all(np.allclose(flat.predict_proba(probe[k:k + m]), model.predict_proba(probe[k:k + m]), rtol=1e-12, atol=1e-12)
                     and np.array_equal(flat.predict(probe[k:k + m]), model.predict(probe[k:k + m])) for k, m in ((0, 64), (5, 1)))
        except (ValueError, TypeError):
            ok = False
        return flat if ok else None

    def decision(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.scale) @ self.coef.T + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self.decision(X)
        if z.shape[1] == 1:  # two classes: the logistic of the one decision function
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack([1.0 - p, p])
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = self.decision(X)
        return self.classes[(z[:, 0] > 0).astype(np.intp) if z.shape[1] == 1 else z.argmax(axis=1)]


_FLAT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # fitted model -> FlatLogistic or None


def _flat(model) -> FlatLogistic | None:
    try:
        return _FLAT[model]
    except KeyError:
        flat = _FLAT[model] = FlatLogistic.verified(model)
        return flat


def logistic_proba(model, X: np.ndarray) -> np.ndarray:
    """``model.predict_proba(X)``; a few finite rows through :class:`FlatLogistic` (verified on first use)."""
    flat = _flat(model) if len(X) <= FLAT_MAX_ROWS else None
    if flat is None or not np.isfinite(X).all():
        return model.predict_proba(X)
    return flat.predict_proba(X)


def logistic_predict(model, X: np.ndarray) -> np.ndarray:
    """``model.predict(X)``; a few finite rows through :class:`FlatLogistic` (verified on first use)."""
    flat = _flat(model) if len(X) <= FLAT_MAX_ROWS else None
    if flat is None or not np.isfinite(X).all():
        return model.predict(X)
    return flat.predict(X)
