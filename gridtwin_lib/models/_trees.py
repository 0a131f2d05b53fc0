"""Scikit-learn trees flattened into NumPy arrays and walked all at once, for single readings.

Why: scikit-learn predicts an ensemble tree by tree (tens of µs of Python per tree and
call, through a thread pool); for one reading through 200-300 trees that is 10-70 ms.
Here every tree advances one level per NumPy step (``max_depth`` steps), about 0.1 ms per
reading, with scikit-learn's arithmetic: inputs rounded to float32 and compared with the
float64 thresholds, ``x <= threshold`` going left. The models that use it (the forests of
the registry's tree models) check the result against scikit-learn when they build it and fall back
to scikit-learn if it differs; large batches always go through scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class FlatTrees:
    """Node arrays of several fitted ``sklearn.tree`` trees (``est.tree_``) laid end to end.

    ``feature_maps``: per tree, the input column of each of the tree's features (bagging
    over features, as IsolationForest does), or None when trees see all columns.
    """

    def __init__(self, trees: Sequence, n_features: int, feature_maps: Sequence | None = None):
        sizes = np.array([t.node_count for t in trees])
        self.roots = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        children, feature, threshold = [], [], []
        for k, (t, off) in enumerate(zip(trees, self.roots)):
            node = np.arange(t.node_count)
            leaf = t.children_left < 0
            # (right, left) children of each node; a leaf points to itself both ways,
            # so a fixed number of steps brings every row to its leaf
            pair = np.empty((t.node_count, 2), dtype=np.intp)
            pair[:, 0] = np.where(leaf, node, t.children_right) + off
            pair[:, 1] = np.where(leaf, node, t.children_left) + off
            children.append(pair.ravel())
            f = np.where(leaf, 0, t.feature).astype(np.intp)
            if feature_maps is not None:
                f = np.asarray(feature_maps[k], dtype=np.intp)[f]
            feature.append(f)
            threshold.append(np.where(leaf, 0.0, t.threshold))
        self.children = np.concatenate(children)
        self.feature = np.concatenate(feature)
        self.threshold = np.concatenate(threshold).astype(np.float64)
        self.depth = int(max(t.max_depth for t in trees))
        self.n_features = int(n_features)
        self.n_trees = len(trees)

    def leaf_nodes(self, X: np.ndarray) -> np.ndarray:
        """Global index of the leaf each row reaches in each tree, shape (n_rows, n_trees)."""
        x = np.asarray(X, dtype=np.float32).astype(np.float64)
        n = x.shape[0]
        flat = x.ravel()
        row_offset = (np.arange(n, dtype=np.intp) * self.n_features)[:, None]
        nodes = np.repeat(self.roots[None, :], n, axis=0)
        for _ in range(self.depth):
            go_left = flat[self.feature[nodes] + row_offset] <= self.threshold[nodes]
            nodes = self.children[2 * nodes + go_left]
        return nodes


#: up to this many rows a forest is walked by :class:`FlatForest`; above, scikit-learn's
#: compiled per-tree loop is faster and its fixed cost per call no longer matters
FLAT_MAX_ROWS = 256


class FlatForest:
    """A fitted ``RandomForestClassifier``'s ``predict_proba`` through :class:`FlatTrees`.

    scikit-learn's arithmetic (>= 1.4, whose leaves hold class fractions): the trees' leaf
    fractions summed in tree order and divided by the tree count, so the probabilities are
    bit for bit those of a single-job ``predict_proba`` (with several jobs, scikit-learn adds
    the trees in a varying order, which changes the last bits from call to call). Build it
    with :meth:`verified`; rows with a non-finite value go through scikit-learn (which sends
    NaN down a learned side).
    """

    def __init__(self, forest):
        if forest.n_outputs_ != 1:
            raise ValueError("flat forest: single-output forests only")
        trees = [e.tree_ for e in forest.estimators_]
        self.forest = forest
        self.trees = FlatTrees(trees, int(forest.n_features_in_))
        n_classes = int(forest.n_classes_)
        self.value = np.ascontiguousarray(np.concatenate([t.value[:, 0, :n_classes] for t in trees]), dtype=np.float64)
        leaves = self.trees.children[0::2] == np.arange(len(self.trees.feature))
        if not np.allclose(self.value[leaves].sum(axis=1), 1.0):  # leaves hold counts (older scikit-learn)
            raise ValueError("flat forest: leaf values are not class fractions")

    @classmethod
    def verified(cls, forest, seed: int = 0) -> FlatForest | None:
        """The flat walk of ``forest`` if it reproduces scikit-learn's single-job
        ``predict_proba`` exactly on probe rows spread over and beyond every threshold, else None."""
        try:
            flat = cls(forest)
        except (AttributeError, IndexError, TypeError, ValueError):
            return None
        rng = np.random.default_rng(seed)
        thresholds = flat.trees.threshold[flat.trees.children[0::2] != np.arange(len(flat.trees.feature))]
        spread = float(np.abs(thresholds).max()) if thresholds.size else 1.0
        probe = rng.normal(0.0, 1.0, size=(64, flat.trees.n_features)) * rng.choice([1e-3, 1.0, spread, 10 * spread],
                                                                                   size=(64, flat.trees.n_features))
        if thresholds.size:  # values on and next to the thresholds, where float32 rounding decides the side
            probe[:32] = rng.choice(thresholds, size=(32, flat.trees.n_features))
            probe[16:32] = np.nextafter(probe[16:32].astype(np.float32), np.inf)
        jobs = forest.n_jobs
        try:
            forest.n_jobs = 1
            ok = all(np.array_equal(flat.predict_proba(probe[k:k + m]), forest.predict_proba(probe[k:k + m]))
                     for k, m in ((0, 64), (7, 1)))
        except (IndexError, ValueError):
            ok = False
        finally:
            forest.n_jobs = jobs
        return flat if ok else None

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class fractions (n, n_classes) like ``RandomForestClassifier.predict_proba``."""
        x = np.asarray(features, dtype=np.float64)
        if not np.isfinite(x.astype(np.float32)).all():
            return self.forest.predict_proba(x)
        # (n, trees, classes) summed over the trees in order, as scikit-learn accumulates them
        proba = np.add.reduce(self.value[self.trees.leaf_nodes(x)], axis=1)
        proba /= self.trees.n_trees
        return proba


def forest_proba(owner, forest, X: np.ndarray) -> np.ndarray:
    """``forest.predict_proba(X)``: small batches through a :class:`FlatForest` kept on
    ``owner`` (built and verified on first use, rebuilt when ``forest`` changes, never pickled
    when the owner drops ``_flat_forests`` in ``__getstate__``), large ones through scikit-learn."""
    if len(X) > FLAT_MAX_ROWS:
        return forest.predict_proba(X)
    cache = owner.__dict__.setdefault("_flat_forests", {})
    entry = cache.get(id(forest))
    if entry is None or entry[0] is not forest:
        entry = cache[id(forest)] = (forest, FlatForest.verified(forest))
    return entry[1].predict_proba(X) if entry[1] is not None else forest.predict_proba(X)
