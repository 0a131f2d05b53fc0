"""The scheduled operations report: the most recent day through every champion.

:func:`daily` scores a stored day (:func:`gridtwin_lib.daily.score_day`) and shapes
what an operator reads each morning: alerts by severity, tomorrow's load forecast and
dispatch plan, assets ranked by failure risk, the EN 50160 summary and what could not be
scored. ``notebooks/30_daily_report.ipynb`` (pipeline ``daily``) displays it and
:meth:`DailyReport.save` keeps its tables next to the HTML report.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from . import alerts as alerts_lib
from .daily import DayScores, score_day
from .fileio import write_text
from .inference import Engine
from .models import registry


def _id(role: str) -> str:
    """Id of the registry model of ``role`` (a column prefix; a missing role matches no column)."""
    entry = registry.by_role(role)
    return entry.id if entry else f"<no {role} model>"


def _short(role: str) -> str:
    """The short id (``mNN``) of the model of ``role``, the prefix of its keys in ``daily.json``."""
    return _id(role).split("_")[0]


@dataclass
class DailyReport:
    """The daily report of a scored day; ``store`` and ``alert_rules`` (when given) let it judge
    the day's alerts against the twin's truth (:meth:`alert_quality`)."""

    scores: DayScores
    store: Any = None
    alert_rules: Any = None
    _quality: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def day(self) -> date:
        return self.scores.day

    # ------------------------------------------------------------------ tables
    def headline(self) -> dict[str, Any]:
        s = self.scores
        n = s.readings.height
        ok = int((s.readings["status"] == "ok").sum()) if n else 0
        return {
            "day": s.day.isoformat(), "readings": n, "devices": int(s.readings["device_id"].n_unique()) if n else 0,
            "readings_fully_scored": ok, "alerts": alerts_lib.counts(s.alerts) if s.alerts is not None else {},
            "assets": 0 if s.assets is None else s.assets.height,
            "pv_devices": 0 if s.pv is None else s.pv.select("source", "device_id").n_unique(),
            "inverters": 0 if s.inverters is None else s.inverters.height, "models_not_served": sorted(s.missing),
            "what_serves": s.serving or [],
        }

    def alerts(self) -> pl.DataFrame:
        return self.scores.alerts if self.scores.alerts is not None else pl.DataFrame(schema=alerts_lib.ALERT_SCHEMA)

    def alerts_by_severity(self) -> pd.DataFrame:
        a = self.alerts()
        rows = []
        for sev in alerts_lib.SEVERITIES:
            part = a.filter(pl.col("severity") == sev)
            rows.append({"severity": sev, "alerts": part.height, "open": int((part["status"] == "open").sum()) if part.height else 0,
                         "raised_by": ", ".join(sorted(set(part["raised_by"]))) if part.height else ""})
        return pd.DataFrame(rows)

    def alert_quality(self) -> pd.DataFrame:
        """Each rule's alerts of the day against the twin's truth: precision, recall, median lead
        time [s] and alerts per device-day, per severity (:mod:`gridtwin_lib.alert_quality`).
        Empty without a store, alerts or any truth (measured sources have none)."""
        from . import alert_quality as aq

        s = self.scores
        if self._quality is None:
            self._quality = pd.DataFrame()
            if self.store is not None and s.alerts is not None and s.readings.height:
                rules = self.alert_rules if isinstance(self.alert_rules, alerts_lib.RuleSet) else alerts_lib.load_rules(self.alert_rules)
                table, events = aq.judge_scores(self.store, s.readings, rules, assets=s.all_assets, alerts=s.alerts, pv=s.pv)
                if sum(e.height for e in events.values()):
                    self._quality = table.to_pandas()
        return self._quality

    def assets_ranked(self, top: int = 20) -> pd.DataFrame:
        """Assets by failure probability (7 days), with the overload model's class and probability."""
        a = self.scores.assets
        fail, over = _id("asset_failure"), _id("asset_overload")
        col = f"{fail}.p_fail_7d"
        if a is None or col not in a.columns:
            return pd.DataFrame()
        keep = [c for c in ("source", "device_id", "ts", col, f"{fail}.alarm", f"{over}.load_class", f"{over}.p_gt100")
                if c in a.columns]
        return a.select(keep).sort(col, descending=True).head(top).to_pandas()

    def pv_fleet(self) -> pd.DataFrame:
        """Each PV device of the day: its health index and breakdown [0-100] and its fault flags (readings flagged
        by the anomaly model), least healthy first."""
        from .inference.solar_assets import COMPONENTS

        pv = self.scores.pv
        if pv is None or not pv.height:
            return pd.DataFrame()
        health, anomaly = _id("pv_health"), _id("pv_anomaly")
        agg = []
        if f"{health}.health_index" in pv.columns:
            agg += [pl.col(f"{health}.health_index").drop_nulls().last().alias("health_index"),
                    *[pl.col(f"{health}.component_{c}").drop_nulls().last().alias(c) for c in COMPONENTS]]
        if f"{anomaly}.flag" in pv.columns:
            agg += [pl.col(f"{anomaly}.flag").fill_null(False).sum().alias("flagged_readings"),
                    pl.col(f"{anomaly}.flag").is_not_null().sum().alias("readings")]
        if not agg:
            return pd.DataFrame()
        out = pv.sort("ts").group_by("source", "device_id").agg(agg)
        order = "health_index" if "health_index" in out.columns else "flagged_readings"
        return out.sort(order, descending=order != "health_index", nulls_last=True).to_pandas()

    def inverters_ranked(self, top: int = 20) -> pd.DataFrame:
        """Inverters by the 10th percentile of their remaining life [days] (1 chance in 10 of failing sooner), with the
        median and the 90th percentile."""
        inv, rul = self.scores.inverters, _id("asset_rul")
        if inv is None or f"{rul}.p10_days" not in inv.columns:
            return pd.DataFrame()
        keep = ["source", "device_id", "ts", *[f"{rul}.{c}" for c in ("p10_days", "median_days", "p90_days")]]
        return inv.select(keep).sort(f"{rul}.p10_days").head(top).to_pandas()

    def forecast_and_plan(self) -> pd.DataFrame:
        """Tomorrow hour by hour: the load forecast, PV, price and the LP schedule."""
        fc, plan = self.scores.forecast, self.scores.plan
        if fc is None:
            return pd.DataFrame()
        out = fc.copy()
        if plan:
            out["pv_kw"], out["price_per_kwh"] = plan["pv_kw"], plan["price_per_kwh"]
            lp = plan[_id("day_plan")]
            if lp.status == "ok":
                for c in ("grid_import_kw", "battery_charge_kw", "battery_discharge_kw", "soc_kwh"):
                    out[c] = lp.result[c].to_numpy()
        return out

    def plan_summary(self) -> dict[str, Any]:
        plan = self.scores.plan or {}
        lp = plan.get(_id("day_plan"))
        lp_key, sp_key = _short("day_plan"), _short("dispatch")
        out: dict[str, Any] = {}
        if lp is not None:
            out[f"{lp_key}_status"] = lp.status
            out[f"{lp_key}_solve_s"] = round(lp.seconds, 4)
            if lp.status == "ok":
                t = self.forecast_and_plan()
                out["import_kwh"] = float(np.clip(t["grid_import_kw"], 0, None).sum())
                out["cost_eur"] = float((np.clip(t["grid_import_kw"], 0, None) * t["price_per_kwh"]).sum())
                out["peak_import_kw"] = float(t["grid_import_kw"].max())
            else:
                out[f"{lp_key}_message"] = lp.message
        setpoint = plan.get(_id("dispatch"))
        if setpoint:
            out[f"{sp_key}_first_hour"] = setpoint
            out[f"{sp_key}_reference_battery_kw"] = plan.get(f"{sp_key}_reference_battery_kw")
        return out

    def pq(self) -> pd.DataFrame:
        return self.scores.pq_summary.to_pandas() if self.scores.pq_summary.height else pd.DataFrame()

    def coverage(self) -> pd.DataFrame:
        """Per model: readings scored and the errors that kept the others from it."""
        r, e = self.scores.readings, self.scores.errors
        rows = []
        for col in [c for c in r.columns if "." in c]:
            model = col.split(".", 1)[0]
            if any(x["model_id"] == model for x in rows):
                continue
            errs = e.filter(pl.col("model_id") == model).group_by("code").len() if e.height else pl.DataFrame()
            rows.append({"model_id": model, "scored": int(r[col].is_not_null().sum()),
                         "not scored": ", ".join(f"{c}: {n}" for c, n in errs.iter_rows()) if errs.height else "",
                         "champion": "missing" if model in self.scores.missing else "yes"})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ figures
    def figures(self) -> dict[str, Any]:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        figs: dict[str, Any] = {}
        sev = self.alerts_by_severity()
        colours = {"CRITICAL": "#b2182b", "HIGH": "#ef8a62", "MEDIUM": "#fddbc7", "LOW": "#d1e5f0"}
        figs["alerts"] = go.Figure(go.Bar(x=sev["severity"], y=sev["alerts"], marker_color=[colours[s] for s in sev["severity"]]),
                                   layout=dict(title=f"Alerts on {self.day} by severity", yaxis_title="alerts", height=320))
        t = self.forecast_and_plan()
        if not t.empty:
            fig = make_subplots(rows=2, cols=1, shared_xaxes=True, subplot_titles=(f"Tomorrow: load forecast ({_short('day_ahead_load')}), PV and LP plan ({_short('day_plan')}) [kW]",
                                                                                   "Battery state of charge [kWh] and price [€/kWh]"),
                                specs=[[{}], [{"secondary_y": True}]])
            fig.add_scatter(x=t["hour"], y=t["load_kw"], name="load forecast", row=1, col=1)
            for c in ("pv_kw", "grid_import_kw"):
                if c in t:
                    fig.add_scatter(x=t["hour"], y=t[c], name=c.replace("_kw", ""), row=1, col=1)
            if "soc_kwh" in t:
                fig.add_scatter(x=t["hour"], y=t["soc_kwh"], name="SoC", row=2, col=1)
            if "price_per_kwh" in t:
                fig.add_scatter(x=t["hour"], y=t["price_per_kwh"], name="price", line_shape="hv", row=2, col=1, secondary_y=True)
            fig.update_layout(height=520)
            figs["plan"] = fig
        ranked = self.assets_ranked(15)
        if not ranked.empty:
            label = ranked["device_id"] + (" (" + ranked["source"].str.replace("sim:", "") + ")" if "source" in ranked else "")
            figs["assets"] = go.Figure(go.Bar(y=label[::-1], x=ranked[f"{_id('asset_failure')}.p_fail_7d"][::-1], orientation="h"),
                                       layout=dict(title=f"Assets by failure probability within 7 days ({_short('asset_failure')})", xaxis_title="probability",
                                                   height=420))
        return figs

    # ------------------------------------------------------------------ keeping it
    def save(self, out_dir: str | os.PathLike | None = None) -> Path | None:
        """Write the tables (CSV) and ``daily.json`` to ``out_dir`` (default: the pipeline's
        ``$GRIDTWIN_REPORT_DIR``; nothing is written outside a pipeline run without it)."""
        target = out_dir or os.environ.get("GRIDTWIN_REPORT_DIR")
        if not target:
            return None
        d = Path(target)
        d.mkdir(parents=True, exist_ok=True)
        self.alerts().write_csv(d / "alerts.csv")
        for name, frame in (("assets_ranked", self.assets_ranked(10_000)), ("pq_en50160", self.pq()),
                            ("forecast_plan", self.forecast_and_plan()), ("coverage", self.coverage()),
                            ("alert_quality", self.alert_quality()), ("pv_fleet", self.pv_fleet()),
                            ("inverters_ranked", self.inverters_ranked(10_000))):
            if not frame.empty:
                frame.to_csv(d / f"{name}.csv", index=False)
        doc = {**self.headline(), "plan": self.plan_summary(), "notes": self.scores.notes}
        write_text(d / "daily.json", json.dumps(doc, indent=2, default=str))
        return d


def daily(store=None, day: date | str | None = None, *, sources=None, engine: Engine | None = None, max_devices: int | None = None,
          alert_rules=None, progress: bool = True) -> DailyReport:
    """The daily operations report of ``day`` (default: the most recent day of ``sources``)."""
    from .store import Store

    store = store if store is not None else Store()
    rules = alerts_lib.load_rules(alert_rules) if not isinstance(alert_rules, alerts_lib.RuleSet) else alert_rules
    scores = score_day(store, day, engine=engine, sources=sources or None, progress=progress, max_devices=max_devices,
                       alert_rules=rules)
    return DailyReport(scores, store=store, alert_rules=rules)


__all__ = ["DailyReport", "daily"]
