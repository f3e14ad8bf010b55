"""Floor 6: the results the README and ``docs/results.md`` show, built from finished
batches (``cxr readme``).

The README keeps the compact verdict table (``readme_markdown``, between its
``<!-- results:start/end -->`` markers); ``docs/results.md`` (``details_page``) holds the
reasons behind each verdict and the full tables. Reads ``batch.json`` and
``tables/*.csv`` that ``cxr batch`` wrote (or ``cxr publish`` copied); trains nothing.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from cxrlib import io, paths, verdict
from cxrlib.compare import BASE_TITLES, base_caption


def run_line(folder: str | Path) -> str:
    """One sentence on how a batch's results were made: profile, data, runs, time, machine."""
    folder = Path(folder)
    info = io.read_json(folder / "batch.json", {})
    environment = info.get("environment", {})
    counts = info.get("counts", {})
    executed, resumed = counts.get("ok", 0), counts.get("skipped (finished)", 0)
    minutes = info.get("seconds", 0) / 60
    done = (f"{executed} runs in {minutes:.1f} min" if not resumed else
            f"{executed + resumed} runs ({resumed} already finished; the last invocation "
            f"ran {executed} in {minutes:.1f} min)")
    overrides = info.get("selection", {}).get("overrides") or {}
    return (f"Profile `{info.get('profile', '?')}` on `{paths.shown_path(info.get('data_dir', '?'))}`"
            + (f", overrides {overrides}" if overrides else "")
            + f": {done}"
            + (f" with {info['workers']} parallel workers" if info.get("workers") else "")
            + f" on {environment.get('cpu_count', '?')} CPU cores ({environment.get('processor', '?')}"
            + (f", {environment['instruction_set']}" if environment.get("instruction_set") else "")
            + "), "
            f"TensorFlow {environment.get('versions', {}).get('tensorflow', '?')}.")


#: Tables ``results_markdown`` shows with a caption of their own; the others follow by name.
SHOWN_ABOVE = ("verdict", "prognet_table_ii", "detector_overall", "shortcut_audit")


def results_markdown(results: dict[str, str | Path], headings: str = "###") -> str:
    """The full results of batch outputs (``{title: results_dir}``), for ``docs/results.md``
    and the book: the verdict per claim with its reasons, ProgNet's Table II (model and
    baselines), the detector's overall accuracy, the shortcut audit, and how long the batch
    took on which machine."""
    lines = []
    for title, folder in results.items():
        folder = Path(folder)
        tables = folder / "tables"
        if not list(tables.glob("*.csv")):
            lines += [f"{headings} {title}", "", f"_No tables in `{folder}` yet._", ""]
            continue
        lines += [f"{headings} {title}", "", run_line(folder), ""]
        lines += _verdict_lines(tables / "verdict.csv")
        path = tables / "prognet_table_ii.csv"
        if path.exists():
            table_ii = pd.read_csv(path)
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
        for other in sorted(tables.glob("*.csv")):
            if other.stem not in SHOWN_ABOVE and other.stat().st_size > 1:
                lines += [f"**{other.stem}** (`tables/{other.name}`):", "",
                          pd.read_csv(other).fillna("").to_markdown(index=False), ""]
    return "\n".join(lines).rstrip() + "\n"


REASON_COLUMNS = ("why", "reason")  # the verdict table's column holding the reason
#: Titles the compact table gives ``verdict.COMPACT``'s columns (the others keep their name).
TITLES = {"95% CI": "95 % interval", "numbers alone": "our numbers alone say"}
MAX_CELL = 100  # characters in a README table cell: a row must read on a phone


def compact_verdict(table: pd.DataFrame, max_cell: int | None = None) -> pd.DataFrame:
    """The verdict table in its compact form (``verdict.COMPACT``: claim, paper's value,
    ours, 95 % interval, verdict, what our numbers alone say), the one place that knows which columns of
    ``verdict.csv`` the README and the book's landing page show. ``max_cell``: claims longer
    than that are shortened (``short_claim``); the full claim stays in the details page."""
    table = table.fillna("")
    compact = table[[c for c in verdict.COMPACT if c in table]].rename(columns=TITLES)
    if max_cell and "claim" in compact:
        compact["claim"] = [short_claim(c, max_cell) for c in compact["claim"]]
    return compact


