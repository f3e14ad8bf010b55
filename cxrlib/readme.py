"""Floor 6: the README's Results section, built from finished batches (``cxr readme``).

Reads ``batch.json`` and ``tables/*.csv`` that ``cxr batch`` wrote; trains nothing.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from cxrlib.compare import BASE_TITLES, base_caption


def results_markdown(results: dict[str, str | Path]) -> str:
    """The README's Results section, built from batch outputs (``{title: results_dir}``):
    ProgNet's Table II (model and baselines), the detector's overall accuracy, the shortcut
    audit, and how long the batch took on which machine."""
    lines = []
    for title, folder in results.items():
        folder = Path(folder)
        tables, info_path = folder / "tables", folder / "batch.json"
        if not (tables / "prognet_table_ii.csv").exists():
            lines += [f"### {title}", "", f"_No tables in `{folder}` yet._", ""]
            continue
        info = json.loads(info_path.read_text()) if info_path.exists() else {}
        environment = info.get("environment", {})
        counts = info.get("counts", {})
        executed, resumed = counts.get("ok", 0), counts.get("skipped (finished)", 0)
        minutes = info.get("seconds", 0) / 60
        done = (f"{executed} runs in {minutes:.1f} min" if not resumed else
                f"{executed + resumed} runs ({resumed} already finished; the last invocation "
                f"ran {executed} in {minutes:.1f} min)")
        overrides = info.get("selection", {}).get("overrides") or {}
        lines += [f"### {title}", "",
                  f"Profile `{info.get('profile', '?')}` on `{_shown_path(info.get('data_dir', '?'), folder)}`"
                  + (f", overrides {overrides}" if overrides else "")
                  + f": {done}"
                  + (f" with {info['workers']} parallel workers" if info.get("workers") else "")
                  + f" on {environment.get('cpu_count', '?')} CPU cores ({environment.get('processor', '?')}"
                  + (f", {environment['instruction_set']}" if environment.get("instruction_set") else "")
                  + "), "
                  f"TensorFlow {environment.get('versions', {}).get('tensorflow', '?')}.", ""]
        lines += _verdict_lines(tables / "verdict.csv")
        table_ii = pd.read_csv(tables / "prognet_table_ii.csv")
        keep = [c for c in ("backbone", "weights", "scorer", "runs", "accuracy", "accuracy 95% CI",
                            "f1", "specificity", "specificity (deaths found)", "roc_auc",
                            "accuracy (paper)") if c in table_ii]
        cohort = ""
        if {"findings", "cohort patients"} <= set(table_ii.columns):
            cohort = (f" Cohort: findings `{table_ii['findings'].iloc[0]}`, "
                      f"{table_ii['cohort patients'].iloc[0]} patients.")
        lines += ["**ProgNet** (mean ± std over seeds; 95 % CI from the pooled test patients, "
                  f"resampling patients).{cohort}", "",
                  table_ii[keep].fillna("").to_markdown(index=False), ""]
        overall = tables / "detector_overall.csv"
        if overall.exists():
            overall = pd.read_csv(overall)
            made_by = base_caption(overall["base"]) if "base" in overall else BASE_TITLES["vgg16"]
            lines += [f"**Detector** ({made_by}; mean ± std over folds; 95 % CI resampling "
                      "patients):", "", overall.to_markdown(index=False), ""]
        shortcut = tables / "shortcut_audit.csv"
        if shortcut.exists() and shortcut.stat().st_size > 1:
            lines += ["**Shortcut audit** (accuracy; lungs blanked vs full image, and a plain "
                      "classifier telling the two sources apart):", "",
                      pd.read_csv(shortcut).to_markdown(index=False), ""]
    return "\n".join(lines).rstrip() + "\n"


def _verdict_lines(path: Path) -> list[str]:
    """The verdict table for the README: one row per claim (``cxrlib.verdict``)."""
    if not path.exists():
        return []
    table = pd.read_csv(path).fillna("")
    counts = table["verdict"].value_counts()
    summary = ", ".join(f"{counts[v]} {v}" for v in ("reproduced", "not reproduced",
                                                      "not distinguishable", "not testable here")
                        if v in counts)
    keep = ["paper", "claim", "paper's value", "ours", "95% CI", "verdict", "why", "from"]
    return [f"**Verdict per claim** ({summary}; {_setup(path.parent)}; computed by "
            "`cxrlib.verdict` from the runs below; intervals resample patients; `from` names "
            "the table in `tables/` that holds the numbers):", "",
            table[keep].to_markdown(index=False), ""]


def _setup(tables: Path) -> str:
    """The weights and detector base the runs used, for the verdict's caption."""
    parts = []
    for name, columns, what in (("prognet_table_ii.csv", ("weights",), "ProgNet weights"),
                                ("detector_overall.csv", ("base", "weights"), "detector")):
        if (tables / name).exists():
            table = pd.read_csv(tables / name)
            values = [f"{c} {', '.join(sorted(table[c].astype(str).unique()))}"
                      for c in columns if c in table]
            parts.append(f"{what}: " + ", ".join(v.removeprefix("weights ") if what.endswith("weights")
                                                 else v for v in values))
    return "; ".join(parts) or "setup not recorded"


def _shown_path(path: str, results_dir: Path) -> str:
    """A data folder as the project would name it: relative to the checkout that holds
    ``results/<profile>`` when inside it, ``../shared/...`` style when beside it."""
    project = results_dir.resolve().parent.parent
    relative = os.path.relpath(path, project)
    if relative.count("..") <= 1:
        return relative
    return ".../" + "/".join(Path(path).parts[-2:])  # another checkout: its data/<name>


def replace_between(path: str | Path, marker: str, text: str) -> bool:
    """Replace the text between ``<!-- marker:start -->`` and ``<!-- marker:end -->``;
    False (file untouched) when the markers are absent."""
    path = Path(path)
    content = path.read_text()
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if start not in content or end not in content:
        return False
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}{end}{tail}")
    return True
