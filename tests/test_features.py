"""The on-disk feature cache: hits, invalidation, corrupt entries, unreadable images,
augmented views.

Every test uses a tiny real backbone (AlexNet, random init, 32 px) built once per module
and a handful of noise images written to tmp_path; no test takes more than a second or two.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrlib import features, models
from cxrlib.errors import ConfigError, DataError
from cxrlib.features import FeatureCache, FeatureSpec, extract_features, stack, view_seed

pytestmark = pytest.mark.xdist_group("features")  # module fixtures: one process (make test)

SIZE = 32
SPEC = FeatureSpec("alexnet", SIZE, None)
TOL = dict(rtol=1e-5, atol=1e-6)  # same image, possibly another batch composition


@pytest.fixture(scope="module")
def backbone():
    """The backbone SPEC describes, built once (extract_features builds the same one)."""
    return models.build_backbone("alexnet", SIZE, None, pooling="avg", init_seed=0)


class ExplodingModel:
    """Stands in for a backbone that must not be used (a warm cache needs no model)."""

    def predict_on_batch(self, batch):  # pragma: no cover - failing is the point
        raise AssertionError("the backbone ran although every feature was cached")


def _write_noise(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> Path:
    """A grayscale PNG of smooth-ish noise plus a bright ellipse (an X-ray-like blob)."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[:h, :w]
    blob = ((yy - h * rng.uniform(0.3, 0.7)) / (h * 0.3)) ** 2 + ((xx - w / 2) / (w * 0.3)) ** 2 < 1
    pixels = rng.uniform(0, 120, size) + 110 * blob
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> list[str]:
    return [str(_write_noise(tmp_path / "images" / f"img{i}.png", seed=i)) for i in range(4)]


def _no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".partial" in p.name]


# --------------------------------------------------------------------------- cache hits
def test_warm_cache_is_all_hits_and_builds_no_model(images, tmp_path, backbone, monkeypatch):
    cache_dir = tmp_path / "cache"
    cold, first = extract_features(images, SPEC, cache_dir, progress=False, model=backbone)
    assert list(cold["status"]) == ["computed"] * len(images)
    assert set(first) == {(p, 0) for p in images}
    assert first[(images[0], 0)].shape == (models.feature_dim("alexnet"),)

    def no_build(*args, **kwargs):
        raise AssertionError("build_backbone called on a warm cache")

    monkeypatch.setattr(models, "build_backbone", no_build)
    warm, second = extract_features(images, SPEC, cache_dir, progress=False)  # no model=
    assert list(warm["status"]) == ["hit"] * len(images)
    warm2, third = extract_features(images, SPEC, cache_dir, progress=False,
                                    model=ExplodingModel())
    assert list(warm2["status"]) == ["hit"] * len(images)
    for key in first:
        np.testing.assert_array_equal(second[key], first[key])
        np.testing.assert_array_equal(third[key], first[key])
    assert list(warm["content"]) == list(cold["content"])
    folder = FeatureCache(cache_dir, SPEC).folder
    assert (folder / "spec.json").is_file()
    assert _no_partial_files(folder)


def test_duplicate_paths_give_one_row(images, tmp_path, backbone):
    table, found = extract_features([images[0], images[0], Path(images[1])], SPEC,
                                    tmp_path / "cache", progress=False, model=backbone)
    assert list(table["path"]) == images[:2]
    assert set(found) == {(images[0], 0), (images[1], 0)}


def test_changed_image_is_recomputed_others_hit(images, tmp_path, backbone):
    cache_dir = tmp_path / "cache"
    before, first = extract_features(images, SPEC, cache_dir, progress=False, model=backbone)
    _write_noise(Path(images[2]), seed=99)  # same path, other pixels
    after, second = extract_features(images, SPEC, cache_dir, progress=False, model=backbone)
    status = dict(zip(after["path"], after["status"]))
    assert status == {p: ("computed" if p == images[2] else "hit") for p in images}
    old = before.set_index("path")["content"]
    new = after.set_index("path")["content"]
    assert new[images[2]] != old[images[2]]
    assert (new.drop(images[2]) == old.drop(images[2])).all()
    assert not np.allclose(second[(images[2], 0)], first[(images[2], 0)])
    # the new content is now cached too
    again, _ = extract_features(images, SPEC, cache_dir, progress=False, model=ExplodingModel())
    assert set(again["status"]) == {"hit"}


