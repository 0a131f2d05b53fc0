"""Voila dashboards for stakeholders: the data and figures behind ``notebooks/dashboards``.

Every dashboard notebook is a parameters cell and one call, ``<module>.page(...)``: the
widgets, their wiring and the figures live in this package (one module per dashboard:
:mod:`.monitoring`, :mod:`.maintenance`, :mod:`.energy`, :mod:`.decision`,
:mod:`.simulator`, :mod:`.comparison`), where the linter and the tests reach them; the data
comes from the store and the MLflow registry of the current project / workspace
(``GRIDTWIN_HOME``, ``GRIDTWIN_WORKSPACE``) through ``gridtwin_lib`` only.

When data or a champion is missing a dashboard shows :func:`missing` (a plain
message saying what is absent and how to get it) instead of a traceback: a stakeholder
cannot act on a stack trace.

:func:`serve` starts Voila (:mod:`.server`: kernels shut down on page close and culled when
idle, Font Awesome served locally) on the folder (``gridtwin dashboards``, ``make dashboards``
and the browser tests use it): bound to 127.0.0.1 unless told otherwise, sources
stripped, no browser opened.
"""

from __future__ import annotations

import contextlib
import html
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from .. import config
from ..errors import InputError


def _stacks_on_sigusr1() -> None:
    """``kill -USR1 <kernel pid>`` writes every thread's stack to the kernel's stderr (the Voila log): a page
    stuck on "Executing ..." can be diagnosed without stopping it."""
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1"):
        with contextlib.suppress(RuntimeError, ValueError, OSError):  # no usable stderr (some embedded interpreters)
            faulthandler.register(signal.SIGUSR1, all_threads=True)


_stacks_on_sigusr1()

DEFAULT_PORT = 8866
DEFAULT_HOST = "127.0.0.1"
KERNEL = "gridtwin"
CULL_IDLE_S = 600  # [s] a kernel idle and without any open page this long is shut down
CULL_EVERY_S = 60  # [s] how often the server looks for such kernels
CELL_TIMEOUT_S = 180  # [s] longest a page's code may run before the page shows a timeout error
MAX_PLOT_POINTS = 2_000  # per trace: enough for a screen width, fast to send to the browser
#: so every trace is plotly's SVG ``Scatter``, never ``Scattergl``: at this size SVG draws at once, while each
#: WebGL figure first sets up a GL context, which without a GPU (software GL: a VM, a remote desktop,
#: headless Chromium) delays every figure of the page (README "Browser tests and render times")


@dataclass(frozen=True)
class Dashboard:
    """One dashboard notebook: file stem, title, one-line summary, and what the tests expect on it."""

    name: str
    title: str
    summary: str
    min_figures: int  # plotly figures present once rendered (on the smoke data)

    @property
    def filename(self) -> str:
        return f"{self.name}.ipynb"


DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard("01_realtime_monitoring", "Real-time monitoring",
              "replay of a stored day at adjustable speed: three-phase traces, voltage anomaly score and flags, "
              "disturbance class and harmonic spectrum, frequency forecast, cause of phase unbalance", 1),
    Dashboard("02_predictive_maintenance", "Predictive maintenance",
              "transformer fleet by failure probability with health, lead time and overload risk; power-quality "
              "index ahead and voltage-sag risk over time; one asset's history; the PV fleet's health index with its "
              "breakdown and fault events, the inverters' remaining life with its interval, and the PV forecast "
              "1-6 h ahead against the measured power", 5),
    Dashboard("03_energy_flow", "Energy flow",
              "day-ahead load forecast against what was measured, network losses, the optimal 24 h battery "
              "schedule against the rule baseline, customer archetypes and their demand-response potential", 4),
    Dashboard("04_decision_making", "Decision making",
              "grid stability gauge with its drivers, recommended actions (reactive power, phase moves, battery "
              "set-point) with expected effects, alerts by severity with the rule or model that raised each", 3),
    Dashboard("05_simulator", "Simulator",
              "pick a scenario and its parameters, run the twin, see the measurements, the ground-truth events "
              "and how the voltage-anomaly champion reacted (hits, misses, delays)", 2),
    Dashboard("06_model_comparison", "Model comparison",
              "every registered model's champion against its baseline from MLflow, with links to the runs", 2),
)


