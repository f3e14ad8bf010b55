"""Keras models of the two reproduced papers.

ProgNet (prognosis): a sequence of chest X-rays -> one CNN per image (``build_backbone``)
-> LSTM -> dense layers -> sigmoid P(survival) (``build_prognet_head``). The backbone and
the head are separate models so that features can be cached once per backbone;
``compose_prognet`` joins them into the end-to-end model computing the same function.

CNN-LSTM detector (Islam et al. 2020): one X-ray -> conv base (224 px -> 7x7x512) -> the
map read as 49 steps of 512 -> LSTM -> softmax over 3 classes, compared to the same conv
base -> flatten -> softmax (``build_conv_base``, ``build_detector_head``,
``build_detector``). Two bases (``DETECTOR_BASES``): "paper", the 12 convolutions of the
paper's Table 2 (trained end to end from random initialisation), and "vgg16", the Keras
VGG16 base (13 convolutions; frozen ImageNet features in the CPU mode).

Models contain no preprocessing layer: images arrive already scaled as
``input_scale(backbone)`` says (see ``cxrlib.images.load_image``).

Keras is imported inside the functions that build a network: the names, checks and
facts here need no TensorFlow, so checking a run's parameters and finding its features
in the cache (``cxr batch`` resuming on a warm cache) starts in about a second.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from cxrlib import paper
from cxrlib.errors import ConfigError
from cxrlib.names import BACKBONES, DETECTOR_BASES, DETECTOR_MODELS, IMAGENET_BACKBONES


PAPER_BLOCKS = ((2, 64), (2, 128), (2, 256), (3, 512), (3, 512))
"""The detector paper's Table 2: (3x3 ReLU convolutions, filters) per block, each block
closed by a 2x2 max-pool of stride 2; 12 convolutions, 224x224x3 -> 7x7x512."""
POOLINGS = (None, "avg", "max")
WEIGHT_SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".keras")
_PARTIAL_LOAD_WARNINGS = (
    "Skipping", "skipping", "could not be loaded", "freshly-initialized", "mismatch"
)
MIN_IMAGE_SIZE = 32  # smallest input keras.applications accepts without a top

_FEATURE_DIM = {"alexnet": 256, "vgg16": 512, "vgg19": 512, "resnet50": 2048}
_KERAS_APPS = {"vgg16": "VGG16", "vgg19": "VGG19", "resnet50": "ResNet50"}  # in keras.applications
#: Value range of each input scale (for ``augmentation_layers``). "caffe" is the union of
#: the three channels' ranges after subtracting the ImageNet BGR mean from 0..255.
VALUE_RANGES = {"raw": (0.0, 255.0), "unit": (0.0, 1.0), "caffe": (-123.68, 151.061)}


# --------------------------------------------------------------------------- backbones
def check_backbone(name: str) -> str:
    """Return ``name`` (lower-cased) if it is one of ``BACKBONES``, else raise ConfigError."""
    key = name.lower().strip() if isinstance(name, str) else name
    if key not in BACKBONES:
        raise ConfigError(f"backbone={name!r} is not known; choose one of {', '.join(BACKBONES)}")
    return key


def input_scale(backbone: str) -> str:
    """Pixel scale the backbone expects: "caffe" (Keras' VGG/ResNet) or "unit" (AlexNet)."""
    return "unit" if check_backbone(backbone) == "alexnet" else "caffe"


def feature_dim(backbone: str) -> int:
    """Length of the pooled feature vector of a backbone (2048 / 512 / 256)."""
    return _FEATURE_DIM[check_backbone(backbone)]


def _check_image_size(image_size: int) -> int:
    is_int = isinstance(image_size, int) and not isinstance(image_size, bool)
    if not is_int or image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image_size={image_size!r} must be an integer >= {MIN_IMAGE_SIZE}")
    return image_size


def check_weights(weights: str | Path | None, backbone: str) -> str | None:
    """``weights`` decoded, the one place that does it: None ("none" accepted), "imagenet",
    or an existing weights file's path; a ``ConfigError`` otherwise, before anything is
    built. Used by the Configs, by ``_build_cnn`` and by ``features.FeatureSpec``."""
    if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
        return None
    if weights == "imagenet":
        if check_backbone(backbone) not in IMAGENET_BACKBONES:
            raise ConfigError("weights='imagenet' is not available for alexnet: Keras ships no "
                              "ImageNet AlexNet. Pass weights=None (random init) or the path "
                              "of a weights file.")
        return "imagenet"
    return str(_weights_path(weights))


def pretrained_weights(weights: str | Path | None) -> str | None:
    """What pretrained weights a CNN starts from, as ``metrics.json`` records it
    (``pretrained_weights``): "imagenet", "file <name>" for a weights file, None for a
    random initialisation. A weights file counts as pretrained: it is how weights Keras
    does not ship (an ImageNet AlexNet) are given, and the verdicts on the papers' own
    networks accept either (``paper.SETUPS``)."""
    if weights is None or (isinstance(weights, str) and weights.lower() == "none"):
        return None
    return "imagenet" if weights == "imagenet" else f"file {Path(str(weights)).name}"


def _weights_path(weights: str | Path) -> Path:
    """Check a weights file path before building anything."""
    path = Path(weights)
    if not path.name.endswith(WEIGHT_SUFFIXES):
        raise ConfigError(
            f"weights={str(weights)!r} is neither 'imagenet', None nor a weights file "
            f"ending in {', '.join(WEIGHT_SUFFIXES)}"
        )
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist")
    return path


def load_weights_file(model: keras.Model, path: str | Path) -> keras.Model:
    """Load a weights file into ``model``; a missing or non-matching file is a ConfigError."""
    path = _weights_path(path)
    mismatch = f"weights file {path} does not match model {model.name!r}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception as err:  # Keras raises ValueError, KeyError, OSError... on mismatch
            raise ConfigError(f"{mismatch}: {err}") from err
    for w in caught:  # Keras only warns when it skips part of the file or of the model
        text = str(w.message)
        if "optimizer" not in text and any(s in text for s in _PARTIAL_LOAD_WARNINGS):
            raise ConfigError(f"{mismatch}: {w.message}")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return model


def _alexnet(input_shape: tuple[int, int, int], pooling: str | None, name: str) -> keras.Model:
    """AlexNet conv stack (Krizhevsky et al. 2012), with ReLU and padding="same".

    Local response normalisation (after conv1 and conv2 in the original) is replaced by
    BatchNormalization at the same place: Keras has no LRN layer, later networks dropped
    LRN as unhelpful, BN is the usual modern substitute, and freshly initialised BN is the
    identity at inference (so random-init features are unaffected). There are no ImageNet
    AlexNet weights for Keras, so compatibility with the original weights is moot. The
    original's two-GPU grouped convolutions are not reproduced. Expects "unit" images.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    convs = [(96, 11, 4, True), (256, 5, 1, True), (384, 3, 1, False), (384, 3, 1, False),
             (256, 3, 1, False)]  # filters, kernel, stride, followed by norm + max-pool
    for i, (filters, kernel, strides, norm_pool) in enumerate(convs, start=1):
        x = layers.Conv2D(filters, kernel, strides=strides, padding="same", activation="relu",
                          name=f"conv{i}")(x)
        if norm_pool:
            x = layers.BatchNormalization(name=f"norm{i}")(x)
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"pool{i}")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool5")(x)
    return _pooled(inputs, x, pooling, name)


def _pooled(inputs, x, pooling: str | None, name: str) -> keras.Model:
    """The model ``inputs`` -> ``x``, then the global pooling ``pooling`` (None: none),
    in a layer named ``avg_pool`` / ``max_pool``."""
    import keras
    from keras import layers

    if pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(inputs, x, name=name)


def _build_cnn(
    name: str,
    image_size: int,
    weights: str | Path | None,
    pooling: str | None,
    init_seed: int,
    model_name: str,
) -> keras.Model:
    import keras

    name = check_backbone(name)
    _check_image_size(image_size)
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling={pooling!r} must be one of {POOLINGS}")
    weights = check_weights(weights, name)  # fail before building
    keras.utils.set_random_seed(init_seed)  # same init_seed -> same initial weights
    shape = (image_size, image_size, 3)
    if name == "alexnet":
        model = _alexnet(shape, pooling, model_name)
    else:
        # every layer named (an input and a pooling of Keras' own carry its counter,
        # input_layer_7): the same network has the same configuration, so a trainable
        # one is trained by one compiled twin per process (training._trainer)
        inputs = keras.Input(shape=shape, name="image")
        convs = getattr(keras.applications, _KERAS_APPS[name])(
            include_top=False,
            weights="imagenet" if weights == "imagenet" else None,
            input_tensor=inputs,
            pooling=None,
            name=model_name,
        )
        model = _pooled(inputs, convs.output, pooling, model_name)
    if weights not in (None, "imagenet"):
        load_weights_file(model, weights)
    return model


def build_backbone(
    name: str,
    image_size: int,
    weights: str | Path | None = None,
    pooling: str | None = "avg",
    init_seed: int = 0,
) -> keras.Model:
    """Image CNN without its classifier: (image_size, image_size, 3) -> feature vector.

    ``weights``: "imagenet" (Keras downloads it; not for alexnet), None (random init seeded
    by ``init_seed``: same seed, same weights) or a ``.weights.h5`` / ``.h5`` file path.
    ``pooling="avg"`` gives ``feature_dim(name)`` features; None gives the last feature map.
    The model is named ``backbone_<name>``.
    """
    name = check_backbone(name)
    return _build_cnn(name, image_size, weights, pooling, init_seed, f"backbone_{name}")


def without_pooling(backbone: keras.Model) -> keras.Model:
    """The same network (the same layers, sharing their weights) up to its last feature
    map: ``backbone`` without its final global pooling layer. Building this instead of a
    second backbone with ``pooling=None`` gives the same maps, to the bit, without
    building the network again (3 s for ResNet50)."""
    import keras
    from keras import layers

    last = backbone.layers[-1]
    if not isinstance(last, (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)):
        raise ConfigError(f"{backbone.name!r} does not end with a global pooling layer")
    return keras.Model(backbone.input, last.input, name=f"{backbone.name}_maps")


# --------------------------------------------------------------------------- ProgNet
def build_prognet_head(
    feature_dim: int,
    seq_len: int | None = 3,
    lstm_units: int = 150,
    dropout: float = 0.5,
    dense_units: Sequence[int] = paper.PROGNET_SETUP["dense_units"],
    l2: float = 0.0,
) -> keras.Model:
    """ProgNet head: (seq_len, feature_dim) -> LSTM -> dropout -> dense ReLU -> P(survival).

    ``l2`` > 0 adds ``l2 * sum(w**2)`` of every kernel (LSTM and dense) to the loss: the
    other reading of the paper's "weight decay 1e-4" (off by default; see
    docs/deviations.md).

    With ``seq_len=None`` sequences may have any length; shorter ones are padded with
    all-zero feature vectors, which a Masking layer hides from the LSTM. The output layer
    is named "survival" (label 1 = survived).
    """
    if not isinstance(feature_dim, int) or feature_dim < 1:
        raise ConfigError(f"feature_dim={feature_dim!r} must be a positive integer")
    if seq_len is not None and (not isinstance(seq_len, int) or seq_len < 1):
        raise ConfigError(f"seq_len={seq_len!r} must be a positive integer or None")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout={dropout!r} must be in [0, 1)")
    if not isinstance(l2, (int, float)) or l2 < 0:
        raise ConfigError(f"l2={l2!r} must be a number >= 0")
    import keras
    from keras import layers

    penalty = {"kernel_regularizer": keras.regularizers.L2(l2)} if l2 else {}
    inputs = keras.Input(shape=(seq_len, feature_dim), name="features")
    x = inputs
    if seq_len is None:
        x = layers.Masking(mask_value=0.0, name="mask_padding")(x)
    x = layers.LSTM(lstm_units, name="lstm",
                    **({**penalty, "recurrent_regularizer": penalty["kernel_regularizer"]}
                       if l2 else {}))(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    for i, units in enumerate(dense_units, start=1):
        x = layers.Dense(units, activation="relu", name=f"fc{i}", **penalty)(x)
    outputs = layers.Dense(1, activation="sigmoid", name="survival", **penalty)(x)
    return keras.Model(inputs, outputs, name="prognet_head")


def compose_prognet(
    backbone_model: keras.Model, head_model: keras.Model, finetune: bool = False
) -> keras.Model:
    """End-to-end ProgNet from existing models: (seq_len, H, W, 3) -> per-image backbone -> head.

    Computes exactly head(backbone(image) for each image) with the given weights. Sets
    ``backbone_model.trainable = finetune``. For a variable-length head (seq_len=None),
    steps that are all-zero images are treated as padding: their features are set to zero
    so the head's Masking layer hides them, as with cached zero-padded features.
    """
    import keras
    from keras import layers

    seq_len = head_model.input_shape[1]
    image_shape = tuple(backbone_model.input_shape[1:])
    out_shape = backbone_model.output_shape
    if len(out_shape) != 2 or out_shape[-1] != head_model.input_shape[-1]:
        raise ConfigError(
            f"backbone {backbone_model.name!r} outputs {out_shape} but head "
            f"{head_model.name!r} expects features of length {head_model.input_shape[-1]}"
        )
    backbone_model.trainable = finetune
    inputs = keras.Input(shape=(seq_len, *image_shape), name="images")
    features = layers.TimeDistributed(backbone_model, name="per_image_cnn")(inputs)
    if seq_len is None:
        present = keras.ops.any(keras.ops.not_equal(inputs, 0.0), axis=(2, 3, 4))
        features = features * keras.ops.expand_dims(keras.ops.cast(present, features.dtype), -1)
    return keras.Model(inputs, head_model(features), name="prognet")


def build_prognet_end_to_end(
    backbone: str,
    seq_len: int | None,
    image_size: int,
    weights: str | Path | None = None,
    finetune: bool = False,
    init_seed: int = 0,
    **head_kwargs,
) -> keras.Model:
    """Backbone + ProgNet head as one model; the backbone is trainable iff ``finetune``."""
    backbone_model = build_backbone(backbone, image_size, weights, "avg", init_seed)
    head = build_prognet_head(feature_dim(backbone), seq_len, **head_kwargs)
    return compose_prognet(backbone_model, head, finetune=finetune)


# --------------------------------------------------------------------------- detector
def check_detector(kind: str) -> str:
    """Return ``kind`` if it is one of ``DETECTOR_MODELS``, else raise ConfigError."""
    if kind not in DETECTOR_MODELS:
        raise ConfigError(
            f"detector model {kind!r} is not known; choose one of {', '.join(DETECTOR_MODELS)}"
        )
    return kind


def check_detector_base(base: str) -> str:
    """Return ``base`` if it is one of ``DETECTOR_BASES``, else raise ConfigError."""
    if base not in DETECTOR_BASES:
        raise ConfigError(
            f"base={base!r} is not known; choose one of {', '.join(DETECTOR_BASES)}")
    return base


def detector_input_scale(base: str) -> str:
    """Pixel scale a detector base expects: "caffe" for Keras' VGG16, "unit" (0..1, the
    paper's "normalization") for the Table 2 base trained from scratch."""
    return "unit" if check_detector_base(base) == "paper" else input_scale("vgg16")


