"""Cached vs naive ProgNet: what computing each image's features once saves.

- **cached** (the project's design): one ``extract_features`` over every image of the
  cohort (cold cache), then per seed ``prognet.train_and_predict`` (the LSTM head on
  cached vectors, plus the baselines).
- **naive** (the obvious Keras approach): the frozen backbone inside the model
  (``compose_prognet``: TimeDistributed backbone -> head), fed images every epoch.

The naive model is trained for a few epochs only; its cost for the target epochs is the
first epoch's overhead (tracing) plus the target epochs times the median of the later
epochs. The same head composed with the same backbone must compute the same function:
after the naive training, ``head(cached features)`` is compared with ``composed(images)``
on the test sequences (and the features inside the composed model with the cached ones).
"""
from __future__ import annotations

import gc
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

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


def cohort_paths(sequences: pd.DataFrame) -> list[str]:
    """Every image of the cohort, as ``prognet.extract`` reads them."""
    return [p for row in sequences["paths"] for p in row]


def warm_up_extraction(paths: list[str], spec, model, cache_dir: Path, batch_size: int) -> None:
    """Trace ``predict_on_batch`` for the full and the last (partial) batch shapes."""
    from cxrlib.features import extract_features

    subset = paths[:batch_size + len(paths) % batch_size]
    extract_features(subset, spec, cache_dir, batch_size=batch_size, progress=False, model=model)
    shutil.rmtree(cache_dir, ignore_errors=True)


def extract_cold(paths: list[str], spec, model, cache_dir: Path, batch_size: int) -> tuple[float, dict]:
    """(seconds, features) of one extraction into an empty cache folder."""
    from cxrlib.features import extract_features

    shutil.rmtree(cache_dir, ignore_errors=True)
    seconds, (_, vectors) = timed(extract_features, paths, spec, cache_dir,
                                batch_size=batch_size, progress=False, model=model)
    shutil.rmtree(cache_dir, ignore_errors=True)
    return seconds, vectors


def fit_timed(model, x, y, validation, config, epochs: int) -> list[float]:
    """Train as ``training.fit`` does (same optimizer, loss, batches, validation) and
    return each epoch's wall time."""
    import time

    import keras

    from cxrlib import training

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    seconds: list[float] = []
    training.fit(model, x, y, loss="binary_crossentropy", epochs=epochs,
                 batch_size=config.batch_size, learning_rate=config.learning_rate,
                 lr_decay=config.lr_decay, validation=validation, seed=config.seed,
                 callbacks=[EpochTimer()])
    return seconds


def epoch_costs(seconds: list[float]) -> dict:
    """Steady epochs (all but the first) and the first epoch's extra cost (tracing)."""
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
    """``head(cached features)`` against ``composed(images)`` (P(survival): largest
    absolute difference and the scores' range) and the cached features against those
    computed inside the composed model (the scores alone can hide a difference when an
    untrained head saturates). One forward pass of the composed model gives both."""
    import keras

    from cxrlib import training

    both = keras.Model(composed.input,
                       [composed.output, composed.get_layer("per_image_cnn").output])
    naive_scores, naive_features = both.predict(images, batch_size=64, verbose=0)
    cached_scores = training.predict(head, features)[:, 0]
    return {
        "scores": {"max_abs_diff": float(np.max(np.abs(cached_scores - naive_scores[:, 0]))),
                   "score_min": float(cached_scores.min()),
                   "score_max": float(cached_scores.max())},
        "features": {"max_abs_diff": float(np.max(np.abs(naive_features - features))),
                     "max_abs_feature": float(np.max(np.abs(features)))},
    }


def cached_side(sequences, config, backbone, work_dir: Path, repeats: int,
                batch_size: int) -> tuple[dict, dict]:
    """Cold extractions of the cohort and per-seed ``train_and_predict`` times."""
    from cxrlib import prognet

    spec = config.feature_spec()
    paths = cohort_paths(sequences)
    cache = Path(work_dir) / f"naive-cache-{config.backbone}"
    warm_up_extraction(paths, spec, backbone, cache, batch_size)
    extraction_s, vectors = [], {}
    for _ in range(repeats):
        seconds, vectors = extract_cold(paths, spec, backbone, cache, batch_size)
        extraction_s.append(seconds)
    train_s = []
    for seed in range(repeats):
        seeded = replace(config, seed=seed)
        seconds, _ = timed(lambda: prognet.train_and_predict(
            sequences, prognet.make_splits(sequences, seeded), vectors, seeded))
        train_s.append(seconds)
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
    return epoch_costs(fit_timed(head, train_x, arrays["train"]["y"],
                                 (test_x, arrays["test"]["y"]), config, epochs))


