"""Floor 6: run one notebook with papermill (the notebook writes its files with ``cxrlib.io``).

A run folder holds the executed notebook, ``metrics.json`` (written last: its presence
means the run finished), ``predictions.csv``, ``history.csv``, figures and ``model/`` (what
it trained, for ``cxr predict``). Runs execute in
``<out>.partial/`` and are renamed to ``<out>`` only when the notebook completed, so a
killed run never leaves a folder that looks finished.

A ``WarmKernel`` runs notebook after notebook in one kernel process, so a batch pays for
starting Python and importing TensorFlow once per worker instead of once per run. Between
two notebooks it clears the namespace, Keras' session and the open figures; every run
seeds everything it draws (``training.set_seed``), so a run computes the same numbers in a
warm kernel as in a fresh one (``tests/test_batch.py`` checks it byte for byte). A notebook
that fails or is interrupted takes its kernel with it: the next run gets a fresh one.
"""
from __future__ import annotations

import ast
import contextvars
import functools
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping

from cxrlib import paths
from cxrlib.errors import ConfigError
from cxrlib.io import write_json

log = logging.getLogger(__name__)

NOTEBOOKS = {
    "explore": "01_data_exploration.ipynb",
    "prognet": "02_prognet.ipynb",
    "detector": "03_detector.ipynb",
    "comparisons": "04_comparisons.ipynb",
    "qualitative": "05_qualitative.ipynb",
    "use": "06_use_a_model.ipynb",
}
PATH_PARAMETERS = ("data_dir", "out_dir", "cache_dir", "results_dir")


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (the notebooks are not installed as data)."""
    folder = paths.repository() / "notebooks"
    if not folder.is_dir():
        raise ConfigError(f"notebooks folder not found at {folder}; run from a clone of the "
                          "repository (pip install -e .)")
    return folder


def notebook_path(name: str) -> Path:
    """Path of a notebook by short name (``prognet``) or file name."""
    file = NOTEBOOKS.get(name, name)
    path = notebooks_dir() / file
    if not path.is_file():
        raise ConfigError(f"unknown notebook {name!r}; choose one of {', '.join(NOTEBOOKS)}")
    return path


def notebook_defaults(name: str) -> dict[str, Any]:
    """The notebook's ``parameters`` cell as {name: default value} (a fresh copy)."""
    return dict(_parsed_defaults(name))


@functools.lru_cache(maxsize=None)
def _parsed_defaults(name: str) -> dict[str, Any]:
    """Parse a notebook's parameters once per process (a batch asks for every run)."""
    import papermill

    inferred = papermill.inspect_notebook(str(notebook_path(name)))
    defaults = {}
    for key, spec in inferred.items():
        try:
            defaults[key] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError):
            defaults[key] = spec["default"]
    return defaults


def parse_value(text: str) -> Any:
    """A command-line value as Python: numbers, true/false/none, JSON lists, else text."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, (int, float, list, dict, tuple)) else text


#: Run in a warm kernel after each notebook (silently, outside the notebook): a fresh
#: namespace and execution counter, no Keras models or open figures left over, then one
#: garbage collection. IPython's reset collects too (before it clears the namespace), and
#: a full collection walks every object the imports made (TensorFlow, Keras, pandas: about
#: 0.4 s each time on a 2-core CPU), so the first reset freezes what has survived it
#: (``gc.freeze``: the modules and what they keep, alive as long as the kernel) and the
#: later collections walk only what the runs since then made (about 0.05 s).
RESET_CODE = """\
get_ipython().reset(new_session=True)
import gc as _gc, sys as _sys
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
if "keras" in _sys.modules:
    _sys.modules["keras"].backend.clear_session(free_memory=False)
_gc.collect()
if not _gc.get_freeze_count():
    _gc.freeze()
