"""Seeding, fitting and saving Keras models, shared by ProgNet and the detector."""
from __future__ import annotations

import json
import math
import os
import random
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlib.io import partial_path

_DETERMINISM_ON = False
_TRAINERS = threading.local()  # per thread: compiled twins by architecture (see _trainer)
KEEP_TRAINERS = 4  # twins kept per thread; the least recently used one is dropped


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


def make_optimizer(learning_rate: float = 1e-4, lr_decay: float | None = None,
                   decoupled_decay: float | None = None):
    """Adam (beta_1 = 0.9, the papers' "momentum 0.9") at ``learning_rate``.

    ``lr_decay`` is Keras 2's ``Adam(decay=...)``: the rate at optimizer step t is
    ``learning_rate / (1 + lr_decay * t)`` (``keras.optimizers.schedules.InverseTimeDecay``
    with ``decay_steps=1`` computes exactly that). ``decoupled_decay`` is weight decay as
    Loshchilov & Hutter's AdamW defines it: every step each weight also shrinks by that
    fraction of itself, whatever the learning rate (Keras' ``AdamW`` multiplies its
    ``weight_decay`` by the learning rate, so it is given ``decoupled_decay /
    learning_rate``). These are two of the three readings of ProgNet's "weight decay 1e-4"
    (``prognet.WEIGHT_DECAY_READINGS``; the third, an L2 penalty, lives in the model)."""
    import keras

    if lr_decay and decoupled_decay:
        raise ValueError("lr_decay and decoupled_decay are two readings of one number: give one")
    rate = learning_rate
    if lr_decay:
        rate = keras.optimizers.schedules.InverseTimeDecay(
            initial_learning_rate=learning_rate, decay_steps=1, decay_rate=lr_decay)
    if decoupled_decay:
        return keras.optimizers.AdamW(learning_rate=rate, beta_1=0.9,
                                      weight_decay=decoupled_decay / learning_rate)
    return keras.optimizers.Adam(learning_rate=rate, beta_1=0.9)


def fit(model, x_train: np.ndarray, y_train: np.ndarray, *, loss: str, epochs: int,
        batch_size: int, learning_rate: float, seed: int, lr_decay: float | None = None,
        decoupled_decay: float | None = None,
        validation: tuple[np.ndarray, np.ndarray] | None = None,
        early_stopping: int | None = None, callbacks: list | None = None) -> pd.DataFrame:
    """Compile and train ``model``; return the history as a table (one row per epoch).

    Every epoch visits the training rows in a new order (``epoch_orders(seed)``), as
    ``fit(shuffle=True)`` did in the Keras of 2020; given NumPy arrays after
    ``keras.utils.set_random_seed``, Keras 3 repeats its first epoch's order in every
    epoch (docs/deviations.md, T1). ``validation`` is only watched (curves, and early
    stopping when ``early_stopping`` is a patience in epochs, restoring the best weights);
    it never trains the model. Extra Keras ``callbacks`` (e.g. a timer) are passed through
    (they see the compiled twin that trains, see ``_trainer``).

    ``model`` ends trained but not compiled: the training runs in a compiled twin of it
    that this thread keeps for the next training of the same architecture and settings,
    so TensorFlow traces and optimises the training step once per architecture, not
    once per training. The cache stays because it pays: ``python -m benchmarks --only
    trainers`` measures a training with the twin kept against one with it dropped, and
    ``benchmarks/results.md`` shows the seconds it saves. Every training still starts
    from ``model``'s own initial weights and random-generator states and a fresh
    optimizer, so the numbers are those of a new model (``tests/test_training.py``
    compares them bit for bit).
    """
    import keras

    trainer = _trainer(model, loss, (learning_rate, lr_decay, decoupled_decay), x_train, y_train)
    _copy_state(model, trainer)
    callbacks = list(callbacks or [])
    if early_stopping and validation is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=early_stopping, restore_best_weights=True))
    watched = None if validation is None else batched(validation, batch_size)
    orders = epoch_orders(len(x_train), epochs, seed)
    history = trainer.fit(shuffled_batches((x_train, y_train), batch_size, orders),
                          epochs=epochs, steps_per_epoch=math.ceil(len(x_train) / batch_size),
                          validation_data=watched, shuffle=False, verbose=0, callbacks=callbacks)
    _copy_state(trainer, model)
    table = pd.DataFrame(history.history)
    table.insert(0, "epoch", np.arange(1, len(table) + 1))
    return table


