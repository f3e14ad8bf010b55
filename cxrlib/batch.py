"""Run the whole reproduction: every backbone x seed and every model x fold, then reports.

    cxr batch --profile sample|paper|paper-gpu|quick --data-dir DIR --out results/<profile>

``paper-gpu`` runs the detector as published (Table 2's base trained end to end); before
it starts, ``cxr batch`` prints the grid's expected cost measured from a few real training
steps on this machine (``--estimate`` prints it and stops). ImageNet weights the runs
load are fetched before any run starts (``fetch_weights``): without network the batch
stops there, in one line naming the file and the ways out.

Layout under ``--out``: ``prognet/<backbone>/seed-<k>/`` and ``detector/<model>/fold-<k>/``
(each an executed notebook plus its files), then ``01_data_exploration.ipynb`` (its
figures in ``exploration/``), ``04_comparisons.ipynb``, ``05_qualitative.ipynb`` and
``06_use_a_model.ipynb`` with ``tables/`` and ``figures/``, and ``batch_summary.csv``.

Resumable and safe: a run whose folder holds a complete ``metrics.json`` and its saved
model is skipped; runs execute in ``<run>.partial/`` and are renamed when done, so a
killed batch leaves nothing that looks finished; a failing run keeps its executed notebook
(with the traceback) in ``<run>.failed/`` (a report: ``<name>.failed.ipynb``), is listed
at the end with that path, and does not stop the others. The exit code is 0 only when
every run succeeded. Features are extracted once per backbone before the runs, so
parallel runs never compute the same features twice. The report chapters read whatever
runs are there.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd
from tqdm import tqdm

from cxrlib import io, machine, paper, runs
from cxrlib.errors import ConfigError, CxrError
from cxrlib.names import BACKBONES, DETECTOR_MODELS, IMAGENET_BACKBONES, RUN_PREFIXES


log = logging.getLogger(__name__)

PAPER_PROGNET = {"image_size": paper.PROGNET_SETUP["image_size"],
                 "epochs": paper.PROGNET_SETUP["epochs"], "weights": "imagenet"}
PAPER_DETECTOR = {"image_size": paper.DETECTOR_SETUP["image_size"],
                  "epochs": paper.DETECTOR_SETUP["max_epochs"],
                  "n_per_class": dict(paper.DETECTOR_SETUP["images"])}
PROFILES: dict[str, dict[str, Any]] = {
    # The notebooks' own defaults: small images, runs in minutes on the sample data.
    "sample": {"backbones": BACKBONES, "seeds": tuple(range(10)), "models": DETECTOR_MODELS,
               "folds": tuple(range(5)), "prognet": {}, "detector": {}},
    # A smaller grid for tests and the comparison chapters' self-check (few epochs: its
    # numbers only have to exist, the chapters read them).
    "quick": {"backbones": ("alexnet", "resnet50"), "seeds": (0, 1), "models": DETECTOR_MODELS,
              "folds": (0, 1), "prognet": {"epochs": 10}, "detector": {"epochs": 10}},
    # The papers' settings (weights "imagenet" downloads on a machine with internet;
    # AlexNet, which has none in Keras, runs with random weights and says so; add
    # -p weights none to run offline).
    "paper": {"backbones": BACKBONES, "seeds": tuple(range(10)), "models": DETECTOR_MODELS,
              "folds": tuple(range(5)),
              "prognet": PAPER_PROGNET,
              "detector": {**PAPER_DETECTOR, "base": "vgg16", "weights": "imagenet",
                           "augment_copies": 2}},
    # The detector as published: Table 2's base trained end to end from random init,
    # augmentation inside the graph (meant for a GPU; prints its cost before starting).
    "paper-gpu": {"backbones": BACKBONES, "seeds": tuple(range(10)),
                  "models": DETECTOR_MODELS, "folds": tuple(range(5)),
                  "prognet": PAPER_PROGNET,
                  "detector": {**PAPER_DETECTOR, "base": "paper", "weights": None,
                               "trainable": True, "augment_copies": 0}},
}
REPORTS = ("qualitative", "comparisons", "use", "explore")  # they run in parallel: longest first
GIB = 1024 ** 3
MEMORY_PER_RUN = 3 * GIB  # a kernel with TensorFlow and one backbone, measured ~1.5-2.5 GB


@dataclass
class Run:
    """One notebook execution of the grid."""

    notebook: str
    out_dir: Path
    parameters: dict[str, Any]
    label: str
    status: str = "pending"
    seconds: float = 0.0
    error: str = ""
    checked_ok: bool = True  # False: its parameters failed the check, it never starts
    failed_notebook: str = ""  # the executed notebook holding the traceback, when failed


@dataclass
class Batch:
    """The grid of runs for a profile, with the parameters common to all of them."""

    profile: str
    data_dir: Path
    out: Path
    cache_dir: Path
    runs: list[Run] = field(default_factory=list)


def default_workers() -> int:
    """Parallel runs the machine can take: one per core, at most one per 3 GiB free."""
    import psutil

    by_memory = max(1, int(psutil.virtual_memory().available // MEMORY_PER_RUN))
    return max(1, min(os.cpu_count() or 1, by_memory))


def _pick(names: Iterable | None, allowed: Iterable, what: str) -> tuple:
    """Selected values, checked against the profile's."""
    allowed = tuple(allowed)
    if names is None:
        return allowed
    chosen = tuple(names)
    unknown = [n for n in chosen if n not in allowed and what in ("backbone", "model")]
    if unknown:
        raise ConfigError(f"unknown {what}(s) {unknown}; choose from {', '.join(map(str, allowed))}")
    return chosen


