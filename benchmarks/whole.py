"""What a whole grid costs here: ``cxr batch`` from an empty feature cache, then again
with the cache it filled, each into a fresh output folder (so no run is skipped as
finished). Beside the wall time, the batch's own split (features, runs, reports) and the
time budget of each kind of run (``benchmarks.budget``) say where the time went.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import REPO, shown

CXR = [sys.executable, "-m", "cxrlib.cli"]


def batch_command(profile: str, data_dir: Path, out: Path, cache: Path,
                  extra: list[str]) -> list[str]:
    """The ``cxr batch`` command line (no ImageNet weights: nothing is downloaded)."""
    return [*CXR, "batch", "--profile", profile, "--data-dir", str(data_dir), "--out", str(out),
            "--cache-dir", str(cache), "--quiet", "-p", "weights", "none", *extra]


def batch_counts(out: Path) -> dict:
    """What a finished ``cxr batch`` says of itself (``batch.json``) and the time budget
    of each kind of run; empty when it wrote no summary."""
    from benchmarks import budget

    try:
        record = json.loads((Path(out) / "batch.json").read_text())
    except (OSError, ValueError):
        return {}
    return {"run_counts": record.get("counts", {}), "workers": record.get("workers"),
            "phases_s": budget.batch_phases(out), "budget": budget.batch_budget(out)}


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def run(profile: str, data_dir: str | Path, work_dir: Path, extra: list[str] | None = None,
        cache_dir: Path | None = None, log=print) -> dict:
    """Cold and warm ``cxr batch`` runs; with ``cache_dir`` (a cache an earlier batch
    filled) only the warm one."""
    data_dir = Path(data_dir).resolve()
    cache = Path(cache_dir).resolve() if cache_dir else Path(work_dir).resolve() / "whole-cache"
    result = {"profile": profile, "data_dir_shown": shown(data_dir), "weights": "none",
              "selection": list(extra or []), "runs": {}}
    for mode in (("warm",) if cache_dir else ("cold", "warm")):
        out = Path(work_dir).resolve() / f"whole-out-{mode}"
        command = batch_command(profile, data_dir, out, cache, extra or [])
        log_path = Path(work_dir) / f"whole-{mode}.log"
        start = time.perf_counter()
        with open(log_path, "w") as handle:
            code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                                  env=os.environ.copy(), check=False).returncode
        block = {"wall_s": time.perf_counter() - start, "exit_code": code,
                 "command": f"cxr batch --profile {profile} --data-dir {shown(data_dir)} "
                            + " ".join(["-p weights none", *(extra or [])]),
                 **batch_counts(out)}
        if code != 0:
            block["error"] = tail(log_path)
        log(f"whole {profile} {mode}: exit {code}, {block['wall_s']:.0f} s")
        result["runs"][mode] = block
        if code != 0:
            break  # a warm run needs the cache a successful cold run leaves
    failed = [m for m, b in result["runs"].items() if b["exit_code"] != 0]
    result["status"] = "ok" if not failed else f"failed: {', '.join(failed)} (see its error)"
    return result
