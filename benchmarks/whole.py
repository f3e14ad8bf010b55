"""The whole reproduction: wall time and peak memory of ``cxr batch``, cold and warm.

``cxr batch`` runs as a subprocess; its process tree (papermill kernels included) is
polled with psutil and the largest total resident memory seen is kept. "cold" starts from
an empty feature cache, "warm" reruns with the cache the cold run filled; each writes to
a fresh output folder so no run is skipped as already done.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import REPO, shown

CXR = [sys.executable, "-m", "cxrlib.cli"]
POLL_S = 0.2


def batch_help() -> str | None:
    """``cxr batch --help``, or None when the command is not usable."""
    done = subprocess.run([*CXR, "batch", "--help"], capture_output=True, text=True,
                          cwd=REPO, check=False)
    return done.stdout if done.returncode == 0 else None


def run_measured(command: list[str], env: dict, log_path: Path, cwd: Path = REPO) -> dict:
    """Run a command; its wall time, exit code, peak resident memory and the CPU seconds
    of its processes by phase and kind (``benchmarks.processes``), all polled."""
    import psutil

    from benchmarks.processes import Tree

    log_path.parent.mkdir(parents=True, exist_ok=True)
    peak_total = peak_single = 0
    start = time.perf_counter()
    with open(log_path, "w") as log:
        process = psutil.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        tree = Tree(process)
        while process.poll() is None:
            total, single = tree.poll()
            peak_total, peak_single = max(peak_total, total), max(peak_single, single)
            time.sleep(POLL_S)
        code = process.wait()
    return {"wall_s": time.perf_counter() - start, "exit_code": code,
            "peak_rss_mb": peak_total / 2**20, "peak_rss_single_process_mb": peak_single / 2**20,
            "processes": tree.summary(), "log": str(log_path)}


def batch_command(profile: str, data_dir: Path, out: Path, cache: Path, help_text: str,
                  extra: list[str]) -> list[str]:
    """The ``cxr batch`` command line (weights none, our own feature cache)."""
    command = [*CXR, "batch", "--profile", profile, "--data-dir", str(data_dir),
               "--out", str(out), "-p", "weights", "none"]
    if "--cache-dir" in help_text:
        command += ["--cache-dir", str(cache)]
    else:
        command += ["-p", "cache_dir", str(cache)]
    return command + list(extra)


def batch_counts(out: Path) -> dict:
    """What a finished ``cxr batch`` says of itself: run counts and workers (``batch.json``),
    the kernel seconds spent per kind of run (``batch_summary.csv``: ProgNet runs,
    detector runs, the report chapters), to show where a warm rerun's time goes, and the
    time budget of each kind of run (``budget.batch_budget``)."""
    import json

    import pandas as pd

    from benchmarks import budget

    try:
        summary = json.loads((Path(out) / "batch.json").read_text())
        runs = pd.read_csv(Path(out) / "batch_summary.csv")
    except (OSError, ValueError):
        return {}
    kind = runs["run"].str.split().str[0].where(
        runs["run"].str.match(r"(prognet|detector) "), "reports")
    seconds = runs.groupby(kind)["seconds"].agg(["count", "sum"])
    return {"run_counts": summary.get("counts", {}), "workers": summary.get("workers"),
            "batch_s": summary.get("seconds"), "phases_s": budget.batch_phases(out),
            "run_seconds_by_kind": {name: {"runs": int(row["count"]), "seconds": float(row["sum"])}
                                    for name, row in seconds.iterrows()},
            "budget": budget.batch_budget(out)}


def tail(path: Path, lines: int = 5) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def run(profile: str, data_dir: str | Path, work_dir: Path, log_dir: Path,
        extra: list[str] | None = None, log=print, cache_dir: Path | None = None,
        name: str = "whole") -> dict:
    """Cold and warm ``cxr batch`` runs, or a skipped status when the command is missing.
    With ``cache_dir`` (a feature cache an earlier batch filled) only the warm run is
    measured, reading that cache. ``name`` prefixes the output folders and logs."""
    help_text = batch_help()
    if help_text is None or "--data-dir" not in help_text:
        return {"status": "skipped: `cxr batch` is not available yet (its --help fails or "
                          "has no --data-dir)", "profile": profile}
    from benchmarks import budget

    data_dir = Path(data_dir).resolve()
    cache = Path(cache_dir).resolve() if cache_dir else Path(work_dir).resolve() / f"{name}-cache"
    env = {**os.environ, "CXR_CACHE_DIR": str(cache), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = {"profile": profile, "data_dir": str(data_dir), "data_dir_shown": shown(data_dir),
              "weights": "none", "matmul": budget.matmul_rate(), "selection": list(extra or []),
              "runs": {}}
    log(f"bare matmul: {result['matmul']['gflops']:.0f} GFLOP/s")
    for mode in (("warm",) if cache_dir else ("cold", "warm")):
        out = Path(work_dir).resolve() / f"{name}-out-{mode}"
        command = batch_command(profile, data_dir, out, cache, help_text, extra or [])
        block = run_measured(command, env, Path(log_dir) / f"{name}-{profile}-{mode}.log")
        block["command"] = " ".join(command[2:]).replace("cxrlib.cli", "cxr", 1)
        block.update(batch_counts(out))
        if block["exit_code"] != 0:
            block["error"] = tail(Path(block["log"]))
        log(f"whole {profile} {mode}: exit {block['exit_code']}, {block['wall_s']:.0f} s, "
            f"peak {block['peak_rss_mb']:.0f} MB")
        result["runs"][mode] = block
        if block["exit_code"] != 0:
            break  # a warm run needs the cache a successful cold run leaves
    failed = [m for m, b in result["runs"].items() if b["exit_code"] != 0]
    result["status"] = "ok" if not failed else f"failed: {', '.join(failed)} (see log)"
    return result