del _gc, _sys
"""


class WarmKernel:
    """One Jupyter kernel that executes notebook after notebook (see the module's doc).

    ``max_runs`` bounds how many notebooks one kernel process executes before it is
    replaced, so memory a library keeps per run cannot grow without limit. Use it as a
    context manager, or call ``shutdown`` when done.
    """

    def __init__(self, kernel_name: str | None = None, max_runs: int = 40):
        self.kernel_name = kernel_name or "python3"
        self.max_runs = max_runs
        self.km = None
        self.kc = None  # our client of the current kernel, its channels open (see client)
        self.runs = 0  # notebooks executed by the current kernel process
        self.started = 0  # kernel processes started
        # jupyter_client keeps its event loop in a context variable: ours lives in a context
        # of its own, so that the caller's (a batch's main thread, whose context Dask copies
        # into its task threads) never holds a loop that two threads could then share.
        self._context = contextvars.Context()

    def _call(self, function, *args, **kwargs):
        return self._context.run(function, *args, **kwargs)

    def manager(self):
        """The kernel manager of a live kernel, started (or replaced) when needed."""
        if self.km is not None and (self.runs >= self.max_runs
                                    or not self._call(self.km.is_alive)):
            self.shutdown()
        if self.km is None:
            from jupyter_client.manager import KernelManager

            self.km = KernelManager(kernel_name=self.kernel_name)
            self._call(self.km.start_kernel, cwd=str(notebooks_dir()))
            self.runs = 0
            self.started += 1
        return self.km

    def client(self):
        """A client of the live kernel with its channels open, kept for the kernel's
        life: papermill executes each notebook through it, and the reset runs through it.
        (A new client per notebook, and another per reset, each waited for the kernel's
        first reply and then for IOPub to stay quiet for 0.2 s.)"""
        km = self.manager()
        if self.kc is None:
            kc = km.client()
            self._call(kc.start_channels)
            try:
                self._call(kc.wait_for_ready, timeout=60)
            except BaseException:
                self._call(kc.stop_channels)
                raise
            kc.allow_stdin = False
            self.kc = kc
        return self.kc

    def finished(self, ok: bool) -> None:
        """After a notebook: reset the kernel for the next one, or drop it if the
        notebook failed (its state is unknown) or the reset does not succeed."""
        self.runs += 1
        if not ok or not self._call(self._reset):
            self.shutdown()

    def _reset(self) -> bool:
        try:
            reply = self.kc.execute_interactive(RESET_CODE, silent=True, store_history=False,
                                                timeout=120)
            return reply["content"]["status"] == "ok"
        except Exception as err:  # noqa: BLE001 - a kernel we cannot reset is replaced
            log.warning("could not reset the kernel (%s); starting a fresh one", err)
            return False

    def shutdown(self) -> None:
        if self.kc is not None:
            try:
                self._call(self.kc.stop_channels)
            except Exception as err:  # noqa: BLE001 - its sockets may be gone already
                log.debug("kernel client: %s", err)
            self.kc = None
        if self.km is not None:
            try:
                self._call(self.km.shutdown_kernel, now=True)
            except Exception as err:  # noqa: BLE001 - it may be dead already
                log.debug("kernel shutdown: %s", err)
            self.km = None

    def __enter__(self) -> "WarmKernel":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


@functools.lru_cache(maxsize=None)
def _register_warm_engine() -> str:
    """Register (once per process) a papermill engine that executes in the kernel of a
    given kernel manager (``km``) through a given client of it (``kc``, channels open),
    leaving both as they are afterwards."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.utils import merge_kwargs, remove_args

    class WarmKernelEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False,
                                     stdout_file=None, stderr_file=None, start_timeout=60,
                                     execution_timeout=None, kc=None, **kwargs):
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout,
                                 startup_timeout=start_timeout, kernel_name=kernel_name,
                                 log=logging.getLogger("papermill"), log_output=log_output,
                                 stdout_file=stdout_file, stderr_file=stderr_file)
            client = PapermillNotebookClient(nb_man, **final)
            client.kc = kc  # nbclient starts no client of its own when it has one
            return client.execute()

    papermill_engines.register("cxr-warm", WarmKernelEngine)
    return "cxr-warm"


def _execute(source: Path, executed: Path, parameters: dict, progress: bool,
             kernel_name: str | None, kernel: WarmKernel | None) -> None:
    """papermill.execute_notebook, in ``kernel`` when one is given, else a fresh kernel."""
    import papermill

    extra: dict[str, Any] = {}
    if kernel is not None:
        extra = {"engine_name": _register_warm_engine(), "km": kernel.manager(),
                 "kc": kernel.client()}
    ok = False
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=parameters,
                                   cwd=str(source.parent), progress_bar=progress,
                                   kernel_name=kernel_name, **extra)
        ok = True
    finally:
        if kernel is not None:
            kernel.finished(ok)