def build_paper_base(image_size: int = 224, init_seed: int = 0) -> keras.Model:
    """The detector paper's Table 2 base, randomly initialised (seeded by ``init_seed``):
    blocks of 2-2-2-3-3 Conv2D 3x3 ReLU "same" (64 ... 512 filters), each closed by
    MaxPooling2D(2, strides=2). Layers ``block<b>_conv<i>`` and ``block<b>_pool``."""
    import keras
    from keras import layers

    _check_image_size(image_size)
    keras.utils.set_random_seed(init_seed)
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = inputs
    for block, (n_convs, filters) in enumerate(PAPER_BLOCKS, start=1):
        for i in range(1, n_convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu",
                              name=f"block{block}_conv{i}")(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name="conv_base")


def build_conv_base(
    image_size: int = 224, weights: str | Path | None = None, init_seed: int = 0,
    base: str = "vgg16",
) -> keras.Model:
    """The detector's conv base, named "conv_base", without top or pooling: 224x224x3 ->
    7x7x512. ``base="vgg16"``: Keras VGG16 (13 convs, 5 max-pools; ``weights`` and
    ``init_seed`` as in ``build_backbone``); ``base="paper"``: Table 2 (12 convs), which
    has no ImageNet weights (None or a weights file)."""
    if check_detector_base(base) == "vgg16":
        return _build_cnn("vgg16", image_size, weights, None, init_seed, "conv_base")
    if weights == "imagenet":
        raise ConfigError("base='paper' (Table 2) has no ImageNet weights: use weights=None "
                          "(random init, as the paper) or a weights file")
    path = None if weights is None else _weights_path(weights)
    model = build_paper_base(image_size, init_seed)
    return model if path is None else load_weights_file(model, path)


