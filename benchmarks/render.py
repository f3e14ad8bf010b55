"""The Markdown tables of a benchmark, rendered from its JSON (never typed by hand).

    python -m benchmarks.render results/benchmarks/benchmark.json [--readme README.md]

``update_readme`` replaces the text between ``<!-- performance:start -->`` and
``<!-- performance:end -->``; a file without both markers is left untouched.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cxrlib.io import write_text

START = "<!-- performance:start -->"
END = "<!-- performance:end -->"


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
        f"Measured {result.get('started', '')[:10]} on **{m['cpu_model']}**"
        f"{', ' + m['instruction_set'] if m.get('instruction_set') else ''} "
        f"({m['logical_cores']} logical / {m.get('physical_cores')} physical cores, "
        f"{m['usable_cores']} usable, {m['memory_gb']} GB RAM), {m['os']}; Python "
        f"{v.get('python')}, TensorFlow {v.get('tensorflow')}, Keras {v.get('keras')}, "
        f"NumPy {v.get('numpy')}"
        + (f"; load average at start {load[0]}" if load else "") + ".",
        f"Every figure is the median of the repetitions and, in brackets, their spread "
        f"({result.get('spread', 'min-max').replace('-', '–')}). Data: "
        f"`{result['data']['data_dir_shown']}` ({result['data']['kind']}).",
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


def threads_lines(section: dict) -> list[str]:
    if (status := skipped(section)) is not None:
        return [f"**Threads**: {status}."]
    rows = [[count, stat(b["extract_images_per_s"]), stat(b["predict_images_per_s"]),
             f"×{num(section['extract_speedup'][count])}"]
            for count, b in section["settings"].items()]
    return [f"**Threads** ({section['backbone']}, {section['image_size']} px; TensorFlow "
            f"threads, decode threads and CPU affinity set to N, one process each)", "",
            *table(["N", "extract_features (img/s)", "bare predict (img/s)",
                    "Extraction speed-up"], rows)]


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


def paper_detector_lines(section: dict | None) -> list[str]:
    if (status := skipped(section)) is not None:
        return [f"**The detector as published** (Table 2 base, end to end): {status}."]
    rows = [[name, stat(b["train_step_s"]), stat(b["predict_step_s"]),
             str(b["train_steps_per_epoch"]), num(b["epoch_s"]), num(b["folds_s"] / 3600),
             num(b["folds_with_audit_s"] / 3600)]
            for name, b in section["models"].items()]
    grid = section["grid"]
    load = (section.get("measured") or {}).get("load_average_end")
    cores = section.get("usable_cores")
    busy = bool(load) and cores is not None and load[0] > cores + 0.5  # more than the benchmark
    shared = (f"Load average (1 min) when it finished: {load[0]}, on {cores or 'all'} usable "
              "cores (the benchmark itself keeps them busy)"
              + (": other work shared the CPU and slowed every step." if busy else ".")
              if load else "")
    return [f"**The detector as published**: the paper's Table 2 base (12 convolutions) "
            f"trained end to end from random initialisation, augmentation in the graph, on "
            f"this machine's {section['device']}, {section['image_size']} px, batch "
            f"{section['batch_size']}: {section['steps']} timed training step(s) and "
            f"prediction batch(es) per model after {section['warmup']} untimed one. An "
            f"epoch is the training steps over 4/5 of {section['n_images']} images plus "
            f"predicting the held-out fold; a run is {section['epochs']} epochs; the "
            f"shortcut audit trains a second network per run. {shared}", "",
            *table(["Model", "Training step (s)", "Prediction batch (s)", "Steps / epoch",
                    "Epoch (s)", f"{section['n_folds']} folds (h)",
                    f"{section['n_folds']} folds + audit (h)"], rows), "",
            f"The whole {section['n_folds']}-fold × 2-model grid: "
            f"**{num(grid['without_audit_hours'])} h**, "
            f"{num(grid['with_audit_hours'])} h with the shortcut audit runs "
            f"(`cxr batch --profile paper-gpu --estimate` measures it on any machine). The "
            f"CPU mode (frozen Keras VGG16 base, cached features) is the `whole` row below."]


def whole_lines(section: dict) -> list[str]:
    if not section or "runs" not in section:
        status = (section or {}).get("status", "not run")
        return [f"**Whole reproduction** (`cxr batch`): {status}."]
    def kernel_minutes(block: dict, kind: str) -> str:
        seconds = block.get("run_seconds_by_kind", {}).get(kind, {}).get("seconds")
        return num(seconds / 60) if seconds is not None else "–"

    rows = [[mode, num(b["wall_s"] / 60), num(b["peak_rss_mb"] / 1024),
             num(b.get("peak_rss_single_process_mb", 0) / 1024),
             ", ".join(f"{n} {status}" for status, n in b.get("run_counts", {}).items()) or "–",
             kernel_minutes(b, "prognet"), kernel_minutes(b, "detector"),
             kernel_minutes(b, "reports"),
             "ok" if b["exit_code"] == 0 else f"exit {b['exit_code']}"]
            for mode, b in section["runs"].items()]
    workers = next((b["workers"] for b in section["runs"].values() if b.get("workers")), None)
    data = section.get("data_dir_shown", section["data_dir"])
    return [f"**Whole reproduction**: `cxr batch --profile {section['profile']}` "
            f"(weights none{f', {workers} workers' if workers else ''}) on `{data}`, from an "
            f"empty feature cache (cold) and again with the cache it filled (warm); one run "
            f"each (status: {section['status']}). Memory is "
            f"the largest resident total of the process tree (papermill kernels included), "
            f"polled every 0.2 s. The last columns add up the minutes each kind of run "
            f"spent in its notebook (runs overlap across workers): with a warm cache what "
            f"is left is training the heads and starting the kernels.", "",
            *table(["Feature cache", "Wall time (min)", "Peak RSS, all processes (GB)",
                    "Largest process (GB)", "Runs", "ProgNet runs (min)",
                    "Detector runs (min)", "Reports (min)", "Exit"], rows)]


GOALS = (
    ("`make test`, after installation", ("loops", "targets", "test"), "wall_s", 5),
    ("`make reproduce`'s batch (sample data)", ("loops", "targets", "reproduce"),
     "phases_s.batch_s", 4),
    ("the paper grid, cold feature cache", ("whole", "runs", "cold"), "wall_s", 15),
    ("the paper grid, warm feature cache", ("whole", "runs", "warm"), "wall_s", 10),
)
"""The loops a newcomer and a reproducer wait for: where the benchmark JSON keeps each
one's block and its measured seconds in it, and the minutes each should take on a 2-core
machine (the fast-loops goals)."""
GOAL_CORES = 2


def _lookup(value, keys) -> object:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def goals_lines(result: dict) -> list[str]:
    """Each loop's goal beside what the benchmark measured (– where not measured), and
    two floors: its measured CPU seconds over the goal's two cores (the same work packed
    with no idle moment), and where its batch's budget was measured, its training's
    arithmetic at the bare rates of its shapes (``budget.arithmetic_floor``)."""
    from benchmarks.budget import arithmetic_floor

    rows = []
    for title, keys, seconds_key, goal in GOALS:
        block = _lookup(result, keys)
        value = _lookup(block, seconds_key.split("."))
        minutes = value / 60 if isinstance(value, (int, float)) else None
        met = "–" if minutes is None else ("✓" if minutes <= goal else "✗")
        cpu = _lookup(block, ("processes", "polled_cpu_s"))
        packed = cpu / GOAL_CORES / 60 if isinstance(cpu, (int, float)) else None
        floor = arithmetic_floor(_lookup(block, ("budget",)) or {},
                                 _lookup(result, (keys[0], "matmul")))
        measured = ((result.get(keys[0]) or {}).get("measured") or {}).get("finished", "")
        rows.append([title, num(goal), num(minutes), met, num(packed),
                     num(floor["seconds"] / 60) if floor else "–", measured[:10] or "–"])
    return ["**The loops and their goals** (minutes on a 2-core machine; the sections below "
            "measure them, on the date given, and say where the time goes). *CPU-s ÷ 2*: "
            "the CPU seconds the loop's processes used, over two cores: how long the same "
            "work takes with not one idle moment. *Arithmetic floor*: the counted "
            "multiplies of the batch's trainings and shortcut audits at the bare rates of "
            "their shapes on the same machine (below its budget tables), before any "
            "feature, kernel start or report:", "",
            *table(["Loop", "Goal", "Measured", "Met", "CPU-s ÷ 2", "Arithmetic floor",
                    "Measured on"], rows)]


def budget_table(budget: dict, matmul: dict | None, workers: int | None = None) -> list[str]:
    """One row per kind of run: mean seconds per run in each stage (they add up to the
    run's seconds), and the training's achieved rate against the bare matmul's: the
    whole machine's 2048² rate, and the bare rate of the head's own shape shared
    between the batch's ``workers`` (each worker's training had about that share of
    the cores while the others trained too)."""
    from benchmarks.budget import STAGE_TITLES, STAGES, shape_rate

    stages = [s for s in STAGES if any(s in b.get("stages_mean_s", {}) for b in budget.values())]
    order = sorted(budget, key=lambda k: (k.startswith("report"), k))
    rows = []
    for kind in order:
        block = budget[kind]
        rate = block.get("train_gflops")
        share = (f"{rate / matmul['gflops']:.0%}" if rate and matmul and matmul.get("gflops")
                 else "–")
        bare = shape_rate(kind, matmul)
        per_worker = f"{rate * workers / bare:.0%}" if rate and workers and bare else "–"
        rows.append([kind, str(block["runs"]), num(block["mean_s"]),
                     *[num(block["stages_mean_s"].get(s)) if s in block["stages_mean_s"]
                       else "–" for s in stages],
                     num(block.get("train_gflop_per_run")), num(rate), share, per_worker])
    return table(["Kind of run", "Runs", "s / run", *[STAGE_TITLES[s] for s in stages],
                  "Training GFLOP / run", "Training GFLOP/s", "of bare matmul",
                  "of its shape's rate per worker"], rows)


def budget_lines(budget: dict, matmul: dict | None, workers: int | None) -> list[str]:
    """A batch's budget table and, under it, its arithmetic floor (where it has one)."""
    floor = floor_sentence(budget, matmul)
    return [*budget_table(budget, matmul, workers), *(["", floor] if floor else [])]


