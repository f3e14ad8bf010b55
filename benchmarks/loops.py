"""The newcomer's loops: ``make test`` and ``make reproduce`` on a fresh clone, timed.

The repository's committed ``HEAD`` is cloned into the work folder (with ``../shared``
linked beside it when the repository has one, as CI has it) and each target runs there
as a newcomer would run it after installation: the environment this benchmark runs in
stands for ``.venv`` (``make -o`` keeps make from reinstalling it) and the clone's code is
the one imported (``PYTHONPATH``). ``make reproduce`` also gets the time budget of its
batch (``budget.batch_budget``), and each target the CPU seconds of its processes by
recipe line and kind (``benchmarks.processes``), beside what importing TensorFlow costs a
fresh process, measured in the same run.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks import REPO
from benchmarks.processes import tensorflow_import_cost
from benchmarks.whole import run_measured, tail

TARGETS = ("test", "reproduce")
PYTEST_SUMMARY = re.compile(r"^=+ (?P<counts>.*?) in (?P<seconds>[0-9.]+)s")


def clone(work_dir: Path) -> tuple[Path, str]:
    """A fresh clone of the repository's HEAD under ``work_dir`` (and ``../shared``)."""
    target = Path(work_dir).resolve() / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=target, check=True,
                            capture_output=True, text=True).stdout.strip()
    shared = REPO.parent / "shared"
    if shared.is_dir() and not (target.parent / "shared").exists():
        (target.parent / "shared").symlink_to(shared)
    return target, commit


def pytest_phases(log_path: Path) -> list[dict]:
    """pytest's closing lines in a make log: what each pytest run counted, in seconds."""
    phases = []
    for line in Path(log_path).read_text(errors="replace").splitlines():
        match = PYTEST_SUMMARY.match(line.strip())
        if match:
            phases.append({"summary": match["counts"], "seconds": float(match["seconds"])})
    return phases


def run(work_dir: Path, log_dir: Path, targets=TARGETS, log=print) -> dict:
    """Time each make target on a fresh clone; the test target's pytest phases and the
    reproduce target's budget are kept beside the wall time."""
    from benchmarks import budget

    where, commit = clone(work_dir)
    venv = Path(sys.prefix)
    env = {**os.environ, "PYTHONPATH": str(where), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = {"commit": commit, "venv": "the benchmark's environment (make -o)",
              "matmul": budget.matmul_rate(), "tensorflow_import": tensorflow_import_cost(env=env),
              "targets": {}}
    log(f"importing TensorFlow and Keras: {result['tensorflow_import']['cpu_s']:.1f} CPU-s")
    for target in targets:
        command = ["make", "-o", str(venv / "bin" / "cxr"), target, f"VENV={venv}"]
        block = run_measured(command, env, Path(log_dir) / f"make-{target}.log", cwd=where)
        block["command"] = f"make {target}"
        if target == "test":
            block["pytest"] = pytest_phases(Path(block["log"]))
        if target == "reproduce":
            block["budget"] = budget.batch_budget(where / "results" / "sample")
            block["phases_s"] = budget.batch_phases(where / "results" / "sample")
            block["workers"] = budget.batch_workers(where / "results" / "sample")
        if block["exit_code"] != 0:
            block["error"] = tail(Path(block["log"]))
        log(f"make {target}: exit {block['exit_code']}, {block['wall_s']:.0f} s")
        result["targets"][target] = block
    failed = [t for t, b in result["targets"].items() if b["exit_code"] != 0]
    result["status"] = "ok" if not failed else f"failed: make {', '.join(failed)} (see log)"
    return result
