"""Dataset tables: schemas, time ordering, labels, missing files, pediatric names."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlib import data
from cxrlib.errors import DataError
from conftest import SHARED_DATA, write_gray


def test_cohen_rows_filters_and_file_problems(tiny_data: Path) -> None:
    frontal = data.load_cohen(tiny_data)
    assert set(frontal["view"]) <= set(data.FRONTAL_VIEWS)
    assert "p1-lateral.png" not in set(frontal["filename"])
    assert "p4-ct.png" not in set(frontal["filename"])
    problems = frontal.set_index("filename")["problem"]
    assert problems["p2-missing.png"] == "missing"
    assert problems["p5-empty.png"] == "empty file"
    assert problems.drop(["p2-missing.png", "p5-empty.png"]).isna().all()
    everything = data.load_cohen(tiny_data, modality=None, views=None)
    assert len(everything) == 13
    assert everything["finding"].tolist().count("COVID-19") == 9  # 'COVID-19, ARDS' counts


def test_current_schema_is_understood(tiny_data: Path) -> None:
    path = tiny_data / "covid-chestxray-dataset" / "metadata.csv"
    table = pd.read_csv(path, dtype=str)
    table.insert(5, "RT_PCR_positive", "Y")
    table["finding"] = table["finding"].replace({
        "COVID-19": "Pneumonia/Viral/COVID-19", "COVID-19, ARDS": "Pneumonia/Viral/COVID-19",
        "SARS": "Pneumonia/Viral/SARS", "Pneumonia": "Pneumonia"})
    table.to_csv(path, index=False)
    raw, schema = data.read_cohen_metadata(tiny_data)
    assert schema == "current"
    frontal = data.load_cohen(tiny_data)
    assert (frontal["finding"] == "COVID-19").sum() == 7
    assert set(frontal["finding"]) == {"COVID-19", "SARS", "Pneumonia"}


def test_unknown_schema_fails_with_a_clear_message(tiny_data: Path) -> None:
    path = tiny_data / "covid-chestxray-dataset" / "metadata.csv"
    table = pd.read_csv(path, dtype=str).rename(columns={"survival": "outcome"})
    table.drop(columns=["modality"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"unknown metadata schema.*survival.*modality"):
        data.load_cohen(tiny_data)


def test_missing_dataset_folders_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no Cohen COVID-19 collection"):
        data.load_cohen(tmp_path)
    with pytest.raises(DataError, match="no pediatric pneumonia set"):
        data.load_pneumonia(tmp_path)


def test_series_order_dated_first_then_metadata_order(tiny_data: Path) -> None:
    frontal = data.load_cohen(tiny_data)
    series = data.order_series(frontal[frontal["patient_id"] == "1"])
    assert series["filename"].tolist() == ["p1a.png", "p1b.png", "p1c.png"]
    series = data.order_series(frontal[frontal["patient_id"] == "2"])
    assert series["filename"].tolist()[-1] == "p2-undated.png"


def test_sequences_table(tiny_data: Path, caplog) -> None:
    frontal = data.load_cohen(tiny_data)
    with caplog.at_level(logging.WARNING, logger="cxrlib.data"):
        sequences = data.build_sequences(frontal, min_images=3)
    assert "left out 2 listed image(s)" in caplog.text  # the missing and the empty file
    assert sequences["patient_id"].tolist() == ["1", "2"]  # 3 unlabelled, 5 one empty file
    one = sequences.set_index("patient_id").loc["1"]
    assert one["label"] == 0 and one["survival"] == "N" and one["n_images"] == 3
    assert [Path(p).name for p in one["paths"]] == ["p1a.png", "p1b.png", "p1c.png"]
    two = sequences.set_index("patient_id").loc["2"]
    assert two["label"] == 1 and two["n_undated"] == 1
    unlabelled = data.build_sequences(frontal, min_images=3, labelled_only=False)
    assert unlabelled.set_index("patient_id").loc["3", "label"] == -1


def test_sequences_finding_conflicts_and_rows_without_a_patient(caplog) -> None:
    """A patient's finding is its most frequent one (ties: the first in sort order); a
    patient with two survival labels is skipped with a warning; a row without a patient
    id belongs to nobody."""
    nan = float("nan")
    images = pd.DataFrame({
        "patient_id": ["10", "10", "10", "2", "2", "7", "7", None],
        "offset": [2.0, 1.0, nan, 0.0, 1.0, 0.0, 3.0, 0.0],
        "finding": ["Pneumonia", "COVID-19", "COVID-19", "SARS", "ARDS", "COVID-19", None,
                    "COVID-19"],
        "survival": ["Y", None, "Y", "N", "N", "Y", "N", "Y"],
        "path": [f"img{i}.png" for i in range(8)],
        "row": range(8),
        "exists": True,
    })
    with caplog.at_level(logging.WARNING, logger="cxrlib.data"):
        sequences = data.build_sequences(images, labelled_only=False)
    assert "patient 7 has conflicting survival labels ['Y', 'N']; skipped" in caplog.text
    assert sequences["patient_id"].tolist() == ["2", "10"]  # numeric order, 7 skipped
    two, ten = (sequences.set_index("patient_id").loc[p] for p in ("2", "10"))
    assert two["finding"] == "ARDS"  # one SARS, one ARDS: the first in sort order
    assert ten["finding"] == "COVID-19" and ten["survival"] == "Y" and ten["n_images"] == 3
    assert ten["paths"] == ["img1.png", "img0.png", "img2.png"]  # dated by offset, then undated
    assert ten["offsets"][:2] == [1.0, 2.0] and ten["n_undated"] == 1


@pytest.mark.parametrize("name,patient,subtype", [
    ("person1_bacteria_1.jpeg", "person1", "bacteria"),
    ("person1019_virus_1708.jpeg", "person1019", "virus"),
    ("IM-0115-0001.jpeg", "IM-0115", "none"),
    ("IM-0435-0001-0002.jpeg", "IM-0435", "none"),
    ("NORMAL2-IM-0383-0001.jpeg", "NORMAL2-IM-0383", "none"),
    ("scan.jpeg", None, None),
])
def test_pediatric_names(name: str, patient: str | None, subtype: str | None) -> None:
    assert data.parse_pneumonia_name(name) == (patient, subtype)


def test_pediatric_table(tiny_data: Path, caplog) -> None:
    folder = tiny_data / "chest-xray-pneumonia" / "chest_xray" / "train" / "NORMAL"
    (folder / "notes.txt").write_text("x")
    write_gray(folder / "odd-name.jpeg", value=99)
    with caplog.at_level(logging.WARNING, logger="cxrlib.data"):
        table = data.load_pneumonia(tiny_data)
    assert "1 pediatric file name(s) in no known pattern" in caplog.text
    assert "left out 1 non-image file(s)" in caplog.text
    assert table.groupby("class").size().to_dict() == {"normal": 4, "pneumonia": 3}
    assert table["patient_id"].nunique() == 6  # person1 has two images
    assert set(table["subtype"]) == {"bacteria", "virus", "none"}


def test_a_pediatric_copy_under_another_name_is_one_image_of_one_patient(
        tiny_data: Path, caplog) -> None:
    folder = tiny_data / "chest-xray-pneumonia" / "chest_xray" / "train" / "NORMAL"
    (folder / "IM-0009-0001.jpeg").write_bytes((folder / "IM-0001-0001.jpeg").read_bytes())
    with caplog.at_level(logging.WARNING, logger="cxrlib.data"):
        table = data.load_pneumonia(tiny_data)
    assert "pediatric: 1 patient id(s) list the same image(s)" in caplog.text
    assert "ped:IM-0009 -> ped:IM-0001" in caplog.text
    assert "1 listed row(s) repeat an earlier row's image" in caplog.text
    assert len(table) == 6 and table["content"].is_unique
    assert table["patient_id"].nunique() == 5 and table["patient_id_listed"].nunique() == 5


def test_summary_counts(tiny_data: Path) -> None:
    summary = data.summary(tiny_data)
    cohen = summary["cohen"]
    assert cohen["rows"] == 13 and cohen["listed_but_missing"] == 1 and cohen["empty_files"] == 1
    assert cohen["patients_with_3plus_frontal_and_label"] == 2
    assert cohen["deaths_among_them"] == 1
    assert summary["pneumonia"]["classes"] == {"normal": 3, "pneumonia": 3}
    json.dumps(summary)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
def test_summary_agrees_with_pandas_on_the_real_metadata() -> None:
    """The counts of `cxr data summary` equal a direct pandas count on the raw file."""
    summary = data.summary(SHARED_DATA)["cohen"]
    raw = pd.read_csv(SHARED_DATA / data.COHEN_DIR / "metadata.csv")
    assert summary["rows"] == len(raw)
    assert summary["findings"] == raw["finding"].value_counts().to_dict()
    assert summary["views"] == raw["view"].value_counts().to_dict()
    frontal = raw[(raw["modality"] == "X-ray") & raw["view"].isin(data.FRONTAL_VIEWS)]
    assert summary["frontal_xray_rows"] == len(frontal)
    frontal = frontal.assign(patientid=frontal["patientid"].astype(str).replace(
        {"339": "285", "340": "287",  # the ids that list the same files
         "178": "97", "201": "78"}))  # and the same X-rays saved again
    frontal = frontal.drop_duplicates(["folder", "filename"])
    # six frontal files are another one saved again (test_duplicates names them)
    assert summary["frontal_xray_images"] == len(frontal) - 6
    labelled = frontal[frontal["survival"].isin(["Y", "N"])]
    counts = labelled.groupby("patientid").size()
    cohort = counts[counts >= 3].index
    assert summary["patients_with_3plus_frontal_and_label"] == len(cohort)
    deaths = labelled[labelled["patientid"].isin(cohort)].groupby("patientid")["survival"].first()
    assert summary["deaths_among_them"] == int((deaths == "N").sum())
    images = SHARED_DATA / data.COHEN_DIR
    missing = sum(not (images / f / n).is_file() for f, n in zip(raw["folder"], raw["filename"]))
    assert summary["listed_but_missing"] == missing


def test_drop_undecodable_logs_and_counts(tiny_data: Path, caplog) -> None:
    frontal = data.load_cohen(tiny_data)
    usable = frontal[frontal["exists"]].copy()
    broken = tiny_data / "covid-chestxray-dataset" / "images" / "p1b.png"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated PNG: exists, not empty
    with caplog.at_level(logging.WARNING, logger="cxrlib.data"):
        kept = data.drop_undecodable(usable, "frontal X-ray")
    assert len(kept) == len(usable) - 1 and str(broken) not in set(kept["path"])
    assert "left out 1 frontal X-ray file(s) that do not decode" in caplog.text
    assert "p1b.png" in caplog.text


def _list_again(tiny_data: Path, rows: list[str]) -> None:
    """Append metadata rows (2020 schema) that point at files already listed."""
    path = tiny_data / "covid-chestxray-dataset" / "metadata.csv"
    path.write_text(path.read_text() + "\n".join(rows) + "\n")


def _row(pid: str, offset: str, survival: str, view: str, name: str) -> str:
    return (f'{pid},{offset},M,50,"COVID-19",{survival},,,,,,,,,,,,{view},X-ray,'
            f'2020,,images,{name},,,,,,')


def test_ids_listing_the_same_images_become_one_patient(tiny_data: Path, caplog) -> None:
    """As patients 285 and 339 of the June 2020 snapshot: one person listed twice."""
    _list_again(tiny_data, [_row("339", "0", "N", "PA", "p1a.png"),
                            _row("339", "2", "N", "AP Supine", "p1b.png"),
                            _row("339", "5", "N", "PA", "p1c.png"),
                            _row("311a", "9", "N", "PA", "p1c.png")])
    with caplog.at_level(logging.WARNING, logger="cxrlib.data"):
        frontal = data.load_cohen(tiny_data)
    assert "2 patient id(s) list the same image(s) as another id and were merged: " \
           "339 -> 1, 311a -> 1" in caplog.text  # numbers first
    assert "4 listed row(s) repeat an earlier row's image" in caplog.text
    assert frontal["content"].is_unique
    assert (frontal["patient_id"] == "1").sum() == 3  # one image counted once
    listed = data.load_cohen(tiny_data, unique=False)
    assert set(listed.loc[listed["patient_id_listed"] == "311a", "patient_id"]) == {"1"}
    merged = data.merged_patients(data.load_cohen(tiny_data, None, None, unique=False))
    assert merged.to_dict("records") == [
        {"patient_id": "1", "listed_ids": "1, 339, 311a", "shared_images": 3, "rows": 8}]
    sequences = data.build_sequences(frontal, min_images=3)
    assert sequences["patient_id"].tolist() == ["1", "2"]
    assert sequences.set_index("patient_id").loc["1", "n_images"] == 3
    summary = data.summary(tiny_data)["cohen"]
    assert summary["duplicate_patient_ids_merged"] == {"1": "1, 339, 311a"}
    assert summary["duplicate_rows_counted_once"] == 4
    assert summary["of_which_the_same_picture_saved_again"] == 0  # the same files each time
    assert summary["patients_listed"] == 7 and summary["patients"] == 5
    assert summary["patients_with_3plus_frontal_and_label"] == 2
    assert summary["frontal_xray_rows"] == summary["frontal_xray_images"] + 4


def test_the_same_xray_saved_again_under_another_id_is_one_image_of_one_patient(
        tiny_data: Path, caplog) -> None:
    """As 97/178 of the June 2020 snapshot: an id without an outcome lists re-encoded
    copies of another id's X-rays. One person, its images once, its label kept."""
    from PIL import Image

    images = tiny_data / "covid-chestxray-dataset" / "images"
    rng = np.random.default_rng(3)
    rows_again, rows_first = [], []
    for day in range(3):
        xray = Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)).resize((256, 256))
        xray.save(images / f"x{day}.png")
        xray.save(images / f"x{day}-again.jpg", quality=95)
        rows_again.append(_row("60", str(day), "", "PA", f"x{day}-again.jpg"))
        rows_first.append(_row("50", str(day), "N", "PA", f"x{day}.png"))
    _list_again(tiny_data, rows_again + rows_first)
    with caplog.at_level(logging.WARNING, logger="cxrlib.data"):
        frontal = data.load_cohen(tiny_data)
    assert "3 file(s) hold the same picture as another file" in caplog.text
    assert "merged: 60 -> 50" in caplog.text
    ours = frontal[frontal["patient_id"] == "50"]
    assert len(ours) == 3 and ours["path"].str.endswith("-again.jpg").all()  # first listed
    assert (ours["survival"] == "N").all() and ours["survival_listed"].isna().all()
    sequences = data.build_sequences(frontal, min_images=3).set_index("patient_id")
    assert sequences.loc["50", "n_images"] == 3 and sequences.loc["50", "label"] == 0
    effect = data.identity_effect(tiny_data)
    assert effect.loc["as listed", "patients"] == effect.loc["each person once, each image once",
                                                             "patients"]  # 60 had no outcome
    summary = data.summary(tiny_data)["cohen"]
    assert summary["of_which_the_same_picture_saved_again"] == 3
    assert summary["duplicate_patient_ids_merged"] == {"50": "50, 60"}


