"""``python -m benchmarks``: how fast the reproduction runs on this machine.

Sections (each a JSON key; ``--only`` picks some):

- ``extraction``: ``extract_features`` against TensorFlow's bare ``predict_on_batch``;
- ``cached_vs_naive``: cached features + head against the end-to-end Keras model;
- ``patients``: one cached ProgNet run as the cohort grows 1x, 2x, 4x;
- ``trainers``: what ``training``'s compiled twins save per training;
- ``paper_detector``: the detector as published, extrapolated to the paper's grid;
- ``whole`` (only with ``--only whole``): ``cxr batch`` from a cold and a warm cache.

Writes the JSON after every section (a stopped run keeps what it measured) and renders
its tables (``benchmarks.render``) next to it. ``--update FILE`` measures only the chosen
sections and keeps the file's others.
"""
from __future__ import annotations

import argparse
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
from benchmarks.stats import SPREAD
from cxrlib import machine
from cxrlib.names import BACKBONES

SECTIONS = ("extraction", "cached_vs_naive", "patients", "trainers", "paper_detector", "whole")
DEFAULT_SECTIONS = SECTIONS[:-1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_DATA = REPO / "data" / "sample"
DEFAULT_OUT = Path("results/benchmarks/results.json")
FULL = {"backbones": list(BACKBONES), "image_size": 224, "images": 64, "repeats": 3,
        "naive_epochs": 3, "cached_epochs": None, "scaling_backbone": "resnet50",
        "factors": [1, 2, 4], "max_patients": None, "paper_steps": 3, "trainings": 4}
"""Defaults of a full run (``cached_epochs`` None: ``--epochs``)."""
QUICK = {"backbones": ["alexnet"], "image_size": 64, "images": 16, "repeats": 1,
         "naive_epochs": 2, "cached_epochs": 3, "scaling_backbone": "alexnet",
         "factors": [1, 2], "max_patients": 12, "paper_steps": 1, "trainings": 1}
"""Defaults of ``--quick``: a smoke test of seconds, not meaningful figures."""
OPTIONS = [  # (flag, type, help); the others are in build_parser
    ("--image-size", int, "default 224 (quick: 64)"),
    ("--images", int, "images per extraction figure (default 64)"),
    ("--repeats", int, "repetitions of every figure (default 3)"),
    ("--naive-epochs", int, "epochs the naive model trains (default 3)"),
    ("--cached-epochs", int, "epochs of the cached head (default: --epochs)"),
    ("--max-patients", int, "use at most this many patients of the cohort"),
    ("--paper-steps", int, "timed training steps of the paper's detector (default 3)"),
    ("--trainings", int, "trainings per mode of the trainers section (default 4)"),
]


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
    for flag, kind, text in OPTIONS:
        add(flag, type=kind, help=text)
    add("--batch-size", type=int, default=32, help="extraction batch size")
    add("--seeds", type=int, default=10, help="seeds of the projected reproduction")
    add("--epochs", type=int, default=60, help="epochs of the projected reproduction")
    add("--scaling-backbone", choices=list(BACKBONES), help="default resnet50")
    add("--factors", type=int, nargs="+", help="cohort repetitions (default 1 2 4)")
    add("--whole-profile", default="paper", help="`cxr batch` profile of the whole section")
    add("--whole-arg", action="append", default=[], metavar="ARG",
        help="extra argument for `cxr batch` (repeatable)")
    add("--whole-cache", type=Path, help="a feature cache a batch filled: warm run only")
    add("--work-dir", type=Path, help="where temporary caches and copies go")
    return parser


def resolve(args: argparse.Namespace) -> dict:
    """Settings: the options given, else the quick or full defaults."""
    defaults = QUICK if args.quick else FULL
    settings = {key: value if getattr(args, key) is None else getattr(args, key)
                for key, value in defaults.items()}
    settings["cached_epochs"] = settings["cached_epochs"] or args.epochs
    if settings["naive_epochs"] < 2:
        raise SystemExit("--naive-epochs must be at least 2 (the first epoch traces)")
    return {**settings, "seeds": args.seeds, "epochs": args.epochs, "quick": args.quick,
            "batch_size": args.batch_size, "sections": list(args.only or DEFAULT_SECTIONS)}


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


def machine_info() -> dict:
    """The CPU, its cores and memory, and the load when the benchmark started."""
    return {"cpu_model": machine.cpu_model(), "instruction_set": machine.instruction_set(),
            "usable_cores": machine.usable_cpus(), "memory_gb": machine.memory_gb(),
            "load_average_start": machine.load_average()}


def sections(settings: dict, data_dir: Path, work: Path, args: argparse.Namespace) -> dict:
    """Each section's function with its arguments (called with ``log=``)."""
    from benchmarks import (extraction, paper_detector, patients, prognet_cost, trainers,
                            whole)

    s = settings
    return {
        "extraction": lambda log: extraction.run(
            data_dir, s["backbones"], s["image_size"], s["images"], s["repeats"], work,
            s["batch_size"], log=log),
        "cached_vs_naive": lambda log: prognet_cost.run(
            data_dir, s["backbones"], s["image_size"], s["repeats"], s["naive_epochs"],
            s["cached_epochs"], s["seeds"], s["epochs"], work, s["batch_size"],
            s["max_patients"], log=log),
        "patients": lambda log: patients.run(
            data_dir, s["scaling_backbone"], s["image_size"], s["factors"], s["repeats"],
            s["cached_epochs"], work, s["batch_size"], s["max_patients"], log=log),
        "trainers": lambda log: trainers.run(epochs=s["cached_epochs"],
                                             trainings=s["trainings"], log=log),
        "paper_detector": lambda log: paper_detector.run(
            s["image_size"], s["batch_size"], s["paper_steps"], log=log),
        "whole": lambda log: whole.run(args.whole_profile, data_dir, work, args.whole_arg,
                                       args.whole_cache, log=log),
    }


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
    result.update({"started": machine.now(), "spread": SPREAD, "settings": settings,
                   "command": " ".join(["python -m benchmarks", shlex.join(argv)]).strip(),
                   "data": {"shown": shown(data_dir), "kind": kind},
                   "machine": machine_info(),
                   "versions": {"python": platform.python_version(), **machine.versions()}})
    work = Path(tempfile.mkdtemp(prefix="cxr-bench-", dir=args.work_dir))
    log(f"data: {shown(data_dir)} ({kind}); work folder: {work}")
    try:
        for name, function in sections(settings, data_dir, work, args).items():
            if name in settings["sections"]:
                result[name] = measure(name, function)
                write_json(out, result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {out} and {write_markdown(result, out.with_suffix('.md'))}")
    failed = [n for n in settings["sections"] if result[n]["status"] != "ok"]
    if failed:
        log(f"failed section(s): {', '.join(failed)}")
    return 1 if failed else 0