def _split_overrides(overrides: dict[str, Any]) -> tuple[dict, dict]:
    """``-p`` values for the ProgNet and the detector notebooks (each takes those it knows)."""
    known = {name: set(runs.notebook_defaults(name)) for name in ("prognet", "detector")}
    unknown = [k for k in overrides if k not in known["prognet"] | known["detector"]]
    if unknown:
        raise ConfigError(f"no notebook has parameter(s) {unknown}")
    return ({k: v for k, v in overrides.items() if k in known["prognet"]},
            {k: v for k, v in overrides.items() if k in known["detector"]})


def plan(profile: str, data_dir: str | Path, out: str | Path, *, backbones=None, seeds=None,
         models=None, folds=None, overrides: dict | None = None,
         cache_dir: str | Path | None = None) -> Batch:
    """The runs of a profile (subsets by the options), not yet executed."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    spec = PROFILES[profile]
    out = Path(out).resolve()
    cache = Path(cache_dir).resolve() if cache_dir else out / ".cache" / "features"
    prognet_extra, detector_extra = _split_overrides(dict(overrides or {}))
    batch = Batch(profile, Path(data_dir).resolve(), out, cache)
    common = {"data_dir": str(batch.data_dir), "cache_dir": str(cache)}
    for backbone in _pick(backbones, spec["backbones"] if backbones is None else BACKBONES, "backbone"):
        for seed in _pick(seeds, spec["seeds"], "seed"):
            parameters = {**common, **spec["prognet"], **prognet_extra, "backbone": backbone,
                          "seed": int(seed)}
            parameters.update(resolve_weights(backbone, parameters.get("weights")))
            folder = out / "prognet" / backbone / f"{RUN_PREFIXES['prognet']}{seed}"
            batch.runs.append(Run("prognet", folder, parameters, f"prognet {backbone} seed {seed}"))
    for model in _pick(models, DETECTOR_MODELS, "model"):
        for fold in _pick(folds, spec["folds"], "fold"):
            parameters = {**common, **spec["detector"], **detector_extra, "model": model,
                          "fold": int(fold)}
            folder = out / "detector" / model / f"{RUN_PREFIXES['detector']}{fold}"
            batch.runs.append(Run("detector", folder, parameters, f"detector {model} fold {fold}"))
    return batch


IMAGENET_MISSING = ("the profile asks for ImageNet weights, which Keras does not ship for "
                    "{backbone}: random initialisation (init_seed) instead")


def resolve_weights(backbone: str, weights: Any) -> dict[str, Any]:
    """The ``weights`` (and ``weights_note``) one ProgNet run of a batch gets.

    A dict gives each backbone its own value (``-p weights '{"alexnet": "a.weights.h5"}'``;
    backbones it does not name keep the profile's ``"imagenet"``, or None). Where the
    profile asks for ImageNet weights that cannot exist (AlexNet), the run uses None and
    says so in ``weights_note`` (it lands in ``metrics.json`` and every table). A weights
    file (for AlexNet, the only way to pretrained weights in Keras) is kept as given and
    counts as pretrained (``models.pretrained_weights``, ``metrics.json``'s
    ``pretrained_weights``)."""
    if isinstance(weights, dict):
        weights = weights.get(backbone, "imagenet")
    if weights == "imagenet" and backbone not in IMAGENET_BACKBONES:
        return {"weights": None, "weights_note": IMAGENET_MISSING.format(backbone=backbone)}
    return {"weights": weights}


class _EachMessageOnce(logging.Filter):
    """Passes each distinct message once: every run's preparation reads the same data and
    would log the same merged ids and skipped files again."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@contextlib.contextmanager
def _each_message_once(*names: str):
    """Within the block, the loggers ``names`` log each distinct message once."""
    once = _EachMessageOnce()
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addFilter(once)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(once)


def prepare_features(batch: Batch, progress: bool = True) -> None:
    """Check every run and extract (and cache) the features they need, once, before they
    start. A run whose check fails is marked failed with its message; the others go on.
    The data's warnings are logged once, not once per run."""
    with _each_message_once("cxrlib.data", "cxrlib.detector", "cxrlib.prognet"):
        _prepare_all(batch, progress)


def _prepare_all(batch: Batch, progress: bool) -> None:
    done: set = set()
    for run in batch.runs:
        if runs.is_finished(run.out_dir):
            continue
        try:
            key = _prepare_one(run, batch, done, progress)
        except CxrError as err:  # a run that cannot start is a failed run, not a failed batch
            run.status, run.error = "failed", f"{type(err).__name__}: {err}"[:300]
            run.checked_ok = False
            log.error("%s cannot run: %s", run.label, err)
            continue
        done.add(key)


def _prepare_one(run: Run, batch: Batch, done: set, progress: bool) -> tuple:
    """Let the run's experiment check its parameters and extract its features."""
    from cxrlib import detector, prognet

    experiment = {"prognet": prognet, "detector": detector}[run.notebook]
    return experiment.prepare(run_parameters(run), batch.data_dir, batch.cache_dir, done,
                              progress=progress)


def run_parameters(run: Run) -> dict:
    """Every parameter a run's notebook will see: its defaults, then the run's own."""
    return {**runs.notebook_defaults(run.notebook), **run.parameters}


def end_to_end_cost(batch: Batch, steps: int = 2, progress: bool = True) -> pd.DataFrame | None:
    """Expected cost of the batch's unfinished end-to-end detector runs
    (``cost.batch_cost``); None when there is no such run."""
    from cxrlib import cost, detector

    return cost.batch_cost([detector.config_from(run_parameters(run)) for run in batch.runs
                            if run.notebook == "detector" and not runs.is_finished(run.out_dir)],
                           batch.data_dir, steps, progress)


def imagenet_backbones(batch: Batch) -> list[str]:
    """The backbones whose ImageNet weights the batch's unfinished runs load."""
    needed = set()
    for run in batch.runs:
        weights = run.parameters.get("weights", runs.notebook_defaults(run.notebook).get("weights"))
        if weights != "imagenet" or runs.is_finished(run.out_dir):
            continue
        parameters = run_parameters(run)
        needed.add(parameters["backbone"] if run.notebook == "prognet" else parameters["base"])
    return sorted(needed & set(IMAGENET_BACKBONES))


def fetch_weights(batch: Batch) -> None:
    """Make sure Keras has the ImageNet weights the runs need (fetched now if missing),
    so that a machine without network stops here, before any run, with one line."""
    from cxrlib import models

    needed = imagenet_backbones(batch)
    for backbone in needed:
        try:
            models.build_backbone(backbone, models.MIN_IMAGE_SIZE, "imagenet", None)
        except Exception as err:  # noqa: BLE001 - Keras raises a bare Exception
            raise ConfigError(weights_message(backbone, err)) from None
    if needed:  # the networks were only built to fetch their weights
        import keras

        keras.backend.clear_session()


def weights_message(backbone: str, err: BaseException) -> str:
    """One line: which weights could not be fetched, why, and the three ways out."""
    text = " ".join(str(err).split())
    found = re.search(r"https?://\S*/([^/\s:]+\.h5)", text)
    file = found.group(1) if found else f"{backbone}'s weights file"
    reason = text.rsplit(" -- ", 1)[-1][-120:]
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return (f"cannot fetch the ImageNet weights of {backbone} ({file}: {reason}); "
            f"run without them (-p weights none), give a local weights file "
            f"(-p weights PATH.weights.h5), or put {file} in Keras' cache folder "
            f"{os.path.join(home, 'models')}")


def describe_error(err: BaseException) -> str:
    """One line for the summary: a failed notebook's own exception (name and message),
    else the exception's last line."""
    if hasattr(err, "ename"):  # papermill's PapermillExecutionError
        return f"{err.ename}: {str(err.evalue).strip()}"[:300]
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[-1] if text else ''}"[:300]


