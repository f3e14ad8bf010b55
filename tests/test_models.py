"""Keras models: shapes, seeded initialisation, weight files, masking, composition, detector.

No test downloads anything: every model is built with weights=None or a file in tmp_path.
Heavy models are built once per module (module-scoped fixtures) at tiny image sizes; only
the detector is built at 224 px, once.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from cxrlib.errors import ConfigError
from cxrlib import models

pytestmark = pytest.mark.xdist_group("models")  # module fixtures: one process (make test)

SIZE = 32
RNG = np.random.default_rng(0)


def _images(*shape: int) -> np.ndarray:
    return RNG.uniform(-1.0, 1.0, size=shape).astype("float32")


def _same_weights(a, b) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


@pytest.fixture(scope="module")
def backbones() -> dict:
    """Each backbone once, random init, 32 px, average pooling."""
    return {name: models.build_backbone(name, SIZE) for name in models.BACKBONES}


@pytest.fixture(scope="module")
def detector():
    """The CNN-LSTM detector at the paper's 224 px (one VGG16 at full size per session)."""
    return models.build_detector("cnn_lstm", 224)


# ------------------------------------------------------------------ names and checks
def test_scales_dims_and_names(backbones: dict) -> None:
    assert [models.input_scale(b) for b in models.BACKBONES] == ["unit", "caffe", "caffe", "caffe"]
    assert [models.feature_dim(b) for b in models.BACKBONES] == [256, 512, 512, 2048]
    for name, model in backbones.items():
        assert model.name == f"backbone_{name}"
    assert models.check_backbone("ResNet50") == "resnet50"


@pytest.mark.parametrize("call", [
    lambda: models.build_backbone("densenet", SIZE),
    lambda: models.input_scale("inception"),
    lambda: models.feature_dim("vgg11"),
    lambda: models.build_prognet_end_to_end("xception", 3, SIZE),
])
def test_unknown_backbone_lists_choices(call) -> None:
    with pytest.raises(ConfigError, match="resnet50"):
        call()


def test_alexnet_imagenet_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no ImageNet AlexNet"):
        models.build_backbone("alexnet", SIZE, weights="imagenet")


