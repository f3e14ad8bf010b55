"""The time budget: stages read from executed notebooks, FLOPs counted, tables rendered."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is not installed: it runs from the clone
    sys.path.insert(0, str(REPO))

from benchmarks import budget, loops, render  # noqa: E402


def _cell(stage: str | None, seconds: float, tags: tuple = ()) -> dict:
    tags = list(tags) + ([f"stage:{stage}"] if stage else [])
    return {"cell_type": "code", "source": "", "outputs": [],
            "metadata": {"tags": tags, "papermill": {"duration": seconds}}}


def _executed(path: Path, cells: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    markdown = {"cell_type": "markdown", "source": "# x", "metadata": {}}
    path.write_text(json.dumps({"cells": [markdown, *cells], "metadata": {}}))
    return path


def test_every_code_cell_of_every_notebook_names_its_stage() -> None:
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            tags = cell["metadata"].get("tags", [])
            stages = [t.split(":", 1)[1] for t in tags if t.startswith("stage:")]
            if "parameters" in tags:
                assert stages == [], notebook.name
            else:
                assert len(stages) == 1 and stages[0] in budget.STAGES, (notebook.name, tags)


def test_cell_stages_sum_each_stage_and_count_untagged_cells_as_start(tmp_path: Path) -> None:
    notebook = _executed(tmp_path / "nb.ipynb", [
        _cell(None, 0.01, ("parameters",)), _cell(None, 0.02, ("injected-parameters",)),
        _cell("imports", 3.0), _cell("tables", 0.5), _cell("tables", 0.25),
        _cell("train", 9.0), _cell("write", 0.5)])
    stages = budget.cell_stages(notebook)
    assert stages == pytest.approx({"start": 0.03, "imports": 3.0, "tables": 0.75,
                                    "train": 9.0, "write": 0.5})


def test_batch_budget_stages_add_up_to_the_run_seconds(tmp_path: Path) -> None:
    out = tmp_path / "out"
    runs = []
    for seed, seconds in ((0, 20.0), (1, 10.0)):
        folder = out / "prognet" / "alexnet" / f"seed-{seed}"
        _executed(folder / "02_prognet.ipynb", [_cell("imports", seconds / 4),
                                                _cell("train", seconds / 2)])
        runs.append({"run": f"prognet alexnet seed {seed}", "status": "ok",
                     "seconds": seconds, "folder": str(folder)})
    _executed(out / "04_comparisons.ipynb", [_cell("report", 4.0)])
    runs.append({"run": "comparisons", "status": "ok", "seconds": 5.0, "folder": str(out)})
    runs.append({"run": "detector cnn fold 0", "status": "failed", "seconds": 1.0,
                 "folder": str(out / "detector" / "cnn" / "fold-0")})
    pd.DataFrame(runs).to_csv(out / "batch_summary.csv", index=False)

    result = budget.batch_budget(out, flops=False)
    assert set(result) == {"prognet", "report comparisons"}  # the failed run is left out
    prognet = result["prognet"]
    assert prognet["runs"] == 2 and prognet["mean_s"] == 15.0
    assert prognet["stages_mean_s"] == pytest.approx({"start": 3.75, "imports": 3.75,
                                                      "train": 7.5})
    assert sum(prognet["stages_mean_s"].values()) == pytest.approx(prognet["mean_s"])
    assert result["report comparisons"]["stages_mean_s"] == pytest.approx(
        {"start": 1.0, "report": 4.0})
    assert budget.batch_budget(tmp_path / "nothing") == {}


def test_forward_flops_counts_dense_and_lstm_multiplies() -> None:
    import keras

    inputs = keras.Input((3, 10))
    x = keras.layers.LSTM(4)(inputs)
    x = keras.layers.Dense(5)(x)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    lstm = 2 * 3 * 4 * 4 * (10 + 4)  # 3 steps, 4 gates of 4 units over inputs + state
    assert budget.forward_flops(model) == lstm + 2 * 4 * 5 + 2 * 5 * 1
    assert budget.training_flops(100, train_samples=10, watched_samples=4, epochs=2) == \
        2 * 100 * (3 * 10 + 4)


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_runs")
def test_run_training_flops_reads_a_saved_run(tiny_runs: Path) -> None:
    import keras

    folder = tiny_runs / "prognet" / "alexnet" / "seed-0"
    metrics = json.loads((folder / "metrics.json").read_text())
    head = keras.saving.load_model(folder / "model" / "fold-0" / "head.keras", compile=False)
    epochs = len(pd.read_csv(folder / "history.csv"))
    expected = budget.training_flops(budget.forward_flops(head), metrics["n_train"],
                                     metrics["n_test"], epochs)
    assert budget.run_training_flops(folder, "prognet") == expected > 0
    assert budget.run_training_flops(tiny_runs / "detector" / "cnn" / "fold-0", "detector") > 0


def test_matmul_rate_is_positive() -> None:
    rate = budget.matmul_rate(size=64, repeats=2)
    assert rate["gflops"] > 0 and rate["small_gflops"] > 0 and rate["prognet_gflops"] > 0
    assert rate["prognet_shape"] == [32, 2048 + 150, 600] and rate["prognet_chain"] == 3


def test_budget_and_loops_render() -> None:
    block = {"runs": 2, "mean_s": 15.0, "total_s": 30.0,
             "stages_mean_s": {"start": 3.75, "imports": 3.75, "train": 7.5},
             "train_gflop_per_run": 2.0, "train_gflops": 0.27}
    whole = {"status": "ok", "profile": "paper", "data_dir": "/d", "matmul":
             {"size": 2048, "gflops": 100.0, "small_gflops": 20.0, "small_shape": [32, 576, 256],
              "small_chain": 49, "chain": "dependent"},
             "runs": {"warm": {"wall_s": 60, "exit_code": 0, "peak_rss_mb": 1024,
                               "budget": {"prognet": block}}}}
    text = "\n".join(render.whole_budget_lines(whole))
    assert "| prognet | 2 | 15.0 | 3.75 | 3.75 | 7.50 | 2.00 | 0.27 | 0% |" in text
    assert "100 GFLOP/s" in text and "reach 20.0 GFLOP/s." in text  # measured before ProgNet's
    whole["matmul"].update(prognet_gflops=30.0, prognet_shape=[32, 2198, 600], prognet_chain=3)
    text = "\n".join(render.whole_budget_lines(whole))
    assert ("reach 20.0 GFLOP/s, and those of ProgNet's LSTM (batch 32, 2,198 inputs and "
            "states to 600 gates, 3 steps) 30.0 GFLOP/s.") in text
    loops_section = {"status": "ok", "commit": "abc1234", "targets": {
        "test": {"wall_s": 240.0, "exit_code": 0,
                 "pytest": [{"summary": "400 passed", "seconds": 120.0}]}}}
    text = "\n".join(render.loops_lines(loops_section))
    assert "| `make test` | 4.00 | 400 passed in 2.00 min | ok |" in text
    assert "Where the newcomer's loops spend their CPU" not in text  # not measured: no table
    kinds = {"test process": {"processes": 3, "tensorflow_processes": 3, "cpu_s": 300.0},
             "notebook kernel": {"processes": 5, "tensorflow_processes": 4, "cpu_s": 100.0}}
    loops_section["targets"]["test"]["processes"] = {
        "phases": {"pytest tests": {"processes": 8, "tensorflow_processes": 7, "cpu_s": 400.0,
                                    "wall_s": 210.0, "kinds": kinds}},
        "polled_cpu_s": 400.0, "all_children_cpu_s": 410.0, "processes": 8,
        "tensorflow_processes": 7}
    loops_section["tensorflow_import"] = {"repeats": 3, "cpu_s": 10.0, "wall_s": 11.0}
    text = "\n".join(render.loops_lines(loops_section))
    assert "| `make test` | `pytest tests` | 210 | 400 | 8 | 7 | 5 | 100 | 300 | 0 | 0 |" in text
    assert "takes 10.0 CPU-s (11.0 s)" in text and "started 7 processes" in text
    assert "about 70.0 of its 400 CPU-s (18%)" in text and "counts 410 CPU-s" in text


def test_pytest_phases_reads_closing_lines(tmp_path: Path) -> None:
    log = tmp_path / "make.log"
    log.write_text("collected\n====== 431 passed, 1 skipped in 130.52s (0:02:10) ======\n"
                   "other\n=== 78 passed in 40.10s ===\n")
    assert loops.pytest_phases(log) == [{"summary": "431 passed, 1 skipped", "seconds": 130.52},
                                        {"summary": "78 passed", "seconds": 40.10}]


def test_goals_table_reads_the_measured_minutes() -> None:
    result = {"loops": {"targets": {"test": {"wall_s": 270.0,
                                             "processes": {"polled_cpu_s": 480.0}},
                                    "reproduce": {"phases_s": {"batch_s": 300.0}}},
                        "measured": {"finished": "2026-12-01T10:00:00"}},
              "whole": {"matmul": {"gflops": 100.0, "small_gflops": 50.0},
                        "runs": {"cold": {"wall_s": 1200.0,
                                          "processes": {"polled_cpu_s": 2160.0},
                                          "budget": {"detector cnn_lstm": {
                                              "runs": 2, "train_gflop_per_run": 1500.0,
                                              "stages_mean_s": {"train": 1.0,
                                                                "audit": 1.0}}}}}}}
    text = "\n".join(render.goals_lines(result))
    assert ("| `make test`, after installation | 5.00 | 4.50 | ✓ | 4.00 | – | 2026-12-01 |"
            in text)
    assert ("| `make reproduce`'s batch (sample data) | 4.00 | 5.00 | ✗ | – | – | 2026-12-01 |"
            in text)
    # 2 runs x (1500 + 1500 audit) GFLOP at 50 GFLOP/s: 120 s
    assert "| the paper grid, cold feature cache | 15.0 | 20.0 | ✗ | 18.0 | 2.00 | – |" in text
    assert "| the paper grid, warm feature cache | 10.0 | – | – | – | – | – |" in text


def test_paper_budget_renders_the_subset_it_measured() -> None:
    block = {"runs": 1, "mean_s": 100.0, "total_s": 100.0,
             "stages_mean_s": {"start": 1.0, "train": 60.0, "audit": 39.0}}
    section = {"status": "ok", "profile": "paper", "data_dir": "/d",
               "selection": ["--seeds", "0", "1", "--folds", "0"],
               "runs": {"warm": {"wall_s": 600, "exit_code": 0, "peak_rss_mb": 1024,
                                 "phases_s": {"prepare_features": 5.0, "runs": 580.0,
                                              "reports": 15.0, "batch_s": 600.0},
                                 "budget": {"detector": block}}}}
    text = "\n".join(render.paper_budget_lines(section))
    assert "--seeds 0 1 --folds 0" in text and "*warm cache*: Of the batch's wall time (600 s)" in text
    assert "| detector | 1 | 100 | 1.00 | 60.0 | 39.0 |" in text
    assert render.paper_budget_lines(None) == []


def _detector_metrics(folder: Path, audit: dict | None, early_stopping: int | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(
        {"experiment": "detector", "shortcut_audit": audit,
         "parameters": {"early_stopping": early_stopping}}))
    return folder


def test_run_audit_flops_counts_the_audit_as_the_training_again(tmp_path: Path) -> None:
    audited = _detector_metrics(tmp_path / "a", {"lungs_blanked": 0.5}, None)
    assert budget.run_audit_flops(audited, 1234) == 1234
    assert budget.run_audit_flops(_detector_metrics(tmp_path / "b", None, None), 1234) is None
    stopped = _detector_metrics(tmp_path / "c", {"lungs_blanked": 0.5}, 10)
    assert budget.run_audit_flops(stopped, 1234) is None  # its epochs are not saved
    assert budget.run_audit_flops(tmp_path / "missing", 1234) is None
    records = [{"seconds": 10.0, "stages": {"train": 4.0, "audit": 5.0},
                "train_flops": 8e9, "audit_flops": 8e9},
               {"seconds": 12.0, "stages": {"train": 4.0, "audit": 6.0},
                "train_flops": 8e9, "audit_flops": None}]
    block = budget.summarise(records)
    assert block["train_gflop_per_run"] == 8.0 and block["audit_gflop_per_run"] == 8.0
    assert budget.summarise([records[1]])["audit_gflop_per_run"] is None  # counted: none
    assert "audit_gflop_per_run" not in budget.summarise([{"seconds": 1.0, "stages": {}}])


def test_arithmetic_floor_takes_each_kind_at_the_rate_of_its_shape() -> None:
    matmul = {"gflops": 100.0, "small_gflops": 50.0, "prognet_gflops": 40.0}
    grid = {"detector cnn_lstm": {"runs": 2, "mean_s": 60.0, "train_gflop_per_run": 500.0,
                                  "audit_gflop_per_run": 500.0,
                                  "stages_mean_s": {"train": 30.0, "audit": 30.0}},
            "detector cnn": {"runs": 2, "mean_s": 2.0, "train_gflop_per_run": 100.0,
                             "stages_mean_s": {"train": 1.0, "audit": 1.0}},  # audit uncounted
            "prognet": {"runs": 4, "mean_s": 1.0, "train_gflop_per_run": 10.0,
                        "stages_mean_s": {"train": 1.0}},
            "report use": {"runs": 1, "mean_s": 3.0, "stages_mean_s": {"report": 3.0}}}
    floor = budget.arithmetic_floor(grid, matmul)
    assert set(floor["kinds"]) == {"detector cnn_lstm", "detector cnn", "prognet"}
    assert floor["kinds"]["detector cnn_lstm"] == {"gflop": 2000.0, "rate_gflops": 50.0,
                                                   "seconds": 40.0}
    assert floor["kinds"]["detector cnn"]["gflop"] == 400.0  # its audit as its training
    assert floor["kinds"]["prognet"]["seconds"] == 1.0
    assert floor["seconds"] == 40.0 + 4.0 + 1.0 and floor["gflop"] == 2440.0
    assert floor["seconds_at_big_rate"] == 24.4
    assert budget.arithmetic_floor(grid, None) is None
    stopped_early = {"detector cnn": {**grid["detector cnn"], "audit_gflop_per_run": None}}
    assert budget.arithmetic_floor(stopped_early, matmul)["gflop"] == 200.0  # not guessed
    assert budget.arithmetic_floor({"report use": grid["report use"]}, matmul) is None
    text = render.floor_sentence(grid, matmul)
    assert "2,440 GFLOP, take at least 45.0 s" in text
    assert "(detector cnn_lstm: 2,000 GFLOP at 50.0 GFLOP/s, 40.0 s)" in text
    assert "24.4 s (0.41 min) even at the 2048² rate" in text
    rows = "\n".join(render.budget_table(grid, matmul, workers=2))
    assert "| detector cnn_lstm | 2 |" in rows and "of its shape's rate per worker |" in rows
    grid["detector cnn_lstm"]["train_gflops"] = 20.0  # 2 workers x 20 against 50: 80 %
    rows = "\n".join(render.budget_table(grid, matmul, workers=2))
    assert "| 20.0 | 20% | 80% |" in rows
    rows = "\n".join(render.budget_table(grid, matmul))  # workers unknown
    assert "| 20.0 | 20% | – |" in rows
    loops_section = {"status": "ok", "commit": "abc1234", "targets": {
        "reproduce": {"wall_s": 200.0, "exit_code": 0, "budget": grid, "workers": 2}},
        "matmul": {**matmul, "size": 2048, "chain": "dependent", "small_shape": [32, 576, 256],
                   "small_chain": 49, "prognet_shape": [32, 2198, 600], "prognet_chain": 3}}
    text = "\n".join(render.loops_lines(loops_section))
    assert "| 20.0 | 20% | 80% |" in text and "2,440 GFLOP, take at least 45.0 s" in text


def test_batch_workers_reads_batch_json(tmp_path: Path) -> None:
    assert budget.batch_workers(tmp_path) is None
    (tmp_path / "batch.json").write_text(json.dumps({"workers": 2, "seconds": 10.0}))
    assert budget.batch_workers(tmp_path) == 2