def execute(run: Run, kernel: runs.WarmKernel | None = None) -> Run:
    """Execute one run (skip it if finished, or if it failed its check before starting),
    in ``kernel`` when given, else in a fresh kernel; never raises: the status says what
    happened."""
    if not run.checked_ok:
        return run
    if runs.is_finished(run.out_dir):
        run.status = "skipped (finished)"
        return run
    start = time.perf_counter()
    try:
        runs.run_notebook(run.notebook, run.out_dir, run.parameters, kernel=kernel)
        run.status = "ok"
    except Exception as err:  # noqa: BLE001 - a failing run must not stop the batch
        run.status = "failed"
        run.failed_notebook = str(run.out_dir.with_name(run.out_dir.name + ".failed")
                                  / runs.notebook_path(run.notebook).name)
        run.error = describe_error(err)
    run.seconds = round(time.perf_counter() - start, 1)
    return run


def run_order(batch_runs: list[Run]) -> list[Run]:
    """The order runs start in: detector runs (the long ones) first, so that the short
    ProgNet runs fill the workers at the end instead of one long run finishing alone.
    Runs are independent, so the order changes no result."""
    return sorted(batch_runs, key=lambda run: run.notebook != "detector")


class Workers:
    """Threads that execute notebooks, each in a warm kernel of its own
    (``runs.WarmKernel``, started on its first notebook) or, with ``warm_kernels=False``,
    in a fresh kernel per notebook. A batch's runs and then its reports share them, so the
    reports start in kernels that have imported everything already. Use it as a context
    manager: leaving it shuts the kernels down."""

    def __init__(self, workers: int = 1, warm_kernels: bool = True):
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers))
        self.warm_kernels = warm_kernels
        self._local, self._kernels, self._lock = threading.local(), [], threading.Lock()

    def kernel(self) -> runs.WarmKernel | None:
        """This thread's warm kernel (``None`` with fresh kernels)."""
        if self.warm_kernels and not hasattr(self._local, "kernel"):
            self._local.kernel = runs.WarmKernel()
            with self._lock:
                self._kernels.append(self._local.kernel)
        return getattr(self._local, "kernel", None)

    def as_completed(self, function: Callable, items: Iterable) -> Iterable:
        """``function(item, kernel)`` for every item, in parallel; results as they finish."""
        futures = [self.pool.submit(lambda item=item: function(item, self.kernel()))
                   for item in items]
        for future in as_completed(futures):
            yield future.result()

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True)
        for kernel in self._kernels:
            kernel.shutdown()


