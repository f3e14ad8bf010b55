"""What ``cxrlib.training``'s compiled twins save: one trace per architecture.

``training.fit`` trains a model in a compiled twin it keeps per architecture and thread,
so TensorFlow traces and optimises the training step once, not once per training (a
batch's warm kernel trains many heads of one shape). Here ``trainings`` heads of the
sample ProgNet's shape, each a new model, train on the same random features twice over:
with the twins kept, and with them dropped before every training
(``training.forget_trainers``). Both give the same weights (``tests/test_training.py``);
the difference of the medians is what the cache saves per training.
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks.stats import summarize


def one_training(config, x: np.ndarray, y: np.ndarray, keep: bool) -> float:
    """Seconds of one ``training.fit`` of a new head (building it excluded)."""
    from cxrlib import models, training

    if not keep:
        training.forget_trainers()
    training.set_seed(config.seed)
    head = models.build_prognet_head(x.shape[-1], config.seq_len, config.lstm_units,
                                     config.dropout)
    start = time.perf_counter()
    training.fit(head, x, y, loss="binary_crossentropy", epochs=config.epochs,
                 batch_size=config.batch_size, learning_rate=config.learning_rate,
                 lr_decay=config.lr_decay, seed=config.seed)
    return time.perf_counter() - start


def run(backbone: str = "alexnet", epochs: int = 60, trainings: int = 4, n_sequences: int = 34,
        log=print) -> dict:
    """Seconds per training with the twins kept (after the first, which traces) and
    dropped, for ``trainings`` trainings each."""
    from cxrlib import models, prognet, training

    config = prognet.Config(backbone=backbone, weights=None, epochs=epochs).check()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_sequences, config.seq_len, models.feature_dim(backbone)))
    y = (rng.random(n_sequences) < 0.5).astype("float32")
    x = x.astype("float32")
    training.forget_trainers()
    kept = [one_training(config, x, y, keep=True) for _ in range(trainings + 1)][1:]
    dropped = [one_training(config, x, y, keep=False) for _ in range(trainings)]
    training.forget_trainers()
    block = {"backbone": backbone, "epochs": epochs, "sequences": n_sequences,
             "seq_len": config.seq_len, "kept_s": summarize(kept),
             "dropped_s": summarize(dropped)}
    block["saved_s_per_training"] = block["dropped_s"]["median"] - block["kept_s"]["median"]
    log(f"trainers: {block['kept_s']['median']:.2f} s kept vs "
        f"{block['dropped_s']['median']:.2f} s dropped per training")
    return block
