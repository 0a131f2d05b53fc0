"""m07 power_quality_index (PQ index, Keras MLP) and m08 voltage_sag (RandomForest)."""

from __future__ import annotations

from datetime import timedelta

import cloudpickle
import numpy as np
import pandas as pd
import polars as pl
import pytest
from ladder import ladder_scores, strongest

from gridtwin_lib.datasets.common import source_span
from gridtwin_lib.datasets.maintenance import power_quality_index as dsm_pqi
from gridtwin_lib.datasets.maintenance import voltage_sag as dsm_vs
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import digest, fit_and_evaluate
from gridtwin_lib.models.maintenance.power_quality_index import (
    M07_INPUT_COLUMNS,
    PQ_LIMITS,
    PersistencePQ,
    PowerQualityIndex,
    pq_index,
    pq_window_table,
    subscores,
)
from gridtwin_lib.models.maintenance.voltage_sag import (
    M08_HORIZON_S,
    M08_INPUT_COLUMNS,
    HourlySagRate,
    VoltageSag,
)
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store

T0 = pd.Timestamp("2025-01-06 00:00:00", tz="UTC")


def window(n=600, v=(230.0, 230.0, 230.0), f=50.0, thd=0.0, device="d1", start=T0) -> pd.DataFrame:
    """A hand-made 10-min window of 1 s readings (constant unless arrays are given)."""
    ts = start + pd.to_timedelta(np.arange(n), unit="s")
    cols = {f"v_{p}": np.broadcast_to(np.asarray(x, float), (n,)).copy() for p, x in zip("abc", v)}
    return pd.DataFrame({"ts": ts, "device_id": device, **cols,
                         "frequency": np.broadcast_to(np.asarray(f, float), (n,)).copy(),
                         "thd_v": np.broadcast_to(np.asarray(thd, float), (n,)).copy()})


# --------------------------------------------------------------------------- the PQ index

_ALT = 230.0 + 3.45 * (-1.0) ** np.arange(600)  # 230 V +- 1.5 %: mean 230 V, steps of 3 % of 230 V


def test_pq_index_clean_window_scores_100():
    assert pq_index(window()) == pytest.approx(100.0)