def run_all(batch: Batch, workers: int = 1, submit: Callable | None = None,
            progress: bool = True, warm_kernels: bool = True,
            pool: Workers | None = None) -> list[Run]:
    """Execute the runs in parallel threads (``pool``, or ``workers`` new ones), or with
    ``submit`` (e.g. a Dask client's) when given. Each thread keeps one warm kernel and
    executes its runs in it one after another; ``warm_kernels=False`` starts a fresh
    kernel per run."""
    bar = tqdm(total=len(batch.runs), desc=f"runs ({batch.profile})", unit="run",
               disable=not progress)
    finished: list[Run] = []
    if submit is not None:
        from distributed import as_completed as dask_completed

        futures = [submit(execute, run, pure=False) for run in batch.runs]
        for future in dask_completed(futures):
            finished.append(future.result())
            bar.update(1)
    else:
        with contextlib.ExitStack() as stack:
            pool = pool or stack.enter_context(Workers(workers, warm_kernels))
            for run in pool.as_completed(execute, run_order(batch.runs)):
                finished.append(run)
                bar.update(1)
    bar.close()
    by_label = {run.label: run for run in finished}  # back in the plan's order
    batch.runs = [by_label.get(run.label, run) for run in batch.runs]
    return batch.runs


def run_reports(batch: Batch, reports: Iterable[str] = REPORTS, progress: bool = False,
                warm_kernels: bool = True, pool: Workers | None = None) -> list[Run]:
    """Execute the data chapter (into ``exploration/``) and the report chapters (04-06)
    on whatever finished runs the output folder holds, in parallel on ``pool``'s kernels
    (else in one new warm kernel; ``warm_kernels=False``: a fresh kernel each). Each
    writes files of its own; none reads another's. Returned in the order of ``reports``."""
    reports = list(reports)
    bar = tqdm(total=len(reports), desc="reports", unit="notebook", disable=not progress)
    done = {}
    with contextlib.ExitStack() as stack:
        pool = pool or stack.enter_context(Workers(1, warm_kernels))
        for report in pool.as_completed(lambda name, kernel: _run_report(batch, name, kernel),
                                        reports):
            done[report.label] = report
            bar.update(1)
    bar.close()
    return [done[name] for name in reports]


