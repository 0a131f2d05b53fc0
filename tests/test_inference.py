"""The inference engine: training/serving parity, per-device state, typed per-reading errors.

Model outputs are checked with *probe* estimators: deterministic functions of their input
row (a weighted sum), so an output equal to the probe applied to the training-time input
row proves the engine built exactly that row. Real champions are exercised through the CLI
on the smoke pipeline's registry.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from gridtwin_lib import inference
from gridtwin_lib.datasets.common import features_by_day
from gridtwin_lib.datasets.decision.grid_stability import grid_stability_design
from gridtwin_lib.datasets.energy import load_forecast as EF
from gridtwin_lib.datasets.maintenance.power_quality_index import _m07_source
from gridtwin_lib.datasets.monitoring.frequency_stability import frequency_grid
from gridtwin_lib.features import compute
from gridtwin_lib.inference.results import ERROR_SCHEMA, on_demand
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import ModelSpec
from gridtwin_lib.models.energy import load_forecast as LF
from gridtwin_lib.models.maintenance import power_quality_index as pqi
from gridtwin_lib.models.maintenance.power_quality_index import M07_INPUT_COLUMNS
from gridtwin_lib.models.maintenance.voltage_sag import M08_INPUT_COLUMNS
from gridtwin_lib.models.monitoring.frequency_stability import (
    INPUT_COLUMNS as M03_INPUT_COLUMNS,
)
from gridtwin_lib.models.monitoring.phase_imbalance import M04_INPUT_COLUMNS
from gridtwin_lib.models.monitoring.voltage_anomaly import M01_INPUT_COLUMNS
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

SOURCE = "sim:test_inference"


class Probe:
    """Stands in for a champion: output = a fixed weighted sum of the input row."""

    def __init__(self, model_id: str, output: str, columns, fail: bool = False):
        self.spec = ModelSpec(model_id, registry.module_of(model_id), "probe", "none", "none", "x", True, {output: "1"})
        self.columns_ = list(columns)
        self.output, self.fail = output, fail

    def weights(self, n: int) -> np.ndarray:
        return np.cos(np.arange(n) * 0.7) + 1.5

    def predict(self, X):
        if self.fail:
            raise RuntimeError("probe failure")
        A = np.asarray(X[self.columns_] if isinstance(X, pd.DataFrame) else X, float)
        return pd.DataFrame({self.output: np.nan_to_num(A, nan=-7.0) @ self.weights(A.shape[1])})


def probes(**fail) -> dict:
    # m15's probe reads a few feature columns; its real champion reads every numeric feature
    m15_cols = ["v_mean_v", "v_unbalance_pct", "i_mean_a", "p_total_mean_15m", "freq_dev_hz", "v_std_1h"]
    spec = {
        "m01_voltage_anomaly": ("anomaly_score", M01_INPUT_COLUMNS),
        "m03_frequency_stability": ("p_excursion", M03_INPUT_COLUMNS),
        "m04_phase_imbalance": ("cause_code", M04_INPUT_COLUMNS),
        "m07_power_quality_index": ("pq_index_next", M07_INPUT_COLUMNS),
        "m08_voltage_sag": ("p_sag_15m", M08_INPUT_COLUMNS),
        "m15_grid_stability": ("p_disturbance_30min", m15_cols),
    }
    return {m: Probe(m, out, cols, fail=fail.get(m, False)) for m, (out, cols) in spec.items()}


@pytest.fixture(scope="module")
def grid_store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("inf") / "store")
    run_scenario("mixed", duration="3h", resolution="1s", seed=5, devices=2, store=store, progress=False, source=SOURCE)
    return store


@pytest.fixture(scope="module")
def readings(grid_store) -> pl.DataFrame:
    return grid_store.scan("three_phase", source=SOURCE).collect().sort("ts", "device_id")


def _engine(**kw) -> inference.Engine:
    return inference.Engine(probes(**kw.pop("fail", {})), **kw)


def _outputs(frame: pl.DataFrame, model_id: str, out: str) -> pl.DataFrame:
    return frame.select("ts", "device_id", pl.col(f"{model_id}.{out}").alias("y")).drop_nulls("y")


# ----------------------------------------------------------------------------- parity


def test_features_served_in_chunks_equal_the_training_features(grid_store, readings):
    """The dataset builders' features (training) equal the engine's, streamed in small chunks
    with per-device history carried between calls.

    Equal to rounding: window statistics use prefix sums, whose last bits depend on where
    the frame starts (the served frame starts 90 min back, the training one at midnight);
    the measured difference is ~2e-9 relative (up to ~5e-7 for slopes over the first few
    readings of a window, an ill-conditioned fit), so values must agree to 1e-6 of the
    column's scale: far below any logic error."""
    lo, hi = readings["ts"].min(), readings["ts"].max() + timedelta(seconds=1)
    cols = tuple(dict.fromkeys((*M01_INPUT_COLUMNS, *M04_INPUT_COLUMNS, *M08_INPUT_COLUMNS)))
    train = features_by_day(grid_store, SOURCE, lo, hi, ("1m", "15m", "1h"), cols).sort("device_id", "ts")
    batch = inference.score_stream(_engine(), readings, chunk_rows=1_777, with_features=cols)
    served = batch.frame.select("ts", "device_id", *cols).sort("device_id", "ts")
    assert served.height == train.height == readings.height
    for c in cols:
        a, b = train[c].to_numpy().astype(float), served[c].to_numpy().astype(float)
        scale = max(1.0, float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 1.0)
        np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-6 * scale, equal_nan=True, err_msg=c)


