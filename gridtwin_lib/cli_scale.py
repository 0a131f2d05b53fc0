"""``gridtwin mlflow-server``: the shared, PostgreSQL-backed MLflow tracking server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from .cli_common import _guarded


def register(app: typer.Typer) -> None:
    @app.command("mlflow-server")
    @_guarded
    def mlflow_server_cmd(
        backend_store_uri: Annotated[str | None, typer.Option(help="PostgreSQL URL of runs and registry (database created if missing); default $GRIDTWIN_MLFLOW_BACKEND, else postgresql+psycopg://postgres@127.0.0.1:5432/gridtwin_mlflow.")] = None,
        artifacts: Annotated[Path | None, typer.Option(help="Artifact directory, local or shared storage; default mlruns/server-artifacts.")] = None,
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


def features_spark(store, kind: str, source, device, start, end, windows: tuple[str, ...], site, out: Path | None,
                   master: str, chunk: str) -> dict:
    """``gridtwin features --engine spark``: compute on Spark, write ``out`` (a Parquet directory) atomically."""
    import shutil
    import time

    from . import features, spark_features
    from .cli_common import _fail
    from .config import SITES, site_for_source

    if out is None:
        _fail("--engine spark writes a Parquet directory: pass --out DIR (on storage every executor can reach)")
    from pyspark.sql import SparkSession

    t0 = time.perf_counter()
    ours = SparkSession.getActiveSession() is None  # under spark-submit (or a test) the session is not ours to stop
    spark = spark_features.session(master, "gridtwin-features")
    spark_master = spark.sparkContext.master
    try:
        site_obj = SITES[site] if site else site_for_source(source)
        try:
            files = spark_features.store_files(store, kind, source, start, end)
        except ValueError as exc:
            _fail(str(exc))
        out = Path(out).resolve()
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        written = spark_features.write(spark, files, tmp, kind, windows, site_obj, chunk, device, start, end)
        if written["rows"] == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            _fail(f"no {kind} measurements in {store.root} for source={source} device={device} [{start}, {end}); ingest or simulate first")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        rows = written["rows"]
    finally:
        if ours:
            spark.stop()
    return {"rows": rows, "features": len(features.catalog(kind, windows)), "seconds": round(time.perf_counter() - t0, 3),
            "out": str(out), "engine": "spark", "master": spark_master}


def score_spark(store, sources, day, start, end, out: Path, master: str, chunk: str) -> dict:
    """``gridtwin score --engine spark``: the registry's champions, loaded once here and broadcast,
    score the store's readings per device-chunk on Spark; ``out`` (a directory: ``scores/``,
    ``errors/``) appears whole or not at all."""
    import shutil
    import time
    from datetime import UTC, datetime, timedelta

    from . import inference, spark_features, spark_scoring
    from .cli_common import _fail

    if out.suffix.lower() in (".parquet", ".csv"):
        _fail(f"{out}: --engine spark writes a directory (scores/, errors/ of Parquet part files); give a directory name")
    if (start is None) != (end is None):
        _fail("--start and --end go together")
    unknown = [s for s in sources or [] if s not in store.sources("three_phase")]
    if unknown:
        _fail(f"source {unknown[0]!r} has no three_phase readings in {store}; `gridtwin store summary` lists them")
    if start is None:
        d = inference.as_date(day) if day else inference.latest_day(store, "three_phase", sources or None)
        start = datetime(d.year, d.month, d.day, tzinfo=UTC)
        end = start + timedelta(days=1)
    from pyspark.sql import SparkSession

    t0 = time.perf_counter()
    champions = spark_scoring.Champions.from_registry()  # before Spark starts: a broken registry fails fast
    ours = SparkSession.getActiveSession() is None  # under spark-submit (or a test) the session is not ours to stop
    spark = spark_features.session(master, "gridtwin-score")
    spark_master = spark.sparkContext.master
    try:
        df = spark_scoring.readings(spark, store, list(sources or []) or None, start, end)
        out = Path(out).resolve()
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        summary = spark_scoring.write(spark, df, tmp, champions, chunk, start=start)
        if summary["rows"].sum() == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            _fail(f"no three_phase readings in [{start}, {end}) UTC in {store}")
        errors = spark_scoring.read_scores(tmp)[1] if summary["error_rows"].sum() else None
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if ours:
            spark.stop()
    counts = errors.group_by("code", "model_id").len().sort("code").iter_rows() if errors is not None else ()
    return {"readings": int(summary["rows"].sum()),
            "status": {s: int(summary[s].sum()) for s in ("ok", "partial", "error") if summary[s].sum()},
            "errors": {f"{c}:{m or '-'}": n for c, m, n in counts}, "missing_champions": dict(champions.missing),
            "scores_dir": str(out / "scores"), "errors_dir": str(out / "errors"), "task_groups": summary.height,
            "largest_group_rows": int(summary["held_rows"].max()), "seconds": round(time.perf_counter() - t0, 2),
            "engine": "spark", "master": spark_master}
