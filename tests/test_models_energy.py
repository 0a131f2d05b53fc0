"""Energy models m10-m12: shapes and units, same rows for model and baseline, chronological
splits, no look-ahead in the m11 forecasts, re-simulation honesty, pickling, clear input errors."""

from __future__ import annotations

from datetime import UTC, date, datetime

import cloudpickle
import numpy as np
import pandas as pd
import polars as pl
import pytest
from ladder import ladder_scores, strongest

from gridtwin_lib.datasets.energy import demand_response as D_dr
from gridtwin_lib.datasets.energy import energy_loss as D_el
from gridtwin_lib.datasets.energy import power_flow_optimization as D_pfo
from gridtwin_lib.errors import InputError
from gridtwin_lib.models.base import digest, fit_and_evaluate
from gridtwin_lib.models.energy import demand_response as M_dr
from gridtwin_lib.models.energy import energy_loss as M_el
from gridtwin_lib.models.energy import power_flow_optimization as M_pfo
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.simulate.meter import CUSTOMER_TYPES
from gridtwin_lib.store import Store


def _run(store, scenario, source, duration, resolution, devices=1, seed=5, overrides=None):
    run_scenario(scenario, duration=duration, resolution=resolution, seed=seed, devices=devices,
                 overrides=overrides or {}, store=store, progress=False, source=source)


@pytest.fixture(scope="module")
def feeder_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("m10") / "store")
    _run(store, "feeder_timeseries", "sim:t_feeder", "1d", "1h")
    return store


@pytest.fixture(scope="module")
def prosumer_store(tmp_path_factory):
    """Meter twin as the load (local UTC+10) and the solar twin at its default Sydney site."""
    store = Store(tmp_path_factory.mktemp("m11") / "store")
    _run(store, "meter", "sim:t_load", "12d", "15m", overrides={"base_kw": 1.0, "outages_per_day": 0.0})
    _run(store, "pv_normal", "sim:t_pv", "13d", "1h")
    return store


@pytest.fixture(scope="module")
def pfo_dataset(prosumer_store):
    return D_pfo.power_flow_optimization(prosumer_store, load_source="sim:t_load", pv_source="sim:t_pv", timezone_name="Etc/GMT-10",
                                     train_start="2025-01-14", test_start="2025-01-16", test_end="2025-01-17")


@pytest.fixture(scope="module")
def meter_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("m12") / "store")
    _run(store, "meter", "sim:t_meters", "6d", "15m", devices=12)
    return store


# --------------------------------------------------------------------------- m10


def test_m10_fit_evaluate_same_rows_chronological_and_beats_loss_factor(feeder_store):
    ds = D_el.energy_loss(feeder_store, source="sim:t_feeder", test_fraction=0.3)
    assert ds.meta_train["ts"].max() < ds.meta_test["ts"].min()
    assert set(ds.X_train.columns) == {f"{s}_{f}" for s in "RIC" for f in M_el.HEAD_FEATURES}
    model, base, ev = fit_and_evaluate(M_el.EnergyLoss(), ds)
    assert ev.n_test == ds.n_test and ev.test_rows_digest == digest(ds.X_test)
    pred = model.predict(ds.X_test)
    assert list(pred.columns) == list(M_el.EnergyLoss.spec.output_units) == ["losses_kw"]
    assert len(pred) == ds.n_test
    # losses of a 687 kW feeder are a few kW, never negative on average
    assert 0 < pred["losses_kw"].mean() < 50
    assert ev.metrics["mae_kw"] < ev.baseline_metrics["mae_kw"]
    assert ev.metrics["r2"] > 0.9


def test_m10_beats_every_baseline_of_its_ladder_on_held_out_hours(feeder_store):
    """Least squares on I² beats the fixed and the quadratic loss factor and a linear regression on
    the raw readings, on later hours: MAE at most 60 % of the strongest baseline's."""
    ds = D_el.energy_loss(feeder_store, source="sim:t_feeder", test_fraction=0.3)
    model = M_el.EnergyLoss()
    mae, scores = ladder_scores(model, ds, per_reading=False)
    assert set(scores) == {"FixedLossFactor", "QuadraticLossFactor", "LinearOnHeadReadings"}
    name, best = strongest(model, scores)
    assert mae < 0.6 * best, (mae, scores)


