"""Compute each image's CNN features once, cache them on disk, reuse them everywhere.

With a frozen backbone, every seed, fold, window and head sees the same image features,
so they are computed once per ``FeatureSpec`` (backbone, weights, image size, pooling,
initialisation seed, preprocessing) and image *content*, and stored as one ``.npy`` file
per image (and per augmented view). The cache is keyed so that:

- a changed setting gets a new folder (the key hashes the spec, and a weights file by its
  content);
- a changed image gets a new entry (files are looked up by the SHA-1 of their bytes);
- features computed on another instruction set or with another number of TensorFlow
  intra-op threads go to a subfolder of their own (``compute_environment``): both change
  the last bits of a feature, so a warm cache gives what a cold one computes here;
- a corrupt or truncated cache file is detected, logged and recomputed;
- writes are atomic (temporary file, then rename), so parallel runs and killed runs never
  leave half-written entries.

The backbone is built only when something is missing: a warm cache costs file reads only.
Images are decoded in background threads while the model runs on the previous batch.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxrlib.errors import DataError, ImageError
from cxrlib.images import blank_center, load_image, scale_pixels
from cxrlib.io import write_bytes, write_npy
from cxrlib.machine import instruction_set, intra_op_threads

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class FeatureSpec:
    """Everything that changes a feature vector (except the image itself).

    ``pooling="avg"`` gives one vector per image (ProgNet); ``None`` the last feature map
    (the detector's 7x7x512). ``augmentation`` holds the settings of augmented views
    (view 0 is always the plain image). ``region="border"`` blanks the central lung
    region first (``images.blank_center``), for the shortcut audit.
    """

    backbone: str
    image_size: int
    weights: str | None = None
    pooling: str | None = "avg"
    init_seed: int = 0
    region: str = "full"
    augmentation: dict = field(default_factory=lambda: {
        "rotation": 0.03, "shift": 0.05, "zoom": 0.1, "brightness": 0.1})

    def weights_id(self) -> str:
        """``imagenet``, ``none`` or ``file-<sha1 of the weights file>`` (decoded by
        ``models.check_weights``)."""
        from cxrlib.models import check_weights

        weights = check_weights(self.weights, self.backbone)
        if weights is None or weights == "imagenet":
            return weights or "none"
        return "file-" + file_hash(weights)

    def key(self) -> str:
        """A short hash naming this spec's cache folder."""
        from cxrlib.models import input_scale

        payload = {**asdict(self), "weights": self.weights_id(),
                   "scale": input_scale(self.backbone), "version": CACHE_VERSION}
        digest = hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        return f"{self.backbone}-{self.image_size}px-{self.pooling or 'map'}-{digest[:12]}"


def file_hash(path: str | Path) -> str:
    """SHA-1 of a file's bytes: the cache's name for an image's content."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def compute_environment() -> str:
    """What besides the spec changes a feature's last bits, as a folder name: the CPU's
    instruction set and TensorFlow's intra-op thread count (e.g. ``avx2-2threads``). The
    sample cohort's ResNet50 and AlexNet features all differ (by up to 7e-6) between one
    thread and two, and the same count always gives the same bytes
    (``tests/test_features.py``)."""
    return f"{instruction_set()}-{intra_op_threads()}threads"


class FeatureCache:
    """One folder of ``.npy`` files for one ``FeatureSpec`` computed in one
    ``compute_environment``: ``<cache_dir>/<spec key>/<environment>/``."""

    def __init__(self, cache_dir: str | Path, spec: FeatureSpec):
        self.spec = spec
        self.environment = compute_environment()
        self.folder = Path(cache_dir) / spec.key() / self.environment
        self.folder.mkdir(parents=True, exist_ok=True)
        spec_file = self.folder / "spec.json"
        if not spec_file.exists():
            write_bytes(spec_file, json.dumps(
                {**asdict(spec), "weights_id": spec.weights_id(),
                 "computed_with": self.environment}, indent=2).encode())

    def path(self, content: str, view: int = 0, aug_seed: int = 0) -> Path:
        """Plain images are ``<content>-v0.npy``; augmented views also name their seed."""
        name = f"{content}-v0" if view == 0 else f"{content}-v{view}-s{aug_seed}"
        return self.folder / content[:2] / f"{name}.npy"

    def get(self, content: str, view: int = 0, aug_seed: int = 0) -> np.ndarray | None:
        """The cached array, or None when absent or unreadable (a corrupt file is removed)."""
        path = self.path(content, view, aug_seed)
        if not path.exists():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            log.warning("corrupt cache file %s (%s): recomputing", path, err)
            path.unlink(missing_ok=True)
            return None

    def put(self, content: str, view: int, array: np.ndarray, aug_seed: int = 0) -> None:
        """Store one view's features as float32, atomically."""
        write_npy(self.path(content, view, aug_seed), array.astype(np.float32))


def view_seed(content: str, view: int, seed: int) -> int:
    """A seed for augmented view ``view`` of one image, independent of batch order."""
    return zlib.crc32(f"{content}:{view}:{seed}".encode()) & 0x7FFFFFFF


def _load_view(path: str, content: str, view: int, spec: FeatureSpec, scale: str,
               aug_seed: int) -> np.ndarray:
    """Decode one image (and augment it for views > 0) in the backbone's input scale."""
    if view == 0 and spec.region == "full":
        return load_image(path, spec.image_size, 3, scale)
    raw = load_image(path, spec.image_size, 3, "raw")
    if spec.region == "border":
        raw = blank_center(raw)
    if view == 0:
        return scale_pixels(raw, scale)
    augmented = augment(raw, view_seed(content, view, aug_seed), spec.augmentation)
    return scale_pixels(np.clip(augmented, 0, 255).astype(np.float32), scale)


_AUGMENTERS = threading.local()  # per thread: {settings: (layers, their traced call)}


def augment(raw: np.ndarray, seed: int, settings: dict) -> np.ndarray:
    """One (H, W, C) image in raw pixel values, augmented as new
    ``models.augmentation_layers(seed, **settings)`` would augment it. The thread keeps
    one set of layers per settings, re-seeded for each image, and calls them through one
    traced ``tf.function``: about 10 ms an image instead of 70 ms for building and calling
    new layers eagerly, with the same pixels to the bit (``tests/test_features.py``)."""
    import tensorflow as tf

    from cxrlib.models import augmentation_layers, reseed_augmentation

    if not hasattr(_AUGMENTERS, "kept"):
        _AUGMENTERS.kept = {}
    kept = _AUGMENTERS.kept
    key = json.dumps(settings, sort_keys=True)
    if key not in kept:
        layers = augmentation_layers(0, value_range="raw", **settings)
        kept[key] = (layers, tf.function(lambda batch: layers(batch, training=True)))
    layers, call = kept[key]
    reseed_augmentation(layers, seed)
    return np.asarray(call(raw[None]))[0]


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def extract_features(
    paths: Sequence[str],
    spec: FeatureSpec,
    cache_dir: str | Path,
    views: Sequence[int] = (0,),
    batch_size: int = 32,
    aug_seed: int = 0,
    threads: int = 2,
    progress: bool = True,
    model=None,
) -> tuple[pd.DataFrame, dict[tuple[str, int], np.ndarray]]:
    """Features of every (path, view), from the cache where possible.

    Returns a table (one row per path and view: ``path``, ``view``, ``content``, ``status``
    = hit / computed / skipped, ``problem``) and ``{(path, view): array}`` for the rows not
    skipped. Unreadable images are skipped with a logged count. ``model`` may pass an
    already built backbone.
    """
    from cxrlib.models import input_scale

    scale = input_scale(spec.backbone)
    cache = FeatureCache(cache_dir, spec)
    rows, vectors, todo = [], {}, []
    contents: dict[str, str | None] = {}
    for path in dict.fromkeys(map(str, paths)):
        try:
            contents[path] = file_hash(path)
        except OSError:
            contents[path] = None
    for path, content in contents.items():
        for view in views:
            row = {"path": path, "view": view, "content": content, "status": "hit",
                   "problem": None}
            if content is None:
                row.update(status="skipped", problem="file not found or unreadable")
            elif (array := cache.get(content, view, aug_seed)) is not None:
                vectors[(path, view)] = array
            else:
                row["status"] = "computed"
                todo.append(row)
            rows.append(row)
    if todo:
        network = model if model is not None else backbone(spec)
        _compute(todo, spec, scale, cache, network, vectors, batch_size, aug_seed, threads,
                 progress)
    table = pd.DataFrame(rows, columns=["path", "view", "content", "status", "problem"])
    skipped = table[table["status"] == "skipped"]
    if len(skipped):
        log.warning("skipped %d unreadable image(s): %s", skipped["path"].nunique(),
                    "; ".join(f"{p}: {r}" for p, r in skipped[["path", "problem"]]
                              .drop_duplicates().head(5).itertuples(index=False)))
    return table, vectors


_LAST_BACKBONE: dict = {}  # {network key: model}: the backbone this process built last
_BACKBONE_LOCK = threading.Lock()


def backbone(spec: FeatureSpec):
    """The network of ``spec``: the one this process built last if it is the same network
    (the region and augmentation of a spec do not change it; its prediction step is then
    traced already, 1-3 s a network), else a new one, which replaces it. Only for
    inference: nothing may train it."""
    from cxrlib.models import build_backbone

    key = FeatureSpec(spec.backbone, spec.image_size, spec.weights, spec.pooling,
                      spec.init_seed).key()
    with _BACKBONE_LOCK:
        if key not in _LAST_BACKBONE:
            _LAST_BACKBONE.clear()
            _LAST_BACKBONE[key] = build_backbone(spec.backbone, spec.image_size, spec.weights,
                                                 pooling=spec.pooling,
                                                 init_seed=spec.init_seed)
        return _LAST_BACKBONE[key]


def _compute(todo: list[dict], spec: FeatureSpec, scale: str, cache: FeatureCache, model,
             vectors: dict, batch_size: int, aug_seed: int, threads: int, progress: bool) -> None:
    """Run the backbone over the rows in ``todo``.

    Only ``predict_on_batch`` runs on the calling thread: the next batch is decoded and
    stacked by background threads meanwhile, and finished features are written to the
    cache by another, so the model never waits for Python between batches. (Padding a
    short last batch to the others' size would save tracing the prediction step again for
    its shape, but TensorFlow's kernels do not give an image the same features to the bit
    in batches of another size or at another place in the batch: it changed one image's
    features per backbone on the paper data, so it is not done.)
    """

    def load_batch(batch: list[dict]) -> tuple[list[dict], np.ndarray | None]:
        """(rows that decoded, their stacked images); failed rows are marked skipped."""
        def one(row: dict) -> np.ndarray | ImageError:
            try:
                return _load_view(row["path"], row["content"], row["view"], spec, scale, aug_seed)
            except ImageError as err:
                return err
        good, images = [], []
        for row, image in zip(batch, pool.map(one, batch)):
            if isinstance(image, ImageError):
                row.update(status="skipped", problem=image.reason)
            else:
                good.append(row)
                images.append(image)
        return good, (np.stack(images) if images else None)

    def write(rows: list[dict], outputs: np.ndarray) -> None:
        for row, output in zip(rows, outputs):
            cache.put(row["content"], row["view"], output, aug_seed)

    batches = list(_batches(todo, batch_size))
    bar = tqdm(total=len(todo), desc=f"features {spec.backbone}", disable=not progress,
               unit="img")
    writes = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool, \
            ThreadPoolExecutor(max_workers=1) as prefetch, \
            ThreadPoolExecutor(max_workers=1) as writer:
        pending = prefetch.submit(load_batch, batches[0])
        for index, batch in enumerate(batches):
            good, stacked = pending.result()
            if index + 1 < len(batches):
                pending = prefetch.submit(load_batch, batches[index + 1])
            if stacked is not None:
                outputs = np.asarray(model.predict_on_batch(stacked), dtype=np.float32)
                writes.append(writer.submit(write, good, outputs))
                for row, output in zip(good, outputs):
                    vectors[(row["path"], row["view"])] = output
            bar.update(len(batch))
        for done in writes:
            done.result()  # a failed cache write raises here
    bar.close()


def stack(vectors: dict[tuple[str, int], np.ndarray], paths: Sequence[str], view: int = 0) -> np.ndarray:
    """Features of ``paths`` (one view) as one array, in order; all must be present
    (a ``DataError`` names the first missing one: typically a file that did not decode)."""
    missing = [p for p in paths if (str(p), view) not in vectors]
    if missing:
        raise DataError(f"no features for {len(missing)} image(s), e.g. {missing[0]}: the "
                        "file could not be read (see the extraction log); leave it out of "
                        "the table first (data.drop_undecodable)")
    return np.stack([vectors[(str(p), view)] for p in paths])
