"""``python -m benchmarks``: how fast the reproduction runs on this machine.

Sections (each JSON key is one section; ``--only`` picks some):

- ``extraction``: ``extract_features`` against the bare ``predict_on_batch`` per backbone;
- ``cached_vs_naive``: cached features + head against the end-to-end Keras model;
- ``scaling.threads``: extraction at 1, 2, ... threads (one subprocess each);
- ``scaling.patients``: one cached ProgNet run as the cohort grows 1x, 2x, 4x;
- ``paper_detector``: seconds per training step and per epoch of the detector paper's
  Table 2 base trained end to end, extrapolated to its 5-fold x 2-model grid;
- ``whole`` (with ``--whole`` or ``--only whole``): ``cxr batch`` from a cold and a warm
  cache, with the time budget of each kind of run and a bare matrix multiply's rate;
- ``loops`` (with ``--only loops``): ``make test`` and ``make reproduce`` on a fresh clone.

Writes ``benchmark.json`` (after every section, so a stopped run keeps what it measured)
and ``benchmark.md`` next to it; ``--readme README.md`` also updates the README's
performance section. ``--update FILE`` re-measures only the chosen sections of an existing
result and keeps the others (the long ``whole`` section is measured that way).
"""
from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks import REPO, shown
from benchmarks.machine import machine_info, versions
from benchmarks.stats import SPREAD
from cxrlib.io import load_average, now, usable_cpus
from cxrlib.names import BACKBONES

ALL_BACKBONES = list(BACKBONES)
SECTIONS = ("extraction", "cached_vs_naive", "threads", "patients", "paper_detector", "whole",
            "loops", "paper_budget")
SECTION_KEYS = {"extraction": ("extraction",), "cached_vs_naive": ("cached_vs_naive",),
                "threads": ("scaling", "threads"), "patients": ("scaling", "patients"),
                "paper_detector": ("paper_detector",), "whole": ("whole",),
                "loops": ("loops",), "paper_budget": ("paper_budget",)}
"""Where each section's block sits in the JSON."""
DEFAULT_SECTIONS = SECTIONS[:-3]
"""What a run measures without ``--only``; ``--whole`` adds the long ``whole`` section,
``--only loops`` the newcomer's make targets, ``--only paper_budget`` the time budget of a
subset of the paper profile's runs."""
PAPER_BUDGET_SUBSET = ["--seeds", "0", "1", "--folds", "0"]
"""The paper profile's runs the ``paper_budget`` section measures: every backbone and
both detector models, two seeds and one fold (each kind of run, in minutes not hours)."""
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_DATA = REPO / "data" / "sample"
DEFAULT_OUT = Path("results/benchmarks/benchmark.json")
SCHEMA_VERSION = 1

FULL = {"backbones": ALL_BACKBONES, "image_size": 224, "images": 64, "repeats": 3,
        "naive_epochs": 3, "cached_epochs": None, "scaling_backbone": "resnet50",
        "threads": None, "factors": [1, 2, 4], "max_patients": None, "paper_steps": 3}
"""Defaults of a full run (None: derived, see ``resolve``)."""
QUICK = {"backbones": ["alexnet"], "image_size": 64, "images": 16, "repeats": 1,
         "naive_epochs": 2, "cached_epochs": 3, "scaling_backbone": "alexnet",
         "threads": [1, 2], "factors": [1, 2], "max_patients": 12, "paper_steps": 1}
