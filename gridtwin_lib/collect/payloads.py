"""What the collector accepts: payload models whose limits come from :mod:`gridtwin_lib.schema`.

Two payloads, each one JSON object or a JSON array of them:

* ``meter`` (``POST /api/energy-data/``): the firmware's payload v1 (see
  :mod:`gridtwin_lib.ingest.firmware` and README "Collector"), plus ``boot``, ``age_ms`` and
  ``sensor_error``; ``pf`` or ``power_factor``, ``ts`` or ``timestamp``.
* ``three_phase`` (``POST /api/grid/data``): the reference 3-tier system's reading,
  ``voltage_a..c`` [V], ``current_a..c`` [A], ``frequency`` [Hz], ``active_power_a..c`` [W],
  ``reactive_power_a..c`` [var] (the units of its ``active_power_table`` /
  ``reactive_power_table``, see :mod:`gridtwin_lib.ingest.reference_sql`), optional
  ``timestamp``, ``seq``, ``boot``.

Every bound on a value field is read from ``schema.RULES`` (hard rules only), so a changed
limit changes the API too. The whole body is validated in one pydantic-core call; only when
it fails are the items looked at one by one, so a batch with some bad rows keeps its good
rows and reports the bad ones by index with field and rule.

A reading's time is ``ts`` when given, else the receipt time minus ``age_ms``. ``ts`` is a
JSON number of Unix seconds or an ISO 8601 string with an offset; booleans and numbers in
text (``"230"``) are refused (``hard.timestamp_parseable``), as are times before
``schema.EARLIEST_TS`` (2000-01-01, ``hard.timestamp_plausible``: a ``ts`` of 0 is a device
without a clock, not a reading from 1970) and times more than ``schema.FUTURE_TOLERANCE``
ahead (``hard.timestamp_not_future``). Value fields are strict JSON numbers or null:
``true`` or ``"230"`` is refused (``hard.value_parseable``), never read as 1 or 230.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from ..ingest.core import Column, ColumnMapping
from ..ingest.firmware import FIRMWARE_MAPPING, PAYLOAD_VERSION
from ..schema import EARLIEST_TS, FUTURE_TOLERANCE, field_by_name, relation_rules_for, rules_for

UINT32_MAX = 2**32 - 1
MAX_RAW_CHARS = 2_000  # verbatim text kept with a reject [characters]
_FUTURE_TOLERANCE_US = int(FUTURE_TOLERANCE.total_seconds() * 1e6)
_EARLIEST_US = int(EARLIEST_TS.timestamp() * 1e6)
_NUMERIC_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
_CONFIG = ConfigDict(extra="ignore", allow_inf_nan=False)

#: canonical three_phase field -> the reference system's payload name
GRID_PAYLOAD_NAMES: dict[str, str] = {
    **{f"v_{p}": f"voltage_{p}" for p in "abc"},
    **{f"i_{p}": f"current_{p}" for p in "abc"},
    "frequency": "frequency",
    **{f"p_{p}": f"active_power_{p}" for p in "abc"},
    **{f"q_{p}": f"reactive_power_{p}" for p in "abc"},
    "thd_v": "voltage_thd",  # optional [%]: a power-quality meter's voltage THD (the power-quality forecast needs it)
}
GRID_MAPPING = ColumnMapping(
    "three_phase",
    {name: Column(payload, field_by_name("three_phase", name).unit) for name, payload in GRID_PAYLOAD_NAMES.items()},
    timestamp=["ts"],
    device_column="device_id",
)


def _timestamp_us(value: float | datetime) -> int:
    """Unix seconds or an aware datetime -> UTC microseconds, checked against the schema's time rules."""
    try:
        us = round(value * 1_000_000) if isinstance(value, (int, float)) else round(
            (value - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1_000_000)
    except (OverflowError, ValueError):
        us = -1
    if us < 0:
        raise PydanticCustomError("timestamp_parseable", "timestamp before 1970 or out of range")
    if us < _EARLIEST_US:
        raise PydanticCustomError("timestamp_plausible", "timestamp before 2000-01-01: a device clock that was never set")
    if us > time.time_ns() // 1000 + _FUTURE_TOLERANCE_US:
        raise PydanticCustomError("timestamp_not_future", "timestamp more than 5 minutes in the future")
    return us


def _timestamp_json_type(value: Any) -> Any:
    """Refuse what lax parsing would turn into a time: booleans and numbers written as text."""
    if isinstance(value, bool):
        raise PydanticCustomError("timestamp_type", "ts is a boolean; send Unix seconds as a number or an ISO 8601 string with offset")
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
        raise PydanticCustomError("timestamp_type", "ts is a number in text; send Unix seconds as a JSON number or an ISO 8601 string with offset")
    return value


Timestamp = Annotated[
    Annotated[float, Strict()] | AwareDatetime, BeforeValidator(_timestamp_json_type), AfterValidator(_timestamp_us)
]
Uint32 = Annotated[int, Strict(), Field(ge=0, le=UINT32_MAX)]


def _hard_bounds(kind: str, column: str) -> tuple[dict[str, float], dict[str, str]]:
    """pydantic bounds of a column from the kind's hard rules, and which rule each bound is."""
    bounds: dict[str, float] = {}
    rule_of: dict[str, str] = {}
    for rule in rules_for(kind, "hard"):
        if column not in rule.columns or rule.relative_to:
            continue
        if rule.min is not None and rule.min > bounds.get("ge", float("-inf")):
            bounds["ge"], rule_of["greater_than_equal"] = rule.min, rule.name
        if rule.max is not None and rule.max < bounds.get("le", float("inf")):
            bounds["le"], rule_of["less_than_equal"] = rule.max, rule.name
    return bounds, rule_of


@dataclass
class PayloadSpec:
    """One endpoint's payload: its TypedDict, validators and the error -> rule table."""

    kind: str
    mapping: ColumnMapping
    item: type
    value_fields: tuple[str, ...]  # canonical names, in WAL column order
    rule_by_error: dict[tuple[str, str], str] = field(default_factory=dict)  # (field, error type) -> rule

    def __post_init__(self):
        self.one = TypeAdapter(self.item)
        self.many = TypeAdapter(list[self.item])
        #: (rule, (x, v, i), tolerance, slack) of the kind's hard |x| <= V*I rules, so that what
        #: the API acknowledges is never refused later by the store's validation
        self.relations = [
            (rule, group)
            for rule in relation_rules_for(self.kind, "hard") if rule.relation == "within_apparent"
            for group in rule.groups if set(group) <= set(self.value_fields)
        ]

    def relation_reject(self, item: dict) -> tuple[str, str, str] | None:
        """(rule, field, detail) of the first physical relation the item breaks, else None."""
        for rule, (x, v, i) in self.relations:
            xv, vv, iv = item.get(x), item.get(v), item.get(i)
            if xv is None or vv is None or iv is None or vv < 0 or iv < 0:
                continue
            limit = rule.apparent_limit(vv, iv)
            if abs(xv) > limit:
                payload = self.mapping.columns[x].column
                return rule.name, payload, (f"{payload}={xv:g} exceeds (1+{rule.tolerance:g})*V*I+{rule.slack:g}={limit:g} "
                                            f"at V={vv:g}, I={iv:g}")
        return None

    def rule_for(self, error: dict[str, Any]) -> tuple[str, str | None]:
        """(rule, field) of one pydantic error."""
        names = [p for p in error["loc"] if isinstance(p, str)]
        name = names[0] if names else None
        canonical = self.alias_to_field.get(name, name)
        kind = error["type"]
        if kind in ("timestamp_not_future", "timestamp_plausible"):
            return f"hard.{kind}", name
        if kind == "finite_number" and canonical in self.value_fields:
            return "hard.value_finite", name
        if canonical == "ts":
            return "hard.timestamp_parseable", name
        if (canonical, kind) in self.rule_by_error:
            return self.rule_by_error[(canonical, kind)], name
        if canonical in self.value_fields:
            return "hard.value_parseable", name
        return "hard.payload_parseable", name

    @property
    def alias_to_field(self) -> dict[str, str]:
        aliases = {col.column: name for name, col in self.mapping.columns.items()}
        return {**aliases, "timestamp": "ts", "ts": "ts"}


def _value_annotation(kind: str, name: str, payload_names: list[str], rules: dict) -> Any:
    bounds, rule_of = _hard_bounds(kind, name)
    for error, rule in rule_of.items():
        rules[(name, error)] = rule
    alias = AliasChoices(*payload_names) if len(payload_names) > 1 else payload_names[0]
    return NotRequired[Annotated[Annotated[float, Strict()] | None, Field(validation_alias=alias, **bounds)]]


def _build_meter() -> PayloadSpec:
    rules: dict = {}
    values = {}
    for name, col in FIRMWARE_MAPPING.columns.items():
        names = [col.column] + ([name] if name != col.column else [])
        values[name] = _value_annotation("meter", name, names, rules)
    annotations = {
        "v": Literal[PAYLOAD_VERSION],
        "device_id": NotRequired[str],
        "seq": NotRequired[Uint32],
        "boot": NotRequired[Uint32],
        "ts": NotRequired[Annotated[Timestamp | None, Field(validation_alias=AliasChoices("ts", "timestamp"))]],
        "age_ms": NotRequired[Uint32],
        "sensor_error": NotRequired[Annotated[bool, Strict()]],
        **values,
    }
    item = TypedDict("EnergyReading", annotations)  # type: ignore[misc]
    item.__pydantic_config__ = _CONFIG  # type: ignore[attr-defined]
    item.__doc__ = "One reading of the ESP8266 + PZEM-004T firmware (payload v1); null values mean a sensor read failure."
    return PayloadSpec("meter", FIRMWARE_MAPPING, item, tuple(values), rules)


def _build_grid() -> PayloadSpec:
    rules: dict = {}
    values = {name: _value_annotation("three_phase", name, [payload], rules) for name, payload in GRID_PAYLOAD_NAMES.items()}
    annotations = {
        "device_id": NotRequired[str],
        "seq": NotRequired[Uint32],
        "boot": NotRequired[Uint32],
        "ts": NotRequired[Annotated[Timestamp | None, Field(validation_alias=AliasChoices("timestamp", "ts"))]],
        "age_ms": NotRequired[Uint32],
        **values,
    }
    item = TypedDict("GridReading", annotations)  # type: ignore[misc]
    item.__pydantic_config__ = _CONFIG  # type: ignore[attr-defined]
    item.__doc__ = ("One three-phase reading as the reference 3-tier system posts it (V, A, Hz, W, var), with the voltage "
                    "THD [%] when the meter measures it.")
    return PayloadSpec("three_phase", GRID_MAPPING, item, tuple(values), rules)


METER = _build_meter()
GRID = _build_grid()


@dataclass
class Reject:
    """One refused item: its index in the request, the rule, the field and what was wrong."""

    index: int
    rule: str
    field: str | None
    detail: str
    raw_text: str | None = None  # verbatim, when the caller has it
    item: Any = None  # else the parsed item, serialised only when ``raw`` is asked for (most never are)

    @property
    def raw(self) -> str:
        return self.raw_text if self.raw_text is not None else _raw(self.item)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "rule": self.rule, "detail": self.detail}


