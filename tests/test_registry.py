"""The model registry: the catalogue's entries resolve, and a new model is one module plus one entry.

The toy model below is written to its own module in a temporary directory and registered by
this test alone (and, for the pipeline's kernel, through ``GRIDTWIN_MODELS``); nothing in the
library knows it. It then goes through a (one-notebook) pipeline run, the inference engine and
the model comparison like the catalogue's models.
"""

from __future__ import annotations

import importlib
import inspect
import shutil
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry
from gridtwin_lib.models.base import MODULES

ROOT = Path(__file__).resolve().parents[1]
TOY_ID = "m99_toy_voltage_level"

TOY_MODULE = '''
"""A toy model: the mean phase voltage [V] of a reading, by least squares on its own v_mean_v."""

import numpy as np
import pandas as pd

from gridtwin_lib.models.base import Baseline, Dataset, GridModel, ModelSpec
from gridtwin_lib.models.registry import ModelEntry
from gridtwin_lib.models.serving import ServingAdapter, columns_scorer

SPEC = ModelSpec("m99_toy_voltage_level", "monitoring", "least squares", "training mean", "mean phase voltage [V]",
                 "mae", False, {"v_level": "V"})


def _mae(y_true, y_pred):
    return {"mae": float(np.mean(np.abs(np.asarray(y_true, float) - y_pred["v_level"].to_numpy())))}


class ToyLevel(GridModel):
    spec = SPEC

    def __init__(self, ridge: float = 0.0):
        self.ridge = ridge

    def fit(self, X, y=None):
        x, t = X["v_mean_v"].to_numpy(float), np.asarray(y, float)
        self.slope_, self.intercept_ = np.polyfit(x, t, 1)
        return self

    def predict(self, X):
        return pd.DataFrame({"v_level": self.slope_ * X["v_mean_v"].to_numpy(float) + self.intercept_}, index=X.index)

    def baseline(self):
        return ToyMean()

    def evaluate(self, y_true, y_pred, meta=None):
        return _mae(y_true, y_pred)


class ToyMean(Baseline):
    spec = SPEC

    def fit(self, X, y=None):
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return pd.DataFrame({"v_level": np.full(len(X), self.mean_)}, index=X.index)

    def evaluate(self, y_true, y_pred, meta=None):
        return _mae(y_true, y_pred)


def toy_dataset(store, *, n: int = 200, noise_v: float = 0.5):
    """Synthetic readings (no store needed): the label is the voltage itself plus noise."""
    rng = np.random.default_rng(0)
    v = rng.uniform(220.0, 240.0, n)
    X = pd.DataFrame({"v_mean_v": v})
    y = pd.Series(v + rng.normal(0.0, noise_v, n), name="v_level")
    k = n * 2 // 3
    return Dataset(name="toy_voltage_level", X_train=X.iloc[:k], y_train=y.iloc[:k], X_test=X.iloc[k:], y_test=y.iloc[k:],
                   description=f"toy: {n} synthetic readings", split={"train": [0, k], "test": [k, n]}, params={"n": n})


SERVING = ServingAdapter(score=columns_scorer(("v_mean_v",)), outputs=("v_level",))

ENTRY = ModelEntry(id="m99_toy_voltage_level", spec_name="toy_voltage_level", module="monitoring",
                   estimator="toy_gridtwin_model:ToyLevel", baselines=("toy_gridtwin_model:ToyMean",),
                   dataset="toy_gridtwin_model:toy_dataset", simulations=None, defaults={"n": 120},
                   serving="toy_gridtwin_model:SERVING")
'''


def test_catalogue_entries_resolve():
    """Every entry names an estimator whose spec agrees with it, importable baselines, a builder
    and simulations for each size, and a serving path that is an adapter or its role's function."""
    assert len(registry.ids()) == len(set(registry.ids())) >= 18
    for entry in registry.entries():
        cls = entry.estimator_class()
        assert cls.spec.model_id == entry.id and cls.spec.module == entry.module in MODULES
        assert entry.baseline_classes() and callable(entry.dataset_builder())
        assert isinstance(entry.simulation_runs("smoke"), list)
        served = entry.serving_adapter()
        if entry.role is None and served is not None:
            assert served.outputs and callable(served.score)
        accepted = set(inspect.signature(cls).parameters) | set(inspect.signature(entry.dataset_builder()).parameters)
        for name in entry.parameters("full"):  # every configured parameter goes somewhere
            assert name in accepted or name.startswith((entry.dataset_prefix or "\0", *(v.prefix for v in entry.variants))), (entry.id, name)
    assert set(registry.reading_ids()) < set(registry.ids())
    assert registry.simulations("smoke") and registry.by_role("day_plan") is not None
    with pytest.raises(InputError, match="unknown model id"):
        registry.get("m00_nothing")


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy model's module on sys.path and its entry registered (removed afterwards)."""
    (tmp_path / "toy_gridtwin_model.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toy_gridtwin_model")
    registry.register(module.ENTRY)
    yield tmp_path, module
    registry.unregister(TOY_ID)
    sys.modules.pop("toy_gridtwin_model", None)


def test_register_and_unregister(toy):
    _, module = toy
    assert registry.get(TOY_ID) is module.ENTRY and TOY_ID in registry.ids("monitoring")
    assert TOY_ID in registry.reading_ids()
    with pytest.raises(ValueError, match="already registered"):
        registry.register(module.ENTRY)


