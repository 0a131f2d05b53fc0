"""The smoke pipeline end to end, then what its executed notebooks, MLflow store and reports hold.

Both run in a throw-away project home (a copy of notebooks/ and pipelines/), so the real
store and registry are never touched. After the pipeline the tests read the MLflow store
back: a finished run per model with the required metrics, registered versions with
signatures, champions only where the baseline was beaten, reports on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridtwin_lib import pipeline, tracking

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("m01_voltage_anomaly", "m02_harmonic_analysis", "m03_frequency_stability", "m04_phase_imbalance",
          "m05_equipment_failure", "m06_overload_risk", "m07_power_quality_index", "m08_voltage_sag",
          "m09_load_forecast", "m10_energy_loss", "m11_power_flow_optimization", "m12_demand_response",
          "m13_reactive_power_compensation", "m14_load_balancing", "m15_grid_stability", "m16_optimal_dispatch",
          "m17_pv_anomaly", "m18_pv_forecast", "m19_remaining_useful_life", "m20_health_index")
NOTEBOOKS = ("00_data", "10_monitoring", "11_maintenance", "12_energy_flow", "13_decision", "20_model_comparison", "30_daily_report")

pytestmark = pytest.mark.slow


def test_smoke_pipeline_writes_reports(smoke_home):
    home, result = smoke_home
    assert result.status == "ok"
    out = Path(result.out_dir)
    assert out.parent == home / "data" / "workspaces" / "smoke" / "reports" / "smoke"
    for step in NOTEBOOKS:
        assert (out / f"{step}.ipynb").exists() and (out / f"{step}.html").exists()
    index = (out / "index.html").read_text()
    for model_id in MODELS:
        assert model_id in index  # each model linked to its MLflow run
    summary = json.loads((out / "pipeline.json").read_text())
    assert [(s["name"], s["status"]) for s in summary["steps"]] == [(n, "ok") for n in (*NOTEBOOKS, "gridtwin scores refresh")]
    # once the models were registered, what they say about every three-phase reading was stored for the dashboards
    from gridtwin_lib.inference import stored
    from gridtwin_lib.store import Store

    store = Store(home / "data" / "workspaces" / "smoke" / "store")
    for source in store.sources("three_phase"):
        kept = stored.manifest(store, source)
        assert kept is not None and kept["readings"] == stored.readings_count(store, source) > 0, source
        assert any(c.startswith("m01_voltage_anomaly.") for c in kept["columns"]), source
    # the daily report kept its tables beside its HTML
    daily = json.loads((out / "daily.json").read_text())
    assert daily["readings"] > 0 and set(daily["alerts"]) == {"CRITICAL", "HIGH", "MEDIUM", "LOW"}
    assert (out / "alerts.csv").exists()
    if "m09_load_forecast" not in daily["models_not_served"]:  # tomorrow's plan needs m09's forecast
        assert daily["plan"]["m11_status"] == "ok" and (out / "forecast_plan.csv").exists()
    # the workspace kept the smoke data and reports apart from the real ones
    assert (home / "data" / "workspaces" / "smoke" / "store").is_dir()
    assert not (home / "data" / "store").exists() and not (home / "data" / "reports").exists()


def test_the_daily_report_scores_the_solar_assets_with_what_serves(smoke_workspace):
    """After the run (its aliases are set when every notebook has succeeded), the daily report scores every
    simulated PV fleet (the day's fault flags, the day's health index) and the inverter fleet (remaining life), and
    judges their alert rules on what the PV and inverter fleets covered."""
    from gridtwin_lib import report
    from gridtwin_lib.models import registry

    rep = report.daily(max_devices=1, progress=False)
    pv, inverters = rep.scores.pv, rep.scores.inverters
    fleets = {s for e in ("m17_pv_anomaly", "m20_health_index") for s in
              [r["source"] for r in registry.get(e).simulation_runs("smoke")]}
    assert set(pv["source"].unique()) == fleets  # every configured PV fleet, nothing else
    assert pv["m20_health_index.health_index"].drop_nulls().is_between(0, 100).all()
    assert pv["m17_pv_anomaly.flag"].drop_nulls().len() > 0
    table = rep.pv_fleet()
    assert len(table) == pv.select("source", "device_id").n_unique() and table["health_index"].notna().all()
    rul = "m19_remaining_useful_life"
    assert inverters.height == 100 and set(inverters["source"]) == {"sim:m19_inverters"}
    assert ((inverters[f"{rul}.p10_days"] <= inverters[f"{rul}.median_days"])
            & (inverters[f"{rul}.median_days"] <= inverters[f"{rul}.p90_days"])).all()
    quality = rep.alert_quality()
    judged = set(quality["rule"]) if len(quality) else set()
    assert {"m17_pv_fault", "m20_pv_health", "m19_inverter_life"} <= judged


def test_smoke_pipeline_tracked_every_model(smoke_workspace):
    home, result = smoke_workspace
    c = tracking.client()
    assert tracking.tracking_uri() == f"sqlite:///{home}/mlruns/workspaces/smoke/mlflow.db"
    runs = {r["model_id"]: r for s in result.steps for r in s.runs if r.get("registrable", True)}
    assert set(runs) == set(MODELS)
    for model_id, rec in runs.items():
        run = c.get_run(rec["run_id"])
        assert run.info.status == "FINISHED"
        assert run.info.artifact_uri.startswith(f"file://{home}/mlruns/workspaces/smoke/artifacts/")
        primary = run.data.tags["gridtwin.primary_metric"]
        for key in (f"model/{primary}", f"baseline/{primary}", f"skill/{primary}", "beats_baseline",
                    "ci/model/low", "ci/model/high", "bootstrap/n_blocks", "bootstrap/n_test", "gate_passed"):
            assert key in run.data.metrics, (model_id, key)
        assert run.data.tags["gridtwin.strongest_baseline"] and run.data.tags["gridtwin.bootstrap_block"]
        assert run.data.params["seed"] == "7"
        assert run.data.tags["gridtwin.data_digest"] == run.data.params["data_digest"]
        notebook = {a.path for a in c.list_artifacts(rec["run_id"], "notebook")}
        assert any(p.endswith(".ipynb") for p in notebook) and any(p.endswith(".html") for p in notebook)
        figures = [a.path for a in c.list_artifacts(rec["run_id"], "figures")]
        assert any(p.endswith(".html") for p in figures), model_id

        name = f"gridtwin.{model_id}"
        version = c.get_model_version(name, rec["registered_version"])
        info = __import__("mlflow").models.get_model_info(f"models:/{name}/{version.version}")
        assert info.signature is not None and info.signature.inputs is not None
        champ = tracking.champion_version(name, c)
        if rec["gate_passed"]:
            assert champ is not None and str(champ.version) == str(version.version)
        else:
            assert champ is None, f"{model_id} became champion without passing the gate"
        serving = tracking.serving_version(name, c)
        assert str(serving.version) == str(version.version)
        assert serving.tags["gridtwin.serves"] == ("model" if rec["gate_passed"] else f"baseline:{rec['strongest_baseline']}")
    board = tracking.leaderboard(c)
    assert set(board["model_id"]) == set(MODELS)


def test_every_notebook_ran_every_cell_without_an_error(smoke_home):
    """Every notebook is a step of the smoke pipeline, and the copy Papermill executed (kept in the run folder)
    ran every code cell in order with no error output: what ``pytest --nbval-lax`` checks, read from the run
    itself instead of executing the seven notebooks a second time."""
    import nbformat

    _, result = smoke_home
    smoke = pipeline.load("smoke")
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert sorted(step.notebook.name for step in smoke.order()) == notebooks, "every notebook is in the smoke pipeline"
    for name in notebooks:
        path = Path(result.out_dir) / name
        executed = nbformat.read(path, as_version=4)
        counts = [c.get("execution_count") for c in executed.cells if c.cell_type == "code" and c.source.strip()]
        assert counts and None not in counts and counts == sorted(counts), f"{name}: cells not all executed in order: {counts}"
        assert pipeline._notebook_error(path) is None, f"{name}: {pipeline._notebook_error(path)}"
        assert not [c for c in executed.cells if "papermill-error-cell-tag" in c.get("metadata", {}).get("tags", [])], name


def test_figures_of_the_registered_runs_are_exported_by_name(smoke_workspace, tmp_path):
    from gridtwin_lib.errors import InputError
    from gridtwin_lib.tracking import export_figures

    (written,) = export_figures(tmp_path, ["m19_survival_curve"])
    assert written.parent == tmp_path and written.stem == "m19_survival_curve" and written.stat().st_size > 1000
    with pytest.raises(InputError, match="no registered run has the figure.*available: .*m18_skill_by_hour"):
        export_figures(tmp_path, ["no_such_figure"])