def test_m10_regressors_come_from_measurements_only(feeder_store):
    """Changing the truth table's label columns changes nothing the model sees."""
    ds = D_el.energy_loss(feeder_store, source="sim:t_feeder")
    assert not {"losses_kw", "load_kw", "pv_kw"} & set(ds.X_train.columns)
    m = M_el.EnergyLoss().fit(ds.X_train, ds.y_train)
    p1 = m.predict(ds.X_test)
    m2 = M_el.EnergyLoss().fit(ds.X_train, ds.y_train)
    pd.testing.assert_frame_equal(p1, m2.predict(ds.X_test))


def test_m10_pickle_round_trip_and_input_errors(feeder_store, tmp_path):
    ds = D_el.energy_loss(feeder_store, source="sim:t_feeder")
    m = M_el.EnergyLoss(regressors=("i2", "p2", "q2")).fit(ds.X_train, ds.y_train)
    again = cloudpickle.loads(cloudpickle.dumps(m))
    pd.testing.assert_frame_equal(m.predict(ds.X_test), again.predict(ds.X_test))
    with pytest.raises(InputError, match="feeder_timeseries"):
        D_el.energy_loss(Store(tmp_path / "empty"), source="sim:nothing")
    with pytest.raises(InputError, match="three_phase"):
        D_el.energy_loss(feeder_store, source="sim:t_feeder", start="2030-01-01", end="2030-01-02")
    with pytest.raises(InputError, match="regressors"):
        M_el.EnergyLoss(regressors=("i3",)).fit(ds.X_train, ds.y_train)


# --------------------------------------------------------------------------- m11


def _day(load, pv, price):
    return pd.DataFrame({"load_kw": load, "pv_kw": pv, "price_per_kwh": price})


def _tariff():
    return D_pfo.tou_price(np.arange(24), 0.16, 0.22, 0.34)


def test_m11_schedule_respects_every_limit_and_balances():
    rng = np.random.default_rng(0)
    hours = np.arange(24)
    load = 0.6 + 2.0 * np.exp(-((hours - 19) / 2) ** 2) + 0.2 * rng.random(24)
    pv = 4.0 * np.clip(np.sin(np.pi * (hours - 6) / 13), 0, None)
    m = M_pfo.PowerFlowOptimization(export_limit_kw=1.0)
    s = m.fit().predict(_day(load, pv, _tariff()))
    assert list(s.columns) == list(M_pfo.PowerFlowOptimization.spec.output_units)
    assert len(s) == 24 and (s["solve_time_s"] > 0).all()
    site = m.battery_site()
    balance = s["grid_import_kw"] + pv - s["pv_curtailed_kw"] + s["battery_discharge_kw"] - s["battery_charge_kw"] - load
    assert np.abs(balance).max() < 1e-6
    assert s["soc_kwh"].between(site.s_min - 1e-6, site.s_max + 1e-6).all()
    assert (s[["battery_charge_kw", "battery_discharge_kw"]] <= m.battery_kw + 1e-6).all().all()
    assert s["grid_import_kw"].max() <= m.import_limit_kw + 1e-6 and s["grid_import_kw"].min() >= -1.0 - 1e-6
    assert s["soc_kwh"].iloc[-1] >= site.s0 - 1e-6
    assert s["pv_curtailed_kw"].sum() > 0  # 4 kW of PV, 1 kW export limit, 3 kW battery: some must go


def test_m11_perfect_forecast_resimulation_reproduces_the_plan_and_beats_the_rule():
    hours = np.arange(24)
    load = np.tile(0.5 + 2.5 * np.exp(-((hours - 19) / 2) ** 2), 3)
    pv = np.tile(3.0 * np.clip(np.sin(np.pi * (hours - 6) / 13), 0, None), 3)
    X = _day(load, pv, np.tile(_tariff(), 3))
    m = M_pfo.PowerFlowOptimization()
    plan = m.predict(X)
    y = X[["load_kw", "pv_kw"]]
    meta = X[["price_per_kwh"]]
    ev = m.evaluate_days(y, plan, meta)
    # with a perfect forecast the plan is the perfect-foresight optimum; executing it costs exactly that
    np.testing.assert_allclose(ev["cost"], ev["perfect_cost"], atol=1e-6)
    plain = M_pfo.resimulate(m.battery_site(), M_pfo._schedule_arrays(plan), ev["load"], ev["pv"], ev["price"], realtime=False)
    np.testing.assert_allclose(plain["grid_import_kw"].ravel(), plan["grid_import_kw"], atol=1e-6)
    score = m.evaluate(y, plan, meta)
    rule_score = m.evaluate(y, m.baseline().predict(X), meta)
    assert score["violations"] == 0 and rule_score["violations"] == 0
    assert score["cost_saving_vs_rule"] > 0.005
    assert score["cost_saving_vs_rule"] == pytest.approx(score["perfect_foresight_saving"], abs=1e-9)
    assert rule_score["cost_saving_vs_rule"] == pytest.approx(0.0, abs=1e-9)  # the rule on a perfect forecast is the rule