def dashboard(name: str) -> Dashboard:
    for d in DASHBOARDS:
        if d.name == name:
            return d
    raise KeyError(f"unknown dashboard {name!r}; one of {', '.join(d.name for d in DASHBOARDS)}")


def notebooks_dir() -> Path:
    """``notebooks/dashboards`` of the project (``GRIDTWIN_HOME``), else of this checkout."""
    for root in (config.project_root(), Path(__file__).resolve().parents[2]):
        folder = root / "notebooks" / "dashboards"
        if (folder / "index.ipynb").exists():
            return folder
    raise InputError("notebooks/dashboards/index.ipynb not found in the project or the checkout; "
                     "restore the folder with `git checkout notebooks/dashboards`")


# ----------------------------------------------------------------------------- serving
def voila_command(folder: Path, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, token: bool = False,
                  base_url: str | None = None, cull_idle_s: int = CULL_IDLE_S, preheat: bool = True) -> list[str]:
    """The Voila command line: sources stripped, no browser, kernel ``gridtwin``, bound to ``host``; with
    ``preheat`` one kernel per dashboard has run its page before the visitor comes (:mod:`.server`)."""
    cmd = [sys.executable, "-m", "gridtwin_lib.dashboards.server", str(folder), "--no-browser", f"--port={port}",
           f"--Voila.ip={host}", "--strip_sources=True", f"--MappingKernelManager.default_kernel_name={KERNEL}",
           "--VoilaConfiguration.show_tracebacks=False",
           # safety net behind the shutdown-on-close call: a kernel without a page for CULL_IDLE_S goes
           f"--MappingKernelManager.cull_idle_timeout={int(cull_idle_s)}",
           f"--MappingKernelManager.cull_interval={min(CULL_EVERY_S, int(cull_idle_s))}",
           "--MappingKernelManager.cull_connected=False",
           # a page whose code blocks shows a timeout error instead of "Running ..." forever
           f"--VoilaExecutor.timeout={CELL_TIMEOUT_S}"]
    if preheat:
        from .server import PREHEAT_POOL

        cmd += ["--preheat_kernel=True", f"--pool_size={PREHEAT_POOL}"]
    if token:
        cmd.append("--token")  # Voila generates one and prints the URL carrying it
    if base_url:
        cmd.append(f"--Voila.base_url=/{base_url.strip('/')}/")
    return cmd