def _architecture(model, config: dict) -> str:
    """What makes two models interchangeable for training: their configuration
    ``config`` (layer names included; the model's own name, often Keras' counter, left
    out) and every variable's shape and dtype (not their paths, which hold Keras'
    running counters)."""
    variables = [(tuple(v.shape), str(v.dtype)) for v in model.variables]
    return json.dumps([type(model).__name__, {**config, "name": None}, variables],
                      sort_keys=True, default=repr)


def _config(model) -> dict | None:
    """A Keras functional or sequential model's configuration; ``None`` for a model of
    a class of its own (or without a configuration), which cannot be rebuilt from it."""
    if not type(model).__module__.startswith("keras."):
        return None
    try:
        return model.get_config()
    except NotImplementedError:
        return None


def _compiled(model, loss: str, rate: tuple, x: np.ndarray, y: np.ndarray):
    """``model`` compiled with a new optimizer (``rate``: ``make_optimizer``'s arguments),
    its variables built (``build_before_tracing``)."""
    model.compile(optimizer=make_optimizer(*rate), loss=loss,
                  metrics=["accuracy"])
    build_before_tracing(model, x, y)
    return model


def _kept() -> dict:
    """This thread's twins: ``(architecture, settings) -> (twin, fresh values of its
    optimizer and metric variables)``, the most recently used last."""
    if not hasattr(_TRAINERS, "twins"):
        _TRAINERS.twins = {}
    return _TRAINERS.twins


def _trainer(model, loss: str, rate: tuple, x: np.ndarray, y: np.ndarray):
    """A compiled model of ``model``'s architecture with a fresh optimizer: the one this
    thread kept from an earlier training with the same settings (its optimizer and
    metric variables set back to their values before any step), else a new one. A model
    of a class of its own (not Keras' functional or sequential models) trains itself.

    A new twin is built from ``model``'s configuration with Python's random state saved
    and restored around it (Keras draws initializer seeds from it), so building it
    changes no random number a caller draws later."""
    config = _config(model)
    if config is None:
        return _compiled(model, loss, rate, x, y)
    key = (_architecture(model, config), json.dumps([loss, *rate]))
    kept = _kept()
    if key in kept:
        twin, fresh = kept.pop(key)
        for variable, value in zip(_training_variables(twin), fresh, strict=True):
            variable.assign(value)
    else:
        state = random.getstate()
        try:
            twin = type(model).from_config(config)
        finally:
            random.setstate(state)
        _compiled(twin, loss, rate, x, y)
        fresh = [v.numpy() for v in _training_variables(twin)]
    kept[key] = (twin, fresh)
    while len(kept) > KEEP_TRAINERS:
        kept.pop(next(iter(kept)))
    return twin


def forget_trainers() -> None:
    """Drop the compiled twins this thread keeps (the next training builds a new one)."""
    _kept().clear()


def _training_variables(model) -> list:
    return [*model.optimizer.variables, *model.metrics_variables]


def _copy_state(source, target) -> None:
    """Set every variable of ``target`` (weights, random-generator states) to ``source``'s."""
    if source is target:
        return
    for mine, theirs in zip(target.variables, source.variables, strict=True):
        mine.assign(theirs)


def _kept_twin(model):
    """The compiled twin this thread keeps for ``model``'s architecture, if any."""
    config = _config(model)
    if config is None:
        return None
    architecture = _architecture(model, config)
    return next((twin for (kind, _), (twin, _) in reversed(_kept().items())
                 if kind == architecture), None)


