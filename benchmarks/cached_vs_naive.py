"""Cached vs naive ProgNet: what computing each image's features once saves.

**cached**: one cold ``extract_features`` of the cohort, then ``prognet.train_and_predict``
per seed. **naive**: the frozen backbone inside the model (``compose_prognet``), fed images
every epoch, trained a few epochs and projected (``projection``). Both compute the same
function: ``head(cached features)`` must equal ``composed(images)`` (``equivalence``).
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import free_models
from benchmarks.extraction import extract_cold, warm_up
from benchmarks.stats import summarize, timed

ATOL = 1e-4  # on P(survival), a score in [0, 1]


def load_cohort(data_dir: str | Path, config, max_patients: int | None = None) -> pd.DataFrame:
    """The ProgNet cohort; with ``max_patients``, a subset alternating the two labels."""
    from cxrlib import prognet

    sequences = prognet.cohort(data_dir, config)
    if max_patients is None or len(sequences) <= max_patients:
        return sequences
    rank = sequences.groupby("label").cumcount()
    keep = sequences.assign(_rank=rank).sort_values(["_rank", "label"]).head(max_patients)
    return sequences.loc[sorted(keep.index)].reset_index(drop=True)


def fit_timed(model, x, y, validation, config, epochs: int) -> dict:
    """Train as ``training.fit`` does (same optimizer, loss, batches, validation): each
    epoch's wall time, the steady epochs (all but the first) and the first epoch's extra
    cost (tracing)."""
    import keras

    from cxrlib import training

    stamps: list[float] = []  # start and end of every epoch
    clock = keras.callbacks.LambdaCallback(on_epoch_begin=lambda *_: stamps.append(
        time.perf_counter()), on_epoch_end=lambda *_: stamps.append(time.perf_counter()))
    training.fit(model, x, y, loss="binary_crossentropy", epochs=epochs,
                 batch_size=config.batch_size, learning_rate=config.learning_rate,
                 lr_decay=config.lr_decay, validation=validation, seed=config.seed,
                 callbacks=[clock])
    seconds = [end - start for start, end in zip(stamps[::2], stamps[1::2])]
    steady = summarize(seconds[1:] or seconds[:1])
    return {"epochs_s": seconds, "steady_epoch_s": steady,
            "first_epoch_overhead_s": max(0.0, seconds[0] - steady["median"])}


def split_arrays(sequences: pd.DataFrame, config, vectors: dict) -> dict:
    """Rows, labels and cached features (not standardised) of the first split."""
    from cxrlib import prognet

    _, train_pos, test_pos = prognet.make_splits(sequences, config)[0]
    rows = {"train": prognet.sequence_rows(sequences, train_pos, config),
            "test": prognet.sequence_rows(sequences, test_pos, config)}
    return {name: {"rows": r, "y": r["label"].to_numpy("float32"),
                   "features": prognet.to_array(r, vectors, config.seq_len)}
            for name, r in rows.items()}


def load_sequence_images(rows: pd.DataFrame, config) -> np.ndarray:
    """(n, seq_len, H, W, 3) images of the rows' sequences, in the backbone's scale."""
    from cxrlib.images import load_image
    from cxrlib.models import input_scale

    scale = input_scale(config.backbone)
    return np.stack([np.stack([load_image(p, config.image_size, 3, scale) for p in paths])
                     for paths in rows["paths"]])


def equivalence(head, composed, features: np.ndarray, images: np.ndarray) -> dict:
    """``head(cached features)`` against ``composed(images)``: the largest absolute
    difference of P(survival), and of the features inside the composed model relative to
    the largest cached feature (the scores alone can hide a difference when an untrained
    head saturates). One forward pass of the composed model gives both."""
    import keras

    from cxrlib import training

    both = keras.Model(composed.input,
                       [composed.output, composed.get_layer("per_image_cnn").output])
    naive_scores, naive_features = both.predict(images, batch_size=64, verbose=0)
    cached_scores = training.predict(head, features)[:, 0]
    return {"max_abs_diff": float(np.max(np.abs(cached_scores - naive_scores[:, 0]))),
            "feature_relative_diff": float(np.max(np.abs(naive_features - features))
                                           / max(float(np.max(np.abs(features))), 1e-12))}


def cached_side(sequences, config, backbone, work_dir: Path, repeats: int,
                batch_size: int) -> tuple[dict, dict]:
    """Cold extractions of the cohort and per-seed ``train_and_predict`` times."""
    from cxrlib import prognet

    spec, paths = config.feature_spec(), [p for ps in sequences["paths"] for p in ps]
    cache = Path(work_dir) / f"naive-cache-{config.backbone}"
    warm_up(paths, spec, backbone, cache, batch_size)
    extraction_s, vectors = [], {}
    for _ in range(repeats):
        seconds, vectors = extract_cold(paths, spec, backbone, cache, batch_size)
        extraction_s.append(seconds)
    train_s = []
    for seed in range(repeats):
        seeded = replace(config, seed=seed)
        train_s.append(timed(lambda: prognet.train_and_predict(
            sequences, prognet.make_splits(sequences, seeded), vectors, seeded))[0])
    block = {"images": len(paths), "extraction_s": summarize(extraction_s),
             "train_and_predict_s_per_seed": summarize(train_s), "epochs": config.epochs}
    return block, vectors


def head_epochs(arrays: dict, config, epochs: int) -> dict:
    """The head alone on cached (standardised) features: per-epoch times, same epochs."""
    from cxrlib import models, prognet, training

    lengths = {k: a["rows"]["paths"].map(len).to_numpy() for k, a in arrays.items()}
    train_x, test_x = prognet.standardize(arrays["train"]["features"],
                                          arrays["test"]["features"],
                                          lengths["train"], lengths["test"])
    training.set_seed(config.seed)
    head = models.build_prognet_head(train_x.shape[-1], config.seq_len, config.lstm_units,
                                     config.dropout)
    return fit_timed(head, train_x, arrays["train"]["y"], (test_x, arrays["test"]["y"]),
                     config, epochs)


def naive_side(arrays: dict, config, backbone, epochs: int) -> dict:
    """Images in memory -> composed model trained ``epochs`` epochs; then the trained head
    alone on cached features against the composed model on images (same weights)."""
    from cxrlib import models, training

    load_s, images = timed(lambda: {k: load_sequence_images(a["rows"], config)
                                    for k, a in arrays.items()})
    training.set_seed(config.seed)
    head = models.build_prognet_head(arrays["train"]["features"].shape[-1], config.seq_len,
                                     config.lstm_units, config.dropout)
    compose_s, composed = timed(models.compose_prognet, backbone, head)
    costs = fit_timed(composed, images["train"], arrays["train"]["y"],
                      (images["test"], arrays["test"]["y"]), config, epochs)
    return {"load_images_s": load_s, "compose_s": compose_s, **costs,
            "equivalence": equivalence(head, composed, arrays["test"]["features"],
                                       images["test"])}


def projection(cached: dict, naive: dict, seeds: int, epochs: int) -> dict:
    """Both designs' cost for ``seeds`` x ``epochs`` and the speed-up.

    Per seed, each design costs a fixed part (model building, tracing, baselines) plus
    ``epochs`` steady epochs; measured epoch counts are scaled to ``epochs`` that way."""
    head_epoch = cached["head_only"]["steady_epoch_s"]["median"]
    per_seed = (cached["train_and_predict_s_per_seed"]["median"]
                + (epochs - cached["epochs"]) * head_epoch)
    cached_total = cached["extraction_s"]["median"] + seeds * per_seed
    naive_per_seed = (naive["compose_s"] + naive["first_epoch_overhead_s"]
                      + epochs * naive["steady_epoch_s"]["median"])
    naive_total = naive["load_images_s"] + seeds * naive_per_seed
    return {"seeds": seeds, "epochs": epochs, "cached_s": cached_total,
            "naive_s": naive_total, "speedup": naive_total / cached_total}


def measure_backbone(sequences, name: str, settings: dict, work_dir: Path) -> dict:
    """The cached-vs-naive block of one backbone."""
    from cxrlib import models, prognet

    s = settings
    config = prognet.Config(backbone=name, weights=None, image_size=s["image_size"],
                            epochs=s["cached_epochs"]).check()
    backbone = models.build_backbone(name, s["image_size"], None, "avg", config.init_seed)
    cached, vectors = cached_side(sequences, config, backbone, work_dir, s["repeats"],
                                  s["batch_size"])
    arrays = split_arrays(sequences, config, vectors)
    cached["head_only"] = head_epochs(arrays, config, s["naive_epochs"])
    naive = naive_side(arrays, config, backbone, s["naive_epochs"])
    del backbone
    free_models()
    diff = naive["equivalence"]["max_abs_diff"]
    return {"n_patients": len(sequences), "cached": cached, "naive": naive,
            "target": projection(cached, naive, s["seeds"], s["epochs"]),
            "max_abs_diff": diff, "atol": ATOL, "equivalent": diff <= ATOL}


def run(settings: dict, data_dir: str | Path, work_dir: Path, log=print) -> dict:
    """The cached-vs-naive section for every backbone of ``settings``."""
    from cxrlib import prognet

    s = settings
    sequences = load_cohort(data_dir, prognet.Config(weights=None), s["max_patients"])
    result = {"image_size": s["image_size"], "repeats": s["repeats"],
              "naive_epochs_measured": s["naive_epochs"],
              "cached_epochs_measured": s["cached_epochs"], "target_seeds": s["seeds"],
              "target_epochs": s["epochs"], "backbones": {}}
    for name in s["backbones"]:
        block = measure_backbone(sequences, name, s, work_dir)
        log(f"cached vs naive {name}: speed-up x{block['target']['speedup']:.1f}, "
            f"max |diff| {block['max_abs_diff']:.2g}")
        result["backbones"][name] = block
    return result
