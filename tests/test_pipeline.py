"""Pipeline runner + MLflow tracking on a toy notebook in a throw-away project home.

What is proven: parameters are checked before anything runs; a successful notebook leaves an
executed notebook, an HTML report without code, an index and a registered model whose
``champion`` alias follows the rule; a failing notebook stops the pipeline with one line, is
kept, its runs are FAILED and nothing is registered; bad input gives one line and exit 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gridtwin_lib import pipeline, tracking
from gridtwin_lib.cli import app
from gridtwin_lib.errors import InputError

TOY = Path(__file__).parent / "data" / "pipeline" / "01_toy.ipynb"


@pytest.fixture
def home(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pipelines").mkdir()
    shutil.copy(TOY, tmp_path / "notebooks" / TOY.name)
    shutil.copy(TOY.parent / "toy_model.py", tmp_path / "notebooks" / "toy_model.py")
    monkeypatch.setenv("GRIDTWIN_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("GRIDTWIN_WORKSPACE", raising=False)
    monkeypatch.delenv(tracking.MANIFEST_ENV, raising=False)
    return tmp_path


def write_pipeline(home: Path, name: str, **params) -> None:
    spec = {"description": f"toy {name}", "parameters": {"seed": 3},
            "notebooks": [{"notebook": "01_toy.ipynb", "parameters": params}]}
    (home / "pipelines" / f"{name}.yaml").write_text(yaml.safe_dump(spec))


def registry(name="gridtwin.m99_toy"):
    c = tracking.client()
    versions = sorted(c.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    champ = tracking.champion_version(name, c)
    return versions, champ


def test_list_and_dry_run_run_nothing(home):
    write_pipeline(home, "good", noise=0.1)
    assert [p["name"] for p in pipeline.list_pipelines()] == ["good"]
    result = pipeline.run("good", dry_run=True, echo=None)
    assert result.status == "planned"
    assert not Path(result.out_dir).exists()
    assert not (home / "mlruns").exists()


def test_success_registers_and_champion_moves_only_on_improvement(home):
    write_pipeline(home, "good", noise=0.1)
    write_pipeline(home, "worse", noise=2.0)
    lines: list[str] = []
    first = pipeline.run("good", echo=lines.append)
    assert first.status == "ok"
    out = Path(first.out_dir)
    assert (out / "01_toy.ipynb").exists() and (out / "index.html").exists()
    report = (out / "01_toy.html").read_text()
    assert "toy_dataset(n, noise, seed)" not in report, "the HTML report must hide the code"
    assert "m99_toy" in report
    assert (out.parent / "latest").resolve() == out.resolve()
    assert any("01_toy.ipynb ok" in ln for ln in lines)

    versions, champ = registry()
    assert [str(v.version) for v in versions] == ["1"] and str(champ.version) == "1"
    run = tracking.client().get_run(first.steps[0].runs[0]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["seed"] == "3"  # the pipeline-wide parameter reached the notebook
    assert run.data.tags["gridtwin.pipeline"] == "good"
    for key in ("model/mae", "baseline/mae", "skill/mae", "beats_baseline"):
        assert key in run.data.metrics
    arts = {a.path for a in tracking.client().list_artifacts(run.info.run_id, "notebook")}
    assert arts == {"notebook/01_toy.ipynb", "notebook/01_toy.html"}
    figs = tracking.client().list_artifacts(run.info.run_id, "evaluation")
    assert {a.path for a in figs} == {"evaluation/metrics.csv", "evaluation/dataset.json", "evaluation/uncertainty.json"}

    second = pipeline.run("worse", echo=None)
    assert second.status == "ok"
    rec = second.steps[0].runs[0]
    assert rec["beats_baseline"] and rec["champion"] is False
    versions, champ = registry()
    assert [str(v.version) for v in versions] == ["1", "2"] and str(champ.version) == "1"


def test_failing_notebook_stops_marks_failed_and_registers_nothing(home):
    write_pipeline(home, "good", noise=0.1)
    write_pipeline(home, "broken", noise=0.01, fail=True)
    pipeline.run("good", echo=None)
    with pytest.raises(pipeline.PipelineError) as err:
        pipeline.run("broken", echo=None)
    message = str(err.value)
    assert "\n" not in message
    assert "01_toy.ipynb failed: cell 3: RuntimeError: boom" in message
    out = sorted((home / "data" / "reports" / "broken").glob("2*"))[-1]
    kept = json.loads((out / "01_toy.ipynb").read_text())
    assert any(o.get("output_type") == "error" for c in kept["cells"] for o in c.get("outputs", []))
    summary = json.loads((out / "pipeline.json").read_text())
    assert summary["status"] == "failed"
    failed_run = summary["steps"][0]["runs"][0]["run_id"]
    assert tracking.client().get_run(failed_run).info.status == "FAILED"
    versions, champ = registry()
    assert [str(v.version) for v in versions] == ["1"] and str(champ.version) == "1"  # better model, but its notebook failed


@pytest.mark.parametrize("params, expected", [
    ({"noise": "loud"}, "parameter 'noise' must be float"),
    ({"volume": 3}, "has no parameter 'volume'"),
    ({"n": 2.5}, "parameter 'n' must be int"),
    ({"fail": 1}, "parameter 'fail' must be bool"),
])
def test_bad_parameters_are_one_line_errors(home, params, expected):
    write_pipeline(home, "bad", **params)
    with pytest.raises(InputError, match=expected):
        pipeline.load("bad")
    res = CliRunner().invoke(app, ["pipeline", "run", "bad"])
    assert res.exit_code == 2
    assert res.output.count("\n") == 1 and expected in res.output
    assert not (home / "data" / "reports").exists()


def test_unknown_pipeline_missing_notebook_and_cycle(home):
    write_pipeline(home, "good")
    with pytest.raises(InputError, match="unknown pipeline 'nope'.*known pipelines: good"):
        pipeline.load("nope")
    (home / "pipelines" / "missing.yaml").write_text(yaml.safe_dump({"notebooks": ["99_nothing.ipynb"]}))
    with pytest.raises(InputError, match="notebook '99_nothing.ipynb' not found"):
        pipeline.load("missing")
    shutil.copy(TOY, home / "notebooks" / "02_toy.ipynb")
    (home / "pipelines" / "cycle.yaml").write_text(yaml.safe_dump({"notebooks": [
        {"notebook": "01_toy.ipynb", "after": ["02_toy"]}, {"notebook": "02_toy.ipynb", "after": ["01_toy"]}]}))
    with pytest.raises(InputError, match="cycle"):
        pipeline.load("cycle")


def test_tracking_store_that_cannot_be_opened(home, monkeypatch):
    blocker = home / "not-a-directory"
    blocker.write_text("a file where a directory should be")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker}/mlflow.db")
    write_pipeline(home, "good")
    res = CliRunner().invoke(app, ["pipeline", "run", "good"])
    assert res.exit_code == 2
    assert res.output.startswith("error: tracking store sqlite:///") and res.output.count("\n") == 1


def test_a_failing_notebook_run_in_parallel_registers_nothing_from_its_siblings(home):
    """--jobs 2: the good notebook finishes, its sibling fails; the run registers no model at all."""
    shutil.copy(TOY, home / "notebooks" / "02_toy.ipynb")
    spec = {"description": "one good, one failing", "parameters": {"seed": 3},
            "notebooks": [{"notebook": "01_toy.ipynb", "parameters": {"noise": 0.1}},
                          {"notebook": "02_toy.ipynb", "parameters": {"noise": 0.1, "fail": True}}]}
    (home / "pipelines" / "mixed.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(pipeline.PipelineError, match="02_toy.ipynb failed"):
        pipeline.run("mixed", jobs=2, echo=None)
    assert tracking.client().search_registered_models() == []
    out = sorted((home / "data" / "reports" / "mixed").glob("2*"))[-1]
    steps = {s["name"]: s for s in json.loads((out / "pipeline.json").read_text())["steps"]}
    good_run = steps["01_toy"]["runs"][0]["run_id"]
    assert steps["01_toy"]["status"] == "ok" and tracking.client().get_run(good_run).info.status == "FAILED"


def test_then_commands_run_once_the_models_are_registered(home):
    """A pipeline's ``then`` commands run after registration (here: they see the version the run registered), their
    output is kept in the run folder, and a failing one fails the run with one line while its models stay registered."""
    spec = {"description": "toy then", "parameters": {"seed": 3}, "notebooks": [{"notebook": "01_toy.ipynb", "parameters": {"noise": 0.1}}],
            "then": ["gridtwin models list --json"]}
    (home / "pipelines" / "then.yaml").write_text(yaml.safe_dump(spec))
    lines: list[str] = []
    result = pipeline.run("then", echo=lines.append)
    assert result.status == "ok" and [s.name for s in result.steps] == ["01_toy", "gridtwin models list --json"]
    log = Path(result.steps[-1].report).read_text()
    board = json.loads(log.strip().splitlines()[-1])
    assert any(r.get("model_id") == "m99_toy" and r.get("champion_version") for r in board), log[-500:]
    assert any(ln.startswith("then: gridtwin models list --json ok") for ln in lines)

    spec["then"] = ["gridtwin scores refresh --source sim:nowhere"]
    (home / "pipelines" / "then.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(pipeline.PipelineError, match="scores refresh.*the models are registered.*sim:nowhere"):
        pipeline.run("then", echo=None)
    versions, _ = registry()
    assert len(versions) == 2  # registered before the command failed

    for bad in (["rm -rf data"], "gridtwin scores refresh", [""]):
        spec["then"] = bad
        (home / "pipelines" / "then.yaml").write_text(yaml.safe_dump(spec))
        with pytest.raises(InputError, match="then"):
            pipeline.load("then")