def test_model_inputs_equal_training_rows(grid_store, readings):
    """m01/m04/m08 (feature rows), m15 (its design), m03 (100 s history) and m07 (10-min
    windows with lags) get exactly the rows their dataset builders make for training."""
    engine = _engine()
    frame = inference.score_stream(engine, readings, chunk_rows=2_500).frame
    full = compute(readings, "three_phase", windows=("1m", "15m", "1h"), keep_inputs=True).to_pandas()
    for model_id, out, cols in (("m01_voltage_anomaly", "anomaly_score", M01_INPUT_COLUMNS),
                                ("m04_phase_imbalance", "cause_code", M04_INPUT_COLUMNS),
                                ("m08_voltage_sag", "p_sag_15m", M08_INPUT_COLUMNS)):
        probe = engine.estimators[model_id]
        got = _outputs(frame, model_id, out).sort("device_id", "ts")
        ref = full[full[list(cols)].notna().all(axis=1)] if model_id == "m08_voltage_sag" else full
        ref = ref.sort_values(["device_id", "ts"])
        np.testing.assert_allclose(got["y"].to_numpy(), probe.predict(ref[list(cols)].reset_index(drop=True))[out].to_numpy(),
                                   rtol=1e-7, err_msg=model_id)

    # m15: the design of the training builder (carry-forward in (ts, device) order)
    probe = engine.estimators["m15_grid_stability"]
    ordered = full.sort_values(["ts", "device_id"], kind="stable").reset_index(drop=True)
    expect = probe.predict(grid_stability_design(ordered, probe.columns_))["p_disturbance_30min"].to_numpy()
    got = _outputs(frame, "m15_grid_stability", "p_disturbance_30min").sort("ts", "device_id")["y"].to_numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-7)

    # m03: the last 100 one-second frequencies, as the training builder slices them
    probe = engine.estimators["m03_frequency_stability"]
    got = _outputs(frame, "m03_frequency_stability", "p_excursion")
    for (dev,), part in readings.partition_by("device_id", as_dict=True).items():
        grid, f = frequency_grid(part["ts"].dt.epoch("us").to_numpy(), part["frequency"])
        mine = got.filter(pl.col("device_id") == dev).sort("ts")
        assert mine.height == grid.size - 99  # every reading after the first 99 s
        hist = np.lib.stride_tricks.sliding_window_view(f, 100)
        np.testing.assert_allclose(mine["y"].to_numpy(), probe.predict(pd.DataFrame(hist, columns=M03_INPUT_COLUMNS))["p_excursion"])

    # m07: rows of the training builder for window k are the forecast served during window k+1
    probe = engine.estimators["m07_power_quality_index"]
    lo, hi = readings["ts"].min(), readings["ts"].max()
    rows = _m07_source(grid_store, SOURCE, lo, hi, None)
    rows = rows[rows[list(M07_INPUT_COLUMNS)].notna().all(axis=1)]
    expect = pd.DataFrame({"device_id": rows["device_id"].to_numpy(),
                           "window": pd.to_datetime(rows["window_start"], utc=True) + pd.Timedelta(minutes=10),
                           "expect": probe.predict(rows[list(M07_INPUT_COLUMNS)].reset_index(drop=True))["pq_index_next"].to_numpy()})
    got = _outputs(frame, "m07_power_quality_index", "pq_index_next").with_columns(pl.col("ts").dt.truncate("10m").alias("window"))
    per_window = got.group_by("device_id", "window").agg((pl.col("y").max() - pl.col("y").min()).alias("spread"),
                                                         pl.col("y").first()).to_pandas()
    # one forecast per (device, window), even when a chunk boundary splits the window (to rounding)
    assert (per_window["spread"] <= 1e-7 * per_window["y"].abs().max()).all(), per_window["spread"].max()
    per_window["window"] = pd.to_datetime(per_window["window"], utc=True)
    expect = expect[expect["window"] <= pd.Timestamp(hi)]  # the last window's forecast is for after the data
    merged = per_window.merge(expect, on=["device_id", "window"], how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    np.testing.assert_allclose(merged["y"], merged["expect"], rtol=1e-7)
    assert len(merged) >= 2 * 14  # 3 h = 18 windows per device, the first 3 lack history


def test_m09_serving_row_equals_the_training_row():
    """forecast_input (serving) builds the row load_forecast's builder makes for the same day."""
    ts = pd.date_range("2024-03-01", "2024-03-12 23:59", freq="10min", tz="UTC")
    rng = np.random.default_rng(1)
    power = 800 + 400 * np.sin(2 * np.pi * (ts.hour + ts.minute / 60) / 24) + rng.normal(0, 50, len(ts))
    readings = pl.DataFrame({"ts": ts, "device_id": "house", "value": power, "valid": True})
    hourly = EF._hourly_kw(readings, 1.0, 0.5)
    rows = EF._rows(hourly, hourly, None)
    day = pd.Timestamp(rows[LF.ISSUE_COL].iloc[-1]).date()
    served = EF.forecast_input(readings, day, utc_offset_h=1.0, site=None)
    np.testing.assert_array_equal(served[LF.LAG_COLS].to_numpy(), rows[LF.LAG_COLS].iloc[[-1]].to_numpy())
    # the day itself is never seen: removing it changes nothing
    cut = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=1)
    again = EF.forecast_input(readings.filter(pl.col("ts") < cut), day, utc_offset_h=1.0, site=None)
    np.testing.assert_array_equal(again[LF.LAG_COLS].to_numpy(), served[LF.LAG_COLS].to_numpy())