"""Defaults of ``--quick`` (a smoke test: seconds, not meaningful figures)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--data-dir", type=Path, help="data folder with covid-chestxray-dataset/ (default: "
        "../shared/data if present, else data/sample, generated if needed)")
    add("--out", type=Path, help=f"JSON file; the Markdown goes next to it (default: "
        f"{DEFAULT_OUT}, or the --update file)")
    add("--update", type=Path, metavar="JSON", help="start from this earlier result: "
        "measure only the chosen sections (--only, --whole), keep the others")
    add("--readme", type=Path, help="README whose performance section to replace")
    add("--quick", action="store_true", help="tiny settings for a smoke test")
    add("--only", nargs="+", choices=SECTIONS, help="run these sections only")
    add("--backbones", nargs="+", choices=ALL_BACKBONES, help="default: all four")
    add("--image-size", type=int, help="default 224 (quick: 64)")
    add("--images", type=int, help="images per extraction figure (default 64)")
    add("--repeats", type=int, help="repetitions of every figure (default 3)")
    add("--batch-size", type=int, default=32, help="extraction batch size")
    add("--naive-epochs", type=int, help="epochs the naive model is run (default 3)")
    add("--cached-epochs", type=int, help="epochs of the cached head (default --epochs)")
    add("--seeds", type=int, default=10, help="seeds of the projected reproduction")
    add("--epochs", type=int, default=60, help="epochs of the projected reproduction")
    add("--scaling-backbone", choices=ALL_BACKBONES, help="default resnet50")
    add("--threads", type=int, nargs="+", help="thread counts (default 1, 2, 4 .. cores)")
    add("--factors", type=int, nargs="+", help="cohort repetitions (default 1 2 4)")
    add("--max-patients", type=int, help="use at most this many patients of the cohort")
    add("--paper-steps", type=int, help="timed training steps per model of the paper's "
        "detector (default 3; quick: 1)")
    add("--whole", action="store_true", help="also time `cxr batch` cold and warm (long)")
    add("--whole-profile", default="paper", help="`cxr batch` profile (sample: quick check)")
    add("--whole-data-dir", type=Path, help="data for --whole (default: --data-dir)")
    add("--whole-arg", action="append", default=[], metavar="ARG",
        help="extra argument passed to `cxr batch` (repeatable)")
    add("--whole-cache", type=Path, help="a feature cache an earlier batch filled: the "
        "whole and paper_budget sections then measure the warm run only")
    add("--log-dir", type=Path, default=Path("results/benchmarks/logs"),
        help="where the logs of the `whole` section's `cxr batch` runs go")
    add("--work-dir", type=Path, help="where temporary caches and copies go")
    add("--keep-work", action="store_true", help="keep the temporary folder")
    return parser


def resolve(args: argparse.Namespace) -> dict:
    """Settings: the options given, else the quick or full defaults."""
    defaults = QUICK if args.quick else FULL
    settings = {key: getattr(args, key) if getattr(args, key) is not None else value
                for key, value in defaults.items()}
    settings["cached_epochs"] = settings["cached_epochs"] or args.epochs
    usable = usable_cpus()
    if settings["threads"] is None:
        from benchmarks.scaling import thread_counts

        settings["threads"] = thread_counts(usable)
    settings["threads"] = [n for n in settings["threads"] if 1 <= n <= usable] or [1]
    sections = list(args.only or DEFAULT_SECTIONS)
    if args.whole and "whole" not in sections:
        sections.append("whole")
    settings.update(seeds=args.seeds, epochs=args.epochs, batch_size=args.batch_size,
                    quick=args.quick, sections=sections)
    if settings["naive_epochs"] < 2:
        raise SystemExit("--naive-epochs must be at least 2 (the first epoch traces)")
    return settings


def resolve_data(given: Path | None) -> tuple[Path, str]:
    """(data folder, what it is): the given one, the shared real data, or the sample."""
    from cxrlib.sample import MARKER_NAME, write_sample_data

    def kind(folder: Path) -> str:
        return "synthetic sample data" if (folder / MARKER_NAME).is_file() else "real images"

    if given is not None:
        if not (given / "covid-chestxray-dataset" / "metadata.csv").is_file():
            raise SystemExit(f"--data-dir {given}: no covid-chestxray-dataset/metadata.csv")
        return given, kind(given)
    if (SHARED_DATA / "covid-chestxray-dataset" / "metadata.csv").is_file():
        return SHARED_DATA, kind(SHARED_DATA)
    if not (SAMPLE_DATA / "covid-chestxray-dataset" / "metadata.csv").is_file():
        write_sample_data(SAMPLE_DATA)
    return SAMPLE_DATA, kind(SAMPLE_DATA)


class Runner:
    """Runs the sections in order and keeps the JSON file up to date."""

    def __init__(self, out: Path, result: dict, keep_unselected: bool = False):
        self.out, self.result, self.failed = out, result, []
        self.keep_unselected = keep_unselected
        self.clock = time.perf_counter()

    def log(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.clock:7.1f} s] {message}", file=sys.stderr,
              flush=True)

    def section(self, keys: tuple[str, ...], function, *args, **kwargs) -> None:
        """Run one section; store its result (or its error) under ``keys`` and save."""
        self.log(f"{'.'.join(keys)} ...")
        start = time.perf_counter()
        try:
            block = {"status": "ok", **function(*args, log=self.log, **kwargs)}
        except Exception as err:  # one broken section must not lose the others
            traceback.print_exc()
            block = {"status": f"failed: {type(err).__name__}: {err}"}
            self.failed.append(".".join(keys))
        block["section_s"] = time.perf_counter() - start
        block["measured"] = {"finished": now(), "load_average_end": load_average()}
        self.store(keys, block)

    def skip(self, keys: tuple[str, ...], reason: str = "not selected (--only)") -> None:
        """Mark a section not run, unless an earlier result's block is being kept."""
        if not self.keep_unselected:
            self.store(keys, {"status": f"skipped: {reason}"})

    def store(self, keys: tuple[str, ...], block: dict) -> None:
        target = self.result
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = block
        self.save()

    def save(self) -> None:
        from cxrlib.io import write_json

        write_json(self.out, self.result)


