"""The PySpark worker daemon with the library imported once, before it forks the Python workers.

Spark starts one daemon per executor (``python -m <spark.python.daemon.module>``) and forks
a Python worker from it for each task slot (and again when an idle worker was stopped).
With the stock ``pyspark.daemon`` every worker imports Polars, NumPy, scikit-learn and this
library itself: profiling ``tests/benchmarks/bench_spark.py`` with py-spy on the workers
showed two thirds of their time in imports on the loaded 2-core build machine. This daemon
imports them first, so each forked worker starts with them in memory (copy-on-write).
:func:`gridtwin_lib.spark_features.session` selects it (``spark.python.daemon.module``).

Nothing is *run* before the fork: Polars' thread pool must start in the worker, not in the
daemon (a pool started before ``fork`` would leave the child with locks held by threads it
does not have). Nothing may be printed on stdout either: the daemon reports its port there.
"""

from __future__ import annotations

import contextlib
import sys


def preload() -> None:
    """Import what every task imports (the feature and scoring jobs and their dependencies)."""
    with contextlib.redirect_stdout(sys.stderr):
        import numpy  # noqa: F401
        import polars  # noqa: F401
        import pyarrow  # noqa: F401

        from . import features_kernels, spark_features, spark_scoring  # noqa: F401


if __name__ == "__main__":
    preload()
    from pyspark.daemon import manager

    manager()
