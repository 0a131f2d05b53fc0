"""Unit conversion for ingest mappings: every unit belongs to one dimension.

A mapping that says a voltage column is in ``kV`` is scaled to V; one that says
it is in ``A`` is refused, because the dimensions differ. Conversions are affine
(``si = value * scale + offset``) so kelvin and °F work too.
"""

from __future__ import annotations

from dataclasses import dataclass

#: hours in a (clock) day: day-ahead schedules, daily profiles and forecasts are 24 hourly values
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class Unit:
    symbol: str
    dimension: str
    scale: float = 1.0
    offset: float = 0.0


_UNITS = [
    Unit("V", "voltage"), Unit("mV", "voltage", 1e-3), Unit("kV", "voltage", 1e3),
    Unit("A", "current"), Unit("mA", "current", 1e-3), Unit("kA", "current", 1e3),
    Unit("W", "power"), Unit("kW", "power", 1e3), Unit("MW", "power", 1e6),
    Unit("var", "reactive_power"), Unit("kvar", "reactive_power", 1e3), Unit("Mvar", "reactive_power", 1e6),
    Unit("Hz", "frequency"), Unit("mHz", "frequency", 1e-3),
    # cumulative energy is stored in kWh, interval sub-metering in Wh
    Unit("kWh", "energy"), Unit("Wh", "energy", 1e-3), Unit("MWh", "energy", 1e3),
    Unit("Wh", "energy_wh"), Unit("kWh", "energy_wh", 1e3),
    Unit("1", "fraction"), Unit("%", "fraction", 1e-2),
    Unit("%", "percent"), Unit("1", "percent", 1e2),
    Unit("W/m2", "irradiance"), Unit("kW/m2", "irradiance", 1e3),
    Unit("degC", "temperature"), Unit("K", "temperature", 1.0, -273.15), Unit("degF", "temperature", 5 / 9, -32 * 5 / 9),
    Unit("m/s", "speed"), Unit("km/h", "speed", 1 / 3.6),
]
_ALIASES = {"VAR": "var", "kVAr": "kvar", "kVAR": "kvar", "C": "degC", "°C": "degC", "W/m²": "W/m2", "pu": "1"}


def lookup(symbol: str, dimension: str) -> Unit:
    """The unit ``symbol`` for ``dimension``; ``ValueError`` names the valid choices."""
    symbol = _ALIASES.get(symbol, symbol)
    for unit in _UNITS:
        if unit.symbol == symbol and unit.dimension == dimension:
            return unit
    valid = sorted({u.symbol for u in _UNITS if u.dimension == dimension})
    raise ValueError(f"unit {symbol!r} is not a unit of {dimension}; use one of {', '.join(valid)}")



def units_of(dimension: str) -> list[Unit]:
    """Every unit of ``dimension`` (e.g. to suggest the one that fits)."""
    return [u for u in _UNITS if u.dimension == dimension]
