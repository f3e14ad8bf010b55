"""Grad-CAM: shapes and ranges on the real (random-init) models, and a hand-built model
whose right answer is known, to show the maps point at the evidence."""
from __future__ import annotations

import keras
import matplotlib
import numpy as np
import pytest
from keras import layers

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cxrlib import explain, models, plots, prognet  # noqa: E402
from cxrlib.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.xdist_group("explain")  # module fixtures: one process (make test)

RNG = np.random.default_rng(0)


def _caffe_images(n: int, size: int) -> np.ndarray:
    return RNG.uniform(-120.0, 130.0, size=(n, size, size, 3)).astype("float32")


def _check_map(cam: np.ndarray, shape: tuple) -> None:
    assert cam.shape == shape
    assert cam.dtype == np.float32
    assert np.isfinite(cam).all()
    assert cam.min() >= 0.0 and cam.max() <= 1.0


# --------------------------------------------------------------------------- detector
@pytest.fixture(scope="module", params=[(64, "cnn_lstm"), (96, "cnn")], ids=["64px", "96px"])
def detector(request):
    size, kind = request.param
    keras.utils.set_random_seed(1)
    base = models.build_conv_base(size, None, init_seed=0)
    head = models.build_detector_head(kind, tuple(base.output_shape[1:]), 3, lstm_units=8)
    return size, base, head


def test_detector_cam_shape_range_and_classes(detector):
    size, base, head = detector
    image = _caffe_images(1, size)[0]
    cams = [explain.detector_grad_cam(base, head, image, class_index=c) for c in range(3)]
    for cam in cams:
        _check_map(cam, (size, size))
    predicted = int(np.argmax(head(base(image[None]))[0]))
    default = explain.detector_grad_cam(base, head, image)
    np.testing.assert_allclose(default, cams[predicted], atol=1e-6)


def test_detector_score_is_the_logit(detector):
    _, base, head = detector
    score, kind = explain._score_function(head)
    assert kind == "logit"
    maps = base(_caffe_images(2, base.input_shape[1]))
    np.testing.assert_allclose(keras.ops.softmax(score(maps)), head(maps), rtol=1e-5, atol=1e-6)


def test_detector_rejects_bad_input(detector):
    size, base, head = detector
    with pytest.raises(ConfigError, match="shape"):
        explain.detector_grad_cam(base, head, _caffe_images(1, size + 1)[0])
    with pytest.raises(ConfigError, match="class_index"):
        explain.detector_grad_cam(base, head, _caffe_images(1, size)[0], class_index=3)


# --------------------------------------------------------------------------- sanity
def _toy_models(head_kind: str = "gap"):
    """Base: 32x32x3 -> conv (filter 0 fires on bright pixels, filter 1 on dark ones) ->
    4x4 max-pool -> 8x8x2 map. Head "gap": average pool -> Dense(2) with class 0 = amount
    of bright (+1, so it is the predicted class), class 1 = amount of dark. Head "top_left": class 0 reads filter 0 only in
    the map's top-left quadrant (position-dependent evidence)."""
    inputs = keras.Input((32, 32, 3))
    conv = layers.Conv2D(2, 3, padding="same", activation="relu")
    x = layers.MaxPooling2D(4)(conv(inputs))
    base = keras.Model(inputs, x)
    kernel = np.zeros((3, 3, 3, 2), "float32")
    kernel[1, 1, :, 0], kernel[1, 1, :, 1] = 1.0, -1.0
    conv.set_weights([kernel, np.array([-1.5, 1.5], "float32")])  # bright: mean > 0.5

    maps = keras.Input((8, 8, 2))
    if head_kind == "gap":
        dense = layers.Dense(2, activation="softmax")
        head = keras.Model(maps, dense(layers.GlobalAveragePooling2D()(maps)))
        dense.set_weights([np.eye(2, dtype="float32"), np.array([1.0, 0.0], "float32")])
    else:
        dense = layers.Dense(2, activation="softmax")
        head = keras.Model(maps, dense(layers.Flatten()(maps)))
        weights = np.zeros((8, 8, 2, 2), "float32")
        weights[:4, :4, 0, 0] = 1.0  # class 0: bright, top-left quadrant only
        dense.set_weights([weights.reshape(128, 2), np.array([0.0, 1.0], "float32")])
    return base, head


def _square_image(corners: list[tuple[int, int]]) -> np.ndarray:
    image = np.full((32, 32, 3), 0.2, "float32") + RNG.uniform(0, 0.05, (32, 32, 3)).astype("float32")
    for top, left in corners:
        image[top:top + 8, left:left + 8] = 1.0
    return image


QUADRANTS = {"top_left": (4, 4), "top_right": (4, 20), "bottom_left": (20, 4),
             "bottom_right": (20, 20)}


@pytest.mark.parametrize("quadrant", QUADRANTS)
def test_cam_peak_falls_on_the_evidence(quadrant):
    base, head = _toy_models("gap")
    top, left = QUADRANTS[quadrant]
    image = _square_image([(top, left)])
    cam = explain.detector_grad_cam(base, head, image)  # predicted: class 0 ("bright")
    _check_map(cam, (32, 32))
    row, col = np.unravel_index(np.argmax(cam), cam.shape)
    assert (row < 16) == (top < 16) and (col < 16) == (left < 16), (quadrant, row, col)
    assert cam[top + 2:top + 6, left + 2:left + 6].min() > 0.9 and cam.mean() < 0.3
    dark = explain.detector_grad_cam(base, head, image, class_index=1)  # "dark" evidence
    assert dark[top + 2:top + 6, left + 2:left + 6].max() < 0.2 < dark.mean()


