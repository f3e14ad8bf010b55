"""Decode chest X-ray files of any common kind into float32 arrays.

The real collections mix JPEG and PNG, 8- and 16-bit, and the PIL modes L, P, RGB, RGBA
and CMYK. ``load_image`` turns any of them into one array of a requested size, channel
count and value scale. A file that cannot be read raises ``ImageError`` naming the file;
``load_images`` skips such files with a logged count instead.

Images are resized to the requested square size without keeping the aspect ratio, as both
papers did ("we resized the images to 224 x 224").
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from cxrlib.errors import ConfigError, ImageError

log = logging.getLogger(__name__)

SCALES = ("raw", "unit", "caffe")
"""Value scales: ``raw`` 0..255 RGB, ``unit`` 0..1 RGB, ``caffe`` BGR minus the ImageNet
mean (what Keras' ResNet50, VGG16 and VGG19 ``preprocess_input`` produce)."""

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _as_size(size: int | Sequence[int]) -> tuple[int, int]:
    """(height, width) from an int or a pair."""
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode an image file, or raise ``ImageError`` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "file not found")
    if path.stat().st_size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        image = Image.open(path)
        image.load()
    except UnidentifiedImageError:
        raise ImageError(path, "not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(path, f"truncated or corrupt image ({err})") from None
    return image


def to_gray_or_rgb(image: Image.Image) -> Image.Image:
    """Bring any PIL mode to 8-bit ``L``, ``RGB`` or a float ``F`` (0..255) image.

    16-bit and 32-bit integer images are scaled by their bit depth (not per image), so the
    same tissue keeps the same value across files. Transparent pixels become black, the
    X-ray background.
    """
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode in HIGH_BIT_MODES:
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if mode != "I" or values.max() > 255 else 255.0
        return Image.fromarray((values * (255.0 / top)).astype(np.float32))
    if mode == "F":
        values = np.asarray(image, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        return Image.fromarray(((values - low) * (255.0 / max(high - low, 1e-6))).astype(np.float32))
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    elif mode in ("P", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        return image.convert("RGB" if mode != "1" else "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        base = "RGB" if image.mode in ("RGBA", "RGBa", "PA") else "L"
        background = Image.new(base, image.size, 0)
        background.paste(image.convert(base), mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def scale_pixels(pixels: np.ndarray, scale: str) -> np.ndarray:
    """Map RGB values 0..255 (last axis = channels; uint8 or float) to the scale a
    backbone expects, as a new contiguous float32 array.

    Works one channel plane at a time: NumPy is several times slower when it broadcasts
    over a last axis of length 3, and decoding must stay cheap next to the convolution.
    """
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    channels = pixels.shape[-1]
    if scale == "caffe" and channels != 3:
        raise ConfigError("scale='caffe' needs 3 channels")
    out = np.empty(pixels.shape, dtype=np.float32)
    for channel in range(channels):
        target = out[..., channel]
        if scale == "raw":
            target[...] = pixels[..., channel]
        elif scale == "unit":
            np.divide(pixels[..., channel], np.float32(255.0), out=target, dtype=np.float32)
        else:  # caffe: BGR order, minus the ImageNet mean
            np.subtract(pixels[..., 2 - channel], CAFFE_MEAN_BGR[channel], out=target,
                        dtype=np.float32)
    return out


def load_image(
    path: str | Path,
    size: int | Sequence[int] = 224,
    channels: int = 3,
    scale: str = "raw",
) -> np.ndarray:
    """Read one X-ray file as a float32 array of shape (height, width, channels).

    ``scale`` is one of ``SCALES``; ``channels`` 1 (grayscale) or 3 (gray replicated, or the
    file's own colours). Raises ``ImageError`` naming the file when it cannot be read.
    """
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, not {channels!r}")
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    height, width = _as_size(size)
    image = open_image(path)
    image = to_gray_or_rgb(image)
    if image.mode == "RGB" and channels == 1:
        image = image.convert("L")
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image)  # uint8 (L, RGB) or float32 (F): converted once, below
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[-1] != channels:  # gray to RGB: a view, no copy
        pixels = np.broadcast_to(pixels, (*pixels.shape[:2], channels))
    return scale_pixels(pixels, scale)


_CHECKED: dict[tuple[str, int, int], str | None] = {}  # (path, size, mtime) -> problem


def image_problem(path: str | Path) -> str | None:
    """``None`` if the file decodes, else the reason it does not (for dataset tables).

    The answer is remembered for this version of the file (its path, size and
    modification time) for the rest of the process: a warm kernel that runs seed after
    seed decodes each file of the cohort once, not once per run (about 0.9 s a ProgNet
    run on the sample data). A file written since is decoded again."""
    try:
        stat = os.stat(path)
    except OSError:
        stat = None
    key = None if stat is None else (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _CHECKED:
        return _CHECKED[key]
    try:
        open_image(path)
        problem = None
    except ImageError as err:
        problem = err.reason
    if key is not None:
        _CHECKED[key] = problem
    return problem


def load_images(
    paths: Iterable[str | Path],
    size: int | Sequence[int] = 224,
    channels: int = 3,
    scale: str = "raw",
) -> tuple[np.ndarray, list[int], dict[str, str]]:
    """Load many files, skipping unreadable ones with a logged count.

    Returns the stacked array of the readable images, the positions (in ``paths``) they
    came from, and ``{path: reason}`` for the skipped ones.
    """
    height, width = _as_size(size)
    arrays, kept, skipped = [], [], {}
    for position, path in enumerate(paths):
        try:
            arrays.append(load_image(path, (height, width), channels, scale))
            kept.append(position)
        except ImageError as err:
            skipped[err.path] = err.reason
    if skipped:
        log.warning("skipped %d unreadable image file(s): %s", len(skipped),
                    "; ".join(f"{p}: {r}" for p, r in list(skipped.items())[:5]))
    stacked = np.stack(arrays) if arrays else np.zeros((0, height, width, channels), np.float32)
    return stacked, kept, skipped


def read_sizes(paths: Iterable[str | Path]) -> "list[dict]":
    """Width, height, PIL mode and format of each file from its header (no decoding).

    Unreadable files get ``problem`` set instead, so a table of sizes also lists them.
    """
    rows = []
    for path in paths:
        row = {"path": str(path), "width": None, "height": None, "mode": None,
               "format": None, "problem": None}
        try:
            with Image.open(path) as image:
                row.update(width=image.width, height=image.height, mode=image.mode,
                           format=image.format)
        except (OSError, UnidentifiedImageError) as err:
            row["problem"] = image_problem(path) or str(err)
        rows.append(row)
    return rows


BLANK_BOX = (0.12, 0.92, 0.12, 0.88)
"""(top, bottom, left, right) fractions of the frame that hold the lungs and heart in
nearly every frontal X-ray of both collections."""


def blank_center(pixels: np.ndarray, box: tuple[float, float, float, float] = BLANK_BOX) -> np.ndarray:
    """A copy with the central (lung) region set to black: only the borders, corners,
    text markers and the outline of the body remain (for the shortcut audit)."""
    height, width = pixels.shape[:2]
    top, bottom, left, right = box
    blanked = pixels.copy()
    blanked[int(top * height):int(bottom * height), int(left * width):int(right * width)] = 0
    return blanked