@pytest.mark.parametrize("kwargs, quantity", [
    (dict(v=(253.0, 253.0, 253.0)), "v_dev_pct"),  # +10 % of 230 V on every phase
    (dict(v=(230.0 * 1.02, 230.0, 230.0 * 0.98)), "unbalance_pct"),  # 2 % from the mean
    (dict(thd=8.0), "thd_pct"),
    (dict(f=50.5), "freq_dev_hz"),
    (dict(v=(_ALT, _ALT, _ALT)), "rvc_pct"),  # 3 % steps every second around 230 V
])
def test_each_violation_caps_the_index_at_40(kwargs, quantity):
    """At its limit one quantity's sub-score is 0; the others are (nearly) 100: 0.5 * 80 + 0.5 * 0."""
    w = window(**kwargs)
    table = pq_window_table(w).to_pandas()
    assert table[f"s_{quantity}"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert pq_index(w) <= 40.0 + 1e-6
    assert pq_index(w) >= 38.0  # the other quantities stay near ideal


def test_half_limit_scores_as_documented():
    """THD at half its limit: sub-score 50, index 0.5 * (400 + 50) / 5 + 0.5 * 50 = 70."""
    assert pq_index(window(thd=PQ_LIMITS["thd_pct"][1] / 2)) == pytest.approx(70.0)
    # a worse value lowers the index further; frequency judged on 10-s means: a 1-s spike is averaged
    assert pq_index(window(thd=6.0)) < pq_index(window(thd=4.0)) < pq_index(window(thd=1.0))
    f = np.full(600, 50.0)
    f[100] = 55.0  # one 1 s reading: its 10-s block mean is 50.5 Hz
    assert pq_index(window(f=f)) == pytest.approx(40.0, abs=0.1)


def test_missing_frequency_and_thd_score_zero_and_subscores_are_clipped():
    q = pd.DataFrame({"v_dev_pct": [0.0, 50.0], "unbalance_pct": [0.0, 0.0], "thd_pct": [np.nan, 0.0],
                      "freq_dev_hz": [np.nan, 0.0], "rvc_pct": [0.0, -0.0]})
    s = subscores(q)
    assert s["s_thd_pct"].iloc[0] == 0.0 and s["s_freq_dev_hz"].iloc[0] == 0.0
    assert s["s_v_dev_pct"].iloc[1] == 0.0 and s["pq_index"].between(0, 100).all()


def test_window_table_aligns_windows_per_device():
    a = window(n=1200, thd=np.r_[np.zeros(600), np.full(600, 4.0)], device="a")
    b = window(n=600, device="b", start=T0 + pd.Timedelta(seconds=300))  # straddles two windows
    table = pq_window_table(pd.concat([a, b])).to_pandas()
    assert list(table["device_id"]) == ["a", "a", "b", "b"]
    assert list(table["n"]) == [600, 600, 300, 300]
    assert table["pq_index"].iloc[0] == pytest.approx(100.0) and table["pq_index"].iloc[1] == pytest.approx(70.0)
    assert table["pq_index"].iloc[1] == pytest.approx(pq_index(a.iloc[600:]))


def test_pq_index_refuses_bad_input():
    with pytest.raises(InputError, match="lack columns"):
        pq_index(window().drop(columns="thd_v"))
    with pytest.raises(InputError, match="several devices"):
        pq_index(pd.concat([window(device="a"), window(device="b")]))


# --------------------------------------------------------------------------- datasets from smoke runs


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory) -> Store:
    store = Store(tmp_path_factory.mktemp("m0708") / "store")
    for run in [*registry.get("m07_power_quality_index").simulation_runs("smoke"), *registry.get("m08_voltage_sag").simulation_runs("smoke")]:
        run_scenario(**run, store=store, progress=False)
    return store


@pytest.fixture(scope="module")
def m07_data(sim_store):
    return dsm_pqi.power_quality_index(sim_store, test_fraction=0.3)


@pytest.fixture(scope="module")
def m08_data(sim_store):
    return dsm_vs.voltage_sag(sim_store, test_fraction=0.3)


def test_sources_are_unique_to_these_models():
    for size in ("full", "smoke"):
        sources = [r["source"] for r in [*registry.get("m07_power_quality_index").simulation_runs(size), *registry.get("m08_voltage_sag").simulation_runs(size)]]
        assert len(set(sources)) == len(sources)
        assert all(s.startswith(("sim:m07_", "sim:m08_")) for s in sources)


def test_m07_dataset_shapes_split_and_label(m07_data, sim_store):
    ds = m07_data
    assert list(ds.X_train.columns) == list(M07_INPUT_COLUMNS) and list(ds.X_test.columns) == list(M07_INPUT_COLUMNS)
    assert ds.y_train.between(0, 100).all() and ds.y_test.between(0, 100).all()
    step = pd.Timedelta(minutes=10)
    # chronological: every training label window ends before the first test window starts
    assert ds.meta_train["window_start"].max() + 2 * step <= ds.meta_test["window_start"].min() + step
    assert pd.Timestamp(ds.split["cut"]) <= ds.meta_test["window_start"].min()
    # the label is the NEXT window's measured index, not the current one's
    src = dsm_pqi.M07_SOURCES[0]
    raw = sim_store.scan("three_phase", source=src).collect()
    table = pq_window_table(raw).to_pandas().set_index(["device_id", "window_start"])
    row = ds.meta_test[ds.meta_test["source"] == src].iloc[5]
    nxt = table.loc[(row["device_id"], row["window_start"] + step), "pq_index"]
    k = ds.meta_test.index[(ds.meta_test["source"] == src)][5]
    assert ds.y_test.iloc[k] == pytest.approx(nxt)
    assert ds.X_test["pq_index"].iloc[k] == pytest.approx(table.loc[(row["device_id"], row["window_start"]), "pq_index"])
    assert ds.X_test["pq_index_lag1"].iloc[k] == pytest.approx(table.loc[(row["device_id"], row["window_start"] - step), "pq_index"])


