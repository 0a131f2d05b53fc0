"""``gridtwin collect`` and ``gridtwin devices``: the field data collector's commands.

:func:`register` adds both groups to the ``gridtwin`` app. ``python -m gridtwin_lib.cli_collect``
runs them on their own (the tests start the server that way).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .cli_common import MARKUP_MODE, JsonOpt, StoreOpt, _emit, _guarded

collect_app = typer.Typer(
    rich_markup_mode=MARKUP_MODE,
    help="Run the HTTP collector devices post readings to (durable log, compacted into the store).",
    invoke_without_command=True,
)
devices_app = typer.Typer(rich_markup_mode=MARKUP_MODE, help="Devices allowed to post to the collector, and their API keys.", no_args_is_help=True)

CollectorDirOpt = Annotated[
    Path | None,
    typer.Option("--collector-dir", help="Device registry and write-ahead log [default: <store>/../collector, or $GRIDTWIN_COLLECTOR_DIR]."),
]


class EventLoop(StrEnum):
    """The collector's asyncio event loop (uvicorn's ``--loop``)."""

    auto = "auto"  # uvloop when installed (it is, with GridTwin), else asyncio's own
    uvloop = "uvloop"
    asyncio = "asyncio"


class HttpParser(StrEnum):
    """The collector's HTTP/1.1 implementation (uvicorn's ``--http``)."""

    auto = "auto"  # httptools when installed (it is, with GridTwin), else h11
    httptools = "httptools"
    h11 = "h11"


def register(app: typer.Typer) -> None:
    """Add ``collect``, ``devices`` and ``live`` to ``app``."""
    app.add_typer(collect_app, name="collect")
    app.add_typer(devices_app, name="devices")
    app.command("live")(live_cmd)


def _registry(collector_dir: Path | None):
    from .collect.devices import DeviceRegistry

    return DeviceRegistry(collector_dir)


@collect_app.callback()
@_guarded
def collect_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind; loopback by default. Use 0.0.0.0 only behind a firewall or TLS proxy.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8080,
    rate: Annotated[float, typer.Option(min=0, help="Per-device sustained limit in requests/s; 0 disables the limit.")] = 10.0,
    burst: Annotated[float, typer.Option(min=1, help="Per-device burst in requests.")] = 50.0,
    compact_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between compactions of the log into the store.")] = 2.0,
    group_commit: Annotated[bool, typer.Option(help="Batch concurrent requests into one fsync'd commit (--no-group-commit: one commit per request, for comparison).")] = True,
    access_log: Annotated[bool, typer.Option(help="Log every request (costs throughput).")] = False,
    loop: Annotated[EventLoop, typer.Option(help="Event loop: uvloop (C, libuv) or asyncio's own; auto takes uvloop when installed.")] = EventLoop.auto,
    http: Annotated[HttpParser, typer.Option(help="HTTP parser: httptools (C) or h11 (pure Python); auto takes httptools when installed.")] = HttpParser.auto,
    mqtt: Annotated[str | None, typer.Option("--mqtt", help="Also take readings from this MQTT 5 broker, e.g. mqtt://127.0.0.1:1883: topics gridtwin/<device>/readings and gridtwin/<device>/grid, the device key in user property api-key, QoS 1 acknowledged after the log commit.")] = None,
    store: StoreOpt = None,
    collector_dir: CollectorDirOpt = None,
):
    """Serve POST /api/energy-data/, POST /api/grid/data, GET /health and /docs until Ctrl-C.

    A reading is acknowledged only after it is committed to the write-ahead log; the log is
    compacted into the store every few seconds and at shutdown. Add devices first with
    `gridtwin devices add NAME`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from .collect import RateLimit, serve

    limit = RateLimit(rate, burst) if rate > 0 else None
    if mqtt:
        from .collect.mqtt import BrokerUrl

        BrokerUrl.parse(mqtt).check_reachable()  # a bad URL or no broker: one line, exit 2
    via = f" and MQTT {mqtt}" if mqtt else ""
    typer.echo(f"collector on http://{host}:{port}{via} (docs: /docs); store {store or 'default'}; Ctrl-C stops", err=True)
    serve(host, port, store, collector_dir, limit, compact_interval, group_commit, access_log, mqtt_url=mqtt,
          loop=loop.value, http=http.value)


@collect_app.command("compact")
@_guarded
def compact_cmd(store: StoreOpt = None, collector_dir: CollectorDirOpt = None, as_json: JsonOpt = False):
    """Move committed log rows into the store now (safe while the collector runs; idempotent)."""
    from .collect.compact import Compactor
    from .collect.devices import collector_dir as default_dir

    compactor = Compactor(store, collector_dir or default_dir())
    try:
        result = compactor.run()
    finally:
        compactor.close()
    _emit(result.to_dict(), as_json, str(result))


