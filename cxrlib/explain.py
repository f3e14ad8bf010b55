"""Grad-CAM heat maps for the detector and for ProgNet.

What Grad-CAM shows
-------------------
Grad-CAM (Selvaraju et al. 2017) asks: *which places of the last convolutional feature map
support the chosen output?* The last map A has k channels ("filters"), each an h x w grid
of activations that says where that filter fired. Grad-CAM

1. takes the gradient of the chosen output y (a class score) with respect to A,
2. averages that gradient over the h x w positions of each channel: one weight alpha_k
   per channel, "how much does more of filter k raise y?",
3. adds the channels up weighted by alpha_k, keeps the positive part
   (``cam = ReLU(sum_k alpha_k A_k)``), stretches the h x w grid to the image size
   (bilinear) and rescales it to 0..1.

So a bright spot means: filters that push the chosen output *up* are strongly active
here. Note the order: the gradient is averaged per channel *before* it meets the
activations, so Grad-CAM cannot tell two places apart where the same filters fire equally
even if the model only uses one of them (the test suite shows this).

What Grad-CAM does NOT show
---------------------------
- It is not a segmentation of the lesion and not a measure of pathology: it is a rough
  picture of where the model's evidence came from.
- It is not causal: a hot region is correlated with the score through the model's
  gradient at this one image; blanking it need not change the prediction (test that
  separately, e.g. with ``images.blank_center``).
- It is coarse: one cell of a 7 x 7 map covers 32 x 32 pixels of a 224 px image (at
  64 px the VGG16 map is 2 x 2, at 32 px a single cell, which gives an all-zero map).
  The smooth blobs come from the bilinear stretch, not from fine detail.
- With random-init weights (``weights=None``) it highlights whatever random filters
  respond to (edges, bright areas), not learnt medical features.
- Values are relative *within* one map (min-max scaled: the weakest place is 0 even if
  it had some support), so two images' maps cannot be compared by brightness.
- Warning sign: heat on the image border, the corners, text markers ("L", "PORTABLE"),
  tubes or the shoulders, rather than the lungs, suggests the model learnt a shortcut
  (which hospital or scanner the image came from) - compare the detector's shortcut audit.

The two models are trained on cached features, so here the frozen backbone (rebuilt with
the cache's ``init_seed``: same weights) and the trained head are composed again:
``detector_grad_cam`` for the VGG16 conv base + detector head, ``prognet_grad_cam`` for a
backbone's last map -> global average pooling (done here, inside the gradient tape) ->
optional standardisation -> ProgNet head. For VGG the "last map" is the output of the
last block's max-pooling (7 x 7 at 224 px), which is what the cached features were made
from; for ResNet50 it is the last residual block's output, for AlexNet the final pooling.
"""
from __future__ import annotations

from typing import Sequence

import keras
import matplotlib
import numpy as np
import tensorflow as tf

from cxrlib import models, sequences
from cxrlib.errors import ConfigError

NORMALIZE = ("each", "sequence")
_LINEAR_ACTIVATIONS = ("softmax", "sigmoid", "linear")


# --------------------------------------------------------------------------- core
def _cam_grid(maps: tf.Tensor, grads: tf.Tensor) -> np.ndarray:
    """ReLU(sum_k alpha_k A_k) with alpha_k = spatial mean of the gradient; (n, h, w)."""
    alpha = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # (n, 1, 1, k)
    return tf.nn.relu(tf.reduce_sum(alpha * maps, axis=-1)).numpy()  # (n, h, w)


