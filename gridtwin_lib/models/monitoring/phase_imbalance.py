"""m04 phase imbalance: cause of voltage unbalance per reading, a depth-limited DecisionTree
with exported rules; baseline :class:`UnbalanceSeverityRule`.

The model reads the feature frame of :func:`gridtwin_lib.features.compute` (kind
``three_phase``; windows ``1m`` and ``15m``), so the inference engine serves it with the one
feature implementation. Derived inputs (ratios, differences) are pure functions of one
feature row, never of later rows.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.metrics import confusion_matrix
from sklearn.tree import DecisionTreeClassifier, export_text

from .._linear import logistic_predict
from ..base import Baseline, Dataset, GridModel, ModelSpec, feature_array, feature_frame
from ..serving import ServingAdapter, columns_scorer

# --------------------------------------------------------------------------- m04

UNBALANCE_CLASSES: tuple[str, ...] = (
    "balanced", "single_phase_overload_a", "single_phase_overload_b", "single_phase_overload_c",
    "open_conductor", "high_resistance_conductor", "unbalanced_pv",
)

#: feature-catalogue columns m04 reads (``features.compute(..., windows=("1m", "15m"))``)
M04_INPUT_COLUMNS: tuple[str, ...] = (
    "v_a", "v_b", "v_c", "v_mean_v", "i_a", "i_b", "i_c", "i_mean_a",
    "v_a_dev_pct", "v_b_dev_pct", "v_c_dev_pct", "v_unbalance_pct", "i_unbalance_pct",
    "p_share_a", "p_share_b", "p_share_c", "pf_a", "pf_b", "pf_c", "pf_total",
    "v_unbalance_mean_15m", "v_unbalance_max_15m", "i_mean_15m", "p_total_mean_15m", "is_daylight", "hour_sin", "hour_cos",
)


#: columns of the m04 design matrix, in order
M04_DESIGN_COLUMNS: tuple[str, ...] = tuple(
    name for ph in "abc" for name in (f"v_{ph}_rel_pct", f"i_{ph}_share", f"v_{ph}_dev_pct", f"p_share_{ph}", f"pf_{ph}")
) + ("v_unbalance_pct", "i_unbalance_pct", "v_unbalance_mean_15m", "v_unbalance_max_15m", "pf_total", "is_daylight",
     "hour_sin", "hour_cos", "p_total_mean_15m_kw")
_M04_COL = {name: k for k, name in enumerate(M04_INPUT_COLUMNS)}
#: design columns copied unchanged from the input: (design position, input position)
_M04_COPIED = tuple((j, _M04_COL[name]) for j, name in enumerate(M04_DESIGN_COLUMNS) if name in _M04_COL)


def _m04_design_array(A: np.ndarray) -> np.ndarray:
    """Per-phase shares and deviations from the phase mean (1 or %), from one feature row.

    ``A``: float array (n, 27), the columns :data:`M04_INPUT_COLUMNS` in order; returns
    (n, 24), the columns :data:`M04_DESIGN_COLUMNS`. NumPy only, row by row.
    """
    T = A.T
    c = lambda name: T[_M04_COL[name]]  # noqa: E731
    v_mean = np.maximum(c("v_mean_v"), 1.0)
    i_sum = np.maximum(3.0 * c("i_mean_a"), 1e-3)
    Z = np.empty((A.shape[0], len(M04_DESIGN_COLUMNS)))
    for j, k in _M04_COPIED:
        Z[:, j] = T[k]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for p, ph in enumerate("abc"):
            Z[:, 5 * p] = 100.0 * (c(f"v_{ph}") - v_mean) / v_mean
            Z[:, 5 * p + 1] = c(f"i_{ph}") / i_sum
        Z[:, 23] = c("p_total_mean_15m") / 1e3
    return Z


def _m04_design(X: pd.DataFrame) -> pd.DataFrame:
    """:func:`_m04_design_array` of a feature frame, as a frame (columns :data:`M04_DESIGN_COLUMNS`)."""
    A, index = feature_array(X, M04_INPUT_COLUMNS)
    return pd.DataFrame(_m04_design_array(A), columns=list(M04_DESIGN_COLUMNS), index=index)


class PhaseImbalance(ClassifierMixin, GridModel):
    """m04: cause of voltage unbalance per reading, a DecisionTree of depth <= 6.

    Input: the ``features.compute`` frame (columns :data:`M04_INPUT_COLUMNS`; V, A, W, %).
    Output: ``cause`` (one of :data:`UNBALANCE_CLASSES`). Why a shallow tree: its rules
    (:attr:`rules_`, ``sklearn.tree.export_text``) can be read and checked by an engineer,
    e.g. "phase c below 60 % of the phase mean -> open conductor".

    Parameters
    ----------
    max_depth : int
        Depth of the tree, 1..6 (readable rules).
    min_samples_leaf, class_weight, random_state : int, str or None, int
        Passed to :class:`sklearn.tree.DecisionTreeClassifier`.

    Attributes
    ----------
    tree_ : DecisionTreeClassifier
        Fitted on the design columns ``feature_names_`` (%, pu, kW).
    classes_ : ndarray of str
        The unbalance causes seen in training.
    fill_ : Series
        Training median per design column, used for NaN/inf inputs.
    """

    spec: ClassVar[ModelSpec] = ModelSpec(
        model_id="m04_phase_imbalance",
        module="monitoring",
        algorithm="DecisionTree (depth <= 6, rules exported)",
        baseline="severity thresholds on the voltage unbalance ratio (bands -> majority training cause)",
        target="cause of unbalance from the phase_unbalance twin's grid_state.unbalance_cause",
        primary_metric="macro_f1",
        greater_is_better=True,
        output_units={"cause": "class"},
        secondary_metrics=("accuracy", "balanced_accuracy"),
    )
    input_columns: ClassVar[tuple[str, ...]] = M04_INPUT_COLUMNS

    def __init__(self, max_depth: int = 6, min_samples_leaf: int = 100, class_weight: str | None = "balanced",
                 random_state: int = 0):
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.class_weight = class_weight
        self.random_state = random_state

    def _fill_values(self) -> np.ndarray:
        """``fill_`` as an array in design-column order (cached; also for models fitted before the cache)."""
        try:
            return self.fill_values_
        except AttributeError:
            self.fill_values_ = self.fill_.reindex(list(M04_DESIGN_COLUMNS)).to_numpy(dtype=float)
            return self.fill_values_

    def _design(self, X) -> tuple[np.ndarray, pd.Index | None]:
        """Design matrix with every non-finite value replaced by the training median of its column."""
        A, index = feature_array(X, self.input_columns)
        Z = _m04_design_array(A)
        return np.where(np.isfinite(Z), Z, self._fill_values()), index

    def _leaf_class(self) -> np.ndarray:
        """Per tree node: the class ``DecisionTreeClassifier.predict`` returns for a leaf there
        (the argmax of the node's class weights, ties to the first class)."""
        try:
            return self.leaf_class_
        except AttributeError:
            value = self.tree_.tree_.value
            self.leaf_class_ = self.tree_.classes_.take(np.argmax(value[:, 0, :], axis=1), axis=0)
            return self.leaf_class_

    def fit(self, X, y):
        if not 1 <= int(self.max_depth) <= 6:
            raise ValueError(f"max_depth must be in 1..6 (readable rules), got {self.max_depth}")
        Z = _m04_design(feature_frame(X, self.input_columns)).replace([np.inf, -np.inf], np.nan)
        self.fill_ = Z.median().fillna(0.0)
        Z = Z.fillna(self.fill_)
        self.tree_ = DecisionTreeClassifier(max_depth=int(self.max_depth), min_samples_leaf=self.min_samples_leaf,
                                            class_weight=self.class_weight, random_state=self.random_state)
        self.tree_.fit(Z.to_numpy(), np.asarray(y))
        self.classes_ = self.tree_.classes_
        self.feature_names_ = list(Z.columns)
        self.__dict__.pop("fill_values_", None)
        self.__dict__.pop("leaf_class_", None)
        self._fill_values()
        self._leaf_class()
        return self

    def predict(self, X) -> pd.DataFrame:
        Z, index = self._design(X)
        # DecisionTreeClassifier.predict without its per-call input validation (~0.1 ms): the
        # same float32 cast and compiled tree walk, then the leaf's precomputed class. A value
        # beyond float32 goes through scikit-learn, which refuses it as before.
        Z32 = np.ascontiguousarray(Z, dtype=np.float32)
        if not np.isfinite(Z32).all():
            return pd.DataFrame({"cause": self.tree_.predict(Z)}, index=index)
        return pd.DataFrame({"cause": self._leaf_class()[self.tree_.tree_.apply(Z32)]}, index=index)

    def predict_proba(self, X) -> np.ndarray:
        return self.tree_.predict_proba(self._design(X)[0])

    @property
    def rules_(self) -> str:
        """The fitted tree as indented text rules (``sklearn.tree.export_text``)."""
        return export_text(self.tree_, feature_names=self.feature_names_, show_weights=False, decimals=3)

    def baseline(self):
        return UnbalanceSeverityRule()

    def input_example(self, X):
        return feature_frame(X, self.input_columns).loc[:, list(self.input_columns)].head(5)

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        return cause_scores(y_true, y_pred)

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        return _m04_figures(self, dataset, predictions)


class UnbalanceSeverityRule(Baseline):
    """Baseline of m04: severity bands of the voltage unbalance ratio, each mapped to the
    most frequent cause of the training rows in that band.

    Input: the feature frame (``column``, default ``v_unbalance_mean_15m`` [%], the NEMA
    ratio averaged over 15 min as EN 50160 averages over 10 min); bands split at
    ``thresholds_pct`` (1 % / 2 % (EN 50160 limit) / 4 %). Output like :class:`PhaseImbalance`.
    """

    name = "severity bands of the voltage unbalance ratio"

    def __init__(self, thresholds_pct: tuple[float, ...] = (1.0, 2.0, 4.0), column: str = "v_unbalance_mean_15m"):
        self.thresholds_pct = thresholds_pct
        self.column = column

    def _band(self, X) -> np.ndarray:
        x = np.nan_to_num(feature_frame(X, M04_INPUT_COLUMNS)[self.column].to_numpy(dtype=float), nan=0.0)
        return np.searchsorted(np.asarray(self.thresholds_pct, dtype=float), x, side="right")

    def fit(self, X, y):
        band, y = self._band(X), np.asarray(y)
        overall = pd.Series(y).mode().iloc[0]
        self.band_class_ = [pd.Series(y[band == k]).mode().iloc[0] if (band == k).any() else overall
                            for k in range(len(self.thresholds_pct) + 1)]
        return self

    def predict(self, X) -> pd.DataFrame:
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame({"cause": np.asarray(self.band_class_, dtype=object)[self._band(X)]}, index=index)


class PhaseAwareRule(Baseline):
    """m04 ladder: a phase-aware rule from per-phase current shares and voltages.

    What an engineer reads off a three-phase meter, in this order (per reading, from
    :func:`_m04_design_array`: phase voltage relative to the phase mean [%], phase current
    share of the three-phase sum [1]):

    1. some phase voltage more than ``open_v_pct`` below the phase mean: ``open_conductor``;
    2. the phase with the smallest current share below ``pv_share`` AND holding the highest
       voltage (a phase pushed up while its net current drops, in daylight):
       ``unbalanced_pv``;
    3. the largest current share above ``overload_share``: ``single_phase_overload_<phase>``;
    4. voltage unbalance (``v_unbalance_mean_15m``) above ``hrc_unbalance_pct`` with
       currents within the shares above: ``high_resistance_conductor``;
    5. otherwise ``balanced``.

    ``fit`` picks ``overload_share``, ``pv_share`` and ``hrc_unbalance_pct`` from small grids
    around those defaults by macro-F1 on the training rows only (``open_v_pct`` stays fixed);
    ``search=False`` keeps the given values.
    """

    name = "phase-aware rule (current shares, voltage minima)"

    def __init__(self, open_v_pct: float = 20.0, overload_share: float = 0.42, pv_share: float = 0.27,
                 hrc_unbalance_pct: float = 0.6, search: bool = True):
        self.open_v_pct = open_v_pct
        self.overload_share = overload_share
        self.pv_share = pv_share
        self.hrc_unbalance_pct = hrc_unbalance_pct
        self.search = search

    @staticmethod
    def _parts(X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        Z = _m04_design_array(feature_array(X, M04_INPUT_COLUMNS)[0])
        v_rel = np.nan_to_num(Z[:, [0, 5, 10]], nan=0.0)
        share = np.nan_to_num(Z[:, [1, 6, 11]], nan=1.0 / 3.0)
        unb = np.nan_to_num(Z[:, M04_DESIGN_COLUMNS.index("v_unbalance_mean_15m")], nan=0.0)
        return v_rel, share, unb

    @staticmethod
    def _rule(parts, open_v_pct, overload_share, pv_share, hrc_unbalance_pct) -> np.ndarray:
        v_rel, share, unb = parts
        out = np.full(v_rel.shape[0], "balanced", dtype=object)
        hrc = unb > hrc_unbalance_pct
        out[hrc] = "high_resistance_conductor"
        top = np.argmax(share, axis=1)
        over = np.take_along_axis(share, top[:, None], 1)[:, 0] > overload_share
        out[over] = np.array([f"single_phase_overload_{p}" for p in "abc"], dtype=object)[top[over]]
        low = np.argmin(share, axis=1)
        pv = (np.take_along_axis(share, low[:, None], 1)[:, 0] < pv_share) & (low == np.argmax(v_rel, axis=1))
        out[pv] = "unbalanced_pv"
        out[np.min(v_rel, axis=1) < -open_v_pct] = "open_conductor"
        return out

    def fit(self, X, y):
        parts, y = self._parts(X), np.asarray(y).astype(str)
        best = (self.overload_share, self.pv_share, self.hrc_unbalance_pct)
        if self.search:
            grid = [(o, p, h) for o in (0.38, 0.40, 0.42, 0.45, 0.50) for p in (0.20, 0.24, 0.27, 0.30)
                    for h in (0.4, 0.6, 0.8, 1.0, 1.5)]
            f1 = [cause_scores(y, self._rule(parts, self.open_v_pct, *g))["macro_f1"] for g in grid]
            best = grid[int(np.argmax(f1))]
        self.overload_share_, self.pv_share_, self.hrc_unbalance_pct_ = best
        return self

    def predict(self, X) -> pd.DataFrame:
        index = X.index if isinstance(X, pd.DataFrame) else None
        cause = self._rule(self._parts(X), self.open_v_pct, self.overload_share_, self.pv_share_, self.hrc_unbalance_pct_)
        return pd.DataFrame({"cause": cause}, index=index)


class DesignLogistic(Baseline):
    """m04 ladder: multinomial logistic regression on m04's own design columns (standardised).

    The linear model a practitioner fits before a tree: the same inputs as
    :class:`PhaseImbalance` (non-finite values -> training median), balanced class weights.
    """

    name = "logistic regression on the design columns"

    def __init__(self, C: float = 1.0, max_iter: int = 500):
        self.C = C
        self.max_iter = max_iter

    def _design(self, X) -> np.ndarray:
        Z = _m04_design_array(feature_array(X, M04_INPUT_COLUMNS)[0])
        return np.where(np.isfinite(Z), Z, self.fill_)

    def fit(self, X, y):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        Z = _m04_design_array(feature_array(X, M04_INPUT_COLUMNS)[0])
        with np.errstate(all="ignore"):
            self.fill_ = np.nan_to_num(np.nanmedian(np.where(np.isfinite(Z), Z, np.nan), axis=0), nan=0.0)
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter,
                                                                         class_weight="balanced"))
        self.model_.fit(self._design(X), np.asarray(y).astype(str))
        return self

    def predict(self, X) -> pd.DataFrame:
        index = X.index if isinstance(X, pd.DataFrame) else None
        return pd.DataFrame({"cause": logistic_predict(self.model_, self._design(X)).astype(object)}, index=index)


