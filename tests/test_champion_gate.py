"""The champion gate through the real tracking store (a temporary sqlite MLflow), what serves, the
engine serving a baseline end to end, and ``gridtwin models report``.

A toy per-reading model (the mean phase voltage [V] from ``v_mean_v``) with a two-rung ladder:
the training mean (the named baseline) and a 'last training value' rule. ``skill=True`` fits a
line (clearly better than both); ``skill=False`` predicts the training mean plus noise (it cannot
beat the mean)."""

from __future__ import annotations

import importlib
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from gridtwin_lib.models import registry

TOY_ID = "m97_toy_gate"

TOY_MODULE = '''
import numpy as np
import pandas as pd

from gridtwin_lib.models.base import Baseline, Dataset, GridModel, ModelSpec
from gridtwin_lib.models.registry import ModelEntry
from gridtwin_lib.models.serving import ServingAdapter, columns_scorer

SPEC = ModelSpec("m97_toy_gate", "monitoring", "least squares", "training mean", "mean phase voltage [V]",
                 "mae", False, {"v_level": "V"})


def _mae(y_true, y_pred):
    return {"mae": float(np.mean(np.abs(np.asarray(y_true, float) - y_pred["v_level"].to_numpy())))}


class ToyGate(GridModel):
    spec = SPEC

    def __init__(self, skill: bool = True):
        self.skill = skill

    def fit(self, X, y=None):
        x, t = X["v_mean_v"].to_numpy(float), np.asarray(y, float)
        self.slope_, self.intercept_ = np.polyfit(x, t, 1) if self.skill else (0.0, float(t.mean()))
        return self

    def predict(self, X):
        v = self.slope_ * X["v_mean_v"].to_numpy(float) + self.intercept_
        if not self.skill:
            v = v + np.random.default_rng(len(X)).normal(0.0, 0.2, len(X))
        return pd.DataFrame({"v_level": v}, index=X.index)

    def baseline(self):
        return TrainingMean()

    def evaluate(self, y_true, y_pred, meta=None):
        return _mae(y_true, y_pred)


class TrainingMean(Baseline):
    name = "training mean"

    def fit(self, X, y=None):
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return pd.DataFrame({"v_level": np.full(len(X), self.mean_)}, index=X.index)


class LastValue(Baseline):
    name = "last training value"

    def fit(self, X, y=None):
        self.last_ = float(np.asarray(y, float)[-1])
        return self

    def predict(self, X):
        return pd.DataFrame({"v_level": np.full(len(X), self.last_)}, index=X.index)


def toy_dataset(store=None, *, n: int = 24 * 30):
    rng = np.random.default_rng(0)
    v = rng.uniform(220.0, 240.0, n)
    X = pd.DataFrame({"v_mean_v": v})
    y = pd.Series(v + rng.normal(0.0, 0.5, n), name="v_level")
    meta = pd.DataFrame({"ts": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")})
    k = n // 3
    return Dataset(name="toy_gate", X_train=X.iloc[:k], y_train=y.iloc[:k], X_test=X.iloc[k:], y_test=y.iloc[k:],
                   meta_test=meta.iloc[k:], split={"train": [0, k], "test": [k, n]}, params={"n": n})


SERVING = ServingAdapter(score=columns_scorer(("v_mean_v",)), outputs=("v_level",))

ENTRY = ModelEntry(id="m97_toy_gate", spec_name="toy_gate", module="monitoring", estimator="toy_gate_model:ToyGate",
                   baselines=("toy_gate_model:TrainingMean", "toy_gate_model:LastValue"),
                   dataset="toy_gate_model:toy_dataset", simulations=None, serving="toy_gate_model:SERVING")
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy module importable, its entry registered, and a fresh sqlite MLflow store in tmp_path."""
    (tmp_path / "toy_gate_model.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("GRIDTWIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("GRIDTWIN_WORKSPACE", raising=False)
    monkeypatch.delenv("GRIDTWIN_RUN_MANIFEST", raising=False)
    module = importlib.import_module("toy_gate_model")
    registry.register(module.ENTRY)
    yield module
    registry.unregister(TOY_ID)
    sys.modules.pop("toy_gate_model", None)


def _train(module, skill: bool):
    from gridtwin_lib import notebook as nb

    return nb.train(module.ToyGate(skill=skill), module.toy_dataset(), seed=1)


def _readings(v):
    t0 = datetime(2024, 6, 1, tzinfo=UTC)
    return [dict(ts=t0 + timedelta(seconds=k), device_id="d1", v_a=x, v_b=x, v_c=x, i_a=5.0, i_b=5.0, i_c=5.0)
            for k, x in enumerate(v)]


def test_the_ladder_is_scored_on_the_same_rows_with_intervals(toy):
    from gridtwin_lib.models.base import fit_and_evaluate

    _, _, ev = fit_and_evaluate(toy.ToyGate(), toy.toy_dataset())
    assert list(ev.ladder) == ["training mean", "last training value"]
    assert ev.baseline_metrics == ev.ladder["training mean"]  # baseline_metrics: the catalogue's named baseline
    unc = ev.uncertainty
    assert unc.block_kind == "day" and unc.n_blocks == 20 and unc.n_rows == ev.n_test == 480
    assert unc.method == "fast:mae" and unc.n_replicates == 1000
    assert set(unc.differences) == set(ev.ladder)
    assert ev.strongest == min(ev.ladder, key=lambda k: ev.ladder[k]["mae"])


def test_gate_refuses_a_model_that_does_not_beat_its_strongest_baseline_and_the_baseline_serves(toy):
    from gridtwin_lib import inference, tracking

    result = _train(toy, skill=False)
    rec = result.run
    assert rec.gate_passed is False and rec.champion is False
    assert rec.champion_reason.startswith("least squares did not beat")
    assert rec.serves == f"baseline:{rec.strongest_baseline}" and rec.serving_version == rec.registered_version
    name = f"gridtwin.{TOY_ID}"
    assert tracking.champion_version(name) is None
    served = tracking.serving_version(name)
    assert served.tags["gridtwin.serves"] == rec.serves and "did not beat" in served.tags["gridtwin.champion_decision"]
    run = tracking.client().get_run(rec.run_id)
    for key in ("ci/model/low", "ci/model/high", "bootstrap/n_blocks", "bootstrap/n_test", "gate_passed",
                "ci/diff/training_mean/low", "ci/diff/last_training_value/high", "ci/baseline/training_mean/low"):
        assert key in run.data.metrics, key
    assert run.data.tags["gridtwin.bootstrap_block"] == "day" and run.data.tags["gridtwin.gate"] == "failed"

    # the engine serves the baseline end to end, through the model's own serving adapter
    engine = inference.Engine.from_registry([TOY_ID])
    assert engine.serving[TOY_ID] == rec.serves
    est = engine.estimators[TOY_ID]
    assert type(est).__name__ in ("TrainingMean", "LastValue")
    frame = engine.score(_readings(225.0 + np.arange(4.0))).frame
    expected = est.mean_ if hasattr(est, "mean_") else est.last_
    assert np.allclose(frame[f"{TOY_ID}.v_level"].to_numpy(), expected)
    assert engine.units[f"{TOY_ID}.v_level"] == "V"
    line = next(t for t in engine.serving_lines() if t.startswith("m97"))
    assert line == f"m97: {rec.strongest_baseline} serves; the least squares did not beat it"


def test_gate_accepts_a_model_that_beats_its_baselines_and_the_model_serves(toy):
    from gridtwin_lib import inference, tracking

    refused = _train(toy, skill=False).run
    rec = _train(toy, skill=True).run
    assert rec.gate_passed is True and rec.champion is True and rec.serves == "model"
    name = f"gridtwin.{TOY_ID}"
    assert str(tracking.champion_version(name).version) == rec.registered_version
    assert str(tracking.serving_version(name).version) == rec.registered_version != refused.registered_version
    engine = inference.Engine.from_registry([TOY_ID])
    est = engine.estimators[TOY_ID]
    assert engine.serving[TOY_ID] == "model" and type(est).__name__ == "ToyGate"
    v = 225.0 + np.arange(4.0)
    frame = engine.score(_readings(v)).frame
    assert np.allclose(frame[f"{TOY_ID}.v_level"].to_numpy(), est.slope_ * v + est.intercept_)

    # a later version that the gate refuses leaves the champion serving
    later = _train(toy, skill=False).run
    assert later.champion is False and later.serves == "model" and later.serving_version == rec.registered_version


def test_models_report_writes_the_table_from_mlflow(toy, tmp_path):
    from gridtwin_lib.cli import app

    _train(toy, skill=False)
    runner = CliRunner()
    out = runner.invoke(app, ["models", "report", "--markdown"])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[0].startswith("| model | primary metric | model [95 % CI]")
    row = next(ln for ln in lines if ln.startswith(f"| {TOY_ID}"))
    assert "**training mean**: " in row and "<br>last training value: " in row  # the strongest in bold
    assert "| refused |" in row and "baseline: " in row and " day |" in row and "480 / 20 day" in row

    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- models-report:begin -->\nold\n<!-- models-report:end -->\nafter\n")
    assert runner.invoke(app, ["models", "report", "--write-readme", str(readme)]).exit_code == 0
    text = readme.read_text()
    assert "old" not in text and row in text and text.endswith("<!-- models-report:end -->\nafter\n")
    bare = tmp_path / "bare.md"
    bare.write_text("no markers\n")
    bad = runner.invoke(app, ["models", "report", "--write-readme", str(bare)])
    assert bad.exit_code == 2 and "models-report:begin" in bad.output and bare.read_text() == "no markers\n"


def test_comparison_views_show_intervals_and_what_serves(toy):
    from gridtwin_lib import notebook as nb
    from gridtwin_lib import tracking
    from gridtwin_lib.dashboards import comparison

    rec = _train(toy, skill=False).run
    report = tracking.models_report()
    row = report.set_index("model_id").loc[TOY_ID]
    assert row["gate"] == "failed" and row["serves"] == rec.serves and row["n_test"] == 480 and row["block_kind"] == "day"
    assert row["model_low"] <= row["model"] <= row["model_high"] and row["diff_low"] <= row["diff"] <= row["diff_high"]
    assert [b["name"] for b in row["ladder"]] == ["training mean", "last training value"]
    table = nb.interval_table(report)
    assert table.loc[TOY_ID, "serves"] == f"m97: {rec.strongest_baseline} serves; the least squares did not beat it"
    bars = nb.interval_figure(report)
    (trace,) = bars.data
    assert list(trace.x) == ["model", "training mean", "last training value"] and trace.error_y.array is not None
    assert "serves" in bars.layout.annotations[0].text
    gain = nb.difference_figure(report)
    assert gain.data[0].error_y.arrayminus is not None
    lb = tracking.leaderboard()
    assert "served by the model" in comparison.summary_text(lb) and "did not beat it" in comparison.summary_text(lb)
    shown = comparison.table(lb).set_index("model_id").loc[TOY_ID]
    assert shown["gate"] == "failed" and shown["serves"] == rec.serves
    assert "baseline's outputs" in comparison.champion_note(lb, TOY_ID)


def test_model_table_cells_escape_the_pipe_of_a_name():
    """A baseline named "|dV| > 10 %" must not split the Markdown row (the README's table broke on m01)."""
    import re

    import pandas as pd

    from gridtwin_lib import tracking

    report = pd.DataFrame([{
        "model_id": "m01_x", "algorithm": "forest | trees", "primary_metric": "f1", "greater_is_better": True,
        "model": 0.8, "model_low": 0.7, "model_high": 0.9, "diff": 0.3, "diff_low": 0.2, "diff_high": 0.4,
        "strongest_baseline": "rule |dV| > 10 %", "n_test": 100, "n_blocks": 10, "block_kind": "hour", "gate": "passed",
        "serves": "model", "ladder": [{"name": "rule |dV| > 10 %", "value": 0.5, "low": 0.4, "high": 0.6}],
    }])
    row = tracking.report_markdown(report).splitlines()[2]
    assert len(re.findall(r"(?<!\\)\|", row)) == 9, row  # 8 cells
    assert "**rule \\|dV\\| > 10 %**: 0.5" in row and "forest \\| trees" in row