def test_cam_limitation_same_filters_in_two_places():
    """Grad-CAM averages the gradient per channel: if the model uses a filter only in the
    top-left but the filter also fires in the bottom-right, both places light up."""
    base, head = _toy_models("top_left")
    image = _square_image([QUADRANTS["top_left"], QUADRANTS["bottom_right"]])
    cam = explain.detector_grad_cam(base, head, image, class_index=0)
    top_left, bottom_right = cam[6:10, 6:10].mean(), cam[22:26, 22:26].mean()
    assert top_left > 0.9 and bottom_right > 0.9 and cam.mean() < 0.3


# --------------------------------------------------------------------------- ProgNet
SIZE, STEPS = 48, 3


@pytest.fixture(scope="module")
def prognet_parts():
    keras.utils.set_random_seed(2)
    head = models.build_prognet_head(models.feature_dim("alexnet"), STEPS, lstm_units=8,
                                     dense_units=(8,))
    map_model = explain.build_map_backbone("alexnet", SIZE, None, init_seed=3)
    sequence = RNG.uniform(0, 1, (STEPS, SIZE, SIZE, 3)).astype("float32")
    return head, map_model, sequence


def test_map_backbone_pools_to_the_cached_features(prognet_parts):
    _, map_model, sequence = prognet_parts
    pooled = models.build_backbone("alexnet", SIZE, None, pooling="avg", init_seed=3)
    np.testing.assert_allclose(np.asarray(map_model(sequence)).mean(axis=(1, 2)),
                               pooled(sequence), rtol=1e-4, atol=1e-5)



@pytest.mark.parametrize("name", ["alexnet", "resnet50"])
def test_the_pooled_backbone_without_its_pooling_gives_the_same_maps(prognet_parts, name):
    """``models.without_pooling`` (what ``cxr predict --gradcam`` and chapter 5 use, so as
    not to build the network twice) equals a second backbone built without pooling, to
    the bit, and shares the pooled network's weights."""
    _, _, sequence = prognet_parts
    pooled = models.build_backbone(name, SIZE, None, pooling="avg", init_seed=3)
    maps = models.without_pooling(pooled)
    built = explain.build_map_backbone(name, SIZE, None, init_seed=3)
    assert maps.output_shape == built.output_shape
    assert np.array_equal(np.asarray(maps(sequence)), np.asarray(built(sequence)))
    assert {id(v) for v in maps.weights} <= {id(v) for v in pooled.weights}
    with pytest.raises(ConfigError, match="global pooling"):
        models.without_pooling(built)

def test_prognet_cam_with_and_without_standardize(prognet_parts):
    head, map_model, sequence = prognet_parts
    plain = explain.prognet_grad_cam("alexnet", SIZE, None, 3, head, sequence)
    _check_map(plain, (STEPS, SIZE, SIZE))
    dim = models.feature_dim("alexnet")
    identity = explain.prognet_grad_cam("alexnet", SIZE, None, 3, head, sequence,
                                        standardize=(np.zeros(dim), np.ones(dim)),
                                        map_model=map_model)
    np.testing.assert_allclose(identity, plain, atol=1e-5)
    train = np.asarray(map_model(_caffe_images(6, SIZE) / 255.0 + 0.5)).mean(axis=(1, 2))
    stats = explain.feature_stats(train.reshape(2, STEPS, dim))
    scaled = explain.prognet_grad_cam("alexnet", SIZE, None, 3, head, sequence,
                                      standardize=stats, map_model=map_model,
                                      normalize="sequence")
    _check_map(scaled, (STEPS, SIZE, SIZE))
    assert scaled.max() in (0.0, 1.0)


def test_prognet_rejects_wrong_length(prognet_parts):
    head, map_model, sequence = prognet_parts
    with pytest.raises(ConfigError, match="images but the head takes"):
        explain.prognet_grad_cam("alexnet", SIZE, None, 3, head, sequence[:2],
                                 map_model=map_model)


def test_feature_stats_match_prognet_standardize():
    x = RNG.normal(size=(4, 3, 5)).astype("float32")
    lengths = np.array([3, 2, 3, 1])
    for i, n in enumerate(lengths):
        x[i, n:] = 0.0
    mean, std = explain.feature_stats(x, lengths)
    scaled, _ = prognet.standardize(x, x, lengths, lengths)
    np.testing.assert_allclose(scaled[0], (x[0] - mean) / std, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- display
def test_normalize_flat_map_is_zero():
    assert not explain.normalize_cam(np.full((4, 4), 3.0)).any()


def test_overlay_and_plot():
    gray = RNG.uniform(-100, 150, (40, 40, 3)).astype("float32")  # caffe-like scale
    cam = explain.normalize_cam(RNG.uniform(size=(40, 40)))
    shown = explain.overlay(gray, cam)
    assert shown.shape == (40, 40, 3) and shown.min() >= 0.0 and shown.max() <= 1.0
    assert explain.overlay(gray[..., 0], cam[:10, :10]).shape == (40, 40, 3)  # resized cam
    figure = plots.plot_cams([gray, gray, gray], [cam, cam, cam], ["a", "b", "c"], ncols=2)
    assert isinstance(figure, plt.Figure)
    plt.close(figure)
