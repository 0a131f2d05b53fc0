"""The canonical data model: three record kinds as Arrow schemas, and validation rules as data.

Every record carries ``ts`` (UTC, microseconds), ``source`` (where it came from,
e.g. ``uci``, ``firmware``, ``sim:voltage_sag``) and ``device_id``. Units live in
each field's Arrow metadata (``unit``), so a Parquet file read anywhere still says
what its numbers mean.

Validation is a table of :class:`LimitRule` (``RULES``). A *hard* rule rejects the
reading (it goes to the rejects dataset with the rule's name); a *soft* rule keeps
the reading and sets its bit in ``quality_flags``. Adding a rule is adding a row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa

from .config import Site, default_site
from .small_frames import SMALL_ROWS

KINDS = ("three_phase", "meter", "pv")
Kind = Literal["three_phase", "meter", "pv"]

TS_TYPE = pa.timestamp("us", tz="UTC")
POLARS_TS = pl.Datetime("us", "UTC")

#: what a device that names itself (firmware, collector registry) may be called; use ``fullmatch``
#: (``re.match`` with ``$`` would let a trailing newline through)
DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
DEVICE_NAME_RULE = "1-64 letters, digits, '.', '_', ':' or '-' starting with a letter or digit"


@dataclass(frozen=True)
class Field:
    """One column of a record kind.

    ``dimension`` ties the field to the unit table in :mod:`gridtwin_lib.units`, so
    an ingest mapping that declares ``kV`` for a voltage is converted and one that
    declares ``A`` for a voltage is refused.
    """

    name: str
    dtype: pa.DataType
    unit: str
    dimension: str
    description: str
    required: bool = False

    def arrow(self) -> pa.Field:
        meta = {"unit": self.unit, "dimension": self.dimension, "description": self.description}
        return pa.field(self.name, self.dtype, nullable=not self.required, metadata=meta)


def _f(name, unit, dimension, description, dtype=None, required=False) -> Field:
    return Field(name, pa.float64() if dtype is None else dtype, unit, dimension, description, required)


COMMON_FIELDS: tuple[Field, ...] = (
    _f("ts", "UTC", "time", "instant of the reading, timezone-aware UTC", TS_TYPE, True),
    _f("source", "", "label", "origin of the record: uci, csv:<file>, firmware, sim:<scenario>", pa.string(), True),
    _f("device_id", "", "label", "meter, measurement point or asset identifier", pa.string(), True),
)
QUALITY_FIELD = _f(
    "quality_flags", "bitmask", "flags",
    "soft-limit violations, one bit per soft rule (see gridtwin_lib.schema.SOFT_RULE_BITS)",
    pa.uint32(), True,
)

_PHASES = ("a", "b", "c")

KIND_FIELDS: dict[str, tuple[Field, ...]] = {
    "three_phase": (
        *(_f(f"v_{p}", "V", "voltage", f"phase {p.upper()} to neutral RMS voltage") for p in _PHASES),
        *(_f(f"i_{p}", "A", "current", f"phase {p.upper()} RMS current") for p in _PHASES),
        _f("frequency", "Hz", "frequency", "system frequency"),
        *(_f(f"p_{p}", "W", "power", f"phase {p.upper()} active power (positive = import)") for p in _PHASES),
        *(_f(f"q_{p}", "var", "reactive_power", f"phase {p.upper()} reactive power (positive = lagging)") for p in _PHASES),
        _f("thd_v", "%", "percent", "voltage total harmonic distortion (optional)"),
    ),
    "meter": (
        _f("voltage", "V", "voltage", "RMS voltage"),
        _f("current", "A", "current", "RMS current"),
        _f("power", "W", "power", "active power"),
        _f("energy", "kWh", "energy", "cumulative active energy counter"),
        _f("frequency", "Hz", "frequency", "supply frequency"),
        _f("power_factor", "1", "fraction", "power factor, 0-1 (as reported by the meter)"),
        _f("reactive_power", "var", "reactive_power", "reactive power (optional)"),
        _f("sub_metering_1", "Wh", "energy_wh", "sub-meter 1 active energy in the interval (optional)"),
        _f("sub_metering_2", "Wh", "energy_wh", "sub-meter 2 active energy in the interval (optional)"),
        _f("sub_metering_3", "Wh", "energy_wh", "sub-meter 3 active energy in the interval (optional)"),
    ),
    "pv": (
        _f("ac_power", "W", "power", "inverter AC output power"),
        _f("dc_voltage", "V", "voltage", "string DC voltage"),
        _f("dc_current", "A", "current", "string DC current"),
        _f("irradiance", "W/m2", "irradiance", "plane-of-array irradiance"),
        _f("module_temperature", "degC", "temperature", "PV module back-sheet temperature"),
        _f("ambient_temperature", "degC", "temperature", "ambient air temperature"),
        _f("inverter_efficiency", "1", "fraction", "AC/DC conversion efficiency, 0-1"),
        _f("battery_soc", "%", "percent", "battery state of charge"),
        _f("wind_speed", "m/s", "speed", "wind speed"),
        _f("humidity", "%", "percent", "relative humidity"),
    ),
}


def fields(kind: str) -> tuple[Field, ...]:
    """Every field of a kind, in storage order (common, kind, quality flags)."""
    _check_kind(kind)
    return (*COMMON_FIELDS, *KIND_FIELDS[kind], QUALITY_FIELD)


def value_fields(kind: str) -> tuple[Field, ...]:
    _check_kind(kind)
    return KIND_FIELDS[kind]


def field_by_name(kind: str, name: str) -> Field:
    for f in fields(kind):
        if f.name == name:
            return f
    raise KeyError(f"{name!r} is not a field of kind {kind!r}; fields: {[f.name for f in fields(kind)]}")


def arrow_schema(kind: str) -> pa.Schema:
    """The Arrow schema of a kind, units in each field's metadata."""
    return pa.schema([f.arrow() for f in fields(kind)], metadata={"gridtwin.kind": kind, "gridtwin.schema_version": "1"})


