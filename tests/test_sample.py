"""Tests of cxrlib.sample: layout, header, counts, formats, determinism, designed signal."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrlib.errors import DataError
from cxrlib import sample as sample_module
from cxrlib.sample import MANIFEST_COLUMNS, SAMPLE_SEED, is_intact, write_sample_data

pytestmark = pytest.mark.xdist_group("sample")  # module fixtures: one process (make test)

REAL_HEADER = (
    "patientid,offset,sex,age,finding,survival,intubated,intubation_present,went_icu,"
    "in_icu,needed_supplemental_O2,extubated,temperature,pO2_saturation,leukocyte_count,"
    "neutrophil_count,lymphocyte_count,view,modality,date,location,folder,filename,doi,url,"
    "license,clinical_notes,other_notes,"
)
FRONTAL = ["PA", "AP", "AP Supine"]
PNEUMONIA_NAME = re.compile(r"^person(\d+)_(bacteria|virus)_(\d+)\.jpeg$")
NORMAL_NAME = re.compile(r"^((?:NORMAL2-)?IM-\d{4})-\d{4}(?:-\d{4})?\.jpeg$")


@pytest.fixture(scope="module")
def sample(sample_dir: Path) -> tuple[Path, pd.DataFrame]:
    """The session's sample (default seed; tests only read it) and its manifest, which
    ``write_sample_data`` reads back without rewriting a file."""
    return sample_dir, write_sample_data(sample_dir, seed=SAMPLE_SEED)


def cohen(root: Path) -> Path:
    return root / "covid-chestxray-dataset"


def metadata(root: Path) -> pd.DataFrame:
    """metadata.csv with a column telling whether the image file exists."""
    table = pd.read_csv(cohen(root) / "metadata.csv")
    table["exists"] = [(cohen(root) / folder / name).is_file()
                       for folder, name in zip(table.folder, table.filename)]
    return table


def hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def gray(path: Path) -> np.ndarray:
    """An image file as grey levels in 0..1, whatever its mode."""
    with Image.open(path) as im:
        if im.mode == "I;16":
            return np.asarray(im, dtype=np.float64) / 65535.0
        return np.asarray(im.convert("L"), dtype=np.float64) / 255.0


def central_mean(a: np.ndarray) -> float:
    """Mean of the central region (lungs, heart; no corner markers)."""
    h, w = a.shape
    return float(a[h // 4: 3 * h // 4, int(0.15 * w): int(0.85 * w)].mean())


def prognet_series(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ProgNet-eligible patients: >= 3 frontal X-rays on disk with offset, label Y/N."""
    rows = table[(table.modality == "X-ray") & table.view.isin(FRONTAL)
                 & table.survival.isin(["Y", "N"]) & table.offset.notna() & table.exists]
    sizes = rows.groupby("patientid").filename.transform("size")
    return rows[sizes >= 3]


def test_layout_and_readme(sample):
    root, manifest = sample
    assert (cohen(root) / "images").is_dir()
    for split in ("train", "test", "val"):
        for label in ("NORMAL", "PNEUMONIA"):
            assert (root / "chest-xray-pneumonia" / "chest_xray" / split / label).is_dir()
    readme = (root / "README.md").read_text()
    assert "synthetic" in readme.lower() and f"seed {SAMPLE_SEED}" in readme
    assert list(manifest.columns) == MANIFEST_COLUMNS
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.suffix.lower() in (".jpeg", ".jpg", ".png")}
    assert set(manifest.path[manifest.written]) == on_disk


def test_metadata_header_is_the_real_one(sample):
    root, _ = sample
    first = (cohen(root) / "metadata.csv").read_text().splitlines()[0]
    assert first == REAL_HEADER
    table = pd.read_csv(cohen(root) / "metadata.csv")
    assert table.columns[-1].startswith("Unnamed") and table.iloc[:, -1].isna().all()
    assert set(table.folder) == {"images"}
    assert set(table.survival.dropna()) <= {"Y", "N"}
    assert set(table.modality) == {"X-ray", "CT"}
    assert set(table.view) <= set(FRONTAL) | {"L", "Axial"}


