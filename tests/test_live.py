"""The live scorer (``gridtwin_lib.inference.live``): the collector's acknowledged readings scored on
arrival, once each, with the engine's outputs, alerts pushed when they open, worsen or close.

The engine runs the probe estimators of tests/test_inference.py (deterministic functions of their
input row), so equality with one ``Engine.score`` over the same readings proves that the live path
scores every reading with the features a batch gives it.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from test_inference import probes
from typer.testing import CliRunner

from gridtwin_lib import inference
from gridtwin_lib.alerts import load_rules
from gridtwin_lib.cli import app
from gridtwin_lib.collect.wal import TABLES, WriteAheadLog
from gridtwin_lib.inference.live import WS_PATH, LiveScorer, Subscribers, create_app
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

VALUES = TABLES["three_phase"][1]
T0 = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def readings(tmp_path_factory) -> pl.DataFrame:
    """Two devices, 40 min at 1 s, interleaved in time as they would arrive."""
    store = Store(tmp_path_factory.mktemp("live") / "store")
    run_scenario("mixed", duration="40m", resolution="1s", seed=21, devices=2, store=store, progress=False,
                 source="sim:live", start=T0)
    return store.scan("three_phase", source="sim:live").collect().sort("ts", "device_id")


def _log_rows(frame: pl.DataFrame) -> list[tuple]:
    """``frame``'s readings as write-ahead log rows: (device_id, boot, seq, ts_us, values...)."""
    cols = [pl.col(v) if v in frame.columns else pl.lit(None, pl.Float64).alias(v) for v in VALUES]
    part = frame.select("device_id", pl.col("ts").dt.epoch("us").alias("ts_us"), *cols)
    return [(r[0], 0, int(r[1]), int(r[1]), *r[2:]) for r in part.iter_rows()]


def _append(wal: WriteAheadLog, frame: pl.DataFrame) -> None:
    assert all(wal.append_sync("three_phase", _log_rows(frame)))


def _scores(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "score"]


def test_every_logged_reading_is_scored_once_with_a_batchs_outputs(tmp_path, readings):
    wal = WriteAheadLog(tmp_path)
    scorer = LiveScorer(inference.Engine(probes()), tmp_path, start="end", batch_rows=1_000)
    pushed = []
    for chunk in readings.iter_slices(700):  # arrivals between polls; a backlog is worked off in batches of 1,000
        _append(wal, chunk)
        while (polled := scorer.poll()).readings:
            pushed.extend(_scores(polled.messages))
    wal.close()
    ids = [m["id"] for m in pushed]
    assert sorted(ids) == ids and len(set(ids)) == len(ids) == readings.height  # each reading once, in log order
    live = pl.DataFrame([{"device_id": m["device_id"], "ts": m["ts"], "status": m["status"], **m["scores"]} for m in pushed],
                        infer_schema_length=None)
    live = live.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC", time_unit="us")).sort("device_id", "ts")
    logged = readings.select("ts", "device_id", *VALUES)  # what the collector's payload carries (no THD)
    batch = inference.Engine(probes()).score(logged, with_features=inference.ALERT_FEATURES).frame
    outputs = [c for c in batch.columns if "." in c and batch[c].dtype.is_numeric()]
    assert len(outputs) >= 6
    # to float rounding: running window sums over polls and over one batch round differently
    assert_frame_equal(live.select("device_id", "ts", "status", *outputs),
                       batch.sort("device_id", "ts").select("device_id", "ts", "status", *outputs),
                       check_exact=False, rel_tol=1e-6, abs_tol=1e-6, check_dtypes=False)


def test_a_restart_resumes_after_the_saved_watermark(tmp_path, readings):
    wal = WriteAheadLog(tmp_path)
    first, second = readings.slice(0, 300), readings.slice(300, 200)
    _append(wal, first)
    assert LiveScorer(inference.Engine(probes()), tmp_path).last_id == 300  # nothing saved: from the log's end
    scorer = LiveScorer(inference.Engine(probes()), tmp_path, start="start")
    assert scorer.poll().readings == 300
    scorer.save()
    scorer.close()
    _append(wal, second)
    again = LiveScorer(inference.Engine(probes()), tmp_path)  # start="saved"
    polled = again.poll()
    assert (polled.first_id, polled.last_id, polled.readings) == (301, 500, 200)
    assert again.poll().readings == 0
    wal.close()


