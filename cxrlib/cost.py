"""What an end-to-end detector run costs on this machine, before it runs.

A few real training steps of the network (forward and backward, a batch of random images
at the run's size) and prediction batches are timed (``measure_step_cost``) and
extrapolated to whole runs (``estimate_cost``): an epoch is the training steps over the
k-1 training folds plus predicting the held-out fold; the shortcut audit trains a second
network per run. ``cxr batch`` prints the grid's cost this way before it starts
(``batch_cost``); ``benchmarks/paper_detector.py`` records it for the paper's grid.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from cxrlib import detector, training
from cxrlib.errors import ConfigError
from cxrlib.names import CLASSES


def time_steps(model, x: np.ndarray, y: np.ndarray, steps: int = 3, warmup: int = 1, *,
               loss: str, learning_rate: float = 1e-4,
               tick: Callable[[], None] | None = None) -> dict:
    """Median wall time of ``steps`` training steps (``train_on_batch``) and of ``steps``
    prediction batches (``predict_on_batch``) on (x, y), after ``warmup`` untimed ones
    of each; also the first (tracing) step's time when ``warmup`` > 0. ``tick`` is called
    after every step (a progress bar's update)."""
    model.compile(optimizer=training.make_optimizer(learning_rate, None), loss=loss)

    def clock(call) -> list[float]:
        times = []
        for _ in range(warmup + steps):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
            if tick is not None:
                tick()
        return times

    train = clock(lambda: model.train_on_batch(x, y))
    predict = clock(lambda: model.predict_on_batch(x))
    return {"train_step_s": float(np.median(train[warmup:])),
            "predict_step_s": float(np.median(predict[warmup:])),
            "first_step_s": float(train[0]) if warmup else None, "steps": steps,
            "warmup": warmup, "train_step_times": train[warmup:],
            "predict_step_times": predict[warmup:]}


def measure_step_cost(config: detector.Config, steps: int = 3, warmup: int = 1,
                      tick: Callable[[], None] | None = None) -> dict:
    """Seconds of one training step (a batch of ``config.batch_size`` images at
    ``config.image_size``, forward and backward) and of one prediction batch of the
    end-to-end network, each the median of ``steps`` real steps on random images after
    ``warmup`` untimed ones (the first traces the graph)."""
    if steps < 1 or warmup < 0:
        raise ConfigError(f"steps={steps} must be >= 1 and warmup={warmup} >= 0")
    training.set_seed(config.seed)
    model = detector.end_to_end_model(config)
    rng = np.random.default_rng(config.seed)
    size = (config.batch_size, config.image_size, config.image_size, 3)
    x = rng.uniform(0.0, 1.0, size).astype("float32")
    y = rng.integers(0, len(CLASSES), config.batch_size)
    timed = time_steps(model, x, y, steps, warmup, learning_rate=config.learning_rate,
                       loss="sparse_categorical_crossentropy", tick=tick)
    return {"model": config.model, "base": config.base, "image_size": config.image_size,
            "batch_size": config.batch_size, **timed}


def estimate_cost(step: dict, n_images: int, n_folds: int, epochs: int, runs: int = 1,
                  audit: bool = True) -> dict:
    """Extrapolate ``measure_step_cost``'s figures to ``runs`` k-fold runs of ``epochs``
    epochs on ``n_images`` images (each run trains on (k-1)/k of them and predicts the
    rest every epoch, for the curves); the shortcut audit trains a second network per run.
    """
    n_test = math.ceil(n_images / n_folds)
    train_steps = math.ceil((n_images - n_test) / step["batch_size"])
    test_steps = math.ceil(n_test / step["batch_size"])
    epoch_s = train_steps * step["train_step_s"] + test_steps * step["predict_step_s"]
    run_s = epochs * epoch_s * (2 if audit else 1)
    return {"train_steps_per_epoch": train_steps, "epoch_s": epoch_s, "run_s": run_s,
            "runs": runs, "total_s": runs * run_s, "total_hours": runs * run_s / 3600}


def batch_cost(configs: Iterable[detector.Config], data_dir, steps: int = 2,
               progress: bool = True) -> pd.DataFrame | None:
    """Expected cost of end-to-end detector runs (``trainable``, as every
    ``base="paper"`` run), one row per model, from ``steps`` real training steps of it on
    this machine extrapolated to its runs' epochs, folds and shortcut audits. Says first
    what it is about to time and shows a bar of the steps (with its time left). None
    when no run trains end to end."""
    from tqdm import tqdm

    configs = [c for c in configs if c.trainable]
    kinds = sorted({c.model for c in configs})
    if not kinds:
        return None
    per_model = 2 * (1 + steps)
    print(f"Estimating the end-to-end detector runs' cost: {per_model} timed steps (the "
          f"first traces the graph) of each of {len(kinds)} network(s) ({', '.join(kinds)}); "
          f"the bar shows the time the estimate itself has left.", flush=True)
    bar = tqdm(total=per_model * len(kinds), desc="estimate", unit="step", disable=not progress)
    rows = [_model_cost([c for c in configs if c.model == kind], data_dir, steps, bar.update)
            for kind in kinds]
    bar.close()
    import keras

    keras.backend.clear_session()  # free the measured networks before the runs start
    return pd.DataFrame(rows)


def _model_cost(group: list[detector.Config], data_dir, steps: int, tick) -> dict:
    """One row of ``batch_cost``: the runs of one model, which share their settings."""
    config = group[0]
    step = measure_step_cost(config, steps, tick=tick)
    counts = config.class_counts().values()
    n_images = (sum(counts) if "all" not in counts
                else len(detector.dataset(data_dir, config)))
    cost = estimate_cost(step, n_images, config.n_folds, config.epochs, runs=len(group),
                         audit=config.shortcut_audit)
    return {"model": config.model, "base": config.base, "image_size": config.image_size,
            "batch_size": config.batch_size, "images": n_images,
            "s_per_step": step["train_step_s"], "s_per_epoch": cost["epoch_s"],
            "epochs": config.epochs, "runs": len(group), "audit": config.shortcut_audit,
            "hours": cost["total_hours"]}


def cost_message(cost: pd.DataFrame) -> str:
    """What ``batch_cost`` found, for people: per model, and the total."""
    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU (no GPU found)"
    lines = [f"Expected cost of the end-to-end detector runs on this machine's {device}, "
             f"measured from real training steps and extrapolated:"]
    for row in cost.itertuples():
        audit = " x2 (shortcut audit trains its own network)" if row.audit else ""
        lines.append(f"  {row.model} ({row.base} base, {row.image_size} px, batch "
                     f"{row.batch_size}, {row.images} images): {row.s_per_step:.2f} s/step, "
                     f"{row.s_per_epoch:.0f} s/epoch x {row.epochs} epochs x {row.runs} "
                     f"run(s){audit} = {row.hours:.1f} h")
    lines.append(f"  total: {cost['hours'].sum():.1f} h (ProgNet runs not included)")
    return "\n".join(lines)
