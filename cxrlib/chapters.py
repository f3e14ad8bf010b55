"""What the chapters share beyond the experiments: which runs a report chapter reads,
where each X-ray it shows comes from, and the small checks their exercises make.

* ``results_folder``: chapters 4 to 6 read the runs of one ``cxr batch`` output folder.
  Given none, they read ``results/sample`` (what ``make reproduce`` writes) or, when only
  that one exists, ``results/quick`` (the grid ``make test`` makes). With no runs at all
  the chapter stops at its first cell with one line saying what to run (``NoRuns``);
  ``finished_run`` does the same for a chapter that needs a run of one experiment.
* ``image_sources``: the collection, source and licence of each X-ray a figure shows
  (the Cohen collection's ``metadata.csv`` has a ``url`` and a ``license`` per image; the
  pediatric set has one licence for all). Images of the Cohen collection may be shown
  only with their licence named.
* ``check_explore``: chapter 1's parameters, checked as the experiments' ``Config`` checks
  theirs.
* ``leaked_patients``, ``source_from_size`` and ``heat_outside_lungs``: a split's patients
  on both sides; how well an image's width and height alone tell the two collections
  apart; how much of a Grad-CAM map lies outside the lungs (the exercises' pitfalls: a
  leaked patient, a shortcut).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from cxrlib import compare, data, download, params, splits
from cxrlib.errors import ConfigError, CxrError
from cxrlib.images import BLANK_BOX
from cxrlib.names import RUN_PREFIXES

RESULTS_VARIABLE = "CXR_RESULTS"
"""An environment variable naming the folder a report chapter reads when given none:
``make test`` points it at its quick grid, so nbval checks the chapters on that grid even
where ``make reproduce`` has written ``results/sample``."""
DEFAULT_RESULTS = ("../results/sample", "../results/quick")
"""Where a report chapter looks for runs when given none, first found first (relative to
``notebooks/``): ``make reproduce`` writes the first, ``make test`` the second."""
PEDIATRIC_SOURCE = ("Kermany et al., Mendeley Data, doi:10.17632/rscbjbr9sj.2", "CC BY 4.0")
"""(source, licence) of every image of the pediatric pneumonia set."""
NO_LICENCE = "none given in metadata.csv"
NOT_LISTED = "not listed in this data_dir's metadata.csv"


class NoRuns(CxrError):
    """No finished run where a report chapter looks; like every ``CxrError`` shown as its
    message alone (the message says what to run)."""


def has_runs(folder: str | Path) -> bool:
    """True when ``folder`` holds a finished run of either experiment (``compare.run_folders``)."""
    return any(compare.run_folders(folder, experiment) for experiment in RUN_PREFIXES)


def results_folder(results_dir: str | Path | None = None,
                   defaults: Sequence[str | Path] = DEFAULT_RESULTS) -> Path:
    """The folder of runs to read: ``results_dir``; else the folder ``RESULTS_VARIABLE``
    names, if set; else the first of ``defaults`` that holds runs. Raises ``NoRuns``
    naming the command that makes them when there are none."""
    results_dir = results_dir if results_dir is not None else os.environ.get(RESULTS_VARIABLE) or None
    candidates = [Path(results_dir)] if results_dir is not None else [Path(d) for d in defaults]
    for folder in candidates:
        if has_runs(folder):
            return folder
    where = " or ".join(str(c) for c in candidates)
    raise NoRuns(f"no finished runs in {where}: run `make reproduce` first (it writes results/sample), "
                 "or `cxr batch --out DIR` and set results_dir to DIR")


def finished_run(results: str | Path, experiment: str, wanted: str) -> Path:
    """``qualitative.find_run`` (the run asked for, else the experiment's first), or
    ``NoRuns`` when the experiment has no finished run in ``results``."""
    from cxrlib import qualitative  # here, so that chapter 1 imports no TensorFlow

    found = qualitative.find_run(results, experiment, wanted)
    if found is None:
        raise NoRuns(f"no finished {experiment} run in {results}: run `make reproduce`, or "
                     f"`cxr batch` with that experiment, and set results_dir to its --out")
    return found


def check_explore(parameters: Mapping[str, Any]) -> None:
    """Chapter 1's parameters (a dict of them, or the chapter's ``globals()``), checked:
    ``min_images`` and ``n_thumbnails`` whole numbers of at least 1 (a series of none, or a
    grid of no columns, cannot be drawn), ``snapshot_dirs`` a {name: data folder} dict.
    Else a ``ConfigError`` naming the parameter; ``runs.check_parameters`` calls it before
    a kernel starts, and the chapter's first cell again."""
    for name in ("min_images", "n_thumbnails"):
        params.check_count(name, parameters[name])
    if not isinstance(parameters["snapshot_dirs"], Mapping):
        raise ConfigError(f"snapshot_dirs={parameters['snapshot_dirs']!r} is not allowed; it must "
                          "be a dict {name: data folder}, or {}")


