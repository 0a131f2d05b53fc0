"""Pipelines: YAML lists of notebooks, executed by Papermill, leaving reports behind.

A pipeline file ``pipelines/<name>.yaml``::

    description: what it is for
    workspace: smoke                  # optional: a separate store and MLflow registry
    parameters: {size: full, seed: 42}   # passed to every notebook that declares them
    notebooks:
      - notebook: 00_data.ipynb
        parameters: {size: full}
      - notebook: 10_monitoring.ipynb
        after: [00_data]              # runs once 00_data has succeeded
        parameters: {overrides: {<model id>: {test_days: 7}}}   # changes to the configured parameters
    then:                             # optional: gridtwin commands run once the run's models are registered
      - gridtwin scores refresh

Each notebook runs in its own Papermill process on the ``gridtwin`` kernel (so
independent notebooks can run in parallel, ``jobs`` > 1). Parameters are checked
against the notebook's ``parameters`` cell before anything runs: unknown names and
wrong types are errors. Output: ``data/reports/<pipeline>/<UTC timestamp>/`` with the
executed notebooks, HTML reports (code hidden), ``index.html`` and ``pipeline.json``;
``data/reports/<pipeline>/latest`` points at the newest (in a workspace:
``data/workspaces/<name>/reports/``).

MLflow: a notebook's model runs are written to a manifest while it runs; only when
every notebook of the run succeeds are they registered (champion rule in :mod:`.tracking`) and
given the executed notebook and its report as artifacts. If it fails, its runs are
marked FAILED, nothing is registered, the pipeline stops with one line and the
failed notebook is kept for inspection.
"""

from __future__ import annotations

import ast
import html
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from . import config
from .errors import InputError
from .fileio import replace_symlink

KERNEL = "gridtwin"


class PipelineError(RuntimeError):
    """A notebook failed; the message is one line naming it and the error."""


@dataclass
class Step:
    name: str  # notebook stem, e.g. "10_monitoring"
    notebook: Path
    parameters: dict[str, Any]
    after: list[str]


@dataclass
class Pipeline:
    name: str
    path: Path
    description: str
    steps: list[Step]
    workspace: str | None = None
    then: list[list[str]] = field(default_factory=list)  # gridtwin commands run once the run's models are registered

    def order(self) -> list[Step]:
        """Steps in a dependency-respecting order (as listed, when the file respects it)."""
        done: set[str] = set()
        out: list[Step] = []
        pending = list(self.steps)
        while pending:
            ready = [s for s in pending if set(s.after) <= done]
            if not ready:
                raise InputError(f"{self.path}: the 'after' lists form a cycle among "
                                 f"{[s.name for s in pending]}; remove one dependency")
            for s in ready:
                out.append(s)
                done.add(s.name)
                pending.remove(s)
        return out


@dataclass
class StepResult:
    name: str
    status: str  # "ok", "failed", "skipped", "planned"
    seconds: float = 0.0
    notebook: str | None = None
    report: str | None = None
    error: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PipelineResult:
    pipeline: str
    run_id: str
    out_dir: str
    status: str
    seconds: float
    steps: list[StepResult]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- loading
def pipelines_dir() -> Path:
    return config.project_root() / "pipelines"


def notebooks_dir() -> Path:
    return config.project_root() / "notebooks"


def list_pipelines() -> list[dict[str, Any]]:
    """Pipelines in ``pipelines/`` (files with a ``notebooks`` list)."""
    out = []
    for path in sorted(pipelines_dir().glob("*.yaml")):
        raw = _read_yaml(path)
        if isinstance(raw, dict) and "notebooks" in raw:
            out.append({"name": path.stem, "description": raw.get("description", ""),
                        "notebooks": [n.get("notebook") if isinstance(n, dict) else n for n in raw["notebooks"]]})
    return out


