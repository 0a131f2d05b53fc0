"""Scikit-learn trees flattened into NumPy arrays and walked all at once, for single readings.

Why: scikit-learn predicts an ensemble tree by tree (tens of µs of Python per tree and
call, through a thread pool); for one reading through 200-300 trees that is 10-70 ms.
Here every tree advances one level per NumPy step (``max_depth`` steps), about 0.1 ms per
reading, with scikit-learn's arithmetic: inputs rounded to float32 and compared with the
float64 thresholds, ``x <= threshold`` going left. The models that use it (m01, m02) check
the result against scikit-learn when they build it and fall back to scikit-learn if it
differs; large batches always go through scikit-learn.
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