@dataclass
class Parsed:
    """A request body split into WAL rows and rejects.

    ``rows`` are tuples ``(device_id, boot, seq, ts_us, *values)``; ``indices`` maps
    each row to its item index in the request.
    """

    rows: list[tuple]
    indices: list[int]
    rejects: list[Reject]
    items: int


def parse_body(spec: PayloadSpec, body: bytes, device: str, received_us: int) -> Parsed:
    """Validate a body (one object or an array) for ``device``; never raises on bad input."""
    start = body.lstrip()[:1]
    is_array = start == b"["
    try:
        items = spec.many.validate_json(body) if is_array else [spec.one.validate_json(body)]
        return _rows(spec, items, range(len(items)), device, received_us, [])
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
    # slow path: a single object, or an error not tied to one item (not JSON, not an array), refuses the body
    if not is_array or any(not (e["loc"] and isinstance(e["loc"][0], int)) for e in errors):
        return Parsed([], [], [_whole_reject(spec, errors, body)], 1)
    try:
        raw_items = json.loads(body)
    except (ValueError, RecursionError):
        return Parsed([], [], [_whole_reject(spec, errors, body)], 1)
    if not isinstance(raw_items, list):
        return Parsed([], [], [_whole_reject(spec, errors, body)], 1)
    # the array's one validation already named every bad item: no item is validated twice
    by_item: dict[int, list[dict]] = {}
    for e in errors:
        by_item.setdefault(e["loc"][0], []).append({**e, "loc": e["loc"][1:]})
    rejects = [_item_reject(spec, i, errs, raw_items[i]) for i, errs in sorted(by_item.items())]
    good_index = [i for i in range(len(raw_items)) if i not in by_item]
    good = spec.many.validate_python([raw_items[i] for i in good_index]) if good_index else []
    return _rows(spec, good, good_index, device, received_us, rejects, len(raw_items))


