"""Dataset tables: one pandas row per image, and one row per patient time series.

Two public collections, read in their original folder layouts under one ``data_dir``:

- ``covid-chestxray-dataset/`` (Cohen et al.): ``metadata.csv`` + ``images/``, in any of
  the schemas the file has had since March 2020 (``cxrlib.schemas``), normalised to one
  set of columns: ``finding`` is ``COVID-19`` whether written ``COVID-19``, ``COVID-19,
  ARDS`` or ``Pneumonia/Viral/COVID-19``.
- ``chest-xray-pneumonia/chest_xray/{train,test,val}/{NORMAL,PNEUMONIA}/`` (Kermany et
  al., children aged 1 to 5).

Files listed but absent, or empty, are kept in the tables with ``exists``/``problem`` set,
so they can be counted and reported; the functions that feed models drop them with a
logged count.

Each person once, each image once: every row carries its image's ``content`` key (SHA-256
of the file, ``cxrlib.duplicates``); patient ids listed with the same image are merged into
one (``patient_id``; the id as listed stays in ``patient_id_listed``), and a content listed
again is counted once (the first row kept, the others logged with a count). Patient ids are
strings (``311a`` is one).
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from cxrlib import duplicates, io, schemas
from cxrlib.errors import DataError

log = logging.getLogger(__name__)

COHEN_DIR = "covid-chestxray-dataset"
PNEUMONIA_DIR = "chest-xray-pneumonia"
FRONTAL_VIEWS = ("PA", "AP", "AP Supine", "AP Erect")
XRAY = "X-ray"
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
PNEUMONIA_SPLITS = ("train", "test", "val")

def cohen_dir(data_dir: str | Path) -> Path:
    """The Cohen collection folder under ``data_dir``, or a ``DataError`` if absent."""
    folder = Path(data_dir) / COHEN_DIR
    if not (folder / "metadata.csv").is_file():
        raise DataError(
            f"no Cohen COVID-19 collection under {Path(data_dir)}: expected "
            f"{folder / 'metadata.csv'} (get it with `cxr data download --dataset cohen`, "
            f"or `cxr data sample` for synthetic sample data)")
    return folder


def pneumonia_dir(data_dir: str | Path) -> Path:
    """The pediatric set's ``chest_xray`` folder under ``data_dir``, or a ``DataError``."""
    folder = Path(data_dir) / PNEUMONIA_DIR / "chest_xray"
    if not folder.is_dir():
        raise DataError(
            f"no pediatric pneumonia set under {Path(data_dir)}: expected the folder "
            f"{folder} with train/NORMAL and train/PNEUMONIA (get it with "
            f"`cxr data download --dataset pneumonia`)")
    return folder


def read_cohen_metadata(data_dir: str | Path) -> tuple[pd.DataFrame, str]:
    """Read ``metadata.csv`` in any schema of ``cxrlib.schemas``, normalised to canonical
    column names (``patientid``, ``offset``, ``finding``, ``survival``, ``view``,
    ``modality``, ``folder``, ``filename``, ...); return it and the schema's name.

    The first schema had no ``modality`` column (a CT was a row with view ``CT``) and no
    ``folder`` (every file in ``images/``): both are filled in. An unknown header is a
    ``DataError`` in one line naming the columns found and the schemas known."""
    path = cohen_dir(data_dir) / "metadata.csv"
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    schema = schemas.recognise(raw.columns, str(path))
    table = raw.rename(columns=schemas.canonical_columns(raw.columns))
    table = table.loc[:, ~table.columns.duplicated()]
    if "modality" not in table:
        is_ct = table["view"].str.strip().str.upper() == "CT"
        table["modality"] = np.where(is_ct, "CT", XRAY)
    if "folder" not in table:
        table["folder"] = "images"
    return table, schema.name


def metadata_sha256(data_dir: str | Path) -> str:
    """SHA-256 of the Cohen ``metadata.csv``: which version of the collection was read."""
    return io.sha256_file(cohen_dir(data_dir) / "metadata.csv")


