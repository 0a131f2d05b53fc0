"""The ESP8266 + PZEM-004T firmware's payloads: one JSON object per line (NDJSON).

Payload v1 -- the contract the firmware and the HTTP collector follow::

    {"v":1,"device_id":"esp8266-3c71bf","seq":1234,"ts":1732300000,
     "voltage":229.8,"current":0.412,"power":88.1,"energy":12.345,
     "frequency":50.0,"pf":0.93}

=========  ==============  =======  =================================================
field      type            unit     meaning
=========  ==============  =======  =================================================
v          int             --       payload version, must be 1 (required)
device_id  string          --       device name as registered at the collector (required)
seq        int             --       message counter, wraps; informational, not stored
ts         number|string   s / --   Unix seconds (int or float, UTC), or ISO 8601
                                    text *with* offset (``...Z``, ``...+10:00``) (required)
voltage    number          V        RMS voltage
current    number          A        RMS current
power      number          W        active power
energy     number          kWh      cumulative active energy counter
frequency  number          Hz       supply frequency
pf         number          1        power factor, 0-1
=========  ==============  =======  =================================================

The firmware itself omits ``ts`` until its clock is NTP-synced and sends ``age_ms``
instead; only the HTTP collector (which knows the receipt time) can place such a
reading, so NDJSON files read here must carry ``ts`` (the collector writes it).

Value fields may be absent or ``null`` (stored as null). Unknown fields are
ignored, so later firmware may add fields without breaking this reader. Blank
lines are skipped. A line that is not UTF-8 JSON, not an object, not version 1
or lacks ``device_id``/``ts``, or whose ``device_id`` the collector's registry would refuse
(:data:`~gridtwin_lib.schema.DEVICE_NAME`), is rejected with ``hard.payload_parseable``; an
ISO ``ts`` without an offset is rejected with ``hard.timestamp_parseable``; a
value that is not a JSON number (also a number in text, ``"230"``) with ``hard.value_parseable``. Every reject keeps the
verbatim line and ``<file>:<line>``. A delivery repeated by the firmware (same
``device_id`` and ``ts``) is stored once and counted in ``duplicates``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from ..schema import DEVICE_NAME, DEVICE_NAME_RULE, POLARS_TS
from ..store import Store
from .core import Column, ColumnMapping, IngestSummary, ingest_frame
from .files import _check_file

PAYLOAD_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_VALUES = ("voltage", "current", "power", "energy", "frequency", "pf")

FIRMWARE_MAPPING = ColumnMapping(
    "meter",
    {
        "voltage": Column("voltage", "V"),
        "current": Column("current", "A"),
        "power": Column("power", "W"),
        "energy": Column("energy", "kWh"),
        "frequency": Column("frequency", "Hz"),
        "power_factor": Column("pf", "1"),
    },
    timestamp=["ts"],
    device_column="device_id",
)

_RAW_SCHEMA = {
    "line": pl.Int64, "payload": pl.String, "device_id": pl.String, "seq": pl.Int64, "ts": POLARS_TS,
    **{name: pl.String for name in _VALUES}, "_ts_detail": pl.String,
}
_REJECT_SCHEMA = {
    "device_id": pl.String, "ts": POLARS_TS, "rule": pl.String, "detail": pl.String,
    "location": pl.String, "raw": pl.String, "line": pl.Int64,
}


def parse_payload_lines(lines: Iterable[str | bytes], where: str = "<lines>") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split payload lines into a raw frame (one row per payload) and parse rejects.

    The raw frame holds ``line`` (1-based), ``payload`` (the verbatim line),
    ``device_id``, ``seq``, ``ts`` (UTC, null when unparseable) and the value
    fields as text (numbers as written, for ``hard.value_parseable``) and ``_ts_detail``
    (why ``ts`` is null, naming the value, for its reject's detail). Rejects
    carry ``rule``, ``detail``, ``location`` (``<where>:<line>``) and ``raw``.
    """
    rows: list[dict] = []
    rejects: list[dict] = []
    for n, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError:
                rejects.append(_reject(n, line.decode("utf-8", "replace").rstrip("\r\n"), "line is not UTF-8", where))
                continue
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        obj, problem = _decode(text)
        if problem:
            rejects.append(_reject(n, text, problem, where, obj))
            continue
        seq = obj.get("seq")
        ts = _timestamp(obj["ts"])
        rows.append({
            "line": n,
            "payload": text,
            "device_id": obj["device_id"],
            "seq": seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
            "ts": ts,
            **{name: _text(obj.get(name)) for name in _VALUES},
            "_ts_detail": None if ts else f"ts={json.dumps(obj['ts'])} is neither Unix seconds nor ISO 8601 text with a UTC offset",
        })
    return pl.DataFrame(rows, schema=_RAW_SCHEMA), pl.DataFrame(rejects, schema=_REJECT_SCHEMA)


def ingest_ndjson(
    path: str | Path,
    store: Store | None = None,
    source: str = "firmware",
    dry_run: bool = False,
) -> IngestSummary:
    """Ingest one NDJSON file of firmware payloads as ``meter`` records."""
    started = time.perf_counter()
    path = Path(path)
    _check_file(path)
    with open(path, "rb") as fh:
        raw, rejects = parse_payload_lines(fh, str(path))
    return ingest_frame(
        raw, FIRMWARE_MAPPING, source, store or Store(), str(path),
        extra_rejects=rejects.drop("line"), dry_run=dry_run, started=started,
        line_numbers=raw["line"], raw_lines=raw["payload"],
    )


def _decode(text: str) -> tuple[dict | None, str | None]:
    """The payload object, or the reason the line is not a v1 payload."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return None, f"not JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(obj, dict):
        return None, f"not a JSON object but a JSON {type(obj).__name__}"
    if obj.get("v") != PAYLOAD_VERSION:
        return obj, f"payload version {obj.get('v')!r} is not {PAYLOAD_VERSION}"
    if not isinstance(obj.get("device_id"), str) or not obj["device_id"]:
        return obj, "device_id missing or not a non-empty string"
    if not DEVICE_NAME.fullmatch(obj["device_id"]):  # the collector's registry would refuse it too
        return obj, f"device_id {obj['device_id']!r} is not a valid device name; use {DEVICE_NAME_RULE}"
    if obj.get("ts") is None or isinstance(obj["ts"], (bool, list, dict)):
        return obj, "ts missing or not a number/string"
    return obj, None


def _reject(n: int, text: str, detail: str, where: str, obj: dict | None = None) -> dict:
    device = obj.get("device_id") if isinstance(obj, dict) and isinstance(obj.get("device_id"), str) else None
    return {
        "device_id": device, "ts": None, "rule": "hard.payload_parseable", "detail": detail,
        "location": f"{where}:{n}", "raw": text, "line": n,
    }


def _timestamp(value: int | float | str) -> datetime | None:
    """Unix seconds or ISO 8601 with offset -> UTC datetime; None when neither."""
    try:
        if isinstance(value, (int, float)):
            return _EPOCH + timedelta(microseconds=round(value * 1_000_000))
        parsed = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def _text(value) -> str | None:
    """A JSON value as text: numbers as written, null as None, anything else verbatim JSON.

    A string stays quoted (``"230"``), so a number sent as text is ``hard.value_parseable``,
    as at the collector's API, not read as a number.
    """
    if value is None:
        return None
    return json.dumps(value)
