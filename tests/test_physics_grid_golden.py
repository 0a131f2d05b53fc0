"""The grid twin's output equals the output recorded before ``_GridRun._block`` was cut into steps.

The twin's outputs for each case are recorded in ``tests/data/grid_golden.json``: per frame its rows and, per
column, exact digests of text, integers and times, and for floats the nulls, sum, sum of squares, minimum and
maximum. Any change to the twin's numbers, event log or hidden state beyond the last bits changes them. If the
physics is changed on purpose, record them again with ``python tests/test_physics_grid_golden.py`` and say why
in the commit.

Why not byte digests (as first written, commit 0a361c2): numpy's vectorised math rounds the last bit
differently on CPUs with other SIMD units. A fresh machine with AVX-512 (AMD EPYC) gave other digests for
all 11 cases with the twin's code and every library version unchanged (``constraints.txt``), so floats are
compared to a relative 1e-9. Recorded on 2026-12-04 from the twin's code unchanged since fca1e7b.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gridtwin_lib.simulate import simulate

#: (scenario, duration, resolution, seed, devices, overrides): together they reach every branch of the block
#: (trend, clouds, motor starts, sags, stalls, faults, harmonics, trips, drifts, load step, each unbalance cause,
#: several devices, blocks that end mid-day)
CASES = {
    "mixed_10s": ("mixed", "2d", "10s", 7, 2, {}),
    "mixed_1s": ("mixed", "3h", "1s", 8, 1, {"faults_per_h": 1.0, "harmonics_per_h": 2.0}),
    "peak_load": ("peak_load", "30h", "60s", 1, 1, {}),
    "renewables": ("renewable_intermittency", "1d", "5s", 2, 1, {}),
    "freq_step": ("frequency_drift", "6h", "1s", 3, 1, {"load_step_pu": 0.05, "load_step_at_s": 1200.0}),
    "overcurrent": ("overcurrent", "12h", "1s", 4, 1, {}),
    **{f"unbalance_{c}": ("phase_unbalance", "2d", "60s", 5, 1, {"cause": c}) for c in (
        "single_phase_overload_b", "open_conductor", "high_resistance_conductor", "unbalanced_pv")},
    "uci_households": ("normal", "2h", "10s", 11, 1, {"load_profile": "uci", "customers": 30}),
}

GOLDEN_FILE = Path(__file__).parent / "data" / "grid_golden.json"
#: float statistics agree to this relative tolerance: numpy's vectorised math (exp, sin, sums) rounds the last
#: bit differently on CPUs with other SIMD units (AVX-512 or not), which byte digests could not survive
REL_TOL = 1e-9


def _column_summary(s: pl.Series) -> dict:
    """What a column holds, robust to last-bit rounding: exact for text, integers and times; for floats the nulls,
    non-finite count, sum, sum of squares, minimum and maximum (compared to :data:`REL_TOL`)."""
    if s.dtype == pl.String or s.dtype == pl.Categorical:
        text = "\x1f".join("\x00" if v is None else v for v in s.cast(pl.String).to_list())
        return {"dtype": str(s.dtype), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    if isinstance(s.dtype, pl.Datetime):
        s = s.dt.epoch("us")
    if s.dtype == pl.Boolean:
        s = s.cast(pl.Int64)
    if s.dtype.is_integer():
        values = s.drop_nulls().to_numpy()
        return {"dtype": str(s.dtype), "nulls": s.null_count(),
                "sha256": hashlib.sha256(np.ascontiguousarray(values, dtype=np.int64).tobytes()).hexdigest()}
    values = s.drop_nulls().to_numpy().astype(float)
    finite = values[np.isfinite(values)]
    return {"dtype": str(s.dtype), "nulls": s.null_count(), "non_finite": int(values.size - finite.size),
            "sum": float(finite.sum()), "sum_sq": float((finite * finite).sum()),
            "min": float(finite.min()) if finite.size else None, "max": float(finite.max()) if finite.size else None}


def summary(case: str) -> dict:
    """Every frame of one case: its rows and, per column, :func:`_column_summary`."""
    scenario, duration, resolution, seed, devices, overrides = CASES[case]
    out = simulate(scenario, duration=duration, resolution=resolution, seed=seed, devices=devices, overrides=overrides)
    return {f"{area}/{name}": {"rows": group[name].height, "columns": {c: _column_summary(group[name][c]) for c in group[name].columns}}
            for area, group in (("measurements", out.measurements), ("truth", out.truth)) for name in sorted(group)}


def _same(got, want, where: str) -> None:
    if isinstance(want, dict):
        assert set(got) == set(want), f"{where}: {sorted(set(got) ^ set(want))}"
        for k in want:
            _same(got[k], want[k], f"{where}/{k}")
    elif isinstance(want, float) and isinstance(got, float):
        assert math.isclose(got, want, rel_tol=REL_TOL, abs_tol=1e-12), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_grid_twin_output_equals_the_recorded_output(case):
    _same(summary(case), json.loads(GOLDEN_FILE.read_text())[case], case)


def _avx512() -> bool:
    from numpy._core._multiarray_umath import __cpu_features__

    return bool(__cpu_features__.get("X86_V4") and __cpu_features__.get("AVX512_ICL"))


@pytest.mark.skipif(not _avx512(), reason="the CPU has no AVX-512 whose numpy kernels could be switched off")
def test_the_recorded_output_holds_with_numpys_avx512_kernels_switched_off():
    """The same comparison in a process whose numpy dispatches no AVX-512 kernel (as on a CPU without it): the
    last bits differ there (the byte digests did), the recorded output still holds."""
    code = ("import json, sys; sys.path.insert(0, 'tests'); import test_physics_grid_golden as g; "
            "[g._same(g.summary(c), json.loads(g.GOLDEN_FILE.read_text())[c], c) for c in ('mixed_1s', 'peak_load')]")
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]


if __name__ == "__main__":  # record the outputs (all cases, or the ones named) into GOLDEN_FILE
    recorded = json.loads(GOLDEN_FILE.read_text()) if GOLDEN_FILE.exists() else {}
    for c in sorted(CASES) if len(sys.argv) < 2 else sys.argv[1:]:
        recorded[c] = summary(c)
    GOLDEN_FILE.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
