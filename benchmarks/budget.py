"""Where a batch's seconds go, per kind of run, read from the runs it left behind.

Every code cell of the notebooks carries a ``stage:<name>`` tag (imports, tables,
features, train, evaluate, audit, report, write) and papermill records each cell's
duration in the executed notebook. A run's ``start`` is what its cells do not account
for: starting (or resetting) the kernel, papermill reading and writing the notebook, the
parameters cell, the run folder's rename. The stages of a run therefore add up to the
seconds ``cxr batch`` measured for it (``batch_summary.csv``).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from benchmarks import REPO
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


def source_stages(name: str) -> dict[str, str]:
    """{cell id: stage} of the repository's notebook ``name`` (empty if there is none)."""
    path = REPO / "notebooks" / name
    if not path.is_file():
        return {}
    cells = json.loads(path.read_text())["cells"]
    return {c["id"]: stage for c in cells if "id" in c
            and (stage := _stage(c.get("metadata", {}).get("tags", [])))}


def cell_stages(notebook: Path) -> dict[str, float]:
    """Seconds per stage of one executed notebook (papermill's cell durations). A cell
    without a stage tag (a run made before the tags existed) takes the stage of the cell
    with its id in the repository's notebook; the parameters cells count as ``start``."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    by_id = source_stages(Path(notebook).name)
    seconds: dict[str, float] = defaultdict(float)
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        stage = _stage(tags) or ("start" if {"parameters", "injected-parameters"} & set(tags)
                                 else by_id.get(cell.get("id"), "start"))
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

    out = Path(out)
    try:
        summary = pd.read_csv(out / "batch_summary.csv")
    except (OSError, ValueError):
        return {}
    per_kind: dict[str, list[dict]] = defaultdict(list)
    for row in summary.itertuples():
        if row.status != "ok":
            continue
        kind, notebook = run_notebook_path(out, str(row.run), str(row.folder))
        if not notebook.is_file():
            continue
        stages = cell_stages(notebook)
        stages["start"] = max(0.0, float(row.seconds) - sum(v for k, v in stages.items()
                                                            if k != "start"))
        per_kind[kind].append({"seconds": float(row.seconds), "stages": stages})
    return {kind: summarise(records) for kind, records in per_kind.items()}


def batch_phases(out: str | Path) -> dict:
    """The batch's own split of its wall time (``batch.json``: preparing features, the
    runs over all workers, the report chapters) and the whole (``batch_s``); empty when
    there is no ``batch.json``."""
    try:
        record = json.loads((Path(out) / "batch.json").read_text())
    except (OSError, ValueError):
        return {}
    return {**record.get("phases_s", {}), "batch_s": record.get("seconds")}


def summarise(records: list[dict]) -> dict:
    """Mean seconds per stage over a kind's runs."""
    n = len(records)
    block = {"runs": n, "mean_s": sum(r["seconds"] for r in records) / n,
             "total_s": sum(r["seconds"] for r in records),
             "stages_mean_s": {s: sum(r["stages"].get(s, 0.0) for r in records) / n
                               for s in STAGES
                               if any(r["stages"].get(s, 0.0) for r in records)}}
    return block