@cache
def _polars_schema(kind: str) -> tuple[tuple[str, pl.DataType], ...]:
    return tuple(pl.from_arrow(arrow_schema(kind).empty_table()).schema.items())


def polars_schema(kind: str) -> dict[str, pl.DataType]:
    """Polars dtypes of a kind, in storage order."""
    return dict(_polars_schema(kind))


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}; choose one of {', '.join(KINDS)}")


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class LimitRule:
    """A range check on one or more columns, stated as data.

    ``relative_to`` names a :class:`~gridtwin_lib.config.Site` attribute: the
    limits are then fractions of that nominal value (EN 50160's ±10 % of 230 V).
    Bounds are inclusive. Null values are not checked (they are counted as missing).
    """

    name: str
    severity: Literal["hard", "soft"]
    kinds: tuple[str, ...]
    columns: tuple[str, ...]
    min: float | None
    max: float | None
    description: str
    relative_to: str | None = None

    def bounds(self, site: Site) -> tuple[float | None, float | None]:
        scale = getattr(site, self.relative_to) if self.relative_to else 1.0
        lo = None if self.min is None else self.min * scale
        hi = None if self.max is None else self.max * scale
        return lo, hi

    def violation(self, column: str, site: Site) -> pl.Expr:
        lo, hi = self.bounds(site)
        c = pl.col(column)
        cond = pl.lit(False)
        if lo is not None:
            cond = cond | (c < lo)
        if hi is not None:
            cond = cond | (c > hi)
        return cond.fill_null(False)

    def violated(self, values: np.ndarray, site: Site) -> np.ndarray:
        """:meth:`violation` on a float array (NaN for null: never a violation)."""
        lo, hi = self.bounds(site)
        bad = np.zeros(values.shape, dtype=bool)
        if lo is not None:
            bad |= values < lo
        if hi is not None:
            bad |= values > hi
        return bad


_3P_V = ("v_a", "v_b", "v_c")
_3P_I = ("i_a", "i_b", "i_c")
_3P_P = ("p_a", "p_b", "p_c")
_3P_Q = ("q_a", "q_b", "q_c")

