"""Frames of a few rows (a reading, a live poll) built without the constructors' per-call overhead.

The inference engine builds a frame of ~115 feature columns for every reading it scores. Through
``pl.Series(name, array)`` each column costs ~5 µs of argument checks (``np.require``, masked-array
tests, dtype dispatch) before the native constructor runs: 0.6 ms a reading, more than the
features themselves. :func:`float_columns` calls Polars' native float constructor directly
(~0.6 µs a column) when this Polars has it, and the public constructor otherwise; a test holds the
two equal, so a Polars release that changes the private API shows up there, not in the numbers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import polars as pl

#: frames of at most this many rows (a reading, a live poll) take the per-reading path's shortcuts;
#: larger ones (batches) keep Polars' expressions and their threads
SMALL_ROWS = 4096

try:  # Polars' compiled bindings (private): PySeries.new_f64(name, values, nan_to_null), PyDataFrame(series)
    from polars._plr import PyDataFrame, PySeries

    _NATIVE = callable(getattr(PySeries, "new_f64", None)) and callable(getattr(pl.DataFrame, "_from_pydf", None))
except ImportError:  # pragma: no cover - another Polars layout: the public constructor serves
    _NATIVE = False


def float_columns(names: Sequence[str], values: np.ndarray, dtypes: Sequence[pl.DataType] | None = None, *,
                  beside: pl.DataFrame | None = None, native: bool | None = None) -> pl.DataFrame:
    """A frame whose column ``names[k]`` is ``values[:, k]`` (NaN as null) cast to ``dtypes[k]``,
    after the columns of ``beside`` when given.

    Same result as ``beside.hstack([pl.Series(n, values[:, k], nan_to_null=True).cast(dtype) ...])``.

    Parameters
    ----------
    names : one column name per column of ``values``.
    values : (rows, columns) float array.
    dtypes : each column's dtype (None: all Float64); integer ones are cast from the float values.
    beside : a frame of as many rows whose columns come first.
    native : force (True) or avoid (False) the native constructor; None: native when available.
    """
    columns = np.ascontiguousarray(np.asarray(values, dtype=np.float64).T)  # one contiguous row per column
    if len(names) != columns.shape[0] or (dtypes is not None and len(dtypes) != len(names)):
        raise ValueError(f"{len(names)} names for {columns.shape[0]} columns and {'no' if dtypes is None else len(dtypes)} dtypes")
    casts = [(k, dtype) for k, dtype in enumerate(dtypes or ()) if dtype != pl.Float64]
    if _NATIVE if native is None else native:
        series = [PySeries.new_f64(name, columns[k], True) for k, name in enumerate(names)]
        for k, dtype in casts:
            series[k] = series[k].cast(dtype, True, False)
        return pl.DataFrame._from_pydf(PyDataFrame(series) if beside is None else beside._df.hstack(series))
    series = [pl.Series(name, columns[k], nan_to_null=True) for k, name in enumerate(names)]
    for k, dtype in casts:
        series[k] = series[k].cast(dtype)
    return pl.DataFrame(series) if beside is None else beside.hstack(series)


@functools.lru_cache(maxsize=256)
def column_index(columns: tuple[str, ...]) -> pd.Index:
    """The pandas column index of ``columns``, built once: for a one-row frame, building the index
    from a list of names costs more than the rest of ``pd.DataFrame(array, columns=...)``."""
    return pd.Index(columns)


__all__ = ["SMALL_ROWS", "float_columns", "column_index"]
