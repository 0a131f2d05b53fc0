"""Decision models m14 (TOPSIS load balancing) and m15 (stacking grid stability): the feeder
model's physics, shapes and units, same rows for model and baseline, chronological splits,
no look-ahead, pickling, clear input errors."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from ladder import ladder_scores, strongest

from gridtwin_lib.datasets.decision import grid_stability as D_gs
from gridtwin_lib.datasets.decision import load_balancing as D_lb
from gridtwin_lib.errors import InputError
from gridtwin_lib.models.base import digest, fit_and_evaluate
from gridtwin_lib.models.decision import grid_stability as M_gs
from gridtwin_lib.models.decision import load_balancing as M_lb
from gridtwin_lib.simulate import run_scenario
from gridtwin_lib.store import Store


def _run(store, scenario, source, duration, resolution, devices=1, seed=5):
    run_scenario(scenario, duration=duration, resolution=resolution, seed=seed, devices=devices, overrides={},
                 store=store, progress=False, source=source)


@pytest.fixture(scope="module")
def meter_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("m14") / "store")
    _run(store, "meter", "sim:t_m14", "9d", "1h", devices=12)
    return store


@pytest.fixture(scope="module")
def lb_dataset(meter_store):
    return D_lb.load_balancing(meter_store, source="sim:t_m14", feeders=2, history_days=3, test_days=3)


@pytest.fixture(scope="module")
def grid_store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("m15") / "store")
    _run(store, "mixed", "sim:t_m15_mixed", "2d", "10s", seed=7)
    _run(store, "normal", "sim:t_m15_normal", "2d", "10s", seed=8)
    return store


@pytest.fixture(scope="module")
def gs_dataset(grid_store):
    return D_gs.grid_stability(grid_store, sources=("sim:t_m15_mixed", "sim:t_m15_normal"), windows=("1m", "15m"))


# --------------------------------------------------------------------------- m14 physics


def test_balanced_feeder_has_no_unbalance_and_moves_are_complete():
    loads = np.full((24, 6), 2.0)
    phases = np.array([0, 1, 2, 0, 1, 2])
    pos = np.array([50, 50, 50, 200, 200, 200.0])
    st = M_lb.feeder_state(loads, phases, pos)
    assert np.allclose(st["vuf_pct"], 0.0, atol=1e-9) and np.allclose(st["neutral_current_a"], 0.0, atol=1e-9)
    assert np.allclose(st["phase_current_a"], 2 * 2000 / 230.0)
    assert len(M_lb.candidate_moves(phases)) == 12
    # all on one phase: unbalanced, more losses, and moving one customer away helps
    one = M_lb.feeder_state(loads, np.zeros(6, int), pos)
    assert (one["vuf_pct"] > 0.2).all() and (one["loss_w"] > st["loss_w"]).all()
    table = M_lb.evaluate_moves(loads, np.zeros(6, int), pos, M_lb.candidate_moves(np.zeros(6, int)))
    assert (table["unbalance_reduction_pp"] > 0).all() and (table["loss_reduction_kwh"] > 0).all()
    # a far customer moved helps more than a near one
    far = table[table["customer_index"] == 3]["unbalance_reduction_pp"].iloc[0]
    near = table[table["customer_index"] == 0]["unbalance_reduction_pp"].iloc[0]
    assert far > near


def test_topsis_prefers_dominating_alternative():
    m = np.array([[1.0, 1.0, 1.0, 100.0], [0.5, 0.5, 2.0, 300.0], [0.1, 0.2, 3.0, 500.0]])
    c = M_lb.topsis(m, np.array([0.5, 0.2, 0.15, 0.15]), np.array([True, True, False, False]))
    assert c.argmax() == 0 and c.argmin() == 2 and ((c >= 0) & (c <= 1)).all()


# --------------------------------------------------------------------------- m14 dataset + model


def test_lb_dataset_split_and_phase_map(lb_dataset, meter_store):
    ds = lb_dataset
    assert ds.split["train"][1] < ds.split["test"][0]
    assert ds.meta_train["date"].max() < ds.meta_test["date"].min()
    assert ds.n_test == 2 * 3 and ds.params["customers_per_feeder"] == 6
    pm = ds.params["phase_map"]
    assert len(pm) == 12 and {v["phase"] for v in pm.values()} <= set("abc")
    # same seed -> same phase map (a recorded dataset choice), another seed -> another one
    again = D_lb.load_balancing(meter_store, source="sim:t_m14", feeders=2, history_days=3, test_days=3)
    other = D_lb.load_balancing(meter_store, source="sim:t_m14", feeders=2, history_days=3, test_days=3, phase_seed=99)
    assert again.params["phase_map"] == pm and other.params["phase_map"] != pm
    assert again.digest == ds.digest


def test_lb_no_look_ahead(lb_dataset, meter_store):
    """X of day D is the mean of the days before D: never the realised loads of D."""
    ds = lb_dataset
    n = ds.params["customers_per_feeder"]
    _, _, _, kw = M_lb.feeder_columns(n)
    full_x = pd.concat([ds.X_train, ds.X_test], ignore_index=True)
    full_y = pd.concat([ds.y_train, ds.y_test], ignore_index=True)
    meta = pd.concat([ds.meta_train, ds.meta_test], ignore_index=True)
    f0 = meta["feeder"] == "feeder-0"
    x, y = full_x[f0][kw].to_numpy(), full_y[f0][kw].to_numpy()
    h = ds.params["history_days"]
    assert np.allclose(x[h], y[:h].mean(axis=0))  # 4th row of feeder-0: days 3..5 -> realised rows 0..2
    assert not np.allclose(x[h], y[h])


def test_lb_fit_and_evaluate(lb_dataset):
    model, bl, ev = fit_and_evaluate(M_lb.LoadBalancing(), lb_dataset)
    assert ev.n_test == lb_dataset.n_test and ev.test_rows_digest == digest(lb_dataset.X_test)
    pred = ev.predictions["model"]
    assert list(pred.columns) == list(M_lb.LoadBalancing.spec.output_units)
    assert set(pred["from_phase"]) <= set("abc") and (pred["from_phase"] != pred["to_phase"]).all()
    assert ev.metrics["best_reduction_pp"] == pytest.approx(ev.baseline_metrics["best_reduction_pp"])
    # the chosen customer really sits on from_phase in the row
    row = lb_dataset.X_test.iloc[0]
    slot = [c for c in row.index if c.startswith("customer_") and row[c] == pred["customer"].iloc[0]][0]
    assert row["phase_" + slot.split("_")[1]] == pred["from_phase"].iloc[0]
    assert ev.figures
    blob = cloudpickle.loads(cloudpickle.dumps(model))
    pd.testing.assert_frame_equal(blob.predict(lb_dataset.X_test), pred)


def test_lb_against_its_ladder_on_held_out_days(lb_dataset):
    """On the realised loads of later days, judged by the independent unbalanced power flow (not the
    simplified model that ranked the moves), TOPSIS's top move has a lower unbalance regret than the
    largest-load heuristic (by 0.01 pp of VUF) and no higher than the brute force on the forecast loads."""
    model = M_lb.LoadBalancing()
    regret, scores = ladder_scores(model, lb_dataset, per_reading=False)
    assert set(scores) == {"LargestLoadHeuristic", "BruteForceExpected"}
    assert regret < scores["LargestLoadHeuristic"] - 0.01, (regret, scores)
    name, best = strongest(model, scores)
    assert name == "BruteForceExpected" and regret <= best + 1e-12, (regret, scores)


def test_lb_metric_regression(lb_dataset):
    """The regrets [pp of VUF] on the fixture's held-out days, under the unbalanced power flow and
    under the simplified model, as measured when the independent judge was introduced (meter twin
    seed 5, 12 customers, 3 test days; 2 % tolerance for solver and BLAS rounding)."""
    model = M_lb.LoadBalancing()
    regret, scores = ladder_scores(model, lb_dataset, per_reading=False)
    simplified, simple_scores = ladder_scores(model, lb_dataset, metric="simplified_regret", per_reading=False)
    assert regret == pytest.approx(0.002377, rel=0.02) and simplified == pytest.approx(0.002249, rel=0.02)
    assert scores["LargestLoadHeuristic"] == pytest.approx(0.01784, rel=0.02)
    assert scores["BruteForceExpected"] == pytest.approx(0.005935, rel=0.02)
    assert simple_scores["LargestLoadHeuristic"] == pytest.approx(0.01926, rel=0.02)


def test_lb_brute_force_picks_the_best_expected_move(lb_dataset):
    row = lb_dataset.X_test.iloc[[0]]
    n = lb_dataset.params["customers_per_feeder"]
    ids, phases, pos, loads = M_lb.unpack_row(row.iloc[0], n)
    table = M_lb.evaluate_moves(loads, phases, pos, M_lb.candidate_moves(phases))
    pick = M_lb.BruteForceExpected().fit(lb_dataset.X_train).predict(row).iloc[0]
    best = table.iloc[int(table["unbalance_reduction_pp"].argmax())]
    assert pick["customer"] == ids[int(best["customer_index"])] and pick["to_phase"] == M_lb.PHASES[int(best["to_phase"])]
    assert pick["expected_vuf_after_pct"] == pytest.approx(table["vuf_after_pct"].min())


def test_lb_rank_weights_matter(lb_dataset):
    row = lb_dataset.X_test.iloc[0]
    ids, phases, pos, loads = M_lb.unpack_row(row, lb_dataset.params["customers_per_feeder"])
    only_unb = M_lb.LoadBalancing(w_unbalance=1, w_losses=0, w_customers=0, w_cost=0).rank(phases, pos, loads)
    assert only_unb["unbalance_reduction_pp"].iloc[0] == pytest.approx(only_unb["unbalance_reduction_pp"].max())


def test_lb_input_errors(meter_store, tmp_path):
    with pytest.raises(InputError, match="no meter readings"):
        D_lb.load_balancing(Store(tmp_path / "empty"))
    with pytest.raises(InputError, match="complete days"):
        D_lb.load_balancing(meter_store, source="sim:t_m14", history_days=7, test_days=7)
    with pytest.raises(InputError, match="customer_XX"):
        M_lb.LoadBalancing().fit(pd.DataFrame({"x": [1.0]}))


# --------------------------------------------------------------------------- m15


def test_gs_dataset_split_and_labels(gs_dataset, grid_store):
    ds = gs_dataset
    assert pd.Timestamp(ds.split["train"][1]) < pd.Timestamp(ds.split["test"][0])
    # the label window of the last training row ends before the first test row
    gap = pd.Timestamp(ds.meta_test["ts"].min()) - pd.Timestamp(ds.meta_train["ts"].max())
    assert gap >= pd.Timedelta(minutes=30)
    assert (pd.to_datetime(ds.meta_test["ts"]).dt.second == 0).all()
    assert set(np.unique(ds.y_train)) == {0, 1}
    assert not any(c in ds.X_train.columns for c in ("ts", "device_id", "source"))
    # labels recomputed by hand for one row: a disturbance starts in (t, t+30 min]
    ev = grid_store.scan_truth("events", source="sim:t_m15_mixed").collect().to_pandas()
    ev = ev[ev["type"].isin(D_gs.DISTURBANCE_TYPES)]
    m = ds.meta_train.reset_index(drop=True)
    i = int(np.flatnonzero(m["source"] == "sim:t_m15_mixed")[100])
    t = pd.Timestamp(m["ts"].iloc[i])
    expect = int(((ev["ts"] > t) & (ev["ts"] <= t + pd.Timedelta(minutes=30))).any())
    assert ds.y_train.iloc[i] == expect


def test_gs_no_look_ahead(grid_store):
    """Features of the training range do not change when later readings are removed."""
    full = D_gs.grid_stability(grid_store, sources=("sim:t_m15_mixed",), windows=("1m", "15m"))
    cut = pd.Timestamp(full.meta_train["ts"].iloc[len(full.meta_train) // 2])
    part = D_gs.grid_stability(grid_store, sources=("sim:t_m15_mixed",), windows=("1m", "15m"), end=cut.to_pydatetime())
    n = 200
    a = full.X_train.iloc[:n]
    b = part.X_train.iloc[:n]
    pd.testing.assert_frame_equal(a, b)


def test_gs_fit_and_evaluate(gs_dataset):
    model = M_gs.GridStability(n_folds=3, rf_trees=40, xgb_trees=60)
    model, bl, ev = fit_and_evaluate(model, gs_dataset)
    assert ev.n_test == gs_dataset.n_test and ev.test_rows_digest == digest(gs_dataset.X_test)
    pred = ev.predictions["model"]
    assert list(pred.columns) == list(M_gs.GridStability.spec.output_units)
    p = pred["p_disturbance_30min"].to_numpy()
    assert np.allclose(pred["stability_score"], 100 * (1 - p))
    for m in M_gs.MEMBERS:
        assert f"member_{m}_roc_auc" in ev.metrics and f"member_{m}_roc_auc" not in ev.baseline_metrics
    blob = cloudpickle.loads(cloudpickle.dumps(model))
    pd.testing.assert_frame_equal(blob.predict(gs_dataset.X_test), pred)
    assert ev.figures


def test_gs_beats_every_baseline_of_its_ladder_and_each_member(gs_fitted, gs_dataset):
    """On later minutes the stacking ensemble's ROC-AUC is 0.03 above the strongest baseline (the
    best single member chosen on training rows, the regime base rate, climatology) and at least
    as high as each of its own members' (the catalogue's rule)."""
    model = gs_fitted
    auc, scores = ladder_scores(model, gs_dataset, fit_model=False, per_reading=False)
    assert set(scores) == {"Climatology", "BestSingleMember", "RegimeBaseRate"}
    name, best = strongest(model, scores)
    assert auc > best + 0.03, (auc, scores)
    metrics = model.evaluate(gs_dataset.y_test, model.predict(gs_dataset.X_test))
    members = {m: metrics[f"member_{m}_roc_auc"] for m in M_gs.MEMBERS}
    assert all(auc >= v for v in members.values()), (auc, members)


def test_gs_input_errors(grid_store, gs_dataset, tmp_path):
    with pytest.raises(InputError, match="no three_phase readings"):
        D_gs.grid_stability(Store(tmp_path / "empty"), sources=("sim:nothing",))
    with pytest.raises(InputError, match="test_fraction"):
        D_gs.grid_stability(grid_store, sources=("sim:t_m15_mixed",), test_fraction=1.5)
    with pytest.raises(InputError, match="one class"):
        M_gs.GridStability().fit(gs_dataset.X_train.iloc[:50], np.zeros(50, int))
    fitted = M_gs.Climatology().fit(gs_dataset.X_train, gs_dataset.y_train)
    assert fitted.predict(gs_dataset.X_test.iloc[:3])["p_disturbance_30min"].nunique() == 1


def test_advice_effects_match_the_realised_reduction(lb_dataset):
    """The model's advice effects (read by gridtwin_lib.advice) re-simulate the moves on the
    realised loads as evaluate() does."""
    model, bl, ev = fit_and_evaluate(M_lb.LoadBalancing(), lb_dataset)
    e14 = M_lb.advice_effects(model, bl, lb_dataset).frame
    assert len(e14) == len(lb_dataset.X_test)
    assert (e14["vuf_no_action_pct"] - e14["vuf_advice_pct"]).mean() == pytest.approx(ev.metrics["realised_reduction_pp"], abs=1e-9)
    assert (e14["vuf_no_action_pct"] - e14["vuf_rule_pct"]).mean() == pytest.approx(ev.baseline_metrics["realised_reduction_pp"], abs=1e-9)
    assert (e14["vuf_best_pct"] <= e14[["vuf_advice_pct", "vuf_rule_pct"]].min(axis=1) + 1e-12).all()


@pytest.fixture(scope="module")
def gs_fitted(gs_dataset):
    return M_gs.GridStability(n_folds=3, rf_trees=40, xgb_trees=60).fit(gs_dataset.X_train, gs_dataset.y_train)


def test_gs_single_readings_give_the_batch_probabilities(gs_fitted, gs_dataset):
    """Up to FLAT_MAX_ROWS rows, the forest member walks its trees with NumPy (FlatForest) and
    XGBoost runs on one thread: the same probabilities as the batch path (scikit-learn with two
    jobs, whose tree order only moves the last bits; XGBoost exactly)."""
    from gridtwin_lib.models import _trees

    X = gs_dataset.X_test.head(40).reset_index(drop=True)
    big = pd.concat([X] * (_trees.FLAT_MAX_ROWS // len(X) + 1), ignore_index=True)
    batch = gs_fitted.predict(big).head(len(X))
    few = gs_fitted.predict(X)
    singles = pd.concat([gs_fitted.predict(X.iloc[[k]]) for k in range(len(X))], ignore_index=True)
    for got in (few, singles):  # (matrix products round by batch size: the logit member too)
        assert list(got.columns) == list(batch.columns)
        np.testing.assert_allclose(got.to_numpy(float), batch.to_numpy(float), rtol=1e-12, atol=1e-15)
    A = gs_fitted._matrix(X)
    # XGBoost on the calling thread: exactly its multi-threaded values
    np.testing.assert_array_equal(few["p_member_xgb"], gs_fitted.members_["xgb"].predict_proba(A)[:, 1])
    rf = gs_fitted.members_["rf"]
    (_, flat), = gs_fitted._flat_forests.values()
    assert isinstance(flat, _trees.FlatForest) and rf.n_jobs == gs_fitted.n_jobs  # verification leaves the forest as it was
    rf.n_jobs = 1
    try:  # one job: scikit-learn adds the trees in order, as the walk does
        np.testing.assert_array_equal(flat.predict_proba(A), rf.predict_proba(A))
    finally:
        rf.n_jobs = gs_fitted.n_jobs
    assert "_flat_forests" not in cloudpickle.loads(cloudpickle.dumps(gs_fitted)).__dict__


def test_gs_best_single_member_serves_single_readings_like_its_batch(gs_dataset):
    """The ladder baseline that serves m15 when the ensemble does not pass its gate takes the same fast
    member path for a few rows (a forest walked with NumPy), with the batch path's probabilities."""
    from gridtwin_lib.models import _trees

    best = M_gs.BestSingleMember({"n_folds": 3, "rf_trees": 40, "xgb_trees": 60}).fit(gs_dataset.X_train, gs_dataset.y_train)
    # whichever member won on this fixture, serve the forest: the member with the fast path
    best.member_ = "rf"
    best.estimator_ = M_gs.GridStability(rf_trees=40)._members()["rf"].fit(gs_dataset.X_train.to_numpy(float), gs_dataset.y_train)
    X = gs_dataset.X_test.head(30).reset_index(drop=True)
    big = pd.concat([X] * (_trees.FLAT_MAX_ROWS // len(X) + 1), ignore_index=True)
    singles = pd.concat([best.predict(X.iloc[[k]]) for k in range(len(X))], ignore_index=True)
    np.testing.assert_allclose(singles.to_numpy(float), best.predict(big).head(len(X)).to_numpy(float), rtol=1e-12, atol=1e-15)
    assert "_flat_forests" in best.__dict__  # the walk ran
    assert "_flat_forests" not in cloudpickle.loads(cloudpickle.dumps(best)).__dict__
