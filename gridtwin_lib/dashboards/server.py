"""The Voila server behind ``gridtwin dashboards``: Voila with fixes for a long-running service.

Run as ``python -m gridtwin_lib.dashboards.server <voila arguments>`` (:func:`gridtwin_lib.dashboards.voila_command`
builds the line).

- **Kernels are shut down when a page closes.** Voila's page posts ``/voila/api/shutdown/<id>`` on
  ``beforeunload`` with the ``_xsrf`` value it reads from the ``_xsrf`` cookie, but Voila's render handler never
  sets that cookie, so the server refused every call (``403 '_xsrf' argument missing from POST``; voila issue
  #1458) and every visit leaked a kernel. The page handler here (:func:`_page_handler_class`) reads
  ``xsrf_token`` before rendering, which makes tornado set the cookie on the page's response; the XSRF check
  stays on. (It was a Voila pre-launch hook, which Voila refuses together with preheated kernels.) Kernel culling (see ``voila_command``) is the safety net
  for a browser that never sends the call (killed, offline).
- **The live kernels can be counted**: ``GET /api/kernels`` (read-only; the same JSON as the Jupyter
  server's kernels API), for the browser test and for monitoring.
- **No page stays on "Executing 1 of 2" forever** (issue 18): Voila's page handler runs the notebook in a
  task started with a bare ``asyncio.ensure_future(put_html())`` and keeps no reference to it. asyncio keeps
  only weak references to tasks, so that task, with the notebook client awaiting the kernel's reply inside it,
  could be garbage-collected mid-flight: the kernel had finished and sat idle, the handler kept waiting on its
  queue (sending heartbeats), the browser never got the rest of the page. :func:`keep_page_tasks` hands
  Voila's handler an ``ensure_future`` that holds each task until it is done; a task that fails puts an
  error on the page and ends it, instead of leaving the handler waiting for a snippet that never comes.
- **Pages come preheated** (``--preheat``, the default of :func:`gridtwin_lib.dashboards.voila_command`): Voila
  keeps, per dashboard, one kernel that has already run the page (:data:`PREHEAT_POOL`); a visitor gets it at
  once (the first figure within about a second instead of a kernel start, the imports, loading the champions
  and scoring) and Voila starts the next one in the background. The cost: one idle kernel per dashboard
  and the landing page (the kernel count's floor), and a page shows the store as it was when its kernel ran it (at most since
  the previous visit; 01's "follow newest" looks again every 10 s). The landing page has its kernel too.
- **A preheated kernel is not culled as it is handed to a page** (:func:`guard_handed_over_kernels`): it left
  Voila's pool, where the culler spares it, before the browser connected, with the idle time of its preheat.
- **Offline**: Font Awesome is served from the ``fontawesomefree`` package at ``/gridtwin/fontawesome/``;
  the ``gridtwin`` template (``share/voila/templates/gridtwin``) points the page at it instead of a CDN.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import sys
import types
from pathlib import Path

TEMPLATE = "gridtwin"
SHARE = Path(__file__).resolve().parent / "share"  # a Jupyter data dir holding voila/templates/gridtwin


def fontawesome_dir() -> Path:
    """The folder of the installed ``fontawesomefree`` package holding ``css/`` and ``webfonts/``."""
    import fontawesomefree

    return Path(fontawesomefree.__file__).resolve().parent / "static" / "fontawesomefree"


PREHEAT_POOL = 1  # kernels per dashboard kept ready, each having run its page


def set_xsrf_cookie(request_handler, notebook=None, cwd=None):
    """Reading ``xsrf_token`` makes tornado set the ``_xsrf`` cookie on this response, which the page sends back
    with its shutdown call. Returns None (the signature of a Voila pre-launch hook)."""
    request_handler.xsrf_token  # noqa: B018 - the property sets the cookie as a side effect
    return None


def _page_handler_class():
    from voila.tornado.handler import TornadoVoilaHandler

    class GridTwinPageHandler(TornadoVoilaHandler):
        """Voila's page handler, setting the ``_xsrf`` cookie first (preheated pages included)."""

        async def prepare(self, *args, **kwargs):
            await super().prepare(*args, **kwargs)
            set_xsrf_cookie(self)

    return GridTwinPageHandler


#: tasks of page handlers still running: the strong references asyncio itself does not keep
_PAGE_TASKS: set[asyncio.Future] = set()
FAILED_CLASS = "gridtwin-failed"  # the error a page shows when the server could not compute it