# ----------------------------------------------------------------------------- per-device state


def test_interleaved_devices_never_share_state(readings):
    """Scoring two devices interleaved gives each exactly what it gets when scored alone."""
    a, b = sorted(readings["device_id"].unique())
    together = inference.score_stream(_engine(), readings, chunk_rows=997).frame
    for dev in (a, b):
        alone = inference.score_stream(_engine(), readings.filter(pl.col("device_id") == dev), chunk_rows=1_303).frame
        mixed = together.filter(pl.col("device_id") == dev).drop("row")
        # equal up to prefix-sum rounding (the chunks start at different readings)
        assert_frame_equal(mixed, alone.drop("row"), check_exact=False, rel_tol=1e-7, abs_tol=1e-9)
    # a device renamed mid-stream starts cold: history is keyed by device, not by position
    renamed = readings.with_columns(pl.when(pl.col("ts") > readings["ts"].min() + timedelta(hours=1))
                                    .then(pl.col("device_id") + "-new").otherwise(pl.col("device_id")).alias("device_id"))
    frame = _engine().score(renamed).frame
    first_new = frame.filter(pl.col("device_id") == f"{a}-new").sort("ts").head(1)
    assert first_new["m03_frequency_stability.p_excursion"][0] is None  # no 100 s of its own history


def test_single_readings_continue_the_stream(readings):
    engine = _engine()
    head = readings.head(4_000)
    engine.score(head)
    nxt = readings.slice(4_000, 1).to_dicts()[0]
    rec = engine.score_one(nxt)
    ref = _engine().score(readings.head(4_001)).frame.tail(1)
    assert rec.status == "ok" and rec.device_id == nxt["device_id"]
    assert rec.monitoring["m01_voltage_anomaly"]["anomaly_score"] == pytest.approx(ref["m01_voltage_anomaly.anomaly_score"][0])
    assert rec.decision["m15_grid_stability"]["p_disturbance_30min"] == pytest.approx(ref["m15_grid_stability.p_disturbance_30min"][0])
    assert set(rec.maintenance) == {"m07_power_quality_index", "m08_voltage_sag"}
    assert rec.units["m08_voltage_sag.p_sag_15m"] == "1"
    json.dumps(rec.as_dict(), default=str)
    held = engine.history(nxt["device_id"])
    assert held["ts"].max() - held["ts"].min() <= inference.HISTORY


