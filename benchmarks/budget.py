"""Where a batch's seconds go, per kind of run, read from the runs it left behind.

Every code cell of the notebooks carries a ``stage:<name>`` tag (imports, tables,
features, train, evaluate, audit, report, write) and papermill records each cell's
duration in the executed notebook. A run's ``start`` is what its cells do not account
for: starting (or resetting) the kernel, papermill reading and writing the notebook, the
parameters cell, the run folder's rename. The stages of a run therefore add up to the
seconds ``cxr batch`` measured for it (``batch_summary.csv``).

``training_flops`` counts the matrix multiplies of a saved head (Dense and LSTM layers:
2 x inputs x outputs per row, forward; backward twice that) over the epochs the run
trained, so ``train`` seconds become an achieved arithmetic rate; ``matmul_rate`` measures
what a bare matrix multiply reaches on the same machine, in the same benchmark run.
"""
from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks import REPO
from cxrlib.runs import NOTEBOOKS

STAGES = ("start", "imports", "tables", "features", "train", "evaluate", "audit", "report",
          "write")
"""The stages of the budget, in the order a run goes through them."""
STAGE_TITLES = {"start": "kernel start, papermill", "imports": "imports",
                "tables": "data tables", "features": "features (cache)", "train": "training",
                "evaluate": "evaluation", "audit": "shortcut audit", "report": "report cells",
                "write": "writing"}
BACKWARD_FACTOR = 2
"""A training step costs the forward pass plus a backward pass of about twice its
multiplies (gradients with respect to both the inputs and the weights)."""


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


def batch_budget(out: str | Path, flops: bool = True) -> dict:
    """Per kind of run: the number of runs that finished ok and the mean seconds per run
    in each stage (they add up to the mean run seconds), and for runs that trained a head
    the counted training FLOPs and the achieved rate. Empty when there is no summary."""
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
        record = {"seconds": float(row.seconds), "stages": stages}
        experiment = kind.split()[0]  # "detector cnn" -> "detector"
        if flops and experiment in ("prognet", "detector"):
            record["train_flops"] = run_training_flops(Path(row.folder), experiment)
            record["audit_flops"] = run_audit_flops(Path(row.folder), record["train_flops"])
        per_kind[kind].append(record)
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


def batch_workers(out: str | Path) -> int | None:
    """How many workers the finished batch in ``out`` ran its runs on (``batch.json``)."""
    try:
        return json.loads((Path(out) / "batch.json").read_text()).get("workers")
    except (OSError, ValueError):
        return None


def summarise(records: list[dict]) -> dict:
    """Mean seconds per stage over a kind's runs, and the training rate."""
    n = len(records)
    block = {"runs": n, "mean_s": sum(r["seconds"] for r in records) / n,
             "total_s": sum(r["seconds"] for r in records),
             "stages_mean_s": {s: sum(r["stages"].get(s, 0.0) for r in records) / n
                               for s in STAGES
                               if any(r["stages"].get(s, 0.0) for r in records)}}
    counted = [r for r in records if r.get("train_flops")]
    if counted:
        flops = sum(r["train_flops"] for r in counted)
        train_s = sum(r["stages"].get("train", 0.0) for r in counted)
        block["train_gflop_per_run"] = flops / len(counted) / 1e9
        block["train_gflops"] = flops / train_s / 1e9 if train_s else None
    if any("audit_flops" in r for r in records):  # None: no audit counted (or none made)
        audited = [r["audit_flops"] for r in records if r.get("audit_flops")]
        block["audit_gflop_per_run"] = sum(audited) / len(audited) / 1e9 if audited else None
    return block


def forward_flops(model) -> int:
    """Multiply-add FLOPs (2 per multiply-add) of one sample's forward pass through the
    Dense and LSTM layers of a Keras model (nested models included); the element-wise
    work (activations, gates, losses) is not counted."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_flops(layer)
            continue
        if not isinstance(layer, (keras.layers.Dense, keras.layers.LSTM)):
            continue
        tensor = layer.input[0] if isinstance(layer.input, (list, tuple)) else layer.input
        shape = tuple(tensor.shape)
        if isinstance(layer, keras.layers.Dense):
            rows = math.prod(d for d in shape[1:-1] if d) if len(shape) > 2 else 1
            total += 2 * rows * shape[-1] * layer.units
        elif isinstance(layer, keras.layers.LSTM):
            total += 2 * shape[1] * 4 * layer.units * (shape[-1] + layer.units)
    return int(total)


def training_flops(forward: int, train_samples: int, watched_samples: int,
                   epochs: int) -> int:
    """FLOPs of ``epochs`` epochs of training on ``train_samples`` (forward and backward)
    while watching ``watched_samples`` (forward only) after each epoch."""
    return int(epochs * forward * ((1 + BACKWARD_FACTOR) * train_samples + watched_samples))


def run_training_flops(folder: Path, kind: str) -> int | None:
    """Training FLOPs of one finished run, from its saved head, ``metrics.json`` and
    ``history.csv`` (None for a run that trained a whole network, or one we cannot read)."""
    import keras
    import pandas as pd

    try:
        card = json.loads((folder / "model" / "model.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        epochs = len(pd.read_csv(folder / "history.csv"))
    except (OSError, ValueError):
        return None
    if card.get("kind") != "head":
        return None
    if kind == "prognet":
        head = card["folds"][0]["model"]
        params = metrics["parameters"]
        train = metrics["n_train"] if params.get("window") != "all" else None
        watched = metrics["n_test"]
        if train is None:
            return None
    else:
        head = card["file"]
        counts = metrics["n_per_class"]
        copies = metrics["parameters"].get("augment_copies", 0) + 1
        train = sum(counts["train"].values()) * copies
        watched = sum(counts["test"].values())
    model = keras.saving.load_model(folder / "model" / head, compile=False)
    return training_flops(forward_flops(model), train, watched, epochs)


def run_audit_flops(folder: Path, train_flops: int | None) -> int | None:
    """Training FLOPs of a detector run's shortcut audit: its second head is the same
    model trained on as many rows (the lungs-blanked views of the same images) for as
    many epochs (``detector.shortcut_audit``), so it costs the training's own FLOPs.
    None when the run made no audit, or stopped early (its epochs are not saved)."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if metrics.get("experiment") != "detector" or not metrics.get("shortcut_audit"):
        return None
    if metrics.get("parameters", {}).get("early_stopping"):
        return None
    return train_flops


