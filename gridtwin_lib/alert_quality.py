"""Alerts judged like models: each rule's alerts matched against the twin's truth.

The operator sees alerts, not scores. On simulated sources the truth is known (truth tables
``events`` for the grid twins, ``failures`` for the asset fleets), so each alert rule gets the
figures a model gets:

* **precision**: the share of its alerts that a truth event explains;
* **recall**: the share of truth events (of the kinds the rule is meant to catch, on the devices
  and hours that were scored) that at least one of its alerts caught;
* **lead time**: event onset minus the first alert that caught it [s] (positive: warned ahead);
* **alerts per device-day**: what the rule costs the operator's attention, and the **share of
  device time in alarm** (an alert that never closes explains everything and tells nothing).

What a rule is meant to catch is configuration: its ``truth`` entry in the rules file
(:mod:`gridtwin_lib.alerts`) names the truth table, the event types and the matching window.
An alert is judged when it is raised: an alert first fired at ``first`` is **explained** by an
event ``[ts, end]`` of the right type on the same device when
``ts <= first + horizon_s + tolerance_s`` (the event starts within the rule's forecast horizon)
and ``end >= first - tolerance_s`` (it had not ended before the alert). An event is **caught**
when an alert is open over it: ``ts <= last + horizon_s`` and ``end >= first - tolerance_s``. :func:`tradeoff` sweeps a rule's threshold and gives the precision/recall curve that
the default thresholds are tuned on (on another day than the one they are reported on).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from .alerts import SEVERITIES, Level, Rule, RuleSet, TruthMatch, firings
from .errors import InputError
from .fileio import atomic_write

#: the columns of :func:`judge`'s result, one row per rule (and severity, when split)
QUALITY_COLUMNS = ("rule", "severity", "alerts", "explained", "precision", "events", "caught", "recall",
                   "median_lead_s", "alerts_per_device_day", "alarm_share", "device_days")


@dataclass(frozen=True)
class Coverage:
    """What was scored: the devices and the time range the alerts could have fired on.

    Parameters
    ----------
    devices : frame of ``source``, ``device_id``, ``start``, ``end`` (UTC) per scored device.
    min_span_s : a device counts at least this long in :attr:`device_days` [s].
    """

    devices: pl.DataFrame
    min_span_s: float = 1.0

    @classmethod
    def of_scores(cls, scores: pl.DataFrame, min_span_s: float = 1.0) -> Coverage:
        """The devices and time range of a scores frame (``source``, ``device_id``, ``ts``); ``min_span_s``: what one
        device counts at least in :attr:`device_days` (an asset scored once a day: a day)."""
        keys = [c for c in ("source", "device_id") if c in scores.columns]
        return cls(scores.group_by(keys).agg(pl.col("ts").min().alias("start"), pl.col("ts").max().alias("end")), min_span_s)

    @property
    def device_days(self) -> float:
        """Scored device-days (the sum over devices of their scored span, at least one second each)."""
        if not self.devices.height:
            return 0.0
        span = (self.devices["end"] - self.devices["start"]).dt.total_seconds().clip(lower_bound=self.min_span_s)
        return float(span.sum()) / 86_400.0


def truth_events(store, truth: TruthMatch, coverage: Coverage) -> pl.DataFrame:
    """Truth events of ``truth``'s table and types on the scored devices, overlapping their scored span.

    Returns ``device_id``, ``ts``, ``end`` (UTC; ``end`` = ``ts`` for instantaneous truth such as
    a failure), ``type``, ``severity`` and ``cause``. A source without that truth table contributes no events. One scan per
    source; each device keeps the events its own scored span could have caught (onset before the
    span's end plus the horizon, end after the span's start).
    """
    out = []
    srcs = set(store.truth_sources(truth.table)) if truth.table in store.truth_tables() else set()
    cov = coverage.devices.with_columns(pl.col("device_id").cast(pl.String))
    for (src,), spans in cov.group_by(["source"] if "source" in cov.columns else [pl.lit(None).alias("source")]):
        if src not in srcs:
            continue
        hi = spans["end"].max()
        # no lower bound on the onset: an event that began days before (an open conductor) may still be on
        frame = store.scan_truth(truth.table, source=src, end=hi + _td(truth.horizon_s + 1)).collect()
        if not frame.height:
            continue
        end = pl.col("end") if "end" in frame.columns else pl.col("ts")
        kind = pl.col("type") if "type" in frame.columns else pl.lit(truth.table)
        sev = pl.col("severity").cast(pl.Float64) if "severity" in frame.columns else pl.lit(1.0)
        cause = pl.col("cause").cast(pl.String) if "cause" in frame.columns else pl.lit(None, pl.String)
        frame = frame.select(pl.col("device_id").cast(pl.String), pl.col("ts").cast(pl.Datetime("us", "UTC")),
                             end.cast(pl.Datetime("us", "UTC")).alias("end"), kind.cast(pl.String).alias("type"),
                             sev.alias("severity"), cause.alias("cause"))
        if truth.types:
            frame = frame.filter(pl.col("type").is_in(list(truth.types)))
        if truth.min_severity > 0:
            frame = frame.filter(pl.col("severity") >= truth.min_severity)
        frame = (frame.join(spans.select("device_id", "start", "end").rename({"end": "_span_end"}), on="device_id", how="inner")
                 .filter((pl.col("ts") <= pl.col("_span_end") + _td(truth.horizon_s)) & (pl.col("end") >= pl.col("start")))
                 .drop("start", "_span_end"))
        out.append(frame)
    if not out:
        return truth_events_empty()
    return pl.concat(out).unique(maintain_order=True)


def match(alerts: pl.DataFrame, events: pl.DataFrame, truth: TruthMatch) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Which alerts an event explains and which events an alert caught.

    Parameters
    ----------
    alerts : ``device_id``, ``first_utc``, ``last_utc`` (one rule's alerts), and ``value`` when
        ``truth.same_cause`` (the diagnosis the alert names).
    events : :func:`truth_events` output.
    truth : the matching window.

    Returns
    -------
    alerts with a boolean ``explained`` (judged at the alert's first firing); events with
    ``caught`` (an alert open over them) and ``lead_s`` [s] (onset minus the first catching
    alert's first firing; null when not caught). See the module docstring for the windows.
    """
    value = pl.col("value").cast(pl.String) if "value" in alerts.columns else pl.lit(None, pl.String)
    a = alerts.select(pl.col("device_id").cast(pl.String), "first_utc", "last_utc", value.alias("_value")).with_row_index("_a")
    e = events.with_row_index("_e")
    not_over = pl.col("end") >= pl.col("first_utc") - _td(truth.tolerance_s)
    covers = (pl.col("ts") <= pl.col("last_utc") + _td(truth.horizon_s)) & not_over
    at_onset = (pl.col("ts") <= pl.col("first_utc") + _td(truth.horizon_s + truth.tolerance_s)) & not_over
    if truth.same_cause:
        same = pl.col("_value") == pl.col("cause")
        covers, at_onset = covers & same, at_onset & same
    pairs = a.join(e, on="device_id", how="inner").filter(covers)
    hit_a = set(pairs.filter(at_onset)["_a"].to_list())
    lead = pairs.group_by("_e").agg(((pl.col("ts") - pl.col("first_utc")).dt.total_microseconds() / 1e6).max().alias("lead_s"))
    a_out = a.with_columns(pl.col("_a").is_in(list(hit_a)).alias("explained")).drop("_a", "_value")
    a_out = a_out.with_columns(((pl.col("last_utc") - pl.col("first_utc")).dt.total_microseconds() / 1e6).alias("open_s"))
    e_out = (e.join(lead, on="_e", how="left").with_columns(pl.col("lead_s").is_not_null().alias("caught"))
             .sort("_e").drop("_e"))
    return a_out, e_out