def load(name: str) -> Pipeline:
    """Read and check a pipeline: notebooks exist, dependencies are known, parameters fit."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else pipelines_dir() / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(p["name"] for p in list_pipelines()) or "none"
        raise InputError(f"unknown pipeline {name!r} (no {path}); known pipelines: {known}")
    raw = _read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("notebooks"), list) or not raw["notebooks"]:
        raise InputError(f"{path}: expected a mapping with a non-empty 'notebooks' list")
    unknown = set(raw) - {"description", "workspace", "parameters", "notebooks", "then"}
    if unknown:
        raise InputError(f"{path}: unknown key(s) {sorted(unknown)}; "
                         "allowed: description, workspace, parameters, notebooks, then")
    ws = raw.get("workspace")
    if ws is not None and (not isinstance(ws, str) or not ws.replace("-", "").replace("_", "").isalnum()):
        raise InputError(f"{path}: workspace {ws!r} must be a simple name (letters, digits, '-', '_')")
    common = raw.get("parameters") or {}
    _check_configuration()
    steps: list[Step] = []
    for i, item in enumerate(raw["notebooks"], 1):
        if isinstance(item, str):
            item = {"notebook": item}
        if not isinstance(item, dict) or "notebook" not in item:
            raise InputError(f"{path}: notebooks[{i}] needs a 'notebook' key")
        extra = set(item) - {"notebook", "parameters", "after"}
        if extra:
            raise InputError(f"{path}: notebooks[{i}] has unknown key(s) {sorted(extra)}; allowed: notebook, parameters, after")
        nb = notebooks_dir() / item["notebook"]
        if not nb.exists():
            raise InputError(f"{path}: notebook {item['notebook']!r} not found in {notebooks_dir()}; fix the name")
        declared = notebook_parameters(nb)
        params = {k: v for k, v in common.items() if k in declared}
        params.update(item.get("parameters") or {})
        _check_parameters(path, nb, params, declared)
        if "overrides" in params:
            _check_overrides(path, nb, params["overrides"])
        steps.append(Step(nb.stem, nb, params, [str(a).removesuffix(".ipynb") for a in item.get("after", [])]))
    names = {s.name for s in steps}
    for s in steps:
        missing = set(s.after) - names
        if missing:
            raise InputError(f"{path}: {s.name} runs after {sorted(missing)}, which the pipeline does not list")
    pipe = Pipeline(path.stem, path, raw.get("description", ""), steps, ws, _then_commands(path, raw.get("then") or []))
    pipe.order()  # cycles
    return pipe


def _then_commands(path: Path, then: Any) -> list[list[str]]:
    """The ``then`` list: ``gridtwin`` commands (e.g. ``gridtwin scores refresh``), as argument lists."""
    import shlex

    if not isinstance(then, list) or not all(isinstance(c, str) for c in then):
        raise InputError(f"{path}: 'then' must be a list of commands such as 'gridtwin scores refresh'")
    commands = [shlex.split(c) for c in then]
    for c, text in zip(commands, then, strict=True):
        if len(c) < 2 or c[0] != "gridtwin":
            raise InputError(f"{path}: then: {text!r} is not a gridtwin command; write e.g. 'gridtwin scores refresh'")
    return commands


def notebook_parameters(nb: Path) -> dict[str, dict[str, Any]]:
    """The notebook's ``parameters`` cell as {name: {"type": ..., "default": ...}}."""
    import papermill

    try:
        found = papermill.inspect_notebook(str(nb))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{nb}: cannot read its parameters cell ({exc})") from None
    out = {}
    for k, v in found.items():
        kind = v.get("inferred_type_name")
        if kind in (None, "None"):  # no annotation: the type of the default literal
            try:
                kind = type(ast.literal_eval(v.get("default"))).__name__
            except (ValueError, SyntaxError, TypeError):
                kind = None
        out[k] = {"type": kind, "default": v.get("default")}
    return out


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
    "list": (list,), "dict": (dict,),
}


