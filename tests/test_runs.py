"""Run machinery: command-line values, atomic JSON, notebook runs and the ``cxr`` command.

The notebook runs execute ``notebooks/01_data_exploration.ipynb`` through the installed
``cxr`` entry point in a subprocess (about 10 s for a run); they are marked slow.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cxrlib import runs
from cxrlib.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

CXR = Path(sys.executable).with_name("cxr")
NOTEBOOK = "01_data_exploration.ipynb"


def cxr(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [str(CXR)] if CXR.is_file() else [sys.executable, "-m", "cxrlib.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _metadata_rows(data_dir: Path) -> int:
    with open(data_dir / "covid-chestxray-dataset" / "metadata.csv", newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


def _error_outputs(notebook: Path) -> list[dict]:
    cells = json.loads(notebook.read_text())["cells"]
    return [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


# --------------------------------------------------------------------------- parse_value
@pytest.mark.parametrize("text, expected", [
    ("3", 3), ("-2", -2), ("0.25", 0.25), ("1e-4", 1e-4),
    ("true", True), ("False", False), (" TRUE ", True),
    ("none", None), ("None", None), ("null", None),
    ("[1, 2, 3]", [1, 2, 3]), ('["first", "last"]', ["first", "last"]),
    ('{"covid19": 10, "normal": "all"}', {"covid19": 10, "normal": "all"}),
    ("resnet50", "resnet50"), ("../data/sample", "../data/sample"),
    ("imagenet", "imagenet"), ("my weights.h5", "my weights.h5"),
])
def test_parse_value(text, expected):
    value = runs.parse_value(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text, expected", [(".5", 0.5), ("5.", 5.0), ("+3", 3)])
def test_parse_value_reads_every_plain_number(text, expected):
    assert runs.parse_value(text) == expected


# --------------------------------------------------------------------------- run_notebook
def test_notebook_defaults_and_unknown_names():
    defaults = runs.notebook_defaults("explore")
    assert {"data_dir", "out_dir", "min_images", "seed"} <= set(defaults)
    assert defaults["min_images"] == 3 and defaults["out_dir"] is None
    with pytest.raises(ConfigError, match="no_such_notebook"):
        runs.notebook_path("no_such_notebook")


def test_unknown_parameter_is_a_config_error_before_running(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="min_imgs") as info:
        runs.run_notebook("explore", out, {"min_imgs": 2, "seed": 1})
    assert "min_images" in str(info.value)  # lists the real parameters
    assert list(tmp_path.iterdir()) == []  # no run, .partial or .failed folder


def test_every_cxr_run_checks_parameter_values_before_a_kernel_starts(tmp_path, capfd):
    """A value the experiment refuses is one line, before the kernel's start."""
    from cxrlib import cli

    out = tmp_path / "run"
    assert cli.main(["run", "prognet", "--out", str(out), "--backbone", "resnet18"]) == 2
    error = capfd.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("cxr: error: ") and "resnet18" in error[0]
    assert list(tmp_path.iterdir()) == []  # no run, .partial or .failed folder
    runs.check_parameters("detector", {"base": "paper"})  # the published network: accepted


@pytest.mark.parametrize("name, value", [("min_images", 0), ("min_images", 2.5),
                                         ("n_thumbnails", 0), ("snapshot_dirs", ["../data"])])
