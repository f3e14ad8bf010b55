"""Image decoding: every mode and bit depth of the real data, and every kind of bad file."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrlib.errors import ConfigError, ImageError
from cxrlib.images import (CAFFE_MEAN_BGR, image_problem, load_image, load_images,
                           scale_pixels)


def _gray_array(h: int = 30, w: int = 40) -> np.ndarray:
    return np.tile(np.linspace(0, 255, w, dtype=np.float32), (h, 1))


@pytest.mark.parametrize("mode,suffix", [
    ("L", ".jpeg"), ("L", ".png"), ("RGB", ".jpg"), ("RGB", ".png"), ("RGBA", ".png"),
    ("P", ".png"), ("CMYK", ".jpg"), ("I;16", ".png"), ("LA", ".png"), ("1", ".png"),
])
def test_every_mode_loads_to_requested_shape(tmp_path: Path, mode: str, suffix: str) -> None:
    gray = Image.fromarray(_gray_array().astype(np.uint8))
    if mode == "I;16":
        image = Image.fromarray((_gray_array() * 257).astype(np.uint16))
    elif mode == "1":
        image = gray.convert("1")
    else:
        image = gray.convert(mode)
    path = tmp_path / f"x{suffix}"
    image.save(path)
    for channels in (1, 3):
        array = load_image(path, size=(16, 24), channels=channels)
        assert array.shape == (16, 24, channels)
        assert array.dtype == np.float32
        assert 0 <= array.min() and array.max() <= 255.0 + 1e-3
    if mode not in ("1",):
        # the gradient survives whatever the mode: left is dark, right is bright
        array = load_image(path, size=(16, 24), channels=1)
        assert array[:, -3:].mean() > array[:, :3].mean() + 100


def test_sixteen_bit_is_scaled_by_bit_depth_not_per_image(tmp_path: Path) -> None:
    dim = np.full((10, 10), 65535 // 4, dtype=np.uint16)
    Image.fromarray(dim).save(tmp_path / "dim.png")
    value = load_image(tmp_path / "dim.png", size=10, channels=1).mean()
    assert value == pytest.approx(255 / 4, abs=1.0)


def test_transparent_pixels_become_black(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, 4:, 3] = 255  # right half opaque
    Image.fromarray(rgba).save(tmp_path / "a.png")
    array = load_image(tmp_path / "a.png", size=8, channels=1)
    assert array[:, :3].max() == 0 and array[:, 5:].min() == pytest.approx(200, abs=1)


def test_scales(tmp_path: Path) -> None:
    Image.fromarray(np.full((4, 4, 3), (10, 20, 30), np.uint8)).save(tmp_path / "c.png")
    raw = load_image(tmp_path / "c.png", 4, 3, "raw")
    unit = load_image(tmp_path / "c.png", 4, 3, "unit")
    caffe = load_image(tmp_path / "c.png", 4, 3, "caffe")
    np.testing.assert_allclose(unit, raw / 255, rtol=1e-6)
    np.testing.assert_allclose(caffe[0, 0], np.array([30, 20, 10]) - CAFFE_MEAN_BGR, rtol=1e-5)
    with pytest.raises(ConfigError, match="unknown scale"):
        load_image(tmp_path / "c.png", 4, 3, "imagenet")
    with pytest.raises(ConfigError, match="channels"):
        load_image(tmp_path / "c.png", 4, 2)


@pytest.mark.parametrize("scale", ["raw", "unit", "caffe"])
@pytest.mark.parametrize("kind", ["uint8 rgb", "uint8 gray broadcast", "float rgb", "batch"])
def test_scale_pixels_is_bit_identical_to_convert_then_scale(scale: str, kind: str) -> None:
    """The one-pass, per-channel scaling gives exactly the values of the obvious code
    (convert to float32, reverse the channels, subtract the mean), so caches stay valid."""
    rng = np.random.default_rng(3)
    pixels = {
        "uint8 rgb": rng.integers(0, 256, (17, 23, 3), dtype=np.uint8),
        "uint8 gray broadcast": np.broadcast_to(
            rng.integers(0, 256, (17, 23, 1), dtype=np.uint8), (17, 23, 3)),
        "float rgb": rng.uniform(0, 255, (17, 23, 3)).astype(np.float32),
        "batch": rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8),
    }[kind]
    as_float = np.asarray(pixels, dtype=np.float32)
    expected = {"raw": as_float, "unit": as_float / np.float32(255.0),
                "caffe": as_float[..., ::-1] - CAFFE_MEAN_BGR}[scale]
    scaled = scale_pixels(pixels, scale)
    assert scaled.dtype == np.float32 and scaled.flags.c_contiguous
    assert scaled.shape == pixels.shape
    assert np.array_equal(scaled, expected)
    assert not np.shares_memory(scaled, pixels)


def test_scale_pixels_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="unknown scale"):
        scale_pixels(np.zeros((2, 2, 3), np.uint8), "imagenet")
    with pytest.raises(ConfigError, match="3 channels"):
        scale_pixels(np.zeros((2, 2, 1), np.uint8), "caffe")


def _truncated(tmp_path: Path) -> Path:
    path = tmp_path / "truncated.jpeg"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "nope.png"


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    return path


def _not_an_image(tmp_path: Path) -> Path:
    path = tmp_path / "text.jpeg"
    path.write_text("not an image")
    return path


@pytest.mark.parametrize("make,reason", [
    (_missing, "file not found"),
    (_empty, "empty file"),
    (_not_an_image, "not an image"),
    (_truncated, "truncated or corrupt"),
])
def test_bad_files_raise_an_error_naming_the_file(tmp_path: Path, make, reason: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ImageError, match=reason) as caught:
        load_image(path, 16)
    assert str(path) in str(caught.value)
    assert image_problem(path).startswith(reason)


def test_a_file_written_after_its_check_is_checked_again(tmp_path: Path) -> None:
    """image_problem remembers its answer per file version (size, modification time)."""
    import os

    path = tmp_path / "scan.png"
    Image.fromarray(_gray_array().astype(np.uint8)).save(path)
    assert image_problem(path) is None
    assert image_problem(path) is None  # remembered
    size = path.stat().st_size
    path.write_bytes(b"x" * size)  # the same size, corrupt: only the time tells
    stamp = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(stamp, stamp))
    assert image_problem(path).startswith("not an image")
    path.write_bytes(b"")
    assert image_problem(path).startswith("empty file")
    path.unlink()
    assert image_problem(path).startswith("file not found")


def test_load_images_skips_bad_files_with_a_logged_count(tmp_path: Path, caplog) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(_gray_array().astype(np.uint8)).save(good)
    (tmp_path / "empty.png").write_bytes(b"")
    paths = [good, tmp_path / "missing.png", good, tmp_path / "empty.png"]
    with caplog.at_level(logging.WARNING, logger="cxrlib.images"):
        arrays, kept, skipped = load_images(paths, size=8, channels=3, scale="unit")
    assert arrays.shape == (2, 8, 8, 3)
    assert kept == [0, 2]
    assert set(skipped) == {str(tmp_path / "missing.png"), str(tmp_path / "empty.png")}
    assert "skipped 2 unreadable image file(s)" in caplog.text
