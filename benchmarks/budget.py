"""Where a batch's seconds go, per kind of run, read from the runs it left behind.

Every code cell of the notebooks carries a ``stage:<name>`` tag and papermill records each
cell's duration; a run's ``start`` is what its cells do not account for (the kernel,
papermill), so the stages add up to the seconds ``cxr batch`` measured for the run.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from cxrlib.runs import NOTEBOOKS

STAGES = ("start", "imports", "tables", "features", "train", "evaluate", "audit", "report",
          "write")
"""The stages of the budget, in the order a run goes through them."""
STAGE_TITLES = {"start": "kernel start, papermill", "imports": "imports",
                "tables": "data tables", "features": "features (cache)", "train": "training",
                "evaluate": "evaluation", "audit": "shortcut audit", "report": "report cells",
                "write": "writing"}


def _stage(tags: list[str]) -> str | None:
    return next((t.split(":", 1)[1] for t in tags if t.startswith("stage:")), None)


def cell_stages(notebook: Path) -> dict[str, float]:
    """Seconds per stage of one executed notebook (papermill's cell durations); the
    parameters cells, and any cell without a known stage tag, count as ``start``."""
    seconds: dict[str, float] = defaultdict(float)
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        if cell.get("cell_type") != "code":
            continue
        stage = _stage(cell.get("metadata", {}).get("tags", []))
        duration = cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0
        seconds[stage if stage in STAGES else "start"] += float(duration)
    return dict(seconds)


def run_notebook_path(out: Path, label: str, folder: str) -> tuple[str, Path]:
    """(kind, executed notebook) of one row of ``batch_summary.csv``: ``prognet``, the
    detector by model (``detector cnn``, ``detector cnn_lstm``: their costs differ
    several-fold), or ``report <chapter>``."""
    words = label.split()
    if words[0] == "prognet":
        return "prognet", Path(folder) / NOTEBOOKS["prognet"]
    if words[0] == "detector":
        return " ".join(words[:2]), Path(folder) / NOTEBOOKS["detector"]
    return f"report {label}", Path(out) / NOTEBOOKS.get(label, label)


def batch_budget(out: str | Path) -> dict:
    """Per kind of run: the number of runs that finished ok and the mean seconds per run
    in each stage (they add up to the mean run seconds). Empty when there is no summary."""
    import pandas as pd

    try:
        summary = pd.read_csv(Path(out) / "batch_summary.csv")
    except (OSError, ValueError):
        return {}
    records = []
    for row in summary[summary["status"] == "ok"].itertuples():
        kind, notebook = run_notebook_path(Path(out), str(row.run), str(row.folder))
        if notebook.is_file():
            stages = cell_stages(notebook)
            stages["start"] = max(0.0, row.seconds - sum(v for k, v in stages.items()
                                                         if k != "start"))
            records.append({"kind": kind, "seconds": float(row.seconds), **stages})
    if not records:
        return {}
    frame = pd.DataFrame(records).fillna(0.0)
    return {kind: {"runs": len(runs), "mean_s": float(runs["seconds"].mean()),
                   "stages_mean_s": {s: float(runs[s].mean()) for s in STAGES
                                     if s in runs and runs[s].any()}}
            for kind, runs in frame.groupby("kind")}
