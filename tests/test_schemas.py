"""Every metadata.csv schema of the Cohen collection gives the same cohort.

Each test writes a small metadata.csv in one schema's own header (stray spaces, the
missing modality column, CT as a view, path-like findings, blank offsets) and reads it
back through ``cxrlib.data``.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cxrlib import data, schemas
from cxrlib.errors import DataError
from conftest import write_gray

# patient, offset, finding (one name), survival, view, is CT, file
RECORDS = [
    ("1", "0", "COVID-19", "N", "PA", False, "a0.png"),
    ("1", "", "COVID-19", "N", "AP", False, "a9.png"),  # undated: goes last
    ("1", "3", "COVID-19, ARDS", "N", "AP Supine", False, "a3.png"),
    ("2", "1", "SARS", "Y", "PA", False, "b1.png"),
    ("2", "4", "SARS", "Y", "PA", False, "b4.png"),
    ("2", "6", "SARS", "Y", "AP", False, "b6.png"),
    ("2", "6", "SARS", "Y", "Axial", True, "b6-ct.png"),
    ("3", "0", "COVID-19", "Y", "PA", False, "c0.png"),
    ("3", "0", "COVID-19", "Y", "L", False, "c0-lateral.png"),
]
PATHS = {"COVID-19": "Pneumonia/Viral/COVID-19", "COVID-19, ARDS": "Pneumonia/Viral/COVID-19",
         "SARS": "Pneumonia/Viral/SARS"}


def write_metadata(root: Path, schema: schemas.Schema) -> Path:
    """RECORDS as ``schema`` would have listed them, with one image file per row."""
    folder = root / data.COHEN_DIR
    columns = [schemas.canonical_columns([c])[c] for c in schema.header]
    rows = []
    for k, (pid, offset, finding, survival, view, is_ct, name) in enumerate(RECORDS):
        values = {"patientid": pid, "offset": offset, "finding": finding, "survival": survival,
                  "view": view, "modality": "CT" if is_ct else "X-ray", "folder": "images",
                  "filename": name, "rt_pcr_positive": "Y"}
        if schema.name == "2020-03":
            values["view"] = "CT" if is_ct else view
            values["offset"] = offset or " "  # blank offsets were sometimes a space
        if schema.name == "current":
            values["finding"] = PATHS[finding]
        rows.append([values.get(c, "") for c in columns])
        write_gray(folder / "images" / name, value=100 + 10 * k)
    with open(folder / "metadata.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(schema.header)
        writer.writerows(rows)
    return root


@pytest.mark.parametrize("name", list(schemas.SCHEMAS))
def test_each_schema_gives_the_same_cohort(tmp_path: Path, name: str) -> None:
    root = write_metadata(tmp_path, schemas.SCHEMAS[name])
    table, schema = data.read_cohen_metadata(root)
    assert schema == name
    assert set(table["modality"]) == {"X-ray", "CT"} and (table["folder"] == "images").all()
    frontal = data.load_cohen(root)
    assert len(frontal) == 7  # no CT, no lateral
    assert (frontal["finding"] == "COVID-19").sum() == 4
    assert set(frontal["finding"]) == {"COVID-19", "SARS"}
    sequences = data.build_sequences(frontal, min_images=3).set_index("patient_id")
    assert sequences.index.tolist() == ["1", "2"]
    assert sequences.loc["1", "label"] == 0 and sequences.loc["2", "label"] == 1
    assert [Path(p).name for p in sequences.loc["1", "paths"]] == ["a0.png", "a3.png", "a9.png"]
    assert sequences.loc["1", "n_undated"] == 1
    summary = data.summary(root)["cohen"]
    assert summary["schema"] == name and summary["snapshot"] is None
    assert summary["patients_with_3plus_frontal_and_label"] == 2
    assert summary["deaths_among_them"] == 1


def test_every_schema_is_written_once_with_where_it_was_seen() -> None:
    for schema in schemas.SCHEMAS.values():
        assert "@" in schema.seen_in and len(schema.seen_in.split("@")[1]) == 40
        assert schemas.recognise(schema.header).name == schema.name


def test_an_unknown_schema_is_one_line_with_columns_found_and_schemas_known(
        tmp_path: Path) -> None:
    root = write_metadata(tmp_path, schemas.SCHEMAS["2020-06"])
    path = root / data.COHEN_DIR / "metadata.csv"
    text = path.read_text().replace("patientid,", "subject,", 1)
    path.write_text(text)
    with pytest.raises(DataError) as err:
        data.load_cohen(root)
    message = str(err.value)
    assert "\n" not in message and "unknown metadata schema" in message
    assert "columns found: subject, offset" in message
    for name in schemas.SCHEMAS:
        assert f"{name} (since" in message


def test_header_spellings_are_recognised() -> None:
    """Stray spaces, upper case and the id header spelled apart."""
    header = list(schemas.SCHEMAS["2020-06"].header)
    assert schemas.recognise([" " + h.upper() + " " for h in header]).name == "2020-06"
    assert schemas.recognise([h if h != "patientid" else "patient id" for h in header]).name \
        == "2020-06"
