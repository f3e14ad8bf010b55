"""What ``cxrlib.training``'s compiled twins save: new ProgNet heads of one shape train on
the same random features with the twins kept, and with them dropped before every training
(``training.forget_trainers``); the difference of the medians is the saving per training.
"""
from __future__ import annotations

import numpy as np

from benchmarks.stats import summarize, timed


def one_training(config, x: np.ndarray, y: np.ndarray, keep: bool) -> float:
    """Seconds of one ``training.fit`` of a new head (building it excluded)."""
    from cxrlib import models, training

    if not keep:
        training.forget_trainers()
    training.set_seed(config.seed)
    head = models.build_prognet_head(x.shape[-1], config.seq_len, config.lstm_units,
                                     config.dropout)
    return timed(training.fit, head, x, y, loss="binary_crossentropy", epochs=config.epochs,
                 batch_size=config.batch_size, learning_rate=config.learning_rate,
                 lr_decay=config.lr_decay, seed=config.seed)[0]


def run(settings: dict, *_, backbone: str = "alexnet", n_sequences: int = 34,
        log=print) -> dict:
    """Seconds per training with the twins kept (after the first, which traces) and
    dropped, for ``settings["trainings"]`` trainings each."""
    from cxrlib import models, prognet, training

    epochs, trainings = settings["cached_epochs"], settings["trainings"]
    config = prognet.Config(backbone=backbone, weights=None, epochs=epochs).check()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_sequences, config.seq_len, models.feature_dim(backbone)))
    x, y = x.astype("float32"), (rng.random(n_sequences) < 0.5).astype("float32")
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
