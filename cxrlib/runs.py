"""Floor 6: run one notebook with papermill (the notebook writes its files with ``cxrlib.io``).

A run folder holds the executed notebook, ``metrics.json`` (written last: its presence
means the run finished), ``predictions.csv``, ``history.csv``, figures and ``model/`` (what
it trained, for ``cxr predict``). Runs execute in
``<out>.partial/`` and are renamed to ``<out>`` only when the notebook completed, so a
killed run never leaves a folder that looks finished.
"""
from __future__ import annotations

import ast
import functools
import json
import logging
import os
import shutil
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

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
    folder = Path(__file__).resolve().parents[1] / "notebooks"
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


def run_notebook(name: str, out_dir: str | Path, parameters: Mapping[str, Any] | None = None,
                 progress: bool = False, kernel_name: str | None = None) -> Path:
    """Execute a notebook into ``out_dir`` with papermill; return the executed notebook.

    Unknown parameter names raise ``ConfigError`` before anything runs. The run happens in
    ``<out_dir>.partial`` and is renamed into place when it succeeds; on failure the
    executed notebook (with the traceback) is kept in ``<out_dir>.failed`` and the error
    re-raised.
    """
    import papermill

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
        papermill.execute_notebook(str(source), str(executed), parameters=parameters,
                                   cwd=str(source.parent), progress_bar=progress,
                                   kernel_name=kernel_name)
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
    """Raise ``ConfigError`` for parameter names the notebook does not have."""
    known = notebook_defaults(name)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ConfigError(f"{notebook_path(name).name} has no parameter(s) {unknown}; "
                          f"its parameters are: {', '.join(sorted(known))}")


def execute_in_place(name: str, output: str | Path, parameters: Mapping[str, Any],
                     progress: bool = False) -> Path:
    """Execute a report notebook (01, 04, 05, 06) into the file ``output``; the notebook writes its
    tables and figures itself. On failure the executed notebook is kept beside it as
    ``<name>.failed.ipynb`` and the error re-raised."""
    import papermill

    check_parameters(name, parameters)
    source, output = notebook_path(name), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.stem + ".partial.ipynb")
    try:
        papermill.execute_notebook(str(source), str(partial), parameters=dict(parameters),
                                   cwd=str(source.parent), progress_bar=progress)
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


#: Lines that kernels and TensorFlow's C++ code print to the process's stderr although
#: nothing is wrong: CUDA probes on machines without a GPU, a tf.data attribute newer than
#: the runtime, the kernel's interrupt at shutdown, and start-up notices.
HARMLESS_STDERR = (
    "failed call to cuInit", "Could not find cuda drivers", "cudart_stub.cc", "cuda_dnn.cc",
    "cuda_fft.cc", "cuda_blas.cc", "computation placer already registered",
    "oneDNN custom operations are on", "cpu_feature_guard.cc",
    "To enable the following instructions", "All log messages before absl::InitializeLog",
    "use_unbounded_threadpool", "KeyboardInterrupt caught in kernel",
    "Kernel is running over TCP without encryption",
)


@contextmanager
def quiet_native_stderr(harmless: tuple[str, ...] = HARMLESS_STDERR) -> Iterator[None]:
    """Drop known-harmless lines written to file descriptor 2 by native code and by child
    processes (notebook kernels); every other line still reaches the terminal. Python's own
    ``sys.stderr`` (progress bars, warnings) keeps writing to the terminal directly."""
    sys.stderr.flush()
    terminal = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    markers = [h.encode() for h in harmless]

    def pump() -> None:
        with os.fdopen(read, "rb") as pipe:
            for line in pipe:
                if not any(m in line for m in markers):
                    os.write(terminal, line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(terminal), "w", buffering=1)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(terminal, 2)  # closes the pipe's last writer in this process
        thread.join(timeout=5)
        os.close(terminal)