@pytest.mark.parametrize("chunk_rows", [100_000, 700])
def test_a_restart_continues_each_devices_windows_from_the_log(tmp_path, readings, monkeypatch, chunk_rows):
    """After a restart the scorer hands the engine the log's readings before its watermark, so the
    next readings get the scores an uninterrupted scorer gives them; without that they do not.
    ``chunk_rows`` 700: the log is walked back in several chunks."""
    monkeypatch.setattr(LiveScorer, "WARM_CHUNK_ROWS", chunk_rows)
    wal = WriteAheadLog(tmp_path)
    first, second = readings.slice(0, 3_000), readings.slice(3_000, 400)
    _append(wal, first)
    scorer = LiveScorer(inference.Engine(probes()), tmp_path, start="start")
    while scorer.poll().readings:
        pass
    scorer.save()
    scorer.close()
    _append(wal, second)
    uninterrupted = inference.Engine(probes()).score(readings.head(3_400).select("ts", "device_id", *VALUES)).frame.tail(400)
    outputs = [c for c in uninterrupted.columns if "." in c and uninterrupted[c].dtype.is_numeric()]

    def after_restart(warm: bool) -> pl.DataFrame:
        again = LiveScorer(inference.Engine(probes()), tmp_path, warm=warm)
        assert again.warmed == (3_000 if warm else 0)
        pushed = _scores(again.poll().messages)
        again.close()
        return pl.DataFrame([m["scores"] for m in pushed], infer_schema_length=None).select(outputs)

    assert_frame_equal(after_restart(True), uninterrupted.select(outputs), check_exact=False, rel_tol=1e-6, abs_tol=1e-6,
                       check_dtypes=False)
    cold = after_restart(False)
    assert not cold.equals(uninterrupted.select(outputs).cast(cold.schema))  # windows started empty: other scores
    wal.close()


def test_a_restart_reads_back_only_the_window_it_needs(tmp_path, readings, monkeypatch):
    """The log is read back from the watermark until the readings are older than the engine's windows reach."""
    from gridtwin_lib.inference import live

    monkeypatch.setattr(live, "HISTORY", timedelta(minutes=10))
    monkeypatch.setattr(LiveScorer, "WARM_CHUNK_ROWS", 500)
    wal = WriteAheadLog(tmp_path)
    _append(wal, readings)
    newest = readings["ts"].max()
    scorer = LiveScorer(inference.Engine(probes()), tmp_path, start="end")
    assert scorer.warmed == readings.filter(pl.col("ts") >= newest - timedelta(minutes=10)).height
    scorer.close()
    wal.close()


def test_alerts_are_pushed_when_opened_raised_and_closed_not_on_every_firing(tmp_path):
    """Device d1: 20 normal minutes, 30 s at +13 % (MEDIUM), 30 s at +17 % (HIGH), then normal past the merge gap."""
    n = 20 * 60 + 60 + 16 * 60
    volts = [230.0] * 1200 + [260.0] * 30 + [270.0] * 30 + [230.0] * (n - 1260)
    frame = pl.DataFrame({
        "ts": [T0 + timedelta(seconds=k) for k in range(n)], "device_id": ["d1"] * n,
        **{f"v_{p}": volts for p in "abc"}, **{f"i_{p}": [10.0] * n for p in "abc"}, "frequency": [50.0] * n,
    })
    wal = WriteAheadLog(tmp_path)
    scorer = LiveScorer(inference.Engine(probes()), tmp_path, rules=load_rules(), start="end")
    pushed = []
    for chunk in frame.iter_slices(30):  # polls see the +13 % half-minute, then the +17 % one
        _append(wal, chunk)
        pushed.extend(scorer.poll().messages)
    wal.close()
    band = [(m["event"], m["severity"], m["count"]) for m in pushed if m["type"] == "alert" and m["rule"] == "voltage_band"]
    assert band == [("opened", "MEDIUM", 30), ("raised", "HIGH", 60), ("closed", "HIGH", 60)], band
    assert len(_scores(pushed)) == n


def test_the_socket_pushes_each_reading_of_the_devices_asked_for(tmp_path, readings):
    from fastapi.testclient import TestClient

    wal = WriteAheadLog(tmp_path)
    scorer = LiveScorer(inference.Engine(probes()), tmp_path, start="end")
    part = readings.slice(0, 400)
    device = part["device_id"][0]
    with TestClient(create_app(scorer, poll_s=0.005)) as client:
        with client.websocket_connect(f"{WS_PATH}?device={device}") as ws:
            _append(wal, part)
            got = []
            while len(got) < part.filter(pl.col("device_id") == device).height:
                m = json.loads(ws.receive_text())
                if m["type"] == "score":
                    got.append(m)
        assert {m["device_id"] for m in got} == {device}
        assert len({m["id"] for m in got}) == len(got)
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["last_id"] == 400 and health["backlog"] == 0, health
        deadline = time.monotonic() + 10  # the subscriber left: noticed without a message for its device
        while client.get("/health").json()["subscribers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/health").json()["subscribers"] == 0
        metrics = client.get("/metrics").text
        counted = re.findall(r'^gridtwin_live_readings_scored_total\{status="(\w+)"\} ([\d.]+)$', metrics, re.M)
        assert sum(float(n) for _, n in counted) == 400, metrics[:2000]  # by status: partial while m07 warms up
        assert "gridtwin_live_poll_seconds_bucket" in metrics and "gridtwin_live_backlog_readings 0.0" in metrics
    wal.close()


