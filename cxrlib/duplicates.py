"""Image identity: which listed files hold the same X-ray, and which people share images.

A collection assembled from papers and web sites lists some X-rays more than once: the
same file under two patient ids (the June 2020 Cohen snapshot lists patients 285 and 339
with the same three files, 287 and 340 with two more), or the same picture saved twice.
Counting such rows as different images or people inflates the cohort and can put one
person on both sides of a train/test split, which a check on ids alone cannot see.

Two kinds of sameness are told apart:

- **exact**: the same file content. ``content_keys`` gives each file the SHA-256 of its
  bytes (a file listed but absent gets ``path:<its path>``, so two rows naming the same
  absent file still agree). Rows with one key are one image; patients sharing a key are
  one person (``merge_ids``).
- **the same picture**: one X-ray saved again (re-encoded or resized), whose decoded
  pixels barely differ. ``dhash_file`` is a 256-bit difference hash of the decoded
  grayscale picture shrunk to 17x16; ``same_picture_keys`` gives files within
  ``SAME_PICTURE_BITS`` bits of each other one content key, so they count as one image
  and link their patient ids as an exact copy does.
- **near**: further apart, yet close (the same X-ray cropped again or with a label burnt
  in, or a follow-up that looks much like the first). ``near_duplicates`` lists pairs of
  different images within ``max_distance`` bits: candidates to look at, listed but never
  dropped or merged.

Hashes are cached in one JSON file (``hash_cache_path``), keyed by a file's absolute path,
size and modification time, so a re-run only stats the files and hashes those written
since. Invariant: ``merge_ids`` gives every group of ids linked by shared content one id,
and ``tests/test_duplicates.py::test_merged_ids_share_no_content`` proves no key is left
spread over two ids; ``same_picture_keys`` leaves no two keys within ``SAME_PICTURE_BITS``
(``test_same_picture_keys_leave_no_close_pair``).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from cxrlib import io

log = logging.getLogger(__name__)

CACHE_ENV = "CXR_HASH_CACHE"
CACHE_VERSION = 1
MISSING_PREFIX = "path:"


def hash_cache_path() -> Path:
    """Where the hash cache lives: ``$CXR_HASH_CACHE``, else ``~/.cache/cxr-repro/``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "cxr-repro" / "image-hashes.json"


def _read_cache(path: Path) -> dict:
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cached.get("entries", {}) if cached.get("version") == CACHE_VERSION else {}


def _write_cache(path: Path, entries: dict) -> None:
    """Merge ``entries`` into the cache file (another process may have added its own)."""
    merged = {**_read_cache(path), **entries}
    try:
        io.write_text(path, json.dumps({"version": CACHE_VERSION, "entries": merged}))
    except OSError as err:  # a read-only home: hashes are recomputed next time
        log.info("could not write the image hash cache %s: %s", path, err)


def _file_key(path: str) -> tuple[str, str] | None:
    """(cache key, absolute path) of an existing non-empty file, or None."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    if stat.st_size == 0:
        return None
    absolute = os.path.abspath(path)
    return f"{absolute}|{stat.st_size}|{stat.st_mtime_ns}", absolute


HASH_SIZE = 16  # dHash of a 17x16 thumbnail: 256 bits
#: Files whose dHashes differ in at most this many of 256 bits hold the same picture. On
#: the June 2020 snapshot the copies of one X-ray saved again differ in 0 to 5 bits; the
#: sample data's phantoms, distinct by design but drawn from one template, in 10 or more.
SAME_PICTURE_BITS = 6
#: A hash with fewer set bits than this, or more than 256 minus this, is of a flat picture
#: or a plain gradient: it says nothing of which X-ray it is, so it never links two files.
#: The X-rays of the June 2020 snapshot and the pediatric set have 88 to 161 set bits.
FEATURELESS_BITS = 64


def dhash_file(path: str | Path, size: int = HASH_SIZE) -> str | None:
    """The difference hash of the decoded picture as hex (``size * size`` bits), or None
    if it does not decode. Each bit says whether a pixel of the grayscale thumbnail
    (``size + 1`` by ``size``) is brighter than its right-hand neighbour, so resizing and
    re-encoding change few bits. 256 bits rather than the usual 64: at 9x8 every frontal
    chest X-ray looks alike (hundreds of unrelated pairs within 4 bits on the real data)."""
    from PIL import Image

    from cxrlib.images import to_gray_or_rgb

    try:
        with Image.open(path) as image:
            gray = to_gray_or_rgb(image)  # 16-bit scaled by bit depth, not clipped to white
            gray = gray.convert("L") if gray.mode == "RGB" else gray
            small = gray.convert("F").resize((size + 1, size), Image.Resampling.LANCZOS)
    except (OSError, SyntaxError, ValueError):
        return None
    pixels = np.asarray(small, dtype=np.float32)
    return np.packbits(pixels[:, 1:] > pixels[:, :-1]).tobytes().hex()


def _cached(paths: Sequence[str], field: str, compute) -> list[str | None]:
    """``field`` of each file from the cache, computing (and storing) what is missing."""
    cache_path = hash_cache_path()
    entries = _read_cache(cache_path)
    new: dict = {}
    out: list[str | None] = []
    for path in paths:
        key = _file_key(str(path)) if isinstance(path, (str, Path)) and str(path) else None
        if key is None:
            out.append(None)
            continue
        entry = new.get(key[0]) or entries.get(key[0]) or {}
        if field not in entry:
            entry = {**entry, field: compute(key[1])}
            new[key[0]] = entry
        out.append(entry[field])
    if new:
        _write_cache(cache_path, new)
        log.info("hashed %d file(s) (%s); cache %s", len(new), field, cache_path)
    return out


def content_keys(paths: Iterable[str | Path]) -> list[str | None]:
    """The identity of each file: SHA-256 of its bytes; ``path:<path>`` when it is absent
    or empty (so rows naming one absent file still agree); None for no path at all."""
    paths = [str(p) if isinstance(p, (str, Path)) else "" for p in paths]
    digests = _cached(paths, "sha256", io.sha256_file)
    return [d if d is not None else MISSING_PREFIX + os.path.abspath(p) if p else None
            for p, d in zip(paths, digests)]


def dhashes(paths: Iterable[str | Path]) -> list[str | None]:
    """The difference hash of each file (None when absent, empty or not decodable)."""
    return _cached([str(p) for p in paths], f"dhash{HASH_SIZE}-gray", dhash_file)


def merge_ids(ids: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
    """``{listed id: merged id}`` for ids linked by a shared content key.

    Ids joined through any chain of shared keys become one (union-find); the merged id is
    the group's first id in natural order ('2' before '10', numbers before '311a'). Only ids
    that change are in the result."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.get(x, x) != x:
            parent[x] = parent.get(parent[x], parent[x])
            x = parent[x]
        return x

    first_id: dict[str, str] = {}
    for patient, key in zip(map(str, ids), keys):
        parent.setdefault(patient, patient)
        if key in first_id:
            a, b = find(first_id[key]), find(patient)
            if a != b:
                low, high = sorted((a, b), key=natural_key)
                parent[high] = low
        else:
            first_id[key] = patient
    return {p: find(p) for p in parent if find(p) != p}