def test_each_device_holds_exactly_its_last_90_minutes(readings):
    """Across batches and single readings, the held history of each device is its readings in
    (newest - HISTORY, newest], in time order, with nothing of the other device."""
    engine = _engine()
    engine.score(readings.head(11_000))  # 92 min of two devices: the first cut happens in a batch
    for r in readings.slice(11_000, 120).to_dicts():
        engine.score_one(r)
    engine.score(readings.slice(11_120, 1_500))
    seen = readings.head(12_620)
    for device in seen["device_id"].unique().to_list():
        mine = seen.filter(pl.col("device_id") == device).sort("ts")
        expected = mine.filter(pl.col("ts") > mine["ts"].max() - inference.HISTORY)
        held = engine.history(device)
        assert held["ts"].to_list() == expected["ts"].to_list()
        assert held["device_id"].unique().to_list() == [device] and held["row"].unique().to_list() == [-1]
        assert_frame_equal(held.select(expected.columns).drop("quality_flags"), expected.drop("quality_flags"))


def test_incremental_single_readings_equal_the_reference_path(readings, monkeypatch):
    """The per-reading fast path (features of the new reading alone, m07's forecast kept per device
    until its window closes) gives what the reference path gives (every held reading's features and
    m07 recomputed), across a 10-min boundary, two devices interleaved, and from a cold start; m07
    is computed once per device and window, at its first reading."""
    warm, rest = readings.head(6_000), readings.slice(6_000)
    closes = rest.with_row_index("k").filter((pl.col("ts").dt.epoch("us") % 600_000_000 == 0) & (pl.col("k") >= 100))["k"][0]
    nxt = rest.slice(int(closes) - 60, 200)  # 30 s before the boundary to 70 s after, both devices
    fast = _engine()
    fast.score(warm)
    computed: list[list[str]] = []
    real = pqi._window_forecasts
    monkeypatch.setattr(pqi, "_window_forecasts", lambda eng, est, new, held: (eng is fast and computed.append(new["device_id"].to_list()))
                        or real(eng, est, new, held))
    batches = [fast.score([r], with_features=inference.ALERT_FEATURES) for r in nxt.to_dicts()]
    reference = inference.Engine(probes(), incremental=False)
    reference.score(warm)
    expect = reference.score(nxt, with_features=inference.ALERT_FEATURES)
    # (a model that did not score a reading adds its null column last: order columns as the batch's)
    got = pl.concat([b.frame for b in batches], how="diagonal").select(expect.frame.columns)
    assert_frame_equal(got.drop("row"), expect.frame.drop("row"), check_exact=False, rel_tol=1e-7, abs_tol=1e-9)
    assert got["m07_power_quality_index.pq_index_next"].null_count() == 0
    errors = pl.concat([b.errors for b in batches]).drop("row")
    assert_frame_equal(errors.sort("ts", "device_id", "code", "model_id"),
                       expect.errors.drop("row").sort("ts", "device_id", "code", "model_id"))
    # a cold start in mid-window: no history for m03/m07/m08 yet, and both paths say so alike
    cold = readings.slice(int(closes) + 6_000 + 301, 60)
    cold_fast = _engine()
    cold_errors = pl.concat([cold_fast.score([r]).errors for r in cold.to_dicts()]).drop("row")
    cold_ref = inference.Engine(probes(), incremental=False).score(cold).errors.drop("row")
    assert set(cold_errors["code"]) == {"insufficient_history", "missing_input"}
    assert_frame_equal(cold_errors.sort("ts", "device_id", "code", "model_id"), cold_ref.sort("ts", "device_id", "code", "model_id"))
    # each device's first reading (the engine's first in that window) and the one after the boundary
    assert sorted(computed) == [[d] for d in sorted(nxt["device_id"].unique()) for _ in range(2)]
    a = nxt["device_id"][0]
    fast.reset(a)
    assert a not in fast.state("m07_power_quality_index") and fast.history(a) is None