def cohen_version(data_dir: str | Path | None) -> dict | None:
    """Which Cohen collection ``data_dir`` holds: ``snapshot`` (a name of
    ``cxrlib.schemas.SNAPSHOTS``, from the install record ``cxr data download`` writes or
    from the metadata file's hash; None when neither names one), ``commit`` (when
    recorded), ``metadata_sha256`` and ``schema``. None when there is no collection."""
    if data_dir is None:
        return None
    try:
        _, schema = read_cohen_metadata(data_dir)
    except DataError:
        return None
    digest = metadata_sha256(data_dir)
    record = _install_record(data_dir)
    return {"snapshot": record.get("snapshot") or schemas.snapshot_of_metadata(digest),
            "commit": record.get("commit"), "metadata_sha256": digest, "schema": schema}


def _install_record(data_dir: str | Path) -> dict:
    try:
        return json.loads((cohen_dir(data_dir) / schemas.INSTALL_RECORD).read_text())
    except (OSError, ValueError):
        return {}


def normalise_finding(finding: object) -> str | None:
    """``COVID-19`` for any spelling the collection used; other findings by their leaf name."""
    if not isinstance(finding, str) or not finding.strip():
        return None
    parts = [p.strip() for p in re.split(r"[/,]", finding) if p.strip()]
    if any(p.upper() == "COVID-19" for p in parts):
        return "COVID-19"
    return parts[-1]


def load_cohen(
    data_dir: str | Path,
    modality: str | None = XRAY,
    views: Iterable[str] | None = FRONTAL_VIEWS,
    unique: bool = True,
) -> pd.DataFrame:
    """One row per image of the Cohen collection, filtered by modality and view.

    Columns: ``patient_id`` (merged over shared images), ``patient_id_listed``, ``offset``
    (days, NaN when unknown), ``finding`` (normalised: ``COVID-19`` whatever the schema),
    ``finding_raw``, ``survival`` (``Y``/``N``/NA), ``view``, ``modality``, ``sex``, ``age``,
    ``survival_listed`` (before a merged patient's label is shared by its rows),
    ``filename``, ``path``, ``content`` (the image), ``file_key`` (the file: its SHA-256),
    ``exists``, ``problem`` (``missing``/``empty
    file``/NA) and ``row`` (position in metadata.csv). ``modality=None`` or ``views=None``
    keeps everything; ``unique=False`` keeps rows that repeat an earlier row's image.
    Ids are merged over the whole file, before filtering: one shared image of any view or
    modality makes two ids one person.
    """
    folder = cohen_dir(data_dir)
    table, _ = read_cohen_metadata(data_dir)
    subfolder = table["folder"].fillna("images") if "folder" in table else "images"
    paths = [str(folder / sub / name) if isinstance(name, str) else ""
             for sub, name in zip(pd.Series(subfolder, index=table.index), table["filename"])]
    survival = table["survival"].str.strip().str.upper()
    images = pd.DataFrame({
        "patient_id": table["patientid"].str.strip(),
        "offset": pd.to_numeric(table["offset"], errors="coerce"),
        "finding": table["finding"].map(normalise_finding),
        "finding_raw": table["finding"],
        "survival": survival.where(survival.isin(["Y", "N"])),
        "view": table["view"].str.strip(),
        "modality": table["modality"].str.strip(),
        "sex": table.get("sex"),
        "age": pd.to_numeric(table.get("age"), errors="coerce"),
        "filename": table["filename"],
        "path": paths,
        "row": np.arange(len(table)),
    })
    images = merge_shared_patients(images, "Cohen")
    if modality is not None:
        images = images[images["modality"] == modality]
    if views is not None:
        images = images[images["view"].isin(list(views))]
    if unique:
        images = keep_each_image_once(images, "Cohen")
    images = images.reset_index(drop=True)
    images["problem"] = [_file_problem(p) for p in images["path"]]
    images["exists"] = images["problem"].isna()
    return images


