"""Floor 1: keep TensorFlow's harmless native start-up lines off the terminal.

TensorFlow's C++ code writes to the process's file descriptor 2, below Python's
``sys.stderr``: on a machine without a GPU it reports its CUDA probe failing, before its
own log level applies. ``cxrlib`` installs ``quiet_tensorflow_import`` when it is
imported, so the lines are dropped however a chapter runs (``cxr``, papermill, a Jupyter
console, a script): TensorFlow's import and its device probe run with descriptor 2 held
aside, and every line that is not a known harmless one is written back afterwards.
``quiet_native_stderr`` filters a whole command the same way (``cxr`` uses it for the
kernels it starts). ``tests/test_quiet.py`` checks both.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

#: Lines that kernels and TensorFlow's C++ code print to the process's stderr although
#: nothing is wrong: CUDA probes on machines without a GPU, a tf.data attribute newer than
#: the runtime, the kernel's interrupt at shutdown, and start-up notices.
HARMLESS_STDERR = (
    "failed call to cuInit", "Could not find cuda drivers", "cudart_stub.cc", "cuda_dnn.cc",
    "cuda_fft.cc", "cuda_blas.cc", "computation placer already registered",
    "oneDNN custom operations are on", "cpu_feature_guard.cc",
    "To enable the following instructions", "All log messages before absl::InitializeLog",
    "use_unbounded_threadpool", "KeyboardInterrupt caught in kernel",
    "Kernel is running over TCP without encryption",
)


@contextmanager
def quiet_native_stderr(harmless: tuple[str, ...] = HARMLESS_STDERR) -> Iterator[None]:
    """Drop known-harmless lines written to file descriptor 2 by native code and by child
    processes (notebook kernels); every other line still reaches the terminal. Python's own
    ``sys.stderr`` (progress bars, warnings) keeps writing to the terminal directly."""
    sys.stderr.flush()
    terminal = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    markers = [h.encode() for h in harmless]

    def pump() -> None:
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:
                if not any(m in line for m in markers):
                    os.write(terminal, line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(terminal, 2)  # closes the pipe's last writer in this process
        thread.join(timeout=5)
        os.close(terminal)


@contextmanager
def held_stderr(harmless: tuple[str, ...] = HARMLESS_STDERR) -> Iterator[None]:
    """Hold what is written to file descriptor 2 aside while the block runs, then write
    back every line that is not a known harmless one (in order, synchronously)."""
    sys.stderr.flush()
    saved = os.dup(2)
    markers = [h.encode() for h in harmless]
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held:
                if not any(m in line for m in markers):
                    os.write(2, line)


class _QuietLoader(importlib.abc.Loader):
    """TensorFlow's own loader, run with descriptor 2 held aside, then the GPU probe."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with held_stderr():
            self._loader.exec_module(module)
            try:  # the CUDA probe, which otherwise reports its failure at the first op
                module.config.list_physical_devices("GPU")
            except Exception:  # noqa: BLE001 - a TensorFlow without it: nothing to quiet
                pass

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the other finders do and wraps its loader."""

    def __init__(self) -> None:
        self._busy = False

    def find_spec(self, name, path, target=None):
        if name != "tensorflow" or self._busy:
            return None
        self._busy = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._busy = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_import() -> None:
    """Set TensorFlow's log level to warnings hidden (unless already set) and, if
    TensorFlow is not loaded yet, quiet its import (once per process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())
