"""Dashboard 02's solar view (gridtwin_lib.dashboards.solar) on a small TMY3 store and a fitted m18,
without a browser: the forecast sees only readings before its issue time, the measured hours are the
store's hourly means, times are the plant's local standard time, and the plant is the simulation's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from gridtwin_lib.dashboards import solar
from gridtwin_lib.datasets.maintenance import pv_forecast as dpv
from gridtwin_lib.errors import InputError
from gridtwin_lib.inference import Engine
from gridtwin_lib.models import registry
from gridtwin_lib.models.maintenance.pv_forecast import PvForecast
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

ENTRY = registry.get(PvForecast.spec.model_id)
PARAMS = ENTRY.parameters("full")
SOURCE = PARAMS["source"]


@pytest.fixture(scope="module")
def pv_store(tmp_path_factory):
    """The configured TMY3 plant over 40 days, and m18 fitted on it."""
    store = Store(tmp_path_factory.mktemp("solar") / "store")
    (run,) = ENTRY.simulation_runs("full")
    run_scenario(**{**run, "duration": "40d"}, store=store, progress=False)
    keep = {k: v for k, v in PARAMS.items() if k != "alpha"}
    data = dpv.pv_forecast(store, **keep)
    return store, PvForecast(alpha=PARAMS["alpha"]).fit(data.X_train, data.y_train)


@pytest.fixture
def page_data(pv_store, monkeypatch):
    """The view reads this store and serves the fitted model; the spy keeps what the forecast was given."""
    store, est = pv_store
    monkeypatch.setenv("GRIDTWIN_STORE", str(store.root))
    given = []

    class Spy(Engine):
        def forecast_pv(self, readings, *args, **kwargs):
            given.append(readings)
            return super().forecast_pv(readings, *args, **kwargs)

    monkeypatch.setattr(solar, "engine", lambda ids: Spy({ENTRY.id: est}))
    return store, given


def test_forecast_sees_only_readings_before_its_issue_time_and_actuals_are_hourly_means(page_data):
    store, given = page_data
    day = solar.forecast_days(SOURCE)[3]
    device = solar.pv_devices(SOURCE)[0]
    frame = solar.forecast_against_actual(SOURCE, device, day, 9)

    off = pd.Timedelta(hours=PARAMS["utc_offset_h"])
    issued = pd.Timestamp(day.year, day.month, day.day, 9, tz="UTC") - off
    assert given and given[-1]["ts"].max() <= issued  # a reading at the issue time closes the issue hour
    assert list(frame["lead_h"]) == [1, 2, 3, 4, 5, 6]
    # local standard time: the first target hour starts at the issue hour on the clock of the plant
    assert frame["hour"].iloc[0] == pd.Timestamp(day.year, day.month, day.day, 9)
    readings = (store.scan("pv", source=SOURCE, device_id=device, start=issued, end=issued + pd.Timedelta(hours=7)).collect()
                .filter((pl.col("ts") > issued) & (pl.col("ts") <= issued + pd.Timedelta(hours=6))))
    lead = (pl.col("ts") - issued - pl.duration(microseconds=1)).dt.total_hours() + 1  # the hour (issued + k - 1, issued + k]
    means = (readings.group_by(lead.alias("k"))
             .agg((pl.col("ac_power").mean() / 1000).alias("kw")).sort("k"))
    np.testing.assert_allclose(frame["actual_kw"].to_numpy(), means["kw"].to_numpy(), rtol=1e-9)
    # the clear sky bounds what a clear day gives, within the inverter's rating
    assert (frame["clear_sky_kw"] <= solar.plant_of(SOURCE)["inverter_kw"] + 1e-9).all()
    assert np.isfinite(frame["forecast_kw"]).all() and (frame["forecast_kw"] >= 0).all()


def test_a_night_issue_time_is_a_message_not_a_forecast(page_data):
    day = solar.forecast_days(SOURCE)[3]
    with pytest.raises(InputError, match="no forecast issued at 02:00"):
        solar.forecast_against_actual(SOURCE, solar.pv_devices(SOURCE)[0], day, 2)


def test_the_plant_is_the_simulations_and_an_unknown_source_says_so():
    plant = solar.plant_of(SOURCE)
    assert plant.items() >= PARAMS["plant"].items() and "gamma_pdc" in plant  # the run's overrides on the twin's defaults
    with pytest.raises(InputError, match="no configured simulation writes"):
        solar.plant_of("sim:nobody")


def test_the_forecast_refuses_a_plant_on_another_clock(page_data):
    """A PV fleet simulated at another site (Sydney) would get hour-of-day inputs on the forecast's clock: refused in
    one line, and the view offers only the forecast's own plants."""
    other = registry.get("m20_health_index").parameters("full")["sources"][0]
    with pytest.raises(InputError, match="runs on the plants it was configured on"):
        solar.forecast_against_actual(other, "pv000", solar.forecast_days(SOURCE)[3], 9)
    assert solar.pv_sources() == [SOURCE]