def merge_shared_patients(images: pd.DataFrame, what: str) -> pd.DataFrame:
    """Add ``content``, ``file_key`` and ``patient_id_listed``; give patients who share an
    image one id.

    ``content`` is the file's SHA-256, shared by files that hold the same picture
    (``duplicates.same_picture_keys``). Rows without a file name get a key of their own
    (``row:<n>``), so they never link two patients. The merge is logged with the ids it
    joined; a merged patient's rows without a survival label take the label of its other
    rows when they agree (the label belongs to the person, not to one listing), and
    ``survival_listed`` keeps the label as listed."""
    keys = duplicates.content_keys(images["path"])
    files = [k if k is not None else f"row:{i}" for i, k in enumerate(keys)]
    content = duplicates.same_picture_keys(images["path"].tolist(), files)
    images = images.assign(content=content, file_key=files, patient_id_listed=images["patient_id"])
    copies = resaved_files(images)
    if copies:
        log.warning("%s: %d file(s) hold the same picture as another file (within %d of 256 "
                    "difference-hash bits: saved again) and count as that image",
                    what, copies, duplicates.SAME_PICTURE_BITS)
    listed = images["patient_id"].notna()
    merged = duplicates.merge_ids(images.loc[listed, "patient_id"].astype(str),
                                  images.loc[listed, "content"].tolist())
    if merged:
        log.warning("%s: %d patient id(s) list the same image(s) as another id and were "
                    "merged: %s", what, len(merged),
                    ", ".join(f"{a} -> {b}" for a, b in sorted(
                        merged.items(), key=lambda kv: duplicates.natural_key(kv[0]))))
        images["patient_id"] = images["patient_id"].map(
            lambda p: merged.get(p, p) if isinstance(p, str) else p)
    if "survival" in images:
        images["survival_listed"] = images["survival"]
        if merged:
            images["survival"] = _label_merged_patients(images, set(merged.values()))
    return images


def _label_merged_patients(images: pd.DataFrame, merged: set[str]) -> pd.Series:
    """``survival`` with the unlabelled rows of each merged patient given the patient's one
    label; a patient whose rows disagree keeps them as they are (``build_sequences`` then
    skips it with a warning)."""
    survival = images["survival"].copy()
    of_merged = images["patient_id"].isin(merged)
    labels = images[of_merged].groupby("patient_id")["survival"].agg(
        lambda s: s.dropna().unique())
    one = {p: v[0] for p, v in labels.items() if len(v) == 1}
    fill = of_merged & survival.isna() & images["patient_id"].isin(one)
    survival[fill] = images.loc[fill, "patient_id"].map(one)
    return survival


def resaved_files(images: pd.DataFrame) -> int:
    """How many files hold the same picture as another file with other bytes (each counted
    as that image: ``duplicates.same_picture_keys``)."""
    return int(images.groupby("content")["file_key"].nunique().sub(1).sum())


def keep_each_image_once(images: pd.DataFrame, what: str) -> pd.DataFrame:
    """The first row of each ``content``; the repeats are left out with a logged count."""
    repeated = images["content"].duplicated()
    if repeated.any():
        log.warning("%s: %d listed row(s) repeat an earlier row's image (the same file or "
                    "the same picture saved again) and are counted once", what, int(repeated.sum()))
    return images[~repeated]


def merged_patients(images: pd.DataFrame) -> pd.DataFrame:
    """One row per merged patient: ``patient_id``, ``listed_ids`` (the ids in the metadata),
    ``shared_images`` (images listed under more than one of them) and ``rows``. ``images``
    is a table of ``load_cohen(..., unique=False)``."""
    columns = ["patient_id", "listed_ids", "shared_images", "rows"]
    rows = []
    for patient, group in images.groupby("patient_id", sort=False):
        listed = sorted(set(group["patient_id_listed"].astype(str)), key=duplicates.natural_key)
        if len(listed) < 2:
            continue
        ids_per_image = group.groupby("content")["patient_id_listed"].nunique()
        rows.append({"patient_id": patient, "listed_ids": ", ".join(listed),
                     "shared_images": int((ids_per_image > 1).sum()), "rows": len(group)})
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("patient_id", key=_natural_key).reset_index(drop=True)