def test_same_bytes_under_another_name_is_a_hit(images, tmp_path, backbone):
    cache_dir = tmp_path / "cache"
    extract_features(images[:1], SPEC, cache_dir, progress=False, model=backbone)
    copy = tmp_path / "elsewhere" / "renamed.png"
    copy.parent.mkdir()
    copy.write_bytes(Path(images[0]).read_bytes())
    table, found = extract_features([str(copy)], SPEC, cache_dir, progress=False,
                                    model=ExplodingModel())
    assert list(table["status"]) == ["hit"]
    assert (str(copy), 0) in found


# --------------------------------------------------------------------------- spec keys
def test_every_setting_that_changes_features_changes_the_key(tmp_path):
    weights_a = tmp_path / "a.weights.h5"
    weights_b = tmp_path / "b.weights.h5"
    weights_a.write_bytes(b"weights version 1")
    weights_b.write_bytes(b"weights version 2")
    variants = {
        "base": SPEC,
        "image_size": dataclasses.replace(SPEC, image_size=48),
        "init_seed": dataclasses.replace(SPEC, init_seed=1),
        "pooling_map": dataclasses.replace(SPEC, pooling=None),
        "pooling_max": dataclasses.replace(SPEC, pooling="max"),
        "region": dataclasses.replace(SPEC, region="border"),
        "backbone": dataclasses.replace(SPEC, backbone="vgg16"),
        "weights_a": dataclasses.replace(SPEC, weights=str(weights_a)),
        "weights_b": dataclasses.replace(SPEC, weights=str(weights_b)),
        "augmentation": dataclasses.replace(SPEC, augmentation={"rotation": 0.1, "shift": 0.0,
                                                                "zoom": 0.0, "brightness": 0.0}),
    }
    keys = {name: spec.key() for name, spec in variants.items()}
    assert len(set(keys.values())) == len(keys), keys
    assert FeatureSpec("alexnet", SIZE, None).key() == keys["base"]  # stable
    folders = {FeatureCache(tmp_path / "cache", spec).folder for spec in variants.values()}
    assert len(folders) == len(variants)


def test_weights_file_is_keyed_by_content_not_path(tmp_path):
    first = tmp_path / "one" / "model.weights.h5"
    first.parent.mkdir()
    first.write_bytes(b"\x00\x01 the same bytes")
    copy = tmp_path / "two.weights.h5"
    copy.write_bytes(first.read_bytes())
    spec = dataclasses.replace(SPEC, weights=str(first))
    key = spec.key()
    assert dataclasses.replace(SPEC, weights=str(copy)).key() == key
    first.write_bytes(b"\x00\x01 other bytes")  # retrained in place
    assert spec.key() != key
    assert spec.weights_id().startswith("file-")
    assert dataclasses.replace(SPEC, weights="none").key() == SPEC.key()


def test_features_of_another_thread_count_or_instruction_set_are_not_reused(
        images, tmp_path, backbone, monkeypatch):
    """TensorFlow's kernels give a feature other last bits with another intra-op thread
    count or on another instruction set, so each has a folder of its own under the spec's:
    a warm cache hands out only what a cold one would compute here. The spec's key (which
    saved models record) stays the same."""
    from cxrlib.machine import instruction_set, usable_cpus

    cache_dir = tmp_path / "cache"
    isa = instruction_set()
    other = "avx512f" if isa != "avx512f" else "avx2"
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    first, _ = extract_features(images, SPEC, cache_dir, progress=False, model=backbone)
    assert set(first["status"]) == {"computed"}
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    other_threads, _ = extract_features(images, SPEC, cache_dir, progress=False, model=backbone)
    assert set(other_threads["status"]) == {"computed"}
    monkeypatch.setattr(features, "instruction_set", lambda: other)
    other_isa, _ = extract_features(images, SPEC, cache_dir, progress=False, model=backbone)
    assert set(other_isa["status"]) == {"computed"}
    monkeypatch.undo()
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    again, _ = extract_features(images, SPEC, cache_dir, progress=False, model=ExplodingModel())
    assert set(again["status"]) == {"hit"}
    spec_folder = cache_dir / SPEC.key()
    assert sorted(p.name for p in spec_folder.iterdir()) == sorted(
        [f"{isa}-1threads", f"{isa}-3threads", f"{other}-3threads"])
    assert FeatureCache(cache_dir, SPEC).folder == spec_folder / f"{isa}-1threads"
    assert '"computed_with": "%s-1threads"' % isa in (
        spec_folder / f"{isa}-1threads" / "spec.json").read_text()
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")  # TensorFlow's default: a thread per CPU
    assert features.compute_environment() == f"{isa}-{usable_cpus()}threads"