def test_zones_are_named_by_their_offset():
    assert [solar.zone_label(h) for h in (-5.0, 0.0, 10.0, 5.5)] == ["UTC−5", "UTC+0", "UTC+10", "UTC+5:30"]


def test_the_figure_draws_clear_sky_measured_and_forecast(page_data):
    day = solar.forecast_days(SOURCE)[3]
    frame = solar.forecast_against_actual(SOURCE, solar.pv_devices(SOURCE)[0], day, 10)
    fig = solar.forecast_figure(frame, "inv", "UTC−5")
    assert [t.name for t in fig.data] == ["clear sky", "measured", "forecast"]
    assert "UTC−5" in fig.layout.xaxis.title.text


# ----------------------------------------------------------------------------- the PV fleet (m17 + m20 outputs)
class FleetEngine:
    """Stands in for the engine with canned outputs of the two fleet models: device pv001 is the least healthy
    (index 35, CRITICAL by the shipped m20 rule) and has two runs of fault flags more than an hour apart."""

    def __init__(self):
        self.health, self.anomaly = registry.by_role("pv_health").id, registry.by_role("pv_anomaly").id
        self.estimators, self.missing, self.given = {self.health: object(), self.anomaly: object()}, {}, {}

    def pv_health(self, readings, plant, **settings):
        self.given["health"] = (readings, plant, settings)
        devices = sorted(readings["device_id"].unique().to_list())
        rows = [{"device_id": d, "date": day, f"{self.health}.health_index": (35.0 if d == "pv001" else 90.0) + k,
                 **{f"{self.health}.component_{c}": 50.0 for c in ("power", "temperature", "battery", "inverter")}}
                for d in devices for k, day in enumerate(pd.date_range("2025-01-08", periods=2).date)]
        return pd.DataFrame(rows)

    def detect_pv_anomalies(self, readings, plant, since=None):
        self.given["anomaly"] = (readings, since)
        frame = readings.filter(pl.col("ts") >= since).select("device_id", "ts").to_pandas()
        flag = (frame["device_id"] == "pv001") & frame["ts"].isin(sorted(frame["ts"].unique())[-5:])
        flag |= (frame["device_id"] == "pv001") & frame["ts"].isin(sorted(frame["ts"].unique())[:1])
        return frame.assign(**{f"{self.anomaly}.score": flag.astype(float), f"{self.anomaly}.flag": flag})