def _check_parameters(path: Path, nb: Path, params: dict[str, Any], declared: dict[str, dict[str, Any]]) -> None:
    for key, value in params.items():
        if key not in declared:
            raise InputError(f"{path}: {nb.name} has no parameter {key!r}; it declares: {', '.join(declared) or 'none'}")
        want = declared[key]["type"]
        ok = _TYPES.get(want)
        if ok is None:  # None/unknown types: anything goes
            continue
        if isinstance(value, bool) and bool not in ok:
            ok = ()
        if not isinstance(value, ok):
            raise InputError(f"{path}: {nb.name} parameter {key!r} must be {want} "
                             f"(default {declared[key]['default']}), got {type(value).__name__} {value!r}")


def _check_configuration() -> None:
    """The configuration folder reads (every file checked) and names only registered models, before anything runs."""
    from .models import registry

    registry.check_configuration()
    for entry in registry.entries():
        for size in registry.SIZES:
            entry.parameters(size)
            entry.simulation_runs(size)


def _check_overrides(path: Path, nb: Path, overrides: Any) -> None:
    """A notebook's ``overrides`` name registry models and parameters their builder or estimator accepts."""
    import inspect

    from .models import registry

    if not isinstance(overrides, dict):
        raise InputError(f"{path}: {nb.name} overrides must map model ids to {{parameter: value}}, got {type(overrides).__name__}")
    for model_id, params in overrides.items():
        if model_id not in registry.ids():
            raise InputError(f"{path}: {nb.name} overrides unknown model {model_id!r}; known: {', '.join(registry.ids())}")
        if not isinstance(params, dict):
            raise InputError(f"{path}: {nb.name} overrides of {model_id} must be {{parameter: value}}, got {params!r}")
        entry = registry.get(model_id)
        accepted = set(inspect.signature(entry.estimator_class()).parameters)
        prefixes = [(entry.dataset_prefix, entry.dataset)] + [(v.prefix, v.dataset) for v in entry.variants]
        for name in params:
            builder = next((b for pre, b in prefixes if pre and name.startswith(pre)), None if entry.dataset_prefix else entry.dataset)
            ok = name in accepted or (builder is not None and name.removeprefix(
                next((pre for pre, b in prefixes if b == builder and pre), "")) in inspect.signature(registry.load(builder)).parameters)
            if not ok:
                raise InputError(f"{path}: {nb.name} overrides {model_id}.{name}, a parameter neither its dataset builder "
                                 f"nor its estimator accepts; check the spelling (its parameters: conf/base/models/)")


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file") from None


# ----------------------------------------------------------------------------- running
def run(
    name: str,
    *,
    jobs: int = 1,
    dry_run: bool = False,
    echo: Callable[[str], None] | None = print,
    timeout_s: int | None = None,
) -> PipelineResult:
    """Run a pipeline; raise :class:`PipelineError` (after writing the index) if a notebook fails."""
    say = echo or (lambda _m: None)
    pipe = load(name)
    previous = os.environ.get("GRIDTWIN_WORKSPACE")
    if pipe.workspace:  # notebooks inherit it; so do tracking and the report folder here
        os.environ["GRIDTWIN_WORKSPACE"] = pipe.workspace
    try:
        return _run(pipe, jobs, dry_run, say, timeout_s)
    finally:
        if previous is None:
            os.environ.pop("GRIDTWIN_WORKSPACE", None)
        else:
            os.environ["GRIDTWIN_WORKSPACE"] = previous


