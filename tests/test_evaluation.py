"""The paired block bootstrap: vectorised replicates equal a plain loop on the same draws, the
intervals cover a known answer about 95 % of the time, and the paired difference separates a
better predictor from an equal one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    adjusted_rand_score,
    average_precision_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    roc_auc_score,
)

from gridtwin_lib.evaluation import block_counts, block_ids, bootstrap, fast_replicates, gate_decision, resample_rows
from gridtwin_lib.evaluation.bootstrap import Interval, Uncertainty


def _block_rows(codes: np.ndarray, g: int) -> list[np.ndarray]:
    return [np.flatnonzero(codes == k) for k in range(g)]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    n = 1500
    ids = rng.integers(0, 37, n)
    y = rng.integers(0, 2, n)
    score = np.round(rng.random(n) + 0.4 * y, 2)  # rounded: ties, which the ranking paths must handle like sklearn
    cls = rng.integers(0, 4, n)
    pred_cls = np.where(rng.random(n) < 0.6, cls, rng.integers(0, 5, n))  # class 4 predicted, never true
    value = rng.normal(size=n)
    return ids, y, score, cls, pred_cls, value, value + rng.normal(0, 0.5, n)


@pytest.mark.parametrize("kind, reference, pick", [
    ("roc_auc", roc_auc_score, lambda d: (d[1], d[2])),
    ("average_precision", average_precision_score, lambda d: (d[1], d[2])),
    ("macro_f1", lambda a, b: f1_score(a, b, average="macro"), lambda d: (d[3], d[4])),
    ("f1", f1_score, lambda d: (d[1], (d[2] > 0.7).astype(int))),
    ("accuracy", accuracy_score, lambda d: (d[3], d[4])),
    ("ari", adjusted_rand_score, lambda d: (d[3], d[4])),
    ("mae", mean_absolute_error, lambda d: (d[5], d[6])),
    ("mse", mean_squared_error, lambda d: (d[5], d[6])),
    ("rmse", lambda a, b: float(np.sqrt(mean_squared_error(a, b))), lambda d: (d[5], d[6])),
])
def test_vectorised_replicates_equal_a_plain_loop_on_the_same_draws(data, kind, reference, pick):
    ids = data[0]
    y, p = pick(data)
    codes, counts = block_counts(ids, 60, seed=11)
    fast = fast_replicates(kind, y, p, codes, counts)
    rows = _block_rows(codes, counts.shape[1])
    loop = np.array([reference(y[idx], p[idx]) for idx in (resample_rows(c, rows) for c in counts)])
    np.testing.assert_allclose(fast, loop, rtol=1e-10, atol=1e-12)
    assert np.ptp(fast) > 0  # the replicates differ: the draws did resample


def test_block_counts_draw_n_blocks_per_replicate():
    codes, counts = block_counts(np.repeat(["a", "b", "c", "d"], 5), 200, seed=0)
    assert counts.shape == (200, 4) and (counts.sum(axis=1) == 4).all()
    assert list(codes[:6]) == [0, 0, 0, 0, 0, 1]
    again = block_counts(np.repeat(["a", "b", "c", "d"], 5), 200, seed=0)[1]
    np.testing.assert_array_equal(counts, again)  # fixed seed, same draws


def _mse_eval(y, p, meta=None):
    return {"mse": float(np.mean((np.asarray(y, float) - np.asarray(p, float)) ** 2))}


def test_intervals_cover_a_known_answer_about_95_percent():
    """Errors with a block effect: err = u_block + e_row, u, e ~ N(0, 1), so E[err²] = 2 exactly.
    Over 200 independent test sets the 95 % day-block interval of the MSE must hold 2 about 95 % of the time."""
    rng = np.random.default_rng(3)
    n_blocks, per = 60, 8
    ids = np.repeat(np.arange(n_blocks), per)
    hits = []
    for _ in range(200):
        err = rng.normal(size=n_blocks)[ids] + rng.normal(size=ids.size)
        y = np.zeros(ids.size)
        unc = bootstrap(_mse_eval, "mse", False, y, {"model": err, "zero": y}, {"model": float(np.mean(err ** 2)), "zero": 0.0},
                        block=("day", ids), n_replicates=400, seed=int(rng.integers(1 << 30)))
        assert unc.method == "fast:mse"
        hits.append(unc.model.low <= 2.0 <= unc.model.high)
    coverage = float(np.mean(hits))
    assert 0.88 <= coverage <= 0.99, coverage


def test_ignoring_the_blocks_undercovers():
    """The same case with one row per block (rows treated as independent) covers far less: the block matters."""
    rng = np.random.default_rng(4)
    n_blocks, per = 60, 8
    ids = np.repeat(np.arange(n_blocks), per)
    hits = []
    for _ in range(100):
        err = 2.0 * rng.normal(size=n_blocks)[ids] + 0.3 * rng.normal(size=ids.size)
        y = np.zeros(ids.size)
        unc = bootstrap(_mse_eval, "mse", False, y, {"model": err, "zero": y}, {"model": float(np.mean(err ** 2)), "zero": 0.0},
                        block=("row", np.arange(ids.size)), n_replicates=300, seed=5)
        hits.append(unc.model.low <= 4.09 <= unc.model.high)
    assert np.mean(hits) < 0.85


def _mae_eval(y, p, meta=None):
    return {"mae": float(np.mean(np.abs(np.asarray(y, float) - np.asarray(p, float))))}


@pytest.fixture(scope="module")
def forecast():
    rng = np.random.default_rng(1)
    n = 24 * 40
    ts = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    truth = rng.normal(size=n)
    good = truth + rng.normal(0, 0.3, n)
    other = truth + rng.normal(0, 1.0, n)
    same = truth + rng.normal(0, 1.0, n)  # the same error distribution as ``other``
    return ts, truth, {"model": good, "other": other, "same": same}


def test_paired_difference_separates_a_better_predictor_from_an_equal_one(forecast):
    ts, truth, preds = forecast
    values = {k: _mae_eval(truth, v)["mae"] for k, v in preds.items()}
    kind, ids = block_ids(len(ts), pd.DataFrame({"ts": ts}))
    assert kind == "day" and len(np.unique(ids)) == 40
    better = bootstrap(_mae_eval, "mae", False, truth, {"model": preds["model"], "other": preds["other"]},
                       {"model": values["model"], "other": values["other"]}, block=(kind, ids), seed=0)
    assert better.favours_model("other") and better.differences["other"].high < 0
    equal = bootstrap(_mae_eval, "mae", False, truth, {"model": preds["same"], "other": preds["other"]},
                      {"model": values["same"], "other": values["other"]}, block=(kind, ids), seed=0)
    d = equal.differences["other"]
    assert d.low < 0 < d.high and not equal.favours_model("other")
    # paired: the difference's interval is narrower than the two intervals side by side would suggest
    assert d.high - d.low < (equal.model.high - equal.model.low) + (equal.baselines["other"].high - equal.baselines["other"].low)


def test_fallback_calls_evaluate_on_the_same_draws_as_the_fast_path(forecast):
    ts, truth, preds = forecast
    values = {k: _mae_eval(truth, v)["mae"] for k, v in preds.items()}
    block = block_ids(len(ts), pd.DataFrame({"ts": ts}))
    kw = dict(block=block, n_replicates=150, seed=9)
    fast = bootstrap(_mae_eval, "mae", False, truth, preds, values, **kw)
    slow = bootstrap(_mae_eval, "mae", False, truth, preds, values, fast=False, time_budget_s=600, **kw)
    assert fast.method == "fast:mae" and slow.method == "evaluate" and slow.n_replicates == 150
    for name in ("other", "same"):
        assert fast.differences[name].low == pytest.approx(slow.differences[name].low, rel=1e-9)
        assert fast.baselines[name].high == pytest.approx(slow.baselines[name].high, rel=1e-9)


def test_a_metric_the_fast_path_does_not_reproduce_falls_back():
    """An ``evaluate`` that is not a plain MAE (here: a trimmed one) must not get the MAE fast path."""
    rng = np.random.default_rng(2)
    y, p, q = rng.normal(size=300), rng.normal(size=300), rng.normal(size=300)

    def trimmed(yt, yp, meta=None):
        e = np.sort(np.abs(np.asarray(yt) - np.asarray(yp)))
        return {"mae": float(e[: int(0.9 * e.size)].mean())}

    unc = bootstrap(trimmed, "mae", False, y, {"model": p, "b": q}, {"model": trimmed(y, p)["mae"], "b": trimmed(y, q)["mae"]},
                    block=("row", np.arange(300)), n_replicates=50, seed=0)
    assert unc.method == "evaluate" and unc.n_replicates == 50


def test_block_choice():
    n = 24 * 12
    frame = pd.DataFrame({"device_id": np.repeat([f"d{k}" for k in range(24)], 12),
                          "ts": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")})
    assert block_ids(n, frame)[0] == "device"  # 24 devices >= 10 blocks
    assert block_ids(n, frame.assign(device_id="d0"))[0] == "day"  # one device: by day (12 days)
    assert block_ids(200, frame.head(200).assign(device_id="d0"))[0] == "hour"  # 9 days < 10: by hour
    assert block_ids(n, {"ts_us": frame["ts"].astype("int64").to_numpy() // 1000})[0] == "day"
    assert block_ids(n, None)[0] == "row"
    with pytest.raises(ValueError, match="customer"):
        block_ids(n, frame, kind="customer")


def _unc(low: float, high: float, gib: bool = True) -> Uncertainty:
    return Uncertainty(metric="roc_auc", greater_is_better=gib, block_kind="day", n_blocks=30, n_rows=900, n_replicates=1000,
                       level=0.95, seed=0, method="fast:roc_auc", model=Interval(0.9, 0.88, 0.92),
                       baselines={"base rate": Interval(0.85, 0.83, 0.87)}, differences={"base rate": Interval(0.05, low, high)})


def test_gate_decision_in_words():
    ok, why = gate_decision(_unc(0.01, 0.09), "base rate")
    assert ok and "beats base rate" in why
    ok, why = gate_decision(_unc(-0.01, 0.09), "base rate", model_label="the ensemble")
    assert not ok and why.startswith("the ensemble did not beat base rate")
    ok, why = gate_decision(_unc(0.01, 0.09), "base rate", members={"rf": 0.9113})  # model 0.9 < its member
    assert not ok and "member rf" in why
    assert gate_decision(_unc(-0.09, -0.01, gib=False), "base rate")[0]  # an error metric: below zero favours the model
    assert not gate_decision(None, None)[0]


def test_roc_auc_by_block_pairs_equals_the_cumulative_path(data, monkeypatch):
    import importlib

    bs = importlib.import_module("gridtwin_lib.evaluation.bootstrap")  # the module (the package exports the function)

    ids, y, score = data[0], data[1], data[2]
    codes, counts = block_counts(ids, 40, seed=2)
    pairs = fast_replicates("roc_auc", y, score, codes, counts)
    monkeypatch.setattr(bs, "_PAIR_BLOCKS", 0)  # as with more blocks than the pair matrix allows
    np.testing.assert_allclose(pairs, fast_replicates("roc_auc", y, score, codes, counts), rtol=1e-12)


def test_a_mean_of_per_row_values_gets_block_replicates_equal_to_the_loop(forecast):
    """A metric no fast path knows (mean of |error|^1.5, like a regret of a re-simulation) but that is a
    mean over rows: one ``evaluate`` per block, then one matrix product, the same as the plain loop."""
    ts, truth, preds = forecast

    def regret(y, p, meta=None):
        return {"regret": float(np.mean(np.abs(np.asarray(y, float) - np.asarray(p, float)) ** 1.5))}

    values = {k: regret(truth, v)["regret"] for k, v in preds.items()}
    kw = dict(block=block_ids(len(ts), pd.DataFrame({"ts": ts})), n_replicates=120, seed=4)
    blocks = bootstrap(regret, "regret", False, truth, preds, values, **kw)
    loop = bootstrap(regret, "regret", False, truth, preds, values, fast=False, time_budget_s=600, **kw)
    assert blocks.method == "block-mean" and loop.method == "evaluate" and blocks.n_replicates == loop.n_replicates == 120
    for name in ("other", "same"):
        assert blocks.differences[name].low == pytest.approx(loop.differences[name].low, rel=1e-9)
        assert blocks.baselines[name].high == pytest.approx(loop.baselines[name].high, rel=1e-9)


def test_a_models_own_terms_give_replicates_equal_to_the_loop():
    """A ratio of sums (precision-recall F1 of flags, like an event-level F1) is no mean of rows: the
    model's ``bootstrap_terms`` (per-row TP, FP, FN) make it one matrix product all the same."""
    rng = np.random.default_rng(8)
    n = 800
    ids = np.repeat(np.arange(40), 20)
    y = rng.random(n) < 0.2
    preds = {"model": np.where(rng.random(n) < 0.8, y, ~y), "rule": np.where(rng.random(n) < 0.6, y, ~y)}

    def f1(yt, yp, meta=None):
        yt, yp = np.asarray(yt, bool), np.asarray(yp, bool)
        tp, fp, fn = (yt & yp).sum(), (~yt & yp).sum(), (yt & ~yp).sum()
        return {"flag_score": float(2 * tp / (2 * tp + fp + fn))}

    def terms(p):
        return np.column_stack([y & p, ~y & p, y & ~p]).astype(float), lambda s: 2 * s[:, 0] / (2 * s[:, 0] + s[:, 1] + s[:, 2])

    values = {k: f1(y, v)["flag_score"] for k, v in preds.items()}
    kw = dict(block=("device", ids), n_replicates=100, seed=1)
    own = bootstrap(f1, "flag_score", True, y, preds, values, terms=terms, **kw)
    loop = bootstrap(f1, "flag_score", True, y, preds, values, fast=False, time_budget_s=600, **kw)
    assert own.method == "terms" and loop.method == "evaluate"
    assert own.differences["rule"].low == pytest.approx(loop.differences["rule"].low, rel=1e-9)
    wrong = bootstrap(f1, "flag_score", True, y, preds, values, terms=lambda p: (terms(p)[0], lambda s: s[:, 0]), **kw)
    assert wrong.method != "terms"  # terms that do not reproduce evaluate are not used


def test_a_metric_biased_under_resampling_is_flagged():
    """A metric of the rows' count (not of their values) resamples with bias: the point value falls
    outside its own interval, and the gate's words say so."""
    ids = np.arange(200)
    y = np.zeros(200)

    def distinct(yt, yp, meta=None):  # share of distinct rows: 1 on the test set, ~0.63 on any replicate
        return {"share": float(len(np.unique(np.asarray(yp))) / len(yp))}

    preds = {"model": np.arange(200.0), "b": np.arange(200.0) % 100}
    unc = bootstrap(distinct, "share", True, y, preds, {"model": 1.0, "b": 0.5}, block=("row", ids), n_replicates=50, seed=0)
    assert unc.method == "evaluate" and "point value outside its own interval" in unc.note
    assert "caution" in gate_decision(unc, "b")[1]