def test_the_fleet_table_ranks_by_health_counts_fault_runs_and_takes_the_alarm_from_the_rules(tmp_path, monkeypatch):
    source = registry.get("m20_health_index").parameters("full")["sources"][1]  # a configured PV fleet source
    run = registry.simulation_of(source)
    store = Store(tmp_path / "store")
    run_scenario(**{**run, "duration": "3d", "devices": 3, "resolution": "1h"}, store=store, progress=False)
    monkeypatch.setenv("GRIDTWIN_STORE", str(store.root))
    fake = FleetEngine()
    monkeypatch.setattr(solar, "engine", lambda ids: fake)

    table, daily, notes = solar.solar_fleet(source)
    assert notes == [] and list(table["device_id"])[0] == "pv001"  # least healthy first
    assert table.loc[0, "health_index"] == 36.0 and table.loc[0, "alarm"] == "CRITICAL"  # its latest day, by the rules
    assert (table.loc[1:, "alarm"] == "none").all()
    assert table.set_index("device_id")["fault_events"].to_dict() == {"pv001": 2, "pv000": 0, "pv002": 0}
    readings, plant, settings = fake.given["health"]
    assert readings["ts"].min() == store.scan("pv", source=source).select(pl.col("ts").min()).collect().item()  # from commissioning
    assert plant.items() >= run["overrides"].items() and set(settings) == {"utc_offset_h", "battery_min_pv_kw", "reference_days"}
    shown = solar.fleet_for_people(table, source)
    assert "health index [0-100]" in shown.columns and shown.loc[0, "last fault flag"].endswith(("AEDT", "AEST"))
    fig = solar.health_figure(daily, "pv001")
    assert fig.data[0].value == 36.0 and list(fig.data[1].y) == [50.0] * 4


def test_the_inverter_table_and_survival_curve_read_the_engines_columns():
    """The engine's remaining-life columns (``<id>.s_<d>d`` on a weekly grid, percentiles capped at the grid's end) as
    the page shows them: the interval in one column, "≥ 364" for a life beyond the grid, the curve from 1 at day 0."""
    rul = registry.by_role("asset_rul").id
    grid = list(range(7, 365, 7))
    surv = {f"{rul}.s_{d:03d}d": [1 - d / 1000, 1 - d / 400] for d in grid}
    frame = pd.DataFrame({"device_id": ["inv001", "inv002"], "issued_at": pd.to_datetime(["2025-01-06"] * 2, utc=True),
                          f"{rul}.median_days": [364.0, 210.0], f"{rul}.p10_days": [100.0, 35.0], f"{rul}.p90_days": [364.0, 364.0],
                          f"{rul}.risk": [0.1, 0.9], **surv})
    shown = solar.rul_for_people(frame, "sim:x")
    assert shown["median remaining life [days]"].tolist() == ["≥ 364", "210"]
    assert shown["10-90 % interval [days]"].tolist() == ["100 – ≥ 364", "35 – ≥ 364"]
    fig = solar.survival_figure(frame, "inv002")
    assert list(fig.data[0].x) == [0, *grid] and fig.data[0].y[0] == 1.0 and fig.data[0].y[-1] == pytest.approx(1 - 364 / 400)


def test_remaining_life_is_judged_where_observations_and_readings_both_reach():
    """A twin run past today keeps its observations (truth) while the store refuses its future readings: the
    inverters are judged at the last reading, not at the last observation (where they would have no readings)."""
    from datetime import UTC, datetime, timedelta

    from gridtwin_lib.inference import solar_assets as sa

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    obs = pl.DataFrame({"ts": [t0 + timedelta(days=d) for d in range(120)], "device_id": "inv00"})
    readings = pl.DataFrame({"ts": [t0 + timedelta(days=d, hours=12) for d in range(90)], "device_id": "inv00"})

    class Store:
        def scan_truth(self, table, source=None, start=None, end=None):
            lf = obs.lazy()
            return lf if start is None else lf.filter((pl.col("ts") >= start) & (pl.col("ts") < end))

        def scan(self, kind, source=None, start=None, end=None):
            lf = readings.lazy()
            return lf if start is None else lf.filter((pl.col("ts") >= start) & (pl.col("ts") < end))

    model = sa.model_of(sa.RUL_ROLE)
    seen = {}

    class Engine:
        estimators, missing = {model: object()}, {}

        def remaining_life(self, o, r):
            seen.update(obs=o, readings=r)
            return pd.DataFrame({"device_id": ["inv00"], f"{model}.p10_days": [100.0]})

    sa.fleet_remaining_life(Store(), Engine(), "sim:m19_inverters")
    assert seen["readings"].height > 0 and seen["obs"]["ts"].max() <= readings["ts"].max()
    assert seen["obs"]["ts"].max() == t0 + timedelta(days=89)  # the last observation up to the last reading