RULES: tuple[LimitRule, ...] = (
    # hard limits: physically impossible or sensor nonsense -> rejected
    LimitRule("hard.voltage_range", "hard", ("three_phase",), _3P_V, 0.0, 300.0, "phase voltage must be within 0-300 V"),
    LimitRule("hard.voltage_range", "hard", ("meter",), ("voltage",), 0.0, 300.0, "meter voltage must be within 0-300 V"),
    LimitRule("hard.current_non_negative", "hard", ("three_phase",), _3P_I, 0.0, None, "RMS current cannot be negative"),
    LimitRule("hard.current_non_negative", "hard", ("meter",), ("current",), 0.0, None, "RMS current cannot be negative"),
    LimitRule("hard.current_non_negative", "hard", ("pv",), ("dc_current",), 0.0, None, "RMS current cannot be negative"),
    LimitRule("hard.frequency_range", "hard", ("three_phase", "meter"), ("frequency",), 45.0, 65.0, "frequency must be within 45-65 Hz"),
    LimitRule("hard.power_factor_range", "hard", ("meter",), ("power_factor",), 0.0, 1.0, "power factor must be within 0-1"),
    LimitRule("hard.energy_non_negative", "hard", ("meter",), ("energy",), 0.0, None, "a cumulative energy counter cannot be negative"),
    LimitRule("hard.thd_range", "hard", ("three_phase",), ("thd_v",), 0.0, 100.0, "THD must be within 0-100 %"),
    LimitRule("hard.irradiance_range", "hard", ("pv",), ("irradiance",), 0.0, 1600.0, "irradiance must be within 0-1600 W/m2"),
    LimitRule("hard.efficiency_range", "hard", ("pv",), ("inverter_efficiency",), 0.0, 1.0, "inverter efficiency must be within 0-1"),
    LimitRule("hard.percent_range", "hard", ("pv",), ("battery_soc", "humidity"), 0.0, 100.0, "percentages must be within 0-100 %"),
    LimitRule("hard.temperature_range", "hard", ("pv",), ("module_temperature", "ambient_temperature"), -50.0, 125.0, "temperature must be within -50-125 degC"),
    LimitRule("hard.dc_voltage_range", "hard", ("pv",), ("dc_voltage",), 0.0, 1500.0, "DC voltage must be within 0-1500 V"),
    # magnitudes a meter of the kind can report at all (a current of 1e308 A is a parse or unit error)
    LimitRule("hard.current_range", "hard", ("three_phase",), _3P_I, None, 10_000.0, "LV phase current at most 10 kA (a 4 MVA transformer's secondary)"),
    LimitRule("hard.current_range", "hard", ("meter",), ("current",), None, 1_000.0, "a single meter measures at most 1000 A"),
    LimitRule("hard.power_range", "hard", ("three_phase",), _3P_P + _3P_Q, -3e6, 3e6, "phase power within +-3 MW / Mvar (300 V x 10 kA)"),
    LimitRule("hard.power_range", "hard", ("meter",), ("power", "reactive_power"), -3e5, 3e5, "meter power within +-300 kW / kvar (300 V x 1000 A)"),
    LimitRule("hard.power_range", "hard", ("pv",), ("ac_power",), -1e8, 1e8, "inverter AC power within +-100 MW"),
    LimitRule("hard.wind_speed_non_negative", "hard", ("pv",), ("wind_speed",), 0.0, None, "wind speed cannot be negative"),
    # soft limits: physically possible but outside the standard's band -> kept, flagged
    LimitRule("soft.voltage_en50160", "soft", ("three_phase",), _3P_V, 0.9, 1.1, "EN 50160: supply voltage within nominal ±10 %", "nominal_voltage_v"),
    LimitRule("soft.voltage_en50160", "soft", ("meter",), ("voltage",), 0.9, 1.1, "EN 50160: supply voltage within nominal ±10 %", "nominal_voltage_v"),
    LimitRule("soft.frequency_band", "soft", ("three_phase", "meter"), ("frequency",), 0.98, 1.02, "frequency within nominal ±2 % (49-51 Hz at 50 Hz)", "nominal_frequency_hz"),
    LimitRule("soft.thd_en50160", "soft", ("three_phase",), ("thd_v",), None, 8.0, "EN 50160: voltage THD at most 8 %"),
    LimitRule("soft.module_hot", "soft", ("pv",), ("module_temperature",), None, 85.0, "module above its 85 degC qualification temperature"),
)

