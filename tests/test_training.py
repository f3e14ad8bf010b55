"""training.fit: a new order of the training rows every epoch, drawn from the seed; apart
from that order, exactly Keras' own numbers (the watched data's pipeline, the variables
built before tracing, one iterator for all epochs)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from cxrlib import training


def _model():
    import keras

    inputs = keras.Input((6,))
    hidden = keras.layers.Dropout(0.3)(keras.layers.Dense(8, activation="relu")(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))


def test_each_epoch_visits_the_rows_in_a_new_order_drawn_from_the_seed() -> None:
    orders = training.epoch_orders(10, 4, seed=7)
    assert orders.shape == (4, 10)
    assert all(sorted(order) == list(range(10)) for order in orders)  # each a permutation
    assert len({tuple(order) for order in orders}) == 4  # a new order every epoch
    assert np.array_equal(orders, training.epoch_orders(10, 4, seed=7))
    assert not np.array_equal(orders, training.epoch_orders(10, 4, seed=8))
    assert training.epoch_orders(10, 0, seed=7).shape == (0, 10)


def test_shuffled_batches_cut_each_epoch_as_keras_does() -> None:
    x, y = np.arange(70 * 2, dtype="float32").reshape(70, 2), np.arange(70)
    orders = training.epoch_orders(70, 2, seed=0)
    batches = [(bx.numpy(), by.numpy()) for bx, by in training.shuffled_batches((x, y), 32, orders)]
    assert [len(b[1]) for b in batches] == [32, 32, 6, 32, 32, 6]  # no batch spans two epochs
    for epoch, order in enumerate(orders):
        seen = np.concatenate([b[1] for b in batches[3 * epoch:3 * epoch + 3]])
        assert np.array_equal(seen, y[order])
        assert np.array_equal(np.concatenate([b[0] for b in batches[3 * epoch:3 * epoch + 3]]),
                              x[order])


def test_training_is_keras_fed_each_epochs_order_bit_for_bit() -> None:
    """training.fit equals plain Keras trained one epoch at a time on the rows in that
    epoch's order (no shuffling of its own), watched fold included: the same weights and
    the same curves, to the bit. So the only change from Keras is the order itself."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(70, 6)).astype("float32"), rng.integers(0, 3, 70)
    xv, yv = rng.normal(size=(75, 6)).astype("float32"), rng.integers(0, 3, 75)
    sizes = [len(b[0]) for b in training.batched((xv, yv), 32)]
    assert sizes == [32, 32, 11]  # several watched batches, the last one shorter
    training.set_seed(3)
    ours_model = _model()
    ours = training.fit(ours_model, x, y, loss="sparse_categorical_crossentropy", epochs=4,
                        batch_size=32, learning_rate=1e-2, validation=(xv, yv), seed=5)
    training.set_seed(3)
    model = _model()
    model.compile(optimizer=training.make_optimizer(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rows = []
    for order in training.epoch_orders(70, 4, seed=5):
        history = model.fit(x[order], y[order], epochs=1, batch_size=32, shuffle=False,
                            validation_data=(xv, yv), verbose=0)
        rows.append({k: v[0] for k, v in history.history.items()})
    keras_own = pd.DataFrame(rows)
    assert list(ours.columns) == ["epoch", *keras_own.columns]
    for column in keras_own.columns:  # bit for bit, training and watched curves alike
        assert np.array_equal(ours[column].to_numpy(), keras_own[column].to_numpy()), column
    for mine, theirs in zip(ours_model.get_weights(), model.get_weights(), strict=True):
        assert np.array_equal(mine, theirs)


def test_keras_alone_repeats_its_first_epochs_order() -> None:
    """Why training.fit draws the orders itself (docs/deviations.md, T1): seeded, Keras 3
    given NumPy arrays shows every epoch the rows in its first epoch's order. If a Keras
    release reshuffles again, this fails, and T1 can say so."""
    import keras
    import tensorflow as tf

    seen: list[list[int]] = []

    class Recording(keras.Model):
        def train_step(self, data):
            tf.py_function(lambda v: seen.append(v.numpy().astype(int).tolist()), [data[1]], [])
            return super().train_step(data)

    training.set_seed(0)
    inputs = keras.Input((1,))
    model = Recording(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.arange(10, dtype="float32")[:, None], np.arange(10, dtype="float32")
    model.fit(x, y, batch_size=5, epochs=3, shuffle=True, verbose=0)
    epochs = [seen[0] + seen[1], seen[2] + seen[3], seen[4] + seen[5]]
    assert sorted(epochs[0]) == list(range(10)) and epochs[0] != list(range(10))  # shuffled
    assert epochs[1] == epochs[0] and epochs[2] == epochs[0]  # and never again


def _named_model(width: int = 8):
    """A model whose layers have names of their own: two builds have the same
    configuration, so their trainings share one compiled twin."""
    import keras

    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(width, activation="relu", name="hidden")(inputs)
    hidden = keras.layers.Dropout(0.3, name="drop")(hidden)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="proba")(hidden))


def _count_traces(monkeypatch, model) -> list:
    """Replace the train_step of the model's class by one that counts its Python calls:
    each call is a trace (a traced function runs as a graph afterwards, without calling
    Python). Counting on the class sees the compiled twin that trains too."""
    calls, step = [], type(model).train_step

    def counted(self, data):
        calls.append(1)
        return step(self, data)

    monkeypatch.setattr(type(model), "train_step", counted)
    return calls


def _arrays(seed: int, n: int, n_watched: int):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n),
            rng.normal(size=(n_watched, 6)).astype("float32"), rng.integers(0, 3, n_watched))