def judge(alerts: pl.DataFrame, events: dict[str, pl.DataFrame], rules: RuleSet, coverage: Coverage, *,
          by_severity: bool = False, coverages: dict[str, Coverage] | None = None) -> pl.DataFrame:
    """Precision, recall, lead time and alerts per device-day of each rule that names its truth.

    ``events`` maps a rule id to its :func:`truth_events`. With ``by_severity``, each rule also
    gets one row per severity it raised (precision and alert counts of that severity alone;
    recall of the alerts of that severity or worse). ``coverages``: what was scored per rule input
    (``scores``, ``assets``, ``pv``), for each rule's alerts per device-day; ``coverage`` otherwise.
    """
    rows = []
    for rule in rules.rules:
        if rule.truth is None:
            continue
        dd = (coverages or {}).get(rule.input, coverage).device_days
        mine = alerts.filter(pl.col("rule") == rule.id) if alerts.height else alerts
        ev = events.get(rule.id, truth_events_empty())
        levels = [None, *[s for s in SEVERITIES if by_severity and s in set(mine["severity"].to_list())]]
        for sev in levels:
            part = mine if sev is None else mine.filter(pl.col("severity").is_in(list(SEVERITIES[:SEVERITIES.index(sev) + 1])))
            exact = part if sev is None else part.filter(pl.col("severity") == sev)
            _, e_m = match(part, ev, rule.truth)  # recall: alerts of this severity or worse
            a_m, _ = match(exact, ev, rule.truth)  # precision: alerts of this severity
            rows.append(_quality_row(rule.id, sev or "all", a_m, e_m, dd))
    return pl.DataFrame(rows, schema={c: _QUALITY_TYPES[c] for c in QUALITY_COLUMNS}, orient="row")


