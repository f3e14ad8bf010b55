"""The benchmark runner: structure of its JSON and Markdown (never its speed)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FIXED_EPOCH_S_AT_BATCH_4

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is not installed: it runs from the clone
    sys.path.insert(0, str(REPO))

from benchmarks import render, scaling, stats  # noqa: E402

STAT_KEYS = {"median", "min", "max", "n", "values"}


def test_summarize_and_fit() -> None:
    summary = stats.summarize([3.0, 1.0, 2.0])
    assert summary["median"] == 2.0 and (summary["min"], summary["max"]) == (1.0, 3.0)
    fit = stats.linear_fit([1, 2, 4], [2.0, 4.0, 8.0])
    assert fit["slope"] == pytest.approx(2.0) and fit["r2"] == pytest.approx(1.0)


@pytest.mark.parametrize("suffix", [".jpeg", ".png"])
def test_distinct_copy_keeps_pixels_and_changes_bytes(tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"x{suffix}"
    Image.fromarray(np.arange(48 * 40, dtype=np.uint8).reshape(40, 48)).save(source)
    copy = scaling.distinct_copy(source, tmp_path / "copy" / source.name, "cxr-copy-1")
    assert copy.read_bytes() != source.read_bytes()
    assert np.array_equal(np.asarray(Image.open(copy)), np.asarray(Image.open(source)))


def test_update_readme_needs_both_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\n{render.START}\nold\n{render.END}\n\nrest\n")
    assert "updated" in render.update_readme(readme, "| a |\n")
    assert readme.read_text() == f"# Title\n\n{render.START}\n| a |\n{render.END}\n\nrest\n"
    plain = tmp_path / "PLAIN.md"
    plain.write_text("# No markers\n")
    assert "untouched" in render.update_readme(plain, "| a |\n")
    assert plain.read_text() == "# No markers\n"


@pytest.mark.slow
def test_quick_benchmark_writes_json_and_markdown(sample_dir: Path, tmp_path: Path) -> None:
    from benchmarks.suite import DEFAULT_SECTIONS, main

    out = tmp_path / "bench" / "benchmark.json"
    # every default section but paper_detector, whose two Table 2 networks take half a
    # minute to build and trace (test_paper_detector_section_measures_and_renders); the
    # threads section at one thread count (each count is a new process importing
    # TensorFlow, about 7 CPU-s)
    only = [name for name in DEFAULT_SECTIONS if name != "paper_detector"]
    assert main(["--quick", "--data-dir", str(sample_dir), "--out", str(out),
                 "--work-dir", str(tmp_path), "--threads", "1", "--only", *only]) == 0
    result = json.loads(out.read_text())
    assert result["complete"] is True
    assert result["paper_detector"]["status"].startswith("skipped")
    assert {"cpu_model", "logical_cores", "usable_cores", "memory_gb"} <= set(result["machine"])
    assert {"python", "tensorflow", "keras", "numpy"} <= set(result["versions"])
    assert result["spread"] == "min-max"

    backbones = result["settings"]["backbones"]
    for name in backbones:
        block = result["extraction"]["backbones"][name]
        for key in ("extract_images_per_s", "predict_images_per_s", "ratio"):
            assert STAT_KEYS <= set(block[key]) and block[key]["median"] > 0
        assert 0 < block["ratio_ceiling"] <= 1 and block["share_of_ceiling"] > 0
        naive = result["cached_vs_naive"]["backbones"][name]
        assert naive["target"]["speedup"] > 0
        assert naive["equivalent"] and naive["max_abs_diff"] <= naive["atol"]

    threads = result["scaling"]["threads"]["settings"]
    assert set(threads) == {str(n) for n in result["settings"]["threads"]}
    assert all(STAT_KEYS <= set(b["extract_images_per_s"]) for b in threads.values())
    patients = result["scaling"]["patients"]
    sizes = list(patients["sizes"].values())
    assert [b["n_patients"] for b in sizes] == [sizes[0]["n_patients"] * f
                                               for f in result["settings"]["factors"]]
    assert all(b["distinct_images"] == b["n_images"] for b in sizes)  # copies miss the cache
    assert set(patients["fit_total_s"]) == {"slope", "intercept", "r2"}
    assert result["whole"]["status"].startswith("skipped")

    markdown = out.with_suffix(".md").read_text()
    assert markdown == render.render_markdown(result)
    assert "| alexnet |" in markdown and "Speed-up" in markdown


def test_ceiling_is_the_overlap_bound() -> None:
    from benchmarks.extraction import ceiling

    block = {"predict_images_per_s": {"median": 200.0}, "decode_images_per_s": {"median": 400.0},
             "ratio": {"median": 0.72}}
    bound = ceiling(block, cores=2)
    # convolution 2/200 = 10 ms of CPU per image, decoding 2.5 ms: at best 10 / 12.5
    assert bound["ratio_ceiling"] == pytest.approx(0.8)
    assert bound["share_of_ceiling"] == pytest.approx(0.9)
    assert ceiling(block, cores=8)["ratio_ceiling"] == pytest.approx(40 / 42.5)


def test_run_measured_reports_wall_time_memory_and_exit_code(tmp_path: Path) -> None:
    from benchmarks.whole import run_measured

    command = [sys.executable, "-c", "import sys; b = bytearray(50 * 2**20); sys.exit(3)"]
    block = run_measured(command, {}, tmp_path / "logs" / "run.log")
    assert block["exit_code"] == 3 and block["wall_s"] > 0
    assert block["peak_rss_mb"] >= block["peak_rss_single_process_mb"] > 0
    assert (tmp_path / "logs" / "run.log").is_file()


def test_run_measured_adds_up_cpu_by_recipe_line_and_kind(tmp_path: Path) -> None:
    """A make target's processes, polled: each recipe line's CPU is its own (and each
    command's of a line that runs two side by side), a process that maps TensorFlow's
    library (here a stand-in file of that name) is counted, and the polled total agrees
    with what the operating system counted."""
    from benchmarks.whole import run_measured

    library = tmp_path / "libtensorflow_framework.so.2"
    library.write_bytes(b"\0" * 4096)
    busy = "import time; t = time.process_time(); exec('while time.process_time() - t < 1.5: pass')"
    mapped = (f"import mmap, time; f = open({str(library)!r}, 'rb'); "
              "m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ); t = time.process_time(); "
              "exec('while time.process_time() - t < 3.0: pass')")
    (tmp_path / "busy.py").write_text(busy)
    (tmp_path / "side.py").write_text(busy.replace("1.5", "1.0"))
    (tmp_path / "mapped.py").write_text(mapped)
    (tmp_path / "Makefile").write_text(  # the second line runs in a shell, side by side
        f"all:\n\t{sys.executable} busy.py\n"
        f"\t{sys.executable} mapped.py & m=$$!; {sys.executable} side.py; wait $$m\n")
    block = run_measured(["make", "-s", "-C", str(tmp_path)], {**os.environ},
                         tmp_path / "make.log", cwd=tmp_path)
    summary = block["processes"]
    phases = summary["phases"]
    assert list(phases) == ["(make itself)", "python busy.py", "python mapped.py",
                            "python side.py"], phases
    assert phases["python side.py"]["cpu_s"] == pytest.approx(1.0, abs=0.5)
    assert phases["python busy.py"]["cpu_s"] == pytest.approx(1.5, abs=0.6)
    assert phases["python busy.py"]["tensorflow_processes"] == 0
    assert phases["python mapped.py"]["tensorflow_processes"] == 1
    assert phases["python mapped.py"]["cpu_s"] > 2.0
    assert set(phases["python mapped.py"]["kinds"]) == {"other"}
    assert set(phases["(make itself)"]["kinds"]) == {"other"}
    assert phases["(make itself)"]["processes"] == 2  # make and the shell of the second line
    assert summary["tensorflow_processes"] == 1 and summary["processes"] == 5
    assert summary["polled_cpu_s"] == pytest.approx(summary["all_children_cpu_s"], abs=0.8)


def test_phase_labels_name_the_recipe_line() -> None:
    from benchmarks.processes import kind_of, phase_label

    assert phase_label(".venv/bin/python -m pytest -n 2 --dist loadgroup tests") == "pytest tests"
    assert phase_label("/x/.venv/bin/cxr data sample --out data/sample") == "cxr data sample"
    assert phase_label(".venv/bin/cxr batch --profile quick --out q") == "cxr batch (quick)"
    assert phase_label("/bin/sh -c cd x && .venv/bin/cxr batch") == "cd x"
    assert phase_label("/bin/sh -c .venv/bin/cxr batch --profile sample | tee l") == "cxr batch (sample)"
    assert phase_label("/usr/bin/python3 -u child.py --flag") == "python3 child.py"
    assert kind_of("/v/bin/python -m ipykernel_launcher -f k.json") == "notebook kernel"
    assert kind_of("/v/bin/python -u -c import sys;exec(eval(sys.stdin.readline()))") == "test process"
    assert kind_of("/v/bin/python -m pytest -n 2 tests") == "test process"
    assert kind_of("/v/bin/python /v/bin/cxr batch --profile quick") == "cxr command"
    assert kind_of("make -C /tmp/pytest-of-root/x test") == "other"  # a path is not a program


def _earlier_result() -> dict:
    stat = {"median": 1.0, "min": 1.0, "max": 1.0, "n": 1, "values": [1.0]}
    return {
        "benchmark": "cxr-repro", "schema_version": 1, "complete": True,
        "started": "2026-11-01T00:00:00", "command": "python -m benchmarks",
        "settings": {"sections": ["extraction"]}, "spread": "min-max",
        "data": {"data_dir": "/x", "data_dir_shown": "../shared/data", "kind": "real images"},
        "machine": {"cpu_model": "CPU", "logical_cores": 2, "physical_cores": 2,
                    "usable_cores": 2, "memory_gb": 8, "os": "Linux",
                    "load_average_start": [0.1, 0.1, 0.1]},
        "versions": {"python": "3.11"},
        "extraction": {"status": "ok", "image_size": 224, "images": 4, "repeats": 1,
                       "goal": 0.9, "backbones": {"alexnet": {
                           "extract_images_per_s": stat, "predict_images_per_s": stat,
                           "ratio": stat, "meets_goal": True}}},
        "cached_vs_naive": {"status": "skipped: not selected (--only)"},
        "scaling": {"threads": {"status": "skipped: not selected (--only)"},
                    "patients": {"status": "skipped: not selected (--only)"}},
        "whole": {"status": "skipped: not requested (add --whole)"},
    }


def test_update_measures_only_the_chosen_section_and_keeps_the_rest(
        sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import suite, whole

    earlier = tmp_path / "benchmark.json"
    earlier.write_text(json.dumps(_earlier_result()))
    calls = []

    def fake_whole(profile, data_dir, work_dir, log_dir, extra, log=print, cache_dir=None,
                   name="whole"):
        calls.append((profile, Path(log_dir)))
        return {"profile": profile, "data_dir": str(data_dir), "data_dir_shown": "data",
                "runs": {mode: {"wall_s": 120.0, "exit_code": 0, "peak_rss_mb": 2048.0,
                                "peak_rss_single_process_mb": 1024.0, "workers": 2,
                                "run_counts": {"ok": 52},
                                "run_seconds_by_kind": {"prognet": {"runs": 40, "seconds": 600.0}}}
                         for mode in ("cold", "warm")}}

    monkeypatch.setattr(whole, "run", fake_whole)
    code = suite.main(["--update", str(earlier), "--only", "whole", "--whole-profile", "sample",
                       "--data-dir", str(sample_dir), "--work-dir", str(tmp_path),
                       "--log-dir", str(tmp_path / "logs")])
    assert code == 0 and calls == [("sample", tmp_path / "logs")]
    result = json.loads(earlier.read_text())  # written back in place
    kept = _earlier_result()
    for key in ("extraction", "cached_vs_naive", "scaling", "command", "started", "machine"):
        assert result[key] == kept[key]
    assert result["whole"]["status"] == "ok" and result["whole"]["runs"]["warm"]["wall_s"] == 120
    (update,) = result["updates"]
    assert update["settings"]["sections"] == ["whole"] and update["duration_s"] > 0
    assert result["complete"] is True

    markdown = earlier.with_suffix(".md").read_text()
    assert "| cold | 2.00 | 2.00 | 1.00 | 52 ok | 10.0 | – | – | ok |" in markdown
    assert "| alexnet |" in markdown  # the kept section is still rendered
    assert "then `python -m benchmarks --update" in markdown


def test_update_refuses_a_file_that_is_not_a_benchmark(tmp_path: Path, sample_dir: Path) -> None:
    from benchmarks import suite

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"hello": 1}))
    with pytest.raises(SystemExit, match="not a cxr-repro benchmark"):
        suite.main(["--update", str(other), "--only", "whole", "--data-dir", str(sample_dir)])


def test_batch_counts_reads_what_cxr_batch_wrote(tmp_path: Path) -> None:
    from benchmarks.whole import batch_counts

    assert batch_counts(tmp_path) == {}  # no batch.json: nothing to add
    (tmp_path / "batch.json").write_text(json.dumps(
        {"counts": {"ok": 4}, "workers": 2, "seconds": 99.0}))
    (tmp_path / "batch_summary.csv").write_text(
        "run,status,seconds,folder,error\n"
        "prognet alexnet seed 0,ok,10.0,a,\nprognet vgg16 seed 1,ok,12.0,b,\n"
        "detector cnn fold 0,ok,100.0,c,\ncomparisons,ok,5.0,d,\n")
    counts = batch_counts(tmp_path)
    assert counts["run_counts"] == {"ok": 4} and counts["batch_s"] == 99.0
    assert counts["run_seconds_by_kind"] == {
        "detector": {"runs": 1, "seconds": 100.0}, "prognet": {"runs": 2, "seconds": 22.0},
        "reports": {"runs": 1, "seconds": 5.0}}


def test_failed_sections_reads_every_stored_status() -> None:
    from benchmarks.suite import failed_sections

    result = _earlier_result()
    assert failed_sections(result) == []
    result["scaling"]["patients"] = {"status": "failed: ValueError: x"}
    result["whole"] = {"status": "failed: cold (see log)"}
    assert failed_sections(result) == ["scaling.patients", "whole"]


def test_paper_detector_section_measures_and_renders(fixed_step_cost: list) -> None:
    """The section measures each end-to-end model once with its own settings and
    extrapolates to the paper's grid (the measurement answers fixed seconds: conftest's
    ``fixed_step_cost``)."""
    from benchmarks import paper_detector

    block = paper_detector.run(image_size=32, batch_size=4, steps=3, log=lambda m: None)
    assert [call[:5] + call[6:] for call in fixed_step_cost] == [
        (kind, "paper", True, 32, 4, 3, 1) for kind in ("cnn", "cnn_lstm")]
    assert set(block["models"]) == {"cnn", "cnn_lstm"} and block["epochs"] == 200
    assert block["n_images"] == 421 and block["n_folds"] == 5
    # 200 epochs, 5 runs per model, twice with the shortcut audit
    epoch_s = FIXED_EPOCH_S_AT_BATCH_4
    for model in block["models"].values():
        assert STAT_KEYS <= set(model["train_step_s"]) and model["train_step_s"]["median"] == 0.5
        assert model["train_steps_per_epoch"] == 84 and model["epoch_s"] == epoch_s
        assert model["folds_s"] == pytest.approx(5 * 200 * epoch_s)
        assert model["folds_with_audit_s"] == pytest.approx(2 * model["folds_s"])
    grid = block["grid"]
    assert grid["with_audit_s"] == pytest.approx(
        sum(m["folds_with_audit_s"] for m in block["models"].values()))
    assert grid["without_audit_hours"] == pytest.approx(grid["without_audit_s"] / 3600)
    lines = "\n".join(render.paper_detector_lines({"status": "ok", **block}))
    assert "| cnn_lstm |" in lines and "5-fold × 2-model grid" in lines
    assert "not run" in render.paper_detector_lines(None)[0]


def test_rendered_commands_name_no_machine_path() -> None:
    shown = render.shown_command("python -m benchmarks --only whole --work-dir /work/x "
                                 "--out results/b.json /tmp/y")
    assert shown == ("python -m benchmarks --only whole --work-dir WORK_DIR "
                     "--out results/b.json PATH")


class _FakeProcess:
    """What ``processes.Tree.poll`` reads of a psutil process, with a command line that
    changes (a forked child before and after its exec)."""

    def __init__(self, pid: int, ppid: int, commands: list[list[str]]) -> None:
        self.pid, self._ppid, self.commands = pid, ppid, commands

    def oneshot(self):
        import contextlib
        return contextlib.nullcontext()

    def create_time(self) -> float:
        return 100.0 + self.pid

    def ppid(self) -> int:
        return self._ppid

    def cmdline(self) -> list[str]:
        return self.commands[0] if len(self.commands) == 1 else self.commands.pop(0)

    def cpu_times(self):
        from types import SimpleNamespace
        return SimpleNamespace(user=1.0, system=0.5)

    def memory_info(self):
        from types import SimpleNamespace
        return SimpleNamespace(rss=1024)

    def children(self, recursive: bool = False) -> list:
        return self.kids


def test_a_child_polled_before_its_exec_is_named_by_what_it_runs() -> None:
    """A child of make polled between its fork and its exec still shows make's command
    line; the recipe line is named after the command it then runs (the CI of 2026-12-02
    once found a phase called "make <folder>" for `python busy.py`)."""
    from benchmarks.processes import Tree

    root = _FakeProcess(1, 0, [["make", "-s", "-C", "/tmp/x"]])
    child = _FakeProcess(2, 1, [["make", "-s", "-C", "/tmp/x"], ["/usr/bin/python", "busy.py"]])
    root.kids = [child]
    tree = Tree(root)
    tree.poll()  # the child not yet exec'd
    tree.poll()
    phases = tree.summary()["phases"]
    assert list(phases) == ["(make itself)", "python busy.py"], phases
    assert phases["python busy.py"]["cpu_s"] == 1.5