def _train(seed: int, x, y, xv, yv, build=_named_model):
    training.set_seed(seed)
    model = build()
    history = training.fit(model, x, y, loss="sparse_categorical_crossentropy", epochs=3,
                           batch_size=16, learning_rate=1e-2, validation=(xv, yv), seed=seed)
    return model, history


def test_the_training_function_is_traced_once_per_architecture(monkeypatch) -> None:
    training.forget_trainers()
    x, y, xv, yv = _arrays(1, 40, 10)
    traces = _count_traces(monkeypatch, _named_model())
    _train(0, x, y, xv, yv)
    assert len(traces) == 1  # the variables were built before the first trace
    _train(1, x, y, xv, yv)  # a new model of the same architecture: its twin is traced
    assert len(traces) == 1
    _train(2, x, y, xv, yv, build=lambda: _named_model(width=9))  # another architecture
    assert len(traces) == 2
    training.set_seed(0)
    plain = _model()  # Keras alone: its first trace creates the variables, then it traces again
    traces.clear()
    plain.compile(optimizer=training.make_optimizer(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    plain.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert len(traces) == 2


def _same(first, second) -> None:
    (model_a, history_a), (model_b, history_b) = first, second
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)
    for mine, theirs in zip(model_a.variables, model_b.variables, strict=True):  # seeds too
        assert np.array_equal(mine.numpy(), theirs.numpy())


def test_a_kept_twin_trains_a_new_model_as_a_new_twin_does_bit_for_bit() -> None:
    """The twin that trained other models (other seeds, other row counts, so other
    partial batches) gives a new model the weights, random-generator states and curves
    a twin built for it alone gives."""
    x, y, xv, yv = _arrays(2, 70, 75)
    training.forget_trainers()
    alone = _train(3, x, y, xv, yv)
    for seed, n, n_watched in ((4, 50, 20), (5, 33, 7)):
        _train(seed, *_arrays(seed, n, n_watched))
    _same(alone, _train(3, x, y, xv, yv))


def test_building_a_twin_draws_no_random_number_a_caller_sees() -> None:
    """Keras draws initializer seeds from Python's random module; building a twin puts
    its state back, so what is built after a training does not depend on whether that
    training built a twin or reused one."""
    x, y, xv, yv = _arrays(3, 40, 10)
    after = []
    for forget in (True, False):
        if forget:
            training.forget_trainers()
        _train(0, x, y, xv, yv)
        after.append([w.numpy() for w in _named_model(width=5).weights])
    for first, second in zip(*after, strict=True):
        assert np.array_equal(first, second)


def test_predict_uses_the_models_own_weights_through_the_kept_twin() -> None:
    x, y, xv, yv = _arrays(4, 40, 10)
    first, _ = _train(0, x, y, xv, yv)
    expected = np.asarray(first(xv, training=False))
    _train(1, x, y, xv, yv)  # the twin now holds the second model's weights
    assert np.allclose(training.predict(first, xv), expected, atol=1e-6)
    assert np.array_equal(training.predict(first, xv), first.predict(xv, verbose=0))


def test_a_model_of_a_class_of_its_own_trains_itself() -> None:
    import keras

    class Own(keras.Model):
        pass

    inputs = keras.Input((6,))
    model = Own(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    x, y, xv, yv = _arrays(5, 40, 10)
    training.fit(model, x, y, loss="sparse_categorical_crossentropy", epochs=2, batch_size=16,
                 learning_rate=1e-2, validation=(xv, yv), seed=0)
    assert int(model.optimizer.iterations.numpy()) == 2 * 3  # it was compiled and trained
