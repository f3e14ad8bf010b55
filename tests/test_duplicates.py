"""Image identity: content keys, their cache, merged patient ids, near-duplicates."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrlib import duplicates, io
from conftest import SHARED_DATA, write_gray


def test_same_bytes_same_key_and_absent_files_keyed_by_path(tmp_path: Path) -> None:
    a = write_gray(tmp_path / "a.png", value=120)
    b = tmp_path / "b.png"
    b.write_bytes(a.read_bytes())
    c = write_gray(tmp_path / "c.png", value=121)
    (tmp_path / "empty.png").write_bytes(b"")
    keys = duplicates.content_keys([a, b, c, tmp_path / "gone.png", tmp_path / "empty.png", ""])
    assert keys[0] == keys[1] == io.sha256_file(a) and keys[2] != keys[0]
    assert keys[3] == "path:" + str(tmp_path / "gone.png")
    assert keys[4] == "path:" + str(tmp_path / "empty.png") and keys[5] is None


def test_hashes_are_cached_by_path_size_and_mtime(tmp_path: Path, image_hash_cache: Path) -> None:
    image = write_gray(tmp_path / "x.png", value=90)
    first = duplicates.content_keys([image])[0]
    entries = json.loads(image_hash_cache.read_text())["entries"]
    key = next(k for k in entries if k.startswith(str(image) + "|"))
    entries[key]["sha256"] = "cached"  # a cache hit returns what is stored, unread
    image_hash_cache.write_text(json.dumps({"version": duplicates.CACHE_VERSION,
                                            "entries": entries}))
    assert duplicates.content_keys([image]) == ["cached"]
    write_gray(image, value=91)  # a new version of the file is hashed again
    os.utime(image, ns=(1, 1))
    assert duplicates.content_keys([image])[0] not in ("cached", first)


def test_merged_ids_share_no_content() -> None:
    ids = ["339", "285", "10", "2", "311a", "7", "311a", "40"]
    keys = ["k1", "k1", "k2", "k3", "k3", "k4", "k2", "k5"]
    merged = duplicates.merge_ids(ids, keys)
    assert merged == {"339": "285", "10": "2", "311a": "2"}  # 10-311a-2 chained, '2' first
    final = [merged.get(p, p) for p in ids]
    owners = pd.DataFrame({"id": final, "key": keys}).groupby("key")["id"].nunique()
    assert (owners == 1).all()
    assert duplicates.merge_ids(["1", "1", "2"], ["a", "a", "b"]) == {}


def test_near_duplicates_find_a_resized_copy_and_not_another_xray(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    base = (rng.random((64, 64)) * 255).astype(np.uint8)
    Image.fromarray(base).resize((256, 256)).save(tmp_path / "big.png")
    Image.fromarray(base).resize((128, 128)).save(tmp_path / "small.jpg", quality=70)
    other = (rng.random((64, 64)) * 255).astype(np.uint8)
    Image.fromarray(other).resize((256, 256)).save(tmp_path / "other.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    paths = [str(tmp_path / n) for n in ("big.png", "small.jpg", "other.png", "broken.png")]
    table = pd.DataFrame({"path": paths, "patient_id": ["1", "2", "3", "4"],
                          "content": duplicates.content_keys(paths)})
    pairs = duplicates.near_duplicates(table)
    assert len(pairs) == 1
    pair = pairs.iloc[0]
    assert {pair["patient_a"], pair["patient_b"]} == {"1", "2"}
    assert pair["distance"] <= 16 and not pair["same_patient"]
    assert duplicates.dhashes([tmp_path / "broken.png"]) == [None]


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
def test_near_duplicates_on_the_real_snapshot_join_four_pairs_of_ids() -> None:
    """X-rays saved twice under two ids: 78/201, 97/178 (four images), 137/202, 192/196."""
    from cxrlib import data

    images = data.load_cohen(SHARED_DATA, None, None)
    listed = duplicates.near_duplicates(images[images["exists"]])
    across = {tuple(sorted((a, b), key=duplicates.natural_key)) for a, b in
              zip(listed["patient_a"], listed["patient_b"]) if a != b}
    assert across == {("78", "201"), ("97", "178"), ("137", "202"), ("192", "196")}
    assert (listed["distance"] <= 20).all() and len(listed) == 11