def build_detector_head(
    kind: str,
    map_shape: tuple[int, int, int] = (7, 7, 512),
    n_classes: int = 3,
    lstm_units: int = 64,
    dropout: float = 0.0,
) -> keras.Model:
    """Classifier on a conv feature map: "cnn_lstm" reads the h x w map as h*w steps of c
    channels (49 x 512 at 224 px) -> LSTM -> fully connected softmax; "cnn" (the paper's
    competitor, whose classifier the paper does not spell out) flattens -> fully connected
    softmax. The paper gives no LSTM size; 64 units is our choice (``lstm_units``). The
    paper mentions no dropout: ``dropout`` > 0 adds one before the softmax."""
    check_detector(kind)
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout={dropout!r} must be in [0, 1)")
    h, w, c = map_shape
    import keras
    from keras import layers

    inputs = keras.Input(shape=(h, w, c), name="feature_map")
    if kind == "cnn_lstm":
        x = layers.Reshape((h * w, c), name="map_as_sequence")(inputs)
        x = layers.LSTM(lstm_units, name="lstm")(x)
    else:
        x = layers.Flatten(name="flatten")(inputs)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="class_proba")(x)
    return keras.Model(inputs, outputs, name=f"detector_head_{kind}")


def compose_detector(
    conv_base: keras.Model, head: keras.Model, trainable: bool = True
) -> keras.Model:
    """Image -> conv base -> head as one model; sets ``conv_base.trainable = trainable``."""
    import keras

    conv_base.trainable = trainable
    inputs = keras.Input(shape=tuple(conv_base.input_shape[1:]), name="image")
    kind = head.name.removeprefix("detector_head_")
    return keras.Model(inputs, head(conv_base(inputs)), name=f"detector_{kind}")