def floor_sentence(budget: dict, matmul: dict | None) -> str:
    """The least time the runs' counted training arithmetic takes on this machine
    (``budget.arithmetic_floor``), in words; empty when it cannot be computed."""
    from benchmarks.budget import arithmetic_floor

    floor = arithmetic_floor(budget, matmul)
    if not floor:
        return ""
    slowest = max(floor["kinds"], key=lambda k: floor["kinds"][k]["seconds"])
    part = floor["kinds"][slowest]
    return (f"*Arithmetic floor*: the counted multiplies of these runs' trainings and "
            f"shortcut audits, {floor['gflop']:,.0f} GFLOP, take at least "
            f"{num(floor['seconds'])} s ({num(floor['seconds'] / 60)} min) with both cores "
            f"at the bare rates of their shapes ({slowest}: {part['gflop']:,.0f} GFLOP at "
            f"{num(part['rate_gflops'])} GFLOP/s, {num(part['seconds'])} s), and "
            f"{num(floor['seconds_at_big_rate'])} s ({num(floor['seconds_at_big_rate'] / 60)} "
            f"min) even at the 2048² rate: before any kernel start, table, feature, "
            f"evaluation or report.")


def matmul_sentence(matmul: dict | None) -> str:
    if not matmul:
        return ""
    big = (f"A bare float32 matrix multiply measured in the same benchmark run reaches "
           f"**{num(matmul['gflops'])} GFLOP/s** ({matmul['size']}², TensorFlow's default "
           f"threads)")
    if matmul.get("chain") != "dependent":  # an early version let TensorFlow fold the chain
        return big + "."
    text = (big + f"; the small multiplies of the detector's LSTM (batch "
            f"{matmul['small_shape'][0]}, {matmul['small_shape'][1]} inputs and states to "
            f"{matmul['small_shape'][2]} gates, {matmul['small_chain']} dependent steps in "
            f"one graph) reach {num(matmul['small_gflops'])} GFLOP/s")
    if "prognet_gflops" in matmul:  # measured since 2026-12-01's fifth session
        shape = matmul["prognet_shape"]
        text += (f", and those of ProgNet's LSTM (batch {shape[0]}, {shape[1]:,} inputs and "
                 f"states to {shape[2]} gates, {matmul['prognet_chain']} steps) "
                 f"{num(matmul['prognet_gflops'])} GFLOP/s")
    return text + "."