def test_m07_inputs_do_not_look_ahead(sim_store):
    """Rows built from readings cut off at T equal those built from the full run, for windows ending by T."""
    src = dsm_pqi.M07_SOURCES[0]
    lo, hi = source_span(sim_store, src, "m07")
    full = dsm_pqi._m07_source(sim_store, src, lo, hi, None)
    t_cut = lo + timedelta(hours=13, minutes=10) - timedelta(seconds=1)  # last reading of the 13:00 window
    part = dsm_pqi._m07_source(sim_store, src, lo, t_cut, None)
    cols = list(M07_INPUT_COLUMNS)
    keep = part["window_start"] <= pd.Timestamp(lo) + pd.Timedelta(hours=13)
    a = part.loc[keep, ["window_start", *cols]].dropna().reset_index(drop=True)
    b = full.set_index("window_start").loc[a["window_start"], cols].reset_index(drop=True)
    assert len(a) > 50
    np.testing.assert_allclose(a[cols].to_numpy(float), b.to_numpy(float), rtol=1e-9, atol=1e-9)


def test_m08_dataset_shapes_split_and_labels(m08_data, sim_store):
    ds = m08_data
    assert list(ds.X_train.columns) == list(M08_INPUT_COLUMNS)
    assert set(np.unique(ds.y_train)) == {0, 1}
    cut = pd.Timestamp(ds.split["cut"])
    assert (ds.meta_train["ts"] + pd.Timedelta(seconds=M08_HORIZON_S) < cut).all()
    assert (ds.meta_test["ts"] >= cut).all()
    # labels: a sag of the same device starts in (t, t + 15 min]
    src = dsm_vs.M08_SOURCES[0]
    sags = dsm_vs._sag_starts(sim_store, src).to_pandas()
    m = ds.meta_test.reset_index(drop=True)
    for k in np.linspace(0, len(m) - 1, 40).astype(int):
        if m.loc[k, "source"] != src:
            continue
        t, d = m.loc[k, "ts"], m.loc[k, "device_id"]
        s = sags.loc[sags["device_id"] == d, "ts"]
        expect = int(((s > t) & (s <= t + pd.Timedelta(minutes=15))).any())
        assert ds.y_test.iloc[k] == expect


def test_m08_label_window_is_half_open():
    rows = pl.DataFrame({"ts": [T0, T0, T0 + pd.Timedelta(minutes=1)], "device_id": ["a", "b", "a"]})
    sags = pl.DataFrame({"device_id": ["a", "b"], "ts": [T0 + pd.Timedelta(minutes=15), T0]})
    # a: sag exactly at t + 15 min counts, the later row (t + 1 min) also sees it; b: a sag AT t does not count
    assert dsm_vs._m08_labels(rows, sags, 900).tolist() == [1, 0, 1]


def test_builders_refuse_missing_sources_and_bad_params(tmp_path, sim_store):
    empty = Store(tmp_path / "empty")
    with pytest.raises(InputError, match="no three_phase measurements"):
        dsm_pqi.power_quality_index(empty)
    with pytest.raises(InputError, match="no three_phase measurements"):
        dsm_vs.voltage_sag(empty)
    with pytest.raises(InputError, match="test_fraction"):
        dsm_pqi.power_quality_index(sim_store, test_fraction=1.5)
    with pytest.raises(InputError, match="test_fraction"):
        dsm_vs.voltage_sag(sim_store, test_fraction=0.0)


# --------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def m07_fitted(m07_data):
    return fit_and_evaluate(PowerQualityIndex(epochs=15, patience=5, random_state=1), m07_data)