def _upsample(cams: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (n, h, w) maps to (n, H, W)."""
    resized = tf.image.resize(tf.convert_to_tensor(cams[..., None], tf.float32), size,
                              method="bilinear")
    return np.maximum(resized.numpy()[..., 0], 0.0)


def normalize_cam(cam: np.ndarray, axis: tuple[int, ...] | None = None) -> np.ndarray:
    """Min-max scale to 0..1 over ``axis`` (all axes by default); a flat map gives zeros."""
    cam = np.asarray(cam, dtype=np.float32)
    low = cam.min(axis=axis, keepdims=True)
    high = cam.max(axis=axis, keepdims=True)
    span = high - low
    flat = span <= 1e-6 * np.maximum(np.abs(high), 1e-12)
    scaled = (cam - low) / np.where(flat, 1.0, span)
    return np.where(flat, 0.0, np.clip(scaled, 0.0, 1.0)).astype(np.float32)


def _check_images(images: np.ndarray, expected: tuple, name: str) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.shape[-3:] != tuple(expected) or images.ndim != len(expected) + 1:
        raise ConfigError(f"{name} has shape {images.shape}; expected (n, *{tuple(expected)}) "
                          "- load images at the model's image_size with 3 channels")
    if not np.isfinite(images).all():
        raise ConfigError(f"{name} contains NaN or infinite values")
    return images


# --------------------------------------------------------------------------- detector
def _score_function(head: keras.Model):
    """(function map -> class scores, "logit" | "probability").

    When the head ends in a Dense layer with softmax / sigmoid / no activation (both heads
    of ``models.build_detector_head`` do), the scores are that layer's pre-activation
    logits; otherwise the head's output itself.
    """
    last = head.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if isinstance(last, keras.layers.Dense) and activation in _LINEAR_ACTIVATIONS:
        try:
            penultimate = keras.Model(head.inputs, last.input)
        except Exception:  # e.g. a subclassed head without a graph: use probabilities
            penultimate = None
        if penultimate is not None:
            def logits(x):
                z = tf.matmul(penultimate(x, training=False), last.kernel)
                return z + last.bias if last.use_bias else z
            return logits, "logit"
    return (lambda x: head(x, training=False)), "probability"


def detector_grad_cam(
    conv_base: keras.Model,
    head: keras.Model,
    image: np.ndarray,
    class_index: int | None = None,
) -> np.ndarray:
    """Grad-CAM of one image for the detector (conv base -> head); float32 (H, W) in 0..1.

    ``image``: (H, W, 3) in the base's input scale, e.g.
    ``images.load_image(path, size, 3, models.input_scale("vgg16"))``. ``conv_base`` is
    ``models.build_conv_base(image_size, weights, init_seed)`` with the cache's settings;
    its output (the last, max-pooled VGG16 map) is A. ``class_index`` defaults to the
    predicted class. The class score y_c is the **pre-softmax logit** of the head's final
    Dense layer (as in the Grad-CAM paper: the softmax probability would also depend on
    the other classes); for a head not ending in a Dense layer, the head's output is used.
    An all-zero map means no position supports the class (or a 1 x 1 map, at 32 px).
    """
    expected = tuple(conv_base.input_shape[1:])
    batch = _check_images(np.asarray(image)[None], expected, "image")
    if len(conv_base.output_shape) != 4:
        raise ConfigError(f"conv_base {conv_base.name!r} outputs {conv_base.output_shape}; "
                          "Grad-CAM needs a (h, w, channels) map (build it with pooling=None)")
    maps = tf.convert_to_tensor(conv_base(batch, training=False))
    score, _ = _score_function(head)
    n_classes = int(head.output_shape[-1])
    if class_index is None:  # the predicted class (argmax of logits = argmax of softmax)
        class_index = int(np.argmax(np.asarray(head(maps, training=False))[0]))
    if isinstance(class_index, bool) or not isinstance(class_index, (int, np.integer)) \
            or not 0 <= class_index < n_classes:
        raise ConfigError(f"class_index={class_index!r} must be in 0..{n_classes - 1}")
    with tf.GradientTape() as tape:
        tape.watch(maps)
        target = score(maps)[:, int(class_index)]
    grads = tape.gradient(target, maps)
    cam = _upsample(_cam_grid(maps, grads), expected[:2])[0]
    return normalize_cam(cam)


# --------------------------------------------------------------------------- ProgNet
def feature_stats(train_x: np.ndarray, lengths: Sequence[int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of the training features as ProgNet standardises them
    (``sequences.feature_stats``).

    ``train_x``: (n, steps, feature_dim) before standardisation; ``lengths``: real
    (unpadded) steps per sequence, all steps if None.
    """
    train_x = np.asarray(train_x, dtype=np.float32)
    if train_x.ndim != 3:
        raise ConfigError(f"train_x has shape {train_x.shape}; expected (n, steps, features)")
    if lengths is None:
        lengths = [train_x.shape[1]] * len(train_x)
    return sequences.feature_stats(train_x, [int(n) for n in lengths])


def build_map_backbone(backbone_name: str, image_size: int, weights=None,
                       init_seed: int = 0) -> keras.Model:
    """The backbone without pooling (image -> last feature map). Global pooling has no
    weights, so with the same ``weights``/``init_seed`` its weights equal the pooled
    backbone's that made the cached features."""
    return models.build_backbone(backbone_name, image_size, weights, pooling=None,
                                 init_seed=init_seed)


def prognet_grad_cam(
    backbone_name: str,
    image_size: int,
    weights,
    init_seed: int,
    head: keras.Model,
    sequence: np.ndarray,
    standardize: tuple[np.ndarray, np.ndarray] | None = None,
    threshold: float = 0.5,
    normalize: str = "each",
    map_model: keras.Model | None = None,
) -> np.ndarray:
    """Grad-CAM of one patient's sequence for ProgNet; float32 (T, H, W) in 0..1.

    ``sequence``: (T, H, W, 3) images in ``models.input_scale(backbone_name)``; the
    backbone (``weights``, ``init_seed`` as used for the feature cache) is rebuilt without
    pooling, and the pooled vector is computed inside the gradient tape. ``standardize``:
    (mean, std) the head's training features were z-scored with (``feature_stats``), so
    the head sees what it saw in training. The target is the head's output P(survival)
    when it is >= ``threshold`` (predicted survival), else 1 - P(survival) (predicted
    death): the maps show what supports the prediction made. (Using the sigmoid's logit
    instead would give the same maps: the gradients differ by one positive factor, which
    the 0..1 scaling removes.) ``normalize``: "each" scales every time point's map on its
    own (where, within each image); "sequence" scales all T together, so a faint map marks
    a time point contributing less. ``map_model``: an already built
    ``build_map_backbone(...)``, to reuse across patients.
    """
    if normalize not in NORMALIZE:
        raise ConfigError(f"normalize={normalize!r}: choose one of {', '.join(NORMALIZE)}")
    model = map_model or build_map_backbone(backbone_name, image_size, weights, init_seed)
    images = _check_images(sequence, tuple(model.input_shape[1:]), "sequence")
    steps, feature_dim = head.input_shape[1], head.input_shape[-1]
    if model.output_shape[-1] != feature_dim:
        raise ConfigError(f"backbone {backbone_name!r} gives {model.output_shape[-1]} features "
                          f"but the head expects {feature_dim}")
    if steps is not None and steps != len(images):
        raise ConfigError(f"sequence has {len(images)} images but the head takes {steps}")
    if standardize is not None:
        mean, std = (np.asarray(v, dtype=np.float32).reshape(-1) for v in standardize)
        if mean.shape != (feature_dim,) or std.shape != (feature_dim,):
            raise ConfigError(f"standardize must be (mean, std) of length {feature_dim}")
    maps = tf.convert_to_tensor(model(images, training=False))  # (T, h, w, k)
    with tf.GradientTape() as tape:
        tape.watch(maps)
        pooled = tf.reduce_mean(maps, axis=(1, 2))  # (T, k): the cached feature vectors
        if standardize is not None:
            pooled = (pooled - mean) / std
        survival = head(pooled[None], training=False)[0, 0]
        target = survival if float(survival) >= threshold else 1.0 - survival
    grads = tape.gradient(target, maps)
    cams = _upsample(_cam_grid(maps, grads), tuple(images.shape[1:3]))
    return normalize_cam(cams, axis=(1, 2) if normalize == "each" else None)


# --------------------------------------------------------------------------- display
def to_gray_unit(image: np.ndarray) -> np.ndarray:
    """Any (H, W), (H, W, 1) or (H, W, 3) image in any scale -> gray (H, W) in 0..1."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        image = image.mean(axis=-1)
    if image.ndim != 2:
        raise ConfigError(f"image has shape {image.shape}; expected (H, W) or (H, W, C)")
    return normalize_cam(image)


def overlay(image_gray: np.ndarray, cam: np.ndarray, alpha: float = 0.4,
            cmap: str = "jet") -> np.ndarray:
    """The heat map in ``cmap`` colours blended over the X-ray: RGB float (H, W, 3) in 0..1.

    ``image_gray`` may be in any scale ("raw", "unit", "caffe"; gray or 3 channels): it is
    min-max scaled for display. ``cam`` (0..1) is resized bilinearly if its size differs.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha={alpha!r} must be in [0, 1]")
    gray = to_gray_unit(image_gray)
    cam = np.clip(np.asarray(cam, dtype=np.float32), 0.0, 1.0)
    if cam.ndim != 2:
        raise ConfigError(f"cam has shape {cam.shape}; expected (H, W)")
    if cam.shape != gray.shape:
        cam = np.clip(_upsample(cam[None], gray.shape)[0], 0.0, 1.0)
    colours = matplotlib.colormaps[cmap](cam)[..., :3]
    blended = (1.0 - alpha) * np.repeat(gray[..., None], 3, axis=-1) + alpha * colours
    return np.clip(blended, 0.0, 1.0).astype(np.float32)