def test_m11_resimulation_uses_actuals_not_the_plan():
    """A plan made for a sunny day, played on a dark day: the grid covers what the PV does not deliver."""
    hours = np.arange(24)
    load = np.full(24, 1.0)
    sunny = 3.0 * np.clip(np.sin(np.pi * (hours - 6) / 13), 0, None)
    m = M_pfo.PowerFlowOptimization()
    plan = m.predict(_day(load, sunny, _tariff()))
    site = m.battery_site()
    for execution in ("realtime", "setpoints"):
        r = M_pfo.resimulate(site, M_pfo._schedule_arrays(plan), load[None, :], np.zeros((1, 24)), _tariff()[None, :], execution == "realtime")
        assert r["violation"].sum() == 0
        assert r["grid_import_kw"][0, 12] > plan["grid_import_kw"].iloc[12] + 1.0
        assert (r["soc_kwh"] >= site.s_min - 1e-9).all()


def test_m11_dataset_forecasts_use_only_earlier_days(prosumer_store, pfo_dataset):
    ds = pfo_dataset
    assert ds.meta_train["date"].max() < ds.meta_test["date"].min()
    assert len(ds.X_test) % 24 == 0 and list(ds.X_test.columns) == list(M_pfo.FORECAST_COLUMNS)
    # the load forecast of a test day is the mean of the 7 days before it, from the store's readings
    hourly = D_pfo._complete_days(D_pfo._hourly_local(prosumer_store.scan("meter", source="sim:t_load"), pl.col("power") / 1000, "Etc/GMT-10"))
    for k, day in enumerate(sorted(ds.meta_test["date"].unique())):
        d = date.fromisoformat(day)
        expected = np.mean([hourly[date.fromordinal(d.toordinal() - j)] for j in range(1, 8)], axis=0)
        np.testing.assert_allclose(ds.X_test["load_kw"].to_numpy()[24 * k: 24 * (k + 1)], expected)
        np.testing.assert_allclose(ds.y_test["load_kw"].to_numpy()[24 * k: 24 * (k + 1)], hourly[d])
    # changing the day itself (or anything later) never changes its forecast
    first = date.fromisoformat(ds.meta_test["date"].iloc[0])
    changed = {d: (v * 10 if d >= first else v) for d, v in hourly.items()}
    for how in ("previous_day", "last_week", "mean_7d"):
        a = D_pfo._forecast(hourly.get, first, how, "load")
        b = D_pfo._forecast(changed.get, first, how, "load")
        assert a is not None and np.array_equal(a, b)


def test_m11_fit_and_evaluate_same_rows_and_pickle(pfo_dataset):
    ds = pfo_dataset
    model, base, ev = fit_and_evaluate(M_pfo.PowerFlowOptimization(), ds)
    assert ev.n_test == ds.n_test == 24 * 2 and ev.test_rows_digest == digest(ds.X_test)
    assert ev.metrics["violations"] == 0 and ev.baseline_metrics["violations"] == 0
    assert ev.metrics["perfect_foresight_saving"] >= ev.metrics["cost_saving_vs_rule"] - 1e-9
    assert set(model.figures(ds, ev.predictions)) == {"cumulative_saving", "example_day"}
    again = cloudpickle.loads(cloudpickle.dumps(model))
    a, b = model.predict(ds.X_test), again.predict(ds.X_test)
    pd.testing.assert_frame_equal(a.drop(columns="solve_time_s"), b.drop(columns="solve_time_s"))
    assert len(model.input_example(ds.X_test)) == 24


def test_m11_beats_every_baseline_of_its_ladder_on_held_out_days(pfo_dataset):
    """The LP on the 7-day-mean forecast saves more than the peak rule, the self-consumption rule
    and the time-of-use rule planned on the same forecast, re-simulated on the actual test days."""
    model = M_pfo.PowerFlowOptimization()
    saving, scores = ladder_scores(model, pfo_dataset, per_reading=False)
    assert set(scores) == {"RuleDispatch", "SelfConsumptionRule", "TimeOfUseRule"}
    name, best = strongest(model, scores)
    assert saving > best + 0.02, (saving, scores)