def image_sources(paths: Iterable[str | Path], data_dir: str | Path) -> pd.DataFrame:
    """One row per image: its file name, collection, source (the article or page it was
    taken from) and licence. Cohen images are looked up by file name in ``data_dir``'s
    ``metadata.csv``; an image it gives no licence for says so (``NO_LICENCE``), and so
    does one it does not list (``NOT_LISTED``: ``data_dir`` is not the data of the run)."""
    cohen = _cohen_sources(data_dir)
    rows = []
    for path in map(Path, paths):
        if data.PNEUMONIA_DIR in path.parts:
            rows.append((path.name, "pediatric pneumonia set", *PEDIATRIC_SOURCE))
        else:
            source, licence = cohen.get(path.name, ("", NOT_LISTED))
            rows.append((path.name, "Cohen COVID-19 collection", source or
                         download.DATASETS["cohen"].homepage, licence or NO_LICENCE))
    table = pd.DataFrame(rows, columns=["image", "collection", "source", "licence"])
    return table.drop_duplicates("image").reset_index(drop=True)


def _cohen_sources(data_dir: str | Path) -> dict[str, tuple[str, str]]:
    """{file name: (url or doi, licence)} of the Cohen collection's metadata.csv."""
    table, _ = data.read_cohen_metadata(data_dir)
    blank = pd.Series("", index=table.index)
    url = table.get("url", blank).fillna("")
    doi = ("doi:" + table.get("doi", blank).fillna("")).where(table.get("doi", blank).notna(), "")
    source = url.where(url != "", doi)
    licence = table.get("license", blank).fillna("")
    return dict(zip(table["filename"], zip(source, licence)))


def leaked_patients(patient_ids: Sequence, train: np.ndarray, test: np.ndarray) -> list[str]:
    """The patients with rows on both sides of a split (``train``, ``test``: positions)."""
    ids = pd.Series(patient_ids).astype(str).to_numpy()
    return splits.shared_patients(ids[train], ids[test])


def source_from_size(sizes: pd.DataFrame, frontal: pd.DataFrame, pediatric: pd.DataFrame,
                     seed: int = 0, n_splits: int = 5) -> pd.Series:
    """Out-of-fold accuracy of a logistic regression telling the Cohen collection from the
    pediatric set by an image's width, height and aspect ratio alone (``sizes`` as
    ``data.sizes_by_source`` gives it; folds grouped by patient), beside the majority
    class's share. Far above that share, file size is a shortcut a network can take."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    readable = sizes.dropna(subset=["width", "height"])
    patient = pd.concat([frontal.set_index("path")["patient_id"],
                         "child-" + pediatric.set_index("path")["patient_id"].astype(str)])
    groups = patient[~patient.index.duplicated()].reindex(readable["path"]).to_numpy()
    y = (readable["source"] != "pediatric").to_numpy().astype(int)
    x = np.column_stack([readable["width"], readable["height"],
                         readable["width"] / readable["height"]]).astype(float)
    folds = splits.kfold_splits(y, groups, n_splits=n_splits, seed=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    predicted = cross_val_predict(model, x, y, cv=folds)
    return pd.Series({"size classifier": float((predicted == y).mean()),
                      "majority class": float(max(y.mean(), 1 - y.mean()))}, name="accuracy")


def heat_outside_lungs(cams: Sequence[np.ndarray], titles: Sequence[str] | None = None,
                       resolution: int = 240) -> pd.DataFrame:
    """Per heat map: the share of its heat outside the lungs-and-heart box
    (``images.BLANK_BOX``, the region the shortcut audit blanks), beside the share of the
    image's area outside it, which is what an even map would give. Each map is stretched
    to ``resolution`` pixels a side (nearest cell); a blank map gets NaN."""
    top, bottom, left, right = BLANK_BOX
    rows, cols = np.mgrid[0:resolution, 0:resolution] / resolution
    outside = ~((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right))
    shares = []
    for cam in cams:
        cam = np.clip(np.asarray(cam, dtype=float), 0.0, None)
        cells = (rows * cam.shape[0]).astype(int), (cols * cam.shape[1]).astype(int)
        heat = cam[cells]
        shares.append(heat[outside].sum() / heat.sum() if heat.sum() > 0 else np.nan)
    index = [str(t).replace("\n", ", ") for t in titles] if titles is not None else None
    return pd.DataFrame({"heat outside the lungs": shares,
                         "area outside the lungs": float(outside.mean())}, index=index)