BUDGET_NOTE = ("Seconds are the mean per run that finished, from papermill's cell timings "
               "in the executed notebooks (each cell is tagged with its stage); *kernel "
               "start, papermill* is the rest of the run's seconds: starting or resetting "
               "the kernel, papermill reading and writing the notebook. *Training GFLOP* "
               "counts the matrix multiplies of the saved head (Dense and LSTM layers, "
               "forward, plus twice that backward) over the epochs trained, the test fold "
               "watched after every epoch included (`benchmarks/budget.py`). *Of its "
               "shape's rate per worker* sets the training's rate against the bare rate of "
               "the multiplies of its head's shape (the LSTM's; the 2048² one for a head "
               "without an LSTM), divided among the batch's workers: while two workers "
               "train at once, each has about half of the cores the bare rate used.")


def phases_sentence(phases: dict | None) -> str:
    """The batch's wall time split into preparing features, the runs and the reports."""
    if not phases:
        return ""
    names = {"prepare_features": "features prepared", "runs": "the runs",
             "reports": "the report chapters"}
    parts = [f"{names.get(k, k)} {num(v)} s" for k, v in phases.items() if k in names]
    total = f" ({num(phases['batch_s'])} s)" if phases.get("batch_s") else ""
    return f"Of the batch's wall time{total}: {', '.join(parts)}."