def test_a_subscriber_that_falls_behind_is_told_and_dropped_not_silently_skipped():
    import asyncio

    async def run():
        subs = Subscribers(capacity=3)
        _, slow = subs.add(None)
        _, other = subs.add(["d2"])
        subs.publish([{"type": "score", "device_id": "d1", "id": k} for k in range(5)])
        return subs, slow, other

    subs, slow, other = asyncio.run(run())
    assert subs.dropped == 1 and len(subs) == 1
    assert slow.get_nowait() is None  # the socket closes with code 1013: reconnect
    assert other.empty()  # d2's subscriber saw none of d1's messages and stays


def test_live_without_a_collector_log_is_one_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["live", "--collector-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no collector log" in result.output and "gridtwin collect" in result.output
    assert "Traceback" not in result.output
    WriteAheadLog(tmp_path).close()
    result = CliRunner().invoke(app, ["live", "--collector-dir", str(tmp_path), "--start", "yesterday"])
    assert result.exit_code == 2 and "choose saved, end, start" in result.output, result.output


# ----------------------------------------------------------------------------- dashboard 01's live panel


def _serve_in_thread(app):
    """``app`` on a free loopback port in a thread; (url, stop)."""
    import threading

    import uvicorn

    from gridtwin_lib.dashboards import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "live scorer did not start"

    def stop():
        server.should_exit = True
        thread.join(timeout=20)

    return f"ws://127.0.0.1:{port}{WS_PATH}", stop


def test_the_live_panel_shows_the_devices_pushed_readings_and_alerts_in_words(tmp_path):
    """Dashboard 01's panel subscribes for the selected device and shows its latest reading and the alerts pushed
    (a +17 % voltage here), in words and local time; the other device's readings never reach it."""
    import asyncio

    from gridtwin_lib.dashboards.live import LivePanel

    n = 120
    volts = [230.0] * 60 + [270.0] * 60
    frame = pl.DataFrame({
        "ts": [T0 + timedelta(seconds=k // 2) for k in range(2 * n)], "device_id": ["d1", "d2"] * n,
        **{f"v_{p}": [v for v in volts for _ in range(2)] for p in "abc"}, **{f"i_{p}": [10.0] * (2 * n) for p in "abc"},
        "frequency": [50.0] * (2 * n),
    })
    wal = WriteAheadLog(tmp_path)
    url, stop = _serve_in_thread(create_app(LiveScorer(inference.Engine(probes()), tmp_path, start="end"), poll_s=0.005))
    try:
        async def run():
            panel = LivePanel(lambda: ("sim:live", "d1"), url=url)
            panel.toggle.value = True  # starts the subscription on this loop
            await asyncio.sleep(0.5)
            await asyncio.to_thread(_append, wal, frame)
            deadline = time.monotonic() + 30
            while (panel.feed is None or panel.feed.readings < n or not panel.feed.alerts) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.6)  # one more redraw
            panel.toggle.value = False
            await asyncio.sleep(0.1)
            return panel.feed, panel.feed.html()

        feed, text = asyncio.run(run())
    finally:
        stop()
        wal.close()
    assert feed.readings == n  # d1's readings only
    assert "mean voltage from nominal <b>+17.4 %</b>" in text, text
    assert "HIGH · opened" in text and "phase voltage 17.4 % from nominal" in text, text
    from gridtwin_lib.dashboards import local_text

    assert f"latest at {local_text(T0 + timedelta(seconds=n - 1), 'sim:live')}" in text, text  # the site's local time
    assert "+00:00" not in text and "None" not in text


def test_the_live_panel_says_how_to_start_a_scorer_when_none_listens():
    import asyncio

    from gridtwin_lib.dashboards import free_port
    from gridtwin_lib.dashboards.live import LivePanel

    panel = LivePanel(lambda: ("sim:live", "d1"), url=f"ws://127.0.0.1:{free_port()}{WS_PATH}")
    asyncio.run(panel.run())  # what the toggle starts on the kernel's loop
    assert "no live scorer at" in panel.text.value and "gridtwin live" in panel.text.value


def test_thd_reaches_the_engine_only_in_a_batch_where_some_reading_has_it(tmp_path, readings):
    """Readings without THD are scored as readings without THD (as before the payload carried it), not as
    readings whose THD is unknown; a batch where some reading has it passes it on."""
    seen: list[list[str]] = []

    class Spy(inference.Engine):
        def score(self, frame, **kw):
            seen.append(frame.columns)
            return super().score(frame, **kw)

    wal = WriteAheadLog(tmp_path)
    scorer = LiveScorer(Spy(probes()), tmp_path, start="end")
    _append(wal, readings.head(40).with_columns(pl.lit(None, pl.Float64).alias("thd_v")))
    without = scorer.poll()
    _append(wal, readings.slice(40, 40).with_columns(pl.lit(2.5).alias("thd_v")))
    with_thd = scorer.poll()
    wal.close()
    assert (without.readings, with_thd.readings) == (40, 40)
    assert "thd_v" not in seen[0] and "thd_v" in seen[1]