def serve(port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, *, folder: Path | None = None, token: bool = False,
          base_url: str | None = None, env: dict[str, str] | None = None, block: bool = True, ready_timeout_s: float = 60.0,
          cull_idle_s: int = CULL_IDLE_S, preheat: bool = True) -> subprocess.Popen:
    """Serve the dashboards with Voila.

    ``block=True`` (the CLI) replaces this process with Voila (it runs until interrupted);
    ``block=False`` (tests) returns the process once the port answers HTTP. ``env``
    adds to the environment (e.g. ``GRIDTWIN_HOME``/``GRIDTWIN_WORKSPACE``); a None value removes a variable.
    """
    check_port(port)
    folder = Path(folder) if folder is not None else notebooks_dir()
    cmd = voila_command(folder, port, host, token, base_url, cull_idle_s, preheat)
    full_env = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    if block:  # become Voila: Ctrl-C and kill reach the server itself, no orphan is left behind
        os.execve(cmd[0], cmd, full_env)
    # the log goes to a file: an unread pipe fills up and then blocks the server
    log = tempfile.NamedTemporaryFile("w+", prefix="gridtwin-voila-", suffix=".log", delete=False)  # noqa: SIM115 - open while the server runs
    proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log_path = log.name  # type: ignore[attr-defined]
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InputError(f"voila exited with status {proc.returncode}: {Path(log.name).read_text()[-500:].strip()}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise InputError(f"voila did not answer on {host}:{port} within {ready_timeout_s:.0f} s")


def check_port(port: int) -> None:
    if not 0 < int(port) < 65536:
        raise InputError(f"port {port} is not a TCP port; choose one in 1-65535 (default {DEFAULT_PORT})")


def check_exposure(host: str, token: bool) -> None:
    """Refuse to serve beyond loopback without a token: every page runs a Python kernel on this machine."""
    import ipaddress

    if host in ("localhost", ""):
        loopback = host == "localhost"
    else:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:  # a host name: it may resolve to anything
            loopback = False
    if not loopback and not token:
        raise InputError(f"--host {host or 'all interfaces'} serves the dashboards (and a Python kernel per page) to "
                         "the network: add --token, or keep 127.0.0.1 behind a reverse proxy with your login (README "
                         "'Sharing them safely')")


def landing_url(port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, base_url: str | None = None) -> str:
    prefix = "/" + (base_url or "").strip("/")
    return f"http://{host}:{port}{prefix.rstrip('/')}/voila/render/index.ipynb"


def free_port(host: str = DEFAULT_HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- widgets
MISSING_CLASS = "gridtwin-missing"


def missing(message: str):
    """A visible note instead of a traceback: what is missing and how to get it."""
    import ipywidgets as w

    return w.HTML(f'<div class="{MISSING_CLASS}" style="border-left:4px solid #e9c46a;background:#fff8e1;'
                  f'padding:8px 12px;margin:6px 0">{html.escape(message)}</div>')


def guarded(build: Callable[[], Any], what: str):
    """``build()``, or :func:`missing` naming ``what`` when the data or a champion is absent."""
    try:
        return build()
    except MissingData as exc:
        return missing(str(exc))
    except InputError as exc:
        return missing(f"{what}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a dashboard shows a message, never a stack trace
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return missing(f"{what} could not be shown ({type(exc).__name__}: {first})")


def attempt(notes, build: Callable[[], Any], what: str):
    """``build()`` inside a widget callback; on failure append a :func:`missing` note to the ``notes`` box
    and return None (an exception in a callback would otherwise vanish into the kernel log)."""
    note = guarded(lambda: (build(), None), what)
    if isinstance(note, tuple):
        return note[0]
    notes.children = [*notes.children, note]
    return None


class MissingData(InputError):
    """Data, a model or a champion a dashboard needs is not there; the message says how to get it."""


def header(title: str, summary: str = ""):
    import ipywidgets as w

    where = f"workspace {config.workspace()}" if config.workspace() else "main project"
    return w.HTML(f"<h2 style='margin:4px 0'>{html.escape(title)}</h2>"
                  f"<div style='color:#555'>{html.escape(summary)} <i>({html.escape(where)}; "
                  f"<a href='./index.ipynb'>all dashboards</a>)</i></div>")


def page(title: str, summary: str, *children, model_ids: Callable[[], Any] | None = None):
    """The layout every dashboard shares: a header, then its rows top to bottom, then the internal ids one click
    away (:func:`ids_details`; ``model_ids`` gives the page's models)."""
    import ipywidgets as w

    return w.VBox([header(title, summary), *children, ids_details(model_ids)], layout=w.Layout(width="100%"))


def ids_details(model_ids: Callable[[], Any] | None = None):
    """A closed "Internal ids" section for data scientists: each of the page's models by registry id with what
    serves it now (version, model or baseline), and every stored source's label with its id."""
    import ipywidgets as w

    rows: list[str] = []
    try:
        ids = list(dict.fromkeys(model_ids() if model_ids is not None else ()))
        for m, key in served_keys(ids).items():
            version, _, serves = (key or "").partition(":")
            what = ("nothing (no registered version)" if key is None
                    else f"v{version}: " + ("the model" if serves == "model" else serves.replace("baseline:", "the baseline ")))
            rows.append(f"<tr><td><code>{html.escape(m)}</code></td><td>{html.escape(what)}</td></tr>")
    except Exception as exc:  # noqa: BLE001 - the ids are a courtesy: never take the page down
        rows.append(f"<tr><td colspan=2>models: {html.escape(str(exc).splitlines()[0][:200])}</td></tr>")
    st = store()
    sources = [(kind, s) for kind in st.kinds() for s in st.sources(kind)]
    source_rows = "".join(f"<tr><td>{html.escape(source_label(s))}</td><td><code>{html.escape(s)}</code> ({html.escape(kind)})</td></tr>"
                          for kind, s in sources)
    return w.HTML("<details style='margin-top:12px;color:#444'><summary>Internal ids (for data scientists)</summary>"
                  f"<table><tr><th>model id</th><th>what serves it</th></tr>{''.join(rows)}</table>"
                  f"<table><tr><th>source</th><th>id (kind)</th></tr>{source_rows}</table>"
                  f"<div>store <code>{html.escape(str(st.root))}</code></div></details>")


def row(*children):
    import ipywidgets as w

    return w.HBox(list(children), layout=w.Layout(flex_flow="row wrap", align_items="flex-start"))


TEMPLATE = dict(template="plotly_white", margin=dict(l=50, r=20, t=50, b=40))


def _styled(fig):
    import plotly.graph_objects as go

    fig = go.Figure(fig)
    fig.update_layout(**TEMPLATE)
    return fig


def figure_widget(fig):
    """A live ``FigureWidget`` for figures updated in place many times (the replay).

    Built with its whole content: plotly's anywidget-based FigureWidget drops changes made
    before it is displayed. Each FigureWidget also ships plotly's 5 MB JavaScript bundle over
    the websocket (measured: 6 widgets = 30 MB, 22 s to render vs 9 s as outputs), so a
    dashboard uses one at most and :func:`figure` for everything else.
    """
    import plotly.graph_objects as go

    return go.FigureWidget(_styled(fig))


def figure(fig=None):
    """A figure in an ``Output`` widget, drawn by the page's plotly renderer (plotly.js loaded once per page);
    :func:`refresh` redraws it."""
    import ipywidgets as w

    out = w.Output(layout=w.Layout(width="100%"))
    if fig is not None:
        refresh(out, fig)
    return out


def refresh(target, fig) -> None:
    """Show ``fig`` in ``target``: an Output from :func:`figure` is redrawn; a displayed FigureWidget is updated
    in place (one browser update)."""
    fig = _styled(fig)
    if hasattr(fig, "data") and hasattr(target, "batch_update"):
        with target.batch_update():
            target.data = []
            target.add_traces(list(fig.data))
            target.update_layout(fig.layout)
        return
    target.clear_output(wait=True)
    with target:
        show_figure(fig)


def show_figure(fig) -> None:
    """Display ``fig`` as plotly's mime bundle (what ``fig.show(renderer="plotly_mimetype")`` sends) without
    plotly's renderer machinery, which on first use imports and validates far more than this needs
    (measured with pyinstrument on page 02: the first ``show`` was a quarter of the page's time)."""
    import json

    import plotly.io as pio
    from IPython.display import display

    spec = json.loads(pio.to_json(fig, validate=False))
    spec["config"] = {"displaylogo": False}
    display({"application/vnd.plotly.v1+json": spec}, raw=True)


class Quiet:
    """A widget callback that can be held while several widgets are set at once, then runs once
    (e.g. jumping to another day *and* hour reloads a page once, not twice)."""

    def __init__(self, callback: Callable[[], Any]):
        self.callback, self.held = callback, False

    def __call__(self, _change=None) -> None:
        if not self.held:
            self.callback()

    def setting(self):
        import contextlib

        @contextlib.contextmanager
        def held():
            self.held = True
            try:
                yield
            finally:
                self.held = False
            self.callback()

        return held()


def cascade(source, dependents: dict, show: Callable[[], Any], also=()) -> Quiet:
    """Wire a picker to the pickers that depend on it: a new ``source`` value replaces each dependent's
    options (``dependents``: dropdown -> function of the source's value giving its options) and redraws once,
    not once per dependent; a change of a dependent or of ``also`` redraws. Returns the held ``show``."""
    once = Quiet(show)

    def pick_source(_change=None) -> None:
        with once.setting():
            for dropdown, options_of in dependents.items():
                replace_options(dropdown, options_of(source.value))

    source.observe(pick_source, "value")
    for control in (*dependents, *also):
        control.observe(once, "value")
    return once


def _values(options) -> list:
    """The values of dropdown options given as values or as (label, value) pairs."""
    return [o[1] if isinstance(o, tuple) else o for o in options]


def choose(options, value, what: str):
    """``value`` when it is one of ``options`` (values or (label, value) pairs; a notebook parameter), the first
    option when None; else one clear line naming the choices."""
    values = _values(options)
    if value is None:
        return values[0] if values else None
    if value not in values:
        raise InputError(f"{what} {value!r} is not in the store; choose one of: {', '.join(map(str, values[:20]))}")
    return value


def replace_options(dropdown, options) -> None:
    """New choices for a dropdown with the first one selected (ipywidgets leaves the value empty otherwise)."""
    options = list(options)
    dropdown.options = options
    values = _values(options)
    dropdown.value = values[0] if values else None


def source_label(source: str) -> str:
    """A stored source as people read it: ``sim:m04_open_conductor_1`` -> "open conductor, run 2 (simulated for
    phase imbalance)", naming the model it was simulated for by its catalogue name (from the registry); other
    sources (``uci``, ``collector``) stay as they are. The id stays the dropdown's value."""
    if not source.startswith("sim:"):
        return source
    name = source[4:]
    model, _, rest = name.partition("_")
    words = rest.split("_") if rest else [model]
    run = ""
    if len(words) > 1 and words[-1].isdigit():
        run = f", run {int(words.pop()) + 1}"
    what = " ".join(words).replace("pv", "PV")
    return f"{what}{run} (simulated for {_model_words(model)})" if rest else f"{what} (simulated)"


def _model_words(prefix: str) -> str:
    """The catalogue name, in words, of the registered model whose id starts with ``prefix + "_"`` (else ``prefix``)."""
    from ..models import registry

    for entry in registry.entries():
        if entry.id.startswith(prefix + "_"):
            return entry.spec_name.replace("_", " ")
    return prefix


def labelled(names) -> list[tuple[str, str]]:
    """Dropdown options ``(label, source id)`` in the given order (:func:`sources` puts the preferred first, then
    the others sorted by id, which groups them by the model they were simulated for)."""
    return [(source_label(n), n) for n in names]


def table_html(frame, max_rows: int = 50, links: dict[str, str] | None = None, zone: str | None = None) -> str:
    """A small HTML table (pandas or polars); ``links`` maps a column to the column holding its URL; times in ``zone``
    (IANA name; None: as stored); a table longer than ``max_rows`` says how many rows it shows of how many."""
    df = frame.to_pandas() if hasattr(frame, "to_pandas") else frame
    df = for_people(df.head(max_rows).copy(), zone)
    for col, url_col in (links or {}).items():
        if col in df.columns and url_col in df.columns:
            df[col] = [f"<a href='{html.escape(str(u))}' target='_blank'>{html.escape(str(v))}</a>" if u else html.escape(str(v))
                       for v, u in zip(df[col], df[url_col], strict=True)]
            df = df.drop(columns=[url_col])
    body = df.to_html(index=False, escape=False, float_format=lambda v: f"{v:.4g}", border=0,
                      classes="gridtwin-table", na_rep="–")
    total = frame.height if hasattr(frame, "height") else len(frame)
    if total > max_rows:  # never cut a table silently
        body += f"<div class='gridtwin-truncated'><i>the first {max_rows:,} of {total:,} rows are shown</i></div>"
    return body


TIME_FORMAT = "%Y-%m-%d %H:%M"


# ----------------------------------------------------------------------------- local time
# Pages show the time of the place a source measures (its site in sites.yaml, else the default site), with the
# zone's abbreviation; the store and the engine stay in UTC.
def timezone_of(source: str | None) -> str:
    """IANA time zone of the site of ``source`` (``sites.yaml``; unknown sources: the default site's)."""
    return config.site_for_source(source).timezone


def local_text(ts, source: str | None, fmt: str = TIME_FORMAT) -> str:
    """An instant (timezone-aware, or naive UTC) as local time of ``source`` with its zone: ``2025-01-07 16:00 AEDT``."""
    from zoneinfo import ZoneInfo

    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
    local = ts.astimezone(ZoneInfo(timezone_of(source)))
    return f"{local:{fmt}} {local:%Z}"


def to_local(values, source: str | None):
    """Instants (a pandas Series or DatetimeIndex; naive values are UTC) as naive local times of ``source``,
    for plotting on an axis titled :func:`time_axis`."""
    import pandas as pd

    index = pd.DatetimeIndex(values)
    index = index.tz_localize("UTC") if index.tz is None else index
    local = index.tz_convert(timezone_of(source)).tz_localize(None)
    return pd.Series(local, index=values.index) if isinstance(values, pd.Series) else local


def time_axis(source: str | None) -> str:
    """Axis title of :func:`to_local` times: ``local time (Australia/Sydney)``."""
    return f"local time ({timezone_of(source)})"


def local_start(day: date, hour: int, source: str | None) -> datetime:
    """The UTC instant of local ``hour`` of local ``day`` at the site of ``source``."""
    from zoneinfo import ZoneInfo

    return datetime(day.year, day.month, day.day, int(hour), tzinfo=ZoneInfo(timezone_of(source))).astimezone(UTC)


def for_people(df, zone: str | None = None):
    """A pandas frame as people read it: timestamps as ``2026-01-05 23:00 UTC`` (in ``zone``, an IANA name, with its
    abbreviation, when given), booleans as yes / no, missing values as "–" (never Python's None / True / False)."""
    import pandas as pd

    for col in df.columns:
        values = df[col]
        if pd.api.types.is_datetime64_any_dtype(values):
            if zone is not None:
                aware = values.dt.tz_localize("UTC") if values.dt.tz is None else values
                df[col] = [f"{v:{TIME_FORMAT} %Z}" if not pd.isna(v) else "–" for v in aware.dt.tz_convert(zone)]
                continue
            zone_name = f" {values.dt.tz}" if getattr(values.dt, "tz", None) is not None else ""
            df[col] = [f"{v:{TIME_FORMAT}}{zone_name}" if not pd.isna(v) else "–" for v in values]
        elif pd.api.types.is_bool_dtype(values) or (values.dtype == object and values.map(
                lambda v: v is None or isinstance(v, bool)).all() and values.map(lambda v: isinstance(v, bool)).any()):
            df[col] = ["–" if v is None or (not isinstance(v, bool) and pd.isna(v)) else ("yes" if v else "no") for v in values]
        elif values.dtype == object:
            df[col] = ["–" if v is None or (isinstance(v, float) and pd.isna(v)) else v for v in values]
    return df


# ----------------------------------------------------------------------------- models, found in the registry
def model_id(spec_name: str | None = None, *, role: str | None = None) -> str:
    """The registry's id of the model the catalogue names ``spec_name`` (e.g. ``"power_quality_index"``), or of the
    one serving ``role`` (e.g. ``"asset_failure"``): pages name models by what they do, never by id."""
    from ..models import registry

    if role is not None:
        entry = registry.by_role(role)
        if entry is None:
            raise MissingData(f"no model serves {role.replace('_', ' ')} in the registry")
        return entry.id
    for entry in registry.entries():
        if entry.spec_name == spec_name:
            return entry.id
    raise MissingData(f"no model named {spec_name!r} in the registry (gridtwin_lib.models.registry)")


def output_column(spec_name: str, output: str) -> str:
    """The engine's column ``<model id>.<output>`` of the model named ``spec_name``."""
    return f"{model_id(spec_name)}.{output}"


def simulated_sources(spec_name: str | None = None, *, role: str | None = None, size: str = "full") -> tuple[str, ...]:
    """The sources the simulations of the model named ``spec_name`` (or serving ``role``) write (its dataset's
    configured simulator runs), in order."""
    from ..models import registry

    runs = registry.get(model_id(spec_name, role=role)).simulation_runs(size)
    return tuple(dict.fromkeys(r["source"] for r in runs if r.get("source")))


# ----------------------------------------------------------------------------- data helpers
def location_text() -> str:
    """Where the dashboards read from: store and registry (without importing MLflow, which takes seconds)."""
    registry = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{config.mlruns_dir() / 'mlflow.db'}"
    return f"store {config.store_dir()}; registry {registry}"


def location():
    """The landing page's footer: where the dashboards read from."""
    import ipywidgets as w

    return w.HTML(f"<small>{html.escape(location_text())}</small>")


def store():
    from ..store import Store

    return Store(config.store_dir())


_ENGINES: dict[tuple[str, ...], Any] = {}


def engine(model_ids: tuple[str, ...]):
    """The inference engine with these champions, loaded once per kernel (a dashboard loads only what it shows)."""
    key = tuple(sorted(model_ids))
    if key not in _ENGINES:
        from ..inference import Engine

        _ENGINES[key] = Engine.from_registry(key)
    return _ENGINES[key]


@dataclass
class Scored:
    """Readings of a range with their models' ``<model_id>.<output>`` columns.

    ``missing``: model id -> why it has no outputs; ``stored``: True when the outputs were read from
    the scores the pipeline stored (:mod:`gridtwin_lib.inference.stored`), False when scored on load."""

    frame: pl.DataFrame
    missing: dict[str, str]
    stored: bool


_SERVED: dict[str, tuple[float, str | None]] = {}
_SERVED_TTL_S = 30.0  # a page re-reads what serves a model at most this often


def served_keys(model_ids) -> dict[str, str | None]:
    """What serves each model now (:func:`gridtwin_lib.tracking.served_keys`), looked up at most once per
    :data:`_SERVED_TTL_S` per kernel."""
    now = time.monotonic()
    stale = [m for m in model_ids if m not in _SERVED or now - _SERVED[m][0] > _SERVED_TTL_S]
    if stale:
        from ..tracking import served_keys as lookup

        _SERVED.update({m: (now, key) for m, key in lookup(stale).items()})
    return {m: _SERVED[m][1] for m in model_ids}


def score_range(model_ids, source: str, device_id: str | None, start, end, with_features=()) -> Scored:
    """Three-phase readings of [start, end) with the ``<model_id>.<output>`` columns of ``model_ids`` (and
    ``with_features``, see :meth:`~gridtwin_lib.inference.Engine.score`).

    The outputs come from the stored scores when they are current and cover every reading of the range
    (:func:`gridtwin_lib.inference.stored.read`: no model is loaded); otherwise the engine scores the
    range on load, first fed the :data:`~gridtwin_lib.inference.HISTORY` before ``start`` so its
    windows are warm (e.g. readings the collector added since the last ``gridtwin scores refresh``)."""
    from ..inference import HISTORY
    from ..inference import stored as stored_scores

    ids = tuple(dict.fromkeys(model_ids))
    st = store()
    shown = st.scan("three_phase", source=source, device_id=device_id, start=start, end=end).collect()
    if shown.height == 0:
        raise MissingData(f"{source}{' / ' + device_id if device_id else ''}: no readings between "
                          f"{start:%Y-%m-%d %H:%M} and {end:%Y-%m-%d %H:%M} UTC; pick another day or range")
    got = stored_scores.read(st, source, served_keys(ids), device_id=device_id, start=start, end=end)
    if got is not None and all(c in got[0].columns or c in shown.columns for c in with_features):
        scores, missing = got  # (a feature that is not stored: score on load rather than leave it out)
        keep = [*(c for c in with_features if c in scores.columns and c not in shown.columns), *(c for c in scores.columns if "." in c)]
        frame = shown.join(scores.select("device_id", "ts", "status", *keep), on=["device_id", "ts"], how="left")
        if frame["status"].null_count() == 0:  # every reading has its stored row
            return Scored(frame.drop("status"), missing, True)
    eng = engine(ids)
    eng.reset()
    warm = st.scan("three_phase", source=source, device_id=device_id, start=start - HISTORY, end=start).collect()
    if warm.height:
        eng.score(warm)
    scores = eng.score(shown, with_features=with_features).frame
    outputs = [*(c for c in with_features if c in scores.columns and c not in shown.columns),
               *(c for c in scores.columns if "." in c and c.split(".", 1)[0] in ids and c.split(".", 1)[0] in eng.estimators)]
    frame = shown.with_row_index("row").join(scores.select("row", *outputs), on="row", how="left").drop("row")
    return Scored(frame, {m: eng.missing[m] for m in ids if m in eng.missing}, False)


def decimate(frame: pl.DataFrame, max_points: int = MAX_PLOT_POINTS, by: str | None = "device_id") -> pl.DataFrame:
    """Every n-th row (per ``by`` group) so no plotted trace exceeds ``max_points``."""
    if frame.height == 0:
        return frame
    groups = frame[by].n_unique() if by and by in frame.columns else 1
    step = max(1, frame.height // (max_points * groups))
    if step == 1:
        return frame
    if by and by in frame.columns:
        return frame.group_by(by, maintain_order=True).agg(pl.all().gather_every(step)).explode(pl.exclude(by))
    return frame.gather_every(step)


def per_device(frame: pl.DataFrame, max_points: int = MAX_PLOT_POINTS):
    """``(device_id, rows)`` per device, each sorted by time and thinned to ``max_points``: one trace per device
    (rows of several devices in one trace draw false diagonals where x steps back)."""
    if frame.height == 0 or "device_id" not in frame.columns:
        yield None, decimate(frame.sort("ts") if "ts" in frame.columns else frame, max_points, by=None)
        return
    for key, rows in sorted(frame.partition_by("device_id", as_dict=True).items()):
        yield key[0], decimate(rows.sort("ts"), max_points, by=None)


def sources(preferred: tuple[str, ...] = (), kind: str = "three_phase") -> list[str]:
    """Stored sources of ``kind``, the ``preferred`` ones first (in their order), then the others sorted."""
    found = store().sources(kind)
    if not found:
        raise MissingData(f"No {kind} readings in the store: run `make run` (or `gridtwin simulate`) first.")
    return [s for s in preferred if s in found] + sorted(set(found) - set(preferred))


def days(source: str, kind: str = "three_phase") -> list:
    """The local days (at the site of ``source``) holding readings of ``source``, oldest first."""
    local = pl.col("ts").dt.convert_time_zone(timezone_of(source)).dt.date()
    return (store().scan(kind, source=source).select(local.unique().sort())
            .collect()["ts"].to_list())