def test_m11_greedy_rules_respect_the_battery():
    hours = np.arange(24)
    load = 0.6 + 2.0 * np.exp(-((hours - 19) / 2) ** 2)
    pv = 4.0 * np.clip(np.sin(np.pi * (hours - 6) / 13), 0, None)
    X = _day(load, pv, _tariff())
    for cls in (M_pfo.SelfConsumptionRule, M_pfo.TimeOfUseRule):
        rule = cls.for_model(M_pfo.PowerFlowOptimization())
        s = rule.fit().predict(X)
        site = rule.battery_site()
        assert list(s.columns) == list(M_pfo.PowerFlowOptimization.spec.output_units)
        balance = s["grid_import_kw"] + pv - s["pv_curtailed_kw"] + s["battery_discharge_kw"] - s["battery_charge_kw"] - load
        assert np.abs(balance).max() < 1e-9
        assert s["soc_kwh"].between(site.s_min - 1e-9, site.s_max + 1e-9).all()
        assert (s[["battery_charge_kw", "battery_discharge_kw"]] <= site.p_max + 1e-9).all().all()
    tou = M_pfo.TimeOfUseRule().fit().predict(X)
    cheap = _tariff() <= _tariff().min()
    assert tou["battery_charge_kw"][cheap & (pv == 0)].sum() > 0  # charges from the grid at night
    selfc = M_pfo.SelfConsumptionRule().fit().predict(X)
    assert selfc["battery_charge_kw"][pv == 0].sum() == 0  # never from the grid


def test_m11_input_errors(prosumer_store, tmp_path):
    m = M_pfo.PowerFlowOptimization()
    with pytest.raises(InputError, match="24 hourly rows"):
        m.predict(_day(np.ones(23), np.zeros(23), np.ones(23)))
    with pytest.raises(InputError, match="missing"):
        m.predict(_day(np.r_[np.nan, np.ones(23)], np.zeros(24), np.ones(24)))
    with pytest.raises(InputError, match="execution"):
        M_pfo.PowerFlowOptimization(execution="psychic").fit()
    with pytest.raises(InputError, match="ingest"):
        D_pfo.power_flow_optimization(Store(tmp_path / "empty"))
    with pytest.raises(InputError, match="pv_normal"):
        D_pfo.power_flow_optimization(prosumer_store, load_source="sim:t_load", pv_source="sim:none", timezone_name="Etc/GMT-10",
                                  train_start="2025-01-14", test_start="2025-01-16", test_end="2025-01-17")


# --------------------------------------------------------------------------- m12


def _typed_profiles(n_per_type=40, seed=0):
    """Three customer types with different daily shapes (a fixture for the clustering itself)."""
    rng = np.random.default_rng(seed)
    h = np.arange(24)
    shapes = {"evening": 0.3 + 1.5 * np.exp(-((h - 19) / 2) ** 2), "office": 0.2 + 1.0 * ((h >= 8) & (h < 18)),
              "night": 0.3 + 1.2 * ((h >= 23) | (h < 5))}
    rows, types = [], []
    for t, s in shapes.items():
        for _ in range(n_per_type):
            rows.append(s * rng.lognormal(0, 0.15, 24) * rng.uniform(0.5, 2))
            types.append(t)
    X = pd.DataFrame(np.array(rows), columns=list(M_dr.PROFILE_COLUMNS))
    X["weekday"] = rng.integers(0, 7, len(X))
    X["month"] = rng.integers(1, 13, len(X))
    return X, pd.Series(types)


def test_m12_recovers_distinct_types_and_orders_archetypes_by_peak_share():
    X, y = _typed_profiles()
    m = M_dr.DemandResponse(n_clusters=3, n_bootstrap=4, random_state=1).fit(X.iloc[::2])
    pred = m.predict(X.iloc[1::2])
    assert list(pred.columns) == list(M_dr.DemandResponse.spec.output_units)
    s = m.evaluate(y.iloc[1::2], pred)
    base = M_dr.CalendarGrouping().fit(X.iloc[::2])
    sb = m.evaluate(y.iloc[1::2], base.predict(X.iloc[1::2]))
    assert s["ari"] > 0.9 and sb["ari"] < 0.2
    assert s["bootstrap_stability"] > 0.9
    shares = m.archetypes_["peak_share"].to_numpy()
    assert (np.diff(shares) <= 1e-12).all()  # archetype 0 = largest peak share
    evening = pred["archetype"][(y.iloc[1::2] == "evening").to_numpy()].mode()[0]
    assert evening == 0 and m.archetypes_.loc[0, "flexible_kwh"] > 1.0
    again = cloudpickle.loads(cloudpickle.dumps(m))
    pd.testing.assert_frame_equal(pred, again.predict(X.iloc[1::2]))


