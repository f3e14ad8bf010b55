"""The machine and the library versions a benchmark ran with (helpers in ``cxrlib.io``)."""
from __future__ import annotations

import os
import platform

from cxrlib import io

PACKAGES = ("cxrlib", "tensorflow", "keras", "numpy", "pandas", "scikit-learn", "scipy",
            "pillow", "psutil")


def machine_info() -> dict:
    """CPU model, cores, memory, OS and the load when the benchmark started."""
    import psutil

    return {
        "cpu_model": io.cpu_model(),
        "instruction_set": io.instruction_set(),
        "architecture": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": io.usable_cpus(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "load_average_start": io.load_average(),
    }


def versions() -> dict:
    """Python and the versions of the libraries that matter for speed."""
    return {"python": platform.python_version(), **io.versions(PACKAGES)}
