"""training.fit: the watched data's faster pipeline computes exactly Keras' own numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cxrlib import training


def _model():
    import keras

    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))


def test_watched_batches_are_the_ones_keras_cuts_and_the_curves_are_identical() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(70, 6)).astype("float32"), rng.integers(0, 3, 70)
    xv, yv = rng.normal(size=(75, 6)).astype("float32"), rng.integers(0, 3, 75)
    sizes = [len(b[0]) for b in training.batched((xv, yv), 32)]
    assert sizes == [32, 32, 11]  # several batches, the last one shorter
    training.set_seed(3)
    ours = training.fit(_model(), x, y, loss="sparse_categorical_crossentropy", epochs=4,
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