def _page_failed_html(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return (f'<div class="voila-error {FAILED_CLASS}" style="border-left:4px solid #9d0208;background:#fdecea;'
            f'padding:8px 12px;margin:6px 0">This page could not be computed on the server ({html.escape(type(exc).__name__)}: '
            f"{html.escape(first)}). Reload the page; if it fails again, the server log says more.</div>"
            # the page's cells are hidden until Voila's end-of-page script, which will not come now: show them
            "<script>(function () { var l = document.getElementById('loading'); if (l) { l.remove(); }"
            " var r = document.getElementById('rendered_cells'); if (r) { r.style.display = ''; } })();</script>")


def keep_task(awaitable) -> asyncio.Future:
    """``asyncio.ensure_future`` for Voila's page handler: the task is held in :data:`_PAGE_TASKS` until it is done
    (asyncio only holds tasks weakly). If it fails, and it is Voila's ``put_html`` (which feeds the page through
    a queue and puts None at the end only when it succeeds), the error and the end marker go into that queue, so
    the page shows the error at once instead of "Executing n of m" forever."""
    queue = None
    if getattr(awaitable, "__name__", "") == "put_html":  # the caller (Voila's handler) holds it as ``queue``
        queue = sys._getframe(1).f_locals.get("queue")
    task = asyncio.ensure_future(awaitable)
    _PAGE_TASKS.add(task)

    def done(t: asyncio.Future) -> None:
        _PAGE_TASKS.discard(t)
        if t.cancelled() or t.exception() is None or queue is None:
            return
        queue.put_nowait(_page_failed_html(t.exception()))
        queue.put_nowait(None)

    task.add_done_callback(done)
    return task


def keep_page_tasks() -> None:
    """Give Voila's page handler :func:`keep_task` in place of its bare ``asyncio.ensure_future`` (only that
    module's view of asyncio changes)."""
    import voila.handler

    view = types.SimpleNamespace(**{name: getattr(asyncio, name) for name in dir(asyncio) if not name.startswith("__")})
    view.ensure_future = keep_task
    voila.handler.asyncio = view


def _guard_handed_over_kernels(factory):
    """Wrap Voila's ``voila_kernel_manager_factory`` so that the culler never takes a preheated kernel in the
    moment it is handed to a page.

    A preheated kernel sits in Voila's pool without a connection; Voila keeps the culler off it only while it is
    in the pool. When a page takes it, it leaves the pool before the browser connects (seconds on a loaded
    machine) while its ``last_activity`` is still that of its preheat, maybe long ago: a cull pass in between
    shut it down ("Culling 'idle' kernel ... with 0 connections due to 75 seconds of inactivity", then "Kernel
    died" on the page). Here the hand-over counts as activity, and a kernel whose page is still being computed
    is not culled; once the page is connected, ``cull_connected=False`` keeps it."""
    def guarded(*args, **kwargs):
        base = factory(*args, **kwargs)

        class HandOverKernelManager(base):
            async def get_rendered_notebook(self, *a, **kw):
                result = await super().get_rendered_notebook(*a, **kw)
                render_task, _, kernel_id = result
                self._page_renders = {k: t for k, t in getattr(self, "_page_renders", {}).items() if not t.done()}
                self._page_renders[kernel_id] = render_task
                _touch(self, kernel_id)
                return result

            async def cull_kernel_if_idle(self, kernel_id: str):
                task = getattr(self, "_page_renders", {}).get(kernel_id)
                if task is not None and not task.done():  # its page is still being computed
                    _touch(self, kernel_id)
                    return None
                return await super().cull_kernel_if_idle(kernel_id)

        HandOverKernelManager.__name__ = base.__name__
        return HandOverKernelManager

    return guarded


def _touch(manager, kernel_id: str) -> None:
    """Mark ``kernel_id`` active now (what the culler measures idleness from)."""
    from jupyter_server._tz import utcnow

    kernel = manager._kernels.get(kernel_id)
    if kernel is not None:
        kernel.last_activity = utcnow()


def guard_handed_over_kernels() -> None:
    """Install :func:`_guard_handed_over_kernels` in Voila's app module (before the app builds its kernel
    manager)."""
    import voila.app

    if not getattr(voila.app.voila_kernel_manager_factory, "_gridtwin_guarded", False):
        guarded = _guard_handed_over_kernels(voila.app.voila_kernel_manager_factory)
        guarded._gridtwin_guarded = True
        voila.app.voila_kernel_manager_factory = guarded


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
            from voila.tornado.handler import TornadoVoilaHandler

            page_handler = _page_handler_class()
            handlers = [(h[0], page_handler, *h[2:]) if len(h) > 1 and h[1] is TornadoVoilaHandler else h
                        for h in super().init_handlers()]
            return [(url_path_join(self.server_url, r"/api/kernels"), _kernel_list_handler()),
                    (url_path_join(self.server_url, r"/gridtwin/fontawesome/(.*)"), web.StaticFileHandler,
                     {"path": str(fontawesome_dir())}),
                    *handlers]

    return GridTwinVoila


def main(argv: list[str] | None = None) -> None:
    """Start the server with Voila's own command-line arguments (``argv``, default ``sys.argv[1:]``)."""
    from traitlets.config import Config

    keep_page_tasks()
    guard_handed_over_kernels()
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(SHARE), os.environ.get("JUPYTER_PATH", "")) if p)
    config = Config()
    config.VoilaConfiguration.template = TEMPLATE
    _app_class().launch_instance(argv=sys.argv[1:] if argv is None else argv, config=config)


def kernel_count(base_url: str, timeout_s: float = 10.0) -> int:
    """Live kernels of the server at ``base_url`` (e.g. ``http://127.0.0.1:8866``)."""
    from urllib.request import urlopen

    with urlopen(f"{base_url.rstrip('/')}/api/kernels", timeout=timeout_s) as resp:  # noqa: S310 - our own server
        return len(json.load(resp))


if __name__ == "__main__":
    main()
