"""Schemathesis against the collector's own OpenAPI schema, on a real uvicorn server.

Cases are generated from the schema (valid and, through Hypothesis, edge values of every
field); whatever they hold, the collector must answer without a 5xx, with its documented body,
and every 2xx must be a reading that is really stored. Bounded: a few dozen cases per
operation.
"""

from __future__ import annotations

import polars as pl
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from test_collect import Server, _start, _stop

from gridtwin_lib.collect.app import ENERGY_PATH, GRID_PATH, create_app
from gridtwin_lib.collect.devices import DeviceRegistry

schema = schemathesis.openapi.from_dict(create_app(compact_interval_s=3600).openapi())


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("fuzz")
    store_root, collector_dir = base / "store", base / "collector"
    registry = DeviceRegistry(collector_dir)
    keys = {"fuzz": registry.add("fuzz")}
    registry.close()
    proc, url = _start(store_root, collector_dir, "--rate", "0")  # no rate limit: every case reaches validation
    yield Server(url, store_root, collector_dir, proc, keys)
    _stop(proc)


ANSWERS = {"accepted", "stored", "duplicates", "rejected"}
acknowledged: list[int] = []


def _check(case, server: Server) -> None:
    response = case.call(base_url=server.url, headers={"X-API-Key": server.keys["fuzz"]}, timeout=30)
    assert response.status_code < 500, (case.body, response.text)
    if case.method == "POST" and case.path in (ENERGY_PATH, GRID_PATH):
        body = response.json()
        assert set(body) == ANSWERS, (response.status_code, case.path, case.headers, body)
        if response.status_code in (200, 207):
            acknowledged.append(body["stored"])


# One test function per operation: under pytest 9, schemathesis' items of one function share a node id, and
# pytest-xdist (make test) runs only one item per node id.
FUZZ = settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@schema.include(method="POST", path=ENERGY_PATH).parametrize()
@FUZZ
def test_firmware_cases_get_no_5xx_and_2xx_means_stored(case, fuzz_server):
    _check(case, fuzz_server)


@schema.include(method="POST", path=GRID_PATH).parametrize()
@FUZZ
def test_grid_cases_get_no_5xx_and_2xx_means_stored(case, fuzz_server):
    _check(case, fuzz_server)


@schema.include(method="GET", path="/health").parametrize()
@FUZZ
def test_health_cases_get_no_5xx(case, fuzz_server):
    _check(case, fuzz_server)


def test_the_cases_cover_every_operation_of_the_schema():
    """A new endpoint must get its own fuzz test above."""
    assert {r.ok().label for r in schema.get_all_operations()} == {
        f"POST {ENERGY_PATH}", f"POST {GRID_PATH}", "GET /health"}


def test_every_acknowledged_reading_is_in_the_store(fuzz_server):
    """Runs after the schema cases (file order): what was acknowledged as new is stored, nothing lost."""
    fuzz_server.compact()
    stored = sum(pl.scan_parquet(p).select(pl.len()).collect().item()
                 for p in (fuzz_server.store_root / "measurements").rglob("*.parquet")) if (fuzz_server.store_root / "measurements").exists() else 0
    assert stored == sum(acknowledged)
