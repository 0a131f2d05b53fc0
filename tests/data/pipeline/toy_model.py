"""A toy model and dataset for the pipeline tests (copied next to the toy notebook)."""

import numpy as np
import pandas as pd

from gridtwin_lib.models.base import Baseline, Dataset, GridModel, ModelSpec


class Zero(Baseline):
    def fit(self, X, y=None):
        return self

    def predict(self, X):
        return np.zeros(len(X))


class Toy(GridModel):
    """Least squares on three columns; the baseline predicts zero."""

    spec = ModelSpec("m99_toy", "monitoring", "least squares", "zero", "y", "mae", False, {"y": "kW"})

    def fit(self, X, y=None):
        self.coef_ = np.linalg.lstsq(X.to_numpy(), y, rcond=None)[0]
        return self

    def predict(self, X):
        return X.to_numpy() @ self.coef_

    def baseline(self):
        return Zero()

    def evaluate(self, y, p, meta=None):
        return {"mae": float(np.mean(np.abs(y - p)))}


def toy_dataset(n: int, noise: float, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    y = X.to_numpy() @ np.array([1.0, 2.0, 3.0]) + rng.normal(scale=noise, size=n)
    cut = int(n * 0.75)
    return Dataset("toy", X[:cut], y[:cut], X[cut:], y[cut:], split={"train": [0, cut], "test": [cut, n]})