def test_prognet_patients(sample):
    root, _ = sample
    table = metadata(root)
    series = prognet_series(table)
    labels = series.groupby("patientid").survival.first()
    assert len(labels) >= 40
    assert 0.5 <= (labels == "Y").mean() <= 0.7
    assert series.groupby("patientid").size().between(3, 6).all()
    # edge cases
    frontal = table[(table.modality == "X-ray") & table.view.isin(FRONTAL)]
    unlabelled = frontal[frontal.survival.isna()].groupby("patientid").size()
    assert (unlabelled >= 3).sum() == 3
    empty_offset = frontal[frontal.offset.isna() & frontal.survival.isin(["Y", "N"])]
    assert empty_offset.patientid.nunique() == 2
    ct = table[table.modality == "CT"]
    assert len(ct) == 3 and set(ct.view) == {"Axial"}
    assert (table.view == "L").sum() >= 3
    assert {"Pneumonia", "SARS", "Streptococcus", "No Finding"} <= set(table.finding)
    assert (table.groupby("patientid").size() <= 2).sum() >= 5


def test_detector_has_enough_covid_images(sample):
    root, _ = sample
    table = metadata(root)
    covid = table[table.finding.str.startswith("COVID-19") & (table.modality == "X-ray")
                  & table.view.isin(FRONTAL) & table.exists]
    assert len(covid) >= 120 and covid.patientid.nunique() >= 40


def test_exactly_one_listed_but_missing(sample):
    root, manifest = sample
    table = metadata(root)
    missing = table[~table.exists]
    assert len(missing) == 1
    listed = (cohen(root) / "MISSING_IMAGES.txt").read_text().split()
    assert listed == [f"images/{missing.filename.iloc[0]}"]
    assert (~manifest.written).sum() == 1


def test_colour_modes_and_formats(sample):
    root, manifest = sample
    modes: dict[str, int] = {}
    for path in sorted((cohen(root) / "images").iterdir()):
        with Image.open(path) as im:
            modes[im.mode] = modes.get(im.mode, 0) + 1
            assert im.format == ("PNG" if path.suffix == ".png" else "JPEG")
            if im.mode == "I;16":
                a = np.asarray(im)
                assert a.min() == 0 and a.max() == 65535
    assert {"L", "RGB", "RGBA", "P", "I;16", "CMYK"} <= set(modes)
    assert modes["CMYK"] == 1
    suffixes = {p.suffix for p in (cohen(root) / "images").iterdir()}
    assert suffixes == {".jpeg", ".jpg", ".png"}
    written = manifest[(manifest.dataset == "cohen") & manifest.written]
    assert written["mode"].value_counts().to_dict() == modes


def test_pediatric_names_counts_and_look(sample):
    root, _ = sample
    base = root / "chest-xray-pneumonia" / "chest_xray"
    expected = {"train": 48, "test": 8, "val": 4}
    patients: dict[str, set[str]] = {}
    for split, n in expected.items():
        for label, pattern in (("NORMAL", NORMAL_NAME), ("PNEUMONIA", PNEUMONIA_NAME)):
            files = sorted((base / split / label).iterdir())
            assert len(files) == n
            for f in files:
                match = pattern.match(f.name)
                assert match, f.name
                patient = match.group(1) if label == "NORMAL" else f"person{match.group(1)}"
                patients.setdefault(label, set()).add(patient)
                with Image.open(f) as im:
                    assert im.format == "JPEG" and im.mode in ("L", "RGB")
                    assert 200 <= im.width <= 260
    for label in ("NORMAL", "PNEUMONIA"):
        assert len(patients[label]) < sum(expected.values())  # some patients have 2 images
    names = [p.name for p in base.rglob("*.jpeg")]
    assert sum(bool(re.match(r"^IM-\d{4}-\d{4}-\d{4}\.jpeg$", n)) for n in names) == 1
    assert any("NORMAL2-IM-" in n for n in names) and any("_virus_" in n for n in names)


def test_size_is_small(sample):
    root, _ = sample
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 5_000_000


