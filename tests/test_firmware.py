"""ESP8266 firmware: its portable C++ logic, built and run on the host with g++.

The sketch itself (firmware/src/main.cpp) needs PlatformIO's ESP8266 toolchain, which this
machine and CI do not have; everything it delegates to (firmware/lib/gridtwin_core) is
compiled here with warnings as errors and sanitizers, and its unit tests and outage
simulation run. The payloads it prints must be accepted by the workbench's own reader.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gridtwin_lib.ingest.firmware import parse_payload_lines

FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
CORE = FIRMWARE / "lib" / "gridtwin_core" / "src"
HOST_TESTS = FIRMWARE / "test" / "host"
CXX = shutil.which("g++")
# The flags the firmware's logic must pass; -fno-exceptions/-fno-rtti as on the ESP8266 build.
CXXFLAGS = [
    "-std=c++17", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wconversion", "-Wsign-conversion",
    "-fno-exceptions", "-fno-rtti", f"-I{CORE}", f"-I{HOST_TESTS}",
]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
# Headers the portable core may include: C headers only (all picolibc has for the ESP8266), nothing Arduino.
STANDARD_HEADERS = {"math.h", "stddef.h", "stdint.h"}

pytestmark = pytest.mark.skipif(CXX is None, reason="g++ not found: the firmware host tests need a C++17 compiler")


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kwargs)


def _sanitizers_work(tmp: Path) -> bool:
    probe = tmp / "probe.cpp"
    probe.write_text("int main() { return 0; }\n")
    return _run([CXX, *SANITIZE, str(probe), "-o", str(tmp / "probe")]).returncode == 0


@pytest.fixture(scope="module")
def host_tests(tmp_path_factory) -> Path:
    """The host test binary: each test file compiled in parallel (2 cores), then linked."""
    out = tmp_path_factory.mktemp("firmware_host")
    flags = [*CXXFLAGS, "-O0", "-g", *(SANITIZE if _sanitizers_work(out) else [])]
    sources = sorted(HOST_TESTS.glob("*.cpp"))

    def compile_one(src: Path) -> tuple[Path, subprocess.CompletedProcess]:
        obj = out / f"{src.stem}.o"
        return obj, _run([CXX, *flags, "-c", str(src), "-o", str(obj)])

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(compile_one, sources))
    errors = [proc.stderr for _, proc in results if proc.returncode != 0]
    assert not errors, "\n".join(errors)
    binary = out / "gridtwin_host_tests"
    link = _run([CXX, *flags, *(str(obj) for obj, _ in results), "-o", str(binary)])
    assert link.returncode == 0, link.stderr
    return binary


def test_host_unit_tests_pass(host_tests):
    proc = _run([str(host_tests)])
    summary = proc.stdout.strip().splitlines()[-1]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed, failed = map(int, re.fullmatch(r"(\d+) passed, (\d+) failed", summary).groups())
    assert failed == 0 and passed >= 30, summary


def _elements(body: str) -> list[str]:
    """A body's readings as their verbatim text: the body itself, or each element of a batch array."""
    json.loads(body)  # strict JSON as a whole: no NaN, no trailing comma
    if not body.startswith("["):
        return [body]
    decoder, texts, at = json.JSONDecoder(), [], 1
    while body[at] != "]":
        _, end = decoder.raw_decode(body, at)
        texts.append(body[at:end])
        at = end + (body[end] == ",")
    return texts


def _payload_lines(host_tests) -> list[str]:
    proc = _run([str(host_tests), "--payloads"])
    assert proc.returncode == 0, proc.stderr
    return [text for body in proc.stdout.splitlines() for text in _elements(body)]