def _rows(spec: PayloadSpec, items: list[dict], index, device: str, received_us: int, rejects: list[Reject],
          n_items: int | None = None) -> Parsed:
    rows, indices = [], []
    values = spec.value_fields
    for i, item in zip(index, items):
        get = item.get
        claimed = get("device_id")
        if claimed is not None and claimed != device:
            rejects.append(Reject(i, "hard.device_id_matches_key", "device_id",
                                  f"device_id {claimed!r} is not this key's device {device!r}; send the registered name or omit it",
                                  item=item))
            continue
        broken = spec.relation_reject(item) if spec.relations else None
        if broken is not None:
            rejects.append(Reject(i, broken[0], broken[1], broken[2], item=item))
            continue
        ts = get("ts")
        if ts is None:
            ts = received_us - get("age_ms", 0) * 1000
            if ts < _EARLIEST_US:
                rejects.append(Reject(i, "hard.timestamp_plausible", "age_ms", "receipt time minus age_ms is before 2000-01-01", item=item))
                continue
        rows.append((device, get("boot", 0), get("seq"), ts, *map(get, values)))
        indices.append(i)
    if not rows and not rejects and not items:
        rejects.append(Reject(0, "hard.payload_parseable", None, "empty batch: send at least one reading", "[]"))
    rejects.sort(key=lambda r: r.index)
    return Parsed(rows, indices, rejects, n_items if n_items is not None else len(items))


def _describe(spec: PayloadSpec, errors: list[dict]) -> tuple[str, str | None, str]:
    rule, name = spec.rule_for(errors[0])
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:5]
    )
    return rule, name, detail


def _item_reject(spec: PayloadSpec, index: int, errors: list[dict], item: Any) -> Reject:
    rule, name, detail = _describe(spec, errors)
    return Reject(index, rule, name, detail, item=item)


def _whole_reject(spec: PayloadSpec, errors: list[dict], body: bytes) -> Reject:
    """The body as a whole is refused: not JSON, not an object/array, or a single bad object."""
    errors = [{**e, "loc": tuple(p for p in e["loc"] if not isinstance(p, int))} for e in errors]
    rule, name, detail = _describe(spec, errors)
    return Reject(0, rule, name, detail, body[:MAX_RAW_CHARS].decode("utf-8", "replace"))


def _raw(item: Any) -> str:
    try:
        text = json.dumps(item, default=str)
    except ValueError:
        text = repr(item)
    return text[:MAX_RAW_CHARS]
