"""Paired block bootstrap of a primary metric: the model, each baseline and their differences.

The held-out rows are grouped into **blocks** (a day, an asset, a device or a customer: rows of
one block are dependent, blocks are treated as independent). One replicate draws ``n_blocks``
blocks with replacement; all replicates are drawn at once as a ``(B, n_blocks)`` matrix of
counts (:func:`block_counts`), and **the same** counts are used for the model, every baseline and
their differences (paired: the noise of the test set cancels in the difference).

Replicates of the common metrics are vectorised (:func:`fast_replicates`):

* sums over rows (MAE, MSE/Brier, RMSE, accuracy, TP/FP/FN → F1, per-class counts → macro-F1):
  per-block sufficient statistics ``S`` (n_blocks × k), then every replicate by one matrix
  product ``counts @ S``;
* ranking metrics (ROC-AUC, average precision = PR-AUC): the rows are sorted by score once, then
  weighted cumulative TP/FP counts for a chunk of replicates at a time (weights = block counts);
* the adjusted Rand index: per-block contingency tables, summed by one matrix product.

Whether a fast path applies is **checked, not assumed**: its value on the full test set must
equal the model's own ``evaluate``. Otherwise, a metric that is a mean (or root mean square) of
per-row values (a regret of a re-simulation, a cost per day) is found by calling ``evaluate``
once per block and checking that the row-weighted mean of the blocks' values gives the
full-sample value; its replicates are then again one matrix product (``block-mean`` /
``block-rms``). Any other metric (event-level F1, a ratio of sums...) falls back to resampling
the blocks' rows and calling ``evaluate`` on each replicate (slower; the number of replicates
is then limited by a time budget and logged).

Intervals are percentile intervals (default 95 %) of the replicates; the point value is the
metric on the whole test set.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: block kinds, in the order the automatic choice tries them
BLOCK_KINDS = ("customer", "asset", "device", "day", "hour", "row")
_COLUMNS = {
    "customer": ("customer_id", "customer"),
    "asset": ("asset_id", "asset"),
    "device": ("device_id", "device"),
}
_TIME_COLUMNS = ("ts", "timestamp", "time", "ts_us", "window_start", "start", "date", "day")
MIN_BLOCKS = 10  # fewer blocks than this give unreliable intervals; the automatic choice looks further
_CHUNK = 64  # replicates per chunk of the ranking metrics (weights: chunk × n_rows floats)


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Interval:
    """A point value [unit of the metric] and its percentile interval."""

    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    def text(self, fmt: str = ".4g") -> str:
        return f"{self.value:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]"


@dataclass
class Uncertainty:
    """Bootstrap intervals of one primary metric for a model and its baselines (all on the same rows).

    ``differences[name]`` is model − baseline ``name`` (for every metric, whatever its direction);
    it favours the model when it is above zero for scores (``greater_is_better``) and below zero
    for errors.
    """

    metric: str
    greater_is_better: bool
    block_kind: str
    n_blocks: int
    n_rows: int
    n_replicates: int
    level: float
    seed: int
    method: str  # "fast:<kind>" or "evaluate" (the generic fallback)
    model: Interval
    baselines: dict[str, Interval] = field(default_factory=dict)
    differences: dict[str, Interval] = field(default_factory=dict)
    seconds: float = float("nan")
    note: str = ""

    def favours_model(self, baseline: str) -> bool:
        """Does the interval of model − ``baseline`` exclude zero on the model's side?"""
        d = self.differences.get(baseline)
        if d is None or not (math.isfinite(d.low) and math.isfinite(d.high)):
            return False
        return d.low > 0 if self.greater_is_better else d.high < 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Uncertainty:
        d = dict(data)
        d["model"] = Interval(**d["model"])
        d["baselines"] = {k: Interval(**v) for k, v in d.get("baselines", {}).items()}
        d["differences"] = {k: Interval(**v) for k, v in d.get("differences", {}).items()}
        return cls(**d)


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` percentile interval of finite replicates (NaN, NaN if fewer than 2 are finite)."""
    r = np.asarray(replicates, float)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(r, [a, 1.0 - a])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------- blocks
def _column(source: Any, name: str, n: int) -> np.ndarray | None:
    if isinstance(source, pd.DataFrame) and name in source.columns and len(source) == n:
        return source[name].to_numpy()
    if isinstance(source, Mapping) and name in source:
        v = source[name]
        if hasattr(v, "__len__") and not isinstance(v, str | bytes) and len(v) == n:
            return np.asarray(v)
    return None


def _time_blocks(values: np.ndarray, name: str, unit: str) -> np.ndarray | None:
    try:
        if name == "ts_us" and np.issubdtype(np.asarray(values).dtype, np.integer):
            t = pd.to_datetime(values, unit="us", utc=True)
        elif name in ("date", "day") and unit == "D":
            return pd.Series(values).astype(str).to_numpy()
        else:
            t = pd.to_datetime(pd.Series(values), utc=True)
    except (TypeError, ValueError):
        return None
    t = pd.DatetimeIndex(t)
    return t.floor("D" if unit == "D" else "h").astype("int64").to_numpy()


def _candidates(kind: str, n: int, sources: Sequence[Any]) -> np.ndarray | None:
    """The block id of every row for ``kind``, from the first source that has it (None: not found)."""
    if kind == "row":
        return np.arange(n)
    for src in sources:
        if src is None:
            continue
        if kind in _COLUMNS:
            for name in _COLUMNS[kind]:
                col = _column(src, name, n)
                if col is not None:
                    return pd.Series(col).astype(str).to_numpy()
        else:
            for name in _TIME_COLUMNS:
                if kind == "hour" and name in ("date", "day"):
                    continue
                col = _column(src, name, n)
                if col is not None:
                    ids = _time_blocks(col, name, "D" if kind == "day" else "h")
                    if ids is not None:
                        return ids
            index = getattr(src, "index", None)
            if isinstance(index, pd.DatetimeIndex) and len(index) == n:
                return _time_blocks(index.to_numpy(), "index", "D" if kind == "day" else "h")
    return None


def block_ids(n: int, *sources: Any, kind: str | None = None, min_blocks: int = MIN_BLOCKS) -> tuple[str, np.ndarray]:
    """The bootstrap block of each of ``n`` test rows.

    Parameters
    ----------
    n : number of test rows.
    *sources : where to look for the block (``meta_test``, ``X_test``, ``y_test``): frames or dicts
        with per-row columns ``customer_id``, ``asset_id``, ``device_id`` or a time (``ts``,
        ``ts_us`` [µs], ``date``...), or a DatetimeIndex.
    kind : one of :data:`BLOCK_KINDS` (a model's declared block, ``ModelSpec.block``); None: the
        first of customer, asset, device, day, hour that gives at least ``min_blocks`` blocks
        (else the one with the most blocks; else one row per block).
    min_blocks : see ``kind``.

    Returns
    -------
    (kind, ids): the kind used and an array of ``n`` block ids.

    Raises
    ------
    ValueError
        ``kind`` is not a block kind, or the sources hold no column for it.
    """
    if kind is not None:
        if kind not in BLOCK_KINDS:
            raise ValueError(f"bootstrap block {kind!r} is not one of {BLOCK_KINDS}")
        ids = _candidates(kind, n, sources)
        if ids is None:
            raise ValueError(f"bootstrap block {kind!r}: the test rows carry no {kind} column (meta_test, X_test); "
                             "add it to the dataset's meta_test or declare another block")
        return kind, ids
    found: list[tuple[str, np.ndarray, int]] = []
    for k in BLOCK_KINDS[:-1]:
        ids = _candidates(k, n, sources)
        if ids is None:
            continue
        g = len(pd.unique(ids))
        if g >= min_blocks:
            return k, ids
        found.append((k, ids, g))
    best = max(found, key=lambda t: t[2], default=None)
    if best is not None and best[2] >= 2:
        return best[0], best[1]
    return "row", np.arange(n)


def block_counts(ids: np.ndarray, n_replicates: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw every replicate at once.

    Returns
    -------
    codes : (n,) int, the block index (0..n_blocks-1) of each row.
    counts : (B, n_blocks) float, how often each block is drawn in each replicate (rows sum to n_blocks).
    """
    _, codes = np.unique(np.asarray(ids), return_inverse=True)
    codes = codes.reshape(-1)
    g = int(codes.max()) + 1 if codes.size else 0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, g, size=(n_replicates, g))
    flat = (draws + np.arange(n_replicates)[:, None] * g).ravel()
    counts = np.bincount(flat, minlength=n_replicates * g).reshape(n_replicates, g).astype(float)
    return codes, counts


def resample_rows(counts_row: np.ndarray, block_rows: Sequence[np.ndarray]) -> np.ndarray:
    """Row indices of one replicate: each block's rows (in their order) as often as it was drawn, blocks in order."""
    parts = [np.tile(rows, int(c)) if c > 1 else rows for rows, c in zip(block_rows, counts_row, strict=True) if c > 0]
    return np.concatenate(parts) if parts else np.empty(0, dtype=int)


# ----------------------------------------------------------------------------- fast paths
def _kinds_for(metric: str) -> tuple[str, ...]:
    m = metric.lower()
    if "macro_f1" in m:
        return ("macro_f1",)
    if "pr_auc" in m or "average_precision" in m:
        return ("average_precision",)
    if "roc_auc" in m or m == "auc":
        return ("roc_auc",)
    if "rmse" in m:
        return ("rmse",)
    if "brier" in m or m == "mse" or m.startswith("mse_") or m.endswith("_mse"):
        return ("mse",)
    if ("mae" in m and "mase" not in m) or m == "mean_absolute_error":
        return ("mae",)
    if "accuracy" in m:
        return ("accuracy",)
    if m in ("ari", "adjusted_rand_index") or "adjusted_rand" in m:
        return ("ari",)
    if m == "f1" or m.endswith("_f1") and not m.startswith("event"):
        return ("f1",)
    return ()


def _sums(stats: np.ndarray, codes: np.ndarray, g: int) -> np.ndarray:
    """Per-block sums of each column of ``stats`` (n × k) -> (g × k)."""
    return np.stack([np.bincount(codes, weights=stats[:, j], minlength=g) for j in range(stats.shape[1])], axis=1)


def _labels(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    codes, uniq = pd.factorize(np.concatenate([np.asarray(y, dtype=object), np.asarray(p, dtype=object)]))
    if (codes < 0).any():
        raise ValueError("missing labels")
    return codes[: len(y)], codes[len(y):], len(uniq)


def _sum_metric(kind: str, y: np.ndarray, p: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    g = counts.shape[1]
    if kind in ("mae", "mse", "rmse"):
        yf, pf = np.asarray(y, float), np.asarray(p, float)
        err = np.abs(yf - pf) if kind == "mae" else (yf - pf) ** 2
        r = counts @ _sums(np.column_stack([err, np.ones_like(err)]), codes, g)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = r[:, 0] / r[:, 1]
        return np.sqrt(v) if kind == "rmse" else v
    if kind == "accuracy":
        yc, pc, _ = _labels(y, p)
        hit = (yc == pc).astype(float)
        r = counts @ _sums(np.column_stack([hit, np.ones_like(hit)]), codes, g)
        with np.errstate(invalid="ignore", divide="ignore"):
            return r[:, 0] / r[:, 1]
    if kind == "f1":
        yb, pb = _binary(y), _binary(p)
        s = np.column_stack([yb & pb, ~yb & pb, yb & ~pb]).astype(float)
        tp, fp, fn = (counts @ _sums(s, codes, g)).T
        den = 2 * tp + fp + fn
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1.0), 0.0)
    if kind == "macro_f1":
        yc, pc, c = _labels(y, p)
        onehot_y, onehot_p = np.eye(c, dtype=bool)[yc], np.eye(c, dtype=bool)[pc]
        s = np.concatenate([onehot_y & onehot_p, ~onehot_y & onehot_p, onehot_y & ~onehot_p], axis=1).astype(float)
        r = counts @ _sums(s, codes, g)
        tp, fp, fn = r[:, :c], r[:, c:2 * c], r[:, 2 * c:]
        den = 2 * tp + fp + fn
        present = den > 0  # classes in y or p of the replicate (sklearn's labels=None)
        f1 = np.where(present, 2 * tp / np.where(present, den, 1.0), 0.0)
        n_present = present.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_present > 0, f1.sum(axis=1) / n_present, np.nan)
    if kind == "ari":
        yt = pd.Series(np.asarray(y, dtype=object))
        ok = yt.notna().to_numpy()
        yc, pc, _ = _labels(yt[ok].astype(str).to_numpy(), np.asarray(p, dtype=object)[ok])
        _, ya = np.unique(yc, return_inverse=True)
        _, pa = np.unique(pc, return_inverse=True)
        ct, cp = int(ya.max()) + 1, int(pa.max()) + 1
        cell = ya * cp + pa
        table = np.zeros((g, ct * cp))
        np.add.at(table, (codes[ok], cell), 1.0)
        return _ari_from_tables((counts @ table).reshape(-1, ct, cp))
    raise ValueError(f"no fast path for {kind!r}")


def _binary(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == bool:
        return a
    return np.asarray(a, float) > 0.5


def _comb2(x: np.ndarray) -> np.ndarray:
    return x * (x - 1.0) / 2.0


def _ari_from_tables(tables: np.ndarray) -> np.ndarray:
    """Adjusted Rand index of each contingency table (B × classes × clusters), as scikit-learn computes it."""
    n = tables.sum(axis=(1, 2))
    sum_cells = _comb2(tables).sum(axis=(1, 2))
    a = _comb2(tables.sum(axis=2)).sum(axis=1)
    b = _comb2(tables.sum(axis=1)).sum(axis=1)
    total = _comb2(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(total > 0, a * b / np.where(total > 0, total, 1.0), 0.0)
        maximum = (a + b) / 2.0
        ari = (sum_cells - expected) / (maximum - expected)
    # scikit-learn: identical trivial partitions (one cluster each, or all singletons) score 1.0
    return np.where(maximum == expected, 1.0, ari)


_PAIR_BLOCKS = 3000  # up to this many blocks, ROC-AUC uses the block-pair matrix (G × G floats)


def _roc_auc_pairs(yb: np.ndarray, s: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC of every replicate as a quadratic form: ``C[g, h]`` = number of (positive of block g,
    negative of block h) pairs ranked right (ties ½); replicate b: ``c_b·C·c_b / (P_b N_b)``
    (Mann–Whitney: the same value as the area under the ROC curve, ties included)."""
    g = counts.shape[1]
    pos = yb > 0.5
    s_pos, c_pos = s[pos], codes[pos]
    pairs = np.zeros((g, g))
    for h in range(g):
        neg_h = np.sort(s[~pos & (codes == h)])
        if neg_h.size == 0 or s_pos.size == 0:
            continue
        below = np.searchsorted(neg_h, s_pos, side="left")
        ties = np.searchsorted(neg_h, s_pos, side="right") - below
        pairs[:, h] = np.bincount(c_pos, weights=below + 0.5 * ties, minlength=g)
    n_pos = np.bincount(codes, weights=pos.astype(float), minlength=g)
    n_neg = np.bincount(codes, weights=(~pos).astype(float), minlength=g)
    p, q = counts @ n_pos, counts @ n_neg
    num = np.einsum("bg,bg->b", counts @ pairs, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((p > 0) & (q > 0), num / (p * q), np.nan)


def _rank_metric(kind: str, y: np.ndarray, score: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    yb = _binary(y).astype(float)
    s = np.asarray(score, float)
    if kind == "roc_auc" and counts.shape[1] <= _PAIR_BLOCKS:
        return _roc_auc_pairs(yb, s, codes, counts)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted, c_sorted = s[order], yb[order], codes[order]
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]  # last row of each distinct score
    out = np.empty(counts.shape[0])
    for start in range(0, counts.shape[0], _CHUNK):
        w = counts[start:start + _CHUNK][:, c_sorted]  # chunk × n row weights
        tp = np.cumsum(w * y_sorted, axis=1)[:, last]
        fp = np.cumsum(w * (1.0 - y_sorted), axis=1)[:, last]
        pos, neg = tp[:, -1:], fp[:, -1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            if kind == "roc_auc":
                tpr = np.concatenate([np.zeros_like(pos), tp / pos], axis=1)
                fpr = np.concatenate([np.zeros_like(neg), fp / neg], axis=1)
                val = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1)
                val[(pos[:, 0] == 0) | (neg[:, 0] == 0)] = np.nan
            else:  # average precision: sum over thresholds of (R_k - R_k-1) * P_k
                prec = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1.0), 0.0)
                rec = np.concatenate([np.zeros_like(pos), tp / pos], axis=1)
                val = np.sum(np.diff(rec, axis=1) * prec, axis=1)
                val[pos[:, 0] == 0] = np.nan
        out[start:start + _CHUNK] = val
    return out


def fast_replicates(kind: str, y_true, y_score, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The metric ``kind`` of every replicate (one row of ``counts`` each), vectorised.

    ``kind``: mae, mse, rmse, accuracy, f1, macro_f1, ari (sums over rows or contingency
    tables: ``counts @ S``) or roc_auc, average_precision (weighted ranks). ``y_score``: a
    prediction (labels, values, or a probability for the ranking metrics).
    """
    if kind in ("roc_auc", "average_precision"):
        return _rank_metric(kind, y_true, y_score, codes, counts)
    return _sum_metric(kind, y_true, y_score, codes, counts)


def _vector(x: Any) -> np.ndarray | None:
    if x is None:
        return None
    if isinstance(x, pd.DataFrame):
        return x.iloc[:, 0].to_numpy() if x.shape[1] == 1 else None
    if isinstance(x, pd.Series):
        return x.to_numpy()
    a = np.asarray(x)
    if a.ndim == 2 and a.shape[1] == 1:
        return a[:, 0]
    return a if a.ndim == 1 else None


def _prediction_vectors(y_pred: Any, preferred: Sequence[str]) -> list[np.ndarray]:
    if isinstance(y_pred, pd.DataFrame):
        names = [c for c in preferred if c in y_pred.columns] + [c for c in y_pred.columns if c not in preferred]
        return [y_pred[c].to_numpy() for c in names]
    v = _vector(y_pred)
    return [] if v is None else [v]


def _fast_plan(metric: str, y_true: Any, preds: Mapping[str, Any], values: Mapping[str, float],
               preferred: Sequence[str], codes: np.ndarray) -> tuple[str, dict[str, np.ndarray]] | None:
    """The fast path whose full-sample value equals ``evaluate``'s for every predictor, with the
    prediction vector it uses for each; None if there is none."""
    y = _vector(y_true)
    if y is None:
        return None
    ones = np.ones((1, int(codes.max()) + 1))
    for kind in _kinds_for(metric):
        chosen: dict[str, np.ndarray] = {}
        for name, pred in preds.items():
            target = values[name]
            for vec in _prediction_vectors(pred, preferred):
                if len(vec) != len(y):
                    continue
                try:
                    with np.errstate(all="ignore"):
                        v = float(fast_replicates(kind, y, vec, codes, ones)[0])
                except (TypeError, ValueError):
                    continue
                if math.isclose(v, target, rel_tol=1e-7, abs_tol=1e-10) or (math.isnan(v) and math.isnan(target)):
                    chosen[name] = vec
                    break
            if name not in chosen:
                break
        if len(chosen) == len(preds):
            return kind, chosen
    return None


# ----------------------------------------------------------------------------- the generic fallback
def take(obj: Any, idx: np.ndarray, n: int) -> Any:
    """Rows ``idx`` of a row-aligned object (frame, series, array, list, or a dict of those); other
    objects (scalars, an event table of another length) are returned unchanged; dict keys
    starting with ``_`` (caches) are dropped."""
    if isinstance(obj, pd.DataFrame | pd.Series):
        return obj.iloc[idx] if len(obj) == n else obj
    if isinstance(obj, np.ndarray):
        return obj[idx] if obj.ndim and obj.shape[0] == n else obj
    if isinstance(obj, list):
        return [obj[i] for i in idx] if len(obj) == n else obj
    if isinstance(obj, Mapping):
        return {k: take(v, idx, n) for k, v in obj.items() if not str(k).startswith("_")}
    return obj


def _fallback(evaluate: Callable[[Any, Any, Any], Mapping[str, float]], metric: str, y_true: Any, preds: Mapping[str, Any],
              meta: Any, codes: np.ndarray, counts: np.ndarray, n: int, budget_s: float, min_replicates: int) -> dict[str, np.ndarray]:
    block_rows = _block_rows(codes, counts.shape[1])
    reps = {name: [] for name in preds}
    t0 = time.perf_counter()
    for b in range(counts.shape[0]):
        idx = resample_rows(counts[b], block_rows)
        yt, mt = take(y_true, idx, n), take(meta, idx, n)
        for name, pred in preds.items():
            try:
                reps[name].append(float(evaluate(yt, take(pred, idx, n), mt)[metric]))
            except Exception:  # noqa: BLE001 - a replicate the metric cannot score (e.g. one class only) is NaN
                reps[name].append(float("nan"))
        if b + 1 >= min_replicates and time.perf_counter() - t0 > budget_s:
            break
    return {name: np.asarray(v, float) for name, v in reps.items()}


def _terms_plan(terms, preds: Mapping[str, Any], values: Mapping[str, float], codes: np.ndarray,
                g: int) -> dict[str, tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]] | None:
    """Per-block sums of the model's own per-row terms for every predictor, if they reproduce ``values``."""
    out = {}
    for name, pred in preds.items():
        got = terms(pred)
        if got is None:
            return None
        rows, combine = got
        rows = np.asarray(rows, float).reshape(len(codes), -1)
        sums = _sums(rows, codes, g)
        full = float(np.asarray(combine(sums.sum(axis=0, keepdims=True)), float).reshape(-1)[0])
        if not (math.isclose(full, values[name], rel_tol=1e-7, abs_tol=1e-12) or (math.isnan(full) and math.isnan(values[name]))):
            return None
        out[name] = (sums, combine)
    return out


def _block_rows(codes: np.ndarray, g: int) -> list[np.ndarray]:
    order = np.argsort(codes, kind="mergesort")
    bounds = np.searchsorted(codes[order], np.arange(g + 1))
    return [order[bounds[k]:bounds[k + 1]] for k in range(g)]


def _block_plan(evaluate: Callable[[Any, Any, Any], Mapping[str, float]], metric: str, y_true: Any, preds: Mapping[str, Any],
                values: Mapping[str, float], meta: Any, codes: np.ndarray, g: int, n: int,
                budget_s: float) -> tuple[str, dict[str, np.ndarray], np.ndarray] | None:
    """A metric that is a mean (or root mean square) of per-row values, found by calling ``evaluate``
    once per block: checked on the full test set (the row-weighted mean of the blocks' values must
    equal ``evaluate``'s value for every predictor). Returns (kind, per-block values, rows per
    block) or None (not decomposable, a block ``evaluate`` cannot score, or over the time budget)."""
    rows = _block_rows(codes, g)
    sizes = np.array([r.size for r in rows], float)
    t0 = time.perf_counter()
    per_block: dict[str, np.ndarray] = {}
    for name, pred in preds.items():
        vals = np.empty(g)
        for k, idx in enumerate(rows):
            try:
                vals[k] = float(evaluate(take(y_true, idx, n), take(pred, idx, n), take(meta, idx, n))[metric])
            except Exception:  # noqa: BLE001 - a block on its own cannot be scored: not decomposable
                return None
            if time.perf_counter() - t0 > budget_s:
                return None
        if not np.isfinite(vals).all():
            return None
        per_block[name] = vals
    for kind, combine in (("mean", lambda v: float(sizes @ v / sizes.sum())),
                          ("rms", lambda v: float(np.sqrt(sizes @ v ** 2 / sizes.sum())))):
        if all(math.isclose(combine(v), values[name], rel_tol=1e-7, abs_tol=1e-12) for name, v in per_block.items()):
            return kind, per_block, sizes
    return None


def _block_replicates(kind: str, per_block: np.ndarray, sizes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    w = counts * sizes  # rows of each block in each replicate
    total = w.sum(axis=1)
    if kind == "mean":
        return (w @ per_block) / total
    return np.sqrt((w @ per_block ** 2) / total)


# ----------------------------------------------------------------------------- the bootstrap
def bootstrap(
    evaluate: Callable[[Any, Any, Any], Mapping[str, float]],
    metric: str,
    greater_is_better: bool,
    y_true: Any,
    predictions: Mapping[str, Any],
    values: Mapping[str, float],
    *,
    meta: Any = None,
    block: tuple[str, np.ndarray],
    model: str = "model",
    n_replicates: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    preferred_columns: Sequence[str] = (),
    time_budget_s: float = 30.0,
    min_replicates: int = 20,
    fast: bool = True,
    terms: Callable[[Any], tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]] | None] | None = None,
) -> Uncertainty:
    """Paired block-bootstrap intervals of ``metric`` for every predictor and model − each other predictor.

    Parameters
    ----------
    evaluate : ``evaluate(y_true, y_pred, meta) -> {metric: value}`` (the model's own, for the fallback).
    metric : the primary metric's key; ``greater_is_better`` its direction.
    y_true : labels of the test rows.
    predictions : predictor name -> its predictions on the same rows (``model`` and the baselines).
    values : predictor name -> the metric on the whole test set (``evaluate``'s value, the point estimate).
    meta : per-row context passed to ``evaluate`` (resampled with the rows where row-aligned).
    block : ``(kind, ids)`` from :func:`block_ids`.
    model : the name of the model among ``predictions``.
    n_replicates, level, seed : B, the interval's coverage, the seed of the draws.
    preferred_columns : prediction columns to try first for the fast paths (the model's outputs).
    time_budget_s, min_replicates : the fallback stops after ``time_budget_s`` [s] once it has
        ``min_replicates`` replicates (fast paths always do ``n_replicates``).
    fast : False forces the fallback (tests compare both).
    terms : ``terms(y_pred) -> (T, combine)`` or None: the model's own sufficient statistics
        (``GridModel.bootstrap_terms``): ``T`` (n × k) per-row additive terms and ``combine``
        mapping their sums (B × k) to the metric (B,); used (``terms``) when ``combine`` of the
        full sums equals ``values`` for every predictor.
    """
    t0 = time.perf_counter()
    kind, ids = block
    n = len(ids)
    codes, counts = block_counts(ids, n_replicates, seed)
    plan = _fast_plan(metric, y_true, predictions, values, preferred_columns, codes) if fast else None
    own = _terms_plan(terms, predictions, values, codes, counts.shape[1]) if fast and plan is None and terms else None
    blocks = None
    if plan is None and own is None and fast:
        blocks = _block_plan(evaluate, metric, y_true, predictions, values, meta, codes, counts.shape[1], n, time_budget_s / 2)
    if plan is not None:
        fast_kind, vectors = plan
        reps = {name: fast_replicates(fast_kind, _vector(y_true), vec, codes, counts) for name, vec in vectors.items()}
        method = f"fast:{fast_kind}"
    elif own is not None:
        reps = {name: combine(counts @ sums) for name, (sums, combine) in own.items()}
        method = "terms"
    elif blocks is not None:
        kind_b, per_block, sizes = blocks
        reps = {name: _block_replicates(kind_b, v, sizes, counts) for name, v in per_block.items()}
        method = f"block-{kind_b}"
    else:
        reps = _fallback(evaluate, metric, y_true, predictions, meta, codes, counts, n, time_budget_s, min_replicates)
        method = "evaluate"
    done = len(next(iter(reps.values())))

    def interval(name: str, r: np.ndarray, point: float) -> Interval:
        lo, hi = percentile_interval(r, level)
        return Interval(float(point), lo, hi)

    base_names = [k for k in predictions if k != model]
    unc = Uncertainty(
        metric=metric, greater_is_better=bool(greater_is_better), block_kind=kind, n_blocks=int(counts.shape[1]), n_rows=int(n),
        n_replicates=int(done), level=float(level), seed=int(seed), method=method,
        model=interval(model, reps[model], values[model]),
        baselines={k: interval(k, reps[k], values[k]) for k in base_names},
        differences={k: interval(k, reps[model] - reps[k], values[model] - values[k]) for k in base_names},
    )
    notes = []
    if counts.shape[1] < MIN_BLOCKS:
        notes.append(f"only {counts.shape[1]} {kind} blocks: the intervals are rough")
    outside = [k for k, iv in {model: unc.model, **unc.baselines}.items()
               if math.isfinite(iv.low) and not (iv.low - 1e-12 <= iv.value <= iv.high + 1e-12)]
    if outside:  # the metric of resampled rows is biased (e.g. an event table that is not resampled with them)
        notes.append(f"point value outside its own interval for {', '.join(outside)}: the metric does not resample by "
                     "rows without bias; give the model bootstrap_terms")
    unc.note = "; ".join(notes)
    unc.seconds = time.perf_counter() - t0
    return unc


def gate_decision(unc: Uncertainty | None, strongest: str | None, *, members: Mapping[str, float] | None = None,
                  model_value: float | None = None, model_label: str = "the model") -> tuple[bool, str]:
    """The champion gate in words: does the model beat its strongest baseline (interval of the
    difference excludes zero on its side) and, if ``members`` are given, every ensemble member
    (point value at least as good)?"""
    if unc is None or strongest is None:
        return False, "no bootstrap interval of the difference to the baselines: not gated in"
    d = unc.differences[strongest]
    ci = f"{unc.metric} difference {d.value:+.4g} [{d.low:+.4g}, {d.high:+.4g}], {unc.n_blocks} {unc.block_kind} blocks"
    if unc.note:
        ci += f"; caution: {unc.note}"
    if not unc.favours_model(strongest):
        return False, f"{model_label} did not beat {strongest} ({ci})"
    value = unc.model.value if model_value is None else model_value
    for name, v in (members or {}).items():
        if v is None or not math.isfinite(v):
            continue
        worse = value < v if unc.greater_is_better else value > v
        if worse:
            return False, f"{model_label} beats {strongest} ({ci}) but is below its member {name} ({value:.5g} vs {v:.5g})"
    return True, f"{model_label} beats {strongest} ({ci})"


__all__ = ["BLOCK_KINDS", "MIN_BLOCKS", "Interval", "Uncertainty", "block_ids", "block_counts", "resample_rows",
           "fast_replicates", "bootstrap", "percentile_interval", "gate_decision", "take"]
