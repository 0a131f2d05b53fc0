"""A shared MLflow tracking server backed by PostgreSQL (``gridtwin mlflow-server``).

The workbench default is an embedded SQLite store (:mod:`gridtwin_lib.tracking`).
A team shares one server instead: runs and the registry live in a PostgreSQL
database (created if missing), artifacts in one absolute directory (local or on
shared storage) that the server proxies (``--serve-artifacts``), so clients need
no access to that directory. The server binds 127.0.0.1 unless told otherwise.

Clients point at it with ``MLFLOW_TRACKING_URI=http://127.0.0.1:<port>``; the
pipelines, the registry helpers and the inference engine all go through
:func:`gridtwin_lib.tracking.client`, which honours that variable.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import sqlalchemy as sa

from . import config
from .errors import InputError

DEFAULT_BACKEND = "postgresql+psycopg://postgres@127.0.0.1:5432/gridtwin_mlflow"


class ServerError(InputError):
    """The tracking server cannot be prepared or did not come up."""


def ensure_database(backend_uri: str) -> str:
    """Create the PostgreSQL database of ``backend_uri`` if it does not exist; return the URI.

    Parameters
    ----------
    backend_uri : SQLAlchemy URL of the MLflow backend store (``postgresql+psycopg://...``).

    Returns
    -------
    str : the same URI, the database now existing.
    """
    try:
        url = sa.make_url(backend_uri)
    except sa.exc.ArgumentError:
        raise ServerError(f"{backend_uri!r} is not a database URL; use e.g. {DEFAULT_BACKEND}") from None
    if url.get_backend_name() != "postgresql":
        raise ServerError(f"{url.render_as_string()}: the shared server is PostgreSQL-backed; use a postgresql+psycopg:// URL")
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = url.database
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.DBAPIError as exc:
        first = (str(exc.orig).strip().splitlines() or ["unknown error"])[0]
        raise ServerError(f"{url.render_as_string()}: cannot create or reach database {name!r} ({first}); "
                          "is PostgreSQL running (see README 'Services')?") from None
    finally:
        admin.dispose()
    return url.render_as_string(hide_password=False)


def server_command(backend_uri: str, artifacts: Path, host: str = "127.0.0.1", port: int = 5000,
                   workers: int = 1) -> list[str]:
    """The ``mlflow server`` command line for this backend and artifact directory."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
            "--serve-artifacts", "--artifacts-destination", str(Path(artifacts).resolve()),
            "--host", host, "--port", str(port), "--workers", str(workers)]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start(backend_uri: str = DEFAULT_BACKEND, artifacts: Path | None = None, host: str = "127.0.0.1",
          port: int | None = None, workers: int = 1, timeout_s: float = 120.0,
          log: Path | None = None, wait: bool = True) -> tuple[subprocess.Popen, str]:
    """Start the server in the background and wait until it answers; return ``(process, tracking_uri)``.

    Parameters
    ----------
    backend_uri : PostgreSQL URL of the backend store (database created if missing).
    artifacts : artifact directory (default ``<project>/mlruns/server-artifacts``), made absolute.
    host, port : where to listen (port default: a free one).
    workers : server worker processes.
    timeout_s : seconds to wait for ``/health`` [s].
    log : file for the server's output (default: discarded).
    wait : wait for ``/health`` here; ``False`` returns at once (call :func:`wait_ready`
        later, e.g. after preparing data while a fresh database is being migrated).

    Returns
    -------
    tuple : the server process (stop it with ``terminate()``) and its ``http://host:port`` URI.
    """
    backend_uri = ensure_database(backend_uri)
    artifacts = Path(artifacts or config.mlruns_dir() / "server-artifacts").resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(server_command(backend_uri, artifacts, host, port, workers), stdout=out,
                            stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_TRACKING_URI": ""})
    uri = f"http://{host}:{port}"
    if wait:
        wait_ready(proc, uri, timeout_s, log)
    return proc, uri


def wait_ready(proc: subprocess.Popen, uri: str, timeout_s: float = 120.0, log: Path | None = None) -> None:
    """Block until the server at ``uri`` answers ``/health``; stop it and raise if it does not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"mlflow server exited with status {proc.returncode} before answering"
                              + (f"; see {log}" if log else "; run `gridtwin mlflow-server` to see its output"))
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise ServerError(f"mlflow server on {uri} did not answer within {timeout_s:.0f} s")
