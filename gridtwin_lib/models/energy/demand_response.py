"""m12 demand response: KMeans on normalised daily load profiles; archetypes ordered by their
share of energy in the peak window, each with its flexible kWh in that window. Baseline
:class:`CalendarGrouping`. Units: kW, kWh; hours are local clock hours.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from ...errors import InputError
from ..base import Baseline, Dataset, GridModel, ModelSpec
from .power_flow_optimization import HOURS

PROFILE_COLUMNS = tuple(f"h{h:02d}" for h in range(HOURS))
CALENDAR_COLUMNS = ("weekday", "month")


def _profiles(X, what: str) -> np.ndarray:
    if not isinstance(X, pd.DataFrame):
        raise InputError(f"{what}: X must be a DataFrame with columns {PROFILE_COLUMNS[0]}..{PROFILE_COLUMNS[-1]} [kW]")
    missing = [c for c in PROFILE_COLUMNS if c not in X.columns]
    if missing:
        raise InputError(f"{what}: X lacks hourly columns {missing[:3]}...; one row per day, h00..h23 = mean kW of each local hour")
    P = X[list(PROFILE_COLUMNS)].to_numpy(float)
    if not np.isfinite(P).all() or (P < 0).any():
        raise InputError(f"{what}: daily profiles must be complete and >= 0 kW")
    return P


def _shape(P: np.ndarray) -> np.ndarray:
    """Normalised profile: each hour's share of the day's energy (rows sum to 1)."""
    return P / np.maximum(P.sum(axis=1, keepdims=True), 1e-9)


def _archetype_table(P: np.ndarray, labels: np.ndarray, peak: np.ndarray) -> pd.DataFrame:
    """Per label: days, mean daily kWh, peak share, flexible kWh in the peak window.

    Flexible kWh = Σ over peak hours of max(0, P_h - mean off-peak P) x 1 h on the archetype's mean
    profile [kW]: the energy that would have to move out of the peak window to flatten it to
    the archetype's off-peak level.
    """
    rows = []
    for lab in np.unique(labels):
        mean = P[labels == lab].mean(axis=0)
        share = float(mean[peak].sum() / max(mean.sum(), 1e-9))
        flex = float(np.clip(mean[peak] - mean[~peak].mean(), 0, None).sum())
        rows.append({"label": lab, "n_days": int((labels == lab).sum()), "daily_kwh": float(mean.sum()),
                     "peak_share": share, "flexible_kwh": flex, "profile_kw": mean})
    return pd.DataFrame(rows)


def _peak_mask(peak_hours) -> np.ndarray:
    a, b = int(peak_hours[0]), int(peak_hours[1])
    if not (0 <= a < 24 and 0 < b <= 24 and a != b):
        raise InputError(f"m12: peak_hours must be (start, end) local hours, e.g. (17, 21) (got {peak_hours})")
    h = np.arange(HOURS)
    return (h >= a) & (h < b) if a < b else (h >= a) | (h < b)


def _mean_pairwise_ari(labelings: list[np.ndarray]) -> float:
    pairs = list(itertools.combinations(range(len(labelings)), 2))
    if not pairs:
        return float("nan")
    return float(np.mean([adjusted_rand_score(labelings[i], labelings[j]) for i, j in pairs]))


def _dr_frame(index, archetype, table: pd.DataFrame, stability: float) -> pd.DataFrame:
    by = table.set_index("archetype") if len(table) else None
    share = by["peak_share"].reindex(archetype).to_numpy() if by is not None else np.full(len(archetype), np.nan)
    flex = by["flexible_kwh"].reindex(archetype).to_numpy() if by is not None else np.full(len(archetype), np.nan)
    return pd.DataFrame({"archetype": archetype.astype(int), "peak_share": share, "flexible_kwh": flex,
                         "bootstrap_ari": np.full(len(archetype), stability)}, index=index)


class DemandResponse(GridModel):
    """Load archetypes: KMeans on normalised daily profiles, ordered by peak share.

    X: one row per (customer, day) with ``h00..h23`` = mean demand of each local hour [kW]
    (``weekday``, ``month`` are ignored here; the calendar baseline uses them). Profiles are
    divided by their daily energy, so archetypes are about *when* energy is used, not how much.
    Archetype 0 has the largest share of its energy in ``peak_hours`` (local, [start, end)).
    ``predict`` returns per row: ``archetype``, its ``peak_share`` [1] and ``flexible_kwh``
    [kWh/day in the peak window, see :func:`_archetype_table`], and ``bootstrap_ari`` [1]: the
    mean ARI between ``n_bootstrap`` refits on resampled training days, labelling the rows given.

    Parameters
    ----------
    n_clusters : int
        Number of archetypes.
    peak_hours : tuple of int
        Local hours [h] of the evening peak, start inclusive, end exclusive.
    n_bootstrap : int
        Bootstrap refits for the stability score.
    n_init, random_state : int
        Passed to :class:`sklearn.cluster.KMeans`.

    Attributes
    ----------
    centers_ : ndarray
        Cluster centres (normalised 24-h profiles, 1).
    archetypes_ : DataFrame
        One row per archetype ordered by peak share: mean profile [kW], peak share (1).
    bootstrap_centers_ : list of ndarray
        Centres of the bootstrap refits.
    """

    spec = ModelSpec(
        model_id="m12_demand_response",
        module="energy",
        algorithm="KMeans on normalised daily load profiles",
        baseline="calendar grouping (weekday/weekend x season)",
        target="load archetypes ordered by peak share, flexible kWh in the peak window; judged by recovery of the twin's customer types",
        primary_metric="ari",
        greater_is_better=True,
        output_units={"archetype": "1", "peak_share": "1", "flexible_kwh": "kWh", "bootstrap_ari": "1"},
        secondary_metrics=("bootstrap_stability", "n_archetypes", "n_labelled"),
    )

    def __init__(self, n_clusters: int = 4, peak_hours: tuple[int, int] = (17, 21), n_bootstrap: int = 10,
                 n_init: int = 10, random_state: int = 0):
        self.n_clusters = n_clusters
        self.peak_hours = peak_hours
        self.n_bootstrap = n_bootstrap
        self.n_init = n_init
        self.random_state = random_state

    def fit(self, X, y=None):
        P = _profiles(X, "m12 fit")
        if len(P) < self.n_clusters:
            raise InputError(f"m12: {len(P)} training days for {self.n_clusters} clusters; simulate more days or devices")
        S = _shape(P)
        self.peak_mask_ = _peak_mask(self.peak_hours)
        km = KMeans(self.n_clusters, n_init=self.n_init, random_state=self.random_state).fit(S)
        table = _archetype_table(P, km.labels_, self.peak_mask_)
        order = table.sort_values("peak_share", ascending=False)["label"].to_numpy()
        self.relabel_ = np.empty(self.n_clusters, int)
        self.relabel_[order] = np.arange(len(order))
        self.centers_ = km.cluster_centers_[order]
        self.archetypes_ = table.assign(archetype=self.relabel_[table["label"]]).sort_values("archetype").drop(columns="label").reset_index(drop=True)
        rng = np.random.default_rng(self.random_state)
        self.bootstrap_centers_ = []
        for b in range(self.n_bootstrap):
            idx = rng.integers(0, len(S), len(S))
            kb = KMeans(self.n_clusters, n_init=self.n_init, random_state=self.random_state + 1 + b).fit(S[idx])
            self.bootstrap_centers_.append(kb.cluster_centers_)
        return self

    @staticmethod
    def _nearest(S: np.ndarray, centers: np.ndarray) -> np.ndarray:
        return ((S[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)

    def predict(self, X):
        S = _shape(_profiles(X, "m12 predict"))
        archetype = self._nearest(S, self.centers_)
        stability = _mean_pairwise_ari([self._nearest(S, c) for c in self.bootstrap_centers_])
        return _dr_frame(X.index, archetype, self.archetypes_, stability)

    def baseline(self):
        return CalendarGrouping(peak_hours=self.peak_hours)

    def evaluate(self, y_true, y_pred, meta=None) -> dict[str, float]:
        arch = np.asarray(y_pred["archetype"] if isinstance(y_pred, pd.DataFrame) else y_pred).ravel()
        stab = float(np.nanmean(y_pred["bootstrap_ari"])) if isinstance(y_pred, pd.DataFrame) else float("nan")
        labelled = 0 if y_true is None else int(pd.Series(np.asarray(y_true, dtype=object).ravel()).notna().sum())
        if labelled:
            yt = pd.Series(np.asarray(y_true, dtype=object).ravel())
            ok = yt.notna().to_numpy()
            ari = float(adjusted_rand_score(yt[ok].astype(str), arch[ok]))
        else:  # the twin records no customer type: ARI cannot be computed, and is not invented
            ari = float("nan")
        return {"ari": ari, "bootstrap_stability": stab, "n_archetypes": float(len(np.unique(arch))), "n_labelled": float(labelled)}

    def figures(self, dataset: Dataset, predictions: dict[str, Any]) -> dict[str, Any]:
        import plotly.graph_objects as go

        figs = {}
        if hasattr(self, "archetypes_"):
            prof = go.Figure()
            for row in self.archetypes_.itertuples():
                prof.add_trace(go.Scatter(x=list(range(HOURS)), y=row.profile_kw,
                                          name=f"A{row.archetype}: peak share {row.peak_share:.2f}, flex {row.flexible_kwh:.2f} kWh, {row.n_days} days"))
            a, b = self.peak_hours
            prof.add_vrect(x0=a - 0.5, x1=b - 0.5, fillcolor="red", opacity=0.08, line_width=0)
            prof.update_layout(title="m12: archetype mean profiles (training days; shaded = peak window)",
                               xaxis_title="local hour", yaxis_title="mean demand [kW]")
            figs["archetype_profiles"] = prof
        pred = predictions.get("model")
        if isinstance(pred, pd.DataFrame):
            if dataset.y_test is not None and pd.Series(np.asarray(dataset.y_test, dtype=object)).notna().any():
                other, title = pd.Series(np.asarray(dataset.y_test, dtype=object), name="customer type"), "customer type"
            else:
                base = predictions.get("baseline")
                other, title = pd.Series(np.asarray(base["archetype"]), name="calendar group"), "calendar group (no customer types in truth)"
            tab = pd.crosstab(pd.Series(pred["archetype"].to_numpy(), name="archetype"), other.reset_index(drop=True))
            figs["archetype_vs_truth"] = go.Figure(go.Heatmap(z=tab.to_numpy(), x=[str(c) for c in tab.columns],
                                                              y=[f"A{i}" for i in tab.index], colorscale="Blues"))
            figs["archetype_vs_truth"].update_layout(title=f"m12: test days, archetype vs {title}")
        return figs


def _season(month: np.ndarray) -> np.ndarray:
    """0 = Dec-Feb, 1 = Mar-May, 2 = Jun-Aug, 3 = Sep-Nov (a grouping; hemisphere does not matter)."""
    return (np.asarray(month, int) % 12) // 3


class CalendarGrouping(Baseline):
    """Baseline of m12: group days by (weekday/weekend, season), ordered by the group's peak share.

    Needs ``weekday`` (0 = Monday) and ``month`` columns. Deterministic, so its bootstrap ARI is 1.
    """

    name = "calendar grouping (weekday/weekend x season)"

    @classmethod
    def for_model(cls, model):
        return cls(peak_hours=model.peak_hours)

    def __init__(self, peak_hours: tuple[int, int] = (17, 21)):
        self.peak_hours = peak_hours

    @staticmethod
    def _group(X) -> np.ndarray:
        missing = [c for c in CALENDAR_COLUMNS if c not in X.columns]
        if missing:
            raise InputError(f"m12 calendar baseline: X lacks {missing}")
        return 2 * _season(X["month"].to_numpy()) + (X["weekday"].to_numpy(int) >= 5)

    def fit(self, X, y=None):
        P = _profiles(X, "m12 calendar fit")
        g = self._group(X)
        table = _archetype_table(P, g, _peak_mask(self.peak_hours)).sort_values("peak_share", ascending=False)
        self.order_ = {int(lab): k for k, lab in enumerate(table["label"])}
        self.archetypes_ = table.assign(archetype=[self.order_[int(v)] for v in table["label"]]).drop(columns="label").reset_index(drop=True)
        return self

    def predict(self, X):
        g = self._group(X)
        nxt = len(self.order_)
        arch = np.array([self.order_.get(int(v), nxt + int(v)) for v in g])  # unseen groups get their own label
        return _dr_frame(X.index, arch, self.archetypes_, 1.0)


class RawProfileKMeans(Baseline):
    """Ladder baseline of m12: plain KMeans on the raw daily profile [kW] (not normalised by the
    day's energy), archetypes ordered by peak share like the model's; ``bootstrap_ari`` from
    ``n_bootstrap`` refits on resampled training days, as the model's.

    Parameters
    ----------
    n_clusters, peak_hours, n_bootstrap, n_init, random_state
        As :class:`DemandResponse` (``for_model`` copies them from the model).
    """

    name = "KMeans on the raw daily profile (kW)"

    def __init__(self, n_clusters: int = 4, peak_hours: tuple[int, int] = (17, 21), n_bootstrap: int = 10,
                 n_init: int = 10, random_state: int = 0):
        self.n_clusters = n_clusters
        self.peak_hours = peak_hours
        self.n_bootstrap = n_bootstrap
        self.n_init = n_init
        self.random_state = random_state

    @classmethod
    def for_model(cls, model):
        return cls(n_clusters=model.n_clusters, peak_hours=model.peak_hours, n_bootstrap=model.n_bootstrap,
                   n_init=model.n_init, random_state=model.random_state)

    def fit(self, X, y=None):
        P = _profiles(X, "m12 raw-profile KMeans fit")
        if len(P) < self.n_clusters:
            raise InputError(f"m12 raw-profile KMeans: {len(P)} training days for {self.n_clusters} clusters; simulate more")
        km = KMeans(self.n_clusters, n_init=self.n_init, random_state=self.random_state).fit(P)
        table = _archetype_table(P, km.labels_, _peak_mask(self.peak_hours))
        order = table.sort_values("peak_share", ascending=False)["label"].to_numpy()
        relabel = np.empty(self.n_clusters, int)
        relabel[order] = np.arange(len(order))
        self.centers_ = km.cluster_centers_[order]
        self.archetypes_ = table.assign(archetype=relabel[table["label"]]).sort_values("archetype").drop(columns="label").reset_index(drop=True)
        rng = np.random.default_rng(self.random_state)
        self.bootstrap_centers_ = [
            KMeans(self.n_clusters, n_init=self.n_init, random_state=self.random_state + 1 + b).fit(P[rng.integers(0, len(P), len(P))]).cluster_centers_
            for b in range(self.n_bootstrap)]
        return self

    def predict(self, X):
        P = _profiles(X, "m12 raw-profile KMeans predict")
        archetype = DemandResponse._nearest(P, self.centers_)
        stability = _mean_pairwise_ari([DemandResponse._nearest(P, c) for c in self.bootstrap_centers_])
        return _dr_frame(X.index, archetype, self.archetypes_, stability)


class PeakShareBands(Baseline):
    """Ladder baseline of m12: the rule a tariff analyst applies: band each day by its share of
    energy in the peak window [1], at the training days' quantiles (``n_clusters`` equal-count
    bands; band 0 = largest peak share). Deterministic, so its bootstrap ARI is 1."""

    name = "peak-share bands (quantiles of the day's energy share in the peak window)"

    def __init__(self, n_clusters: int = 4, peak_hours: tuple[int, int] = (17, 21)):
        self.n_clusters = n_clusters
        self.peak_hours = peak_hours

    @classmethod
    def for_model(cls, model):
        return cls(n_clusters=model.n_clusters, peak_hours=model.peak_hours)

    def _share(self, P: np.ndarray) -> np.ndarray:
        return _shape(P)[:, _peak_mask(self.peak_hours)].sum(axis=1)

    def _band(self, share: np.ndarray) -> np.ndarray:
        return (self.n_clusters - 1 - np.searchsorted(self.edges_, share, side="right")).astype(int)

    def fit(self, X, y=None):
        P = _profiles(X, "m12 peak-share bands fit")
        share = self._share(P)
        self.edges_ = np.quantile(share, np.linspace(0, 1, self.n_clusters + 1)[1:-1])
        self.archetypes_ = _archetype_table(P, self._band(share), _peak_mask(self.peak_hours)).rename(columns={"label": "archetype"})
        return self

    def predict(self, X):
        P = _profiles(X, "m12 peak-share bands predict")
        return _dr_frame(X.index, self._band(self._share(P)), self.archetypes_, 1.0)
