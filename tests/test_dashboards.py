"""The Voila dashboards in a real browser: each renders without errors, shows its figures and
widgets, and reacts to one interaction.

One Voila server (``gridtwin_lib.dashboards.serve``) on a free 127.0.0.1 port reads the
smoke pipeline's workspace (the session fixture ``smoke_home``: its store and MLflow
registry with champions); one headless Chromium (Debian's ``/usr/bin/chromium``) visits the
pages in turn.

Outputs, in the project checkout (not the temporary smoke home, so they survive the run):
``data/reports/screenshots/<dashboard>.png`` and ``render_times.json`` (time from navigation
start to every expected figure visible, as the browser's ``performance.now()``); ``-s``
prints the table.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from gridtwin_lib import dashboards

ROOT = Path(dashboards.__file__).resolve().parents[2]  # the project checkout
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "data" / "reports" / "screenshots"
STDERR_OUTPUT = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
RENDER_TIMEOUT_MS = 180_000
CHANGE_TIMEOUT_MS = 45_000

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")

# What the figures show, as one string: every figure's title and traces (data). An interaction
# must change it (a status text changing is not enough).
SIGNATURE_JS = """() => JSON.stringify([...document.querySelectorAll('.js-plotly-plot')].map(p => [
     (p.layout && p.layout.title && p.layout.title.text) || '',
     (p.data || []).map(t => [t.name, t.x, t.y, t.z, t.values, t.value, t.text])]))"""


def _select(page, description: str, index: int = 1, label: str | None = None) -> None:
    """Choose option ``label`` (else option ``index``) of the dropdown labelled ``description``."""
    select = page.locator(".widget-dropdown", has_text=description).locator("select").first
    select.select_option(label=label) if label else select.select_option(index=index)


def _click(page, text: str) -> None:
    page.locator("button", has_text=text).first.click()


def _rewind_and_play(page) -> None:
    """Move the replay clock to the start (keyboard on the slider), then press Play: the traces shrink and regrow."""
    page.locator(".widget-slider", has_text="clock").locator(".noUi-handle").first.focus()
    page.keyboard.press("Home")
    page.locator(".widget-play button, .jupyter-widget-play button").first.click()


# one interaction per dashboard that must change what is shown
INTERACTIONS = {
    "index": None,
    "01_realtime_monitoring": _rewind_and_play,
    "02_predictive_maintenance": lambda page: _select(page, "asset", 1),
    "03_energy_flow": lambda page: _select(page, "day (local)", 1),
    "04_decision_making": lambda page: _select(page, "source", 1),
    "05_simulator": lambda page: (_select(page, "scenario", label="voltage_sag"), _click(page, "Run the twin")),
    "06_model_comparison": lambda page: _select(page, "model", 2),
}


@pytest.fixture(scope="module")
def voila(smoke_home):
    home, _ = smoke_home
    port = dashboards.free_port()
    proc = dashboards.serve(port, "127.0.0.1", folder=ROOT / "notebooks" / "dashboards", block=False,
                            env={"GRIDTWIN_HOME": str(home), "GRIDTWIN_WORKSPACE": "smoke", "MLFLOW_TRACKING_URI": None})
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except Exception:  # noqa: BLE001 - still running: stop it hard
        proc.kill()
    Path(proc.log_path).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


READY_JS = """n => { const plots = [...document.querySelectorAll('.js-plotly-plot')];
    return document.querySelector('.jp-OutputArea') !== null && plots.length >= n
           && plots.every(p => p.offsetWidth > 0 && p.offsetHeight > 0); }"""


def _expected_figures(name: str) -> int:
    return 0 if name == "index" else dashboards.dashboard(name).min_figures


@pytest.fixture(scope="module")
def rendered(voila, browser):
    """Each dashboard opened in turn (its own browser context) and polled until its expected figures are
    visible; the render time is the page's ``performance.now()`` at that moment. The pages stay open for the
    interaction tests. Prints the table and writes render_times.json at the end."""
    pages, times = {}, {}
    for name in INTERACTIONS:
        page = browser.new_context(viewport={"width": 1400, "height": 1600}).new_page()
        page.goto(f"{voila}/voila/render/{name}.ipynb", wait_until="commit", timeout=RENDER_TIMEOUT_MS)
        pages[name] = page
        deadline = time.monotonic() + RENDER_TIMEOUT_MS / 1000.0
        first_ready = None  # ready on one poll; counted once still ready on the next (no half-drawn state)
        while time.monotonic() < deadline:
            if not page.evaluate(READY_JS, _expected_figures(name)):
                first_ready = None
            elif first_ready is not None:
                times[name] = first_ready
                break
            else:
                first_ready = round(page.evaluate("performance.now()") / 1000.0, 2)
            time.sleep(0.2)
    yield pages, times
    for page in pages.values():
        page.context.close()
    if times:
        SHOTS.mkdir(parents=True, exist_ok=True)
        doc = {"render_s": times, "what": "navigation start -> every expected plotly figure visible, one dashboard at a "
               f"time, headless Chromium, one Voila server, {os.cpu_count()} cores",
               "data": "smoke workspace (tests/conftest.py smoke_home)", "command": ".venv/bin/pytest tests/test_dashboards.py -s"}
        (SHOTS / "render_times.json").write_text(json.dumps(doc, indent=2) + "\n")
        print("\ndashboard render times (navigation start -> all figures visible):")
        for name, seconds in times.items():
            print(f"  {name:<28} {seconds:6.2f} s")


@needs_chromium
@pytest.mark.parametrize("name", list(INTERACTIONS))
def test_dashboard_renders_and_reacts(name, rendered):
    pages, times = rendered
    page = pages[name]
    expected = _expected_figures(name)
    assert name in times, (f"{name}: its {expected} figures were not all visible within {RENDER_TIMEOUT_MS / 1000:.0f} s; "
                           f"page shows:\n{page.inner_text('body')[:2000]}")

    assert page.locator(STDERR_OUTPUT).count() == 0, page.locator(STDERR_OUTPUT).first.inner_text()
    body = page.inner_text("body")
    for bad in ("Traceback", "There was an error when executing cell", "could not be shown"):
        assert bad not in body, f"{name}: {bad!r} on the page:\n{body[:3000]}"
    assert page.locator(".js-plotly-plot").count() >= expected
    SHOTS.mkdir(parents=True, exist_ok=True)

    interact = INTERACTIONS[name]
    if interact is None:  # the landing page links every dashboard
        for d in dashboards.DASHBOARDS:
            assert page.locator(f"a[href$='{d.filename}']").count() == 1, d.filename
    else:
        assert page.locator(".widget-dropdown, .widget-button, button").count() > 0
        before = page.evaluate(SIGNATURE_JS)
        interact(page)
        page.wait_for_function(f"before => ({SIGNATURE_JS})() !== before", arg=before, timeout=CHANGE_TIMEOUT_MS)
        page.wait_for_function(READY_JS, arg=expected, timeout=CHANGE_TIMEOUT_MS)  # redrawn, not half-way
        assert page.evaluate(SIGNATURE_JS) != before
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# ----------------------------------------------------------------------------- without a browser
def test_missing_data_shows_a_message_not_a_traceback():
    def no_champion():
        raise dashboards.MissingData("m05_equipment_failure has no champion; run make run")

    def broken():
        raise ZeroDivisionError("division by zero")

    note = dashboards.guarded(no_champion, "the fleet")
    assert dashboards.MISSING_CLASS in note.value and "m05_equipment_failure has no champion" in note.value
    note = dashboards.guarded(broken, "the fleet")
    assert "the fleet could not be shown (ZeroDivisionError: division by zero)" in note.value
    assert "Traceback" not in note.value


def test_simulator_matches_m01_flags_to_truth_events():
    from gridtwin_lib.dashboards.simulator import match_events

    t0 = datetime(2025, 1, 6, tzinfo=timezone.utc)
    events = pl.DataFrame({"ts": [t0 + timedelta(seconds=100), t0 + timedelta(seconds=500)],
                           "end": [t0 + timedelta(seconds=110), t0 + timedelta(seconds=505)],
                           "device_id": ["d", "d"], "type": ["motor_start", "fault"]})
    ts = [t0 + timedelta(seconds=k) for k in range(700)]
    flags = [k in (104, 640) for k in range(700)]  # 4 s after the first event; 640 s is past the second's tolerance
    scores = pl.DataFrame({"ts": ts, "device_id": ["d"] * 700, "m01_voltage_anomaly.is_anomaly": flags})
    matched = match_events(events, scores, tolerance_s=60.0)
    assert matched["hit"].to_list() == [True, False]
    assert matched["delay_s"].to_list() == [4.0, None]


def test_follow_newest_tracks_what_the_collector_adds(tmp_path, monkeypatch):
    """The real-time dashboard's "follow newest" jumps to the range ending with the newest
    stored reading, and moves when new readings arrive (as the collector compacts them)."""
    from gridtwin_lib.dashboards import monitoring as mon
    from gridtwin_lib.store import Store

    monkeypatch.setenv("GRIDTWIN_STORE", str(tmp_path / "store"))
    store = Store(tmp_path / "store")
    t0 = datetime(2025, 3, 4, 9, 58, tzinfo=timezone.utc)

    def post(seconds: range):
        n = len(seconds)
        store.write("three_phase", pl.DataFrame({
            "ts": [t0 + timedelta(seconds=k) for k in seconds], "source": ["collector"] * n, "device_id": ["gw-1"] * n,
            **{f"v_{p}": [230.0] * n for p in "abc"}, **{f"i_{p}": [5.0] * n for p in "abc"}, "frequency": [50.0] * n,
            "quality_flags": [0] * n}, schema_overrides={"quality_flags": pl.UInt32}))

    assert mon.follow_range("collector", "gw-1") is None  # nothing stored yet: nothing to follow
    post(range(0, 60))
    assert mon.newest("collector", "gw-1") == t0 + timedelta(seconds=59)
    assert mon.follow_range("collector", "gw-1", hours=1) == (t0.date(), 9)
    post(range(60, 300))  # crosses 10:00
    assert mon.follow_range("collector", "gw-1", hours=1) == (t0.date(), 10)
    assert mon.follow_range("collector", "gw-1", hours=3) == (t0.date(), 8)


def test_follower_jumps_only_when_newer_readings_arrive(tmp_path, monkeypatch):
    """Follower.check (what the "follow newest" toggle runs every few seconds) jumps once per new reading."""
    from gridtwin_lib.dashboards import Quiet
    from gridtwin_lib.dashboards import monitoring as mon

    latest = {"t": None}
    monkeypatch.setattr(mon, "newest", lambda source, device: latest["t"])

    class Toggle:
        value = False

        def observe(self, fn, name):
            self.fn = fn

    jumps, reloads = [], []
    once = Quiet(lambda: reloads.append(1))

    def jump(day, hour):
        with once.setting():
            jumps.append((day, hour))
            once()  # a widget change inside the block does not reload by itself

    f = mon.Follower(Toggle(), lambda: ("collector", "gw-1", 1), jump, lambda fn, what: fn())
    assert f.check() is False and jumps == []  # nothing stored yet
    latest["t"] = datetime(2025, 3, 4, 10, 2, tzinfo=timezone.utc)
    assert f.check() is True and jumps == [(latest["t"].date(), 10)]
    assert f.check() is False  # no newer reading: no second jump
    latest["t"] += timedelta(hours=1)
    assert f.check() is True and jumps[-1] == (latest["t"].date(), 11)
    assert reloads == [1, 1]  # one reload per jump