def truth_events_empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"device_id": pl.String, "ts": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
                                "type": pl.String, "severity": pl.Float64, "cause": pl.String})


def episodes(fired: pl.DataFrame, merge_gap_s: float) -> pl.DataFrame:
    """Firings (``device_id``, ``ts``) merged into alerts as :class:`~gridtwin_lib.alerts.AlertBook`
    merges them: a firing more than ``merge_gap_s`` after the previous one on a device opens a
    new alert. Returns ``device_id``, ``first_utc``, ``last_utc``, ``count``."""
    if not fired.height:
        return pl.DataFrame(schema={"device_id": pl.String, "first_utc": pl.Datetime("us", "UTC"),
                                    "last_utc": pl.Datetime("us", "UTC"), "count": pl.UInt32})
    gap = _td(merge_gap_s)
    f = fired.select(pl.col("device_id").cast(pl.String), pl.col("ts").cast(pl.Datetime("us", "UTC"))).sort("device_id", "ts")
    opens = (pl.col("ts").diff().over("device_id") > gap).fill_null(True)
    return (f.with_columns(opens.cast(pl.UInt32).cum_sum().over("device_id").alias("_k"))
            .group_by("device_id", "_k", maintain_order=True)
            .agg(pl.col("ts").min().alias("first_utc"), pl.col("ts").max().alias("last_utc"), pl.len().alias("count"))
            .drop("_k"))


def tradeoff(scores: pl.DataFrame, rule: Rule, events: pl.DataFrame, coverage: Coverage, merge_gap_s: float,
             thresholds: Sequence[float] | None = None) -> pl.DataFrame:
    """Precision, recall and alerts per device-day of ``rule`` fired at each of ``thresholds``.

    The rule's first level gives the comparison (``above`` or ``below``); the default thresholds
    are 25 quantiles of the scored values' tail that fires (upper for ``above``, lower for
    ``below``) and the rule's own threshold. One row per threshold: ``threshold`` and the
    :data:`QUALITY_COLUMNS` figures, so the curve can be drawn and a threshold chosen.
    """
    op = rule.levels[0].op
    if op not in ("above", "below"):
        raise ValueError(f"rule {rule.id}: only a numeric threshold (above/below) can be swept, not {op!r}")
    if rule.column not in scores.columns:
        raise ValueError(f"rule {rule.id}: the scores have no column {rule.column!r}")
    values = scores.select(pl.col(rule.column).cast(pl.Float64)).drop_nulls().to_series()
    if thresholds is None:  # the upper (above) or lower (below) tail, and the rules file's own threshold
        q = np.linspace(0.5, 0.999, 25) if op == "above" else np.linspace(0.001, 0.5, 25)
        grid = np.quantile(values.to_numpy(), q) if values.len() else np.array([])
        thresholds = np.unique(np.append(grid, float(rule.levels[0].arg)))
    rows = []
    for t in thresholds:
        probe = Rule(rule.id, rule.raised_by, rule.input, rule.column, (Level("HIGH", op, float(t)),), rule.message,
                     rule.action, rule.truth)
        alerts = episodes(firings(scores, probe), merge_gap_s)
        a_m, e_m = match(alerts, events, rule.truth)
        rows.append({"threshold": float(t), **_quality_row(rule.id, "all", a_m, e_m, coverage.device_days)})
    return pl.DataFrame(rows, schema={"threshold": pl.Float64, **{c: _QUALITY_TYPES[c] for c in QUALITY_COLUMNS}})