def test_missing_weights_file_is_a_config_error(tmp_path):
    spec = dataclasses.replace(SPEC, weights=str(tmp_path / "absent.weights.h5"))
    with pytest.raises(ConfigError, match="absent.weights.h5"):
        spec.key()


# --------------------------------------------------------------------------- corrupt cache
@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_cache_file_is_logged_and_recomputed(images, tmp_path, backbone, caplog, damage):
    cache_dir = tmp_path / "cache"
    table, first = extract_features(images, SPEC, cache_dir, progress=False, model=backbone)
    content = table.set_index("path").loc[images[1], "content"]
    entry = FeatureCache(cache_dir, SPEC).path(content)
    assert entry.is_file()
    raw = entry.read_bytes()
    entry.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": b"not a numpy file at all",
                       "empty": b""}[damage])
    with caplog.at_level(logging.WARNING, logger="cxrlib.features"):
        again, second = extract_features(images, SPEC, cache_dir, progress=False, model=backbone)
    status = dict(zip(again["path"], again["status"]))
    assert status == {p: ("computed" if p == images[1] else "hit") for p in images}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "corrupt cache file" in r.getMessage()]
    assert len(warnings) == 1 and content in warnings[0].getMessage()
    np.testing.assert_allclose(second[(images[1], 0)], first[(images[1], 0)], **TOL)
    np.testing.assert_allclose(np.load(entry), first[(images[1], 0)], **TOL)  # rewritten