@dataclass(frozen=True)
class RelationRule:
    """A physical relation between columns of one reading, stated as data.

    ``relation`` is one of

    * ``"within_apparent"``: ``|x| <= v * i * (1 + tolerance) + slack`` for each
      ``(x, v, i)`` in ``groups``; active or reactive power cannot exceed the apparent power
      V*I (per phase);
    * ``"pf_matches"``: ``| |p| / (v * i) - pf | <= tolerance`` for each ``(p, v, i, pf)`` where
      ``v * i >= min_apparent``; a reported power factor agrees with P and S;
    * ``"pf_plausible"``: ``|p| / (v * i) >= tolerance`` for each ``(p, v, i)`` where
      ``v * i >= min_apparent``; an implied power factor of 0.001 is a unit mistake
      (kW mapped as W), not a load;
    * ``"non_negative_if_consumption_only"``: ``x >= 0`` for each ``(x,)``, only for meters
      declared consumption-only (a household import meter cannot report export).

    Rows with a null in a group are not checked for that group.
    """

    name: str
    severity: Literal["hard", "soft"]
    kinds: tuple[str, ...]
    relation: Literal["within_apparent", "pf_matches", "pf_plausible", "non_negative_if_consumption_only"]
    groups: tuple[tuple[str, ...], ...]
    tolerance: float
    description: str
    slack: float = 0.0
    min_apparent: float = 0.0

    def apparent_limit(self, v, i):
        """``v * i * (1 + tolerance) + slack``: the largest ``|x|`` a ``within_apparent`` group allows
        (a Polars expression, a NumPy array or a number, as ``v`` and ``i`` are)."""
        return v * i * (1 + self.tolerance) + self.slack

    def _terms(self, cols: list) -> tuple:
        """(violation, first and second detail values) of one group; ``cols`` Polars expressions or
        NumPy arrays: the relation is written once for the store's validation and for a few readings."""
        if self.relation == "within_apparent":
            x, v, i = cols
            limit = self.apparent_limit(v, i)
            return (abs(x) > limit) & (v >= 0) & (i >= 0), x, limit  # a negative V or I is its range rule's
        if self.relation == "pf_matches":
            p, v, i, pf = cols
            implied = abs(p) / (v * i)
            return ((v * i) >= self.min_apparent) & (abs(implied - pf) > self.tolerance), pf, implied
        if self.relation == "pf_plausible":
            p, v, i = cols
            implied = abs(p) / (v * i)
            return ((v * i) >= self.min_apparent) & (implied < self.tolerance), implied, None
        (x,) = cols
        return x < 0, x, None

    def _groups(self, present, consumption_only: bool) -> list[tuple[str, ...]]:
        if self.relation == "non_negative_if_consumption_only" and not consumption_only:
            return []
        return [g for g in self.groups if set(g) <= set(present)]

    def checks(self, present: set[str], consumption_only: bool = False) -> list[tuple[pl.Expr, pl.Expr]]:
        """(violation, detail) expressions, one per group whose columns are all present."""
        out = []
        for group in self._groups(present, consumption_only):
            bad, a, b = self._terms([pl.col(c) for c in group])
            if self.relation == "within_apparent":
                detail = _fmt(f"{group[0]}=", a, f" exceeds (1+{self.tolerance:g})*{group[1]}*{group[2]}+{self.slack:g}=", b)
            elif self.relation == "pf_matches":
                detail = _fmt(f"{group[3]}=", a, f" but |{group[0]}|/({group[1]}*{group[2]})=", b)
            elif self.relation == "pf_plausible":
                detail = _fmt(f"|{group[0]}|/({group[1]}*{group[2]})=", a,
                              f" < {self.tolerance:g}: is the power column in kW mapped as W?", None)
            else:
                detail = _fmt(f"{group[0]}=", a, " < 0 on a consumption-only meter", None)
            out.append((bad.fill_null(False), detail))
        return out

    def violated(self, arrays: dict[str, np.ndarray], consumption_only: bool = False) -> list[np.ndarray]:
        """:meth:`checks`' violations on float arrays by column (NaN for null: never a violation),
        one per group whose columns are all in ``arrays``, in the same order."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return [self._terms([arrays[c] for c in group])[0] for group in self._groups(arrays.keys(), consumption_only)]


def _fmt(prefix: str, a: pl.Expr, middle: str, b: pl.Expr | None) -> pl.Expr:
    parts = [pl.lit(prefix), a.round_sig_figs(6).cast(pl.String), pl.lit(middle)]
    if b is not None:
        parts.append(b.round_sig_figs(4).cast(pl.String))
    return pl.concat_str(parts)


_3P_PVI = tuple((f"p_{p}", f"v_{p}", f"i_{p}") for p in _PHASES)
_3P_QVI = tuple((f"q_{p}", f"v_{p}", f"i_{p}") for p in _PHASES)

RELATION_RULES: tuple[RelationRule, ...] = (
    RelationRule("hard.power_within_apparent", "hard", ("three_phase",), "within_apparent", _3P_PVI, 0.15,
                 "per phase |P| <= V*I*1.15 + 50 W (15 % for meter error and interval averaging, 50 W for a 0.2 A current resolution at 250 V)", slack=50.0),
    RelationRule("hard.power_within_apparent", "hard", ("meter",), "within_apparent", (("power", "voltage", "current"),), 0.15,
                 "|P| <= V*I*1.15 + 50 W", slack=50.0),
    RelationRule("hard.reactive_within_apparent", "hard", ("three_phase",), "within_apparent", _3P_QVI, 0.15,
                 "per phase |Q| <= V*I*1.15 + 50 var", slack=50.0),
    RelationRule("hard.reactive_within_apparent", "hard", ("meter",), "within_apparent", (("reactive_power", "voltage", "current"),), 0.15,
                 "|Q| <= V*I*1.15 + 50 var", slack=50.0),
    RelationRule("soft.power_factor_mismatch", "soft", ("meter",), "pf_matches", (("power", "voltage", "current", "power_factor"),), 0.15,
                 "reported power factor within 0.15 of |P|/(V*I) (where V*I >= 50 VA)", min_apparent=50.0),
    # (not for three_phase: a feeder's net P is near 0 while PV export balances the load, at full current)
    RelationRule("soft.power_factor_implausible", "soft", ("meter",), "pf_plausible", (("power", "voltage", "current"),), 0.02,
                 "implied power factor |P|/(V*I) at least 0.02 where V*I >= 100 VA (else: a unit mistake?)", min_apparent=100.0),
    RelationRule("soft.negative_consumption", "soft", ("meter",), "non_negative_if_consumption_only", (("power",),), 0.0,
                 "a meter declared consumption-only reports negative active power"),
)

#: record-level rules: not range checks on a value column, but named rules all the same
RECORD_RULES = {
    "hard.timestamp_parseable": "timestamp missing or not parseable",
    "hard.timestamp_nonexistent": "a naive local time inside a spring-forward gap (it never happened on that zone's clocks)",
    "hard.timestamp_ambiguous": "a naive local time in the repeated autumn hour whose pass the row order cannot tell",
    "hard.timestamp_conflict": "a second, different reading of one device at one instant (the store keeps one per device and ts)",
    "hard.timestamp_not_future": "timestamp more than 5 minutes in the future",
    "hard.timestamp_plausible": "timestamp before 2000-01-01 (a device clock that was never set)",
    "hard.value_parseable": "a numeric value could not be parsed",
    "hard.value_finite": "a value is +-inf or overflows a float (possibly after unit conversion); NaN counts as missing",
    "hard.payload_parseable": "a payload line is not a JSON object",
    "hard.device_id_matches_key": "a payload's device_id differs from the device its API key belongs to",
}
FUTURE_TOLERANCE = timedelta(minutes=5)
#: readings before this instant come from a clock that was never set (a ``ts`` of 0 is 1970)
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC)

#: soft rule name -> bit in ``quality_flags`` (stable: append only)
SOFT_RULE_BITS: dict[str, int] = {
    "soft.voltage_en50160": 0,
    "soft.frequency_band": 1,
    "soft.thd_en50160": 2,
    "soft.module_hot": 3,
    "soft.suspected_imputed": 4,  # set by a reader, not a range rule (see gridtwin_lib.ingest.uci)
    "soft.power_factor_mismatch": 5,
    "soft.power_factor_implausible": 6,
    "soft.negative_consumption": 7,
}
#: rules on the timestamp a reader resolved, named in its ``_ts_rule`` column
TS_RULES = ("hard.timestamp_nonexistent", "hard.timestamp_ambiguous")


def rules_for(kind: str, severity: str | None = None) -> list[LimitRule]:
    _check_kind(kind)
    return [r for r in RULES if kind in r.kinds and (severity is None or r.severity == severity)]


def relation_rules_for(kind: str, severity: str | None = None) -> list[RelationRule]:
    _check_kind(kind)
    return [r for r in RELATION_RULES if kind in r.kinds and (severity is None or r.severity == severity)]


def flag_mask(*rule_names: str) -> int:
    """Bitmask for soft rule names, e.g. ``flag_mask("soft.voltage_en50160")``."""
    mask = 0
    for name in rule_names:
        mask |= 1 << SOFT_RULE_BITS[name]
    return mask


def decode_flags(mask: int) -> list[str]:
    return [name for name, bit in SOFT_RULE_BITS.items() if mask & (1 << bit)]


@dataclass
class Validation:
    """Outcome of :func:`validate`: kept rows (with flags) and rejected rows (with reasons).

    ``hits`` counts, per rule (hard and soft), the rows it hit; a rejected row counts under
    every hard rule it broke, so the counts can add up to more than the rejects.
    """

    accepted: pl.DataFrame
    rejected: pl.DataFrame  # the input columns plus ``rule`` and ``detail``
    flagged: int = 0
    missing_values: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)


def _range_detail(rule: LimitRule, column: str, site: Site) -> pl.Expr:
    lo, hi = rule.bounds(site)
    limits = f"[{'' if lo is None else f'{lo:g}'}, {'' if hi is None else f'{hi:g}'}]"
    return pl.concat_str([pl.lit(f"{column}="), pl.col(column).round_sig_figs(6).cast(pl.String), pl.lit(f" outside {limits}")])


def validate(
    df: pl.DataFrame, kind: str, site: Site | None = None, now: datetime | None = None, consumption_only: bool = False,
) -> Validation:
    """Apply the kind's rules (:data:`RULES`, :data:`RELATION_RULES`, record rules) to a canonical frame.

    Parameters
    ----------
    df
        Canonical column names and types (``ts`` as UTC, nullable when it could not be
        parsed). Optional reader columns: ``_parse_error`` (text), ``_extra_flags`` (bits),
        ``_ts_rule`` (a :data:`TS_RULES` name why ``ts`` is null), ``_ts_detail`` (the
        timestamp text and what it is not, the detail of a timestamp reject).
    kind, site, now
        Record kind; nominal values for relative rules; "now" for the future rule [UTC].
    consumption_only
        The meter only imports: negative active power is flagged.

    Returns
    -------
    Validation
        Accepted rows with ``quality_flags``; rejected rows with the first broken rule in
        ``rule`` and, in ``detail``, each broken rule with the value and the limit it broke.
        NaN in a value column is stored as null and counted as missing; +-inf (also after a
        unit conversion overflowed) is rejected (``hard.value_finite``). Several rows of one
        device at one instant are the caller's concern (see
        :func:`~gridtwin_lib.ingest.core.split_conflicts`).
    """
    site = site or default_site()
    now = now or datetime.now(UTC)
    present = set(df.columns)
    dtypes = df.schema
    values = [f.name for f in value_fields(kind) if f.name in present and dtypes[f.name].is_float()]
    if df.height <= NUMPY_MAX_ROWS and not present & {"_ts_rule", "_ts_detail", "_parse_error"}:
        screened = _validate_small(df, kind, site, now, consumption_only, values)
        if screened is not None:
            return screened
    if values:
        df = df.with_columns(pl.col(c).fill_nan(None) for c in values)

    checks: list[tuple[str, pl.Expr, pl.Expr | None]] = []  # (rule, violation, detail)
    ts_null = pl.col("ts").is_null()
    ts_detail = pl.col("_ts_detail") if "_ts_detail" in present else None  # the reader's words: text and format
    if "_ts_rule" in present:
        ts_null = ts_null & pl.col("_ts_rule").is_null()
        for name in TS_RULES:
            checks.append((name, (pl.col("_ts_rule") == name).fill_null(False), ts_detail))
    checks += [
        ("hard.timestamp_parseable", ts_null, ts_detail),
        ("hard.timestamp_not_future", (pl.col("ts") > pl.lit(now + FUTURE_TOLERANCE)).fill_null(False),
         pl.concat_str([pl.lit("ts="), pl.col("ts").cast(pl.String), pl.lit(f" after now+{FUTURE_TOLERANCE}")])),
        ("hard.timestamp_plausible", (pl.col("ts") < pl.lit(EARLIEST_TS)).fill_null(False),
         pl.concat_str([pl.lit("ts="), pl.col("ts").cast(pl.String), pl.lit(f" before {EARLIEST_TS.date()}")])),
    ]
    for c in values:
        checks.append(("hard.value_finite", pl.col(c).is_infinite().fill_null(False),
                       pl.concat_str([pl.lit(f"{c}="), pl.col(c).cast(pl.String), pl.lit(" (after unit conversion) is not finite")])))
    for rule in rules_for(kind, "hard"):
        for col in rule.columns:
            if col in present:
                checks.append((rule.name, rule.violation(col, site), _range_detail(rule, col, site)))
    for rule in relation_rules_for(kind, "hard"):
        for bad, detail in rule.checks(present, consumption_only):
            checks.append((rule.name, bad, detail))
    if "_parse_error" in present:
        checks.append(("hard.value_parseable", pl.col("_parse_error").is_not_null(), pl.col("_parse_error")))

    hit_cols = [f"_hit{k}" for k in range(len(checks))]
    marked = df.with_columns([expr.alias(c) for c, (_, expr, _) in zip(hit_cols, checks)]).with_columns(
        pl.any_horizontal(hit_cols).alias("_reject") if hit_cols else pl.lit(False).alias("_reject"))
    soft_hits: list[tuple[str, pl.Expr]] = []
    for rule in rules_for(kind, "soft"):
        for col in rule.columns:
            if col in present:
                soft_hits.append((rule.name, rule.violation(col, site)))
    for rule in relation_rules_for(kind, "soft"):
        for bad, _ in rule.checks(present, consumption_only):
            soft_hits.append((rule.name, bad))
    soft_cols = [f"_soft{k}" for k in range(len(soft_hits))]
    flags = pl.lit(0, dtype=pl.UInt32)
    for c, (name, _) in zip(soft_cols, soft_hits):
        bit = pl.lit(1 << SOFT_RULE_BITS[name], dtype=pl.UInt32)
        flags = flags | pl.when(pl.col(c)).then(bit).otherwise(pl.lit(0, dtype=pl.UInt32))
    if "_extra_flags" in present:  # flags a reader determined (e.g. values copied by a data publisher)
        flags = flags | pl.col("_extra_flags").cast(pl.UInt32).fill_null(0)

    drop = [*hit_cols, "_reject", *[c for c in ("_parse_error", "_extra_flags", "_ts_rule", "_ts_detail") if c in present]]
    n_rejected = int(marked["_reject"].sum())
    kept = marked.filter(~pl.col("_reject")) if n_rejected else marked
    # each soft rule evaluated once: for the flags and for its count
    kept = kept.with_columns(bad.alias(c) for c, (_, bad) in zip(soft_cols, soft_hits)).with_columns(flags.alias("quality_flags"))
    accepted = kept.drop([*drop, *soft_cols])

    hits: dict[str, int] = {}
    if n_rejected:
        named = [pl.when(pl.col(c)).then(pl.lit(name)) for c, (name, _, _) in zip(hit_cols, checks)]
        explained = [
            pl.when(pl.col(c)).then(pl.coalesce(pl.concat_str([pl.lit(name), pl.lit(": "), detail]), pl.lit(name))
                                    if detail is not None else pl.lit(name))
            for c, (name, _, detail) in zip(hit_cols, checks)
        ]
        rejected = (marked.filter(pl.col("_reject"))
                    .with_columns(pl.coalesce(named).alias("rule"), pl.concat_str(explained, separator="; ", ignore_nulls=True).alias("detail"))
                    .drop(drop))
        counts = marked.select(pl.col(c).sum() for c in hit_cols).row(0)
        for (name, _, _), n in zip(checks, counts):
            if n:
                hits[name] = hits.get(name, 0) + int(n)
    else:  # nothing broke a hard rule (the usual case): no reject frame or hit counts to compute
        rejected = marked.clear().drop(drop).with_columns(pl.lit(None, pl.String).alias("rule"), pl.lit(None, pl.String).alias("detail"))
    flagged = 0
    if accepted.height:
        *counts, flagged = kept.select(*[pl.col(c).sum() for c in soft_cols], (pl.col("quality_flags") > 0).sum()).row(0)
        for (name, _), n in zip(soft_hits, counts):
            if n:
                hits[name] = hits.get(name, 0) + int(n)
        flagged = int(flagged)
    missing = {
        f.name: int(accepted[f.name].null_count())
        for f in value_fields(kind)
        if f.name in accepted.columns and accepted[f.name].null_count()
    }
    return Validation(accepted=accepted, rejected=rejected, flagged=flagged, missing_values=missing, hits=dict(sorted(hits.items())))


#: frames of at most this many rows are validated with NumPy (:func:`_validate_small`): the inference
#: engine's few readings and the live scorer's polls would spend ~4 ms planning Polars expressions;
#: larger frames (ingest, batches) are worth Polars' threads
NUMPY_MAX_ROWS = SMALL_ROWS


def _validate_small(df: pl.DataFrame, kind: str, site: Site, now: datetime, consumption_only: bool,
                    values: list[str]) -> Validation | None:
    """:func:`validate` of a small frame by the same rules on NumPy arrays, when no hard rule is
    broken (the usual case); None otherwise, and the caller's Polars path words the rejects."""
    arrays = {c: df.get_column(c).to_numpy().astype(np.float64, copy=False) for c in values}
    block = np.column_stack(list(arrays.values())) if arrays else np.empty((df.height, 0))
    ts = df["ts"]
    if ts.null_count():
        return None
    ts_us = (ts.cast(pl.Int64) if getattr(ts.dtype, "time_unit", None) == "us" else ts.dt.epoch("us")).to_numpy()  # cast: no expression to plan
    if (ts_us > _epoch_us(now + FUTURE_TOLERANCE)).any() or (ts_us < _epoch_us(EARLIEST_TS)).any():
        return None
    if np.isinf(block).any():
        return None
    lo, hi = _hard_limits(kind, site, tuple(arrays))  # every hard limit rule at once (NaN compares false)
    if ((block < lo) | (block > hi)).any():
        return None
    for rule in relation_rules_for(kind, "hard"):
        if any(bad.any() for bad in rule.violated(arrays, consumption_only)):
            return None
    flags = np.zeros(df.height, dtype=np.uint32)
    hits: dict[str, int] = {}
    soft = [(rule.name, rule.violated(arrays[c], site)) for rule in rules_for(kind, "soft") for c in rule.columns if c in arrays]
    soft += [(rule.name, bad) for rule in relation_rules_for(kind, "soft") for bad in rule.violated(arrays, consumption_only)]
    for name, bad in soft:
        flags[bad] |= np.uint32(1 << SOFT_RULE_BITS[name])
        if n := int(bad.sum()):
            hits[name] = hits.get(name, 0) + n
    if "_extra_flags" in df.columns:
        flags |= df["_extra_flags"].cast(pl.UInt32).fill_null(0).to_numpy()
    missing_floats = np.isnan(block).sum(axis=0)  # null or NaN: both are stored as null
    nan = [c for c, n in zip(arrays, missing_floats.tolist()) if n and n != df.get_column(c).null_count()]
    quality = pl.Series("quality_flags", flags, dtype=pl.UInt32)
    if nan:
        accepted = df.with_columns(*[pl.col(c).fill_nan(None) for c in nan], quality)
    elif "quality_flags" in df.columns:  # no expression to plan for the few rows of a reading or a poll
        accepted = df.clone()
        accepted.replace_column(df.get_column_index("quality_flags"), quality)
    else:
        accepted = df.hstack([quality])
    rejected = df.clear()
    if "_extra_flags" in df.columns:
        accepted, rejected = accepted.drop("_extra_flags"), rejected.drop("_extra_flags")
    rejected = rejected.hstack([pl.Series("rule", [], pl.String), pl.Series("detail", [], pl.String)])
    missing_of = dict(zip(arrays, missing_floats.tolist()))
    missing = {f.name: int(n) for f in value_fields(kind) if f.name in accepted.columns
               and (n := missing_of[f.name] if f.name in missing_of else accepted.get_column(f.name).null_count())}
    return Validation(accepted=accepted, rejected=rejected, flagged=int((flags > 0).sum()), missing_values=missing,
                      hits=dict(sorted(hits.items())))