def _file_problem(path: str) -> str | None:
    """A cheap check (no decoding): ``missing``, ``empty file`` or ``None``."""
    file = Path(path)
    if not path or not file.is_file():
        return "missing"
    if file.stat().st_size == 0:
        return "empty file"
    return None


def order_series(images: pd.DataFrame) -> pd.DataFrame:
    """A patient's images in time order.

    Images with an offset come first, sorted by offset; images without one keep their
    ``metadata.csv`` order and come after the dated ones (we cannot place them in time,
    and the collection adds later follow-ups further down the file).
    """
    return images.assign(_undated=images["offset"].isna()).sort_values(
        ["_undated", "offset", "row"], kind="stable").drop(columns="_undated")


def build_sequences(
    images: pd.DataFrame,
    min_images: int = 1,
    labelled_only: bool = True,
) -> pd.DataFrame:
    """One row per patient: the time series of readable images and the survival label.

    Columns: ``patient_id``, ``n_images``, ``survival`` (Y/N), ``label`` (1 = survived,
    0 = died: our positive class; the paper never names its own), ``finding``, ``paths``,
    ``offsets`` and ``contents`` (lists in time order; ``contents`` only when ``images``
    has a ``content`` column), ``n_undated``. Files that are missing or empty are
    left out with a logged count; patients with fewer than ``min_images`` readable images
    (or without a label, when ``labelled_only``) are dropped.
    """
    usable = images[images["exists"]]
    dropped = len(images) - len(usable)
    if dropped:
        log.warning("left out %d listed image(s) whose file is missing or empty", dropped)
    if labelled_only:
        usable = usable[usable["survival"].notna()]
    ordered = order_series(usable)
    positions: dict = {}  # patient id -> row positions, patients in the order first seen
    for position, patient_id in enumerate(ordered["patient_id"].tolist()):
        if pd.notna(patient_id):  # as groupby: rows without a patient id are left out
            positions.setdefault(patient_id, []).append(position)
    survivals, findings = ordered["survival"].tolist(), ordered["finding"].tolist()
    paths, offsets = ordered["path"].tolist(), ordered["offset"].tolist()
    contents = ordered["content"].tolist() if "content" in ordered else None
    rows = []
    for patient_id, where in positions.items():
        labels = list(dict.fromkeys(survivals[i] for i in where if pd.notna(survivals[i])))
        if len(labels) > 1:
            log.warning("patient %s has conflicting survival labels %s; skipped",
                        patient_id, labels)
            continue
        survival = labels[0] if labels else None
        named = Counter(findings[i] for i in where if pd.notna(findings[i]))
        rows.append({
            "patient_id": patient_id,
            "n_images": len(where),
            "survival": survival,
            "label": {"Y": 1, "N": 0}.get(survival, -1),
            # the most frequent finding; of equally frequent ones the first in sort order
            "finding": min(named, key=lambda f: (-named[f], f)) if named else None,
            "paths": [paths[i] for i in where],
            "offsets": [offsets[i] for i in where],
            "n_undated": sum(bool(pd.isna(offsets[i])) for i in where),
            **({"contents": [contents[i] for i in where]} if contents is not None else {}),
        })
    columns = ["patient_id", "n_images", "survival", "label", "finding", "paths", "offsets",
               "n_undated"] + (["contents"] if contents is not None else [])
    sequences = pd.DataFrame(rows, columns=columns)
    sequences = sequences[sequences["n_images"] >= min_images]
    return sequences.sort_values("patient_id", key=_natural_key).reset_index(drop=True)


def _natural_key(ids: pd.Series) -> pd.Series:
    """Sort patient ids numerically where they are numbers ('2' before '10')."""
    return ids.map(duplicates.natural_key)


# The pediatric set names files personNNN_bacteria_MMM.jpeg, personNNN_virus_MMM.jpeg,
# IM-XXXX-YYYY.jpeg, IM-XXXX-YYYY-ZZZZ.jpeg and NORMAL2-IM-XXXX-YYYY.jpeg.
PERSON_NAME = re.compile(r"^(person\d+)_(bacteria|virus)_\d+", re.IGNORECASE)
IM_NAME = re.compile(r"^((?:NORMAL2-)?IM-\d+)-\d+", re.IGNORECASE)