def _run_report(batch: Batch, name: str, kernel: runs.WarmKernel | None) -> Run:
    """One report chapter; never raises (the status says what happened)."""
    path = batch.out / runs.NOTEBOOKS[name]
    if name == "explore":
        parameters = {"data_dir": str(batch.data_dir), "out_dir": str(batch.out / "exploration")}
    else:
        known = runs.notebook_defaults(name)
        parameters = {k: v for k, v in {"results_dir": str(batch.out),
                                        "data_dir": str(batch.data_dir)}.items() if k in known}
    report = Run(name, batch.out, parameters, name)
    start = time.perf_counter()
    try:
        runs.execute_in_place(name, path, report.parameters, kernel=kernel)
        report.status = "ok"
    except Exception as err:  # noqa: BLE001
        report.status = "failed"
        report.failed_notebook = str(path.with_name(path.stem + ".failed.ipynb"))
        report.error = describe_error(err)
    report.seconds = round(time.perf_counter() - start, 1)
    return report


def summary_table(all_runs: list[Run]) -> pd.DataFrame:
    return pd.DataFrame([{"run": r.label, "status": r.status, "seconds": r.seconds,
                          "folder": str(r.out_dir), "error": r.error,
                          "notebook": r.failed_notebook} for r in all_runs])


def run_batch(profile: str, data_dir: str | Path, out: str | Path, *, workers: int | None = None,
              executor: str = "local", scheduler: str | None = None, reports: bool = True,
              progress: bool = True, warm_kernels: bool = True, **selection) -> pd.DataFrame:
    """Plan, print the cost of end-to-end detector runs if any, prepare features, execute
    every run, then the reports; return the summary. ``warm_kernels=False`` starts a
    fresh kernel for every notebook (slower; the same numbers)."""
    from cxrlib.cost import cost_message

    batch = plan(profile, data_dir, out, **selection)
    fetch_weights(batch)
    cost = end_to_end_cost(batch, progress=progress)
    if cost is not None:
        print(cost_message(cost), flush=True)
    batch.out.mkdir(parents=True, exist_ok=True)
    workers = workers or default_workers()
    started = time.perf_counter()
    timer = machine.Timer()
    if executor not in ("local", "dask"):
        raise ConfigError(f"unknown executor {executor!r}; choose local or dask")
    if executor == "dask" and not scheduler:
        raise ConfigError("--executor dask needs --scheduler ADDRESS")
    with timer("prepare_features"):
        prepare_features(batch, progress=progress)
    with Workers(workers, warm_kernels) as pool:  # the runs' kernels, then the reports'
        with timer("runs"):
            if executor == "dask":
                from distributed import Client

                with Client(scheduler) as client:
                    finished = run_all(batch, submit=client.submit, progress=progress)
            else:
                finished = run_all(batch, progress=progress, pool=pool)
        with timer("reports"):
            report_runs = run_reports(batch, progress=progress, pool=pool) if reports else []
    table = summary_table(finished + report_runs)
    io.write_csv(batch.out / "batch_summary.csv", table)
    io.write_json(batch.out / "batch.json", {
        "profile": profile, "data_dir": str(batch.data_dir), "selection": selection,
        "workers": workers, "executor": executor, "warm_kernels": warm_kernels,
        "seconds": round(time.perf_counter() - started, 1),
        "phases_s": {name: round(seconds, 1) for name, seconds in timer.seconds.items()},
        "counts": table["status"].value_counts().to_dict(), "environment": machine.environment()})
    return table