def naive_side(arrays: dict, config, backbone, epochs: int) -> dict:
    """Images in memory -> composed model trained ``epochs`` epochs; then the trained head
    alone on cached features against the composed model on images (same weights)."""
    from cxrlib import training

    load_s, images = timed(lambda: {k: load_sequence_images(a["rows"], config)
                                    for k, a in arrays.items()})
    training.set_seed(config.seed)
    compose_s, (head, composed) = timed(lambda: _compose(backbone, arrays, config))
    seconds = fit_timed(composed, images["train"], arrays["train"]["y"],
                        (images["test"], arrays["test"]["y"]), config, epochs)
    return {"load_images_s": load_s, "compose_s": compose_s, **epoch_costs(seconds),
            "equivalence": equivalence(head, composed, arrays["test"]["features"],
                                       images["test"])}


def _compose(backbone, arrays: dict, config):
    from cxrlib import models

    head = models.build_prognet_head(arrays["train"]["features"].shape[-1], config.seq_len,
                                     config.lstm_units, config.dropout)
    return head, models.compose_prognet(backbone, head)


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


def measure_backbone(sequences, backbone_name: str, image_size: int, repeats: int,
                     naive_epochs: int, cached_epochs: int, seeds: int, epochs: int,
                     work_dir: Path, batch_size: int = 32) -> dict:
    """The cached-vs-naive block of one backbone."""
    import keras

    from cxrlib import models, prognet

    config = prognet.Config(backbone=backbone_name, weights=None, image_size=image_size,
                            epochs=cached_epochs).check()
    backbone = models.build_backbone(backbone_name, image_size, None, "avg", config.init_seed)
    cached, vectors = cached_side(sequences, config, backbone, work_dir, repeats, batch_size)
    arrays = split_arrays(sequences, config, vectors)
    cached["head_only"] = head_epochs(arrays, config, naive_epochs)
    naive = naive_side(arrays, config, backbone, naive_epochs)
    del backbone
    keras.backend.clear_session()
    gc.collect()
    scores, features = naive["equivalence"]["scores"], naive["equivalence"]["features"]
    return {
        "n_patients": len(sequences), "n_train_sequences": len(arrays["train"]["rows"]),
        "n_test_sequences": len(arrays["test"]["rows"]),
        "cached": cached, "naive": naive,
        "per_epoch_speedup": (naive["steady_epoch_s"]["median"]
                              / cached["head_only"]["steady_epoch_s"]["median"]),
        "target": projection(cached, naive, seeds, epochs),
        "max_abs_diff": scores["max_abs_diff"], "atol": ATOL,
        "equivalent": scores["max_abs_diff"] <= ATOL,
        "feature_relative_diff": features["max_abs_diff"] / max(features["max_abs_feature"],
                                                                1e-12),
    }


def run(data_dir: str | Path, backbones: list[str], image_size: int, repeats: int,
        naive_epochs: int, cached_epochs: int, seeds: int, epochs: int, work_dir: Path,
        batch_size: int = 32, max_patients: int | None = None, log=print) -> dict:
    """The cached-vs-naive section for every backbone."""
    from cxrlib import prognet

    sequences = load_cohort(data_dir, prognet.Config(weights=None), max_patients)
    result = {
        "image_size": image_size, "repeats": repeats, "naive_epochs_measured": naive_epochs,
        "cached_epochs_measured": cached_epochs, "target_seeds": seeds, "target_epochs": epochs,
        "backbones": {},
    }
    for name in backbones:
        block = measure_backbone(sequences, name, image_size, repeats, naive_epochs,
                                 cached_epochs, seeds, epochs, work_dir, batch_size)
        log(f"cached vs naive {name}: speed-up x{block['target']['speedup']:.1f} "
            f"({block['target']['cached_s']:.0f} s vs {block['target']['naive_s']:.0f} s), "
            f"max |diff| {block['max_abs_diff']:.2g}")
        result["backbones"][name] = block
    return result
