"""Options and helpers every ``gridtwin`` sub-command module shares (one line on stderr and
exit status 2 for bad input, ``--json`` output)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

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
