"""``gridtwin dashboards``: serve notebooks/dashboards with Voila (registered by :mod:`gridtwin_lib.cli`)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``dashboards`` command to the ``gridtwin`` app."""
    from .cli_common import _guarded

    @app.command("dashboards")
    @_guarded
    def dashboards_cmd(
        port: Annotated[int, typer.Option(help="TCP port of the Voila server.")] = 8866,
        host: Annotated[str, typer.Option(help="Interface to bind. Keep 127.0.0.1 and put a reverse proxy (or an SSH "
                                               "tunnel) in front to share; see README 'Dashboards'.")] = "127.0.0.1",
        token: Annotated[bool, typer.Option("--token", help="Require a generated token (printed in the URL Voila logs).")] = False,
        base_url: Annotated[str | None, typer.Option(help="URL prefix when served behind a reverse proxy, e.g. /grid/.")] = None,
        preheat: Annotated[bool, typer.Option("--preheat/--no-preheat", help="Keep one kernel per dashboard that has "
                                              "already run its page (fast first view; one idle kernel per dashboard).")] = True,
    ):
        """Serve the six stakeholder dashboards (notebooks/dashboards) with Voila, sources stripped.

        Reads the store and MLflow registry of the current project (GRIDTWIN_HOME) or workspace
        (GRIDTWIN_WORKSPACE). The landing page is http://HOST:PORT/voila/render/index.ipynb. Stops with Ctrl-C.
        """
        from . import dashboards

        dashboards.check_port(port)
        dashboards.check_exposure(host, token)  # beyond loopback only with a token
        typer.echo(f"dashboards: {dashboards.landing_url(port, host, base_url)}  ({dashboards.location_text()})")
        dashboards.serve(port, host, token=token, base_url=base_url, preheat=preheat)