@pytest.fixture(scope="module")
def m08_fitted(m08_data):
    return fit_and_evaluate(VoltageSag(n_estimators=30, random_state=1), m08_data)


def test_m07_fit_evaluate_same_rows_units_and_pickle(m07_fitted, m07_data):
    model, bl, ev = m07_fitted
    assert isinstance(bl, PersistencePQ)
    assert ev.n_test == m07_data.n_test and ev.test_rows_digest == digest(m07_data.X_test)
    assert set(ev.metrics) >= {"mae", "rmse", "bias"}
    pred = model.predict(m07_data.X_test)
    assert list(pred.columns) == list(model.spec.output_units) and pred["pq_index_next"].between(0, 100).all()
    # persistence predicts the current index exactly
    np.testing.assert_allclose(bl.predict(m07_data.X_test)["pq_index_next"], m07_data.X_test["pq_index"])
    assert ev.baseline_metrics["mae"] == pytest.approx(np.mean(np.abs(m07_data.X_test["pq_index"] - m07_data.y_test)))
    again = cloudpickle.loads(cloudpickle.dumps(model))
    np.testing.assert_array_equal(again.predict(m07_data.X_test).to_numpy(), pred.to_numpy())
    # an array input gives the same predictions
    np.testing.assert_allclose(model.predict(m07_data.X_test.to_numpy()).to_numpy(), pred.to_numpy())
    assert 1 <= len(ev.figures) <= 3


def test_m08_fit_evaluate_same_rows_units_and_pickle(m08_fitted, m08_data):
    model, bl, ev = m08_fitted
    assert isinstance(bl, HourlySagRate)
    assert ev.n_test == m08_data.n_test and ev.test_rows_digest == digest(m08_data.X_test)
    assert set(ev.metrics) >= {"pr_auc", "brier", "brier_skill", "roc_auc", "base_rate"}
    pred = model.predict(m08_data.X_test)
    assert list(pred.columns) == ["p_sag_15m"] and pred["p_sag_15m"].between(0, 1).all()
    # the baseline is the training rate of the row's hour
    hour = m08_data.X_train["hour"].astype(int).to_numpy()
    h0 = int(m08_data.X_test["hour"].iloc[0])
    rate = m08_data.y_train.to_numpy()[hour == h0].mean()
    assert bl.predict(m08_data.X_test.head(1))["p_sag_15m"].iloc[0] == pytest.approx(rate)
    again = cloudpickle.loads(cloudpickle.dumps(model))
    np.testing.assert_array_equal(again.predict(m08_data.X_test).to_numpy(), pred.to_numpy())
    assert 1 <= len(ev.figures) <= 3


def test_m07_ladder_the_mlp_loses_to_its_strongest_baseline_on_small_data(m07_fitted, m07_data):
    """Honest finding on this small data (291 training windows, seeded): the MLP's forecast of the next
    window's index is worse than plain persistence, the smoothed persistence and the linear (Huber)
    regression on the same inputs; the gate serves the strongest of them. If the MLP ever comes within
    20 % of the strongest baseline's MAE, this test fails on purpose: turn it round."""
    model = m07_fitted[0]
    mae, scores = ladder_scores(model, m07_data, fit_model=False)
    print(f"\nm07 mae [index points]: model {mae:.3f}; ladder {scores}")
    assert list(scores) == ["PersistencePQ", "RecentMeanPQ", "LinearPQ"]
    # which baseline is strongest varies with the seed (persistence here, the Huber regression on another)
    assert mae > 1.2 * strongest(model, scores)[1], (mae, scores)