@devices_app.command("add")
@_guarded
def devices_add_cmd(
    name: Annotated[str, typer.Argument(help="Device name, e.g. esp8266-3c71bf (the firmware's device_id).")],
    collector_dir: CollectorDirOpt = None,
    as_json: JsonOpt = False,
):
    """Register a device and print its API key. The key is shown only now; only a salted hash is kept."""
    key = _registry(collector_dir).add(name)
    _emit({"name": name, "key": key}, as_json,
          f"device {name} added. Its API key (shown once; put it in the firmware's X-API-Key):\n{key}")


@devices_app.command("list")
@_guarded
def devices_list_cmd(collector_dir: CollectorDirOpt = None, as_json: JsonOpt = False):
    """Registered devices with creation and revocation times (never keys)."""
    devices = _registry(collector_dir).list()
    if as_json:
        _emit([d.to_dict() for d in devices], True)
        return
    if not devices:
        typer.echo("no devices; add one with `gridtwin devices add NAME`")
    for d in devices:
        state = f"revoked {d.revoked_at}" if d.revoked else "active"
        typer.echo(f"{d.name:<32} key id {d.key_id:<10} added {d.created_at}  {state}")


@devices_app.command("revoke")
@_guarded
def devices_revoke_cmd(
    name: Annotated[str, typer.Argument(help="Device name.")],
    collector_dir: CollectorDirOpt = None,
    as_json: JsonOpt = False,
):
    """Revoke a device's key: its requests get 403 from the next one on (no restart needed)."""
    device = _registry(collector_dir).revoke(name)
    _emit(device.to_dict(), as_json, f"device {name} revoked at {device.revoked_at}")


@_guarded
def live_cmd(
    host: Annotated[str, typer.Option(help="Address to bind; loopback by default (scores are not authenticated).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8090,
    poll_ms: Annotated[float, typer.Option(min=1, help="Milliseconds between looks at the log when it has nothing new.")] = 10.0,
    start: Annotated[str, typer.Option(help="Where to begin: saved (the saved watermark, else the log's end), end (new readings only) or start (the whole log).")] = "saved",
    collector_dir: CollectorDirOpt = None,
    as_json: JsonOpt = False,
):
    """Score every three-phase reading the collector acknowledges, as it arrives, and push it.

    Tails the collector's write-ahead log (HTTP and MQTT readings alike), scores each new batch
    through the registry's served models, runs the alert rules, and pushes one JSON message per
    reading and per alert opened, raised or closed to the subscribers of ws://HOST:PORT/ws/scores
    (?device=ID to filter, repeatable). GET /health and /metrics (Prometheus) report the backlog,
    latency and alerts. Run it beside `gridtwin collect`, on the same --collector-dir.
    """
    from .collect.devices import collector_dir as default_dir
    from .collect.server import exposure_warning
    from .inference import Engine
    from .inference.live import WS_PATH, LiveScorer, check_log, serve

    directory = collector_dir or default_dir()
    check_log(directory, start)  # before the models load: a wrong directory fails in a moment
    warning = exposure_warning(host, "the live scorer", "can read every score")
    if warning:
        typer.echo(warning, err=True)
    engine = Engine.from_registry(progress=not as_json)
    warm_up_s = engine.warm_up()  # the models' first calls, before the first real reading waits on them
    scorer = LiveScorer(engine, directory, start=start)
    info = {"url": f"ws://{host}:{port}{WS_PATH}", "health": f"http://{host}:{port}/health", "collector_dir": str(directory),
            "from_id": scorer.last_id, "warmed_readings": scorer.warmed, "models_warm_up_s": round(warm_up_s, 2),
            "serving": engine.serving_lines()}
    _emit(info, as_json, f"live scorer: {info['url']} (health /health, metrics /metrics); from log id {scorer.last_id}, "
          f"windows warmed with the {scorer.warmed:,} logged readings before it, models warmed up in {warm_up_s:.1f} s; "
          "Ctrl-C stops\n" + "\n".join(info["serving"]))
    serve(scorer, host, port, poll_ms / 1000.0, serving=info["serving"])


if __name__ == "__main__":  # pragma: no cover - `python -m gridtwin_lib.cli_collect ...`
    _app = typer.Typer(rich_markup_mode=MARKUP_MODE, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    register(_app)
    _app()
