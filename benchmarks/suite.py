"""``python -m benchmarks``: how fast the reproduction runs on this machine.

Sections (each JSON key is one section; ``--only`` picks some):

- ``extraction``: ``extract_features`` against the bare ``predict_on_batch`` per backbone;
- ``cached_vs_naive``: cached features + head against the end-to-end Keras model;
- ``scaling.threads``: extraction at 1, 2, ... threads (one subprocess each);
- ``scaling.patients``: one cached ProgNet run as the cohort grows 1x, 2x, 4x;
- ``whole`` (only with ``--whole``): ``cxr batch`` from a cold and a warm cache.

Writes ``benchmark.json`` (after every section, so a stopped run keeps what it measured)
and ``benchmark.md`` next to it; ``--readme README.md`` also updates the README's
performance section.
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

from benchmarks import REPO
from benchmarks.machine import load_average, machine_info, now, usable_cpus, versions
from benchmarks.stats import SPREAD

ALL_BACKBONES = ["alexnet", "vgg16", "vgg19", "resnet50"]
SECTIONS = ("extraction", "cached_vs_naive", "threads", "patients")
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_DATA = REPO / "data" / "sample"
DEFAULT_OUT = Path("results/benchmarks/benchmark.json")

FULL = {"backbones": ALL_BACKBONES, "image_size": 224, "images": 64, "repeats": 3,
        "naive_epochs": 3, "cached_epochs": None, "scaling_backbone": "resnet50",
        "threads": None, "factors": [1, 2, 4], "max_patients": None}
"""Defaults of a full run (None: derived, see ``resolve``)."""
QUICK = {"backbones": ["alexnet"], "image_size": 64, "images": 16, "repeats": 1,
         "naive_epochs": 2, "cached_epochs": 3, "scaling_backbone": "alexnet",
         "threads": [1, 2], "factors": [1, 2], "max_patients": 12}
"""Defaults of ``--quick`` (a smoke test: seconds, not meaningful figures)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = parser.add_argument
    add("--data-dir", type=Path, help="data folder with covid-chestxray-dataset/ (default: "
        "../shared/data if present, else data/sample, generated if needed)")
    add("--out", type=Path, default=DEFAULT_OUT, help="JSON file; the Markdown goes next to it")
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
    add("--whole", action="store_true", help="also time `cxr batch` cold and warm (long)")
    add("--whole-profile", default="paper", help="`cxr batch` profile (sample: quick check)")
    add("--whole-data-dir", type=Path, help="data for --whole (default: --data-dir)")
    add("--whole-arg", action="append", default=[], metavar="ARG",
        help="extra argument passed to `cxr batch` (repeatable)")
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
    settings.update(seeds=args.seeds, epochs=args.epochs, batch_size=args.batch_size,
                    quick=args.quick, sections=list(args.only or SECTIONS), whole=args.whole)
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


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it (or next to it)."""
    path = Path(path).resolve()
    for base, prefix in ((REPO, ""), (REPO.parent, "../")):
        if path.is_relative_to(base):
            return prefix + str(path.relative_to(base))
    return str(path)


class Runner:
    """Runs the sections in order and keeps the JSON file up to date."""

    def __init__(self, out: Path, result: dict):
        self.out, self.result, self.failed = out, result, []
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
        self.store(keys, block)

    def store(self, keys: tuple[str, ...], block: dict) -> None:
        target = self.result
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = block
        self.save()

    def save(self) -> None:
        from cxrlib.runs import write_json

        write_json(self.out, self.result)


def run_sections(runner: Runner, settings: dict, data_dir: Path, work: Path) -> None:
    """Every selected section, in the order that keeps TensorFlow state comparable."""
    from benchmarks import extraction, prognet_cost, scaling

    s, chosen = settings, settings["sections"]
    skip = {"status": "skipped: not selected (--only)"}
    if "extraction" in chosen:
        runner.section(("extraction",), extraction.run, data_dir, s["backbones"],
                       s["image_size"], s["images"], s["repeats"], work, s["batch_size"])
    else:
        runner.store(("extraction",), skip)
    if "cached_vs_naive" in chosen:
        runner.section(("cached_vs_naive",), prognet_cost.run, data_dir, s["backbones"],
                       s["image_size"], s["repeats"], s["naive_epochs"], s["cached_epochs"],
                       s["seeds"], s["epochs"], work, s["batch_size"], s["max_patients"])
    else:
        runner.store(("cached_vs_naive",), skip)
    if "patients" in chosen:
        runner.section(("scaling", "patients"), scaling.run_patients, data_dir,
                       s["scaling_backbone"], s["image_size"], s["factors"], s["repeats"],
                       s["cached_epochs"], work, s["batch_size"], s["max_patients"])
    else:
        runner.store(("scaling", "patients"), skip)
    if "threads" in chosen:
        runner.section(("scaling", "threads"), scaling.run_threads, data_dir,
                       s["scaling_backbone"], s["image_size"], s["images"], s["repeats"],
                       s["threads"], work, s["batch_size"])
    else:
        runner.store(("scaling", "threads"), skip)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    settings = resolve(args)
    data_dir, kind = resolve_data(args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="cxr-bench-", dir=args.work_dir))
    result = {
        "benchmark": "cxr-repro", "schema_version": 1, "started": now(), "complete": False,
        "command": " ".join(["python -m benchmarks", shlex.join(argv)]).strip(),
        "settings": settings,
        "data": {"data_dir": str(data_dir.resolve()), "data_dir_shown": shown(data_dir),
                 "kind": kind},
        "spread": SPREAD, "machine": machine_info(), "versions": versions(),
    }
    runner = Runner(args.out, result)
    runner.log(f"data: {shown(data_dir)} ({kind}); work folder: {work}")
    try:
        run_sections(runner, settings, data_dir, work)
        if args.whole:
            from benchmarks import whole

            runner.section(("whole",), whole.run, args.whole_profile,
                           args.whole_data_dir or data_dir, work, args.out.parent,
                           args.whole_arg)
        else:
            runner.store(("whole",), {"status": "skipped: not requested (add --whole)"})
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    result.update(complete=not runner.failed, finished=now(),
                  duration_s=time.perf_counter() - runner.clock,
                  load_average_end=load_average())
    runner.save()
    return finish(result, args, runner)


def finish(result: dict, args: argparse.Namespace, runner: Runner) -> int:
    """Write the Markdown (and the README section); 1 if any section failed."""
    from benchmarks.render import render_markdown, update_readme, write_text

    markdown = render_markdown(result)
    markdown_path = write_text(args.out.with_suffix(".md"), markdown)
    runner.log(f"wrote {args.out} and {markdown_path}")
    if args.readme:
        runner.log(update_readme(args.readme, markdown))
    if runner.failed:
        runner.log(f"failed section(s): {', '.join(runner.failed)}")
        return 1
    return 0