@pytest.mark.parametrize("name", models.BACKBONES)
def test_missing_weights_file_fails_before_building(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        models.build_backbone(name, SIZE, weights=tmp_path / "nope.weights.h5")
    with pytest.raises(ConfigError, match="weights file"):
        models.build_backbone(name, SIZE, weights=tmp_path / "weights.txt")


def test_bad_sizes_and_pooling() -> None:
    with pytest.raises(ConfigError, match="image_size"):
        models.build_backbone("vgg16", 16)
    with pytest.raises(ConfigError, match="pooling"):
        models.build_backbone("alexnet", SIZE, pooling="sum")


# ------------------------------------------------------------------ backbones
@pytest.mark.parametrize("name", models.BACKBONES)
def test_backbone_feature_shape(backbones: dict, name: str) -> None:
    out = np.asarray(backbones[name](_images(2, SIZE, SIZE, 3)))
    assert out.shape == (2, models.feature_dim(name))
    assert np.isfinite(out).all()


def test_alexnet_without_pooling_gives_a_map() -> None:
    model = models.build_backbone("alexnet", 64, pooling=None)
    assert model.output_shape == (None, 2, 2, 256)


def _same_configuration(a, b) -> bool:
    """What decides whether two networks train in one compiled twin (training._trainer):
    their configurations, layer names included, and their variables' shapes."""
    from cxrlib import training

    return training._architecture(a, training._config(a)) == \
        training._architecture(b, training._config(b))


@pytest.mark.parametrize("name", models.BACKBONES)
def test_same_init_seed_same_weights(backbones: dict, name: str) -> None:
    """... and the same configuration: no layer carries a name with Keras' counter
    (input_layer_7), so a backbone that trains (finetune) is traced once per process."""
    models.build_prognet_head(4)  # unrelated random work in between must not matter
    again = models.build_backbone(name, SIZE, init_seed=0)
    assert _same_weights(backbones[name], again)
    assert _same_configuration(backbones[name], again)


def test_other_init_seed_other_weights(backbones: dict) -> None:
    other = models.build_backbone("alexnet", SIZE, init_seed=1)
    assert not np.array_equal(backbones["alexnet"].get_weights()[0], other.get_weights()[0])


@pytest.mark.parametrize("filename", ["alexnet.weights.h5", "alexnet_full_model.h5"])
def test_weights_file_round_trip(tmp_path: Path, backbones: dict, filename: str) -> None:
    source = backbones["alexnet"]
    path = tmp_path / filename
    if filename.endswith(".weights.h5"):
        source.save_weights(path)
    else:  # legacy HDF5, the format of Keras' downloadable *_notop.h5 files
        source.save(path)
    loaded = models.build_backbone("alexnet", SIZE, weights=path, init_seed=7)
    x = _images(2, SIZE, SIZE, 3)
    np.testing.assert_array_equal(np.asarray(source(x)), np.asarray(loaded(x)))


def test_non_matching_weights_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "head.weights.h5"
    models.build_prognet_head(8).save_weights(path)
    with pytest.raises(ConfigError, match="does not match"):
        models.build_backbone("alexnet", SIZE, weights=path)


# ------------------------------------------------------------------ ProgNet
def test_prognet_head_shape_and_range() -> None:
    head = models.build_prognet_head(16)
    assert head.input_shape == (None, 3, 16)
    assert [l.units for l in head.layers if l.name.startswith("fc")] == [1024, 500, 128, 64]
    assert head.get_layer("lstm").units == 150
    out = np.asarray(head(_images(5, 3, 16)))
    assert out.shape == (5, 1)
    assert ((out >= 0) & (out <= 1)).all()
    assert head.get_layer("survival").activation.__name__ == "sigmoid"


def test_variable_length_head_ignores_zero_padding() -> None:
    head = models.build_prognet_head(8, seq_len=None)
    seq = _images(1, 2, 8)
    padded = np.concatenate([seq, np.zeros((1, 3, 8), "float32")], axis=1)
    np.testing.assert_allclose(np.asarray(head(seq)), np.asarray(head(padded)), atol=1e-6)


def test_head_rejects_bad_parameters() -> None:
    with pytest.raises(ConfigError, match="seq_len"):
        models.build_prognet_head(8, seq_len=0)
    with pytest.raises(ConfigError, match="dropout"):
        models.build_prognet_head(8, dropout=1.0)


@pytest.mark.parametrize("name", ["alexnet", "resnet50"])
def test_composed_model_equals_head_of_cached_features(backbones: dict, name: str) -> None:
    backbone = backbones[name]
    head = models.build_prognet_head(models.feature_dim(name), seq_len=3)
    end_to_end = models.compose_prognet(backbone, head)
    images = _images(2, 3, SIZE, SIZE, 3)
    features = np.asarray(backbone(images.reshape(-1, SIZE, SIZE, 3))).reshape(2, 3, -1)
    expected = np.asarray(head(features))
    np.testing.assert_allclose(np.asarray(end_to_end(images)), expected, atol=1e-4)
    assert end_to_end.input_shape == (None, 3, SIZE, SIZE, 3)
    assert not backbone.trainable


def test_composed_variable_length_model_treats_zero_images_as_padding() -> None:
    backbone = models.build_backbone("alexnet", SIZE)
    conv5 = backbone.get_layer("conv5")
    conv5.set_weights([conv5.get_weights()[0], np.full(256, 0.5, "float32")])
    assert np.abs(np.asarray(backbone(np.zeros((1, SIZE, SIZE, 3), "float32")))).sum() > 0
    end_to_end = models.compose_prognet(backbone, models.build_prognet_head(256, seq_len=None))
    images = _images(1, 2, SIZE, SIZE, 3)
    padded = np.concatenate([images, np.zeros((1, 2, SIZE, SIZE, 3), "float32")], axis=1)
    expected = np.asarray(end_to_end(images))
    np.testing.assert_allclose(np.asarray(end_to_end(padded)), expected, atol=1e-5)


def test_end_to_end_builder_trainability() -> None:
    frozen = models.build_prognet_end_to_end("alexnet", 3, SIZE, lstm_units=8)
    tuned = models.build_prognet_end_to_end("alexnet", 3, SIZE, finetune=True, lstm_units=8)
    assert frozen.get_layer("per_image_cnn").layer.trainable is False
    assert tuned.get_layer("per_image_cnn").layer.trainable is True
    assert len(tuned.trainable_weights) > len(frozen.trainable_weights)
    assert frozen.get_layer("prognet_head").get_layer("lstm").units == 8
    assert frozen.output_shape == (None, 1)


# ------------------------------------------------------------------ detector
def test_detector_conv_base_and_lstm_shapes(detector) -> None:
    conv_base = detector.get_layer("conv_base")
    assert conv_base.output_shape == (None, 7, 7, 512)
    assert sum(l.__class__.__name__ == "Conv2D" for l in conv_base.layers) == 13  # Keras VGG16
    assert sum(l.__class__.__name__ == "MaxPooling2D" for l in conv_base.layers) == 5
    lstm = detector.get_layer("detector_head_cnn_lstm").get_layer("lstm")
    assert tuple(lstm.input.shape) == (None, 49, 512)
    assert lstm.units == 64
    proba = np.asarray(detector(_images(1, 224, 224, 3)))
    assert proba.shape == (1, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


# The detector paper's Table 2, row by row: (layer, output shape). Each block's pool
# output is the next block's input size in the table; 12 convolutions, 5 max-pools.
TABLE_2 = [
    ("Conv2D", (224, 224, 64)), ("Conv2D", (224, 224, 64)), ("MaxPooling2D", (112, 112, 64)),
    ("Conv2D", (112, 112, 128)), ("Conv2D", (112, 112, 128)), ("MaxPooling2D", (56, 56, 128)),
    ("Conv2D", (56, 56, 256)), ("Conv2D", (56, 56, 256)), ("MaxPooling2D", (28, 28, 256)),
    ("Conv2D", (28, 28, 512)), ("Conv2D", (28, 28, 512)), ("Conv2D", (28, 28, 512)),
    ("MaxPooling2D", (14, 14, 512)),
    ("Conv2D", (14, 14, 512)), ("Conv2D", (14, 14, 512)), ("Conv2D", (14, 14, 512)),
    ("MaxPooling2D", (7, 7, 512)),
]


def test_paper_base_is_table_2() -> None:
    base = models.build_conv_base(224, None, base="paper")
    got = [(l.__class__.__name__, tuple(l.output.shape[1:])) for l in base.layers[1:]]
    assert got == TABLE_2
    assert sum(kind == "Conv2D" for kind, _ in got) == 12
    for layer in base.layers[1:]:
        if isinstance(layer, keras.layers.Conv2D):
            assert layer.kernel_size == (3, 3) and layer.padding == "same"
            assert layer.activation.__name__ == "relu"
        else:
            assert layer.pool_size == (2, 2) and layer.strides == (2, 2)
    model = models.build_detector("cnn_lstm", 224, base="paper")
    head = model.get_layer("detector_head_cnn_lstm")
    assert [l.__class__.__name__ for l in head.layers] == [
        "InputLayer", "Reshape", "LSTM", "Dense"]
    assert tuple(head.get_layer("map_as_sequence").output.shape) == (None, 49, 512)
    assert head.get_layer("class_proba").activation.__name__ == "softmax"
    assert model.output_shape == (None, 3)


def test_paper_base_has_no_imagenet_weights_and_seeds_its_init() -> None:
    with pytest.raises(ConfigError, match="base='paper'.*ImageNet"):
        models.build_conv_base(64, "imagenet", base="paper")
    with pytest.raises(ConfigError, match="base='resnet'"):
        models.build_detector("cnn", 64, base="resnet")
    one, two = (models.build_conv_base(64, None, 7, base="paper") for _ in range(2))
    assert _same_weights(one, two)
    assert not _same_weights(one, models.build_conv_base(64, None, 8, base="paper"))


def test_detector_head_has_no_dropout_unless_asked() -> None:
    plain = models.build_detector_head("cnn", (2, 2, 512))
    assert not any(isinstance(l, keras.layers.Dropout) for l in plain.layers)
    dropped = models.build_detector_head("cnn_lstm", (2, 2, 512), dropout=0.5)
    assert dropped.get_layer("dropout").rate == 0.5


def test_cnn_head_is_a_softmax_over_the_flattened_map() -> None:
    head = models.build_detector_head("cnn", (7, 7, 512))
    assert head.get_layer("class_proba").input.shape[-1] == 7 * 7 * 512
    proba = np.asarray(head(_images(4, 7, 7, 512)))
    assert proba.shape == (4, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_detector_builder_small_frozen() -> None:
    model = models.build_detector("cnn", SIZE, trainable=False, n_classes=4)
    assert model.name == "detector_cnn"
    assert model.get_layer("conv_base").trainable is False
    assert model.output_shape == (None, 4)


def test_unknown_detector_kind() -> None:
    with pytest.raises(ConfigError, match="cnn_lstm"):
        models.build_detector_head("transformer")
    with pytest.raises(ConfigError, match="cnn_lstm"):
        models.build_detector("gru", SIZE)


# ------------------------------------------------------------------ augmentation
@pytest.mark.parametrize("scale", ["unit", "caffe"])
def test_augmentation_identity_unless_training(scale: str) -> None:
    low, high = models.VALUE_RANGES[scale]
    x = RNG.uniform(low, high, size=(2, SIZE, SIZE, 3)).astype("float32")
    aug = models.augmentation_layers(seed=0, value_range=scale)
    np.testing.assert_array_equal(np.asarray(aug(x, training=False)), x)
    assert not np.allclose(np.asarray(aug(x, training=True)), x)


@pytest.mark.parametrize("kind", models.DETECTOR_MODELS)
def test_a_trainable_detector_has_the_same_configuration_every_time(kind: str) -> None:
    """The end-to-end detector (augmentation, Table 2 base, head) built twice: one
    compiled twin trains both (a warm kernel's runs and their shortcut audits), instead
    of a new trace and a twin kept in memory for each."""
    from cxrlib import detector as experiment

    config = experiment.Config(model=kind, base="paper", weights=None, trainable=True,
                               image_size=SIZE).check()
    first = experiment.end_to_end_model(config)
    assert first.get_layer("augmentation").layers[0].name == "rotation"
    assert _same_configuration(first, experiment.end_to_end_model(config))


def test_augmentation_layers_and_zero_factors() -> None:
    names = [l.name for l in models.augmentation_layers(0).layers]
    assert names == ["rotation", "shift", "zoom", "brightness"]
    some = models.augmentation_layers(0, rotation=0, brightness=0)
    assert [l.name for l in some.layers] == ["shift", "zoom"]
    with pytest.raises(ConfigError, match="value_range"):
        models.augmentation_layers(0, value_range="bgr")
