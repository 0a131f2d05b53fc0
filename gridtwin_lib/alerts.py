"""Alerts from model outputs and rule checks, merged so a condition is one alert, not a flood.

Rules live in YAML (the configuration folder's ``alerts.yaml`` by default, :func:`default_rules`; ``GRIDTWIN_ALERTS`` or
an explicit path overrides it): each reads one column of the engine's per-reading scores
or asset scores, or of the solar-asset models' outputs on PV readings, and maps the value to a severity (CRITICAL, HIGH, MEDIUM, LOW)
with a message and a suggested action. Thresholds are therefore configuration, not code.

An :class:`AlertBook` keeps alerts open across calls: a rule that fires again on the same
device within ``merge_gap_s`` of its last firing extends the open alert (``count`` +1,
``last_utc`` moved, severity raised to the worst seen) instead of opening a new one;
:func:`raise_alerts` is one book used once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from .errors import InputError
from .small_frames import SMALL_ROWS

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
_RANK = {s: k for k, s in enumerate(SEVERITIES)}
INPUTS = ("scores", "assets", "pv")  # per-reading scores, per-asset scores, solar-asset outputs on PV readings
ALERT_SCHEMA = {
    "severity": pl.String, "raised_by": pl.String, "rule": pl.String, "device_id": pl.String, "source": pl.String,
    "first_utc": pl.Datetime("us", "UTC"), "last_utc": pl.Datetime("us", "UTC"), "count": pl.Int64,
    "value": pl.String, "message": pl.String, "suggested_action": pl.String, "status": pl.String,
}


@dataclass(frozen=True)
class Level:
    severity: str
    op: str  # above | below | equals | not_in
    arg: Any

    def expr(self, col: pl.Expr) -> pl.Expr:
        if self.op == "above":
            return col > self.arg
        if self.op == "below":
            return col < self.arg
        if self.op == "equals":
            return col == self.arg
        return ~col.is_in(list(self.arg))


@dataclass(frozen=True)
class TruthMatch:
    """What a rule is meant to catch, for judging it against the twin's truth
    (:mod:`gridtwin_lib.alert_quality`).

    Parameters
    ----------
    table : truth table of the events (``events`` for the grid twins, ``failures`` for asset fleets).
    types : event types that count (empty: every row of the table).
    horizon_s : an alert is explained by an event starting up to this long after its last firing [s]
        (the rule's forecast horizon; 0 for a rule that detects rather than predicts).
    tolerance_s : ... or by one that ended at most this long before its first firing [s]
        (the readings' resolution and averaging windows).
    min_severity : only events of at least this truth ``severity`` count (a number in [0, 1];
        e.g. 0.5 for frequency excursions beyond the EN 50160 band of 0.5 Hz).
    same_cause : the alert's value must name the event's ``cause`` (a rule whose value is a
        diagnosis, such as the unbalance cause).
    """

    table: str
    types: tuple[str, ...] = ()
    horizon_s: float = 0.0
    tolerance_s: float = 60.0
    min_severity: float = 0.0
    same_cause: bool = False


@dataclass(frozen=True)
class Rule:
    id: str
    raised_by: str
    input: str
    column: str
    levels: tuple[Level, ...]
    message: str
    action: str
    truth: TruthMatch | None = None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    merge_gap_s: float
    path: str


def default_rules() -> Path:
    """The rules file of the configuration folder: ``conf/local/alerts.yaml`` when there is one (it
    replaces the whole file: rules are a list), else ``conf/base/alerts.yaml`` (:mod:`gridtwin_lib.settings`)."""
    from . import settings

    return settings.conf_file("alerts.yaml")


def load_rules(path: str | os.PathLike | None = None) -> RuleSet:
    """Rules from ``path``, else ``$GRIDTWIN_ALERTS``, else the packaged defaults; one clear line on a bad file."""
    p = Path(path or os.environ.get("GRIDTWIN_ALERTS") or default_rules())
    where = str(p)
    try:
        doc = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise InputError(f"alert rules {where}: no such file; pass an existing YAML file (see {default_rules()})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"alert rules {where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
        raise InputError(f"alert rules {where}: expected a mapping with a 'rules' list")
    gap = doc.get("merge_gap_s", 900)
    if not isinstance(gap, (int, float)) or gap < 0:
        raise InputError(f"alert rules {where}: merge_gap_s must be a number of seconds >= 0 (got {gap!r})")
    rules, seen = [], set()
    for k, r in enumerate(doc["rules"]):
        at = f"alert rules {where}: rule {k + 1}"
        if not isinstance(r, dict):
            raise InputError(f"{at}: expected a mapping")
        missing = [f for f in ("id", "raised_by", "input", "column", "levels", "message", "action") if f not in r]
        if missing:
            raise InputError(f"{at} ({r.get('id', '?')}): missing {', '.join(missing)}")
        if r["id"] in seen:
            raise InputError(f"{at}: id {r['id']!r} is used twice")
        seen.add(r["id"])
        if r["input"] not in INPUTS:
            raise InputError(f"{at} ({r['id']}): input must be one of {', '.join(INPUTS)} (got {r['input']!r})")
        levels = []
        for lv in r["levels"] or []:
            ops = [o for o in ("above", "below", "equals", "not_in") if o in lv]
            sev = str(lv.get("severity", "")).upper()
            if sev not in _RANK or len(ops) != 1:
                raise InputError(f"{at} ({r['id']}): each level needs a severity in {', '.join(SEVERITIES)} "
                                 f"and exactly one of above/below/equals/not_in (got {lv!r})")
            levels.append(Level(sev, ops[0], lv[ops[0]]))
        if not levels:
            raise InputError(f"{at} ({r['id']}): no levels")
        _check_model(at, r)
        rules.append(Rule(str(r["id"]), str(r["raised_by"]), r["input"], str(r["column"]), tuple(levels),
                          str(r["message"]), str(r["action"]), _truth(f"{at} ({r['id']})", r.get("truth"))))
    return RuleSet(tuple(rules), float(gap), where)


def _truth(at: str, doc: Any) -> TruthMatch | None:
    """A rule's optional ``truth`` entry: {table, types, horizon_s, tolerance_s}."""
    if doc is None:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("table"), str):
        raise InputError(f"{at}: truth must be a mapping with a 'table' name (e.g. {{table: events, types: [sag]}})")
    keys = ("table", "types", "horizon_s", "tolerance_s", "min_severity", "same_cause")
    unknown = set(doc) - set(keys)
    if unknown:
        raise InputError(f"{at}: truth has unknown key(s) {', '.join(sorted(unknown))}; use {', '.join(keys)}")
    types = doc.get("types") or []
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise InputError(f"{at}: truth.types must be a list of event type names (got {types!r})")
    out: dict[str, Any] = {}
    for key, default, what in (("horizon_s", 0.0, "a number of seconds >= 0"), ("tolerance_s", 60.0, "a number of seconds >= 0"),
                               ("min_severity", 0.0, "a number in [0, 1]")):
        v = doc.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (key == "min_severity" and v > 1):
            raise InputError(f"{at}: truth.{key} must be {what} (got {v!r})")
        out[key] = float(v)
    same = doc.get("same_cause", False)
    if not isinstance(same, bool):
        raise InputError(f"{at}: truth.same_cause must be true or false (got {same!r})")
    return TruthMatch(doc["table"], tuple(types), same_cause=same, **out)


def _check_model(at: str, r: dict) -> None:
    """A rule on a model output names a registered model (``raised_by``) and one of its outputs
    (``column`` ``<model id>.<output>``): a misspelt or removed model must not silently never fire."""
    from .models import registry

    raised_by, column = str(r["raised_by"]), str(r["column"])
    if raised_by.startswith("rule"):
        return
    if raised_by not in registry.ids():
        raise InputError(f"{at} ({r['id']}): raised_by {raised_by!r} is neither 'rule ...' nor a registered model "
                         f"({', '.join(registry.ids())})")
    if not column.startswith(f"{raised_by}."):
        raise InputError(f"{at} ({r['id']}): column {column!r} must be an output of {raised_by} ('{raised_by}.<output>')")


def _severity(rule: Rule) -> pl.Expr:
    """The severity of the first level of ``rule`` its column matches, else null (built once per rule:
    a live poll runs every rule on a few readings, several times a second)."""
    kept = _SEVERITY.get(id(rule))
    if kept is not None and kept[0] is rule:
        return kept[1]
    col = pl.col(rule.column)
    sev = pl.lit(None, dtype=pl.String)
    for lv in reversed(rule.levels):  # the first matching level wins
        sev = pl.when(lv.expr(col).fill_null(False)).then(pl.lit(lv.severity)).otherwise(sev)
    _SEVERITY[id(rule)] = (rule, sev)
    return sev


_SEVERITY: dict[int, tuple[Rule, pl.Expr]] = {}  # id(rule) -> (rule, its severity expression); rules are frozen


def _value_columns(frame: pl.DataFrame, rule: Rule) -> tuple[pl.Expr, pl.Expr]:
    """(value as float when the column is numeric or boolean, else null; value as text)."""
    col = pl.col(rule.column)
    numeric = frame.schema[rule.column].is_numeric() or frame.schema[rule.column] == pl.Boolean
    return (col.cast(pl.Float64) if numeric else pl.lit(None, pl.Float64)), col.cast(pl.String)


def _keys(frame: pl.DataFrame) -> list[pl.Expr]:
    src = pl.col("source").cast(pl.String) if "source" in frame.columns else pl.lit(None, pl.String)
    return [pl.col("device_id").cast(pl.String), src.alias("source"), pl.col("ts").cast(pl.Datetime("us", "UTC"))]


def firings(frame: pl.DataFrame, rule: Rule) -> pl.DataFrame:
    """Rows of ``frame`` where ``rule`` fires: device_id, ts, severity, value (as text)."""
    if rule.column not in frame.columns or frame.height == 0:
        return pl.DataFrame(schema={"device_id": pl.String, "source": pl.String, "ts": pl.Datetime("us", "UTC"),
                                    "severity": pl.String, "value": pl.Float64, "text": pl.String})
    value, text = _value_columns(frame, rule)
    return (frame.select(*_keys(frame), _severity(rule).alias("severity"), value.alias("value"), text.alias("text"))
            .filter(pl.col("severity").is_not_null()))


def _fired(frame: pl.DataFrame, rules: list[Rule]) -> list[tuple[Rule, dict]]:
    """Every (rule, firing row) of ``rules`` on ``frame``, by rule, then device and time: one pass over the
    frame for all rules (a live poll of a few readings fires none; this costs one select, not one per rule)."""
    rules = [r for r in rules if r.column in frame.columns]
    if not rules or frame.height == 0 or (frame.height <= _SCREEN_ROWS and not any(_screen(frame, r) for r in rules)):
        return []
    sev = [f"_sev{k}" for k in range(len(rules))]
    wide = frame.select(*_keys(frame), *[_severity(r).alias(c) for r, c in zip(rules, sev)]) \
        .with_row_index("_i").filter(pl.any_horizontal(pl.col(c).is_not_null() for c in sev))
    if wide.height == 0:
        return []
    out = []
    for k, rule in enumerate(rules):
        hit = wide.filter(pl.col(sev[k]).is_not_null())
        if not hit.height:
            continue
        value, text = _value_columns(frame, rule)
        vals = frame[hit["_i"]].select(value.alias("value"), text.alias("text"))
        rows = hit.select("device_id", "source", "ts", pl.col(sev[k]).alias("severity")).hstack(vals).sort("device_id", "ts")
        out.extend((rule, r) for r in rows.iter_rows(named=True))
    return out


#: frames of up to this many rows (a live poll) are first screened with NumPy for any firing at all
_SCREEN_ROWS = SMALL_ROWS


def _screen(frame: pl.DataFrame, rule: Rule) -> bool:
    """:func:`_fires_somewhere`, True (run the expressions) when the values do not compare as plain Python ones."""
    try:
        return _fires_somewhere(frame, rule)
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        return True


def _fires_somewhere(frame: pl.DataFrame, rule: Rule) -> bool:
    """Whether some level of ``rule`` matches some row of ``frame``, as :func:`_severity` decides
    (a null matches no level), without planning the rule's Polars expression: most polls fire
    nothing. True also when it cannot tell cheaply (a NaN value)."""
    column = frame.get_column(rule.column)
    numeric = column.dtype.is_numeric() or column.dtype == pl.Boolean
    values = column.cast(pl.Float64).to_numpy() if numeric else None  # null as NaN
    if values is not None and int(np.isnan(values).sum()) > column.null_count():
        return True  # a NaN value (Polars orders NaN above every number): the expressions decide
    listed = None
    for lv in rule.levels:
        if lv.op in ("above", "below") and values is not None and isinstance(lv.arg, (int, float)):
            with np.errstate(invalid="ignore"):
                if (values > lv.arg if lv.op == "above" else values < lv.arg).any():
                    return True
            continue
        listed = column.to_list() if listed is None else listed
        if lv.op == "above" and any(v is not None and v > lv.arg for v in listed):
            return True
        if lv.op == "below" and any(v is not None and v < lv.arg for v in listed):
            return True
        if lv.op == "equals" and any(v is not None and v == lv.arg for v in listed):
            return True
        if lv.op == "not_in" and any(v is not None and v not in lv.arg for v in listed):
            return True
    return False


@dataclass
class _Open:
    rule: Rule
    device_id: str
    source: str | None
    first: datetime
    last: datetime
    count: int
    severity: str
    worst: Any
    worst_text: str


@dataclass
class AlertBook:
    """Open and closed alerts across calls (streaming use); see the module docstring."""

    rules: RuleSet = field(default_factory=load_rules)
    _open: dict[tuple[str, str | None, str], _Open] = field(default_factory=dict)
    _closed: list[_Open] = field(default_factory=list)

    def update(self, scores: pl.DataFrame | None = None, assets: pl.DataFrame | None = None,
               pv: pl.DataFrame | None = None) -> None:
        """Feed newly scored rows (time-ordered per device across calls), one frame per rule input (:data:`INPUTS`)."""
        gap = timedelta(seconds=self.rules.merge_gap_s)
        frames = {"scores": scores, "assets": assets, "pv": pv}
        for name, frame in frames.items():
            if frame is None:
                continue
            for rule, r in _fired(frame, [rule for rule in self.rules.rules if rule.input == name]):
                key = (rule.id, r["source"], r["device_id"])
                cur = self._open.get(key)
                if cur is not None and r["ts"] - cur.last > gap:
                    self._closed.append(cur)
                    cur = None
                if cur is None:
                    self._open[key] = _Open(rule, r["device_id"], r["source"], r["ts"], r["ts"], 1, r["severity"],
                                            r["value"], r["text"])
                    continue
                cur.last, cur.count = max(cur.last, r["ts"]), cur.count + 1
                if _RANK[r["severity"]] < _RANK[cur.severity] or (
                        r["severity"] == cur.severity and _worse(rule, r["value"], cur.worst)):
                    cur.severity, cur.worst, cur.worst_text = r["severity"], r["value"], r["text"]
        self._close_stale(frames, gap)

    def _close_stale(self, frames, gap) -> None:
        """Close alerts whose input has moved on by more than the merge gap without them firing."""
        newest = {name: f["ts"].max() for name, f in frames.items() if f is not None and f.height and "ts" in f.columns}
        for key, a in list(self._open.items()):
            if a.rule.input in newest and newest[a.rule.input] - a.last > gap:
                self._closed.append(self._open.pop(key))

    def table(self) -> pl.DataFrame:
        """Every alert, most severe first, then most recent: the columns of :data:`ALERT_SCHEMA`."""
        rows = [self._row(a, "closed") for a in self._closed] + [self._row(a, "open") for a in self._open.values()]
        if not rows:
            return pl.DataFrame(schema=ALERT_SCHEMA)
        out = pl.DataFrame(rows, schema=ALERT_SCHEMA)
        return (out.with_columns(pl.col("severity").replace_strict(_RANK, return_dtype=pl.Int8).alias("_rank"))
                .sort(["_rank", "last_utc"], descending=[False, True]).drop("_rank"))

    def open_alerts(self) -> dict[tuple[str, str | None, str], dict]:
        """The open alerts as rows of :data:`ALERT_SCHEMA`, by (rule, source, device)."""
        return {key: self._row(a, "open") for key, a in self._open.items()}

    def pop_closed(self) -> list[tuple[tuple[str, str | None, str], dict]]:
        """The alerts closed since the last call, as (key, row), then forgotten: a live service pushes
        each once and its memory stays bounded (:meth:`table` no longer lists them)."""
        closed, self._closed = self._closed, []
        return [((a.rule.id, a.source, a.device_id), self._row(a, "closed")) for a in closed]

    @staticmethod
    def _row(a: _Open, status: str) -> dict:
        value = a.worst if a.worst is not None else a.worst_text
        try:
            message = a.rule.message.format(value=value, device=a.device_id)
        except (ValueError, TypeError, KeyError):
            message = f"{a.rule.message} ({value})"
        return {"severity": a.severity, "raised_by": a.rule.raised_by, "rule": a.rule.id, "device_id": a.device_id,
                "source": a.source, "first_utc": a.first, "last_utc": a.last, "count": a.count, "value": a.worst_text,
                "message": message, "suggested_action": a.rule.action, "status": status}


def _worse(rule: Rule, value, current) -> bool:
    if value is None or current is None:
        return False
    lv = rule.levels[0]
    if lv.op == "below":
        return value < current
    if lv.op == "above":
        return value > current
    return False


def raise_alerts(scores: pl.DataFrame | None = None, assets: pl.DataFrame | None = None,
                 rules: RuleSet | str | os.PathLike | None = None, pv: pl.DataFrame | None = None) -> pl.DataFrame:
    """Alerts of one batch of per-reading ``scores``, ``assets`` scores and solar-asset outputs ``pv``
    (see :class:`AlertBook`)."""
    rs = rules if isinstance(rules, RuleSet) else load_rules(rules)
    book = AlertBook(rs)
    book.update(scores=scores, assets=assets, pv=pv)
    return book.table()


def counts(alerts: pl.DataFrame) -> dict[str, int]:
    """Number of alerts per severity, every severity present (0 when none)."""
    got = dict(alerts.group_by("severity").len().iter_rows()) if alerts.height else {}
    return {s: int(got.get(s, 0)) for s in SEVERITIES}


__all__ = ["AlertBook", "RuleSet", "Rule", "Level", "TruthMatch", "load_rules", "raise_alerts", "firings", "counts",
           "SEVERITIES", "default_rules", "ALERT_SCHEMA"]