@pytest.mark.slow
def test_a_registered_model_goes_through_pipeline_engine_and_comparison(toy, tmp_path_factory, monkeypatch):
    from gridtwin_lib import inference, notebook, pipeline, tracking

    toy_dir, _ = toy
    home = tmp_path_factory.mktemp("toyhome")
    (home / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "10_monitoring.ipynb", home / "notebooks")
    (home / "pipelines").mkdir()
    (home / "pipelines" / "toy.yaml").write_text(textwrap.dedent(f"""\
        description: the monitoring notebook training the toy model only
        workspace: toy
        parameters: {{seed: 3}}
        notebooks:
          - notebook: 10_monitoring.ipynb
            parameters: {{only: [{TOY_ID}], overrides: {{{TOY_ID}: {{n: 150}}}}}}
        """))
    monkeypatch.setenv("GRIDTWIN_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("GRIDTWIN_WORKSPACE", raising=False)
    # the pipeline's kernel is another process: it registers the toy through GRIDTWIN_MODELS
    monkeypatch.setenv("PYTHONPATH", f"{toy_dir}:{ROOT}")
    monkeypatch.setenv("GRIDTWIN_MODELS", "toy_gridtwin_model:ENTRY")

    # a misspelt override is refused before anything runs
    bad = home / "pipelines" / "bad.yaml"
    bad.write_text((home / "pipelines" / "toy.yaml").read_text().replace("{n: 150}", "{nn: 150}"))
    with pytest.raises(InputError, match="nn"):
        pipeline.load("bad")
    bad.unlink()

    result = pipeline.run("toy", jobs=1, echo=None)
    assert result.status == "ok"
    runs = [r for s in result.steps for r in s.runs]
    assert [r["model_id"] for r in runs] == [TOY_ID]

    monkeypatch.setenv("GRIDTWIN_WORKSPACE", "toy")
    board = tracking.leaderboard()  # the model comparison
    row = board.set_index("model_id").loc[TOY_ID]
    assert row["beats_baseline"] and row["champion_version"] is not None and row["model"] < row["baseline_value"]
    assert TOY_ID in notebook.comparison_table(board).index

    engine = inference.Engine.from_registry([TOY_ID])
    assert TOY_ID in engine.estimators and not engine.missing.get(TOY_ID)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    v = 225.0 + np.arange(5.0)
    rows = [dict(ts=t0 + timedelta(seconds=k), device_id="d1", v_a=v[k], v_b=v[k], v_c=v[k], i_a=5.0, i_b=5.0, i_c=5.0)
            for k in range(5)]
    frame = engine.score(rows).frame
    est = engine.estimators[TOY_ID]
    assert np.allclose(frame[f"{TOY_ID}.v_level"].to_numpy(), est.slope_ * v + est.intercept_)
    assert engine.units[f"{TOY_ID}.v_level"] == "V"


def test_alert_rules_name_registered_models(tmp_path):
    """alerts.yaml's model rules are checked against the registry: a removed or misspelt model fails the load."""
    from gridtwin_lib import alerts

    shipped = alerts.load_rules()
    assert {r.raised_by for r in shipped.rules if not r.raised_by.startswith("rule")} <= set(registry.ids())
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - {id: x, raised_by: m98_gone, input: scores, column: m98_gone.p, levels: [{severity: LOW, above: 0.5}],"
                   " message: m, action: a}\n")
    with pytest.raises(InputError, match="m98_gone"):
        alerts.load_rules(bad)


def test_a_model_id_appears_only_in_its_own_places():
    """`grep -rl <model id>` outside tests and docs finds the model's module, its dataset builder, its
    registry entry and its configuration. Listed exceptions, each with its reason: the dashboards
    (their pages still pick models by id: open work), the alert rules (a rule names the model whose
    output it reads: configuration), the smoke pipeline's daily report (the sources it scores), and a
    model that builds on another (``uses``) naming it."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "gridtwin_lib", "notebooks", "pipelines", "conf", "Makefile", "pyproject.toml"],
                             capture_output=True, text=True, cwd=ROOT, check=True).stdout.split()
    texts = {f: (ROOT / f).read_text(errors="ignore") for f in tracked if (ROOT / f).is_file()}
    exceptions = ("gridtwin_lib/dashboards/", "notebooks/dashboards/", "conf/base/alerts.yaml", "pipelines/smoke.yaml")
    leaks = {}
    for entry in registry.entries():
        own = {f"gridtwin_lib/models/{entry.module}/{entry.spec_name}.py", f"gridtwin_lib/datasets/{entry.module}/{entry.spec_name}.py",
               "gridtwin_lib/models/registry.py", f"conf/base/models/{entry.module}/{entry.spec_name}.yaml"}
        users = {f"gridtwin_lib/{kind}/{e.module}/{e.spec_name}.py" for e in registry.entries() if entry.id in e.uses
                 for kind in ("models", "datasets")}
        short = entry.id.split("_")[0]  # e.g. m07
        found = [f for f, text in texts.items() if short in text and f not in own | users and not f.startswith(exceptions)]
        if found:
            leaks[entry.id] = found
    assert not leaks
