"""The configuration folder (conf/): the same parameters reach the same builders and estimators
as before the move, and a bad file is one clear line naming the file and the key.

``tests/data/config/snapshot_before_conf.json`` was written from the code *before* the
configuration moved out of it (registry defaults + the pipelines' overrides, the datasets'
SIMULATIONS dicts, config.SITES, the day plan's PV plant and tariff, the daily report's meter
clock); every value is compared as canonical JSON, so an int that became a float, a reordered
run or a lost key fails.
"""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gridtwin_lib import config, settings
from gridtwin_lib.errors import InputError
from gridtwin_lib.models import registry

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = json.loads((ROOT / "tests" / "data" / "config" / "snapshot_before_conf.json").read_text())


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=list)


@pytest.fixture
def conf(tmp_path, monkeypatch):
    """A copy of conf/ that the library reads (GRIDTWIN_CONF), to break on purpose."""
    folder = tmp_path / "conf"
    shutil.copytree(ROOT / "conf" / "base", folder / "base")
    monkeypatch.setenv(settings.ENV, str(folder))
    settings.reload()
    yield folder
    settings.reload()


def test_the_repository_conf_is_found():
    assert settings.conf_dir() == ROOT / "conf"


@pytest.mark.parametrize("size", registry.SIZES)
def test_every_model_resolves_the_parameters_and_runs_of_before(size):
    catalogue = [e for e in registry.entries() if e.id in SNAPSHOT["models"]]
    assert {e.id for e in catalogue} == set(SNAPSHOT["models"])  # no catalogue model lost
    for entry in catalogue:
        before = SNAPSHOT["models"][entry.id][size]
        assert entry.configuration() is not None, entry.id  # read from conf/, not from code
        assert canonical(entry.parameters(size)) == canonical(before["parameters"]), entry.id
        assert canonical(entry.simulation_runs(size)) == canonical(before["simulations"]), entry.id
    # the runs of the snapshot's models (a model added since, e.g. m18, brings runs of its own)
    before = tuple(m for m in registry.ids() if m in SNAPSHOT["models"])
    assert canonical(registry.simulations(size, before)) == canonical(SNAPSHOT["simulations"][size])


def test_sites_plant_tariff_and_meter_clock_are_those_of_before():
    sites = {name: {k: getattr(s, k) for k in s.__dataclass_fields__} for name, s in config.SITES.items()}
    assert canonical(sites) == canonical(SNAPSHOT["sites"])
    assert SNAPSHOT["source_sites"] == config.SOURCE_SITES and config.default_site().name == SNAPSHOT["default_site"]
    from gridtwin_lib.datasets.energy import power_flow_optimization as pfo

    assert canonical(pfo.PV_AT_SCEAUX) == canonical(SNAPSHOT["pv_plant_of_uci"])
    t = settings.tariff()
    got = {"price_offpeak": t.offpeak, "price_shoulder": t.shoulder, "price_peak": t.peak,
           "peak_hours": list(t.peak_hours), "offpeak_hours": list(t.offpeak_hours)}
    assert canonical(got) == canonical(SNAPSHOT["tariff"])
    for source, key in (("uci", "uci"), ("sim:m09_meter_feeder", "other")):
        p = settings.source_profile(source)
        assert canonical({"utc_offset_h": p.utc_offset_h, "site": p.site}) == canonical(SNAPSHOT["meter_clock"][key])


def test_the_day_plan_builder_takes_the_configured_tariff(conf):
    """Prices left None come from tariffs.yaml: change the file, the builder's prices follow."""
    from gridtwin_lib.datasets.energy import power_flow_optimization as pfo

    sig = inspect.signature(pfo.power_flow_optimization).parameters
    assert all(sig[k].default is None for k in ("price_offpeak", "price_shoulder", "price_peak", "peak_hours", "offpeak_hours"))
    (conf / "local").mkdir()
    (conf / "local" / "tariffs.yaml").write_text("tariffs:\n  time_of_use: {peak: 0.5}\n")
    settings.reload()
    t = settings.tariff()
    assert (t.offpeak, t.shoulder, t.peak, t.peak_hours) == (0.16, 0.22, 0.5, (17, 21))  # local merged over base


@pytest.mark.parametrize("size", registry.SIZES)
def test_every_configured_parameter_goes_somewhere(size):
    for entry in registry.entries():
        cls, builder = entry.estimator_class(), entry.dataset_builder()
        accepted = set(inspect.signature(cls).parameters) | set(inspect.signature(builder).parameters)
        prefixes = tuple(p for p in (entry.dataset_prefix, *(v.prefix for v in entry.variants)) if p)
        for name in entry.parameters(size):
            assert name in accepted or (prefixes and name.startswith(prefixes)), (entry.id, name)


def test_local_overrides_change_one_model_and_size(conf):
    (conf / "local" / "models" / "maintenance").mkdir(parents=True)
    (conf / "local" / "models" / "maintenance" / "power_quality_index.yaml").write_text("sizes:\n  smoke: {epochs: 7}\n")
    settings.reload()
    entry = next(e for e in registry.entries() if (e.module, e.spec_name) == ("maintenance", "power_quality_index"))
    assert entry.parameters("smoke")["epochs"] == 7
    assert entry.parameters("full")["epochs"] == SNAPSHOT["models"][entry.id]["full"]["parameters"]["epochs"]