def pick_threshold(curve: pl.DataFrame, min_precision: float) -> float | None:
    """The threshold catching the most events among those whose precision reaches ``min_precision``
    (ties: the fewer alerts); None when none does."""
    ok = curve.filter(pl.col("precision") >= min_precision)
    if not ok.height:
        return None
    best = ok.sort(["caught", "alerts"], descending=[True, False]).row(0, named=True)
    return float(best["threshold"])


def judge_scores(store, scores: pl.DataFrame, rules: RuleSet, *, assets: pl.DataFrame | None = None,
                 alerts: pl.DataFrame | None = None, by_severity: bool = True,
                 pv: pl.DataFrame | None = None) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """Raise (or take) the alerts of ``scores`` (and ``assets``, ``pv``) and judge every rule with a ``truth`` entry
    on what its own input covered.

    Returns the quality table (:func:`judge`) and each rule's truth events.
    """
    from .alerts import raise_alerts

    if alerts is None:
        alerts = raise_alerts(scores, assets, rules=rules, pv=pv)
    cov = Coverage.of_scores(scores)
    # an asset scored once (its latest day's features) counts as a device-day in the alerts per device-day
    coverages = {"scores": cov, **{name: Coverage.of_scores(frame, span) for name, frame, span in
                                   (("assets", assets, 86_400.0), ("pv", pv, 1.0)) if frame is not None and frame.height}}
    events = {}
    for rule in rules.rules:
        if rule.truth is None:
            continue
        c = coverages.get(rule.input)
        events[rule.id] = truth_events(store, rule.truth, c) if c is not None else truth_events_empty()
    return judge(alerts, events, rules, cov, by_severity=by_severity, coverages=coverages), events


@dataclass
class DayQuality:
    """A scored day's alerts judged against the truth (:func:`judge_day`).

    Parameters
    ----------
    days : the UTC day scored per source.
    table : :func:`judge` by severity.
    curves : per swept rule, :func:`tradeoff` of its first (most severe) level's threshold.
    current : per swept rule, the threshold in the rules file.
    suggested : per swept rule, :func:`pick_threshold` at ``min_precision`` (None: none reaches it).
    min_precision : the precision asked of the rule's most severe level.
    """

    days: dict[str, str]
    table: pl.DataFrame
    curves: dict[str, pl.DataFrame]
    current: dict[str, float]
    suggested: dict[str, float | None]
    min_precision: float

    def to_dict(self) -> dict:
        return {"days": self.days, "rules": self.table.to_dicts(), "min_precision": self.min_precision,
                "sweep": {r: {"current": self.current[r], "suggested": self.suggested[r], "curve": c.to_dicts()}
                          for r, c in self.curves.items()}}


def judge_day(store, *, rules: RuleSet, days_back: int = 0, sweep: bool = False, min_precision: float = 0.6,
              engine=None, sources=None, max_devices: int | None = None, progress: bool = False,
              keep: str | os.PathLike | None = None, replay: str | os.PathLike | None = None) -> DayQuality:
    """Score each source's most recent day (``days_back`` days earlier) through the champions, raise
    the alerts of ``rules`` and judge each rule against the truth; with ``sweep``, also the
    precision/recall curve of each numeric rule's most severe threshold (tune on one day, judge on another).

    ``keep``: a directory to write the scored day to (``readings.parquet``, ``assets.parquet``);
    ``replay``: such a directory to judge instead of scoring again (e.g. the same day under
    other rules: scoring takes minutes, judging seconds).
    """
    from .alerts import raise_alerts

    if replay is not None:
        d = Path(replay)
        if not (d / "readings.parquet").is_file():
            raise InputError(f"{d}: no readings.parquet; write one with --keep {d} first")
        scores = pl.read_parquet(d / "readings.parquet")
        assets = pl.read_parquet(d / "assets.parquet") if (d / "assets.parquet").is_file() else None
        pv = pl.read_parquet(d / "pv.parquet") if (d / "pv.parquet").is_file() else None
        alerts = raise_alerts(scores, assets, rules=rules, pv=pv)
    else:
        from .daily import score_day

        day = score_day(store, engine=engine, sources=sources, progress=progress, max_devices=max_devices,
                        alert_rules=rules, days_back=days_back)
        scores, assets, pv, alerts = day.readings, day.all_assets, day.pv, day.alerts
        if keep is not None:
            d = Path(keep)
            d.mkdir(parents=True, exist_ok=True)
            parts = [(scores, d / "readings.parquet")] + [(f, d / name) for f, name in ((assets, "assets.parquet"), (pv, "pv.parquet"))
                                                          if f is not None]
            with atomic_write(*[p for _, p in parts]) as tmp:
                for (frame, _), t in zip(parts, tmp if isinstance(tmp, list) else [tmp], strict=True):
                    frame.write_parquet(t)
    if not scores.height:
        raise InputError("no readings were scored; nothing to judge (score a day with readings: make run, then retry)")
    table, events = judge_scores(store, scores, rules, assets=assets, alerts=alerts, pv=pv)
    days = {} if "day" not in scores.columns else {
        s: str(d) for s, d in scores.select("source", "day").unique().sort("source").iter_rows()}
    curves, current, suggested = {}, {}, {}
    if sweep:
        cov = Coverage.of_scores(scores)
        for rule in rules.rules:
            if rule.truth is None or rule.input != "scores" or rule.levels[0].op not in ("above", "below") \
                    or rule.column not in scores.columns:
                continue
            curve = tradeoff(scores, rule, events[rule.id], cov, rules.merge_gap_s)
            curves[rule.id], current[rule.id] = curve, float(rule.levels[0].arg)
            suggested[rule.id] = pick_threshold(curve, min_precision)
    return DayQuality(days, table, curves, current, suggested, min_precision)