def test_single_readings_take_their_features_from_the_incremental_executor(readings, monkeypatch):
    """After a batch, single readings never call the batch executor: the device's window state is
    rebuilt once from its held history, then updated per reading (and a batch lets it go again)."""
    from gridtwin_lib.inference import engine as engine_module

    engine = _engine()
    engine.score(readings.head(4_000))
    real = engine_module.F.compute
    monkeypatch.setattr(engine_module.F, "compute", lambda *a, **k: pytest.fail("the batch executor ran for one reading"))
    recs = [engine.score_one(r) for r in readings.slice(4_000, 20).to_dicts()]
    assert {r.status for r in recs} == {"ok"}
    assert set(engine._features.devices) == set(readings.head(4_020)["device_id"])
    monkeypatch.setattr(engine_module.F, "compute", real)
    engine.score(readings.slice(4_020, 4_000))  # a batch: the state of its devices is let go
    assert engine._features.devices == []


# ----------------------------------------------------------------------------- bad input


def test_bad_readings_get_typed_errors_and_the_rest_is_scored(readings):
    engine = _engine(devices=set(readings["device_id"].unique()))
    engine.score(readings.head(8_000))  # 66 min per device: every model has its history
    good = readings.slice(8_000, 6).to_dicts()
    bad_null = {**readings.slice(8_006, 1).to_dicts()[0], "v_a": None}
    bad_limit = {**readings.slice(8_007, 1).to_dicts()[0], "v_b": 400.0}
    stranger = {**readings.slice(8_008, 1).to_dicts()[0], "device_id": "never-seen"}
    old = readings.slice(10, 1).to_dicts()[0]
    dup = dict(good[0])
    batch = engine.score([*good, bad_null, bad_limit, stranger, old, dup])
    codes = dict(batch.errors.filter(pl.col("model_id").is_null()).select("row", "code").iter_rows())
    assert codes == {6: "missing_field", 7: "hard_limit", 8: "unknown_device", 9: "out_of_order", 10: "duplicate"}
    msg = batch.errors.filter(pl.col("row") == 7)["message"][0]
    assert "hard.voltage_range" in msg
    assert batch.frame["status"].to_list() == ["ok"] * 6 + ["error"] * 5
    assert batch.frame.head(6)["m01_voltage_anomaly.anomaly_score"].null_count() == 0


def test_a_batch_without_a_required_field_is_all_errors_not_a_crash(readings):
    batch = _engine().score(readings.head(5).drop("i_c"))
    assert batch.frame["status"].to_list() == ["error"] * 5
    assert batch.errors["code"].unique().to_list() == ["missing_field"]
    assert "i_c" in batch.errors["message"][0]
    assert _engine().score([]).frame.height == 0


def test_missing_champion_and_failing_model_are_per_reading_errors(readings):
    est = probes(m04_phase_imbalance=True)
    del est["m08_voltage_sag"]
    engine = inference.Engine(est, missing={"m08_voltage_sag": "no @champion version of gridtwin.m08_voltage_sag"})
    batch = engine.score(readings.head(200))
    by = batch.errors.group_by("code", "model_id").len()
    assert by.filter(pl.col("code") == "no_champion")["len"].to_list() == [200]
    assert by.filter(pl.col("code") == "model_error")["model_id"].to_list() == ["m04_phase_imbalance"]
    assert "@champion" in batch.errors.filter(pl.col("code") == "no_champion")["message"][0]
    assert batch.frame["m01_voltage_anomaly.anomaly_score"].null_count() == 0
    assert set(batch.frame["status"]) == {"partial"}


def test_on_demand_optimiser_reports_its_time_limit():
    slow = on_demand("m14_load_balancing", lambda: time.sleep(3) or "late", 0.2)
    assert slow.status == "time_limit" and slow.result is None and "0.2 s" in slow.message
    ok = on_demand("m14_load_balancing", lambda: 42, 5.0)
    assert ok.status == "ok" and ok.result == 42
    err = on_demand("m14_load_balancing", lambda: 1 / 0, 5.0)
    assert err.status == "error" and "division" in err.message


