"""What following the decision models' advice would have changed, day by day.

For each held-out day of every registry model with an ``advice`` function
(:attr:`gridtwin_lib.models.registry.ModelEntry.advice`), the twin is re-run with the action
applied: no action, the baseline rule's action and the model's advice (plus the optimiser's
for reference). The outcomes are physical, not predicted (the model's module says how, e.g. an
AC power flow, the three-phase feeder model or the battery re-simulation); each is an
:class:`~gridtwin_lib.models.base.AdviceEffects`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from .models import registry
from .models.base import AdviceEffects


def effects(results: Mapping[str, Any]) -> dict[str, AdviceEffects]:
    """The advice effects of every trained decision model.

    Parameters
    ----------
    results : model id -> a trained result with ``model``, ``baseline`` and ``dataset``
        (:class:`gridtwin_lib.notebook.TrainResult`); ids without an advice function are skipped.

    Returns
    -------
    model id -> its :class:`~gridtwin_lib.models.base.AdviceEffects`, in registry order.
    """
    out = {}
    for entry in registry.entries():
        fn = entry.advice_effects()
        if fn is not None and entry.id in results:
            r = results[entry.id]
            out[entry.id] = fn(r.model, r.baseline, r.dataset)
    return out


def summary(found: Mapping[str, AdviceEffects]) -> pd.DataFrame:
    """One line per decision model: the outcome with no action, the rule, the advice (and the
    optimiser), averaged over its held-out days, and advice vs rule (< 0: the advice did better,
    every outcome being a cost)."""
    rows = []
    for model_id, e in found.items():
        if not len(e.frame):
            continue
        col = {k: e.pattern.format(n) for k, n in zip(("no_action", "rule", "advice", "optimiser"), e.names)}
        rows.append({"model": f"{model_id}: {e.label}", "outcome": e.outcome, "days": len(e.frame),
                     **{k: e.frame[c].mean() for k, c in col.items()}})
    out = pd.DataFrame(rows)
    if len(out):
        out["advice_minus_rule"] = out["advice"] - out["rule"]
    return out


def figure(found: Mapping[str, AdviceEffects]):
    """Day-by-day outcomes of rule vs advice (and no action / optimiser), one panel per model."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [(model_id, e) for model_id, e in found.items() if len(e.frame)]
    fig = make_subplots(rows=max(1, len(panels)), cols=1, subplot_titles=[f"{m}: {e.outcome}" for m, e in panels],
                        vertical_spacing=0.12)
    colours = ("#999999", "#ef8a62", "#2166ac", "#1b7837")  # no action, rule, advice, optimiser
    for r, (_, e) in enumerate(panels, start=1):
        frame = e.frame
        x = frame["day"].astype(str) + (" " + frame["feeder"].astype(str) if "feeder" in frame else "")
        for k, name in enumerate(e.names):
            role = ("no_action", "rule", "advice", "optimiser")[k]
            fig.add_trace(go.Scatter(x=x, y=frame[e.pattern.format(name)], name=name, mode="lines+markers",
                                     line={"color": colours[k]}, legendgroup=role, showlegend=r == 1), row=r, col=1)
    fig.update_layout(height=300 * max(1, len(panels)), title="Following the advice vs the baseline rule, re-simulated on held-out days")
    return fig


__all__ = ["effects", "summary", "figure"]
