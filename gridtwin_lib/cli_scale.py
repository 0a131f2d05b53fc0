"""``gridtwin mlflow-server``: the shared, PostgreSQL-backed MLflow tracking server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated, Optional

import typer

from .cli_common import _guarded


def register(app: typer.Typer) -> None:
    @app.command("mlflow-server")
    @_guarded
    def mlflow_server_cmd(
        backend_store_uri: Annotated[Optional[str], typer.Option(help="PostgreSQL URL of runs and registry (database created if missing); default $GRIDTWIN_MLFLOW_BACKEND, else postgresql+psycopg://postgres@127.0.0.1:5432/gridtwin_mlflow.")] = None,
        artifacts: Annotated[Optional[Path], typer.Option(help="Artifact directory, local or shared storage; default mlruns/server-artifacts.")] = None,
        host: Annotated[str, typer.Option(help="Interface to bind (127.0.0.1 keeps it local).")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port.")] = 5000,
        workers: Annotated[int, typer.Option(help="Server worker processes.")] = 1,
    ):
        """Run an MLflow tracking server backed by PostgreSQL; point clients at it with MLFLOW_TRACKING_URI."""
        from . import config
        from .mlflow_server import DEFAULT_BACKEND, ensure_database, server_command

        backend = ensure_database(backend_store_uri or os.environ.get("GRIDTWIN_MLFLOW_BACKEND") or DEFAULT_BACKEND)
        art = Path(artifacts or config.mlruns_dir() / "server-artifacts").resolve()
        art.mkdir(parents=True, exist_ok=True)
        typer.echo(f"MLflow server on http://{host}:{port} (artifacts {art}); in another shell:\n"
                   f"  export MLFLOW_TRACKING_URI=http://{host}:{port}", err=True)
        raise typer.Exit(subprocess.call(server_command(backend, art, host, port, workers)))
