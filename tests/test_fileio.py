"""The one atomic-write helper (gridtwin_lib.fileio): whole files or nothing, also under threads."""

from __future__ import annotations

import threading

import pytest

from gridtwin_lib.fileio import atomic_write, write_text


def test_threads_of_one_process_writing_one_file_at_once_each_finish(tmp_path):
    """A pipeline's parallel notebooks are threads of one process writing the same report asset
    (plotly.min.js): a temporary name per process made one thread's rename take the other's file
    (FileNotFoundError in CI). All writers are held inside the block until every one has written."""
    errors, n = [], 4
    barrier = threading.Barrier(n)
    target = tmp_path / "plotly.min.js"

    def writer(k: int, path):
        try:
            with atomic_write(path, fsync=False) as tmp:
                tmp.write_text(f"writer {k}\n")
                barrier.wait(timeout=30)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k, target)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert target.read_text() in {f"writer {k}\n" for k in range(n)}  # one whole file, no mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plotly.min.js"]  # no temporary left


def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = write_text(tmp_path / "report.html", "old é\n", fsync=False)
    with pytest.raises(RuntimeError), atomic_write(path, fsync=False) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert path.read_text(encoding="utf-8") == "old é\n" and sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]