def test_m12_meter_twin_customer_types_are_the_labels(meter_store, tmp_path):
    ds = D_dr.demand_response(meter_store, source="sim:t_meters", test_days=2, require_labels=True)
    assert ds.y_test is not None and set(ds.y_test) <= set(CUSTOMER_TYPES) and ds.y_test.notna().all()
    assert ds.meta_train["date"].max() < ds.meta_test["date"].min()
    # the test customers were never seen in training
    assert not set(ds.meta_train["device_id"]) & set(ds.meta_test["device_id"])
    assert set(ds.meta_test["device_id"]) == set(ds.split["held_out_customers"])
    model, base, ev = fit_and_evaluate(M_dr.DemandResponse(n_clusters=3, n_bootstrap=3), ds)
    assert ev.n_test == ds.n_test and ev.test_rows_digest == digest(ds.X_test)
    assert ev.metrics["n_labelled"] == ds.n_test
    every = D_dr.demand_response(meter_store, source="sim:t_meters", test_days=2, holdout_customer_fraction=0)
    assert set(every.meta_train["device_id"]) == set(every.meta_test["device_id"])
    bare = Store(tmp_path / "bare")  # the readings without the twin's truth: no labels
    bare.write("meter", meter_store.scan("meter", source="sim:t_meters").collect())
    assert D_dr.demand_response(bare, source="sim:t_meters", test_days=2).y_test is None
    with pytest.raises(InputError, match="customer_type"):
        D_dr.demand_response(bare, source="sim:t_meters", test_days=2, require_labels=True)
    with pytest.raises(InputError, match="run_scenario"):
        D_dr.demand_response(meter_store, source="sim:nothing")


def test_m12_beats_every_baseline_of_its_ladder_on_held_out_customers(meter_store):
    """KMeans on normalised profiles recovers the customer types of meters it never saw better than
    the calendar grouping, KMeans on the raw kW profile and peak-share bands (ARI, 0.2 above)."""
    ds = D_dr.demand_response(meter_store, source="sim:t_meters", test_days=2, require_labels=True)
    model = M_dr.DemandResponse(n_clusters=4, n_bootstrap=3)
    ari, scores = ladder_scores(model, ds, per_reading=False)
    assert set(scores) == {"CalendarGrouping", "RawProfileKMeans", "PeakShareBands"}
    name, best = strongest(model, scores)
    assert ari > best + 0.2, (ari, scores)


def test_m12_reads_customer_types_when_a_twin_records_them(meter_store, tmp_path):
    """If a twin writes a customer_types truth table, the builder uses it as y (fixture table)."""
    store = Store(tmp_path / "store")
    store.write("meter", meter_store.scan("meter", source="sim:t_meters").collect())
    types = pl.DataFrame({"ts": [datetime(2025, 1, 6, tzinfo=UTC)] * 12, "source": "sim:t_meters",
                          "device_id": [f"meter-{k:03d}" for k in range(12)], "customer_type": ["a", "b", "c"] * 4})
    store.write_truth("customer_types", types.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC"))))
    ds = D_dr.demand_response(store, source="sim:t_meters", test_days=2, require_labels=True, holdout_customer_fraction=0)
    assert set(ds.y_test) == {"a", "b", "c"}
    assert (ds.y_test.to_numpy() == ds.meta_test["device_id"].map(dict(zip(types["device_id"], types["customer_type"]))).to_numpy()).all()


def test_m11_bootstrap_terms_reproduce_the_saving_and_take_the_terms_path(pfo_dataset):
    """(a) the per-day cost terms give evaluate's saving on the full sample; (b) the bootstrap uses
    them (method "terms", day blocks) and the point value lies inside its own interval."""
    ds = pfo_dataset
    model, _, ev = fit_and_evaluate(M_pfo.PowerFlowOptimization(), ds, n_replicates=200)
    for pred in [ev.predictions["model"], *ev.ladder_predictions.values()]:
        terms, combine = model.bootstrap_terms(ds.y_test, pred, ds.meta_test)
        assert terms.shape == (ds.n_test, 2)
        want = model.evaluate(ds.y_test, pred, ds.meta_test)["cost_saving_vs_rule"]
        assert combine(terms.sum(axis=0, keepdims=True))[0] == pytest.approx(want, rel=1e-9, abs=1e-12)
    unc = ev.uncertainty
    assert unc.method == "terms" and unc.block_kind == "day" and unc.n_replicates == 200
    assert unc.model.low - 1e-12 <= unc.model.value <= unc.model.high + 1e-12