@lru_cache(maxsize=64)
def _hard_limits(kind: str, site: Site, columns: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The tightest lower and upper bound of every hard :class:`LimitRule` of ``kind`` on each of
    ``columns`` (-inf / +inf where none): a value breaks some hard limit when it is outside its column's pair."""
    lo, hi = np.full(len(columns), -np.inf), np.full(len(columns), np.inf)
    index = {c: k for k, c in enumerate(columns)}
    for rule in rules_for(kind, "hard"):
        low, high = rule.bounds(site)
        for c in rule.columns:
            if c in index:
                if low is not None:
                    lo[index[c]] = max(lo[index[c]], low)
                if high is not None:
                    hi[index[c]] = min(hi[index[c]], high)
    return lo, hi


def _epoch_us(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def conform(df: pl.DataFrame, kind: str) -> pl.DataFrame:
    """Order and type a frame as the kind's schema; absent optional fields become null."""
    cols = []
    for f in fields(kind):
        dtype = polars_schema(kind)[f.name]
        if f.name in df.columns:
            cols.append(pl.col(f.name).cast(dtype))
        else:
            if f.required and f.name != "quality_flags":
                raise ValueError(f"record kind {kind!r} needs column {f.name!r}")
            default = 0 if f.name == "quality_flags" else None
            cols.append(pl.lit(default, dtype=dtype).alias(f.name))
    return df.select(cols)
