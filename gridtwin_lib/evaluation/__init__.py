"""Uncertainty of evaluation figures: paired block bootstrap of a model, its baselines and their differences.

============  ===============================================================================
module        what it holds
============  ===============================================================================
bootstrap     block draws (one B × n_blocks count matrix), vectorised replicates of the common
              metrics (sums over rows by one matrix product; weighted ROC-AUC / average
              precision), the generic fallback (``evaluate`` on resampled blocks), percentile
              intervals, :class:`Uncertainty` and the champion gate's decision in words
============  ===============================================================================

Pure NumPy: imports no model, tracking or MLflow code (it sits in the layer of ``physics``).
"""

from __future__ import annotations

from .bootstrap import (
    BLOCK_KINDS,
    Interval,
    Uncertainty,
    block_counts,
    block_ids,
    bootstrap,
    fast_replicates,
    gate_decision,
    percentile_interval,
    resample_rows,
)

__all__ = ["BLOCK_KINDS", "Interval", "Uncertainty", "block_counts", "block_ids", "bootstrap", "fast_replicates",
           "gate_decision", "percentile_interval", "resample_rows"]
