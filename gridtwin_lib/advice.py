"""What following the decision models' advice would have changed, day by day.

For each held-out day of m13, m14 and m16 the twin is re-run three times with the
action applied: no action, the baseline rule's action and the model's advice (plus the
optimiser's for reference). The outcomes are physical, not predicted:

* m13: the feeder's AC power flow (pandapower, :func:`~gridtwin_lib.models.decision_surrogates.power_flow`)
  at each hourly state with the var set-point applied -> energy lost [kWh/day] and buses
  outside 0.90-1.10 pu;
* m14: the three-phase feeder model on the day's *realised* loads with the phase move
  applied (:func:`~gridtwin_lib.models.decision.evaluate_moves`) -> mean voltage unbalance
  factor [%];
* m16: the battery set-points executed on the *actual* day's load and PV with m11's
  re-simulation (:func:`~gridtwin_lib.models.decision_surrogates.execute`) -> cost [€/day].
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .models.base import Dataset
from .models.decision.load_balancing import PHASES, _n_slots, candidate_moves, evaluate_moves, unpack_row
from .models.decision.load_balancing import HOURS
from .models.decision.reactive_power_compensation import V_LIMITS_PU, _violation, power_flow
from .models.decision.optimal_dispatch import execute
from .models.energy.power_flow_optimization import day_cost


def m13_effects(model, baseline, dataset: Dataset) -> pd.DataFrame:
    """Per held-out day: feeder losses [kWh] with no var support, the PF-0.95 rule, m13's
    advice and the optimiser; hours with a bus outside the voltage limits under each."""
    meta, y = dataset.meta_test.reset_index(drop=True), dataset.y_test.reset_index(drop=True)
    advice = np.asarray(model.predict(dataset.X_test)["q_setpoint_kvar"], float)
    rule = np.asarray(baseline.predict(dataset.X_test)["q_setpoint_kvar"], float)
    limits = (float(meta["v_min_pu"].iloc[0]), float(meta["v_max_pu"].iloc[0])) if "v_min_pu" in meta else V_LIMITS_PU
    step_h = _step_hours(meta["ts"])
    rows = []
    for k in range(len(meta)):
        state = (float(meta.at[k, "local_hour"]), float(meta.at[k, "load_kw"]), float(meta.at[k, "pv_kw"]))
        row = {"day": pd.Timestamp(meta.at[k, "ts"]).date()}
        for name, q in (("no_action", 0.0), ("rule", rule[k]), ("advice", advice[k]), ("optimiser", float(y.at[k, "q_opt_kvar"]))):
            losses, vmin, vmax = power_flow(*state, q)
            row[f"losses_{name}_kwh"] = losses * step_h
            row[f"violation_h_{name}"] = float(_violation(vmin, vmax, limits) > 1e-9) * step_h
        rows.append(row)
    return pd.DataFrame(rows).groupby("day", as_index=False).sum()


def m14_effects(model, baseline, dataset: Dataset) -> pd.DataFrame:
    """Per held-out (day, feeder): mean VUF [%] on the realised loads before any move, after
    the largest-load rule's move and after m14's advice, and the best single move's."""
    meta, y = dataset.meta_test.reset_index(drop=True), dataset.y_test.reset_index(drop=True)
    n = _n_slots(meta)
    advice, rule = model.predict(dataset.X_test), baseline.predict(dataset.X_test)
    feeder = model._feeder()
    rows = []
    for i in range(len(meta)):
        ids, phases, pos, loads = unpack_row(pd.concat([meta.iloc[i], y.iloc[i]]), n)
        table = evaluate_moves(loads, phases, pos, candidate_moves(phases), **feeder)
        table["customer"] = [ids[k] for k in table["customer_index"]]

        def after(pick) -> tuple[float, str]:
            sel = table[(table["customer"] == pick["customer"]) & (table["to_phase"] == PHASES.index(pick["to_phase"]))]
            return float(sel["vuf_after_pct"].iloc[0]), f"{pick['customer']} {pick['from_phase']}→{pick['to_phase']}"

        vuf_rule, move_rule = after(rule.iloc[i])
        vuf_adv, move_adv = after(advice.iloc[i])
        rows.append({"day": meta.at[i, "date"], "feeder": meta.at[i, "feeder"], "vuf_no_action_pct": float(table["vuf_before_pct"].iloc[0]),
                     "vuf_rule_pct": vuf_rule, "vuf_advice_pct": vuf_adv, "vuf_best_pct": float(table["vuf_after_pct"].min()),
                     "rule_move": move_rule, "advice_move": move_adv})
    return pd.DataFrame(rows)


