"""Benchmarks of the reproduction: ``python -m benchmarks`` (see ``benchmarks/README.md``);
timing code lives here, never in ``tests/`` (tests only check the output's structure)."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
"""The repository root (``benchmarks/`` is not installed: run from a clone)."""


def free_models() -> None:
    """Drop the Keras models built so far, before the next backbone is built."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def shown(path: str | Path) -> str:
    """A path given on the command line as the results show it (``cxrlib.paths.shown_path``:
    relative in or beside the repository, else ``.../`` and its last two names)."""
    from cxrlib.paths import shown_path

    return shown_path(Path(path).resolve())
