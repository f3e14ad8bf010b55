"""Floor 1: writing files atomically, JSON conversion, the machine and a timer.

Every writer goes to a temporary name beside the target (with the process id, so parallel
writers never share one) and renames it into place, so a reader never sees half a file.
A run folder holds ``metrics.json`` (written last by ``write_run``: its presence means the
run finished), ``predictions.csv``, ``history.csv``, figures and ``model/``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

#: Libraries whose versions a run's ``metrics.json`` records.
VERSIONED_PACKAGES = ("cxrlib", "tensorflow", "keras", "numpy", "pandas", "scikit-learn",
                      "scipy", "pillow", "papermill")


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


# --------------------------------------------------------------------------- the machine
def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                return value.strip()
    if platform.system() == "Darwin":
        import subprocess

        done = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                              capture_output=True, text=True, check=False)
        if done.stdout.strip():
            return done.stdout.strip()
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def intra_op_threads() -> int:
    """The number of intra-op threads TensorFlow uses (or will use) in this process: the
    count set with ``tf.config.threading`` if TensorFlow is loaded and one was set, else
    ``TF_NUM_INTRAOP_THREADS``, else TensorFlow's default, the CPUs this process may run
    on. Needs no TensorFlow import."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        configured = tf.config.threading.get_intra_op_parallelism_threads()
        if configured > 0:
            return configured
    from_env = os.environ.get("TF_NUM_INTRAOP_THREADS", "").strip()
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return usable_cpus()


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def memory_gb() -> float:
    """Physical memory in GiB, one decimal."""
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3, 1)


def versions(packages: tuple[str, ...] = VERSIONED_PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (None when it is not installed)."""
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


SIMD_LEVELS = ("avx512f", "avx2", "avx", "sse4_2")  # best first


def instruction_set(cpuinfo: str | None = None) -> str:
    """The widest vector instruction set the CPU offers ("avx512f", "avx2", ...), read
    from /proc/cpuinfo; "unknown" elsewhere. Float kernels differ between them, so the
    same seed gives identical metrics only on the same instruction set."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.startswith("flags")), [])
    return next((level for level in SIMD_LEVELS if level in flags), "unknown")


def environment() -> dict[str, Any]:
    """Machine and library versions, for a run's ``metrics.json``: runs compare bit for bit
    only on the same ``instruction_set`` with the same ``intra_op_threads``."""
    return {"python": platform.python_version(), "platform": platform.platform(),
            "processor": cpu_model(), "instruction_set": instruction_set(),
            "cpu_count": os.cpu_count(), "intra_op_threads": intra_op_threads(),
            "memory_gb": memory_gb(), "versions": versions()}


def now() -> str:
    """The current local time, ISO 8601 with the UTC offset, to the second."""
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


class Timer:
    """Wall-clock timings by name: ``with timer("extract"): ...``; ``timer.seconds``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str) -> "Timer":
        self._name = name
        return self

    def __enter__(self) -> "Timer":
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds[self._name] = round(time.perf_counter() - self._start, 3)
