"""training.fit: its faster paths (the watched data's pipeline, the variables built before
tracing) compute exactly Keras' own numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cxrlib import training


def _model():
    import keras

    inputs = keras.Input((6,))
    hidden = keras.layers.Dropout(0.3)(keras.layers.Dense(8, activation="relu")(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))


def test_watched_batches_are_the_ones_keras_cuts_and_the_curves_are_identical() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(70, 6)).astype("float32"), rng.integers(0, 3, 70)
    xv, yv = rng.normal(size=(75, 6)).astype("float32"), rng.integers(0, 3, 75)
    sizes = [len(b[0]) for b in training.batched((xv, yv), 32)]
    assert sizes == [32, 32, 11]  # several batches, the last one shorter
    training.set_seed(3)
    ours_model = _model()
    ours = training.fit(ours_model, x, y, loss="sparse_categorical_crossentropy", epochs=4,
                        batch_size=32, learning_rate=1e-2, validation=(xv, yv))
    training.set_seed(3)
    model = _model()
    model.compile(optimizer=training.make_optimizer(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=4, batch_size=32, validation_data=(xv, yv), shuffle=True,
                        verbose=0)
    keras_own = pd.DataFrame(history.history)
    assert list(ours.columns) == ["epoch", *keras_own.columns]
    for column in keras_own.columns:  # bit for bit, training and watched curves alike
        assert np.array_equal(ours[column].to_numpy(), keras_own[column].to_numpy()), column
    for mine, theirs in zip(ours_model.get_weights(), model.get_weights(), strict=True):
        assert np.array_equal(mine, theirs)


def _count_traces(model) -> list:
    """Replace the model's train_step by one that counts its Python calls: each call is a
    trace (a traced function runs as a graph afterwards, without calling Python)."""
    calls, step = [], model.train_step

    def counted(data):
        calls.append(1)
        return step(data)

    model.train_step = counted
    return calls


def test_the_training_function_is_traced_once() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 6)).astype("float32"), rng.integers(0, 3, 40)
    training.set_seed(0)
    model = _model()
    traces = _count_traces(model)
    training.fit(model, x, y, loss="sparse_categorical_crossentropy", epochs=3, batch_size=16,
                 learning_rate=1e-2, validation=(x[:10], y[:10]))
    assert len(traces) == 1
    training.set_seed(0)
    plain = _model()  # Keras alone: its first trace creates the variables, then it traces again
    traces = _count_traces(plain)
    plain.compile(optimizer=training.make_optimizer(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    plain.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert len(traces) == 2
