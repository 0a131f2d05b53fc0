"""Options and helpers every ``gridtwin`` sub-command module shares (one line on stderr and
exit status 2 for bad input, ``--json`` output)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

#: help text as plain text: no Rich markup (which ate bracketed text such as "[default: ...]", leaving a stray " .")
#: and no type label on flags (Rich mode printed ``--json <bool>``)
MARKUP_MODE = None

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text (for scripts).")]
StoreOpt = Annotated[Path | None, typer.Option("--store", help="Store root [default: data/store of the project, or $GRIDTWIN_STORE].")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Read and validate only; write nothing.")]


def _store(path: Path | None):
    from .store import Store

    return Store(path)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


def _emit(obj: Any, as_json: bool, text: str | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(obj, default=str, indent=None))
    else:
        typer.echo(text if text is not None else str(obj))


def _guarded(fn):
    """Turn the library's input errors into one line on stderr and exit status 2."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from .errors import InputError

        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            _fail(str(exc))
        except (ValueError, KeyError, FileNotFoundError) as exc:
            _fail(str(exc).strip("'\""))

    return wrapper


def table_text(rows, columns: dict[str, str] | None = None, thousands: bool = True) -> str:
    """Rows (a Polars frame or a list of dicts) as a plain-text table: a header line, every row (none cut), no
    dtype line; timestamps as ``2025-01-06 00:00 UTC``. ``columns`` maps column -> header (and picks them);
    ``thousands`` groups digits (1,728,000; off for arbitrary SQL results, where an integer may be a year)."""
    import polars as pl

    frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows, infer_schema_length=None)
    if columns:
        frame = frame.select(list(columns)).rename(columns)
    frame = frame.with_columns(pl.col(c).dt.strftime("%Y-%m-%d %H:%M %Z") for c, t in frame.schema.items()
                               if isinstance(t, pl.Datetime))
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   tbl_formatting="ASCII_MARKDOWN", tbl_width_chars=10_000, fmt_str_lengths=200,
                   tbl_cell_numeric_alignment="RIGHT", thousands_separator="," if thousands else False):
        return str(frame)


def pairs_text(mapping: dict, empty: str = "none") -> str:
    """``{"ok": 10, "partial": 2}`` as ``ok 10, partial 2`` (never a Python dict)."""
    if not mapping:
        return empty
    return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in mapping.items())
