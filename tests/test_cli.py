"""The `gridtwin` command: help, JSON output, one-line errors with exit status 2, nothing partial written."""

from __future__ import annotations

import json
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


