"""Dashboard render times in headless Chromium, per page, for one or several checkouts in the same run.

For each checkout (``--checkout``, default this one; give ``/work/main`` and this worktree to compare
before and after on the same data and machine state) a Voila server is started exactly as
``gridtwin dashboards`` starts it from that checkout (its own ``gridtwin_lib`` first on ``PYTHONPATH``,
its own ``notebooks/dashboards``), over the project named by ``--home`` (``GRIDTWIN_HOME``: the full
pipeline's store and MLflow registry). Each page is then visited ``--visits`` times, one at a time, in
a fresh browser context; per visit it records, as the page's own ``performance.now()`` [s]:

* **first figure**: the first plotly figure drawn (``.js-plotly-plot .main-svg`` visible);
* **all figures**: Voila has finished the notebook (its loading spinner is gone), at least the page's
  expected figures are drawn, and the count of drawn figures held still for 0.5 s;
* the page's state: ``ready``, ``error: ...`` (a cell error or the server's failure note), ``stalled: <Voila's
  spinner text>`` or ``incomplete: <figures drawn>`` after ``--timeout`` s; on a stall, with ``--dump``, every kernel
  of the server and the server itself are stack-dumped with py-spy into ``--out``.

A checkout whose server preheats kernels is first given time to run its pages (``--warmup-s``, until every
kernel has been idle for 5 s); its kernel floor is then the pool. After each visit the page is left as a user leaves it (navigation away, so Voila's shutdown-on-close call
is sent) and the live kernel count (``GET /api/kernels``) is recorded once it settles.

Medians and ranges per page and checkout are printed (``--json``: one JSON document). No figure of this
benchmark is asserted anywhere; the README quotes its output with the command that produced it.

Usage::

    .venv/bin/python tests/benchmarks/bench_dashboards.py --home /path/to/project \\
        --checkout /work/main --checkout . --visits 3 [--pages 02_predictive_maintenance] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.request import urlopen

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
PAGES = ("01_realtime_monitoring", "02_predictive_maintenance", "03_energy_flow", "04_decision_making",
         "05_simulator", "06_model_comparison")
SETTLE_S = 0.5  # [s] the drawn-figure count must hold still this long to count as "all figures"

STATE_JS = """() => {
  const visible = e => e && e.offsetWidth > 0 && e.offsetHeight > 0;
  const drawn = [...document.querySelectorAll('.js-plotly-plot')].filter(p => visible(p) && p.querySelector('.main-svg'));
  const err = document.querySelector(
      ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
      + ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error'], .voila-error, .gridtwin-failed");
  const loading = document.getElementById('loading');
  return {t: performance.now() / 1000.0, drawn: drawn.length,
          loading: loading ? (document.getElementById('loading_text') || loading).innerText : null,
          error: err ? err.innerText.slice(0, 300) : null};
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(checkout: Path, home: Path, port: int, log: Path, extra_env: dict[str, str]) -> subprocess.Popen:
    """``gridtwin dashboards`` of ``checkout`` (its library first on the path) over the project ``home``."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "GRIDTWIN_HOME": str(home),
           "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlruns' / 'mlflow.db'}", **extra_env}
    env.pop("GRIDTWIN_WORKSPACE", None)
    code = ("from pathlib import Path; from gridtwin_lib import dashboards; "
            f"dashboards.serve({port}, '127.0.0.1', folder=Path({str(checkout / 'notebooks' / 'dashboards')!r}))")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=checkout)  # cwd: `python -c` puts it first on sys.path
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server of {checkout} exited: {log.read_text()[-800:]}")
        try:
            with urlopen(f"http://127.0.0.1:{port}/api/kernels", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server of {checkout} did not answer within 120 s; see {log}")


def kernels(base: str) -> list[dict]:
    with urlopen(f"{base}/api/kernels", timeout=10) as resp:
        return json.load(resp)


def kernel_count(base: str) -> int:
    return len(kernels(base))


def wait_for_preheated(base: str, timeout_s: float, quiet_s: float = 5.0) -> int:
    """If the server preheats (kernels alive before any visit), wait until they have all run their page (every
    kernel idle for ``quiet_s``); the number of kernels then, 0 without preheating."""
    time.sleep(10.0)
    if not kernel_count(base):
        return 0
    deadline, idle_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        states = [k.get("execution_state") for k in kernels(base)]
        if states and all(s == "idle" for s in states):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= quiet_s:
                break
        else:
            idle_since = None
        time.sleep(1.0)
    return kernel_count(base)


def settled_kernels(base: str, floor: int, timeout_s: float = 30.0) -> int:
    """The kernel count once it is at most ``floor``, else after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    n = kernel_count(base)
    while n > floor and time.monotonic() < deadline:
        time.sleep(0.25)
        n = kernel_count(base)
    return n


def dump_stacks(server: subprocess.Popen, out: Path, tag: str) -> None:
    """py-spy dump of the server and each of its kernels (its child processes) into ``out``."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
    grandchildren = [c for p in children for c in subprocess.run(["pgrep", "-P", p], capture_output=True,
                                                                   text=True).stdout.split()]
    with (out / f"stacks-{tag}.txt").open("w") as f:
        for pid in [*children, *grandchildren]:
            f.write(f"===== pid {pid}: {Path(f'/proc/{pid}/cmdline').read_text().replace(chr(0), ' ')[:200]}\n")
            f.write(subprocess.run([py_spy, "dump", "--pid", pid], capture_output=True, text=True).stdout)


def visit(browser, base: str, name: str, timeout_s: float, expected: int) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    page.goto(f"{base}/voila/render/{name}.ipynb", wait_until="commit", timeout=int(timeout_s * 1000))
    first = done = None
    last_count, since = -1, None
    state = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s = page.evaluate(STATE_JS)
        if s["error"]:
            state = f"error: {s['error']}"
            break
        if s["drawn"] and first is None:
            first = s["t"]
        if s["loading"] is None and s["drawn"] >= max(expected, 1):
            if s["drawn"] != last_count:
                last_count, since = s["drawn"], s["t"]
            elif s["t"] - since >= SETTLE_S:
                done, state = since, "ready"
                break
        else:
            last_count, since = -1, None
        time.sleep(0.1)
    if state is None:
        s = page.evaluate(STATE_JS)
        state = (f"stalled: {s['loading']!r}" if s["loading"] is not None else
                 f"incomplete: {s['drawn']} of {max(expected, 1)} figures drawn; {page.inner_text('body')[:160]!r}")
    result = {"first_s": round(first, 2) if first else None, "all_s": round(done, 2) if done else None, "state": state}
    return result, page


def leave(page, timeout_s: float) -> None:
    page.goto("about:blank", timeout=int(timeout_s * 1000))
    page.context.close()


def expected_figures(checkout: Path) -> dict[str, int]:
    """Each page's ``min_figures`` as that checkout declares it (read in a child process: its own library)."""
    code = "import json; from gridtwin_lib import dashboards as d; print(json.dumps({x.name: x.min_figures for x in d.DASHBOARDS}))"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(checkout)},
                         capture_output=True, text=True, check=True, cwd=checkout).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_checkout(checkout: Path, args, out: Path) -> dict:
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = out / f"voila-{checkout.name}.log"
    expected = expected_figures(checkout)
    server = start_server(checkout, args.home, port, log, {})
    results: dict[str, list] = {}
    try:
        floor = wait_for_preheated(base, args.warmup_s)  # preheated pools (if the checkout has them) run their pages
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for k in range(args.visits):
                for name in args.pages:
                    res, page = visit(browser, base, name, args.timeout, expected.get(name, 1))
                    res["kernels_while_open"] = kernel_count(base)
                    if res["state"].startswith("stalled") and args.dump:
                        dump_stacks(server, out, f"{checkout.name}-{name}-{k}")
                    leave(page, args.timeout)
                    res["kernels_after_leaving"] = settled_kernels(base, floor)
                    results.setdefault(name, []).append(res)
                    if not args.json:
                        print(f"{checkout} {name} visit {k + 1}: {res}", flush=True)
            browser.close()
        final = settled_kernels(base, floor)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return {"pages": results, "kernel_floor": floor, "kernels_at_end": final, "log": str(log)}