def test_m08_beats_the_strongest_baseline_of_its_ladder(m08_fitted, m08_data):
    """The forest must beat the hour-of-day rate, the recency of the last voltage events and a logistic
    regression on all its inputs by 0.05 PR-AUC on the held-out range."""
    model = m08_fitted[0]
    pr_auc, scores = ladder_scores(model, m08_data, fit_model=False)
    print(f"\nm08 pr_auc: model {pr_auc:.3f}; ladder {scores}")
    assert list(scores) == ["HourlySagRate", "RecentEventsLogistic", "DesignLogistic"]
    assert pr_auc > strongest(model, scores)[1] + 0.05, (pr_auc, scores)
    # recency is a real signal: sags cluster, so it beats the hour-of-day rate
    assert scores["RecentEventsLogistic"] > scores["HourlySagRate"] + 0.1


def test_m08_score_is_right_on_known_predictions():
    y = pd.Series([0, 0, 1, 1])
    perfect = VoltageSag().evaluate(y, pd.DataFrame({"p_sag_15m": [0.0, 0.0, 1.0, 1.0]}))
    assert perfect["pr_auc"] == pytest.approx(1.0) and perfect["brier"] == 0.0 and perfect["brier_skill"] == pytest.approx(1.0)
    const = VoltageSag().evaluate(y, pd.DataFrame({"p_sag_15m": [0.5] * 4}))
    assert const["brier_skill"] == pytest.approx(0.0) and const["pr_auc"] == pytest.approx(0.5)


def test_models_refuse_bad_input(m07_fitted, m08_fitted, m07_data, m08_data):
    m07, m08 = m07_fitted[0], m08_fitted[0]
    with pytest.raises(InputError, match="m07"):
        m07.predict(m07_data.X_test.drop(columns="pq_index"))
    bad = m08_data.X_test.head(3).copy()
    bad.iloc[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        m08.predict(bad)
    with pytest.raises(InputError, match="both classes"):
        VoltageSag().fit(m08_data.X_train.head(20), np.zeros(20))
    with pytest.raises(InputError, match="needs y"):
        PowerQualityIndex().fit(m07_data.X_train)


def test_m08_single_readings_walk_the_forest_as_scikit_learn_does(m08_fitted, m08_data, monkeypatch):
    """Up to FLAT_MAX_ROWS rows, m08 walks its forest with NumPy (FlatForest, verified when built):
    the same probabilities, bit for bit, as scikit-learn's predict_proba, which larger batches use;
    rows with NaN go through scikit-learn; a walk that does not reproduce scikit-learn is never used."""
    from gridtwin_lib.models import _trees

    model, _, _ = m08_fitted
    X = m08_data.X_test.head(50)
    big = pd.concat([X] * (_trees.FLAT_MAX_ROWS // len(X) + 1), ignore_index=True)  # scikit-learn's path
    expect = model.predict(big)["p_sag_15m"].to_numpy()[: len(X)]
    np.testing.assert_array_equal(model.predict(X)["p_sag_15m"].to_numpy(), expect)
    singles = np.concatenate([model.predict(X.iloc[[k]])["p_sag_15m"].to_numpy() for k in range(len(X))])
    np.testing.assert_array_equal(singles, expect)
    (_, flat), = model._flat_forests.values()
    assert isinstance(flat, _trees.FlatForest)
    A = np.random.default_rng(0).normal(size=(3, model.forest_.n_features_in_))
    A[1, 2] = np.nan
    np.testing.assert_array_equal(flat.predict_proba(A), model.forest_.predict_proba(A))
    assert "_flat_forests" not in cloudpickle.loads(cloudpickle.dumps(model)).__dict__
    # a walk that disagrees with scikit-learn is refused at build time: scikit-learn answers
    monkeypatch.setattr(_trees.FlatTrees, "leaf_nodes", lambda self, x: np.repeat(self.roots[None, :], len(x), axis=0))
    assert _trees.FlatForest.verified(model.forest_) is None
    model.__dict__.pop("_flat_forests")
    np.testing.assert_array_equal(model.predict(X)["p_sag_15m"].to_numpy(), expect)
    assert model._flat_forests[id(model.forest_)][1] is None
    model.__dict__.pop("_flat_forests")