def parse_pneumonia_name(filename: str) -> tuple[str | None, str | None]:
    """(patient id, subtype) from a pediatric file name; (None, None) if unknown."""
    stem = Path(filename).stem
    if match := PERSON_NAME.match(stem):
        return match.group(1), match.group(2).lower()
    if match := IM_NAME.match(stem):
        return match.group(1), "none"
    return None, None


def load_pneumonia(data_dir: str | Path, splits: Iterable[str] = PNEUMONIA_SPLITS) -> pd.DataFrame:
    """One row per image of the pediatric set.

    Columns: ``split``, ``class`` (``normal``/``pneumonia``), ``subtype``
    (``bacteria``/``virus``/``none``), ``patient_id`` (parsed from the file name; a name in
    no known pattern becomes its own patient, with a logged count; merged with any patient
    holding the same image), ``patient_id_listed``, ``filename``, ``path``, ``content``,
    ``exists``, ``problem``. A file whose content repeats an earlier file's counts once. Files that are not images by their suffix are counted and
    left out.
    """
    root = pneumonia_dir(data_dir)
    rows, unknown_names, not_images = [], 0, 0
    for split in splits:
        for folder, label in (("NORMAL", "normal"), ("PNEUMONIA", "pneumonia")):
            directory = root / split / folder
            if not directory.is_dir():
                continue
            for file in sorted(directory.iterdir()):
                if file.name.startswith("."):
                    continue
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    not_images += 1
                    continue
                patient, subtype = parse_pneumonia_name(file.name)
                if patient is None:
                    unknown_names += 1
                    patient, subtype = f"file:{file.stem}", "none" if label == "normal" else None
                rows.append({"split": split, "class": label, "subtype": subtype,
                             "patient_id": f"ped:{patient}", "filename": file.name,
                             "path": str(file)})
    if unknown_names:
        log.warning("%d pediatric file name(s) in no known pattern: each treated as its "
                    "own patient", unknown_names)
    if not_images:
        log.warning("left out %d non-image file(s) in the pediatric folders", not_images)
    table = pd.DataFrame(rows, columns=["split", "class", "subtype", "patient_id",
                                        "filename", "path"])
    if table.empty:
        raise DataError(f"{root}: no images in {{train,test,val}}/{{NORMAL,PNEUMONIA}}")
    table = keep_each_image_once(merge_shared_patients(table, "pediatric"), "pediatric")
    table = table.reset_index(drop=True)
    table["problem"] = [_file_problem(p) for p in table["path"]]
    table["exists"] = table["problem"].isna()
    return table


def summary(data_dir: str | Path, min_images: int = 3) -> dict:
    """Counts per dataset, as ``cxr data summary`` prints them (plain JSON types).

    Cohen: rows, images per finding / view / modality, patients (as listed, and after
    merging ids that share an image: ``duplicate_patient_ids_merged`` maps each merged id to
    the ids listed, ``duplicate_rows_counted_once`` counts rows repeating an image),
    listed-but-missing files, and the ProgNet cohort (patients with >= ``min_images`` frontal X-rays and a survival
    label, and the deaths among them). Pediatric: images per split and class, subtypes,
    patients. A dataset that is absent is reported as ``None``.
    """
    out: dict = {"data_dir": str(data_dir)}
    try:
        table, schema = read_cohen_metadata(data_dir)
    except DataError as err:
        out["cohen"] = None
        out["cohen_error"] = str(err)
    else:
        out["cohen"] = _cohen_summary(data_dir, table, min_images)
    try:
        pediatric = load_pneumonia(data_dir)
    except DataError as err:
        out["pneumonia"] = None
        out["pneumonia_error"] = str(err)
    else:
        out["pneumonia"] = _pneumonia_summary(pediatric)
    return out


