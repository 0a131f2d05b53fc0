"""The `gridtwin` command: help, JSON output, one-line errors with exit status 2, nothing partial written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridtwin_lib.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def _parquet_files(root: Path) -> list[Path]:
    return list(root.rglob("*.parquet")) if root.exists() else []


@pytest.mark.parametrize("command", [[], ["ingest"], ["ingest", "file"], ["features"], ["simulate"], ["store", "sql"], ["pipeline", "run"]])
def test_help_explains_every_command(command):
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_features_list_json_is_the_catalog():
    result = run("features", "--list", "--json")
    assert result.exit_code == 0
    catalog = json.loads(result.output)
    assert len(catalog) >= 80
    assert {"name", "unit", "formula", "window", "group"} <= set(catalog[0])


def test_ingest_file_with_maps_and_json(tmp_path, three_phase_sample):
    store = tmp_path / "store"
    maps = [
        "--map", "v_a=Ua_kV:kV", "--map", "v_b=Ub_kV:kV", "--map", "v_c=Uc_kV:kV",
        "--map", "i_a=Ia_A:A", "--map", "frequency=freq_Hz:Hz",
    ]
    result = run("ingest", "file", str(three_phase_sample), *maps, "--device-column", "meter_id",
                 "--store", str(store), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["read"] == summary["accepted"] + summary["rejected"] == 41
    assert summary["written"] > 0 and _parquet_files(store / "measurements")
    sql = run("store", "sql", "SELECT count(*) AS n FROM three_phase", "--store", str(store), "--json")
    assert json.loads(sql.output) == [{"n": summary["written"]}]


@pytest.mark.parametrize(
    "args, message",
    [
        (["ingest", "file", "/no/such/file.csv", "--map", "v_a=x"], "file not found"),
        (["ingest", "file", "{sample}", "--map", "v_a=NoSuchColumn:V"], "is not in the input"),
        (["ingest", "file", "{sample}", "--map", "v_a=Ua_kV:A"], "is not a unit of voltage"),
        (["ingest", "file", "{sample}", "--map", "volts=Ua_kV:V"], "is not a field of kind"),
        (["ingest", "file", "{sample}"], "give a mapping"),
        (["ingest", "file", "{sample}", "--map", "v_a=Ua_kV:kV", "--timezone", "Mars/Base"], "unknown timezone"),
        (["simulate", "--scenario", "no_such_scenario"], "unknown scenario"),
        (["simulate", "--scenario", "normal", "--duration", "0"], "duration must be > 0"),
        (["simulate", "--scenario", "normal", "--set", "source_r_ohm=-1"], "source_r_ohm"),
        (["simulate", "--scenario", "normal", "--set", "power_factor=1.2"], "power_factor"),
        (["simulate", "--scenario", "normal", "--set", "no_such_param=1"], "unknown parameter"),
        (["simulate", "--scenario", "normal", "--source", "meter-7"], "must start with 'sim:'"),
        (["features", "--kind", "three_phase"], "no three_phase measurements"),
        (["store", "sql", "SELECT * FROM no_such_table"], "SQL failed"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, three_phase_sample, args, message):
    store = tmp_path / "store"
    args = [a.replace("{sample}", str(three_phase_sample)) for a in args]
    result = run(*args, "--store", str(store))
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not _parquet_files(store)


def test_simulate_writes_measurements_and_truth_apart(tmp_path):
    store = tmp_path / "store"
    result = run("simulate", "--scenario", "voltage_sag", "--duration", "2h", "--seed", "3", "--store", str(store), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["rows"]["three_phase"] == 7200 and summary["truth_rows"]
    assert _parquet_files(store / "measurements") and _parquet_files(store / "truth")
    listing = run("simulate", "--list", "--json")
    scenarios = {s["name"]: s for s in json.loads(listing.output)}
    assert {"normal", "peak_load", "voltage_sag", "overcurrent", "frequency_drift", "renewable_intermittency", "fault"} <= set(scenarios)
    assert all("range" in p and "unit" in p for p in scenarios["normal"]["params"].values())


# ----------------------------------------------------------------- output for people (issue 18)
def _lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def _simulated_store(tmp_path, sources: int) -> Path:
    """A store with ``sources`` short simulated sources (more than a table repr would show)."""
    store = tmp_path / "store"
    for k in range(sources):
        result = run("simulate", "--scenario", "normal", "--duration", "2m", "--seed", str(k), "--source", f"sim:run_{k:02d}",
                     "--store", str(store))
        assert result.exit_code == 0, result.output
    return store


def test_store_summary_is_a_table_with_a_header_and_every_source(tmp_path):
    store = _simulated_store(tmp_path, 12)
    result = run("store", "summary", "--store", str(store))
    assert result.exit_code == 0, result.output
    lines = _lines(result)
    header = next(line for line in lines if "source" in line and "rows" in line)
    assert "first reading" in header and "devices" in header
    assert all(any(f"sim:run_{k:02d}" in line for line in lines) for k in range(12)), result.output
    assert "shape:" not in result.output and "…" not in result.output and "datetime[" not in result.output
    assert "+00:00" not in result.output and "UTC" in result.output
    doc = json.loads(run("store", "summary", "--store", str(store), "--json").output)
    assert sorted(m["source"] for m in doc["measurements"]) == [f"sim:run_{k:02d}" for k in range(12)]


def test_store_sql_prints_a_table_not_a_repr(tmp_path):
    store = _simulated_store(tmp_path, 1)
    result = run("store", "sql", "SELECT source, count(*) AS n FROM three_phase GROUP BY 1", "--store", str(store))
    assert result.exit_code == 0, result.output
    assert "shape:" not in result.output and "| source" in result.output and "| 120" in result.output.replace(" |", "|")


def test_simulate_list_honours_the_scenario_filter():
    result = run("simulate", "--list", "--scenario", "mixed")
    assert result.exit_code == 0, result.output
    heads = [line for line in result.output.splitlines() if line and not line.startswith(" ")]
    assert len(heads) == 1 and heads[0].startswith("mixed "), result.output
    listed = json.loads(run("simulate", "--list", "--scenario", "mixed", "--json").output)
    assert [s["name"] for s in listed] == ["mixed"]
    bad = run("simulate", "--list", "--scenario", "no_such")
    assert bad.exit_code == 2 and "unknown scenario 'no_such'" in bad.output


def test_version_prints_the_package_version():
    from importlib.metadata import version

    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"gridtwin {version('gridtwin')}"


@pytest.mark.parametrize("command", [[], ["simulate"], ["store", "summary"], ["score"], ["collect"], ["dashboards"],
                                     ["models", "list"]])
def test_help_has_no_type_labels_on_flags_and_keeps_bracketed_text(command):
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert not re.search(r"\s\.(\s|$)", result.output), result.output  # a bracketed note eaten by markup left " ."
    if command == ["simulate"]:
        assert "[default 2025-01-06]" in " ".join(result.output.split())


def test_models_list_has_a_header_and_counts_versions_in_words(monkeypatch):
    import pandas as pd

    from gridtwin_lib import tracking
    from gridtwin_lib.cli import versions_text

    board = pd.DataFrame([{"model_id": "m01_voltage_anomaly", "primary_metric": "event_f1", "model": 0.8, "baseline_value": 0.2,
                           "skill": 0.6, "champion_version": 1, "n_versions": 1, "serving_text": "m01: the model serves"},
                          {"model_id": "m02_harmonic_analysis", "primary_metric": "macro_f1", "model": 0.9, "baseline_value": 0.6,
                           "skill": 0.3, "champion_version": None, "n_versions": 3,
                           "serving_text": "m02: the rules serve; the forest did not beat them"}])
    monkeypatch.setattr(tracking, "leaderboard", lambda: board)
    result = run("models", "list")
    assert result.exit_code == 0, result.output
    lines = _lines(result)
    assert lines[0].split("|")[1].strip() == "model" and "champion" in lines[0] and "versions" in lines[0]
    assert "what serves" in lines[0] and any("the rules serve" in line for line in lines)
    m01 = next(line for line in lines if "m01_voltage_anomaly" in line)
    assert "| 1 version " in m01 and "versions" not in m01
    assert "3 versions" in next(line for line in lines if "m02_harmonic_analysis" in line)
    # pandas holds the champion column as floats with NaN for none: people read v1 and none, not v1.0 and vnan
    assert board["champion_version"].dtype == float
    assert "| v1 " in m01 and "| none " in next(line for line in lines if "m02_harmonic_analysis" in line)
    assert "v1.0" not in result.output and "vnan" not in result.output
    assert any("m03_frequency_stability" in line and "not trained yet" in line for line in lines)
    assert versions_text(1) == "1 version" and versions_text(2) == "2 versions"


def test_score_summary_prints_lines_not_python_dicts():
    from gridtwin_lib.cli_common import pairs_text

    assert pairs_text({"ok": 1200, "partial": 3}) == "ok 1,200, partial 3"
    assert pairs_text({}) == "none"
