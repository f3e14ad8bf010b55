"""Floor 1: facts about the machine a run executes on, and a wall-clock timer.

A run's ``metrics.json`` records ``environment()``: float kernels differ between vector
instruction sets and thread counts, so the same seed gives identical metrics only on the
same ``instruction_set`` with the same ``intra_op_threads`` (``tests/test_machine.py``).
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

#: Libraries whose versions a run's ``metrics.json`` records.
VERSIONED_PACKAGES = ("cxrlib", "tensorflow", "keras", "numpy", "pandas", "scikit-learn",
                      "scipy", "pillow", "papermill")


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