def test_payloads_are_accepted_by_the_python_reader(host_tests):
    lines = _payload_lines(host_tests)
    objects = [json.loads(line) for line in lines]
    raw, rejects = parse_payload_lines(lines, "host-build")
    # a name with quotes and a backslash: the firmware escapes it (JSON decoding gives it back intact), and the reader
    # refuses it as a device name, as the collector's device registry does (schema.DEVICE_NAME)
    assert objects[3]["device_id"] == 'bench "B"\\1'
    assert rejects.select("device_id", "rule").rows() == [('bench "B"\\1', "hard.payload_parseable")]
    assert raw.height == 6  # 3 single readings + a batch of 3
    values = ["voltage", "current", "power", "energy", "frequency", "pf"]
    rows = raw.select("device_id", "seq", "ts", *values).rows()
    ts0 = datetime(2024, 11, 22, 18, 26, 40, tzinfo=UTC)  # 1732300000
    assert rows[0] == ("esp8266-3c71bf", 1234, ts0, "229.8", "0.412", "88.1", "12.345", "50.0", "0.93")
    assert rows[1][:2] == ("esp8266-3c71bf", 1235) and rows[1][3:] == (None,) * 6  # NaN -> null, not 0
    assert rows[2][1] == 1236 and rows[2][7] is None and rows[2][3] == "229.8"
    assert [r[1] for r in rows[3:]] == [0, 1, 2]  # the batch, oldest first
    assert [r[3] for r in rows[3:]] == ["231.0", "232.0", "233.0"]
    assert [r[6] for r in rows[3:]] == ["1.0", "2.0", "3.0"]  # kWh, last energy of each period
    assert '"energy":1.000,' in raw["payload"][3]  # as the firmware wrote it: 1 Wh resolution
    assert [o["sensor_error"] for o in objects] == [False, True, True, False, False, False, False]
    assert {o["boot"] for o in objects[4:]} == {9}
    assert [o["age_ms"] for o in objects[4:]] == [20000, 10000, 0]


def test_core_headers_are_self_contained_and_include_nothing_arduino(tmp_path):
    """Each portable header compiles alone with plain g++ and includes only standard headers or its siblings."""
    headers = sorted((CORE / "gridtwin").glob("*.h"))
    assert len(headers) >= 10
    siblings = {h.name for h in headers}

    def check(header: Path) -> str | None:
        for include in re.findall(r'^\s*#\s*include\s+([<"][^>"]+[>"])', header.read_text(), re.M):
            name = include[1:-1]
            allowed = name in STANDARD_HEADERS if include[0] == "<" else name in siblings
            if not allowed:
                return f"{header.name} includes {include}"
        tu = tmp_path / f"{header.stem}.cpp"
        tu.write_text(f'#include "gridtwin/{header.name}"\n')
        proc = _run([CXX, *CXXFLAGS, "-fsyntax-only", str(tu)])
        return None if proc.returncode == 0 else f"{header.name} alone: {proc.stderr}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        problems = [p for p in pool.map(check, headers) if p]
    assert not problems, "\n".join(problems)


def _footprint_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gridtwin_footprint", FIRMWARE / "footprint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_core_compiles_for_the_esp8266_cpu_and_fits_its_ram(tmp_path):
    """The portable core (HTTP and MQTT uplinks included) built by Debian's Xtensa LX106 gcc with
    picolibc, warnings as errors; its static RAM stays well inside the ESP8266's ~80 KiB DRAM."""
    import os

    footprint = _footprint_module()
    why = footprint.toolchain_missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    obj = footprint.compile_core(tmp_path, readings=256)
    sizes = footprint.footprint(obj)
    assert sizes["bss_bytes"] >= 256 * 40  # the node's queue: 256 readings of 40 bytes, statically allocated
    assert sizes["ram_bytes"] <= 32 * 1024 and 0 < sizes["flash_bytes"] <= 64 * 1024, sizes
    symbols = _run(["xtensa-lx106-elf-nm", "--defined-only", str(obj)]).stdout
    assert all(name in symbols for name in ("gt_send", "gt_sample", "gt_page")), symbols