def short_claim(claim: str, limit: int = MAX_CELL) -> str:
    """A claim in at most ``limit`` characters: first without the asides nested inside its
    parentheses ("Table I read as FN and FP headers swapped (sensitivity and specificity)"
    loses the inner aside), then, if still too long, cut at a word with an ellipsis."""
    text = str(claim)
    while len(text) > limit:
        nested = re.search(r"(\([^()]*)\s*\([^()]*\)", text)  # an aside inside an aside
        if not nested:
            break
        text = text[:nested.start()] + nested.group(1).rstrip() + text[nested.end():]
    if len(text) > limit:
        text = text[:limit - 1].rsplit(" ", 1)[0] + "…"
    return text


def verdict_counts(table: pd.DataFrame) -> str:
    """``2 reproduced, 3 not testable here, 1 shortcut in the data``: how many claims got
    each verdict, every kind of ``verdict.VERDICTS`` in its order (a verdict it does not
    know is counted after them, never dropped)."""
    counts = table["verdict"].value_counts()
    kinds = [*verdict.VERDICTS, *sorted(set(counts.index) - set(verdict.VERDICTS))]
    return ", ".join(f"{counts[v]} {v}" for v in kinds if v in counts)


def _verdict_lines(path: Path) -> list[str]:
    """The verdict per claim (``cxrlib.verdict``): the compact table, then the reason
    behind each verdict as a list (long reasons read badly in a table column)."""
    if not path.exists():
        return []
    table = pd.read_csv(path).fillna("")
    compact = compact_verdict(table)
    if "paper" in table:
        compact.insert(0, "paper", table["paper"])
    lines = [f"**Verdict per claim** ({verdict_counts(table)}; {_setup(path.parent)}; computed by "
             "`cxrlib.verdict` from the runs below; intervals resample patients):", "",
             compact.to_markdown(index=False), "", "**Why each verdict** (and the table in "
             "`tables/` that holds the numbers):", ""]
    for row in table.to_dict("records"):
        source = f" (`{row['from']}`)" if row.get("from") else ""
        reason = next((row[c] for c in REASON_COLUMNS if row.get(c)), "")
        lines.append(f"* *{row['claim']}* — **{row['verdict']}**: {reason}{source}")
    return lines + [""]


def readme_markdown(results: dict[str, str | Path], details: str = "docs/results.md") -> str:
    """What the README keeps of the results: per batch, how it was made and the compact
    verdict table; the reasons and the full tables are in ``details``."""
    lines = []
    for title, folder in results.items():
        folder = Path(folder)
        path = folder / "tables" / "verdict.csv"
        lines += [f"### {title}", ""]
        if (folder / "batch.json").exists():
            lines += [run_line(folder), ""]
        if not path.exists():
            lines += [f"_No verdict table in `{folder}` yet._", ""]
            continue
        table = pd.read_csv(path)
        lines += [f"Verdict per claim ({verdict_counts(table)}; {_setup(path.parent)}):", "",
                  compact_verdict(table, MAX_CELL).to_markdown(index=False), ""]
    lines += [f"Why each verdict, and every table: [{details}]({details}).", ""]
    return "\n".join(lines)


def details_page(results: dict[str, str | Path]) -> str:
    """``docs/results.md``: every batch's full results, written by ``cxr readme``."""
    return ("# Results\n\nWritten by `cxr readme` from the batch outputs named below (do not "
            "edit by hand). The verdict per claim comes first, with the reason behind each; the "
            "tables after it hold the numbers. Chapter 4 shows how each is computed, and "
            "[deviations.md](deviations.md) every departure from the papers.\n\n"
            + results_markdown(results, headings="##"))


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
