"""The ``cxr`` command: data set-up, single notebook runs, batches and benchmarks.

    cxr data summary --data-dir DIR [--json]
    cxr data sample --out data/sample [--seed N]
    cxr data download --dest data/raw [--dataset cohen|pneumonia|all] [--from PATH]
                      [--snapshot 2020-06] [--commit SHA]
    cxr run prognet --backbone resnet50 --seed 0 --data-dir DIR --out DIR [-p name value]
    cxr run detector --model cnn_lstm --fold 0 --seed 0 --data-dir DIR --out DIR
    cxr batch --profile sample|paper|paper-gpu --data-dir DIR --out results/<profile> [--estimate]
    cxr predict prognet --run RUN_DIR IMAGE [IMAGE ...] [--gradcam OUT.png] | --series CSV [--json]
    cxr predict detector --run RUN_DIR IMAGE [IMAGE ...] [--gradcam OUT.png] [--json]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from cxrlib.errors import CxrError

log = logging.getLogger("cxrlib")


def _print_summary(summary: dict) -> None:
    """Human-readable ``cxr data summary``."""
    print(f"data dir: {summary['data_dir']}")
    for name, title in (("cohen", "Cohen COVID-19 collection"),
                        ("pneumonia", "pediatric pneumonia set")):
        block = summary.get(name)
        print(f"\n== {title}")
        if block is None:
            print(f"  absent: {summary.get(name + '_error')}")
            continue
        for key, value in block.items():
            if isinstance(value, dict):
                print(f"  {key}:")
                for k, v in value.items():
                    print(f"    {k:<40} {v}")
            else:
                print(f"  {key:<42} {value}")


def cmd_data_summary(args: argparse.Namespace) -> int:
    from cxrlib.data import summary

    result = summary(args.data_dir, min_images=args.min_images)
    if result.get("cohen") is None and result.get("pneumonia") is None:
        raise CxrError(f"{args.data_dir}: neither dataset found "
                       f"({result['cohen_error']}; {result['pneumonia_error']})")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print_summary(result)
    return 0


def cmd_data_sample(args: argparse.Namespace) -> int:
    from cxrlib.sample import write_sample_data

    manifest = write_sample_data(args.out, seed=args.seed)
    print(f"sample data in {args.out}: {len(manifest)} images (seed {args.seed})")
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from cxrlib.download import download

    datasets = ["cohen", "pneumonia"] if args.dataset == "all" else [args.dataset]
    if args.from_path and len(datasets) > 1:
        raise CxrError("--from takes one dataset: add --dataset cohen or --dataset pneumonia")
    if (args.snapshot or args.commit) and datasets != ["cohen"]:
        raise CxrError("--snapshot and --commit pin the Cohen collection: add --dataset cohen")
    for dataset in datasets:
        folder = download(dataset, args.dest, from_path=args.from_path, force=args.force,
                          progress=not args.quiet, snapshot=args.snapshot, commit=args.commit)
        print(f"{dataset}: {folder}")
    return 0


def _run_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """Notebook parameters from the shortcut options and ``-p name value`` pairs."""
    from cxrlib.runs import parse_value

    parameters: dict[str, Any] = {}
    for option in ("data_dir", "cache_dir", "backbone", "seed", "model", "fold"):
        value = getattr(args, option, None)
        if value is not None:
            parameters[option] = value
    if getattr(args, "weights", None) is not None:
        parameters["weights"] = parse_value(args.weights)
    for name, value in args.param or []:
        parameters[name] = parse_value(value)
    return parameters


def cmd_run(args: argparse.Namespace) -> int:
    from cxrlib.runs import run_notebook

    executed = run_notebook(args.notebook, args.out, _run_parameters(args),
                            progress=not args.quiet)
    print(f"executed notebook: {executed}")
    metrics = executed.parent / "metrics.json"
    if metrics.is_file():
        print(f"metrics: {metrics}")
    return 0


def _predictions(args: argparse.Namespace):
    """The predictions table of ``cxr predict`` (and the loaded model)."""
    from cxrlib import predict

    if args.series is not None and args.images:
        raise CxrError("give image files or --series CSV, not both")
    if args.experiment == "detector":
        if args.series is not None:
            raise CxrError("--series is for prognet; give the detector image files")
        saved = predict.load_detector(args.run)
        return saved, predict.predict_detector(saved, args.images, args.cache_dir)
    patients = predict.read_series(args.series) if args.series is not None else args.images
    saved, patients = predict.checked_prognet(args.run, patients, args.fold)
    return saved, predict.score_prognet(saved, patients, args.cache_dir)


def cmd_predict(args: argparse.Namespace) -> int:
    from cxrlib import predict

    if args.gradcam is not None and args.series is not None:
        raise CxrError("--gradcam draws one patient's series: give the image files, not --series")
    saved, table = _predictions(args)
    if args.gradcam is not None:
        from cxrlib import plots

        if args.experiment == "detector":
            images, cams, titles = predict.detector_grad_cams(saved, table["path"].tolist())
        else:
            images, cams, titles = predict.prognet_grad_cams(saved, args.images)
        plots.save_figure(plots.plot_cams(images, cams, titles, ncols=min(3, len(images))),
                          args.gradcam)
    if args.json:
        from cxrlib.io import to_jsonable

        print(json.dumps({"run": str(args.run), "model": {k: saved.card.get(k) for k in (
            "experiment", "kind", "backbone", "model", "image_size", "weights", "seq_len")},
            "predictions": to_jsonable(table.to_dict("records"))}, indent=2))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if args.experiment == "prognet":
            print("\nsurvival_score = P(survival) of the model; score_* = the baselines' P(survival)")
    if args.gradcam is not None:
        print(f"Grad-CAM: {args.gradcam}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_readme(args: argparse.Namespace) -> int:
    from cxrlib.readme import details_page, readme_markdown, replace_between

    results = {}
    for item in args.results:
        title, _, folder = item.partition("=")
        if not folder:
            raise CxrError(f"--results takes TITLE=FOLDER, not {item!r}")
        results[title] = folder
    details = args.details or args.readme.parent / "docs" / "results.md"
    link = os.path.relpath(details, args.readme.parent)
    if not replace_between(args.readme, "results", readme_markdown(results, details=link)):
        raise CxrError(f"{args.readme} has no <!-- results:start --> / <!-- results:end --> markers")
    details.parent.mkdir(parents=True, exist_ok=True)
    details.write_text(details_page(results))
    print(f"updated the Results section of {args.readme} and wrote {details}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from cxrlib.publish import publish_from_args

    return publish_from_args(args)


def cmd_book(args: argparse.Namespace) -> int:
    from cxrlib.book import book_from_args

    return book_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cxr", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="dataset summary, sample data, downloads")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    summary = data_commands.add_parser("summary", help="counts per dataset")
    summary.add_argument("--data-dir", required=True, type=Path)
    summary.add_argument("--min-images", type=int, default=3,
                         help="time-series length that counts a patient for ProgNet")
    summary.add_argument("--json", action="store_true", help="print JSON")
    summary.set_defaults(func=cmd_data_summary)
    sample = data_commands.add_parser("sample", help="write the synthetic sample data")
    sample.add_argument("--out", type=Path, default=Path("data/sample"))
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=cmd_data_sample)
    download = data_commands.add_parser("download", help="fetch the real datasets")
    download.add_argument("--dest", type=Path, default=Path("data/raw"))
    download.add_argument("--dataset", choices=["cohen", "pneumonia", "all"], default="all")
    download.add_argument("--from", dest="from_path", type=Path,
                          help="a local archive or folder to install instead of downloading")
    download.add_argument("--force", action="store_true", help="replace an installed copy")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.add_argument("--snapshot", help="a named version of the Cohen collection "
                          "(e.g. 2020-06, the papers' time); default: today's")
    download.add_argument("--commit", help="a commit of the Cohen collection to fetch")
    download.set_defaults(func=cmd_data_download)

    for add in (_add_run, _add_readme, _add_publish, _add_book, _add_predict, _add_batch):
        add(commands)
    return parser


def _add_run(commands) -> None:
    """``cxr run``: one notebook with papermill."""
    run = commands.add_parser("run", help="execute one notebook with papermill")
    run.add_argument("notebook", help="explore | prognet | detector | comparisons | qualitative | use")
    run.add_argument("--out", required=True, type=Path, help="run folder")
    run.add_argument("--data-dir", type=Path)
    run.add_argument("--cache-dir", type=Path)
    run.add_argument("--backbone", help="prognet: alexnet | vgg16 | vgg19 | resnet50")
    run.add_argument("--model", help="detector: cnn | cnn_lstm")
    run.add_argument("--fold", type=int, help="detector: test fold")
    run.add_argument("--seed", type=int)
    run.add_argument("--weights", help="imagenet | none | path to a weights file")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="any notebook parameter (repeatable)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)


def _add_readme(commands) -> None:
    """``cxr readme``: batch results into the README."""
    readme = commands.add_parser("readme", help="write batch results into README.md")
    readme.add_argument("--results", nargs="+", required=True, metavar="TITLE=FOLDER",
                        help="e.g. 'Sample data=results/sample'")
    readme.add_argument("--readme", type=Path, default=Path("README.md"))
    readme.add_argument("--details", type=Path,
                        help="the page with the reasons and full tables (default: docs/results.md "
                             "beside the README)")
    readme.set_defaults(func=cmd_readme)


def _add_publish(commands) -> None:
    """``cxr publish``: a finished batch into a folder to commit."""
    publish = commands.add_parser("publish", help="copy a finished batch's tables, figures and "
                                  "executed chapters into a folder to commit")
    publish.add_argument("--results", type=Path, required=True,
                         help="a finished `cxr batch` output folder")
    publish.add_argument("--out", type=Path, required=True, help="the folder to (re)write")
    publish.add_argument("--prognet-run", default="resnet50/seed-0",
                         help="the ProgNet run whose chapter 02 is published (backbone/seed-k)")
    publish.add_argument("--detector-run", default="cnn_lstm/fold-0",
                         help="the detector run whose chapter 03 is published (model/fold-k)")
    publish.set_defaults(func=cmd_publish)


def _add_book(commands) -> None:
    """``cxr book``: the static site of the executed chapters."""
    book = commands.add_parser("book", help="build the book (static site) from the executed chapters")
    book.add_argument("--out", type=Path, default=Path("build/book"))
    book.add_argument("--published", type=Path, default=Path("results/real"),
                      help="published real-data results (cxr publish)")
    book.add_argument("--sample-results", type=Path, default=Path("results/sample"),
                      help="a sample-data batch, for chapters with no real-data run")
    book.set_defaults(func=cmd_book)


def _add_predict(commands) -> None:
    """``cxr predict``: a saved model on new images."""
    predict = commands.add_parser("predict", help="score new images with a run's saved model")
    predict.add_argument("experiment", choices=["prognet", "detector"])
    predict.add_argument("images", nargs="*", type=Path,
                         help="prognet: one patient's images in time order; detector: X-rays")
    predict.add_argument("--run", required=True, type=Path, help="a finished run folder")
    predict.add_argument("--series", type=Path,
                         help="prognet: CSV with patient_id, path, offset (many patients)")
    predict.add_argument("--fold", type=int, help="prognet k-fold runs: which fold's head")
    predict.add_argument("--gradcam", type=Path, metavar="OUT.png",
                         help="draw Grad-CAM maps (detector: each image; prognet: the series)")
    predict.add_argument("--cache-dir", type=Path, help="feature cache (default: none kept)")
    predict.add_argument("--json", action="store_true", help="print JSON")
    predict.set_defaults(func=cmd_predict)


def _add_batch(commands) -> None:
    """``cxr batch``: the whole grid of a profile, then the reports."""
    from cxrlib.batch import PROFILES
    from cxrlib.names import BACKBONES, DETECTOR_MODELS

    parser = commands.add_parser("batch", help="every backbone x seed and model x fold")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="sample")
    parser.add_argument("--data-dir", type=Path, default=Path("data/sample"))
    parser.add_argument("--out", type=Path, help="default: results/<profile>")
    parser.add_argument("--cache-dir", type=Path, help="default: <out>/.cache/features")
    parser.add_argument("--backbones", nargs="+", help=f"subset of {', '.join(BACKBONES)}")
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--models", nargs="+", help=f"subset of {', '.join(DETECTOR_MODELS)}")
    parser.add_argument("--folds", nargs="+", type=int)
    parser.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="a notebook parameter for every run that has it (repeatable)")
    parser.add_argument("--workers", type=int, help="parallel runs (default: what fits)")
    parser.add_argument("--executor", choices=["local", "dask"], default="local")
    parser.add_argument("--scheduler", help="Dask scheduler address (with --executor dask)")
    parser.add_argument("--no-reports", action="store_true", help="skip the report chapters")
    parser.add_argument("--fresh-kernels", action="store_true",
                        help="start a fresh kernel for every notebook instead of one warm "
                             "kernel per worker (slower; the same numbers)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--estimate", action="store_true",
                        help="print the expected cost of end-to-end detector runs and stop")
    parser.set_defaults(func=cmd_batch)


def cmd_batch(args: argparse.Namespace) -> int:
    """``cxr batch``: run, print the summary, exit 0 only if everything succeeded."""
    from cxrlib import runs
    from cxrlib.batch import end_to_end_cost, plan, run_batch

    overrides = {name: runs.parse_value(value) for name, value in args.param or []}
    out = args.out or Path("results") / args.profile
    if args.estimate:
        from cxrlib.cost import cost_message

        cost = end_to_end_cost(plan(args.profile, args.data_dir, out, backbones=args.backbones,
                                    seeds=args.seeds, models=args.models, folds=args.folds,
                                    overrides=overrides, cache_dir=args.cache_dir),
                              progress=not args.quiet)
        print("no end-to-end detector runs to estimate" if cost is None else cost_message(cost))
        return 0
    table = run_batch(args.profile, args.data_dir, out, workers=args.workers,
                      executor=args.executor, scheduler=args.scheduler,
                      reports=not args.no_reports, progress=not args.quiet,
                      warm_kernels=not args.fresh_kernels,
                      backbones=args.backbones, seeds=args.seeds, models=args.models,
                      folds=args.folds, overrides=overrides, cache_dir=args.cache_dir)
    counts = table["status"].value_counts().to_dict()
    print(f"\n{len(table)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    failed = table[table["status"] == "failed"]
    for row in failed.itertuples():
        where = (f"notebook with the error: {row.notebook}" if row.notebook
                 else "its parameters failed the check; it never started")
        print(f"FAILED {row.run}: {row.error}\n  {where}")
    print(f"summary: {Path(out) / 'batch_summary.csv'}")
    return 1 if len(failed) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and (args.command != "predict" or any(e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:  # image files after --run: argparse leaves them over
        args.images = [*args.images, *map(Path, extra)]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("papermill").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    try:
        if args.verbose:
            return args.func(args)
        from cxrlib.quiet import quiet_native_stderr

        with quiet_native_stderr():
            return args.func(args)
    except CxrError as err:
        print(f"cxr: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a notebook that failed: say where its traceback is
        if type(err).__name__ != "PapermillExecutionError":
            raise
        out = getattr(args, "out", None)
        where = ""
        if out and getattr(args, "notebook", None):
            from cxrlib.runs import notebook_path

            failed = Path(out).with_name(Path(out).name + ".failed") / notebook_path(args.notebook).name
            where = f" (executed notebook with the traceback: {failed})"
        print(f"cxr: the notebook failed in cell {err.exec_count}: {err.ename}: {err.evalue}{where}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
