"""Keras for the models that use it (the registry's Keras models): one lazy import, and models as bytes for pickling.

TensorFlow takes seconds to import, so it is imported only here and only when a Keras
model is fitted or loaded. Its C++ runtime writes start-up notices straight to file
descriptor 2 (absl, oneDNN), which end up in every notebook report; they are silenced for
the import only (a failing import still raises its Python exception).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def _quiet_fd2():
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_keras(threads: int = 2):
    """Keras with TensorFlow limited to ``threads`` CPU threads (settable only before TF starts)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        with _quiet_fd2():
            import tensorflow  # noqa: F401
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
    except RuntimeError:
        pass
    import keras

    return keras


def to_bytes(model) -> bytes:
    """A Keras model as the bytes of its ``.keras`` file."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.keras")
        model.save(path)
        with open(path, "rb") as fh:
            return fh.read()


def from_bytes(data: bytes, threads: int = 2):
    """The Keras model stored by :func:`to_bytes` (not compiled: inference only)."""
    keras = import_keras(threads)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.keras")
        with open(path, "wb") as fh:
            fh.write(data)
        return keras.saving.load_model(path, compile=False)