def _cohen_summary(data_dir: str | Path, table: pd.DataFrame, min_images: int) -> dict:
    """The Cohen part of ``summary``: ``table`` is ``metadata.csv`` as listed; patients and
    images are counted both as listed and with each person and each image once."""
    everything = load_cohen(data_dir, modality=None, views=None, unique=False)
    frontal_rows = everything[(everything["modality"] == XRAY)
                              & everything["view"].isin(FRONTAL_VIEWS)]
    frontal = frontal_rows[~frontal_rows["content"].duplicated()]
    cohort = _prognet_cohort_counts(frontal, min_images)
    merged = merged_patients(everything)
    return {
        **{k: v for k, v in (cohen_version(data_dir) or {}).items()},
        "rows": len(table),
        "patients_listed": int(everything["patient_id_listed"].nunique()),
        "patients": int(everything["patient_id"].nunique()),
        "duplicate_patient_ids_merged": {
            row.patient_id: row.listed_ids for row in merged.itertuples()},
        "duplicate_rows_counted_once": int(everything["content"].duplicated().sum()),
        "of_which_the_same_picture_saved_again": resaved_files(everything),
        **_near_duplicate_counts(everything),
        "findings": _counts(table["finding"]),
        "views": _counts(table["view"]),
        "modalities": _counts(table["modality"]),
        "survival": _counts(table["survival"]),
        "frontal_xray_rows": len(frontal_rows),
        "frontal_xray_images": len(frontal),
        "covid19_frontal_xray_images": int((frontal["finding"] == "COVID-19").sum()),
        "listed_but_missing": int((everything["problem"] == "missing").sum()),
        "empty_files": int((everything["problem"] == "empty file").sum()),
        **cohort,
    }


def _prognet_cohort_counts(frontal: pd.DataFrame, min_images: int) -> dict[str, int]:
    """The ProgNet cohort among ``frontal`` X-rays (each image once): patients with
    >= ``min_images`` of them and a survival label, the deaths among those patients, and
    the patients with that many readable ones."""
    listed = frontal[frontal["survival"].notna()]
    per_patient = listed.groupby("patient_id").size()
    cohort = per_patient[per_patient >= min_images].index
    usable = frontal[frontal["exists"] & frontal["survival"].notna()]
    usable_counts = usable.groupby("patient_id").size()
    usable_cohort = usable_counts[usable_counts >= min_images].index
    survival_of = listed.groupby("patient_id")["survival"].first()
    return {
        f"patients_with_{min_images}plus_frontal_and_label": len(cohort),
        "deaths_among_them": int((survival_of.loc[cohort] == "N").sum()),
        f"patients_with_{min_images}plus_readable_frontal_and_label": len(usable_cohort),
    }


def _pneumonia_summary(pediatric: pd.DataFrame) -> dict:
    """The pediatric part of ``summary`` from ``load_pneumonia``'s table: images per split
    and class, subtypes, patients (merged and as listed) and files missing or empty."""
    return {
        "images": len(pediatric),
        "by_split_and_class": {
            f"{split}/{label}": int(n)
            for (split, label), n in pediatric.groupby(["split", "class"]).size().items()},
        "classes": _counts(pediatric["class"]),
        "subtypes": _counts(pediatric["subtype"]),
        "patients": int(pediatric["patient_id"].nunique()),
        "patients_listed": int(pediatric["patient_id_listed"].nunique()),
        "missing_or_empty": int((~pediatric["exists"]).sum()),
    }


def identity_effect(data_dir: str | Path, min_images: int = 3) -> pd.DataFrame:
    """The ProgNet cohort and the frontal X-rays counted two ways: as ``metadata.csv``
    lists them (every id a person, every row an image) and with each person and each image
    once (the tables this project uses). One row each: ``patients``, ``deaths``,
    ``frontal X-rays``, ``COVID-19 frontal X-rays``."""
    listed = load_cohen(data_dir, unique=False)
    ways = {"as listed": listed.assign(patient_id=listed["patient_id_listed"],
                                       survival=listed["survival_listed"]),
            "each person once, each image once": keep_each_image_once(listed, "Cohen")}
    rows = []
    for name, images in ways.items():
        cohort = _prognet_cohort_counts(images, min_images)
        rows.append({"counted": name,
                     "patients": cohort[f"patients_with_{min_images}plus_frontal_and_label"],
                     "deaths": cohort["deaths_among_them"],
                     "frontal X-rays": len(images),
                     "COVID-19 frontal X-rays": int((images["finding"] == "COVID-19").sum())})
    return pd.DataFrame(rows).set_index("counted")