def _run(pipe: Pipeline, jobs: int, dry_run: bool, say: Callable[[str], None], timeout_s: int | None) -> PipelineResult:
    order = pipe.order()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = config.reports_dir() / pipe.name
    out_dir = base / stamp
    n = 2
    while out_dir.exists():
        out_dir = base / f"{stamp}-{n}"
        n += 1

    if dry_run:
        steps = [StepResult(s.name, "planned", notebook=str(s.notebook)) for s in order]
        for i, s in enumerate(order, 1):
            deps = f" after {', '.join(s.after)}" if s.after else ""
            shown = json.dumps(s.parameters, default=str)
            shown = shown if len(shown) <= 160 else f"{len(s.parameters)} parameters: {', '.join(s.parameters)}"[:160] + "…"
            say(f"[{i}/{len(order)}] {s.notebook.name}{deps} {shown}")
        for c in pipe.then:
            say(f"then: {' '.join(c)}")
        say(f"dry run: nothing executed; reports would go to {out_dir}")
        return PipelineResult(pipe.name, out_dir.name, str(out_dir), "planned", 0.0, steps)

    _check_kernel()
    if config.workspace():
        say(f"workspace {config.workspace()}: store {config.store_dir()}, MLflow {config.mlruns_dir()}")
    return _execute(pipe, order, base, out_dir, jobs, timeout_s, say)