def test_chapter_one_refuses_what_it_cannot_draw_before_a_kernel_starts(name, value, tmp_path):
    """No series of 0 images, no grid of 0 columns: one ConfigError naming the parameter
    and what it allows, before anything runs (the chapter's first cell checks again)."""
    with pytest.raises(ConfigError, match=rf"{name}=.* must be") as info:
        runs.run_notebook("explore", tmp_path / "run", {name: value})
    assert len(str(info.value).splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no run, .partial or .failed folder
    runs.check_parameters("explore", {"min_images": 1, "n_thumbnails": 1,
                                      "snapshot_dirs": {"copy": "../data/sample"}})


@pytest.mark.slow
def test_cxr_run_explore_writes_the_run_folder(sample_dir, tmp_path):
    out = tmp_path / "explore"
    result = cxr("run", "explore", "--data-dir", sample_dir, "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    executed = out / NOTEBOOK
    assert executed.is_file() and str(executed.resolve()) in result.stdout
    assert _error_outputs(executed) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cohen"]["rows"] == _metadata_rows(sample_dir)
    assert summary["pneumonia"]["images"] > 0
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert {"findings.png", "views.png", "classes.png", "timeline.png"} <= set(figures)
    assert all((out / "figures" / name).stat().st_size > 1000 for name in figures)
    assert (out / "sequences.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["explore"]  # no .partial left


@pytest.mark.slow
def test_the_prognet_chapter_runs_on_series_of_every_length(sample_dir, tmp_path):
    """seq_len=None (each patient's whole series, masked): every cell, the exercises'
    solutions included, runs without an error."""
    out = tmp_path / "prognet"
    result = cxr("run", "prognet", "--backbone", "alexnet", "--seed", "0", "--data-dir",
                 sample_dir, "--out", out, "--weights", "none", "--quiet", "-p", "seq_len", "none",
                 "-p", "epochs", "3", "-p", "image_size", "32", "-p", "cache_dir", tmp_path / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    executed = out / "02_prognet.ipynb"
    assert _error_outputs(executed) == []
    assert json.loads((out / "metrics.json").read_text())["parameters"]["seq_len"] is None


@pytest.mark.slow
def test_failed_run_is_kept_aside(tmp_path):
    out = tmp_path / "explore"
    result = cxr("run", "explore", "-p", "data_dir", "/nonexistent", "--out", out, "--quiet")
    assert result.returncode != 0
    failed = tmp_path / "explore.failed"
    assert (failed / NOTEBOOK).is_file()
    assert _error_outputs(failed / NOTEBOOK)  # the traceback is in the notebook
    assert not out.exists()
    assert not (tmp_path / "explore.partial").exists()


# --------------------------------------------------------------------------- cxr data summary
def test_cxr_data_summary_json(sample_dir):
    result = cxr("data", "summary", "--data-dir", sample_dir, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["cohen"]["rows"] == _metadata_rows(sample_dir)
    assert summary["cohen"]["schema"] == "2020-06"
    assert summary["pneumonia"]["images"] > 0
    assert summary["data_dir"] == str(sample_dir)


def test_cxr_data_summary_on_an_empty_folder(tmp_path):
    result = cxr("data", "summary", "--data-dir", tmp_path, "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "cxr: error" in result.stderr and str(tmp_path) in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- warm kernels
def _notebook(path: Path, *sources: str) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, path)
    return path


def _outputs(path: Path) -> tuple[list[int], str]:
    cells = json.loads(path.read_text())["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))
    return [c["execution_count"] for c in cells], text


def test_warm_kernel_runs_notebooks_in_one_process_with_a_fresh_namespace(tmp_path):
    """One kernel process and one client for notebook after notebook; each starts with a
    clean namespace, and the reset between them frees what the last one left in reference
    cycles, also once it has frozen what outlives every run (``gc.freeze``)."""
    probe = _notebook(tmp_path / "probe.ipynb",
                      "import builtins, gc, os\nprint('pid', os.getpid())\n"
                      "print('namespace', globals().get('leftover', 'clean'))\n"
                      "print('frozen', gc.get_freeze_count() > 0)\n"
                      "last = getattr(builtins, 'cxr_probe', None)\n"
                      "print('cycle', 'none' if last is None else 'alive' if last() else 'freed')",
                      "import weakref\nclass Cycle: pass\n"
                      "leftover = Cycle(); leftover.me = leftover\n"
                      "builtins.cxr_probe = weakref.ref(leftover)")
    failing = _notebook(tmp_path / "failing.ipynb", "raise ValueError('broken on purpose')")
    with runs.WarmKernel() as kernel:
        runs._execute(probe, tmp_path / "first.ipynb", {}, False, None, kernel)
        client = kernel.kc
        runs._execute(probe, tmp_path / "second.ipynb", {}, False, None, kernel)
        runs._execute(probe, tmp_path / "third.ipynb", {}, False, None, kernel)
        assert kernel.started == 1 and kernel.runs == 3
        assert kernel.kc is client and client.channels_running  # one client, kept open
        with pytest.raises(Exception, match="broken on purpose"):
            runs._execute(failing, tmp_path / "failed.ipynb", {}, False, None, kernel)
        assert kernel.km is None and kernel.kc is None  # a failed notebook takes its kernel
        assert not client.channels_running
        runs._execute(probe, tmp_path / "fourth.ipynb", {}, False, None, kernel)
        assert kernel.started == 2 and kernel.kc is not client
    assert kernel.km is None and kernel.kc is None
    first, second, third, fourth = (_outputs(tmp_path / f"{n}.ipynb")
                                    for n in ("first", "second", "third", "fourth"))
    assert first[0] == second[0] == fourth[0] == [1, 2]  # the counter restarts each time
    assert "namespace clean" in second[1]  # nothing of the first notebook is left
    assert "frozen False" in first[1] and "cycle none" in first[1]
    assert "frozen True" in second[1] and "cycle freed" in second[1]  # before the freeze
    assert "cycle freed" in third[1]  # made after the freeze, freed all the same
    assert "frozen False" in fourth[1] and "cycle none" in fourth[1]  # a new process
    pid = lambda text: text.split("pid ")[1].split()[0]  # noqa: E731
    assert pid(first[1]) == pid(second[1]) == pid(third[1]) != pid(fourth[1])
