"""What a model's serving adapter is made of: how the inference engine builds a per-reading
model's input from the readings and each device's history, and which outputs it adds.

Each per-reading model's module defines ``SERVING = ServingAdapter(...)`` next to its estimator;
the registry (:mod:`gridtwin_lib.models.registry`) names it, and the engine
(:mod:`gridtwin_lib.inference.engine`) calls it once per batch. The helpers below are the
shared pieces of those adapters (columns of the feature row, output framing, error rows).

An adapter's ``score(engine, est, model_id, new, held, errors)`` receives

* ``engine``: the :class:`~gridtwin_lib.inference.Engine` (its ``site``, ``incremental`` flag
  and :meth:`~gridtwin_lib.inference.Engine.state`, a per-model dict kept across calls);
* ``est``: the fitted estimator; ``model_id``: its registry id;
* ``new``: the feature rows (``features.compute`` of the ``three_phase`` readings, inputs kept)
  of the readings being scored that the adapter applies to, with their input position ``row``;
* ``held``: a :class:`Held` (the readings of the same devices, history included, and the
  features of all of them when the batch computed those);
* ``errors``: a list to which it appends one :func:`error_row` per reading it cannot score;

and returns a polars frame keyed by ``row`` with ``<model_id>.<output>`` columns, or None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ..small_frames import SMALL_ROWS, column_index, float_columns

#: ``score(engine, est, model_id, new, held, errors) -> pl.DataFrame | None`` (see the module docstring)
Scorer = Callable[[Any, Any, str, pl.DataFrame, "Held", list[dict]], "pl.DataFrame | None"]


@dataclass(frozen=True)
class ServingAdapter:
    """How the engine serves one per-reading model.

    Parameters
    ----------
    score : the scorer (see the module docstring).
    outputs : output names the engine adds (``<model_id>.<output>`` columns) when the model has
        no estimator loaded; a loaded estimator's ``spec.output_units`` wins.
    text_outputs : outputs that are text (class labels); the others are float.
    dropped_outputs : outputs of ``predict`` the engine does not serve (e.g. timings).
    applies : ``applies(new, held) -> pl.DataFrame``: the rows of ``new`` the model scores (None:
        every row); e.g. only feeder-head meters.
    windows : feature windows the model's inputs need (the engine computes their union).
    """

    score: Scorer
    outputs: tuple[str, ...]
    text_outputs: frozenset[str] = frozenset()
    dropped_outputs: tuple[str, ...] = ()
    applies: Callable[[pl.DataFrame, Held], pl.DataFrame] | None = None
    windows: tuple[str, ...] = ("1m", "15m", "1h")


@dataclass
class Held:
    """What an adapter sees besides the new readings' features: the readings of their devices
    (held history, ``row`` -1, then the new ones; by device and time) and the features of all
    of them when a batch computed those anyway (None when only the new rows' were).
    ``cache`` holds what adapters of one call share (e.g. the feeder-head frame).

    ``readings`` may be given as a function that builds the frame: it is called the first time an
    adapter reads it (a few readings on long histories rarely need the whole frame; each device's
    history alone is :meth:`Engine.history <gridtwin_lib.inference.Engine.history>`)."""

    source: pl.DataFrame | Callable[[], pl.DataFrame]
    features: pl.DataFrame | None
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def readings(self) -> pl.DataFrame:
        if callable(self.source):
            self.source = self.source()
        return self.source


def error_row(r: Mapping[str, Any], code: str, message: str, model_id: str | None = None) -> dict:
    """One error of the engine's errors frame for reading ``r`` (``row``, ``ts``, ``device_id``)."""
    return {"row": int(r["row"]), "ts": r.get("ts"), "device_id": None if r.get("device_id") is None else str(r.get("device_id")),
            "code": code, "model_id": model_id, "message": message}


def reading_keys(rows: pl.DataFrame, where: np.ndarray | None = None) -> list[dict]:
    """``row``, ``ts`` and ``device_id`` of each row of ``rows`` (those where the boolean mask
    ``where`` is true, when given), as :func:`error_row` reads them; without a select or filter to
    plan, which for the few rows of a reading or a poll cost more than the rest."""
    cols = [rows.get_column(c).to_list() if c in rows.columns else [None] * rows.height for c in ("row", "ts", "device_id")]
    keys = zip(*cols) if where is None else (k for k, w in zip(zip(*cols), where.tolist()) if w)
    return [{"row": r, "ts": ts, "device_id": d} for r, ts, d in keys]


def missing_input(errors: list[dict], rows: pl.DataFrame, model_id: str, why: str, code: str = "missing_input",
                  where: np.ndarray | None = None) -> None:
    """Append a ``code`` error, ``why`` the model could not score them, for every row of ``rows``
    (those where the boolean mask ``where`` is true, when given)."""
    errors.extend(error_row(r, code, f"{model_id}: {why}", model_id) for r in reading_keys(rows, where))


def prefixed(model_id: str, rows: np.ndarray, pred: pd.DataFrame, drop: Sequence[str] = ()) -> pl.DataFrame:
    """``pred``'s columns as ``<model_id>.<output>`` (NaN as null, as ``pl.from_pandas``) and ``row``."""
    row = pl.Series("row", rows, dtype=pl.Int64)
    values = pred.to_numpy()
    keep = [k for k, c in enumerate(pred.columns) if c not in drop]
    if values.dtype.kind == "f" and keep:  # all float (the usual case): one conversion, no pandas column lookups
        return float_columns([f"{model_id}.{pred.columns[k]}" for k in keep], values[:, keep]).hstack([row])
    cols = [pl.Series(f"{model_id}.{c}", col.to_numpy(), nan_to_null=True) for c, col in pred.items() if c not in drop]
    return pl.DataFrame([*cols, row])


#: up to this many rows, adapters of one call share one float block of the readings' numeric columns
_SHARED_FLOAT_ROWS = SMALL_ROWS


def share_float_block(cache: dict, frame: pl.DataFrame, columns: Sequence[str], block: np.ndarray) -> None:
    """Give :func:`float_frame` the float64 values ``block`` (one column per name of ``columns``,
    NaN for null) of ``frame``'s rows, already at hand where ``frame`` was built (the incremental
    executor's output), so the adapters of the call take their columns without converting the
    frame. A column of ``frame`` left out is converted as usual."""
    if frame.height <= _SHARED_FLOAT_ROWS:
        cache["float_block"] = (frame, {c: k for k, c in enumerate(columns)}, block)


def float_frame(frame: pl.DataFrame, cols: list[str], cache: dict | None = None) -> pd.DataFrame:
    """``frame``'s ``cols`` as one float64 block (null as NaN), as ``to_pandas`` gives them,
    without its per-column conversion (~3 ms for 150 columns of one reading).

    ``cache`` (e.g. :attr:`Held.cache`): a few readings are converted once for every adapter of the
    call that reads the same frame, and each takes its columns from that block."""
    if cache is not None and frame.height <= _SHARED_FLOAT_ROWS:
        kept = cache.get("float_block")
        if kept is None or kept[0] is not frame:
            numeric = [c for c, dtype in frame.schema.items() if dtype.is_numeric()]
            kept = cache["float_block"] = (frame, {c: k for k, c in enumerate(numeric)},
                                           frame.select(numeric).to_numpy().astype(np.float64, copy=False))
        _, index, block = kept
        if all(c in index for c in cols):
            return pd.DataFrame(block[:, [index[c] for c in cols]], columns=column_index(tuple(cols)), copy=False)
    part = frame[cols]
    if all(dtype.is_numeric() for dtype in part.dtypes):  # one NumPy conversion, no cast expressions to plan
        return pd.DataFrame(part.to_numpy().astype(np.float64, copy=False), columns=cols)
    return pd.DataFrame(frame.select([pl.col(c).cast(pl.Float64) for c in cols]).to_numpy(), columns=cols)


def columns_scorer(columns: Sequence[str], *, complete_rows: str | None = None) -> Scorer:
    """A scorer for models whose inputs are feature-catalogue ``columns`` of the reading itself.

    ``complete_rows``: when given, rows with an undefined input are not scored but get a
    ``missing_input`` error with this reason (for models trained on complete rows only).
    """

    def score(engine, est, model_id, new, held, errors):
        X = float_frame(new, list(columns), held.cache)
        rows = new["row"].to_numpy()
        if complete_rows is not None:
            ok = ~np.isnan(X.to_numpy()).any(axis=1)
            if not ok.all():
                missing_input(errors, new, model_id, complete_rows, where=~ok)
                X, rows = X[ok], rows[ok]
                if not len(rows):
                    return None
        return prefixed(model_id, rows, est.predict(X))

    return score


__all__ = ["ServingAdapter", "Held", "Scorer", "error_row", "reading_keys", "missing_input", "prefixed", "share_float_block", "float_frame", "columns_scorer"]