def test_designed_prognosis_signal(sample):
    """Deaths' lungs get brighter from first to last image, survivors' get darker."""
    root, _ = sample
    series = prognet_series(metadata(root)).sort_values(["patientid", "offset"])
    agree = {"Y": [], "N": []}
    for _, rows in series.groupby("patientid"):
        first, last = (central_mean(gray(cohen(root) / "images" / rows.filename.iloc[i]))
                       for i in (0, -1))
        label = rows.survival.iloc[0]
        agree[label].append(last > first if label == "N" else last < first)
    assert np.mean(agree["N"]) >= 0.9 and np.mean(agree["Y"]) >= 0.9


def test_designed_detector_signal(sample):
    """Pediatric pneumonia has a bright consolidation: brighter central region than normal."""
    root, manifest = sample
    ped = manifest[manifest.dataset == "pediatric"]
    means = ped.assign(m=[central_mean(gray(root / p)) for p in ped.path]).groupby("finding").m
    assert means.mean()["PNEUMONIA"] > means.mean()["NORMAL"]


def test_reuse_without_rewriting(sample):
    root, manifest = sample
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    again = write_sample_data(root, seed=SAMPLE_SEED)  # no file rewritten (times below)
    pd.testing.assert_frame_equal(again, manifest)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before


class _Rewrite(Exception):
    """Raised by a stand-in for the generator: write_sample_data chose to write."""


def _refuse_to_write(root, seed, threads):
    raise _Rewrite(root)


def test_a_changed_file_is_noticed_and_the_sample_written_again(sample, tmp_path, monkeypatch,
                                                                caplog):
    """The marker's checksum covers every other file: a truncated image, or a marker
    from before checksums, makes write_sample_data write the sample again (the stand-in
    generator stops it there; the folder is left as it was)."""
    root, manifest = sample
    assert is_intact(root)
    assert len(json.loads((root / ".cxr-sample.json").read_text())["sha256"]) == 64
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert is_intact(copy) and not is_intact(copy, seed=SAMPLE_SEED + 1)
    monkeypatch.setattr(sample_module, "_write_all", _refuse_to_write)
    pd.testing.assert_frame_equal(write_sample_data(copy, seed=SAMPLE_SEED), manifest)

    image = copy / manifest.path[manifest.written].iloc[0]
    image.write_bytes(image.read_bytes()[:-10])
    assert not is_intact(copy)
    with caplog.at_level("WARNING", logger="cxrlib.sample"), pytest.raises(_Rewrite):
        write_sample_data(copy, seed=SAMPLE_SEED)
    assert "changed since it was written" in caplog.text
    assert not list(tmp_path.glob(".copy.*"))  # the interrupted write left nothing behind

    shutil.copy2(root / image.relative_to(copy), image)
    marker = copy / ".cxr-sample.json"
    info = json.loads(marker.read_text())
    assert is_intact(copy)
    marker.write_text(json.dumps({k: v for k, v in info.items() if k != "sha256"}))
    assert not is_intact(copy)
    with pytest.raises(_Rewrite):
        write_sample_data(copy, seed=SAMPLE_SEED)


def test_same_seed_is_byte_identical(sample, tmp_path):
    """Drawn on one thread this time (the session's sample was drawn on several): the
    files do not depend on how many threads draw the images."""
    root, _ = sample
    write_sample_data(tmp_path / "again", seed=SAMPLE_SEED, threads=1)
    assert hashes(tmp_path / "again") == hashes(root)
    assert not list(tmp_path.glob(".again.*"))  # no temporary folders left behind


def test_other_seed_replaces_and_differs(sample, tmp_path):
    root, _ = sample
    other = tmp_path / "other"
    shutil.copytree(root, other)
    write_sample_data(other, seed=SAMPLE_SEED + 1)
    a, b = hashes(root), hashes(other)
    assert '"seed": 1' in (other / ".cxr-sample.json").read_text()
    assert a["covid-chestxray-dataset/metadata.csv"] != b["covid-chestxray-dataset/metadata.csv"]
    common = set(a) & set(b)
    assert sum(a[p] == b[p] for p in common) <= 0.05 * len(common) + 1


def test_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a sample")
    with pytest.raises(DataError, match="not a cxrlib sample"):
        write_sample_data(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "not a sample"