def _execute(pipe: Pipeline, order: list[Step], base: Path, out_dir: Path, jobs: int, timeout_s: int | None,
             say: Callable[[str], None]) -> PipelineResult:
    stamp = out_dir.name
    from . import tracking

    tracking.client()  # fail early, with one line, if the tracking store cannot be opened
    out_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    results: dict[str, StepResult] = {s.name: StepResult(s.name, "skipped") for s in order}
    say(f"pipeline {pipe.name}: {len(order)} notebooks, reports in {out_dir}")
    failure: str | None = None
    done: set[str] = set()
    pending = list(order)
    running: dict[Future, Step] = {}
    position = {s.name: i for i, s in enumerate(order, 1)}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while pending or running:
            if failure is None:
                for s in [s for s in pending if set(s.after) <= done][: max(0, jobs - len(running))]:
                    pending.remove(s)
                    say(f"[{position[s.name]}/{len(order)}] {s.notebook.name} started")
                    running[pool.submit(_run_step, pipe, s, out_dir, stamp, timeout_s)] = s
            else:
                pending.clear()
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                s = running.pop(fut)
                res = fut.result()
                results[s.name] = res
                tag = "ok" if res.status == "ok" else "FAILED"
                runs = f", {len(res.runs)} model run(s)" if res.runs else ""
                say(f"[{position[s.name]}/{len(order)}] {s.notebook.name} {tag} in {res.seconds:.1f} s{runs}"
                    + (f": {res.error}" if res.error else ""))
                if res.status == "ok":
                    done.add(s.name)
                elif failure is None:
                    failure = f"{s.notebook.name} failed: {res.error}"

    # register only when every notebook of the run succeeded: a failed sibling (even one that
    # ran in parallel, --jobs > 1) means the run as a whole produced no model to promote
    if failure is None:
        failure = _register_all(order, results, say)
    else:
        _fail_finished(order, results, failure)
    after = []
    for command in pipe.then if failure is None else []:
        after.append(_run_command(command, out_dir, say))
        if after[-1].status != "ok":
            failure = f"{after[-1].name} failed (the models are registered): {after[-1].error}"
            break

    result = PipelineResult(pipe.name, out_dir.name, str(out_dir), "failed" if failure else "ok",
                            round(time.perf_counter() - t0, 1), [*(results[s.name] for s in order), *after], failure)
    (out_dir / "pipeline.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    _write_index(out_dir, pipe, result)
    _point_latest(base, out_dir)
    say(f"pipeline {pipe.name} {result.status} in {result.seconds:.1f} s; report: {out_dir / 'index.html'}")
    if failure:
        raise PipelineError(f"pipeline {pipe.name}: {failure} (executed notebook kept in {out_dir})")
    return result


def _register_all(order: list[Step], results: dict[str, StepResult], say: Callable[[str], None]) -> str | None:
    """Register every step's runs (champion rule in :mod:`.tracking`); the failure, if any."""
    from . import tracking

    for s in order:
        res = results[s.name]
        try:
            res.runs = [tracking.register_run(r).to_dict() if r.get("registrable", True) else r for r in res.runs]
        except Exception as exc:  # noqa: BLE001 - the registry failed after the notebooks succeeded
            res.status, res.error = "failed", f"registering its models failed: {type(exc).__name__}: {exc}"[:500]
            return f"{s.notebook.name} failed: {res.error}"
        for r in res.runs:
            if r.get("champion") is not None:
                say(f"      {r['model_id']}: {r['primary_metric']} {r['metric']:.4g} vs baseline "
                    f"{r['baseline_metric']:.4g}; v{r['registered_version']}"
                    f"{' is champion' if r['champion'] else ' not champion'} ({r['champion_reason']})")
    return None


def _run_command(command: list[str], out_dir: Path, say: Callable[[str], None]) -> StepResult:
    """One ``then`` command in its own process (``python -m gridtwin_lib``, the workspace inherited); its output
    goes to ``<run folder>/<command>.log``."""
    name = " ".join(command)
    log = out_dir / (("_".join(command[1:]) or "command") + ".log")
    say(f"then: {name} started")
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run([sys.executable, "-m", "gridtwin_lib", *command[1:]], stdout=fh, stderr=subprocess.STDOUT,
                            cwd=config.project_root()).returncode
    res = StepResult(name, "ok" if rc == 0 else "failed", round(time.perf_counter() - t0, 1), report=str(log))
    if rc != 0:
        res.error = _last_line(log.read_text()) or f"exit status {rc}"
    say(f"then: {name} {'ok' if rc == 0 else 'FAILED'} in {res.seconds:.1f} s" + (f": {res.error}" if res.error else ""))
    return res


def _fail_finished(order: list[Step], results: dict[str, StepResult], failure: str) -> None:
    """Mark the runs of notebooks that succeeded FAILED too: their pipeline run failed, nothing is registered."""
    from . import tracking

    for s in order:
        res = results[s.name]
        if res.status == "ok" and res.runs:
            tracking.fail_runs([r["run_id"] for r in res.runs], f"not registered: {failure}")


def _run_step(pipe: Pipeline, step: Step, out_dir: Path, stamp: str, timeout_s: int | None) -> StepResult:
    from . import tracking

    out_nb = out_dir / step.notebook.name
    manifest = out_dir / f"{step.name}.runs.jsonl"
    params_file = out_dir / f"{step.name}.parameters.yaml"
    params_file.write_text(yaml.safe_dump(step.parameters, sort_keys=False))
    env = {**os.environ, "GRIDTWIN_PIPELINE": pipe.name, "GRIDTWIN_PIPELINE_RUN": stamp,
           "GRIDTWIN_NOTEBOOK": step.notebook.name, tracking.MANIFEST_ENV: str(manifest),
           "GRIDTWIN_REPORT_DIR": str(out_dir), "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "papermill", str(step.notebook), str(out_nb), "-k", KERNEL,
           "-f", str(params_file), "--cwd", str(step.notebook.parent), "--no-progress-bar", "--log-level", "ERROR"]
    if timeout_s:
        cmd += ["--execution-timeout", str(timeout_s)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    res = StepResult(step.name, "ok" if proc.returncode == 0 else "failed", round(seconds, 1), notebook=str(out_nb))
    if out_nb.exists():
        res.report = str(_to_html(out_nb))
    runs = tracking.read_manifest(manifest)
    if proc.returncode != 0:
        res.error = _notebook_error(out_nb) or _last_line(proc.stderr) or f"papermill exit status {proc.returncode}"
        tracking.fail_runs([r["run_id"] for r in runs], f"{step.notebook.name}: {res.error}")
        res.runs = runs
        return res
    mlflow_copy = tempfile.TemporaryDirectory() if res.report else None  # the report with plotly.js inside
    artifacts = [out_nb] + ([_to_html(out_nb, Path(mlflow_copy.name) / Path(res.report).name)] if mlflow_copy else [])
    res.runs = runs  # registered by _register_all once every notebook of the pipeline run succeeded
    try:
        tracking.log_run_artifacts([r["run_id"] for r in runs], artifacts, "notebook")
    except Exception as exc:  # noqa: BLE001 - the tracking store failed after the notebook succeeded
        res.status, res.error = "failed", f"logging its notebook failed: {type(exc).__name__}: {exc}"[:500]
    finally:
        if mlflow_copy is not None:
            mlflow_copy.cleanup()
    return res


def _check_kernel() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    if KERNEL not in KernelSpecManager().find_kernel_specs():
        raise InputError(f"Jupyter kernel {KERNEL!r} is not installed; run `make install` (or "
                         f"`python -m ipykernel install --sys-prefix --name {KERNEL}`)")


def _notebook_error(nb: Path) -> str | None:
    """'cell N: ErrorName: message' of the first error in an executed notebook (N counts code cells)."""
    if not nb.exists():
        return None
    try:
        data = json.loads(nb.read_text())
    except (OSError, ValueError):
        return None
    code_cells = 0
    for cell in data.get("cells", []):
        if cell.get("cell_type") != "code" or "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        code_cells += 1  # numbered as in the source notebook
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                value = str(out.get("evalue", "")).strip().splitlines()
                return f"cell {code_cells}: {out.get('ename')}: {value[0] if value else ''}"[:500]
    return None


def _last_line(text: str) -> str | None:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:500] if lines else None


def _to_html(nb: Path, out: Path | None = None) -> Path:
    """HTML report of an executed notebook with the code hidden, offline (see :mod:`gridtwin_lib.report_html`):
    beside the notebook sharing the run folder's plotly.min.js, or self-contained at ``out``."""
    from .report_html import notebook_html

    return notebook_html(nb, out, inline_plotly=out is not None)


def _write_index(out_dir: Path, pipe: Pipeline, result: PipelineResult) -> None:
    rows = []
    for s in result.steps:
        nb = Path(s.notebook).name if s.notebook else ""
        report = Path(s.report).name if s.report else ""
        runs = "<br>".join(
            f'<a href="{html.escape(r["url"])}">{html.escape(r["model_id"])}</a>: '
            f'{html.escape(r["primary_metric"])} {r["metric"]:.4g} vs {r["baseline_metric"]:.4g}'
            + (f' (v{r["registered_version"]}{", champion" if r.get("champion") else ""})'
               if r.get("registered_version") else "")
            for r in s.runs)
        rows.append(
            f"<tr class='{s.status}'><td>{html.escape(s.name)}</td><td>{s.status}</td><td>{s.seconds:.1f}</td>"
            f"<td>{f'<a href={chr(34)}{report}{chr(34)}>report</a>' if report else ''} "
            f"{f'<a href={chr(34)}{nb}{chr(34)}>notebook</a>' if nb and s.status != 'skipped' else ''}</td>"
            f"<td>{html.escape(s.error or '')}</td><td>{runs}</td></tr>")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>GridTwin {pipe.name} {result.run_id}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}}
tr.failed{{background:#fdd}} tr.skipped{{color:#888}}</style></head><body>
<h1>GridTwin pipeline <code>{html.escape(pipe.name)}</code></h1>
<p>{html.escape(pipe.description)}</p>
<p>Run {result.run_id} · status <b>{result.status}</b> · {result.seconds:.1f} s
{f'· <b>{html.escape(result.error)}</b>' if result.error else ''}</p>
<table><tr><th>notebook</th><th>status</th><th>seconds</th><th>outputs</th><th>error</th><th>MLflow runs</th></tr>
{''.join(rows)}</table>
<p>MLflow links open the UI served by <code>make mlflow</code>.</p></body></html>"""
    (out_dir / "index.html").write_text(page)


def _point_latest(base: Path, out_dir: Path) -> None:
    replace_symlink(base / "latest", out_dir.name)
