"""The Voila server behind ``gridtwin dashboards``: Voila with three fixes for a long-running service.

Run as ``python -m gridtwin_lib.dashboards.server <voila arguments>`` (:func:`gridtwin_lib.dashboards.voila_command`
builds the line).

- **Kernels are shut down when a page closes.** Voila's page posts ``/voila/api/shutdown/<id>`` on
  ``beforeunload`` with the ``_xsrf`` value it reads from the ``_xsrf`` cookie, but Voila's render handler never
  sets that cookie, so the server refused every call (``403 '_xsrf' argument missing from POST``; voila issue
  #1458) and every visit leaked a kernel. :func:`set_xsrf_cookie`, Voila's pre-launch hook, sets the cookie
  on the page's response; the XSRF check stays on. Kernel culling (see ``voila_command``) is the safety net
  for a browser that never sends the call (killed, offline).
- **The live kernels can be counted**: ``GET /api/kernels`` (read-only; the same JSON as the Jupyter
  server's kernels API), for the browser test and for monitoring.
- **Offline**: Font Awesome is served from the ``fontawesomefree`` package at ``/gridtwin/fontawesome/``;
  the ``gridtwin`` template (``share/voila/templates/gridtwin``) points the page at it instead of a CDN.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

TEMPLATE = "gridtwin"
SHARE = Path(__file__).resolve().parent / "share"  # a Jupyter data dir holding voila/templates/gridtwin


def fontawesome_dir() -> Path:
    """The folder of the installed ``fontawesomefree`` package holding ``css/`` and ``webfonts/``."""
    import fontawesomefree

    return Path(fontawesomefree.__file__).resolve().parent / "static" / "fontawesomefree"


def set_xsrf_cookie(request_handler, notebook=None, cwd=None):
    """Voila pre-launch hook: reading ``xsrf_token`` makes tornado set the ``_xsrf`` cookie on this response,
    which the page sends back with its shutdown call. Returns None (the notebook is unchanged)."""
    request_handler.xsrf_token  # noqa: B018 - the property sets the cookie as a side effect
    return None


def _kernel_list_handler():
    from jupyter_server.services.kernels.handlers import MainKernelHandler
    from tornado import web

    class KernelListHandler(MainKernelHandler):
        """``GET /api/kernels`` only: starting kernels stays Voila's business."""

        async def post(self):
            raise web.HTTPError(405)

    return KernelListHandler


def _app_class():
    from jupyter_server.utils import url_path_join
    from tornado import web
    from voila.app import Voila

    class GridTwinVoila(Voila):
        """Voila plus the kernel list and the local Font Awesome (see the module docstring)."""

        def init_handlers(self):
            handlers = super().init_handlers()
            return [(url_path_join(self.server_url, r"/api/kernels"), _kernel_list_handler()),
                    (url_path_join(self.server_url, r"/gridtwin/fontawesome/(.*)"), web.StaticFileHandler,
                     {"path": str(fontawesome_dir())}),
                    *handlers]

    return GridTwinVoila


def main(argv: list[str] | None = None) -> None:
    """Start the server with Voila's own command-line arguments (``argv``, default ``sys.argv[1:]``)."""
    from traitlets.config import Config

    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(SHARE), os.environ.get("JUPYTER_PATH", "")) if p)
    config = Config()
    config.VoilaConfiguration.prelaunch_hook = set_xsrf_cookie
    config.VoilaConfiguration.template = TEMPLATE
    _app_class().launch_instance(argv=sys.argv[1:] if argv is None else argv, config=config)


def kernel_count(base_url: str, timeout_s: float = 10.0) -> int:
    """Live kernels of the server at ``base_url`` (e.g. ``http://127.0.0.1:8866``)."""
    from urllib.request import urlopen

    with urlopen(f"{base_url.rstrip('/')}/api/kernels", timeout=timeout_s) as resp:  # noqa: S310 - our own server
        return len(json.load(resp))


if __name__ == "__main__":
    main()
