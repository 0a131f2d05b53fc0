"""Run the collector: one uvicorn worker on loopback unless told otherwise."""

from __future__ import annotations

import ipaddress
import os
import sys

from .app import RateLimit, create_app


def exposure_warning(host: str, service: str = "the collector",
                     risk: str = "can post, and API keys travel in clear HTTP") -> str | None:
    """One line when ``host`` is not a loopback address: ``service`` is then reachable from other
    machines, which ``risk`` says what they can do with (default: the collector's API and keys)."""
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to anything
    return (f"warning: {service} binds {host}, not loopback: every network that reaches this machine {risk}; "
            "put it behind a TLS proxy and a firewall")


#: the limit a collector applies unless told otherwise (frozen, so one instance serves every call)
DEFAULT_RATE_LIMIT = RateLimit()


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    store_root: str | os.PathLike | None = None,
    collector_dir: str | os.PathLike | None = None,
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
    compact_interval_s: float = 2.0,
    group_commit: bool = True,
    access_log: bool = False,
    log_level: str = "warning",
    mqtt_url: str | None = None,
    loop: str = "auto",
    http: str = "auto",
) -> None:
    """Serve until SIGINT/SIGTERM; on shutdown queued rows are committed and compacted.

    One worker, because the write-ahead log has one writer thread and the rate limits live in
    memory. ``loop`` and ``http`` are uvicorn's: ``auto`` picks uvloop and httptools (C
    implementations, installed with GridTwin), else asyncio's loop and h11. Binding
    to anything but loopback is the caller's explicit choice (``host="0.0.0.0"``).
    ``mqtt_url``: also subscribe to the device topics on that broker (:mod:`.mqtt`).
    """
    import uvicorn

    warning = exposure_warning(host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    app = create_app(store_root, collector_dir, rate_limit, compact_interval_s, group_commit)
    if mqtt_url:
        from .mqtt import BrokerUrl, with_mqtt

        BrokerUrl.parse(mqtt_url)  # a bad URL fails before the server starts
        app = with_mqtt(app, mqtt_url)
    from .metrics import with_metrics

    app = with_metrics(app)  # GET /metrics for Prometheus
    uvicorn.run(app, host=host, port=port, workers=1, loop=loop, http=http, access_log=access_log,
                log_level=log_level, timeout_graceful_shutdown=10)