def run_notebook(name: str, out_dir: str | Path, parameters: Mapping[str, Any] | None = None,
                 progress: bool = False, kernel_name: str | None = None,
                 kernel: WarmKernel | None = None) -> Path:
    """Execute a notebook into ``out_dir`` with papermill; return the executed notebook.

    Unknown parameter names raise ``ConfigError`` before anything runs. The run happens in
    ``<out_dir>.partial`` and is renamed into place when it succeeds; on failure the
    executed notebook (with the traceback) is kept in ``<out_dir>.failed`` and the error
    re-raised. ``kernel``: run in that warm kernel instead of starting a fresh one.
    """
    source = notebook_path(name)
    parameters = dict(parameters or {})
    check_parameters(name, parameters)
    out_dir = Path(out_dir).resolve()
    partial = out_dir.with_name(out_dir.name + ".partial")
    failed = out_dir.with_name(out_dir.name + ".failed")
    for stale in (partial, failed):
        shutil.rmtree(stale, ignore_errors=True)
    partial.mkdir(parents=True)
    parameters["out_dir"] = str(partial)
    for key in PATH_PARAMETERS:
        if key in parameters and parameters[key] is not None and key != "out_dir":
            parameters[key] = str(Path(parameters[key]).resolve())
    executed = partial / source.name
    try:
        _execute(source, executed, parameters, progress, kernel_name, kernel)
    except BaseException:
        if partial.exists():
            os.replace(partial, failed)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(partial, out_dir)
    _record_final_path(out_dir)
    return out_dir / source.name


def _record_final_path(out_dir: Path) -> None:
    """The run wrote ``paths.out_dir`` as its ``.partial`` folder: name the final one."""
    path = out_dir / "metrics.json"
    if path.is_file():
        payload = json.loads(path.read_text())
        payload.setdefault("paths", {})["out_dir"] = str(out_dir)
        write_json(path, payload)


def check_parameters(name: str, parameters: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` for parameter names the notebook does not have, and for
    values an experiment's ``Config.check`` (or chapter 1's ``chapters.check_explore``)
    refuses."""
    known = notebook_defaults(name)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ConfigError(f"{notebook_path(name).name} has no parameter(s) {unknown}; "
                          f"its parameters are: {', '.join(sorted(known))}")
    if name in ("prognet", "detector"):  # values too, before a kernel starts
        from cxrlib import detector, prognet

        experiment = {"prognet": prognet, "detector": detector}[name]
        experiment.config_from({**known, **parameters})
    if name == "explore":
        from cxrlib import chapters

        chapters.check_explore({**known, **parameters})


def execute_in_place(name: str, output: str | Path, parameters: Mapping[str, Any],
                     progress: bool = False, kernel: WarmKernel | None = None) -> Path:
    """Execute a report notebook (01, 04, 05, 06) into the file ``output``; the notebook writes its
    tables and figures itself. On failure the executed notebook is kept beside it as
    ``<name>.failed.ipynb`` and the error re-raised. ``kernel``: as in ``run_notebook``."""
    check_parameters(name, parameters)
    source, output = notebook_path(name), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.stem + ".partial.ipynb")
    try:
        _execute(source, partial, dict(parameters), progress, None, kernel)
    except BaseException:
        if partial.exists():
            os.replace(partial, output.with_name(output.stem + ".failed.ipynb"))
        raise
    os.replace(partial, output)
    output.with_name(output.stem + ".failed.ipynb").unlink(missing_ok=True)
    return output


def is_finished(run_dir: str | Path) -> bool:
    """True when the run folder holds a complete, parseable ``metrics.json`` and the model
    it trained (``model/model.json``; runs made before models were saved run again)."""
    path = Path(run_dir) / "metrics.json"
    try:
        finished = bool(json.loads(path.read_text()).get("metrics"))
    except (OSError, ValueError, AttributeError):
        return False
    return finished and (Path(run_dir) / "model" / "model.json").is_file()
