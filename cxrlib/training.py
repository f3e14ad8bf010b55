"""Seeding, fitting and saving Keras models, shared by ProgNet and the detector."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pandas as pd

_DETERMINISM_ON = False


def set_seed(seed: int) -> None:
    """Fix Python, NumPy, TensorFlow and Keras randomness; make TensorFlow ops deterministic.

    With the same seed and parameters, training on the CPU gives the same weights and
    therefore the same metrics.
    """
    global _DETERMINISM_ON
    import keras
    import tensorflow as tf

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if not _DETERMINISM_ON:
        tf.config.experimental.enable_op_determinism()
        _DETERMINISM_ON = True


def make_optimizer(learning_rate: float = 1e-4, weight_decay: float | None = 1e-4):
    """Adam with decoupled weight decay (the ProgNet paper: lr 1e-4, weight decay 1e-4,
    momentum 0.9 = Adam's beta_1)."""
    import keras

    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9,
                                 weight_decay=weight_decay or None)


def fit(model, x_train: np.ndarray, y_train: np.ndarray, *, loss: str, epochs: int,
        batch_size: int, learning_rate: float, weight_decay: float | None = None,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        early_stopping: int | None = None, seed: int = 0,
        class_weight: dict | None = None, callbacks: list | None = None) -> pd.DataFrame:
    """Compile and train ``model``; return the history as a table (one row per epoch).

    ``validation`` is only watched (curves, and early stopping when ``early_stopping`` is a
    patience in epochs, restoring the best weights); it never trains the model. Extra Keras
    ``callbacks`` (e.g. a timer) are passed through.
    """
    import keras

    model.compile(optimizer=make_optimizer(learning_rate, weight_decay), loss=loss,
                  metrics=["accuracy"])
    callbacks = list(callbacks or [])
    if early_stopping and validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=early_stopping, restore_best_weights=True))
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size,
                        validation_data=validation, shuffle=True, verbose=0,
                        callbacks=callbacks, class_weight=class_weight)
    table = pd.DataFrame(history.history)
    table.insert(0, "epoch", np.arange(1, len(table) + 1))
    return table


def predict(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Model outputs for ``x`` as a NumPy array (no progress output)."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))


# --------------------------------------------------------------------------- saving
def _partial(path: Path) -> Path:
    """A temporary name beside ``path`` (with the process id, so parallel writers differ)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.partial{''.join(path.suffixes[-1:])}")


def save_keras(model, path: str | Path) -> Path:
    """Save a Keras model's architecture and weights (not the optimizer's state, which
    would triple the file) as a ``.keras`` file atomically (temporary name, then rename)."""
    import keras

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(path)
    copy = keras.Model.from_config(model.get_config())  # uncompiled: no optimizer state
    copy.set_weights(model.get_weights())
    copy.save(partial)
    os.replace(partial, path)
    return path


def load_keras(path: str | Path):
    """Load a ``.keras`` file saved by ``save_keras`` (no optimizer state needed)."""
    import keras

    return keras.saving.load_model(path, compile=False)


def save_arrays(path: str | Path, **arrays: np.ndarray) -> Path:
    """Save named arrays as one ``.npz`` file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(path)
    with open(partial, "wb") as handle:
        np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(partial, path)
    return path


def write_json(path: str | Path, payload: dict) -> Path:
    """Write a small JSON file atomically (NumPy values as plain numbers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(path)
    partial.write_text(json.dumps(payload, indent=2, default=_plain) + "\n")
    os.replace(partial, path)
    return path


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