def natural_key(patient_id: object) -> tuple:
    """Sort key for patient ids: numbers by value first, then other strings."""
    text = str(patient_id)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def near_duplicates(table: pd.DataFrame, max_distance: int = 20) -> pd.DataFrame:
    """Pairs of different images (by content) whose difference hashes differ in at most
    ``max_distance`` of 256 bits: ``patient_a``, ``patient_b``, ``path_a``, ``path_b``,
    ``distance``, ``same_patient``. ``table`` needs ``path``, ``patient_id`` and
    ``content``; each content is compared once.

    A list of candidates to look at, not a verdict. On the June 2020 snapshot every pair
    within 20 bits is one X-ray saved twice (re-encoded, re-cropped or with a label
    added; the closest pair of different X-rays found by eye is further), while the sample
    data's phantoms, drawn from one template, come as close as 10 bits."""
    columns = ["patient_a", "patient_b", "path_a", "path_b", "distance", "same_patient"]
    files = table.drop_duplicates("content")
    files = files[~files["content"].str.startswith(MISSING_PREFIX)]
    hashes = dhashes(files["path"])
    keep = [h is not None for h in hashes]
    files = files[keep]
    if len(files) < 2:
        return pd.DataFrame(columns=columns)
    distance = _distances([h for h in hashes if h is not None])
    a, b = np.nonzero(np.triu(distance <= max_distance, k=1))
    ids, paths = files["patient_id"].astype(str).to_numpy(), files["path"].to_numpy()
    pairs = pd.DataFrame({"patient_a": ids[a], "patient_b": ids[b], "path_a": paths[a],
                          "path_b": paths[b], "distance": distance[a, b],
                          "same_patient": ids[a] == ids[b]}, columns=columns)
    return pairs.sort_values(["distance", "patient_a", "path_a"]).reset_index(drop=True)


def _distances(hashes: Sequence[str]) -> np.ndarray:
    """The number of differing bits between every two hex hashes (a square matrix)."""
    words = np.array([np.frombuffer(bytes.fromhex(h), dtype=np.uint64) for h in hashes])
    distance = np.zeros((len(words), len(words)), dtype=np.int32)
    for column in range(words.shape[1]):
        distance += np.bitwise_count(words[:, None, column] ^ words[None, :, column])
    return distance


def same_picture_keys(paths: Sequence[str], keys: Sequence[str],
                      max_distance: int = SAME_PICTURE_BITS) -> list[str]:
    """``keys`` with the files that hold the same picture given one key: files whose
    difference hashes differ in at most ``max_distance`` bits, joined through any chain
    (connected components), take the key of the group's first file in ``keys`` order.
    Files that do not decode, or whose hash is featureless (``FEATURELESS_BITS``), keep
    their key."""
    first: dict[str, str] = {}  # key -> a path holding it (the first listed)
    for path, key in zip(paths, keys):
        first.setdefault(key, path)
    unique = [k for k in first if not k.startswith(MISSING_PREFIX)]
    hashes = dhashes([first[k] for k in unique])
    hashed = [(k, h) for k, h in zip(unique, hashes)
              if h is not None and FEATURELESS_BITS <= int(h, 16).bit_count() <= 256 - FEATURELESS_BITS]
    if len(hashed) < 2:
        return list(keys)
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    close = _distances([h for _, h in hashed]) <= max_distance
    _, group = connected_components(csr_matrix(close), directed=False)
    group_key: dict[int, str] = {}
    renamed = {}
    for (key, _), g in zip(hashed, group):
        renamed[key] = group_key.setdefault(int(g), key)
    return [renamed.get(k, k) for k in keys]