VERSION_KEYS = ("snapshot", "schema", "metadata_sha256", "rows", "patients_listed", "patients",
                "duplicate_rows_counted_once", "frontal_xray_images")


def cohort_by_version(folders: Mapping[str, str | Path], min_images: int = 3) -> pd.DataFrame:
    """One row per copy of the collection (``{name: data folder}``): its snapshot, schema,
    metadata hash, size, merged ids and ProgNet cohort, from ``summary``; how the cohort
    changes from one version to the next. A folder without a collection is a ``DataError``."""
    rows = {}
    for name, folder in folders.items():
        cohen_dir(folder)
        block = summary(folder, min_images=min_images)["cohen"]
        rows[name] = {**{k: block[k] for k in VERSION_KEYS},
                      "metadata_sha256": block["metadata_sha256"][:12],
                      "ids merged": "; ".join(block["duplicate_patient_ids_merged"].values()),
                      "ProgNet patients": block[f"patients_with_{min_images}plus_frontal_and_label"],
                      "deaths": block["deaths_among_them"]}
    return pd.DataFrame.from_dict(rows, orient="index")


def _near_duplicate_counts(images: pd.DataFrame) -> dict[str, int]:
    """How many pairs of different files hold nearly the same picture (listed, not merged)."""
    pairs = duplicates.near_duplicates(images[images["exists"]])
    return {"near_duplicate_pairs": len(pairs),
            "near_duplicate_pairs_across_patients": int((~pairs["same_patient"]).sum())}


def _counts(values: pd.Series) -> dict[str, int]:
    """Value counts as a plain dict, missing values under ``"<missing>"``."""
    counts = values.fillna("<missing>").value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def drop_undecodable(table: pd.DataFrame, what: str = "image") -> pd.DataFrame:
    """Rows whose file decodes; the others are logged with a count and left out.

    The tables' cheap checks (``exists``, ``problem``) do not open the files; this one
    decodes each, so run it on the rows an experiment will actually use.
    """
    from cxrlib.images import image_problem

    problems = table["path"].map(image_problem)
    bad = problems.notna()
    if bad.any():
        log.warning("left out %d %s file(s) that do not decode: %s", int(bad.sum()), what,
                    "; ".join(f"{p}: {r}" for p, r in zip(table.loc[bad, "path"][:5],
                                                          problems[bad][:5])))
    return table[~bad]


def class_examples(frontal: pd.DataFrame, pediatric: pd.DataFrame, n: int,
                   seed: int = 0) -> pd.DataFrame:
    """``n`` readable images of each detector class (COVID-19 from the Cohen table,
    pneumonia and normal from the pediatric one), drawn with ``seed``: ``path``, ``label``."""
    covid = frontal[frontal["exists"] & (frontal["finding"] == "COVID-19")]
    parts = [(covid, "COVID-19 (Cohen, adults)")] + [
        (pediatric[pediatric["exists"] & (pediatric["class"] == c)], f"{c} (pediatric)")
        for c in ("pneumonia", "normal")]
    return pd.concat([pd.DataFrame({"path": rows.sample(frac=1, random_state=seed)["path"].head(n),
                                    "label": label}) for rows, label in parts], ignore_index=True)


def sizes_by_source(frontal: pd.DataFrame, pediatric: pd.DataFrame) -> pd.DataFrame:
    """Width, height, mode and format of every readable file, with its ``source``."""
    from cxrlib.images import read_sizes

    return pd.concat([
        pd.DataFrame(read_sizes(frontal.loc[frontal["exists"], "path"])).assign(source="Cohen (adults)"),
        pd.DataFrame(read_sizes(pediatric.loc[pediatric["exists"], "path"])).assign(source="pediatric"),
    ], ignore_index=True)
