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
import os
import sys

#: one thread per library in each worker: Spark runs one task per core (``spark.task.cpus`` 1),
#: so a worker's own thread pools (Polars', OpenBLAS') would only contend with the other
#: tasks and the JVM for the same cores. Set beforehand to override.
SINGLE_THREADED = {"POLARS_MAX_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


#: glibc's malloc returns every freed block of 128 KiB or more to the system (mmap and
#: munmap), so a worker computing one device-chunk after another page-faults every array
#: afresh, which is slow on a VM. Workers keep freed memory for reuse instead (bounded by one
#: chunk's working set), inherited over the fork.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's largest
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def _keep_freed_memory() -> None:
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError):  # not glibc: leave the allocator as it is
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(MMAP_THRESHOLD_BYTES))
        libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(TRIM_THRESHOLD_BYTES))


def preload() -> None:
    """Import what every task imports (the feature and scoring jobs and their dependencies)."""
    for name, value in SINGLE_THREADED.items():
        os.environ.setdefault(name, value)
    _keep_freed_memory()
    with contextlib.redirect_stdout(sys.stderr):
        import numpy  # noqa: F401
        import polars  # noqa: F401
        import pyarrow  # noqa: F401

        from . import features_kernels, spark_features, spark_scoring  # noqa: F401


if __name__ == "__main__":
    preload()
    from pyspark.daemon import manager

    manager()
