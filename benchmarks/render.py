"""The Markdown tables of a benchmark result, rendered from its JSON (never typed).

    python -m benchmarks.render benchmarks/results.json [--out benchmarks/results.md]
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from cxrlib.io import write_text


def num(value: float | None) -> str:
    """A number with about three significant digits, never in exponent form."""
    if value is None:
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01:
        return f"{value:.2f}"
    return f"{value:.1e}"


def stat(block: dict | None) -> str:
    """``median (min–max)``, or the median alone when there was one repetition."""
    if not block or block.get("median") is None:
        return "–"
    if block.get("n", 0) < 2:
        return num(block["median"])
    return f"{num(block['median'])} ({num(block['min'])}–{num(block['max'])})"


def skipped(section: dict | None) -> str | None:
    """The status line of a section that holds no figures, else None."""
    if not section:
        return "not run"
    status = section.get("status", "ok")
    return None if status == "ok" else status


def table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """A Markdown table; ``align`` is one character per column (l or r)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(row) + " |" for row in [header, rule, *rows]]


def machine_lines(result: dict) -> list[str]:
    m, v = result["machine"], result["versions"]
    load = m.get("load_average_start")
    return [
        f"Measured on **{m['cpu_model']}**, {m.get('instruction_set', '?')}, "
        f"{m['usable_cores']} usable cores, {m['memory_gb']} GB RAM; Python "
        f"{v.get('python')}, TensorFlow {v.get('tensorflow')}, Keras {v.get('keras')}"
        + (f"; load average at start {load[0]}" if load else "") + ".",
        f"Every figure is the median of the repetitions and, in brackets, their spread "
        f"({result.get('spread', 'min-max').replace('-', '–')}). Data: "
        f"`{result['data']['shown']}` ({result['data']['kind']}).",
    ]


def extraction_lines(section: dict) -> list[str]:
    if (status := skipped(section)) is not None:
        return [f"**Feature extraction**: {status}."]
    rows = [[f"{name}", stat(b["extract_images_per_s"]), stat(b["predict_images_per_s"]),
             stat(b["ratio"]) + (" ✓" if b["meets_goal"] else " ✗"),
             stat(b.get("decode_images_per_s")), num(b.get("ratio_ceiling")),
             f"{b['share_of_ceiling']:.0%}" if "share_of_ceiling" in b else "–"]
            for name, b in section["backbones"].items()]
    cores = next((b["ceiling_cores"] for b in section["backbones"].values()
                  if "ceiling_cores" in b), None)
    lines = [f"**Feature extraction** at {section['image_size']} px: {section['images']} "
             f"images from files to cached vectors (empty cache each time) against the bare "
             f"`predict_on_batch` on the same images in memory; {section['repeats']} "
             f"repetition(s); goal ratio ≥ {section['goal']}.", "",
             *table(["Backbone", "extract_features (img/s)", "bare predict (img/s)", "Ratio",
                     "Decoding alone, 1 thread (img/s)", "Ceiling", "Ratio / ceiling"],
                    rows)]
    if cores:
        lines += ["", f"*Ceiling*: the best ratio possible when decoding must share the "
                      f"{cores} cores with a model that keeps them all busy, from the two "
                      f"measured rates: (cores ÷ predict) ÷ (cores ÷ predict + 1 ÷ decode). "
                      f"A backbone whose ceiling is below the goal cannot meet it on this "
                      f"machine, however well decoding overlaps."]
    return lines


def naive_lines(section: dict) -> list[str]:
    if (status := skipped(section)) is not None:
        return [f"**Cached vs naive ProgNet**: {status}."]
    rows = []
    for name, b in section["backbones"].items():
        target = b["target"]
        rows.append([name, stat(b["cached"]["extraction_s"]),
                     stat(b["cached"]["train_and_predict_s_per_seed"]),
                     stat(b["naive"]["steady_epoch_s"]), num(target["cached_s"]),
                     num(target["naive_s"]), f"×{num(target['speedup'])}",
                     num(b["max_abs_diff"])])
    first = next(iter(section["backbones"].values()), {})
    return [f"**Cached vs naive ProgNet** at {section['image_size']} px, "
            f"{first.get('n_patients', '?')} patients, projected to "
            f"{section['target_seeds']} seeds × {section['target_epochs']} epochs "
            f"(seconds). The naive model (frozen backbone inside, images every epoch) was "
            f"run for {section['naive_epochs_measured']} epochs and scaled linearly; "
            f"cached head training was measured at {section['cached_epochs_measured']} "
            f"epochs. Last column: largest |head(cached features) − composed(images)| of "
            f"P(survival) (tolerance {first.get('atol', 1e-4)}).", "",
            *table(["Backbone", "Cold extraction", "Train + predict / seed",
                    "Naive epoch", "Cached total", "Naive total", "Speed-up", "Max abs diff"],
                   rows)]


def patients_lines(section: dict) -> list[str]:
    if (status := skipped(section)) is not None:
        return [f"**Cohort size**: {status}."]
    rows = [[str(b["n_patients"]), str(b["n_images"]), stat(b["extraction_s"]),
             stat(b["training_s"]), stat(b["total_s"]), num(b["s_per_patient"])]
            for b in section["sizes"].values()]
    fit = section["fit_total_s"]
    r2 = f", R² = {fit['r2']:.3f}" if fit.get("r2") is not None else ""
    return [f"**Cohort size** (one cached ProgNet run: cold extraction + train and predict, "
            f"{section['backbone']}, {section['image_size']} px, {section['epochs']} "
            f"epochs; the cohort repeated with new ids and byte-distinct image copies)", "",
            *table(["Patients", "Images", "Extraction (s)", "Training (s)", "Total (s)",
                    "s / patient"], rows), "",
            f"Linear fit: {num(fit['slope'])} s per patient + {num(fit['intercept'])} s{r2}."]