def mode_budgets(section: dict) -> list[str]:
    """One budget table per measured feature cache (cold, warm) of a batch section."""
    lines = []
    for mode, block in section["runs"].items():
        if block.get("budget"):
            lines += ["", f"*{mode} cache*: {phases_sentence(block.get('phases_s'))}", "",
                      *budget_lines(block["budget"], section.get("matmul"),
                                    block.get("workers"))]
    return lines


def whole_budget_lines(section: dict | None) -> list[str]:
    if not section or "runs" not in section or not (lines := mode_budgets(section)):
        return []
    return [f"**Time budget of the whole reproduction** (`cxr batch --profile "
            f"{section['profile']}`, the runs of the table above). {BUDGET_NOTE} "
            f"{matmul_sentence(section.get('matmul'))}", *lines]


def paper_budget_lines(section: dict | None) -> list[str]:
    if not section or "runs" not in section:
        return []
    lines = mode_budgets(section)
    selection = " ".join(section.get("selection", []))
    return [f"**Time budget of the paper profile's runs** (`cxr batch --profile "
            f"{section['profile']} -p weights none {selection}`: every backbone and both "
            f"detector models, each kind of run of the grid; status: {section['status']}). "
            f"{BUDGET_NOTE} {matmul_sentence(section.get('matmul'))}", *lines]


def loops_lines(section: dict | None) -> list[str]:
    if not section or "targets" not in section:
        status = (section or {}).get("status", "not run")
        return [f"**The newcomer's loops** (`make test`, `make reproduce`): {status}."]
    rows = []
    for target, block in section["targets"].items():
        phases = "; ".join(f"{p['summary']} in {num(p['seconds'] / 60)} min"
                           for p in block.get("pytest", []))
        rows.append([f"`make {target}`", num(block["wall_s"] / 60), phases or "–",
                     "ok" if block["exit_code"] == 0 else f"exit {block['exit_code']}"])
    lines = [f"**The newcomer's loops**: each make target on a fresh clone of commit "
             f"`{section['commit']}` after installation (status: {section['status']}).", "",
             *table(["Command", "Wall time (min)", "pytest runs", "Exit"], rows)]
    lines += processes_lines(section)
    reproduce = section["targets"].get("reproduce", {})
    if reproduce.get("budget"):
        lines += ["", f"**Time budget of `make reproduce`** (the sample batch). {BUDGET_NOTE} "
                  f"{matmul_sentence(section.get('matmul'))} "
                  f"{phases_sentence(reproduce.get('phases_s'))}",
                  "", *budget_lines(reproduce["budget"], section.get("matmul"),
                                    reproduce.get("workers"))]
    return lines


