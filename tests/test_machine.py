"""The machine facts a run records, and the timer."""
from __future__ import annotations

import os

import numpy as np

from cxrlib import machine


def test_environment_names_the_machine_and_libraries():
    info = machine.environment()
    assert info["cpu_count"] == os.cpu_count() and info["memory_gb"] > 0
    assert set(info["versions"]) == set(machine.VERSIONED_PACKAGES)
    assert info["versions"]["numpy"] == np.__version__


def test_intra_op_threads_reads_the_setting_then_the_cpus(monkeypatch):
    """What TensorFlow will use, without importing it: ``TF_NUM_INTRAOP_THREADS`` when it
    is a positive count, else one thread per CPU this process may run on."""
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "5")
    assert machine.intra_op_threads() == 5
    assert machine.environment()["intra_op_threads"] == 5
    for unset in ("", "0", "two"):
        monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", unset)
        assert machine.intra_op_threads() == machine.usable_cpus()
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert machine.intra_op_threads() == machine.usable_cpus()


def test_timer_records_each_named_block():
    timer = machine.Timer()
    with timer("a"):
        pass
    with timer("b"):
        pass
    assert list(timer.seconds) == ["a", "b"] and all(v >= 0 for v in timer.seconds.values())


def test_instruction_set_is_the_widest_flag() -> None:
    assert machine.instruction_set("flags\t: fpu sse4_2 avx avx2 fma\n") == "avx2"
    assert machine.instruction_set("flags\t: sse4_2 avx2 avx512f\n") == "avx512f"
    assert machine.instruction_set("processor\t: 0\n") == "unknown"
    assert machine.environment()["instruction_set"] in (*machine.SIMD_LEVELS, "unknown")
