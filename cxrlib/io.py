"""Floor 1: writing files atomically, and JSON conversion.

Every writer goes to a temporary name beside the target (with the process id, so parallel
writers never share one) and renames it into place, so a reader never sees half a file.
A run folder holds ``metrics.json`` (written last by ``write_run``: its presence means the
run finished), ``predictions.csv``, ``history.csv``, figures and ``model/``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from cxrlib.machine import Timer  # noqa: F401  (chapters time their steps with io.Timer)

# --------------------------------------------------------------------------- writing
def partial_path(path: str | Path) -> Path:
    """A temporary name beside ``path`` that keeps its suffix (``.x.123.partial.png``)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{''.join(path.suffixes[-1:])}")


def write_bytes(path: str | Path, payload: bytes) -> Path:
    """Write bytes atomically (temporary name, then rename); folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    partial.write_bytes(payload)
    os.replace(partial, path)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically; folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    partial.write_text(text)
    os.replace(partial, path)
    return path


def to_jsonable(value: Any) -> Any:
    """NumPy and pandas scalars/arrays to plain JSON types (NaN becomes null)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if value is pd.NA:
        return None
    return value


def write_json(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write JSON atomically (NumPy and pandas values converted, NaN as null)."""
    return write_text(path, json.dumps(to_jsonable(payload), indent=2) + "\n")


def read_json(path: str | Path, missing: Any = None) -> Any:
    """The JSON in ``path``, or ``missing`` when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else missing


def write_csv(path: str | Path, table: pd.DataFrame) -> Path:
    """Write a table as CSV atomically (no index column)."""
    return write_text(path, table.to_csv(index=False))


def write_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write one array as ``.npy`` atomically (no pickles)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    with open(partial, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(partial, path)
    return path


def save_arrays(path: str | Path, **arrays: np.ndarray) -> Path:
    """Save named arrays as one ``.npz`` file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    with open(partial, "wb") as handle:
        np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(partial, path)
    return path


def save_figure(figure: Any, path: str | Path, dpi: int = 120) -> Path:
    """Write a Matplotlib figure as PNG atomically (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    figure.savefig(partial, dpi=dpi, bbox_inches="tight")
    os.replace(partial, path)
    return path


def write_run(out_dir: str | Path, metrics: Mapping[str, Any],
              tables: Mapping[str, pd.DataFrame] | None = None,
              figures: Mapping[str, Any] | None = None) -> Path:
    """Write a run's tables (``<name>.csv``) and figures (``figures/<name>.png``), then
    ``metrics.json`` last: a folder with ``metrics.json`` is a finished run."""
    out = Path(out_dir)
    for name, table in (tables or {}).items():
        write_csv(out / f"{name}.csv", table)
    for name, figure in (figures or {}).items():
        save_figure(figure, out / "figures" / f"{name}.png")
    return write_json(out / "metrics.json", metrics)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