# --------------------------------------------------------------------------- unreadable
def test_unreadable_images_are_skipped_with_a_reason_and_a_count(images, tmp_path, backbone,
                                                                 caplog):
    bad = tmp_path / "bad"
    bad.mkdir()
    missing = bad / "missing.png"
    empty = bad / "empty.png"
    empty.write_bytes(b"")
    truncated = bad / "truncated.png"
    full = _write_noise(bad / "full.png", seed=7, size=(200, 200)).read_bytes()
    truncated.write_bytes(full[: len(full) // 3])
    not_image = bad / "notes.png"
    not_image.write_text("this is not an image")
    paths = [images[0], str(missing), str(empty), images[1], str(truncated), str(not_image)]
    with caplog.at_level(logging.WARNING, logger="cxrlib.features"):
        table, found = extract_features(paths, SPEC, tmp_path / "cache", batch_size=2,
                                        progress=False, model=backbone)
    rows = table.set_index("path")
    assert list(rows.loc[images[:2], "status"]) == ["computed", "computed"]
    assert rows.loc[images[:2], "problem"].isna().all()
    expected = {str(missing): "not found", str(empty): "empty", str(truncated): "truncated",
                str(not_image): "not an image"}
    for path, words in expected.items():
        assert rows.loc[path, "status"] == "skipped"
        assert words in rows.loc[path, "problem"], rows.loc[path, "problem"]
        assert (path, 0) not in found
    assert set(found) == {(images[0], 0), (images[1], 0)}
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("skipped 4 unreadable image(s)" in m for m in messages), messages
    # nothing was cached for the bad files: a second run skips them again, hits the rest
    again, _ = extract_features(paths, SPEC, tmp_path / "cache", progress=False,
                                model=backbone)
    assert list(again.set_index("path").loc[images[:2], "status"]) == ["hit", "hit"]
    assert (again.set_index("path").loc[list(expected), "status"] == "skipped").all()


# --------------------------------------------------------------------------- augmented views
def _views(paths, cache_dir, backbone, aug_seed=0, batch_size=32):
    table, found = extract_features(paths, SPEC, cache_dir, views=(0, 1), aug_seed=aug_seed,
                                    batch_size=batch_size, progress=False, model=backbone)
    assert len(table) == 2 * len(paths)
    return table, found


def test_augmented_view_differs_from_the_plain_image(images, tmp_path, backbone):
    table, found = _views(images, tmp_path / "cache", backbone)
    assert set(table["status"]) == {"computed"}
    plain = stack(found, images, view=0)
    augmented = stack(found, images, view=1)
    for p, a in zip(plain, augmented):
        assert not np.allclose(p, a, **TOL)
    # view 0 is exactly what a views=(0,) extraction gives
    _, only_plain = extract_features(images, SPEC, tmp_path / "other", progress=False,
                                     model=backbone)
    np.testing.assert_allclose(plain, stack(only_plain, images), **TOL)


def test_augmented_views_are_deterministic_and_order_independent(images, tmp_path, backbone):
    _, first = _views(images, tmp_path / "a", backbone)
    _, second = _views(images, tmp_path / "b", backbone)  # fresh cache, same seed
    np.testing.assert_allclose(stack(second, images, 1), stack(first, images, 1), **TOL)
    reordered = images[::-1]
    _, third = _views(reordered, tmp_path / "c", backbone, batch_size=1)
    np.testing.assert_allclose(stack(third, images, 1), stack(first, images, 1), **TOL)
    _, other_seed = _views(images, tmp_path / "d", backbone, aug_seed=1)
    for a, b in zip(stack(other_seed, images, 1), stack(first, images, 1)):
        assert not np.allclose(a, b, **TOL)


def test_augmented_views_of_another_seed_are_not_served_from_the_cache(images, tmp_path,
                                                                        backbone):
    shared = tmp_path / "shared"
    _views(images, shared, backbone, aug_seed=0)
    table, from_shared = _views(images, shared, backbone, aug_seed=1)
    _, fresh = _views(images, tmp_path / "fresh", backbone, aug_seed=1)
    np.testing.assert_allclose(stack(from_shared, images, 1), stack(fresh, images, 1), **TOL)


def test_augment_matches_new_layers_to_the_bit(images):
    """features.augment reuses one set of layers per thread (re-seeded, traced once) and
    must give exactly what new layers of that seed give, whatever it augmented before."""
    from cxrlib.images import load_image

    raws = [load_image(p, SIZE, 3, "raw") for p in images[:2]]
    for settings in (SPEC.augmentation, {**SPEC.augmentation, "rotation": 0.0}):
        for raw, seed in ((raws[0], 7), (raws[1], 8), (raws[0], 7), (raws[1], 123456789)):
            new = models.augmentation_layers(seed, value_range="raw", **settings)
            expected = np.asarray(new(raw[None], training=True))[0]
            np.testing.assert_array_equal(features.augment(raw, seed, settings), expected)
    assert not np.array_equal(features.augment(raws[0], 7, SPEC.augmentation),
                              features.augment(raws[0], 8, SPEC.augmentation))


def test_one_network_is_built_for_both_regions(images, tmp_path, monkeypatch):
    built = []
    build = models.build_backbone
    monkeypatch.setattr(models, "build_backbone",
                        lambda *args, **kwargs: built.append(args) or build(*args, **kwargs))
    monkeypatch.setattr(features, "_LAST_BACKBONE", {})
    extract_features(images, SPEC, tmp_path / "cache", progress=False)
    border = dataclasses.replace(SPEC, region="border")
    _, found = extract_features(images, border, tmp_path / "cache", progress=False)
    assert len(built) == 1  # the same network: built once, its prediction traced once
    extract_features(images, dataclasses.replace(SPEC, image_size=SIZE + 8), tmp_path / "cache",
                     progress=False)
    assert len(built) == 2
    _, again = extract_features(images, border, tmp_path / "fresh", progress=False)
    assert len(built) == 3  # only the last network is kept
    np.testing.assert_array_equal(stack(again, images), stack(found, images))


def test_view_seed_depends_on_content_view_and_seed_only():
    content = "ab" * 20
    seed = view_seed(content, 1, 0)
    assert seed == view_seed(content, 1, 0)
    assert 0 <= seed < 2**31
    others = {view_seed(content, 2, 0), view_seed(content, 1, 1), view_seed("cd" * 20, 1, 0)}
    assert seed not in others and len(others) == 3


# --------------------------------------------------------------------------- stack
def test_stack_keeps_order_and_raises_for_a_missing_path(images, tmp_path, backbone):
    _, found = extract_features(images, SPEC, tmp_path / "cache", progress=False,
                                model=backbone)
    forward = stack(found, images)
    assert forward.shape == (len(images), models.feature_dim("alexnet"))
    np.testing.assert_array_equal(stack(found, images[::-1]), forward[::-1])
    np.testing.assert_array_equal(stack(found, [Path(p) for p in images]), forward)
    with pytest.raises(DataError, match="no-such.png"):
        stack(found, [images[0], str(tmp_path / "no-such.png")])
    with pytest.raises(DataError):
        stack(found, images, view=1)  # view never extracted