def m16_effects(model, baseline, dataset: Dataset) -> pd.DataFrame:
    """Per held-out day: cost [€] of the actual day with an idle battery, the rule's
    set-points, m16's advice and the LP's, each executed on the actual load and PV."""
    meta = dataset.meta_test.reset_index(drop=True)
    rs = lambda c: meta[c].to_numpy(float).reshape(-1, HOURS)  # noqa: E731
    load, pv, price = rs("actual_load_kw"), rs("actual_pv_kw"), rs("price_per_kwh")
    site = model._site()
    plans = {
        "idle": np.zeros_like(load),
        "rule": np.asarray(baseline.predict(dataset.X_test)["battery_kw"], float).reshape(-1, HOURS),
        "advice": np.asarray(model.predict(dataset.X_test)["battery_kw"], float).reshape(-1, HOURS),
        "lp": np.asarray(dataset.y_test["battery_kw"], float).reshape(-1, HOURS),
    }
    days = pd.to_datetime(meta["date"] if "date" in meta else meta["ts"]).dt.date.to_numpy().reshape(-1, HOURS)[:, 0]
    out = pd.DataFrame({"day": days})
    for name, b in plans.items():
        r = execute(site, b, load, pv, price)
        out[f"cost_{name}_eur"] = day_cost(site, r["grid_import_kw"], r["soc_kwh"][:, -1], price)
    return out


def summary(m13: pd.DataFrame | None = None, m14: pd.DataFrame | None = None, m16: pd.DataFrame | None = None) -> pd.DataFrame:
    """One line per decision model: the outcome with no action, the rule, the advice (and the
    optimiser), summed or averaged over its held-out days, and advice vs rule."""
    rows = []
    if m13 is not None and len(m13):
        rows.append({"model": "m13 var set-point", "outcome": "feeder losses [kWh per day]", "days": len(m13),
                     "no_action": m13["losses_no_action_kwh"].mean(), "rule": m13["losses_rule_kwh"].mean(),
                     "advice": m13["losses_advice_kwh"].mean(), "optimiser": m13["losses_optimiser_kwh"].mean()})
    if m14 is not None and len(m14):
        rows.append({"model": "m14 phase move", "outcome": "mean VUF on realised loads [%]", "days": len(m14),
                     "no_action": m14["vuf_no_action_pct"].mean(), "rule": m14["vuf_rule_pct"].mean(),
                     "advice": m14["vuf_advice_pct"].mean(), "optimiser": m14["vuf_best_pct"].mean()})
    if m16 is not None and len(m16):
        rows.append({"model": "m16 battery dispatch", "outcome": "cost of the actual day [€]", "days": len(m16),
                     "no_action": m16["cost_idle_eur"].mean(), "rule": m16["cost_rule_eur"].mean(),
                     "advice": m16["cost_advice_eur"].mean(), "optimiser": m16["cost_lp_eur"].mean()})
    out = pd.DataFrame(rows)
    if len(out):
        out["advice_minus_rule"] = out["advice"] - out["rule"]  # < 0: following the advice did better (all three are costs)
    return out


def figure(m13: pd.DataFrame | None, m14: pd.DataFrame | None, m16: pd.DataFrame | None):
    """Day-by-day outcomes of rule vs advice (and no action / optimiser) for the three models."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [(m13, "m13: feeder losses [kWh/day]", "losses_{}_kwh", ("no_action", "rule", "advice", "optimiser")),
              (m14, "m14: VUF after the move [%]", "vuf_{}_pct", ("no_action", "rule", "advice", "best")),
              (m16, "m16: cost of the actual day [€]", "cost_{}_eur", ("idle", "rule", "advice", "lp"))]
    panels = [p for p in panels if p[0] is not None and len(p[0])]
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=[p[1] for p in panels], vertical_spacing=0.12)
    colours = {"no_action": "#999999", "idle": "#999999", "rule": "#ef8a62", "advice": "#2166ac", "optimiser": "#1b7837",
               "best": "#1b7837", "lp": "#1b7837"}
    for r, (frame, _, pattern, names) in enumerate(panels, start=1):
        x = frame["day"].astype(str) + (" " + frame["feeder"].astype(str) if "feeder" in frame else "")
        for name in names:
            fig.add_trace(go.Scatter(x=x, y=frame[pattern.format(name)], name=name, mode="lines+markers",
                                     line={"color": colours[name]}, legendgroup=name, showlegend=r == 1), row=r, col=1)
    fig.update_layout(height=300 * len(panels), title="Following the advice vs the baseline rule, re-simulated on held-out days")
    return fig


def _step_hours(ts: pd.Series) -> float:
    t = pd.to_datetime(ts).sort_values().drop_duplicates()
    return float(t.diff().median() / pd.Timedelta(hours=1)) if len(t) > 1 else 1.0


__all__ = ["m13_effects", "m14_effects", "m16_effects", "summary", "figure"]