def tradeoff_figure(quality: DayQuality):
    """Precision against recall of each swept rule as its threshold moves (plotly), the rules
    file's threshold and the suggested one marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for rule_id, curve in quality.curves.items():
        c = curve.drop_nulls("precision")
        fig.add_trace(go.Scatter(x=c["recall"].to_list(), y=c["precision"].to_list(), mode="lines+markers", name=rule_id,
                                 text=[f"threshold {t:.3g}: {a} alerts, {d:.2f} per device-day"
                                       for t, a, d in zip(c["threshold"], c["alerts"], c["alerts_per_device_day"], strict=True)],
                                 hovertemplate="%{text}<br>recall %{x:.2f}, precision %{y:.2f}<extra>" + rule_id + "</extra>"))
    fig.add_hline(y=quality.min_precision, line_dash="dot", annotation_text=f"precision asked of HIGH: {quality.min_precision:.0%}")
    fig.update_layout(title="Alert rules: precision against recall as the threshold moves (truth: the twin's events)",
                      xaxis_title="recall (share of truth events caught)", yaxis_title="precision (share of alerts explained)",
                      xaxis_range=[0, 1.02], yaxis_range=[0, 1.02], template="plotly_white")
    return fig


_QUALITY_TYPES = {"rule": pl.String, "severity": pl.String, "alerts": pl.Int64, "explained": pl.Int64, "precision": pl.Float64,
                  "events": pl.Int64, "caught": pl.Int64, "recall": pl.Float64, "median_lead_s": pl.Float64,
                  "alerts_per_device_day": pl.Float64, "alarm_share": pl.Float64, "device_days": pl.Float64}


def _quality_row(rule_id: str, severity: str, a_m: pl.DataFrame, e_m: pl.DataFrame, device_days: float) -> dict:
    n_a, n_e = a_m.height, e_m.height
    hit = int(a_m["explained"].sum()) if n_a else 0
    caught = int(e_m["caught"].sum()) if n_e else 0
    lead = e_m.filter(pl.col("caught"))["lead_s"].median() if caught else None
    open_s = float(a_m["open_s"].sum()) if n_a else 0.0
    return {"rule": rule_id, "severity": severity, "alerts": n_a, "explained": hit, "precision": hit / n_a if n_a else None,
            "events": n_e, "caught": caught, "recall": caught / n_e if n_e else None,
            "median_lead_s": None if lead is None else float(lead),
            "alerts_per_device_day": n_a / device_days if device_days else None,
            "alarm_share": open_s / (device_days * 86_400.0) if device_days else None, "device_days": device_days}


def _td(seconds: float) -> timedelta:
    return timedelta(seconds=float(seconds))


__all__ = ["Coverage", "truth_events", "match", "judge", "episodes", "tradeoff", "pick_threshold", "judge_scores",
           "judge_day", "tradeoff_figure", "DayQuality", "QUALITY_COLUMNS"]