def test_rows_without_a_file_name_never_link_patients(tiny_data: Path) -> None:
    _list_again(tiny_data, [_row("8", "0", "Y", "PA", ""), _row("9", "0", "Y", "PA", "")])
    table = data.load_cohen(tiny_data)
    assert {"8", "9"} <= set(table["patient_id"])


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data not present")
def test_the_real_snapshot_lists_four_people_twice() -> None:
    summary = data.summary(SHARED_DATA)["cohen"]
    assert summary["duplicate_patient_ids_merged"] == {
        "78": "78, 201", "97": "97, 178", "285": "285, 339", "287": "287, 340"}
    assert summary["of_which_the_same_picture_saved_again"] == 7  # test_duplicates names them
    assert summary["patients_with_3plus_frontal_and_label"] == 32
    assert summary["deaths_among_them"] == 7
    frontal = data.load_cohen(SHARED_DATA)
    covid = frontal[frontal["finding"] == "COVID-19"]
    assert covid["content"].is_unique


def test_cohen_version_names_the_metadata_file_read(tiny_data: Path) -> None:
    import hashlib

    metadata = tiny_data / data.COHEN_DIR / "metadata.csv"
    version = data.cohen_version(tiny_data)
    assert version == {"snapshot": None, "commit": None, "schema": "2020-06",
                       "metadata_sha256": hashlib.sha256(metadata.read_bytes()).hexdigest()}
    assert data.summary(tiny_data)["cohen"]["metadata_sha256"] == version["metadata_sha256"]
    assert data.cohen_version(tiny_data / "elsewhere") is None and data.cohen_version(None) is None