def test_plan_day_solves_the_lp_on_demand():
    engine = inference.Engine({})
    hours = np.arange(24)
    load = 0.5 + 1.5 * ((hours >= 17) & (hours < 22))
    pv = np.clip(3 * np.sin(np.pi * (hours - 6) / 12), 0, None)
    price = np.where((hours >= 17) & (hours < 21), 0.34, 0.16)
    plan = engine.plan_day(load, pv, price, time_limit_s=30)
    lp = plan["m11_power_flow_optimization"]
    assert lp.status == "ok" and len(lp.result) == 24
    # energy balance of the plan: import + pv - curtailed + discharge - charge = load
    r = lp.result
    np.testing.assert_allclose(r["grid_import_kw"] + pv - r["pv_curtailed_kw"] + r["battery_discharge_kw"] - r["battery_charge_kw"],
                               load, atol=1e-6)
    assert plan["m16_optimal_dispatch"]["status"] == "no_champion"
    with pytest.raises(Exception, match="24 hourly values"):
        engine.plan_day(load[:5], pv, price)


def test_write_scores_is_atomic_and_records_units(tmp_path, readings):
    batch = _engine().score(readings.head(50))
    paths = inference.write_scores(batch, tmp_path / "s.parquet")
    meta = pq.read_schema(paths["scores"]).metadata
    assert json.loads(meta[b"gridtwin.units"])["m08_voltage_sag.p_sag_15m"] == "1"
    assert pl.read_parquet(paths["errors"]).columns == list(ERROR_SCHEMA)
    with pytest.raises(Exception, match="no such directory"):
        inference.write_scores(batch, tmp_path / "nope" / "s.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.errors.parquet", "s.parquet"]


# ----------------------------------------------------------------------------- CLI on real champions


def test_score_cli_on_the_smoke_registry(smoke_workspace, tmp_path):
    home, _ = smoke_workspace
    store = Store(home / "data" / "workspaces" / "smoke" / "store")
    src = "sim:m08_mixed" if "sim:m08_mixed" in store.sources("three_phase") else store.sources("three_phase")[0]
    out = tmp_path / "scores.parquet"
    cmd = [sys.executable, "-m", "gridtwin_lib.cli", "score", "--from-store", "--source", src, "--out", str(out),
           "--alerts", str(tmp_path / "alerts.csv"), "--json", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    frame = pl.read_parquet(out)
    assert summary["readings"] == frame.height > 0 and summary["scores_file"] == str(out)
    errors = pl.read_parquet(summary["errors_file"])
    assert sum(summary["errors"].values()) == errors.height  # counts per code:model, one per error row
    assert set(summary["alerts"]) >= {"CRITICAL", "HIGH", "MEDIUM", "LOW"}
    feeder = {m for m in registry.reading_ids() if registry.get(m).serving_adapter().applies is not None}
    scored = [m for m in registry.reading_ids() if m not in summary["missing_champions"] and m not in feeder]
    for m in scored:  # every model with a champion produced outputs on most readings
        col = next(c for c in frame.columns if c.startswith(m + "."))
        assert frame[col].null_count() < 0.5 * frame.height, m

    # bad input: one line on stderr, exit 2, nothing written
    bad = subprocess.run([sys.executable, "-m", "gridtwin_lib.cli", "score", "--input", str(tmp_path / "missing.csv"),
                          "--out", str(tmp_path / "x.parquet"), "--no-progress"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "missing.csv" in bad.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_latest_day_and_date_parsing(readings, grid_store):
    assert inference.latest_day(grid_store) == readings["ts"].max().date()
    assert inference.as_date("2024-01-07") == date(2024, 1, 7)
    with pytest.raises(Exception, match="not a date"):
        inference.as_date("yesterday")


def test_warm_up_leaves_nothing_behind(readings):
    """The warm-up scores a device of its own and forgets it: every real device is then scored
    exactly as by an engine that never warmed up, and an engine serving listed devices still does."""
    head, nxt = readings.head(3_000), readings.slice(3_000, 40)
    cold, warm = _engine(), _engine(devices=readings["device_id"].unique().to_list())
    assert warm.warm_up() > 0
    assert warm.history(warm.WARM_UP_DEVICE) is None
    assert all(warm.WARM_UP_DEVICE not in kept for kept in warm._state.values())
    assert warm.devices == frozenset(readings["device_id"].unique().to_list())
    for engine in (cold, warm):
        engine.score(head)
    got = [warm.score(nxt.slice(k, 1)).frame for k in range(nxt.height)]
    want = [cold.score(nxt.slice(k, 1)).frame for k in range(nxt.height)]
    assert_frame_equal(pl.concat(got), pl.concat(want))
    assert warm.score([{**nxt.row(0, named=True), "device_id": warm.WARM_UP_DEVICE}]).frame["status"][0] != "ok"
