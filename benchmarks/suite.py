"""``python -m benchmarks``: how fast the reproduction runs on this machine.

Each section is the module of its name (``run(settings, data_dir, work_dir, log=)``)
and a key of the JSON, written after every section (a stopped run keeps what it
measured); ``benchmarks.render`` turns it into tables. ``--update FILE`` measures only
the chosen sections and keeps the file's others.
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks import REPO, shown
from cxrlib import machine
from cxrlib.names import BACKBONES

SECTIONS = ("extraction", "cached_vs_naive", "patients", "trainers", "paper_detector", "whole")
DEFAULT_SECTIONS = SECTIONS[:-1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_DATA = REPO / "data" / "sample"
DEFAULT_OUT = Path("results/benchmarks/results.json")
FULL = {"backbones": list(BACKBONES), "image_size": 224, "images": 64, "repeats": 3,
        "naive_epochs": 3, "cached_epochs": 60, "scaling_backbone": "resnet50",
        "factors": [1, 2, 4], "max_patients": None, "paper_steps": 3, "trainings": 4,
        "seeds": 10, "epochs": 60, "batch_size": 32}
"""Settings of a full run (``seeds`` x ``epochs``: the reproduction the cached and naive
designs are projected to)."""
QUICK = {**FULL, "backbones": ["alexnet"], "image_size": 64, "images": 16, "repeats": 1,
         "naive_epochs": 2, "cached_epochs": 3, "scaling_backbone": "alexnet",
         "factors": [1, 2], "max_patients": 12, "paper_steps": 1, "trainings": 1}
"""Settings of ``--quick``: a smoke test of seconds, not meaningful figures."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--data-dir", type=Path, help="default: ../shared/data if present, else data/sample")
    add("--out", type=Path, help=f"JSON file (default {DEFAULT_OUT}, or the --update file)")
    add("--update", type=Path, metavar="JSON", help="measure the chosen sections into it")
    add("--quick", action="store_true", help="tiny settings for a smoke test")
    add("--only", nargs="+", choices=SECTIONS, help="run these sections only")
    add("--backbones", nargs="+", choices=list(BACKBONES), help="default: all four")
    add("--image-size", type=int, help="default 224 (quick: 64)")
    add("--repeats", type=int, help="repetitions of every figure (default 3)")
    add("--whole-profile", default="paper", help="`cxr batch` profile of the whole section")
    add("--whole-arg", action="append", default=[], metavar="ARG", dest="whole_args",
        help="extra argument for `cxr batch` (repeatable)")
    add("--whole-cache", help="a feature cache a batch filled: warm run only")
    add("--work-dir", type=Path, help="where temporary caches and copies go")
    return parser


def resolve(args: argparse.Namespace) -> dict:
    """Settings: the options given, else the quick or full defaults."""
    settings = {key: value if getattr(args, key, None) is None else getattr(args, key)
                for key, value in (QUICK if args.quick else FULL).items()}
    return {**settings, "quick": args.quick, "sections": list(args.only or DEFAULT_SECTIONS),
            "whole_profile": args.whole_profile, "whole_args": args.whole_args,
            "whole_cache": args.whole_cache}


def resolve_data(given: Path | None) -> tuple[Path, str]:
    """(data folder, what it is): the given one, the shared real data, or the sample."""
    from cxrlib.sample import MARKER_NAME, write_sample_data

    folder = given or (SHARED_DATA if (SHARED_DATA / "covid-chestxray-dataset").is_dir()
                       else SAMPLE_DATA)
    if folder == SAMPLE_DATA and not (folder / "covid-chestxray-dataset").is_dir():
        write_sample_data(SAMPLE_DATA)
    if not (folder / "covid-chestxray-dataset" / "metadata.csv").is_file():
        raise SystemExit(f"--data-dir {folder}: no covid-chestxray-dataset/metadata.csv")
    return folder, ("synthetic sample data" if (folder / MARKER_NAME).is_file()
                    else "real images")


def log(message: str, clock: float = time.perf_counter()) -> None:
    print(f"[{time.perf_counter() - clock:7.1f} s] {message}", file=sys.stderr, flush=True)


def measure(name: str, function) -> dict:
    """One section's block: its figures, or its error (one broken section must not lose
    the others), and how long it took."""
    log(f"{name} ...")
    start = time.perf_counter()
    try:
        block = {"status": "ok", **function(log)}
    except Exception as err:  # noqa: BLE001
        traceback.print_exc()
        block = {"status": f"failed: {type(err).__name__}: {err}"}
    return {**block, "section_s": time.perf_counter() - start,
            "load_average_end": machine.load_average()}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.render import write_markdown
    from cxrlib.io import write_json

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    settings = resolve(args)
    data_dir, kind = resolve_data(args.data_dir)
    out = args.out or args.update or DEFAULT_OUT
    result = json.loads(args.update.read_text()) if args.update else {"benchmark": "cxr-repro"}
    result.update({"started": machine.now(), "settings": settings,
                   "command": " ".join(["python -m benchmarks", shlex.join(argv)]).strip(),
                   "data": {"shown": shown(data_dir), "kind": kind},
                   "machine": {"cpu_model": machine.cpu_model(),
                               "instruction_set": machine.instruction_set(),
                               "usable_cores": machine.usable_cpus(),
                               "memory_gb": machine.memory_gb(),
                               "load_average_start": machine.load_average()},
                   "versions": {"python": platform.python_version(), **machine.versions()}})
    work = Path(tempfile.mkdtemp(prefix="cxr-bench-", dir=args.work_dir))
    log(f"data: {shown(data_dir)} ({kind}); work folder: {work}")
    try:
        for name in settings["sections"]:
            module = importlib.import_module(f"benchmarks.{name}")  # run(settings, ...)
            result[name] = measure(name, lambda log: module.run(settings, data_dir, work,
                                                                 log=log))
            write_json(out, result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {out} and {write_markdown(result, out.with_suffix('.md'))}")
    failed = [n for n in settings["sections"] if result[n]["status"] != "ok"]
    if failed:
        log(f"failed section(s): {', '.join(failed)}")
    return 1 if failed else 0
