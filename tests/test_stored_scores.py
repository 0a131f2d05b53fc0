"""Stored scores (``gridtwin_lib.inference.stored``): what the dashboards read instead of scoring on load.

The engine runs *probe* estimators (tests/test_inference.py): deterministic functions of their input row, so
stored outputs equal to a fresh engine's prove the stored rows are the engine's, reading for reading.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from test_inference import probes

from gridtwin_lib import dashboards, inference
from gridtwin_lib.errors import InputError
from gridtwin_lib.inference import stored
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

SOURCE, OTHER = "sim:stored_a", "sim:stored_b"


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory) -> Store:
    """Two sources whose device ids repeat (each source is its own stream), 3 h at 1 s over a UTC midnight."""
    store = Store(tmp_path_factory.mktemp("stored") / "store")
    for source, seed in ((SOURCE, 3), (OTHER, 4)):
        run_scenario("mixed", duration="3h", resolution="1s", seed=seed, devices=2, store=store, progress=False, source=source,
                     start=datetime(2025, 1, 6, 22, 30, tzinfo=UTC))
    return store


def _served(keys: str = "1:model") -> dict[str, str | None]:
    return {m: keys for m in probes()}


def _fresh_scores(store: Store, source: str) -> pl.DataFrame:
    readings = store.scan("three_phase", source=source).collect().sort("ts")
    batch = inference.score_stream(inference.Engine(probes()), readings, with_features=inference.ALERT_FEATURES)
    return batch.frame.drop("row").sort("device_id", "ts")


@pytest.fixture(scope="module")
def refreshed(two_sources):
    return stored.refresh(two_sources, engine=inference.Engine(probes()), served=_served())


def test_refresh_stores_the_engines_stream_scores_per_source(two_sources, refreshed):
    assert {d["source"]: d["status"] for d in refreshed} == {SOURCE: "scored", OTHER: "scored"}
    for source in (SOURCE, OTHER):
        frame, missing = stored.read(two_sources, source, _served())
        expected = _fresh_scores(two_sources, source)
        assert frame.height == expected.height == stored.readings_count(two_sources, source)
        # to float rounding: running window sums over a day-long call and a 3-h call round differently
        assert_frame_equal(frame.sort("device_id", "ts"), expected.select(frame.columns), check_exact=False, rel_tol=1e-6, abs_tol=1e-6)
        assert missing == {}
        # the run crosses UTC midnight: one file per UTC day
        days = sorted(p.name for p in stored.scores_dir(two_sources).glob(f"source={source.replace(':', '%3A')}/date=*"))
        assert len(days) == 2


def test_read_filters_by_device_and_time(two_sources, refreshed):
    everything, _ = stored.read(two_sources, SOURCE, _served())
    device = everything["device_id"][0]
    t0 = everything["ts"].min() + timedelta(hours=1)
    part, _ = stored.read(two_sources, SOURCE, _served(), device_id=device, start=t0, end=t0 + timedelta(minutes=30))
    expected = everything.filter((pl.col("device_id") == device) & pl.col("ts").is_between(t0, t0 + timedelta(minutes=30), closed="left"))
    assert part.height == expected.height == 1800
    assert_frame_equal(part.sort("ts"), expected.sort("ts"))


def test_scores_of_another_served_version_are_not_read(two_sources, refreshed):
    newer = _served() | {"m01_voltage_anomaly": "2:model"}
    assert stored.read(two_sources, SOURCE, newer) is None
    assert stored.read(two_sources, SOURCE, {"m01_voltage_anomaly": "1:baseline:en50160_rule"}) is None
    # a page asking only for models whose versions did not change still reads them
    assert stored.read(two_sources, SOURCE, {"m08_voltage_sag": "1:model"}) is not None


def test_refresh_rescores_only_what_changed(two_sources, refreshed, tmp_path):
    again = stored.refresh(two_sources, engine=inference.Engine(probes()), served=_served())
    assert {d["status"] for d in again} == {"current"}
    # new readings of one source (as the collector adds them) make that source alone stale
    last = two_sources.scan("three_phase", source=OTHER).select(pl.col("ts").max()).collect().item()
    run_scenario("mixed", duration="10min", resolution="1s", seed=9, devices=2, store=two_sources, progress=False, source=OTHER,
                 start=last + timedelta(seconds=1))
    assert not stored.is_current(two_sources, OTHER, _served())
    after = {d["source"]: d for d in stored.refresh(two_sources, engine=inference.Engine(probes()), served=_served())}
    assert after[SOURCE]["status"] == "current" and after[OTHER]["status"] == "appended"
    assert after[OTHER]["readings"] == 2 * 600  # the new readings alone were scored
    assert stored.is_current(two_sources, OTHER, _served())
    # appended on a warm history, they equal the outputs of one stream over everything (to float rounding)
    frame, _ = stored.read(two_sources, OTHER, _served())
    expected = _fresh_scores(two_sources, OTHER)
    assert frame.height == expected.height == stored.readings_count(two_sources, OTHER)
    assert_frame_equal(frame.sort("device_id", "ts"), expected.select(frame.columns), check_exact=False, rel_tol=1e-6, abs_tol=1e-6)
    # readings among the stored ones (a late device's back-fill): the source is scored again whole
    run_scenario("mixed", duration="2min", resolution="1s", seed=10, devices=1, store=two_sources, progress=False, source=OTHER,
                 start=datetime(2025, 1, 6, 22, 0, tzinfo=UTC))
    backfilled = {d["source"]: d for d in stored.refresh(two_sources, engine=inference.Engine(probes()), served=_served())}
    assert backfilled[OTHER]["status"] == "scored" and backfilled[OTHER]["readings"] == stored.readings_count(two_sources, OTHER)
    # a version change rescores everything
    bumped = stored.refresh(two_sources, engine=inference.Engine(probes()), served=_served("2:model"))
    assert {d["status"] for d in bumped} == {"scored"}
    assert stored.manifest(two_sources, SOURCE)["served"]["m01_voltage_anomaly"] == "2:model"
    assert not list(stored.scores_dir(two_sources).glob(".staging-*")) and not list(stored.scores_dir(two_sources).glob(".old-*"))


def test_refresh_of_an_unknown_source_is_one_clear_error(two_sources):
    with pytest.raises(InputError, match="sim:nowhere.*store summary"):
        stored.refresh(two_sources, sources=["sim:nowhere"], engine=inference.Engine(probes()), served=_served())


def test_a_page_reads_stored_scores_and_scores_on_load_what_they_lack(tmp_path, monkeypatch):
    """``dashboards.score_range`` takes the stored outputs when they cover the range (no engine is loaded) and the
    engine's otherwise; the two agree on the rows both have."""
    store = Store(tmp_path / "store")
    run_scenario("mixed", duration="3h", resolution="1s", seed=11, devices=2, store=store, progress=False, source=SOURCE)
    monkeypatch.setenv("GRIDTWIN_STORE", str(store.root))
    ids = ("m01_voltage_anomaly", "m04_phase_imbalance", "m15_grid_stability")
    monkeypatch.setattr("gridtwin_lib.tracking.served_keys", lambda models: {m: "1:model" for m in models})
    dashboards._SERVED.clear()
    loaded = []

    def engine(model_ids):
        loaded.append(model_ids)
        return inference.Engine({m: p for m, p in probes().items() if m in model_ids})

    monkeypatch.setattr(dashboards, "engine", engine)
    first = store.scan("three_phase", source=SOURCE).select(pl.col("ts").min()).collect().item()
    start, end = first + timedelta(hours=2), first + timedelta(hours=2, minutes=20)
    on_load = dashboards.score_range(ids, SOURCE, None, start, end, with_features=("v_mean_dev_pct",))
    assert not on_load.stored and loaded  # nothing stored yet: scored on load

    stored.refresh(store, engine=inference.Engine(probes()), served=_served())
    loaded.clear()
    read = dashboards.score_range(ids, SOURCE, None, start, end, with_features=("v_mean_dev_pct",))
    assert read.stored and not loaded  # read, no engine loaded
    assert read.frame.columns == on_load.frame.columns
    # two hours of history before the range: every window of the on-load path is warm, so both agree
    assert_frame_equal(read.frame.sort("device_id", "ts"), on_load.frame.sort("device_id", "ts"), check_exact=False, rel_tol=1e-6, abs_tol=1e-6)

    # a feature the stored scores do not hold is computed on load, never silently left out
    asked = dashboards.score_range(ids, SOURCE, None, start, end, with_features=("v_std_1h",))
    assert not asked.stored and "v_std_1h" in asked.frame.columns

    # readings newer than the stored scores: that range is scored on load again
    last = store.scan("three_phase", source=SOURCE).select(pl.col("ts").max()).collect().item()
    run_scenario("mixed", duration="5min", resolution="1s", seed=12, devices=2, store=store, progress=False, source=SOURCE,
                 start=last + timedelta(seconds=1))
    newest = dashboards.score_range(ids, SOURCE, None, last - timedelta(minutes=5), last + timedelta(minutes=6))
    assert not newest.stored and loaded


def test_refresh_cli_bad_source_is_one_line_and_writes_nothing(two_sources, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from gridtwin_lib.cli import app

    monkeypatch.setenv("GRIDTWIN_HOME", str(tmp_path))
    monkeypatch.delenv("GRIDTWIN_WORKSPACE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = sorted(p for p in stored.scores_dir(two_sources).rglob("*"))
    res = CliRunner().invoke(app, ["scores", "refresh", "--store", str(two_sources.root), "--source", "sim:nowhere", "--json"])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "sim:nowhere" in res.output
    assert sorted(p for p in stored.scores_dir(two_sources).rglob("*")) == before
