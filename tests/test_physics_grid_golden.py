"""The grid twin's output is bit-identical to the output recorded before ``_GridRun._block`` was cut into steps.

The digests below were computed on the untouched code (commit 0a361c2) with :func:`digest`; any change to
the twin's numbers, event log or hidden state, however small, changes a digest. If the physics is changed
on purpose, recompute them with ``python tests/test_physics_grid_golden.py`` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import sys

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

GOLDEN = {
    "freq_step": "f2ab20cd41b6c8fb97baa36eb037eac87dc3131d27bdfbe02892746cfb63a02b",
    "mixed_10s": "d911294939c32665edc62bfe87e14c1e6ac6fd6f593e4789192d9d19d81e9832",
    "mixed_1s": "95b6a6e1b2e2852e390b4fabc51d0a511b27a0c12d4493ca0fd01dde13b729e1",
    "overcurrent": "1be2c79b8d757ae454472e6251de016270c6f99d51236d789c26be8c67e1dc3c",
    "peak_load": "d7a6be74b55e428bc29c4ee7f94135f6137a0a5491188404a0ed0729b927f0df",
    "renewables": "d7d146f6370c9ada221942eed543763f8da0bae4507af1fe1f3835a05c1692dd",
    "uci_households": "a8a80f617dd113e0ce2acc840ec31b829e04c19af3e80318e8948e4fb5bd5bb9",
    "unbalance_high_resistance_conductor": "e2a85e49c1e39ea6dfbeb916f4e6db946495fa828b68d3f081234440f87b93e1",
    "unbalance_open_conductor": "76070873d3f034a9b1100705d53d638eefdabfa3bb0d2ee1f5bb6cfadbbade24",
    "unbalance_single_phase_overload_b": "cfd80458c92c1fbb37bd07ab41ff7b1743bca8cf994ea42846d0101d80910897",
    "unbalance_unbalanced_pv": "6f4bd7706f15e4d5550bb5ac9cf5b98191606de99a1115bd05b257013999f52f",
}


def _column_bytes(s: pl.Series) -> bytes:
    if s.dtype == pl.String or s.dtype == pl.Categorical:
        return "\x1f".join("\x00" if v is None else v for v in s.cast(pl.String).to_list()).encode()
    if isinstance(s.dtype, pl.Datetime):
        s = s.dt.epoch("us")
    null = s.is_null().to_numpy().tobytes()
    return null + np.ascontiguousarray(s.fill_null(0).to_numpy()).tobytes()


def digest(case: str) -> str:
    """SHA-256 over every frame's column names, dtypes and values of one case."""
    scenario, duration, resolution, seed, devices, overrides = CASES[case]
    out = simulate(scenario, duration=duration, resolution=resolution, seed=seed, devices=devices, overrides=overrides)
    h = hashlib.sha256()
    for group in (out.measurements, out.truth):
        for name in sorted(group):
            df = group[name]
            h.update(f"{name}:{df.height}".encode())
            for col in df.columns:
                h.update(f"{col}:{df[col].dtype}".encode())
                h.update(_column_bytes(df[col]))
    return h.hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_grid_twin_output_is_bit_identical_to_the_recorded_digest(case):
    assert digest(case) == GOLDEN[case]


if __name__ == "__main__":  # print the digests to paste into GOLDEN
    for c in sorted(CASES) if len(sys.argv) < 2 else sys.argv[1:]:
        print(f'    "{c}": "{digest(c)}",')
