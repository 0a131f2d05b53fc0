"""``gridtwin alerts judge``: the alert rules judged against the twin's truth, like models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .cli_common import JsonOpt, StoreOpt, _emit, _fail, _guarded, _store


def register(app: typer.Typer) -> None:
    alerts_app = typer.Typer(help="Alert rules: judged against the truth of simulated sources.", no_args_is_help=True)
    app.add_typer(alerts_app, name="alerts")

    @alerts_app.command("judge")
    @_guarded
    def alerts_judge_cmd(
        store: StoreOpt = None,
        rules: Annotated[Path | None, typer.Option("--rules", help="Alert rules YAML [default: conf/base/alerts.yaml (conf/local/alerts.yaml replaces it) or $GRIDTWIN_ALERTS].")] = None,
        days_back: Annotated[int, typer.Option("--days-back", min=0, help="Score each source's day this many days before its most recent one (tune on one day, judge on another).")] = 0,
        sweep: Annotated[bool, typer.Option("--sweep", help="Also sweep each numeric rule's most severe threshold: precision/recall curve and a suggested threshold.")] = False,
        min_precision: Annotated[float, typer.Option("--min-precision", min=0.0, max=1.0, help="Precision the suggested threshold must reach on the day scored.")] = 0.6,
        plot: Annotated[Path | None, typer.Option("--plot", help="Write the trade-off curves as a self-contained HTML page (with --sweep).")] = None,
        max_devices: Annotated[int | None, typer.Option("--max-devices", min=1, help="Score at most this many devices per source (quicker, less exact).")] = None,
        keep: Annotated[Path | None, typer.Option("--keep", help="Also write the scored day to this directory (readings.parquet, assets.parquet).")] = None,
        replay: Annotated[Path | None, typer.Option("--replay", help="Judge a day kept with --keep instead of scoring again (e.g. under other rules).")] = None,
        as_json: JsonOpt = False,
    ):
        """Score a day of the store through the champions, raise the alerts and judge each rule
        against the twin's truth events: precision, recall, median lead time, alerts per device-day."""
        from . import alert_quality as aq
        from .alerts import load_rules
        from .fileio import write_text

        if plot is not None and (not sweep or plot.suffix.lower() != ".html"):
            _fail(f"--plot {plot}: give an .html file, with --sweep (the curves come from the sweep)")
        rule_set = load_rules(rules)  # a bad rules file fails before any scoring
        quality = aq.judge_day(_store(store), rules=rule_set, days_back=days_back, sweep=sweep, min_precision=min_precision,
                               max_devices=max_devices, progress=not as_json, keep=keep, replay=replay)
        if plot is not None:
            write_text(plot, aq.tradeoff_figure(quality).to_html(include_plotlyjs=True, full_html=True))
        _emit(quality.to_dict(), as_json, None if as_json else _text(quality, plot))


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _text(q, plot: Path | None) -> str:
    lines = ["days scored: " + ", ".join(f"{s} {d}" for s, d in q.days.items()),
             f"{'rule':<20} {'severity':<9} {'alerts':>7} {'precision':>9} {'events':>7} {'recall':>7} "
             f"{'lead [s]':>9} {'per dev-day':>11} {'in alarm':>8}"]
    for r in q.table.iter_rows(named=True):
        lines.append(f"{r['rule']:<20} {r['severity']:<9} {r['alerts']:>7} {_fmt(r['precision'], '.2f'):>9} {r['events']:>7} "
                     f"{_fmt(r['recall'], '.2f'):>7} {_fmt(r['median_lead_s'], '.0f'):>9} {_fmt(r['alerts_per_device_day'], '.2f'):>11} "
                     f"{_fmt(r['alarm_share'], '.1%'):>8}")
    for rule, curve in q.curves.items():
        lines.append(f"\n{rule}: threshold in the rules file {q.current[rule]:.4g}; suggested for precision >= "
                     f"{q.min_precision:.0%}: {_fmt(q.suggested[rule], '.4g', 'none reaches it')}")
        lines.append(f"  {'threshold':>10} {'alerts':>7} {'precision':>9} {'recall':>7} {'per dev-day':>11} {'in alarm':>8}")
        for c in curve.iter_rows(named=True):
            lines.append(f"  {c['threshold']:>10.4g} {c['alerts']:>7} {_fmt(c['precision'], '.2f'):>9} {_fmt(c['recall'], '.2f'):>7} "
                         f"{_fmt(c['alerts_per_device_day'], '.2f'):>11} {_fmt(c['alarm_share'], '.1%'):>8}")
    if plot is not None:
        lines.append(f"\ntrade-off curves: {plot}")
    return "\n".join(lines)
