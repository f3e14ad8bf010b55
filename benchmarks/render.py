"""The Markdown tables of a benchmark result, rendered from its JSON (never typed); what
each figure means is in ``benchmarks/README.md``.

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
    return f"{value:.2f}" if magnitude >= 0.01 else f"{value:.1e}"


def stat(block: dict | None) -> str:
    """``median (min–max)``, or the median alone when there was one repetition."""
    if not block or block.get("median") is None:
        return "–"
    if block.get("n", 0) < 2:
        return num(block["median"])
    return f"{num(block['median'])} ({num(block['min'])}–{num(block['max'])})"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, the first column left-aligned and the others right-aligned."""
    rule = ["---"] + ["---:"] * (len(header) - 1)
    return ["| " + " | ".join(row) + " |" for row in [header, rule, *rows]]


def section(title: str, block: dict | None, caption) -> list[str]:
    """A section's title and ``caption(block)`` (its lines), or its status when it holds
    no figures (not run, or failed)."""
    status = "not run" if not block else block.get("status", "ok")
    if status != "ok":
        return [f"**{title}**: {status}."]
    first, *rest = caption(block)
    return [f"**{title}** {first}", *rest]


def extraction_lines(s: dict) -> list[str]:
    rows = [[name, stat(b["extract_images_per_s"]), stat(b["predict_images_per_s"]),
             stat(b["ratio"]) + (" ✓" if b["meets_goal"] else " ✗"),
             stat(b["decode_images_per_s"]), num(b["ratio_ceiling"]),
             f"{b['share_of_ceiling']:.0%}"] for name, b in s["backbones"].items()]
    return [f"at {s['image_size']} px, {s['images']} images, {s['repeats']} repetition(s); "
            f"goal ratio ≥ {s['goal']}:", "",
            *table(["Backbone", "extract_features (img/s)", "bare predict (img/s)", "Ratio",
                    "Decoding alone, 1 thread (img/s)", "Ceiling", "Ratio / ceiling"], rows)]


def naive_lines(s: dict) -> list[str]:
    rows = [[name, stat(b["cached"]["extraction_s"]),
             stat(b["cached"]["train_and_predict_s_per_seed"]),
             stat(b["naive"]["steady_epoch_s"]), num(b["target"]["cached_s"]),
             num(b["target"]["naive_s"]), f"×{num(b['target']['speedup'])}",
             num(b["max_abs_diff"])] for name, b in s["backbones"].items()]
    first = next(iter(s["backbones"].values()), {})
    return [f"at {s['image_size']} px, {first.get('n_patients', '?')} patients, seconds "
            f"projected to {s['target_seeds']} seeds × {s['target_epochs']} epochs from "
            f"{s['naive_epochs_measured']} naive epochs (tolerance of the last column "
            f"{first.get('atol', 1e-4)}):", "",
            *table(["Backbone", "Cold extraction", "Train + predict / seed", "Naive epoch",
                    "Cached total", "Naive total", "Speed-up", "Max abs diff"], rows)]


def patients_lines(s: dict) -> list[str]:
    rows = [[str(b["n_patients"]), str(b["n_images"]), stat(b["extraction_s"]),
             stat(b["training_s"]), stat(b["total_s"]), num(b["s_per_patient"])]
            for b in s["sizes"].values()]
    fit = s["fit_total_s"]
    r2 = f", R² = {fit['r2']:.3f}" if fit.get("r2") is not None else ""
    return [f"({s['backbone']}, {s['image_size']} px, {s['epochs']} epochs):", "",
            *table(["Patients", "Images", "Extraction (s)", "Training (s)", "Total (s)",
                    "s / patient"], rows), "",
            f"Linear fit: {num(fit['slope'])} s per patient + {num(fit['intercept'])} s{r2}."]


def trainers_lines(s: dict) -> list[str]:
    return [f"(`training.fit`, {s['backbone']} features, {s['sequences']} sequences, "
            f"{s['epochs']} epochs): {stat(s['kept_s'])} s per training with the twin kept, "
            f"{stat(s['dropped_s'])} s with it dropped: **{num(s['saved_s_per_training'])} s "
            f"saved per training**."]