def test_identity_effect_and_versions_tables(tiny_data: Path, tmp_path: Path) -> None:
    _list_again(tiny_data, [_row("339", "0", "N", "PA", "p1a.png"),
                            _row("339", "2", "N", "AP Supine", "p1b.png"),
                            _row("339", "5", "N", "PA", "p1c.png")])
    effect = data.identity_effect(tiny_data, min_images=3)
    assert effect["patients"].tolist() == [3, 2]  # 339 counted as a third person, then not
    assert effect["deaths"].tolist() == [2, 1]
    assert effect["frontal X-rays"].diff().iloc[1] == -3
    versions = data.cohort_by_version({"listed twice": tiny_data}, min_images=3)
    row = versions.loc["listed twice"]
    assert row["ids merged"] == "1, 339" and row["ProgNet patients"] == 2 and row["deaths"] == 1
    assert row["schema"] == "2020-06" and len(row["metadata_sha256"]) == 12
    with pytest.raises(DataError, match="no Cohen COVID-19 collection"):
        data.cohort_by_version({"empty": tmp_path / "nothing"})


def test_the_sample_lists_one_patient_twice_and_counts_it_once(sample_dir: Path) -> None:
    summary = data.summary(sample_dir)["cohen"]
    (merged, listed), = summary["duplicate_patient_ids_merged"].items()
    assert listed.split(", ")[0] == merged and len(listed.split(", ")) == 2
    effect = data.identity_effect(sample_dir)
    assert effect.loc["as listed", "patients"] == effect.loc[
        "each person once, each image once", "patients"] + 1
    assert effect.loc["each person once, each image once", "patients"] == \
        summary["patients_with_3plus_frontal_and_label"]