SHAPE_RATES = {"detector cnn_lstm": "small_gflops", "prognet": "prognet_gflops"}
"""Which bare rate of ``matmul_rate`` bounds each kind's training: the multiplies of its
LSTM's shape; other kinds (the detector's flatten-and-dense head) the 2048² rate."""


def shape_rate(kind: str, matmul: dict | None) -> float | None:
    """The bare GFLOP/s of the multiplies of ``kind``'s head (``SHAPE_RATES``); None where
    that rate was not measured (ProgNet's shape before 2026-12-01's fifth session)."""
    return (matmul or {}).get(SHAPE_RATES.get(kind, "gflops"))


def arithmetic_floor(budget: dict, matmul: dict | None) -> dict | None:
    """The least time the counted training arithmetic of a batch's runs (each kind's
    training and audit FLOPs, times its runs) takes at the bare rates of its shapes with
    the whole machine (``matmul``: both cores for one multiply), and at the 2048² rate.
    A lower bound on the batch's runs however they are spread over workers: it leaves
    out everything but the counted multiplies. None without a measured rate or FLOPs.

    A budget recorded before audits were counted (2026-12-02) has an ``audit`` stage but no
    ``audit_gflop_per_run`` key; its audit is counted as the training again, which is what
    ``run_audit_flops`` finds for every audit that did not stop early (those budgets are
    of the paper and sample profiles, which never stop early). A budget recorded since
    has the key, None where no audit could be counted, which then adds nothing."""
    if not matmul or not matmul.get("gflops"):
        return None
    kinds = {}
    for kind, block in budget.items():
        train = block.get("train_gflop_per_run") or 0.0
        audit = block.get("audit_gflop_per_run")
        if "audit_gflop_per_run" not in block and "audit" in block.get("stages_mean_s", {}):
            audit = train  # recorded before audits were counted: the same training again
        gflop = (train + (audit or 0.0)) * block["runs"]
        if gflop:
            rate = shape_rate(kind, matmul) or matmul["gflops"]  # faster: still a floor
            kinds[kind] = {"gflop": gflop, "rate_gflops": rate, "seconds": gflop / rate}
    if not kinds:
        return None
    gflop = sum(k["gflop"] for k in kinds.values())
    return {"kinds": kinds, "gflop": gflop,
            "seconds": sum(k["seconds"] for k in kinds.values()),
            "seconds_at_big_rate": gflop / matmul["gflops"]}


#: The LSTM multiplies of each head, as (steps, batch, inputs, units): the detector's
#: (a 7x7x512 map read as 49 steps of 512, 64 units) and ProgNet's (3 images of 2048
#: resnet50 features, 150 units), batch 32 as both papers train.
LSTM_SHAPES = {"detector": (49, 32, 512, 64), "prognet": (3, 32, 2048, 150)}


def matmul_rate(size: int = 2048, repeats: int = 7) -> dict:
    """GFLOP/s of a bare float32 ``size`` x ``size`` matrix multiply in TensorFlow (its
    default threads), the median of ``repeats`` after one untimed call; and of the small
    multiplies one LSTM step of each head makes (``LSTM_SHAPES``: inputs and the last
    state to 4 x units gates), its steps dependent inside one ``tf.function``, as the LSTM
    runs them (``small_*``: the detector's; ``prognet_*``: ProgNet's)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.normal(size=(size, size)).astype("float32"))
    b = tf.constant(rng.normal(size=(size, size)).astype("float32"))

    def clock(call) -> list[float]:
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return times

    def lstm_rate(steps: int, batch: int, inputs: int, units: int) -> float:
        xs = tf.constant(rng.normal(size=(steps, batch, inputs)).astype("float32"))
        wx = tf.constant(rng.normal(size=(inputs, 4 * units)).astype("float32") * 0.05)
        wh = tf.constant(rng.normal(size=(units, 4 * units)).astype("float32") * 0.05)

        @tf.function
        def lstm_steps():
            state = tf.zeros((batch, units))
            for t in range(steps):  # each step needs the state the previous one computed
                gates = tf.linalg.matmul(xs[t], wx) + tf.linalg.matmul(state, wh)
                state = tf.tanh(gates[:, :units])
            return state

        flops = steps * 2 * batch * 4 * units * (inputs + units)
        return flops / float(np.median(clock(lambda: lstm_steps().numpy()))) / 1e9

    big = clock(lambda: tf.linalg.matmul(a, b).numpy())
    result = {"size": size, "repeats": repeats,
              "gflops": 2 * size ** 3 / float(np.median(big)) / 1e9, "chain": "dependent"}
    for name, prefix in (("detector", "small"), ("prognet", "prognet")):
        steps, batch, inputs, units = LSTM_SHAPES[name]
        result.update({f"{prefix}_shape": [batch, inputs + units, 4 * units],
                       f"{prefix}_chain": steps,
                       f"{prefix}_gflops": lstm_rate(steps, batch, inputs, units)})
    return result