@pytest.mark.parametrize(("file", "text", "message"), [
    ("sites.yaml", "default_site: au_sydney\nsites: {}\nother_sources: {utc_offset_h: 10}\nsitez: {}\n", r"sites\.yaml.*unknown key sites\.yaml\.sitez"),
    ("sites.yaml", None, r"base/sites\.yaml: no such file"),
    ("tariffs.yaml", "default: time_of_use\ntariffs:\n  time_of_use: {offpeak: cheap, shoulder: 0.2, peak: 0.3, peak_hours: [17, 21], offpeak_hours: [23, 7]}\n",
     r"tariffs\.yaml: tariffs\.time_of_use\.offpeak must be a number, got str 'cheap'"),
    ("models/maintenance/power_quality_index.yaml", "parameters: {epochs: 10}\nsizes:\n  smoke: {epoch: 5}\n",
     r"power_quality_index\.yaml: sizes\.smoke\.epoch changes no parameter"),
    ("models/maintenance/power_quality_index.yaml", "parameters: {epochs: 10}\nsimulations:\n  full:\n    - {scenario: mixed, seed: one}\n",
     r"power_quality_index\.yaml: simulations\.full\[0\]\.seed must be an integer"),
    ("models/maintenance/power_quality_index.yaml", "parameters: {epochs: 10}\nsimulations:\n  full:\n    - {scenario: mixed, start: 'next week'}\n",
     r"power_quality_index\.yaml: simulations\.full\[0\]\.start 'next week' is not an ISO 8601 date"),
    ("models/maintenance/power_quality_index.yaml", "parameters: {epochs: 10}\nsimulation: {}\n",
     r"power_quality_index\.yaml: unknown key power_quality_index\.simulation"),
])
def test_a_bad_file_is_one_line_naming_file_and_key(conf, file, text, message):
    path = conf / "base" / file
    if text is None:
        path.unlink()
    else:
        path.write_text(text)
    settings.reload()
    entry = next(e for e in registry.entries() if (e.module, e.spec_name) == ("maintenance", "power_quality_index"))
    with pytest.raises(InputError, match=message) as err:
        settings.sites(), settings.tariff(), entry.parameters("smoke"), entry.simulation_runs("full")
    assert "\n" not in str(err.value)


def test_a_run_start_may_be_a_yaml_date_or_iso_text(conf):
    """``start: 2024-11-04`` (YAML reads a date) and ``start: '2024-11-04T06:00+00:00'`` both reach the simulator as ISO text."""
    path = conf / "base" / "models" / "maintenance" / "power_quality_index.yaml"
    path.write_text("parameters: {epochs: 10}\nsimulations:\n  full:\n    - {scenario: mixed, start: 2024-11-04}\n"
                    "    - {scenario: mixed, start: '2024-11-04T06:00+00:00', source: 'sim:b'}\n")
    settings.reload()
    entry = next(e for e in registry.entries() if (e.module, e.spec_name) == ("maintenance", "power_quality_index"))
    assert [r["start"] for r in entry.simulation_runs("full")] == ["2024-11-04", "2024-11-04T06:00+00:00"]


def test_misspelt_files_are_refused_not_ignored(conf, tmp_path, monkeypatch):
    (conf / "base" / "models" / "energy" / "load_forcast.yaml").write_text("parameters: {}\n")
    with pytest.raises(InputError, match=r"load_forcast\.yaml: no registered model is energy/load_forcast"):
        registry.check_configuration()
    (conf / "base" / "models" / "energy" / "load_forcast.yaml").unlink()
    (conf / "local").mkdir()
    (conf / "local" / "tarifs.yaml").write_text("default: x\n")
    with pytest.raises(InputError, match=r"local/tarifs\.yaml: no .*base/tarifs\.yaml to override"):
        registry.check_configuration()
    monkeypatch.setenv(settings.ENV, str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match=r"GRIDTWIN_CONF=.*nowhere: no .* folder"):
        settings.conf_dir()


def test_the_cli_stops_on_a_bad_conf_with_one_line(conf, tmp_path):
    """A pipeline checks the configuration before anything runs: one line, exit status 2."""
    (conf / "base" / "models" / "decision" / "load_balancing.yaml").write_text("parameters: {test_days: 4}\nsizes: {huge: {}}\n")
    env = {"GRIDTWIN_CONF": str(conf), "GRIDTWIN_HOME": str(tmp_path / "home"), "PATH": str(Path(sys.executable).parent)}
    shutil.copytree(ROOT / "pipelines", tmp_path / "home" / "pipelines")
    shutil.copytree(ROOT / "notebooks", tmp_path / "home" / "notebooks", ignore=shutil.ignore_patterns("dashboards"))
    done = subprocess.run([sys.executable, "-m", "gridtwin_lib.cli", "pipeline", "run", "smoke", "--dry-run"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "load_balancing.yaml: unknown key sizes.huge" in lines[0], done.stderr