def epoch_orders(n_rows: int, epochs: int, seed: int) -> np.ndarray:
    """The order in which each epoch visits ``n_rows`` training rows: one new permutation
    per epoch, drawn from ``seed`` (an ``epochs`` x ``n_rows`` array)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n_rows) for _ in range(epochs)]) if epochs else \
        np.zeros((0, n_rows), dtype=np.int64)


def shuffled_batches(arrays: tuple[np.ndarray, ...], batch_size: int, orders: np.ndarray):
    """The training batches of every epoch as one ``tf.data`` pipeline: epoch after epoch
    (one row of ``orders`` each), that epoch's rows in its order, cut into ``batch_size``
    batches with the last one shorter, as Keras cuts them. Keras reads it with one
    iterator for all epochs (``steps_per_epoch``), instead of starting a new one each
    epoch."""
    import tensorflow as tf

    def cut(order):
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    def gather(index, data):
        return tuple(tf.gather(array, index, axis=0) for array in data)

    indices = tf.data.Dataset.from_tensor_slices(orders.astype(np.int64)).flat_map(cut)
    data = tf.data.Dataset.from_tensors(tuple(arrays)).repeat()
    return tf.data.Dataset.zip((indices, data)).map(gather).with_options(plain_options())


def plain_options():
    """``tf.data`` options for the training and watched pipelines: no graph rewriting
    (as Keras' own array pipeline; rewriting copies the data) and no autotuning (these
    pipelines have nothing to tune: no parallel map, no prefetch). With autotuning on,
    deleting the training pipeline's iterator at the end of ``fit`` waits seconds for
    its autotuning thread in about half of the trainings (benchmarks/README.md).
    Neither option changes a value the pipeline yields."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    options.autotune.enabled = False
    return options


def build_before_tracing(model, x: np.ndarray, y: np.ndarray) -> None:
    """Create a compiled model's metric, loss and optimizer variables before ``fit``.

    Keras does this itself only under a distribution strategy; otherwise the first
    trace of the training function creates them, and TensorFlow then traces that
    function a second time. Building them first (with the same Keras call, on one row
    of ``x`` and ``y``) saves one trace per training and changes no number: variables
    start at zero either way and nothing random is drawn (``tests/test_training.py``
    compares weights and curves bit for bit, and counts the traces). On a Keras without this method, ``fit`` simply builds them itself."""
    build = getattr(model, "_symbolic_build", None)
    if build is not None:
        build(data_batch=(x[:1], y[:1], None))


def batched(arrays: tuple[np.ndarray, ...], batch_size: int):
    """The arrays as a ``tf.data`` pipeline of the batches Keras itself cuts from them for
    validation (the same rows in the same order: ``batch_size`` rows, the last batch
    shorter), so every epoch's evaluation computes the same numbers. Keras' own pipeline
    for arrays takes 30-50 ms to start at every epoch; this one about 1 ms."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(tuple(arrays)).batch(batch_size).with_options(
        plain_options())


def predict(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Model outputs for ``x`` as a NumPy array (no progress output). Computed by the
    twin that trained a model of this architecture in this thread, if one is kept (its
    prediction step is traced already), with ``model``'s weights.

    The batches come from ``batched`` (the rows Keras would cut, floats as Keras' float
    type, as Keras casts them), not from Keras' own pipeline for arrays: that one maps
    its batches in parallel, and once ``set_seed`` has turned op determinism on, tf.data
    rewrites the map into a sequential one whose node keeps an attribute the sequential
    op lacks, and TensorFlow prints an error line for it ("NodeDef mentions attribute
    use_unbounded_threadpool") on the terminal and into the chapter's outputs. The
    outputs are the same."""
    import keras

    twin = _kept_twin(model)
    if twin is not None:
        _copy_state(model, twin)
        model = twin
    x = np.asarray(x)
    if x.dtype.kind == "f":
        x = x.astype(keras.backend.floatx(), copy=False)
    return np.asarray(model.predict(batched((x,), batch_size), verbose=0))


# --------------------------------------------------------------------------- saving
def save_keras(model, path: str | Path) -> Path:
    """Save a Keras model's architecture and weights (not the optimizer's state, which
    would triple the file) as a ``.keras`` file atomically (temporary name, then rename)."""
    import keras

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    copy = keras.Model.from_config(model.get_config())  # uncompiled: no optimizer state
    copy.set_weights(model.get_weights())
    copy.save(partial)
    os.replace(partial, path)
    return path


def load_keras(path: str | Path):
    """Load a ``.keras`` file saved by ``save_keras`` (no optimizer state needed)."""
    import keras

    return keras.saving.load_model(path, compile=False)