def trainers_lines(section: dict | None) -> list[str]:
    if (status := skipped(section)) is not None:
        return [f"**Compiled twins**: {status}."]
    return [f"**Compiled twins** (`training.fit`): one training of a new ProgNet head "
            f"({section['backbone']} features, {section['sequences']} sequences of "
            f"{section['seq_len']}, {section['epochs']} epochs) takes "
            f"{stat(section['kept_s'])} s with the twin of an earlier training kept and "
            f"{stat(section['dropped_s'])} s with it dropped: the cache saves "
            f"**{num(section['saved_s_per_training'])} s per training**."]


def paper_detector_lines(section: dict | None) -> list[str]:
    if (status := skipped(section)) is not None:
        return [f"**The detector as published**: {status}."]
    rows = [[name, stat(b["train_step_s"]), stat(b["predict_step_s"]),
             str(b["train_steps_per_epoch"]), num(b["epoch_s"]), num(b["folds_s"] / 3600),
             num(b["folds_with_audit_s"] / 3600)]
            for name, b in section["models"].items()]
    grid, folds = section["grid"], section["n_folds"]
    return [f"**The detector as published** (Table 2 base trained end to end, "
            f"{section['device']}, {section['image_size']} px, batch {section['batch_size']}, "
            f"{section['steps']} timed step(s) per model; an epoch trains on 4/5 of "
            f"{section['n_images']} images and predicts the rest; {section['epochs']} epochs "
            f"per run):", "",
            *table(["Model", "Training step (s)", "Prediction batch (s)", "Steps / epoch",
                    "Epoch (s)", f"{folds} folds (h)", f"{folds} folds + audit (h)"], rows),
            "", f"The {folds}-fold × 2-model grid: **{num(grid['without_audit_hours'])} h**, "
                f"{num(grid['with_audit_hours'])} h with the shortcut audit's networks."]


def whole_lines(section: dict | None) -> list[str]:
    if (status := skipped(section)) is not None or "runs" not in section:
        return [f"**A whole grid** (`cxr batch`): {status or section.get('status')}."]
    rows = [[mode, num(b["wall_s"] / 60),
             *[num(b.get("phases_s", {}).get(k, 0) / 60) for k in PHASES],
             ", ".join(f"{n} {s}" for s, n in b.get("run_counts", {}).items()) or "–"]
            for mode, b in section["runs"].items()]
    lines = [f"**A whole grid**: `{next(iter(section['runs'].values()))['command']}`, from "
             f"an empty feature cache (cold) and again with the cache it filled (warm), "
             f"minutes:", "",
             *table(["Feature cache", "Wall", *PHASES.values(), "Runs"], rows)]
    for mode, block in section["runs"].items():
        if block.get("budget"):
            lines += ["", f"Where a {mode} run's seconds go (mean per run of each kind):",
                      "", *budget_table(block["budget"])]
    return lines


PHASES = {"prepare_features": "features", "runs": "runs", "reports": "reports"}


def budget_table(budget: dict) -> list[str]:
    """One row per kind of run: mean seconds per run in each stage (they add up)."""
    from benchmarks.budget import STAGE_TITLES, STAGES

    stages = [s for s in STAGES if any(s in b["stages_mean_s"] for b in budget.values())]
    rows = [[kind, str(b["runs"]), num(b["mean_s"]),
             *[num(b["stages_mean_s"].get(s)) for s in stages]]
            for kind, b in sorted(budget.items(), key=lambda kv: (kv[0].startswith("report"),
                                                                   kv[0]))]
    return table(["Kind of run", "Runs", "s / run", *[STAGE_TITLES[s] for s in stages]], rows)


def shown_command(command: str) -> str:
    """A recorded command with every absolute path replaced by ``PATH``."""
    return re.sub(r"(?<=\s)/\S+", "PATH", command)


def render_markdown(result: dict) -> str:
    """All tables of a benchmark result, as Markdown."""
    blocks = [machine_lines(result), extraction_lines(result.get("extraction")),
              naive_lines(result.get("cached_vs_naive")), patients_lines(result.get("patients")),
              trainers_lines(result.get("trainers")),
              paper_detector_lines(result.get("paper_detector")), whole_lines(result.get("whole"))]
    source = (f"_Rendered by `benchmarks/render.py` from the JSON of "
              f"`{shown_command(result.get('command', 'python -m benchmarks'))}`; do not edit by "
              f"hand._")
    return "# Benchmark results\n\n" + "\n\n".join("\n".join(b) for b in [*blocks, [source]]) + "\n"


def write_markdown(result: dict, path: str | Path) -> Path:
    """Render ``result`` into ``path``."""
    return write_text(path, render_markdown(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render",
                                     description="Render a benchmark JSON as Markdown.")
    parser.add_argument("json", type=Path, help="a results JSON of python -m benchmarks")
    parser.add_argument("--out", type=Path, help="Markdown file (default: next to the JSON)")
    args = parser.parse_args(argv)
    out = write_markdown(json.loads(args.json.read_text()), args.out or args.json.with_suffix(".md"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