def build_detector(
    kind: str,
    image_size: int = 224,
    weights: str | Path | None = None,
    trainable: bool = True,
    init_seed: int = 0,
    n_classes: int = 3,
    lstm_units: int = 64,
    dropout: float = 0.0,
    base: str = "vgg16",
) -> keras.Model:
    """Whole detector (``base`` conv base + "cnn" or "cnn_lstm" head), for end-to-end
    training."""
    check_detector(kind)
    conv_base = build_conv_base(image_size, weights, init_seed, base)
    map_shape = tuple(conv_base.output_shape[1:])
    head = build_detector_head(kind, map_shape, n_classes, lstm_units, dropout)
    return compose_detector(conv_base, head, trainable)


# --------------------------------------------------------------------------- augmentation
#: Each augmentation layer's seed is ``augmentation_layers``' seed plus its offset.
AUGMENTATION_SEED_OFFSETS = {"rotation": 0, "shift": 1, "zoom": 2, "brightness": 3}


def augmentation_layers(
    seed: int,
    rotation: float = 0.03,
    shift: float = 0.05,
    zoom: float = 0.1,
    brightness: float = 0.1,
    value_range: tuple[float, float] | str = "unit",
    input_shape: tuple[int, int, int] | None = None,
) -> keras.Sequential:
    """Random rotation (fraction of a full turn), shift and zoom (fractions of the size) and
    brightness (fraction of ``value_range``) for batches (n, H, W, C); identity unless
    called with ``training=True``. ``value_range`` is (low, high) or a scale name ("raw",
    "unit", "caffe": pass ``input_scale(backbone)``); brightness output is clipped to it.
    A factor of 0 leaves that layer out. ``input_shape`` (H, W, C) gives the layers an
    input named ``augmentation_input`` (for a model that is trained: see ``_build_cnn``)."""
    import keras
    from keras import layers

    if isinstance(value_range, str):
        if value_range not in VALUE_RANGES:
            raise ConfigError(
                f"value_range={value_range!r}: choose one of {', '.join(VALUE_RANGES)} "
                "or give (low, high)"
            )
        value_range = VALUE_RANGES[value_range]
    knobs = {"rotation": rotation, "shift": shift, "zoom": zoom, "brightness": brightness}
    for knob, value in knobs.items():
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{knob}={value!r} must be in [0, 1)")
    steps = []
    offset = AUGMENTATION_SEED_OFFSETS
    if rotation:
        steps.append(layers.RandomRotation(rotation, seed=seed + offset["rotation"],
                                           name="rotation"))
    if shift:
        steps.append(layers.RandomTranslation(shift, shift, seed=seed + offset["shift"],
                                              name="shift"))
    if zoom:
        steps.append(layers.RandomZoom(zoom, seed=seed + offset["zoom"], name="zoom"))
    if brightness:
        steps.append(layers.RandomBrightness(
            brightness, value_range=tuple(value_range), seed=seed + offset["brightness"],
            name="brightness"))
    if input_shape is not None:  # a named input: Keras' own carries its counter
        steps.insert(0, keras.Input(shape=input_shape, name="augmentation_input"))
    return keras.Sequential(steps, name="augmentation")


def reseed_augmentation(augmentation: keras.Sequential, seed: int) -> None:
    """Set the random state of layers made by ``augmentation_layers`` to that of new ones
    made with ``seed``: they then draw exactly what those would (for reusing one set of
    layers, and its traced call, across images)."""
    for layer in augmentation.layers:
        state = layer.generator.state
        state.assign(np.array([seed + AUGMENTATION_SEED_OFFSETS[layer.name], 0],
                              dtype=state.dtype))
