"""The time budget: stages read from executed notebooks, and its table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is not installed: it runs from the clone
    sys.path.insert(0, str(REPO))

from benchmarks import budget, render  # noqa: E402


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

    result = budget.batch_budget(out)
    assert set(result) == {"prognet", "report comparisons"}  # the failed run is left out
    prognet = result["prognet"]
    assert prognet["runs"] == 2 and prognet["mean_s"] == 15.0
    assert prognet["stages_mean_s"] == pytest.approx({"start": 3.75, "imports": 3.75,
                                                      "train": 7.5})
    assert sum(prognet["stages_mean_s"].values()) == pytest.approx(prognet["mean_s"])
    assert result["report comparisons"]["stages_mean_s"] == pytest.approx(
        {"start": 1.0, "report": 4.0})
    assert budget.batch_budget(tmp_path / "nothing") == {}


def test_budget_renders_one_row_per_kind_with_its_stages() -> None:
    budget_block = {"prognet": {"runs": 2, "mean_s": 15.0, "total_s": 30.0,
                                "stages_mean_s": {"start": 3.75, "imports": 3.75, "train": 7.5}},
                    "report comparisons": {"runs": 1, "mean_s": 5.0, "total_s": 5.0,
                                           "stages_mean_s": {"start": 1.0, "report": 4.0}}}
    lines = render.budget_table(budget_block)
    assert lines[0] == ("| Kind of run | Runs | s / run | kernel start, papermill | imports "
                        "| training | report cells |")
    assert lines[2] == "| prognet | 2 | 15.0 | 3.75 | 3.75 | 7.50 | – |"
    assert lines[3] == "| report comparisons | 1 | 5.00 | 1.00 | – | – | 4.00 |"