def run_sections(runner: Runner, settings: dict, data_dir: Path, work: Path) -> None:
    """Every selected section, in the order that keeps TensorFlow state comparable."""
    from benchmarks import extraction, paper_detector, prognet_cost, scaling

    s, chosen = settings, settings["sections"]
    for name in DEFAULT_SECTIONS:
        if name not in chosen:
            runner.skip(SECTION_KEYS[name])
    if "extraction" in chosen:
        runner.section(SECTION_KEYS["extraction"], extraction.run, data_dir, s["backbones"],
                       s["image_size"], s["images"], s["repeats"], work, s["batch_size"])
    if "cached_vs_naive" in chosen:
        runner.section(SECTION_KEYS["cached_vs_naive"], prognet_cost.run, data_dir,
                       s["backbones"], s["image_size"], s["repeats"], s["naive_epochs"],
                       s["cached_epochs"], s["seeds"], s["epochs"], work, s["batch_size"],
                       s["max_patients"])
    if "patients" in chosen:
        runner.section(SECTION_KEYS["patients"], scaling.run_patients, data_dir,
                       s["scaling_backbone"], s["image_size"], s["factors"], s["repeats"],
                       s["cached_epochs"], work, s["batch_size"], s["max_patients"])
    if "threads" in chosen:
        runner.section(SECTION_KEYS["threads"], scaling.run_threads, data_dir,
                       s["scaling_backbone"], s["image_size"], s["images"], s["repeats"],
                       s["threads"], work, s["batch_size"])
    if "paper_detector" in chosen:
        runner.section(SECTION_KEYS["paper_detector"], paper_detector.run, s["image_size"],
                       s["batch_size"], s["paper_steps"])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    settings = resolve(args)
    data_dir, kind = resolve_data(args.data_dir)
    args.out = args.out or args.update or DEFAULT_OUT
    this_run = {
        "started": now(), "command": " ".join(["python -m benchmarks", shlex.join(argv)]).strip(),
        "settings": settings,
        "data": {"data_dir": str(data_dir.resolve()), "data_dir_shown": shown(data_dir),
                 "kind": kind},
        "machine": machine_info(), "versions": versions(),
    }
    if args.update:
        result = load_result(args.update)
        result.setdefault("updates", []).append(this_run)
    else:
        result = {"benchmark": "cxr-repro", "schema_version": SCHEMA_VERSION,
                  "complete": False, **this_run, "spread": SPREAD}
    work = Path(tempfile.mkdtemp(prefix="cxr-bench-", dir=args.work_dir))
    runner = Runner(args.out, result, keep_unselected=args.update is not None)
    runner.log(f"data: {shown(data_dir)} ({kind}); work folder: {work}")
    try:
        run_sections(runner, settings, data_dir, work)
        if "whole" in settings["sections"]:
            from benchmarks import whole

            runner.section(SECTION_KEYS["whole"], whole.run, args.whole_profile,
                           args.whole_data_dir or data_dir, work, args.log_dir,
                           args.whole_arg, cache_dir=args.whole_cache)
        else:
            runner.skip(SECTION_KEYS["whole"], "not requested (add --whole)")
        if "paper_budget" in settings["sections"]:
            from benchmarks import whole

            runner.section(SECTION_KEYS["paper_budget"], whole.run, "paper",
                           args.whole_data_dir or data_dir, work, args.log_dir,
                           PAPER_BUDGET_SUBSET + args.whole_arg, cache_dir=args.whole_cache,
                           name="budget")
        else:
            runner.skip(SECTION_KEYS["paper_budget"], "not requested (--only paper_budget)")
        if "loops" in settings["sections"]:
            from benchmarks import loops

            runner.section(SECTION_KEYS["loops"], loops.run, work, args.log_dir)
        else:
            runner.skip(SECTION_KEYS["loops"], "not requested (--only loops)")
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    ended = {"finished": now(), "duration_s": time.perf_counter() - runner.clock,
             "load_average_end": load_average()}
    (this_run if args.update else result).update(ended)
    result["complete"] = not failed_sections(result)
    runner.save()
    return finish(result, args, runner)


def load_result(path: Path) -> dict:
    """An earlier ``benchmark.json`` to update (same schema only)."""
    import json

    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"--update {path}: cannot read it ({err})") from None
    if result.get("benchmark") != "cxr-repro" or result.get("schema_version") != SCHEMA_VERSION:
        raise SystemExit(f"--update {path}: not a cxr-repro benchmark of schema "
                         f"{SCHEMA_VERSION}; run the full benchmark instead")
    return result


def failed_sections(result: dict) -> list[str]:
    """Sections whose stored status says they failed (as ``scaling.threads`` etc.)."""
    failed = []
    for keys in SECTION_KEYS.values():
        block = result
        for key in keys:
            block = (block or {}).get(key)
        if block and str(block.get("status", "")).startswith("failed"):
            failed.append(".".join(keys))
    return failed


def finish(result: dict, args: argparse.Namespace, runner: Runner) -> int:
    """Write the Markdown (and the README section); 1 if any section failed."""
    from benchmarks.render import render_markdown, update_readme
    from cxrlib.io import write_text

    markdown = render_markdown(result)
    markdown_path = write_text(args.out.with_suffix(".md"), markdown)
    runner.log(f"wrote {args.out} and {markdown_path}")
    if args.readme:
        runner.log(update_readme(args.readme, markdown))
    if runner.failed:
        runner.log(f"failed section(s): {', '.join(runner.failed)}")
        return 1
    return 0