def processes_lines(section: dict) -> list[str]:
    """Each make target's CPU seconds by recipe line and kind of process, and what
    importing TensorFlow in a fresh process costs (``benchmarks.processes``)."""
    from benchmarks.processes import KINDS, OTHER

    rows, imports = [], section.get("tensorflow_import") or {}
    for target, block in section["targets"].items():
        for phase, figures in ((block.get("processes") or {}).get("phases") or {}).items():
            kinds = figures["kinds"]
            kernels = kinds.get("notebook kernel", {})
            rows.append([f"`make {target}`", f"`{phase}`", num(figures["wall_s"]),
                         num(figures["cpu_s"]), str(figures["processes"]),
                         str(figures["tensorflow_processes"]), str(kernels.get("processes", 0)),
                         *[num(kinds.get(k, {}).get("cpu_s", 0)) for k in (*KINDS, OTHER)]])
    if not rows:
        return []
    lines = ["", "**Where the newcomer's loops spend their CPU** (each make target's process "
             "tree polled every 0.2 s: CPU seconds by recipe line and kind of process; a "
             "process that loaded TensorFlow's library is counted under *TensorFlow*):", "",
             *table(["Command", "Recipe line", "Wall (s)", "CPU (s)", "Processes",
                     "TensorFlow", "Kernels", "Kernel CPU (s)", "Test-process CPU (s)",
                     "cxr CPU (s)", "Other CPU (s)"], rows, "llrrrrrrrrr")]
    test = (section["targets"].get("test") or {}).get("processes")
    if imports.get("cpu_s") and test:
        spent = imports["cpu_s"] * test["tensorflow_processes"]
        lines += ["", f"A fresh Python process takes {num(imports['cpu_s'])} CPU-s "
                  f"({num(imports['wall_s'])} s) to start and import TensorFlow and Keras here "
                  f"(median of {imports['repeats']}, measured in the same run). `make test` "
                  f"started {test['tensorflow_processes']} processes that loaded TensorFlow "
                  f"({test['processes']} processes in all): at that price about "
                  f"{num(spent)} of its {num(test['polled_cpu_s'])} CPU-s "
                  f"({spent / test['polled_cpu_s']:.0%}) are imports before any test runs "
                  f"(the operating system counts {num(test['all_children_cpu_s'])} CPU-s for "
                  f"all its finished processes)."]
    return lines


def shown_command(command: str) -> str:
    """A command line without the machine's absolute paths: ``--work-dir /work/x`` reads
    ``--work-dir WORK_DIR`` (relative paths are kept, they name the project's files)."""
    words, previous = [], ""
    for word in command.split(" "):
        if word.startswith("/"):
            word = previous.lstrip("-").replace("-", "_").upper() if previous.startswith("--") else "PATH"
        words.append(word)
        previous = word
    return " ".join(words)


def render_markdown(result: dict) -> str:
    """All tables of a benchmark result, as Markdown."""
    scaling = result.get("scaling") or {}
    blocks = [machine_lines(result), goals_lines(result), extraction_lines(result.get("extraction")),
              naive_lines(result.get("cached_vs_naive")), threads_lines(scaling.get("threads")),
              patients_lines(scaling.get("patients")),
              paper_detector_lines(result.get("paper_detector")), whole_lines(result.get("whole")),
              whole_budget_lines(result.get("whole")),
              paper_budget_lines(result.get("paper_budget")), loops_lines(result.get("loops"))]
    blocks = [b for b in blocks if b]
    commands = [f"`{shown_command(result.get('command', 'python -m benchmarks'))}`"]
    for update in result.get("updates", []):
        sections = ", ".join(update["settings"]["sections"])
        machine = update["machine"]
        cpu = " ".join(filter(None, (machine.get("cpu_model"), machine.get("instruction_set"))))
        commands.append(f"`{shown_command(update['command'])}` ({sections}, {update['started'][:10]}, "
                        f"{cpu}, load average at start {machine.get('load_average_start')})")
    source = (f"_Generated by {' then '.join(commands)} (`benchmarks/render.py` renders it "
              f"from the JSON; do not edit by hand)._")
    return "\n\n".join("\n".join(b) for b in [*blocks, [source]]) + "\n"


def update_readme(path: str | Path, markdown: str) -> str:
    """Put ``markdown`` between the performance markers of ``path``; say what happened."""
    path = Path(path)
    if not path.is_file():
        return f"{path}: not found, nothing written"
    text = path.read_text()
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        return f"{path}: markers {START} ... {END} absent, left untouched"
    updated = text[:start + len(START)] + "\n" + markdown.strip() + "\n" + text[end:]
    if updated == text:
        return f"{path}: already up to date"
    write_text(path, updated)
    return f"{path}: performance section updated"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render",
                                     description="Render a benchmark JSON as Markdown.")
    parser.add_argument("json", type=Path, help="benchmark.json")
    parser.add_argument("--out", type=Path, help="Markdown file (default: next to the JSON)")
    parser.add_argument("--readme", type=Path, help="also update this README's section")
    args = parser.parse_args(argv)
    markdown = render_markdown(json.loads(args.json.read_text()))
    out = args.out or args.json.with_suffix(".md")
    write_text(out, markdown)
    print(f"wrote {out}")
    if args.readme:
        print(update_readme(args.readme, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