def paper_detector_lines(s: dict) -> list[str]:
    rows = [[name, stat(b["train_step_s"]), stat(b["predict_step_s"]),
             str(b["train_steps_per_epoch"]), num(b["epoch_s"]), num(b["folds_s"] / 3600),
             num(b["folds_with_audit_s"] / 3600)] for name, b in s["models"].items()]
    grid, folds = s["grid"], s["n_folds"]
    return [f"({s['device']}, {s['image_size']} px, batch {s['batch_size']}, {s['n_images']} "
            f"images, {s['epochs']} epochs per run):", "",
            *table(["Model", "Training step (s)", "Prediction batch (s)", "Steps / epoch",
                    "Epoch (s)", f"{folds} folds (h)", f"{folds} folds + audit (h)"], rows),
            "", f"The {folds}-fold × 2-model grid: **{num(grid['without_audit_hours'])} h**, "
                f"{num(grid['with_audit_hours'])} h with the shortcut audit's networks."]


PHASES = {"prepare_features": "features", "runs": "runs", "reports": "reports"}


def whole_lines(s: dict) -> list[str]:
    rows = [[mode, num(b["wall_s"] / 60),
             *[num(b.get("phases_s", {}).get(k, 0) / 60) for k in PHASES],
             ", ".join(f"{n} {status}" for status, n in b.get("run_counts", {}).items())]
            for mode, b in s["runs"].items()]
    lines = [f"(`{next(iter(s['runs'].values()))['command']}`), from an empty feature cache "
             f"(cold) and the cache it filled (warm), minutes:", "", *table(["Feature cache", "Wall", *PHASES.values(), "Runs"], rows)]
    for mode, block in s["runs"].items():
        if block.get("budget"):
            lines += ["", f"Where a {mode} run's seconds go (mean per run of each kind):",
                      "", *budget_table(block["budget"])]
    return lines


def budget_table(budget: dict) -> list[str]:
    """One row per kind of run: mean seconds per run in each stage (they add up)."""
    from benchmarks.budget import STAGE_TITLES, STAGES

    stages = [s for s in STAGES if any(s in b["stages_mean_s"] for b in budget.values())]
    rows = [[kind, str(b["runs"]), num(b["mean_s"]),
             *[num(b["stages_mean_s"].get(s)) for s in stages]]
            for kind, b in sorted(budget.items(), key=lambda kv: (kv[0].startswith("report"),
                                                                   kv[0]))]
    return table(["Kind of run", "Runs", "s / run", *[STAGE_TITLES[s] for s in stages]], rows)


SECTIONS = [("extraction", "Feature extraction", extraction_lines),
            ("cached_vs_naive", "Cached vs naive ProgNet", naive_lines),
            ("patients", "Cohort size", patients_lines),
            ("trainers", "Compiled twins", trainers_lines),
            ("paper_detector", "The detector as published", paper_detector_lines),
            ("whole", "A whole grid", whole_lines)]
"""(JSON key, title, caption) of each section, in the order of ``results.md``."""


def shown_command(command: str) -> str:
    """A recorded command with every absolute path replaced by ``PATH``."""
    return re.sub(r"(?<=\s)/\S+", "PATH", command)


def render_markdown(result: dict) -> str:
    """All tables of a benchmark result, as Markdown."""
    m, v = result["machine"], result["versions"]
    head = [f"Measured on **{m['cpu_model']}**, {m['instruction_set']}, {m['usable_cores']} "
            f"usable cores, {m['memory_gb']} GB RAM; Python {v['python']}, TensorFlow "
            f"{v['tensorflow']}, Keras {v['keras']}. Data: `{result['data']['shown']}` "
            f"({result['data']['kind']}). Figures: median (min–max) of the repetitions; what each "
            f"means: [README.md](README.md)."]
    blocks = [section(title, result.get(key), lines) for key, title, lines in SECTIONS]
    source = [f"_Rendered by `benchmarks/render.py` from the JSON of "
              f"`{shown_command(result['command'])}`; do not edit by hand._"]
    return "# Benchmark results\n\n" + "\n\n".join("\n".join(b) for b in
                                                   [head, *blocks, source]) + "\n"


def write_markdown(result: dict, path: str | Path) -> Path:
    """Render ``result`` into ``path``."""
    return write_text(path, render_markdown(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render", description=__doc__)
    parser.add_argument("json", type=Path)
    parser.add_argument("--out", type=Path, help="default: the JSON's path with .md")
    args = parser.parse_args(argv)
    out = write_markdown(json.loads(args.json.read_text()), args.out or args.json.with_suffix(".md"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