def _causes(y) -> np.ndarray:
    if isinstance(y, pd.DataFrame):
        return y["cause"].to_numpy()
    return np.asarray(y).ravel()


def cause_scores(y_true, y_pred) -> dict[str, float]:
    """Macro-F1 over the classes present in ``y_true`` (a missed class scores 0), accuracy,
    balanced accuracy and F1 per class (``f1_<cause>``)."""
    yt, yp = np.asarray(y_true).astype(str), _causes(y_pred).astype(str)
    labels = sorted(set(yt.tolist()))
    codes = {c: k for k, c in enumerate(labels)}
    t = pd.Series(yt).map(codes).to_numpy()
    p = pd.Series(yp).map(codes).fillna(len(labels)).to_numpy().astype(np.int64)  # unknown class -> extra code
    cm = np.bincount(t * (len(labels) + 1) + p, minlength=len(labels) * (len(labels) + 1)).reshape(len(labels), -1)
    tp = np.diag(cm[:, :len(labels)]).astype(float)
    support, predicted = cm.sum(axis=1).astype(float), cm[:, :len(labels)].sum(axis=0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
    out = {
        "macro_f1": float(f1.mean()) if labels else float("nan"),
        "accuracy": float(tp.sum() / max(1, yt.size)),
        "balanced_accuracy": float(recall.mean()) if labels else float("nan"),
    }
    out.update({f"f1_{c}": float(v) for c, v in zip(labels, f1)})
    return out


def _m04_figures(model: PhaseImbalance, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    yt = np.asarray(dataset.y_test).astype(str)
    labels = [c for c in UNBALANCE_CLASSES if c in set(yt)] + sorted(set(yt) - set(UNBALANCE_CLASSES))
    fig = make_subplots(rows=1, cols=len(predictions), subplot_titles=[f"{k}" for k in predictions], horizontal_spacing=0.12)
    for col, pred in enumerate(predictions.values(), start=1):
        cm = confusion_matrix(yt, _causes(pred).astype(str), labels=labels).astype(float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        fig.add_trace(go.Heatmap(z=norm, x=labels, y=labels, zmin=0, zmax=1, colorscale="Blues", showscale=col == 1,
                                 text=cm.astype(int), texttemplate="%{text}"), row=1, col=col)
        fig.update_xaxes(title_text="predicted", row=1, col=col)
        fig.update_yaxes(title_text="true" if col == 1 else None, autorange="reversed", row=1, col=col)
    fig.update_layout(title="m04 confusion matrices on the test range (colour: share of the true class)", height=520)
    figs = {"confusion": fig}
    if hasattr(model, "tree_"):
        imp = pd.Series(model.tree_.feature_importances_, index=model.feature_names_).sort_values()
        imp = imp[imp > 0]
        figs["feature_importance"] = go.Figure(go.Bar(x=imp.values, y=imp.index, orientation="h")).update_layout(
            title="m04 tree: impurity-based feature importance", xaxis_title="importance")
    f1s = {name: cause_scores(yt, pred) for name, pred in predictions.items()}
    bar = go.Figure([go.Bar(x=labels, y=[s.get(f"f1_{c}", 0.0) for c in labels], name=name) for name, s in f1s.items()])
    figs["f1_by_cause"] = bar.update_layout(title="m04 F1 per cause (test range)", yaxis_range=[0, 1.05], barmode="group")
    return figs


# --------------------------------------------------------------------------- serving

#: how the inference engine serves m04: the columns of the reading's feature row
SERVING = ServingAdapter(score=columns_scorer(M04_INPUT_COLUMNS), outputs=("cause",), text_outputs=frozenset({"cause"}))