def summary(results: dict) -> dict:
    rows = {}
    for name, visits in results["pages"].items():
        ok = [v for v in visits if v["state"] == "ready"]
        first = [v["first_s"] for v in ok if v["first_s"] is not None]
        all_ = [v["all_s"] for v in ok]
        rows[name] = {
            "ready": f"{len(ok)}/{len(visits)}",
            "first_s": f"{statistics.median(first):.1f} ({min(first):.1f}–{max(first):.1f})" if first else "–",
            "all_s": f"{statistics.median(all_):.1f} ({min(all_):.1f}–{max(all_):.1f})" if all_ else "–",
            "not_ready": [v["state"][:160] for v in visits if v["state"] != "ready"],
        }
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, required=True, help="project with the full pipeline's data/ and mlruns/")
    ap.add_argument("--checkout", type=Path, action="append", help="checkout to serve (repeatable; default: this one)")
    ap.add_argument("--pages", nargs="+", default=list(PAGES))
    ap.add_argument("--visits", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=240.0, help="[s] a visit not ready by then is 'stalled'")
    ap.add_argument("--warmup-s", type=float, default=900.0, help="[s] longest wait for preheated kernels to run their pages")
    ap.add_argument("--dump", action="store_true", help="py-spy dump server and kernels when a page stalls")
    ap.add_argument("--out", type=Path, default=None, help="folder for logs and dumps (default: a temporary one)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    checkouts = [c.resolve() for c in (args.checkout or [Path(__file__).resolve().parents[2]])]
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-dashboards-"))
    out.mkdir(parents=True, exist_ok=True)
    doc = {"home": str(args.home), "visits": args.visits, "cores": os.cpu_count(), "out": str(out), "checkouts": {}}
    for checkout in checkouts:
        doc["checkouts"][str(checkout)] = run = run_checkout(checkout, args, out)
        run["summary"] = summary(run)
    if args.json:
        print(json.dumps(doc, indent=1))
        return
    print(f"\npage render times [s] (median (min–max) of ready visits), {args.visits} visits per page, home {args.home}")
    for checkout, run in doc["checkouts"].items():
        print(f"\n{checkout}: kernel floor {run['kernel_floor']}, kernels after all visits {run['kernels_at_end']}")
        print(f"  {'page':<28} {'ready':>6} {'first figure':>18} {'all figures':>18}")
        for name, row in run["summary"].items():
            print(f"  {name:<28} {row['ready']:>6} {row['first_s']:>18} {row['all_s']:>18}")
            for bad in row["not_ready"]:
                print(f"      {bad}")


if __name__ == "__main__":
    main()
