"""The detector as published: what Table 2's base trained end to end costs here. A few
real training steps and prediction batches of each model (``cxrlib.cost.measure_step_cost``,
as ``cxr batch --estimate``), extrapolated by ``cost.estimate_cost`` to the paper's grid.
"""
from __future__ import annotations

from benchmarks.stats import summarize


def run(settings: dict, *_, log=print) -> dict:
    """Seconds per step and per epoch of ``cnn`` and ``cnn_lstm`` with ``base="paper"``,
    and the extrapolated 5-fold x 2-model grid (with and without the audit runs)."""
    import tensorflow as tf

    from cxrlib import cost, detector

    image_size, batch_size = settings["image_size"], settings["batch_size"]
    steps = settings["paper_steps"]
    defaults = detector.Config()
    n_images = sum(defaults.class_counts().values())
    block = {"image_size": image_size, "batch_size": batch_size, "steps": steps,
             "n_images": n_images, "n_folds": defaults.n_folds,
             "epochs": defaults.epochs,
             "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
             "models": {}}
    grid = {"with_audit_s": 0.0, "without_audit_s": 0.0}
    for kind in ("cnn", "cnn_lstm"):
        config = detector.Config(model=kind, base="paper", image_size=image_size,
                                 batch_size=batch_size).check()
        log(f"paper_detector: {kind}, {steps} step(s) at {image_size} px, batch {batch_size}")
        step = cost.measure_step_cost(config, steps=steps, warmup=1)
        grid_cost = cost.estimate_cost(step, n_images, config.n_folds, config.epochs,
                                       runs=config.n_folds)
        alone = cost.estimate_cost(step, n_images, config.n_folds, config.epochs,
                                   runs=config.n_folds, audit=False)
        block["models"][kind] = {
            "train_step_s": summarize(step["train_step_times"]),
            "predict_step_s": summarize(step["predict_step_times"]),
            "train_steps_per_epoch": grid_cost["train_steps_per_epoch"],
            "epoch_s": grid_cost["epoch_s"], "folds_s": alone["total_s"],
            "folds_with_audit_s": grid_cost["total_s"]}
        grid["without_audit_s"] += alone["total_s"]
        grid["with_audit_s"] += grid_cost["total_s"]
    block["grid"] = {**grid, "without_audit_hours": grid["without_audit_s"] / 3600,
                     "with_audit_hours": grid["with_audit_s"] / 3600}
    return block
