"""File I/O the library shares: one atomic write, one file lock, reading readings files.

* :func:`atomic_write`: write to a hidden temporary file beside the target, flush and fsync it,
  then ``os.replace`` it onto the target (and fsync the directory), so a reader sees the old
  file or the new one, never a part; on an error nothing is left behind. Several targets in
  one call appear together after all of them were written (each rename is atomic; a crash
  between two renames can leave the first replaced only).
* :func:`file_lock`: an exclusive advisory ``flock`` on a lock file, held for a ``with`` block
  (one writer at a time across processes).
* :func:`replace_symlink`: point a symlink at a new target atomically.
* :func:`read_frame`: a Parquet, CSV or NDJSON file as a polars frame, with one clear error.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from .errors import InputError


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file or a directory (its new entries and renames) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_parents(files: Iterable[Path], root: Path) -> None:
    """fsync every directory between ``files`` and ``root``, ``root`` included (new entries, renames)."""
    dirs: set[Path] = {root}
    for path in files:
        d = path.parent
        while d != root and root in d.parents and d not in dirs:
            dirs.add(d)
            d = d.parent
    for d in dirs:
        fsync_path(d)


@contextmanager
def atomic_write(*paths: str | os.PathLike, fsync: bool = True) -> Iterator[Path | list[Path]]:
    """Temporary paths to write ``paths`` through; they replace the targets when the block ends.

    Parameters
    ----------
    paths : the files to write (their directories must exist).
    fsync : flush each file and its directory to disk before and after the rename (durable
        against a power cut, not only a crash of this process).

    Yields
    ------
    The temporary path (one target) or the list of them (several), in the order of ``paths``;
    write the content there (any writer that takes a path: ``write_parquet``, ``write_text``...).

    Examples
    --------
    >>> with atomic_write(out) as tmp:          # doctest: +SKIP
    ...     frame.write_parquet(tmp)
    """
    if not paths:
        raise ValueError("atomic_write needs at least one path")
    targets = [Path(p) for p in paths]
    tmps = [_temporary_name(t) for t in targets]
    try:
        yield tmps[0] if len(tmps) == 1 else list(tmps)
        for tmp in tmps:
            if not tmp.exists():
                raise FileNotFoundError(f"{tmp}: nothing was written for {targets[tmps.index(tmp)]}")
            if fsync:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
        for tmp, target in zip(tmps, targets):
            os.replace(tmp, target)
        if fsync:
            for directory in dict.fromkeys(t.parent for t in targets):
                fsync_path(directory)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)


def _temporary_name(target: Path) -> Path:
    """A hidden name beside ``target`` that no other writer uses: the process id alone was not enough,
    since threads of one process (a pipeline's parallel notebooks) write the same file at once."""
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> Path:
    """``text`` written to ``path`` through :func:`atomic_write`; returns the path."""
    with atomic_write(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive advisory lock (``flock``) on ``path`` (created if missing) for the block."""
    lock = Path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield lock
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def replace_symlink(link: str | os.PathLike, target: str) -> None:
    """Make ``link`` a symlink to ``target`` (relative text kept as is) in one atomic rename."""
    link = Path(link)
    tmp = _temporary_name(link)
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target)
    tmp.replace(link)


#: readers of :func:`read_frame`, by file extension
READERS = {".parquet": pl.read_parquet, ".csv": lambda f: pl.read_csv(f, try_parse_dates=True),
           ".ndjson": pl.read_ndjson, ".jsonl": pl.read_ndjson}


def read_frame(path: str | os.PathLike, what: str = "rows", hint: str = "") -> pl.DataFrame:
    """A Parquet, CSV or NDJSON file (by extension) as a polars frame.

    Parameters
    ----------
    path : the file. what : what it should hold (for messages). hint : what to do for another layout.

    Raises
    ------
    InputError : one line naming the file and the problem (missing, unknown extension, unreadable, empty).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file; pass a Parquet, CSV or NDJSON file of {what}")
    reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise InputError(f"{p}: unknown extension {p.suffix!r}; use .parquet, .csv or .ndjson{hint}")
    try:
        df = reader(p)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise InputError(f"{p}: could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if df.height == 0:
        raise InputError(f"{p}: no rows")
    return df


__all__ = ["atomic_write", "write_text", "file_lock", "replace_symlink", "read_frame", "READERS"]
