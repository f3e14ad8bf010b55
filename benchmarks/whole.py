"""What a whole grid costs here: ``cxr batch`` from an empty feature cache, then again with
the cache it filled, each into a fresh output folder (so no run is skipped as finished),
with the batch's own split of its time and each kind of run's (``benchmarks.budget``).
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import REPO, shown

CXR = [sys.executable, "-m", "cxrlib.cli"]


def batch_counts(out: Path) -> dict:
    """What a finished ``cxr batch`` says of itself (``batch.json``) and the time budget
    of each kind of run; empty when it wrote no summary."""
    from benchmarks import budget

    try:
        record = json.loads((Path(out) / "batch.json").read_text())
    except (OSError, ValueError):
        return {}
    return {"run_counts": record.get("counts", {}), "workers": record.get("workers"),
            "phases_s": {**record.get("phases_s", {}), "batch_s": record.get("seconds")},
            "budget": budget.batch_budget(out)}


def run(settings: dict, data_dir: str | Path, work_dir: Path, log=print) -> dict:
    """Cold and warm ``cxr batch`` runs; with ``settings["whole_cache"]`` (a cache an
    earlier batch filled) only the warm one."""
    profile, extra = settings["whole_profile"], settings["whole_args"]
    cache_dir = settings["whole_cache"]
    data_dir = Path(data_dir).resolve()
    cache = Path(cache_dir).resolve() if cache_dir else Path(work_dir).resolve() / "whole-cache"
    result = {"profile": profile, "data_dir_shown": shown(data_dir), "weights": "none",
              "selection": extra, "runs": {}}
    for mode in (("warm",) if cache_dir else ("cold", "warm")):
        out = Path(work_dir).resolve() / f"whole-out-{mode}"
        command = [*CXR, "batch", "--profile", profile, "--data-dir", str(data_dir), "--out",
                   str(out), "--cache-dir", str(cache), "--quiet", "-p", "weights", "none",
                   *extra]  # no ImageNet weights: nothing is downloaded
        log_path = Path(work_dir) / f"whole-{mode}.log"
        start = time.perf_counter()
        with open(log_path, "w") as handle:
            code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                                  check=False).returncode
        block = {"wall_s": time.perf_counter() - start, "exit_code": code,
                 "command": f"cxr batch --profile {profile} --data-dir {shown(data_dir)} "
                            + " ".join(["-p weights none", *extra]),
                 **batch_counts(out)}
        if code != 0:
            block["error"] = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        log(f"whole {profile} {mode}: exit {code}, {block['wall_s']:.0f} s")
        result["runs"][mode] = block
        if code != 0:
            break  # a warm run needs the cache a successful cold run leaves
    failed = [m for m, b in result["runs"].items() if b["exit_code"] != 0]
    result["status"] = "ok" if not failed else f"failed: {', '.join(failed)} (see its error)"
    return result
